"""Notebook 06's mistake hunt: mistakes a learner new to the code makes in exercises 1 and 2 (one edit
of the notebook's own solution, as the learner would write it), each met by the check after the piece
with the sentence that names it; and correct variants the checks must accept. The table of what a
learner met before and after is in the hunt's note (mistake -> before -> after)."""
import pytest

from notebook_code import load

NB = "06_exercises"

SPLIT = "q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)"
SCORES = "wei = q @ k.transpose(-2, -1) * k.shape[-1]**-0.5  # (B, nh, T, T), scaled by head_size"
MASK = "wei = wei.masked_fill(self.tril[:T, :T] == 0, float('-inf'))  # (B, nh, T, T)"
SOFTMAX = "wei = self.attn_dropout(F.softmax(wei, dim=-1))  # (B, nh, T, T)"
JOIN = "y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C): the heads side by side, as torch.cat put them"
OUT = "return self.dropout(self.proj(y))  # (B, T, C)\n\n\n# %%\ncheck_batched_heads(BatchedHeadAttentionSolution)"
QKV = "q, k, v = self.qkv(x).split(C, dim=2)  # (B, T, C) each"
ATTENTION = SCORES + "\n        " + MASK + "\n        " + SOFTMAX + "\n        y = wei @ v"

PICK = "picked = problems[torch.randint(len(problems), (batch_size,))]  # (B,) problem numbers"
AB = "a, b = picked // 10**digits, picked % 10**digits  # (B,) each"
ANSWER = "answer = digits_of(a + b, digits + 1)  # (B, digits + 1)"
TOKENS = "plus, equals = torch.full((batch_size, 1), 10), torch.full((batch_size, 1), 11)  # (B, 1) each"
SEQ = "seq = torch.cat([digits_of(a, digits), plus, digits_of(b, digits), equals, answer], dim=1)  # (B, 3 * digits + 3)"
SHIFT = "x, y = seq[:, :-1], seq[:, 1:].clone()  # (B, T) each, T = 3 * digits + 2"
RETURN = "        y[:, :2 * digits + 1] = -1  # no loss on the rest of 'a+b=': only the answer is learned\n    return x, y"

heads = lambda ns: ns["check_batched_heads"](ns["BatchedHeadAttentionSolution"])
batches = lambda ns: ns["check_addition_batch"](ns["get_addition_batch_solution"])

MISTAKES = {  # name: (the learner's edits as (old, new) pairs, the check, what its sentence must say)
    # Exercise 1: the heads as a batch dimension
    "1 heads split by a view without the transpose": (
        [(SPLIT, "q, k, v = (t.reshape(B, self.n_head, T, C // self.n_head) for t in (q, k, v))  # (B, nh, T, hs)")],
        heads, "head 0's output does not come from head 0's channels"),
    "1 heads split by a view of a non-contiguous tensor": (
        [(SPLIT, "q, k, v = (t.view(B, self.n_head, T, C // self.n_head) for t in (q, k, v))  # (B, nh, T, hs)")],
        heads, "view needs a contiguous tensor: call .contiguous() first, or use .reshape"),
    "1 heads joined without transposing back": (
        [(JOIN, "y = y.contiguous().view(B, T, C)  # (B, T, C)")], heads, "joined without transposing them back"),
    "1 heads joined with the channels interleaved": (
        [(JOIN, "y = y.permute(0, 2, 3, 1).reshape(B, T, C)  # (B, T, C)")], heads, "does not come from head"),
    "1 scores multiplied by sqrt(head_size)": (
        [(SCORES, SCORES.replace("**-0.5", "**0.5"))], heads, "the scores are multiplied by head_size**0.5"),
    "1 scores divided by head_size": (
        [(SCORES, SCORES.replace("* k.shape[-1]**-0.5", "/ k.shape[-1]"))], heads, "divided by head_size, not by its square root"),
    "1 the future masked with 0, not -inf": (
        [(MASK, MASK.replace("float('-inf')", "0.0"))], heads, "the future is filled with 0, not float('-inf')"),
    "1 the mask applied after the softmax": (
        [(ATTENTION, "wei = F.softmax(" + SCORES.split(" = ")[1].split("  #")[0] + ", dim=-1)\n        "
          "wei = self.attn_dropout(wei.masked_fill(self.tril[:T, :T] == 0, 0.0))\n        y = wei @ v")],
        heads, "do not sum to 1: the softmax must come after the mask"),
    "1 the mask result not assigned": (
        [(MASK, "wei.masked_fill(self.tril[:T, :T] == 0, float('-inf'))  # (B, nh, T, T)")], heads, "there is no causal mask"),
    "1 keys and values swapped in the split": (
        [(QKV, "q, v, k = self.qkv(x).split(C, dim=2)  # (B, T, C) each")], heads, "its heads use the queries as queries, the values as keys and the keys as values"),
    "1 queries and keys swapped in the split": (
        [(QKV, "k, q, v = self.qkv(x).split(C, dim=2)  # (B, T, C) each")], heads, "queries and keys are swapped"),
    "1 split into n_head pieces instead of three": (
        [(QKV, "q, k, v = self.qkv(x).split(self.n_head, dim=2)  # (B, T, C) each")], heads,
        "fails on an input of shape (B, T, C) = (3, 16, 64) (qkv gave (3, 16, 192)): ValueError"),
    "1 split along the time axis": (
        [(QKV, "q, k, v = self.qkv(x).split(C, dim=1)  # (B, T, C) each")], heads, "(qkv gave (3, 16, 192)): ValueError"),
    "1 the head count written as a number": (
        [(SPLIT, SPLIT.replace("self.n_head, C // self.n_head", "4, C // 4"))], heads, "n_head = 6) by up to"),
    "1 F.dropout left on in eval mode": (
        [(SOFTMAX, "wei = F.dropout(F.softmax(wei, dim=-1), 0.1)  # (B, nh, T, T)")], heads, "in eval mode gives another output each time"),
    "1 no dropout on the attention weights": (
        [(SOFTMAX, "wei = F.softmax(wei, dim=-1)  # (B, nh, T, T)")], heads, "applies no dropout to the attention weights"),
    "1 the projection applied twice": (
        [(OUT, OUT.replace("self.proj(y)", "self.proj(self.proj(y))"))], heads, "apply self.proj once"),
    "1 a mask sized by block_size": (
        [(MASK, MASK.replace("self.tril[:T, :T]", "self.tril"))], heads, "crop the mask to tril[:T, :T]"),
    "1 a mask one step into the future": (
        [(MASK, MASK.replace("self.tril[:T, :T] == 0", "torch.ones(T, T).tril(1) == 0"))], heads, "one step into the future"),
    # Exercise 2: a GPT that adds
    "2 the answer one digit short": ([(ANSWER, "answer = digits_of(a + b, digits)  # (B, digits)")], batches,
                                     "should return two (64, 11) tensors"),
    "2 the last problem never drawn": ([(PICK, PICK.replace("len(problems)", "len(problems) - 1"))], batches,
                                       "only 2 of the 3 problems given came up"),
    "2 a and b read the wrong way round": ([(AB, "b, a = picked // 10**digits, picked % 10**digits  # (B,) each")], batches,
                                           "a and b are swapped"),
    "2 '+' and '=' swapped": ([(TOKENS, TOKENS.replace("10), torch", "11), torch").replace("1), 11)", "1), 10)"))], batches,
                              "the rows do not read a+b="),
    "2 x and y returned the wrong way round": ([(RETURN, RETURN.replace("return x, y", "return y, x"))], batches,
                                               "x holds the -1s and y none"),
    "2 the batch flipped instead of the digits": ([("answer = answer.flip(1)  # lowest digit first",
                                                    "answer = answer.flip(0)  # lowest digit first")], batches, "as 4 digits, reversed"),
    "2 tokens as floats": ([(SEQ, SEQ.replace("dim=1)", "dim=1).float()"))], batches, "tokens must be torch.long"),
    "2 lists instead of tensors": ([(RETURN, RETURN.replace("return x, y", "return x.tolist(), y.tolist()"))], batches,
                                   "should return a pair of tensors"),
    "2 three things returned": ([(RETURN, RETURN.replace("return x, y", "return x, y, seq"))], batches,
                                "should return a pair of tensors (x, y), got tuple of 3"),
    "2 x keeps the last token": ([(SHIFT, "x, y = seq, seq[:, 1:].clone()  # (B, T) each")], batches, "got (64, 12) and (64, 11)"),
    "2 the digits fixed at three": ([(SEQ, SEQ.replace("digits_of(a, digits)", "digits_of(a, 3)"))], batches, "with digits=2"),
    "2 the mask one short": ([(RETURN, RETURN.replace(":2 * digits + 1]", ":2 * digits]"))], batches, "the first 7 targets should all be -1"),
    "2 the answer's width hard-coded": ([(ANSWER, "answer = digits_of(a + b, 4)  # (B, 4)")], batches, "with digits=2"),
}


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_the_check_names_the_mistake(mistake):
    edits, run_check, sentence = MISTAKES[mistake]
    with pytest.raises(AssertionError) as caught:
        run_check(load(NB, replace=edits, device="cpu"))
    said = str(caught.value)
    assert type(caught.value).__name__ == "CheckFailed" and sentence in said and "\n" not in said, said


CORRECT = {  # correct code a learner may write instead of the solution: the check must pass it
    "1 scaled_dot_product_attention": [(ATTENTION, "y = F.scaled_dot_product_attention(q, k, v, is_causal=True, "
                                        "dropout_p=self.attn_dropout.p if self.training else 0.0)")],
    "1 einsum": [(ATTENTION, "wei = torch.einsum('bhtd,bhsd->bhts', q, k) / (k.shape[-1] ** 0.5)\n        "
                  + MASK + "\n        " + SOFTMAX + "\n        y = torch.einsum('bhts,bhsd->bhtd', wei, v)")],
    "1 reshape instead of contiguous and view": [(JOIN, "y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, C)")],
    "1 chunk instead of split, the mask in place": [(QKV, "q, k, v = self.qkv(x).chunk(3, dim=-1)  # (B, T, C) each"),
                                                     (MASK, "wei.masked_fill_(self.tril[:T, :T] == 0, float('-inf'))")],
    "1 the mask from the bottom-right of tril": [(MASK, MASK.replace("self.tril[:T, :T]", "self.tril[-T:, -T:]"))],
    "2 the sequence built digit by digit": [(SEQ, "seq = torch.cat([digits_of(a, digits), plus, digits_of(b, digits), "
                                             "equals] + [answer[:, [j]] for j in range(digits + 1)], dim=1)")],
    "2 the answer reversed by hand": [("answer = answer.flip(1)  # lowest digit first",
                                       "answer = answer[:, torch.arange(digits, -1, -1)]  # lowest digit first")],
}


@pytest.mark.parametrize("variant", list(CORRECT))
def test_the_check_accepts_a_correct_variant(variant):
    run_check = heads if variant.startswith("1") else batches
    assert "passed" in run_check(load(NB, replace=CORRECT[variant], device="cpu"))


def test_there_are_at_least_fifteen_mistakes_in_this_notebook():
    assert len(MISTAKES) >= 15 and {m[0] for m in MISTAKES} == {"1", "2"}
