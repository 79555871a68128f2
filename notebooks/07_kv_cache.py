# %% [markdown]
# # 07 · Sampling fast: a cache of keys and values
#
# To write its 100th character, the lecture's `generate` runs all 99 before it through the model
# again, although it computed their keys and values while writing the 99th. This notebook keeps them in
# a cache, so that a new character costs one position instead of the whole context; proves that the
# cached sampler writes exactly the lecture's characters; and measures the gain, and where learned
# positions stop it. Beyond the lecture (it has no cache), after notebook 05's fast model. Standalone
# and a script: `python notebooks/07_kv_cache.py`, or add `--bench` to time both samplers and stop.
# Folded cells hold the plumbing every notebook carries so that it stands alone.

# %%
import argparse, hashlib, math, os, pathlib, platform, sys, tempfile, time, urllib.request
from dataclasses import asdict, dataclass, replace
import torch
import torch.nn as nn
from torch.nn import functional as F
import matplotlib
if "ipykernel" not in sys.modules:
    matplotlib.use("Agg")  # as a script, figures are saved as PNG files instead of opening windows
import matplotlib.pyplot as plt

SMOKE = os.environ.get("COURSE_SMOKE") == "1"  # set by the tests: a tiny model, few steps, same printed facts
IN_NOTEBOOK = "ipykernel" in sys.modules        # False when run as a script
RUN_NAME = "07_kv_cache"                        # as a script, figures go to runs/07_kv_cache/

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

def check_split_sizes(train_data, val_data, block_size, flag="block_size"):
    """Stop with one line if either split is too short for one chunk of block_size + 1 characters."""
    for split, d in (("training", train_data), ("validation", val_data)):
        if len(d) < block_size + 1:
            need = math.ceil((block_size + 1) / 0.1)
            raise SystemExit(f"error: the {split} split has {len(d)} characters, fewer than block_size + 1 = "
                             f"{block_size + 1}; use a text of at least {need:,} characters or a smaller {flag}")
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
#@title Plumbing: command-line checks (from 04_gpt: the parts this notebook uses)
class Parser(argparse.ArgumentParser):
    """argparse, except that a mistake on the command line is one line on stderr (exit status 2)."""

    def error(self, message):
        self.exit(2, f"error: {message}; see --help\n")

def check_flags(args, rules):
    """Stop with one line at the first flag that was given and breaks its rule: {name: (test, 'what it must be')}."""
    for name, (ok, must) in rules.items():
        value = getattr(args, name, None)
        if value is not None and not ok(value):
            raise SystemExit(f"error: --{name.replace('_', '-')} must be {must} (got {value})")

def positive(v):
    return v >= 1
# %% [markdown]
# ## The command line, and the data
#
# With no flags the script does what the notebook does. `--bench` only times both samplers on fresh
# weights (speed does not depend on them) and stops; a flag out of range stops with one line.

# %%
def parse_args(argv=None):
    """The command-line flags; argv=[] gives the defaults."""
    p = Parser(prog="07_kv_cache.py", description="Sample from the fast GPT with and without a cache of keys and values.")
    p.add_argument("--bench", action="store_true", help="only time cached against recomputed sampling, print the figures, and stop")
    p.add_argument("--num-chars", type=int, help="characters to sample for the timing (default: 2,000)")
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "mps", "cpu"], help="where to run (default: the fastest there is)")
    p.add_argument("--seed", type=int, default=1337, help="random seed of the training (default: 1337)")
    return p.parse_args(argv)


args = parse_args([] if IN_NOTEBOOK else None)
RULES = {"num_chars": (positive, "at least 1"), "seed": (lambda v: 0 <= v < 2**64, "between 0 and 2**64 - 1")}
check_flags(args, RULES)  # one line, and a stop, at the first flag out of range

# %%
text = load_text()  # the data, as in the other notebooks
chars = sorted(set(text))
stoi = {ch: i for i, ch in enumerate(chars)}
itos = {i: ch for i, ch in enumerate(chars)}
encode = lambda s: [stoi[c] for c in s]           # string -> list of integers
decode = lambda l: ''.join([itos[i] for i in l])  # list of integers -> string
data = torch.tensor(encode(text), dtype=torch.long)
n = int(0.9 * len(data))  # first 90% will be train, rest val
train_data, val_data = data[:n], data[n:]
print(f"{len(text):,} characters, vocab_size = {len(chars)}, train {len(train_data):,}, val {len(val_data):,}")

# %% [markdown]
# ## The lecture's model and notebook 05's fast model
#
# Folded copies of 04's `GPTConfig`, `GPTLanguageModel` and `generate`, and of 05's `FastGPT`, whose
# `CausalSelfAttention` computes all heads from one `qkv` layer with `F.scaled_dot_product_attention`
# (tests keep them equal); the lecture's `Block` holds it from the start, as its `Head`s would only be
# built to be replaced. `generate` is the yardstick: the cached sampler must write exactly what it writes.

# %% jupyter={"source_hidden": true} cellView="form"
#@title The lecture's model and notebook 05's fast model (copies of their code; the Block holds 05's attention)
@dataclass
class GPTConfig:
    """Sizes of the model; the defaults are the lecture's final configuration."""
    vocab_size: int = 65
    block_size: int = 256  # maximum context length
    n_embd: int = 384      # channels of every token vector
    n_head: int = 6        # heads per attention layer
    n_layer: int = 6       # blocks
    dropout: float = 0.2


def attention_by_hand(q, k, v, tril, dropout):
    """The lecture's Head for all heads at once: q, k, v (B, nh, T, hs) -> (B, nh, T, hs), dropout on the weights."""
    T = q.shape[-2]
    wei = q @ k.transpose(-2, -1) * k.shape[-1]**-0.5  # (B, nh, T, T)
    wei = wei.masked_fill(tril[:T, :T] == 0, float('-inf'))  # (B, nh, T, T)
    return dropout(F.softmax(wei, dim=-1)) @ v  # (B, nh, T, hs)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with one fused qkv linear and the heads as a batch dimension."""

    def __init__(self, config, flash=True):
        super().__init__()
        self.n_head, self.dropout_p, self.flash = config.n_head, config.dropout, flash
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=False)  # query, key, value of all heads
        self.proj = nn.Linear(config.n_embd, config.n_embd)
        self.attn_dropout = nn.Dropout(config.dropout)  # on the attention weights
        self.dropout = nn.Dropout(config.dropout)  # on the output
        self.register_buffer('tril', torch.tril(torch.ones(config.block_size, config.block_size)), persistent=False)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)  # (B, T, C) each
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        if self.flash:  # scores, mask, softmax, dropout and the weighted sum in one fused call
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.dropout_p if self.training else 0.0)
        else:
            y = attention_by_hand(q, k, v, self.tril, self.attn_dropout)  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C) the heads side by side again
        return self.dropout(self.proj(y))  # (B, T, C)


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


class Block(nn.Module):
    """Transformer block: communication (attention) followed by computation, each pre-normed."""

    def __init__(self, config):
        super().__init__()
        self.sa = CausalSelfAttention(config)  # 05's batched heads: the lecture's Head is never run here
        self.ffwd = FeedForward(config)
        self.ln1 = nn.LayerNorm(config.n_embd)
        self.ln2 = nn.LayerNorm(config.n_embd)

    def forward(self, x):
        x = x + self.sa(self.ln1(x))  # (B, T, C)
        x = x + self.ffwd(self.ln2(x))  # (B, T, C)
        return x


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


class FastBlock(Block):
    """The lecture's Block with CausalSelfAttention in place of MultiHeadAttention."""

    def __init__(self, config, flash=True):
        super().__init__(config)
        self.sa = CausalSelfAttention(config, flash)


class FastGPT(GPTLanguageModel):
    """The lecture's GPTLanguageModel built from FastBlocks."""

    def __init__(self, config, flash=True):
        super().__init__(config)
        self.blocks = nn.Sequential(*[FastBlock(config, flash) for _ in range(config.n_layer)])
        self.blocks.apply(_init_weights)


# %% [markdown]
# ## 1. What `generate` computes again
#
# Attention is causal: position `t` looks only at `0 … t`, so appending a character changes nothing
# at the positions before it, in any layer. Each layer's keys and values, for 9 characters and for the
# same 9 plus a 10th:

# %%
toy = GPTConfig(vocab_size=65, block_size=16, n_embd=64, n_head=4, n_layer=2, dropout=0.0)  # a small model for the checks
torch.manual_seed(1337)
model, idx = FastGPT(toy).eval(), torch.randint(0, toy.vocab_size, (1, 10))  # (B, T)
kv = []  # the keys and values (B, 9, 2C) of positions 0-8, from every layer's qkv output (B, T, 3C)
hooks = [block.sa.qkv.register_forward_hook(lambda module, inputs, out: kv.append(out[:, :9, toy.n_embd:]))
         for block in model.blocks]
with torch.no_grad():
    model(idx[:, :9]), model(idx)  # 9 characters, then the same 9 and a 10th
for hook in hooks:
    hook.remove()
for layer in range(toy.n_layer):
    same = torch.allclose(kv[layer], kv[toy.n_layer + layer], atol=1e-6)
    print(f"layer {layer}: the keys and values of positions 0-8 are unchanged by the 10th character: {same}")
    assert same

# %% [markdown]
# A step needs only the new character's query, key and value in each layer: writing `n` characters from
# one, `generate` runs `1 + 2 + … + n` positions through the model (up to `block_size`); a cache, `n`.
#
# ## 2. The cache, and attention over it
#
# The cache holds every layer's keys and values `(B, n_head, T, head_size)` for the `T` positions seen
# so far. It has no weights: what follows are functions of notebook 05's modules.

# %%
class KVCache:
    """The keys and values (B, nh, T, hs) of every layer for the T positions seen so far; len() is T."""

    def __init__(self, n_layer):
        self.keys, self.values = [None] * n_layer, [None] * n_layer  # each (B, nh, T, hs) once filled

    def __len__(self):
        return 0 if self.keys[0] is None else self.keys[0].shape[2]


# %% [markdown]
# `attend_cached` is `CausalSelfAttention.forward` for new positions only: their keys and values are
# appended to the layer's cache, and their queries attend over all of it. With nothing cached (a
# *prefill* of the prompt) it is ordinary causal attention. After `T_past` cached positions, new query
# `i` sees keys `0 … T_past + i`: a lower-triangular mask shifted right by `T_past` (`is_causal=True`
# aligns its mask to the top left). No dropout: sampling runs in `eval()` mode.

# %%
def attend_cached(attn, x, cache, layer):
    """CausalSelfAttention attn over new positions x (B, T, C) that follow the cache's; appends their keys and values."""
    B, T, C = x.shape
    q, k, v = attn.qkv(x).split(C, dim=2)  # (B, T, C) each
    q, k, v = (t.view(B, T, attn.n_head, C // attn.n_head).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
    if cache.keys[layer] is not None:
        k = torch.cat((cache.keys[layer], k), dim=2)  # (B, nh, T_past + T, hs)
        v = torch.cat((cache.values[layer], v), dim=2)  # (B, nh, T_past + T, hs)
    cache.keys[layer], cache.values[layer] = k, v
    if k.shape[2] == T:  # a prefill: nothing cached before, the ordinary causal mask
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
    else:  # query i sees the cached keys and the new ones up to its own
        mask = torch.ones(T, k.shape[2], dtype=torch.bool, device=x.device).tril(k.shape[2] - T)  # (T, T_past + T)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, nh, T, hs)
    y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C) the heads side by side again
    return attn.proj(y)  # (B, T, C)


# %% [markdown]
# **Check.** Prompts of 7, 4 and 1 positions, then two new ones at once and single ones up to 10, must
# give what `CausalSelfAttention` gives over all 10. To name a mistake it compares each head with
# PyTorch's attention (the output projection set to the identity), then the whole layer.

# %% jupyter={"source_hidden": true} cellView="form"
#@title The check of attend_cached (folded: open it to see how it works)
def cached_run(attend_cached, attn, x, P):
    """attend_cached over a prompt x[:, :P] (B, P, C), two new positions, then one at a time: outputs (B, T, C) and cache."""
    cache, outs = KVCache(1), []
    for a, b in [(0, P), (P, P + 2)] + [(t, t + 1) for t in range(P + 2, x.shape[1])]:
        out = attempt(f"attend_cached on new positions of shape {tuple(x[:, a:b].shape)} after {a} cached ones",
                      attend_cached, attn, x[:, a:b], cache, 0)  # (B, b - a, C)
        check(isinstance(out, torch.Tensor) and out.shape == x[:, a:b].shape, f"attend_cached returned "
              f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__} for new positions of shape "
              f"{tuple(x[:, a:b].shape)}: return (B, T, C) for the new positions only")
        outs.append(out)
    return torch.cat(outs, dim=1), cache


def check_attend_cached(attend_cached, config):
    """Prompts, then new positions through attend_cached (two, then one at a time) must equal CausalSelfAttention."""
    torch.manual_seed(0)
    C, nh, T = config.n_embd, config.n_head, 10
    attn, plain = CausalSelfAttention(config).eval(), CausalSelfAttention(config).eval()
    plain.load_state_dict({**attn.state_dict(), "proj.weight": torch.eye(C), "proj.bias": torch.zeros(C)})  # heads as they are
    heads = lambda t: t.reshape(t.shape[0], -1, nh, C // nh).transpose(1, 2)  # (B, T, C) -> (B, nh, T, hs)
    for B, P in ((3, 7), (1, 4), (2, 1)):
        x = torch.randn(B, T, C)  # (B, T, C)
        with torch.no_grad():
            y, cache = cached_run(attend_cached, plain, x, P)
            q, k, v = (heads(t) for t in plain.qkv(x).split(C, dim=2))  # (B, nh, T, hs) each
        check(len(cache) == T, f"after a prompt of {P} and {T - P} new positions the cache holds {len(cache)} positions, "
              f"not {T}: append the new keys and values to the cached ones (torch.cat along dim=2) and store the result")
        want = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
        check(P == 1 or nh == 1 or not torch.allclose(y[:, :P], want[:, :, :P].reshape(B, P, C), atol=1e-5), "the heads are put "
              "side by side without moving them back next to each other: y.transpose(1, 2).contiguous().view(B, T, C)")
        mistake = attention_diagnosis(heads(y)[:, :, :P], q[:, :, :P], k[:, :, :P], v[:, :, :P], C)
        check(mistake is None, f"attend_cached over a prompt of {P} is not causal self-attention: {mistake}")
        check_cache_holds(cache, k, v, P)
        last = heads(y)[:, :, -1:]  # (B, nh, 1, hs) the last single step
        check(not torch.allclose(last, v[:, :, :1], atol=1e-5), "a new position after cached ones sees only the first key: "
              "is_causal=True aligns its mask to the top left; shift the mask right by the cached length")
        check(not torch.allclose(last, v[:, :, -1:], atol=1e-5), "a new position attends only to itself: its query must "
              "see the cached keys and values too (concatenate them before the attention)")
        check(torch.allclose(heads(y), want, atol=1e-5), f"after a prompt of {P}, the new positions (two at once, then "
              "single ones) do not attend like causal attention over the whole sequence: new query i must see every "
              "cached key and the new ones up to its own, nothing later")
        with torch.no_grad():
            check(torch.allclose(cached_run(attend_cached, attn, x, P)[0], attn(x), atol=1e-5), "the heads attend "
                  "correctly but the output differs from CausalSelfAttention's: apply attn.proj, once, to the heads side by side")
    return Passed(f"attend_cached: passed (prompts of 7, 4 and 1, then two new positions and single ones up to {T}, equal CausalSelfAttention)")


def check_cache_holds(cache, k, v, P):
    """The cache after the run holds the keys and the values (B, nh, T, hs) of the whole sequence, in its order."""
    for what, twin, got, want, other in (("keys", "values", cache.keys[0], k, v), ("values", "keys", cache.values[0], v, k)):
        if not isinstance(got, torch.Tensor) or got.shape != want.shape or torch.allclose(got, want, atol=1e-5):
            continue
        check(not torch.allclose(got[:, :, :P], other[:, :, :P], atol=1e-5), f"after a prompt of {P}, the cached "
              f"{what} of the prompt are its {twin}: the new {what} are concatenated onto the cached {twin}, not the cached {what}")
        found = [any(torch.allclose(got[:, :, j], want[:, :, i], atol=1e-5) for i in range(want.shape[2]))
                 for j in range(got.shape[2])]
        check(not all(found), f"after a prompt of {P}, the cache holds the sequence's {what} out of order: the new "
              f"{what} go after the cached ones, torch.cat((cached, new), dim=2), so that position t stays at index t")
        check(False, f"after a prompt of {P}, the cached {what} are not the {what} of the sequence: store the "
              f"cached {what} with the new ones appended (the {what} from qkv, per head, along dim=2)")


# %%
check_attend_cached(attend_cached, toy)


# %% [markdown]
# ## 3. The model, one new position at a time
#
# `forward_cached` is the forward pass for new characters after the cached ones, at positions
# `len(cache) …` (not `0 …`), each block's attention through the cache.

# %%
def forward_cached(model, idx, cache):
    """Logits (B, T, vocab_size) of a FastGPT for new tokens idx (B, T) that follow the cache's positions; fills the cache."""
    T = idx.shape[1]
    pos = torch.arange(len(cache), len(cache) + T, device=idx.device)  # (T,) the positions after the cached ones
    x = model.token_embedding_table(idx) + model.position_embedding_table(pos)  # (B, T, C)
    for layer, block in enumerate(model.blocks):
        x = x + attend_cached(block.sa, block.ln1(x), cache, layer)  # (B, T, C)
        x = x + block.ffwd(block.ln2(x))  # (B, T, C)
    return model.lm_head(model.ln_f(x))  # (B, T, vocab_size)


# %% [markdown]
# ### When the context is full
#
# The positions are learned, one row each for `0 … block_size - 1`: with `block_size` cached there is no
# row for the next, and the cache cannot slide. `generate` crops the context to its last `block_size`
# characters, moving each one left and changing every key and value; to write exactly that, the cached
# sampler prefills the cropped window afresh once it is full, so every later step costs a full window.
# `next_logits_cached` is one step of sampling; `next_logits_recomputed`, the lecture's.

# %%
def next_logits_cached(model, idx, cache):
    """Logits (B, vocab_size) of the token after idx (B, T), given a cache of idx[:, :-1] (or None); returns them and the cache."""
    block_size = model.config.block_size
    if cache is None or len(cache) == block_size:  # the start, or the window is full: prefill the last block_size tokens
        cache = KVCache(model.config.n_layer)
        return forward_cached(model, idx[:, -block_size:], cache)[:, -1, :], cache  # (B, vocab_size)
    return forward_cached(model, idx[:, -1:], cache)[:, -1, :], cache  # one position: the newest token


def next_logits_recomputed(model, idx, cache=None):
    """Logits (B, vocab_size) of the token after idx (B, T), as the lecture's generate computes them: the whole window."""
    return model(idx[:, -model.config.block_size:])[0][:, -1, :], None


# %% [markdown]
# **Check.** Random characters one at a time from a prompt of three, far past the full window, then from
# a prompt longer than it: after each step the cache holds the right number of positions and the logits
# equal the full pass's on the same (cropped) context; hooks name the first piece fed otherwise.

# %% jupyter={"source_hidden": true} cellView="form"
#@title The check of next_logits_cached (folded: open it to see how it works)
def stream_inputs(model, run):
    """run()'s result and {piece: the input (B, C) at the last position} of each block's ln1 and ln2, of ln_f and lm_head."""
    seen, modules = {}, [(f"{name} {i}", getattr(b, name)) for i, b in enumerate(model.blocks) for name in ("ln1", "ln2")]
    hooks = [m.register_forward_hook(lambda m, inputs, out, key=key: None if key in seen else seen.update({key: inputs[0][:, -1]}))
             for key, m in modules + [("ln_f", model.ln_f), ("lm_head", model.lm_head)]]
    try:
        return run(), seen
    finally:
        for hook in hooks:
            hook.remove()


def first_difference(got, want, n_layer):
    """The likely mistake: the first piece, in forward order, whose input (from stream_inputs) is missing or differs."""
    reads = {"ln1": "its attention reads block.ln1(x)", "ln2": "its feed-forward reads block.ln2(x)"}
    for key in [f"{name} {i}" for i in range(n_layer) for name in ("ln1", "ln2")] + ["ln_f", "lm_head"]:
        name, _, i = key.partition(" ")
        if key not in got:
            return (f"block {i}'s {name} is never applied: {reads[name]}" if i else f"model.{name} is never applied: "
                    "the logits are model.lm_head(model.ln_f(x))")
        if not torch.allclose(got[key], want[key], atol=1e-5):
            i = int(i or n_layer)
            return ("the input of block 0 differs, so the embeddings do: token_embedding_table(idx) plus "
                    "position_embedding_table at positions len(cache) … len(cache) + T - 1" if key == "ln1 0" else
                    f"the stream after block {i}'s attention differs: x = x + attend_cached(block.sa, block.ln1(x), "
                    f"cache, {i}), with this block's own layer of the cache" if name == "ln2" else
                    f"the stream after block {i - 1}'s feed-forward differs: x = x + block.ffwd(block.ln2(x))"
                    if name != "lm_head" else "lm_head's input is not ln_f's output: model.lm_head(model.ln_f(x))")
    return "every piece is fed as in the full pass, so the logits are not lm_head's at the last position ([:, -1, :])"


def check_cached_logits(next_logits, config):
    """Each step of next_logits(model, idx, cache) must give model(idx[:, -block_size:])'s last logits, past the window."""
    torch.manual_seed(0)
    model, bs, V = FastGPT(config).eval(), config.block_size, config.vocab_size
    tokens = torch.randint(0, V, (2, 3 * bs))  # (B, 3 * block_size)
    with torch.no_grad():
        for norm in (m for m in model.modules() if isinstance(m, nn.LayerNorm)):  # gains and biases as after training,
            norm.weight.normal_(1.0, 0.3), norm.bias.normal_(0.0, 0.3)         # so that no two layer norms are alike
        for start, end in ((3, 3 * bs), (bs + 2, bs + 6)):  # a prompt of 3 characters; one longer than block_size
            cache = None
            for t in range(start, end + 1):
                idx, held = tokens[:, :t], len(cache) if cache is not None else 0  # (B, t)
                where = (f"the prefill of a prompt of {t}" if t == start else f"step {t - start} (position {t - 1})"
                         if t <= bs else f"step {t - start}, after the window filled")
                try:
                    (logits, cache), got = stream_inputs(model, lambda: next_logits(model, idx, cache))
                except Exception as e:  # a position past the learned ones, or another crash: one sentence either way
                    check(t <= bs or not isinstance(e, IndexError), f"with {t} characters of context, more than block_size = "
                          f"{bs}, {where} asked for a position past {bs - 1}: positions are learned, so prefill the last "
                          "block_size characters afresh")
                    raise CheckFailed(f"next_logits_cached raised {type(e).__name__} at {where}, with idx of shape "
                                      f"{tuple(idx.shape)} and {held} positions cached: {(str(e).splitlines() or [repr(e)])[0]}") from None
                check(isinstance(logits, torch.Tensor) and logits.shape == (2, V), f"at {where} next_logits_cached "
                      f"returned logits of shape {tuple(getattr(logits, 'shape', ()))}, not (B, vocab_size) = (2, {V}): "
                      "return (the last position's logits, the cache)")
                expected, want = stream_inputs(model, lambda: model(idx[:, -bs:])[0][:, -1, :])  # (B, vocab_size)
                layers = [None if k is None else k.shape[2] for k in getattr(cache, "keys", [])]
                check(len(set(layers)) <= 1, f"after {t} characters the cache's layers hold {layers} positions: each "
                      "block must append to its own layer of the cache, attend_cached(block.sa, ..., cache, layer)")
                n, want_n = len(cache), min(t, bs)
                check(n <= want_n, f"after {t} characters the cache holds {n} positions, more than {want_n}: after the "
                      "prefill, feed only the newest token, idx[:, -1:], through the cache")
                check(n == want_n, f"after {t} characters the cache holds {n} positions, not {want_n}: " + (
                      "append each step's keys and values to the cache instead of replacing them" if t <= bs else
                      "when the window is full, prefill the last block_size characters into a fresh cache"))
                check(torch.allclose(logits, expected, atol=1e-5), f"the cached logits of {where} differ from the full "
                      "forward pass's: " + (first_difference(got, want, config.n_layer) if t <= bs or t == start else
                      "positions are learned, so the cache cannot slide: when it is full, prefill the last block_size afresh"))
    return Passed(f"next_logits_cached: passed (a prompt of 3, then {3 * bs - 3} steps, {2 * bs} of them after the window "
                  f"of {bs} filled, and a prompt longer than the window, equal the full forward pass)")


# %%
check_cached_logits(next_logits_cached, toy)


# %% [markdown]
# ## 4. Sampling with the cache
#
# `generate_cached` samples as `generate` does (`temperature`, `top_k`, `eval()` mode without gradients,
# the mode restored after); only the logits come from the cache, and each call starts with an empty one.

# %%
@torch.no_grad()
def generate_cached(model, idx, max_new_tokens, temperature=1.0, top_k=None):
    """The lecture's generate with a cache of keys and values: the same samples, less work per character."""
    was_training = model.training
    model.eval()
    cache = None
    for _ in range(max_new_tokens):
        logits, cache = next_logits_cached(model, idx, cache)  # (B, vocab_size)
        logits = logits / temperature  # (B, vocab_size)
        if top_k is not None:
            kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, [-1]]  # (B, 1)
            logits = logits.masked_fill(logits < kth, float('-inf'))  # (B, vocab_size)
        idx_next = torch.multinomial(F.softmax(logits, dim=-1), num_samples=1)  # (B, 1)
        idx = torch.cat((idx, idx_next), dim=1)  # (B, T+1)
    model.train(was_training)
    return idx


# %% [markdown]
# **Check.** With the same weights and seed, `generate_cached` must write what `generate` writes: a short
# call, the same again (nothing may outlive a call), far past the window, low and high temperature,
# `top_k`, a long prompt; the model has dropout, so `eval()` shows, and its mode must be restored.

# %% jupyter={"source_hidden": true} cellView="form"
#@title The check of generate_cached (folded: open it to see how it works)
def check_generate_cached(generate_cached, config):
    """generate_cached must write exactly what generate writes, with the same weights and seed, in eval mode without gradients."""
    torch.manual_seed(0)
    model, bs, V = FastGPT(replace(config, dropout=0.2)), config.block_size, config.vocab_size  # in training mode
    with torch.no_grad():
        model.lm_head.weight.mul_(10)  # logits spread as a trained model's, so that temperature and top_k matter
    seen, short = [], torch.randint(0, V, (2, 3))  # (B, T)
    model.token_embedding_table.register_forward_hook(lambda *_: seen.append((model.training, torch.is_grad_enabled())))
    calls = [(short, bs // 2, {}), (short, bs // 2, {}), (torch.randint(0, V, (1, 3)), 3 * bs, {}),
             (short, 3 * bs, {"temperature": 0.5}), (torch.randint(0, V, (2, bs + 4)), 2 * bs, {"temperature": 2.0, "top_k": 3})]
    for call, (prompt, n, settings) in enumerate(calls):
        torch.manual_seed(1)
        expected = generate(model, prompt, n, **settings)  # (B, T + n)
        torch.manual_seed(1)
        seen.clear()
        what = f"generate_cached(idx of shape {tuple(prompt.shape)}, {n}" + "".join(f", {k}={v}" for k, v in settings.items()) + ")"
        got = attempt(what, generate_cached, model, prompt, n, **settings)
        check(isinstance(got, torch.Tensor) and got.shape == expected.shape, f"{what} gave "
              f"{tuple(getattr(got, 'shape', ()))}, not {tuple(expected.shape)}: append one token per step to idx and return it")
        check(all(not training and not grad for training, grad in seen), f"{what} ran the model in training mode or "
              "with gradients: use model.eval() and @torch.no_grad()")
        differ = (got != expected).any(0).nonzero()
        check(len(differ) == 0 or call != 1, f"called a second time with the same prompt and seed, {what} wrote other "
              "characters than the first time: something outlived the first call (start every call with an empty cache)")
        check(len(differ) == 0, f"with the same seed, {what} wrote other characters than generate from character "
              f"{differ[0].item() if len(differ) else 0} on: sample as generate does (logits / temperature, top_k, "
              "softmax, torch.multinomial) from the cached logits")
        check(model.training, "generate_cached left a model that was in training mode in eval mode: put it back with "
              "model.train(was_training)")
    attempt("generate_cached(a model in eval mode, idx of shape (2, 3), 2)", generate_cached, model.eval(), short, 2)
    check(not model.training, "generate_cached put a model that was in eval mode into training mode: restore the mode "
          "it found, model.train(was_training)")
    return Passed(f"generate_cached: passed (the same characters as generate in {len(calls)} calls, past the window, "
                  "with and without temperature and top_k; the model's mode restored)")


# %%
check_generate_cached(generate_cached, toy)

# %% [markdown]
# The work, counted rather than timed: positions through the toy model (`block_size = 16`, a hook on
# the token embedding counts them) from a one-character prompt; then the memory a cache takes.

# %%
def positions_computed(sample, model, max_new_tokens):
    """How many positions sample(model, idx, max_new_tokens) runs through the model, from a one-character prompt."""
    count = []
    hook = model.token_embedding_table.register_forward_hook(lambda module, inputs, out: count.append(inputs[0].numel()))
    sample(model, torch.zeros((1, 1), dtype=torch.long), max_new_tokens)
    hook.remove()
    return sum(count)


# %%
model = FastGPT(toy)
check(positions_computed(generate_cached, model, toy.block_size - 1) == toy.block_size - 1,
      "within the window generate_cached should feed the model one position per character (the prompt's, then "
      "each new one): is the cache used, or rebuilt at every step?")
for n in (toy.block_size, 10 * toy.block_size):
    recomputed, cached = positions_computed(generate, model, n), positions_computed(generate_cached, model, n)
    print(f"{n:3} new characters: generate computes {recomputed:5,} positions, generate_cached {cached:5,} "
          f"(generate: {recomputed / cached:.2f}x as many)")
lecture = GPTConfig()  # its cache: keys and values, (1, n_head, block_size, head_size) each, per layer, in float32
print(f"memory of the cache for one full sequence of the lecture's model: 2 x {lecture.n_layer} layers x "
      f"{lecture.block_size} positions x {lecture.n_embd} channels x 4 bytes = "
      f"{2 * lecture.n_layer * lecture.block_size * lecture.n_embd * 4 / 2**20:.2f} MiB")


# %% [markdown]
# ## 5. A model worth sampling from
#
# To sample text rather than noise, train a fast model briefly (the lecture's AdamW, a constant
# learning rate), sized by the device: the lecture's configuration on CUDA, notebook 05's CPU size
# elsewhere (4 layers of 128 channels, `block_size = 64`). The stored run (the 2-core CPU, seed 1337,
# 400 steps) reached a whole-split validation loss of 2.0268: words, names and line breaks, not yet
# good Shakespeare; the training cell prints where yours landed.

# %% tags=["nbval-ignore-output"]
device = pick_device(args.device)
SAMPLER_SIZES = {  # device: (model sizes, batch, steps, learning rate)
    "tiny": (dict(block_size=16, n_embd=32, n_head=2, n_layer=2, dropout=0.0), 8, 20, 1e-3),
    "cuda": (dict(block_size=256, n_embd=384, n_head=6, n_layer=6, dropout=0.2), 64, 500, 1e-3),
    "cpu": (dict(block_size=64, n_embd=128, n_head=4, n_layer=4, dropout=0.0), 32, 400, 2e-3),
}
sizes, batch_size, max_iters, learning_rate = SAMPLER_SIZES["tiny" if SMOKE else "cuda" if device == "cuda" else "cpu"]
config = GPTConfig(vocab_size=len(chars), **sizes)
check_split_sizes(train_data, val_data, config.block_size)
block_size = config.block_size
num_chars = args.num_chars or (200 if SMOKE else 2000)  # characters per timed sample
repeats = 2 if SMOKE else 3                             # timed turns of each sampler (each step keeps its fastest)
print(describe_device(device))
print(f"config: {asdict(config)}; training: batch {batch_size}, {max_iters} steps, lr {learning_rate}; "
      f"timing: {num_chars:,} characters, the fastest of {repeats} turns")


# %%
def sync():
    """Wait for the device to finish its queued work, so that timings are real."""
    if device == 'cuda':
        torch.cuda.synchronize()
    elif device == 'mps':
        torch.mps.synchronize()


def get_batch_on_device(data, batch_size, block_size):
    """Random (B, T) inputs and targets gathered from data, a split that already lives on the device."""
    ix = torch.randint(len(data) - block_size, (batch_size, 1), device=data.device)  # (B, 1) offsets
    pos = ix + torch.arange(block_size + 1, device=data.device)  # (B, T+1) positions of each chunk
    chunk = data[pos]  # (B, T+1)
    return chunk[:, :-1], chunk[:, 1:]  # (B, T) inputs, (B, T) targets


# %% [markdown]
# ## 6. Timing both, character by character
#
# Each sampler writes `num_chars` characters (2,000 by default) from one, every step timed; the two take
# turns `repeats` times and each step keeps its fastest time (other work only ever adds time).

# %%
def ms_per_character(next_logits, model, num_chars, seed=0):
    """Milliseconds (num_chars,) spent on each new character with next_logits, from a one-character prompt."""
    times, was_training = torch.zeros(num_chars), model.training
    model.eval()
    torch.manual_seed(seed)
    with torch.no_grad():
        idx, cache = torch.zeros((1, 1), dtype=torch.long, device=device), None  # (B, T) index 0, a newline
        for i in range(num_chars):
            sync()
            t0 = time.perf_counter()
            logits, cache = next_logits(model, idx, cache)  # (B, vocab_size)
            idx = torch.cat((idx, torch.multinomial(F.softmax(logits, dim=-1), num_samples=1)), dim=1)  # (B, T+1)
            sync()
            times[i] = time.perf_counter() - t0
    model.train(was_training)
    return times * 1e3  # (num_chars,)


# %%
def print_speeds(model, num_chars, repeats):
    """Both samplers' fastest ms per character over repeats turns; prints characters per second, returns the times."""
    samplers = {"generate (recomputes the window)": next_logits_recomputed, "generate_cached": next_logits_cached}
    runs = {name: [] for name in samplers}
    for r in range(repeats):
        for name, next_logits in samplers.items():
            runs[name].append(ms_per_character(next_logits, model, num_chars, seed=r))
    ms = {name: torch.stack(times).min(0).values for name, times in runs.items()}  # (num_chars,) each
    for label, part in ((f"the first {model.config.block_size:,} characters (the window)", slice(0, model.config.block_size)),
                        (f"all {num_chars:,} characters", slice(None))):
        (old, rate_old), (new, rate_new) = ((name, 1e3 / t[part].mean().item()) for name, t in ms.items())
        print(f"{label}: generate {rate_old:,.0f} chars/s, generate_cached {rate_new:,.0f} chars/s: {rate_new / rate_old:.2f}x")
    return ms


# %% tags=["nbval-ignore-output"]
if args.bench:  # --bench stops here, after timing both on freshly initialised weights
    print(f"bench: generate against generate_cached on freshly initialised weights, the fastest of {repeats} turns")
    torch.manual_seed(args.seed)
    print_speeds(FastGPT(config).to(device), num_chars, repeats)
    sys.exit(0)


# %%
def train_briefly(config, batch_size, steps, learning_rate, seed=1337):
    """A FastGPT trained for steps steps with the lecture's AdamW; returns it and the last batch's loss."""
    torch.manual_seed(seed)
    model = FastGPT(config).to(device)
    optimizer, train_on_device = torch.optim.AdamW(model.parameters(), lr=learning_rate), train_data.to(device)
    for it in range(steps):
        x, y = get_batch_on_device(train_on_device, batch_size, config.block_size)  # (B, T) each
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model, loss.item()


# %%
@torch.no_grad()
def split_loss(model, data, batch=256):
    """Mean loss of model over a whole split, cut into non-overlapping block_size chunks."""
    model.eval()
    n = (len(data) - 1) // block_size * block_size
    x, y = data[:n].view(-1, block_size), data[1:n + 1].view(-1, block_size)  # (N, T) each
    total = sum(model(xb.to(device), yb.to(device))[1] * len(xb) for xb, yb in zip(x.split(batch), y.split(batch)))
    model.train()
    return (total / len(x)).item()


# %% tags=["nbval-ignore-output"]
t0 = time.perf_counter()
model, last_loss = train_briefly(config, batch_size, max_iters, learning_rate, seed=args.seed)
sync()
print(f"{max_iters} steps in {time.perf_counter() - t0:.1f} s; last batch's loss {last_loss:.4f}, "
      f"whole-split val loss {split_loss(model, val_data):.4f}")

# %% tags=["nbval-ignore-output"]
# With the same seed both samplers must write the same text (two ways of adding the same numbers can
# differ in the last bit: if a draw fell on such a boundary, the cell would say where the texts part).
start = torch.zeros((1, 1), dtype=torch.long, device=device)  # (B, T) one character, a newline
samples = []
for sample in (generate, generate_cached):
    torch.manual_seed(0)
    samples.append(sample(model, start, num_chars)[0])  # (T,)
differ = (samples[0] != samples[1]).nonzero()
print(f"the same {num_chars:,} characters both ways: {len(differ) == 0}"
      + (f" (they part at character {differ[0].item()})" if len(differ) else ""))
print(decode(samples[1][:300].tolist()))

# %% tags=["nbval-ignore-output"]
steps_ms = print_speeds(model, num_chars, repeats)  # the timing on the trained model, then each character's cost
fig, ax = plt.subplots(figsize=(7, 3.5), constrained_layout=True)
for name, ms in steps_ms.items():
    _ = ax.plot(range(1, 3 * block_size + 1), ms[:3 * block_size], label=name)
_ = ax.axvline(block_size, color='grey', linestyle=':', label=f'the window is full (block_size = {block_size})')
_ = ax.set(xlabel='characters in the context when the next one is written', ylabel='ms per new character',
           ylim=(0, None), title=f'The cost of each character ({device})')
_ = ax.legend()
show(fig, 'ms_per_character')

# %% [markdown]
# In the stored run the cached sampler ran at 2.23x the lecture's speed within the window and at 1.00x
# over 2,000 characters: past the first `block_size` every step is a prefill of the whole window, as
# costly as the lecture's, whose step grows with the context up to `block_size` while the cached one
# stays nearly flat. On a small model and a CPU much of a step is fixed cost (Python, small matrix
# products, the sampling), so one position instead of a window saves less than the count above suggests.
#
# ## Summary
#
# - A cache of each layer's keys and values makes a step of sampling cost one position instead of the
#   whole context: causal attention never changes what earlier positions computed.
# - Each piece was checked against an oracle: the cached attention against `CausalSelfAttention`, each
#   step's logits against the full forward pass (before and after the window fills, naming the first
#   piece fed otherwise), the samples against `generate`, character for character, call after call.
# - Learned positions limit the gain: past `block_size` every position moves and the cache must be
#   rebuilt at every step; the gain holds for the first `block_size` characters (256 in the lecture).
#
# ## Exercises
#
# 1. Instead of a prefill of the whole window at every step once it is full, prefill only the last
#    `block_size // 2` characters and keep appending until the window is full again. Measure the
#    speed over 2,000 characters. The samples are no longer the lecture's: why?
# 2. Sample 16 sequences at once (`idx` of shape `(16, 1)`). How do the two samplers' characters per
#    second change, per sequence and in all?
# 3. Rotary position embeddings (RoPE, used by LLaMA) rotate queries and keys by their position instead
#    of adding a learned row. Why does that let a cache slide past `block_size`? (Not exactly the
#    recomputed window: deeper layers' cached keys and values saw the dropped characters. How much
#    does that change the samples?)
