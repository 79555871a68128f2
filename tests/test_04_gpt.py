"""Notebook 04's own code: the attention maps, the split's size (the model's own tests moved with the model to
test_03c_the_complete_model.py); and notebook 04 run as a script, as today: it trains, saves a checkpoint 04c can
read, and answers 04c's flags in one line (the command line, its checkpoints and its folder checks are tested in
test_04c_command_line.py)."""
import signal
import subprocess
import sys

import pytest
import torch

from notebook_code import NOTEBOOKS, load
from script_runner import one_line_error, run_script, smoke_env

nb = load("04_gpt")
TINY = dict(vocab_size=11, block_size=8, n_embd=16, n_head=2, n_layer=2, dropout=0.0)


def tiny_model(seed=0, **overrides):
    torch.manual_seed(seed)
    return nb["GPTLanguageModel"](nb["GPTConfig"](**{**TINY, **overrides}))


def test_attention_maps_are_causal_distributions():
    maps = nb["attention_maps"](tiny_model(), torch.randint(0, 11, (1, 6)))
    assert maps.shape == (2, 2, 6, 6)
    assert torch.allclose(maps.sum(-1), torch.ones(2, 2, 6)) and torch.all(maps.triu(1) == 0)


def test_split_sizes_are_checked():
    nb["check_split_sizes"](torch.zeros(20), torch.zeros(9), 8)
    with pytest.raises(SystemExit) as e:
        nb["check_split_sizes"](torch.zeros(20), torch.zeros(8), 8)
    assert "validation split has 8 characters" in str(e.value.code)


SCRIPT = NOTEBOOKS / "04_gpt.py"


@pytest.fixture(scope="module")
def small_text(tmp_path_factory):
    folder = tmp_path_factory.mktemp("script04")
    words = "the cat sat on the mat and the dog ran to the log while a bird sang\n".split(" ")
    torch.manual_seed(0)
    (folder / "small.txt").write_text(" ".join(words[i] for i in torch.randint(0, len(words), (1200,)).tolist()), encoding="utf-8")
    return folder


def test_the_script_trains_reports_saves_and_samples(small_text, tmp_path):
    result = run_script(SCRIPT, "--data", str(small_text / "small.txt"), cwd=tmp_path, env=smoke_env(TMPDIR=str(tmp_path)))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    steps = [line.split(":")[0] for line in out.splitlines() if line.startswith("step ")]
    assert steps == ["step 20", "step 40"]  # smoke mode: 40 steps, an estimate every 20
    # the lecture's count and the initial losses are printed by notebook 03c now (test_03c_the_complete_model.py)
    for sign in (" parameters, vocab_size ", "whole-split loss after 40 steps", "--- 500 characters sampled after", "figure saved:", "saved step 40 in "):
        assert sign in out, sign
    # "saved step 40": the step read back from the file by load_checkpoint, the code notebook 04c's --sample uses
    assert "sample from it in the course folder with: python notebooks/04c_command_line.py --sample --ckpt " in out


def test_the_seed_is_a_flag_of_the_script():
    ns = load("04_gpt")  # dev/bands.py trains with parse_args(["--seed", SEED])
    assert ns["parse_args"]([]).seed == 1337 and ns["parse_args"](["--seed", "5"]).seed == 5


@pytest.mark.parametrize("flags", [["--resume"], ["--out", "runs/mine"], ["--sample", "--ckpt", "x.pt"], ["--max-iters=45"],
                                   ["--data", "a.txt", "--dropout", "0.2"]])
def test_a_flag_of_04c_is_one_line_naming_04cs_command(flags, tmp_path):
    result = run_script(SCRIPT, *flags, cwd=tmp_path)
    line = one_line_error(result)
    assert result.returncode == 2 and "belongs to notebook 04c's command line" in line
    assert line.split(": ", 2)[2].startswith("python notebooks/04c_command_line.py " + " ".join(flags)), line
    assert not list(tmp_path.iterdir())  # nothing written


def test_bad_flags_of_04_are_one_line(tmp_path):
    assert "--seed must be between 0 and 2**64 - 1" in one_line_error(run_script(SCRIPT, "--seed", "-1", cwd=tmp_path))
    assert "unrecognized arguments: --no-such-flag" in one_line_error(run_script(SCRIPT, "--no-such-flag", cwd=tmp_path))
    assert "fix the path given to --data" in one_line_error(run_script(SCRIPT, "--data", "missing.txt", cwd=tmp_path))


def test_ctrl_c_in_the_script_is_one_clean_line(small_text, tmp_path):
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "--data", str(small_text / "small.txt")], cwd=tmp_path,
                            env=smoke_env(TMPDIR=str(tmp_path)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:  # wait for a printed sign, not a fixed time
            if line.startswith("config: "):  # the start-up checks run next
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "Traceback" not in err, err
    line, = err.strip().splitlines()
    assert line.startswith("interrupted;") and "python notebooks/04c_command_line.py" in line
