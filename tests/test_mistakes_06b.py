"""Notebook 06b's mistake hunt: mistakes a learner new to the code makes in exercise 3's training loop
(one edit of the notebook's own solution, as the learner would write it), each met by check_train_on
with the sentence that names it; and correct loops written another way, which the check must pass."""
import pytest
import torch

from notebook_code import load

NB = "06b_pretrain_finetune"

LR = "        for group in optimizer.param_groups:\n            group['lr'] = lr_at(it, peak_lr, warmup, steps)\n"
OPT = "    optimizer = configure_optimizer(model, peak_lr)\n"
BATCH = "        x, y = get_batch_on_device(data, batch_size, model.config.block_size)  # (B, T) each\n"
FORWARD = "        _, loss = model(x, y)\n"
ZERO = "        optimizer.zero_grad(set_to_none=True)\n"
BACKWARD = "        loss.backward()\n"
STEP = "        optimizer.step()\n"
LOG = "        log.append((it + 1, loss.item()))\n"
MODE = "    model.train()\n    log = []\n"
LOOP = "    for it in range(steps):\n"


def train_on(ns):
    return ns["check_train_on"](ns["train_on_solution"])


def with_shakespeare(ns):  # the notebook's global split, as a learner's loop would find it
    ns["train_data"] = torch.randint(0, 65, (5000,))
    return train_on(ns)


MISTAKES = {  # name: (the learner's edits as (old, new) pairs, the check, what its sentence must say)
    # a model last evaluated is in eval mode, so a loop that never calls model.train() trains with dropout off
    "3 model.train() left out": ([(MODE, "    log = []\n")], train_on, "ran the model in eval mode while training"),
    "3 gradients never zeroed": ([(ZERO, "")], train_on, "the gradients add up from step to step"),
    "3 a constant learning rate": ([(LR, "")], train_on, "the learning rate stays at peak_lr, so the schedule has no effect"),
    "3 the schedule computed but never given to the optimizer": (
        [(LR, "        lr = lr_at(it, peak_lr, warmup, steps)\n")], train_on, "the schedule has no effect"),
    "3 the schedule set on the optimizer object": (
        [(LR, "        optimizer.lr = lr_at(it, peak_lr, warmup, steps)\n")], train_on, "the schedule has no effect"),
    "3 a fixed learning rate of 1e-3": ([(LR, LR.replace("lr_at(it, peak_lr, warmup, steps)", "1e-3"))], train_on,
                                        "changed the weights with peak_lr = 0"),
    "3 trained in eval mode": ([(MODE, "    model.eval()\n    log = []\n")], train_on, "ran the model in eval mode while training"),
    "3 a new optimizer at every step": ([(OPT, ""), (LOOP, LOOP + "    " + OPT)], train_on,
                                        "a new optimizer at every step forgets AdamW's running averages"),
    "3 a LambdaLR never stepped": ([(LR, ""), (OPT, OPT + "    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, "
                                                      "lambda it: lr_at(it, peak_lr, warmup, steps) / peak_lr if peak_lr else 0.0)\n")],
                                   train_on, "the learning rate never moves from its first value"),
    "3 the schedule one step ahead": ([(LR, LR.replace("lr_at(it,", "lr_at(it + 1,"))], train_on, "the schedule runs one step ahead"),
    "3 the warmup left out": ([(LR, LR.replace("lr_at(it, peak_lr, warmup, steps)", "lr_at(it, peak_lr, 0, steps)"))],
                              train_on, "the warmup is left out"),
    "3 PyTorch's AdamW with its defaults": ([(OPT, "    optimizer = torch.optim.AdamW(model.parameters(), lr=peak_lr)\n")],
                                            train_on, "the optimizer is not notebook 05c's"),
    "3 weight decay on every parameter": ([(OPT, "    optimizer = torch.optim.AdamW(model.parameters(), lr=peak_lr, "
                                                 "betas=(0.9, 0.99), weight_decay=0.1)\n")], train_on,
                                          "which puts no weight decay on biases and LayerNorm gains"),
    "3 trained on the notebook's training split": ([(BATCH, BATCH.replace("(data,", "(train_data,"))], with_shakespeare,
                                                   "a token id too large for the model's vocabulary"),
    "3 a new model inside the loop": ([(OPT, "    model = FastGPT(model.config)\n" + OPT)], train_on,
                                      "never ran the model it was given"),
    "3 the forward pass under no_grad": ([(FORWARD, "        with torch.no_grad():\n            _, loss = model(x, y)\n"
                                                    "        loss.requires_grad_(True)\n")], train_on,
                                         "ran the model only without gradients"),
    "3 no backward": ([(BACKWARD, "")], train_on, "did not change the weights"),
    "3 the step before the backward": ([(ZERO + BACKWARD + STEP, ZERO + STEP + BACKWARD)], train_on, "did not change the weights"),
    "3 the global block_size": ([(BATCH, BATCH.replace("model.config.block_size", "block_size"))], train_on,
                                "use the arguments and model.config.block_size"),
    "3 a fixed batch of 32": ([(BATCH, BATCH.replace("batch_size,", "32,"))], train_on, "trained on batches of shape (32, 8)"),
    "3 one step short": ([(LOOP, "    for it in range(steps - 1):\n")], train_on, "ran the model with gradients 5 times in 6 steps"),
    "3 a loss logged every other step": ([(LOG, "        if it % 2 == 0:\n    " + LOG)], train_on,
                                         "should return a list of (step, loss), one per step"),
    "3 the loss logged after the update": ([(LOG, ""), (STEP, STEP + "        log.append((it + 1, model(x, y)[1].item()))\n")],
                                           train_on, "ran the model with gradients 12 times in 6 steps"),
    "3 targets not shifted": ([(FORWARD, "        _, loss = model(x, x)\n")], train_on, "targets are not the inputs' next characters"),
}


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_the_check_names_the_mistake(mistake):
    edits, run_check, sentence = MISTAKES[mistake]
    with pytest.raises(AssertionError) as caught:
        run_check(load(NB, replace=edits, device="cpu"))
    said = str(caught.value)
    assert type(caught.value).__name__ == "CheckFailed" and sentence in said and "\n" not in said, said


CORRECT = {  # correct loops a learner may write instead of the solution: the check must pass them
    "3 gradients clipped at 1.0, as train_fast does": [(STEP, "        nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n" + STEP)],
    "3 zero_grad after the step": [(ZERO, ""), (STEP, STEP + ZERO)],
    "3 the schedule as a LambdaLR": [
        (LR, ""), (OPT, OPT + "    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, "
                   "lambda it: lr_at(it, peak_lr, warmup, steps) / peak_lr if peak_lr else 0.0)\n"),
        (STEP, STEP + "        schedule.step()\n")],
    "3 the loss computed from the logits": [(FORWARD, "        logits, _ = model(x)\n        loss = F.cross_entropy("
                                                      "logits.view(-1, logits.shape[-1]), y.reshape(-1))\n")],
    "3 an evaluation without gradients inside the loop": [(LOG, LOG + "        with torch.no_grad():\n"
                                                                "            model(x[:1])\n")],
    "3 the loss tensor logged": [(LOG, "        log.append((it, loss.detach()))\n")],
}


@pytest.mark.parametrize("variant", list(CORRECT))
def test_the_check_accepts_a_correct_loop(variant):
    assert "passed" in train_on(load(NB, replace=CORRECT[variant], device="cpu"))


def test_there_are_at_least_fifteen_mistakes_in_this_notebook():
    assert len(MISTAKES) >= 15
