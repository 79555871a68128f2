"""One subject, one sitting: every notebook's script stays within 1,000 lines, folded plumbing included, and every
code cell a learner reads (not folded) holds at most 20 lines of code, blank lines not counted; a longer one is split
by idea (a method such as generate gets a cell of its own and is attached to its class, as 03 does)."""
import re

import pytest

from notebook_code import NOTEBOOKS

SCRIPTS = sorted(NOTEBOOKS.glob("*.py"))
HEADER = re.compile(r"^# %%.*$", re.M)


def visible_code_cells(text):
    """(line number, source) of every code cell whose header does not fold it."""
    found = [(m, text[:m.start()].count("\n") + 1) for m in HEADER.finditer(text)]
    for (m, line), nxt in zip(found, found[1:] + [(None, None)]):
        header = m.group(0)
        if "[markdown]" not in header and "source_hidden" not in header:
            yield line, text[m.end():nxt[0].start() if nxt[0] else len(text)]


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.stem)
def test_a_notebook_is_one_sitting(path):
    text = path.read_text(encoding="utf-8")
    lines = text.count("\n")
    assert lines <= 1000, f"{path.name} has {lines} lines, more than one sitting (1,000): split it where a subject ends"
    long = [(line, n) for line, cell in visible_code_cells(text)
            if (n := sum(1 for s in cell.splitlines() if s.strip())) > 20]
    assert not long, f"{path.name}: the code cells at lines {[l for l, _ in long]} hold {[n for _, n in long]} lines of " \
                     "code, more than 20: split each by idea"


def test_the_cell_count_sees_folded_and_long_cells():
    text = "# %%\n" + "x = 1\n" * 21 + '# %% jupyter={"source_hidden": true}\n' + "y = 2\n" * 30 + "# %% [markdown]\n# a\n"
    cells = list(visible_code_cells(text))
    assert [(line, cell.count("\n")) for line, cell in cells] == [(1, 22)]  # the folded cell and the markdown left out
