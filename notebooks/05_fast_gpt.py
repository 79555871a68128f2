# %% [markdown]
# # 05 · Making the GPT fast
#
# Notebook 04's GPT is the lecture's, written for clarity: every head is its own module, batches are
# assembled in a Python loop, everything runs in float32. The lecture's model needs about 15 minutes on
# an A100 to reach a validation loss of 1.48; nanoGPT, the same size, gets there in about 3. This
# notebook makes nanoGPT's changes one at a time, checks that each still computes the lecture's
# function, and times each against the lecture's code in the same run, following the lecture's walk
# through nanoGPT (**1:46:22 to 1:48:53**). Next in reading order: 05b takes the GPU's tricks apart on
# a CPU (half precision and the gradient scaler, `torch.compile`, the fused optimizer) and shows that
# the fast model is the lecture's; 05c trains the fast model against the clock.
#
# Standalone (it downloads its data) and a script: `python notebooks/05_fast_gpt.py`; `--bench` only
# times the lecture's model against the fast one.

# %%
import argparse, copy, hashlib, math, os, pathlib, platform, shlex, shutil, statistics, sys, tempfile, time, urllib.request
from dataclasses import asdict, dataclass
import torch
import torch.nn as nn
from torch.nn import functional as F
import matplotlib
if "ipykernel" not in sys.modules:
    matplotlib.use("Agg")  # as a script, figures are saved as PNG files instead of opening windows
import matplotlib.pyplot as plt

SMOKE = os.environ.get("COURSE_SMOKE") == "1"  # set by the tests: tiny sizes and few steps
IN_NOTEBOOK = "ipykernel" in sys.modules        # False when run as a script
RUN_NAME = "05_fast_gpt"                        # as a script, figures go to runs/05_fast_gpt/

# %% [markdown]
# The next cells are plumbing every notebook carries so that it stands alone (folders, figures,
# the device, the data, the checks, the command line); they are folded in Jupyter and Colab.

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
# ## The command line
#
# With no `--bench` the script does what the notebook does; the model's size is a flag too. A flag out
# of range stops with one line; the race's (`--race`, `--max-iters`, ...) name notebook 05c's command.

# %% jupyter={"source_hidden": true} cellView="form"
#@title Plumbing: this notebook's flags (unfold to read them; `--help` lists them too)
RACE_FLAGS = ["--max-iters", "--batch-size", "--learning-rate", "--warmup", "--seed"]  # notebook 05c's now, with --race


def parse_args(argv=None):
    """The flags (argv=[] gives the defaults; None: sized for the device); the race's are answered in one line."""
    argv = sys.argv[1:] if argv is None else argv
    p = Parser(prog="05_fast_gpt.py", description="Time the lecture's GPT against the fast one (the race: 05c_against_the_clock.py).")
    g = p.add_argument_group("what to run (default: everything the notebook does)")
    g.add_argument("--bench", action="store_true", help="only time the lecture's model against the fast one, and print the figures")
    g.add_argument("--device", default="auto", choices=["auto", "cuda", "mps", "cpu"], help="where to run (default: the fastest there is)")
    g.add_argument("--compile", default="auto", choices=["auto", "yes", "no"],
                   help="the benchmark's torch.compile row (default auto, like yes: when a compiler is found; no: left out)")
    g = p.add_argument_group("model (default: sized for the device)")
    g.add_argument("--n-layer", type=int, help="blocks")
    g.add_argument("--n-head", type=int, help="attention heads per block (must divide --n-embd)")
    g.add_argument("--n-embd", type=int, help="channels of every token vector")
    g.add_argument("--block-size", type=int, help="context length in characters")
    g.add_argument("--dropout", type=float, help="dropout rate, 0 <= rate < 1")
    g = p.add_argument_group("the race, now in notebook 05c: each flag is answered with its command")
    for flag in ["--race"] + RACE_FLAGS:
        g.add_argument(flag, **dict(action="store_const", const=True) if flag == "--race" else {})
    args = p.parse_args(argv)
    moved = [f for f in ["--race"] + RACE_FLAGS if getattr(args, f[2:].replace("-", "_")) is not None]
    if moved:
        p.exit(2, f"error: the race now lives in notebook 05c, and {moved[0]} with it: python notebooks/05c_against_the_clock.py "
                  f"{shlex.join(a for a in argv if a != '--bench')} (its --help lists every flag)\n")
    return args


args = parse_args([] if IN_NOTEBOOK else None)

# %% jupyter={"source_hidden": true} cellView="form"
#@title Plumbing: every flag of this notebook checked before anything runs
RULES = {"n_layer": (positive, "at least 1"), "n_head": (positive, "at least 1"), "n_embd": (positive, "at least 1"),
         "block_size": (positive, "at least 1"), "dropout": (lambda v: 0 <= v < 1, "at least 0 and below 1")}


def check_args(args):
    """Stop with one line if a flag is out of range or does not go with another."""
    check_flags(args, RULES)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise SystemExit("error: notebook 05 times one process; under torchrun use notebook 08: "
                         "torchrun --standalone --nproc_per_node=N notebooks/08_ddp.py --race")
    if args.n_embd and args.n_head and args.n_embd % args.n_head:
        raise SystemExit(f"error: --n-embd {args.n_embd} must be divisible by --n-head {args.n_head} (each head gets n_embd / n_head channels)")


check_args(args)

# %% [markdown]
# ## The data, as in the other notebooks

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

# %% [markdown]
# ## The lecture's model, exactly as notebook 04 built it
#
# The starting point and the yardstick: `Head`, `MultiHeadAttention`, `FeedForward`, `Block` and
# `GPTLanguageModel`, copied from notebook 04 (a test keeps the copies equal) and folded.

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
        return wei @ self.value(x)  # (B, T, T) @ (B, T, hs) -> (B, T, hs)


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


# %% [markdown]
# ## 1. All heads in one batched matrix multiplication [▶ 1:46:22](https://www.youtube.com/watch?v=kCc8FmEb1nY&t=6382s)
#
# The lecture's exercise 1, and what nanoGPT does. `MultiHeadAttention` runs `n_head` small `Head`
# modules one after another, each with its own key, query and value matrices. Stack those matrices
# into one `qkv` linear layer of width `3 * n_embd`, treat the heads as one more batch dimension,
# `(B, n_head, T, head_size)`, and the layer becomes three large matrix multiplications instead of
# `3 * n_head` small ones. With `flash=False` the lecture's attention runs by hand on all heads at once
# (`attention_by_hand`, in a cell of its own); with `flash=True`, PyTorch's fused
# `F.scaled_dot_product_attention` does the scores, mask, softmax and weighted sum in one call (section 2).

# %%
def attention_by_hand(q, k, v, tril, dropout):
    """The lecture's Head for all heads at once: q, k, v (B, nh, T, hs) -> (B, nh, T, hs), dropout on the weights."""
    T = q.shape[-2]
    wei = q @ k.transpose(-2, -1) * k.shape[-1]**-0.5  # (B, nh, T, T)
    wei = wei.masked_fill(tril[:T, :T] == 0, float('-inf'))  # (B, nh, T, T)
    return dropout(F.softmax(wei, dim=-1)) @ v  # (B, nh, T, hs)


# %%
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


# %% [markdown]
# **Check.** With the output projection set to the identity, the output is the heads side by side;
# each must equal PyTorch's own `F.scaled_dot_product_attention` on its queries, keys and values, at
# the full context and a shorter one; `proj` comes last, the dropout rates are `config.dropout`, and
# the likely mistake is named (mask, scale, softmax axis, values, the `view`s that split and join).

# %% jupyter={"source_hidden": true} cellView="form"
#@title The check of CausalSelfAttention (folded: open it to see how it works)
def check_causal_self_attention(attn, config=None):
    """Check a batched-heads attention module (qkv, proj, n_head) against PyTorch's attention, at two lengths; with
    config, also its dropout rates and the size of its mask against config.dropout and config.block_size."""
    torch.manual_seed(0)
    name, real = type(attn).__name__, copy.deepcopy(attn).eval()
    try:
        attn, C, nh = copy.deepcopy(attn).eval(), attn.proj.in_features, attn.n_head
    except AttributeError as e:
        raise CheckFailed(f"{name} lacks a part this check reads ({e}): keep qkv, proj and n_head") from None
    width = tril.shape[-1] if isinstance(tril := getattr(attn, "tril", None), torch.Tensor) else None  # None: no mask buffer
    block = config.block_size if config else width or 8
    check(width is None or width >= block, f"{name}.tril is {width} wide, less than block_size = {block}: the mask "
          "needs a row and a column for every position of the context")
    rates = sorted({m.p for m in attn.modules() if isinstance(m, nn.Dropout)} | ({attn.dropout_p} if hasattr(attn, "dropout_p") else set()))
    check(not config or rates == [config.dropout], f"{name}'s dropout rates are {rates}, though config.dropout = "
          f"{config and config.dropout}: every rate comes from the configuration")
    with torch.no_grad():  # proj the identity: the output is the heads side by side
        _ = attn.proj.weight.copy_(torch.eye(C)), attn.proj.bias is None or attn.proj.bias.zero_()
    for B, T in ((2, block), (3, max(1, block // 2 - 1))):
        heads = lambda t: t.view(B, T, nh, C // nh).transpose(1, 2)  # (B, T, C) -> (B, nh, T, hs)
        x = torch.randn(B, T, C)
        try:
            with torch.no_grad():
                q, k, v = (heads(t) for t in attn.qkv(x).split(C, dim=2))
                y, again, out = attn(x), attn(x), real(x)
        except Exception as e:
            raise CheckFailed(f"{name} fails on x of shape (B, T, C) = {(B, T, C)} with {type(e).__name__}: "
                              f"{str(e).splitlines()[0]} (" + ("is something sized by block_size where T belongs, "
                              "tril[:T, :T]?)" if T < block else "check split, view, transpose and the join)")) from None
        check(y.shape == x.shape, f"{name} turns x of shape {tuple(x.shape)} into {tuple(y.shape)}, not (B, T, C): "
              "the heads must be joined back side by side")
        check(bool(torch.isfinite(y).all()), f"{name} gives nan or inf at T = {T}: a row of the mask leaves nothing to "
              "attend to (every position must see itself and the past)")
        check(torch.equal(y, again), f"{name} gives a different output each call in eval() mode: dropout is "
              "applied outside training (pass dropout_p only while self.training)")
        check(torch.allclose(out, real.proj(y), atol=1e-5), f"{name}'s output is not its proj applied to the heads "
              "side by side: the output projection comes last, before the output dropout")
        ref = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
        check(nh == 1 or T == 1 or torch.allclose(heads(y), ref, atol=1e-5)
              or not torch.allclose(y.reshape(B, nh, T, C // nh), ref, atol=1e-5),
              f"{name} is not causal self-attention at T = {T}: the heads are joined without transposing back, "
              "so (B, nh, T, hs) is read as (B, T, C): swap nh and T back before the view")
        mistake = attention_diagnosis(heads(y), q, k, v, C)
        check(mistake is None, f"{name} is not causal self-attention at T = {T}: {mistake} "
              "(if that does not fit, check the view and transpose that split and join the heads)")
    check_dropout_in_training(attn.train(), name, block, C, real.train())
    return Passed(f"{name}: passed (every head equals F.scaled_dot_product_attention)")


def check_dropout_in_training(attn, name, T, C, real):
    """In training mode with dropout > 0: fresh draws each call, the output dropout zeroes entries after the real proj,
    and the attention dropout makes the kept entries more than the eval() output rescaled (attn's proj is the identity)."""
    p = max([getattr(attn, "dropout_p", 0.0) or 0.0] + [m.p for m in attn.modules() if isinstance(m, nn.Dropout)])
    if p == 0: return
    x = torch.randn(4, T, C)
    with torch.no_grad():
        y, again, z = attempt(f"{name} in training mode", lambda: (attn(x), attn(x), real(x)), hint="PyTorch's words "
                              "name the argument (the fused call's dropout_p is a float; is_causal=True is the mask)")
        attn.eval()
        ref = attn(x)
    check(bool(torch.isfinite(y).all()), f"{name} gives nan or inf in training mode: a dropout before the softmax "
          "turns masked scores (-inf) into nan; it belongs on the weights, after the softmax")
    check(not torch.equal(y, again), f"{name} gives the same output twice in training mode with dropout = {p}: "
          "no dropout is applied (on the attention weights and on the output, while self.training)")
    late = z[:, 4:]  # (4, T - 4, C) with the real proj: positions that see five keys or more
    check((late == 0).float().mean() > p / 4, f"{name}'s output has (almost) no zeros in training mode with dropout = "
          f"{p}: the dropout on the output, after proj, is missing")
    keep = (y != 0) & (ref.abs() > 1e-3)
    ratio = y[keep] / ref[keep]  # all 1 / (1 - p) if only the output is dropped
    check(not torch.allclose(ratio, ratio.median().expand_as(ratio), rtol=1e-4), f"{name} drops no attention "
          f"weights in training mode with dropout = {p}: every kept output is the eval() output rescaled, so the "
          "dropout on the softmax weights (or dropout_p of the fused call) is missing")


# %%
toy = GPTConfig(vocab_size=65, block_size=16, n_embd=64, n_head=4, n_layer=2, dropout=0.2)
check_causal_self_attention(CausalSelfAttention(toy, flash=False), toy)


# %% [markdown]
# ## 2. `scaled_dot_product_attention`
#
# The same attention as one fused call (`is_causal=True` is the mask). A *kernel* is one function
# that runs on the device; a fused kernel does in one pass what would otherwise be several, each
# reading and writing the whole tensor. On a GPU it is a FlashAttention kernel that never writes the
# `(T, T)` weights to memory. The same check as above, with `flash=True`:

# %%
check_causal_self_attention(CausalSelfAttention(toy, flash=True), toy)

# %% [markdown]
# The fast model is the lecture's with this attention in every block: the same parameters, so the
# lecture's weights can be moved into it and give the same loss (notebook 05b does it, `copy_heads`).

# %%
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


# %%
torch.manual_seed(1337)
count = lambda m: sum(p.numel() for p in m.parameters())
print(f"lecture {count(GPTLanguageModel(toy)):,} parameters, fast {count(FastGPT(toy)):,}")
check(count(GPTLanguageModel(toy)) == count(FastGPT(toy)), "FastGPT does not hold the lecture's number of parameters: "
      "CausalSelfAttention holds what the heads and proj it replaces hold (qkv without a bias, proj with one)")

# %% [markdown]
# ## The device and the sizes
#
# The benchmark uses notebook 04's model size for the device (the lecture's on CUDA, 4 layers of 128
# channels on a CPU). Mixed precision: bfloat16 on GPUs whose *compute capability* (NVIDIA's version
# number of a GPU's instruction set) is 8.0 or more (A100, L4, H100), float16 with a gradient scaler
# below (Colab's T4, 7.5, only emulates bfloat16), none on the CPU. `torch.set_float32_matmul_precision
# ('high')` runs float32 matrix multiplications on such GPUs' *tensor cores* (units that multiply small
# matrices in one instruction) in TensorFloat-32 (TF32): float32's range, 10 bits of mantissa, several
# times the speed (156 against 19.5 TFLOPS on an A100, by its data sheet; on a CPU nothing changes).
# The benchmark keeps the lecture's float32 until TF32's own row (notebook 05c's race sets it).

# %%
def amp_dtype_for(device):
    """Mixed precision for a device: bfloat16 on GPUs of compute capability 8.0 and up, float16 on older ones, none elsewhere."""
    if device != 'cuda':
        return None
    return torch.bfloat16 if torch.cuda.get_device_capability() >= (8, 0) else torch.float16


def compiler_available():
    """Whether torch.compile can build kernels here: CUDA has Triton; a CPU needs a C++ compiler."""
    return device == 'cuda' or any(shutil.which(c) for c in (os.environ.get("CXX", "g++"), "g++", "c++", "clang++"))


# %% tags=["nbval-ignore-output"]
device = pick_device(args.device)
if SMOKE:
    config = GPTConfig(block_size=16, n_embd=32, n_head=2, n_layer=2, dropout=0.0)
    batch_size, bench_steps, repeats = 8, 2, 2
elif device == 'cuda':
    config, batch_size, bench_steps, repeats = GPTConfig(), 64, 20, 5  # the lecture's: 10.8 M parameters
else:
    config = GPTConfig(block_size=64, n_embd=128, n_head=4, n_layer=4, dropout=0.0)
    batch_size, bench_steps, repeats = 32, 10, 5

# %% tags=["nbval-ignore-output"]
# sizes given as flags replace the device's; then the precision and the torch.compile row
given = {k: getattr(args, k) for k in ('n_layer', 'n_head', 'n_embd', 'block_size', 'dropout') if getattr(args, k) is not None}
config = GPTConfig(**{**asdict(config), **given, 'vocab_size': len(chars)})
if config.n_embd % config.n_head:
    raise SystemExit(f"error: n_embd {config.n_embd} must be divisible by n_head {config.n_head}; change --n-embd or --n-head")
check_split_sizes(train_data, val_data, config.block_size, flag="--block-size")
block_size = config.block_size
amp_dtype = amp_dtype_for(device)
bench_compile = args.compile != "no" and compiler_available()  # the benchmark's torch.compile row
print(describe_device(device))
print(f"config: {asdict(config)}, batch_size={batch_size}, mixed precision: {amp_dtype}, torch.compile row: {bench_compile}")
if args.compile != "no" and not compiler_available():
    print("no C++ compiler found: torch.compile is skipped on this CPU (install g++ or clang++ to use it)")


# %% [markdown]
# ## 3. Batches sampled on the device
#
# The lecture's `get_batch` slices `batch_size` chunks out of a CPU tensor in a Python list, stacks
# them, and copies the result to the device every step. Keeping the whole split on the device and
# gathering all chunks with one indexing operation does the same with no Python loop and no copy.

# %%
def get_batch(split):
    """The lecture's batches: a Python list of slices, stacked, then moved to the device."""
    data = train_data if split == 'train' else val_data
    ix = torch.randint(len(data) - block_size, (batch_size,))         # (B,) random offsets
    x = torch.stack([data[i:i + block_size] for i in ix])             # (B, T)
    y = torch.stack([data[i + 1:i + block_size + 1] for i in ix])     # (B, T)
    return x.to(device), y.to(device)


def get_batch_on_device(data, batch_size, block_size):
    """Random (B, T) inputs and targets gathered from data, a split that already lives on the device."""
    ix = torch.randint(len(data) - block_size, (batch_size, 1), device=data.device)  # (B, 1) offsets
    pos = ix + torch.arange(block_size + 1, device=data.device)  # (B, T+1) positions of each chunk
    chunk = data[pos]  # (B, T+1)
    return chunk[:, :-1], chunk[:, 1:]  # (B, T) inputs, (B, T) targets


# %% [markdown]
# **Check**, on a stand-in split whose characters are 0, 1, 2, … and at several sizes: every row
# must be a run of consecutive positions, the targets one step on, and over many draws every chunk
# of the split must come up, the last one too.

# %% jupyter={"source_hidden": true} cellView="form"
#@title The check of get_batch_on_device (folded)
def check_batches_on_device(get_batch_on_device, n=40):
    """Probe get_batch_on_device(data, B, T) on data = 0, 1, ..., n-1 at several sizes."""
    data = torch.arange(n)
    for B, T in ((4, 8), (1, 1), (9, 8), (2000, 5)):
        try:
            x, y = get_batch_on_device(data, B, T)
        except Exception as e:
            raise CheckFailed(f"get_batch_on_device(data, batch_size={B}, block_size={T}) fails with {type(e).__name__}: "
                              f"{str(e).splitlines()[0]} (ix should be (B, 1), positions (B, T+1))") from None
        check(x.shape == y.shape == (B, T), f"get_batch_on_device(data, {B}, {T}) returns {tuple(x.shape)} and "
              f"{tuple(y.shape)}, not two ({B}, {T}) tensors (B rows of block_size characters)")
        check(torch.equal(x - x[:, :1], torch.arange(T).expand(B, T)), "a row of inputs is not a run of consecutive "
              "characters of the split: index data with one offset per row plus arange(block_size + 1)")
        check(torch.equal(y, x + 1), "the targets are not the inputs moved one step on: x is chunk[:, :-1], y chunk[:, 1:]")
    starts = set(x[:, 0].tolist())
    check(starts == set(range(n - T)), f"over 2,000 draws the chunks start only at {min(starts)}..{max(starts)}, "
          f"not at every offset 0..{n - T - 1}: draw the offsets from torch.randint(len(data) - block_size, ...)")
    return Passed("get_batch_on_device: passed (consecutive chunks, targets one on, every offset drawn)")


# %%
torch.manual_seed(0)
check_batches_on_device(get_batch_on_device)

# %% [markdown]
# ## 4. Timing every change
#
# Three more changes are made for a GPU (notebook 05b takes each apart on a CPU). **Mixed precision**:
# under `torch.autocast` the matrix multiplications run in 16-bit floats, the weights stay float32.
# **Fused AdamW**: one kernel updates every parameter tensor, not a Python loop of small operations
# per tensor. **`torch.compile`**: PyTorch normally runs *eagerly*, one operation at a time as Python
# reaches it; compiled, chains of element-wise operations run as single fused kernels.
#
# The benchmark times one training step of each variant, each adding one change to the one before
# (TF32 and mixed precision on a GPU only; `torch.compile` compiled before the clock, and left out by
# `--compile no`). The variants take turns, `repeats` rounds each, so that a slow moment of the
# machine does not fall on one only.

# %% [markdown]
# ### One training step, with a gradient scaler
#
# In float16 a small gradient rounds to zero, so on a GPU without bfloat16 the loss is multiplied by
# a large *scale* before `backward`; the step divides the gradients back (`unscale_`, before clipping,
# so that the clip sees their true norm), skips the update if they overflowed to `inf`, and adjusts
# the scale. Disabled (float32, bfloat16), it is the plain step. The benchmark and notebook 05c's race
# use this one function; notebook 05b takes the scaler apart number by number.

# %%
def scaled_step(model, optimizer, scaler, loss, lr, clip=None):
    """One step on loss at learning rate lr: scaled backward, unscale and clip (if clip), step, new scale."""
    for group in optimizer.param_groups:
        group['lr'] = lr
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if clip:
        scaler.unscale_(optimizer)  # the true gradients, so that the clip sees their real norm
        nn.utils.clip_grad_norm_(model.parameters(), clip)
    scaler.step(optimizer)  # skipped if the scaled gradients overflowed
    scaler.update()  # halve the scale after an overflow, double it after growth_interval good steps


# %% [markdown]
# **Check.** Six steps of a tiny linear model through `scaled_step` with a real `GradScaler` on the CPU
# (scale 2¹⁰, doubling every 2 good steps), at several learning rates, clipping on some steps, one loss
# so large that its scaled gradients overflow: after every step the weights must equal SGD computed by
# hand from the true gradients, and the scale must follow the scaler's rules; then the scaler disabled.

# %% jupyter={"source_hidden": true} cellView="form"
#@title The check of scaled_step (folded: open it to see how it works)
def sgd_by_hand(model, x, y, lr, clip, scale=1.0):
    """(weights, gradients) of one SGD step on mse(model(x), y), the gradients clipped to norm clip after times scale."""
    grads = torch.autograd.grad(F.mse_loss(model(x), y), list(model.parameters()))
    norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads)).item() * scale
    grads = [g * min(1.0, clip / (norm + 1e-6)) if clip else g for g in grads]
    return [p.detach() - lr * g for p, g in zip(model.parameters(), grads)], grads


def step_suspects(model, x, y, lr, clip, scale):
    """Likely mistakes in a scaled step, each with the weights it would give, most likely first."""
    by_hand = lambda *a: sgd_by_hand(model, x, y, *a)[0]
    return {"the gradients were clipped while still multiplied by the scale: unscale_ them before clip_grad_norm_":
            by_hand(lr, clip, scale), "the gradients were not clipped to norm clip": by_hand(lr, None),
            "the step used the scaled gradients: step with scaler.step(optimizer), which unscales them": by_hand(lr * scale, None),
            "the gradients were divided by the scale but never multiplied by it: backward through scaler.scale(loss)":
            by_hand(lr / scale, None), "the learning rate lr was not given to the optimizer's param_groups": by_hand(1.0, clip),
            "the weights did not move: no step, or the gradients were zeroed between backward and the step":
            [p.detach().clone() for p in model.parameters()]}


SCALER_SAYS = {  # what GradScaler says when it is used out of order -> the likely cause
    "since the last update()": "scaler.update() is missing: the scaler must update once after every step",
    "No inf checks were recorded prior to update": "scaler.update() ran without scaler.step: step with scaler.step(optimizer)",
    "No inf checks were recorded for this optimizer": "no parameter had a gradient at scaler.step: were the gradients zeroed "
                                                      "between backward and the step?",
    "_scale is None": "the gradients were never multiplied by the scale: backward through scaler.scale(loss)"}


def check_scaled_step(step):
    """step(model, optimizer, scaler, loss, lr, clip) against hand-computed SGD and the GradScaler's rules."""
    for enabled in (True, False):
        torch.manual_seed(0)
        model, xs, ys = nn.Linear(4, 3), torch.randn(6, 8, 4), torch.randn(6, 8, 3)
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        scaler = torch.amp.GradScaler('cpu', init_scale=2.0**10, growth_interval=2, enabled=enabled)
        scale, good = 2.0**10 if enabled else 1.0, 0
        for i, (lr, clip) in enumerate(zip([0.1, 0.05, 0.2, 0.1, 0.3, 0.1], [0.5, None, 0.5, 0.5, None, 0.5])):
            overflow, before = enabled and i == 2, [p.detach().clone() for p in model.parameters()]
            (wanted, grads), suspects = sgd_by_hand(model, xs[i], ys[i], lr, clip), step_suspects(model, xs[i], ys[i], lr, clip, scale)
            try:
                step(model, optimizer, scaler, F.mse_loss(model(xs[i]), ys[i]) * (1e36 if overflow else 1.0), lr, clip)
            except Exception as e:
                said = str(e).splitlines()[0]
                cause = next((c for k, c in SCALER_SAYS.items() if k in said), "the order is zero_grad, scaled backward, "
                             "unscale_ and clip, scaler.step, scaler.update")
                raise CheckFailed(f"step {i + 1} of the check raised {type(e).__name__} ({said.strip()}): {cause}") from None
            same = lambda ws: all(torch.allclose(p.detach(), w, rtol=1e-4, atol=1e-7) for p, w in zip(model.parameters(), ws))
            check(not overflow or same(before), "a step whose scaled gradients overflowed to inf was taken: step with "
                  "scaler.step(optimizer), which skips it, not optimizer.step()")
            own = all(p.grad is None or not p.grad.any() or torch.allclose(p.grad, g, rtol=1e-4, atol=1e-7)
                      for p, g in zip(model.parameters(), grads))
            added = "gradients of earlier steps are added in: zero them before backward"
            cause = next((s for s, ws in suspects.items() if same(ws)), None) or (added if not own else
                                                                                 "compare each line with the recipe above")
            check(overflow or same(wanted), f"after step {i + 1} of the check (lr {lr}, clip {clip}, scaler enabled: {enabled}) "
                  f"the weights differ from SGD computed by hand on the true gradients: {cause}")
            check(overflow or own, f"after step {i + 1} the gradients are not that step's own: {added}")
            good = 0 if overflow else good + 1
            scale, good = (scale / 2 if overflow else scale * 2 if good == 2 else scale), good % 2
            check(not enabled or scaler.get_scale() == scale, f"after step {i + 1} the scale is {scaler.get_scale():g}, "
                  f"not {scale:g}: the scaler must update once after every step (scaler.update())")
    return Passed("scaled_step: passed (hand-computed SGD steps, overflow skipped, the scale halved and doubled)")


# %%
check_scaled_step(scaled_step)


# %%
def sync():
    """Wait for the device to finish its queued work, so that timings are real."""
    if device == 'cuda':
        torch.cuda.synchronize()
    elif device == 'mps':
        torch.mps.synchronize()


# %%
def time_steps(model, batches, steps, amp_dtype=None, fused=False, warmup=1, precision='highest'):
    """Seconds per training step of model with batches() -> (x, y), averaged over steps after warmup steps;
    float32 matrix multiplications at precision ('highest': float32, 'high': TF32 where the GPU has it)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=fused or None)
    scaler = torch.amp.GradScaler(device, enabled=amp_dtype == torch.float16)
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(precision)
    try:
        for i in range(warmup + steps):
            if i == warmup:
                sync()
                t0 = time.perf_counter()
            x, y = batches()
            with torch.autocast(device, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
                _, loss = model(x, y)
            scaled_step(model, optimizer, scaler, loss, 1e-4)
        sync()
    finally:
        torch.set_float32_matmul_precision(before)
    return (time.perf_counter() - t0) / max(1, steps) if steps else 0.0


# %%
def variants():
    """[(name, model, batches, mixed precision, fused AdamW, matmul precision)]; each adds one change to the last."""
    torch.manual_seed(1337)
    base = GPTLanguageModel(config).to(device)
    fast, by_hand = FastGPT(config).to(device), FastGPT(config, flash=False).to(device)
    by_hand.load_state_dict(fast.state_dict())  # the same weights
    train_on_device = train_data.to(device)
    on_device = lambda: get_batch_on_device(train_on_device, batch_size, block_size)
    rows = [('lecture (04)', base, lambda: get_batch('train'), None, False, 'highest'),
            ('+ batched heads', by_hand, lambda: get_batch('train'), None, False, 'highest'),
            ('+ scaled_dot_product_attention', fast, lambda: get_batch('train'), None, False, 'highest'),
            ('+ batches on the device', fast, on_device, None, False, 'highest')]
    tf32 = 'high' if device == 'cuda' else 'highest'
    rows += [('+ TF32 matmuls', fast, on_device, None, False, tf32)] if device == 'cuda' else []
    rows += [(f'+ autocast {str(amp_dtype)[6:]}', fast, on_device, amp_dtype, False, tf32)] if amp_dtype else []
    rows.append(('+ fused AdamW', fast, on_device, amp_dtype, True, tf32))
    if bench_compile:
        rows.append(('+ torch.compile', torch.compile(copy.deepcopy(fast)), on_device, amp_dtype, True, tf32))
    return rows


# %% [markdown]
# On a GPU the achieved FLOPs are compared with the device's peak: the data sheets' dense 16-bit
# tensor-core figures, by the exact name the GPU reports (an H100 PCIe is not an H100 SXM); a GPU not
# in the table gets no fraction rather than a guess.


# %%
def flops_per_token(config, params):
    """Training FLOPs per token: 6 per parameter (forward and backward) plus attention's 12 * L * C * T."""
    return 6 * params + 12 * config.n_layer * config.n_embd * config.block_size


PEAK_TFLOPS = {"Tesla T4": 65, "Tesla V100-SXM2-16GB": 125, "Tesla V100-SXM2-32GB": 125, "Tesla V100-PCIE-16GB": 112,
               "NVIDIA A100-SXM4-40GB": 312, "NVIDIA A100-SXM4-80GB": 312, "NVIDIA A100-PCIE-40GB": 312,
               "NVIDIA A100 80GB PCIe": 312, "NVIDIA L4": 121, "NVIDIA L40S": 362, "NVIDIA H100 80GB HBM3": 989,
               "NVIDIA H100 PCIe": 756, "NVIDIA H100 NVL": 835, "NVIDIA H200": 989}


def peak_flops(gpu_name):
    """The dense half-precision peak of a GPU by its exact name (FLOP/s), or None if it is not in the table."""
    return PEAK_TFLOPS[gpu_name] * 1e12 if gpu_name in PEAK_TFLOPS else None


# %%
def benchmark():
    """Time every variant in turns; returns rows of (name, median s/step, fastest, slowest, tokens/s, fraction of peak)."""
    rows, peak = variants(), peak_flops(torch.cuda.get_device_name()) if device == 'cuda' else None
    for label, model, batches, amp, fused, precision in rows:  # warm up: compile, allocate, fill caches
        t0 = time.perf_counter()
        time_steps(model, batches, 0, amp, fused, warmup=2, precision=precision)
        if label == '+ torch.compile':
            print(f"torch.compile: {time.perf_counter() - t0:.1f} s to compile (not counted below)")
    times = {label: [] for label, *_ in rows}
    for _ in range(repeats):
        for label, model, batches, amp, fused, precision in rows:
            times[label].append(time_steps(model, batches, bench_steps, amp, fused, precision=precision))
    fpt, table = flops_per_token(config, count(FastGPT(config))), []
    for label, *_ in rows:
        median = statistics.median(times[label])
        tokens = batch_size * block_size / median
        table.append((label, median, min(times[label]), max(times[label]), tokens, tokens * fpt / peak if peak else None))
        print(f"{label:<32} {median * 1e3:8.1f} ms/step ({min(times[label]) * 1e3:.1f}-{max(times[label]) * 1e3:.1f}) "
              f"{tokens:10,.0f} tokens/s" + (f" {table[-1][5]:6.1%} of peak" if peak else ""))
    return table


# %% tags=["nbval-ignore-output"]
if args.bench:  # --bench stops here: the table, and the ratio of the fastest variant to the lecture's code
    print(describe_device(device) + f", config {asdict(config)}, batch_size {batch_size}")
    table = benchmark()
    best = min(table, key=lambda r: r[1])
    print(f"fast ({best[0].lstrip('+ ')}) vs lecture: {table[0][1] / best[1]:.2f}x the tokens per second")
    sys.exit(0)

# %% tags=["nbval-ignore-output"]
table = benchmark()
print(f"flops per token: {flops_per_token(config, count(FastGPT(config))):,}")
verdict = lambda row, low, high: ("faster" if row[1] < low - (high - low) else "slower" if row[1] > high + (high - low)
                                  else "no clear difference")
for row, above in zip(table[1:], table):
    print(f"{row[0]:<32} vs the row above: {verdict(row, *above[2:4])}")
best = min(table, key=lambda r: r[1])
print(f"fastest ({best[0].lstrip('+ ')}) vs the lecture: {table[0][1] / best[1]:.2f}x the tokens per second, "
      f"{verdict(best, *table[0][2:4])}")

# %%
fig, ax = plt.subplots(figsize=(7, 3.5), constrained_layout=True)
tokens = [r[4] for r in table]
spread = [[r[4] - batch_size * block_size / r[3] for r in table], [batch_size * block_size / r[2] - r[4] for r in table]]
_ = ax.barh([r[0] for r in table], tokens, xerr=spread, color='tab:green')
ax.invert_yaxis()
_ = ax.set(xlabel='tokens per second (training; bars: median, lines: spread)', title=f'Each change on top of the last ({device})')
show(fig, 'speed')

# %% [markdown]
# A row counts as faster than the one above only when its median lies outside the spread of the
# rounds (on a busy 2-core CPU the rounds of one variant can differ by several milliseconds). In the
# stored run (a 2-core CPU, float32 throughout) no single change was clearly faster than the row
# before, but all the eager ones together were: the fastest (fused AdamW) gave 1.22x the lecture's tokens
# per second, beyond the lecture's spread (108.7 to 119.2 ms). The compiled step was clearly slower than
# the eager one before it (124.7 against 95.6 ms, beyond that row's spread of 89.4 to 102.2 ms).

# %% [markdown]
# ## Summary
#
# - Batched heads and `scaled_dot_product_attention` compute the lecture's attention (each head
#   checked against PyTorch's own, at two lengths) in fewer, larger matrix multiplications; batches
#   on the device, TF32, mixed precision, fused AdamW and `torch.compile` remove Python work and
#   memory traffic. Each was timed against the lecture's float32 code in interleaved rounds; a
#   difference is claimed only beyond the spread of the rounds.
# - One training step, `scaled_step`, serves float32, bfloat16 and float16 with a gradient scaler
#   (checked against SGD by hand, an overflowing step skipped, the scale halved and doubled).
# - Next: notebook 05b takes these speed-ups apart on a CPU; notebook 05c trains the fast model
#   against the clock, with a warmup-and-cosine schedule and the exact whole-split loss.
#
# ## Exercises
#
# 1. Run `python notebooks/05_fast_gpt.py --bench` on every device you have. Where does the largest
#    speed-up come from on each?
# 2. Run `--bench` with `--block-size 32` and `--block-size 256`. Does `scaled_dot_product_attention`
#    gain more over the row above at the longer context, where the `(T, T)` weights are larger?
