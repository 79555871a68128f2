"""The set-up files: one list of packages, and CI runs the README's test command."""
import re

from notebook_code import ROOT


def test_environment_yml_installs_requirements_txt_and_nothing_else():
    lines = [l.strip() for l in (ROOT / "environment.yml").read_text().splitlines()
             if l.strip().startswith("- ")]
    assert lines == ["- conda-forge", "- python>=3.11", "- pip", "- pip:", "- -r requirements.txt"]


def test_requirements_cover_the_course_and_admit_the_ci_torch():
    reqs = {re.split(r"[<>=~! ]", l)[0].lower(): l for l in (ROOT / "requirements.txt").read_text().splitlines()
            if l and not l.startswith("#")}
    assert {"torch", "numpy", "matplotlib", "jupyter", "jupytext", "nbval", "pytest"} <= set(reqs)
    assert reqs["torch"] == "torch>=2.4,<3"  # 2.13.0, which CI installs first, satisfies it


def test_the_torch_floor_covers_what_the_notebooks_call():
    """Fused AdamW on a CPU needs torch 2.4; the notebooks use it (05), so the floor must not be lower."""
    import torch
    sources = "".join(p.read_text() for p in (ROOT / "notebooks").glob("*.py"))
    assert "fused=" in sources and "GradScaler('cpu'" in sources and "unravel_index" in sources
    floor = tuple(int(x) for x in re.search(r"torch>=(\d+)\.(\d+)", (ROOT / "requirements.txt").read_text()).groups())
    assert floor >= (2, 4)
    assert tuple(int(x) for x in torch.__version__.split(".")[:2]) >= floor


def test_ci_runs_the_readme_test_command():
    readme, ci = (ROOT / "README.md").read_text(), (ROOT / ".ci" / "run").read_text()
    assert "```\npytest\n```" in readme
    assert re.search(r"^pytest\b", ci, re.M)
    assert "pip install torch==2.13.0" in ci
