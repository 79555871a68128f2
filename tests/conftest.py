import os
import pathlib
import sys

import pytest
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from notebook_code import ROOT, load  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def shakespeare():
    """Tiny Shakespeare, through notebook 01's own loader (datasets/, or a verified download)."""
    ns = load("01_bigram")
    old = os.getcwd()
    os.chdir(ROOT)
    try:
        return ns["load_text"]()
    finally:
        os.chdir(old)
