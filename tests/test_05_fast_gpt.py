"""Notebook 05's own code: the fast attention and model compute the lecture's function, the batches and
the benchmark behave, and the branches that a GPU takes are exercised on the CPU or built with the device
mocked (mixed precision by compute capability, the benchmark's rows, checkpoints made on a GPU). The
race's tests (the schedule, the optimizer, train_fast, the whole-split loss) moved with the race to
tests/test_05c_against_the_clock.py."""
import shutil

import pytest
import torch

import ast
import functools

from notebook_code import NOTEBOOKS, load

nb = load("05_fast_gpt", device="cpu", amp_dtype=None)
nb5b = load("05b_speed_up_close", device="cpu")
LECTURE = ["GPTConfig", "Head", "MultiHeadAttention", "FeedForward", "Block", "GPTLanguageModel", "generate"]
CONFIGS = [dict(block_size=8, n_embd=16, n_head=1, n_layer=1), dict(block_size=16, n_embd=64, n_head=4, n_layer=2),
           dict(block_size=32, n_embd=48, n_head=6, n_layer=3)]
PATTERN = torch.tensor(list(range(13)) * 40)


@functools.cache
def sources(notebook):
    """{name: source} of every top-level def and class of notebooks/<notebook>.py (as notebook_code.source_of
    gives them), the file parsed once."""
    src = (NOTEBOOKS / f"{notebook}.py").read_text(encoding="utf-8")
    return {n.name: ast.get_source_segment(src, n) for n in ast.parse(src).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}


def source_of(notebook, name):
    return sources(notebook)[name]


def config(**sizes):
    return nb["GPTConfig"](**{"vocab_size": 13, "dropout": 0.0, **sizes})


@pytest.fixture(autouse=True)
def on_the_cpu():
    nb.update(device="cpu", train_data=PATTERN, val_data=PATTERN, block_size=8)
    nb5b.update(device="cpu", block_size=8)


def test_the_lecture_model_is_notebook_04s():
    for name in LECTURE[:-1]:  # 05 samples nothing, so it carries no generate (05c does, and its test compares it)
        assert source_of("05_fast_gpt", name) == source_of("04_gpt", name), name
    for name in LECTURE[:-1] + ["CausalSelfAttention", "FastBlock", "FastGPT", "sync", "compiler_available", "scaled_step"]:
        assert source_of("05b_speed_up_close", name) == source_of("05_fast_gpt", name), name


@pytest.mark.parametrize("sizes", CONFIGS)
def test_batched_heads_and_sdpa_equal_multi_head_attention(sizes):
    c = config(**sizes)
    torch.manual_seed(0)
    mha = nb5b["MultiHeadAttention"](c)
    x = torch.randn(3, c.block_size, c.n_embd)
    for flash in (False, True):
        attn = nb5b["copy_heads"](mha, nb5b["CausalSelfAttention"](c, flash=flash))
        assert torch.allclose(attn(x), mha(x), atol=1e-5), flash
        assert attn(x[:, :5]).shape == (3, 5, c.n_embd)  # shorter than block_size
        assert nb["check_causal_self_attention"](attn).startswith("CausalSelfAttention: passed")


@pytest.mark.parametrize("sizes", CONFIGS)
def test_fast_model_loss_equals_the_lecture_models_with_copied_weights(sizes):
    c = config(**sizes)
    torch.manual_seed(1)
    lecture = nb5b["GPTLanguageModel"](c)
    fast = nb5b["fast_from_lecture"](lecture)
    count = lambda m: sum(p.numel() for p in m.parameters())
    assert count(fast) == count(lecture)
    idx, targets = torch.randint(0, 13, (4, c.block_size)), torch.randint(0, 13, (4, c.block_size))
    assert torch.allclose(fast(idx, targets)[1], lecture(idx, targets)[1], atol=1e-5)
    assert torch.allclose(fast(idx)[0], lecture(idx)[0], atol=1e-5)
    assert nb5b["check_same_function"](fast, lecture, "fast_from_lecture", [idx, idx[:1, :3]]).endswith("tried)")


def test_fast_model_is_causal():
    assert nb5b["check_model"](nb["FastGPT"](config(block_size=16, n_embd=32, n_head=4, n_layer=2))).endswith("communicating)")


@pytest.mark.parametrize("B,T", [(1, 1), (5, 8), (64, 3)])
def test_batches_on_the_device_are_chunks_shifted_by_one(B, T):
    data = torch.arange(50)
    x, y = nb["get_batch_on_device"](data, B, T)
    assert x.shape == y.shape == (B, T) and x.dtype == torch.long
    assert torch.equal(y, x + 1) and torch.equal(x[:, 1:], x[:, :-1] + 1) and y.max() < 50


# The branches a GPU takes, run on the CPU or built with the device mocked.

@pytest.mark.parametrize("capability,expected", [((7, 5), torch.float16), ((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16)])
def test_mixed_precision_by_compute_capability(monkeypatch, capability, expected):
    """A T4 (7.5) emulates bfloat16, so it gets float16 and a scaler; an A100 (8.0) and an H100 (9.0) bfloat16."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # what a T4 reports, emulation included
    assert nb["amp_dtype_for"]("cuda") == expected
    assert nb["amp_dtype_for"]("cpu") is None and nb["amp_dtype_for"]("mps") is None


@pytest.mark.parametrize("name,tflops", [("NVIDIA H100 80GB HBM3", 989), ("NVIDIA H100 PCIe", 756), ("NVIDIA H100 NVL", 835),
                                         ("NVIDIA L4", 121), ("NVIDIA L40S", 362), ("Tesla T4", 65),
                                         ("NVIDIA A100-SXM4-80GB", 312), ("NVIDIA GeForce RTX 4090", None), ("cpu", None)])
def test_peak_flops_by_exact_name(name, tflops):
    assert nb["peak_flops"](name) == (tflops * 1e12 if tflops else None)


def test_the_gpu_benchmark_counts_the_flops_of_the_lecture_sized_model():
    """The CUDA benchmark's model is the lecture's, made fast (05c's test builds the GPU race, device mocked)."""
    model = nb["FastGPT"](nb["GPTConfig"](vocab_size=65))
    assert sum(p.numel() for p in model.parameters()) == 10_788_929  # the lecture's model, made fast
    assert nb["flops_per_token"](model.config, 10_788_929) == 6 * 10_788_929 + 12 * 6 * 384 * 256


def test_a_checkpoint_made_on_a_gpu_loads_on_the_cpu(tmp_path, monkeypatch):
    """Notebook 04 loads checkpoints with map_location='cpu'; here one is written as if its tensors were on CUDA."""
    nb04 = load("04_gpt")
    torch.manual_seed(0)
    model = nb04["GPTLanguageModel"](nb04["GPTConfig"](vocab_size=11, block_size=8, n_embd=16, n_head=2, n_layer=1, dropout=0.0))
    monkeypatch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
    nb04["save_checkpoint"](tmp_path / "ckpt.pt", model, torch.optim.AdamW(model.parameters()), "\n abcdefgh!", 3, {})
    monkeypatch.undo()
    with pytest.raises(RuntimeError, match="CUDA"):
        torch.load(tmp_path / "ckpt.pt", weights_only=True)  # what a plain load does on a machine without CUDA
    ckpt, loaded = nb04["load_checkpoint"](tmp_path / "ckpt.pt")
    assert ckpt["step"] == 3 and all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))


def test_the_checks_of_05_pass_on_its_own_code():
    assert nb5b["check_scaled_step"](nb["scaled_step"]).startswith("scaled_step: passed")  # 05b holds the check
    assert nb["check_scaled_step"](nb["scaled_step"]).startswith("scaled_step: passed")  # and 05 a copy of it
    assert nb["check_batches_on_device"](nb["get_batch_on_device"]).startswith("get_batch_on_device: passed")


def test_the_benchmarks_lecture_row_is_float32_and_its_precision_is_restored():
    """TF32 is the GPU's: the lecture row, and every row on a CPU, runs at 'highest'; time_steps leaves it as it found it."""
    nb.update(device="cpu", amp_dtype=None, batch_size=4, block_size=8, bench_compile=False,
              config=config(block_size=8, n_embd=16, n_head=2, n_layer=1))
    rows = nb["variants"]()
    assert rows[0][0] == "lecture (04)" and all(r[5] == "highest" for r in rows)
    by_hand, fast = rows[1][1].state_dict(), rows[2][1].state_dict()
    assert by_hand.keys() == fast.keys() and all(torch.equal(by_hand[k], fast[k]) for k in fast)  # the same weights
    seen = []
    model = nb["FastGPT"](nb["config"])
    before = torch.get_float32_matmul_precision()
    nb["time_steps"](model, lambda: seen.append(torch.get_float32_matmul_precision()) or nb["get_batch_on_device"](PATTERN, 4, 8),
                     2, precision="high")
    assert set(seen) == {"high"} and torch.get_float32_matmul_precision() == before


def test_on_cuda_the_lecture_row_stays_float32_and_tf32_is_a_row_of_its_own(monkeypatch):
    """The rows a GPU gets, built with the moves to the device mocked: float32 until the TF32 row, TF32 after it."""
    monkeypatch.setattr(torch.nn.Module, "to", lambda self, *a, **k: self)
    monkeypatch.setattr(torch.Tensor, "to", lambda self, *a, **k: self)
    nb.update(device="cuda", amp_dtype=torch.bfloat16, batch_size=4, block_size=8, bench_compile=False,
              config=config(block_size=8, n_embd=16, n_head=2, n_layer=1))
    try:
        rows = [(r[0], r[3], r[5]) for r in nb["variants"]()]
    finally:
        nb.update(device="cpu", amp_dtype=None)
    assert rows == [("lecture (04)", None, "highest"), ("+ batched heads", None, "highest"),
                    ("+ scaled_dot_product_attention", None, "highest"), ("+ batches on the device", None, "highest"),
                    ("+ TF32 matmuls", None, "high"), ("+ autocast bfloat16", torch.bfloat16, "high"),
                    ("+ fused AdamW", torch.bfloat16, "high")]
