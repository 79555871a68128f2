"""Notebook 05 as a command line: the benchmark runs, every bad flag is one line, a value the user gave
is never replaced by a default, and the race's flags, whose notebook is 05c now, are answered in one
line that gives 05c's command (the race's own command-line tests are in tests/test_05c_cli.py)."""
import pytest
import torch

from notebook_code import NOTEBOOKS, load
from script_runner import one_line_error, run_script, smoke_env

SCRIPT = NOTEBOOKS / "05_fast_gpt.py"
nb = load("05_fast_gpt")


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


def test_bench_prints_every_variant_and_stops():
    result = run("--bench")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for variant in ("lecture (04)", "+ batched heads", "+ scaled_dot_product_attention", "+ batches on the device",
                    "+ fused AdamW", "+ torch.compile"):
        assert any(l.startswith(variant) and "tokens/s" in l and "ms/step (" in l for l in lines), variant
    assert "vs lecture:" in lines[-1] and "race:" not in result.stdout  # it stopped after the benchmark


def test_bench_with_compile_no_does_not_compile_and_keeps_the_sizes_the_user_gave():
    result = run("--bench", "--compile", "no", "--n-layer", "1", "--n-embd", "16")
    assert result.returncode == 0, result.stderr
    assert "+ fused AdamW" in result.stdout and "+ torch.compile" not in result.stdout and "to compile" not in result.stdout
    assert "'n_embd': 16" in result.stdout and "'n_layer': 1" in result.stdout


RACE = "now lives in notebook 05c"
BAD_FLAGS = [
    (["--bench", "--race"], "the race now lives in notebook 05c, and --race with it: "
                            "python notebooks/05c_against_the_clock.py --race (its --help lists every flag)"),
    (["--bench", "--max-iters", "5"], "and --max-iters with it: python notebooks/05c_against_the_clock.py --max-iters 5 ("),
    (["--block-size", "0"], "--block-size must be at least 1"),
    (["--dropout", "1.5"], "--dropout must be at least 0 and below 1"),
    (["--n-embd", "30", "--n-head", "4"], "--n-embd 30 must be divisible by --n-head 4"),
    (["--compile", "maybe"], "argument --compile: invalid choice: 'maybe'"),
    (["--steps", "5"], "unrecognized arguments: --steps 5"),
]
BAD_SETTINGS = [  # refused by the cells that size the model, so only the script shows them
    (["--n-head", "3"], "n_embd 32 must be divisible by n_head 3"),
    (["--block-size", "200000"], "fewer than block_size + 1"),
]


@pytest.mark.parametrize("argv,expected", BAD_FLAGS, ids=[" ".join(a) for a, _ in BAD_FLAGS])
def test_bad_flags_are_one_line(argv, expected, capsys):
    assert expected in refused(argv, capsys)


@pytest.mark.parametrize("argv,expected", BAD_SETTINGS + BAD_FLAGS[1:4:2], ids=[" ".join(a) for a, _ in BAD_SETTINGS + BAD_FLAGS[1:4:2]])
def test_bad_flags_are_one_line_from_the_script(argv, expected):
    assert expected in one_line_error(run(*argv))


MOVED = [["--race"], ["--race", "--max-iters", "45", "--compile", "no"], ["--max-iters", "0"], ["--max-iters=3"],
         ["--batch-size", "4"], ["--learning-rate", "nan"], ["--warmup", "10", "--max-iters", "5"], ["--seed", "-3"],
         ["--max", "5"]]  # argparse's abbreviation of --max-iters


@pytest.mark.parametrize("argv", MOVED, ids=[" ".join(a) for a in MOVED])
def test_the_race_and_each_of_its_flags_name_notebook_05cs_command(argv, capsys):
    line = refused(argv, capsys)
    assert RACE in line and "python notebooks/05c_against_the_clock.py " + " ".join(argv) + " (" in line, line


def test_the_race_as_a_command_is_one_line_and_runs_nothing():
    result = run("--race", "--max-iters", "45")
    assert result.returncode == 2 and result.stdout == ""  # nothing ran, not even the data cell
    assert "python notebooks/05c_against_the_clock.py --race --max-iters 45 (" in one_line_error(result)


def test_help_lists_the_race_flags_as_moved():
    result = run("--help")
    assert result.returncode == 0 and "05c" in result.stdout and "--max-iters" in result.stdout


def test_a_missing_device_is_one_line():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(SystemExit) as stopped:  # the device cell's pick_device, in this process (05c's test runs the script)
        nb["pick_device"](nb["parse_args"](["--bench", "--device", "cuda"]).device)
    assert str(stopped.value.code).startswith("error: --device cuda: PyTorch finds no") and "\n" not in str(stopped.value.code)


def test_a_text_too_short_for_the_model_is_one_line(tmp_path):
    (tmp_path / "short.txt").write_text("a" * 100)
    result = run("--bench", cwd=tmp_path, env=smoke_env(COURSE_DATA=str(tmp_path / "short.txt")))
    assert "the validation split has 10 characters" in one_line_error(result)


def test_torchrun_on_notebook_05_points_to_notebook_08(monkeypatch, capsys):
    # torchrun sets WORLD_SIZE in each copy; two copies timing at once would each slow the other
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert "notebooks/08_ddp.py --race" in refused(["--bench"], capsys)
