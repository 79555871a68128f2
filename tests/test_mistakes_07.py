"""Notebook 07's checks catch a learner's own mistakes: each mistake below is one edit of the notebook's own
source (as a learner new to the code would make it), the notebook's definitions are loaded, and the check that
follows that piece must fail with a sentence naming the property and the likely cause; the correct variants
a learner may write pass."""
import pytest
import torch

from notebook_code import load

TOY = dict(vocab_size=65, block_size=16, n_embd=64, n_head=4, n_layer=2, dropout=0.0)  # the notebook's toy


def ns_07(replace=()):
    return load("07_kv_cache", replace=replace, device="cpu")


def run(ns, check):
    config = ns["GPTConfig"](**TOY)
    piece = {"check_attend_cached": "attend_cached", "check_cached_logits": "next_logits_cached",
             "check_generate_cached": "generate_cached"}[check]
    return ns[check](ns[piece], config)


MISTAKES = {  # id: ([(old, new)], the check that follows the piece, what its sentence must say)
    # the outputs only show that attention went wrong; what the cache holds shows which tensor went where
    "the values concatenated onto the cached keys": (
        [("v = torch.cat((cache.values[layer], v), dim=2)", "v = torch.cat((cache.keys[layer], v), dim=2)")],
        "check_attend_cached", r"the cached values of the prompt are its keys: the new values are concatenated onto the cached keys"),
    "the new keys and values put before the cached ones": (
        [("k = torch.cat((cache.keys[layer], k), dim=2)", "k = torch.cat((k, cache.keys[layer]), dim=2)"),
         ("v = torch.cat((cache.values[layer], v), dim=2)", "v = torch.cat((v, cache.values[layer]), dim=2)")],
        "check_attend_cached", r"the cache holds the sequence's keys out of order: the new keys go after the cached ones"),
    "the new keys put before the cached ones": (
        [("k = torch.cat((cache.keys[layer], k), dim=2)", "k = torch.cat((k, cache.keys[layer]), dim=2)")],
        "check_attend_cached", r"the cache holds the sequence's keys out of order"),
    "attention without the output projection": (
        [("    return attn.proj(y)  # (B, T, C)", "    return y  # (B, T, C)")],
        "check_attend_cached", r"the heads attend correctly but the output differs .*apply attn.proj, once"),
    "the output projection applied twice": (
        [("    return attn.proj(y)  # (B, T, C)", "    return attn.proj(attn.proj(y))  # (B, T, C)")],
        "check_attend_cached", r"apply attn.proj, once"),
    "queries and keys taken in the wrong order from qkv": (
        [("    q, k, v = attn.qkv(x).split(C, dim=2)  # (B, T, C) each\n    q, k, v = (t.view(B, T, attn.n_head",
          "    k, q, v = attn.qkv(x).split(C, dim=2)  # (B, T, C) each\n    q, k, v = (t.view(B, T, attn.n_head")],
        "check_attend_cached", r"over a prompt of 7 is not causal self-attention: queries and keys are swapped"),
    "the values never stored in the cache": (
        [("    cache.keys[layer], cache.values[layer] = k, v\n", "    cache.keys[layer] = k\n")],
        "check_attend_cached", r"attend_cached on new positions of shape \(3, 2, 64\) after 7 cached ones raised TypeError"),
    "the cache given only the new keys and values": (
        [("    cache.keys[layer], cache.values[layer] = k, v\n", ""),
         ("    if cache.keys[layer] is not None:\n        k = torch.cat(",
          "    old_k, old_v = cache.keys[layer], cache.values[layer]\n    cache.keys[layer], cache.values[layer] = k, v\n"
          "    if old_k is not None:\n        k = torch.cat("),
         ("        k = torch.cat((cache.keys[layer], k), dim=2)  # (B, nh, T_past + T, hs)\n"
          "        v = torch.cat((cache.values[layer], v), dim=2)",
          "        k = torch.cat((old_k, k), dim=2)  # (B, nh, T_past + T, hs)\n        v = torch.cat((old_v, v), dim=2)")],
        "check_attend_cached", r"the cache holds \d+ positions, not 10: append the new keys and values"),
    "the mask not shifted by the cached length": (
        [(".tril(k.shape[2] - T)  # (T, T_past + T)", ".tril()  # (T, T_past + T)")],
        "check_attend_cached", r"sees only the first key: is_causal=True aligns its mask to the top left"),
    "the mask shifted one too far (the second of two new positions sees the first's future)": (
        [(".tril(k.shape[2] - T)  # (T, T_past + T)", ".tril(k.shape[2] - T + 1)  # (T, T_past + T)")],
        "check_attend_cached", r"the new positions \(two at once, then single ones\) do not attend like causal attention"),
    "the heads joined without transposing back": (
        [("    y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C) the heads side by side again\n    return attn.proj(y)",
          "    y = y.contiguous().view(B, T, C)  # (B, T, C) the heads side by side again\n    return attn.proj(y)")],
        "check_attend_cached", r"the heads are put side by side without moving them back.*transpose\(1, 2\)"),
    "the cached keys concatenated along the heads": (
        [("        k = torch.cat((cache.keys[layer], k), dim=2)", "        k = torch.cat((cache.keys[layer], k), dim=1)"),
         ("        v = torch.cat((cache.values[layer], v), dim=2)", "        v = torch.cat((cache.values[layer], v), dim=1)")],
        "check_attend_cached", r"attend_cached on new positions of shape \(3, 2, 64\) after 7 cached ones raised RuntimeError"),
    "the lecture's scale C**-0.5 in a hand-written attention": (
        [("        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)\n    else:",
          "        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=C**-0.5)  # (B, nh, T, hs)\n    else:")],
        "check_attend_cached", r"over a prompt of 7 is not causal self-attention: the scores are scaled by C\*\*-0.5"),
    "positions one past where they should start": (
        [("torch.arange(len(cache), len(cache) + T, device=idx.device)", "torch.arange(len(cache) + 1, len(cache) + T + 1, device=idx.device)")],
        "check_cached_logits", r"the prefill of a prompt of 3 differ from the full forward pass's: the input of block 0 "
                               r"differs, so the embeddings do: .*positions len\(cache\)"),
    "no position embedding": (
        [("    x = model.token_embedding_table(idx) + model.position_embedding_table(pos)  # (B, T, C)\n    for layer",
          "    x = model.token_embedding_table(idx)  # (B, T, C)\n    for layer")],
        "check_cached_logits", r"the prefill of a prompt of 3 differ .*the embeddings do"),
    "forward_cached without the final layer norm": (
        [("    return model.lm_head(model.ln_f(x))  # (B, T, vocab_size)\n\n\n# %% [markdown]\n# ### When",
          "    return model.lm_head(x)  # (B, T, vocab_size)\n\n\n# %% [markdown]\n# ### When")],
        "check_cached_logits", r"model.ln_f is never applied: the logits are model.lm_head\(model.ln_f\(x\)\)"),
    "the attention fed x, not ln1(x)": (
        [("x = x + attend_cached(block.sa, block.ln1(x), cache, layer)", "x = x + attend_cached(block.sa, x, cache, layer)")],
        "check_cached_logits", r"block 0's ln1 is never applied: its attention reads block.ln1\(x\)"),
    "every block reading and writing layer 0 of the cache": (
        [("x = x + attend_cached(block.sa, block.ln1(x), cache, layer)", "x = x + attend_cached(block.sa, block.ln1(x), cache, 0)")],
        "check_cached_logits", r"the cache's layers hold \[6, None\] positions: each block must append to its own layer"),
    "the feed-forward without its residual connection": (
        [("        x = x + block.ffwd(block.ln2(x))  # (B, T, C)\n    return model.lm_head",
          "        x = block.ffwd(block.ln2(x))  # (B, T, C)\n    return model.lm_head")],
        "check_cached_logits", r"the stream after block 0's feed-forward differs: x = x \+ block.ffwd\(block.ln2\(x\)\)"),
    "the feed-forward fed ln1(x)": (
        [("        x = x + block.ffwd(block.ln2(x))  # (B, T, C)\n    return model.lm_head",
          "        x = x + block.ffwd(block.ln1(x))  # (B, T, C)\n    return model.lm_head")],
        "check_cached_logits", r"block 0's ln2 is never applied: its feed-forward reads block.ln2\(x\)"),
    "the prefill's logits of the first position, not the last": (
        [("return forward_cached(model, idx[:, -block_size:], cache)[:, -1, :], cache",
          "return forward_cached(model, idx[:, -block_size:], cache)[:, 0, :], cache")],
        "check_cached_logits", r"the prefill of a prompt of 3 differ .*every piece is fed as in the full pass, so the "
                               r"logits are not lm_head's at the last position"),
    "the whole context fed through the cache at every step": (
        [("return forward_cached(model, idx[:, -1:], cache)[:, -1, :], cache", "return forward_cached(model, idx, cache)[:, -1, :], cache")],
        "check_cached_logits", r"after 4 characters the cache holds 7 positions, more than 4: .*feed only the newest token"),
    "a prompt longer than the window not cropped": (
        [("return forward_cached(model, idx[:, -block_size:], cache)[:, -1, :], cache",
          "return forward_cached(model, idx, cache)[:, -1, :], cache")],
        "check_cached_logits", r"with 17 characters of context, more than block_size = 16, .*prefill the last block_size"),
    "the full window refilled with one character too few": (
        [("return forward_cached(model, idx[:, -block_size:], cache)[:, -1, :], cache",
          "return forward_cached(model, idx[:, -block_size + 1:], cache)[:, -1, :], cache")],
        "check_cached_logits", r"after 17 characters the cache holds 15 positions, not 16: when the window is full, prefill"),
    "the next_logits step returning the logits alone": (
        [("    return forward_cached(model, idx[:, -1:], cache)[:, -1, :], cache  # one position",
          "    return forward_cached(model, idx[:, -1:], cache)[:, -1, :]  # one position")],
        "check_cached_logits", r"at step 1 \(position 3\) next_logits_cached returned logits of shape \(65,\), not \(B, vocab_size\)"),
    "a cache kept on the model between two calls": (
        [("    model.eval()\n    cache = None\n", "    model.eval()\n    cache = getattr(model, 'kv_cache', None)\n"),
         ("        idx = torch.cat((idx, idx_next), dim=1)  # (B, T+1)\n    model.train(was_training)\n    return idx\n\n\n# %% [markdown]\n# **Check.** With",
          "        idx = torch.cat((idx, idx_next), dim=1)  # (B, T+1)\n    model.kv_cache = cache\n    model.train(was_training)\n    return idx\n\n\n# %% [markdown]\n# **Check.** With")],
        "check_generate_cached", r"called a second time with the same prompt and seed, .* something outlived the first call"),
    "generate_cached ending in model.train()": (
        [("    model.kv_cache = None\n" if False else "        idx = torch.cat((idx, idx_next), dim=1)  # (B, T+1)\n    model.train(was_training)\n    return idx\n\n\n# %% [markdown]\n# **Check.** With",
          "        idx = torch.cat((idx, idx_next), dim=1)  # (B, T+1)\n    model.train()\n    return idx\n\n\n# %% [markdown]\n# **Check.** With")],
        "check_generate_cached", r"put a model that was in eval mode into training mode"),
    "generate_cached leaving the model in eval mode": (
        [("        idx = torch.cat((idx, idx_next), dim=1)  # (B, T+1)\n    model.train(was_training)\n    return idx\n\n\n# %% [markdown]\n# **Check.** With",
          "        idx = torch.cat((idx, idx_next), dim=1)  # (B, T+1)\n    return idx\n\n\n# %% [markdown]\n# **Check.** With")],
        "check_generate_cached", r"left a model that was in training mode in eval mode"),
    "generate_cached without no_grad": (
        [("@torch.no_grad()\ndef generate_cached(", "def generate_cached(")],
        "check_generate_cached", r"ran the model in training mode or with gradients"),
    "the temperature multiplied": (
        [("        logits = logits / temperature  # (B, vocab_size)\n        if top_k is not None:\n            kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, [-1]]  # (B, 1)\n            logits = logits.masked_fill(logits < kth, float('-inf'))  # (B, vocab_size)\n        idx_next = torch.multinomial(F.softmax(logits, dim=-1), num_samples=1)  # (B, 1)\n        idx = torch.cat((idx, idx_next), dim=1)  # (B, T+1)\n    model.train(was_training)\n    return idx\n\n\n# %% [markdown]\n# **Check.** With",
          "        logits = logits * temperature  # (B, vocab_size)\n        if top_k is not None:\n            kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, [-1]]  # (B, 1)\n            logits = logits.masked_fill(logits < kth, float('-inf'))  # (B, vocab_size)\n        idx_next = torch.multinomial(F.softmax(logits, dim=-1), num_samples=1)  # (B, 1)\n        idx = torch.cat((idx, idx_next), dim=1)  # (B, T+1)\n    model.train(was_training)\n    return idx\n\n\n# %% [markdown]\n# **Check.** With")],
        "check_generate_cached", r"temperature=0.5\) wrote other characters than generate from character \d+ on"),
    "the greedy choice instead of a draw": (
        [("        idx_next = torch.multinomial(F.softmax(logits, dim=-1), num_samples=1)  # (B, 1)\n        idx = torch.cat((idx, idx_next), dim=1)  # (B, T+1)\n    model.train(was_training)\n    return idx\n\n\n# %% [markdown]\n# **Check.** With",
          "        idx_next = logits.argmax(dim=-1, keepdim=True)  # (B, 1)\n        idx = torch.cat((idx, idx_next), dim=1)  # (B, T+1)\n    model.train(was_training)\n    return idx\n\n\n# %% [markdown]\n# **Check.** With")],
        "check_generate_cached", r"generate_cached\(idx of shape \(2, 3\), 8\) wrote other characters than generate"),
    "only the new characters returned": (
        [("        idx = torch.cat((idx, idx_next), dim=1)  # (B, T+1)\n    model.train(was_training)\n    return idx\n\n\n# %% [markdown]\n# **Check.** With",
          "        idx = torch.cat((idx, idx_next), dim=1)  # (B, T+1)\n    model.train(was_training)\n    return idx[:, -max_new_tokens:]\n\n\n# %% [markdown]\n# **Check.** With")],
        "check_generate_cached", r"generate_cached\(idx of shape \(2, 3\), 8\) gave \(2, 8\), not \(2, 11\)"),
}


@pytest.mark.parametrize("mistake", MISTAKES)
def test_the_check_after_the_piece_names_the_mistake(mistake):
    edits, check, says = MISTAKES[mistake]
    ns = ns_07(edits)
    with pytest.raises(ns["CheckFailed"], match=says):
        run(ns, check)


def test_at_least_fifteen_mistakes():
    assert len(MISTAKES) >= 15


CORRECT = {  # correct variants a learner may write: the checks must pass them
    "attention written by hand with tril, no SDPA": [(
        "    if k.shape[2] == T:  # a prefill: nothing cached before, the ordinary causal mask\n"
        "        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)\n"
        "    else:  # query i sees the cached keys and the new ones up to its own\n"
        "        mask = torch.ones(T, k.shape[2], dtype=torch.bool, device=x.device).tril(k.shape[2] - T)  # (T, T_past + T)\n"
        "        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, nh, T, hs)\n",
        "    mask = torch.ones(T, k.shape[2], dtype=torch.bool, device=x.device).tril(k.shape[2] - T)  # (T, T_past + T)\n"
        "    wei = (q @ k.transpose(-2, -1) * k.shape[-1]**-0.5).masked_fill(~mask, float('-inf'))  # (B, nh, T, T_past + T)\n"
        "    y = F.softmax(wei, dim=-1) @ v  # (B, nh, T, hs)\n")],
    "einsum for the scores": [(
        "        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, nh, T, hs)\n",
        "        wei = torch.einsum('bhqd,bhkd->bhqk', q, k) * k.shape[-1]**-0.5  # (B, nh, T, T_past + T)\n"
        "        y = torch.einsum('bhqk,bhkd->bhqd', F.softmax(wei.masked_fill(~mask, float('-inf')), dim=-1), v)\n")],
    "reshape instead of contiguous().view": [(
        "    y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C) the heads side by side again\n    return attn.proj(y)",
        "    y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, C) the heads side by side again\n    return attn.proj(y)")],
    "a cache that always refills when full, written with >=": [(
        "if cache is None or len(cache) == block_size:", "if cache is None or len(cache) >= block_size:")],
    "the model's own embed for the prefill": [(
        "    pos = torch.arange(len(cache), len(cache) + T, device=idx.device)  # (T,) the positions after the cached ones\n"
        "    x = model.token_embedding_table(idx) + model.position_embedding_table(pos)  # (B, T, C)\n",
        "    if len(cache) == 0:\n        x = model.embed(idx)  # (B, T, C)\n    else:\n"
        "        pos = torch.arange(len(cache), len(cache) + T, device=idx.device)  # (T,)\n"
        "        x = model.token_embedding_table(idx) + model.position_embedding_table(pos)  # (B, T, C)\n")],
}


@pytest.mark.parametrize("variant", CORRECT)
def test_the_checks_pass_correct_variants(variant):
    ns = ns_07(CORRECT[variant])
    for check in ("check_attend_cached", "check_cached_logits", "check_generate_cached"):
        assert "passed" in run(ns, check)
