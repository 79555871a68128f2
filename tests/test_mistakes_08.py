"""Notebook 08's checks catch a learner's own mistakes: each mistake below is one edit of the notebook's own
source, the notebook's definitions are loaded, and the check that follows that piece must fail with a sentence
naming the property and the likely cause. Mistakes in train_ddp that only show with several processes are run
for real: the edited script under torchrun (two Gloo processes), then the notebook's check on what it saved."""
import subprocess
import sys

import pytest
import torch

import notebook_code
from notebook_code import NOTEBOOKS, load
from script_runner import smoke_env


@pytest.fixture(scope="module")
def data(shakespeare):
    chars = sorted(set(shakespeare))
    stoi = {c: i for i, c in enumerate(chars)}
    tokens = torch.tensor([stoi[c] for c in shakespeare])
    n = int(0.9 * len(tokens))
    return dict(chars=chars, train_data=tokens[:n], val_data=tokens[n:])


def ns_08(data, replace=()):
    ns = load("08_ddp", replace=replace, device="cpu")
    ns.update(data)
    return ns


def check_average(ns):
    ns["check_data_parallel"](ns["average_gradients"])
    return ns["check_data_parallel"](ns["average_gradients"], world_size=3)


CHECKS = {
    "check_data_parallel": check_average,
    "check_batches_of_ranks": lambda ns: ns["check_batches_of_ranks"](ns["get_batch_of_rank"], ns["train_data"]),
    "check_train_ddp": lambda ns: ns["check_train_ddp"](ns["train_ddp"]),
}
SCHEDULE = "            group['lr'] = lr_at(it, peak_lr, warmup, iters)"
BACKWARD = "    optimizer.zero_grad(set_to_none=True)\n    scaler.scale(loss).backward()"
MISTAKES = {  # id: ([(old, new)], the check after the piece, what its sentence must say)
    "the mean given to the first replica only": (
        [("        for p in params:\n            p.grad = mean.clone()", "        params[0].grad = mean.clone()")],
        "check_data_parallel", "the replicas hold different gradients after the exchange"),
    "the weights averaged instead of the gradients": (
        [("mean = torch.stack([p.grad for p in params]).mean(dim=0)", "mean = torch.stack([p.detach() for p in params]).mean(dim=0)")],
        "check_data_parallel", "the exchanged gradients are not the gradient of the combined batch"),
    "two replicas hard-coded": (
        [("zip(*(replica.parameters() for replica in replicas))", "zip(replicas[0].parameters(), replicas[1].parameters())")],
        "check_data_parallel", "the replicas hold different gradients after the exchange"),
    "divided by 2 whatever the world size": (
        [("mean = torch.stack([p.grad for p in params]).mean(dim=0)", "mean = torch.stack([p.grad for p in params]).sum(dim=0) / 2")],
        "check_data_parallel", "the exchanged gradients are not the gradient of the combined batch"),
    "the mean over the wrong dimension": (
        [("mean = torch.stack([p.grad for p in params]).mean(dim=0)", "mean = torch.stack([p.grad for p in params]).mean(dim=-1)")],
        "check_data_parallel", r"average_gradients on 2 replicas raised RuntimeError .*each p.grad must keep its parameter's shape"),
    "the offsets drawn from the global random state": (
        [("device=data.device, generator=generator)  # (B, 1)", "device=data.device)  # (B, 1)")],
        "check_batches_of_ranks", "rank 0's batch is not the same when drawn again .*generator=generator"),
    "a generator made afresh inside get_batch_of_rank": (
        [("device=data.device, generator=generator)  # (B, 1)",
          "device=data.device, generator=torch.Generator(data.device).manual_seed(0))  # (B, 1)")],
        "check_batches_of_ranks", "two ranks, or two steps of one rank, drew the same batch"),
    "targets equal to the inputs": (
        [("    return chunk[:, :-1], chunk[:, 1:]  # (B, T) inputs, (B, T) targets",
          "    return chunk[:, :-1], chunk[:, :-1]  # (B, T) inputs, (B, T) targets")],
        "check_batches_of_ranks", "the targets equal the inputs"),
    "chunks one character short": (
        [("    pos = ix + torch.arange(block_size + 1, device=data.device)  # (B, T+1) positions of each chunk",
          "    pos = ix + torch.arange(block_size, device=data.device)  # (B, T+1) positions of each chunk")],
        "check_batches_of_ranks", r"get_batch_of_rank should return two \(4, 8\) tensors, got \(4, 7\)"),
    "no zero_grad: the gradients pile up": (
        [(BACKWARD, "    scaler.scale(loss).backward()")],
        "check_train_ddp", "train_ddp's second step has a gradient norm of .*the gradients pile up"),
    "zero_grad between backward and step": (
        [(BACKWARD, "    scaler.scale(loss).backward()\n    optimizer.zero_grad(set_to_none=False)")],
        "check_train_ddp", "train_ddp's steps have no gradient: call optimizer.zero_grad.. before loss.backward"),
    "the learning rate never taken from the schedule": (
        [(SCHEDULE, "            group['lr'] = peak_lr")],
        "check_train_ddp", r"not one AdamW step at the schedule's first learning rate \(lr_at\(0, ...\) = 0.005\)"),
    "the schedule one step ahead": (
        [(SCHEDULE, "            group['lr'] = lr_at(it + 1, peak_lr, warmup, iters)")],
        "check_train_ddp", "not one AdamW step at the schedule's first learning rate"),
    "the loss halved, as for two micro-steps": (
        [("            _, loss = step_model(x, y)\n", "            loss = step_model(x, y)[1] / 2\n")],
        "check_train_ddp", r"train_ddp's first step has a gradient norm of .*, not .*, a fresh model's on the rank's first batch"),
    "the model built without the seed": (
        [("    torch.manual_seed(seed)  # the same initial weights in every process\n", "")],
        "check_train_ddp", r"train_ddp's first step has a gradient norm of .* a fresh model's on the rank's first batch"),
}


@pytest.mark.parametrize("mistake", MISTAKES)
def test_the_check_after_the_piece_names_the_mistake(data, mistake):
    edits, check, says = MISTAKES[mistake]
    ns = ns_08(data, edits)
    with pytest.raises(ns["CheckFailed"], match=says):
        CHECKS[check](ns)


def test_the_checks_pass_the_notebooks_code(data):
    ns = ns_08(data)
    for check in CHECKS.values():
        assert "passed" in check(ns) or check is CHECKS["check_batches_of_ranks"]


TORCHRUN_MISTAKES = {  # mistakes that only show with several processes: (edits, what the sentence must say or None)
    "the loss divided by the world size (DDP averages already)": (
        [("            _, loss = step_model(x, y)\n", "            _, loss = step_model(x, y)\n            loss = loss / world_size\n")],
        r"the first step's gradient of the 2 processes is 0.50x that of one process on the combined batches: the loss"),
    "the loss multiplied by the world size (to undo the average)": (
        [("            _, loss = step_model(x, y)\n", "            _, loss = step_model(x, y)\n            loss = loss * world_size\n")],
        r"is 2.00x that of one process on the combined batches: the loss \(or the gradient\) is scaled"),
    "the model never wrapped in DDP": (
        [("    step_model = model if world_size == 1 else DDP(", "    step_model = model if True else DDP(")],
        r"the weights equal one process on rank 0's batches alone: the processes did not average"),
    "every rank's batches seeded with the same seed": (
        [("[torch.Generator(device).manual_seed(seed + r) for r in (ranks or [rank])]",
          "[torch.Generator(device).manual_seed(seed + r * 0) for r in (ranks or [rank])]")],
        r"one process on both ranks. batches ends where one process on rank 0.s alone does: every rank draws the same"),
    "(correct) each rank's model seeded with seed + rank, as nanoGPT does: DDP broadcasts rank 0's": (
        [("    torch.manual_seed(seed)  # the same initial weights in every process\n",
          "    torch.manual_seed(seed + rank)  # DDP copies rank 0's weights to the others\n")], None),
}


@pytest.mark.parametrize("mistake", TORCHRUN_MISTAKES)
def test_two_processes_with_the_mistake_fail_the_check(data, tmp_path, mistake):
    edits, says = TORCHRUN_MISTAKES[mistake]
    text = (NOTEBOOKS / "08_ddp.py").read_text(encoding="utf-8")
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    (tmp_path / "08_ddp.py").write_text(text, encoding="utf-8")
    out, steps = tmp_path / "out", 3
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(tmp_path / "08_ddp.py"), "--race", "--device", "cpu", "--max-iters", str(steps), "--out", str(out)],
                          cwd=NOTEBOOKS, env=smoke_env(OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ckpt = torch.load(out / "ckpt.pt", weights_only=True)
    ns = ns_08(data, edits)
    settings = ns["race_settings"](ns["parse_args"](["--race", "--device", "cpu", "--max-iters", str(steps)]), "cpu")[0]
    combined, log = ns["train_ddp"](**settings, ranks=[0, 1])
    alone, _ = ns["train_ddp"](**settings, ranks=[0])
    run = lambda: ns["check_same_training"](ckpt["model"], combined.state_dict(), alone.state_dict(), 2, (ckpt["log"][0][3], log[0][3]))
    if says is None:
        assert "passed" in run()
    else:
        with pytest.raises(ns["CheckFailed"], match=says):
            run()


def test_at_least_fifteen_mistakes():
    assert len(MISTAKES) + len(TORCHRUN_MISTAKES) - 1 >= 15
