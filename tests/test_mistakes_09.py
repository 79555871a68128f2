"""Notebook 09's mistake hunt: mistakes a learner makes in each lever of the model (one edit of the notebook's own
code), each met by the check after the piece with the sentence that names it; and correct variants the checks pass.
The optimizer, schedule and training step moved to notebook 09b: tests/test_mistakes_09b.py."""
import pytest

from notebook_code import load

NB = "09_modern_gpt"

RMS = "    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)  # (..., C)"
GAIN = "        self.weight = nn.Parameter(torch.ones(n_embd))  # (C,) the gain, 1 at the start"
NORMED = "        return rms_norm(x, self.eps) * self.weight  # (B, T, C)"
THETA = "theta = base ** (-2 * torch.arange(hs // 2, device=x.device) / hs)  # (hs/2,) each pair's speed"
ANGLES = "angles = torch.arange(T, device=x.device)[:, None] * theta[None, :]  # (T, hs/2)"
TURN = "return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)  # (B, nh, T, hs)"
QK = "            q, k = rms_norm(q), rms_norm(k)  # (B, nh, T, hs) each, of length sqrt(hs)"
ROT = "            q, k = rotary(q), rotary(k)  # (B, nh, T, hs) each, turned by position"
SPLIT = "        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in self.qkv(x).split(C, dim=2))  # (B, nh, T, hs)"
SDPA = "y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.config.dropout if self.training else 0.0)"
RELU2 = "    return F.relu(x).square()"
ZERO = "            for proj in [b.sa.proj for b in self.blocks] + [b.ffwd.proj for b in self.blocks] + [self.lm_head]:"
MLP_BIAS = "        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)"
MLP_OUT = "        return self.dropout(self.proj(self.act(self.fc(x))))  # (B, T, C) through (B, T, 4C)"
BLOCK = "        x = x + self.sa(self.ln1(x))  # (B, T, C)\n        return x + self.ffwd(self.ln2(x))  # (B, T, C)"
HEADS = "        y = y.transpose(1, 2).contiguous().view(B, T, C)"

rms = lambda ns: ns["check_rms_norm"](ns["rms_norm"], ns["RMSNorm"])
rotary = lambda ns: ns["check_rotary"](ns["rotary"])
attention = lambda ns: ns["check_modern_attention"](ns["ModernAttention"])
relu2 = lambda ns: ns["check_relu_squared"](ns["relu_squared"])
gpt = lambda ns: ns["check_modern_gpt"](ns["ModernGPT"])
generate = lambda ns: ns["check_generate_modern"](ns["generate_modern"])

ML = "self.max_logit = max(self.max_logit, (q @ k.transpose(-2, -1)).abs().max().item() * (C // self.n_head)**-0.5)"
RECORD = "        if self.max_logit is not None:\n            " + ML
CROP = "idx_cond = idx if model.config.rope else idx[:, -model.config.block_size:]  # (B, T)"
LOGITS = "logits = model(idx_cond)[0][:, -1, :] / temperature  # (B, vocab_size)"
SAMPLE = "idx = torch.cat((idx, torch.multinomial(F.softmax(logits, dim=-1), num_samples=1)), dim=1)  # (B, T+1)"

MISTAKES = {  # name: (the learner's edits as (old, new) pairs, the check, what its sentence must say)
    "rms: the mean subtracted (LayerNorm)": ([(RMS, "    x = x - x.mean(dim=-1, keepdim=True)\n" + RMS)], rms, "it subtracts the mean first"),
    "rms: no square root": ([(RMS, "    return x / (x.pow(2).mean(dim=-1, keepdim=True) + eps)")], rms, "without the square root"),
    "rms: the sum of squares": ([(RMS, RMS.replace(".mean(", ".sum("))], rms, "the sum of the squares, not their mean"),
    "rms: over the batch": ([(RMS, RMS.replace("dim=-1", "dim=0"))], rms, "over the channels, dim=-1"),
    "rms: keepdim forgotten": ([(RMS, RMS.replace(", keepdim=True", ""))], rms, "raised RuntimeError"),
    "rms: x.std": ([(RMS, "    return x / (x.std(dim=-1, keepdim=True) + eps)")], rms, "divides by the standard deviation"),
    "rms: multiplied by the rms": ([(RMS, RMS.replace("torch.rsqrt", "torch.sqrt"))], rms, "multiplies by the root mean square"),
    "rms: in place": ([(RMS, "    return x.mul_(torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps))")], rms, "changed its input in place"),
    "RMSNorm: a bias too": ([(GAIN, GAIN + "\n        self.bias = nn.Parameter(torch.zeros(n_embd))")], rms, "and no bias"),
    "RMSNorm: the gain at zero": ([(GAIN, GAIN.replace("torch.ones", "torch.zeros"))], rms, "gain does not start at 1"),
    "RMSNorm: the gain unused": ([(NORMED, "        return rms_norm(x, self.eps)  # (B, T, C)")], rms, "multiply rms_norm(x) by the gain"),
    "rope: base 100": ([(THETA, THETA.replace("base **", "100 **"))], rotary, "by other angles than t * θ_i"),
    "rope: exponent -i/hs": ([(THETA, THETA.replace("-2 *", "-1 *"))], rotary, "by other angles than t * θ_i"),
    "rope: positions from 1": ([(ANGLES, ANGLES.replace("torch.arange(T,", "torch.arange(1, T + 1,"))], rotary, "moves position 0"),
    "rope: the angle t squared": ([(ANGLES, ANGLES.replace("[:, None] *", "[:, None] ** 2 *"))], rotary, "not only on m - n"),
    "rope: a sign wrong": ([(TURN, TURN.replace("x1 * cos - x2 * sin", "x1 * cos + x2 * sin"))], rotary, "changes the length of the pairs"),
    "rope: neighbouring channels paired": ([("x1, x2 = x[..., :hs // 2], x[..., hs // 2:]", "x1, x2 = x[..., 0::2], x[..., 1::2]")],
                                           rotary, "changes the length of the pairs (i, i + hs/2)"),
    "rope: T from the heads' axis": ([("    T, hs = x.shape[-2], x.shape[-1]\n    theta", "    T, hs = x.shape[1], x.shape[-1]\n    theta")],
                                     rotary, "raised RuntimeError"),
    "attention: only q normed": ([(QK, QK.replace("rms_norm(k)", "k"))], attention, "above sqrt(hs)"),
    "attention: normed before the heads split": ([(QK, "            pass"), (SPLIT, "        q, k, v = self.qkv(x).split(C, dim=2)\n        if self.config.qk_norm:\n            q, k = rms_norm(q), rms_norm(k)\n"
                                                                                       "        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))")],
                                                 attention, "above sqrt(hs)"),
    "attention: v turned instead of k": ([(ROT, "            q, v = rotary(q), rotary(v)")], attention, "turn q and k (not v) when config.rope"),
    "attention: not causal": ([(SDPA, SDPA.replace("is_causal=True", "is_causal=False"))], attention, "sees the future"),
    "relu2: x squared": ([(RELU2, "    return x * x")], relu2, "not zero for negative inputs"),
    "relu2: not squared": ([(RELU2, "    return F.relu(x)")], relu2, "differs from relu(x)² for positive inputs"),
    "relu2: in place": ([(RELU2, "    return x.relu_().square()")], relu2, "changed its input in place"),
    "model: lm_head not zeroed": ([(ZERO, ZERO.replace(" + [self.lm_head]", ""))], gpt, "not ln(65)"),
    "model: the MLP's projection not zeroed": ([(ZERO, ZERO.replace(" + [b.ffwd.proj for b in self.blocks]", ""))], gpt,
                                               "a block's output differs from its input"),
    "model: a bias kept": ([(MLP_BIAS, MLP_BIAS.replace("bias=config.bias", "bias=True"))], gpt, "still holds ['blocks.0.ffwd.fc.bias']"),
    "model: zero_init zeroes qkv": ([(ZERO, "            for proj in [b.sa.qkv for b in self.blocks] + [b.ffwd.proj for b in self.blocks] + [self.lm_head]:")],
                                    gpt, "['blocks.0.sa.proj.weight'] gets no gradient"),
    "attention: dropout in eval mode": ([("dropout_p=self.config.dropout if self.training else 0.0)", "dropout_p=self.config.dropout)")],
                                        attention, "not at all in eval mode"),
    "attention: QK-norm over T": ([(QK, "            q, k = rms_norm(q.transpose(-2, -1)).transpose(-2, -1), rms_norm(k.transpose(-2, -1)).transpose(-2, -1)")],
                                  attention, "a norm over T"),
    "attention: heads put back without the transpose": ([(HEADS, "        y = y.reshape(B, T, C)")], attention, "how the heads are put back"),
    "attention: scores not scaled": ([(SDPA, SDPA.replace("else 0.0)", "else 0.0, scale=1.0)"))], attention,
                                     "the scale of the scores"),
    "model: relu2 is relu in the table": ([("'relu2': relu_squared}", "'relu2': F.relu}")], gpt, "is the non-linearity ACTIVATIONS['relu2']"),
    "model: the MLP's non-linearity forgotten": ([(MLP_OUT, MLP_OUT.replace("self.act(self.fc(x))", "self.fc(x)"))], gpt, "is linear in x"),
    "model: the non-linearity after proj": ([(MLP_OUT, MLP_OUT.replace("self.proj(self.act(self.fc(x)))", "self.act(self.proj(self.fc(x)))"))],
                                           gpt, "differs from its own fc, then relu, then proj"),
    "model: post-norm block": ([(BLOCK, "        x = self.ln1(x + self.sa(x))  # (B, T, C)\n        return self.ln2(x + self.ffwd(x))  # (B, T, C)")],
                               gpt, "pre-norm residual block"),
    "model: the residual dropped": ([(BLOCK, BLOCK.replace("x = x + self.sa", "x = self.sa"))], gpt, "pre-norm residual block"),
    "model: ln1 twice, ln2 unused": ([(BLOCK, BLOCK.replace("self.ffwd(self.ln2(x))", "self.ffwd(self.ln1(x))"))], gpt, "['blocks.0.ln2.weight'] gets no gradient"),
    "model: no final norm": ([("self.lm_head(self.ln_f(self.blocks(x)))", "self.lm_head(self.blocks(x))")], gpt,
                             "['ln_f.weight'] gets no gradient: the forward never uses it"),
    "model: LayerNorm keeps its bias": ([("nn.LayerNorm(config.n_embd, bias=config.bias)", "nn.LayerNorm(config.n_embd)")], gpt,
                                        "with bias=False the model still holds"),
    "model: zeroed weights frozen": ([("                nn.init.zeros_(proj.weight)", "                nn.init.zeros_(proj.weight).requires_grad_(False)")],
                                     gpt, "gets no gradient: it is frozen"),
    # from the cold read of session 3 (A8-A23 in check_modern_attention, G1-G12 in the new check of generate_modern)
    "attention: max_logit without the 1/sqrt(hs)": ([(ML, ML.replace(" * (C // self.n_head)**-0.5", ""))], attention, "lacks the 1/sqrt(hs)"),
    "attention: max_logit before QK-norm and RoPE": ([(RECORD + "\n", ""), ("        if self.config.qk_norm:\n" + QK, RECORD + "\n        if self.config.qk_norm:\n" + QK)],
                                                     attention, "taken from q and k before QK-norm and RoPE"),
    "attention: max_logit over sqrt(C)": ([(ML, ML.replace("(C // self.n_head)**-0.5", "C**-0.5"))], attention, "divided by sqrt(C)"),
    "attention: max_logit without abs": ([(ML, ML.replace(".abs().max()", ".max()"))], attention, "largest signed score"),
    "attention: max_logit recorded when None": ([(RECORD, "        " + ML)], attention, "max_logit None (not recording) raised TypeError"),
    "attention: separate query, key, value layers": ([("self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=False)  # query, key, value of all heads",
                                                       "self.query, self.key, self.value = (nn.Linear(config.n_embd, config.n_embd, bias=False) for _ in range(3))"),
                                                      ("for t in self.qkv(x).split(C, dim=2))", "for t in (self.query(x), self.key(x), self.value(x)))")],
                                                     attention, "needs the layers qkv"),
    "attention: proj named c_proj": ([("self.proj, self.dropout = nn.Linear(", "self.c_proj, self.dropout = nn.Linear("),
                                      ("return self.dropout(self.proj(y))", "return self.dropout(self.c_proj(y))")], attention, "and proj (C -> C)"),
    "generate: RoPE cropped too": ([(CROP, "idx_cond = idx[:, -model.config.block_size:]  # (B, T)")], generate, "RoPE has no position table"),
    "generate: cropped from the start": ([(CROP, CROP.replace("idx[:, -model.config.block_size:]", "idx[:, :model.config.block_size]"))],
                                         generate, "(other ones), not the 4"),
    "generate: crop inverted": ([(CROP, "idx_cond = idx[:, -model.config.block_size:] if model.config.rope else idx  # (B, T)")], generate, "not the 5 a reference reads"),
    "generate: crop one short": ([(CROP, CROP.replace("-model.config.block_size:", "-model.config.block_size + 1:"))], generate,
                                 "the last block_size tokens"),
    "generate: temperature multiplies": ([(LOGITS, LOGITS.replace("/ temperature", "* temperature"))], generate, "temperature multiplies the logits"),
    "generate: the first position's logits": ([(LOGITS, LOGITS.replace("[:, -1, :]", "[:, 0, :]"))], generate, "another position's"),
    "generate: argmax": ([(SAMPLE, "idx = torch.cat((idx, logits.argmax(-1, keepdim=True)), dim=1)")], generate, "taken, not sampled"),
    "generate: softmax over the batch": ([(SAMPLE, SAMPLE.replace("dim=-1", "dim=0"))], generate, "another dimension than the vocabulary"),
    "generate: mode not restored": ([("    model.train(was_training)\n    return idx\n", "    return idx\n")], generate, "restore its mode"),
    "generate: the batch grows": ([(SAMPLE, SAMPLE.replace("dim=1)", "dim=0)"))], generate, "along the time axis, dim=1"),
    "generate: no eval mode": ([("    model.eval()\n    for _ in range(max_new_tokens):", "    for _ in range(max_new_tokens):")], generate, "in eval mode"),
    "generate: temperature after the softmax": ([(SAMPLE, SAMPLE.replace("F.softmax(logits, dim=-1)", "F.softmax(logits * temperature, dim=-1) / temperature"))],
                                                generate, "undone or ignored"),
}

@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_the_check_names_the_mistake(mistake):
    edits, run_check, sentence = MISTAKES[mistake]
    with pytest.raises(AssertionError) as caught:
        run_check(load(NB, replace=edits, device="cpu"))
    said = str(caught.value)
    assert type(caught.value).__name__ == "CheckFailed" and sentence in said and "\n" not in said, said


CORRECT = {  # correct code a learner may write instead: the check must pass it
    "rms: divided by the square root": ([(RMS, "    return x / torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)")], rms),
    "rms: F.rms_norm itself": ([(RMS, "    return F.rms_norm(x, x.shape[-1:], eps=eps)")], rms),
    "rms: eps outside the root": ([(RMS, "    return x / (x.pow(2).mean(dim=-1, keepdim=True).sqrt() + eps)")], rms),
    "rope: complex multiplication": ([(TURN, "z = torch.complex(x1, x2) * torch.polar(torch.ones_like(angles), angles)\n"
                                             "    return torch.cat([z.real, z.imag], dim=-1)")], rotary),
    "rope: turned the other way": ([(TURN, "return torch.cat([x1 * cos + x2 * sin, -x1 * sin + x2 * cos], dim=-1)")], rotary),
    "attention: rotary before the norm": ([("        if self.config.qk_norm:\n" + QK + "\n        if self.config.rope:\n" + ROT,
                                            "        if self.config.rope:\n" + ROT + "\n        if self.config.qk_norm:\n" + QK)],
                                          attention),
    "relu2: where": ([(RELU2, "    return torch.where(x > 0, x * x, torch.zeros_like(x))")], relu2),
    "attention: max_logit always recorded": ([(RECORD, "        self.max_logit = max(self.max_logit or 0.0, (q @ k.transpose(-2, -1)).abs().max().item() * (C // self.n_head)**-0.5)")], attention),
    "attention: max_logit of the causal scores only": ([(ML, ML.replace("(q @ k.transpose(-2, -1))", "(q @ k.transpose(-2, -1)).tril()"))], attention),
    "generate: Categorical sampling": ([(SAMPLE, "idx = torch.cat((idx, torch.distributions.Categorical(logits=logits).sample()[:, None]), dim=1)")], generate),
    "generate: crop by max(0, ...)": ([(CROP, "idx_cond = idx if model.config.rope else idx[:, max(0, idx.shape[1] - model.config.block_size):]")], generate),
    "rope: RoFormer's interleaved pairs": ([("x1, x2 = x[..., :hs // 2], x[..., hs // 2:]", "x1, x2 = x[..., 0::2], x[..., 1::2]"),
                                            (TURN, "return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(-2)")], rotary),
}


@pytest.mark.parametrize("variant", list(CORRECT))
def test_the_check_accepts_a_correct_variant(variant):
    edits, run_check = CORRECT[variant]
    assert "passed" in run_check(load(NB, replace=edits, device="cpu"))


def test_there_are_at_least_twelve_mistakes_over_every_piece():
    assert len(MISTAKES) >= 12 and {m.split(":")[0] for m in MISTAKES} == {"rms", "RMSNorm", "rope", "attention", "relu2", "model", "generate"}
