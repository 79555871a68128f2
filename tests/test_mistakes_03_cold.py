"""Notebook 03's checks meet the cold reader's cases of session 4 (dev/results/mistake_hunt/cold_03_s4.md):
each mistake that ran silently, crashed or met the wrong cause now stops at the check of its own cell with
CheckFailed and one sentence naming the real cause, and the correct variants of the same table still pass.

Each case is one edit of notebooks/03_building_gpt.py (through notebook_code.load); the visible cell that
follows the piece is replayed as written (its classes and functions come from the edited source)."""
import ast

import pytest
import torch

from notebook_code import NOTEBOOKS, load

NB = "03_building_gpt"
TRAIN = torch.arange(400) % 61
VAL = (torch.arange(200) * 7) % 61
HYPER = ("n_embd", "block_size", "dropout")


def ns(replace=(), device="cpu"):
    found = load(NB, keep=HYPER, replace=replace, vocab_size=65, device=device, batch_size=4, eval_batch=64)
    found.update(train_data=TRAIN, val_data=VAL, vocab_size=65, print=lambda *a, **k: None)
    return found


def cell(marker):
    """The statements (not the definitions) of the notebook's visible cell holding marker, as a runner."""
    cells = (NOTEBOOKS / f"{NB}.py").read_text(encoding="utf-8").split("\n# %%")
    found = [c.split("\n", 1)[1] for c in cells if marker in c]
    assert len(found) == 1, marker
    tree = ast.parse(found[0])
    tree.body = [n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    code = compile(tree, NB, "exec")

    def run(found):
        exec(code, found)
        return "passed"
    run.__name__ = marker
    return run


batch_cell = cell("check_batch(*attempt(")
step0 = cell("model = Bigram()")
step1 = cell("print(f\"{params(model):,} parameters\")\nprint(check_model(model, attends=False))")
step2 = cell("print(check_head(Head(8)")

IX = "ix = torch.randint(len(data) - block_size, (batch_size,), generator=generator)"
CHUNKS = "x, y = data[:n].view(-1, block_size), data[1:n + 1].view(-1, block_size)"
BIGRAM_LOSS = ("        logits = self.token_embedding_table(idx)  # (B, T, vocab_size)\n        loss = None if targets is None "
               "else F.cross_entropy(logits.flatten(0, 1), targets.flatten())")
SCORES = "wei = q @ k.transpose(-2, -1) * k.shape[-1]**-0.5"
ATTEND = ("        wei = q @ k.transpose(-2, -1) * k.shape[-1]**-0.5  # (B, T, hs) @ (B, hs, T) -> (B, T, T)\n"
          "        wei = wei.masked_fill(self.tril[:T, :T] == 0, float('-inf'))  # (B, T, T)\n"
          "        wei = self.dropout(F.softmax(wei, dim=-1))  # (B, T, T)\n        v = self.value(x)  # (B, T, hs)\n"
          "        return wei @ v")
TRIL = "self.register_buffer('tril', torch.tril(torch.ones(block_size, block_size)))"
KQV = ("self.key = nn.Linear(n_embd, head_size, bias=False)\n        self.query = nn.Linear(n_embd, head_size, bias=False)\n"
       "        self.value = nn.Linear(n_embd, head_size, bias=False)")
X = "x = tok_emb + pos_emb  # (B, T, C)"

MISTAKES = {  # id: (edits, the cell or check that follows, what its sentence must say[, device])
    "G7 offset 0 never drawn": ([(IX, IX.replace("torch.randint(", "torch.randint(1, "))], batch_cell,
                                "offset 0 is never drawn"),
    "G10 batch left on the CPU": ([("return x.to(device), y.to(device)", "return x, y")], batch_cell,
                                  "not on meta where the model trains", "meta"),
    "S8 chunks of N/8, not of 8": ([(CHUNKS, CHUNKS.replace("view(-1, block_size)", "view(block_size, -1)"))], step0,
                                   "more than block_size = 8"),
    "B1 the bigram's targets transposed": ([(BIGRAM_LOSS, BIGRAM_LOSS.replace("targets.flatten()", "targets.t().flatten()"))],
                                           step0, "is not the mean cross-entropy of its logits"),
    "B2 the bigram's loss label-smoothed": ([(BIGRAM_LOSS, BIGRAM_LOSS.replace("targets.flatten())", "targets.flatten(), label_smoothing=0.5)"))],
                                            step0, "is not the mean cross-entropy of its logits"),
    "M4 lm_head fed tok_emb (step 1)": ([("logits = self.lm_head(x)  # (B, T, vocab_size)", "logits = self.lm_head(tok_emb)  # (B, T, vocab_size)")],
                                       step1, "reach lm_head"),
    "M1 no pos_emb added (step 1, still named)": ([(X, "x = tok_emb  # (B, T, C)")], step1, "the model ignores positions"),
    "H12 q @ k.T on 3-D tensors": ([(SCORES, "wei = q @ k.T * k.shape[-1]**-0.5")], step2, "transpose the last two dimensions of k"),
    "H21 key/query/value ignore head_size": ([(KQV, KQV.replace("n_embd, head_size", "n_embd, n_embd"))], step2,
                                             "gives 32 channels per position, not head_size = 8"),
}

CORRECT = {
    "H18 SDPA with is_causal and no tril": [(ATTEND, "        v = self.value(x)\n        return F.scaled_dot_product_attention(q, k, v, is_causal=True)"),
                                            (TRIL, "pass")],
    "H24 einsum scores": [(SCORES, "wei = torch.einsum('btd,bsd->bts', q, k) * k.shape[-1]**-0.5")],
    "H13 k.mT": [(SCORES, "wei = q @ k.mT * k.shape[-1]**-0.5")],
    "G8 randperm offsets": [(IX, "ix = torch.randperm(len(data) - block_size, generator=generator)[:batch_size]")],
    "S10 overlapping chunks through unfold": [(CHUNKS, "x, y = data[:-1].unfold(0, block_size, 1), data[1:].unfold(0, block_size, 1)")],
    "M12 pos_emb.unsqueeze(0)": [(X, "x = tok_emb + pos_emb.unsqueeze(0)  # (B, T, C)")],
    "lm_head on ln_f(body(x)) in one line": [("        x = self.ln_f(self.body(x))  # (B, T, C)\n        logits = self.lm_head(x)",
                                              "        logits = self.lm_head(self.ln_f(self.body(x)))")],
}
CELL_OF = {"H": step2, "G": batch_cell, "S": step0, "M": step1, "l": step1}


@pytest.mark.parametrize("run", [batch_cell, step0, step1, step2], ids=lambda run: run.__name__.split("\n")[0])
def test_the_cells_as_written_pass(run):
    assert "passed" in run(ns())


@pytest.mark.parametrize("case", list(MISTAKES))
def test_the_check_names_the_real_cause(case):
    edits, run, sentence, *device = MISTAKES[case]
    device = device[0] if device else "cpu"
    with pytest.raises(AssertionError) as caught:
        run(ns(replace=edits, device=device))
    assert type(caught.value).__name__ == "CheckFailed" and sentence in str(caught.value), str(caught.value)


@pytest.mark.parametrize("variant", list(CORRECT))
def test_a_correct_variant_passes(variant):
    assert "passed" in CELL_OF[variant[0]](ns(replace=CORRECT[variant]))


TOP_K = ("logits = logits.masked_fill(logits < kth", "logits = logits.masked_fill(logits <= kth")


def test_top_k_masking_the_kth_itself_meets_the_real_cause():
    """P2 (03c's generate, checked by check_generate from this notebook's sampling cell): top_k = 1 masks every logit."""
    check_generate = ns()["check_generate"]
    right = load("03c_the_complete_model", device="cpu")["generate"]
    assert "passed" in check_generate(right, block_size=8, sampling=True)
    wrong = load("03c_the_complete_model", replace=[TOP_K], device="cpu")["generate"]
    with pytest.raises(AssertionError) as caught:
        check_generate(wrong, block_size=8, sampling=True)
    said = str(caught.value)
    assert type(caught.value).__name__ == "CheckFailed" and "top_k=1" in said and "largest logits must survive" in said, said


@pytest.mark.parametrize("run", [step0, step1], ids=["step 0", "step 1"])
def test_the_checks_with_batches_run_the_model_on_the_batches_device(run):
    """On a GPU get_batch and split_loss put the batches there, so the model a cell checks with them must be moved
    there too. Simulated with the meta device, where a forward pass runs and only .item() fails: a model left on
    the CPU fails earlier, mixing devices in its forward pass."""
    with pytest.raises(Exception) as caught:
        run(ns(device="meta"))
    said = str(caught.value)
    assert "not on the expected device" not in said and "meta tensors" in said, said
