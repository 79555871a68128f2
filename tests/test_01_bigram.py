"""Notebook 01's own code: tokenizer, batches, the bigram model, its loss, training and sampling."""
import math

import pytest
import torch

from notebook_code import load

SPLIT = ("chars", "vocab_size", "stoi", "itos", "encode", "decode", "data", "n", "train_data", "val_data")


@pytest.fixture(scope="module")
def nb(shakespeare):
    ns = load("01_bigram", keep=SPLIT, text=shakespeare)
    ns.update(batch_size=4, block_size=8, device="cpu", eval_iters=20)
    return ns


def test_vocabulary_and_round_trip_over_the_whole_text(nb, shakespeare):
    assert nb["vocab_size"] == len(nb["chars"]) == 65
    ids = nb["encode"](shakespeare)
    assert len(ids) == len(shakespeare) == 1_115_394
    assert min(ids) == 0 and max(ids) == 64
    assert nb["decode"](ids) == shakespeare


def test_split_is_ninety_ten(nb):
    assert len(nb["train_data"]) == int(0.9 * len(nb["data"]))
    assert torch.equal(torch.cat([nb["train_data"], nb["val_data"]]), nb["data"])


@pytest.mark.parametrize("batch_size,block_size", [(1, 1), (4, 8), (32, 8), (7, 64)])
def test_get_batch_shapes_and_targets_one_step_on(nb, batch_size, block_size):
    for split in ("train", "val"):
        x, y = nb["get_batch"](split, batch_size, block_size)
        assert x.shape == y.shape == (batch_size, block_size)
        assert x.dtype == y.dtype == torch.long
        assert torch.equal(x[:, 1:], y[:, :-1])


def test_get_batch_takes_contiguous_chunks_of_the_right_split(nb):
    """With the integers 0..99 as 'text', a chunk is a run of consecutive numbers."""
    saved = nb["train_data"], nb["val_data"]
    try:
        nb.update(train_data=torch.arange(100), val_data=torch.arange(1000, 1020))
        for split, low, high in (("train", 0, 100), ("val", 1000, 1020)):
            torch.manual_seed(0)
            x, y = nb["get_batch"](split, 64, 5)
            assert torch.equal(y, x + 1)
            assert torch.equal(x[:, 1:], x[:, :-1] + 1)
            assert x.min() >= low and y.max() < high
            assert y.max() == high - 1 or x.min() > low  # offsets reach the end of the split
    finally:
        nb["train_data"], nb["val_data"] = saved


def test_initial_loss_is_about_ln_vocab_size(nb):
    torch.manual_seed(1337)
    x, y = nb["get_batch"]("train", 4, 8)
    model = nb["BigramLanguageModel"](65)
    logits, loss = model(x, y)
    assert logits.shape == (4, 8, 65)
    assert math.log(65) < loss.item() < math.log(65) + 1.0
    torch.nn.init.zeros_(model.token_embedding_table.weight)
    assert math.isclose(model(x, y)[1].item(), math.log(65), rel_tol=1e-6)
    logits, loss = model(x)
    assert logits.shape == (4, 8, 65) and loss is None


def test_a_short_training_run_lowers_the_validation_loss(nb):
    nb.update(batch_size=32, block_size=8, eval_iters=50)
    torch.manual_seed(0)
    model = nb["BigramLanguageModel"](65)
    before = nb["estimate_loss"](model)["val"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(300):
        nb["train_step"](model, optimizer, *nb["get_batch"]("train", 32, 8))
    after = nb["estimate_loss"](model)["val"]
    nb.update(batch_size=4, eval_iters=20)
    assert after < before - 1.0, (before, after)
    assert model.training  # estimate_loss puts the model back in training mode


@pytest.mark.parametrize("training", [True, False])
def test_generate_returns_the_requested_number_of_valid_ids(nb, training):
    model = nb["BigramLanguageModel"](65).train(training)
    idx = torch.zeros((3, 2), dtype=torch.long)
    out = model.generate(idx, max_new_tokens=50)
    assert out.shape == (3, 52)
    assert torch.equal(out[:, :2], idx)
    assert out.min() >= 0 and out.max() < 65
    assert not out.requires_grad
    assert model.training == training  # the mode is restored after sampling in eval mode
