"""Notebook 04's own code: the lecture's parameter count, causality, sampling, atomic checkpoints with their history,
the output folder's checks and lock (the command line itself is tested in test_04_cli.py)."""
import errno
import hashlib
import os
import socket

import pytest
import torch

from notebook_code import load

nb = load("04_gpt")
TINY = dict(vocab_size=11, block_size=8, n_embd=16, n_head=2, n_layer=2, dropout=0.0)


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


def test_attention_maps_are_causal_distributions():
    maps = nb["attention_maps"](tiny_model(), torch.randint(0, 11, (1, 6)))
    assert maps.shape == (2, 2, 6, 6)
    assert torch.allclose(maps.sum(-1), torch.ones(2, 2, 6)) and torch.all(maps.triu(1) == 0)


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


def test_sample_returns_the_prompt_and_n_characters_of_the_vocabulary():
    chars = "\n abcdefgh!"
    text = nb["sample"](tiny_model(), chars, "bad cafe", 50, temperature=1.2, top_k=4)
    assert text.startswith("bad cafe") and len(text) == len("bad cafe") + 50 and set(text) <= set(chars)


@pytest.mark.parametrize("prompt,expected", [("hello ⚡Z", "'Z⚡'"), ("", "the prompt is empty")])
def test_bad_prompts_are_one_line(prompt, expected):
    with pytest.raises(SystemExit) as e:
        nb["sample"](tiny_model(), "\n abcdefghlo", prompt, 5)
    assert expected in str(e.value.code) and "\n" not in str(e.value.code)


def test_split_sizes_are_checked():
    nb["check_split_sizes"](torch.zeros(20), torch.zeros(9), 8)
    with pytest.raises(SystemExit) as e:
        nb["check_split_sizes"](torch.zeros(20), torch.zeros(8), 8)
    assert "validation split has 8 characters" in str(e.value.code)


def test_checkpoints_round_trip_and_survive_an_interrupted_save(tmp_path, monkeypatch):
    model = tiny_model()
    optimizer = torch.optim.AdamW(model.parameters())
    path = tmp_path / "ckpt.pt"
    nb["save_checkpoint"](path, model, optimizer, "\n abcdefgh!", 7, {"batch_size": 4})
    ckpt, loaded = nb["load_checkpoint"](path)
    assert ckpt["step"] == 7 and ckpt["chars"] == "\n abcdefgh!" and loaded.config == model.config
    assert ckpt["settings"] == {"batch_size": 4} and ckpt["history"] == []
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    before = hashlib.sha256(path.read_bytes()).hexdigest()

    def interrupted(obj, f):
        open(f, "wb").write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        nb["save_checkpoint"](path, model, optimizer, "\n abcdefgh!", 8, {})
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temporary file left


@pytest.mark.parametrize("damage", ["missing", "truncated", "not a checkpoint", "other code"])
def test_bad_checkpoints_are_one_line(tmp_path, damage):
    path = tmp_path / "ckpt.pt"
    if damage != "missing":
        model = tiny_model()
        nb["save_checkpoint"](path, model, torch.optim.AdamW(model.parameters()), "\n abcdefgh!", 1, {})
        if damage == "truncated":
            path.write_bytes(path.read_bytes()[:2000])
        elif damage == "not a checkpoint":
            path.write_text("hello")
        else:
            torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(SystemExit) as e:
        nb["load_checkpoint"](path)
    message = str(e.value.code)
    assert message.startswith("error: ") and "\n" not in message and str(path) in message



def test_stream_draws_exactly_what_generate_draws():
    model, chars = tiny_model(), "\n abcdefgh!"
    torch.manual_seed(5)
    streamed = "".join(nb["stream"](model, chars, "bad", 40, temperature=0.9, top_k=4))
    torch.manual_seed(5)
    encode, decode = nb["encoder_for"](chars)
    idx = model.generate(torch.tensor([encode("bad")]), 40, temperature=0.9, top_k=4)
    assert streamed == decode(idx[0].tolist())


def save(path, step=1, **kw):
    model = tiny_model()
    nb["save_checkpoint"](path, model, torch.optim.AdamW(model.parameters()), "\n abcdefgh!", step, {}, **kw)


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_checkpoints_get_the_users_file_mode(tmp_path, umask):
    old = os.umask(umask)
    try:
        save(tmp_path / "ckpt.pt")
    finally:
        os.umask(old)
    assert (tmp_path / "ckpt.pt").stat().st_mode & 0o777 == 0o666 & ~umask


def test_keep_previous_renames_the_old_checkpoint_only_when_the_new_one_is_written(tmp_path):
    save(tmp_path / "ckpt.pt", step=3)
    save(tmp_path / "ckpt.pt", step=4, keep_previous=True)
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("ckpt-")]
    assert len(kept) == 1 and torch.load(kept[0], weights_only=True)["step"] == 3
    assert torch.load(tmp_path / "ckpt.pt", weights_only=True)["step"] == 4


def test_a_full_disk_keeps_the_previous_checkpoint_and_says_how_much_is_needed(tmp_path, monkeypatch):
    save(tmp_path / "ckpt.pt", step=3)
    before = hashlib.sha256((tmp_path / "ckpt.pt").read_bytes()).hexdigest()

    def full(obj, f):
        open(f, "wb").write(b"part")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(SystemExit) as e:
        save(tmp_path / "ckpt.pt", step=4, keep_previous=True)
    message = str(e.value.code)
    assert message.startswith("error: no space left on the disk of") and "MB" in message and "previous checkpoint is kept" in message
    assert hashlib.sha256((tmp_path / "ckpt.pt").read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]


def test_prepare_out_dir_locks_and_refuses_what_cannot_work(tmp_path, monkeypatch):
    nb["prepare_out_dir"](tmp_path / "a", ckpt_bytes=1000)
    assert (tmp_path / "a" / ".lock").read_text() == f"{os.getpid()} {socket.gethostname()}"
    nb["prepare_out_dir"](tmp_path / "a", ckpt_bytes=1000)  # the same process again (a notebook cell re-run)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / ".lock").write_text(f"1 {socket.gethostname()}")
    with pytest.raises(SystemExit, match="another run .process 1 on"):
        nb["prepare_out_dir"](tmp_path / "b", ckpt_bytes=1000)
    monkeypatch.setattr(nb["shutil"], "disk_usage", lambda p: type("U", (), {"free": 5_000_000})())
    with pytest.raises(SystemExit, match="only 5 MB free in .*a checkpoint needs about 20 MB"):
        nb["prepare_out_dir"](tmp_path / "c", ckpt_bytes=20_000_000)
    monkeypatch.undo()

    def denied(path, *a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(nb["os"], "open", denied)
    with pytest.raises(SystemExit, match="cannot write to .*d .Permission denied.; give a folder you can write to"):
        nb["prepare_out_dir"](tmp_path / "d", ckpt_bytes=1000)


@pytest.mark.parametrize("name,minutes", [("Tesla T4", 36), ("NVIDIA A100-SXM4-40GB", 15), ("NVIDIA H100 80GB HBM3", 4),
                                          ("NVIDIA GeForce RTX 3090", None)])
def test_time_estimates_only_for_known_gpus(name, minutes):
    estimate = nb["lecture_minutes"](name)
    assert (estimate is None) if minutes is None else round(estimate) == minutes


def test_a_checkpoint_carries_the_loss_history(tmp_path):
    save(tmp_path / "ckpt.pt", step=3)
    model = tiny_model()
    nb["save_checkpoint"](tmp_path / "ckpt.pt", model, torch.optim.AdamW(model.parameters()), "\n abcdefgh!", 4, {},
                          history=[(2, 3.5, 3.6), (4, 3.1, 3.3)])
    assert nb["load_checkpoint"](tmp_path / "ckpt.pt")[0]["history"] == [[2, 3.5, 3.6], [4, 3.1, 3.3]]


def test_a_folder_given_as_checkpoint_names_the_file_in_it(tmp_path):
    with pytest.raises(SystemExit) as e:
        nb["load_checkpoint"](tmp_path)
    assert str(e.value.code) == f"error: {tmp_path} is a folder, not a checkpoint; give the file in it: --ckpt {tmp_path / 'ckpt.pt'}"
