"""Notebook 03's own code (rungs 0-2 of the ladder): every module keeps its shapes, every attention model is
causal, generation crops its context, training learns, every rung sees the same batches, the claims hold."""
import pytest
import torch
import torch.nn as nn

from notebook_code import load

HYPER = ("n_embd", "block_size", "dropout")
nb = load("03_building_gpt", keep=HYPER, vocab_size=65, device="cpu", batch_size=4, learning_rate=1e-3)
C, T, V = nb["n_embd"], nb["block_size"], 65


def models():
    torch.manual_seed(0)
    return {"0 bigram": nb["Bigram"](), "1 embeddings": nb["BigramLanguageModel"](),
            "2 one head": nb["BigramLanguageModel"](body=nb["Head"](C))}


def test_hyperparameters_are_the_lecture_small_config():
    assert (C, T, nb["dropout"]) == (32, 8, 0.0)


@pytest.mark.parametrize("B,t", [(1, 1), (3, 5), (2, 8)])
def test_every_module_keeps_its_shape(B, t):
    torch.manual_seed(0)
    x = torch.randn(B, t, C)
    assert nb["Head"](16)(x).shape == (B, t, 16)
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
        if name == "2 one head":  # attention lets later positions see the change
            assert not torch.equal(before[:, t + 1:], after[:, t + 1:]), (name, t)


def test_generate_crops_a_context_longer_than_block_size():
    for name, model in models().items():
        if name == "0 bigram":
            continue
        idx = torch.randint(0, V, (2, 3 * T))
        out = model.generate(idx, max_new_tokens=2 * T)
        assert out.shape == (2, 5 * T), name
        assert torch.equal(out[:, :3 * T], idx) and out.max() < V and out.min() >= 0
        assert model.training  # the mode is restored


@pytest.mark.parametrize("name", ["2 one head"])
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


def test_train_and_split_loss_on_a_tiny_text():
    """The notebook's train() runs the shared budget and scores whole splits in block_size chunks."""
    torch.manual_seed(0)
    data = torch.randint(0, V, (1000,))
    ns = dict(nb)
    nb.update(train_data=data[:900], val_data=data[900:], max_iters=30, eval_batch=7)
    try:
        model = nb["Bigram"]()
        manual = [model(data[900:][i:i + T][None], data[900:][i + 1:i + T + 1][None])[1].item()
                  for i in range(0, 99 // T * T, T)]
        assert nb["split_loss"](model, data[900:]) == pytest.approx(sum(manual) / len(manual), rel=1e-5)
        result = nb["train"](model, "a tiny test")
        assert set(result) == {"train", "val", "seconds", "curve"} and result["curve"][-1][0] == 30
        assert result["train"] < manual[0] + 1 and model.training
    finally:
        nb.clear()
        nb.update(ns)


def test_every_step_sees_the_same_batches_even_with_dropout():
    """Batches come from their own generator, so a model that draws random numbers (dropout) sees the same data."""
    seen, saved = {}, dict(nb)
    train_data, val_data = torch.randint(0, V, (500,)), torch.randint(0, V, (100,))
    for name, rate in (("plain", 0.0), ("dropout", 0.5)):
        nb["dropout"] = rate
        try:
            model = nb["BigramLanguageModel"](body=nb["Head"](C))
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


# The first rungs' claims, evaluated against whole-split val losses measured with three seeds on the CPU
# (python dev/bands.py 03): they must hold for every seed, or the notebook would fail for a learner
# whose machine rounds differently.
def measured_ladders():
    import json
    from notebook_code import ROOT
    bands = json.loads((ROOT / "dev" / "results" / "bands.json").read_text())
    return {seed: {step: r["val"] for step, r in runs.items()} for seed, runs in bands["03"].items()}


def test_the_first_rungs_claims_hold_for_every_measured_seed():
    ladders = measured_ladders()
    assert len(ladders) >= 3
    for seed, val in ladders.items():
        failed = [claim for claim, holds in nb["first_rungs_claims"](val) if not holds]
        assert not failed, (seed, failed)


def test_the_first_rungs_claims_can_fail():
    val = next(iter(measured_ladders().values()))
    broken = {**val, "2 one head": val["1 embeddings + positions"]}  # as if attention did not help
    assert not dict(nb["first_rungs_claims"](broken))["one head beats embeddings alone"]
    broken = {**val, "1 embeddings + positions": val["0 bigram"] - 0.1}
    assert not dict(nb["first_rungs_claims"](broken))["embeddings and positions alone do not beat a finished bigram"]


def test_the_expected_bands_cover_every_measured_seed():
    for seed, val in measured_ladders().items():
        for step, (low, high) in nb["EXPECTED_VAL"].items():
            assert low <= round(val[step], 2) <= high, (seed, step, val[step])
