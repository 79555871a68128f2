"""Notebook 04c, notebook 04's command line, run as a learner runs it: every bad input is one line on stderr, a
non-zero exit, and no lost work; two runs never share a folder; Ctrl-C saves and says how to go on. Also its
checkpoints, folder checks and sampling called directly, and its copies of notebook 04's code."""
import errno
import hashlib
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading

import pytest
import torch

from notebook_code import NOTEBOOKS, load, source_of
from script_runner import one_line_error, run_script, smoke_env, spawn_script

SCRIPT = NOTEBOOKS / "04c_command_line.py"


RUNS = {}  # the module's first training run and its resumption


def run(*argv, cwd, **kw):
    return run_script(SCRIPT, *argv, cwd=cwd, **kw)


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A small text, a run of 30 steps, resumed to 50: what the bad inputs below must not damage."""
    folder = tmp_path_factory.mktemp("cli04c")
    words = "the cat sat on the mat and the dog ran to the log while a bird sang\n".split(" ")
    torch.manual_seed(0)
    text = " ".join(words[i] for i in torch.randint(0, len(words), (1200,)).tolist())
    (folder / "small.txt").write_text(text, encoding="utf-8")
    first = run("--data", "small.txt", "--max-iters", "30", "--out", "run", cwd=folder)
    assert first.returncode == 0, first.stderr
    assert (folder / "run" / "ckpt.pt").exists(), (first.stdout[-2000:], sorted(p.name for p in folder.rglob("*")))
    assert torch.load(folder / "run" / "ckpt.pt", weights_only=True)["step"] == 30
    resumed = run("--data", "small.txt", "--max-iters", "50", "--out", "run", "--resume", cwd=folder)
    assert resumed.returncode == 0, resumed.stderr
    RUNS.update(first=first, resumed=resumed)
    return folder


def test_trains_writes_a_checkpoint_and_resumes(folder):
    ckpt = torch.load(folder / "run" / "ckpt.pt", weights_only=True)
    text = (folder / "small.txt").read_text()
    assert ckpt["step"] == 50 and ckpt["chars"] == "".join(sorted(set(text)))
    assert ckpt["settings"]["batch_size"] == 8 and ckpt["settings"]["max_iters"] == 50  # smoke mode's tiny size
    assert "starting at step 30 of 50" in RUNS['resumed'].stdout
    assert "smoke mode: True" in RUNS['first'].stdout


def test_with_no_model_flags_it_trains_what_notebook_04_trains(folder, tmp_path):
    """The same model, seed, batches and losses as `python notebooks/04_gpt.py` (smoke mode's tiny size here)."""
    ours = run("--data", "small.txt", "--out", str(tmp_path / "r"), cwd=folder)
    theirs = run_script(NOTEBOOKS / "04_gpt.py", "--data", "small.txt", cwd=folder)
    assert ours.returncode == 0 and theirs.returncode == 0, (ours.stderr, theirs.stderr)
    losses = lambda out: [line for line in out.splitlines() if line.startswith(("step ", "whole-split loss"))]
    assert len(losses(ours.stdout)) == 3  # smoke mode: steps 20 and 40, then the whole-split loss
    assert [l.split(" (")[0] for l in losses(ours.stdout)] == [l.split(" (")[0] for l in losses(theirs.stdout)]


def test_a_script_on_its_own_text_prints_that_text_and_no_notebook_demo(folder):
    out = RUNS['first'].stdout
    vocab = len(set((folder / "small.txt").read_text()))
    assert f"vocab_size = {vocab}" in out and "parameters, vocab_size" in out
    assert "10,788,929" not in out and "ROMEO" not in out and "refused, as it should be" not in out
    assert "0%|" not in out  # no progress bar garbling the step lines when output is not a terminal
    assert any(line.startswith("step 20: train loss") for line in out.splitlines())


def test_figures_are_saved_beside_the_checkpoint(folder):
    for name in ("loss.png", "attention.png"):
        assert (folder / "run" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"figure saved: run/{name}" in RUNS['first'].stdout


def test_checkpoints_have_the_users_file_mode(folder):
    assert (folder / "run" / "ckpt.pt").stat().st_mode & 0o777 == 0o666 & ~0o022  # the tests' umask is 022


def test_samples_stream_n_characters_of_the_vocabulary(folder):
    result = run("--sample", "--ckpt", "run/ckpt.pt", "--prompt", "the cat", "--num-chars", "60",
                 "--temperature", "0.8", "--top-k", "5", cwd=folder)
    assert result.returncode == 0, result.stderr
    out = result.stdout[:-1]  # the final newline
    assert out.startswith("the cat") and len(out) == len("the cat") + 60
    assert set(out) <= set((folder / "small.txt").read_text())


BAD_FLAGS = [
    (["--max-iters", "0"], "--max-iters must be at least 1 (got 0)"),
    (["--max-iters", "-5"], "--max-iters must be at least 1"),
    (["--block-size", "0"], "--block-size must be at least 1"),
    (["--block-size", "-3"], "--block-size must be at least 1"),
    (["--block-size", "100000"], "fewer than block_size + 1"),
    (["--seed", "-1"], "--seed must be between 0 and 2**64 - 1"),
    (["--seed", str(2**64)], "--seed must be between 0 and 2**64 - 1"),
    (["--temperature", "0"], "--temperature must be a positive finite number (got 0.0)"),
    (["--temperature", "nan"], "--temperature must be a positive finite number"),
    (["--temperature", "-1"], "--temperature must be a positive finite number"),
    (["--temperature", "inf"], "--temperature must be a positive finite number"),
    (["--top-k", "0"], "--top-k must be at least 1"),
    (["--num-chars", "-1"], "--num-chars must be at least 0"),
    (["--learning-rate", "0"], "--learning-rate must be a positive finite number"),
    (["--learning-rate", "nan"], "--learning-rate must be a positive finite number"),
    (["--learning-rate", "inf"], "--learning-rate must be a positive finite number"),
    (["--dropout", "1"], "--dropout must be at least 0 and below 1"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--eval-interval", "0"], "--eval-interval must be at least 1"),
    (["--eval-iters", "0"], "--eval-iters must be at least 1"),
    (["--n-layer", "0"], "--n-layer must be at least 1"),
    (["--n-embd", "30", "--n-head", "4"], "--n-embd 30 must be divisible by --n-head 4"),
    (["--n-head", "3"], "n_embd 32 must be divisible by n_head 3"),
    (["--max-iters", "abc"], "argument --max-iters: invalid int value: 'abc'"),
    (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    (["--device", "tpu"], "argument --device: invalid choice: 'tpu'"),
    (["--ckpt", "run/ckpt.pt"], "--ckpt only applies with --sample"),
    (["--prompt", "Zebra"], "the prompt has characters the model never saw: 'Z'"),
    (["--sample"], "--sample needs --ckpt PATH"),
    (["--sample", "--ckpt", "run/ckpt.pt", "--data", "small.txt"], "--data does not apply with --sample"),
    (["--sample", "--ckpt", "run/ckpt.pt", "--max-iters", "5"], "--max-iters does not apply with --sample"),
    (["--sample", "--ckpt", "run/ckpt.pt", "--prompt", ""], "the prompt is empty"),
    (["--sample", "--ckpt", "run/ckpt.pt", "--prompt", "Zebra Q"], "never saw: 'QZ'"),
    (["--sample", "--ckpt", "nope.pt"], "no checkpoint at nope.pt"),
    (["--sample", "--ckpt", "run"], "run is a folder, not a checkpoint; give the file in it: --ckpt run/ckpt.pt"),
    (["--resume", "--block-size", "8"], "--block-size cannot change on --resume"),
    (["--resume", "--n-embd", "64"], "--n-embd cannot change on --resume"),
    (["--resume", "--max-iters", "20"], "already at step 50; give --max-iters above 50"),
    (["--resume", "--max-iters", "50"], "already at step 50; give --max-iters above 50"),
    (["--resume", "--batch-size", "16", "--max-iters", "60"], "--batch-size 16 (the checkpoint's: 8)"),
]


@pytest.mark.parametrize("argv,expected", BAD_FLAGS, ids=[" ".join(a) for a, _ in BAD_FLAGS])
def test_bad_input_is_one_line_and_loses_nothing(folder, argv, expected):
    before = {p.name: digest(p) for p in (folder / "run").iterdir()}
    needs = [] if "--sample" in argv else ["--data", "small.txt", "--out", "run"]
    result = run(*needs, *argv, cwd=folder)
    assert expected in one_line_error(result)
    assert {p.name: digest(p) for p in (folder / "run").iterdir()} == before  # nothing written, nothing lost
    assert result.returncode == (2 if "see --help" in result.stderr else 1)


@pytest.mark.parametrize("device", ["cuda", "mps"])
def test_a_missing_device_is_one_line_and_moves_no_checkpoint(folder, device):
    if device == "cuda" and torch.cuda.is_available() or device == "mps" and torch.backends.mps.is_available():
        pytest.skip(f"this machine has {device}")
    before = {p.name: digest(p) for p in (folder / "run").iterdir()}
    result = run("--data", "small.txt", "--out", "run", "--device", device, cwd=folder)
    assert f"--device {device}: PyTorch finds no" in one_line_error(result)
    assert {p.name: digest(p) for p in (folder / "run").iterdir()} == before  # ckpt.pt was not moved aside


def test_bad_data_names_the_flag_or_the_variable_used(folder):
    assert "fix the path given to --data" in one_line_error(run("--data", "missing.txt", cwd=folder))
    env = smoke_env(COURSE_DATA=str(folder / "missing.txt"))
    assert "fix the path given to COURSE_DATA" in one_line_error(run("--out", "x", cwd=folder, env=env))
    (folder / "empty.txt").write_text("")
    assert "point --data at a file with text" in one_line_error(run("--data", "empty.txt", cwd=folder))
    (folder / "short.txt").write_text("a short text, far too short for a block\n" * 3)
    assert "or a smaller --block-size" in one_line_error(run("--data", "short.txt", "--out", "short", cwd=folder))
    (folder / "other.txt").write_text("ABCDEFG HIJKLMNOP\n" * 200)
    assert "another vocabulary" in one_line_error(run("--data", "other.txt", "--out", "run", "--resume", "--max-iters", "60", cwd=folder))


def test_a_byte_order_mark_is_not_part_of_the_vocabulary(folder, tmp_path):
    (tmp_path / "bom.txt").write_bytes("\ufeff".encode() + (folder / "small.txt").read_bytes())
    result = run("--data", "bom.txt", "--max-iters", "2", "--out", "bom", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "\ufeff" not in torch.load(tmp_path / "bom" / "ckpt.pt", weights_only=True)["chars"]


def test_out_must_be_a_writable_folder(folder):
    (folder / "a_file").write_text("not a folder")
    assert "--out a_file is a file, not a folder" in one_line_error(run("--data", "small.txt", "--out", "a_file", cwd=folder))
    assert "cannot write to a_file/sub" in one_line_error(run("--data", "small.txt", "--out", "a_file/sub", cwd=folder))
    assert (folder / "a_file").read_text() == "not a folder"


def test_a_fresh_run_keeps_the_earlier_checkpoint_only_when_it_replaces_it(folder, tmp_path):
    (tmp_path / "small.txt").write_bytes((folder / "small.txt").read_bytes())
    assert run("--data", "small.txt", "--max-iters", "4", "--eval-interval", "2", "--out", "r", cwd=tmp_path).returncode == 0
    (tmp_path / "r" / "ckpt.pt.abc123.tmp").write_bytes(b"half a checkpoint")  # left by a killed save
    result = run("--data", "small.txt", "--max-iters", "2", "--out", "r", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "removed ckpt.pt.abc123.tmp" in result.stdout
    kept = [p for p in (tmp_path / "r").iterdir() if p.name.startswith("ckpt-")]
    assert len(kept) == 1 and torch.load(kept[0], weights_only=True)["step"] == 4
    assert torch.load(tmp_path / "r" / "ckpt.pt", weights_only=True)["step"] == 2
    assert not list((tmp_path / "r").glob("*.tmp")) and not (tmp_path / "r" / ".lock").exists()


def test_a_stale_lock_of_a_dead_run_is_taken_over(folder, tmp_path):
    (tmp_path / "small.txt").write_bytes((folder / "small.txt").read_bytes())
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / ".lock").write_text(f"{dead.pid} {socket.gethostname()}")
    result = run("--data", "small.txt", "--max-iters", "2", "--out", "r", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "r" / ".lock").exists()


def test_a_lock_held_by_a_live_run_is_refused(folder, tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / ".lock").write_text(f"1 {socket.gethostname()}")  # process 1 is always alive
    result = run("--data", str(folder / "small.txt"), "--out", "r", cwd=tmp_path)
    assert "another run (process 1 on" in one_line_error(result) and "writing to r" in result.stderr
    assert (tmp_path / "r" / ".lock").read_text().startswith("1 ")


def read_until(stream, sign, timeout=300):
    """The lines a process printed up to the first that contains sign (a reader thread: no fixed sleep)."""
    lines, found = [], threading.Event()

    def read():
        for line in stream:
            lines.append(line)
            if sign in line:
                found.set()
                return

    threading.Thread(target=read, daemon=True).start()
    assert found.wait(timeout), f"no line with {sign!r} within {timeout} s; printed: {''.join(lines)[-2000:]}"
    return lines


def test_two_runs_into_one_folder_then_ctrl_c(folder, tmp_path):
    """A second run is refused while the first trains; Ctrl-C then saves the first and says how to go on."""
    (tmp_path / "small.txt").write_bytes((folder / "small.txt").read_bytes())
    first = spawn_script(SCRIPT, "--data", "small.txt", "--max-iters", "1000000", "--eval-interval", "5",
                         "--out", "r", cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        read_until(first.stdout, "step 5: train loss")  # training has begun: step 5 is done and saved
        second = run("--data", "small.txt", "--max-iters", "5", "--out", "r", cwd=tmp_path)
        assert f"process {first.pid} on" in one_line_error(second)
        first.send_signal(signal.SIGINT)
        out, err = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 130, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    step = int(err.split("interrupted at step ")[1].split(",")[0])
    assert step >= 5 and err.strip().endswith("--data small.txt --out r --resume"), err
    assert torch.load(tmp_path / "r" / "ckpt.pt", weights_only=True)["step"] == step
    assert not (tmp_path / "r" / ".lock").exists()


CTRL_C_AFTER = """
import builtins, os, runpy, signal, sys, tqdm
signs, times, real_print, real_write = os.environ["CTRL_C_AFTER"].split("||"), int(os.environ["CTRL_C_TIMES"]), builtins.print, tqdm.tqdm.write
def ctrl_c_if_sign(text):
    if any(sign in text for sign in signs):
        for _ in range(times):  # as if the learner pressed Ctrl-C right after this line (each press handled in turn)
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(3):
                pass
def print_then_ctrl_c(*args, **kwargs):
    real_print(*args, **kwargs)
    ctrl_c_if_sign(" ".join(map(str, args)))
def write_then_ctrl_c(s, *args, **kwargs):
    real_write(s, *args, **kwargs)
    ctrl_c_if_sign(s)
builtins.print, tqdm.tqdm.write = print_then_ctrl_c, staticmethod(write_then_ctrl_c)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def ctrl_c_after(sign, *argv, cwd, times=1):
    """Run the script and press Ctrl-C (times times) the moment it has printed a line containing sign (no timing involved)."""
    return subprocess.run([sys.executable, "-c", CTRL_C_AFTER, str(SCRIPT), *argv], cwd=cwd,
                          env=smoke_env(CTRL_C_AFTER=sign, CTRL_C_TIMES=str(times)), capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("sign", ["vocab_size = ", "config: ", "parameters, vocab_size"])
def test_ctrl_c_in_the_start_up_checks_is_one_clean_line(folder, tmp_path, sign):
    (tmp_path / "small.txt").write_bytes((folder / "small.txt").read_bytes())
    result = ctrl_c_after(sign, "--data", "small.txt", "--max-iters", "20", "--out", "r", cwd=tmp_path)
    assert result.returncode == 130 and "Traceback" not in result.stderr, result.stderr
    line, = result.stderr.strip().splitlines()
    assert line.startswith("interrupted before training began, nothing was written; start again with: python ")
    assert line.endswith("--data small.txt --max-iters 20 --out r"), line
    assert not (tmp_path / "r" / "ckpt.pt").exists() and not (tmp_path / "r" / ".lock").exists()


def test_ctrl_c_before_a_resumed_run_trains_keeps_the_checkpoint(folder):
    before = digest(folder / "run" / "ckpt.pt")
    result = ctrl_c_after("starting at step", "--data", "small.txt", "--out", "run", "--resume", "--max-iters", "60", cwd=folder)
    assert result.returncode == 130 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().endswith("start again with: python " + str(SCRIPT) + " --data small.txt --out run --resume --max-iters 60")
    assert digest(folder / "run" / "ckpt.pt") == before and not (folder / "run" / ".lock").exists()


def test_ctrl_c_after_training_says_where_the_checkpoint_is(folder, tmp_path):
    (tmp_path / "small.txt").write_bytes((folder / "small.txt").read_bytes())
    result = ctrl_c_after("whole-split loss after", "--data", "small.txt", "--max-iters", "4", "--out", "r", cwd=tmp_path)
    assert result.returncode == 130 and "Traceback" not in result.stderr, result.stderr
    line, = result.stderr.strip().splitlines()
    assert line.startswith("interrupted after training; the checkpoint r/ckpt.pt holds step 4; sample from it with: python ")
    assert line.endswith("--sample --ckpt r/ckpt.pt") and torch.load(tmp_path / "r" / "ckpt.pt", weights_only=True)["step"] == 4


def test_ctrl_c_twice_in_training_stops_at_once_and_keeps_the_last_checkpoint(folder, tmp_path):
    (tmp_path / "small.txt").write_bytes((folder / "small.txt").read_bytes())
    result = ctrl_c_after("step 10: train loss", "--data", "small.txt", "--max-iters", "1000", "--eval-interval", "5",
                          "--out", "r", cwd=tmp_path, times=2)
    assert result.returncode == 130 and "Traceback" not in result.stderr, result.stderr
    line, = result.stderr.strip().splitlines()
    assert line.startswith("interrupted again, stopped at once; the checkpoint of step 5 is kept; continue with: python ")
    assert line.endswith("--data small.txt --out r --resume")
    assert torch.load(tmp_path / "r" / "ckpt.pt", weights_only=True)["step"] == 5 and not (tmp_path / "r" / ".lock").exists()


def test_ctrl_c_once_in_training_finishes_the_step_and_saves_it(folder, tmp_path):
    (tmp_path / "small.txt").write_bytes((folder / "small.txt").read_bytes())
    result = ctrl_c_after("step 10: train loss", "--data", "small.txt", "--max-iters", "1000", "--eval-interval", "5",
                          "--out", "r", cwd=tmp_path)
    assert result.returncode == 130 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip() == f"interrupted at step 10, saved in r/ckpt.pt; continue with: python {SCRIPT} --data small.txt --out r --resume"
    assert torch.load(tmp_path / "r" / "ckpt.pt", weights_only=True)["step"] == 10


def test_max_iters_45_ends_at_step_45(folder, tmp_path):
    (tmp_path / "small.txt").write_bytes((folder / "small.txt").read_bytes())
    result = run("--data", "small.txt", "--max-iters", "45", "--out", "r", cwd=tmp_path)  # smoke mode: eval_interval 20
    assert result.returncode == 0, result.stderr
    steps = [line.split(":")[0] for line in result.stdout.splitlines() if line.startswith("step ")]
    assert steps == ["step 20", "step 40", "step 45"]
    assert "45 steps in" in result.stdout and "whole-split loss after 45 steps" in result.stdout
    assert "from the model of step 45 ---" in result.stdout
    assert torch.load(tmp_path / "r" / "ckpt.pt", weights_only=True)["step"] == 45


def test_the_sample_after_training_has_a_heading(folder):
    out = RUNS['first'].stdout
    heading = next(line for line in out.splitlines() if line.startswith("--- a sample of"))
    assert heading == "--- a sample of 500 characters (temperature 1.0, top-k all) from the model of step 30 ---"
    assert out.index(heading) > out.index("whole-split loss after 30 steps")


def test_after_resume_the_history_holds_the_whole_run(folder):
    ckpt = torch.load(folder / "run" / "ckpt.pt", weights_only=True)
    assert [h[0] for h in ckpt["history"]] == [20, 30, 40, 50]  # smoke mode: eval_interval 20, first run to 30, resumed to 50
    first = torch.load(folder / "run" / "ckpt.pt", weights_only=True)["history"][:2]
    assert all(len(h) == 3 and all(isinstance(v, float) for v in h[1:]) for h in first)
    assert "figure saved: run/loss.png" in RUNS['resumed'].stdout


def test_ctrl_c_during_a_long_sample_keeps_what_was_printed(folder):
    proc = spawn_script(SCRIPT, "--sample", "--ckpt", "run/ckpt.pt", "--prompt", "the", "--num-chars", "10000000",
                        cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.read(50).startswith("the")  # characters stream out as they are made
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "Traceback" not in err
    assert err.strip().startswith("interrupted after ") and len(err.strip().splitlines()) == 1, err


def test_smoke_mode_without_out_leaves_nothing_behind(folder, tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    proc = spawn_script(SCRIPT, "--data", str(folder / "small.txt"), "--max-iters", "2", cwd=tmp_path,
                        env=smoke_env(TMPDIR=str(scratch)), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    left = [p.name for p in scratch.iterdir() if not p.name.startswith("torchinductor_")]  # torch's own cache may stay
    assert left == [] and not (tmp_path / "runs").exists()


def test_help_groups_every_flag():
    result = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    for group in ("data:", "model (", "training (", "sampling ("):
        assert group in result.stdout
    options = result.stdout.split("options:")[1]
    helps = {}  # flag -> its help text (which may wrap over several lines)
    for line in options.splitlines():
        if line.strip().startswith("--"):
            flag = line.split()[0].rstrip(",")
            helps[flag] = line
        elif line.startswith(" " * 8) and helps:
            helps[flag] += line
    for flag in ["--data", "--size", "--n-layer", "--n-head", "--n-embd", "--block-size", "--dropout", "--device",
                 "--max-iters", "--batch-size", "--learning-rate", "--eval-interval", "--eval-iters", "--seed", "--out",
                 "--resume", "--sample", "--ckpt", "--prompt", "--num-chars", "--temperature", "--top-k"]:
        assert "default" in helps[flag], (flag, helps.get(flag))
    assert "(default: 6 (lecture), 4 (small))" in " ".join(helps["--n-layer"].split())
    assert "0.0003 (lecture), 0.001 (small)" in " ".join(helps["--learning-rate"].split())

# Notebook 04c's pieces called directly (moved from test_04_gpt.py: the command line's code lives in 04c)
nb = load("04c_command_line")
TINY = dict(vocab_size=11, block_size=8, n_embd=16, n_head=2, n_layer=2, dropout=0.0)


def tiny_model(seed=0, **overrides):
    torch.manual_seed(seed)
    return nb["GPTLanguageModel"](nb["GPTConfig"](**{**TINY, **overrides}))


COPIES = ["GPTConfig", "Head", "MultiHeadAttention", "FeedForward", "Block", "GPTLanguageModel", "generate", "encoder_for",
          "get_batch", "estimate_loss", "split_loss", "train_step", "attention_maps", "SIZES", "save_checkpoint", "load_checkpoint"]


@pytest.mark.parametrize("name", COPIES)
def test_the_command_line_carries_notebook_04s_code(name):
    assert source_of("04c_command_line", name) == source_of("04_gpt", name), f"{name}: copy it again from notebook 04"


def test_sample_returns_the_prompt_and_n_characters_of_the_vocabulary():
    chars = "\n abcdefgh!"
    text = "".join(nb["stream"](tiny_model(), chars, "bad cafe", 50, temperature=1.2, top_k=4))
    assert text.startswith("bad cafe") and len(text) == len("bad cafe") + 50 and set(text) <= set(chars)


@pytest.mark.parametrize("prompt,expected", [("hello ⚡Z", "'Z⚡'"), ("", "the prompt is empty")])
def test_bad_prompts_are_one_line(prompt, expected):
    with pytest.raises(SystemExit) as e:
        "".join(nb["stream"](tiny_model(), "\n abcdefghlo", prompt, 5))
    assert expected in str(e.value.code) and "\n" not in str(e.value.code)


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


# Session 4's cold read (/tmp/brief/cold_04_05c_s4.md): E1, E4, E2, S4, I5, I3, A18, E3


@pytest.mark.parametrize("block_size", ["8", "1"])
def test_a_context_shorter_than_the_attention_prompt_still_draws_the_maps(folder, tmp_path, block_size):
    (tmp_path / "small.txt").write_bytes((folder / "small.txt").read_bytes())
    result = run("--data", "small.txt", "--block-size", block_size, "--max-iters", "2", "--out", "r", cwd=tmp_path)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert (tmp_path / "r" / "attention.png").exists()


def test_a_diverged_model_is_one_line_at_the_sample_and_keeps_its_checkpoint(folder, tmp_path):
    (tmp_path / "small.txt").write_bytes((folder / "small.txt").read_bytes())
    result = run("--data", "small.txt", "--learning-rate", "1e10", "--max-iters", "3", "--out", "r", cwd=tmp_path)
    assert "training diverged" in one_line_error(result) and "lower --learning-rate" in result.stderr
    assert torch.load(tmp_path / "r" / "ckpt.pt", weights_only=True)["step"] == 3


def test_a_temperature_too_small_to_divide_by_is_one_line(folder):
    result = run("--sample", "--ckpt", "run/ckpt.pt", "--temperature", "1e-40", cwd=folder)
    assert "--temperature 1e-40 is too small" in one_line_error(result)


def test_ctrl_c_while_torch_is_still_loading_is_one_clean_line(tmp_path):
    proc = spawn_script(SCRIPT, "--max-iters", "5", "--out", "r", cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        maps = pathlib.Path(f"/proc/{proc.pid}/maps")
        while proc.poll() is None and "libtorch" not in maps.read_text():  # the sign: torch's library is being loaded
            pass
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "Traceback" not in err, err
    line, = err.strip().splitlines()
    assert line.startswith("interrupted while starting, nothing was written"), line
    assert not (tmp_path / "r").exists()


def test_ctrl_c_again_while_the_interrupted_run_exits_says_nothing_false(folder, tmp_path):
    (tmp_path / "small.txt").write_bytes((folder / "small.txt").read_bytes())
    result = ctrl_c_after("step 20: train loss||interrupted at step", "--data", "small.txt", "--max-iters", "1000",
                          "--eval-interval", "20", "--out", "r", cwd=tmp_path)
    assert result.returncode == 130 and "Traceback" not in result.stderr and "Exception" not in result.stderr, result.stderr
    line, = result.stderr.strip().splitlines()
    assert line.startswith("interrupted at step 20, saved in r/ckpt.pt; continue with: ")
    assert torch.load(tmp_path / "r" / "ckpt.pt", weights_only=True)["step"] == 20


def test_a_file_that_is_no_checkpoint_is_named_so(folder, tmp_path):
    (tmp_path / "garbage.pt").write_text("hello, not a checkpoint\n")
    result = run("--sample", "--ckpt", "garbage.pt", cwd=tmp_path)
    assert "garbage.pt is not a checkpoint (torch.save did not write it)" in one_line_error(result)


def test_a_quoted_tilde_in_out_means_the_home_folder(folder, tmp_path):
    (tmp_path / "small.txt").write_bytes((folder / "small.txt").read_bytes())
    (tmp_path / "home").mkdir()
    result = run("--data", "small.txt", "--max-iters", "2", "--out", "~/r", cwd=tmp_path, env=smoke_env(HOME=str(tmp_path / "home")))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "home" / "r" / "ckpt.pt").exists() and not (tmp_path / "~").exists()
