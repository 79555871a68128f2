# %% [markdown]
# # 03c · The complete model, as gpt.py writes it
#
# The finished model as the lecture's `gpt.py` writes it (**1:37:49 to 1:42:39 of the video**): one `GPTConfig`
# of the lecture's size (10,788,929 parameters), its initialisation, `generate` with temperature and top-k, made
# correct (attention scaled by `head_size**-0.5`, sampling in `eval()` mode without gradients). After 03b, before 04,
# which trains it (cross-attention is at the end of 02). No data, no training: it runs in seconds, also as a script.
# The plumbing it carries to stand alone (the checks of its pieces and of 03's) is folded below the imports.

# %%
import math, os, sys
from dataclasses import asdict, dataclass, replace
import torch
import torch.nn as nn
from torch.nn import functional as F

SMOKE = os.environ.get("COURSE_SMOKE") == "1"  # set by the tests (nothing here depends on it: no training)
IN_NOTEBOOK = "ipykernel" in sys.modules        # False when run as a script

# %% tags=["nbval-ignore-output"]
print(f"device: cpu (every model here is small, and nothing trains), torch {torch.__version__}, smoke mode: {SMOKE}")

# %% jupyter={"source_hidden": true} cellView="form"
#@title Plumbing: folders, figures and checks (from 01_bigram: the parts this notebook uses)

class CheckFailed(AssertionError):
    """A check of the code above failed; the message says what is wrong and its likely cause."""

def check(ok, message):
    """Stop with message (one sentence: what is wrong, and the likely cause) unless ok."""
    if not ok:
        raise CheckFailed(message)

def attempt(what, fn, *args, hint="look at the shapes of the tensors in that piece", **kwargs):
    """fn(*args, **kwargs); if it raises, stop with one sentence naming what ran and PyTorch's complaint."""
    try:
        return fn(*args, **kwargs)
    except CheckFailed:
        raise
    except Exception as e:  # the learner's code crashed inside a check: say where, not a raw traceback
        said = (str(e).strip().splitlines() or [""])[0][:200]
        raise CheckFailed(f"{what} raised {type(e).__name__} ({said}): {hint}") from None

class Passed(str):
    """What a check returns when it passes: a notebook shows it as plain text; a script prints nothing."""

    def __repr__(self):
        return str(self)


# %% jupyter={"source_hidden": true} cellView="form"
#@title Plumbing: the attention oracle (the same in every notebook that carries it)
def attention_diagnosis(out, q, k, v, n_embd):
    """None if out is causal attention of q, k, v (B, ..., T, hs) scaled by head_size**-0.5, computed by
    PyTorch's own F.scaled_dot_product_attention; else the likely mistake, in one sentence."""
    sdpa, T, hs = F.scaled_dot_product_attention, q.shape[-2], q.shape[-1]
    if out.shape != v.shape:
        return f"the output has shape {tuple(out.shape)}, not (B, T, head_size) = {tuple(v.shape)}"
    if not torch.isfinite(out).all():
        return ("the output holds inf or nan: some query's scores are all -inf (the mask must keep the diagonal "
                "and the past, masked_fill where tril == 0), the softmax runs over a dimension other than dim=-1 "
                "(each query's row), or the softmax is missing after the mask")
    if torch.allclose(out, sdpa(q, k, v, is_causal=True), atol=1e-5):
        return None
    tril = torch.tril(torch.ones(T, T, dtype=torch.bool))
    raw = q @ k.transpose(-2, -1)  # (B, T, T) unscaled
    scores = (raw * hs**-0.5).masked_fill(~tril, float('-inf'))
    suspects = {
        "there is no causal mask, so every position sees the future: masked_fill the scores where tril == 0":
            sdpa(q, k, v),
        "the mask lets each position see one step into the future: mask where torch.tril(ones(T, T)) == 0":
            sdpa(q, k, v, attn_mask=torch.ones(T, T, dtype=torch.bool).tril(1)),
        "the mask keeps the future and hides the past (torch.triu): keep the lower triangle, torch.tril":
            sdpa(q, k, v, attn_mask=torch.ones(T, T, dtype=torch.bool).triu()),
        "the future is filled with 0, not float('-inf'), so it keeps a weight of exp(0) after the softmax":
            F.softmax((raw * hs**-0.5).masked_fill(~tril, 0.0), dim=-1) @ v,
        f"the scores are scaled by C**-0.5 with C = n_embd = {n_embd} (the lecture's slip), not by head_size**-0.5":
            sdpa(q, k, v, is_causal=True, scale=n_embd**-0.5),
        "the scores are not scaled: multiply q @ k.transpose(-2, -1) by head_size**-0.5":
            sdpa(q, k, v, is_causal=True, scale=1.0),
        "the scores are multiplied by head_size**0.5: multiply by head_size**-0.5 (divide by its square root)":
            sdpa(q, k, v, is_causal=True, scale=hs**0.5),
        "the scores are divided by head_size, not by its square root: multiply by head_size**-0.5":
            sdpa(q, k, v, is_causal=True, scale=1.0 / hs),
        "the scores are scaled by head_size**-1/2, which Python reads as (head_size**-1) / 2: write head_size**-0.5":
            sdpa(q, k, v, is_causal=True, scale=hs**-1 / 2),
        "the scale is applied after the softmax: scale the scores q @ k.transpose(-2, -1) before masking":
            F.softmax(raw.masked_fill(~tril, float('-inf')), dim=-1) * hs**-0.5 @ v,
        "the softmax runs over the wrong dimension: use dim=-1, so that each query's row sums to 1":
            F.softmax(scores, dim=-2) @ v,
        "the weights multiply the keys, not the values: out = wei @ v with v = value(x)":
            sdpa(q, k, k, is_causal=True),
        "the weights multiply the queries, not the values: out = wei @ v with v = value(x)":
            sdpa(q, k, q, is_causal=True),
        "queries and keys are swapped in the scores: compute q @ k.transpose(-2, -1)":
            sdpa(k, q, v, is_causal=True),
        "the queries come from the key layer, so the scores compare keys with keys: q = query(x)":
            sdpa(k, k, v, is_causal=True),
        "the weights are transposed before they multiply the values: out = wei @ v, each query's row of weights":
            F.softmax(scores, dim=-1).transpose(-2, -1) @ v,
    }
    for mistake, result in suspects.items():
        if result.shape == out.shape and torch.allclose(out, result, atol=1e-5):
            return mistake
    return ("it differs from PyTorch's attention in a way this check cannot name: compare it line by line with "
            "the head above (scores, scale, mask, softmax over dim=-1, weights times v)")


# %% jupyter={"source_hidden": true} cellView="form"
#@title Plumbing: checks of the model's pieces (the same in every notebook that carries it)
def probe_sizes(T):
    """(B, T) sizes to try a piece on: the whole context, a part of it, one token."""
    return [(2, T), (3, T // 2 + 1), (1, 1)][:3 if T > 1 else 1]

def run_eval(module, *inputs, what=None, hint="look at the shapes of the tensors in that piece", finite=False):
    """module(*inputs) in eval mode without gradients, its mode restored after; a crash becomes a sentence naming the
    sub-module it happened in (or one that returned None); with finite, nan or inf names the piece that made it."""
    was, what = module.training, what or f"{type(module).__name__} on x of shape {tuple(inputs[0].shape)}"
    kept, names, running, bad, empty = [t.clone() for t in inputs], {m: n for n, m in module.named_modules() if n}, [], [], []
    nan = lambda t: isinstance(t, torch.Tensor) and t.is_floating_point() and not torch.isfinite(t).all()
    def leave(m, args, out):  # a piece finished: note the first that returned None or turned finite input into nan
        _ = running.pop(), out is None and empty.append(m), not bad and nan(out) and not any(map(nan, args)) and bad.append(m)
    hooks = [h for m in names for h in (m.register_forward_pre_hook(lambda m, args: running.append((m, args))),
                                        m.register_forward_hook(leave))]
    try:
        with torch.no_grad():
            out = module.eval()(*inputs)
    except Exception as e:  # the learner's code crashed inside a check: say where, not a raw traceback
        said, (m, args) = (str(e).strip().splitlines() or [""])[0][:200], running[-1] if running else (None, ())
        where = f" in {names[m]} ({type(m).__name__}, given input of shape {tuple(args[0].shape)})" if m and args else ""
        raise CheckFailed(f"{what} raised {type(e).__name__} ({said}){where}: " + (f"{names[empty[0]]} ("
                          f"{type(empty[0]).__name__}) returned None: does its forward end with return ...?" if empty else
                          'look at the shapes that piece makes and is given' if m else "a layer is None, not a module (an "
                          "argument not given, with no default such as nn.Identity())" if "'NoneType' object is not callable"
                          in said else hint)) from None
    finally:
        _ = [h.remove() for h in hooks], module.train(was)
    check(out is not None, f"{what} returned None: does its forward end with return ...?")
    check(all(torch.equal(a, b) for a, b in zip(kept, inputs)), f"{what} changed its input in place (x += ... or "
          "an in-place op on x): write x = x + ..., a new tensor, so the input stays as it was (autograd needs it)")
    check(not finite or not nan(out[0] if isinstance(out, tuple) else out), f"{what} gave nan or inf, first made by "
          f"{f'{names[bad[0]]} ({type(bad[0]).__name__})' if bad else 'its own forward'} from finite input: in attention "
          "a query whose scores are all -inf (the mask must keep the diagonal and the past), or no softmax after the mask")
    return out

def dropped(module, fn, p=0.5):
    """fn() with module in training mode, every nn.Dropout in it at p, without gradients; all restored after."""
    drops = [m for m in module.modules() if isinstance(m, nn.Dropout)]
    rates, was = [m.p for m in drops], module.training
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            _ = [setattr(m, "p", p) for m in drops], module.train()
            return fn()
    finally:
        _ = [setattr(m, "p", rate) for m, rate in zip(drops, rates)], module.train(was)

def check_registered(module):
    """Every sub-module is registered (no plain list of modules) and every mask (tril) is a buffer, not a parameter."""
    for owner in module.modules():
        for key, value in vars(owner).items():
            items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else ()
            check(key.startswith("_") or not any(isinstance(v, nn.Module) for v in items), f"{type(owner).__name__}.{key} "
                  f"is a plain Python {type(value).__name__} of modules, so their weights are not parameters of the model "
                  "(the optimizer never sees them, .to(device) never moves them): use nn.ModuleList([...])")
        tril, where = getattr(owner, "tril", None), type(owner).__name__ + ".tril"
        if isinstance(tril, torch.Tensor):
            check(not isinstance(tril, nn.Parameter), f"{where} is an nn.Parameter, so the optimizer trains (and decays) "
                  "the mask: keep it out of the parameters with self.register_buffer('tril', ...)")
            check(any(b is tril for b in owner.buffers(recurse=False)), f"{where} is a plain attribute, not a buffer, so "
                  "model.to(device) leaves it on the CPU (and it is not in state_dict): self.register_buffer('tril', ...)")

def sees_future(module, x, training=False, first=1):
    """Whether the first outputs of module (B, T, ...) change when only later positions of x change; with training,
    in training mode with every dropout at 0.5 and the same random numbers for both inputs."""
    changed, name = x.clone(), type(module).__name__
    changed[:, first:] = torch.randn_like(x[:, first:]) if x.is_floating_point() else (x[:, first:] + 1) % (int(x.max()) + 1)
    seeded = lambda inp: (torch.manual_seed(0), attempt(f"{name} in training mode", module, inp))[1]
    outs = [dropped(module, lambda: seeded(inp)) if training else run_eval(module, inp) for inp in (x, changed, x)]
    outs = [(out[0] if isinstance(out, tuple) else out) for out in outs]
    check(torch.allclose(outs[0], outs[2], rtol=0, atol=0, equal_nan=True), f"{name} gives two outputs for one input{'' if training else ' in eval mode'}: a "
          "dropout ignores the mode (F.dropout(x, p) drops in eval mode too: pass training=self.training, or use nn.Dropout)")
    return not torch.allclose(outs[0][:, :first], outs[1][:, :first], atol=1e-5)

def check_feedforward(ffwd, n_embd):
    """A feed-forward layer: (B, T, C) in and out, every position on its own, not linear, not only positive."""
    torch.manual_seed(0)
    name, x = type(ffwd).__name__, torch.randn(2, 6, n_embd)  # (B, T, C)
    out = run_eval(ffwd, x)
    check(torch.equal(out, run_eval(ffwd, x)), f"{name} gives two outputs for one input in eval mode: a dropout ignores "
          "the mode (F.dropout(x, p) drops in eval mode too: pass training=self.training, or use nn.Dropout)")
    check(out.shape == x.shape, f"{name} turned x of shape {tuple(x.shape)} into {tuple(out.shape)}: it must end "
          "where it started, n_embd channels (4 * n_embd inside, then back)")
    alone, zero = torch.zeros_like(x), run_eval(ffwd, torch.zeros_like(x))
    alone[:, 3] = x[:, 3]  # position 3 kept, every other position zero
    check(torch.allclose(run_eval(ffwd, alone)[:, 3], out[:, 3], atol=1e-5), f"{name} mixes positions: one "
          "position's output changed with the others; it must act on each token alone (Linear over the last dimension)")
    y = torch.randn_like(x)  # additivity, not f(2x) = 2 f(x), which a bias-free ReLU net satisfies without being linear
    check(not torch.allclose(run_eval(ffwd, x + y) + zero, out + run_eval(ffwd, y), atol=1e-4), f"{name} is linear "
          "(f(x + y) + f(0) = f(x) + f(y)), so its Linear layers collapse into one: a non-linearity must act between them")
    check(bool((out < 0).any()), f"{name} never outputs a negative number: a ReLU after its last Linear? "
          "the non-linearity goes between the two Linear layers")
    check(not torch.allclose(run_eval(ffwd, x.clamp(max=0)), zero, atol=1e-6), f"{name} gives the same output for every "
          "input that is negative or 0, as for 0: a ReLU before its first Linear? the non-linearity goes between them")
    ran, fed = linears_applied(ffwd, x), []  # nudge the first Linear's channel 0: only channel 0 may move at the last's input
    if len(ran) > 1 and ran[0] is not ran[-1]:
        hooks = [ran[-1].register_forward_pre_hook(lambda m, a: fed.append(a[0]))]
        try:
            run_eval(ffwd, x)
            hooks.append(ran[0].register_forward_hook(lambda m, a, o: o + 3 * torch.eye(o.shape[-1])[0]))
            run_eval(ffwd, x)
        finally:
            _ = [h.remove() for h in hooks]
        moved = int(((fed[-1] - fed[0]).abs() > 1e-6).flatten(0, -2).any(0)[1:].sum())  # other hidden channels that moved
        check(not moved, f"{name}'s non-linearity mixes the hidden channels (nudging one moved {moved} others): it must act "
              "on each number alone, as nn.ReLU() or nn.GELU() do (a softmax across the channels does not)")
    if ran:  # in eval mode the output is what the last Linear returns: only dropout may follow it
        got, hook = [], ran[-1].register_forward_hook(lambda m, a, o: got.append(o))
        try: run_eval(ffwd, x)
        finally: hook.remove()
        check(torch.allclose(got[-1], out, atol=1e-6), f"{name}'s output is not what its last Linear returns: nothing "
              "but dropout comes after the projection back (no activation there)")
    check_dropout_last(ffwd, x, lambda: out, "its last Linear")
    return Passed(f"{name}: passed (per position, non-linear)")

def linears_applied(module, x):
    """The nn.Linear layers of module in the order module(x) applies them."""
    ran, linears = [], [m for m in module.modules() if isinstance(m, nn.Linear)]
    hooks = [m.register_forward_hook(lambda m, args, out: ran.append(m)) for m in linears]
    try: run_eval(module, x)
    finally: _ = [h.remove() for h in hooks]
    return ran

def check_dropout_last(module, x, clean, last):
    """In training mode (dropout 0.5) module(x) must be clean() (what comes before its last dropout), half zeroed."""
    if any(isinstance(m, nn.Dropout) for m in module.modules()):
        trained = dropped(module, lambda: attempt(f"{type(module).__name__} in training mode", module, x))
        kept, clean = trained != 0, dropped(module, clean)
        check(0.3 < 1 - kept.float().mean() < 0.7 and torch.allclose(trained[kept], 2 * clean[kept], atol=1e-5), f"in "
              f"training mode (dropout 0.5) {type(module).__name__} does not zero about half of its outputs and double "
              f"the rest: its dropout must come last, on what {last} returns")

def heads_qkv(mha, x, n_head):
    """Candidates for the (q, k, v) (B, n_head, T, hs) of mha's heads: a ModuleList of heads with key, query, value;
    or one Linear making them together, in any order, cut in three blocks of heads or per head."""
    heads, B, T, C = getattr(mha, "heads", None), *x.shape
    if isinstance(heads, nn.ModuleList) and all(hasattr(h, a) for h in heads for a in ("query", "key", "value")):
        return [[torch.stack([getattr(h, a)(x) for h in heads], 1) for a in ("query", "key", "value")]]
    fused = [m(x) for m in mha.children() if isinstance(m, nn.Linear) and m.out_features == 3 * C]
    cuts = [[t.view(B, T, n_head, -1) for t in y.split(C, -1)] + list(y.view(B, T, n_head, -1).split(C // n_head, -1)) for y in fused[:1]]
    return [[cut[i + j].transpose(1, 2) for i in order] for cut in cuts for j in (0, 3)
            for order in ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))]

def check_multihead(mha, n_embd, n_head, T=None):
    """Multi-head attention: (B, T, C) in and out, causal, n_head distinct heads of n_embd // n_head channels, each
    PyTorch's attention of its own queries, keys and values, joined, projected, then dropout; at two lengths."""
    torch.manual_seed(0)
    name, heads = type(mha).__name__, getattr(mha, "heads", [])
    check_registered(mha)
    x = torch.randn(2, T or next((b.shape[0] for k, b in mha.named_buffers() if k.endswith("tril")), 8), n_embd)  # (B, T, C)
    weights, expected = sum(p.numel() for p in mha.parameters() if p.dim() == 2), 4 * n_embd * n_embd
    likely = ("heads of n_embd channels each (head_size = n_embd // n_head)" if weights > expected else "one Head object "
              "reused for every head (build a new Head for each)" if len({*map(id, heads)}) < len(heads) else
              "heads narrower than n_embd // n_head channels (look at the head_size each Head is given)")
    check(weights == expected, f"{name} has {weights:,} weights in its matrices, not 4 * n_embd**2 = {expected:,} "
          f"(key, query, value of {n_head} heads of n_embd // n_head channels, and proj): likely {likely}")
    widths = [run_eval(h, x).shape[-1] for h in heads]
    check(len(heads) in (0, n_head) and set(widths) <= {n_embd // n_head}, f"{name} has {len(heads)} heads of "
          f"{widths[0] if widths else 0} channels, not n_head = {n_head} heads of n_embd // n_head = {n_embd // n_head}: "
          "look at how many heads are built and the head_size each is given")
    joined, proj = [], getattr(mha, "proj", None)  # joined: what the heads hand to proj, (B, T, n_head * hs)
    hook = proj.register_forward_pre_hook(lambda m, args: joined.append(args[0])) if isinstance(proj, nn.Linear) else None
    try:
        out = run_eval(mha, x, hint="follow the shapes: each head (B, T, head_size) (fused, (B, n_head, T, head_size): time "
                       "on its own axis), joined on the last dimension, (B, T, n_head * head_size)")
        check(out.shape == x.shape, f"{name} turned x of shape {tuple(x.shape)} into {tuple(out.shape)}: concatenate "
              "the heads on the last dimension (n_head * head_size = n_embd), then proj")
        check(not sees_future(mha, x), f"{name} lets a position see the future: check each head's mask, and that a "
              "fused (B, n_head, T, hs) output is transposed to (B, T, n_head, hs) before it is viewed as (B, T, C)")
        check(not sees_future(mha, x, training=True), f"{name} lets a position see the future in training mode (dropout "
              "on): dropout belongs after the softmax, on the weights, never on the scores before it")
        if hook:
            check(joined, f"{name}: proj is defined but never applied (return self.proj(out) in its forward)")
            z = joined[0]  # (B, T, n_head * hs), what the heads gave in the first run, on x in eval mode
            check(torch.allclose(mha.proj(z), out, atol=1e-5), f"{name}'s output is not proj of what its heads "
                  "return: nothing but dropout comes after the output projection")
            trained = dropped(mha, lambda: (attempt(f"{name} in training mode", mha, x), joined[-1])[1])
            check(not any(isinstance(m, nn.Dropout) for m in mha.modules()) or not torch.allclose(trained, z),
                  f"in training mode (dropout 0.5) {name}'s heads return what they return in eval mode: the "
                  "attention weights get no dropout (after the softmax)")
            check_dropout_last(mha, x, lambda: mha.proj(joined[-1]), "proj")
            parts = z.view(*z.shape[:2], n_head, -1).transpose(1, 2)  # (B, nh, T, hs), or the heads interleaved:
            layouts = [parts, z.view(*z.shape[:2], -1, n_head).permute(0, 3, 1, 2)]
            check(not all(torch.allclose(parts[:, 0], parts[:, h]) for h in range(1, n_head)), f"every head of {name} "
                  "hands proj the same numbers: each head must be called on x, and each one's own output joined")
            with torch.no_grad():  # each head against PyTorch's attention, at three scales, joined in any order
                qkv = [c for c in heads_qkv(mha, x, n_head) if c[0].shape == parts.shape]
                alike = lambda z, ref: all(any(torch.allclose(z[:, i], ref[:, j], atol=1e-5) for j in range(n_head)) for i in range(n_head))
                same = [any(alike(z, F.scaled_dot_product_attention(*c, is_causal=True, scale=scale))
                            for c in qkv for z in layouts) for scale in (None, n_embd**-0.5, 1.0, x.shape[1]**-0.5)]
            check(same[0] or not qkv, f"{name}'s heads are not PyTorch's causal attention of their own queries, keys and "
                  "values: " + (f"scaled by C**-0.5 with C = n_embd = {n_embd}, not by head_size**-0.5" if same[1] else
                  "not scaled by head_size**-0.5" if same[2] else f"scaled by T**-0.5, the input's length (T = {x.shape[1]} "
                  "here), not by head_size**-0.5" if same[3] else "compare the scores, scale, mask, softmax over dim=-1 "
                  "and weights @ v with notebook 03's Head (fused: each of q, k, v viewed (B, T, n_head, head_size), "
                  "then transposed)"))
    finally:
        _ = hook.remove() if hook else None
    if T is None and x.shape[1] > 2:  # again on a shorter input: a scale or mask sized by the length shows there
        check_multihead(mha, n_embd, n_head, T=x.shape[1] // 2 + 1)
    return Passed(f"{name}: passed ({n_head} heads of {n_embd // n_head}, causal, {weights:,} weights)")

def check_block(block, n_head=None):
    """A Transformer block is x plus corrections: pre-norm x + f(ln(x)), or post-norm ln(x + f(x)), each sub-layer
    on its own path to the output. Probed by setting the sub-layers' output projections to zero, one at a time and
    together; n_head, when given, is the number of heads its attention must have."""
    torch.manual_seed(0)
    name, linears = type(block).__name__, [m for m in block.modules() if isinstance(m, nn.Linear)]
    check(all(isinstance(getattr(block, k, None), nn.Module) for k in ("sa", "ffwd")) and linears, f"{name} has no "
          "self.sa and self.ffwd: does its __init__ build them (a subclass: does it call Block's __init__ through super())?")
    check_registered(block)
    widths = [m.in_features for m in linears]  # n_embd: the most common input width of the block's Linears
    x = torch.randn(2, 5, max(set(widths), key=widths.count)) * 2 + 0.5  # (B, T, C) far from normalised
    ran, C = linears_applied(block, x), x.shape[-1]
    last = lambda part: next((m for m in ran[::-1] + linears[::-1] if any(m is n for n in part.modules())), None)
    sa_out, ffwd_out = block.sa.proj if isinstance(getattr(block.sa, "proj", None), nn.Linear) else last(block.sa), last(block.ffwd)
    saved, outs = {k: v.detach().clone() for k, v in block.state_dict().items()}, []
    try:
        for silenced in ((), (sa_out,), (ffwd_out,), (sa_out, ffwd_out)):
            with torch.no_grad():
                for linear in filter(None, silenced):
                    linear.weight.zero_()
                    _ = linear.bias.zero_() if linear.bias is not None else None
            outs.append(run_eval(block, x))
            block.load_state_dict(saved)
    finally:
        block.load_state_dict(saved)
    full, no_sa, no_ffwd, neither = outs
    norm = lambda t: F.layer_norm(t, (C,))  # (B, T, C) every token normalised
    check(full.shape == x.shape, f"{name} turned x of shape {tuple(x.shape)} into {tuple(full.shape)}: a block keeps (B, T, C)")
    check(not torch.allclose(no_sa, full), f"{name}: setting attention's output projection sa.proj to zero changes "
          "nothing, so proj is defined but never applied (return self.proj(out) in its forward)")
    check(not torch.allclose(no_ffwd, full), f"{name}: setting the feed-forward's last Linear to zero changes "
          "nothing, so the feed-forward never reaches the output (does forward call self.ffwd, and its net every layer?)")
    check(not sees_future(block, x), f"{name} lets a position see the future: check the heads' mask")
    check(not sees_future(block, x, training=True), f"{name} lets a position see the future in training mode "
          "(dropout on): dropout belongs after the softmax, on the weights, never on the scores before it")
    named, was = list(block.named_parameters()), block.training
    try:
        with torch.random.fork_rng(devices=[]):
            out = attempt(f"{name} with gradients", block.eval(), x)
            grads = torch.autograd.grad((out * torch.randn_like(out)).sum(), [p for _, p in named], allow_unused=True)
    finally:
        block.train(was)
    unused = [k for (k, _), g in zip(named, grads) if g is None]
    check(not unused, f"{name}'s {unused[0] if unused else ''} gets no gradient from the block's output, so "
          f"{unused[0].rsplit('.', 1)[0] if unused else ''} is built but never used in forward: use each layer where it belongs")
    try:  # the gradient with respect to x against how the output moves when x moves (in float64, on a copy)
        import copy
        twin, xd, d = copy.deepcopy(block).double().eval(), x.double().requires_grad_(), torch.randn_like(x, dtype=torch.float64)
        slope = (torch.autograd.grad((twin(xd) * d).sum(), xd)[0] * d).sum().item()  # d . J^T d, from autograd
        moved = ((twin(xd + 1e-5 * d) - twin(xd - 1e-5 * d)) * d).sum().item() / 2e-5  # d . J d, from the outputs
    except Exception:  # a block that cannot be copied or run in float64: nothing to say
        slope = moved = 0.0
    check(abs(slope - moved) <= 1e-3 * abs(moved) + 1e-6, f"{name}'s gradient with respect to its input ({slope:.4g} along "
          f"a random direction) is not how its output moves ({moved:.4g}): a .detach() or .data cuts a path the output depends on")
    post_norm = not torch.allclose(neither, x, atol=1e-5)
    check(not post_norm or neither.abs().max() > 1e-6, f"{name} returns 0 when its two output projections are zero, "
          "so the input is lost: the residual connections are missing (x = x + self.sa(...))")
    ratio = ((neither * x).sum() / (x * x).sum()).item()  # neither = ratio * x when the input is added twice or scaled
    check(not post_norm or not torch.allclose(neither, ratio * x, atol=1e-4), f"{name} with both output projections "
          f"zeroed returns {ratio:.2f} times its input, not the input: x reaches the output more than once or scaled "
          "(x + x + ..., a residual inside a sub-layer, or a division)")
    for silenced, alone, which, other in ((no_ffwd, "attention", "sa", "feed-forward"), (no_sa, "the feed-forward", "ffwd", "attention")):
        check(not torch.allclose(silenced, neither, atol=1e-5), f"{name}: with the {other}'s output projection zeroed, "
              f"{alone} changes nothing, so its output reaches the block's output only through the {other}: each "
              f"sub-layer adds its own correction to the stream (x + self.{which}(...))")
    check(not post_norm or torch.allclose(norm(neither), norm(x), atol=1e-4), f"{name} with both output projections "
          "zeroed returns neither its input (pre-norm) nor its normalised input (post-norm): a layer applied to x itself?")
    check(not post_norm or torch.allclose(norm(full), full, atol=1e-4), f"{name} normalises the residual stream "
          "itself (x = self.ln1(x)) and then adds to it: write pre-norm, x + self.sa(self.ln1(x)), or post-norm, "
          "self.ln1(x + self.sa(x))")
    check_feedforward(block.ffwd, C)
    if hasattr(block.sa, "heads") or n_head:
        check_multihead(block.sa, C, n_head or len(block.sa.heads))
    return Passed(f"{name}: passed (the residual path carries {'the normalised x (post-norm)' if post_norm else 'x'} through)")

def check_model(model, attends=True):
    """Probe a language model(idx, targets) -> (logits, loss): shapes and loss at several lengths, causal, aware
    of positions, communicating (if attends), no dropout on the logits, mode kept."""
    torch.manual_seed(0)
    positions = getattr(model, "position_embedding_table", None)  # notebook 01's bigram has none
    V, T = model.token_embedding_table.num_embeddings, positions.num_embeddings if positions else 8
    name = type(model).__name__
    check_registered(model)
    masks = [b.shape[-1] for k, b in model.named_buffers() if k.endswith("tril")]
    check(not positions or not masks or T <= min(masks), f"{name}'s position table has {T} rows but its attention "
          f"masks are {min(masks or [0])} x {min(masks or [0])}: one row per position, nn.Embedding(block_size, n_embd)")
    shapes = ("positions are arange(T) with T = idx.shape[1]; logits stay (B, T, vocab_size) and only the loss "
              "flattens them, F.cross_entropy(logits.view(B*T, C), targets.view(B*T))")
    for B, t in probe_sizes(T):
        idx, targets = torch.randint(0, V, (B, t)), torch.randint(0, V, (B, t))
        logits, loss = run_eval(model, idx, targets, what=f"{name}(idx of shape {(B, t)}, targets)", hint=shapes, finite=True)
        check(logits.numel() == B * t * V and loss is not None and loss.dim() == 0, f"{name}(idx of shape {(B, t)}, "
              f"targets) gave logits of shape {tuple(logits.shape)} and loss {loss if loss is None else tuple(loss.shape)}: "
              f"expected (B, T, vocab_size) = {(B, t, V)} and one number")
        expected = F.cross_entropy(logits.reshape(-1, V), targets.flatten())
        check(not ((logits >= 0).all() and torch.allclose(logits.sum(-1), torch.ones(()), atol=1e-4)), f"{name} returns "
              "probabilities (each row of its logits sums to 1): return the raw scores; F.cross_entropy applies the softmax")
        check(torch.allclose(loss, expected, atol=1e-4), f"{name}'s loss {loss.item():.4f} is not the mean cross-entropy "
              f"of its logits and targets ({expected.item():.4f}): F.cross_entropy(logits.view(B*T, C), targets.view(B*T))")
        logits = run_eval(model, idx, what=f"{name}(idx of shape {(B, t)})", hint="it ran with targets, not without: "
                          "called with targets=None, forward must not compute the loss (loss is None then)")[0]
        check(logits.shape == (B, t, V), f"{name}(idx of shape {(B, t)}) gave logits of shape {tuple(logits.shape)}, "
              f"not (B, T, vocab_size) = {(B, t, V)}")
    logits_of = lambda idx: run_eval(model, idx)[0]  # (B, T, V)
    idx = torch.randint(0, V, (-(-V // T), T))  # (B, T) with every character among the targets below
    every = (torch.arange(idx.numel()) % V).view_as(idx)
    logits, loss = run_eval(model, idx, every)
    check(abs(loss.item() - F.cross_entropy(logits.reshape(-1, V), every.flatten()).item()) < 1e-4, f"on targets holding "
          f"each of the {V} characters the loss is not their mean cross-entropy: is some character (an ignore_index, a "
          "mask) left out of the loss?")
    twice = [dropped(model, lambda: model.eval()(idx)[0]) for _ in range(2)]  # eval mode, every nn.Dropout at 0.5
    check(torch.equal(*twice), "in eval mode (dropout rates at 0.5) two passes give different logits: a dropout ignores "
          "the mode (F.dropout(x, p) drops in eval mode too: pass training=self.training, or use nn.Dropout)")
    idx = idx[:2]
    changed, earlier = idx.clone(), idx.clone()
    changed[:, T // 2:] = (changed[:, T // 2:] + 1) % V  # a different second half
    earlier[:, 0] = (earlier[:, 0] + 1) % V  # a different first character
    before, after, same_token = logits_of(idx), logits_of(changed), logits_of(torch.full((1, 2), 1))
    check(torch.allclose(before[:, :T // 2], after[:, :T // 2], atol=1e-5), "changing later characters changed "
          "the predictions at earlier positions: the model sees the future (check the attention mask)")
    deaf = attends and torch.allclose(logits_of(earlier)[:, 1:], before[:, 1:])
    blind = positions and torch.allclose(same_token[0, 0], same_token[0, 1], atol=1e-6)
    check(not (deaf and blind), "the logits depend on the current character alone, not on its position nor on the "
          "characters before it: lm_head is fed the token embeddings (or the body's output is dropped), not the x "
          "that came through the body")
    check(not blind, "the same character at positions 0 "
          "and 1 gives the same logits: the model ignores positions (are position embeddings added, and does the x "
          "that holds them reach lm_head?)")
    check(not deaf, "changing the first character "
          "changed nothing after it: the positions do not communicate (is the attention applied?)")
    check(torch.allclose(logits_of(idx[:, :T // 2]), logits_of(idx)[:, :T // 2], atol=1e-5), "the logits of a prefix "
          "differ from the same positions of the whole input's: a prediction must not depend on how much comes after")
    if positions:  # with the position table zeroed, the tokens must still reach the logits: embeddings add
        saved = positions.weight.detach().clone()
        try:
            flat = (positions.weight.data.zero_(), torch.allclose(logits_of(idx), logits_of((idx + 1) % V), atol=1e-6))[1]
        finally:
            positions.weight.data.copy_(saved)
        check(not flat, "with the position table set to zero the logits no longer depend on the characters: the token "
              "and position embeddings must be added, not combined another way (multiplied?)")
    check(not sees_future(model, idx, training=True, first=T // 2), "in training mode (dropout on) changing later "
          "characters changed the predictions at earlier positions: dropout belongs after the softmax, on the "
          "weights, never on the scores before it")
    slips = device_slips(model, idx)
    check(not slips, f"on a GPU {name} would mix the model's device with tensors made on the CPU (in {slips[:1]}): "
          "make new tensors on the input's device, torch.arange(T, device=idx.device), and keep masks as buffers")
    zeros = dropped(model, lambda: ((z := model(idx)[0] == 0) & ~z.all(-1, keepdim=True)).float().mean().item())  # 0s
    # in rows that are not all 0 (a whole row of 0 logits is a zero input vector, not a dropout on the logits)
    check(zeros < 0.05, f"in training mode {zeros:.0%} of the logits are exactly 0: a dropout is applied to "
          "the logits; dropout belongs inside the blocks, never after lm_head")
    return Passed(f"{name}: passed (causal{', aware of positions' if positions else ''}{', communicating' if attends else ''})")

def check_init(init):
    """init(module) through nn.Module.apply on fresh layers (PyTorch's own start): Linear, Embedding, LayerNorm."""
    torch.manual_seed(0)
    lin, free, emb, norm = layers = nn.Sequential(nn.Linear(256, 256), nn.Linear(256, 256, bias=False), nn.Embedding(256, 256), nn.LayerNorm(256))
    attempt("nn.Sequential(Linear, Linear without bias, Embedding, LayerNorm).apply(_init_weights)", layers.apply, init, hint="apply "
            "calls it on every module (the Sequential too) with the module alone: ask what it is first; change weights with nn.init")
    for name, w in (("Linear", lin.weight), ("Embedding", emb.weight)):
        check(abs(w.mean()) < 0.002 and abs(w.std() - 0.02) < 0.002, f"after _init_weights the {name}'s weights have "
              f"mean {w.mean():.3f} and std {w.std():.3f}, not 0 and 0.02: draw them from a normal(0, 0.02)")
    check(not torch.equal(lin.weight, free.weight), "two Linear layers of one shape start with the same weights: each "
          "layer needs numbers of its own from the random generator (reseeding it inside _init_weights repeats them)")
    zero = isinstance(lin.bias, torch.Tensor) and not lin.bias.any()  # still a bias, and zero
    check(zero and (norm.weight == 1).all() and not norm.bias.any(), "after _init_weights " + (
        "the Linear's bias is not zero: every bias starts at zero, kept as it is" if not zero else "a LayerNorm has changed: only "
        "Linear and Embedding weights are drawn, a LayerNorm keeps PyTorch's start (weight 1, bias 0)"))
    return Passed("_init_weights: passed (Linear and Embedding weights normal(0, 0.02), biases zero, LayerNorm as it was)")

class MixedDevices(torch.overrides.TorchFunctionMode):
    """Records every torch function called with tensors (not scalars) on two devices."""

    def __init__(self):
        super().__init__()
        self.mixed = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        flat = [a for v in (*args, *kwargs.values()) for a in (v if isinstance(v, (list, tuple)) else [v])]
        if len({a.device.type for a in flat if isinstance(a, torch.Tensor) and a.dim() > 0}) > 1:
            self.mixed.append(getattr(func, "__name__", str(func)))
        return func(*args, **kwargs)

def device_slips(model, idx):
    """The functions in model(idx) that mix devices when a copy of the model sits on the 'meta' device."""
    import copy
    try:
        twin = copy.deepcopy(model).to("meta").eval()
    except Exception:  # a model that cannot be copied: nothing to say
        return []
    mode = MixedDevices()
    try:
        with torch.no_grad(), mode:
            twin(idx.to("meta"))
    except Exception:  # an operation without a meta version, or the mix itself: what was recorded counts
        pass
    return mode.mixed


# %% jupyter={"source_hidden": true} cellView="form"
#@title Plumbing: the check of one attention head (the same in every notebook that carries it)
def check_head(head, head_size=None, block_size=None):
    """Check one attention head (key, query, value, or one Linear making all three; with head_size, its output width;
    with block_size, inputs up to that length and its mask's size) against PyTorch's attention."""
    torch.manual_seed(0)
    check_registered(head)
    tril, name, kqv = getattr(head, "tril", None), type(head).__name__, [getattr(head, a, None) for a in ("key", "query", "value")]
    linears, fused = [m for m in head.modules() if isinstance(m, nn.Linear)], None in kqv  # fused: one Linear, cut in 3
    check(linears and (not fused or len(linears) == 1 and linears[0].out_features % 3 == 0), f"{name} has no key, "
          "query and value layers (nor one Linear making all three): build the projections in __init__")
    check(fused or len({p.data_ptr() for m in kqv for p in m.parameters()}) == sum(1 for m in kqv for _ in m.parameters()),
          f"{name}'s key, query and value share a layer (or its weights), so two of k, q, v are always equal: "
          "each is a projection of its own, learning its own weights")
    size = tuple(tril.shape[-2:]) if isinstance(tril, torch.Tensor) else None  # an SDPA head needs no tril
    check(not block_size or not size or size == (block_size,) * 2, f"{name}.tril is {size and ' x '.join(map(str, size))}"
          f", not block_size x block_size = {block_size} x {block_size}: the mask has one row and one column per "
          "position of the context, so its size comes from block_size (a smaller one fails on longer inputs)")
    C, T = linears[0].in_features, block_size or (size[-1] if size else 8)
    for B, t in probe_sizes(T):
        x = torch.randn(B, t, C)  # (B, T, C)
        out = run_eval(head, x, hint="is something sized by block_size where it should use T = x.shape[1] (self.tril[:T, "
                       ":T])?" if t < T else "the scores are (B, T, hs) @ (B, hs, T) -> (B, T, T): transpose the last two "
                       "dimensions of k (on a 3-D tensor .T reverses all three), and the output is (B, T, T) @ (B, T, hs)")
        with torch.no_grad():  # (B, T, hs) each: q, k, v, or the fused Linear's three parts in any order
            parts = linears[0](x).chunk(3, -1) if fused else [m(x) for m in (head.query, head.key, head.value)]
        check(head_size is None or out.shape[-1] == head_size, f"{name} gives {out.shape[-1]} channels per position, "
              f"not head_size = {head_size}: " + ("the weights multiply x itself, not its values v = self.value(x)" if
              out.shape[-1] == C and parts[2].shape[-1] == head_size else "key, query and value must each map n_embd "
              "channels to head_size"))
        orders = ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)) if fused else ((0, 1, 2),)
        found = [attention_diagnosis(out, *(parts[i] for i in order), C) for order in orders]
        mistake = None if None in found else found[0]
        check(mistake is None, f"{name} is not causal self-attention (on x of shape {(B, t, C)}): {mistake}")
    check(not sees_future(head, x, training=True), f"{name} lets a position see the future in training mode (dropout "
          "on): dropout belongs after the softmax, on the weights, never on the scores before it")
    return Passed(f"{name}: passed (equals F.scaled_dot_product_attention, scaled by head_size**-0.5 = "
                  f"{parts[0].shape[-1]}**-0.5)")


# %% jupyter={"source_hidden": true} cellView="form"
#@title Plumbing: checks of sampling and training steps (from 01_bigram: the parts this notebook uses)
class StandIn(nn.Module):
    """A stand-in model with a known next token: fixed probs, else a function of the whole context it is fed."""

    def __init__(self, vocab_size, probs=None, block_size=None, window=False):
        super().__init__()
        self.vocab_size, self.probs, self.window, self.seen = vocab_size, probs, window, []
        self.config = type("Config", (), {"block_size": block_size})()

    def next_token(self, idx):
        """(B, T) -> (B, T): the token that must follow each position ('token + 1', or a sum over the window)."""
        return (idx.cumsum(1) + 1 if self.window else idx + 1) % self.vocab_size

    def forward(self, idx, targets=None):
        self.seen.append((idx.shape[1], self.training, torch.is_grad_enabled()))
        if self.probs is not None:  # (B, T, C) the same distribution at every position
            return self.probs.log().expand(*idx.shape, self.vocab_size).clone(), None
        return F.one_hot(self.next_token(idx), self.vocab_size).float() * 100, None  # (B, T, C) all but certain

def check_generate(generate, block_size=None, sampling=False):
    """Check generate(model, idx, max_new_tokens[, temperature, top_k]) on stand-ins with known distributions."""
    def run(model, idx, n, **kw):
        hint = ("torch.multinomial needs probabilities, F.softmax(logits[:, -1, :], dim=-1) of shape (B, C); the model gets "
                "every row of idx (a crop cuts only the time axis, dim 1), and torch.cat joins on dim=1") if "top_k" not in kw else (f"top_k = {kw['top_k']} is more than the 3 characters here: "
                "torch.topk takes at most logits.size(-1)") if kw["top_k"] > 3 else (f"the top_k = {kw['top_k']} largest "
                "logits must survive the mask (only those below the k-th largest, kept (B, 1) to compare with each row, "
                "become -inf), else every logit is -inf and the softmax gives nan")
        said = "".join(f", {k}={v}" for k, v in kw.items())
        return attempt(f"generate(model, idx of shape {tuple(idx.shape)}, {n}{said})", generate, model, idx, n, **kw, hint=hint)
    probs = torch.tensor([0.5, 0.3, 0.2])
    settings = [({}, probs)] + ([({"temperature": 0.5}, F.softmax(probs.log() / 0.5, -1)),
                                 ({"temperature": 2.0}, F.softmax(probs.log() / 2.0, -1)),
                                 ({"top_k": 1}, torch.tensor([1.0, 0.0, 0.0])),
                                 ({"top_k": 2}, torch.tensor([0.625, 0.375, 0.0])), ({"top_k": 5}, probs)] if sampling else [])
    for kwargs, expected in settings:
        torch.manual_seed(0)
        out = run(StandIn(3, probs, block_size), torch.zeros((100_000, 1), dtype=torch.long), 1, **kwargs)
        check(out.shape == (100_000, 2), f"generate(idx of shape (100000, 1), 1) gave {tuple(out.shape)}, not (100000, 2): "
              "append one token per step")
        check(not out[:, 0].any(), "generate(idx, 1) did not keep the prompt first: each new token goes after it")
        freq = torch.bincount(out[:, 1], minlength=3) / len(out)  # (3,) of the 100,000 samples
        check((freq - expected).abs().max() < 0.008, f"with {kwargs or 'the defaults'} the samples come out with "
              f"frequencies {[round(f, 3) for f in freq.tolist()]}, not {[round(e, 3) for e in expected.tolist()]}: " + (
                  "draw with torch.multinomial(F.softmax(logits[:, -1, :], dim=-1), 1): not argmax, no temperature, and "
                  "the softmax over the last dimension" if not kwargs else
                  "divide the logits by the temperature, and keep only the top_k largest before the softmax"))
    chain = StandIn(10, block_size=block_size)
    out = run(chain, torch.tensor([[3], [7]]), 5)
    check(out.shape == (2, 6), f"generate(idx of shape (2, 1), 5) gave {tuple(out.shape)}, not (2, 6): append one token per step")
    check(out[:, 0].tolist() == [3, 7], "generate changed the prompt: it must only append to idx")
    check(out.tolist() == [[3, 4, 5, 6, 7, 8], [7, 8, 9, 0, 1, 2]], "the samples do not follow the last "
          "position: sample from logits[:, -1, :], the prediction after the last token")
    modes = [(training, grad) for _, training, grad in chain.seen]
    why = ("gradients were on, so decorate it with @torch.no_grad()" if any(grad for _, grad in modes) else "it was in "
           "training mode from the first step, so call model.eval() before the loop" if modes[0][0] else "it put the model "
           "back in training mode before it had finished, so restore the mode after the loop, not inside it")
    check(not any(training or grad for training, grad in modes), f"generate ran the model in training mode or with gradients: {why}")
    check(chain.training, "generate left a model in training mode in eval mode: put it back with model.train(was_training)")
    run(chain.eval(), torch.tensor([[3]]), 2)
    check(not chain.training, "generate left a model in eval mode in training mode: restore the mode it found, "
          "was_training = model.training first, model.train(was_training) last")
    if block_size:  # past block_size, against a slow reference that feeds the last block_size tokens at every step
        window, n = StandIn(11, block_size=block_size, window=True), 3 * block_size
        reference = prompt = torch.tensor([[1, 2], [3, 4]])  # (B, T)
        out = run(window, prompt, n)
        longest = max(t for t, _, _ in window.seen)
        check(longest <= block_size, f"generate fed the model {longest} tokens, more than block_size = {block_size}: "
              "crop the context to idx[:, -block_size:]")
        check(out.shape == (2, 2 + n), f"generate(idx of shape (2, 2), {n}) with block_size = {block_size} gave "
              f"{tuple(out.shape)}, not (2, {2 + n}): return the whole sequence, and crop only what the model is fed "
              "(idx_cond), never idx itself")
        for _ in range(n):
            reference = torch.cat((reference, window.next_token(reference[:, -block_size:])[:, -1:]), dim=1)
        wrong = [s for s in range(n) if not torch.equal(out[:, 2 + s], reference[:, 2 + s])]
        check(not wrong, f"from new token {wrong[0] + 1 if wrong else 0} on, generate differs from a reference that "
              f"feeds the model the last block_size = {block_size} tokens: crop to the most recent, idx[:, -block_size:]")
    return Passed("generate: passed")
# %% [markdown]
# ## The model
#
# Notebook 03b's modules, configured by one `GPTConfig` instead of globals (a checkpoint can carry it).
# `Head.attention` returns the weights alone, for 04's maps. Each piece is checked as it is written.

# %%
@dataclass
class GPTConfig:
    """Sizes of the model; the defaults are the lecture's final configuration."""
    vocab_size: int = 65
    block_size: int = 256  # maximum context length
    n_embd: int = 384      # channels of every token vector
    n_head: int = 6        # heads per attention layer
    n_layer: int = 6       # blocks
    dropout: float = 0.2


gpt_py = dict(vocab_size=65, block_size=256, n_embd=384, n_head=6, n_layer=6, dropout=0.2)  # the lecture's values
check(asdict(GPTConfig()) == gpt_py, f"GPTConfig() is {asdict(GPTConfig())}, not gpt.py's {gpt_py}: each field needs a "
      "type and the lecture's value (n_embd: int = 384)")


# %%
class Head(nn.Module):
    """One head of causal self-attention."""

    def __init__(self, config, head_size):
        super().__init__()
        self.key = nn.Linear(config.n_embd, head_size, bias=False)
        self.query = nn.Linear(config.n_embd, head_size, bias=False)
        self.value = nn.Linear(config.n_embd, head_size, bias=False)
        self.register_buffer('tril', torch.tril(torch.ones(config.block_size, config.block_size)))
        self.dropout = nn.Dropout(config.dropout)

    def attention(self, x):
        """The attention weights (B, T, T) of this head for x (B, T, C)."""
        B, T, C = x.shape
        k = self.key(x)  # (B, T, hs)
        q = self.query(x)  # (B, T, hs)
        wei = q @ k.transpose(-2, -1) * k.shape[-1]**-0.5  # (B, T, T), scaled by head_size, not C
        wei = wei.masked_fill(self.tril[:T, :T] == 0, float('-inf'))  # (B, T, T)
        return F.softmax(wei, dim=-1)  # (B, T, T)

    def forward(self, x):
        wei = self.dropout(self.attention(x))  # (B, T, T)
        return wei @ self.value(x)  # (B, T, T) @ (B, T, hs) -> (B, T, hs)


# %% [markdown]
# **Check.** With `head_size = 8`, `n_embd = 32` and `block_size = 16` (a scale by the wrong one would show), the
# head gives `head_size` channels and equals `F.scaled_dot_product_attention(q, k, v, is_causal=True)` on its own q, k, v.

# %%
check_head(Head(GPTConfig(n_embd=32, block_size=16, dropout=0.0), head_size=8), head_size=8, block_size=16)
wei = Head(GPTConfig(n_embd=32, block_size=16, dropout=0.0), head_size=8).attention(torch.randn(2, 5, 32))  # (B, T, T)
check(torch.allclose(wei.sum(-1), torch.ones(2, 5)) and not wei.triu(1).any(), "Head.attention must return the weights "
      "after the mask and the softmax (rows summing to 1, nothing above the diagonal): notebook 04 draws them")


# %%
class MultiHeadAttention(nn.Module):
    """Several heads of self-attention in parallel, concatenated and projected."""

    def __init__(self, config):
        super().__init__()
        head_size = config.n_embd // config.n_head
        self.heads = nn.ModuleList([Head(config, head_size) for _ in range(config.n_head)])
        self.proj = nn.Linear(head_size * config.n_head, config.n_embd)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        out = torch.cat([h(x) for h in self.heads], dim=-1)  # (B, T, C)
        return self.dropout(self.proj(out))  # (B, T, C)


# %% [markdown]
# **Check.** Each head against PyTorch's attention of its own q, k, v (heads fused in one `Linear` too), `proj`
# last, and dropout where the lecture puts it: on the attention weights, and on `proj`'s output (probed at 0.5).

# %%
check_multihead(MultiHeadAttention(GPTConfig(n_embd=32, n_head=4, block_size=8, dropout=0.0)), n_embd=32, n_head=4)


# %%
class FeedForward(nn.Module):
    """A per-token MLP: linear, ReLU, linear (4x wider inside)."""

    def __init__(self, config):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(config.n_embd, 4 * config.n_embd),  # (B, T, 4C)
            nn.ReLU(),
            nn.Linear(4 * config.n_embd, config.n_embd),  # (B, T, C)
            nn.Dropout(config.dropout),
        )

    def forward(self, x):
        return self.net(x)  # (B, T, C)


# %% [markdown]
# **Check.** Shape kept, each position on its own, not linear, and its dropout last (probed at 0.5).

# %%
check_feedforward(FeedForward(GPTConfig(n_embd=32, dropout=0.0)), n_embd=32)


# %%
class Block(nn.Module):
    """Transformer block: communication (attention) followed by computation, each pre-normed."""

    def __init__(self, config):
        super().__init__()
        self.sa = MultiHeadAttention(config)
        self.ffwd = FeedForward(config)
        self.ln1 = nn.LayerNorm(config.n_embd)
        self.ln2 = nn.LayerNorm(config.n_embd)

    def forward(self, x):
        x = x + self.sa(self.ln1(x))  # (B, T, C)
        x = x + self.ffwd(self.ln2(x))  # (B, T, C)
        return x


# %% [markdown]
# **Check.** A block is its input plus two corrections: with both output projections set to zero it returns its
# input, and zeroing either alone leaves the other's correction on its own path. Post-norm, a parallel block or the
# feed-forward first pass too (a reordering studied by [Press et al. 2020](https://arxiv.org/abs/1911.03864)).

# %%
check_block(Block(GPTConfig(n_embd=32, n_head=4, block_size=8, dropout=0.0)), n_head=4)


# %% [markdown]
# The language model around the blocks. Weights start as normal(0, 0.02) with zero biases, the initialisation the
# lecture's repository added after the video; gpt.py's method `self._init_weights` is a function here, with a cell
# and a check of its own, and `self.apply(_init_weights)` calls it on every module. `generate` (below) crops the
# context to `block_size`, divides the logits by a `temperature`, and can keep only the `top_k` likeliest characters.

# %%
def _init_weights(module):
    """normal(0, 0.02) weights for every Linear and Embedding, zero biases: gpt.py's initialisation."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        torch.nn.init.zeros_(module.bias)


check_init(_init_weights)

# %%
class GPTLanguageModel(nn.Module):
    """A decoder-only Transformer over characters."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.token_embedding_table = nn.Embedding(config.vocab_size, config.n_embd)
        self.position_embedding_table = nn.Embedding(config.block_size, config.n_embd)
        self.blocks = nn.Sequential(*[Block(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd)  # final layer norm
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size)
        self.apply(_init_weights)

    def embed(self, idx):
        """Token plus position embeddings (B, T, C) of idx (B, T)."""
        pos = torch.arange(idx.shape[1], device=idx.device)  # (T,)
        return self.token_embedding_table(idx) + self.position_embedding_table(pos)  # (B, T, C)

    def forward(self, idx, targets=None):
        x = self.blocks(self.embed(idx))  # (B, T, C)
        logits = self.lm_head(self.ln_f(x))  # (B, T, vocab_size)
        loss = None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return logits, loss


# %% [markdown]
# **Check.** The whole model on random input of several lengths: the loss is the cross-entropy of its logits;
# later characters leave earlier predictions unchanged (causal); the same character at two positions predicts
# differently (positions matter); changing the first character changes what comes after (communication).

# %%
toy = GPTConfig(vocab_size=65, block_size=8, n_embd=32, n_head=4, n_layer=2, dropout=0.0)
torch.manual_seed(1337)
check_model(attempt("GPTLanguageModel(toy)", GPTLanguageModel, toy, hint="build every layer from config in __init__, "
                    "then self.apply(_init_weights): a function of this notebook, not a method as in gpt.py"))
check_model(GPTLanguageModel(replace(toy, dropout=0.2)))  # with dropout on: each one follows the model's mode


# %% [markdown]
# **Check.** `lm_head` reads the stream through `ln_f`, so scaling what the blocks return leaves the logits as they were.

# %%
def check_final_norm(model):
    """Scaling the output of model.blocks must not change the logits (ln_f normalises it away)."""
    torch.manual_seed(0)
    idx = torch.randint(0, model.config.vocab_size, (2, model.config.block_size))  # (B, T)
    scaled, fed = [], []  # fed: what lm_head is given in each run
    for scale in (100.0, 200.0):  # large enough that LayerNorm's eps does not matter
        hook = model.blocks.register_forward_hook(lambda module, inputs, out: out * scale)
        given = model.lm_head.register_forward_pre_hook(lambda module, args: fed.append(args[0]))
        try: scaled.append(run_eval(model, idx)[0])
        finally: _ = hook.remove(), given.remove()
    check(torch.allclose(*fed, atol=1e-4) or not torch.allclose(*scaled, atol=1e-4), "lm_head is given the blocks' "
          "output as it is, scaled with it: the final LayerNorm belongs between the blocks and lm_head, not after lm_head")
    check(torch.allclose(*scaled, atol=1e-4), "the logits change when the blocks' output is scaled, so lm_head "
          "does not read it through the final LayerNorm: logits = self.lm_head(self.ln_f(x))")
    return Passed("final LayerNorm: passed (the logits do not depend on the scale of the residual stream)")


torch.manual_seed(1337)
check_final_norm(GPTLanguageModel(toy))


# %% [markdown]
# **Check.** Every parameter gets a gradient: a layer built in `__init__` but not used in `forward` gets none, never learning.

# %%
def check_every_parameter_learns(model):
    """The loss of a random batch must send a gradient to every parameter of model."""
    torch.manual_seed(0)
    V, T, named = model.config.vocab_size, model.config.block_size, list(model.named_parameters())
    loss = attempt("the model with targets", model, torch.randint(0, V, (2, T)), torch.randint(0, V, (2, T)))[1]
    grads = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)
    unused = [k.rsplit(".", 1)[0] for (k, _), g in zip(named, grads) if g is None]
    check(not unused, f"{unused[0] if unused else ''} gets no gradient from the loss, so it is built but never used in "
          "forward: apply each layer where it belongs (return self.proj(out), self.ffwd(...), self.ln_f(x))")
    return Passed(f"every parameter learns: passed ({len(named)} tensors get a gradient)")


torch.manual_seed(1337)
check_every_parameter_learns(GPTLanguageModel(toy))


# %% [markdown]
# **Check.** The model as built: `_init_weights` on every module, every dropout at `config.dropout`, and a loss
# within 0.1 of `ln(vocab_size)` (a uniform guess). The video used PyTorch's own initialisation; the same toy model with its
# weights re-drawn by PyTorch's defaults (`reset_parameters`) starts further from it:

# %%
def initial_loss(model):
    """The loss of model on a fixed random batch of its vocabulary and context."""
    torch.manual_seed(0)
    V, T = model.config.vocab_size, model.config.block_size
    return model(torch.randint(0, V, (4, T)), torch.randint(0, V, (4, T)))[1].item()


# %%
def check_initial_loss(model):
    """An untrained model as configured: weights normal(0, 0.02), dropout at config.dropout, loss near ln(vocab_size)."""
    loss, V, c = initial_loss(model), model.config.vocab_size, model.config
    off = [f"{n} ({m.weight.std():.3f})" for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Embedding)) and abs(m.weight.std() - 0.02) > 0.004]
    check(not off, f"the weights of {', '.join(off[:3])}{' …' * (len(off) > 3)} do not have std 0.02, gpt.py's for every weight: "
          "self.apply(_init_weights) must reach every module, so it comes after every layer is built")
    rates = sorted({m.p for m in model.modules() if isinstance(m, nn.Dropout)})
    check(set(rates) <= {c.dropout}, f"the Dropout layers have rates {rates}, though config.dropout = {c.dropout}: "
          "every nn.Dropout takes its rate from the configuration")
    check(abs(loss - math.log(V)) < 0.1, f"the loss at initialisation is {loss:.2f}, not about ln {V} = "
          f"{math.log(V):.2f}: the model starts confidently wrong (check _init_weights: normal with std 0.02)")
    return Passed(f"initial loss: passed ({loss:.4f}, within 0.1 of ln {V} = {math.log(V):.4f})")


torch.manual_seed(1337)
check_initial_loss(GPTLanguageModel(toy))

# %%
distance = {"normal(0, 0.02)": [], "PyTorch's defaults": []}  # |initial loss - ln 65| for seeds 0 to 4
for seed in range(5):
    for name, distances in distance.items():
        torch.manual_seed(seed)
        model = GPTLanguageModel(toy)
        _ = [m.reset_parameters() for m in model.modules()  # PyTorch's defaults, as in the video
             if name == "PyTorch's defaults" and isinstance(m, (nn.Linear, nn.Embedding))]
        distances.append(abs(initial_loss(model) - math.log(65)))
ours, theirs = (sum(d) / len(d) for d in distance.values())
print(f"initial loss, mean distance from ln 65 = {math.log(65):.4f} over 5 seeds: normal(0, 0.02) {ours:.4f}, "
      f"PyTorch's defaults {theirs:.4f}")
check(theirs > 3 * ours, "PyTorch's defaults should start much further from ln(vocab_size) than normal(0, 0.02): check _init_weights")


# %% [markdown]
# **Check.** The lecture's configuration has 10,788,929 parameters; we build it on the CPU just to
# count them, piece by piece against what each piece must hold. A head of the wrong width, one head
# object used `n_head` times, or a missing layer changes a count.

# %% jupyter={"source_hidden": true} cellView="form"
#@title Plumbing: the parameter count, piece by piece
def check_parameter_count(model):
    """Each piece of the model must hold the weights its shapes imply (the lecture's layers; any bias may be left out,
    key, query and value may have one as in GPT-2, lm_head may be tied), and n_layer blocks, each with ln1 and ln2."""
    c, C, V = model.config, model.config.n_embd, model.config.vocab_size
    count = lambda m, dim: sum(p.numel() for p in m.parameters() if (p.dim() > 1) == (dim > 1))
    expected = {"token_embedding_table": (V * C, 0), "position_embedding_table": (c.block_size * C, 0),
                "blocks[0].sa": (4 * C * C, 4 * C), "blocks[0].ffwd": (8 * C * C, 5 * C), "blocks[0].ln1": (0, 2 * C),
                "ln_f": (0, 2 * C), "lm_head": (C * V, V)}  # (weights in matrices, at most this many in vectors)
    for name, (matrices, vectors) in expected.items():
        piece = eval(f"model.{name}", {"model": model})
        got, extra = count(piece, 2), count(piece, 1) - vectors
        heads = list(getattr(piece, "heads", []))
        check(got == matrices, f"{name} has {got:,} weights in its matrices, {abs(got - matrices):,} "
              f"{'fewer' if got < matrices else 'more'} than the {matrices:,} its layers' shapes imply (n_embd = {C}, n_head "
              f"= {c.n_head}): " + ("one Head object repeated, not a new Head per head" if len({*map(id, heads)}) <
                                   len(heads) else f"print(model.{name}) and compare each layer's shape with the lecture's"))
        check(extra <= 0, f"{name} has {extra:,} more numbers in vectors (biases, LayerNorm gains) than its layers can "
              f"hold ({vectors:,}): print(model.{name}) and look for a layer too many")
    norms = sum("Norm" in type(m).__name__ for m in model.modules())  # distinct modules: a shared ln counts once
    total = count(model, 2) == (V + c.block_size + V * (model.lm_head.weight is not model.token_embedding_table.weight)
                                ) * C + c.n_layer * 12 * C * C
    check(total and norms == 2 * c.n_layer + 1, f"the model has {count(model, 2):,} weights in matrices and {norms} "
          f"LayerNorms; a block or a layer is missing or extra (there must be n_layer = {c.n_layer} blocks, each with ln1 "
          "and ln2, and ln_f)")
    return Passed(f"parameters: passed ({sum(p.numel() for p in model.parameters()):,})")


# %%
torch.manual_seed(1337)
lecture = GPTLanguageModel(GPTConfig())
n_params = sum(p.numel() for p in lecture.parameters())
print(f"lecture config: {asdict(GPTConfig())}\n{n_params:,} parameters ({n_params / 1e6:.2f} M)")
check_parameter_count(lecture)

# %%
@torch.no_grad()
def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None):
    """Append max_new_tokens sampled tokens to idx (B, T), in eval mode, cropping to block_size."""
    was_training = self.training
    self.eval()
    for _ in range(max_new_tokens):
        idx_cond = idx[:, -self.config.block_size:]  # (B, T) with T <= block_size
        logits, _ = self(idx_cond)  # (B, T, vocab_size)
        logits = logits[:, -1, :] / temperature  # (B, vocab_size)
        if top_k is not None:
            kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, [-1]]  # (B, 1)
            logits = logits.masked_fill(logits < kth, float('-inf'))  # (B, vocab_size)
        idx_next = torch.multinomial(F.softmax(logits, dim=-1), num_samples=1)  # (B, 1)
        idx = torch.cat((idx, idx_next), dim=1)  # (B, T+1)
    self.train(was_training)
    return idx


GPTLanguageModel.generate = generate

# %% [markdown]
# **Check.** `generate` on stand-ins with known next characters: a chain `3 → 4 → 5 …` fed past `block_size`
# (against a slow reference), and probabilities 0.5 / 0.3 / 0.2 whose sample frequencies must match, also at
# temperatures 0.5 and 2 and with `top_k` of 1, 2 and 5 (more than the 3 characters: all kept).

# %%
check_generate(generate, block_size=8, sampling=True)

# %% [markdown]
# ## Summary
#
# - The complete GPT in `gpt.py`'s order, configured by one `GPTConfig`: embeddings, `n_layer` pre-norm blocks
#   (multi-head attention, feed-forward, residual connections), `ln_f`, `lm_head`; 10,788,929 parameters.
# - Weights start as normal(0, 0.02) with zero biases, so the loss starts near `ln(vocab_size)`, closer than with
#   PyTorch's defaults (the video's). `generate` crops to `block_size`, samples in `eval()` mode without gradients.
# - Each piece checked as it is written, then the whole model: causality, positions, the final LayerNorm, every
#   parameter learning, the initialisation, the parameter count piece by piece, `generate` with `temperature`, `top_k`.
# - Next: notebook 04 trains this model on tiny Shakespeare, samples from it and draws where it looks.
#
# ## Exercises
#
# 1. Count the parameters of another configuration, say `GPTConfig(n_layer=12, n_head=12, n_embd=768,
#    block_size=1024)` (GPT-2 small's shape over 65 characters), first by hand from the shapes in
#    `check_parameter_count`, then with the model. Which piece grows fastest with `n_embd`?
# 2. `StandIn(5, probs=torch.tensor([0.4, 0.3, 0.15, 0.1, 0.05]), block_size=8)` (folded above) always predicts
#    those probabilities. Draw 2000 characters with `generate(stand_in, idx, 2000, temperature)` at temperatures
#    0.5, 1 and 2 and compare their frequencies with `softmax(log(probs) / temperature)`. What does `top_k=2` do?
# 3. Tie `lm_head.weight` to `token_embedding_table.weight` (GPT-2 does): how many parameters does the
#    lecture's configuration lose, and do all the checks above still pass?
