"""Notebook 03's and 03b's checks meet the mistakes a learner new to the code makes (the hunt of issue 21).

Each mistake is one edit of the source of the notebook that holds the piece (notebooks/03_building_gpt.py
up to one head; notebooks/03b_blocks_and_the_ladder.py from multi-head attention on, whose folded copy of
03's model takes the edits of 03's pieces that only 03b's checks exercise); the check that follows that
piece in the notebook must stop with CheckFailed and a sentence naming the property and the likely
cause. The correct variants (post-norm, as Exercise 1 asks; GELU, as Exercise 3 asks; a head written
with PyTorch's own attention) must pass the same checks."""
import ast
import pathlib

import pytest
import torch

from notebook_code import NOTEBOOKS, load

TRAIN = torch.arange(400) % 61
VAL = (torch.arange(200) * 7) % 61
HYPER = ("n_embd", "block_size", "n_head", "n_layer", "dropout")
DATA_CHAIN = ("text", "chars", "vocab_size", "stoi", "itos", "encode", "decode", "data", "n", "train_data", "val_data")


NB3B = "03b_blocks_and_the_ladder"


def ns(replace=(), keep=(), notebook="03_building_gpt"):
    found = load(notebook, keep=HYPER + tuple(keep), replace=replace, vocab_size=65, device="cpu",
                 batch_size=4, eval_batch=64)
    if "train_data" not in keep:
        found.update(train_data=TRAIN, val_data=VAL, vocab_size=65)
    return found


@pytest.fixture
def small_text(tmp_path, monkeypatch):
    path = tmp_path / "small.txt"
    full = (pathlib.Path(__file__).resolve().parent.parent / "datasets" / "tinyshakespeare.txt").read_text(encoding="utf-8")
    path.write_text(full[:20_000], encoding="utf-8")
    monkeypatch.setenv("COURSE_DATA", str(path))


def head(found):
    return found["check_head"](found["Head"](8))


def multihead(found):
    return found["check_multihead"](found["MultiHeadAttention"](4, 8), 32, 4)


def feedforward(found):
    return found["check_feedforward"](found["FeedForward"](32), 32)


def block(found):
    return found["check_block"](found["Block"](32, 4))


def prenorm_block(found):
    return found["check_block"](found["PreNormBlock"](32, 4))


def model(found):  # 03b checks each rung's model by check_rung (the weights it implies, a forward pass)
    torch.manual_seed(1337)
    return found["check_rung"](found["transformer"](), "6 + LayerNorm")


def model_with_dropout(found):  # 03's one-head model built with dropout 0.2, under 03's check_model
    found["dropout"] = 0.2
    torch.manual_seed(1337)
    built = found["BigramLanguageModel"](body=found["Head"](found["n_embd"]))
    found["dropout"] = 0.0
    return found["check_model"](built)


IN_03B = {multihead, feedforward, block, prenorm_block, model}  # checks of 03b's pieces


def generate(found):
    return found["check_generate"](found["generate"], block_size=8)


def split_loss(found):
    return found["check_evaluation"](found["split_loss"], found["Bigram"](), VAL)


def batch(found):
    x, y = found["attempt"]("get_batch('train')", found["get_batch"], "train", torch.Generator().manual_seed(0))
    return found["check_batch"](x, y, TRAIN, 4, 8)


def layernorm(found):
    return found["check_layernorm"](found["LayerNorm1d"](100))


IN_03B.add(layernorm)


def split(found):
    return found["check_split"](found["text"], found["encode"], found["train_data"], found["val_data"])


def step1(found):
    torch.manual_seed(1337)
    return found["check_model"](found["BigramLanguageModel"](), attends=False)


def step2(found):
    torch.manual_seed(1337)
    return found["check_model"](found["BigramLanguageModel"](body=found["Head"](32)))


MASK = "wei = wei.masked_fill(self.tril[:T, :T] == 0, float('-inf'))  # (B, T, T)"
CAT = "out = torch.cat([h(x) for h in self.heads], dim=-1)  # (B, T, num_heads * hs)"
PROJ = "        return self.dropout(self.proj(out))  # (B, T, C)"
RELU = "            nn.ReLU(),\n            nn.Linear(4 * n_embd, n_embd),  # (B, T, C) the projection back"
BLOCK = "        x = x + self.sa(x)  # (B, T, C)\n        x = x + self.ffwd(x)  # (B, T, C)\n        return x\n\n# %%\nprint(check_block(build(Block, n_embd, n_head), n_head=n_head))"
PRENORM = "        x = x + self.sa(self.ln1(x))  # (B, T, C)\n        x = x + self.ffwd(self.ln2(x))  # (B, T, C)"
POS = "pos_emb = self.position_embedding_table(torch.arange(T, device=idx.device))  # (T, C)"
HEAD_OUT = "        x = self.ln_f(self.body(x))  # (B, T, C)\n        logits = self.lm_head(x)  # (B, T, vocab_size)"
LOSS = "        loss = None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten())\n        return logits, loss\n\n\n# %%\n@torch.no_grad()\ndef generate"
CROP = "idx_cond = idx[:, -block_size:]  # (B, T) with T <= block_size"
SPLIT_END = "                for xb, yb in zip(x.split(eval_batch), y.split(eval_batch)))\n    model.train()\n"

MISTAKES = {  # name: (the learner's edits, the check that follows, what its sentence must say[, load keep])
    "a head's mask not cut to T": ([(MASK, MASK.replace("self.tril[:T, :T]", "self.tril"))], head, "self.tril[:T, :T]"),
    "a head masking the past": ([(MASK, MASK.replace("== 0", "== 1"))], head, "inf or nan"),
    "a head's future filled with 0": ([(MASK, MASK.replace("float('-inf')", "0.0"))], head, "filled with 0"),
    "heads joined on the time axis": ([(CAT, CAT.replace("dim=-1", "dim=1"))], multihead, "MultiHeadAttention on x of shape (2, 8, 32) raised"),
    "one Head object for every head": ([("self.heads = nn.ModuleList([Head(head_size) for _ in range(num_heads)])",
                                         "self.heads = nn.ModuleList([Head(head_size)] * num_heads)")], multihead, "one Head object reused"),
    "head_size = n_embd in a Block": ([("        head_size = n_embd // n_head\n", "        head_size = n_embd\n")], block, "heads of n_embd channels each"),
    "proj defined but never applied": ([(PROJ, "        return self.dropout(out)  # (B, T, C)")], multihead, "proj is defined but never applied"),
    "proj never applied, seen by the block": ([(PROJ, "        return self.dropout(out)  # (B, T, C)")], block, "proj is defined but never applied"),
    "a feed-forward without ReLU": ([(RELU, "            nn.Linear(4 * n_embd, n_embd),  # (B, T, C) the projection back")], feedforward, "is linear"),
    "the ReLU after the last Linear": ([(RELU, "            nn.Linear(4 * n_embd, n_embd),  # (B, T, C) the projection back\n            nn.ReLU(),")],
                                       feedforward, "never outputs a negative number"),
    "a feed-forward that stays 4x wide": ([(RELU, RELU.replace("nn.Linear(4 * n_embd, n_embd)", "nn.Linear(4 * n_embd, 4 * n_embd)"))],
                                          feedforward, "it must end where it started"),
    "a block that never calls ffwd": ([(BLOCK, BLOCK.replace("x + self.ffwd(x)", "x + self.sa(x)"))], block, "the feed-forward never reaches the output"),
    "a normed stream (x = ln(x), then x + sa(x))": ([(PRENORM, "        x = self.ln1(x)\n        x = x + self.sa(x)  # (B, T, C)\n"
                                                               "        x = self.ln2(x)\n        x = x + self.ffwd(x)  # (B, T, C)")],
                                                    prenorm_block, "normalises the residual stream itself"),
    "only one residual add": ([(BLOCK, BLOCK.replace("x = x + self.sa(x)", "x = self.sa(x)"))], block, "the residual connections are missing"),
    "positions over block_size, not T": ([(POS, POS.replace("torch.arange(T,", "torch.arange(block_size,"))], step2,
                                         "BigramLanguageModel(idx of shape (3, 5), targets) raised"),
    "dropout on the logits": ([(HEAD_OUT, HEAD_OUT.replace("logits = self.lm_head(x)", "logits = self.drop(self.lm_head(x))")),
                               ("        self.lm_head = nn.Linear(n_embd, vocab_size)\n",
                                "        self.lm_head = nn.Linear(n_embd, vocab_size)\n        self.drop = nn.Dropout(dropout)\n")],
                              model_with_dropout, "a dropout is applied to the logits"),
    "cross-entropy on unflattened logits": ([(LOSS, LOSS.replace("F.cross_entropy(logits.flatten(0, 1), targets.flatten())", "F.cross_entropy(logits, targets)"))],
                                            step2, "raised"),
    "ln_f after lm_head": ([(HEAD_OUT, "        x = self.body(x)  # (B, T, C)\n        logits = self.ln_f(self.lm_head(x))  # (B, T, vocab_size)")],
                           model, "raised RuntimeError"),
    "generate cropping to the first block_size": ([(CROP, "idx_cond = idx[:, :block_size]  # (B, T)")], generate, "differs from a reference"),
    "generate cropping one short": ([(CROP, "idx_cond = idx[:, -block_size + 1:]  # (B, T)")], generate, "differs from a reference"),
    "generate always ending in training mode": ([("    model.train(was_training)\n    return idx", "    model.train()\n    return idx")],
                                                generate, "left a model in eval mode in training mode"),
    "split_loss never back in training mode": ([(SPLIT_END, SPLIT_END.replace("    model.train()\n", ""))], split_loss, "left the model in eval mode"),
    "LayerNorm without beta": ([("return self.gamma * xhat + self.beta  # (B, T, C)", "return self.gamma * xhat  # (B, T, C)")],
                               layernorm, "differs from nn.LayerNorm"),
    "LayerNorm dividing by the variance": ([("torch.sqrt(xvar + self.eps)", "(xvar + self.eps)")], layernorm, "not 1"),
    "one offset for the whole batch": ([("ix = torch.randint(len(data) - block_size, (batch_size,), generator=generator)",
                                         "ix = torch.randint(len(data) - block_size, (1,), generator=generator).repeat(batch_size)")],
                                       batch, "every row of the batch is the same chunk"),
    "characters shuffled before the split": ([("data = torch.tensor(encode(text), dtype=torch.long)\nn = ",
                                               "data = torch.tensor(encode(text), dtype=torch.long)[torch.randperm(len(text))]\nn = ")],
                                             split, "not the text's head and tail", DATA_CHAIN),
    "exercise 1, wrong: the norm on the stream": ([(PRENORM, "        x = self.ln1(x) + self.sa(self.ln1(x))  # (B, T, C)\n"
                                                             "        x = self.ln2(x) + self.ffwd(self.ln2(x))  # (B, T, C)")],
                                                  prenorm_block, "normalises the residual stream itself"),
    "exercise 3, wrong: GELU in place of the second Linear": ([(RELU, "            nn.GELU(),")], feedforward, "it must end where it started"),
}

CORRECT = {  # other correct ways to write the pieces, and the exercises' right answers
    "exercise 1: post-norm": ([(PRENORM, "        x = self.ln1(x + self.sa(x))  # (B, T, C)\n        x = self.ln2(x + self.ffwd(x))  # (B, T, C)")], prenorm_block),
    "exercise 3: GELU": ([(RELU, RELU.replace("nn.ReLU()", "nn.GELU()"))], feedforward),
    "exercise 3: GELU, in a block": ([(RELU, RELU.replace("nn.ReLU()", "nn.GELU()"))], block),
    "a head through F.scaled_dot_product_attention": ([("        wei = q @ k.transpose(-2, -1) * k.shape[-1]**-0.5  # (B, T, hs) @ (B, hs, T) -> (B, T, T)\n",
                                                        "        return F.scaled_dot_product_attention(q, k, self.value(x), is_causal=True)\n")], head),
    "a bias-free proj": ([("self.proj = nn.Linear(head_size * num_heads, n_embd)", "self.proj = nn.Linear(head_size * num_heads, n_embd, bias=False)")], block),
    "generate cropping with a computed start": ([(CROP, "idx_cond = idx[:, max(0, idx.shape[1] - block_size):]  # (B, T)")], generate),
    "the one-head model with dropout 0.2": ([], model_with_dropout),
}


def batch_cell(found):
    """The notebook's own batch-check cell (its defs come from the edited source)."""
    cells = (NOTEBOOKS / "03_building_gpt.py").read_text(encoding="utf-8").split("\n# %%")
    tree = ast.parse(next(c.split("\n", 1)[1] for c in cells if "check_batch(*attempt(" in c))
    tree.body = [n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    exec(compile(tree, "03_building_gpt", "exec"), found)
    return "passed"


GAMMA_BETA = "        self.gamma = nn.Parameter(torch.ones(dim))  # (C,) learnable gain\n        self.beta = nn.Parameter(torch.zeros(dim))  # (C,) learnable bias"
IX = "ix = torch.randint(len(data) - block_size, (batch_size,), generator=generator)"
TRIL = "self.register_buffer('tril', torch.tril(torch.ones(block_size, block_size)))"

MISTAKES.update({  # the cold learner's hunt (cold13)
    "split_loss with targets not shifted": ([("x, y = data[:n].view(-1, block_size), data[1:n + 1].view(-1, block_size)",
                                              "x, y = data[:n].view(-1, block_size), data[:n].view(-1, block_size)")],
                                            split_loss, "targets that are not its inputs one step on"),
    "split_loss dividing by len(data)": ([("    return total / len(x)", "    return total / len(data)")], split_loss,
                                         "outside the range of the losses"),
    "generate cropping idx itself": ([("        idx_cond = idx[:, -block_size:]  # (B, T) with T <= block_size\n        logits, _ = model(idx_cond)",
                                       "        idx = idx[:, -block_size:]\n        logits, _ = model(idx)")], generate, "never idx itself"),
    "positions made on the CPU": ([(POS, POS.replace("torch.arange(T, device=idx.device)", "torch.arange(T)"))], step1,
                                  "on a GPU BigramLanguageModel would mix"),
    "lm_head fed the token embeddings": ([(HEAD_OUT, HEAD_OUT.replace("self.lm_head(x)", "self.lm_head(tok_emb)"))], step2,
                                         "the logits depend on the current character alone"),
    "the mask as a plain attribute": ([(TRIL, "self.tril = torch.tril(torch.ones(block_size, block_size))")], head,
                                      "is a plain attribute, not a buffer"),
    "the mask as a plain attribute, seen by the model": ([(TRIL, "self.tril = torch.tril(torch.ones(block_size, block_size))")], step2,
                                                         "is a plain attribute, not a buffer"),
    "the mask as an nn.Parameter": ([(TRIL, "self.tril = nn.Parameter(torch.tril(torch.ones(block_size, block_size)))")], multihead,
                                    "is an nn.Parameter"),
    "dropout on the scores before the softmax": ([("wei = self.dropout(F.softmax(wei, dim=-1))", "wei = F.softmax(self.dropout(wei), dim=-1)")],
                                                 model_with_dropout, "in training mode (dropout on)"),
    "heads in a plain Python list": ([("self.heads = nn.ModuleList([Head(head_size) for _ in range(num_heads)])",
                                       "self.heads = [Head(head_size) for _ in range(num_heads)]")], multihead, "plain Python list of modules"),
    "a block adding in place (x +=)": ([(BLOCK, BLOCK.replace("x = x + self.sa(x)", "x += self.sa(x)").replace("x = x + self.ffwd(x)", "x += self.ffwd(x)"))],
                                       block, "changed its input in place"),
    "pre-norm reusing ln1 for the feed-forward": ([(PRENORM, PRENORM.replace("self.ffwd(self.ln2(x))", "self.ffwd(self.ln1(x))"))],
                                                  prenorm_block, "ln2 is built but never used"),
    "LayerNorm mean without keepdim": ([("xmean = x.mean(-1, keepdim=True)", "xmean = x.mean(-1)")], layernorm, "keepdim=True, so that they broadcast"),
    "LayerNorm with std in place of var": ([("xvar = x.var(-1, keepdim=True, unbiased=False)", "xvar = x.std(-1, keepdim=True, unbiased=False)")],
                                           layernorm, "not 1"),
    "LayerNorm gamma * (xhat + beta)": ([("return self.gamma * xhat + self.beta", "return self.gamma * (xhat + self.beta)")], layernorm,
                                        "with a random gain and bias"),
    "get_batch ignoring its generator": ([(IX, "ix = torch.randint(len(data) - block_size, (batch_size,))")], batch_cell,
                                         "two generators with the same seed gave different batches"),
    "get_batch offsets over the whole split": ([(IX, IX.replace("len(data) - block_size", "len(data)"))], batch_cell,
                                               "given the smallest and the largest offsets"),
    "a head's queries from the key layer": ([("q = self.query(x)  # (B, T, hs)", "q = self.key(x)  # (B, T, hs)")], head,
                                            "the queries come from the key layer"),
    "the position table sized vocab_size": ([("self.position_embedding_table = nn.Embedding(block_size, n_embd)",
                                              "self.position_embedding_table = nn.Embedding(vocab_size, n_embd)")], step2, "position table has 65 rows"),
})

CORRECT.update({
    "LayerNorm1d with beta defined before gamma": ([(GAMMA_BETA, "\n".join(GAMMA_BETA.split("\n")[::-1]))], layernorm),
    "LayerNorm1d through F.layer_norm": ([("return self.gamma * xhat + self.beta  # (B, T, C)",
                                           "return F.layer_norm(x, x.shape[-1:], self.gamma, self.beta, self.eps)  # (B, T, C)")], layernorm),
    "LayerNorm1d with rsqrt": ([("xhat = (x - xmean) / torch.sqrt(xvar + self.eps)", "xhat = (x - xmean) * torch.rsqrt(xvar + self.eps)")], layernorm),
    "heads stacked, then flattened": ([(CAT, "out = torch.stack([h(x) for h in self.heads], dim=-1).flatten(-2)  # (B, T, num_heads * hs)")], multihead),
    "a mask made on the fly, on x's device": ([(MASK, "wei = wei.masked_fill(torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1), float('-inf'))")], step2),
    "ReLU(inplace=True)": ([(RELU, RELU.replace("nn.ReLU()", "nn.ReLU(inplace=True)"))], block),
    "split_loss under @torch.inference_mode()": ([("@torch.no_grad()\ndef split_loss", "@torch.inference_mode()\ndef split_loss")], split_loss),
    "the batch cell as written": ([], batch_cell),
    "get_batch through unfold": ([("    x = torch.stack([data[i:i + block_size] for i in ix])             # (B, T)\n"
                                   "    y = torch.stack([data[i + 1:i + block_size + 1] for i in ix])     # (B, T)",
                                   "    x = data.unfold(0, block_size, 1)[ix]\n    y = data[1:].unfold(0, block_size, 1)[ix]")], batch_cell),
    "a head through SDPA with dropout, in the model": ([("        wei = q @ k.transpose(-2, -1) * k.shape[-1]**-0.5  # (B, T, hs) @ (B, hs, T) -> (B, T, T)\n",
                                                         "        return F.scaled_dot_product_attention(q, k, self.value(x), is_causal=True, "
                                                         "dropout_p=self.dropout.p if self.training else 0.0)\n")], model_with_dropout),
})


BASELINES = set()  # (check, keep, notebook) already seen passing on the notebook as written, in this session


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_the_check_names_the_mistake(mistake, small_text):
    edits, run, sentence, *keep = MISTAKES[mistake]
    keep = keep[0] if keep else ()
    notebook = NB3B if run in IN_03B else "03_building_gpt"
    if (run, keep, notebook) not in BASELINES:  # the same check on the unedited notebook passes (once per session)
        assert "passed" in run(ns(keep=keep, notebook=notebook))
        BASELINES.add((run, keep, notebook))
    with pytest.raises(AssertionError) as caught:
        run(ns(replace=edits, keep=keep, notebook=notebook))
    assert type(caught.value).__name__ == "CheckFailed" and sentence in str(caught.value), str(caught.value)


@pytest.mark.parametrize("variant", list(CORRECT))
def test_a_correct_variant_passes(variant):
    edits, run = CORRECT[variant]
    assert "passed" in run(ns(replace=edits, notebook=NB3B if run in IN_03B else "03_building_gpt"))


def test_the_hunt_has_fifteen_mistakes_at_least():
    assert len(MISTAKES) >= 15
