"""Notebook 02's attention check meets the mistakes a learner new to the code makes (the hunt of issue 21).

Each mistake is one edit of `self_attention` in notebooks/02_self_attention.py; `check_self_attention`,
which compares it with PyTorch's F.scaled_dot_product_attention at three lengths, must stop with
CheckFailed and a sentence naming the cause (or saying it cannot name it, never a wrong one). The
correct variants at the end are other ways of writing the head: the check must let them pass."""
import pytest

from notebook_code import load

SCORES = "    wei = q @ k.transpose(-2, -1)  # (B, T, hs) @ (B, hs, T) -> (B, T, T)"
SCALE = "        wei = wei * k.shape[-1]**-0.5  # (B, T, T)"
TRIL = "        tril = torch.tril(torch.ones(T, T))  # (T, T)\n        wei = wei.masked_fill(tril == 0, float('-inf'))  # (B, T, T)"
MASK = "        wei = wei.masked_fill(tril == 0, float('-inf'))  # (B, T, T)"
SOFTMAX = "    wei = F.softmax(wei, dim=-1)  # (B, T, T)\n    v = value(x)  # (B, T, head_size)\n    out = wei @ v  # (B, T, T) @ (B, T, hs) -> (B, T, hs)"


def check(replace=()):
    ns = load("02_self_attention", replace=replace)
    return ns["check_self_attention"](ns["self_attention"])


MISTAKES = {  # name: (the learner's edits, what the check's sentence must say)
    "a mask of ones, not a triangle": ([(TRIL, TRIL.replace("torch.tril(torch.ones(T, T))", "torch.ones(T, T)"))], "there is no causal mask"),
    "masked_fill's result thrown away": ([(MASK, "        wei.masked_fill(tril == 0, float('-inf'))  # (B, T, T)")], "there is no causal mask"),
    "the past masked instead of the future": ([(MASK, MASK.replace("tril == 0", "tril == 1"))], "inf or nan"),
    "the future filled with 0": ([(MASK, MASK.replace("float('-inf')", "0.0"))], "filled with 0, not float('-inf')"),
    "a mask without the diagonal": ([(TRIL, TRIL.replace("torch.ones(T, T))", "torch.ones(T, T), diagonal=-1)"))], "keep the diagonal"),
    "scores multiplied by sqrt(head_size)": ([(SCALE, SCALE.replace("**-0.5", "**0.5"))], "multiplied by head_size**0.5"),
    "scores divided by head_size": ([(SCALE, "        wei = wei / k.shape[-1]  # (B, T, T)")], "divided by head_size, not by its square root"),
    "the scale after the softmax": ([(SCALE, "        pass"),
                                     (SOFTMAX, SOFTMAX.replace("F.softmax(wei, dim=-1)", "F.softmax(wei, dim=-1) * k.shape[-1]**-0.5"))],
                                    "the scale is applied after the softmax"),
    "the scores without the transpose": ([(SCORES, "    wei = q @ k  # (B, T, T)")], "raised RuntimeError"),
    "the queries transposed instead of the keys": ([(SCORES, "    wei = q.transpose(-2, -1) @ k  # (B, T, T)")], "raised RuntimeError"),
    "a mask sized by a constant": ([(TRIL, TRIL.replace("torch.ones(T, T)", "torch.ones(8, 8)"))], "raised RuntimeError"),
    "the softmax over dimension 1": ([(SOFTMAX, SOFTMAX.replace("dim=-1", "dim=1"))], "the softmax runs over the wrong dimension"),
    "values from the query": ([(SOFTMAX, SOFTMAX.replace("v = value(x)", "v = query(x)"))], "the weights multiply the queries"),
    "the weights applied to x": ([(SOFTMAX, SOFTMAX.replace("out = wei @ v", "out = wei @ x"))], "the output has shape"),
    "the softmax before the mask": ([("    if causal:\n" + TRIL + "\n    wei = F.softmax(wei, dim=-1)  # (B, T, T)\n",
                                      "    wei = F.softmax(wei, dim=-1)  # (B, T, T)\n    if causal:\n" + TRIL + "\n")], "inf or nan"),
    "no softmax at all": ([(SOFTMAX, SOFTMAX.replace("    wei = F.softmax(wei, dim=-1)  # (B, T, T)\n", ""))], "inf or nan"),
    "the scores returned as the weights": ([(SOFTMAX, SOFTMAX.replace("    wei = F.softmax(wei, dim=-1)", "    probs = F.softmax(wei, dim=-1)")
                                             .replace("out = wei @ v", "out = probs @ v"))], "are not the (2, 5, 5) weights it applied"),
    "scaled by the context length": ([(SCALE, "        wei = wei * T**-0.5  # (B, T, T)")], "in a way this check cannot name"),
}

CORRECT = {  # other ways to write the same head
    "einsum scores": [(SCORES, "    wei = torch.einsum('bth,bsh->bts', q, k)  # (B, T, T)")],
    "queries scaled before the product": [(SCALE, "        wei = (q * k.shape[-1]**-0.5) @ k.transpose(-2, -1)  # (B, T, T)")],
    "a boolean mask": [(TRIL, "        tril = torch.tril(torch.ones(T, T, dtype=torch.bool))  # (T, T)\n"
                              "        wei = wei.masked_fill(~tril, float('-inf'))  # (B, T, T)")],
    "softmax as a tensor method": [(SOFTMAX, SOFTMAX.replace("F.softmax(wei, dim=-1)", "wei.softmax(-1)"))],
    "masked_fill_ in place": [(MASK, "        wei.masked_fill_(tril == 0, float('-inf'))  # (B, T, T)")],
    "a mask filled with -1e9": [(MASK, MASK.replace("float('-inf')", "-1e9"))],
    "softmax by hand": [(SOFTMAX, SOFTMAX.replace("    wei = F.softmax(wei, dim=-1)  # (B, T, T)\n",
                                                   "    wei = wei.exp()\n    wei = wei / wei.sum(-1, keepdim=True)\n"))],
    "the scale as a division by size(-1) ** 0.5": [(SCALE, "        wei = wei / k.size(-1) ** 0.5  # (B, T, T)")],
    "einsum for the output": [(SOFTMAX, SOFTMAX.replace("out = wei @ v", "out = torch.einsum('bts,bsh->bth', wei, v)"))],
}


MISTAKES.update({  # the cold learner's hunt (cold13)
    "the mask from torch.triu": ([(TRIL, TRIL.replace("torch.tril(torch.ones(T, T))", "torch.triu(torch.ones(T, T))"))], "hides the past (torch.triu)"),
    "the scale typed **-1/2": ([(SCALE, SCALE.replace("**-0.5", "**-1/2"))], "which Python reads as (head_size**-1) / 2"),
    "queries from the key layer": ([("    q = query(x)  # (B, T, head_size)", "    q = key(x)  # (B, T, head_size)")], "the queries come from the key layer"),
    "weights transposed before the values": ([(SOFTMAX, SOFTMAX.replace("out = wei @ v", "out = wei.transpose(-2, -1) @ v"))],
                                             "the weights are transposed before they multiply the values"),
    "softmax over the batch": ([(SOFTMAX, SOFTMAX.replace("dim=-1", "dim=0"))], "the softmax runs over a dimension other than dim=-1"),
})

XPREV = "            xprev = x[b, :t + 1]  # (t+1, C)"
NORM2 = "    wei = wei / wei.sum(1, keepdim=True)  # (T, T) each row sums to 1"
OUT2 = "    return wei @ x  # (T, T) @ (B, T, C) -> (B, T, C)"
SOFT3 = "    wei = F.softmax(wei, dim=-1)  # (T, T) each row sums to 1"
VERSIONS = {  # versions 1 to 3: (the learner's edits, the version's function, what check_running_mean must say)
    "version 1 leaves out the token itself": ([(XPREV, XPREV.replace(":t + 1]", ":t]"))], "xbow_loop", "leaves out t itself"),
    "version 1 averages the future too": ([(XPREV, XPREV.replace(":t + 1]", ":]"))], "xbow_loop", "lets position 0 see later positions"),
    "version 1 sums instead of averaging": ([("            xbow[b, t] = torch.mean(xprev, 0)", "            xbow[b, t] = torch.sum(xprev, 0)")],
                                            "xbow_loop", "do not sum to 1"),
    "version 2 normalises the columns": ([(NORM2, NORM2.replace("sum(1,", "sum(0,"))], "xbow_matmul", "do not sum to 1"),
    "version 2 without keepdim": ([(NORM2, NORM2.replace("wei.sum(1, keepdim=True)", "wei.sum(1)"))], "xbow_matmul", "do not sum to 1"),
    "version 2 as x @ wei": ([(OUT2, "    return x @ wei")], "xbow_matmul", "wei @ x, in that order"),
    "version 2 without the triangle": ([("    wei = torch.tril(torch.ones(T, T))  # (T, T)\n    wei = wei / wei.sum",
                                         "    wei = torch.ones(T, T)  # (T, T)\n    wei = wei / wei.sum")], "xbow_matmul", "lets position 0 see later"),
    "version 2 with a fixed size of 8": ([("    wei = torch.tril(torch.ones(T, T))  # (T, T)\n    wei = wei / wei.sum",
                                           "    wei = torch.tril(torch.ones(8, 8))  # (T, T)\n    wei = wei / wei.sum")], "xbow_matmul", "raised RuntimeError"),
    "version 3 softmax over dim=0": ([(SOFT3, SOFT3.replace("dim=-1", "dim=0"))], "xbow_softmax", "do not sum to 1"),
    "version 3 masking the past": ([("    wei = wei.masked_fill(tril == 0, float('-inf'))  # (T, T) no looking ahead",
                                     "    wei = wei.masked_fill(tril == 1, float('-inf'))  # (T, T)")], "xbow_softmax", "lets position 0 see later"),
}
VERSIONS_CORRECT = {
    "version 1 with a tensor method": ([("            xbow[b, t] = torch.mean(xprev, 0)", "            xbow[b, t] = xprev.mean(dim=0)")], "xbow_loop"),
    "version 2 as cumsum over counts": ([(OUT2, "    return x.cumsum(1) / torch.arange(1, T + 1).view(T, 1)")], "xbow_matmul"),
    "version 2 normalised over dim=-1": ([(NORM2, NORM2.replace("wei.sum(1, keepdim=True)", "wei.sum(-1, keepdim=True)"))], "xbow_matmul"),
    "version 3 with -1e9": ([("    wei = wei.masked_fill(tril == 0, float('-inf'))  # (T, T) no looking ahead",
                              "    wei = wei.masked_fill(tril == 0, -1e9)  # (T, T)")], "xbow_softmax"),
}


@pytest.mark.parametrize("mistake", list(VERSIONS))
def test_the_version_check_names_the_mistake(mistake):
    edits, name, sentence = VERSIONS[mistake]
    found = load("02_self_attention")
    assert "passed" in found["check_running_mean"](found[name])
    found = load("02_self_attention", replace=edits)
    with pytest.raises(AssertionError) as caught:
        found["check_running_mean"](found[name])
    assert type(caught.value).__name__ == "CheckFailed" and sentence in str(caught.value), str(caught.value)


@pytest.mark.parametrize("variant", list(VERSIONS_CORRECT))
def test_a_correct_version_passes(variant):
    edits, name = VERSIONS_CORRECT[variant]
    found = load("02_self_attention", replace=edits)
    assert "passed" in found["check_running_mean"](found[name])


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_the_check_names_the_mistake(mistake):
    edits, sentence = MISTAKES[mistake]
    assert "passed" in check()
    with pytest.raises(AssertionError) as caught:
        check(edits)
    assert type(caught.value).__name__ == "CheckFailed" and sentence in str(caught.value), str(caught.value)


@pytest.mark.parametrize("variant", list(CORRECT))
def test_a_correct_variant_passes(variant):
    assert "passed" in check(CORRECT[variant])


def test_the_hunt_has_fifteen_mistakes_at_least():
    assert len(MISTAKES) >= 15
