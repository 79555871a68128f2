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
    assert reqs["torch"] == "torch>=2.2,<3"  # 2.13.0, which CI installs first, satisfies it


def test_ci_runs_the_readme_test_command():
    readme, ci = (ROOT / "README.md").read_text(), (ROOT / ".ci" / "run").read_text()
    assert "```\npytest\n```" in readme
    assert re.search(r"^pytest\b", ci, re.M)
    assert "pip install torch==2.13.0" in ci
