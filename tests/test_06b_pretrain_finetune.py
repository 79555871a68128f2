"""Notebook 06b's exercise 3 (pretrain, then finetune): the check of the training loop passes on its
solution and on correct variants, waits for the starting point, and fails with its sentence on a wrong
loop; the pieces around it: the War and Peace download, the leakage count, the stand-in corpus."""
import hashlib

import pytest
import torch

from notebook_code import ROOT, load
from test_06_exercises import exercise_cells_are_laid_out_as_the_intro_says

NB = "06b_pretrain_finetune"
nb = load(NB, device="cpu")
EXERCISES = [("check_train_on", "train_on", "train_on_solution", "train_on")]


def ns(replace=()):
    return load(NB, replace=replace, device="cpu") if replace else nb


def fails(check, thing, match):
    with pytest.raises(AssertionError, match=match) as excinfo:
        check(thing)
    assert type(excinfo.value).__name__ == "CheckFailed", excinfo.value
    assert "\n" not in str(excinfo.value)


def test_the_check_passes_on_the_solution_and_waits_for_the_starting_point():
    assert nb["check_train_on"](nb["train_on_solution"]).startswith("train_on_solution: passed (")
    result = nb["check_train_on"](nb["train_on"])
    assert isinstance(result, nb["NotDone"]) and result == "not done yet: fill in train_on above, then run this cell again"


def test_the_solution_and_check_are_folded_and_the_starting_point_is_checked_in_the_next_cell():
    exercise_cells_are_laid_out_as_the_intro_says(NB, EXERCISES)


# Exercise 3: pretrain, then finetune.

def test_train_on_check_catches_a_loop_that_trains_a_new_model():
    def fresh(model, data, steps, peak_lr, batch_size=32, warmup=0):
        return nb["train_on_solution"](nb["FastGPT"](model.config), data, steps, peak_lr, batch_size, warmup)
    fails(nb["check_train_on"], fresh, "train `model` itself, not a new model")


def test_train_on_check_catches_a_fixed_learning_rate():
    wrong = ns([("group['lr'] = lr_at(it, peak_lr, warmup, steps)", "group['lr'] = 1e-3")])
    fails(wrong["check_train_on"], wrong["train_on_solution"], "changed the weights with peak_lr = 0")


def test_train_on_check_catches_training_on_the_global_split():
    wrong = ns([("x, y = get_batch_on_device(data, batch_size, model.config.block_size)  # (B, T) each",
                 "x, y = get_batch_on_device(train_data, batch_size, model.config.block_size)  # (B, T) each")])
    wrong["train_data"] = torch.randint(0, 13, (1000,))  # some other text
    fails(wrong["check_train_on"], wrong["train_on_solution"], r"not chunks of `data`: draw the batches from the data it is given")


def test_finetuning_starts_from_the_pretrained_weights():
    config = nb["GPTConfig"](vocab_size=13, block_size=8, n_embd=16, n_head=2, n_layer=1, dropout=0.0)
    torch.manual_seed(0)
    model = nb["FastGPT"](config)
    pattern = torch.tensor(list(range(13)) * 30)
    log = nb["train_on_solution"](model, pattern, 80, 3e-3, batch_size=16)
    later = nb["train_on_solution"](model, pattern, 5, 1e-4, batch_size=16)
    assert len(log) == 80 and later[0][1] < 0.5 * log[0][1]  # the second call continues from the first


def test_shared_windows_counts_the_validation_text_found_in_the_corpus():
    text = "".join(chr(65 + i % 26) + chr(97 + i * 7 % 26) for i in range(100))  # 200 characters
    assert nb["shared_windows"]("x" * 300, text) == 0
    assert nb["shared_windows"]("x" * 10 + text[20:75] + "x" * 10, text) == 6  # 55 characters hold 6 windows of 50
    assert nb["shared_windows"](text[:49], text) == 0


@pytest.fixture
def fake_warpeace(tmp_path):
    """A small stand-in for War and Peace served from file:// URLs, with the notebook's checksum pointed at it."""
    good = tmp_path / "good.txt"
    good.write_bytes(b"\xef\xbb\xbf\"Well, Prince,\r\nso Genoa\r\n")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"not the book\r\n")
    fresh = load(NB, device="cpu")
    fresh["PRETRAIN_SHA256"] = hashlib.sha256(good.read_bytes()).hexdigest()
    return fresh, good, bad, tmp_path


def test_war_and_peace_tries_each_url_in_turn_and_keeps_only_a_verified_file(fake_warpeace, capsys):
    fresh, good, bad, tmp_path = fake_warpeace
    fresh["PRETRAIN_URLS"] = ((tmp_path / "missing.txt").as_uri(), bad.as_uri(), good.as_uri())
    path = fresh["fetch_warpeace"](tmp_path / "datasets")
    assert path.read_bytes() == good.read_bytes() and sorted(p.name for p in path.parent.iterdir()) == ["warpeace.txt"]
    assert capsys.readouterr().out.count("downloading War and Peace from") == 3
    fresh["PRETRAIN_URLS"] = ("http://127.0.0.1:9/nothing.txt",)  # no network: the file already there is used
    assert fresh["fetch_warpeace"](tmp_path / "datasets") == path


def test_war_and_peace_with_the_wrong_checksum_is_refused_in_one_line(fake_warpeace):
    fresh, good, bad, tmp_path = fake_warpeace
    fresh["PRETRAIN_URLS"] = (bad.as_uri(),)
    with pytest.raises(SystemExit) as excinfo:
        fresh["fetch_warpeace"](tmp_path / "datasets")
    message = str(excinfo.value.code)
    assert message.startswith("error: could not get War and Peace:") and "sha256" in message and "\n" not in message
    assert list((tmp_path / "datasets").iterdir()) == []  # no .part left behind
    (tmp_path / "datasets" / "warpeace.txt").write_bytes(bad.read_bytes())
    with pytest.raises(SystemExit, match="delete it and run again"):
        fresh["fetch_warpeace"](tmp_path / "datasets")


def test_the_pretraining_text_loses_its_byte_order_mark_and_windows_line_ends(fake_warpeace, monkeypatch):
    fresh, good, _, tmp_path = fake_warpeace
    monkeypatch.setenv("COURSE_PRETRAIN", str(good))
    assert fresh["load_pretrain_text"]() == (str(good), "\"Well, Prince,\nso Genoa\n")
    monkeypatch.setenv("COURSE_PRETRAIN", str(tmp_path / "nope.txt"))
    with pytest.raises(SystemExit, match="^error: no text file at .*fix the path given to COURSE_PRETRAIN$"):
        fresh["load_pretrain_text"]()


def test_smoke_mode_pretrains_on_the_readme_without_downloading(monkeypatch):
    monkeypatch.delenv("COURSE_PRETRAIN", raising=False)
    monkeypatch.chdir(ROOT / "notebooks")
    fresh = load(NB, device="cpu")
    fresh["SMOKE"] = True
    fresh["PRETRAIN_URLS"] = ("http://127.0.0.1:9/nothing.txt",)
    name, corpus = fresh["load_pretrain_text"]()
    assert name.startswith("README.md, a stand-in") and corpus == (ROOT / "README.md").read_text(encoding="utf-8")


