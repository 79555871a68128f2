"""Notebook 05's checks meet a learner's own mistakes: each mistake below is one edit to the notebook's
own source (tests/notebook_code.load(replace=...)), and the check that follows that piece in the
notebook must stop with CheckFailed and the sentence that names it; each correct variant must pass.
The hunt's table (mistake, what the learner met before, what now) is in dev/results/mistake_hunt/hunt_05.md.
The mistakes in the race's pieces (the schedule, the optimizer) moved with the race to tests/test_05c_mistakes.py."""
import pytest
import torch

from notebook_code import cell_statements, load

NOTEBOOK = "05_fast_gpt"


def ns(replace=()):
    return load(NOTEBOOK, replace=replace, device="cpu", amp_dtype=None)


def ns_5b(replace=()):
    return load("05b_speed_up_close", replace=replace, device="cpu")


def copied_heads(ns):
    toy = ns["GPTConfig"](vocab_size=65, block_size=16, n_embd=64, n_head=4, n_layer=2, dropout=0.0)
    torch.manual_seed(0)
    mha = ns["MultiHeadAttention"](toy)
    return ns["check_same_function"](ns["copy_heads"](mha, ns["CausalSelfAttention"](toy)), mha, "copy_heads",
                                     [torch.randn(2, 16, 64), torch.randn(3, 5, 64)])


def copied_model(ns):
    toy = ns["GPTConfig"](vocab_size=65, block_size=16, n_embd=64, n_head=4, n_layer=2, dropout=0.0)
    torch.manual_seed(0)
    lecture = ns["GPTLanguageModel"](toy)
    return ns["check_same_function"](ns["fast_from_lecture"](lecture), lecture, "fast_from_lecture",
                                     [torch.randint(0, 65, (2, 16)), torch.randint(0, 65, (3, 7))])


def attention(flash):
    def run(ns):
        toy = ns["GPTConfig"](vocab_size=65, block_size=16, n_embd=64, n_head=4, n_layer=2, dropout=0.2)
        return ns["check_causal_self_attention"](ns["CausalSelfAttention"](toy, flash=flash), toy)
    return run


def batches(ns):
    torch.manual_seed(0)
    return ns["check_batches_on_device"](ns["get_batch_on_device"])


def step(ns):
    return ns["check_scaled_step"](ns["scaled_step"])


SPLIT = "q, k, v = self.qkv(x).split(C, dim=2)  # (B, T, C) each"
HEADS = "q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))"
JOIN = "y = y.transpose(1, 2).contiguous().view(B, T, C)"
SCORES = "wei = q @ k.transpose(-2, -1) * k.shape[-1]**-0.5  # (B, nh, T, T)"
MASK = "    wei = wei.masked_fill(tril[:T, :T] == 0, float('-inf'))  # (B, nh, T, T)\n"
LR = "    for group in optimizer.param_groups:\n        group['lr'] = lr\n"
ZERO = "    optimizer.zero_grad(set_to_none=True)\n    scaler.scale(loss).backward()\n"
UNSCALE = "        scaler.unscale_(optimizer)  # the true gradients, so that the clip sees their real norm\n"
CLIP = "        nn.utils.clip_grad_norm_(model.parameters(), clip)\n"
UPDATE = "    scaler.update()  # halve the scale after an overflow, double it after growth_interval good steps\n"

MISTAKES = {  # name: (the learner's edit as (old, new) pairs, the check, what its sentence says)
    # the eval() calls agree without dropout, so only a training-mode probe with dropout > 0 sees it gone
    "by hand: attention dropout removed": ([("return dropout(F.softmax(wei, dim=-1)) @ v", "return F.softmax(wei, dim=-1) @ v")],
                                           attention(False), "drops no attention weights in training mode"),
    "fused: dropout_p never passed": ([("dropout_p=self.dropout_p if self.training else 0.0)", "dropout_p=0.0)")],
                                      attention(True), "drops no attention weights in training mode"),
    "output dropout removed (flash)": ([("return self.dropout(self.proj(y))", "return self.proj(y)")], attention(True),
                                       "the dropout on the output, after proj, is missing"),
    "output dropout removed (by hand)": ([("return self.dropout(self.proj(y))", "return self.proj(y)")], attention(False),
                                         "the dropout on the output, after proj, is missing"),
    "no dropout at all": ([("return self.dropout(self.proj(y))", "return self.proj(y)"),
                           ("dropout_p=self.dropout_p if self.training else 0.0)", "dropout_p=0.0)")], attention(True),
                          "no dropout is applied"),
    # a view of (B, nh, T, hs) as (B, T, C) keeps the shape, so only the values show the missing transpose
    "heads joined without transposing back": ([(JOIN, "y = y.contiguous().view(B, T, C)")], attention(True),
                                              "heads are joined without transposing back"),
    "split along T, not C": ([(SPLIT, SPLIT.replace("dim=2", "dim=1"))], attention(True), "fails on x of shape"),
    ".contiguous() left out before the view": ([(JOIN, JOIN.replace(".contiguous()", ""))], attention(False),
                                               "fails on x of shape"),
    "heads made by view alone, no transpose": ([(HEADS, "q, k, v = (t.view(B, self.n_head, T, C // self.n_head) for t in (q, k, v))")],
                                              attention(True), "check split, view, transpose and the join"),
    "attention dropout also in eval mode": ([("dropout_p=self.dropout_p if self.training else 0.0)", "dropout_p=self.dropout_p)")],
                                            attention(True), "dropout is applied outside training"),
    "by hand: scores scaled by C": ([(SCORES, SCORES.replace("k.shape[-1]**-0.5", "(k.shape[1] * k.shape[-1])**-0.5"))], attention(False),
                                    "scaled by C**-0.5"),
    "by hand: softmax over dim=-2": ([("return dropout(F.softmax(wei, dim=-1)) @ v", "return dropout(F.softmax(wei, dim=-2)) @ v")],
                                     attention(False), "the softmax runs over the wrong dimension"),
    "by hand: no mask": ([(MASK, "")], attention(False), "there is no causal mask"),
    "batch positions without the + 1": ([("pos = ix + torch.arange(block_size + 1, device=data.device)",
                                          "pos = ix + torch.arange(block_size, device=data.device)")], batches,
                                        "not two (4, 8) tensors"),
    "batch offsets of shape (B,)": ([("(batch_size, 1), device=data.device)  # (B, 1) offsets",
                                      "(batch_size,), device=data.device)  # (B, 1) offsets")], batches,
                                    "get_batch_on_device(data, batch_size=4, block_size=8) fails"),
    "the last chunk never drawn": ([("torch.randint(len(data) - block_size, (batch_size, 1)",
                                     "torch.randint(len(data) - block_size - 1, (batch_size, 1)")], batches,
                                   "not at every offset"),
    "inputs and targets swapped": ([("return chunk[:, :-1], chunk[:, 1:]", "return chunk[:, 1:], chunk[:, :-1]")], batches,
                                   "the targets are not the inputs moved one step on"),
}

MISTAKES_5B = {  # notebook 05b, which holds the check of notebook 05's training step: name: (edit, check, sentence)
    "scaler.update() left out": ([(UPDATE, "")], step, "scaler.update()"),
    "unscale_ left out before clipping": ([(UNSCALE, "")], step, "clipped while still multiplied by the scale"),
    "clipping before unscale_": ([(UNSCALE + CLIP, CLIP + UNSCALE)], step, "clipped while still multiplied by the scale"),
    "optimizer.step() for scaler.step": ([("scaler.step(optimizer)  # skipped", "optimizer.step()  # skipped")], step,
                                         "step with scaler.step(optimizer)"),
    "zero_grad between backward and the step": ([(ZERO, "    scaler.scale(loss).backward()\n    optimizer.zero_grad(set_to_none=True)\n")],
                                                step, "were the gradients zeroed between backward and the step"),
    "zero_grad left out": ([(ZERO, "    scaler.scale(loss).backward()\n")], step, "gradients of earlier steps are added in"),
    "the learning rate never set": ([(LR, "")], step, "the learning rate lr was not given"),
    "plain loss.backward()": ([("    scaler.scale(loss).backward()\n    if clip:", "    loss.backward()\n    if clip:")], step,
                              "backward through scaler.scale(loss)"),
    "clipped at 1.0, not at clip": ([(CLIP, CLIP.replace("clip)", "1.0)"))], step, "differ from SGD computed by hand"),
    "copy_heads: key and query swapped": ([("enumerate(['query', 'key', 'value'])", "enumerate(['key', 'query', 'value'])")],
                                          copied_heads, "copy_heads computes another function than the lecture's"),
    "copy_heads: the projection not copied": ([("        attn.proj.load_state_dict(mha.proj.state_dict())\n", "")], copied_heads,
                                              "a weight went to the wrong place or was not copied"),
    "fast_from_lecture: the heads not copied": ([("        copy_heads(block.sa, fast_block.sa)\n", "        pass\n")], copied_model,
                                                "fast_from_lecture computes another function"),
    "fast_from_lecture: the blocks skipped": ([("if '.sa.' not in k}", "if 'blocks' not in k}")], copied_model,
                                              "fast_from_lecture computes another function"),
}

CORRECT_5B = {  # notebook 05b: name: (a variant a learner may write, the check)
    "zero_grad at the end of the step": ([(ZERO, "    scaler.scale(loss).backward()\n"),
                                          (UPDATE, UPDATE + "    optimizer.zero_grad()\n")], step),
    "unscale_ on every step": ([(UNSCALE, ""), ("    if clip:\n        nn.utils", "    scaler.unscale_(optimizer)\n    if clip:\n        nn.utils")],
                               step),
    "clip the optimizer's own parameters": ([(CLIP, "        nn.utils.clip_grad_norm_([p for g in optimizer.param_groups "
                                                    "for p in g['params']], clip)\n")], step),
}

CORRECT = {  # name: (a variant a learner may write, the check)
    "scores with einsum": ([(SCORES, "wei = torch.einsum('bhqd,bhkd->bhqk', q, k) * k.shape[-1]**-0.5  # (B, nh, T, T)")],
                           attention(False)),
    "output projection without a bias": ([("self.proj = nn.Linear(config.n_embd, config.n_embd)\n        self.attn_dropout",
                                           "self.proj = nn.Linear(config.n_embd, config.n_embd, bias=False)\n        self.attn_dropout")],
                                         attention(True)),
    "batches stacked from slices": ([("chunk = data[pos]  # (B, T+1)",
                                      "chunk = torch.stack([data[i:i + block_size + 1] for i in ix.flatten().tolist()])  # (B, T+1)")],
                                    batches),
}

SDPA = "y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.dropout_p if self.training else 0.0)"
TRIL = "self.register_buffer('tril', torch.tril(torch.ones(config.block_size, config.block_size)), persistent=False)"


def parameters(ns):  # the cell after FastGPT, replayed as written
    ns["toy"] = ns["GPTConfig"](vocab_size=65, block_size=16, n_embd=64, n_head=4, n_layer=2, dropout=0.2)
    exec(cell_statements(NOTEBOOK, "check(count(GPTLanguageModel(toy)) == count(FastGPT(toy))"), ns)
    return "passed"


MISTAKES.update({  # session 7's cold reader (dev/results/mistake_hunt/cold_s7.md)
    "05-57 nanoGPT's dropout_p=self.dropout, here the module": ([(SDPA, SDPA.replace("dropout_p=self.dropout_p", "dropout_p=self.dropout"))],
                                                                attention(True), "in training mode raised TypeError"),
    "05-28 a mask given with is_causal": ([(SDPA, SDPA.replace("is_causal=True", "attn_mask=self.tril[:T, :T] == 1, is_causal=True"))],
                                          attention(True), "in training mode raised"),
    "05-51 the mask keeps the future instead": ([(MASK, MASK.replace("== 0", "== 1"))], attention(False), "gives nan or inf"),
    "05-34 tril sized by n_head": ([(TRIL, TRIL.replace("torch.ones(config.block_size, config.block_size)", "torch.ones(config.n_head, config.n_head)"))],
                                   attention(False), "tril is 4 wide, less than block_size = 16"),
    "05-48 proj skipped": ([("return self.dropout(self.proj(y))", "return self.dropout(y)")], attention(True),
                           "is not its proj applied to the heads"),
    "05-42 a hard-coded attention dropout": ([("self.attn_dropout = nn.Dropout(config.dropout)", "self.attn_dropout = nn.Dropout(0.1)")],
                                             attention(False), "dropout rates are [0.1, 0.2], though config.dropout = 0.2"),
    "05-49 qkv with a bias": ([("self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=False)", "self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd)")],
                              parameters, "does not hold the lecture's number of parameters"),
})
MISTAKES.update({  # session 7's second cold reader (cold_s7b.md)
    "05-l the output dropout before proj": ([("return self.dropout(self.proj(y))", "return self.proj(self.dropout(y))")], attention(True),
                                            "the dropout on the output, after proj, is missing"),
    "05-m dropout on the scores, before the softmax": ([("return dropout(F.softmax(wei, dim=-1)) @ v", "return F.softmax(dropout(wei), dim=-1) @ v")],
                                                      attention(False), "a dropout before the softmax"),
    "05-n the whole mask, not tril[:T, :T]": ([("masked_fill(tril[:T, :T] == 0", "masked_fill(tril == 0")], attention(False),
                                              "is something sized by block_size where T belongs"),
})
CORRECT.update({
    "05-ae the mask made in forward, no buffer": ([(TRIL, ""), ("attention_by_hand(q, k, v, self.tril, self.attn_dropout)",
                                                              "attention_by_hand(q, k, v, torch.tril(torch.ones(T, T, device=x.device)), self.attn_dropout)")],
                                                  attention(False)),
    "05-ag nanoGPT's buffer name, bias": ([(TRIL, TRIL.replace("'tril'", "'bias'")), ("attention_by_hand(q, k, v, self.tril, self.attn_dropout)",
                                                                                    "attention_by_hand(q, k, v, self.bias, self.attn_dropout)")], attention(False)),
    "05-36 nanoGPT's 4-D mask": ([(TRIL, TRIL.replace("config.block_size)), persistent=False)",
                                                  "config.block_size)).view(1, 1, config.block_size, config.block_size), persistent=False)")),
                                  ("masked_fill(tril[:T, :T] == 0", "masked_fill(tril[:, :, :T, :T] == 0")], attention(False)),
    "q, k, v by chunk": ([(SPLIT, "q, k, v = self.qkv(x).chunk(3, dim=-1)  # (B, T, C) each")], attention(True)),
    "the parameter count as written": ([], parameters),
})


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


def test_there_are_at_least_fifteen_mistakes_and_every_check_is_probed():
    assert len(MISTAKES) >= 15
    assert {c for _, c, _ in MISTAKES.values()} >= {batches}
    assert {c.__qualname__ for _, c, _ in MISTAKES.values()} >= {"attention.<locals>.run"}
    assert step in {c for _, c, _ in MISTAKES_5B.values()}


STEP_MISTAKES = [m for m, (_, c, _) in MISTAKES_5B.items() if c is step]


@pytest.mark.parametrize("mistake", STEP_MISTAKES)
def test_notebook_05_checks_its_own_training_step_too(mistake):
    """05 shows scaled_step where a learner may edit it: its own copy of the check stops the same mistakes."""
    edit, run_check, sentence = MISTAKES_5B[mistake]
    assert "passed" in run_check(ns())
    with pytest.raises(AssertionError) as caught:
        run_check(ns(replace=edit))
    assert type(caught.value).__name__ == "CheckFailed" and sentence in str(caught.value), str(caught.value)


@pytest.mark.parametrize("variant", [v for v, (_, c) in CORRECT_5B.items() if c is step])
def test_notebook_05_accepts_a_correct_training_step(variant):
    edit, run_check = CORRECT_5B[variant]
    assert "passed" in run_check(ns(replace=edit))


@pytest.mark.parametrize("mistake", list(MISTAKES_5B))
def test_notebook_05b_stops_the_mistake_with_its_sentence(mistake):
    edit, run_check, sentence = MISTAKES_5B[mistake]
    assert "passed" in run_check(ns_5b())
    with pytest.raises(AssertionError) as caught:
        run_check(ns_5b(replace=edit))
    assert type(caught.value).__name__ == "CheckFailed" and sentence in str(caught.value), str(caught.value)
    assert "\n" not in str(caught.value)  # one sentence, not a traceback


@pytest.mark.parametrize("variant", list(CORRECT_5B))
def test_notebook_05b_accepts_a_correct_variant(variant):
    edit, run_check = CORRECT_5B[variant]
    assert "passed" in run_check(ns_5b(replace=edit))


def test_notebook_05b_accepts_heads_copied_in_one_go():
    one_go = ("        for i, name in enumerate(['query', 'key', 'value']):\n"
              "            attn.qkv.weight[i * attn.proj.in_features:(i + 1) * attn.proj.in_features] = torch.cat(\n"
              "                [getattr(h, name).weight for h in mha.heads])  # (C, C) the heads stacked\n",
              "        attn.qkv.weight.copy_(torch.cat([getattr(h, n).weight for n in ('query', 'key', 'value') for h in mha.heads]))\n")
    assert "passed" in copied_heads(ns_5b(replace=[one_go]))
