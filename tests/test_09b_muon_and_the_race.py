"""Notebook 09b: Muon, the schedule and the training step, checked on the notebook's own code; it carries
notebook 09's model unchanged; the optimizers hold every parameter once; the race prints notebook 05c's
line; every bad flag is one line, and a value the user gave is never replaced by a default."""
import re

import pytest
import torch

from notebook_code import NOTEBOOKS, load, source_of
from script_runner import one_line_error, run_script, smoke_env

NB = "09b_muon_and_the_race"
SCRIPT = NOTEBOOKS / f"{NB}.py"
MODEL = ["rms_norm", "RMSNorm", "rotary", "ModernAttention", "ModernConfig", "LEVERS_ON", "relu_squared", "ACTIVATIONS",
         "ModernMLP", "make_norm", "ModernBlock", "ModernGPT", "modern_forward"]


@pytest.fixture(scope="module")
def ns():
    return load(NB, device="cpu")


def run(*argv, cwd=NOTEBOOKS, **kw):
    return run_script(SCRIPT, *argv, cwd=cwd, **kw)


def test_the_checks_pass_on_the_notebooks_own_code(ns):
    assert "passed" in ns["check_newton_schulz"](ns["newton_schulz"])
    assert "passed" in ns["check_muon"](ns["MuonByHand"])
    assert "passed" in ns["check_wsd"](ns["wsd"])
    assert "passed" in ns["check_modern_step"](ns["modern_optimizers"], ns["modern_step"])


@pytest.mark.parametrize("name", MODEL)
def test_it_carries_notebook_09s_model_unchanged(name):
    assert source_of(NB, name) == source_of("09_modern_gpt", name)


def test_the_optimizers_hold_every_parameter_once_and_muon_the_hidden_matrices(ns):
    model = ns["ModernGPT"](ns["ModernConfig"](**ns["LEVERS_ON"]))
    adamw, muon = ns["modern_optimizers"](model, lr=1e-3, embed_lr=1e-2, head_lr=2e-3, muon_lr=0.02)
    held = [id(p) for o in (adamw, muon) for g in o.param_groups for p in g["params"]]
    assert sorted(held) == sorted(id(p) for p in model.parameters())
    hidden = {id(p) for n, p in model.named_parameters() if n.startswith("blocks.") and p.dim() == 2}
    assert {id(p) for p in muon.param_groups[0]["params"]} == hidden
    rates = {id(p): g["lr"] for g in adamw.param_groups for p in g["params"]}
    assert rates[id(model.token_embedding_table.weight)] == 1e-2 and rates[id(model.lm_head.weight)] == 2e-3
    assert len(ns["modern_optimizers"](model, lr=1e-3)) == 1  # without muon_lr: AdamW for all


def test_the_schedules_end_where_they_should(ns):
    assert ns["wsd"](0.5, 0.02, 0.4) == 1.0 and ns["wsd"](0.999, 0.02, 0.4) < 0.01
    assert abs(ns["cosine"](1.0) - 0.1) < 1e-9 and ns["cosine"](0.04) == pytest.approx(1.0)


RACE_LINE = re.compile(r"^(\d+) steps in \d+\.\d s; whole-split val loss \d+\.\d{4}; \d+\.\d s with the evaluation \(device cpu\)$", re.M)


def test_the_race_prints_notebook_05s_line_and_keeps_the_values_given():
    result = run("--race", "--max-iters", "12", "--batch-size", "4", "--warmup", "0", "--cooldown", "3", "--muon-lr", "0.01")
    assert result.returncode == 0, result.stderr
    assert RACE_LINE.search(result.stdout).group(1) == "12", result.stdout
    assert "batch 4, 12 steps" in result.stdout and "warmup 0, cooldown 3" in result.stdout and "'muon_lr': 0.01" in result.stdout
    assert "rungs" not in result.stdout  # --race skips the ladder


def test_the_levers_are_flags():
    result = run("--race", "--max-iters", "5", "--positions", "learned", "--optimizer", "adamw", "--schedule", "cosine",
                 "--norm", "layer", "--mlp", "gelu", "--qk-norm", "no", "--zero-init", "no")
    assert result.returncode == 0, result.stderr
    for said in ("'norm': 'layer'", "'rope': False", "'qk_norm': False", "'mlp': 'gelu'", "'bias': True", "'zero_init': False",
                 "'muon_lr': None", "cosine"):
        assert said in result.stdout, said
    assert RACE_LINE.search(result.stdout).group(1) == "5"


BAD_FLAGS = [
    (["--max-iters", "0"], "--max-iters must be at least 1 (got 0)"),
    (["--learning-rate", "nan"], "--learning-rate must be a positive finite number"),
    (["--muon-lr", "-1"], "--muon-lr must be a positive finite number"),
    (["--embed-lr", "inf"], "--embed-lr must be a positive finite number"),
    (["--head-lr", "0"], "--head-lr must be a positive finite number"),
    (["--warmup", "-1"], "--warmup must be at least 0"),
    (["--cooldown", "-5"], "--cooldown must be at least 1 (wsd divides"),
    (["--race", "--cooldown", "0"], "--cooldown must be at least 1 (wsd divides"),
    (["--race", "--max-iters", "1", "--warmup", "0"], "the race's cooldown rounds to 0 steps of its 1"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--dropout", "1"], "--dropout must be at least 0 and below 1"),
    (["--seed", "-3"], "--seed must be between 0 and 2**64 - 1"),
    (["--optimizer", "adamw", "--muon-lr", "0.02"], "--muon-lr sets Muon, which --optimizer adamw does not use"),
    (["--schedule", "cosine", "--cooldown", "10"], "--cooldown is the decay of --schedule wsd"),
    (["--max-iters", "10", "--warmup", "5", "--cooldown", "6"], "--warmup 5 plus --cooldown 6 is longer than --max-iters 10"),
    (["--race", "--cooldown", "40"], "warmup 1 plus cooldown 40 steps are longer than the race's 30 steps"),  # smoke: 30 steps
    (["--n-embd", "30", "--n-head", "4"], "--n-embd 30 must be divisible by --n-head 4"),
    (["--race", "--n-head", "3"], "n_embd 32 must be divisible by n_head 3"),
    (["--race", "--n-embd", "36", "--n-head", "4"], "the head size n_embd / n_head = 9 must be even"),
    (["--race", "--block-size", "200000"], "fewer than block_size + 1"),
    (["--positions", "sinusoidal"], "argument --positions: invalid choice: 'sinusoidal'"),
    (["--steps", "5"], "unrecognized arguments: --steps 5"),
]


@pytest.mark.parametrize("argv,expected", BAD_FLAGS, ids=[" ".join(a) for a, _ in BAD_FLAGS])
def test_bad_flags_are_one_line(argv, expected):
    assert expected in one_line_error(run(*argv))


def test_a_missing_device_is_one_line():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert "--device cuda: PyTorch finds no" in one_line_error(run("--race", "--device", "cuda"))


def test_torchrun_is_refused_in_one_line():
    assert "notebook 09b trains on one process" in one_line_error(run("--race", env=smoke_env(WORLD_SIZE="2", RANK="1")))
