"""Notebook 04b's own code: the dropout pair and the learning-rate grid compare like with like (the same
seed and batches for every setting, the setting used), and the lecture's configuration fits a T4."""
import torch

from notebook_code import load

torch.manual_seed(0)
DATA = torch.randint(0, 11, (3000,))
nb = load("04b_dropout_and_learning_rate", chars=list("abcdefghijk"), train_data=DATA[:2500], val_data=DATA[2500:],
          device="cpu", block_size=64)
TINY = dict(block_size=8, n_embd=16, n_head=2, n_layer=1)


def test_the_learning_rate_grid_trains_every_size_at_every_rate_on_the_same_batches():
    sizes = {"one": dict(n_embd=16, n_head=2, n_layer=1), "two": dict(n_embd=16, n_head=2, n_layer=2)}
    curves = nb["lr_grid"](4, 2, sizes, rates=(1e-3, 1e-3, 1e-2), seed=3)
    assert sorted(curves) == sorted([("one", 1e-3), ("one", 1e-2), ("two", 1e-3), ("two", 1e-2)])
    assert [step for step, _ in curves["one", 1e-2]] == [2, 4]
    again = nb["lr_grid"](4, 2, {"one": sizes["one"]}, rates=(1e-3,), seed=3)
    assert again["one", 1e-3] == curves["one", 1e-3]  # the same seed and batches: the same curve
    assert curves["one", 1e-2] != curves["one", 1e-3]  # the rate is used


def test_the_dropout_pair_scores_both_splits_on_the_same_batches():
    nb["block_size"] = 8
    text = "".join("abcdefghijk"[i] for i in DATA[:1500].tolist())
    curves = nb["dropout_pair"](text, 4, rates=(0.0, 0.5), every=2, sizes=TINY)
    assert sorted(curves) == [0.0, 0.5] and [c[0] for c in curves[0.0]] == [2, 4]
    assert all(len(c) == 3 for c in curves[0.5]) and curves[0.0] != curves[0.5]
    assert nb["dropout_pair"](text, 4, rates=(0.0,), every=2, sizes=TINY)[0.0] == curves[0.0]


def test_the_comparison_check_passes_the_notebooks_experiments():
    nb["block_size"] = 8
    text = "".join("abcdefghijk"[i] for i in DATA[:1500].tolist())
    assert "passed" in nb["check_comparison"](lambda r: nb["dropout_pair"](text, 4, r, every=2, sizes=TINY), "dropout_pair",
                                              (0.0, 1e-12), (0.0, 0.5), every=2)


def test_the_lecture_config_fits_a_t4():
    memory = nb["activation_bytes"](nb["GPTConfig"](), batch_size=64) + 16 * 10_788_929
    assert 2e9 < memory < 15e9
