"""Notebook 03's checks meet the cold reader's cases of session 4 (dev/results/mistake_hunt/cold_03_s4.md):
each mistake that ran silently, crashed or met the wrong cause now stops at the check of its own cell with
CheckFailed and one sentence naming the real cause, and the correct variants of the same table still pass.

Each case is one edit of notebooks/03_building_gpt.py (through notebook_code.load); the visible cell that
follows the piece is replayed as written (its classes and functions come from the edited source). Session 5's
cases (cold_03_03b_s5.md, cold_03c_05c_s5.md: aliased projections, masks not sized by block_size, the whole-split
loss, sampling, the model's inputs) follow, with the correct variants of those tables."""

import pytest
import torch

from notebook_code import NOTEBOOKS, cell_statements, load

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
    code = cell_statements(NB, marker)

    def run(found):
        exec(code, found)
        return "passed"
    run.__name__ = marker
    return run


batch_cell = cell("check_batch(*attempt(")
step0 = cell("model = Bigram()")
step1 = cell("print(f\"{params(model):,} parameters\")\nprint(check_model(model, attends=False))")
step2 = cell("print(check_head(Head(4)")

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
    "M1 no pos_emb added (step 1, still named)": ([(X, "x = tok_emb  # (B, T, C)")], step1, "position embeddings"),
    "H12 q @ k.T on 3-D tensors": ([(SCORES, "wei = q @ k.T * k.shape[-1]**-0.5")], step2, "transpose the last two dimensions of k"),
    "H21 key/query/value ignore head_size": ([(KQV, KQV.replace("n_embd, head_size", "n_embd, n_embd"))], step2,
                                             "gives 32 channels per position, not head_size = 4"),
    # session 5 (dev/results/mistake_hunt/cold_03_03b_s5.md, cold_03c_05c_s5.md)
    "HD-h value is the key layer": ([("        self.value = nn.Linear(n_embd, head_size, bias=False)\n", "        self.value = self.key\n")],
                                    step2, "key, query and value share a layer"),
    "HD-i query is the key layer": ([("        self.query = nn.Linear(n_embd, head_size, bias=False)\n", "        self.query = self.key\n")],
                                    step2, "key, query and value share a layer"),
    "HD tied weights": ([("        self.dropout = nn.Dropout(dropout)\n\n    def forward(self, x):\n        B, T, C",
                          "        self.dropout = nn.Dropout(dropout)\n        self.value.weight = self.key.weight\n\n"
                          "    def forward(self, x):\n        B, T, C")], step2, "key, query and value share a layer"),
    "C1 (03) tril sized by head_size": ([(TRIL, TRIL.replace("block_size, block_size", "head_size, head_size"))], step2,
                                        "Head.tril is 4 x 4, not block_size x block_size = 8 x 8"),
}

CORRECT = {
    "H18 SDPA with is_causal and no tril": [(ATTEND, "        v = self.value(x)\n        return F.scaled_dot_product_attention(q, k, v, is_causal=True)"),
                                            (TRIL, "pass")],
    "H24 einsum scores": [(SCORES, "wei = torch.einsum('btd,bsd->bts', q, k) * k.shape[-1]**-0.5")],
    "H13 k.mT": [(SCORES, "wei = q @ k.mT * k.shape[-1]**-0.5")],
    "HD-a the mask's last T rows and columns": [("self.tril[:T, :T] == 0", "self.tril[-T:, -T:] == 0")],
    "HD-l a boolean tril": [(TRIL, TRIL.replace("block_size))", "block_size, dtype=torch.bool))")),
                            ("self.tril[:T, :T] == 0", "~self.tril[:T, :T]")],
    "HD-d softmax by hand": [("wei = self.dropout(F.softmax(wei, dim=-1))", "wei = (wei - wei.amax(-1, keepdim=True)).exp()\n"
                              "        wei = self.dropout(wei / wei.sum(-1, keepdim=True))")],
    "HD the key, query, value with biases": [(KQV, KQV.replace("bias=False", "bias=True"))],
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


@pytest.mark.parametrize("run", [step0], ids=["step 0"])  # step 1's cell uses no batches since session 6
def test_the_checks_with_batches_run_the_model_on_the_batches_device(run):
    """On a GPU get_batch and split_loss put the batches there, so the model a cell checks with them must be moved
    there too. Simulated with the meta device, where a forward pass runs and only .item() fails: a model left on
    the CPU fails earlier, mixing devices in its forward pass."""
    with pytest.raises(Exception) as caught:
        run(ns(device="meta"))
    said = str(caught.value)
    assert "not on the expected device" not in said and "meta tensors" in said, said


HEAD_CALL = next(line for line in (NOTEBOOKS / "03c_the_complete_model.py").read_text(encoding="utf-8").splitlines()
                 if line.startswith("check_head(Head(GPTConfig("))
TRIL_03C = "torch.tril(torch.ones(config.block_size, config.block_size))"


VALUE_03C = "        self.value = nn.Linear(config.n_embd, head_size, bias=False)\n"
HEAD_03C = {"C1 tril sized by head_size": ([(TRIL_03C, "torch.tril(torch.ones(head_size, head_size))")], "Head.tril is 8 x 8, not block_size"),
            "C10 tril sized by n_embd": ([(TRIL_03C, "torch.tril(torch.ones(config.n_embd, config.n_embd))")], "Head.tril is 32 x 32, not"),
            "HD-h (03c) value is the key": ([(VALUE_03C, "        self.value = self.key\n")], "key, query and value share a layer")}


@pytest.mark.parametrize("case", list(HEAD_03C))
def test_03cs_head_check_sees_a_mask_not_sized_by_block_size(case):
    """03c's C1 / C10: the mask sized by head_size (8) or n_embd (32) passed while check_head took T from the mask
    itself; now it probes up to the block_size it is given (16) and compares the mask with it. HD-h: one layer twice."""
    found = load("03c_the_complete_model", device="cpu")
    assert "passed" in eval(HEAD_CALL, found)
    edits, said = HEAD_03C[case]
    found = load("03c_the_complete_model", device="cpu", replace=edits)
    with pytest.raises(AssertionError) as caught:
        eval(HEAD_CALL, found)
    assert type(caught.value).__name__ == "CheckFailed" and said in str(caught.value), str(caught.value)


def test_a_head_without_a_tril_is_probed_up_to_block_size():
    """An SDPA head (no tril) is still run on block_size tokens: T comes from block_size, not from a mask."""
    edits = CORRECT["H18 SDPA with is_causal and no tril"]
    found = ns(replace=edits)
    seen = []
    head = found["Head"](4)
    head.register_forward_pre_hook(lambda m, a: seen.append(a[0].shape[1]))
    assert "passed" in found["check_head"](head, head_size=4, block_size=12)
    assert max(seen) == 12


def long_val(replace=()):
    """The namespace with a validation split of several eval batches (64 chunks each): 2,000 tokens."""
    found = ns(replace=replace)
    found["val_data"] = (torch.arange(2000) * 7) % 61
    return found


SUM = ("    total = sum(model(xb.to(device), yb.to(device))[1].item() * len(xb)\n"
       "                for xb, yb in zip(x.split(eval_batch), y.split(eval_batch)))\n")
SPLIT_MISTAKES = {  # session 5: the whole-split check sees data of 2.5 eval batches
    "SL-i divided by the last batch's size": ([("    model.train()\n    return total / len(x)",
                                                "    model.train()\n    return total / len(x.split(eval_batch)[-1])")],
                                              "not their mean loss"),
    "SL-l the lecture's one random batch": ([("    n = (len(data) - 1) // block_size * block_size\n    " + CHUNKS + "  # (N, T) each\n"
                                              + SUM + "    model.train()\n    return total / len(x)",
                                              "    xb, yb = get_batch('val' if data is val_data else 'train')\n"
                                              "    loss = model(xb, yb)[1].item()\n    model.train()\n    return loss")],
                                            "tokens of data: the loss of a whole split scores every block_size chunk"),
    "SL-b no targets given": ([("total = sum(model(xb.to(device), yb.to(device))[1]", "total = sum(model(xb.to(device))[1]")],
                              "and the model given both, model(xb, yb)"),
    "only the first batch scored": ([("zip(x.split(eval_batch), y.split(eval_batch)))\n    model.train()\n    return total / len(x)",
                                      "zip(x.split(eval_batch)[:1], y.split(eval_batch)[:1]))\n    model.train()\n"
                                      "    return total / len(x.split(eval_batch)[0])")], "tokens of data"),
}
SPLIT_CORRECT = {
    "SL-j unweighted mean of the batch means": [(SUM + "    model.train()\n    return total / len(x)",
                                                 "    losses = [model(xb.to(device), yb.to(device))[1].item()\n"
                                                 "              for xb, yb in zip(x.split(eval_batch), y.split(eval_batch))]\n"
                                                 "    model.train()\n    return sum(losses) / len(losses)")],
    "SL-e a tensor returned": [("[1].item() * len(xb)", "[1] * len(xb)")],
    "one forward pass over every chunk": [(SUM, "    total = model(x.to(device), y.to(device))[1].item() * len(x)\n")],
    "S10 overlapping chunks through unfold": [(CHUNKS, "x, y = data[:-1].unfold(0, block_size, 1), data[1:].unfold(0, block_size, 1)")],
}
SPLIT_MISTAKES.update({  # session 6 (/tmp/brief/cold_s6_03_03b.md, fixed in dev/results/mistake_hunt/cold_s6_fixes.md)
    "sl-a targets batched differently": ([("y.split(eval_batch)))", "y.split(eval_batch + 1)))")], "one step apart, batched alike"),
    "sl-c targets block_size on": ([("data[1:n + 1].view(-1, block_size)  # (N, T) each", "data[block_size:n + block_size].view(-1, "
                                     "block_size)  # (N, T) each")], "one step apart"),
})


@pytest.mark.parametrize("case", list(SPLIT_MISTAKES))
def test_the_whole_split_check_names_the_real_cause(case):
    edits, sentence = SPLIT_MISTAKES[case]
    with pytest.raises(AssertionError) as caught:
        step0(long_val(edits))
    assert type(caught.value).__name__ == "CheckFailed" and sentence in str(caught.value), str(caught.value)


@pytest.mark.parametrize("variant", ["as written"] + list(SPLIT_CORRECT))
def test_a_correct_split_loss_passes_on_several_batches(variant):
    assert "passed" in step0(long_val(SPLIT_CORRECT.get(variant, ())))


gen_cell = cell("\ncheck_generate(generate, block_size=block_size)")
BLM_LOSS = ("loss = None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten())\n"
            "        return logits, loss\n\n\n# %%\n@torch.no_grad()")
BIGRAM_CE = ("loss = None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten())\n"
             "        return logits, loss\n\n\n# %%\nresults = {}")
SAMPLE = "idx_next = torch.multinomial(probs, num_samples=1)  # (B, 1)"
STEP_MISTAKES = {  # session 5, case 4: id: (edits, cell, sentence)
    "GN-h new token prepended": ([("idx = torch.cat((idx, idx_next), dim=1)", "idx = torch.cat((idx_next, idx), dim=1)")],
                                 gen_cell, "did not keep the prompt first"),
    "GN-f temperature 0.8 baked in": ([("probs = F.softmax(logits[:, -1, :], dim=-1)", "probs = F.softmax(logits[:, -1, :] / 0.8, dim=-1)")],
                                      gen_cell, "not [0.5, 0.3, 0.2]: draw with torch.multinomial"),
    "BLM-b a loss without targets": ([(BLM_LOSS, BLM_LOSS.replace("loss = None if targets is None else F", "loss = F"))],
                                     step1, "forward must not compute the loss (loss is None then)"),
    "BLM-a tok_emb * pos_emb": ([(X, "x = tok_emb * pos_emb  # (B, T, C)")], step1, "must be added, not combined another way"),
    "BG-c newlines left out of the loss": ([(BIGRAM_CE, BIGRAM_CE.replace("targets.flatten())", "targets.flatten(), ignore_index=0)"))],
                                           step0, "left out of the loss"),
    "BLM with ignore_index=0": ([(BLM_LOSS, BLM_LOSS.replace("targets.flatten())", "targets.flatten(), ignore_index=0)"))],
                                step1, "left out of the loss"),
}
STEP_CORRECT = {
    "GN-a Gumbel-max": (gen_cell, [(SAMPLE, "idx_next = (probs.log() - torch.empty_like(probs).exponential_().log()).argmax(-1, keepdim=True)")]),
    "GN-b Categorical": (gen_cell, [(SAMPLE, "idx_next = torch.distributions.Categorical(probs=probs).sample()[:, None]")]),
    "GN-i crop by max": (gen_cell, [("idx_cond = idx[:, -block_size:]", "idx_cond = idx[:, max(0, idx.size(1) - block_size):]")]),
    "BLM-e lm_head tied to the token table": (step1, [("        self.lm_head = nn.Linear(n_embd, vocab_size)\n",
                                                       "        self.lm_head = nn.Linear(n_embd, vocab_size)\n"
                                                       "        self.lm_head.weight = self.token_embedding_table.weight\n")]),
    "BLM-f position rows by slicing": (step1, [("self.position_embedding_table(torch.arange(T, device=idx.device))",
                                                "self.position_embedding_table.weight[:T]")]),
    "BG-a cross-entropy on (B, C, T)": (step0, [(BIGRAM_CE, BIGRAM_CE.replace("logits.flatten(0, 1), targets.flatten()", "logits.transpose(1, 2), targets"))]),
}

S6_MISTAKES = {  # session 6's cold reader (cold_s6_03_03b.md): id: (edits, the cell that follows, its sentence)
    "bg-a probabilities as logits": ([("logits = self.token_embedding_table(idx)  # (B, T, vocab_size)",
                                      "logits = self.token_embedding_table(idx).softmax(-1)  # (B, T, vocab_size)")], step0,
                                     "returns probabilities (each row of its logits sums to 1)"),
    "m-e body left None": ([("self.body = body or nn.Identity()", "self.body = body")], step1, "a layer is None, not a module"),
    "hd-a the weights times x": ([("        v = self.value(x)  # (B, T, hs)\n", "        v = x  # (B, T, hs)\n")], step2,
                                 "the weights multiply x itself, not its values"),
    "n-a a crop of the rows": ([("idx_cond = idx[:, -block_size:]", "idx_cond = idx[-block_size:]")], gen_cell,
                               "a crop cuts only the time axis"),
    "n-j temperature 0.9 baked in": ([("probs = F.softmax(logits[:, -1, :], dim=-1)", "probs = F.softmax(logits[:, -1, :] / 0.9, dim=-1)")],
                                     gen_cell, "no temperature"),
}
def fused_head(cut):
    """03's Head with one Linear making q, k and v, cut in three in the order `cut`."""
    return [("        self.key = nn.Linear(n_embd, head_size, bias=False)\n        self.query = nn.Linear(n_embd, head_size, bias=False)\n"
             "        self.value = nn.Linear(n_embd, head_size, bias=False)\n", "        self.qkv = nn.Linear(n_embd, 3 * head_size, bias=False)\n"),
            ("        k = self.key(x)  # (B, T, hs)\n        q = self.query(x)  # (B, T, hs)\n", f"        {cut} = self.qkv(x).chunk(3, dim=-1)\n"),
            ("        v = self.value(x)  # (B, T, hs)\n", "")]


S6_CORRECT = {
    "m-a a bias-free lm_head": (step2, [("self.lm_head = nn.Linear(n_embd, vocab_size)", "self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)")]),
    "hd-f one fused qkv Linear in Head": (step2, fused_head("q, k, v")),
    "hd-f fused, cut as k, q, v": (step2, fused_head("k, q, v")),
}
STEP_MISTAKES.update(S6_MISTAKES)
STEP_CORRECT.update(S6_CORRECT)


@pytest.mark.parametrize("case", list(STEP_MISTAKES))
def test_the_checks_of_03s_own_pieces_name_the_real_cause(case):
    edits, run, sentence = STEP_MISTAKES[case]
    with pytest.raises(AssertionError) as caught:
        run(ns(replace=edits))
    assert type(caught.value).__name__ == "CheckFailed" and sentence in str(caught.value), str(caught.value)


@pytest.mark.parametrize("variant", list(STEP_CORRECT))
def test_a_correct_variant_passes_03s_own_checks(variant):
    run, edits = STEP_CORRECT[variant]
    assert "passed" in run(ns(replace=edits))



def test_train_puts_the_model_in_training_mode():
    """d-c: a model handed to train() in eval mode (model = transformer().eval()) trains with dropout on all the same."""
    found = ns()
    found.update(max_iters=2, learning_rate=1e-3, USING_SHAKESPEARE=False, SMOKE=True)
    modes, step = [], found["train_step"]
    found["train_step"] = lambda model, *a: (modes.append(model.training), step(model, *a))[1]
    found["train"](found["Bigram"]().eval(), "0 bigram")
    assert modes == [True, True]
