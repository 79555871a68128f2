"""Notebook 05 as a command line: the benchmark and the race run, every bad flag is one line, and a
value the user gave is never replaced by a default."""
import pytest
import torch

from notebook_code import NOTEBOOKS
from script_runner import one_line_error, run_script, smoke_env

SCRIPT = NOTEBOOKS / "05_fast_gpt.py"


def run(*argv, cwd=NOTEBOOKS, **kw):
    return run_script(SCRIPT, *argv, cwd=cwd, **kw)


def test_bench_prints_every_variant_and_stops():
    result = run("--bench")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for variant in ("lecture (04)", "+ batched heads", "+ scaled_dot_product_attention", "+ batches on the device",
                    "+ fused AdamW", "+ torch.compile"):
        assert any(l.startswith(variant) and "tokens/s" in l and "ms/step (" in l for l in lines), variant
    assert "vs lecture:" in lines[-1] and "race:" not in result.stdout  # it stopped after the benchmark


def test_bench_with_compile_no_does_not_compile():
    result = run("--bench", "--compile", "no")
    assert result.returncode == 0, result.stderr
    assert "+ fused AdamW" in result.stdout and "+ torch.compile" not in result.stdout and "to compile" not in result.stdout


def test_the_race_reports_the_steps_asked_for_not_a_rounded_step():
    result = run("--race", "--max-iters", "45", "--compile", "no")
    assert result.returncode == 0, result.stderr
    assert "45 steps in" in result.stdout and "44 steps in" not in result.stdout


def test_the_race_keeps_the_values_the_user_gave():
    result = run("--race", "--max-iters", "3", "--warmup", "0", "--batch-size", "4", "--compile", "no")
    assert result.returncode == 0, result.stderr
    assert "batch 4, 3 steps" in result.stdout and "warmup 0" in result.stdout and "3 steps in" in result.stdout
    assert "+ batched heads" not in result.stdout  # --race skips the benchmark


BAD_FLAGS = [
    (["--bench", "--race"], "--bench and --race do not go together"),
    (["--bench", "--max-iters", "5"], "--max-iters sets the race, which --bench does not run"),
    (["--max-iters", "0"], "--max-iters must be at least 1 (got 0)"),
    (["--max-iters", "-2"], "--max-iters must be at least 1"),
    (["--learning-rate", "nan"], "--learning-rate must be a positive finite number"),
    (["--learning-rate", "0"], "--learning-rate must be a positive finite number"),
    (["--warmup", "-1"], "--warmup must be at least 0"),
    (["--warmup", "10", "--max-iters", "5"], "--warmup 10 is longer than the race's --max-iters 5; give --warmup at most 5"),
    (["--race", "--warmup", "100"], "--warmup 100 is longer than the race's 30 steps"),  # smoke mode's race: 30 steps
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--block-size", "0"], "--block-size must be at least 1"),
    (["--dropout", "1.5"], "--dropout must be at least 0 and below 1"),
    (["--seed", "-3"], "--seed must be between 0 and 2**64 - 1"),
    (["--n-embd", "30", "--n-head", "4"], "--n-embd 30 must be divisible by --n-head 4"),
    (["--n-head", "3"], "n_embd 32 must be divisible by n_head 3"),
    (["--block-size", "200000"], "fewer than block_size + 1"),
    (["--compile", "maybe"], "argument --compile: invalid choice: 'maybe'"),
    (["--steps", "5"], "unrecognized arguments: --steps 5"),
]


@pytest.mark.parametrize("argv,expected", BAD_FLAGS, ids=[" ".join(a) for a, _ in BAD_FLAGS])
def test_bad_flags_are_one_line(argv, expected):
    assert expected in one_line_error(run(*argv))


def test_a_missing_device_is_one_line():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert "--device cuda: PyTorch finds no" in one_line_error(run("--race", "--device", "cuda"))


def test_a_text_too_short_for_the_model_is_one_line(tmp_path):
    (tmp_path / "short.txt").write_text("a" * 100)
    result = run("--race", cwd=tmp_path, env=smoke_env(COURSE_DATA=str(tmp_path / "short.txt")))
    assert "the validation split has 10 characters" in one_line_error(result)


def test_torchrun_on_notebook_05_points_to_notebook_08():
    # torchrun sets WORLD_SIZE in each copy; two copies racing on their own would each print and save alone
    line = one_line_error(run("--race", env=smoke_env(WORLD_SIZE="2", RANK="1")))
    assert "notebooks/08_ddp.py --race" in line
