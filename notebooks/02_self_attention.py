# %% [markdown]
# # 02 · The mathematical trick: four ways to average the past, ending in self-attention
#
# In the bigram model of notebook 01 the tokens never look at each other. The simplest way for the
# token at position `t` to learn about its past is to average the tokens at positions `0..t`. This
# notebook computes that average four ways, each one a step closer to self-attention, and checks
# that they agree. By the end, attention is a weighted average whose weights come from the data.
# It follows **0:42:13 to 1:19:11 of the video**, and 1:42:39 to 1:46:22 for cross-attention at its end.
#
# Everything here is a small toy tensor on the CPU, so every printed number is the same on every
# machine, and the tests' quick *smoke mode* (`COURSE_SMOKE=1`, fewer training steps elsewhere)
# changes nothing here. As a script: `python notebooks/02_self_attention.py`.

# %%
import os, pathlib, platform, sys, tempfile
import torch
import torch.nn as nn
from torch.nn import functional as F
import matplotlib
if "ipykernel" not in sys.modules:
    matplotlib.use("Agg")  # as a script, figures are saved as PNG files instead of opening windows
import matplotlib.pyplot as plt

SMOKE = os.environ.get("COURSE_SMOKE") == "1"  # nothing here is trained, so smoke mode changes nothing
IN_NOTEBOOK = "ipykernel" in sys.modules        # False when run as a script
RUN_NAME = "02_self_attention"                  # as a script, figures go to runs/02_self_attention/

# %% [markdown]
# The next two cells are plumbing every notebook carries so that it stands alone (folders, figures,
# and the check that compares your attention with PyTorch's); they are folded in Jupyter and Colab.

# %% jupyter={"source_hidden": true} cellView="form"
#@title Plumbing: folders, figures and checks (the same in every notebook)
def course_root():
    """The course checkout (holding notebooks/ and datasets/), else the working folder (a notebook on its own)."""
    here = pathlib.Path.cwd()
    script = globals().get("__file__")
    for folder in ([pathlib.Path(script).resolve().parent.parent] if script else []) + [here, here.parent]:
        if (folder / "notebooks").is_dir() and (folder / "datasets").is_dir():
            return pathlib.Path(os.path.relpath(folder)) if folder in (here, here.parent) else folder
    return pathlib.Path(".")

SCRATCH = []  # smoke mode: one temporary folder, removed when the process ends

def runs_folder():
    """Where this notebook saves what it makes: runs/RUN_NAME of the checkout; a temporary folder in smoke mode."""
    if SMOKE:
        if not SCRATCH:
            SCRATCH.append(tempfile.TemporaryDirectory(prefix=RUN_NAME + "-"))
        return pathlib.Path(SCRATCH[0].name)
    return course_root() / "runs" / RUN_NAME

def show(fig, name, folder=None):
    """Show fig in a notebook; as a script, save it as NAME.png (in runs_folder()) and say where."""
    if IN_NOTEBOOK:
        plt.show()
        return
    folder = pathlib.Path(folder or runs_folder())
    folder.mkdir(parents=True, exist_ok=True)
    fig.savefig(folder / f"{name}.png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    print(f"figure saved: {folder / f'{name}.png'}")

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


# %% tags=["nbval-ignore-output"]
print(f"torch {torch.__version__} on {platform.machine()}, every tensor on the CPU, smoke mode: {SMOKE}")

# %% [markdown]
# ## The toy
#
# A batch of `B = 4` sequences, each `T = 8` tokens long, each token a vector of `C = 2` channels.
# The goal: `x[b, t]` should become the mean of `x[b, :t+1]`, everything up to and including itself,
# and nothing from the future, because the future is what a language model has to predict.

# %%
torch.manual_seed(1337)
B, T, C = 4, 8, 2  # batch, time, channels
x = torch.randn(B, T, C)
print(x.shape)


# %% [markdown]
# Each version below is checked by `check_running_mean` (folded): on random inputs of three shapes it
# must give, at every position, the mean of that position and all before it.

# %% jupyter={"source_hidden": true} cellView="form"
#@title The check of versions 1 to 3 (unfold it once you have tried)
def check_running_mean(version):
    """version(x) for x of shape (B, T, C) must give, at every (b, t), the mean of x[b, :t+1]."""
    name, g = version.__name__, torch.Generator().manual_seed(0)
    for B, T, C in ((4, 8, 2), (2, 5, 3), (1, 1, 4)):
        x = torch.randn(B, T, C, generator=g)  # (B, T, C)
        out = attempt(f"{name}(x of shape {(B, T, C)})", version, x, hint="the weights are (T, T) and x is (B, T, C): "
                      "wei @ x, in that order, gives (B, T, C)")
        check(out.shape == x.shape, f"{name}(x of shape {(B, T, C)}) gave {tuple(out.shape)}: the running mean keeps (B, T, C)")
        counts = torch.arange(1, T + 1).view(T, 1)  # (T, 1) how many positions each mean covers
        past = (x.cumsum(1) - x) / (counts - 1).clamp(min=1)  # (B, T, C) the mean of x[b, :t], without itself
        check(T == 1 or not torch.allclose(out[:, 1:], past[:, 1:], atol=1e-5), f"{name} averages the positions "
              "before t and leaves out t itself: the mean of x[b, :t+1] includes the current token")
        changed = x.clone()
        changed[:, 1:] += 1
        check(torch.allclose(version(changed)[:, 0], out[:, 0], atol=1e-5), f"{name} lets position 0 see later "
              "positions: keep only the lower triangle, torch.tril, so that the future gets weight 0")
        check(torch.allclose(version(torch.ones(B, T, C)), torch.ones(B, T, C), atol=1e-5), f"{name} turns an x of all "
              "ones into something else, so its weights in a row do not sum to 1: normalise each row, over dim 1 "
              "of the (T, T) weights (keepdim=True), or a softmax over dim=-1")
        check(torch.allclose(out, x.cumsum(1) / counts, atol=1e-5), f"{name} is not the running mean of x[b, :t+1] "
              f"(on x of shape {(B, T, C)}): compare it line by line with the version above")
    return Passed(f"{name}: passed (the mean of x[b, :t+1] at every position)")


# %% [markdown]
# ## Version 1: two for-loops [▶ 0:42:13](https://www.youtube.com/watch?v=kCc8FmEb1nY&t=2533s)
#
# The obvious way ("bag of words", hence `xbow`): for every batch element and every time step, take
# the mean over the past. It is correct, and slow: Python touches every `(b, t)` pair.

# %%
def xbow_loop(x):
    """Version 1: x[b, t] becomes the mean of x[b, :t+1], with two for-loops."""
    B, T, C = x.shape
    xbow = torch.zeros((B, T, C))
    for b in range(B):
        for t in range(T):
            xprev = x[b, :t + 1]  # (t+1, C)
            xbow[b, t] = torch.mean(xprev, 0)  # (C,)
    return xbow


check_running_mean(xbow_loop)
xbow = xbow_loop(x)
print(x[0])
print(xbow[0])

# %% [markdown]
# The first row of `xbow[0]` equals the first row of `x[0]` (the mean of one thing), the second
# row is the mean of the first two rows, and so on.
#
# ## The trick: a matrix multiplication [▶ 0:47:11](https://www.youtube.com/watch?v=kCc8FmEb1nY&t=2831s)
#
# A matrix multiplication `a @ b` computes, for every row of `a`, a weighted sum of the rows of
# `b`. With `a` all ones, every row of the result is the plain sum of `b`'s rows:

# %%
torch.manual_seed(42)
a = torch.ones(3, 3)
b = torch.randint(0, 10, (3, 2)).float()
c = a @ b
print('a=', a, '--', 'b=', b, '--', 'c=', c, sep='\n')

# %% [markdown]
# Keep only the lower triangle of `a` (`torch.tril`) and row `t` of the result sums only the rows
# `0..t` of `b`: a running sum, the past and never the future.

# %%
a = torch.tril(torch.ones(3, 3))
c = a @ b
print('a=', a, '--', 'b=', b, '--', 'c=', c, sep='\n')

# %% [markdown]
# Divide each row of `a` by its sum and the running sum becomes a running mean:

# %%
a = torch.tril(torch.ones(3, 3))
a = a / torch.sum(a, 1, keepdim=True)
c = a @ b
print('a=', a, '--', 'b=', b, '--', 'c=', c, sep='\n')


# %% [markdown]
# ## Version 2: the running mean as one matrix multiplication [▶ 0:51:54](https://www.youtube.com/watch?v=kCc8FmEb1nY&t=3114s)
#
# That is version 1 in one line. The weights `wei` are `(T, T)` and `x` is `(B, T, C)`: PyTorch
# broadcasts the matrix multiplication over the batch, treating `wei` as `(1, T, T)` and repeating it
# for each of the `B` sequences, so `(T, T) @ (B, T, C) → (B, T, C)`.

# %%
def xbow_matmul(x):
    """Version 2: the running mean as one matrix multiplication with a normalised lower triangle."""
    B, T, C = x.shape
    wei = torch.tril(torch.ones(T, T))  # (T, T)
    wei = wei / wei.sum(1, keepdim=True)  # (T, T) each row sums to 1
    return wei @ x  # (T, T) @ (B, T, C) -> (B, T, C)


check_running_mean(xbow_matmul)
xbow2 = xbow_matmul(x)
print("allclose with the defaults:", torch.allclose(xbow, xbow2))

# %% [markdown]
# The lecture's `torch.allclose(xbow, xbow2)` printed `True`; here it prints `False`. The two
# versions add the same numbers in a different order, so in float32 they differ by a few times
# 1e-8. `allclose(a, b)` accepts a difference up to `atol + rtol·|b|`, with `atol = 1e-8` and
# `rtol = 1e-5`: generous for large entries, but for an entry close to zero the allowance is only
# about `atol`. The cell below finds the entry that fails:

# %%
allowed = 1e-8 + 1e-5 * xbow2.abs()  # allclose's tolerance, entry by entry
worst = ((xbow - xbow2).abs() - allowed).argmax()  # the entry that exceeds it most
b_, t_, c_ = torch.unravel_index(worst, xbow2.shape)
print(f"entry {tuple(int(i) for i in (b_, t_, c_))}: value {xbow2[b_, t_, c_]:.5f}, "
      f"difference {(xbow - xbow2).abs()[b_, t_, c_]:.1e}, allowed {allowed[b_, t_, c_]:.1e}")
print("allclose with atol=1e-6:", torch.allclose(xbow, xbow2, atol=1e-6))
assert torch.allclose(xbow, xbow2, atol=1e-6)

# %% [markdown]
# So we compare with `atol=1e-6` throughout: far below anything that matters, far above float32's
# rounding. The lecture's `True` was luck of the rounding on its machine.
#
# ## Version 3: softmax over a mask [▶ 0:54:42](https://www.youtube.com/watch?v=kCc8FmEb1nY&t=3282s)
#
# The same weights again, written the way attention writes them. Start from *affinities* of zero
# between every pair of positions, set the ones to the future to −∞ (`masked_fill`), and take a
# softmax along each row: `exp(−∞) = 0`, and the remaining equal entries share the row evenly.
#
# Why bother? Because the zeros need not stay zeros. If the affinities are computed from the data,
# each token can decide how much it cares about each token in its past, while the mask guarantees
# that tokens from the future cannot communicate with the present. (The video says "past" at this
# point; its own list of corrections fixes it to "future",
# [▶ 0:57:00](https://www.youtube.com/watch?v=kCc8FmEb1nY&t=3420s).)

# %%
def xbow_softmax(x):
    """Version 3: the running mean as a softmax over masked, all-zero affinities."""
    B, T, C = x.shape
    tril = torch.tril(torch.ones(T, T))  # (T, T)
    wei = torch.zeros((T, T))  # (T, T) affinities: equal for now
    wei = wei.masked_fill(tril == 0, float('-inf'))  # (T, T) no looking ahead
    wei = F.softmax(wei, dim=-1)  # (T, T) each row sums to 1
    return wei @ x  # (B, T, C)


check_running_mean(xbow_softmax)
xbow3 = xbow_softmax(x)
print(torch.allclose(xbow, xbow3, atol=1e-6), torch.allclose(xbow2, xbow3, atol=1e-6))
assert torch.allclose(xbow, xbow3, atol=1e-6) and torch.allclose(xbow2, xbow3, atol=1e-6)

# %% [markdown]
# ## Version 4: self-attention [▶ 1:02:00](https://www.youtube.com/watch?v=kCc8FmEb1nY&t=3720s)
#
# Now the affinities come from the data. Every token emits two vectors: a **query** ("what am I
# looking for?") and a **key** ("what do I contain?"). The affinity of token `t` for token `s` is the
# dot product of `t`'s query with `s`'s key. What a token hands over, when attended to, is a third
# vector, its **value**. Each is a linear map of the token, learned during training. The mask and the
# softmax are version 3's. We use a bigger toy, `C = 32` channels and a head of size 16.
#
# The lecture first writes it without any scaling of the dot products; `scaled=False` reproduces
# that. The course scales them by `head_size**-0.5` (the section on scaling below says why).

# %%
def self_attention(x, key, query, value, causal=True, scaled=True):
    """Version 4: one head of self-attention; returns out (B, T, head_size) and its weights (B, T, T)."""
    B, T, C = x.shape
    k = key(x)  # (B, T, head_size)
    q = query(x)  # (B, T, head_size)
    wei = q @ k.transpose(-2, -1)  # (B, T, hs) @ (B, hs, T) -> (B, T, T)
    if scaled:
        wei = wei * k.shape[-1]**-0.5  # (B, T, T)
    if causal:
        tril = torch.tril(torch.ones(T, T))  # (T, T)
        wei = wei.masked_fill(tril == 0, float('-inf'))  # (B, T, T)
    wei = F.softmax(wei, dim=-1)  # (B, T, T)
    v = value(x)  # (B, T, head_size)
    out = wei @ v  # (B, T, T) @ (B, T, hs) -> (B, T, hs)
    return out, wei


# %% [markdown]
# First the video's numbers: with the lecture's seed and without scaling, the second token of the
# first sequence puts 0.1574 of its attention on the first token and 0.8426 on itself.

# %%
torch.manual_seed(1337)
B, T, C = 4, 8, 32  # batch, time, channels
x = torch.randn(B, T, C)
head_size = 16
key = nn.Linear(C, head_size, bias=False)
query = nn.Linear(C, head_size, bias=False)
value = nn.Linear(C, head_size, bias=False)
torch.set_printoptions(precision=4, sci_mode=False)
with torch.no_grad():
    _, wei_unscaled = self_attention(x, key, query, value, scaled=False)
    out, wei = self_attention(x, key, query, value)
print("unscaled, as in the video:", wei_unscaled[0, 1, :2])
print("scaled by head_size**-0.5:", wei[0, 1, :2])
assert torch.allclose(wei_unscaled[0, 1, :2], torch.tensor([0.1574, 0.8426]), atol=1e-4)
assert out.shape == (B, T, head_size)

# %% [markdown]
# **Check.** A learner's head can go wrong in many small ways. `check_self_attention` builds a head
# of size 8 (not 32, so that scaling by `C` would show) and compares yours with PyTorch's own
# `F.scaled_dot_product_attention(q, k, v, is_causal=True)` on the same queries, keys and values,
# for random inputs of three lengths (5, 8 and 1 tokens), and checks that the weights it returns are
# the ones it applied. If they differ, it names the likely mistake (a mask missing, shifted or filled
# with 0, a wrong scale, the softmax over the wrong axis, keys used as values...) or says it cannot.

# %%
def check_self_attention(self_attention):
    """Check self_attention(x, key, query, value) -> (out, wei) against PyTorch's attention, at three lengths."""
    torch.manual_seed(0)
    C, hs = 32, 8
    key, query, value = (nn.Linear(C, hs, bias=False) for _ in range(3))
    for B, T in ((2, 5), (2, 8), (1, 1)):
        x = torch.randn(B, T, C)  # (B, T, C)
        with torch.no_grad():
            out, wei = attempt(f"self_attention(x of shape {(B, T, C)}, ...)", self_attention, x, key, query, value,
                               hint="the scores are q @ k.transpose(-2, -1), (B, T, hs) @ (B, hs, T) -> (B, T, T), "
                                    "and the mask is (T, T) with T = x.shape[1]")
            q, k, v = query(x), key(x), value(x)  # (B, T, hs) each
        mistake = attention_diagnosis(out, q, k, v, C)
        check(mistake is None, f"self_attention is not causal self-attention (x of shape {(B, T, C)}): {mistake}")
        check(wei.shape == (B, T, T) and torch.allclose(wei @ v, out, atol=1e-5), f"the weights it returns "
              f"(shape {tuple(wei.shape)}) are not the {(B, T, T)} weights it applied: return wei after the softmax")
    return Passed("self_attention: passed (equals F.scaled_dot_product_attention)")


check_self_attention(self_attention)

# %% [markdown]
# The weights of the first sequence are no longer uniform: each row is a different distribution over
# the past. Still, every row sums to 1 and everything above the diagonal (the future) is exactly 0.

# %%
print(wei[0])
assert torch.allclose(wei.sum(-1), torch.ones(B, T))  # each row is a distribution
assert torch.all(wei.triu(diagonal=1) == 0)  # nothing from the future
assert not torch.allclose(wei[0], torch.tril(torch.ones(T, T)) / torch.arange(1, T + 1)[:, None])


# %% [markdown]
# ## The four weight matrices, side by side
#
# Versions 1 to 3 are linear maps of `x` with no parameters, so their weights can be read off by
# feeding them the identity matrix: row `t` of the result is exactly the weight row `t` puts on each
# position. The three pictures are the same lower triangle of 1, 1/2, 1/3, …; the fourth is the
# head's, and depends on the data.

# %%
def weights_of(average, T):
    """The (T, T) weights of a parameter-free averaging function, read off from the identity."""
    return average(torch.eye(T)[None])[0]  # (1, T, T) -> (T, T)


weights = {f'version {i}': weights_of(f, T) for i, f in enumerate([xbow_loop, xbow_matmul, xbow_softmax], 1)}
weights['version 4: self-attention'] = wei[0]
assert torch.allclose(weights['version 1'], weights['version 2'], atol=1e-6)
assert torch.allclose(weights['version 1'], weights['version 3'], atol=1e-6)
assert torch.allclose(weights['version 1'], torch.tril(torch.ones(T, T)) / torch.arange(1, T + 1)[:, None])

# %%
fig, axes = plt.subplots(1, 4, figsize=(13, 3.4), constrained_layout=True)
for ax, (title, w) in zip(axes, weights.items()):
    image = ax.imshow(w, cmap='viridis', vmin=0, vmax=1)
    _ = ax.set(title=title, xlabel='key position (attended to)', ylabel='query position')
_ = fig.colorbar(image, ax=axes, shrink=0.8, label='weight')
show(fig, 'four_versions')

# %% [markdown]
# ## Notes on attention
#
# **Attention is communication** ([▶ 1:11:38](https://www.youtube.com/watch?v=kCc8FmEb1nY&t=4298s)).
# Picture the tokens as nodes of a directed graph: each node aggregates a weighted sum of the values
# of the nodes that point to it. In a causal language model, token `t` is pointed to by itself and
# every token before it. Attention works on any such graph.
#
# **It has no notion of space** ([▶ 1:12:46](https://www.youtube.com/watch?v=kCc8FmEb1nY&t=4366s)).
# Attention acts on a *set* of vectors: nothing in it knows where a token stands. (That is why the
# model of notebook 03 adds to every token a learned vector for its position, a *position
# embedding*.) Without the mask, shuffling the tokens just shuffles the outputs; with it, the last
# token sees its past as an unordered bag: shuffling the tokens before it leaves its output unchanged.

# %%
torch.manual_seed(0)
perm = torch.randperm(T)
with torch.no_grad():
    unmasked_out, _ = self_attention(x, key, query, value, causal=False)
    shuffled_out, _ = self_attention(x[:, perm], key, query, value, causal=False)
    print(torch.allclose(shuffled_out, unmasked_out[:, perm], atol=1e-6))  # shuffled in, shuffled out
    past = torch.cat([torch.randperm(T - 1), torch.tensor([T - 1])])  # shuffle all but the last
    last, _ = self_attention(x[:, past], key, query, value)
    print(torch.allclose(last[:, -1], out[:, -1], atol=1e-6))  # the last token cannot tell
assert torch.allclose(shuffled_out, unmasked_out[:, perm], atol=1e-6)
assert torch.allclose(last[:, -1], out[:, -1], atol=1e-6)

# %% [markdown]
# **Batch elements never talk** ([▶ 1:13:40](https://www.youtube.com/watch?v=kCc8FmEb1nY&t=4420s)).
# Every matrix multiplication above is batched: sequence `b` only ever meets itself. Replacing the
# second sequence of the batch leaves the first one's output unchanged.

# %%
x_other = x.clone()
x_other[1] = torch.randn(T, C)
with torch.no_grad():
    out_other, _ = self_attention(x_other, key, query, value)
print(torch.equal(out_other[0], out[0]), torch.equal(out_other[1], out[1]))
assert torch.equal(out_other[0], out[0]) and not torch.equal(out_other[1], out[1])

# %% [markdown]
# **Decoder or encoder** ([▶ 1:14:14](https://www.youtube.com/watch?v=kCc8FmEb1nY&t=4454s)). The
# mask makes this a *decoder* block: the future cannot leak into the past, which is what a model that
# generates text needs. An *encoder* block (sentiment analysis, say) deletes the single `masked_fill`
# line and lets every token see every other. Change the last three tokens, and with the mask the
# first five outputs stay put; without it they all move.

# %%
x_future = x.clone()
x_future[:, 5:] = torch.randn(B, T - 5, C)
with torch.no_grad():
    decoder, _ = self_attention(x_future, key, query, value, causal=True)
    encoder, _ = self_attention(x_future, key, query, value, causal=False)
print('decoder, past unchanged:', torch.allclose(decoder[:, :5], out[:, :5]))
print('encoder, past unchanged:', torch.allclose(encoder[:, :5], unmasked_out[:, :5]))
assert torch.allclose(decoder[:, :5], out[:, :5])
assert not torch.allclose(encoder[:, :5], unmasked_out[:, :5])

# %% [markdown]
# **Self- or cross-attention** ([▶ 1:15:39](https://www.youtube.com/watch?v=kCc8FmEb1nY&t=4539s)).
# Here keys, queries and values all come from the same `x`: that is *self*-attention. In *cross*-
# attention the queries come from `x` while the keys and values come from another source, for
# example the encoder's output in a translation model. A GPT is a decoder only, so it uses
# self-attention throughout (a cross-attention head is built and checked at the end of this notebook).

# %% [markdown]
# ## Why scale by √head_size [▶ 1:16:56](https://www.youtube.com/watch?v=kCc8FmEb1nY&t=4616s)
#
# If `q` and `k` have independent entries of variance 1, each entry of `q @ kᵀ` is a sum of
# `head_size` products of variance 1, so its variance is about `head_size`. Multiplying by
# `head_size**-0.5` brings it back to about 1. (A larger toy, 16 sequences of 64 tokens, makes the
# sample variances close to their expected values.)

# %%
torch.manual_seed(1337)
k = torch.randn(16, 64, head_size)  # (B, T, hs)
q = torch.randn(16, 64, head_size)  # (B, T, hs)
unscaled = q @ k.transpose(-2, -1)  # (B, T, T)
scaled = unscaled * head_size**-0.5  # (B, T, T)
print(f"var(k) {k.var():.4f}, var(q) {q.var():.4f}")
print(f"var(q @ kᵀ) {unscaled.var():.4f} (head_size = {head_size}), scaled {scaled.var():.4f}")
assert 0.9 * head_size < unscaled.var() < 1.1 * head_size and 0.9 < scaled.var() < 1.1

# %% [markdown]
# It matters because the weights go through a softmax, especially at initialisation. Softmax of
# small numbers is a soft blend; softmax of large numbers is nearly one-hot, so each token would
# listen to a single other token.

# %%
logits = torch.tensor([0.1, -0.2, 0.3, -0.2, 0.5])
soft, sharp = torch.softmax(logits, dim=-1), torch.softmax(logits * 8, dim=-1)
print(soft)
print(sharp)
assert sharp.max() > 0.75 and soft.max() < 0.3  # one-hot-ish against a blend

# %%
fig, axes = plt.subplots(1, 2, figsize=(8, 2.8), sharey=True, constrained_layout=True)
for ax, probs, title in zip(axes, [soft, sharp], ['softmax(logits)', 'softmax(logits × 8)']):
    _ = ax.bar(range(len(probs)), probs)
    _ = ax.set(title=title, xlabel='position', ylim=(0, 1))
_ = axes[0].set_ylabel('probability')
show(fig, 'softmax_sharpness')

# %% [markdown]
# And a nearly one-hot softmax passes almost no gradient back to its inputs: the derivative of
# softmax is `diag(p) − p pᵀ`, whose entries are small when `p` is close to one-hot. Here is the
# largest entry of that Jacobian for the blended row and for the sharp one, and for a row scaled
# like unscaled attention with `head_size = 64` (its logits 8 times larger, as above):

# %%
jacobian = lambda z: torch.autograd.functional.jacobian(lambda t: torch.softmax(t, dim=-1), z)  # (5, 5)
for name, z in [('blend', logits), ('× 8 (unscaled, head_size 64)', logits * 8), ('× 30', logits * 30)]:
    print(f"{name:<30} largest gradient of softmax {jacobian(z).abs().max():.4f}")
assert jacobian(logits * 30).abs().max() < jacobian(logits * 8).abs().max() < jacobian(logits).abs().max()

# %% [markdown]
# **The lecture's slip.** Its `gpt.py` scaled by `C**-0.5`, where `C` is the embedding width
# `n_embd`, not the head size (the video's own list of corrections says so,
# [▶ 1:20:05](https://www.youtube.com/watch?v=kCc8FmEb1nY&t=4805s)). With the lecture's 6 heads of
# 64 over 384 channels the scaled affinities then have a variance of about 64/384 = 1/6 instead of
# 1: softer attention than intended.

# %%
n_embd, n_head = 384, 6
hs = n_embd // n_head
torch.manual_seed(1337)
q, k = torch.randn(16, 64, hs), torch.randn(16, 64, hs)
by_head, by_c = (q @ k.transpose(-2, -1) * hs**-0.5).var(), (q @ k.transpose(-2, -1) * n_embd**-0.5).var()
print(f"scaled by head_size**-0.5: var {by_head:.3f}")
print(f"scaled by C**-0.5:         var {by_c:.3f} (ratio {by_c / by_head:.3f}, 1/6 = {1 / 6:.3f})")
assert 0.9 < by_head < 1.1 and abs(by_c / by_head - 1 / 6) < 1e-6

# %% [markdown]
# ## Decoder, encoder, or both [▶ 1:42:39](https://www.youtube.com/watch?v=kCc8FmEb1nY&t=6159s)
#
# Version 4 is a *decoder* head: masked, so a GPT built of such heads writes one character at a time. The original
# Transformer ("Attention is all you need") translates: an *encoder* reads the whole source unmasked; the *decoder*
# writes the target with masked self-attention plus **cross-attention** (queries from its tokens, keys and values
# from the encoder's output). A GPT has no source: a decoder alone. Cross-attention's weights are `(T, S)`, with no
# mask (the source is known before decoding). Its check compares it with `F.scaled_dot_product_attention`. The
# lecture tells this after its complete model (notebook 03c); here it sits beside the head it extends.

# %%
class CrossAttention(nn.Module):
    """One head of cross-attention: queries from x (B, T, C), keys and values from a source (B, S, C), no mask."""

    def __init__(self, n_embd, head_size):
        super().__init__()
        self.query = nn.Linear(n_embd, head_size, bias=False)
        self.key = nn.Linear(n_embd, head_size, bias=False)
        self.value = nn.Linear(n_embd, head_size, bias=False)

    def forward(self, x, source):
        q, k, v = self.query(x), self.key(source), self.value(source)  # (B, T, hs), (B, S, hs), (B, S, hs)
        wei = F.softmax(q @ k.transpose(1, 2) * q.shape[-1]**-0.5, dim=-1)  # (B, T, hs) @ (B, hs, S): no mask
        return wei @ v, wei  # (B, T, hs), (B, T, S)

# %% jupyter={"source_hidden": true} cellView="form"
#@title The check of cross-attention (folded: open it to see how it works)
def check_cross_attention(cross, n_embd):
    """Cross-attention against F.scaled_dot_product_attention (queries from x, keys and values from the source, no
    mask) on a source longer and one shorter than the target."""
    torch.manual_seed(0)
    name, layers = type(cross).__name__, [getattr(cross, a, None) for a in ("query", "key", "value")]
    check(len({id(m) for m in layers}) == 3, f"{name}'s query, key and value are not three layers of their own: each "
          "is a projection learning its own weights")
    for B, T, S in ((2, 5, 7), (1, 6, 3)):
        x, source = torch.randn(B, T, n_embd), torch.randn(B, S, n_embd)  # (B, T, C), (B, S, C)
        what = f"{name}(x of shape {(B, T, n_embd)}, source of shape {(B, S, n_embd)})"
        with torch.no_grad():
            out, wei = attempt(what, cross, x, source, hint="queries come from x, keys and values from the source")
            sdpa = lambda scale=None: F.scaled_dot_product_attention(cross.query(x), cross.key(source), cross.value(source), scale=scale)
        swapped, raw = out.shape == (B, T, S) and wei.shape == sdpa().shape, out.shape[-1] == n_embd != sdpa().shape[-1]
        check(out.shape == sdpa().shape and wei.shape == (B, T, S), f"{what} gave {tuple(out.shape)} and weights "
              f"{tuple(wei.shape)}, not {tuple(sdpa().shape)} and (B, T, S): " + ("it returns the weights first (the output "
              "comes first, then the weights)" if swapped else "the weights multiply the source itself, not its values" if raw
              else "the weights come back transposed, (B, S, T)" if wei.shape == (B, S, T) and out.shape == sdpa().shape else
              "queries from x, keys and "
              "values from the source"))
        check(torch.allclose(wei.sum(-1), torch.ones(B, T), atol=1e-5), f"{name}: a target position's weights over "
              "the source do not sum to 1 (in eval mode): the softmax runs over the wrong dimension, or something after it "
              "changes the weights (a scale, a dropout that ignores the mode)")
        check(bool((wei > 0).all()), f"{name} gives some source positions weight 0: cross-attention has no mask")
        for scale, said in ((1.0, "not scaled"), (n_embd**-0.5, "scaled by n_embd**-0.5")):
            check(not torch.allclose(out, sdpa(scale), atol=1e-5), f"{name}'s scores are {said}: scale them by "
                  "head_size**-0.5, as a head does")
        gap = (out - sdpa()).abs().max().item()
        check(gap < 1e-5, f"{what} differs from F.scaled_dot_product_attention (queries from x, keys and values from "
              f"the source, no mask) by up to {gap:.3g}: look at how the weights are made and applied")
    return Passed(f"{name}: passed (equals F.scaled_dot_product_attention; weights {tuple(wei.shape)} = (B, T, S), rows "
                  "summing to 1, every source position weighed)")

# %%
torch.manual_seed(1337)
print(check_cross_attention(CrossAttention(32, 8), 32))  # n_embd 32, head_size 8

# %% [markdown]
# ## Summary
#
# - Averaging the past can be done with loops, with a matrix multiplication by a normalised lower
#   triangle, or with a softmax over masked affinities; all three give the same weights (to float32
#   rounding, which needs `atol` above `allclose`'s default).
# - Self-attention is the third form with affinities computed from the data: `q @ kᵀ`, scaled by
#   `head_size**-0.5`, masked, softmaxed, then applied to the values; a check compares it with
#   PyTorch's own attention and names the usual mistakes.
# - A head knows nothing of position or of other batch elements, and with the causal mask nothing
#   of the future; each of these was checked above.
# - Cross-attention takes its keys and values from another source, with `(T, S)` weights and no mask.
#
# Notebook 03 puts this head into the bigram model, and 03b builds the whole Transformer around it.
#
# ## Exercises
#
# 1. Make `T` 16 and `head_size` 64. Does the unscaled variance follow `head_size`? How one-hot are
#    the rows of an unscaled `wei`?
# 2. Run `CrossAttention(32, 8)` on a target of 5 tokens and a source of 12. What shape are its weights, and what
#    would a causal mask over them even mean?
# 3. The lecture's exercise: run several heads at once by giving the head dimension its own axis,
#    `(B, n_head, T, head_size)`, instead of a Python loop over heads. (Notebook 06's exercise 1 checks yours.)
