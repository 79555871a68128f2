"""Notebook 09b's mistake hunt: mistakes a learner makes in Muon, the schedule and the training step (one edit of
the notebook's own code), each met by the check after the piece with the sentence that names it; and correct
variants the checks pass."""
import pytest

from notebook_code import load

NB = "09b_muon_and_the_race"

SCALE = "    X = G / (G.norm() + eps)  # (m, n), every singular value at most 1"
STEP = "        X = a * X + (b * A + c * A @ A) @ X  # (m, n)"
GRAM = "        A = X @ X.T  # (m, m)"
COEFFS = "    a, b, c = 3.4445, -4.7750, 2.0315"
LERP = "                buf.lerp_(p.grad, 1 - group['momentum'])"
NESTEROV = "update = newton_schulz(p.grad.lerp(buf, group['momentum']))  # (m, n) Nesterov, orthogonalised"
DECAY = "                p.mul_(1 - group['lr'] * group['weight_decay'])"
ADJUST = "alpha=-group['lr'] * max(1, p.shape[0] / p.shape[1]) ** 0.5)"
DOWN = "    return min(1.0, (1 - progress) / cooldown)"
ZERO_GRAD = "        optimizer.zero_grad(set_to_none=True)\n    scaler.scale(loss).backward()\n"
STEPS = "    for optimizer in optimizers:\n        scaler.step(optimizer)"
RATE = "group['lr'] = group['peak_lr'] * factor"
SET_RATES = "    for optimizer in optimizers:\n        for group in optimizer.param_groups:\n            " + RATE + "\n" + ZERO_GRAD
SCALED_STEP = "        scaler.step(optimizer)  # skipped if float16's scaled gradients overflowed"
GAINS = "dict(params=[p for p in named.values() if p.dim() < 2], lr=lr, weight_decay=0.0)]"

ns_check = lambda ns: ns["check_newton_schulz"](ns["newton_schulz"])
muon = lambda ns: ns["check_muon"](ns["MuonByHand"])
wsd = lambda ns: ns["check_wsd"](ns["wsd"])
step = lambda ns: ns["check_modern_step"](ns["modern_optimizers"], ns["modern_step"])

MISTAKES = {  # name: (the learner's edits as (old, new) pairs, the check, what its sentence must say)
    "ns: not scaled first": ([(SCALE, "    X = G.clone()")], ns_check, "holds inf or nan"),
    "ns: one sign wrong": ([(COEFFS, COEFFS.replace("-4.7750", "4.7750"))], ns_check, "holds inf or nan"),
    "ns: Gram matrix on the wrong side": ([(GRAM, "        A = X.T @ X  # (n, n)")], ns_check, "raised RuntimeError"),
    "ns: the cubic term left out": ([(STEP, "        X = a * X + b * A @ X")], ns_check, "not all near 1"),
    "ns: in place": ([(SCALE, "    X = G.div_(G.norm() + eps)")], ns_check, "changed G in place"),
    "ns: scale lost (G times the result)": ([(STEP, STEP + "\n    X = X * G.norm()")], ns_check, "newton_schulz"),
    "muon: no Nesterov": ([(NESTEROV, "update = newton_schulz(buf)")], muon, "differs from torch.optim.Muon's"),
    "muon: momentum summed": ([(LERP, "                buf.mul_(group['momentum']).add_(p.grad)")], muon, "differs from torch.optim.Muon's"),
    "muon: no shape factor": ([(ADJUST, "alpha=-group['lr'])")], muon, "differs from torch.optim.Muon's"),
    "muon: no weight decay": ([(DECAY, "                pass")], muon, "differs from torch.optim.Muon's"),
    "muon: the gradient not orthogonalised": ([(NESTEROV, "update = p.grad.lerp(buf, group['momentum'])")], muon, "differs from torch.optim.Muon's"),
    "wsd: no warmup": ([("then linear down to 0 over the last cooldown.\"\"\"\n    if progress < warmup:\n        return max(progress / warmup, 0.01)\n",
                         "then linear down to 0 over the last cooldown.\"\"\"\n")], wsd,
                       "does not rise through the warmup"),
    "wsd: down to 0.1": ([(DOWN, "    return min(1.0, 0.1 + 0.9 * (1 - progress) / cooldown)")], wsd, "not near 0"),
    "wsd: a cosine decay": ([(DOWN, "    if progress < 1 - cooldown:\n        return 1.0\n"
                                    "    return 0.5 * (1 + math.cos(math.pi * (progress - (1 - cooldown)) / cooldown))")], wsd,
                            "straight line"),
    "wsd: no decay": ([(DOWN, "    return 1.0")], wsd, "straight line"),
    "wsd: decay from the warmup on": ([(DOWN, "    return (1 - progress) / (1 - warmup)")], wsd, "is not 1 between the warmup and the decay"),
    "step: zero_grad between backward and step": ([(ZERO_GRAD, "    scaler.scale(loss).backward()\n"),
                                                   (STEPS, STEPS.replace("        scaler", "        optimizer.zero_grad()\n        scaler"))],
                                                  step, "cleared between backward and the steps"),
    "step: the rate compounds": ([(RATE, "group['lr'] *= factor")], step, "never a multiple of the last step's rate"),
    "step: no zero_grad": ([(ZERO_GRAD, "    scaler.scale(loss).backward()\n")], step, "the gradients add up over the steps"),
    "step: only the first optimizer steps": ([(STEPS, "    scaler.step(optimizers[0])")], step, "no parameter of MuonByHand moved"),
    "step: hidden matrices in AdamW too": ([("    if muon_lr is None:\n        groups.append", "    if True:\n        groups.append")],
                                           step, "in two groups"),
    "step: the gains left out": ([(", weight_decay=0.0)]", ", weight_decay=0.0)][:2]")], step, "out of every group"),
    # from the cold read of session 3 (S6-S11, O3-O11, W11): the groups against section 3's promises, the scaler enabled
    "wsd: a floor at the end": ([(DOWN + "\n\ndef cosine", "    return max(0.01, min(1.0, (1 - progress) / cooldown))\n\ndef cosine")], wsd, "a floor under the decay"),
    "step: rates set after the steps": ([(SET_RATES + STEPS + "  # skipped if float16's scaled gradients overflowed\n    scaler.update()\n",
                                          "    for optimizer in optimizers:\n        optimizer.zero_grad(set_to_none=True)\n    scaler.scale(loss).backward()\n"
                                          "    for optimizer in optimizers:\n        scaler.step(optimizer)\n        for group in optimizer.param_groups:\n"
                                          "            group['lr'] = group['peak_lr'] * factor\n    scaler.update()\n")], step, "the rates are set after the steps"),
    "step: optimizer.step() past the scaler": ([(SCALED_STEP, "        optimizer.step()")], step, "each optimizer steps through the scaler"),
    "step: the loss not scaled": ([("    scaler.scale(loss).backward()", "    loss.backward()")], step, "backward through scaler.scale(loss)"),
    "step: no scaler.update()": ([(SCALED_STEP + "\n    scaler.update()", SCALED_STEP)], step, "scaler.update() is missing"),
    "step: gradients clipped": ([("    scaler.scale(loss).backward()\n", "    scaler.scale(loss).backward()\n    torch.nn.utils.clip_grad_norm_("
                                  "[p for o in optimizers for g in o.param_groups for p in g['params']], 1.0)\n")], step, "rescaled (clipped?)"),
    "step: weight decay on the gains": ([(GAINS, GAINS.replace("weight_decay=0.0", "weight_decay=weight_decay"))], step, "none on gains and biases"),
    "step: embedding and head rates swapped": ([("lr=embed_lr or lr, weight_decay", "lr=head_lr or lr, weight_decay"),
                                                ("dict(params=[model.lm_head.weight], lr=head_lr or lr,", "dict(params=[model.lm_head.weight], lr=embed_lr or lr,")],
                                               step, "rate and peak come from its own argument"),
    "step: Muon at lr": ([("optimizers.append(MuonByHand(hidden, lr=muon_lr))", "optimizers.append(MuonByHand(hidden, lr=lr))")], step,
                         "blocks.0.sa.qkv.weight the rate 0.001"),
    "step: one peak for every group": ([("        group['peak_lr'] = group['lr']", "        group['peak_lr'] = lr")], step, "(peak_lr 0.001), not 0.003"),
    "step: AdamW's default betas": ([("torch.optim.AdamW(groups, betas=(0.9, 0.99),", "torch.optim.AdamW(groups,")], step, "not 05's (0.9, 0.99)"),
    "step: hidden matrices dropped without Muon": ([("    if muon_lr is None:\n        groups.append(dict(params=hidden, lr=lr, weight_decay=weight_decay))\n", "")],
                                                   step, "leaves ['blocks.0.sa.qkv.weight'] out of every group"),
    "step: the position table left out": ([("if 'embedding' in name], lr=embed_lr", "if 'token_embedding' in name], lr=embed_lr")], step,
                                          "leaves ['position_embedding_table.weight'] out"),
}

@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_the_check_names_the_mistake(mistake):
    edits, run_check, sentence = MISTAKES[mistake]
    with pytest.raises(AssertionError) as caught:
        run_check(load(NB, replace=edits, device="cpu"))
    said = str(caught.value)
    assert type(caught.value).__name__ == "CheckFailed" and sentence in said and "\n" not in said, said


CORRECT = {  # correct code a learner may write instead: the check must pass it
    "ns: no transpose for a tall G": ([("    if tall:\n        X = X.T  # (n, m)", "    if False:\n        X = X.T  # (n, m)"),
                                       ("    return X.T if tall else X", "    return X")], ns_check),
    "muon: momentum as mul and add": ([(LERP, "                buf.mul_(group['momentum']).add_(p.grad, alpha=1 - group['momentum'])")], muon),
    "step: zero_grad after the steps": ([(ZERO_GRAD, "    scaler.scale(loss).backward()\n"),
                                         ("    scaler.update()", "    scaler.update()\n    for optimizer in optimizers:\n        optimizer.zero_grad()")], step),
    "step: zero_grad on the model's parameters": ([(ZERO_GRAD, "        for p in (p for g in optimizer.param_groups for p in g['params']):\n"
                                                              "            p.grad = None\n    scaler.scale(loss).backward()\n")], step),
    "ns: bfloat16 inside, as torch.optim.Muon": ([(SCALE, "    X = (G / (G.norm() + eps)).bfloat16()"),
                                                  ("    return X.T if tall else X", "    return (X.T if tall else X).to(G.dtype)")], ns_check),
    "step: zero_grad to zeros": ([(ZERO_GRAD, ZERO_GRAD.replace("set_to_none=True", "set_to_none=False"))], step),
    "wsd: the decay written from its start": ([(DOWN, "    return 1.0 if progress <= 1 - cooldown else 1 - (progress - (1 - cooldown)) / cooldown")], wsd),
}


@pytest.mark.parametrize("variant", list(CORRECT))
def test_the_check_accepts_a_correct_variant(variant):
    edits, run_check = CORRECT[variant]
    assert "passed" in run_check(load(NB, replace=edits, device="cpu"))


def test_there_are_at_least_twelve_mistakes_over_every_piece():
    assert len(MISTAKES) >= 12 and {m.split(":")[0] for m in MISTAKES} == {"ns", "muon", "wsd", "step"}
