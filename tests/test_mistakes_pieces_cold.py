"""The checks of the model's pieces (home: 03c's folded cell "Plumbing: checks of the model's pieces") meet
the mistakes two cold readers made in session 4 (dev/results/mistake_hunt/cold_04_05c_s4.md, the 04_gpt table, now
03c's model; cold_03_s4.md, the 03b table) that ran silently, crashed or met a sentence naming the wrong cause. Each
mistake is one learner's edit of the notebook that holds the piece; the check that follows the piece there must stop
with one sentence (CheckFailed) naming the property and the likely cause. The correct variants of both tables
(einsum, PyTorch's attention, fused heads, GELU, post-norm, parallel, swapped norms, norm on the branch's output,
feed-forward first) pass every check. The before -> after table: dev/results/mistake_hunt/cold_pieces_s5_fixes_B.md."""
import pytest
import torch

from notebook_code import cell_statements, load

NB3B, NB3C = "03b_blocks_and_the_ladder", "03c_the_complete_model"


def ns_03c(replace=()):
    return load(NB3C, replace=replace)


def ns_03b(replace=()):
    found = load(NB3B, keep=("n_embd", "block_size", "n_head", "n_layer", "dropout"), replace=replace, vocab_size=65,
                 device="cpu", batch_size=4)
    found.update(train_data=torch.arange(400) % 61, val_data=torch.arange(400) % 61)
    return found


def config(ns, **kw):
    return ns["GPTConfig"](**{**dict(vocab_size=65, block_size=8, n_embd=32, n_head=4, n_layer=2, dropout=0.0), **kw})


def cell_03c(marker, ns):
    """Run the statements (not the definitions) of 03c's visible cell holding marker in ns; "passed" if no check stops."""
    exec(cell_statements(NB3C, marker), ns)
    return "passed"


def gpt(ns, **kw):
    torch.manual_seed(1337)
    return ns["GPTLanguageModel"](config(ns, **kw))


CHECKS_03C = {  # 03c's checks in the order its cells call them (the pieces' checks also with dropout 0.2 built in:
    # 04 trains at 0.2, and a check at dropout 0 cannot see where a dropout sits)
    "config": lambda ns: cell_03c("gpt_py = dict(", ns),  # 03c's own cells, replayed as written
    "head": lambda ns: ns["check_head"](ns["Head"](config(ns, block_size=16), head_size=8), head_size=8),
    "multihead": lambda ns: ns["check_multihead"](ns["MultiHeadAttention"](config(ns)), n_embd=32, n_head=4),
    "multihead, dropout 0.2": lambda ns: ns["check_multihead"](ns["MultiHeadAttention"](config(ns, dropout=0.2)), 32, 4),
    "feedforward": lambda ns: ns["check_feedforward"](ns["FeedForward"](config(ns)), n_embd=32),
    "feedforward, dropout 0.2": lambda ns: ns["check_feedforward"](ns["FeedForward"](config(ns, dropout=0.2)), n_embd=32),
    "block": lambda ns: ns["check_block"](ns["Block"](config(ns)), n_head=4),
    "init": lambda ns: ns["check_init"](ns["_init_weights"]),  # session 7: _init_weights has a cell of its own
    "model": lambda ns: ns["check_model"](gpt(ns)),
    "model, dropout 0.2": lambda ns: ns["check_model"](gpt(ns, dropout=0.2)),
    "model cell": lambda ns: cell_03c('check_model(attempt("GPTLanguageModel(toy)"', ns),  # both, as the cell runs them
    "initial": lambda ns: ns["check_initial_loss"](gpt(ns)),  # the model as configured (session 6)
    "attention weights": lambda ns: cell_03c(").attention(torch.randn(2, 5, 32))", ns),
    "generate": lambda ns: ns["check_generate"](ns["generate"], block_size=8, sampling=True),
}

S = "wei = q @ k.transpose(-2, -1) * k.shape[-1]**-0.5"
SM = "return F.softmax(wei, dim=-1)  # (B, T, T)"
MF = "wei = wei.masked_fill(self.tril[:T, :T] == 0, float('-inf'))"
CAT = "out = torch.cat([h(x) for h in self.heads], dim=-1)"
OUT = "return self.dropout(self.proj(out))"
SA, FF = "x = x + self.sa(self.ln1(x))", "x = x + self.ffwd(self.ln2(x))"
KQV = ("self.key = nn.Linear(config.n_embd, head_size, bias=False)\n        self.query = nn.Linear(config.n_embd, head_size, bias=False)\n"
       "        self.value = nn.Linear(config.n_embd, head_size, bias=False)")
DROP, RELU = "            nn.Dropout(config.dropout),\n", "            nn.ReLU(),\n"

MISTAKES_03C = {  # id: ([(old, new)] in 03c, the first check of 03c's order that must stop it, words of its sentence)
    "H3": ([("* k.shape[-1]**-0.5", "* k.shape[-1]**0.5")], "head", "multiplied by head_size**0.5"),
    "H4": ([(S, "wei = q @ k.transpose(-2, -1) / k.shape[-1]")], "head", "divided by head_size, not by its square root"),
    "H5": ([(S, "wei = q @ k.transpose(-2, -1)"), (SM, "return F.softmax(wei, dim=-1) * k.shape[-1]**-0.5  # (B, T, T)")],
           "head", "the scale is applied after the softmax"),
    "H10": ([(MF, MF.replace("float('-inf')", "0.0")), (SM, "return wei  # (B, T, T)")], "head", "is not causal self-attention"),
    "H22": ([(S, "wei = q @ k.transpose(-2, -1) * len(self.tril)**-0.5")], "head", "is not causal self-attention"),
    "head_size ignored (03's H21)": ([(KQV, KQV.replace("config.n_embd, head_size", "config.n_embd, config.n_embd"))],
                                     "head", "not head_size = 8"),
    "H19": ([("wei = self.dropout(self.attention(x))", "wei = self.attention(x)")], "multihead",
            "the attention weights get no dropout"),
    "H6": ([("self.tril[:T, :T] == 0", "self.tril[:T, :T] == 1")], "model (04)", "gave nan or inf, first made by blocks.0.sa.heads.0 (Head)"),
    "H11": ([(SM, "return wei  # (B, T, T)")], "model (04)", "gave nan or inf, first made by blocks.0.sa.heads.0 (Head)"),
    "H12": ([("self.tril[:T, :T] == 0", "self.tril == 0")], "model (04)", "in blocks.0.sa.heads.0 (Head, given input of shape (3, 5, 32))"),
    "H13": ([("return wei @ self.value(x)", "return wei @ x")], "model (04)", "in blocks.0.sa.proj (Linear, given input of shape (2, 8, 128))"),
    "M3": ([(CAT, CAT.replace("dim=-1", "dim=1"))], "model (04)", "in blocks.0.sa.proj (Linear, given input of shape (2, 32, 8))"),
    "M6": ([(CAT, "out = sum(h(x) for h in self.heads)")], "model (04)", "in blocks.0.sa.proj (Linear, given input of shape (2, 8, 8))"),
    "M7": ([(OUT, "return self.proj(out)")], "multihead", "its dropout must come last, on what proj returns"),
    "M8": ([(CAT, "out = torch.stack([h(x) for h in self.heads]).mean(0).repeat(1, 1, len(self.heads))")], "multihead",
           "hands proj the same numbers"),
    "M12": ([(OUT, "return self.proj(self.dropout(out))")], "multihead", "its dropout must come last"),
    "B2": ([(FF, "x = self.ffwd(self.ln2(x))")], "block", "the residual connections are missing"),
    "B10": ([(SA, "x = x + x + self.sa(self.ln1(x))")], "block", "returns 2.00 times its input"),
    "B11": ([(SA, "h = x + self.sa(self.ln1(x))"), (FF, "x = x + self.ffwd(self.ln2(h))")], "block",
            "attention changes nothing, so its output reaches the block's output only through the feed-forward"),
    "B12": ([(SA, "x = self.ln1(x) + self.sa(self.ln1(x))"), (FF, "x = self.ln2(x) + self.ffwd(self.ln2(x))")], "block",
            "normalises the residual stream itself"),
    "F1": ([(DROP, ""), (RELU, RELU + DROP)], "feedforward", "its dropout must come last, on what its last Linear returns"),
    # session 5's cold reader (cold_03c_05c_s5.md): a forgotten return meets one sentence, not a raw AttributeError
    "C20": ([(FF + "  # (B, T, C)\n        return x", FF + "  # (B, T, C)")], "block", "Block on x of shape (2, 5, 32) returned None"),
    "C89": ([("        return logits, loss\n", "")], "model", "returned None: does its forward end with return"),
    "C90": ([("return self.net(x)  # (B, T, C)", "self.net(x)  # (B, T, C)")], "feedforward", "FeedForward on x of shape (2, 6, 32) returned None"),
    "C91": ([(OUT + "  # (B, T, C)", "self.dropout(self.proj(out))  # (B, T, C)")], "multihead", "returned None"),
    "C92": ([("return wei @ self.value(x)", "wei @ self.value(x)")], "head", "returned None"),
    "C92 seen by the heads' caller": ([("return wei @ self.value(x)", "wei @ self.value(x)")], "model (04)",
                                      "blocks.0.sa.heads.0 (Head) returned None"),
    "C53 tok * pos": ([("self.token_embedding_table(idx) + self.position_embedding_table(pos)",
                        "self.token_embedding_table(idx) * self.position_embedding_table(pos)")], "model", "must be added, not combined"),
    "C72 the loss computed without targets": ([("loss = None if targets is None else F.cross_entropy", "loss = F.cross_entropy")], "model",
                                              "called with targets=None, forward must not compute the loss"),
    "C11 heads of n_head channels": ([("head_size = config.n_embd // config.n_head", "head_size = config.n_head")], "multihead",
                                     "heads narrower than n_embd // n_head"),
    # session 6: the open cases of cold_03c_05c_s5.md and cold_03_03b_s5.md
    "FF-b softmax as the activation": ([(RELU, "            nn.Softmax(dim=-1),\n")], "feedforward", "mixes the hidden channels"),
    "C26 biases not zeroed": ([("    if isinstance(module, nn.Linear) and module.bias is not None:\n        torch.nn.init.zeros_(module.bias)\n", "")],
                              "init", "the Linear's bias is not zero"),
    "C85 dropout hard-coded": ([(DROP, "            nn.Dropout(0.2),\n")], "initial", "0.2], though config.dropout = 0.0"),
    "C36 top_k past the vocabulary": ([("torch.topk(logits, min(top_k, logits.shape[-1]))", "torch.topk(logits, top_k)")], "generate",
                                      "top_k = 5 is more than the 3 characters here"),
    "C35 the k-th largest as (B,)": ([(".values[:, [-1]]", ".values[:, -1]")], "generate", "kept (B, 1) to compare with each row"),
    # session 6's second cold reader (dev/results/mistake_hunt/cold_s6_03c.md)
    "D-d F.dropout on the weights, in eval mode too": ([("wei = self.dropout(self.attention(x))", "wei = F.dropout(self.attention(x), self.dropout.p)")],
                                                       "multihead, dropout 0.2", "a dropout ignores the mode"),
    "D-a F.dropout after proj, in eval mode too": ([("return self.dropout(self.proj(out))  # (B, T, C)", "return F.dropout(self.proj(out), self.dropout.p)  # (B, T, C)")],
                                                   "multihead, dropout 0.2", "a dropout ignores the mode"),
    "D-c F.dropout at a float rate": ([("            nn.Dropout(config.dropout),\n        )\n\n    def forward(self, x):\n        return self.net(x)  # (B, T, C)",
                                       "        )\n        self.p = config.dropout\n\n    def forward(self, x):\n        return F.dropout(self.net(x), self.p)  # (B, T, C)")],
                                      "feedforward, dropout 0.2", "a dropout ignores the mode"),
    "F-f tanh after the last Linear": ([("nn.Linear(4 * config.n_embd, config.n_embd),  # (B, T, C)", "nn.Linear(4 * config.n_embd, config.n_embd),  # (B, T, C)\n            nn.Tanh(),")],
                                       "feedforward", "nothing but dropout comes after the projection back"),
    "G-a positions counted backwards": ([("pos = torch.arange(idx.shape[1], device=idx.device)  # (T,)", "pos = torch.arange(idx.shape[1] - 1, -1, -1, device=idx.device)  # (T,)")],
                                        "model", "the logits of a prefix differ"),
    "G-p the loss ignores character 0": ([("F.cross_entropy(logits.flatten(0, 1), targets.flatten())", "F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=0)")],
                                         "model", "left out of the loss"),
    "G-n embeddings drawn with std 1": ([("torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)", "torch.nn.init.normal_(module.weight, mean=0.0, std=0.02 if isinstance(module, nn.Linear) else 1.0)")],
                                        "init", "the Embedding's weights have mean"),
    "G-g _init_weights called on the model only": ([("        self.apply(_init_weights)", "        _init_weights(self)")], "initial", "must reach every module"),
    # session 7: _init_weights as a function of its own, checked on fresh layers before the model is built
    "G-i a bias asked of every module": ([("    if isinstance(module, nn.Linear) and module.bias is not None:", "    if module.bias is not None:")],
                                         "init", "raised AttributeError"),
    "gpt.py's method signature kept": ([("def _init_weights(module):", "def _init_weights(self, module):")], "init",
                                       "with the module alone"),
    "03c-5 gpt.py's self._init_weights": ([("        self.apply(_init_weights)", "        self.apply(self._init_weights)")], "model cell",
                                           "not a method as in gpt.py"),
    "03c-4 _init_weights called, not passed": ([("        self.apply(_init_weights)", "        self.apply(_init_weights())")], "model cell",
                                               "GPTLanguageModel(toy) raised TypeError"),
    "03c-23 the bias of every Linear zeroed": ([("    if isinstance(module, nn.Linear) and module.bias is not None:", "    if isinstance(module, nn.Linear):")],
                                               "init", "raised AttributeError"),
    "03c-42 the generator reseeded inside": ([("def _init_weights(module):\n", "def _init_weights(module):\n    torch.manual_seed(0)\n")], "init",
                                             "two Linear layers of one shape start with the same weights"),
    "03c-25 normal_ on a weight autograd tracks": ([("torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)", "module.weight.normal_(0.0, 0.02)")],
                                                   "init", "change weights with nn.init"),
    "03c-1 apply before the blocks are built": ([("        self.apply(_init_weights)\n", ""),
                                                 ("        self.position_embedding_table = nn.Embedding(config.block_size, config.n_embd)\n",
                                                  "        self.position_embedding_table = nn.Embedding(config.block_size, config.n_embd)\n"
                                                  "        self.apply(_init_weights)\n")], "initial", "comes after every layer is built"),
    "03c-m the bias removed": ([("        torch.nn.init.zeros_(module.bias)", "        module.bias = None")], "init",
                               "every bias starts at zero, kept as it is"),
    "03c-d nanoGPT's scaled init of the projections": ([("        self.apply(_init_weights)\n", "        self.apply(_init_weights)\n"
                                                         "        for pn, p in self.named_parameters():\n            if pn.endswith('proj.weight'):\n"
                                                         "                torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))\n")],
                                                       "initial", "blocks.0.sa.proj (0.010)"),
    "C27 LayerNorm drawn too": ([("isinstance(module, (nn.Linear, nn.Embedding)):", "isinstance(module, (nn.Linear, nn.Embedding, nn.LayerNorm)):")],
                                "init", "a LayerNorm has changed"),
    "C55 std given as the mean": ([("torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)", "torch.nn.init.normal_(module.weight, 0.02)")],
                                  "init", "not 0 and 0.02"),
    "the bias drawn, not zeroed": ([("torch.nn.init.zeros_(module.bias)", "torch.nn.init.normal_(module.bias, std=0.02)")], "init",
                                   "the Linear's bias is not zero"),
    "H-a Head.attention returns the scores": ([("return F.softmax(wei, dim=-1)  # (B, T, T)", "return wei  # (B, T, T)"),
                                               ("wei = self.dropout(self.attention(x))", "wei = self.dropout(F.softmax(self.attention(x), dim=-1))")],
                                              "attention weights", "Head.attention must return the weights after the mask and the softmax"),
    "CF1 n_head 8 by default": ([("n_head: int = 6 ", "n_head: int = 8 ")], "config", "not gpt.py's"),
    "CF4 n_embd without its type": ([("n_embd: int = 384      # channels", "n_embd = 384      # channels")], "config", "each field needs a type"),
}

FUSED = '''class MultiHeadAttention(nn.Module):
    """The heads fused: one Linear makes every head's q, k, v (the lecture's exercise)."""

    def __init__(self, num_heads, head_size):
        super().__init__()
        self.n_head, self.hs = num_heads, head_size
        self.c_attn = nn.Linear(n_embd, 3 * num_heads * head_size, bias=False)
        self.proj = nn.Linear(num_heads * head_size, n_embd)
        self.register_buffer('tril', torch.tril(torch.ones(block_size, block_size)))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(self.n_head * self.hs, dim=-1)
        q, k, v = [t.view(B, T, self.n_head, self.hs).transpose(1, 2) for t in (q, k, v)]  # (B, nh, T, hs)
        wei = q @ k.transpose(-2, -1) * self.hs**-0.5
        wei = self.dropout(F.softmax(wei.masked_fill(self.tril[:T, :T] == 0, float('-inf')), dim=-1))
        out = (wei @ v).transpose(1, 2).reshape(B, T, C)  # (B, T, C)
        return self.dropout(self.proj(out))
'''


def source_03b_mha():
    from notebook_code import source_of
    return source_of(NB3B, "MultiHeadAttention")


def mha_03b(found, n_head=4):
    return found["check_multihead"](found["MultiHeadAttention"](n_head, 32 // n_head), 32, n_head)


def mha_03b_dropout(found):
    found["dropout"] = 0.2
    mha = found["MultiHeadAttention"](4, 8)
    found["dropout"] = 0.0
    return found["check_multihead"](mha, 32, 4)


def block_03b(found):  # step 5's block: no LayerNorm; check_block told the number of heads, as 03b's cell does
    return found["check_block"](found["Block"](32, 4), n_head=4)


def prenorm_03b(found):
    return found["check_block"](found["PreNormBlock"](32, 4), n_head=4)


def model_03b(found):  # step 6's model under the rung's check, as 03b's cell runs it
    torch.manual_seed(1337)
    return found["check_rung"](found["transformer"](), "6 + LayerNorm")


BLOCK = "        x = x + self.sa(x)  # (B, T, C)\n        x = x + self.ffwd(x)  # (B, T, C)"
X2 = "    blocks = nn.Sequential(*[PreNormBlock(n_embd, n_head) for _ in range(n_layer)])"

MISTAKES_03B = {  # id: (edits of 03b, the check of 03b's cells, words of its sentence)
    "A5": ([("nn.ModuleList([Head(head_size) for _ in range(num_heads)])", "nn.ModuleList([Head(n_embd) for _ in range(num_heads)])")],
           mha_03b, "likely heads of n_embd channels each"),
    "A7": ([("torch.cat([h(x) for h in self.heads], dim=-1)", "torch.cat([self.heads[0](x) for h in self.heads], dim=-1)")],
           mha_03b, "hands proj the same numbers"),
    "A9": ([("return self.dropout(self.proj(out))", "return self.dropout(F.relu(self.proj(out)))")], mha_03b,
           "nothing but dropout comes after the output projection"),
    "A11": ([("@SOURCE@", FUSED.replace("* self.hs**-0.5", "* C**-0.5"))], mha_03b, "scaled by C**-0.5 with C = n_embd = 32"),
    "A12": ([("@SOURCE@", FUSED.replace("t.view(B, T, self.n_head, self.hs).transpose(1, 2)", "t.view(B, self.n_head, T, self.hs)")
              .replace("(wei @ v).transpose(1, 2).reshape(B, T, C)", "(wei @ v).reshape(B, T, C)"))], mha_03b, "time on its own axis"),
    "A12 with reshape": ([("@SOURCE@", FUSED.replace("t.view(B, T, self.n_head, self.hs).transpose(1, 2)", "t.reshape(B, self.n_head, T, self.hs)")
                           .replace("(wei @ v).transpose(1, 2).reshape(B, T, C)", "(wei @ v).reshape(B, T, C)"))], mha_03b, "then transposed"),
    "F5": ([("return self.net(x)  # (B, T, C) -> (B, T, C)", "return x + self.net(x)")], block_03b, "returns 2.00 times its input"),
    "K4": ([(BLOCK, "        x = x + self.ffwd(self.sa(x))  # (B, T, C)")], block_03b,
           "attention changes nothing, so its output reaches the block's output only through the feed-forward"),
    "K10": ([("self.sa = MultiHeadAttention(n_head, head_size)", "self.sa = MultiHeadAttention(head_size, n_head)")], block_03b,
            "has 8 heads of 4 channels, not n_head = 4 heads"),
    "K12": ([(BLOCK, "        x = (x + self.sa(x)) / 2\n        x = (x + self.ffwd(x)) / 2")], block_03b, "returns 0.25 times its input"),
    "X4": ([("ln_f=nn.LayerNorm(n_embd))", "ln_f=nn.LayerNorm(vocab_size))")], model_03b, "in ln_f (LayerNorm, given input of shape (2, 8, 32))"),
    "X6": ([(X2, "    blocks = nn.ModuleList([PreNormBlock(n_embd, n_head) for _ in range(n_layer)])")], model_03b,
           "in body (ModuleList, given input of shape (2, 8, 32))"),
    "FF-b softmax as the activation": ([("            nn.ReLU(),\n", "            nn.Softmax(dim=-1),\n")], block_03b, "mixes the hidden channels"),
}

FF_IN, FF_OUT = "nn.Linear(config.n_embd, 4 * config.n_embd),  # (B, T, 4C)", "nn.Linear(4 * config.n_embd, config.n_embd),  # (B, T, C)"
PROJ = "self.proj = nn.Linear(head_size * config.n_head, config.n_embd)"
VARIANTS_03C = {  # correct code of the 04 table: every check of 03c passes
    "H16 dropout on the head's output": [("wei = self.dropout(self.attention(x))  # (B, T, T)\n        return wei @ self.value(x)",
                                          "wei = self.attention(x)  # (B, T, T)\n        return self.dropout(wei @ self.value(x))")],
    "H17 roles of q and k swapped": [(S, "wei = (k @ q.transpose(-2, -1)).transpose(-2, -1) * k.shape[-1]**-0.5")],
    "H23 in-place masked_fill_": [(MF, "wei = wei.masked_fill_(self.tril[:T, :T] == 0, float('-inf'))")],
    "H24 einsum": [(S, "wei = torch.einsum('btd,bsd->bts', q, k) * k.shape[-1]**-0.5")],
    "a head through SDPA with dropout": [("        wei = self.dropout(self.attention(x))  # (B, T, T)\n        return wei @ self.value(x)",
                                          "        q, k, v = self.query(x), self.key(x), self.value(x)\n        return F.scaled_dot_product_attention("
                                          "q, k, v, is_causal=True, dropout_p=self.dropout.p if self.training else 0.0)")],
    "M11 proj n_embd to n_embd": [("self.proj = nn.Linear(head_size * config.n_head, config.n_embd)", "self.proj = nn.Linear(config.n_embd, config.n_embd)")],
    "B4 post-norm": [(SA, "x = self.ln1(x + self.sa(x))"), (FF, "x = self.ln2(x + self.ffwd(x))")],
    "B6 feed-forward first": [(SA, "x = x + self.ffwd(self.ln2(x))"), (FF + "  # (B, T, C)\n        return x", SA + "  # (B, T, C)\n        return x")],
    "B7 parallel": [(SA + "  # (B, T, C)\n        " + FF, "x = x + self.sa(self.ln1(x)) + self.ffwd(self.ln2(x))")],
    "B9 the norm on the branch's output": [(SA, "x = x + self.ln1(self.sa(x))"), (FF, "x = x + self.ln2(self.ffwd(x))")],
    "B13 norms swapped": [(SA, "x = x + self.sa(self.ln2(x))"), (FF, "x = x + self.ffwd(self.ln1(x))")],
    "F2 GELU": [(RELU, "            nn.GELU(),\n")],
    "H-g biases on key, query and value (GPT-2)": [(KQV, KQV.replace(", bias=False", ""))],
    "C16 a bias-free feed-forward": [(FF_IN, FF_IN.replace("4 * config.n_embd)", "4 * config.n_embd, bias=False)")),
                                     (FF_OUT, FF_OUT.replace("config.n_embd)", "config.n_embd, bias=False)"))],
    "C16b only the first Linear bias-free": [(FF_IN, FF_IN.replace("4 * config.n_embd)", "4 * config.n_embd, bias=False)"))],
    "C15 a bias-free proj": [(PROJ, PROJ.replace("config.n_embd)", "config.n_embd, bias=False)"))],
    "C18 ReLU in place": [(RELU, "            nn.ReLU(inplace=True),\n")],
    "C56 normal_ as a tensor method": [("torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)", "module.weight.data.normal_(mean=0.0, std=0.02)")],
    "nanoGPT's if / elif": [("    if isinstance(module, (nn.Linear, nn.Embedding)):\n        torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)\n"
                            "    if isinstance(module, nn.Linear) and module.bias is not None:\n        torch.nn.init.zeros_(module.bias)\n",
                            "    if isinstance(module, nn.Linear):\n        torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)\n"
                            "        if module.bias is not None:\n            torch.nn.init.zeros_(module.bias)\n"
                            "    elif isinstance(module, nn.Embedding):\n        torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)\n")],
    "a truncated normal": [("torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)", "torch.nn.init.trunc_normal_(module.weight, std=0.02)")],
    "tanh": [(RELU, "            nn.Tanh(),\n")],
    "SiLU": [(RELU, "            nn.SiLU(),\n")],
}

VARIANTS_03B = {  # correct code of the 03 table, in 03b: the check of the piece passes
    "A8 bias-free proj": ([("self.proj = nn.Linear(head_size * num_heads, n_embd)", "self.proj = nn.Linear(head_size * num_heads, n_embd, bias=False)")], mha_03b),
    "A10 fused heads": ([("@SOURCE@", FUSED)], mha_03b),
    "A10 fused heads, dropout 0.2": ([("@SOURCE@", FUSED)], mha_03b_dropout),
    "heads' dropout 0.2": ([], mha_03b_dropout),
    "K3 parallel": ([(BLOCK, "        x = x + self.sa(x) + self.ffwd(x)  # (B, T, C)")], block_03b),
    "K5 feed-forward first": ([(BLOCK, "        x = x + self.ffwd(x)  # (B, T, C)\n        x = x + self.sa(x)  # (B, T, C)")], block_03b),
    "K11 feed-forward on the block's input": ([(BLOCK, "        h = x + self.sa(x)  # (B, T, C)\n        x = h + self.ffwd(x)  # (B, T, C)")], block_03b),
    "P1 post-norm": ([("        x = x + self.sa(self.ln1(x))  # (B, T, C)\n        x = x + self.ffwd(self.ln2(x))  # (B, T, C)",
                       "        x = self.ln1(x + self.sa(x))  # (B, T, C)\n        x = self.ln2(x + self.ffwd(x))  # (B, T, C)")], prenorm_03b),
    "P4 the norm on the branch's output": ([("        x = x + self.sa(self.ln1(x))  # (B, T, C)\n        x = x + self.ffwd(self.ln2(x))  # (B, T, C)",
                                             "        x = x + self.ln1(self.sa(x))  # (B, T, C)\n        x = x + self.ln2(self.ffwd(x))  # (B, T, C)")], prenorm_03b),
    "the transformer": ([], model_03b),
}


def edits_03b(edits):
    return [(source_03b_mha(), new) if old == "@SOURCE@" else (old, new) for old, new in edits]


@pytest.mark.parametrize("case", list(MISTAKES_03C))
def test_03cs_checks_name_the_mistake(case):
    edits, stop, words = MISTAKES_03C[case]
    order, ns = list(CHECKS_03C), ns_03c(edits)  # "model (04)": the check 04 runs on its folded copy, its learner's first
    for name in order[:order.index(stop)] if stop in order else ():  # the checks before it pass: the learner reaches this one
        if stop != "model cell" or not name.startswith("model"):  # the model cell is where the model is first built
            assert "passed" in CHECKS_03C[name](ns), name
    with pytest.raises(AssertionError) as caught:
        CHECKS_03C[stop.replace(" (04)", "")](ns)
    message = str(caught.value)
    assert type(caught.value).__name__ == "CheckFailed" and words in message and "\n" not in message, message


@pytest.mark.parametrize("case", list(MISTAKES_03B))
def test_03bs_checks_name_the_mistake(case):
    edits, run, words = MISTAKES_03B[case]
    assert "passed" in run(ns_03b())
    with pytest.raises(AssertionError) as caught:
        run(ns_03b(edits_03b(edits)))
    message = str(caught.value)
    assert type(caught.value).__name__ == "CheckFailed" and words in message and "\n" not in message, message


@pytest.mark.parametrize("case", list(VARIANTS_03C))
def test_03cs_correct_variants_pass_every_check(case):
    ns = ns_03c(VARIANTS_03C[case])
    for name, run in CHECKS_03C.items():
        assert "passed" in run(ns), name


@pytest.mark.parametrize("case", list(VARIANTS_03B))
def test_03bs_correct_variants_pass(case):
    edits, run = VARIANTS_03B[case]
    assert "passed" in run(ns_03b(edits_03b(edits)))


def test_the_checks_put_back_the_dropout_rates_and_the_mode():
    ns = ns_03c()
    model = gpt(ns, dropout=0.2).train()
    ns["check_model"](model)
    ns["check_multihead"](model.blocks[0].sa, 32, 4)
    assert model.training and {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)} == {0.2}


@pytest.mark.parametrize("case", ["C16 a bias-free feed-forward", "C16b only the first Linear bias-free", "C15 a bias-free proj"])
def test_the_parameter_count_accepts_bias_free_layers(case):
    assert "passed" in ns_03c(VARIANTS_03C[case])["check_parameter_count"](gpt(ns_03c(VARIANTS_03C[case])))


@pytest.mark.parametrize("edits, words", [  # C17: a piece one layer too many; C21: one LayerNorm for both places
    ([(FF_OUT, FF_OUT + "\n            nn.LayerNorm(config.n_embd),")], "blocks[0].ffwd has 64 more numbers in vectors"),
    ([("self.ln2 = nn.LayerNorm(config.n_embd)", "self.ln2 = self.ln1")], "each with ln1 and ln2"),
    ([("head_size = config.n_embd // config.n_head", "head_size = config.n_head")], "blocks[0].sa has 2,048 weights in its matrices, 2,048 fewer")])
def test_the_parameter_count_names_the_piece_and_the_difference(edits, words):
    ns = ns_03c(edits)
    with pytest.raises(AssertionError) as caught:
        ns["check_parameter_count"](gpt(ns))
    assert type(caught.value).__name__ == "CheckFailed" and words in str(caught.value), str(caught.value)


def test_a_final_layernorm_after_lm_head_is_named():  # C28: scale-free logits, but lm_head reads the raw stream
    ns = ns_03c([("self.ln_f = nn.LayerNorm(config.n_embd)", "self.ln_f = nn.LayerNorm(config.vocab_size)"),
                 ("logits = self.lm_head(self.ln_f(x))  # (B, T, vocab_size)", "logits = self.ln_f(self.lm_head(x))  # (B, T, vocab_size)")])
    assert "passed" in ns["check_model"](gpt(ns))
    with pytest.raises(AssertionError, match="belongs between the blocks and lm_head, not after lm_head"):
        ns["check_final_norm"](gpt(ns))


def test_an_element_wise_gated_feed_forward_passes_and_a_channel_mixing_one_does_not():
    """FF-b's probe (session 6): a gated feed-forward (SwiGLU-like, two Linears in, one out) acts on each hidden
    number alone and passes; the same with a softmax over the hidden channels is named."""
    ns = ns_03c()

    class Gated(torch.nn.Module):
        def __init__(self, mix=False):
            super().__init__()
            self.up, self.gate, self.down, self.mix = torch.nn.Linear(32, 64), torch.nn.Linear(32, 64), torch.nn.Linear(64, 32), mix
        def forward(self, x):
            a = torch.nn.functional.silu(self.up(x))
            return self.down((a.softmax(-1) if self.mix else a) * self.gate(x))

    assert "passed" in ns["check_feedforward"](Gated(), n_embd=32)
    with pytest.raises(AssertionError, match="mixes the hidden channels"):
        ns["check_feedforward"](Gated(mix=True), n_embd=32)
