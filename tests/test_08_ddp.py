"""Notebook 08's own code: two processes under torchrun (Gloo, CPU) train exactly the weights of one process
on their batches combined; the notebook's gradient check names a sum or a double division; plain python
trains with one process; bad flags are one line."""
import subprocess
import sys

import pytest
import torch

from notebook_code import NOTEBOOKS, load, source_of
from script_runner import one_line_error, run_script, smoke_env

SCRIPT = NOTEBOOKS / "08_ddp.py"
COPIED = ["GPTConfig", "FeedForward", "GPTLanguageModel", "CausalSelfAttention",  # Block holds 05's attention from the start
          "FastBlock", "FastGPT", "amp_dtype_for", "sync", "split_loss", "lr_at", "configure_optimizer", "RACES"]
nb = load("08_ddp", device="cpu")


@pytest.fixture(scope="module")
def race(shakespeare):
    """The notebook's definitions with tiny Shakespeare as its data, as the script sees it."""
    chars = sorted(set(shakespeare))
    stoi = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([stoi[c] for c in shakespeare])
    n = int(0.9 * len(data))
    nb.update(chars=chars, train_data=data[:n], val_data=data[n:])
    return nb


def settings(steps):
    """train_ddp's keyword arguments for `--race --device cpu --max-iters steps` in smoke mode."""
    return nb["race_settings"](nb["parse_args"](["--race", "--device", "cpu", "--max-iters", str(steps)]), "cpu")[0]


def gap(a, b):
    return max((a[k] - b[k]).abs().max().item() for k in b)


RACE_PIECES = {"split_loss", "lr_at", "configure_optimizer", "RACES"}  # the race's pieces live in 05c


def test_the_copies_are_notebook_05s():
    for name in COPIED:
        home = "05c_against_the_clock" if name in RACE_PIECES else "05_fast_gpt"
        assert source_of("08_ddp", name) == source_of(home, name), name


def test_the_fast_model_is_notebook_05s():
    # 08's Block holds CausalSelfAttention from the start (no lecture Heads built to be replaced): the same
    # parameters, and the same logits and loss from 05's weights
    fast = load("05_fast_gpt", device="cpu")
    c = dict(vocab_size=11, block_size=8, n_embd=16, n_head=2, n_layer=2, dropout=0.0)
    theirs, ours = fast["FastGPT"](fast["GPTConfig"](**c)).eval(), nb["FastGPT"](nb["GPTConfig"](**c)).eval()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    ours.load_state_dict(theirs.state_dict())
    idx = torch.randint(0, 11, (3, 8), generator=torch.Generator().manual_seed(0))
    (a, loss_a), (b, loss_b) = theirs(idx, idx), ours(idx, idx)
    assert torch.allclose(a, b, atol=1e-6) and torch.allclose(loss_a, loss_b, atol=1e-6)


def test_two_gloo_processes_train_the_weights_of_one_process_on_both_batches(race, tmp_path):
    steps = 3
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(SCRIPT), "--race", "--device", "cpu", "--max-iters", str(steps), "--out", str(tmp_path)],
                          cwd=NOTEBOOKS, env=smoke_env(OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("race:") == 1 and "2 process(es) x batch 8 = 16 sequences per step" in done.stdout  # rank 0 only
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert ckpt["world_size"] == 2 and ckpt["batch_size"] == 8 and ckpt["log"][-1][0] == steps
    combined, log = race["train_ddp"](**settings(steps), ranks=[0, 1])  # one process, rank 0's and rank 1's batches
    alone, _ = race["train_ddp"](**settings(steps), ranks=[0])  # one process, rank 0's batches only
    assert gap(ckpt["model"], combined.state_dict()) < 1e-6
    assert gap(ckpt["model"], alone.state_dict()) > 1e-4  # the comparison can tell the two apart
    assert abs(ckpt["log"][0][3] / log[0][3] - 1) < 1e-4  # step 1: the same gradient, averaged by DDP
    race["check_same_training"](ckpt["model"], combined.state_dict(), alone.state_dict(), 2, (ckpt["log"][0][3], log[0][3]))


def test_the_training_check_names_processes_that_shared_nothing(race):
    combined, log = race["train_ddp"](**settings(2), ranks=[0, 1])
    alone, alone_log = race["train_ddp"](**settings(2), ranks=[0])
    norms = (log[0][3], log[0][3])
    with pytest.raises(race["CheckFailed"], match="did not average their gradients"):
        race["check_same_training"](alone.state_dict(), combined.state_dict(), alone.state_dict(), 2, (alone_log[0][3], log[0][3]))
    other = {k: v + 1e-5 for k, v in combined.state_dict().items()}
    with pytest.raises(race["CheckFailed"], match="not those of one process on the combined batches"):
        race["check_same_training"](other, combined.state_dict(), alone.state_dict(), 2, norms)
    assert "passed" in race["check_same_training"](combined.state_dict(), combined.state_dict(), alone.state_dict(), 2, norms)


def test_plain_python_trains_one_process_on_its_own_batches(race, tmp_path):
    result = run_script(SCRIPT, "--race", "--device", "cpu", "--max-iters", "3", "--out", tmp_path, cwd=NOTEBOOKS)
    assert result.returncode == 0, result.stderr
    assert "1 process(es) x batch 8 = 8 sequences per step" in result.stdout
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    model, _ = race["train_ddp"](**settings(3))
    assert ckpt["world_size"] == 1 and gap(ckpt["model"], model.state_dict()) < 1e-6


def test_each_rank_draws_its_own_reproducible_batches():
    data = torch.arange(500)
    draw = lambda seed: nb["get_batch_of_rank"](data, 6, 8, torch.Generator().manual_seed(seed))
    assert torch.equal(draw(1337)[0], draw(1337)[0]) and not torch.equal(draw(1337)[0], draw(1338)[0])
    x, y = draw(5)
    assert x.shape == y.shape == (6, 8) and torch.equal(y, x + 1)


def test_the_gradient_check_passes_the_average_and_names_each_mistake():
    assert "passed" in nb["check_data_parallel"](nb["average_gradients"])
    assert "passed" in nb["check_data_parallel"](nb["average_gradients"], world_size=3)

    def summed(replicas):  # the mistake: an all-reduce with SUM and no division by the world size
        for params in zip(*(r.parameters() for r in replicas)):
            total = sum(p.grad for p in params)
            for p in params:
                p.grad = total.clone()

    def divided_twice(replicas):
        nb["average_gradients"](replicas)
        for r in replicas:
            for p in r.parameters():
                p.grad /= len(replicas)

    failures = {summed: "summed over the replicas, not averaged", divided_twice: "divided by the world size twice",
                lambda replicas: None: "drift apart"}
    for mistake, sentence in failures.items():
        with pytest.raises(nb["CheckFailed"], match=sentence):
            nb["check_data_parallel"](mistake)


@pytest.mark.parametrize("argv,env,says", [
    (["--race", "--max-iters", "0"], {}, "--max-iters must be at least 1"),
    (["--race", "--batch-size", "x"], {}, "invalid int value"),
    (["--max-iters", "5"], {}, "add --race"),
    (["--device", "cpu"], {}, "add --race"),
    (["--race", "--n-embd", "30", "--n-head", "4"], {}, "divisible"),
    ([], {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0"}, "under torchrun this script only trains"),
])
def test_a_bad_command_line_is_one_line(tmp_path, argv, env, says):
    assert says in one_line_error(run_script(SCRIPT, *argv, cwd=tmp_path, env=smoke_env(**env)))


def test_out_must_be_a_folder(tmp_path):
    (tmp_path / "file").write_text("x")
    assert "is a file" in one_line_error(run_script(SCRIPT, "--race", "--out", "file", cwd=tmp_path))


TORCHRUN_ERRORS = [
    (["--race", "--max-iters", "0"], "error: --max-iters must be at least 1 (got 0)"),
    (["--race", "--batch-size", "x"], "error: argument --batch-size: invalid int value: 'x'; see --help"),
    (["--race", "--block-size", "200000"], "error: the validation split has 111540 characters, fewer than block_size + 1"),
    (["--max-iters", "5"], "error: under torchrun this script only trains: add --race"),
] + ([] if torch.cuda.is_available() else [(["--race", "--device", "cuda"], "error: --device cuda: PyTorch finds no CUDA device")])


@pytest.mark.parametrize("argv,line", TORCHRUN_ERRORS)
def test_under_torchrun_a_bad_flag_is_one_line_from_rank_0_before_any_teaching_cell(argv, line):
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(SCRIPT), *argv], cwd=NOTEBOOKS, env=smoke_env(OMP_NUM_THREADS="1"),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    errors = [l for l in done.stderr.splitlines() if l.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(line), done.stderr[-3000:]  # once, from rank 0
    assert "rank 0 starts with" not in done.stdout  # stopped before the first teaching cell (section 1)


def test_the_notebook_finds_its_own_script_wherever_it_runs(tmp_path, monkeypatch):
    ns = load("08_ddp", device="cpu")
    monkeypatch.chdir(tmp_path)  # another working folder
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    assert ns["own_script"]() == SCRIPT  # the file running
    del ns["__file__"]  # a notebook in Jupyter has no __file__
    assert ns["own_script"]() is None
    (tmp_path / "08_ddp.ipynb").write_bytes((NOTEBOOKS / "08_ddp.ipynb").read_bytes())  # the notebook downloaded alone
    written = ns["own_script"]()
    code = written.read_text(encoding="utf-8")
    assert written.is_file() and "def train_ddp(" in code and "def own_script(" in code
    compile(code, str(written), "exec")
    result = run_script(written, "--race", "--device", "cpu", "--max-iters", "2", cwd=NOTEBOOKS)
    assert result.returncode == 0 and "2 steps in" in result.stdout, result.stderr[-2000:]
    (tmp_path / "08_ddp.py").write_text(SCRIPT.read_text(encoding="utf-8"), encoding="utf-8")  # the script beside it
    assert ns["own_script"]().resolve() == (tmp_path / "08_ddp.py").resolve()
    elsewhere = tmp_path / "course" / "08_ddp.ipynb"
    elsewhere.parent.mkdir()
    (elsewhere.parent / "08_ddp.py").write_text("# the one beside the notebook Jupyter opened\n")
    monkeypatch.setenv("JPY_SESSION_NAME", str(elsewhere))  # Jupyter names the notebook it runs
    assert ns["own_script"]() == elsewhere.parent / "08_ddp.py"


def test_without_script_or_notebook_the_launch_says_what_to_do(tmp_path, monkeypatch, capsys):
    ns = load("08_ddp", device="cpu")
    del ns["__file__"]
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    assert ns["launch_torchrun"](2) is None
    assert "neither 08_ddp.py nor 08_ddp.ipynb is in this folder" in capsys.readouterr().out
