# %% [markdown]
# # 04c · The command line: train into a folder, resume, sample from the shell
#
# Notebook 04's GPT (the lecture's `gpt.py`, **1:37:49 to 1:42:39 of the video**) as a script for the
# shell; after `04_gpt` and `04b_dropout_and_learning_rate`, before `05_fast_gpt`. Folded: the plumbing
# every notebook carries, 04's model and training (copies, held equal to 04's code by the tests), and
# what a run from the shell needs: flags checked before anything runs, atomic checkpoints, one run per
# folder, a Ctrl-C that saves and says how to continue, sampling. Each section runs this script, as you would:
# ```
# python notebooks/04c_command_line.py --data my.txt --max-iters 2000 --out runs/mine            # train
# python notebooks/04c_command_line.py --data my.txt --max-iters 4000 --out runs/mine --resume   # continue
# python notebooks/04c_command_line.py --sample --ckpt runs/mine/ckpt.pt --prompt "ROMEO:" --top-k 20
# ```
# With no flags it trains what notebook 04 trains (the same model, seed and losses) into `runs/04c_command_line/`.

# %% jupyter={"source_hidden": true} cellView="form"
#@title Plumbing: Ctrl-C while the script starts is one line (set first: torch takes seconds to import)
import signal, sys

def on_ctrl_c_at_start(signum, frame):
    """Ctrl-C before the flags are read (while torch loads): one line on stderr and exit status 130, no traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # exiting now: a further Ctrl-C changes nothing
    print("interrupted while starting, nothing was written; run the same command again", file=sys.stderr, flush=True)
    raise SystemExit(130)

if "ipykernel" not in sys.modules:  # as a script; the flags cell replaces it once the flags are read
    signal.signal(signal.SIGINT, on_ctrl_c_at_start)

# %%
import argparse, atexit, contextlib, errno, hashlib, io, json, math, os, pathlib, platform, shlex, shutil, signal, socket
import subprocess, sys, tempfile, time, urllib.request
from dataclasses import asdict, dataclass
import torch
import torch.nn as nn
from torch.nn import functional as F
import matplotlib
if "ipykernel" not in sys.modules:
    matplotlib.use("Agg")  # as a script, figures are saved as PNG files instead of opening windows
import matplotlib.pyplot as plt
from tqdm import tqdm

SMOKE = os.environ.get("COURSE_SMOKE") == "1"  # set by the tests: a tiny model, same printed facts
IN_NOTEBOOK = "ipykernel" in sys.modules        # False when run as a script
RUN_NAME = "04c_command_line"                   # the default output folder is runs/04c_command_line/

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
#@title Plumbing: command-line checks (the same in every notebook that carries it)
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

def finite(v):
    return math.isfinite(v) and v > 0


# %% jupyter={"source_hidden": true} cellView="form"
#@title Notebook 04's model, data and training (copies): GPTLanguageModel and its modules, generate, encoder_for, get_batch, the losses, train_step, attention_maps
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

def encoder_for(chars):
    """encode and decode functions for a vocabulary (a sorted string of characters)."""
    stoi = {ch: i for i, ch in enumerate(chars)}
    itos = {i: ch for i, ch in enumerate(chars)}

    def encode(s):
        unknown = sorted(set(s) - set(stoi))
        if unknown:
            raise SystemExit(f"error: the prompt has characters the model never saw: {''.join(unknown)!r}; "
                             "use only characters of its training text")
        return [stoi[c] for c in s]

    return encode, lambda l: ''.join(itos[i] for i in l)

def get_batch(split):
    """A random batch of inputs x and next-character targets y, both (batch_size, block_size)."""
    data = train_data if split == 'train' else val_data
    ix = torch.randint(len(data) - block_size, (batch_size,))         # (B,) random offsets
    x = torch.stack([data[i:i + block_size] for i in ix])             # (B, T)
    y = torch.stack([data[i + 1:i + block_size + 1] for i in ix])     # (B, T)
    return x.to(device), y.to(device)

@torch.no_grad()
def estimate_loss(model):
    """Mean loss of model over eval_iters random batches of each split."""
    out = {}
    model.eval()
    for split in ['train', 'val']:
        losses = torch.zeros(eval_iters)
        for k in range(eval_iters):
            X, Y = get_batch(split)
            logits, loss = model(X, Y)
            losses[k] = loss.item()
        out[split] = losses.mean().item()
    model.train()
    return out

@torch.no_grad()
def split_loss(model, data, batch=64):
    """Mean loss of model over a whole split, cut into non-overlapping block_size chunks."""
    model.eval()
    n = (len(data) - 1) // block_size * block_size
    x, y = data[:n].view(-1, block_size), data[1:n + 1].view(-1, block_size)  # (N, T) each
    chunks = list(zip(x.split(batch), y.split(batch)))
    bar = tqdm(chunks, desc="whole-split loss", leave=False, mininterval=5, disable=True if len(chunks) < 200 else None)
    total = sum(model(xb.to(device), yb.to(device))[1].item() * len(xb) for xb, yb in bar)
    model.train()
    return total / len(x)

def train_step(model, optimizer, xb, yb):
    """One optimisation step on the batch (xb, yb); returns the loss before the step."""
    logits, loss = model(xb, yb)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss

@torch.no_grad()
def attention_maps(model, idx):
    """The attention weights (n_layer, n_head, T, T) of model for idx (1, T)."""
    was_training = model.training
    model.eval()
    x, maps = model.embed(idx), []  # (1, T, C)
    for block in model.blocks:
        maps.append(torch.stack([h.attention(block.ln1(x))[0] for h in block.sa.heads]))  # (n_head, T, T)
        x = block(x)  # (1, T, C)
    model.train(was_training)
    return torch.stack(maps)  # (n_layer, n_head, T, T)


# %% [markdown]
# ## Every flag, checked before anything runs
#
# The sizes are notebook 04's; every value has a flag (`--help` shows each default). A value out of range
# or a flag that does not apply (`--ckpt` without `--sample`, a model size with `--resume`) stops the
# script with one line on stderr before anything is read, trained or written. `--help`, then a few mistakes:

# %%
SIZES = {  # name: (model sizes, training settings)
    "lecture": (dict(block_size=256, n_embd=384, n_head=6, n_layer=6, dropout=0.2),
                dict(batch_size=64, max_iters=5000, learning_rate=3e-4, eval_interval=500, eval_iters=200)),
    "small": (dict(block_size=64, n_embd=128, n_head=4, n_layer=4, dropout=0.0),
              dict(batch_size=32, max_iters=2500, learning_rate=1e-3, eval_interval=250, eval_iters=50)),
    "tiny": (dict(block_size=16, n_embd=32, n_head=2, n_layer=2, dropout=0.0),  # smoke mode, for the tests
             dict(batch_size=8, max_iters=40, learning_rate=1e-3, eval_interval=20, eval_iters=5)),
}

# %% jupyter={"source_hidden": true} cellView="form"
#@title Plumbing: this notebook's flags, checked before anything runs, and Ctrl-C outside training
def size_defaults(key):
    """'default: 6 (lecture), 4 (small)': the value of a model or training setting in each size."""
    return "default: " + ", ".join(f"{({**sizes, **train})[key]:g} ({name})" for name, (sizes, train) in SIZES.items() if name != "tiny")

def make_parser():
    """The command line's flags, grouped; --help shows each one's default."""
    p = Parser(prog="04c_command_line.py", description="Train a character-level GPT, or sample from a checkpoint.",
               formatter_class=lambda prog: argparse.HelpFormatter(prog, width=100))
    g = p.add_argument_group("data")
    g.add_argument("--data", help="UTF-8 text to train on (default: $COURSE_DATA, else tiny Shakespeare)")
    g = p.add_argument_group("model (defaults: by --size; on --resume the checkpoint's)")
    g.add_argument("--size", choices=["lecture", "small"], help="lecture: 6 x 6 heads x 384, 10.8 M parameters; "
                   "small: 4 x 4 heads x 128, sized for a CPU (default: lecture on CUDA, small elsewhere)")
    for flag, key, what in [("--n-layer", "n_layer", "blocks"), ("--n-head", "n_head", "attention heads per block (must divide --n-embd)"),
                            ("--n-embd", "n_embd", "channels of every token vector"), ("--block-size", "block_size", "context length in characters")]:
        g.add_argument(flag, type=int, help=f"{what} ({size_defaults(key)})")
    g.add_argument("--dropout", type=float, help=f"dropout rate, 0 <= rate < 1 ({size_defaults('dropout')})")
    g = p.add_argument_group("training (defaults: by --size; on --resume the checkpoint's)")
    g.add_argument("--device", default="auto", choices=["auto", "cuda", "mps", "cpu"], help="where to train (default: auto, the fastest there is)")
    g.add_argument("--max-iters", type=int, help=f"total optimisation steps; on --resume, the step to continue to ({size_defaults('max_iters')})")
    for flag, key, what, kind in [("--batch-size", "batch_size", "sequences per step", int), ("--learning-rate", "learning_rate", "AdamW's learning rate", float),
                                  ("--eval-interval", "eval_interval", "steps between loss estimates and checkpoints", int),
                                  ("--eval-iters", "eval_iters", "batches per loss estimate", int)]:
        g.add_argument(flag, type=kind, help=f"{what} ({size_defaults(key)})")
    g.add_argument("--seed", type=int, default=1337, help="random seed (default: 1337)")
    g.add_argument("--out", help="folder for ckpt.pt and the figures (default: runs/04c_command_line in the course folder)")
    g.add_argument("--resume", action="store_true", help="continue training from OUT/ckpt.pt, with its model and settings (default: start afresh)")
    g = p.add_argument_group("sampling (after training, or alone with --sample)")
    g.add_argument("--sample", action="store_true", help="do not train: sample from --ckpt and print the text (default: train)")
    g.add_argument("--ckpt", help="checkpoint file to sample from, e.g. runs/04_gpt/ckpt.pt, saved by notebook 04 (no default: required with --sample)")
    g.add_argument("--prompt", help="text the sample continues (default: a newline; the shell passes \\n as two "
                   "characters: write $'ROMEO:\\n' for a newline)")
    g.add_argument("--num-chars", type=int, default=500, help="characters to sample (default: 500)")
    g.add_argument("--temperature", type=float, default=1.0, help="below 1: safer text, above 1: wilder (default: 1.0)")
    g.add_argument("--top-k", type=int, help="sample only from the k likeliest characters (default: all)")
    return p

RULES = {"n_layer": (positive, "at least 1"), "n_head": (positive, "at least 1"), "n_embd": (positive, "at least 1"),
         "block_size": (positive, "at least 1"), "dropout": (lambda v: 0 <= v < 1, "at least 0 and below 1"),
         "max_iters": (positive, "at least 1"), "batch_size": (positive, "at least 1"),
         "learning_rate": (finite, "a positive finite number"), "eval_interval": (positive, "at least 1"),
         "eval_iters": (positive, "at least 1"), "seed": (lambda v: 0 <= v < 2**64, "between 0 and 2**64 - 1"),
         "num_chars": (lambda v: v >= 0, "at least 0"), "temperature": (finite, "a positive finite number"),
         "top_k": (positive, "at least 1")}
MODEL_FLAGS = ("size", "n_layer", "n_head", "n_embd", "block_size", "dropout")
TRAINING_FLAGS = ("data", *MODEL_FLAGS, "max_iters", "batch_size", "learning_rate", "eval_interval", "eval_iters", "out")

def check_args(args):
    """Stop with one line if a flag is out of range or does not apply to what was asked."""
    check_flags(args, RULES)
    given = [f for f in TRAINING_FLAGS if getattr(args, f) is not None] + (["resume"] if args.resume else [])
    if args.sample and not args.ckpt:
        raise SystemExit("error: --sample needs --ckpt PATH, the checkpoint to sample from")
    if args.sample and given:
        raise SystemExit(f"error: --{given[0].replace('_', '-')} does not apply with --sample, which only reads --ckpt; drop it")
    if args.ckpt and not args.sample:
        raise SystemExit("error: --ckpt only applies with --sample; to continue training use --out DIR --resume")
    model_flags = [f for f in MODEL_FLAGS if getattr(args, f) is not None]
    if args.resume and model_flags:
        raise SystemExit(f"error: --{model_flags[0].replace('_', '-')} cannot change on --resume: the checkpoint fixes "
                         "the model; drop it, or train afresh into another --out")
    if args.n_embd and args.n_head and args.n_embd % args.n_head:
        raise SystemExit(f"error: --n-embd {args.n_embd} must be divisible by --n-head {args.n_head} (each head gets n_embd / n_head channels)")

def command(*flags):
    """The shell command that runs this script with flags (for the lines that say how to go on)."""
    script = "notebooks/04c_command_line.py" if IN_NOTEBOOK else sys.argv[0]
    return shlex.join(["python", script, *map(str, flags)])

PHASE = ["before training began, nothing was written", None]  # what a Ctrl-C outside training interrupts, and what next

def on_ctrl_c_outside_training(signum, frame):
    """Ctrl-C while the script checks, loads or finishes: one line on stderr and exit status 130, no traceback."""
    then = PHASE[1] or f"start again with: {command(*sys.argv[1:])}"
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # exiting now: a further Ctrl-C changes nothing
    print(f"interrupted {PHASE[0]}; {then}", file=sys.stderr, flush=True)
    raise SystemExit(130)


args = make_parser().parse_args([] if IN_NOTEBOOK else None)  # [] gives the defaults (None: by --size)
check_args(args)
if not IN_NOTEBOOK:
    sys.stdout.reconfigure(line_buffering=True)  # each line appears at once, also through a pipe (| tee log)
    signal.signal(signal.SIGINT, on_ctrl_c_outside_training)

# %%
if IN_NOTEBOOK:
    print(make_parser().format_help())
for flags in (["--max-iters", "0"], ["--temperature", "nan"], ["--n-embd", "30", "--n-head", "4"], ["--sample"],
              ["--ckpt", "runs/mine/ckpt.pt"], ["--resume", "--n-layer", "8"], ["--max-iters", "abc"]) if IN_NOTEBOOK else ():
    with contextlib.redirect_stderr(io.StringIO()) as said:
        try:
            check_args(make_parser().parse_args(flags))
        except SystemExit as e:
            print(f"{shlex.join(flags):30} {(said.getvalue() or str(e.code)).strip()}")

# %% [markdown]
# ## Checkpoints, and one run per output folder
#
# A checkpoint holds the weights, AdamW's state, the configuration, the vocabulary, the step, the settings
# and the loss history: `--resume` continues exactly, `--sample` needs nothing else. Written atomically (a
# temporary file, then a rename), an interrupted save never destroys the previous one; a fresh run keeps an
# older one aside; a bad file gets one line. The output folder is checked (writable, room for two
# checkpoints) and locked: a second run into it is refused while the first lives, a dead run's lock taken over.

# %% jupyter={"source_hidden": true} cellView="form"
#@title Plumbing: checkpoints (saved atomically, loaded with a check), and one run per output folder (a lock)
def save_checkpoint(path, model, optimizer, chars, step, settings, keep_previous=False, history=()):
    """Write a checkpoint atomically (a temporary file, then a rename); keep_previous renames an older one aside."""
    path = pathlib.Path(path)
    ckpt = {'model': model.state_dict(), 'optimizer': optimizer.state_dict(), 'config': asdict(model.config),
            'chars': ''.join(chars), 'step': step, 'settings': settings, 'history': [list(h) for h in history]}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix='.tmp')
    os.close(fd)
    try:
        torch.save(ckpt, tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # the user's usual file mode, not mkstemp's private 0600
        if keep_previous and path.exists():
            kept = path.with_name(f"{path.stem}-{time.strftime('%Y%m%d-%H%M%S')}.pt")
            os.replace(path, kept)
            print(f"kept the earlier checkpoint as {kept}")
        os.replace(tmp, path)
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
        size = sum(t.numel() * t.element_size() for t in model.state_dict().values()) * 3 / 1e6
        raise SystemExit(f"error: no space left on the disk of {path.parent} (a checkpoint needs about {size:.0f} MB); "
                         f"{'the previous checkpoint is kept' if path.exists() else 'no checkpoint was written'}") from None
    finally:
        pathlib.Path(tmp).unlink(missing_ok=True)

def load_checkpoint(path):
    """The checkpoint at path and a model built from it (on the CPU), or one line on what is wrong."""
    path = pathlib.Path(path)
    if path.is_dir():
        raise SystemExit(f"error: {path} is a folder, not a checkpoint; give the file in it: --ckpt {path / 'ckpt.pt'}")
    if not path.is_file():
        raise SystemExit(f"error: no checkpoint at {path}; train one first (python notebooks/04c_command_line.py --out DIR) or fix the path")
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
        missing = {'model', 'optimizer', 'config', 'chars', 'step'} - set(ckpt)
        if missing:
            raise KeyError(f"it has no {', '.join(sorted(missing))}")
        model = GPTLanguageModel(GPTConfig(**ckpt['config']))
        model.load_state_dict(ckpt['model'])
    except Exception as e:
        reason = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise SystemExit(f"error: {path} is not a usable checkpoint of this notebook ({reason}); "
                         "it may be truncated or from other code: train again or pick another file") from None
    return ckpt, model

def load_checkpoint_file(path):
    """load_checkpoint, after a look at the file's first bytes: a file torch.save did not write gets its own line."""
    path = pathlib.Path(path).expanduser()
    if path.is_file():
        with open(path, 'rb') as f:
            head = f.read(4)
        if head[:2] != b'PK' and head[:1] != b'\x80':  # torch.save writes a zip archive (or, long ago, a pickle)
            raise SystemExit(f"error: {path} is not a checkpoint (torch.save did not write it); give the ckpt.pt that "
                             "a training run wrote into its --out folder")
    return load_checkpoint(path)

def take_lock(folder):
    """Hold folder/.lock for this process until it exits; refuse, in one line, a folder another live run holds."""
    lock, me = folder / ".lock", f"{os.getpid()} {socket.gethostname()}"
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                owner = lock.read_text().split()
            except FileNotFoundError:
                continue  # released meanwhile: try again
            if owner == me.split():
                return lock  # this process holds it already (a notebook cell run twice)
            if len(owner) == 2 and owner[1] == socket.gethostname() and not pid_alive(int(owner[0])):
                stale = lock.with_name(f".lock-stale-{os.getpid()}")
                with contextlib.suppress(FileNotFoundError):  # only one of several runs wins the stale lock
                    os.replace(lock, stale)
                    stale.unlink()
                continue
            who = f"process {owner[0]} on {owner[1]}" if len(owner) == 2 else "another process"
            raise SystemExit(f"error: another run ({who}) is writing to {folder}; wait for it to finish, "
                             f"or give this run another --out (if no run is left, delete {lock})")
        with os.fdopen(fd, "w") as f:
            f.write(me)
        atexit.register(lambda: lock.read_text() == me and lock.unlink())
        return lock
    raise SystemExit(f"error: could not take {lock}; delete it if no other run uses {folder}, and try again")

def pid_alive(pid):
    """Whether a process with this id runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it runs, as another user's
    return True

def prepare_out_dir(folder, ckpt_bytes):
    """Check folder can take this run's checkpoints, lock it, and clear temporary files of killed saves."""
    folder = pathlib.Path(folder)
    if folder.exists() and not folder.is_dir():
        raise SystemExit(f"error: --out {folder} is a file, not a folder; give a folder (it is created if missing)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        take_lock(folder)
    except OSError as e:
        raise SystemExit(f"error: cannot write to {folder} ({e.strerror}); give a folder you can write to with --out") from None
    free = shutil.disk_usage(folder).free
    if free < 2 * ckpt_bytes + 10e6:  # a new checkpoint is written beside the old one, then renamed
        raise SystemExit(f"error: only {free / 1e6:.0f} MB free in {folder}, and a checkpoint needs about "
                         f"{ckpt_bytes / 1e6:.0f} MB twice over; free some space or give another --out")
    for stale in folder.glob("ckpt.pt*.tmp"):
        stale.unlink()
        print(f"removed {stale.name}, a temporary file left by a save that was killed")


# %% jupyter={"source_hidden": true} cellView="form"
#@title Plumbing: the configuration (from the device, the flags, or the checkpoint), resuming, saving
FP32_TFLOPS = {"Tesla T4": 8.1, "NVIDIA L4": 30.3, "NVIDIA A100-SXM4-40GB": 19.5, "NVIDIA A100-SXM4-80GB": 19.5,
               "NVIDIA A100-PCIE-40GB": 19.5, "NVIDIA A100 80GB PCIe": 19.5, "NVIDIA H100 80GB HBM3": 67.0,
               "NVIDIA H100 PCIe": 51.0, "Tesla V100-SXM2-16GB": 15.7}  # float32 peaks from the data sheets

def lecture_minutes(gpu_name):
    """Rough minutes for the lecture's run on a GPU: its 15 minutes on an A100, scaled by float32 peak (None if unknown)."""
    return 15 * 19.5 / FP32_TFLOPS[gpu_name] if gpu_name in FP32_TFLOPS else None

def configure(args, device, ckpt_path):
    """(size, config, settings, checkpoint or None): from the flags and the device, or from the checkpoint on --resume."""
    chosen = lambda name, default: default if getattr(args, name) is None else getattr(args, name)
    if args.resume:
        ckpt, resumed = load_checkpoint_file(ckpt_path)
        settings = dict(ckpt.get("settings") or SIZES["small"][1])
        differ = [f"--{k.replace('_', '-')} {getattr(args, k)} (the checkpoint's: {settings[k]})"
                  for k in ('batch_size', 'learning_rate') if getattr(args, k) not in (None, settings[k])]
        if differ:
            raise SystemExit(f"error: {', '.join(differ)}: --resume keeps the checkpoint's training settings; "
                             "drop those flags, or train afresh into another --out")
        if ckpt['chars'] != ''.join(chars):
            raise SystemExit(f"error: {ckpt_path} was trained on another vocabulary ({len(ckpt['chars'])} characters, "
                             f"this text has {len(chars)}); resume with the same --data, or start afresh in another --out")
        settings.update({k: getattr(args, k) for k in ('max_iters', 'eval_interval', 'eval_iters') if getattr(args, k)})
        if settings['max_iters'] <= ckpt['step']:
            raise SystemExit(f"error: {ckpt_path} is already at step {ckpt['step']}; give --max-iters above {ckpt['step']} to train further")
        return None, resumed.config, settings, ckpt
    size = "tiny" if SMOKE and not args.size else args.size or ("lecture" if device == "cuda" else "small")
    sizes, defaults = SIZES[size]
    config = GPTConfig(vocab_size=len(chars), **{k: chosen(k, v) for k, v in sizes.items()})
    if config.n_embd % config.n_head:
        raise SystemExit(f"error: n_embd {config.n_embd} must be divisible by n_head {config.n_head}; change --n-embd or --n-head")
    return size, config, {k: chosen(k, v) for k, v in defaults.items()}, None

def resume_from(ckpt, model, optimizer):
    """Load the checkpoint's weights and AdamW's state; (the step it reached, its loss history)."""
    model.load_state_dict(ckpt['model'])
    optimizer.load_state_dict(ckpt['optimizer'])  # moves AdamW's state to the model's device
    return ckpt['step'], [tuple(h) for h in ckpt.get('history', [])]

SAVED = []  # the last step saved by this run

def save(model, optimizer, step, history):
    """Save the state reached at step into ckpt_path (a fresh run's first save keeps an older checkpoint aside)."""
    save_checkpoint(ckpt_path, model, optimizer, chars, step, {**settings, 'max_iters': max_iters},
                    keep_previous=not SAVED and not args.resume, history=history)
    SAVED.append(step)


# %% [markdown]
# ## Training with a gentle Ctrl-C
#
# Notebook 04's loop, with a checkpoint at every estimate. The first Ctrl-C finishes the step, saves it and
# prints the command that continues; a second stops at once, keeping the last checkpoint. Ctrl-C before
# training (while the text loads) or after it is one line too.

# %% jupyter={"source_hidden": true} cellView="form"
#@title Plumbing: the steps of training, with a progress bar and a gentle Ctrl-C
STOP = []  # set by Ctrl-C during training

def on_interrupt(signum, frame):
    """The first Ctrl-C stops training after the current step; a second one stops at once."""
    if STOP:
        last = f"the checkpoint of step {SAVED[-1]} is kept" if SAVED else "nothing was saved"
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # exiting now: a further Ctrl-C changes nothing
        print(f"interrupted again, stopped at once; {last}; continue with: {command(*resume_flags())}", file=sys.stderr, flush=True)
        raise SystemExit(130)
    STOP.append(signum)

def resume_flags():
    """The flags that continue this run: the same text and folder, and --resume."""
    return [*(["--data", args.data] if args.data else []), "--out", ckpt_path.parent, "--resume"]

def steps(start, max_iters):
    """Yield the steps start + 1 ... max_iters with a progress bar; after a Ctrl-C, stop once the step is done."""
    bar = tqdm(total=max_iters, initial=start, mininterval=10, file=sys.stdout if IN_NOTEBOOK else sys.stderr,
               disable=None if not IN_NOTEBOOK else False)
    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        for step in range(start + 1, max_iters + 1):
            yield step
            bar.update()
            if STOP:
                return
    finally:
        bar.close()
        signal.signal(signal.SIGINT, previous)

def end_of_training(model, optimizer, step, history):
    """After the loop: if Ctrl-C stopped it, save the step reached, say how to go on, and exit with status 130."""
    if STOP:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the last step is being saved: a further Ctrl-C changes nothing
        if not SAVED or SAVED[-1] != step:
            save(model, optimizer, step, history)
        print(f"interrupted at step {step}, saved in {ckpt_path}; continue with: {command(*resume_flags())}", file=sys.stderr, flush=True)
        raise SystemExit(130)
    PHASE[:] = ["after training", f"the checkpoint {ckpt_path} holds step {step}; sample from it with: "
                + command("--sample", "--ckpt", ckpt_path)]


# %%
def train(model, optimizer, start, max_iters, history=()):
    """Train from step start to max_iters; returns history + [(step, train estimate, val estimate)] every eval_interval."""
    history = list(history)
    for step in steps(start, max_iters):  # Ctrl-C ends the loop after the current step (folded above)
        train_step(model, optimizer, *get_batch('train'))
        if step % eval_interval == 0 or step == max_iters:
            losses = estimate_loss(model)
            history.append((step, losses['train'], losses['val']))
            tqdm.write(f"step {step}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}", file=sys.stdout)
            save(model, optimizer, step, history)
    end_of_training(model, optimizer, step, history)
    return history


# %% jupyter={"source_hidden": true} cellView="form"
#@title Plumbing: sampling from the shell, streamed
def prompt_ids(chars, prompt):
    """The ids of a prompt in a vocabulary; one line of error if it is empty or has unknown characters."""
    if not prompt:
        raise SystemExit("error: the prompt is empty; give it at least one character (the default is a newline)")
    return encoder_for(chars)[0](prompt)

def stream(model, chars, prompt, num_chars, temperature=1.0, top_k=None, device='cpu'):
    """Yield the prompt, then num_chars characters sampled from model one at a time."""
    decode = encoder_for(chars)[1]
    idx = torch.tensor([prompt_ids(chars, prompt)], dtype=torch.long, device=device)  # (1, T)
    model = model.to(device)
    yield prompt
    for _ in range(num_chars):
        try:
            idx = model.generate(idx, 1, temperature=temperature, top_k=top_k)  # (1, T+1)
        except RuntimeError as e:  # torch.multinomial refuses probabilities that are not finite numbers
            if "probability tensor" not in str(e):
                raise
            raise SystemExit(f"\nerror: cannot sample: {why_not_finite(model, idx, temperature)}") from None
        yield decode([idx[0, -1].item()])

@torch.no_grad()
def why_not_finite(model, idx, temperature):
    """Why the next character's probabilities are not finite: the model's outputs, or a temperature too small."""
    if not model.eval()(idx[:, -model.config.block_size:])[0].isfinite().all():
        return ("the model's outputs are not finite numbers (training diverged); the checkpoint is kept, but train "
                "again with a lower --learning-rate")
    return f"--temperature {temperature:g} is too small: the logits divided by it overflow; give a larger one (0.01 is nearly greedy)"

def print_sample(pieces):
    """Print text as it streams in; Ctrl-C keeps what was printed, says so, and exits with status 130."""
    count, previous = -1, signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C raises KeyboardInterrupt here
    try:
        for count, piece in enumerate(pieces):
            print(piece, end="", flush=True)
    except KeyboardInterrupt:
        print(flush=True)
        print(f"interrupted after {max(count, 0)} sampled characters", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        signal.signal(signal.SIGINT, previous)
    print()


# %% [markdown]
# ## The run
#
# Folded: with `--sample`, load the checkpoint and stream a sample; else read the text, choose the
# configuration (the checkpoint's on `--resume`), check and lock the folder, train, then save the loss
# figure, report the whole-split loss, sample, save the attention maps.

# %% jupyter={"source_hidden": true} cellView="form"
#@title Plumbing: the run, from the text to the figures (the script stops after it)
EXPECTED_VAL = {"small": (1.62, 1.64)}  # whole-split val of correct default runs on tiny Shakespeare (notebook 04's)

def main():
    """Sample from --ckpt and stop, or train into --out (fresh, or --resume) and report, as notebook 04 does."""
    global chars, train_data, val_data, device, ckpt_path, settings, block_size
    global batch_size, max_iters, learning_rate, eval_interval, eval_iters
    if args.sample:
        PHASE[0] = "before sampling began, nothing was written"
        torch.manual_seed(args.seed)
        device = pick_device(args.device)
        ckpt, model = load_checkpoint_file(args.ckpt)
        prompt = args.prompt if args.prompt is not None else "\n" if "\n" in ckpt['chars'] else ckpt['chars'][0]
        prompt_ids(ckpt['chars'], prompt)  # refuse an empty prompt or an unknown character before sampling
        return print_sample(stream(model, ckpt['chars'], prompt, args.num_chars, args.temperature, args.top_k, device))
    text = load_text(args.data)
    chars = sorted(set(text))
    data = torch.tensor(encoder_for(chars)[0](text), dtype=torch.long)
    n = int(0.9 * len(data))  # first 90% will be train, rest val
    train_data, val_data = data[:n], data[n:]
    print(f"{len(text):,} characters, vocab_size = {len(chars)}, train {len(train_data):,}, val {len(val_data):,}")
    if args.prompt is not None:
        prompt_ids(chars, args.prompt)  # an empty or unknown prompt is refused now, not after training
    device = pick_device(args.device)
    ckpt_path = (pathlib.Path(args.out).expanduser() if args.out else runs_folder()) / 'ckpt.pt'  # a quoted ~ too
    size, config, settings, ckpt = configure(args, device, ckpt_path)
    batch_size, max_iters, learning_rate, eval_interval, eval_iters = (
        settings[k] for k in ('batch_size', 'max_iters', 'learning_rate', 'eval_interval', 'eval_iters'))
    block_size = config.block_size
    print(f"{describe_device(device)}\nconfig: {asdict(config)}\nsettings: {settings}, out={ckpt_path.parent}")
    if device == "cuda" and config == GPTConfig(vocab_size=config.vocab_size):
        minutes = lecture_minutes(torch.cuda.get_device_name())
        print(f"expect about {minutes:.0f} minutes (an estimate: the lecture's 15 minutes on an A100, scaled by float32 "
              "speed); --size small takes a few" if minutes else "no estimate of the time for this GPU")
    check_split_sizes(train_data, val_data, block_size, flag="--block-size")
    torch.manual_seed(args.seed)
    model = GPTLanguageModel(config)
    n_params = sum(p.numel() for p in model.parameters())
    prepare_out_dir(ckpt_path.parent, ckpt_bytes=3 * 4 * n_params)  # weights and AdamW's two moments, in float32
    model = model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    start, history = resume_from(ckpt, model, optimizer) if args.resume else (0, [])
    print(f"{n_params:,} parameters, vocab_size {len(chars)}, starting at step {start} of {max_iters}")
    torch.manual_seed(args.seed + start)  # the batches (a resumed run does not replay the first ones)
    t0 = time.time()
    history = train(model, optimizer, start, max_iters, history)
    print(f"{max_iters - start} steps in {time.time() - t0:.0f} s on {device}; checkpoint: {ckpt_path}")
    report(model, history, start, size, config)

def report(model, history, start, size, config):
    """The loss figure, the whole-split loss (and its range on tiny Shakespeare), a sample, the attention maps."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for i, split in ((1, 'train'), (2, 'val')):
        _ = ax.plot([h[0] for h in history], [h[i] for h in history], label=split)
    if start:
        _ = ax.axvline(start, color='gray', linestyle=':', label=f'resumed at step {start}')
    _ = ax.set(xlabel='step', ylabel='loss (estimate)', title='GPT: loss while training')
    _ = ax.legend()
    show(fig, 'loss', ckpt_path.parent)
    t0 = time.time()
    final = {'train': split_loss(model, train_data), 'val': split_loss(model, val_data)}
    print(f"whole-split loss after {max_iters} steps: train {final['train']:.4f}, val {final['val']:.4f} "
          f"({time.time() - t0:.0f} s to evaluate)")
    band = EXPECTED_VAL.get(size) if not args.resume and not args.data and not os.environ.get("COURSE_DATA") else None
    if band and settings == SIZES[size][1] and asdict(config) == {**SIZES[size][0], 'vocab_size': 65}:
        print(f"a correct run lands at val {band[0]:.2f}-{band[1]:.2f}: "
              f"{'yes' if band[0] <= final['val'] <= band[1] else 'NO: look for a difference from notebook 04'}")
    elif not SMOKE:
        print("(no measured range for this configuration and text yet: compare train and val, and read the samples)")
    torch.manual_seed(args.seed)
    prompt = args.prompt if args.prompt is not None else "\n" if "\n" in chars else chars[0]
    print(f"--- a sample of {args.num_chars} characters (temperature {args.temperature}, top-k {args.top_k or 'all'}) "
          f"from the model of step {max_iters} ---")
    print_sample(stream(model, chars, prompt, args.num_chars, args.temperature, args.top_k, device))
    prompt = ("ROMEO:\nBut soft" if set("ROMEO:\nBut soft") <= set(chars) else ''.join(chars[:12]))[:config.block_size]
    maps = attention_maps(model, torch.tensor([prompt_ids(chars, prompt)], device=device)).mean(1).cpu()  # (n_layer, T, T)
    fig, axes = plt.subplots(1, len(maps), figsize=(3.2 * len(maps), 3.4), constrained_layout=True, squeeze=False)
    for layer, (ax, m) in enumerate(zip(axes[0], maps)):
        _ = ax.imshow(m, cmap='viridis', vmin=0)
        labels = [repr(c)[1:-1] for c in prompt]
        _ = ax.set(title=f'layer {layer + 1}', xlabel='key (attended to)', ylabel='query', xticks=range(len(labels)),
                   yticks=range(len(labels)), xticklabels=labels, yticklabels=labels)
    show(fig, 'attention', ckpt_path.parent)

if not IN_NOTEBOOK:
    main()
    sys.exit(0)

# %% [markdown]
# ## Using it from the shell
#
# `shell` (folded) runs this notebook's script, prints the command and its output, and can press Ctrl-C
# the moment a line appears. The runs are short (200 steps), so the samples are rough. First, a fresh
# run into `--out`: the configuration, the estimates (a checkpoint at each), the figures saved beside
# the checkpoint, the whole-split loss, a sample (an older checkpoint there is kept aside).

# %% jupyter={"source_hidden": true} cellView="form"
#@title The shell, from the notebook (folded: open it to see how it works)
def this_script():
    """This notebook's script in the checkout or beside the notebook, else one written from the .ipynb beside it."""
    folders = [course_root() / "notebooks", pathlib.Path(".")]
    if script := next((f / f"{RUN_NAME}.py" for f in folders if (f / f"{RUN_NAME}.py").is_file()), None):
        return script.resolve()
    cells = json.loads(next(f / f"{RUN_NAME}.ipynb" for f in folders if (f / f"{RUN_NAME}.ipynb").is_file()).read_text())["cells"]
    (script := runs_folder() / f"{RUN_NAME}.py").parent.mkdir(parents=True, exist_ok=True)
    script.write_text("\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code") + "\n", encoding="utf-8")
    return script.resolve()

def shell(*flags, ctrl_c_after=None, meanwhile=None):
    """Run this notebook's script with flags from the course folder and print what it prints; with ctrl_c_after,
    call meanwhile() (if given) and press Ctrl-C once a printed line holds that text. Returns the exit status."""
    print("$ " + shlex.join(["python", f"notebooks/{RUN_NAME}.py", *map(str, flags)]), flush=True)
    script = os.path.relpath(this_script(), course_root())  # notebooks/04c_command_line.py in the checkout
    proc = subprocess.Popen([sys.executable, script, *map(str, flags)], cwd=course_root(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    for line in proc.stdout:
        print(line, end="", flush=True)
        if ctrl_c_after and ctrl_c_after in line:
            _ = meanwhile() if meanwhile else None
            proc.send_signal(signal.SIGINT)
            ctrl_c_after = None
    return proc.wait()

OUT = runs_folder() / "demo" if SMOKE else pathlib.Path("runs") / RUN_NAME / "demo"  # seen from the course folder

# %% tags=["nbval-ignore-output"]
status = shell("--max-iters", 200, "--eval-interval", 100, "--num-chars", 200, "--out", OUT)
check(status == 0, f"the training run ended with exit status {status}: read its last line above")

# %% [markdown]
# ### One run per folder, Ctrl-C, and `--resume`
#
# Continue the run towards a far step; meanwhile a second run into the same folder is refused in one
# line. Then Ctrl-C: the step in progress is finished and saved; the last line is the command that
# continues (with `--data` too, when one was given).

# %% tags=["nbval-ignore-output"]
second = lambda: shell("--max-iters", 5, "--out", OUT)  # a second run into the folder the first one holds
status = shell("--out", OUT, "--resume", "--max-iters", 1_000_000, ctrl_c_after="step 300: train loss", meanwhile=second)
check(status == 130, f"the interrupted run ended with exit status {status}, not 130 (Ctrl-C): read its last line above")

# %% [markdown]
# ### Sampling from the shell
#
# `--sample` reads only the checkpoint and streams the text as it is made (Ctrl-C keeps what was
# printed). A prompt with a character outside the vocabulary is refused with its name:

# %% tags=["nbval-ignore-output"]
status = shell("--sample", "--ckpt", OUT / "ckpt.pt", "--prompt", "ROMEO:", "--num-chars", 300, "--temperature", 0.8, "--top-k", 20)
check(status == 0, f"sampling ended with exit status {status}: read its last line above")

# %%
try:
    encoder_for(sorted(set("abc ")))[0]("a cab — ça")
except SystemExit as e:
    print(f"refused, as it should be: {e}")

# %% [markdown]
# ## Summary
#
# - Notebook 04's model and training as a command line: every flag checked before anything runs, one
#   line for each mistake; atomic checkpoints that carry all `--resume` and `--sample` need; one run per
#   folder; Ctrl-C at any moment is one line, and in training saves first and prints how to continue.
#   Next, notebook 05 makes the same model fast.
#
# ## Exercises
#
# 1. Train on your own text into a folder of its own, interrupt it, and continue it with the command
#    it printed. Does the loss figure show the whole run, with a line where it resumed?
# 2. Sample from notebook 04's checkpoint (`runs/04_gpt/ckpt.pt`) at temperatures 0.5, 1 and 1.5,
#    with `--top-k 10` and without: which would you publish?
# 3. Add `--warmup N`, a linear rise of the learning rate over the first N steps (notebook 05's
#    schedule), refused above `--max-iters` in `check_args` and saved in the settings.
