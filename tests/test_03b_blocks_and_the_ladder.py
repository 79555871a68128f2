"""Notebook 03b's own code (rungs 2-7 of the ladder): every module keeps its shapes, every model is causal,
the hand-written LayerNorm matches PyTorch's, training learns, dropout is off unless asked for, the ladder's
claims hold for every measured seed; and what 03b copies from 03 is 03's code, reproducing 03's number."""
import json
import re

import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings, strategies as st

from notebook_code import NOTEBOOKS, ROOT, load, source_of
from script_runner import one_line_error, run_script, smoke_env

NB = "03b_blocks_and_the_ladder"
HYPER = ("n_embd", "block_size", "n_head", "n_layer", "dropout")
nb = load(NB, keep=HYPER, vocab_size=65, device="cpu", batch_size=4, learning_rate=1e-3)
C, T, V = nb["n_embd"], nb["block_size"], 65


def bodies():
    """The body of every step of the ladder, built by the notebook's own classes."""
    hs = C // nb["n_head"]
    return {
        "2 one head": nb["Head"](C),
        "3 multi-head": nb["MultiHeadAttention"](nb["n_head"], hs),
        "4 feed-forward": nn.Sequential(nb["MultiHeadAttention"](nb["n_head"], hs), nb["FeedForward"](C)),
        "5 blocks": nn.Sequential(*[nb["Block"](C, nb["n_head"]) for _ in range(nb["n_layer"])]),
        "5b plain blocks": nn.Sequential(*[nb["PlainBlock"](C, nb["n_head"]) for _ in range(nb["n_layer"])]),
    }


def models():
    torch.manual_seed(0)
    built = {name: nb["BigramLanguageModel"](body=body) for name, body in bodies().items()}
    built["6 transformer"] = nb["transformer"]()
    return built


def test_hyperparameters_are_the_lecture_small_config():
    assert (C, T, nb["n_head"], nb["n_layer"], nb["dropout"]) == (32, 8, 4, 3, 0.0)


@pytest.mark.parametrize("name", ["get_batch", "split_loss", "train_step", "params", "train", "BigramLanguageModel",
                                  "generate", "Head"])
def test_what_03b_copies_from_03_is_03s_code(name):
    assert source_of(NB, name) == source_of("03_building_gpt", name)


def test_the_baseline_rung_reproduces_03s_number():
    """The stored outputs: one head retrained in 03b prints the same train and val losses as in 03."""
    def line(notebook):
        cells = json.loads((NOTEBOOKS / f"{notebook}.ipynb").read_text(encoding="utf-8"))["cells"]
        text = "".join("".join(o.get("text", "")) for c in cells if c["cell_type"] == "code" for o in c.get("outputs", []))
        found = re.search(r"^2 one head: train (\S+), val (\S+) ", text, re.M)
        assert found, notebook
        return found.groups()
    assert line(NB) == line("03_building_gpt")


@pytest.mark.parametrize("B,t", [(1, 1), (3, 5), (2, 8)])
def test_every_module_keeps_its_shape(B, t):
    torch.manual_seed(0)
    x = torch.randn(B, t, C)
    assert nb["Head"](16)(x).shape == (B, t, 16)
    assert nb["MultiHeadAttention"](4, 8)(x).shape == (B, t, C)
    assert nb["FeedForward"](C)(x).shape == (B, t, C)
    for block in ("Block", "PlainBlock", "PreNormBlock"):
        assert nb[block](C, 4)(x).shape == (B, t, C)
    assert nb["LayerNorm1d"](C)(x).shape == (B, t, C)
    idx = torch.randint(0, V, (B, t))
    for name, model in models().items():
        logits, loss = model(idx)
        assert logits.shape == (B, t, V) and loss is None, name
        assert model(idx, idx)[1].shape == (), name


@pytest.mark.parametrize("name", list(models()))
def test_every_model_is_causal(name):
    """Changing the tokens after position t leaves the logits at positions <= t unchanged."""
    model = models()[name].eval()
    torch.manual_seed(1)
    idx = torch.randint(0, V, (4, T))
    for t in range(T - 1):
        changed = idx.clone()
        changed[:, t + 1:] = (changed[:, t + 1:] + 1 + torch.randint(0, V - 1, changed[:, t + 1:].shape)) % V
        with torch.no_grad():
            before, after = model(idx)[0], model(changed)[0]
        assert torch.allclose(before[:, :t + 1], after[:, :t + 1], atol=1e-5), (name, t)
        assert not torch.equal(before[:, t + 1:], after[:, t + 1:]), (name, t)  # attention sees the change


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 4), st.integers(1, 6), st.integers(2, 40), st.floats(0.1, 10), st.integers(0, 2**31 - 1))
def test_layernorm1d_matches_nn_layernorm(B, t, dim, scale, seed):
    torch.manual_seed(seed)
    x = torch.randn(B, t, dim) * scale + 3
    ours, theirs = nb["LayerNorm1d"](dim), nn.LayerNorm(dim)
    with torch.no_grad():
        for p, q in zip(ours.parameters(), theirs.parameters()):  # gamma/weight, beta/bias
            p.copy_(torch.randn(dim))
            q.copy_(p)
    assert torch.allclose(ours(x), theirs(x), atol=1e-4)


def test_generate_crops_a_context_longer_than_block_size():
    for name, model in models().items():
        idx = torch.randint(0, V, (2, 3 * T))
        out = model.generate(idx, max_new_tokens=2 * T)
        assert out.shape == (2, 5 * T), name
        assert torch.equal(out[:, :3 * T], idx) and out.max() < V and out.min() >= 0
        assert model.training  # the mode is restored


@pytest.mark.parametrize("name", ["2 one head", "5 blocks", "6 transformer"])
def test_training_steps_lower_the_loss_on_a_fixed_batch(name):
    model = models()[name]
    torch.manual_seed(2)
    x, y = torch.randint(0, V, (8, T)), torch.randint(0, V, (8, T))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    first = model(x, y)[1].item()
    for _ in range(20):
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    assert model(x, y)[1].item() < first - 0.5


def test_dropout_is_off_unless_asked_for():
    model = nb["transformer"]()
    assert all(m.p == 0.0 for m in model.modules() if isinstance(m, nn.Dropout))
    nb["dropout"] = 0.2
    try:
        model = nb["transformer"]()
    finally:
        nb["dropout"] = 0.0
    assert all(m.p == 0.2 for m in model.modules() if isinstance(m, nn.Dropout))


def test_every_step_sees_the_same_batches_even_with_dropout():
    """Batches come from their own generator, so a model that draws random numbers (dropout) sees the same data."""
    seen, saved = {}, dict(nb)
    train_data, val_data = torch.randint(0, V, (500,)), torch.randint(0, V, (100,))
    for name, rate in (("plain", 0.0), ("dropout", 0.5)):
        nb["dropout"] = rate
        try:
            model = nb["transformer"]()
        finally:
            nb["dropout"] = 0.0
        batches, original = [], nb["get_batch"]
        nb["get_batch"] = lambda split, g=None: batches.append(original(split, g)) or batches[-1]
        nb.update(train_data=train_data, val_data=val_data, max_iters=5, eval_batch=64)
        try:
            nb["train"](model, name)
        finally:
            nb.clear()
            nb.update(saved)
        seen[name] = batches
    assert all(torch.equal(a[0], b[0]) for a, b in zip(seen["plain"], seen["dropout"])) and len(seen["plain"]) == 5


# The ladder's claims, evaluated against whole-split val losses measured with three seeds on the CPU
# (python dev/bands.py 03, which trains rungs 0-2 with 03's code and 3-7 with 03b's): they must hold for
# every seed, or the notebook would fail for a learner whose machine rounds differently.
def measured_ladders():
    bands = json.loads((ROOT / "dev" / "results" / "bands.json").read_text())
    return {seed: {step: r["val"] for step, r in runs.items()} for seed, runs in bands["03"].items()}


def test_the_ladders_claims_hold_for_every_measured_seed():
    ladders = measured_ladders()
    assert len(ladders) >= 3
    for seed, val in ladders.items():
        failed = [claim for claim, holds in nb["ladder_claims"](val) if not holds]
        assert not failed, (seed, failed)


def test_the_ladders_claims_can_fail():
    val = next(iter(measured_ladders().values()))
    broken = {**val, "5b blocks, no residual": val["5 blocks + residual"]}  # as if residuals did not matter
    assert not dict(nb["ladder_claims"](broken))["without residuals the same blocks train much worse"]


def test_the_expected_bands_cover_every_measured_seed():
    for seed, val in measured_ladders().items():
        for step, (low, high) in nb["EXPECTED_VAL"].items():
            assert low <= round(val[step], 2) <= high, (seed, step, val[step])


def test_a_text_too_short_for_one_block_is_one_line_before_training(tmp_path):
    """A cold reader's case: a COURSE_DATA text under ~90 characters ended in a raw ZeroDivisionError after a
    whole training run; 03b checks the split sizes before any training, as 03 does."""
    (tmp_path / "short.txt").write_text("To be, or not to be: that is the question.\n", encoding="utf-8")
    result = run_script(NOTEBOOKS / f"{NB}.py", cwd=tmp_path, env=smoke_env(COURSE_DATA=str(tmp_path / "short.txt")))
    assert "validation split has" in one_line_error(result)
