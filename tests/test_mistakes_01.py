"""Notebook 01's checks meet the mistakes a learner new to the code makes (the hunt of issue 21).

Each mistake is one edit of notebooks/01_bigram.py's own source; the check that follows that piece in
the notebook must stop with CheckFailed and a sentence naming the property and the likely cause. The
correct variants at the end are other ways of writing the same pieces: the checks must let them pass."""
import ast
import pathlib

import pytest
import torch

from notebook_code import source_of, NOTEBOOKS, load

TRAIN = torch.arange(400) % 61          # a stand-in training split: consecutive ids
VAL = (torch.arange(200) * 7) % 61      # a validation split whose chunks are not chunks of TRAIN
DATA_CHAIN = ("text", "chars", "vocab_size", "stoi", "itos", "encode", "decode", "data", "n", "train_data", "val_data")


def ns(replace=(), keep=()):
    found = load("01_bigram", replace=replace, keep=keep)
    if "train_data" not in keep:
        found.update(train_data=TRAIN, val_data=VAL, vocab_size=65)
    found.update(eval_iters=3, batch_size=4, block_size=8, device="cpu")
    return found


def cell(marker):
    """The source of the notebook's code cell that contains marker (its '# %%' line dropped)."""
    cells = (NOTEBOOKS / "01_bigram.py").read_text(encoding="utf-8").split("\n# %%")
    return next(c.split("\n", 1)[1] for c in cells if marker in c)


@pytest.fixture
def small_text(tmp_path, monkeypatch):
    """COURSE_DATA set to the first 20,000 characters of tiny Shakespeare: the data cells run in a moment."""
    path = tmp_path / "small.txt"
    full = (pathlib.Path(__file__).resolve().parent.parent / "datasets" / "tinyshakespeare.txt").read_text(encoding="utf-8")
    path.write_text(full[:20_000], encoding="utf-8")
    monkeypatch.setenv("COURSE_DATA", str(path))


def batch(found):
    torch.manual_seed(0)  # the same offsets on every run
    x, y = found["attempt"]("get_batch('train', batch_size, block_size)", found["get_batch"], "train", 4, 8)  # as the notebook calls it
    return found["check_batch"](x, y, TRAIN, 4, 8)


def generate(found):
    return found["check_generate"](found["BigramLanguageModel"].generate)


def train_step(found):
    torch.manual_seed(0)
    model = found["BigramLanguageModel"](65)
    return found["check_train_step"](found["train_step"], model, [found["get_batch"]("train", 4, 8) for _ in range(2)])


def evaluation(name):
    def run(found):
        model = found["BigramLanguageModel"](65)
        return found["check_evaluation"](found[name], model, *((VAL,) if name == "split_loss" else ()))
    return run


def split(found):
    return found["check_split"](found["text"], found["encode"], found["train_data"], found["val_data"])


def loss_cell(found):
    """Run the notebook's 'loss before training' cell on a batch of the stand-in split."""
    torch.manual_seed(1337)
    found["xb"], found["yb"] = found["get_batch"]("train", 4, 8)
    exec(cell("initial loss"), found)
    return "passed"


GET_BATCH_Y = "y = torch.stack([data[i + 1:i + block_size + 1] for i in ix])     # (B, T)"
GET_BATCH_X = "x = torch.stack([data[i:i + block_size] for i in ix])             # (B, T)"
RESTORE = "    self.train(was_training)\n    return idx"
LOSS = "loss = F.cross_entropy(logits.view(B * T, C), targets.view(B * T))"
STEP = "    optimizer.zero_grad(set_to_none=True)\n    loss.backward()\n    optimizer.step()\n    return loss"
EVAL_END = "        out[split] = losses.mean().item()\n    model.train()\n    return out"
SPLIT = "n = int(0.9 * len(data))  # first 90% will be train, rest val\ntrain_data = data[:n]\nval_data = data[n:]"

MISTAKES = {  # name: (the learner's edits, the check that follows, what its sentence must say, load keep)
    "targets from the other split": ([(GET_BATCH_Y, GET_BATCH_Y.replace("[data[i + 1", "[val_data[i + 1"))],
                                     batch, "not the inputs shifted by one"),
    "inputs and targets returned swapped": ([("    return x, y\n", "    return y, x\n")], batch, "not the inputs shifted by one"),
    "batch stacked on the time axis": ([(GET_BATCH_X, GET_BATCH_X.replace(" for i in ix])", " for i in ix], dim=1)")),
                                        (GET_BATCH_Y, GET_BATCH_Y.replace(" for i in ix])", " for i in ix], dim=1)"))],
                                       batch, "should return two (4, 8) tensors"),
    "one offset for the whole batch": ([("ix = torch.randint(len(data) - block_size, (batch_size,))         # (B,)",
                                         "ix = torch.randint(len(data) - block_size, (1,)).repeat(batch_size)  # (B,)")],
                                       batch, "every row of the batch is the same chunk"),
    "batches as floats": ([("    return x, y\n", "    return x.float(), y.float()\n")], batch, "keep the data as torch.long"),
    "training batches from the validation split": ([("data = train_data if split == 'train' else val_data",
                                                     "data = val_data if split == 'train' else train_data")],
                                                   batch, "not a chunk of the training split"),
    "generate always ends in training mode": ([(RESTORE, "    self.train()\n    return idx")], generate,
                                              "left a model in eval mode in training mode"),
    "generate never restores the mode": ([(RESTORE, "    return idx")], generate, "left a model in training mode in eval mode"),
    "softmax over the batch in generate": ([("probs = F.softmax(logits[:, -1, :], dim=-1)", "probs = F.softmax(logits[:, -1, :], dim=0)")],
                                           generate, "the softmax over the last dimension"),
    "multinomial on raw logits": ([("idx_next = torch.multinomial(probs, num_samples=1)", "idx_next = torch.multinomial(logits[:, -1, :], num_samples=1)")],
                                  generate, "torch.multinomial needs probabilities"),
    "new token appended to the batch axis": ([("idx = torch.cat((idx, idx_next), dim=1)", "idx = torch.cat((idx, idx_next), dim=0)")],
                                             generate, "append one token per step"),
    "generate returns the new tokens only": ([(RESTORE, "    self.train(was_training)\n    return idx[:, 1:]")],
                                             generate, "append one token per step"),
    "cross-entropy on unflattened logits": ([(LOSS, "loss = F.cross_entropy(logits, targets)")], loss_cell, "m(xb, yb) raised"),
    "targets flattened in another order": ([(LOSS, "loss = F.cross_entropy(logits.view(B * T, C), targets.T.reshape(B * T))")],
                                           loss_cell, "not the mean cross-entropy"),
    "nll_loss without a log-softmax": ([(LOSS, "loss = F.nll_loss(logits.view(B * T, C), targets.view(B * T))")],
                                       loss_cell, "not the mean cross-entropy"),
    "optimizer step before backward": ([(STEP, "    optimizer.zero_grad(set_to_none=True)\n    optimizer.step()\n    loss.backward()\n    return loss")],
                                       train_step, "the weights did not change"),
    "zero_grad between backward and step": ([(STEP, "    loss.backward()\n    optimizer.zero_grad(set_to_none=True)\n    optimizer.step()\n    return loss")],
                                            train_step, "the weights did not change"),
    "backward called twice": ([(STEP, "    optimizer.zero_grad(set_to_none=True)\n    loss.backward()\n    loss.backward()\n    optimizer.step()\n    return loss")],
                              train_step, "train_step(model, ...) raised RuntimeError"),
    "train_step in eval mode": ([("    logits, loss = model(xb, yb)\n    optimizer.zero_grad", "    model.eval()\n    logits, loss = model(xb, yb)\n    optimizer.zero_grad")],
                                train_step, "eval mode, so dropout is off while training"),
    "estimate_loss never back in training mode": ([(EVAL_END, "        out[split] = losses.mean().item()\n    return out")],
                                                  evaluation("estimate_loss"), "left the model in eval mode"),
    "estimate_loss in training mode": ([("    out = {}\n    model.eval()\n", "    out = {}\n")], evaluation("estimate_loss"),
                                       "ran the model in training mode"),
    "estimate_loss with gradients": ([("@torch.no_grad()\ndef estimate_loss", "def estimate_loss")], evaluation("estimate_loss"),
                                     "with gradients on"),
    "split_loss leaves eval mode": ([("    _, loss = model(data[None, :-1].to(device), data[None, 1:].to(device))  # (1, N-1) each\n    model.train()\n",
                                      "    _, loss = model(data[None, :-1].to(device), data[None, 1:].to(device))  # (1, N-1) each\n")],
                                    evaluation("split_loss"), "left the model in eval mode"),
    "characters shuffled before the split": ([("data = torch.tensor(encode(text), dtype=torch.long)\n",
                                               "data = torch.tensor(encode(text), dtype=torch.long)\ndata = data[torch.randperm(len(data))]\n")],
                                             split, "not the text's head and tail", DATA_CHAIN),
    "an 80/20 split": ([(SPLIT, SPLIT.replace("0.9", "0.8"))], split, "not 90%", DATA_CHAIN),
    "validation overlapping training": ([(SPLIT, SPLIT.replace("val_data = data[n:]", "val_data = data[n - 1000:]"))], split,
                                        "the splits hold", DATA_CHAIN),
    "the splits swapped": ([(SPLIT, SPLIT.replace("train_data = data[:n]\nval_data = data[n:]", "train_data = data[n:]\nval_data = data[:n]"))],
                           split, "not 90%", DATA_CHAIN),
}

CORRECT = {  # other ways to write the same pieces, which the checks must accept
    "softmax as a tensor method": ([("probs = F.softmax(logits[:, -1, :], dim=-1)", "probs = logits[:, -1, :].softmax(-1)")], generate),
    "one chunk of block_size + 1, then sliced": ([(GET_BATCH_X, "chunk = torch.stack([data[i:i + block_size + 1] for i in ix])"),
                                                  (GET_BATCH_Y, "x, y = chunk[:, :-1], chunk[:, 1:]")], batch),
    "zero_grad before the forward pass": ([("    logits, loss = model(xb, yb)\n    optimizer.zero_grad(set_to_none=True)\n",
                                            "    optimizer.zero_grad()\n    logits, loss = model(xb, yb)\n")], train_step),
    "estimate_loss restoring the mode it found": ([("    out = {}\n    model.eval()\n", "    out, was_training = {}, model.training\n    model.eval()\n"),
                                                   (EVAL_END, "        out[split] = losses.mean().item()\n    model.train(was_training)\n    return out")],
                                                  evaluation("estimate_loss")),
    "the split with tensor.split": ([(SPLIT, "n = int(0.9 * len(data))\ntrain_data, val_data = data.split([n, len(data) - n])")], split, DATA_CHAIN),
    "cross-entropy with the classes in dimension 1": ([(LOSS, "loss = F.cross_entropy(logits.transpose(1, 2), targets)")], loss_cell),
}


def run_cell(marker, drop=()):
    """A runner: the notebook's code cell holding marker, without its defs and without assignments to the names in
    drop (those come from the edited source), executed in the loaded namespace."""
    def run(found):
        tree = ast.parse(cell(marker))
        tree.body = [n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.ClassDef)) and not (
            isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id in drop for t in n.targets))]
        torch.manual_seed(1337)
        found["xb"], found["yb"] = found["get_batch"]("train", 4, 8)
        exec(compile(tree, "01_bigram", "exec"), found)
        return "passed"
    return run


tokenizer_cell = run_cell('print(encode("hii there"))', drop=("stoi", "itos", "encode", "decode"))
batch_cell = run_cell("check_batch(*attempt(")
estimate_cell = run_cell("check_evaluation(estimate_loss")
IX = "ix = torch.randint(len(data) - block_size, (batch_size,))         # (B,)"
GEN_END = "        idx = torch.cat((idx, idx_next), dim=1)              # (B, T+1)\n    self.train(was_training)"

MISTAKES.update({  # the cold learner's hunt (cold13)
    "stoi numbered from 1": ([("stoi = {ch: i for i, ch in enumerate(chars)}", "stoi = {ch: i + 1 for i, ch in enumerate(chars)}")],
                             tokenizer_cell, "encode gives indices outside 0 .. vocab_size - 1", DATA_CHAIN),
    "itos from the unsorted set": ([("itos = {i: ch for i, ch in enumerate(chars)}", "itos = {i: ch for i, ch in enumerate(set(text))}")],
                                   tokenizer_cell, "decode(encode(s)) is not s", DATA_CHAIN),
    "validation one token late": ([(SPLIT, SPLIT.replace("val_data = data[n:]", "val_data = data[n + 1:]"))], split,
                                  "the splits hold", DATA_CHAIN),
    "offsets over the whole split": ([(IX, "ix = torch.randint(len(data), (batch_size,))         # (B,)")], batch_cell,
                                     "given the smallest and the largest offsets torch.randint can draw"),
    "offsets one too many": ([(IX, "ix = torch.randint(len(data) - block_size + 1, (batch_size,))  # (B,)")], batch_cell,
                             "offsets stay below len(data) - block_size"),
    # torch.randint(n) draws 0 .. n - 1: one less in its bound never draws the last chunk, so it is not trained on
    "offsets drawn one short": ([(IX, "ix = torch.randint(len(data) - block_size - 1, (batch_size,))  # (B,)")], batch_cell,
                                "no row is the last chunk of the split"),
    "targets by rolling x": ([(GET_BATCH_Y, "y = torch.roll(x, -1, dims=1)     # (B, T)")], batch,
                             "a shift or roll of x loses the character after the chunk"),
    "offsets not random (arange)": ([(IX, "ix = torch.arange(batch_size)         # (B,)")], batch_cell,
                                    "the same batch three times in a row"),
    "offsets seeded inside get_batch": ([(IX, "torch.manual_seed(0)\n    " + IX)], batch_cell, "the same batch three times in a row"),
    "optimizer.step() twice": ([(STEP, STEP.replace("    optimizer.step()\n", "    optimizer.step()\n    optimizer.step()\n"))],
                               train_step, "2 times, not once"),
    "train_step with an AdamW of its own": ([("    logits, loss = model(xb, yb)\n    optimizer.zero_grad",
                                              "    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)\n    logits, loss = model(xb, yb)\n    optimizer.zero_grad")],
                                            train_step, "use the optimizer passed in"),
    "train_step returns nothing": ([(STEP, STEP.replace("    return loss", "    pass"))], train_step, "not the loss before its step"),
    # moved from 03 (session 6): 03's train_step is 01's, folded there and checked here
    "zero_grad between backward and step": ([(STEP, STEP.replace("    optimizer.zero_grad(set_to_none=True)\n    loss.backward()\n",
                                                                 "    loss.backward()\n    optimizer.zero_grad(set_to_none=True)\n"))],
                                            train_step, "found the gradients of loss.backward() already zeroed"),
    "model.zero_grad to zeros between backward and step": ([(STEP, STEP.replace("    optimizer.zero_grad(set_to_none=True)\n    loss.backward()\n",
                                                                                "    loss.backward()\n    model.zero_grad(set_to_none=False)\n"))],
                                                           train_step, "not between loss.backward() and optimizer.step()"),
    "TS-d inputs and targets swapped": ([("    logits, loss = model(xb, yb)\n    optimizer.zero_grad", "    logits, loss = model(yb, xb)\n    optimizer.zero_grad")],
                                        train_step, "train_step fed the model (yb, xb)"),
    "train_step returning the logits": ([(STEP, STEP.replace("    return loss", "    return logits"))], train_step,
                                        "returned a tensor of shape (4, 8, 65)"),
    "estimate_loss measures 'train' twice": ([("X, Y = get_batch(split, batch_size, block_size)", "X, Y = get_batch('train', batch_size, block_size)")],
                                             estimate_cell, "never fed the model a batch of the validation split"),
    "estimate_loss sums the losses": ([(EVAL_END, EVAL_END.replace("losses.mean()", "losses.sum()"))], estimate_cell,
                                      "outside the range of the losses"),
    "split_loss with inputs and targets swapped": ([("model(data[None, :-1].to(device), data[None, 1:].to(device))",
                                                     "model(data[None, 1:].to(device), data[None, :-1].to(device))")],
                                                   evaluation("split_loss"), "targets that are not its inputs one step on"),
    "generate restores the mode inside the loop": ([(GEN_END, GEN_END.replace("\n    self.train", "\n        self.train"))],
                                                   generate, "restore the mode after the loop, not inside it"),
    "generate without @torch.no_grad()": ([("@torch.no_grad()\ndef generate", "def generate")], generate,
                                          "decorate it with @torch.no_grad()"),
})

ATT = "BigramLanguageModel.generate = generate  # a method of the class, as if written inside it"
attach_cell = run_cell("method = getattr(probe, \"generate\", None)")


GENERATE = source_of("01_bigram", "generate")  # the function with its decorator, as its own cell holds it
LECTURE_WAY = [("@torch.no_grad()\n" + GENERATE + "\n\n\n" + ATT + "\n", ""),  # 01-g: written inside the class instead
               ("        return logits, loss\n", "        return logits, loss\n\n    @torch.no_grad()\n" + "".join(
                   "    " + line if line.strip() else line for line in GENERATE.splitlines(keepends=True)) + "\n")]
CORRECT["01-g generate inside the class, as the lecture writes it"] = (LECTURE_WAY, attach_cell)

MISTAKES.update({  # session 7: generate has a cell of its own and is attached to the class (cold_s7.md)
    "01-1 the attach line left out": ([(ATT, "")], attach_cell, "m.generate is not a method of the model"),
    "01-29 attached under another name": ([(ATT, "BigramLanguageModel.sample = generate")], attach_cell,
                                          "m.generate is not a method of the model"),
})

CORRECT.update({
    "estimate_loss under @torch.inference_mode()": ([("@torch.no_grad()\ndef estimate_loss", "@torch.inference_mode()\ndef estimate_loss")], estimate_cell),
    "sampling with torch.distributions.Categorical": ([("idx_next = torch.multinomial(probs, num_samples=1)   # (B, 1)",
                                                        "idx_next = torch.distributions.Categorical(probs=probs).sample()[:, None]   # (B, 1)")], generate),
    "a batch through unfold": ([(GET_BATCH_X, "x = data.unfold(0, block_size, 1)[ix]"), (GET_BATCH_Y, "y = data[1:].unfold(0, block_size, 1)[ix]")], batch_cell),
    "offsets with randint(low, high)": ([(IX, "ix = torch.randint(0, len(data) - block_size, size=(batch_size,))  # (B,)")], batch_cell),
    "softmax over all positions, then the last": ([("probs = F.softmax(logits[:, -1, :], dim=-1)", "probs = F.softmax(logits, dim=-1)[:, -1, :]")], generate),
    "train_step returning loss.item()": ([(STEP, STEP.replace("    return loss", "    return loss.item()"))], train_step),
    "model.zero_grad() in train_step": ([(STEP, STEP.replace("optimizer.zero_grad(set_to_none=True)", "model.zero_grad()"))], train_step),
    "TS-f loss detached": ([(STEP, STEP.replace("    return loss", "    return loss.detach()"))], train_step),
    "TS targets by keyword": ([("    logits, loss = model(xb, yb)\n    optimizer.zero_grad", "    logits, loss = model(xb, targets=yb)\n    optimizer.zero_grad")], train_step),
    "zero_grad after the step": ([(STEP, STEP.replace("    optimizer.zero_grad(set_to_none=True)\n", "").replace(
        "    optimizer.step()\n", "    optimizer.step()\n    optimizer.zero_grad()\n"))], train_step),
    "estimate_loss looping over the splits the other way": ([("for split in ['train', 'val']:", "for split in ('val', 'train'):")], estimate_cell),
    "the tokenizer as written": ([], tokenizer_cell, DATA_CHAIN),
})


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_the_check_names_the_mistake(mistake, small_text):
    edits, run, sentence, *keep = MISTAKES[mistake]
    keep = keep[0] if keep else ()
    assert "passed" in run(ns(keep=keep))  # the notebook as written passes
    with pytest.raises(AssertionError) as caught:
        run(ns(replace=edits, keep=keep))
    assert type(caught.value).__name__ == "CheckFailed" and sentence in str(caught.value), str(caught.value)


@pytest.mark.parametrize("variant", list(CORRECT))
def test_a_correct_variant_passes(variant, small_text):
    edits, run, *keep = CORRECT[variant]
    assert "passed" in run(ns(replace=edits, keep=keep[0] if keep else ()))


def test_the_hunt_has_fifteen_mistakes_at_least():
    assert len(MISTAKES) >= 15


@pytest.mark.parametrize("wrap", [staticmethod, classmethod])  # 01-14 (cold_s7.md): m.generate would not be generate
def test_generate_attached_as_another_kind_of_method_is_named(wrap, small_text):
    found = ns()
    found["BigramLanguageModel"].generate = wrap(found["generate"])
    with pytest.raises(AssertionError) as caught:
        attach_cell(found)
    assert type(caught.value).__name__ == "CheckFailed" and "m.generate is not a method of the model" in str(caught.value)
