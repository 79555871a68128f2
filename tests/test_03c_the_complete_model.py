"""Notebook 03c's own code, the complete model as gpt.py writes it (moved from test_04_gpt.py with the model): the
lecture's parameter count, the initialisation, causality, generate's crop and top-k; notebook 03c run as a script;
and notebook 04's folded model is 03c's code, name for name."""
import torch

from notebook_code import NOTEBOOKS, load, source_of
from script_runner import run_script, smoke_env

nb = load("03c_the_complete_model")
TINY = dict(vocab_size=11, block_size=8, n_embd=16, n_head=2, n_layer=2, dropout=0.0)
MODEL = ["GPTConfig", "Head", "MultiHeadAttention", "FeedForward", "Block", "GPTLanguageModel", "generate"]


def tiny_model(seed=0, **overrides):
    torch.manual_seed(seed)
    return nb["GPTLanguageModel"](nb["GPTConfig"](**{**TINY, **overrides}))


def test_the_lecture_config_has_10_788_929_parameters():
    model = nb["GPTLanguageModel"](nb["GPTConfig"]())
    assert nb["GPTConfig"]() == nb["GPTConfig"](65, 256, 384, 6, 6, 0.2)
    assert sum(p.numel() for p in model.parameters()) == 10_788_929


def test_weights_start_small_with_zero_biases():
    model = tiny_model(n_embd=64)
    assert all(torch.all(m.bias == 0) for m in model.modules() if isinstance(m, torch.nn.Linear) and m.bias is not None)
    assert 0.015 < model.lm_head.weight.std() < 0.025 and 0.015 < model.token_embedding_table.weight.std() < 0.025


def test_the_model_is_causal():
    model = tiny_model().eval()
    idx = torch.randint(0, 11, (3, 8))
    for t in range(7):
        changed = idx.clone()
        changed[:, t + 1:] = (changed[:, t + 1:] + 1) % 11
        with torch.no_grad():
            before, after = model(idx)[0], model(changed)[0]
        assert torch.allclose(before[:, :t + 1], after[:, :t + 1], atol=1e-6)
        assert not torch.equal(before[:, t + 1:], after[:, t + 1:])


def test_generate_crops_and_top_k_one_is_greedy():
    model = tiny_model()
    idx = torch.randint(0, 11, (2, 20))  # longer than block_size
    out = model.generate(idx, 12, temperature=0.7, top_k=3)
    assert out.shape == (2, 32) and torch.equal(out[:, :20], idx) and model.training
    greedy = model.generate(idx, 5, top_k=1)
    with torch.no_grad():
        expected = idx
        for _ in range(5):
            nxt = model.eval()(expected[:, -8:])[0][:, -1].argmax(-1, keepdim=True)
            expected = torch.cat([expected, nxt], 1)
    assert torch.equal(greedy, expected)


def test_notebook_04s_folded_model_is_03cs_code():
    for name in MODEL:
        assert source_of("04_gpt", name) == source_of("03c_the_complete_model", name), f"{name}: copy it again from 03c"
    folded = (NOTEBOOKS / "04_gpt.py").read_text(encoding="utf-8")
    assert "GPTLanguageModel.generate = generate" in folded


def test_the_script_checks_and_counts_without_data(tmp_path):
    # moved from test_04_gpt.py's script test: these lines were 04's before the model moved here
    result = run_script(NOTEBOOKS / "03c_the_complete_model.py", cwd=tmp_path, env=smoke_env(TMPDIR=str(tmp_path)))
    assert result.returncode == 0, result.stderr
    for sign in ("10,788,929 parameters", "over 5 seeds: normal(0, 0.02)"):
        assert sign in result.stdout, sign
    assert not [p for p in tmp_path.iterdir() if not p.name.startswith("torchinductor")]  # it writes nothing (torch's cache aside)
