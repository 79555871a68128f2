"""Notebook 05c as a command line (moved here from tests/test_05_cli.py with the race): the race runs
with notebook 05's old command, every bad flag is one line, and a value the user gave is never replaced
by a default."""
import pytest
import torch

from notebook_code import NOTEBOOKS, load
from script_runner import one_line_error, run_script, smoke_env

SCRIPT = NOTEBOOKS / "05c_against_the_clock.py"
nb = load("05c_against_the_clock")


def run(*argv, cwd=NOTEBOOKS, **kw):
    return run_script(SCRIPT, *argv, cwd=cwd, **kw)


def refused(argv, capsys):
    """The one line that the script's own parse_args and check_args stop argv with, run in this process
    (the script runs them first, before any cell computes; the subprocess tests below show it)."""
    with pytest.raises(SystemExit) as stopped:
        nb["check_args"](nb["parse_args"](argv))
    said = capsys.readouterr().err.strip() or str(stopped.value.code)
    assert stopped.value.code not in (0, None) and len(said.splitlines()) == 1 and said.startswith("error: "), said
    return said


def test_notebook_05s_race_command_runs_here_and_reports_the_steps_asked_for_not_a_rounded_step():
    line = one_line_error(run_script(NOTEBOOKS / "05_fast_gpt.py", "--race", "--max-iters", "45", "--compile", "no", cwd=NOTEBOOKS))
    argv = line.split("python notebooks/05c_against_the_clock.py ")[1].split(" (")[0].split()
    assert argv == ["--race", "--max-iters", "45", "--compile", "no"]
    result = run(*argv)
    assert result.returncode == 0, result.stderr
    assert "45 steps in" in result.stdout and "44 steps in" not in result.stdout


def test_the_race_keeps_the_values_the_user_gave_with_or_without_race():
    result = run("--max-iters", "3", "--warmup", "0", "--batch-size", "4", "--compile", "no")  # no --race: the same race
    assert result.returncode == 0, result.stderr
    assert "batch 4, 3 steps" in result.stdout and "warmup 0" in result.stdout and "3 steps in" in result.stdout
    assert "+ batched heads" not in result.stdout  # the race alone: no benchmark
    assert nb["parse_args"](["--race"]).race and vars(nb["parse_args"](["--race"])) == {**vars(nb["parse_args"]([])), "race": True}


BAD_FLAGS = [  # refused by parse_args and check_args, before any cell computes
    (["--max-iters", "0"], "--max-iters must be at least 1 (got 0)"),
    (["--max-iters", "-2"], "--max-iters must be at least 1"),
    (["--learning-rate", "nan"], "--learning-rate must be a positive finite number"),
    (["--learning-rate", "0"], "--learning-rate must be a positive finite number"),
    (["--warmup", "-1"], "--warmup must be at least 0"),
    (["--warmup", "10", "--max-iters", "5"], "--warmup 10 is longer than the race's --max-iters 5; give --warmup at most 5"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--block-size", "0"], "--block-size must be at least 1"),
    (["--dropout", "1.5"], "--dropout must be at least 0 and below 1"),
    (["--seed", "-3"], "--seed must be between 0 and 2**64 - 1"),
    (["--n-embd", "30", "--n-head", "4"], "--n-embd 30 must be divisible by --n-head 4"),
    (["--compile", "maybe"], "argument --compile: invalid choice: 'maybe'"),
    (["--steps", "5"], "unrecognized arguments: --steps 5"),
]


BAD_SETTINGS = [  # refused by the cell that sizes the race, so only the script shows them
    (["--race", "--warmup", "100"], "--warmup 100 is longer than the race's 30 steps"),  # smoke mode's race: 30 steps
    (["--n-head", "3"], "n_embd 32 must be divisible by n_head 3"),
    (["--block-size", "200000"], "fewer than block_size + 1"),
]


@pytest.mark.parametrize("argv,expected", BAD_FLAGS, ids=[" ".join(a) for a, _ in BAD_FLAGS])
def test_bad_flags_are_one_line(argv, expected, capsys):
    assert expected in refused(argv, capsys)


@pytest.mark.parametrize("argv,expected", BAD_SETTINGS + BAD_FLAGS[:1] + BAD_FLAGS[-2:],
                         ids=[" ".join(a) for a, _ in BAD_SETTINGS + BAD_FLAGS[:1] + BAD_FLAGS[-2:]])
def test_bad_flags_are_one_line_from_the_script(argv, expected):
    assert expected in one_line_error(run(*argv))


def test_a_missing_device_is_one_line():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert "--device cuda: PyTorch finds no" in one_line_error(run("--race", "--device", "cuda"))


def test_compile_yes_without_a_compiler_is_one_line():
    result = run("--race", "--compile", "yes", env=smoke_env(PATH="/nonexistent", CXX="no-such-compiler"))
    assert "--compile yes: no C++ compiler found" in one_line_error(result)


def test_a_text_too_short_for_the_model_is_one_line(tmp_path):
    (tmp_path / "short.txt").write_text("a" * 100)
    result = run("--race", cwd=tmp_path, env=smoke_env(COURSE_DATA=str(tmp_path / "short.txt")))
    assert "the validation split has 10 characters" in one_line_error(result)


def test_torchrun_on_notebook_05c_points_to_notebook_08():
    # torchrun sets WORLD_SIZE in each copy; two copies racing on their own would each print and save alone
    line = one_line_error(run("--race", env=smoke_env(WORLD_SIZE="2", RANK="1")))
    assert "notebooks/08_ddp.py --race" in line


def test_a_diverged_race_is_one_line_at_the_sample():  # session 4's cold read, C6
    result = run("--learning-rate", "1e10", "--max-iters", "5", "--warmup", "1", "--compile", "no")
    assert "the model diverged" in one_line_error(result) and "lower --learning-rate" in result.stderr


def test_data_trains_on_the_file_given_as_notebook_04s_flag_does(tmp_path):  # session 4's cold read, C8
    words = "the cat sat on the mat and the dog ran to the log\n".split(" ")
    torch.manual_seed(0)
    (tmp_path / "mine.txt").write_text(" ".join(words[i] for i in torch.randint(0, len(words), (3000,)).tolist()))
    result = run("--data", "mine.txt", "--max-iters", "3", "--warmup", "0", "--compile", "no", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    vocab = len(set((tmp_path / "mine.txt").read_text()))
    assert f"vocab_size = {vocab}," in result.stdout and "3 steps in" in result.stdout


@pytest.mark.parametrize("make,expected", [
    (lambda d: None, "no text file at missing.txt; fix the path given to --data"),
    (lambda d: (d / "missing.txt").write_bytes(b"\xff\xfe\x00bad"), "is not UTF-8 text"),
    (lambda d: (d / "missing.txt").write_text("  \n"), "has no text in it; point --data at a file with text"),
    (lambda d: (d / "missing.txt").write_text("a" * 100), "the validation split has 10 characters"),
], ids=["missing", "not UTF-8", "empty", "too short"])
def test_a_bad_data_file_is_one_line(tmp_path, make, expected):
    make(tmp_path)
    assert expected in one_line_error(run("--data", "missing.txt", "--race", cwd=tmp_path))
