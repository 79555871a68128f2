"""Notebook 05c's own code, moved here from notebook 05's tests with the race: the schedule and the
optimizer, train_fast and the whole-split loss behave, and every branch that a GPU takes in the race is
exercised on the CPU (autocast in bfloat16 and float16, the gradient scaler, fused AdamW, torch.compile,
evaluation under autocast), or at least built with the device mocked. The copies of notebook 04's model
and of notebook 05's fast model and training pieces are the originals."""
import shutil

import pytest
import torch

import ast
import functools

from notebook_code import NOTEBOOKS, load

nb = load("05c_against_the_clock", device="cpu", amp_dtype=None)
nb5b = load("05b_speed_up_close", device="cpu")
LECTURE = ["GPTConfig", "Head", "MultiHeadAttention", "FeedForward", "Block", "GPTLanguageModel", "generate"]
FROM_05 = ["CausalSelfAttention", "FastBlock", "FastGPT", "sync", "get_batch_on_device", "scaled_step", "amp_dtype_for",
           "compiler_available"]
TINY = dict(block_size=16, n_embd=32, n_head=2, n_layer=2)  # smoke mode's race size: torch.compile's cache is shared
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


def test_the_copies_are_notebook_04s_and_05s():
    for name in LECTURE:
        assert source_of("05c_against_the_clock", name) == source_of("04_gpt", name), name
    for name in FROM_05:
        assert source_of("05c_against_the_clock", name) == source_of("05_fast_gpt", name), name


def test_learning_rate_schedule():
    lrs = [nb["lr_at"](it, 1e-3, 10, 100) for it in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))  # decays after the warmup
    assert nb["lr_at"](100, 1e-3, 10, 100) == pytest.approx(1e-4)  # a tenth of the peak at the end


def test_weight_decay_on_every_matrix_embeddings_included():
    model = nb["FastGPT"](config(block_size=8, n_embd=16, n_head=2, n_layer=1))
    decay, no_decay = nb["configure_optimizer"](model, 1e-3).param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert any(p is model.token_embedding_table.weight for p in decay["params"])
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() < 2 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def train(steps=60, **kw):
    torch.manual_seed(0)
    return nb["train_fast"](config(block_size=8, n_embd=32, n_head=2, n_layer=1), 16, steps, 3e-3, 5, **kw)


def test_train_fast_lowers_the_loss():
    model, log, compile_seconds = train()
    assert len(log) == 20 and log[-1][2] < 0.5 * log[0][2] and compile_seconds < 1
    assert model.training


def test_train_fast_stops_once_the_target_is_reached():
    model, log, _ = train(400, eval_every=10, target=1.0)
    assert log[-1][0] < 400 and log[-1][0] % 10 == 0  # stopped early, at a check
    assert nb["split_loss"](model, nb["val_data"]) <= 1.0


def test_split_loss_of_the_fast_model_is_the_mean_chunk_loss():
    torch.manual_seed(0)
    model = nb["FastGPT"](config(block_size=8, n_embd=16, n_head=2, n_layer=1))
    data = torch.randint(0, 13, (81,))
    x, y = data[:80].view(10, 8), data[1:81].view(10, 8)
    with torch.no_grad():
        expected = model.eval()(x, y)[1].item()
    assert nb["split_loss"](model, data, batch=3) == pytest.approx(expected, rel=1e-5)
    assert nb5b["split_loss_lecture_style"](model, data, batch=3) == pytest.approx(expected, rel=1e-5)
    assert nb5b["split_loss"](model, data, batch=3) == pytest.approx(expected, rel=1e-5)


# The branches a GPU takes, run on the CPU.


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_mixed_precision_race_trains_on_the_cpu(dtype):
    """bfloat16 autocast; float16 autocast with the gradient scaler (GradScaler('cpu')) and clipping."""
    model, log, _ = train(amp_dtype=dtype, clip=1.0)
    assert all(torch.isfinite(torch.tensor(l)) for _, _, l in log) and log[-1][2] < 0.5 * log[0][2]
    assert all(p.dtype == torch.float32 for p in model.parameters())  # weights stay in float32


def test_fused_adamw_takes_the_same_steps_as_the_plain_one():
    _, plain, _ = train(20)
    _, fused, _ = train(20, fused=True)
    assert [round(l, 3) for _, _, l in plain] == [round(l, 3) for _, _, l in fused]


@pytest.mark.skipif(not any(shutil.which(c) for c in ("g++", "c++", "clang++")), reason="no C++ compiler")
def test_torch_compile_trains_like_eager_and_spends_its_compile_time_before_the_clock():
    torch.manual_seed(0)
    c = config(**TINY)
    eager = nb["train_fast"](c, 8, 10, 1e-3, 5)
    compiled = nb["train_fast"](c, 8, 10, 1e-3, 5, compile=True)
    assert [round(l, 3) for _, _, l in eager[1]] == [round(l, 3) for _, _, l in compiled[1]]
    assert compiled[2] > 0 and compiled[1][-1][1] < compiled[2] + 60  # compile time is reported apart


def test_the_whole_split_under_autocast_is_close_to_float32():
    torch.manual_seed(0)
    model = nb["FastGPT"](config(block_size=8, n_embd=32, n_head=2, n_layer=1))
    exact = nb["split_loss"](model, PATTERN)
    assert nb["split_loss"](model, PATTERN, amp_dtype=torch.bfloat16) == pytest.approx(exact, abs=0.02)


def test_the_gpu_race_is_built_with_the_device_mocked():
    """What the CUDA path builds: the lecture-sized race model, its fused optimizer, float16 scaler and autocast
    (05's test counts the benchmark's flops of the same model)."""
    sizes, batch, iters, lr, warmup, target, clip, every = nb["RACES"]["cuda"]
    model = nb["FastGPT"](nb["GPTConfig"](vocab_size=65, **sizes))
    assert sum(p.numel() for p in model.parameters()) == 10_788_929  # the lecture's model, made fast
    assert nb["configure_optimizer"](model, lr, fused=True).defaults["fused"]
    with pytest.warns(UserWarning):
        assert not torch.amp.GradScaler("cuda", enabled=True).is_enabled()  # CUDA absent: disabled, not an error
    assert (batch, iters, target, clip, every) == (64, 3000, 1.48, 1.0, 100)


def test_train_fast_logs_the_last_step_whatever_the_count():
    for steps in (45, 7, 1):
        _, log, _ = train(steps)
        assert log[-1][0] == steps and [s for s, _, _ in log] == sorted(set(s for s, _, _ in log))


def test_the_checks_of_05c_pass_on_its_own_code():
    assert nb["check_schedule"](nb["lr_at"]).startswith("lr_at: passed")
    model = nb["FastGPT"](config(block_size=8, n_embd=16, n_head=2, n_layer=1))
    assert nb["check_optimizer_groups"](nb["configure_optimizer"], model).startswith("configure_optimizer: passed")
