"""Notebook 04's own code and its command line: the lecture's parameter count, causality,
sampling, atomic checkpoints, resuming, and a one-line error for every bad input."""
import hashlib
import os
import subprocess
import sys

import pytest
import torch

from notebook_code import NOTEBOOKS, load

nb = load("04_gpt")
SCRIPT = str(NOTEBOOKS / "04_gpt.py")
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
    nb["save_checkpoint"](path, model, optimizer, "\n abcdefgh!", 7)
    ckpt, loaded = nb["load_checkpoint"](path)
    assert ckpt["step"] == 7 and ckpt["chars"] == "\n abcdefgh!" and loaded.config == model.config
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    before = hashlib.sha256(path.read_bytes()).hexdigest()

    def interrupted(obj, f):
        open(f, "wb").write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        nb["save_checkpoint"](path, model, optimizer, "\n abcdefgh!", 8)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temporary file left


@pytest.mark.parametrize("damage", ["missing", "truncated", "not a checkpoint", "other code"])
def test_bad_checkpoints_are_one_line(tmp_path, damage):
    path = tmp_path / "ckpt.pt"
    if damage != "missing":
        model = tiny_model()
        nb["save_checkpoint"](path, model, torch.optim.AdamW(model.parameters()), "\n abcdefgh!", 1)
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


# The command line, run as a learner would (smoke mode: a tiny model).

def run(*argv, cwd):
    env = {**os.environ, "COURSE_SMOKE": "1"}
    env.pop("COURSE_DATA", None)
    return subprocess.run([sys.executable, SCRIPT, *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def one_line_error(result):
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """Train 30 steps on a small custom text, then resume to 50."""
    folder = tmp_path_factory.mktemp("cli")
    words = "the cat sat on the mat and the dog ran to the log while a bird sang\n".split(" ")
    torch.manual_seed(0)
    text = " ".join(words[i] for i in torch.randint(0, len(words), (1200,)).tolist())
    (folder / "small.txt").write_text(text, encoding="utf-8")
    first = run("--data", "small.txt", "--max-iters", "30", "--out", "run", cwd=folder)
    assert first.returncode == 0, first.stderr
    step_after_first = torch.load(folder / "run" / "ckpt.pt", weights_only=True)["step"]
    resumed = run("--data", "small.txt", "--max-iters", "50", "--out", "run", "--resume", cwd=folder)
    assert resumed.returncode == 0, resumed.stderr
    return folder, text, first, step_after_first, resumed


def test_cli_trains_writes_a_checkpoint_and_resumes(small_run):
    folder, text, first, step_after_first, resumed = small_run
    assert step_after_first == 30 and "smoke mode: True" in first.stdout
    ckpt = torch.load(folder / "run" / "ckpt.pt", weights_only=True)
    assert ckpt["step"] == 50 and ckpt["chars"] == "".join(sorted(set(text)))
    assert "starting at step 30 of 50" in resumed.stdout


def test_cli_samples_n_characters_of_the_vocabulary(small_run):
    folder, text = small_run[:2]
    result = run("--sample", "--ckpt", "run/ckpt.pt", "--prompt", "the cat", "--num-chars", "60",
                 "--temperature", "0.8", "--top-k", "5", cwd=folder)
    assert result.returncode == 0, result.stderr
    out = result.stdout[:-1]  # print's newline
    assert out.startswith("the cat") and len(out) == len("the cat") + 60 and set(out) <= set(text)


def test_cli_errors_are_one_line_and_lose_nothing(small_run):
    folder = small_run[0]
    ckpt = folder / "run" / "ckpt.pt"
    before = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert "never saw: 'QZ'" in one_line_error(run("--sample", "--ckpt", "run/ckpt.pt", "--prompt", "Zebra Q", cwd=folder))
    assert "no checkpoint at" in one_line_error(run("--sample", "--ckpt", "nope.pt", cwd=folder))
    assert "no text file at" in one_line_error(run("--data", "missing.txt", cwd=folder))
    (folder / "empty.txt").write_text("")
    assert "has no text" in one_line_error(run("--data", "empty.txt", cwd=folder))
    (folder / "short.txt").write_text("a short text, far too short for a block\n" * 3)
    assert "fewer than block_size + 1" in one_line_error(run("--data", "short.txt", "--out", "short", cwd=folder))
    (folder / "other.txt").write_text("ABCDEFG HIJKLMNOP\n" * 200)
    assert "another vocabulary" in one_line_error(run("--data", "other.txt", "--out", "run", "--resume", cwd=folder))
    (folder / "trunc.pt").write_bytes(ckpt.read_bytes()[:3000])
    assert "not a usable checkpoint" in one_line_error(run("--sample", "--ckpt", "trunc.pt", cwd=folder))
    assert hashlib.sha256(ckpt.read_bytes()).hexdigest() == before  # nothing already written is lost


def test_cli_fresh_run_keeps_the_earlier_checkpoint(small_run):
    folder = small_run[0]
    result = run("--data", "small.txt", "--max-iters", "2", "--out", "run", cwd=folder)
    assert result.returncode == 0, result.stderr
    kept = [p for p in (folder / "run").iterdir() if p.name.startswith("ckpt-")]
    assert len(kept) == 1 and torch.load(kept[0], weights_only=True)["step"] == 50


def test_cli_help_documents_every_flag():
    result = subprocess.run([sys.executable, SCRIPT, "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    for flag in ["--data", "--max-iters", "--device", "--out", "--resume", "--seed", "--sample", "--ckpt",
                 "--prompt", "--num-chars", "--temperature", "--top-k", "--block-size"]:
        assert flag in result.stdout
