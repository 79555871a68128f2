"""Notebook 05's own code: the fast attention and model compute the lecture's function, the
training pieces behave, and the benchmark command runs."""
import os
import subprocess
import sys

import pytest
import torch

from notebook_code import NOTEBOOKS, load, source_of

nb = load("05_fast_gpt", device="cpu", amp_dtype=None)
LECTURE = ["GPTConfig", "Head", "MultiHeadAttention", "FeedForward", "Block", "GPTLanguageModel", "generate"]
CONFIGS = [dict(block_size=8, n_embd=16, n_head=1, n_layer=1), dict(block_size=16, n_embd=64, n_head=4, n_layer=2),
           dict(block_size=32, n_embd=48, n_head=6, n_layer=3)]


def config(**sizes):
    return nb["GPTConfig"](**{"vocab_size": 13, "dropout": 0.0, **sizes})


def test_the_lecture_model_is_notebook_04s():
    for name in LECTURE:
        assert source_of("05_fast_gpt", name) == source_of("04_gpt", name), name


@pytest.mark.parametrize("sizes", CONFIGS)
def test_batched_heads_and_sdpa_equal_multi_head_attention(sizes):
    c = config(**sizes)
    torch.manual_seed(0)
    mha = nb["MultiHeadAttention"](c)
    x = torch.randn(3, c.block_size, c.n_embd)
    for flash in (False, True):
        attn = nb["copy_heads"](mha, nb["CausalSelfAttention"](c, flash=flash))
        assert torch.allclose(attn(x), mha(x), atol=1e-5), flash
        assert attn(x[:, :5]).shape == (3, 5, c.n_embd)  # shorter than block_size


@pytest.mark.parametrize("sizes", CONFIGS)
def test_fast_model_loss_equals_the_lecture_models_with_copied_weights(sizes):
    c = config(**sizes)
    torch.manual_seed(1)
    lecture = nb["GPTLanguageModel"](c)
    fast = nb["fast_from_lecture"](lecture)
    count = lambda m: sum(p.numel() for p in m.parameters())
    assert count(fast) == count(lecture)
    idx, targets = torch.randint(0, 13, (4, c.block_size)), torch.randint(0, 13, (4, c.block_size))
    assert torch.allclose(fast(idx, targets)[1], lecture(idx, targets)[1], atol=1e-5)
    assert torch.allclose(fast(idx)[0], lecture(idx)[0], atol=1e-5)


def test_fast_model_is_causal():
    fast = nb["FastGPT"](config(block_size=16, n_embd=32, n_head=4, n_layer=2)).eval()
    idx = torch.randint(0, 13, (2, 16))
    changed = idx.clone()
    changed[:, 9:] = (changed[:, 9:] + 1) % 13
    with torch.no_grad():
        assert torch.allclose(fast(idx)[0][:, :9], fast(changed)[0][:, :9], atol=1e-6)


@pytest.mark.parametrize("B,T", [(1, 1), (5, 8), (64, 3)])
def test_batches_on_the_device_are_chunks_shifted_by_one(B, T):
    data = torch.arange(50)
    x, y = nb["get_batch_on_device"](data, B, T)
    assert x.shape == y.shape == (B, T) and x.dtype == torch.long
    assert torch.equal(y, x + 1) and torch.equal(x[:, 1:], x[:, :-1] + 1) and y.max() < 50


def test_learning_rate_schedule():
    lrs = [nb["lr_at"](it, 1e-3, 10, 100) for it in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))  # decays after the warmup
    assert nb["lr_at"](100, 1e-3, 10, 100) == pytest.approx(1e-4)  # a tenth of the peak at the end


def test_weight_decay_only_on_matrices():
    model = nb["FastGPT"](config(block_size=8, n_embd=16, n_head=2, n_layer=1))
    decay, no_decay = nb["configure_optimizer"](model, 1e-3).param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() < 2 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_train_fast_lowers_the_loss():
    torch.manual_seed(0)
    pattern = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12] * 40)
    nb["train_data"] = pattern
    model, log = nb["train_fast"](config(block_size=8, n_embd=32, n_head=2, n_layer=1), 16, 60, 3e-3, 5)
    assert len(log) == 20 and log[-1][2] < 0.5 * log[0][2]
    assert model.training


def test_train_fast_stops_once_the_target_is_reached():
    nb["train_data"] = nb["val_data"] = torch.tensor(list(range(13)) * 40)
    nb["block_size"] = 8
    c = config(block_size=8, n_embd=32, n_head=2, n_layer=1)
    model, log = nb["train_fast"](c, 16, 400, 3e-3, 5, eval_every=10, target=1.0)
    assert log[-1][0] < 400 and log[-1][0] % 10 == 0  # stopped early, at a check
    assert nb["split_loss"](model, nb["val_data"]) <= 1.0


def test_split_loss_of_the_fast_model_is_the_mean_chunk_loss():
    torch.manual_seed(0)
    model = nb["FastGPT"](config(block_size=8, n_embd=16, n_head=2, n_layer=1))
    data = torch.randint(0, 13, (81,))
    nb["block_size"] = 8
    x, y = data[:80].view(10, 8), data[1:81].view(10, 8)
    with torch.no_grad():
        expected = model.eval()(x, y)[1].item()
    assert nb["split_loss"](model, data, batch=3) == pytest.approx(expected, rel=1e-5)


def test_bench_runs_in_smoke_mode(tmp_path):
    env = {**os.environ, "COURSE_SMOKE": "1"}
    result = subprocess.run([sys.executable, str(NOTEBOOKS / "05_fast_gpt.py"), "--bench"], cwd=NOTEBOOKS,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(l.startswith("lecture (04)") and "tokens/s" in l for l in lines)
    assert any(l.startswith("+ scaled_dot_product_attention") for l in lines)
    assert "vs lecture:" in lines[-1] and "race:" not in result.stdout  # it stopped after the benchmark
