"""Notebook 04's checks catch mistakes a learner new to the code makes (a hunt beyond tests/test_mistakes.py):
each mistake is made in the notebook's own source, and the check that follows that piece must fail with a
sentence naming the property and the likely cause. Correct variants a learner may write must pass.
Notebook 03c builds and checks the whole model (04 carries it folded, unchecked): the mistakes its checks name are
made in 03c's source (MISTAKES_03C, moved from MISTAKES_04 with the model); 04 keeps the checks of what a learner edits
there (encode and decode, the batches, the losses, train_step). The checks of one head, of multi-head attention and of
a block are notebooks 03 and 03b's, where each piece is built: the mistakes only those checks name are made in 03b's
pieces (MISTAKES_IN_03B)."""
import pytest
import torch

from notebook_code import NOTEBOOKS, load

DATA = torch.arange(400) % 61  # a stand-in training split: consecutive ids, every chunk easy to find
VAL = (torch.arange(200) * 7) % 61  # a validation split that is not the training one


def ns_03b(replace=()):  # notebook 03b builds multi-head attention and the blocks, each checked as it is built
    ns = load("03b_blocks_and_the_ladder", keep=("n_embd", "block_size", "n_head", "n_layer", "dropout"), replace=replace,
              vocab_size=65, device="cpu", batch_size=4)
    ns.update(train_data=DATA, val_data=DATA)
    return ns


def ns_03c(replace=()):  # notebook 03c: the complete model and its checks, no data
    return load("03c_the_complete_model", replace=replace)


def ns_04(replace=()):
    ns = load("04_gpt", replace=replace)
    ns.update(train_data=DATA, val_data=VAL, batch_size=4, block_size=8, device="cpu",
              chars=[chr(33 + i) for i in range(65)], eval_iters=3)
    return ns


def config(ns, **kw):
    return ns["GPTConfig"](**{**dict(vocab_size=65, block_size=8, n_embd=32, n_head=4, n_layer=2, dropout=0.0), **kw})


def model(ns, **kw):
    torch.manual_seed(1337)
    return ns["GPTLanguageModel"](config(ns, **kw))


def toy_batches():
    torch.manual_seed(0)
    return [(torch.randint(0, 65, (4, 8)), torch.randint(0, 65, (4, 8))) for _ in range(2)]


CHECKS_03C = {  # the check cells of notebook 03c, as it calls them
    "feedforward": lambda ns: ns["check_feedforward"](ns["FeedForward"](config(ns)), n_embd=32),
    "model": lambda ns: ns["check_model"](model(ns)),
    "every_parameter": lambda ns: ns["check_every_parameter_learns"](model(ns)),
    "final_norm": lambda ns: ns["check_final_norm"](model(ns)),
    "initial_loss": lambda ns: ns["check_initial_loss"](model(ns)),
    "parameters": lambda ns: ns["check_parameter_count"](model(ns, block_size=256, n_embd=384, n_head=6, n_layer=6)),
    "generate": lambda ns: ns["check_generate"](ns["generate"], block_size=8, sampling=True),
    "head": lambda ns: ns["check_head"](ns["Head"](config(ns, n_embd=32, block_size=16, dropout=0.0), head_size=8), head_size=8),
    "multihead": lambda ns: ns["check_multihead"](ns["MultiHeadAttention"](config(ns, n_embd=32, n_head=4, block_size=8, dropout=0.0)), n_embd=32, n_head=4),
    "block": lambda ns: ns["check_block"](ns["Block"](config(ns, n_embd=32, n_head=4, block_size=8, dropout=0.0)), n_head=4),
}

CHECKS = {  # the check cells of notebook 04, as the notebook calls them
    "encoder": lambda ns: ns["check_encoder"](ns["encoder_for"]),
    "batch": lambda ns: ns["check_batch"](*ns["get_batch"]("train"), DATA, 4, 8, draw=lambda: ns["get_batch"]("train")),
    "losses": lambda ns: ns["check_split_loss"](ns["split_loss"]),
    "train_step": lambda ns: ns["check_train_step"](ns["train_step"], model(ns), toy_batches()),
}

MISTAKES_04 = {  # name: ([(old, new)] in notebooks/04_gpt.py, the check that must catch it, words of its sentence)
    # torch.randint(n) draws 0 .. n - 1, so one less in its bound never draws the last chunk of the split
    "offsets stop one short of the last chunk": ([("ix = torch.randint(len(data) - block_size, (batch_size,))         # (B,) random offsets\n    x = torch.stack",
                                                   "ix = torch.randint(len(data) - block_size - 1, (batch_size,))     # (B,) random offsets\n    x = torch.stack")],
                                                 "batch", "no row is the last chunk of the split"),
    "itos off by one": ([("itos = {i: ch for i, ch in enumerate(chars)}", "itos = {i + 1: ch for i, ch in enumerate(chars)}")], "encoder", "decode(encode("),
    "stoi from the unsorted text": ([("stoi = {ch: i for i, ch in enumerate(chars)}", "stoi = {ch: i for i, ch in enumerate(reversed(chars))}")],
                                    "encoder", "its index in the sorted vocabulary"),
    "get_batch reads the validation split": ([("data = train_data if split == 'train' else val_data\n    ix", "data = val_data if split == 'train' else train_data\n    ix")],
                                             "batch", "not a chunk of the training split"),
    "estimate_loss never back in training mode": ([("        out[split] = losses.mean().item()\n    model.train()\n", "        out[split] = losses.mean().item()\n")],
                                                  "losses", "estimate_loss left the model in eval mode"),
    "split_loss without eval()": ([("    model.eval()\n    n = (len(data) - 1)", "    n = (len(data) - 1)")], "losses", "split_loss ran the model in training mode"),
    "split_loss with unshifted targets": ([("data[1:n + 1].view(-1, block_size)  # (N, T) each", "data[:n].view(-1, block_size)  # (N, T) each")],
                                          "losses", "targets that are not its inputs one step on"),
    "split_loss averages the batches, not the chunks": ([("total = sum(model(xb.to(device), yb.to(device))[1].item() * len(xb) for xb, yb in bar)",
                                                          "total = sum(model(xb.to(device), yb.to(device))[1].item() * 64 for xb, yb in bar)")],
                                                        "losses", "so it is not their mean"),
    "zero_grad after backward": ([("    optimizer.zero_grad(set_to_none=True)\n    loss.backward()\n    optimizer.step()\n    return loss",
                                   "    loss.backward()\n    optimizer.zero_grad(set_to_none=True)\n    optimizer.step()\n    return loss")],
                                 "train_step", "the weights did not change"),
}

MISTAKES_03C = {  # moved from MISTAKES_04 with the model: ([(old, new)] in notebooks/03c_the_complete_model.py, the
    # check of 03c that must catch it, words of its sentence)
    # a cold reader (session 4) found these silent in 04 once its piece checks had gone; 03c runs them again
    "a head scaled by C": ([("wei = q @ k.transpose(-2, -1) * k.shape[-1]**-0.5", "wei = q @ k.transpose(-2, -1) * C**-0.5")],
                           "head", "scaled by C**-0.5 with C = n_embd"),
    "a head not scaled": ([("wei = q @ k.transpose(-2, -1) * k.shape[-1]**-0.5", "wei = q @ k.transpose(-2, -1)")], "head", "not scaled"),
    "03c's proj never applied": ([("return self.dropout(self.proj(out))  # (B, T, C)", "return self.dropout(out)  # (B, T, C)")],
                                 "multihead", "proj is defined but never applied"),
    "03c's attention residual dropped": ([("x = x + self.sa(self.ln1(x))  # (B, T, C)", "x = self.sa(self.ln1(x))  # (B, T, C)")],
                                         "block", "the residual connections are missing"),
    "03c's residual stream normalised": ([("        x = x + self.sa(self.ln1(x))  # (B, T, C)\n", "        x = self.ln1(x)\n        x = x + self.sa(x)  # (B, T, C)\n")],
                                         "block", "normalises the residual stream"),
    "head_size = n_embd": ([("head_size = config.n_embd // config.n_head", "head_size = config.n_embd")],
                           "parameters", "blocks[0].sa has"),
    "one Head object used n_head times": ([("nn.ModuleList([Head(config, head_size) for _ in range(config.n_head)])",
                                            "nn.ModuleList([Head(config, head_size)] * config.n_head)")],
                                          "parameters", "a new Head per head"),
    "a FeedForward without its ReLU": ([("            nn.ReLU(),\n            nn.Linear(4 * config.n_embd", "            nn.Linear(4 * config.n_embd")],
                                       "feedforward", "is linear"),
    "the ReLU after the last Linear": ([("            nn.ReLU(),\n            nn.Linear(4 * config.n_embd, config.n_embd),  # (B, T, C)\n",
                                         "            nn.Linear(4 * config.n_embd, config.n_embd),  # (B, T, C)\n            nn.ReLU(),\n")],
                                       "feedforward", "never outputs a negative number"),
    "proj defined but never applied, seen by the whole model": ([("return self.dropout(self.proj(out))  # (B, T, C)", "return self.dropout(out)  # (B, T, C)")],
                                                                "every_parameter", "blocks.0.sa.proj gets no gradient from the loss"),
    "ln_f defined but never applied": ([("logits = self.lm_head(self.ln_f(x))  # (B, T, vocab_size)", "logits = self.lm_head(x)  # (B, T, vocab_size)")],
                                       "final_norm", "does not read it through the final LayerNorm"),
    "the blocks skipped": ([("x = self.blocks(self.embed(idx))  # (B, T, C)", "x = self.embed(idx)  # (B, T, C)")],
                           "model", "the positions do not communicate"),
    "positions embedded by token id": ([("return self.token_embedding_table(idx) + self.position_embedding_table(pos)  # (B, T, C)",
                                         "return self.token_embedding_table(idx) + self.position_embedding_table(idx % idx.shape[1])  # (B, T, C)")],
                                       "model", "ignores positions"),
    "softmax before cross_entropy": ([("F.cross_entropy(logits.flatten(0, 1), targets.flatten())", "F.cross_entropy(F.softmax(logits, -1).flatten(0, 1), targets.flatten())")],
                                     "model", "is not the mean cross-entropy of its logits"),
    "one block too few": ([("self.blocks = nn.Sequential(*[Block(config) for _ in range(config.n_layer)])",
                            "self.blocks = nn.Sequential(*[Block(config) for _ in range(config.n_layer - 1)])")],
                          "parameters", "a block or a layer is missing or extra"),
    "generate crops to the first block_size tokens": ([("idx_cond = idx[:, -self.config.block_size:]", "idx_cond = idx[:, :self.config.block_size]")],
                                                      "generate", "differs from a reference"),
    "generate takes the argmax": ([("idx_next = torch.multinomial(F.softmax(logits, dim=-1), num_samples=1)", "idx_next = logits.argmax(-1, keepdim=True)")],
                                  "generate", "torch.multinomial"),
    "generate leaves the model in eval mode": ([("    self.train(was_training)\n    return idx", "    return idx")], "generate", "left a model in training mode in eval mode"),
}

CHECKS_03B = {  # notebook 03b's checks of its pieces, as notebook 03b calls them
    "multihead": lambda ns: ns["check_multihead"](ns["MultiHeadAttention"](ns["n_head"], ns["n_embd"] // ns["n_head"]), ns["n_embd"], ns["n_head"]),
    "prenorm_block": lambda ns: ns["check_block"](ns["PreNormBlock"](ns["n_embd"], ns["n_head"])),
}

MISTAKES_IN_03B = {  # moved from MISTAKES_04: notebook 04 no longer carries the piece checks that name them; the same
    # mistake made in notebook 03b's piece meets the same sentence there
    "heads concatenated on the time axis": ([("out = torch.cat([h(x) for h in self.heads], dim=-1)", "out = torch.cat([h(x) for h in self.heads], dim=1)")],
                                            "multihead", "MultiHeadAttention on x of shape (2, 8, 32) raised RuntimeError"),
    "proj defined but never applied": ([("return self.dropout(self.proj(out))  # (B, T, C)", "return self.dropout(out)  # (B, T, C)")],
                                       "multihead", "proj is defined but never applied"),
    "the residual stream normalised itself": ([("        x = x + self.sa(self.ln1(x))  # (B, T, C)\n", "        x = self.ln1(x)\n        x = x + self.sa(x)  # (B, T, C)\n")],
                                              "prenorm_block", "normalises the residual stream"),
    "the attention's residual connection dropped": ([("x = x + self.sa(self.ln1(x))  # (B, T, C)", "x = self.sa(self.ln1(x))  # (B, T, C)")],
                                                    "prenorm_block", "the residual connections are missing"),
}

CORRECT_VARIANTS = {  # a learner's correct code: every check after it must still pass
    "a Head in einsum": ([("wei = q @ k.transpose(-2, -1) * k.shape[-1]**-0.5", "wei = torch.einsum('btd,bsd->bts', q, k) * k.shape[-1]**-0.5")], "head"),
    "a Head through SDPA": ([("        wei = self.dropout(self.attention(x))  # (B, T, T)\n        return wei @ self.value(x)",
                              "        q, k, v = self.query(x), self.key(x), self.value(x)\n        return F.scaled_dot_product_attention(q, k, v, is_causal=True, "
                              "dropout_p=self.dropout.p if self.training else 0.0)")], "head"),  # without dropout_p: H19, no attention dropout
    "heads joined with dim=2": ([("out = torch.cat([h(x) for h in self.heads], dim=-1)", "out = torch.cat([h(x) for h in self.heads], dim=2)")], "multihead"),
    "a GELU feed-forward": ([("            nn.ReLU(),\n            nn.Linear(4 * config.n_embd", "            nn.GELU(),\n            nn.Linear(4 * config.n_embd")], "feedforward"),
    "a post-norm block": ([("        x = x + self.sa(self.ln1(x))  # (B, T, C)\n        x = x + self.ffwd(self.ln2(x))  # (B, T, C)",
                            "        x = self.ln1(x + self.sa(x))  # (B, T, C)\n        x = self.ln2(x + self.ffwd(x))  # (B, T, C)")], "block"),
    "the lecture's view-based loss": ([("F.cross_entropy(logits.flatten(0, 1), targets.flatten())", "F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))")], "model"),
    "a bias-free lm_head": ([("self.lm_head = nn.Linear(config.n_embd, config.vocab_size)", "self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)")], "parameters"),
    "a tied lm_head": ([("        self.apply(_init_weights)\n", "        self.apply(_init_weights)\n        self.lm_head.weight = self.token_embedding_table.weight\n")], "parameters"),
    "split_loss with reshape": ([("x, y = data[:n].view(-1, block_size), data[1:n + 1].view(-1, block_size)", "x, y = data[:n].reshape(-1, block_size), data[1:n + 1].reshape(-1, block_size)")], "losses"),
    "estimate_loss restoring the mode it found": ([("    out = {}\n    model.eval()", "    out, was = {}, model.training\n    model.eval()"),
                                                    ("        out[split] = losses.mean().item()\n    model.train()\n", "        out[split] = losses.mean().item()\n    model.train(was)\n")], "losses"),
}


@pytest.mark.parametrize("name", list(MISTAKES_04))
def test_the_check_after_the_piece_names_the_mistake(name):
    edit, check_name, sentence = MISTAKES_04[name]
    assert "passed" in CHECKS[check_name](ns_04())  # the check passes on the notebook's own code
    with pytest.raises(AssertionError) as caught:
        CHECKS[check_name](ns_04(replace=edit))
    assert type(caught.value).__name__ == "CheckFailed" and sentence in str(caught.value), str(caught.value)
    assert "\n" not in str(caught.value)  # one sentence, not a traceback


@pytest.mark.parametrize("name", list(MISTAKES_03C))
def test_the_check_after_03cs_piece_names_the_mistake(name):
    edit, check_name, sentence = MISTAKES_03C[name]
    assert "passed" in CHECKS_03C[check_name](ns_03c())  # the check passes on the notebook's own code
    with pytest.raises(AssertionError) as caught:
        CHECKS_03C[check_name](ns_03c(replace=edit))
    assert type(caught.value).__name__ == "CheckFailed" and sentence in str(caught.value), str(caught.value)
    assert "\n" not in str(caught.value)  # one sentence, not a traceback


@pytest.mark.parametrize("name", list(MISTAKES_IN_03B))
def test_the_check_of_03bs_piece_names_the_mistake(name):
    edit, check_name, sentence = MISTAKES_IN_03B[name]
    assert "passed" in CHECKS_03B[check_name](ns_03b())
    with pytest.raises(AssertionError) as caught:
        CHECKS_03B[check_name](ns_03b(replace=edit))
    assert type(caught.value).__name__ == "CheckFailed" and sentence in str(caught.value), str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("name", list(CORRECT_VARIANTS))
def test_a_correct_variant_passes_every_check(name):
    """In each notebook that holds the code the variant rewrites (the model: 03c, and 04's folded copy), every check."""
    edit, _ = CORRECT_VARIANTS[name]
    applied = 0
    for notebook, make, checks in [("03c_the_complete_model", ns_03c, CHECKS_03C), ("04_gpt", ns_04, CHECKS)]:
        source = (NOTEBOOKS / f"{notebook}.py").read_text(encoding="utf-8")
        if all(source.count(old) == 1 for old, _ in edit):
            applied += 1
            ns = make(replace=edit)
            for check_name, run in checks.items():
                assert "passed" in run(ns), f"{notebook}: {check_name}"
    assert applied, "the variant's code is in neither notebook"


def test_the_hunt_is_at_least_fifteen_mistakes():
    # 04's model checks moved to 03c with the model: the hunt counts 04's and 03c's mistakes together
    assert len(MISTAKES_04) + len(MISTAKES_03C) + len(MISTAKES_IN_03B) >= 15 and len(MISTAKES_04) + len(MISTAKES_03C) >= 15
