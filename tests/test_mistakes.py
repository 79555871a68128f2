"""The notebooks' checks catch the mistakes learners make: each mistake below is made in a notebook's
own source (one edit, as a learner would make it), the notebook's definitions are loaded, and the
check that follows that piece in the notebook must fail with its sentence. The same checks pass on
the code as written. The README counts the mistakes listed here."""
import pytest
import torch

from notebook_code import load

DATA = torch.arange(400) % 61  # a stand-in text: consecutive ids, so every chunk is easy to find


def ns_01(replace=()):
    ns = load("01_bigram", replace=replace)
    ns.update(train_data=DATA, val_data=DATA, vocab_size=65)
    return ns


def check_01_batch(ns):
    return ns["check_batch"](*ns["get_batch"]("train", 4, 8), DATA, 4, 8)


def check_01_train_step(ns):
    torch.manual_seed(0)
    return ns["check_train_step"](ns["train_step"], ns["BigramLanguageModel"](65), [ns["get_batch"]("train", 4, 8) for _ in range(2)])


def check_01_generate(ns):
    return ns["check_generate"](ns["BigramLanguageModel"].generate)


def ns_02(replace=()):
    return load("02_self_attention", replace=replace)


def check_02(ns):
    return ns["check_self_attention"](ns["self_attention"])


def ns_03(replace=(), notebook="03_building_gpt"):
    ns = load(notebook, keep=("n_embd", "block_size", "n_head", "n_layer", "dropout"), replace=replace,
              vocab_size=65, device="cpu", batch_size=4)
    ns.update(train_data=DATA, val_data=DATA)
    return ns


def ns_03b(replace=()):  # steps 3-7 of the ladder (blocks, LayerNorm) live in notebook 03b
    return ns_03(replace, notebook="03b_blocks_and_the_ladder")


def check_03_block(ns):
    return ns["check_block"](ns["Block"](ns["n_embd"], ns["n_head"]))


def check_03_model(ns):  # 03's last model: one head (03b's transformer carries the same BigramLanguageModel)
    torch.manual_seed(1337)
    return ns["check_model"](ns["BigramLanguageModel"](body=ns["Head"](ns["n_embd"])))


def ns_04(replace=()):
    ns = load("04_gpt", replace=replace)
    ns.update(train_data=DATA, val_data=DATA, batch_size=4, block_size=8, device="cpu")
    return ns


def ns_03c(replace=()):  # notebook 03c builds and checks the complete model; 04 carries it folded, unchecked
    return load("03c_the_complete_model", replace=replace)


def toy_04(ns):
    return ns["GPTConfig"](vocab_size=65, block_size=8, n_embd=32, n_head=4, n_layer=2, dropout=0.0)


def check_03_head(ns):
    return ns["check_head"](ns["Head"](8))


def check_03c_model(ns):
    torch.manual_seed(1337)
    return ns["check_model"](ns["GPTLanguageModel"](toy_04(ns)))


def check_03c_initial_loss(ns):
    torch.manual_seed(1337)
    return ns["check_initial_loss"](ns["GPTLanguageModel"](toy_04(ns)))


def check_03c_generate(ns):
    return ns["check_generate"](ns["generate"], block_size=8, sampling=True)


def check_04_train_step(ns):
    torch.manual_seed(0)
    batches = [(torch.randint(0, 65, (4, 8)), torch.randint(0, 65, (4, 8))) for _ in range(2)]
    return ns["check_train_step"](ns["train_step"], ns["GPTLanguageModel"](toy_04(ns)), batches)


def check_04_batch(ns):
    return ns["check_batch"](*ns["get_batch"]("train"), DATA, 4, 8)


def ns_05(replace=()):
    return load("05_fast_gpt", replace=replace, device="cpu")


def check_05_attention(ns):
    toy = ns["GPTConfig"](vocab_size=65, block_size=16, n_embd=64, n_head=4, n_layer=2, dropout=0.0)
    return ns["check_causal_self_attention"](ns["CausalSelfAttention"](toy, flash=True))


def check_05_batch(ns):
    return ns["check_batches_on_device"](ns["get_batch_on_device"])


MISTAKES = {  # name: (load, the learner's edit as (old, new) pairs, the check, what its sentence says)
    "01 targets not shifted": (ns_01, [("y = torch.stack([data[i + 1:i + block_size + 1] for i in ix])",
                                        "y = torch.stack([data[i:i + block_size] for i in ix])")],
                               check_01_batch, "the targets equal the inputs"),
    "01 targets shifted by two": (ns_01, [("y = torch.stack([data[i + 1:i + block_size + 1] for i in ix])",
                                           "y = torch.stack([data[i + 2:i + block_size + 2] for i in ix])")],
                                  check_01_batch, "the targets are not the inputs shifted by one"),
    "01 gradients never zeroed": (ns_01, [("    optimizer.zero_grad(set_to_none=True)\n    loss.backward()",
                                           "    loss.backward()")], check_01_train_step, "the gradients are accumulating"),
    "01 no optimizer step": (ns_01, [("    loss.backward()\n    optimizer.step()\n    return loss", "    loss.backward()\n    return loss")],
                             check_01_train_step, "the weights did not change"),
    "01 sampling from the first position": (ns_01, [("probs = F.softmax(logits[:, -1, :], dim=-1)", "probs = F.softmax(logits[:, 0, :], dim=-1)")],
                                            check_01_generate, "do not follow the last position"),
    "01 argmax instead of sampling": (ns_01, [("idx_next = torch.multinomial(probs, num_samples=1)   # (B, 1)",
                                               "idx_next = probs.argmax(-1, keepdim=True)   # (B, 1)")],
                                      check_01_generate, "not argmax"),
    "01 sampling in training mode": (ns_01, [("    was_training = self.training\n    self.eval()\n",
                                              "    was_training = self.training\n")],
                                     check_01_generate, "training mode or with gradients"),
    "02 no causal mask": (ns_02,
                          [("        wei = wei.masked_fill(tril == 0, float('-inf'))  # (B, T, T)\n    wei = F.softmax(wei, dim=-1)  # (B, T, T)\n    v = value(x)",
                            "    wei = F.softmax(wei, dim=-1)  # (B, T, T)\n    v = value(x)")],
                          check_02, "there is no causal mask"),
    "02 scaled by C (the lecture's slip)": (ns_02,
                                            [("wei = wei * k.shape[-1]**-0.5  # (B, T, T)", "wei = wei * C**-0.5  # (B, T, T)")],
                                            check_02, "scaled by C**-0.5"),
    "02 softmax over the wrong dimension": (ns_02,
                                            [("    wei = F.softmax(wei, dim=-1)  # (B, T, T)\n    v = value(x)",
                                              "    wei = F.softmax(wei, dim=-2)  # (B, T, T)\n    v = value(x)")],
                                            check_02, "the softmax runs over the wrong dimension"),
    "02 keys used as values": (ns_02,
                               [("out = wei @ v  # (B, T, T) @ (B, T, hs) -> (B, T, hs)", "out = wei @ k  # (B, T, T) @ (B, T, hs) -> (B, T, hs)")],
                               check_02, "multiply the keys, not the values"),
    "02 the mask sees one step ahead": (ns_02,
                                        [("    if causal:\n        tril = torch.tril(torch.ones(T, T))",
                                          "    if causal:\n        tril = torch.tril(torch.ones(T, T), diagonal=1)")],
                                        check_02, "one step into the future"),
    "03 a block without its residual adds": (ns_03b, [("        x = x + self.sa(x)  # (B, T, C)\n        x = x + self.ffwd(x)  # (B, T, C)",
                                                      "        x = self.sa(x)  # (B, T, C)\n        x = self.ffwd(x)  # (B, T, C)")],
                                             check_03_block, "the residual connections are missing"),
    "03 LayerNorm with the unbiased variance": (ns_03b, [("xvar = x.var(-1, keepdim=True, unbiased=False)", "xvar = x.var(-1, keepdim=True)")],
                                                lambda ns: ns["check_layernorm"](ns["LayerNorm1d"](100)), "uses the unbiased variance"),
    "03 LayerNorm over the wrong dimension": (ns_03b, [("xmean = x.mean(-1, keepdim=True)", "xmean = x.mean(1, keepdim=True)"),
                                                      ("xvar = x.var(-1, keepdim=True, unbiased=False)", "xvar = x.var(1, keepdim=True, unbiased=False)")],
                                              lambda ns: ns["check_layernorm"](ns["LayerNorm1d"](100)), "normalise over the last dimension"),
    "03 LayerNorm without eps": (ns_03b, [("xhat = (x - xmean) / torch.sqrt(xvar + self.eps)", "xhat = (x - xmean) / torch.sqrt(xvar)")],
                                 lambda ns: ns["check_layernorm"](ns["LayerNorm1d"](100)), "add eps to the variance"),
    "03 the position embedding left out": (ns_03, [("x = tok_emb + pos_emb  # (B, T, C)", "x = tok_emb  # (B, T, C)")],
                                           check_03_model, "ignores positions"),
    "03 generate without the crop": (ns_03, [("idx_cond = idx[:, -block_size:]  # (B, T) with T <= block_size", "idx_cond = idx  # (B, T)")],
                                     lambda ns: ns["check_generate"](ns["generate"], block_size=8), "more than block_size"),
    # notebook 04 no longer carries check_head (notebook 03 checks each piece): the same mistakes, in 03's Head
    "03 a Head without its mask (was 04's)": (ns_03, [("        wei = wei.masked_fill(self.tril[:T, :T] == 0, float('-inf'))  # (B, T, T)\n", "")],
                                              check_03_head, "there is no causal mask"),
    "03 a Head scaled by C (was 04's)": (ns_03, [("wei = q @ k.transpose(-2, -1) * k.shape[-1]**-0.5  # (B, T, hs) @ (B, hs, T) -> (B, T, T)",
                                                  "wei = q @ k.transpose(-2, -1) * C**-0.5  # (B, T, T)")],
                                         check_03_head, "scaled by C**-0.5"),
    "03 a mask that sees one step ahead (was 04's)": (ns_03, [("self.register_buffer('tril', torch.tril(torch.ones(block_size, block_size)))",
                                                               "self.register_buffer('tril', torch.tril(torch.ones(block_size, block_size), diagonal=1))")],
                                                      check_03_head, "one step into the future"),
    "03c no mask, seen by the whole-model probe (was 04's)": (ns_03c, [("wei = wei.masked_fill(self.tril[:T, :T] == 0, float('-inf'))  # (B, T, T)\n        return", "return")],
                                                  check_03c_model, "the model sees the future"),
    "03c the position embedding left out (was 04's)": (ns_03c, [("return self.token_embedding_table(idx) + self.position_embedding_table(pos)  # (B, T, C)",
                                                    "return self.token_embedding_table(idx)  # (B, T, C)")],
                                           check_03c_model, "ignores positions"),
    "03c weights initialised with std 1 (was 04's)": (ns_03c, [("torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)", "torch.nn.init.normal_(module.weight, mean=0.0, std=1.0)")],
                                          check_03c_initial_loss, "do not have std 0.02, gpt.py's for every weight: self.apply(_init_weights) must reach every module"),
    "03c temperature multiplied, not divided (was 04's)": (ns_03c, [("logits = logits[:, -1, :] / temperature", "logits = logits[:, -1, :] * temperature")],
                                               check_03c_generate, "divide the logits by the temperature"),
    "03c top-k keeping the wrong side (was 04's)": (ns_03c, [("logits = logits.masked_fill(logits < kth, float('-inf'))", "logits = logits.masked_fill(logits > kth, float('-inf'))")],
                                        check_03c_generate, "keep only the top_k largest"),
    "03c no crop to block_size (was 04's)": (ns_03c, [("idx_cond = idx[:, -self.config.block_size:]  # (B, T) with T <= block_size", "idx_cond = idx  # (B, T)")],
                                 check_03c_generate, "more than block_size"),
    "04 targets not shifted": (ns_04, [("    y = torch.stack([data[i + 1:i + block_size + 1] for i in ix])     # (B, T)\n    return x.to(device), y.to(device)\n\n\ncheck_batch",
                                        "    y = torch.stack([data[i:i + block_size] for i in ix])     # (B, T)\n    return x.to(device), y.to(device)\n\n\ncheck_batch")],
                               check_04_batch, "the targets equal the inputs"),
    "04 gradients never zeroed": (ns_04, [("    logits, loss = model(xb, yb)\n    optimizer.zero_grad(set_to_none=True)\n    loss.backward()\n    optimizer.step()\n    return loss\n\n\ntorch.manual_seed(0)\ntoy_batches",
                                           "    logits, loss = model(xb, yb)\n    loss.backward()\n    optimizer.step()\n    return loss\n\n\ntorch.manual_seed(0)\ntoy_batches")],
                                  check_04_train_step, "the gradients are accumulating"),
    "05 attention without is_causal": (ns_05, [("y = F.scaled_dot_product_attention(q, k, v, is_causal=True,", "y = F.scaled_dot_product_attention(q, k, v,")],
                                       check_05_attention, "there is no causal mask"),
    "05 heads joined without the transpose": (ns_05, [("y = y.transpose(1, 2).contiguous().view(B, T, C)", "y = y.contiguous().view(B, T, C)")],
                                             check_05_attention, "the heads are joined without transposing back"),
    "05 batches on the device not shifted": (ns_05, [("return chunk[:, :-1], chunk[:, 1:]  # (B, T) inputs, (B, T) targets",
                                                      "return chunk[:, :-1], chunk[:, :-1]  # (B, T) inputs, (B, T) targets")],
                                             check_05_batch, "the targets are not the inputs moved one step on"),
}


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_the_notebooks_check_catches_the_mistake(mistake):
    make, edit, run_check, sentence = MISTAKES[mistake]
    assert "passed" in run_check(make())  # the check passes on the code as written
    with pytest.raises(AssertionError) as caught:
        run_check(make(replace=edit))
    assert type(caught.value).__name__ == "CheckFailed" and sentence in str(caught.value), str(caught.value)


def test_there_are_at_least_fifteen_mistakes_across_the_notebooks():
    assert len(MISTAKES) >= 15 and {m[:2] for m in MISTAKES} >= {"01", "02", "03", "04", "05"}
