"""Notebook 03b's own checks meet what a cold reader did to its cells (dev/results/mistake_hunt/cold_03_s4.md,
the 03b rows; fixes in cold_03b_s5_fixes_C.md): each mistake is one edit of notebooks/03b_blocks_and_the_ladder.py,
and the check the notebook runs after that cell stops with CheckFailed and one sentence naming the property and
the likely cause; the correct variants (post-norm, parallel blocks, GELU, fused heads, proj without bias, eps
added to the standard deviation, cross-attention through SDPA) pass the same checks. The cross-attention
head moved to 03c in session 5 and to the end of 02 in session 6, so its cases edit that notebook."""
import pytest
import torch
import torch.nn as nn

from notebook_code import load, source_of

NB = "03b_blocks_and_the_ladder"
HYPER = ("n_embd", "block_size", "n_head", "n_layer", "dropout")


def ns(replace=(), notebook=NB):
    if notebook != NB:  # the cross-attention head lives in 02, which needs no data
        return load(notebook, replace=replace)
    return load(NB, keep=HYPER, replace=replace, vocab_size=65, device="cpu", batch_size=4, learning_rate=1e-3)


def rung(name):
    """The model the notebook builds for rung `name`, built as its cell builds it, then the cell's check_rung."""
    def build_and_check(nb):
        torch.manual_seed(1337)
        C, nh, L, B = nb["n_embd"], nb["n_head"], nb["n_layer"], nb["BigramLanguageModel"]
        step = name.split()[0]
        if step == "7":
            nb["dropout"] = 0.2
        try:
            model = {"2": lambda: B(body=nb["Head"](C)),
                     "3": lambda: B(body=nb["MultiHeadAttention"](nh, C // nh)),
                     "4": lambda: B(body=nn.Sequential(nb["MultiHeadAttention"](nh, C // nh), nb["FeedForward"](C))),
                     "5": lambda: B(body=nn.Sequential(*[nb["Block"](C, nh) for _ in range(L)])),
                     "5b": lambda: B(body=nn.Sequential(*[nb["PlainBlock"](C, nh) for _ in range(L)])),
                     "6": nb["transformer"], "7": nb["transformer"]}[step]()
        finally:
            nb["dropout"] = 0.0
        return nb["check_rung"](model, name)
    return build_and_check


RUNGS = ["2 one head", "3 multi-head", "4 + feed-forward", "5 blocks + residual", "5b blocks, no residual",
         "6 + LayerNorm", "7 + dropout 0.2"]


def step7_dropout_set_too_late(nb):  # D1: `dropout = 0.2` moved after `model = transformer()`
    torch.manual_seed(1337)
    return nb["check_rung"](nb["transformer"](), "7 + dropout 0.2")


def block_built(nb):  # the step-5 cell: print(check_block(build(Block, n_embd, n_head), n_head=n_head))
    return nb["check_block"](nb["build"](nb["Block"], nb["n_embd"], nb["n_head"]), n_head=nb["n_head"])


def built(cls, *sizes):  # a cell's check of build(cls, ...): the piece's own check on what build returns
    checks = {"MultiHeadAttention": lambda nb, m: nb["check_multihead"](m, nb["n_embd"], nb["n_head"]),
              "FeedForward": lambda nb, m: nb["check_feedforward"](m, nb["n_embd"])}
    return lambda nb: checks.get(cls, lambda nb, m: nb["check_block"](m, n_head=nb["n_head"]))(
        nb, nb["build"](nb[cls], *[nb[s] if s in nb else s for s in sizes]))


def layernorm(nb):
    return nb["check_layernorm"](nb["LayerNorm1d"](100))


def cross(nb):  # 02's cell: print(check_cross_attention(CrossAttention(32, 8), 32))
    torch.manual_seed(1337)
    return nb["check_cross_attention"](nb["CrossAttention"](32, 8), 32)


cross.notebook = "02_self_attention"


FFN_IN, FFN_OUT = "nn.Linear(n_embd, 4 * n_embd),  # (B, T, 4C)", "nn.Linear(4 * n_embd, n_embd),  # (B, T, C) the projection back"
BLOCKS = "    blocks = nn.Sequential(*[PreNormBlock(n_embd, n_head) for _ in range(n_layer)])"
SA_FF = "        x = x + self.sa(x)  # (B, T, C)\n        x = x + self.ffwd(x)  # (B, T, C)"
PRE = "        x = x + self.sa(self.ln1(x))  # (B, T, C)\n        x = x + self.ffwd(self.ln2(x))  # (B, T, C)"
QKV = "q, k, v = self.query(x), self.key(source), self.value(source)"
WEI = "wei = F.softmax(q @ k.transpose(1, 2) * q.shape[-1]**-0.5, dim=-1)"

MISTAKES = {  # id: (edits, the check the notebook runs there, words its sentence must hold)
    "F3 feed-forward not widened (step 4)": ([(FFN_IN, "nn.Linear(n_embd, n_embd),"), (FFN_OUT, "nn.Linear(n_embd, n_embd),")],
                                              rung("4 + feed-forward"), "its configuration implies"),
    "F3 feed-forward not widened (step 5)": ([(FFN_IN, "nn.Linear(n_embd, n_embd),"), (FFN_OUT, "nn.Linear(n_embd, n_embd),")],
                                              rung("5 blocks + residual"), "4 * n_embd wide"),
    "X1 no ln_f": ([("return BigramLanguageModel(body=blocks, ln_f=nn.LayerNorm(n_embd))", "return BigramLanguageModel(body=blocks)")],
                   rung("6 + LayerNorm"), "(ln_f, before lm_head)"),
    "X2 one block shared": ([(BLOCKS, "    blocks = nn.Sequential(*[PreNormBlock(n_embd, n_head)] * n_layer)")],
                            rung("6 + LayerNorm"), "share one set of weights"),
    "X3 n_head blocks": ([(BLOCKS, BLOCKS.replace("range(n_layer)", "range(n_head)"))], rung("6 + LayerNorm"), "4 blocks, not n_layer = 3"),
    "X5 Block at step 6": ([(BLOCKS, BLOCKS.replace("PreNormBlock", "Block"))], rung("6 + LayerNorm"), "hold 0 LayerNorms, not 6"),
    "K10 MultiHeadAttention(head_size, n_head)": ([("self.sa = MultiHeadAttention(n_head, head_size)", "self.sa = MultiHeadAttention(head_size, n_head)")],
                                                  rung("5 blocks + residual"), "8 heads, not n_head = 4"),
    "K10 at step 6": ([("self.sa = MultiHeadAttention(n_head, head_size)", "self.sa = MultiHeadAttention(head_size, n_head)")],
                      rung("6 + LayerNorm"), "(num_heads, head_size)"),
    "K9 float head_size": ([("        head_size = n_embd // n_head\n        self.sa", "        head_size = n_embd / n_head\n        self.sa")],
                           block_built, "raised TypeError"),
    "MA-b super().__init__() forgotten": ([("    def __init__(self, num_heads, head_size):\n        super().__init__()\n",
                                            "    def __init__(self, num_heads, head_size):\n")],
                                          built("MultiHeadAttention", "n_head", 8), "call super().__init__() first"),
    "BK-b super().__init__() forgotten": ([("    def __init__(self, n_embd, n_head):\n        super().__init__()\n        head_size",
                                            "    def __init__(self, n_embd, n_head):\n        head_size")],
                                          built("Block", "n_embd", "n_head"), "call super().__init__() first"),
    "FF-a nn.ReLU without ()": ([("            nn.ReLU(),\n            nn.Linear(4 * n_embd, n_embd)",
                                  "            nn.ReLU,\n            nn.Linear(4 * n_embd, n_embd)")],
                                built("FeedForward", "n_embd"), "a class, not an instance"),
    "PN-f super().__init__() without sizes": ([("        super().__init__(n_embd, n_head)\n        self.ln1", "        super().__init__()\n        self.ln1")],
                                              built("PreNormBlock", "n_embd", "n_head"), "pass every argument Block.__init__ needs"),
    "PN-c nn.Module.__init__": ([("        super().__init__(n_embd, n_head)\n        self.ln1", "        nn.Module.__init__(self)\n        self.ln1")],
                                built("PreNormBlock", "n_embd", "n_head"), "has no self.sa and self.ffwd"),
    "BK-g the feed-forward fed x.detach()": ([(SA_FF, SA_FF.replace("self.ffwd(x)", "self.ffwd(x.detach())"))],
                                             built("Block", "n_embd", "n_head"), "a .detach() or .data cuts a path"),
    "a Block's return forgotten": ([(SA_FF + "\n        return x", SA_FF)], built("Block", "n_embd", "n_head"), "returned None"),
    "D1 dropout set after the model is built": ([], step7_dropout_set_too_late, "set it before building the model"),
    "L9 gamma starts at zeros": ([("self.gamma = nn.Parameter(torch.ones(dim))", "self.gamma = nn.Parameter(torch.zeros(dim))")],
                                 layernorm, "gamma all zeros"),
    "L12 beta starts at ones": ([("self.beta = nn.Parameter(torch.zeros(dim))", "self.beta = nn.Parameter(torch.ones(dim))")],
                                layernorm, "beta all ones"),
    "L14 eps 1e-2": ([("def __init__(self, dim, eps=1e-5):", "def __init__(self, dim, eps=1e-2):")], layernorm, "eps, added to the variance"),
    "LN-a the mean not subtracted": ([("xhat = (x - xmean) / torch.sqrt(xvar + self.eps)", "xhat = x / torch.sqrt(xvar + self.eps)")],
                                     layernorm, "the mean is not subtracted"),
    "L15 beta * xhat + gamma": ([("return self.gamma * xhat + self.beta", "return self.beta * xhat + self.gamma")], layernorm,
                                "scales by the bias and shifts by the gain"),
    "C1 keys from x": ([(QKV, "q, k, v = self.query(x), self.key(x), self.value(source)")], cross, "raised RuntimeError"),
    "C2 softmax over the targets": ([(WEI, WEI.replace("dim=-1", "dim=-2"))], cross, "do not sum to 1"),
    "C3 a causal mask kept": ([(WEI, "T, S = q.shape[1], k.shape[1]\n        wei = F.softmax((q @ k.transpose(1, 2) * q.shape[-1]**-0.5)"
                                     ".masked_fill(torch.tril(torch.ones(T, S)) == 0, float('-inf')), dim=-1)")], cross, "no mask"),
    "C4 no scale": ([(WEI, "wei = F.softmax(q @ k.transpose(1, 2), dim=-1)")], cross, "not scaled"),
    "C5 queries from the source": ([(QKV, "q, k, v = self.query(source), self.key(x), self.value(x)")], cross, "queries from x"),
    "C6 values from x": ([(QKV, "q, k, v = self.query(x), self.key(source), self.value(x)")], cross, "raised RuntimeError"),
    "C43 the source itself for the values": ([("return wei @ v, wei", "return wei @ source, wei")], cross, "multiply the source itself"),
    "C44 weights and output swapped": ([("return wei @ v, wei", "return wei, wei @ v")], cross, "returns the weights first"),
    "C7 scaled by n_embd": ([(WEI, WEI.replace("q.shape[-1]**-0.5", "x.shape[-1]**-0.5"))], cross, "scaled by n_embd**-0.5"),
    # session 6's second cold reader (cold_s6_03c.md, the cross-attention rows)
    "X-e the value layer is the key layer": ([("        self.value = nn.Linear(n_embd, head_size, bias=False)\n\n    def forward(self, x, source):",
                                               "        self.value = self.key\n\n    def forward(self, x, source):")], cross, "not three layers of their own"),
    "X-h the weights returned transposed": ([("return wei @ v, wei  # (B, T, hs), (B, T, S)", "return wei @ v, wei.transpose(1, 2)  # (B, T, hs), (B, T, S)")],
                                            cross, "the weights come back transposed, (B, S, T)"),
    "X-g the scale after the softmax": ([(WEI, "wei = F.softmax(q @ k.transpose(1, 2), dim=-1) * q.shape[-1]**-0.5")], cross,
                                        "or something after it changes the weights"),
}

FUSED = '''class MultiHeadAttention(nn.Module):
    """The lecture's exercise: every head's keys, queries and values from one Linear, heads as (B, nh, T, hs)."""

    def __init__(self, num_heads, head_size):
        super().__init__()
        self.nh, self.hs = num_heads, head_size
        self.c_attn = nn.Linear(n_embd, 3 * num_heads * head_size, bias=False)
        self.proj = nn.Linear(num_heads * head_size, n_embd)
        self.register_buffer('tril', torch.tril(torch.ones(block_size, block_size)))

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.nh, self.hs).transpose(1, 2) for t in self.c_attn(x).split(self.nh * self.hs, dim=-1))
        wei = (q @ k.transpose(-2, -1) * self.hs**-0.5).masked_fill(self.tril[:T, :T] == 0, float('-inf')).softmax(-1)
        return self.proj((wei @ v).transpose(1, 2).reshape(B, T, C))'''

VARIANTS = {  # correct code a learner may write: every rung's check passes
    "the notebook as written": [],
    "proj without bias": [("self.proj = nn.Linear(head_size * num_heads, n_embd)", "self.proj = nn.Linear(head_size * num_heads, n_embd, bias=False)")],
    "GELU (exercise 3)": [("            nn.ReLU(),\n", "            nn.GELU(),\n")],
    "post-norm (exercise 1)": [(PRE, "        x = self.ln1(x + self.sa(x))  # (B, T, C)\n        x = self.ln2(x + self.ffwd(x))  # (B, T, C)")],
    "parallel block": [(SA_FF, "        x = x + self.sa(x) + self.ffwd(x)  # (B, T, C)")],
    "K5 feed-forward before attention (a variant)": [(SA_FF, "        x = x + self.ffwd(x)  # (B, T, C)\n        x = x + self.sa(x)  # (B, T, C)")],
    "LayerNorm1d in the blocks and as ln_f": [("self.ln1 = nn.LayerNorm(n_embd)", "self.ln1 = LayerNorm1d(n_embd)"),
                                             ("self.ln2 = nn.LayerNorm(n_embd)", "self.ln2 = LayerNorm1d(n_embd)"),
                                             ("ln_f=nn.LayerNorm(n_embd))", "ln_f=LayerNorm1d(n_embd))")],
    "RMSNorm as ln_f": [("ln_f=nn.LayerNorm(n_embd))", "ln_f=nn.RMSNorm(n_embd))")],
    "TR-a ln_f as the body's last entry": [(BLOCKS + "\n    return BigramLanguageModel(body=blocks, ln_f=nn.LayerNorm(n_embd))",
                                            BLOCKS.replace("range(n_layer)])", "range(n_layer)], nn.LayerNorm(n_embd))")
                                            + "\n    return BigramLanguageModel(body=blocks)")],
    "PN-a LayerNorms without a gain and bias": [("        self.ln1 = nn.LayerNorm(n_embd)\n        self.ln2 = nn.LayerNorm(n_embd)\n",
                                                 "        self.ln1 = nn.LayerNorm(n_embd, elementwise_affine=False)\n"
                                                 "        self.ln2 = nn.LayerNorm(n_embd, elementwise_affine=False)\n")],
    "blocks in a list comprehension passed to Sequential": [(BLOCKS, "    blocks = nn.Sequential(*(PreNormBlock(n_embd, n_head) for _ in range(n_layer)))")],
}


@pytest.mark.parametrize("name", list(MISTAKES))
def test_the_check_after_the_cell_names_the_mistake(name):
    edits, run, words = MISTAKES[name]
    where = getattr(run, "notebook", NB)
    assert (rung("7 + dropout 0.2") if run is step7_dropout_set_too_late else run)(ns(notebook=where))  # as written: passes
    found = ns(edits, where)
    with pytest.raises(AssertionError) as caught:
        run(found)
    assert type(caught.value).__name__ == "CheckFailed" and words in str(caught.value), str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("step", RUNGS)
def test_every_rung_accepts_correct_variants(variant, step):
    assert "passed" in rung(step)(ns(VARIANTS[variant]))


def test_fused_heads_pass_every_rung():
    found = ns([(source_of(NB, "MultiHeadAttention"), FUSED)])
    for step in RUNGS[1:]:
        assert "as its configuration implies" in rung(step)(found)


@pytest.mark.parametrize("edits", [
    [("xvar = x.var(-1, keepdim=True, unbiased=False)  # (B, T, 1) biased, like nn.LayerNorm\n        xhat = (x - xmean) / torch.sqrt(xvar + self.eps)",
      "xhat = (x - xmean) / (x.std(-1, keepdim=True, unbiased=False) + self.eps)")],  # L7: eps added to the std
    [("xvar = x.var(-1, keepdim=True, unbiased=False)", "xvar = x.var(-1, keepdim=True, correction=0)")],  # L11
    [("return self.gamma * xhat + self.beta", "return xhat * self.gamma + self.beta")]])
def test_layernorm_variants_pass(edits):
    assert "passed" in layernorm(ns(edits))


@pytest.mark.parametrize("edits", [
    [(WEI + "  # (B, T, hs) @ (B, hs, S): no mask\n        return wei @ v, wei",
      WEI + "\n        return F.scaled_dot_product_attention(q, k, v), wei")],
    [(WEI, "wei = torch.einsum('bth,bsh->bts', q, k).div(q.shape[-1]**0.5).softmax(-1)")]])
def test_cross_attention_variants_pass(edits):
    assert "passed" in cross(ns(edits, cross.notebook))


def test_cross_attention_check_runs_two_shapes_of_each_kind():
    """T < S and T > S: a mistake that mixes the two lengths cannot pass by chance of equal sizes."""
    found = ns([(QKV, "q, k, v = self.query(x), self.key(x), self.value(x)")], cross.notebook)  # self-attention, not cross
    with pytest.raises(AssertionError, match="queries come from x|differs from|weights"):
        cross(found)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_block_checks_accept_the_same_variants(variant):
    found = ns(VARIANTS[variant])
    for block in ("Block", "PreNormBlock"):
        assert "passed" in found["check_block"](found["build"](found[block], found["n_embd"], found["n_head"]))


FF_NANOGPT = ("    def __init__(self, n_embd):\n        super().__init__()\n        self.net = nn.Sequential(\n            nn.Linear(n_embd, 4 * n_embd),  # (B, T, 4C)\n"
              "            nn.ReLU(),\n            nn.Linear(4 * n_embd, n_embd),  # (B, T, C) the projection back\n            nn.Dropout(dropout),\n"
              "        )\n\n    def forward(self, x):\n        return self.net(x)  # (B, T, C) -> (B, T, C)")
C_FC, C_PROJ = "        self.c_fc = nn.Linear(n_embd, 4 * n_embd)\n", "        self.c_proj = nn.Linear(4 * n_embd, n_embd)\n"
NANOGPT_FORWARD = ("        self.dropout = nn.Dropout(dropout)\n\n    def forward(self, x):\n"
                   "        return self.dropout(self.c_proj(F.relu(self.c_fc(x))))")
FF_VARIANTS = {  # the cold reader's correct feed-forwards of session 5 (cold_03_03b_s5.md): bias-free, nanoGPT's names
    "FF-c both Linears bias-free": [(FFN_IN, FFN_IN.replace("4 * n_embd)", "4 * n_embd, bias=False)")),
                                    (FFN_OUT, FFN_OUT.replace("n_embd),", "n_embd, bias=False),"))],
    "FF-i bias-free with GELU": [(FFN_IN, FFN_IN.replace("4 * n_embd)", "4 * n_embd, bias=False)")),
                                 (FFN_OUT, FFN_OUT.replace("n_embd),", "n_embd, bias=False),")), ("            nn.ReLU(),\n", "            nn.GELU(),\n")],
    "FF-e nanoGPT's c_fc, c_proj": [(FF_NANOGPT, "    def __init__(self, n_embd):\n        super().__init__()\n" + C_FC + C_PROJ + NANOGPT_FORWARD)],
    "FF-f c_proj defined before c_fc": [(FF_NANOGPT, "    def __init__(self, n_embd):\n        super().__init__()\n" + C_PROJ + C_FC + NANOGPT_FORWARD)],
    "MA-a heads joined in reverse order": [("torch.cat([h(x) for h in self.heads], dim=-1)", "torch.cat([h(x) for h in reversed(self.heads)], dim=-1)")],
}


@pytest.mark.parametrize("variant", list(FF_VARIANTS))
def test_correct_feed_forwards_and_head_orders_pass_the_pieces_and_step_5(variant):
    found = ns(FF_VARIANTS[variant])
    for run in (built("MultiHeadAttention", "n_head", 8), built("FeedForward", "n_embd"), built("Block", "n_embd", "n_head"),
                built("PreNormBlock", "n_embd", "n_head"), rung("5 blocks + residual")):
        assert "passed" in run(found)


# session 6's cold reader (/tmp/brief/cold_s6_03_03b.md; the fixes in dev/results/mistake_hunt/cold_s6_fixes.md)
MHA_INIT = ("        self.heads = nn.ModuleList([Head(head_size) for _ in range(num_heads)])\n"
            "        self.proj = nn.Linear(head_size * num_heads, n_embd)\n        self.dropout = nn.Dropout(dropout)")
MHA_FWD = ("        out = torch.cat([h(x) for h in self.heads], dim=-1)  # (B, T, num_heads * hs)\n"
           "        return self.dropout(self.proj(out))  # (B, T, C)")
FUSED_INIT = ("        self.n_head, self.hs = num_heads, head_size\n"
              "        self.c_attn = nn.Linear(n_embd, 3 * num_heads * head_size, bias=False)\n"
              "        self.proj = nn.Linear(num_heads * head_size, n_embd)\n        self.attn_dropout = nn.Dropout(dropout)\n"
              "        self.dropout = nn.Dropout(dropout)\n"
              "        self.register_buffer('tril', torch.tril(torch.ones(block_size, block_size)))")
FUSED_FWD = ("        B, T, C = x.shape\n        q, k, v = self.c_attn(x).split(self.n_head * self.hs, dim=-1)\n"
             "        q, k, v = (t.view(B, T, self.n_head, self.hs) for t in (q, k, v))  # (B, T, nh, hs)\n"
             "        wei = torch.einsum('bthd,bshd->bhts', q, k) * self.hs**-0.5  # (B, nh, T, T)\n"
             "        wei = wei.masked_fill(self.tril[:T, :T] == 0, float('-inf'))\n"
             "        wei = self.attn_dropout(wei.softmax(-1))\n"
             "        out = torch.einsum('bhts,bshd->bthd', wei, v).reshape(B, T, C)\n        return self.dropout(self.proj(out))")
LN_FWD = ("        xvar = x.var(-1, keepdim=True, unbiased=False)  # (B, T, 1) biased, like nn.LayerNorm\n"
          "        xhat = (x - xmean) / torch.sqrt(xvar + self.eps)  # (B, T, C)")


def fused(new_fwd=FUSED_FWD):
    return [(MHA_INIT, FUSED_INIT), (MHA_FWD, new_fwd)]


def step7(rate):  # step 7's cell: dropout set, then the model built through build()
    def run(nb):
        nb["dropout"] = rate
        return nb["check_rung"](nb["build"](nb["transformer"]), "7 + dropout 0.2")
    return run


mha_cell = built("MultiHeadAttention", "n_head", 8)
S6 = {
    "a-h fused, scaled by T**-0.5": (fused(FUSED_FWD.replace("* self.hs**-0.5", "* T**-0.5")), mha_cell, "scaled by T**-0.5, the input's length (T = 5 here)"),
    "a-j fused, joined as (B, nh, T, hs)": (fused(FUSED_FWD.replace("'bhts,bshd->bthd', wei, v)", "'bhts,bshd->bhtd', wei, v)")), mha_cell,
                                            "transposed to (B, T, n_head, hs) before it is viewed"),
    "k-h a feed-forward of head_size": ([("        self.ffwd = FeedForward(n_embd)\n\n    def forward", "        self.ffwd = FeedForward(head_size)\n\n    def forward")],
                                        block_built, "in ffwd.net.0 (Linear"),
    "f-g a ReLU before the first Linear": ([("            nn.Linear(n_embd, 4 * n_embd),  # (B, T, 4C)",
                                             "            nn.ReLU(),\n            nn.Linear(n_embd, 4 * n_embd),  # (B, T, 4C)")],
                                           built("FeedForward", "n_embd"), "a ReLU before its first Linear"),
    "l-c LayerNorm1d x -= xmean": ([(LN_FWD, "        x -= xmean\n        xvar = (x ** 2).mean(-1, keepdim=True)\n        xhat = x / torch.sqrt(xvar + self.eps)")],
                                   layernorm, "changed its input in place"),
    "l-j gain and bias detached": ([("return self.gamma * xhat + self.beta  # (B, T, C)", "return self.gamma.detach() * xhat + self.beta.detach()  # (B, T, C)")],
                                   layernorm, "gets no gradient, so it never learns"),
    "t-a transformer() returns nothing": ([("    return BigramLanguageModel(body=blocks, ln_f=nn.LayerNorm(n_embd))", "    BigramLanguageModel(body=blocks, ln_f=nn.LayerNorm(n_embd))")],
                                          rung("6 + LayerNorm"), "does the function that builds it return it?"),
    "t-c the blocks in a plain list": ([(BLOCKS, "    blocks = [PreNormBlock(n_embd, n_head) for _ in range(n_layer)]")], rung("6 + LayerNorm"),
                                       "body is a plain list, not a module"),
    "d-a dropout = 20": ([], step7(20), "dropout is a probability"),
    "d-b dropout = '0.2'": ([], step7("0.2"), "dropout is a probability"),
}


@pytest.mark.parametrize("case", list(S6))
def test_session_6s_cases_meet_the_real_cause(case):
    edits, run, words = S6[case]
    with pytest.raises(AssertionError) as caught:
        run(ns(edits))
    assert type(caught.value).__name__ == "CheckFailed" and words in str(caught.value), str(caught.value)


def test_the_fused_heads_pass_at_both_lengths_and_step_7_as_written():
    assert "passed" in mha_cell(ns(fused()))
    assert "passed" in step7(0.2)(ns())


def test_the_plain_block_demo_says_when_it_is_not_caught(capsys):
    """pb-a: a PlainBlock that keeps its residuals (forward deleted) passes check_block; the demo cell says so."""
    nb = ns([("    def forward(self, x):\n        x = self.sa(x)  # (B, T, C)\n        x = self.ffwd(x)  # (B, T, C)\n        return x", "    pass")])
    cell = next(c for c in (NOTEBOOK_SOURCE()).split("\n# %%") if "check_block(PlainBlock(n_embd, n_head))" in c)
    exec("try:" + cell.split("\ntry:", 1)[1].split("torch.manual_seed(1337)")[0], nb)  # the try/except of the cell
    assert "not caught: this PlainBlock keeps a residual connection" in capsys.readouterr().out


def NOTEBOOK_SOURCE():
    from notebook_code import NOTEBOOKS
    return (NOTEBOOKS / f"{NB}.py").read_text(encoding="utf-8")
