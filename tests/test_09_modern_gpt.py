"""Notebook 09: the modern levers, checked on the notebook's own code; with every lever off the model is
notebook 05's race model, weight for weight; generate crops the context only with learned positions; the
race moved to notebook 09b, and asking 09 for it is one line that says where."""
import pytest
import torch

from notebook_code import NOTEBOOKS, load
from script_runner import one_line_error, run_script

NB = "09_modern_gpt"
SCRIPT = NOTEBOOKS / f"{NB}.py"


@pytest.fixture(scope="module")
def ns():
    return load(NB, device="cpu")


def run(*argv, cwd=NOTEBOOKS, **kw):
    return run_script(SCRIPT, *argv, cwd=cwd, **kw)


def test_the_checks_pass_on_the_notebooks_own_code(ns):
    assert "passed" in ns["check_rms_norm"](ns["rms_norm"], ns["RMSNorm"])
    assert "passed" in ns["check_rotary"](ns["rotary"])
    assert "passed" in ns["check_modern_attention"](ns["ModernAttention"])
    assert "passed" in ns["check_relu_squared"](ns["relu_squared"])
    assert "passed" in ns["check_modern_gpt"](ns["ModernGPT"])


def test_with_every_lever_off_the_model_is_notebook_05s_race_model(ns):
    fast = load("05_fast_gpt", device="cpu")
    torch.manual_seed(0)
    sizes = dict(vocab_size=65, block_size=16, n_embd=32, n_head=4, n_layer=2)
    theirs = fast["FastGPT"](fast["GPTConfig"](**sizes, dropout=0.0)).eval()
    ours = ns["ModernGPT"](ns["ModernConfig"](**sizes)).eval()
    renamed = {k.replace("ffwd.net.0", "ffwd.fc").replace("ffwd.net.2", "ffwd.proj"): v for k, v in theirs.state_dict().items()}
    ours.load_state_dict(renamed)  # strict: the same parameters, every one
    idx = torch.randint(0, 65, (3, 16))
    with torch.no_grad():
        assert torch.allclose(ours(idx, idx)[1], theirs(idx, idx)[1], atol=1e-6)
        assert torch.allclose(ours(idx)[0], theirs(idx)[0], atol=1e-5)


@pytest.mark.parametrize("rope", [True, False])
def test_generate_reads_past_block_size_only_with_rope_and_restores_the_mode(ns, rope):
    torch.manual_seed(0)
    model = ns["ModernGPT"](ns["ModernConfig"](block_size=8, n_embd=16, n_head=2, n_layer=1, rope=rope))
    seen, forward = [], model.forward
    model.forward = lambda idx, targets=None: (seen.append(idx.shape[1]), forward(idx, targets))[1]
    out = ns["generate_modern"](model.train(), torch.zeros((2, 1), dtype=torch.long), 20)
    assert out.shape == (2, 21) and model.training
    assert max(seen) == (20 if rope else 8)  # RoPE reads the whole past; a learned table crops to block_size


def test_the_past_is_the_same_in_a_longer_context_with_rope(ns):
    torch.manual_seed(0)
    model = ns["ModernGPT"](ns["ModernConfig"](block_size=8, n_embd=16, n_head=2, n_layer=1, **{**ns["LEVERS_ON"], "zero_init": False}))
    idx = torch.randint(0, 65, (2, 24))
    with torch.no_grad():
        assert torch.allclose(model(idx)[0][:, :8], model(idx[:, :8])[0], atol=1e-5)


def test_the_race_is_in_09b_and_09_says_so_in_one_line():
    result = run("--race", "--max-iters", "5")
    assert result.returncode == 2
    assert "python notebooks/09b_muon_and_the_race.py --race" in one_line_error(result)


def test_bad_flags_are_one_line():
    assert "unrecognized arguments: --steps 5" in one_line_error(run("--steps", "5"))
    if not torch.cuda.is_available():
        assert "--device cuda: PyTorch finds no" in one_line_error(run("--device", "cuda"))
