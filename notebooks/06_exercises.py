# %% [markdown]
# # 06 · The lecture's exercises, part 1: batched heads, and a GPT that adds
#
# The lecture's description suggests four exercises, each a small project you can run. This notebook,
# after 05b in reading order, holds the first two, on the lecture's own model: (1) **the heads as a
# batch dimension**, one module for all heads, equal to `MultiHeadAttention` with the same weights;
# (2) **a GPT that adds** `a+b=c`, with problems served fresh by the data loader, the answer's digits
# reversed and the loss masked on the question. Exercise 3 (pretrain, then finetune) and the lecture's
# last chapter are notebook 06b; exercise 4 (one idea from a paper, measured) is notebook 06c.
#
# Each exercise: a statement with a hint; your starting point, which raises `NotImplementedError`
# until you fill it in; a check (folded, so that it does not give the answer away) that says in one
# sentence what is wrong, that it passed, or "not done yet"; a folded solution, checked, and what it
# reaches. Standalone (it downloads its data) and a script: `python notebooks/06_exercises.py`.

# %%
import copy, hashlib, itertools, math, os, pathlib, platform, statistics, sys, tempfile, time, urllib.request
from dataclasses import dataclass
import torch
import torch.nn as nn
from torch.nn import functional as F
import matplotlib
if "ipykernel" not in sys.modules:
    matplotlib.use("Agg")  # as a script, figures are saved as PNG files instead of opening windows
import matplotlib.pyplot as plt

SMOKE = os.environ.get("COURSE_SMOKE") == "1"  # set by the tests: tiny sizes and few steps
IN_NOTEBOOK = "ipykernel" in sys.modules        # False when run as a script
RUN_NAME = "06_exercises"                       # as a script, figures go to runs/06_exercises/

# %% [markdown]
# The next cells are plumbing every notebook carries so that it stands alone; they are folded.

# %% jupyter={"source_hidden": true} cellView="form"
#@title Plumbing: folders, figures and checks (from 01_bigram: the parts this notebook uses)
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

class Passed(str):
    """What a check returns when it passes: a notebook shows it as plain text; a script prints nothing."""

    def __repr__(self):
        return str(self)


# %% jupyter={"source_hidden": true} cellView="form"
#@title Plumbing: the device (the same in every notebook)
def pick_device(name="auto"):
    """The device asked for (if this machine has it), or the fastest there is: CUDA, then Apple's MPS, then the CPU."""
    found = {"cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available(), "cpu": True}
    if name == "auto":
        return next(d for d, ok in found.items() if ok)
    if not found.get(name, False):
        raise SystemExit(f"error: --device {name}: PyTorch finds no {name.upper()} device on this machine; "
                         "use --device auto (the fastest there is) or --device cpu")
    return name

def describe_device(device):
    """One line on what runs this notebook; on Colab without a GPU, also how to get one."""
    if device != "cuda" and "google.colab" in sys.modules:
        print("No GPU found. On Colab choose Runtime → Change runtime type → T4 GPU, then Runtime → Run all "
              "(or carry on: the notebook is sized for the CPU too).")
    name = torch.cuda.get_device_name() if device == "cuda" else platform.processor() or platform.machine()
    return f"device: {device} ({name}), torch {torch.__version__}, smoke mode: {SMOKE}"


# %% jupyter={"source_hidden": true} cellView="form"
#@title Plumbing: the data, found or downloaded and verified (from 01_bigram: the parts this notebook uses)
DATA_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
DATA_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"

def fetch_shakespeare(folder):
    """Path of tiny Shakespeare in folder, downloaded once; stops with one line if wrong or unreachable."""
    path = pathlib.Path(folder) / "tinyshakespeare.txt"
    if not path.exists():
        print(f"downloading tiny Shakespeare to {path}")
        part = path.with_name(path.name + ".part")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            urllib.request.urlretrieve(DATA_URL, part)
        except OSError as e:
            part.unlink(missing_ok=True)
            raise SystemExit(f"error: could not download {DATA_URL} ({e}); copy that file to {path} "
                             "by hand, or set COURSE_DATA to a UTF-8 text file of your own") from None
        digest = hashlib.sha256(part.read_bytes()).hexdigest()
        if digest != DATA_SHA256:
            part.unlink()
            raise SystemExit(f"error: the download from {DATA_URL} has sha256 {digest[:16]}, expected "
                             f"{DATA_SHA256[:16]}; run again later, or copy the right file to {path} by hand")
        part.replace(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != DATA_SHA256:
        raise SystemExit(f"error: {path} has sha256 {digest[:16]}, expected {DATA_SHA256[:16]}; "
                         "delete it and run again to download a fresh copy")
    return path

def read_text(path, source="COURSE_DATA"):
    """The text of a UTF-8 file (without a leading byte-order mark), or stop with one line naming source."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise SystemExit(f"error: no text file at {path}; fix the path given to {source}"
                         + (", or unset it to use tiny Shakespeare" if source == "COURSE_DATA" else ""))
    try:
        text = path.read_bytes().decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        raise SystemExit(f"error: {path} (from {source}) is not UTF-8 text (byte {e.start}); save it as UTF-8 and run again") from None
    except OSError as e:
        raise SystemExit(f"error: cannot read {path} (from {source}): {e.strerror}; check its permissions") from None
    if not text.strip():
        raise SystemExit(f"error: {path} has no text in it; point {source} at a file with text")
    return text

def load_text(path=None, flag="--data"):
    """Text to train on: path (given with flag), else $COURSE_DATA, else tiny Shakespeare (in the checkout's
    datasets/, else beside the notebook, else downloaded once; always verified)."""
    if path:
        return read_text(path, flag)
    if os.environ.get("COURSE_DATA"):
        return read_text(os.environ["COURSE_DATA"], "COURSE_DATA")
    folder = course_root() / "datasets"
    script = globals().get("__file__")
    beside = [pathlib.Path(".")] + ([pathlib.Path(script).resolve().parent] if script else [])
    if not (folder / "tinyshakespeare.txt").exists():  # a notebook and its text alone in one folder
        folder = next((f for f in beside if (f / "tinyshakespeare.txt").is_file()), folder)
    return read_text(fetch_shakespeare(folder), "the download")
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


# %% [markdown]
# A check passes with `Passed("…: passed (…)")` and fails with `CheckFailed` and one sentence; on a
# starting point not filled in yet it returns a `NotDone` sentence, so the notebook still runs through.

# %%
class NotDone(str):
    """What a check returns for a starting point that still raises NotImplementedError: one sentence."""

    def __repr__(self):
        return str(self)


def not_done(what):
    return NotDone(f"not done yet: fill in {what} above, then run this cell again")


# %% tags=["nbval-ignore-output"]
device = pick_device()
print(describe_device(device))

# %% [markdown]
# ## The data and the lecture's model, as in notebook 04
#
# Tiny Shakespeare (or your own text through `COURSE_DATA`), and folded copies of notebook 04's model
# and of notebook 05c's optimizer and schedule, so that this notebook runs on its own (a test keeps the
# copies equal to the originals).

# %%
text = load_text()
chars = sorted(set(text))
stoi = {ch: i for i, ch in enumerate(chars)}
itos = {i: ch for i, ch in enumerate(chars)}
encode = lambda s: [stoi[c] for c in s]           # string -> list of integers
decode = lambda l: ''.join([itos[i] for i in l])  # list of integers -> string
data = torch.tensor(encode(text), dtype=torch.long)
n = int(0.9 * len(data))  # first 90% will be train, rest val
train_data, val_data = data[:n], data[n:]
print(f"{len(text):,} characters, vocab_size = {len(chars)}, train {len(train_data):,}, val {len(val_data):,}")

# %% jupyter={"source_hidden": true} cellView="form"
#@title Notebook 04's model: the configuration, a head, many heads, the feed-forward layer and the block (folded)
@dataclass
class GPTConfig:
    """Sizes of the model; the defaults are the lecture's final configuration."""
    vocab_size: int = 65
    block_size: int = 256  # maximum context length
    n_embd: int = 384      # channels of every token vector
    n_head: int = 6        # heads per attention layer
    n_layer: int = 6       # blocks
    dropout: float = 0.2


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
        return wei @ self.value(x)


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
        return self.dropout(self.proj(out))


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
        return self.net(x)


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


# %% jupyter={"source_hidden": true} cellView="form"
#@title Notebook 04's model: the GPT (folded)
def _init_weights(module):
    """normal(0, 0.02) weights for every Linear and Embedding, zero biases: gpt.py's initialisation."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        torch.nn.init.zeros_(module.bias)


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


# %% jupyter={"source_hidden": true} cellView="form"
#@title Notebook 05's training pieces: the optimizer and the learning-rate schedule (folded)
def sync():
    """Wait for the device to finish its queued work, so that timings are real."""
    if device == 'cuda':
        torch.cuda.synchronize()
    elif device == 'mps':
        torch.mps.synchronize()


def lr_at(it, peak, warmup, total):
    """Linear warmup to peak, then cosine decay to peak / 10 at step total."""
    if it < warmup:
        return peak * (it + 1) / warmup
    progress = (it - warmup) / max(1, total - warmup)
    return peak / 10 + 0.5 * (peak - peak / 10) * (1 + math.cos(math.pi * min(1.0, progress)))


def configure_optimizer(model, lr, weight_decay=0.1, fused=False):
    """AdamW with weight decay on every matrix (embeddings included) and none on biases and LayerNorm gains."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{'params': decay, 'weight_decay': weight_decay}, {'params': no_decay, 'weight_decay': 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.99), fused=fused or None)


# %% [markdown]
# ## Exercise 1: the heads as a batch dimension
#
# *Practises* [multi-head attention, 1:21:59](https://www.youtube.com/watch?v=kCc8FmEb1nY&t=4919s)
# *and* [nanoGPT's batched heads, 1:46:22](https://www.youtube.com/watch?v=kCc8FmEb1nY&t=6382s)
# *(taught in notebooks 03b and 05).*
#
# `MultiHeadAttention` runs `n_head` small `Head` modules one after another. Write
# `BatchedHeadAttention`, one module that computes all heads at once. Its weights are laid out so
# that the lecture's can be copied in (the check does that):
#
# - `qkv = nn.Linear(n_embd, 3 * n_embd, bias=False)`: its output, split in three along the last
#   dimension, is the queries, keys and values of all heads, `(B, T, C)` each. Within each third,
#   head `h` owns channels `h * hs` to `(h + 1) * hs` (`hs = n_embd // n_head`): those rows of
#   `qkv.weight` are head `h`'s `query.weight`, `key.weight`, `value.weight` (first, second, third).
# - `proj`: the output projection, as in `MultiHeadAttention`.
#
# **Hint.** `view` each of q, k, v as `(B, T, n_head, hs)` and `transpose(1, 2)` to
# `(B, n_head, T, hs)`: the heads are now a batch dimension, and `q @ k.transpose(-2, -1)` is every
# head's `(T, T)` scores at once. Scale by `hs**-0.5`, mask with `tril[:T, :T]`, softmax, dropout,
# `@ v`; then transpose back and `view(B, T, C)` (after `.contiguous()`), which places the heads side
# by side as `torch.cat` did. (`F.scaled_dot_product_attention` or `torch.einsum` are fine too.)

# %%
class BatchedHeadAttention(nn.Module):
    """Every head of causal self-attention at once, the heads as a batch dimension (exercise 1)."""

    def __init__(self, config):
        super().__init__()
        self.n_head = config.n_head
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=False)  # queries, keys, values of all heads
        self.proj = nn.Linear(config.n_embd, config.n_embd)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.dropout = nn.Dropout(config.dropout)
        self.register_buffer('tril', torch.tril(torch.ones(config.block_size, config.block_size)))

    def forward(self, x):
        B, T, C = x.shape
        raise NotImplementedError("exercise 1: compute all heads at once, join them, then project")


# %% [markdown]
# **The check** (folded) copies the weights of the lecture's `MultiHeadAttention`, in two sizes, into
# your module and requires the same output on random inputs of `block_size` and shorter, in `eval()`
# and in `train()`. Where they differ it finds out where: each head's channels (the split and the
# join), then each head's attention (mask, scale, softmax), then the projection.

# %% jupyter={"source_hidden": true} cellView="form"
#@title The check of exercise 1 (folded: it holds no solution, but reading it is not the exercise)
def copy_heads(mha, attn):
    """Copy a MultiHeadAttention's per-head weights into a CausalSelfAttention."""
    with torch.no_grad():
        for i, name in enumerate(['query', 'key', 'value']):
            attn.qkv.weight[i * attn.proj.in_features:(i + 1) * attn.proj.in_features] = torch.cat(
                [getattr(h, name).weight for h in mha.heads])  # (C, C) the heads stacked
        attn.proj.load_state_dict(mha.proj.state_dict())
    return attn


def forward_traced(module, x, hint=""):
    """module(x) without gradients; if it fails, CheckFailed saying which of its layers gave which shape first."""
    shapes, hooks = [], []
    for layer_name, layer in module.named_children():
        record = lambda m, i, out, layer_name=layer_name: shapes.append(
            f"{layer_name} gave {tuple(out.shape)}" if isinstance(out, torch.Tensor) else f"{layer_name} ran")
        hooks.append(layer.register_forward_hook(record))
    try:
        with torch.no_grad():
            return module(x)
    except NotImplementedError:
        raise
    except Exception as e:
        error = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}"
        hint = hint or (" (view needs a contiguous tensor: call .contiguous() first, or use .reshape)" if "view" in
                        error and ("contiguous" in error or "stride" in error) else "")
        raise CheckFailed(f"{type(module).__name__} fails on an input of shape (B, T, C) = {tuple(x.shape)} "
                          f"({'; '.join(shapes) or 'before any of its layers ran'}): {error}{hint}") from None
    finally:
        for hook in hooks:
            hook.remove()


def best_scale(y, q, k, v):
    """The scale s (on a fine grid from 1e-3 to 1e3) for which causal attention with scale s comes closest to y."""
    scales = torch.logspace(-3, 3, 1201).tolist()
    errors = [(F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=s) - y).abs().max().item() for s in scales]
    i = min(range(len(scales)), key=errors.__getitem__)
    return scales[i], errors[i]


def diagnose_heads(attn, x, n_head):
    """Why attn differs from MultiHeadAttention: the split and join, a head's attention, or the projection."""
    (B, T, C), hs = x.shape, x.shape[-1] // n_head
    heads = lambda t: t.view(B, T, n_head, hs).transpose(1, 2)  # (B, T, C) -> (B, nh, T, hs)
    probe = copy.deepcopy(attn).eval()  # a copy whose proj passes the joined heads through unchanged
    with torch.no_grad():
        probe.proj.weight.copy_(torch.eye(C))
        probe.proj.bias.zero_() if probe.proj.bias is not None else None
        q, k, v = (heads(t) for t in probe.qkv(x).split(C, dim=2))  # (B, nh, T, hs) each
        joined = forward_traced(probe, x)  # (B, T, C): the heads as the module joined them
        for h in range(n_head):  # zero head h's rows of q, k and v: only head h's channels may become 0
            alone = copy.deepcopy(probe)
            for third in range(3):
                alone.qkv.weight[third * C + h * hs:third * C + (h + 1) * hs] = 0
            out = forward_traced(alone, x)
            mine = slice(h * hs, (h + 1) * hs)
            others = torch.cat([out[..., :h * hs], out[..., (h + 1) * hs:]], -1)
            kept = torch.cat([joined[..., :h * hs], joined[..., (h + 1) * hs:]], -1)
            if not (out[..., mine].abs().max() < 1e-6 and torch.allclose(others, kept, atol=1e-5)):
                right = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
                if torch.allclose(joined, right.reshape(B, T, C), atol=1e-5):
                    return ("the heads are joined without transposing them back: (B, n_head, T, hs) must become "
                            "(B, T, n_head, hs) before the view to (B, T, C)")
                return (f"head {h}'s output does not come from head {h}'s channels of q, k and v alone: split each "
                        "(B, T, C) into (B, T, n_head, hs), make the heads the batch dimension (B, n_head, T, hs), "
                        "and join them back the same way")
        y = heads(joined)  # (B, nh, T, hs): each head's output
        mistake = attention_diagnosis(y, q, k, v, C)
        if mistake is not None and not mistake.startswith("it differs from PyTorch's attention"):
            return f"its heads are not causal self-attention: {mistake}"
        if mistake is not None:
            scale, error = best_scale(y, q, k, v)
            if error < 1e-4:
                return (f"its heads scale the scores by {scale:.4g}, not by head_size**-0.5 = {hs**-0.5:.4g}"
                        + (" (it multiplies by sqrt(head_size) instead)" if abs(scale - hs**0.5) < 1e-2 * hs**0.5 else ""))
            named = {"queries": q, "keys": k, "values": v}
            for order in itertools.permutations(named):
                if torch.allclose(y, F.scaled_dot_product_attention(*(named[n] for n in order), is_causal=True), atol=1e-5):
                    return (f"its heads use the {order[0]} as queries, the {order[1]} as keys and the {order[2]} as "
                            "values: the three thirds of qkv are, in order, the queries, the keys and the values")
            same = x[:, :1].expand(B, T, C).contiguous()  # every position the same token: each head must return v
            v_same = heads(probe.qkv(same).split(C, dim=2)[2])
            if not torch.allclose(heads(forward_traced(probe, same)), v_same, atol=1e-5):
                return ("the attention weights of a query do not sum to 1: the softmax must come after the mask, "
                        "over the last dimension (dim=-1)")
            future = x.clone()
            future[:, T // 2:] = torch.randn_like(future[:, T // 2:])
            if not torch.allclose(heads(forward_traced(probe, future))[:, :, :T // 2], y[:, :, :T // 2], atol=1e-5):
                return ("its heads let positions see the future: set the scores above the diagonal to -inf "
                        "(masked_fill where tril[:T, :T] == 0) before the softmax; a 0 there still lets them in")
            return ("its heads differ from causal attention in a way this check cannot name: compare them step by step "
                    "with the lecture's Head (scores, scale, mask, softmax over dim=-1, weights times v)")
        out = forward_traced(attn.eval(), x)
        if torch.allclose(out, joined, atol=1e-5):
            return "every head is right, but the joined heads are returned as they are: apply self.proj to them"
        return ("every head is right and joined in order, but the layer's output is not self.proj of the joined "
                "heads: apply self.proj once (and nothing else) after the join")


def check_batched_heads(attention_class):
    """Check exercise 1: attention_class(config), given MultiHeadAttention's weights, must compute its output."""
    name = attention_class.__name__
    for n_embd, n_head, block, dropout in ((64, 4, 16, 0.0), (48, 6, 8, 0.2)):
        config = GPTConfig(vocab_size=65, block_size=block, n_embd=n_embd, n_head=n_head, n_layer=1, dropout=dropout)
        torch.manual_seed(0)
        mha = MultiHeadAttention(config).eval()
        try:
            attn = copy_heads(mha, attention_class(config)).eval()
        except NotImplementedError:
            return not_done(f"{name}.__init__")
        except (AttributeError, RuntimeError, TypeError) as e:
            raise CheckFailed(f"the lecture's weights do not fit into {name} ({type(e).__name__}: {str(e).splitlines()[0]}): "
                              "keep qkv = nn.Linear(n_embd, 3 * n_embd, bias=False) and proj as the starting point has them") from None
        for T in (block, 5, 1):
            x = torch.randn(3, T, n_embd)  # (B, T, C)
            shorter = f" for a sequence of T = {T}, shorter than block_size = {block}" if T < block else ""
            try:
                out = forward_traced(attn, x, "" if not shorter else " (use the input's T, not block_size: "
                                     "crop the mask to tril[:T, :T])")
            except NotImplementedError:
                return not_done(f"{name}.forward")
            check(isinstance(out, torch.Tensor) and out.shape == x.shape, f"{name} returns "
                  f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}, not a tensor of shape "
                  f"(B, T, C) = {tuple(x.shape)}: join the heads back into (B, T, C) and project them")
            check(torch.equal(out, forward_traced(attn, x)), f"{name} in eval mode gives another output each time: "
                  "dropout must be off in eval mode (nn.Dropout does that; F.dropout and dropout_p need self.training)")
            with torch.no_grad():
                expected = mha(x)
            if not torch.allclose(out, expected, atol=1e-5):
                raise CheckFailed(f"{name} differs from MultiHeadAttention with the same weights (n_embd = {n_embd}, "
                                  f"n_head = {n_head}){shorter} by up to {(out - expected).abs().max():.2g}: "
                                  + diagnose_heads(attn, x, n_head))
        if dropout:
            attn.train()
            x = torch.randn(3, block, n_embd)
            check(not torch.equal(forward_traced(attn, x), forward_traced(attn, x)), f"{name} in training mode, with "
                  f"dropout = {dropout}, gives the same output twice: apply its dropout (to the weights, after the softmax)")
            inner = copy.deepcopy(attn)
            inner.dropout = nn.Identity()  # the output's dropout taken away: the weights' must still act
            check(not torch.equal(forward_traced(inner, x), forward_traced(inner, x)), f"{name} applies no dropout to "
                  "the attention weights: apply self.attn_dropout to them after the softmax, as the lecture's Head does")
    return Passed(f"{name}: passed (equals MultiHeadAttention with the same weights in two sizes, for T = block_size "
                  "and shorter; dropout only in training mode)")


# %%
check_batched_heads(BatchedHeadAttention)

# %% [markdown]
# **A solution** (folded: click to open it). It is notebook 05's `CausalSelfAttention` without
# `scaled_dot_product_attention`: every step of the lecture's `Head`, on a 4-D tensor.

# %% tags=["hide-input"] jupyter={"source_hidden": true}
class BatchedHeadAttentionSolution(BatchedHeadAttention):
    """Exercise 1, solved: the lecture's Head, computed for all heads at once."""

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)  # (B, T, C) each
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        wei = q @ k.transpose(-2, -1) * k.shape[-1]**-0.5  # (B, nh, T, T), scaled by head_size
        wei = wei.masked_fill(self.tril[:T, :T] == 0, float('-inf'))  # (B, nh, T, T)
        wei = self.attn_dropout(F.softmax(wei, dim=-1))  # (B, nh, T, T)
        y = wei @ v  # (B, nh, T, T) @ (B, nh, T, hs) -> (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C): the heads side by side, as torch.cat put them
        return self.dropout(self.proj(y))  # (B, T, C)


# %%
check_batched_heads(BatchedHeadAttentionSolution)

# %% [markdown]
# **What it gains.** The same arithmetic in fewer, larger operations: three matrix multiplications
# become one `qkv`, and the scores, mask and softmax run once for all heads. One forward and backward
# pass through one attention layer of notebook 04's CPU size (4 heads of 32 channels, 32 sequences of
# 64 characters), the lecture's module against the batched one, median of 20 timed passes each:

# %%
def ms_per_pass(module, x, repeats=20):
    """Median milliseconds of one forward and backward pass of module on x."""
    times = []
    for _ in range(repeats + 2):
        t0 = time.perf_counter()
        module(x).sum().backward()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[2:]) * 1e3  # the first two passes warm up


# %% tags=["nbval-ignore-output"]
size = GPTConfig(block_size=16, n_embd=32, n_head=2, dropout=0.0) if SMOKE else GPTConfig(block_size=64, n_embd=128, n_head=4, dropout=0.0)
torch.manual_seed(1337)
lecture_attention = MultiHeadAttention(size).to(device)
batched_attention = copy_heads(lecture_attention, BatchedHeadAttentionSolution(size)).to(device)
x = torch.randn(4 if SMOKE else 32, size.block_size, size.n_embd, device=device)  # (B, T, C)
lecture_ms, batched_ms = ms_per_pass(lecture_attention, x), ms_per_pass(batched_attention, x)
print(f"MultiHeadAttention {lecture_ms:.2f} ms, BatchedHeadAttentionSolution {batched_ms:.2f} ms per pass "
      f"({lecture_ms / batched_ms:.2f}x) on {device}")

# %% [markdown]
# ## Exercise 2: a GPT that adds
#
# *Practises* [the data loader, 0:14:27](https://www.youtube.com/watch?v=kCc8FmEb1nY&t=867s)
# *(taught in notebook 01), on a dataset of your own making.*
#
# Teach notebook 04's GPT, unchanged, to add two numbers. Each example is one problem written as
# characters, for 3-digit numbers `482+319=1080`: `a`, `+`, `b`, `=` and the sum `c = 801` as four
# digits (`0801`) **reversed** (`1080`). The lecture's description suggests two ideas to make this
# easier to learn; below we measure what each is worth:
#
# - **Reverse the answer.** We add from the right: written lowest digit first, each digit of the sum
#   needs one pair of digits of the problem and the carry, which can be read from the previous pair
#   and the digit just written; written the usual way, the first digit depends on every carry to come.
# - **Mask the question.** The digits of `a` and `b` are random: no model can predict them, and a
#   loss on them is noise. Targets set to `-1` and `F.cross_entropy(..., ignore_index=-1)` train only
#   on the answer.
#
# The data loader draws fresh problems at every step instead of reading a file. A thousand problems
# are set aside first and never drawn: the model is tested on them, so a right answer cannot be one
# it memorised. The vocabulary is the ten digits, `+` and `=`; token `i` is the digit `i`.

# %%
ADD_VOCAB = "0123456789+="  # token i is the digit i; token 10 is '+', token 11 is '='


def digits_of(numbers, width):
    """The decimal digits (N, width) of numbers (N,), most significant first, padded with zeros."""
    powers = 10 ** torch.arange(width - 1, -1, -1)  # (width,)
    return numbers[:, None] // powers % 10  # (N, width)


def addition_problems(digits, held_out=1000, seed=0):
    """Every problem a+b with a, b < 10**digits, as the number a * 10**digits + b, shuffled once with a fixed
    seed: (the problems to train on, the held_out problems to test on, never trained on)."""
    order = torch.randperm(10 ** (2 * digits), generator=torch.Generator().manual_seed(seed))
    return order[held_out:], order[:held_out]


def written(tokens):
    """A row of tokens as text ('_' for a masked target, -1)."""
    return ''.join('_' if t < 0 else ADD_VOCAB[t] for t in tokens.tolist())


# %%
for d in (2, 3):
    train_problems, test_problems = addition_problems(d)
    print(f"{d} digits: {len(train_problems):,} problems to train on, {len(test_problems):,} held out; "
          f"the first held out is {test_problems[0] // 10**d}+{test_problems[0] % 10**d}")

# %% [markdown]
# Write `get_addition_batch(problems, batch_size, digits, reverse=True, mask=True)`:
#
# - draw `batch_size` problems at random from `problems` (numbers `a * 10**digits + b`, held-out ones left out);
# - write each as tokens: `a`'s `digits` digits, `+` (10), `b`'s digits, `=` (11), then the sum's
#   `digits + 1` digits, lowest first if `reverse`; `digits_of` above gives the digits;
# - return `x`, the sequence without its last token, and `y`, the sequence without its first (the
#   next token at every position), both `(B, 3 * digits + 2)`, with every target before the answer
#   set to `-1` if `mask` (the first `2 * digits + 1`).
#
# **Hint.** `problems[torch.randint(len(problems), (batch_size,))]`, then `//` and `%` by `10**digits`;
# `torch.cat` the pieces along `dim=1`; `.flip(1)` reverses; `y = seq[:, 1:].clone()` before the `-1`s.

# %%
def get_addition_batch(problems, batch_size, digits, reverse=True, mask=True):
    """A batch (x, y) of random problems 'a+b=c' from problems, the answer reversed and the question masked."""
    raise NotImplementedError("exercise 2: draw problems, write them as tokens, shift by one, mask the question")


# %% [markdown]
# **The check** (folded) draws batches from three known problems (`123+456`, `999+999`, `5+7`) and
# reads every part back: the problems, the reversed answers, the shift by one, the `-1`s; then again
# with `reverse=False` and `mask=False`, and with 2 digits.

# %% jupyter={"source_hidden": true} cellView="form"
#@title The check of exercise 2 (folded)
def addition_batch_of(get_addition_batch, problems, batch_size, digits, **switches):
    """get_addition_batch(problems, batch_size, digits, **switches), checked to be a pair of tensors; crashes named."""
    call = f"{get_addition_batch.__name__}(problems, {batch_size}, {digits}" + "".join(
        f", {k}={v}" for k, v in switches.items()) + ")"
    try:
        out = get_addition_batch(problems, batch_size, digits, **switches)
    except NotImplementedError:
        raise
    except Exception as e:
        raise CheckFailed(f"{call} fails: {type(e).__name__}: {(str(e).splitlines() or [''])[0]}") from None
    check(isinstance(out, tuple) and len(out) == 2 and all(isinstance(t, torch.Tensor) for t in out),
          f"{call} should return a pair of tensors (x, y), got {type(out).__name__}"
          + (f" of {len(out)}" if isinstance(out, (tuple, list)) else ""))
    return out


def check_addition_batch(get_addition_batch):
    """Check exercise 2's batches: problems drawn from those given, written out, reversed, shifted and masked."""
    name = get_addition_batch.__name__
    problems = torch.tensor([123_456, 999_999, 5_007])  # 123+456, 999+999, 5+7 (3 digits each)
    torch.manual_seed(0)
    try:
        x, y = addition_batch_of(get_addition_batch, problems, 64, 3)
    except NotImplementedError:
        return not_done(name)
    check(x.shape == y.shape == (64, 11), f"{name}(problems, 64, 3) should return two (64, 11) tensors ('123+456=' "
          f"and 4 answer digits are 12 tokens; x leaves out the last, y the first), got {tuple(x.shape)} and {tuple(y.shape)}")
    check(x.dtype == y.dtype == torch.long, f"{name} returns {x.dtype} and {y.dtype}: tokens must be torch.long")
    check(not bool((x < 0).any() and (y >= 0).all()), f"x holds the -1s and y none: return (x, y) in that order, "
          "the inputs first and then the targets")
    check(not bool((x < 0).any()), f"x holds -1 (the first row is {x[0].tolist()}): the targets share memory with x; "
          "mask a copy, y = seq[:, 1:].clone(), not a view of the same tensor")
    check(bool((x[:, 3] == 10).all() and (x[:, 7] == 11).all()), f"the rows do not read a+b=: the first is "
          f"{written(x[0])!r}; write a's 3 digits, '+' (token 10), b's 3 digits, '=' (token 11), then the answer")
    powers = torch.tensor([100, 10, 1])
    a, b = (x[:, :3] * powers).sum(1), (x[:, 4:7] * powers).sum(1)  # (B,) each
    outside = (~torch.isin(a * 1000 + b, problems)).nonzero().flatten().tolist() + [None]
    check(outside[0] is None or not bool(torch.isin(b * 1000 + a, problems).all()), f"a and b are swapped: row "
          f"{outside[0]} reads {written(x[outside[0] or 0, :7])} for the problem {b[outside[0] or 0]}+{a[outside[0] or 0]} "
          "(a problem's number is a * 10**digits + b: a = problem // 10**digits comes first, then '+', then b)")
    check(outside[0] is None, f"row {outside[0]} is {written(x[outside[0] or 0, :7])}, not one of the problems "
          "given: draw the rows from `problems`, so that the held-out problems never reach training")
    drawn = len((a * 1000 + b).unique())
    check(drawn > 1, "every row is the same problem: draw each row at random from problems")
    check(drawn == len(problems), f"only {drawn} of the 3 problems given came up in 64 rows: draw each row from all "
          "of them, torch.randint(len(problems), ...)")
    answer = torch.cat([x[:, 8:], y[:, -1:]], dim=1)  # (B, 4): the answer as written
    plain = digits_of(a + b, 4)  # (B, 4) most significant digit first
    i = int((answer != plain.flip(1)).any(1).nonzero().flatten()[0]) if not torch.equal(answer, plain.flip(1)) else 0
    check(not torch.equal(answer, plain), f"the answers are not reversed: {written(x[i, :8])} should be followed by "
          f"{written(plain[i].flip(0))} ({a[i] + b[i]} as 4 digits, lowest first), not {written(plain[i])}")
    check(torch.equal(answer, plain.flip(1)), f"row {i} reads {written(torch.cat([x[i], y[i, -1:]]))}, but after "
          f"{written(x[i, :8])} comes {written(plain[i].flip(0))} ({a[i] + b[i]} as 4 digits, reversed)")
    check(not bool((y[:, 7] == -1).all()), "the first digit of the answer is masked too: set only the first "
          "2 * digits + 1 = 7 targets to -1")
    check(torch.equal(y[:, 7:], answer), "the answer's targets are not the answer's digits: y "
          "must be the sequence shifted by one (y[:, t] is the token after x[:, t])")
    check(not torch.equal(y[:, :7], x[:, 1:8]), "the loss is not masked: the first 7 targets (the rest of 'a+b=') "
          "should be -1, so that F.cross_entropy(..., ignore_index=-1) skips them")
    check(bool((y[:, :7] == -1).all()), f"the first 7 targets should all be -1 (every target before the answer), "
          f"got {y[0, :7].tolist()}")
    x, y = addition_batch_of(get_addition_batch, problems, 16, 3, reverse=False, mask=False)
    check(x.shape == y.shape == (16, 11), f"{name}(problems, 16, 3, reverse=False, mask=False) should return two "
          f"(16, 11) tensors, got {tuple(x.shape)} and {tuple(y.shape)}")
    a, b = (x[:, :3] * powers).sum(1), (x[:, 4:7] * powers).sum(1)
    check(torch.equal(torch.cat([x[:, 8:], y[:, -1:]], dim=1), digits_of(a + b, 4)),
          "with reverse=False the answer should be written the usual way, most significant digit first")
    check(torch.equal(y[:, :-1], x[:, 1:]) and bool((y >= 0).all()), "with mask=False, y should be x shifted by "
          "one, with no -1 in it")
    x, y = addition_batch_of(get_addition_batch, torch.tensor([1234]), 4, 2)  # 12+34=46, as '12+34=' and '640'
    check(x.shape == (4, 8) and written(x[0]) + written(y[0, -1:]) == "12+34=640", f"with digits=2 the problem 12+34 "
          f"should read 12+34=640 in x and y (8 tokens each), got {written(x[0])!r} and the shape {tuple(x.shape)}")
    return Passed(f"{name}: passed (problems drawn from those given, answers reversed, the question masked with -1; "
                  "reverse=False, mask=False and 2 digits work too)")


# %%
check_addition_batch(get_addition_batch)

# %% [markdown]
# **A solution** (folded):

# %% tags=["hide-input"] jupyter={"source_hidden": true}
def get_addition_batch_solution(problems, batch_size, digits, reverse=True, mask=True):
    """Exercise 2, solved: batch_size random problems from problems, as (x, y) token tensors (B, 3 * digits + 2)."""
    picked = problems[torch.randint(len(problems), (batch_size,))]  # (B,) problem numbers
    a, b = picked // 10**digits, picked % 10**digits  # (B,) each
    answer = digits_of(a + b, digits + 1)  # (B, digits + 1)
    if reverse:
        answer = answer.flip(1)  # lowest digit first
    plus, equals = torch.full((batch_size, 1), 10), torch.full((batch_size, 1), 11)  # (B, 1) each
    seq = torch.cat([digits_of(a, digits), plus, digits_of(b, digits), equals, answer], dim=1)  # (B, 3 * digits + 3)
    x, y = seq[:, :-1], seq[:, 1:].clone()  # (B, T) each, T = 3 * digits + 2
    if mask:
        y[:, :2 * digits + 1] = -1  # no loss on the rest of 'a+b=': only the answer is learned
    return x, y


# %%
check_addition_batch(get_addition_batch_solution)

# %% [markdown]
# **Training.** Notebook 04's `GPTLanguageModel`, unchanged and small (a problem is 12 tokens long),
# with notebook 05c's optimizer and schedule. Its own loss knows nothing of masks, so the step takes
# the logits and computes the loss with `ignore_index=-1`. The test answers the 1,000 held-out problems
# greedily (always the most likely next digit) and counts those right in every digit: exact match.

# %%
ADDER = dict(n_embd=64, n_head=4, n_layer=2, dropout=0.0)  # notebook 04's GPT, small: 2 blocks of 64 channels
ADD_BATCH, ADD_LR, ADD_WARMUP = 256, 1e-3, 100             # problems per step, peak learning rate, warmup steps


# %%
@torch.no_grad()
def addition_answers(model, problems, digits):
    """The answer tokens (N, digits + 1) that model writes greedily (its most likely token, in turn) after 'a+b='."""
    model.eval()
    a, b = problems // 10**digits, problems % 10**digits  # (N,) each
    plus, equals = torch.full((len(problems), 1), 10), torch.full((len(problems), 1), 11)
    idx = torch.cat([digits_of(a, digits), plus, digits_of(b, digits), equals], dim=1).to(device)  # (N, 2 * digits + 2)
    for _ in range(digits + 1):
        logits, _ = model(idx)  # (N, T, vocab_size)
        idx = torch.cat([idx, logits[:, -1].argmax(-1, keepdim=True)], dim=1)  # (N, T + 1)
    model.train()
    return idx[:, 2 * digits + 2:].cpu()  # (N, digits + 1)


def addition_accuracy(model, problems, digits, reverse=True):
    """The fraction of problems whose answer, written greedily, is right in every digit."""
    expected = digits_of(problems // 10**digits + problems % 10**digits, digits + 1)  # (N, digits + 1)
    answers = addition_answers(model, problems, digits)
    return (answers == (expected.flip(1) if reverse else expected)).all(1).float().mean().item()


# %%
def masked_step(model, optimizer, x, y, lr):
    """One step at learning rate lr on the loss of the targets that are not -1 (the answer's, when masked)."""
    for group in optimizer.param_groups:
        group['lr'] = lr
    logits, _ = model(x.to(device))  # (B, T, vocab_size)
    loss = F.cross_entropy(logits.flatten(0, 1), y.to(device).flatten(), ignore_index=-1)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


# %% [markdown]
# The loop: a fresh batch and one masked step at a time, the clock on training only (not the tests),
# the held-out problems answered every `every` steps.

# %%
def train_adder(get_batch, digits, steps, reverse=True, mask=True, every=100, seed=1337):
    """Notebook 04's GPT trained on get_batch's problems; returns it and a log of (step, seconds, held-out accuracy)."""
    train_problems, test_problems = addition_problems(digits)
    torch.manual_seed(seed)
    model = GPTLanguageModel(GPTConfig(vocab_size=len(ADD_VOCAB), block_size=3 * digits + 2, **ADDER)).to(device)
    optimizer = configure_optimizer(model, ADD_LR)
    log, seconds = [], 0.0
    for it in range(steps):
        t0 = time.perf_counter()
        x, y = get_batch(train_problems, ADD_BATCH, digits, reverse, mask)  # (B, T) each
        masked_step(model, optimizer, x, y, lr_at(it, ADD_LR, ADD_WARMUP, steps))
        sync()
        seconds += time.perf_counter() - t0
        if (it + 1) % every == 0 or it + 1 == steps:
            log.append((it + 1, seconds, addition_accuracy(model, test_problems, digits, reverse)))
    return model, log


# %% [markdown]
# **The main run**: 3-digit problems, reversed and masked; the goal, 99% exact match on the 1,000
# held-out problems within 5 minutes of training on a 2-core CPU.

# %% tags=["nbval-ignore-output"]
ADD_STEPS = 10 if SMOKE else 700  # training steps of every run of this exercise
adder, add_log = train_adder(get_addition_batch_solution, 3, ADD_STEPS)
reached = next((step for step, _, acc in add_log if acc >= 0.99), None)
step, seconds, accuracy = add_log[-1]
print(f"3 digits, reversed, masked: {accuracy:.1%} exact match on 1,000 held-out problems after {step} steps, "
      f"{seconds:.0f} s of training ({device}); 99% first reached "
      + (f"at step {reached}" if reached else "not at all"))
_, test_problems = addition_problems(3)
answers = addition_answers(adder, test_problems[:6], 3)
for problem, answer in zip(test_problems[:6].tolist(), answers):
    a, b = divmod(problem, 1000)
    usual = written(answer.flip(0))  # the answer read the usual way, most significant digit first
    print(f"  {a}+{b} = {usual} (written {written(answer)}): {'right' if usual == f'{a + b:04d}' else 'WRONG'}")

# %% [markdown]
# **What the two ideas are worth.** The same training (steps, schedule, seed) with one idea taken away
# at a time; 2-digit problems for comparison; the main run with another seed, to show the chance alone.

# %% tags=["nbval-ignore-output"]
add_runs = {"3 digits, reversed, masked (the main run)": (3, True, True, 1337, add_log)}
for label, (d, reverse, mask, seed) in {"3 digits, reversed, masked, another seed": (3, True, True, 1338),
                                        "3 digits, not reversed, masked": (3, False, True, 1337),
                                        "3 digits, reversed, not masked": (3, True, False, 1337),
                                        "2 digits, reversed, masked": (2, True, True, 1337)}.items():
    add_runs[label] = (d, reverse, mask, seed, train_adder(get_addition_batch_solution, d, ADD_STEPS, reverse, mask,
                                                           seed=seed)[1])
print(f"{'run':<44} {'steps':>6} {'seconds':>8} {'exact match':>12} {'99% at step':>12}")
for label, (d, reverse, mask, seed, log) in add_runs.items():
    first = next((step for step, _, acc in log if acc >= 0.99), None)
    print(f"{label:<44} {log[-1][0]:>6} {log[-1][1]:>8.0f} {log[-1][2]:>12.1%} {first or '-':>12}")

# %%
fig, ax = plt.subplots(figsize=(7, 3.5), constrained_layout=True)
for label, (d, reverse, mask, seed, log) in add_runs.items():
    _ = ax.plot([step for step, _, _ in log], [acc for _, _, acc in log], label=label)
_ = ax.axhline(0.99, color='grey', linestyle=':', label='99%')
_ = ax.set(xlabel='training step', ylabel='exact match, 1,000 held-out problems', ylim=(0, 1.02),
           title='Learning to add')
_ = ax.legend(fontsize=8)
show(fig, 'addition')

# %% [markdown]
# In the stored run (the 2-core CPU) four of the five runs passed 99% exact match on their 1,000
# held-out problems within 700 steps, 12 to 17 s of training each: well inside the goal of 99% in
# 5 minutes. The main run passed 99% only at its last step and ended at 99.9%; with another seed it
# passed it at step 400 and ended at 100%: the moment a run learns varies a lot by chance alone.
# Without reversed answers the model ended at 98.3%, the only run short of 99%; without the mask it
# passed 99% at step 400, as the other seed did, so one run each cannot tell the mask's effect from
# the seed's. At three digits reversing may help a little and masking is not needed in this budget;
# the carry travels further with more digits, where reversing should matter (see the exercises).

# %% [markdown]
# ## Summary
#
# - **Exercise 1**: the heads as a batch dimension compute exactly the lecture's multi-head
#   attention in fewer, larger operations, as nanoGPT writes it (notebook 05).
# - **Exercise 2**: notebook 04's GPT, unchanged, learned to add from fresh problems at every step,
#   a thousand held out for testing, the answers reversed and the questions masked.
#
# Next, notebook 06b: exercise 3 (pretrain on another text, finetune on tiny Shakespeare) and the
# lecture's last chapter; then 06c: exercise 4 (GELU, weight tying, rotary embeddings, each raced).
#
# ## More exercises
#
# 1. Extend exercise 2 to subtraction: add `-`, pick each row's operation at random, decide how a
#    negative result is written (a sign token, or only `a >= b`), keep the answer's width fixed. Does the
#    borrow need the lowest digit first too? Then try `*`, whose higher digits depend on many pairs.
# 2. How many digits can the same model add before 99% is out of reach in 5 minutes?
# 3. In exercise 2, give the model one block instead of two, or half the channels: what is the
#    smallest model that still reaches 99% on 3-digit problems within 700 steps?
# 4. Write exercise 1's module with `F.scaled_dot_product_attention`, check it with
#    `check_batched_heads`, and time it beside the solution with `ms_per_pass`.
