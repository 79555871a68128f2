"""Copy the shared plumbing cells from their home notebook into every notebook that carries them.

    python dev/plumbing.py            # rewrite the copies, then run `jupytext --sync` on what changed
    python dev/plumbing.py --check    # only report copies that differ (tests/test_data.py checks them too)

Every notebook stands alone, so cells such as the data loader are repeated. A shared cell starts with
`#@title Plumbing: NAME (the same in ...)`; its home is the notebook listed in HOMES, and this script
replaces every other copy with the home's text. Edit the home notebook, then run this.
"""
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
HOMES = {  # the start of the cell's title -> the notebook that owns it
    "Plumbing: folders, figures and checks": "01_bigram",
    "Plumbing: the device": "01_bigram",
    "Plumbing: the data": "01_bigram",
    "Plumbing: the attention oracle": "02_self_attention",
    "Plumbing: checks of the model's pieces": "03_building_gpt",
    "Plumbing: the batch check": "03_building_gpt",
    "Plumbing: checks of sampling and training steps": "03_building_gpt",
    "Plumbing: command-line checks": "04_gpt",
}
CELL = re.compile(r"^# %%.*$", re.M)


def cells(text):
    """The text split into cells, each starting with its '# %%' line (the part before the first is cells[0])."""
    starts = [m.start() for m in CELL.finditer(text)] + [len(text)]
    return [text[:starts[0]]] + [text[a:b] for a, b in zip(starts, starts[1:])]


def title(cell):
    lines = cell.splitlines()
    return next((t for t in HOMES if len(lines) > 1 and lines[1].startswith("#@title " + t)), None)


def main(check_only=False):
    homes = {t: next(c for c in cells((ROOT / "notebooks" / f"{nb}.py").read_text()) if title(c) == t)
             for t, nb in HOMES.items()}
    changed = []
    for path in sorted((ROOT / "notebooks").glob("*.py")):
        parts = cells(path.read_text())
        new = [homes[title(c)] if title(c) and HOMES[title(c)] != path.stem else c for c in parts]
        if new != parts:
            changed.append(path)
            if not check_only:
                path.write_text("".join(new))
    for path in changed:
        print(("differs: " if check_only else "updated: ") + str(path.relative_to(ROOT)))
        if not check_only:
            subprocess.run(["jupytext", "--sync", str(path)], check=True, capture_output=True)
    return 1 if check_only and changed else 0


if __name__ == "__main__":
    sys.exit(main("--check" in sys.argv))
