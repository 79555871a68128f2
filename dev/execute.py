"""Execute notebooks for real (default mode, never smoke) and store their outputs.

    python dev/execute.py 01_bigram [02_self_attention ...]

For each name: read notebooks/NAME.py (the source of truth), keep the stored metadata of
notebooks/NAME.ipynb if there is one, run every cell in a fresh kernel from notebooks/ with
COURSE_SMOKE unset, and write the executed .ipynb. Prints the wall time of each notebook.
"""
import os
import pathlib
import sys
import time

import jupytext
import nbclient
import nbformat

ROOT = pathlib.Path(__file__).resolve().parent.parent
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


def execute(name, timeout=3600):
    py, ipynb = ROOT / "notebooks" / f"{name}.py", ROOT / "notebooks" / f"{name}.ipynb"
    nb = jupytext.read(py)
    nb.metadata = {"kernelspec": KERNELSPEC, "language_info": {"name": "python"}}
    os.environ.pop("COURSE_SMOKE", None)  # honest outputs: the real, device-sized config
    os.environ.pop("COURSE_DATA", None)
    t0 = time.time()
    nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(py.parent)}}).execute()
    nb.metadata.pop("jupytext", None)
    nbformat.write(nb, ipynb)
    os.utime(py)  # the .py stays the newest file, so `jupytext --sync` keeps taking inputs from it
    print(f"{name}: executed in {time.time() - t0:.0f} s -> {ipynb.relative_to(ROOT)}")


if __name__ == "__main__":
    for name in sys.argv[1:] or sys.exit(__doc__):
        execute(name)
