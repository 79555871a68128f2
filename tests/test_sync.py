"""Every notebook is a pair, .py and .ipynb, holding the same cells; its stored outputs are real."""
import json

import jupytext
import pytest

from notebook_code import NOTEBOOKS

PAIRS = sorted(p.stem for p in NOTEBOOKS.glob("*.py"))


def cells(path):
    return [(c.cell_type, c.source.strip(), c.metadata.get("tags", []))
            for c in jupytext.read(path).cells]


def test_every_notebook_is_a_pair():
    assert PAIRS, "no notebooks found"
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == PAIRS
    assert not any(name.startswith("test_") for name in PAIRS)


@pytest.mark.parametrize("name", PAIRS)
def test_py_and_ipynb_hold_the_same_cells(name):
    py, ipynb = cells(NOTEBOOKS / f"{name}.py"), cells(NOTEBOOKS / f"{name}.ipynb")
    assert len(py) == len(ipynb), "different number of cells: edit the .py, then `jupytext --sync`"
    for i, (a, b) in enumerate(zip(py, ipynb)):
        assert a == b, f"cell {i} differs: edit the .py, then `jupytext --sync`"


@pytest.mark.parametrize("name", PAIRS)
def test_stored_outputs_come_from_a_full_default_mode_run(name):
    nb = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c.get("execution_count") for c in code), "run every cell (python dev/execute.py NAME)"
    counts = [c["execution_count"] for c in code]
    assert counts == sorted(counts), "cells were run out of order"
    text = "".join(o.get("text", "") if isinstance(o.get("text", ""), str) else "".join(o["text"])
                   for c in code for o in c["outputs"])
    assert "smoke mode: False" in text and "smoke mode: True" not in text
    assert not any(o["output_type"] == "error" for c in code for o in c["outputs"])
