"""Notebook 05c's checks meet a learner's own mistakes (moved here from tests/test_mistakes_05.py with the
race): each mistake below is one edit to the notebook's own source (tests/notebook_code.load(replace=...)),
and the check that follows that piece in the notebook must stop with CheckFailed and the sentence that
names it; each correct variant must pass. The hunt's table is in dev/results/mistake_hunt/hunt_05.md."""
import pytest
import torch

from notebook_code import load

NOTEBOOK = "05c_against_the_clock"


PATTERN = torch.tensor(list(range(13)) * 40)


def ns(replace=()):
    namespace = load(NOTEBOOK, replace=replace, device="cpu", amp_dtype=None)
    namespace.update(train_data=PATTERN, val_data=PATTERN[:200], block_size=8)  # what the race's cells set
    return namespace


def schedule(ns):
    return ns["check_schedule"](ns["lr_at"])


def optimizer(ns):
    toy = ns["GPTConfig"](vocab_size=65, block_size=8, n_embd=16, n_head=2, n_layer=1, dropout=0.0)
    return ns["check_optimizer_groups"](ns["configure_optimizer"], ns["FastGPT"](toy))


def whole_split(ns):
    return ns["check_whole_split_loss"](ns["split_loss"])


def fast(ns):
    return ns["check_train_fast"](ns["train_fast"])


ADAMW = "return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.99), fused=fused or None)"
TOTAL = "total += model(xb.to(device), yb.to(device))[1].float() * len(xb)"
RATE = "lr_at(it, peak_lr, warmup, iters) if cosine else peak_lr"
COSINE = "return peak / 10 + 0.5 * (peak - peak / 10) * (1 + math.cos(math.pi * min(1.0, progress)))"
SEED = "    torch.manual_seed(seed)\n    model = FastGPT(config)"
STOP = "split_loss(model, val_data, amp_dtype=amp_dtype) <= target"
SPLIT = ("n = (len(data) - 1) // block_size * block_size",
         "x, y = data[:n].view(-1, block_size), data[1:n + 1].view(-1, block_size)  # (N, T) each")
DECAY = ("    decay = [p for p in model.parameters() if p.dim() >= 2]\n"
         "    no_decay = [p for p in model.parameters() if p.dim() < 2]\n")

MISTAKES = {  # name: (the learner's edit as (old, new) pairs, the check, what its sentence says)
    "warmup from zero": ([("return peak * (it + 1) / warmup", "return peak * it / warmup")], schedule,
                         "every step needs a positive rate"),
    "decay to zero": ([(COSINE, "return 0.5 * peak * (1 + math.cos(math.pi * min(1.0, progress)))")], schedule,
                      "not the floor peak / 10"),
    "no clamp after the last step": ([(COSINE, COSINE.replace("min(1.0, progress)", "progress"))], schedule,
                                     "not the floor peak / 10"),
    "cosine upside down": ([(COSINE, COSINE.replace("(1 + math.cos", "(1 - math.cos"))], schedule, "jumps by"),
    "linear decay for the cosine": ([(COSINE, "return peak - (peak - peak / 10) * min(1.0, progress)")], schedule,
                                    "a cosine is still near the top"),
    "decay on vectors, not on matrices": ([(DECAY, DECAY.replace(">= 2", "@").replace("< 2", ">= 2").replace("@", "< 2"))],
                                          optimizer, "token_embedding_table.weight (2-d) has weight decay 0.0"),
    "decay by name: every weight": ([(DECAY, "    decay = [p for n, p in model.named_parameters() if n.endswith('weight')]\n"
                                             "    no_decay = [p for n, p in model.named_parameters() if n.endswith('bias')]\n")],
                                    optimizer, "ln1.weight (1-d) has weight decay 0.1"),
    "every parameter in the no-decay group too": ([(DECAY, DECAY.replace("if p.dim() < 2]", "]"))], optimizer,
                                                   "configure_optimizer fails with ValueError"),
    # session 4's cold read (/tmp/brief/cold_04_05c_s4.md): L12, O5-O7, O11, O12, SL1-SL4, TF1-TF3
    "L9 decay counted from step 0": ([("progress = (it - warmup) / max(1, total - warmup)", "progress = it / max(1, total - warmup)")],
                                     schedule, "not from 10, where it starts"),
    "L12 warmup spread over every step": ([("return peak * (it + 1) / warmup", "return peak * (it + 1) / total")], schedule,
                                          "the warmup must climb to the peak over its own"),
    "O6 Adam for AdamW": ([(ADAMW, ADAMW.replace("AdamW", "Adam"))], optimizer, "returns Adam with weight decay added to the gradient"),
    "O11 SGD": ([(ADAMW, "return torch.optim.SGD(groups, lr=lr)")], optimizer, "returns SGD: the race uses Adam with decoupled"),
    "O12 default weight decay 1.0": ([("def configure_optimizer(model, lr, weight_decay=0.1, fused=False):",
                                      "def configure_optimizer(model, lr, weight_decay=1.0, fused=False):")], optimizer,
                                     "decays matrices by 1.0 by default"),
    "O5 weight_decay argument ignored": ([("'weight_decay': weight_decay}", "'weight_decay': 0.1}")], optimizer,
                                         "use the lr and weight_decay it is given"),
    "O7 lr argument ignored": ([("groups, lr=lr,", "groups, lr=3e-4,")], optimizer, "use the lr and weight_decay it is given"),
    "SL1 batch means averaged": ([(TOTAL, TOTAL.replace(" * len(xb)", ""))], whole_split,
                                 "is each batch weighted by the number of chunks"),
    "SL2 no eval()": ([("    model.eval()\n    n = (len(data) - 1)", "    n = (len(data) - 1)")], whole_split,
                      "split_loss ran the model in training mode"),
    "SL3 targets not shifted": ([("data[1:n + 1].view(-1, block_size)  # (N, T) each", "data[:n].view(-1, block_size)  # (N, T) each")],
                                whole_split, "not the characters one step after its inputs"),
    "SL4 training mode not restored": ([("    model.train()\n    return (total / len(x)).item()", "    return (total / len(x)).item()")],
                                       whole_split, "split_loss left the model in eval mode"),
    "SL5 no torch.no_grad": ([("@torch.no_grad()\ndef split_loss", "def split_loss")], whole_split, "built a graph for gradients"),
    "TF1 constant rate": ([(RATE, "peak_lr")], fast, "where the schedule lr_at gives"),
    "TF2 warmup and total swapped": ([(RATE, "lr_at(it, peak_lr, iters, warmup) if cosine else peak_lr")], fast,
                                     "where the schedule lr_at gives"),
    "TF3 trains on the validation split": ([("train_on_device = train_data.to(device)", "train_on_device = val_data.to(device)")],
                                           fast, "not the training split's 520"),
    "TF4 schedule even with cosine=False": ([(RATE, "lr_at(it, peak_lr, warmup, iters)")], fast, "where a constant rate is"),
    "TF5 weight_decay not passed on": ([("configure_optimizer(model, peak_lr, weight_decay, fused)",
                                         "configure_optimizer(model, peak_lr, fused=fused)")], fast, "pass train_fast's weight_decay on"),
    "TF6 one step too few": ([("    for it in range(iters):\n        x, y = get_batch_on_device",
                               "    for it in range(iters - 1):\n        x, y = get_batch_on_device")], fast, "took 5 optimizer steps"),
    # session 5's cold read (dev/results/mistake_hunt/cold_03c_05c_s5.md): TF-a..d, SL-a, SL-b, L-a, L-e
    "TF-a seed ignored": ([(SEED, "    model = FastGPT(config)")], fast, "two train_fast runs with seed=1337 end with different weights"),
    "TF-a2 seed hard-coded": ([(SEED, SEED.replace("(seed)", "(1337)"))], fast, "with seed=1 ends with the same weights"),
    "TF-b clip not passed on": ([(RATE + ", clip)", RATE + ")")], fast, "pass train_fast's clip on to scaled_step"),
    "TF-c early stop on the training split": ([(STOP, STOP.replace("val_data", "train_data"))], fast,
                                              "not on the validation split's 200"),
    "TF-c2 early stop never taken": ([(STOP, STOP.replace("<=", ">="))], fast, "stop once the validation loss reaches the target"),
    "TF-d batches of the global block_size": ([("get_batch_on_device(train_on_device, batch_size, config.block_size)  # (B, T) each",
                                                "get_batch_on_device(train_on_device, batch_size, block_size)  # (B, T) each")], fast,
                                               "for a model of block_size 6: whose context length do its batches take?"),
    "SL-a the -1 forgotten": ([("n = (len(data) - 1) // block_size * block_size", "n = len(data) // block_size * block_size")],
                              whole_split, "on a split of 8 * block_size characters: the last chunk's targets run one character"),
    "SL-b divided by the characters": ([("return (total / len(x)).item()", "return (total / n).item()")], whole_split,
                                       "divided by the number of characters, not of chunks"),
    "L-a cosine to zero clamped at the floor": ([(COSINE, "return max(peak / 10, 0.5 * peak * (1 + math.cos(math.pi * min(1.0, progress))))")],
                                                schedule, "stays flat there until total = 100: a cosine from the peak down to the floor"),
    "L-e progress by integer division": ([("progress = (it - warmup) / max(1, total - warmup)", "progress = (it - warmup) // max(1, total - warmup)")],
                                         schedule, "in one step, from step 99 to 100: a cosine falls a little at every step"),
}

CORRECT = {  # name: (a variant a learner may write, the check)
    "nanoGPT's warmup, (it + 1) / (warmup + 1)": ([("return peak * (it + 1) / warmup", "return peak * (it + 1) / (warmup + 1)")],
                                                  schedule),
    "decay chosen by name and shape": ([(DECAY, "    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]\n"
                                                "    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]\n")],
                                       optimizer),
    "AdamW written as Adam(decoupled_weight_decay=True)": ([(ADAMW, ADAMW.replace("AdamW(groups,", "Adam(groups, decoupled_weight_decay=True,"))],
                                                           optimizer),
    "split_loss one chunk at a time": ([(TOTAL, "total += sum(model(a[None].to(device), b[None].to(device))[1].float() "
                                                "for a, b in zip(xb, yb))")], whole_split),
    "decay counted from the step after the warmup's end": ([("progress = (it - warmup) / max(1, total - warmup)",
                                                             "progress = (it - warmup + 1) / max(1, total - warmup)")], schedule),
    "train_fast at the schedule's rate without the cosine flag's branch": ([(RATE, "(lr_at(it, peak_lr, warmup, iters) if cosine else "
                                                                                  "peak_lr)")], fast),
    # session 5's cold read: SL-d, SL-e, SL-g, and others a learner may write
    "SL-d split_loss reads model.config.block_size": ([(SPLIT[0], "T = model.config.block_size\n    n = (len(data) - 1) // T * T"),
                                                       (SPLIT[1], SPLIT[1].replace("block_size", "T"))], whole_split),
    "SL-e a Python float total": ([("total = torch.zeros((), device=device)", "total = 0.0"),
                                   (TOTAL, TOTAL.replace("[1].float()", "[1].item()")),
                                   ("return (total / len(x)).item()", "return total / len(x)")], whole_split),
    "SL-g the mode it found restored": ([("    model.eval()\n    n = (len(data) - 1)", "    was = model.training\n    model.eval()\n    n = (len(data) - 1)"),
                                         ("    model.train()\n    return (total", "    model.train(was)\n    return (total")], whole_split),
    "the floor named min_lr": ([(COSINE, "min_lr = peak / 10\n    return min_lr + 0.5 * (peak - min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))")],
                               schedule),
    "seeded with torch.random.manual_seed": ([(SEED, SEED.replace("torch.manual_seed", "torch.random.manual_seed"))], fast),
    "clip passed by keyword": ([(RATE + ", clip)", RATE + ", clip=clip)")], fast),
    "early stop below the target, not at it": ([(STOP, STOP.replace("<=", "<"))], fast),
}


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_the_check_stops_the_mistake_with_its_sentence(mistake):
    edit, run_check, sentence = MISTAKES[mistake]
    assert "passed" in run_check(ns())  # the check passes on the code as written
    with pytest.raises(AssertionError) as caught:
        run_check(ns(replace=edit))
    assert type(caught.value).__name__ == "CheckFailed" and sentence in str(caught.value), str(caught.value)
    assert "\n" not in str(caught.value)  # one sentence, not a traceback


@pytest.mark.parametrize("variant", list(CORRECT))
def test_the_check_accepts_a_correct_variant(variant):
    edit, run_check = CORRECT[variant]
    assert "passed" in run_check(ns(replace=edit))


def test_every_check_is_probed():
    assert {c for _, c, _ in MISTAKES.values()} >= {schedule, optimizer, whole_split, fast}
    assert len(MISTAKES) >= 8  # the hunt's eight rows of the schedule and the optimizer (05 keeps its own 15 and more)
