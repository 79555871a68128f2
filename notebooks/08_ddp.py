# %% [markdown]
# # 08 · Training on several processes: DistributedDataParallel and torchrun
#
# Beyond the lecture (one GPU), nanoGPT's `train.py` (walked through [at 1:46:22](https://www.youtube.com/watch?v=kCc8FmEb1nY&t=6382s))
# trains on several GPUs and machines with PyTorch's `DistributedDataParallel` (DDP), launched by
# `torchrun`. With notebook 05's fast model: what DDP computes, the script, a run of two CPU processes,
# and the proof that they train the weights one process trains on their batches combined. A script too:
# ```
# python notebooks/08_ddp.py                                          # what the notebook does
# python notebooks/08_ddp.py --race                                   # notebook 05c's race, one process
# torchrun --standalone --nproc_per_node=2 notebooks/08_ddp.py --race  # the same race on 2 processes
# ```

# %%
import argparse, hashlib, json, math, os, pathlib, platform, subprocess, sys, tempfile, time, urllib.request
from dataclasses import asdict, dataclass
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel as DDP
import matplotlib
if "ipykernel" not in sys.modules:
    matplotlib.use("Agg")  # as a script, figures are saved as PNG files instead of opening windows
import matplotlib.pyplot as plt

SMOKE = os.environ.get("COURSE_SMOKE") == "1"  # set by the tests: tiny sizes and few steps
IN_NOTEBOOK = "ipykernel" in sys.modules        # False when run as a script
RUN_NAME = "08_ddp"                             # as a script, figures go to runs/08_ddp/

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


# %% [markdown]
# ## What DistributedDataParallel does
#
# `torchrun --nproc_per_node=2 script.py` starts the script twice: two **processes**, **rank** 0 and 1 of
# **world size** 2, each with a **replica** of the model. Every step each draws its *own* batch, runs
# forward and backward, and they **all-reduce** their gradients (every process puts in its tensor and
# gets back the same combination of all, here the average). Same weights, gradient and optimizer: the
# same step everywhere, although no weight is sent after the start (only buffers such as `tril`).
# ```
#  rank 0                                rank 1
#  batch 0 from generator(seed + 0)      batch 1 from generator(seed + 1)
#  forward, backward -> g0               forward, backward -> g1
#        \________ all-reduce: g = (g0 + g1) / 2 ________/
#  AdamW step with g                     AdamW step with g      (the same step)
# ```
# The loss is a mean over the batch, so **one step of W processes with batch B each is one step of one
# process with batch B × W**, at the same learning rate. **The processes.** `torchrun` tells each copy who it is in environment variables: `RANK` (0 … world
# size − 1, over all machines), `LOCAL_RANK` (its number on this machine, which picks its GPU),
# `WORLD_SIZE`, `LOCAL_WORLD_SIZE`, and `MASTER_ADDR`/`MASTER_PORT`, where they meet; with plain `python`,
# rank 0 of 1. Rank 0, the **master process** (nanoGPT's name), alone prints, evaluates and saves; the
# others run the same cells silently, and a mistake that stops them all is told once (`once`).

# %%
torchrun_sets = lambda name, default: int(os.environ.get(name, default))  # the default: plain python, one process
ddp_rank, ddp_local_rank = torchrun_sets("RANK", 0), torchrun_sets("LOCAL_RANK", 0)  # over all machines; on this one
ddp_world_size, local_world_size = torchrun_sets("WORLD_SIZE", 1), torchrun_sets("LOCAL_WORLD_SIZE", 1)  # processes: all; here
master_process = ddp_rank == 0  # prints, evaluates and saves
if not master_process:
    sys.stdout = open(os.devnull, "w")  # the same cells run silently on the other ranks (errors still show)


# %%
def once(fn, *args):
    """fn(*args), its one-line errors printed by rank 0 alone: the other ranks stop as well, silently."""
    if master_process:
        return fn(*args)
    stderr, sys.stderr = sys.stderr, open(os.devnull, "w")
    try:
        return fn(*args)
    except SystemExit as e:
        raise SystemExit(1 if isinstance(e.code, str) else e.code) from None
    finally:
        sys.stderr = stderr  # a crash's traceback still shows on every rank


print(f"rank {ddp_rank} of world size {ddp_world_size} ({local_world_size} on this machine)")

# %% [markdown]
# ## The command line, and the data
#
# With no flag the script does what the notebook does; `--race` trains 05c's `RACES` (sized for the device,
# changed by the flags) on as many processes as `torchrun` starts. A bad flag stops with one line first.

# %%
RACES = {  # device: (model sizes, batch, steps, peak lr, warmup, target val loss, clip, steps between checks)
    "tiny": (dict(block_size=16, n_embd=32, n_head=2, n_layer=2, dropout=0.0), 8, 30, 1e-3, 5, None, None, None),
    "cuda": (dict(block_size=256, n_embd=384, n_head=6, n_layer=6, dropout=0.2), 64, 3000, 1e-3, 100, 1.48, 1.0, 100),
    "cpu": (dict(block_size=64, n_embd=128, n_head=4, n_layer=3, dropout=0.0), 32, 1200, 2e-3, 50, 1.70, None, None),
}


def add_race_flags(p):
    """The flags that change the race; each one left out takes notebook 05c's value for the device."""
    g = p.add_argument_group("model (default: notebook 05c's race for the device)")
    g.add_argument("--n-layer", type=int, help="blocks")
    g.add_argument("--n-head", type=int, help="attention heads per block (must divide --n-embd)")
    g.add_argument("--n-embd", type=int, help="channels of every token vector")
    g.add_argument("--block-size", type=int, help="context length in characters")
    g = p.add_argument_group("training (default: notebook 05c's race for the device)")
    g.add_argument("--max-iters", type=int, help="training steps")
    g.add_argument("--batch-size", type=int, help="sequences per step in each process")
    g.add_argument("--learning-rate", type=float, help="peak learning rate of the schedule")
    g.add_argument("--warmup", type=int, help="steps of linear warmup before the cosine decay")
    g.add_argument("--seed", type=int, default=1337, help="random seed; rank r draws its batches with seed + r (default: 1337)")


# %%
def parse_args(argv=None):
    """The command-line flags; argv=[] gives the defaults (None: sized for the device)."""
    p = Parser(prog="08_ddp.py", description="Train the fast GPT with DistributedDataParallel, on as many "
               "processes as torchrun starts (one with plain python).")
    g = p.add_argument_group("what to run (default: everything the notebook does)")
    g.add_argument("--race", action="store_true", help="only train notebook 05c's race on this process (and the others torchrun started)")
    g.add_argument("--device", default="auto", choices=["auto", "cuda", "mps", "cpu"], help="where to run (default: the fastest there is)")
    g.add_argument("--out", help="folder where rank 0 saves ckpt.pt (the weights, the config and the log)")
    add_race_flags(p)
    return p.parse_args(argv)


args = once(parse_args, [] if IN_NOTEBOOK else None)

# %% jupyter={"source_hidden": true} cellView="form"
#@title Plumbing: every flag of this notebook checked before anything runs
RACE_ONLY = ("out", "n_layer", "n_head", "n_embd", "block_size", "max_iters", "batch_size", "learning_rate", "warmup")
RULES = {**{name: (positive, "at least 1") for name in RACE_ONLY[1:7]}, "learning_rate": (finite, "a positive finite number"),
         "warmup": (lambda v: v >= 0, "at least 0"), "seed": (lambda v: 0 <= v < 2**63, "between 0 and 2**63 - 1")}


def check_args(args):
    """Stop with one line if a flag is out of range or does not apply to what was asked."""
    check_flags(args, RULES)
    if "RANK" in os.environ and not args.race:
        raise SystemExit("error: under torchrun this script only trains: add --race (plain python runs the notebook)")
    given = [f for f in RACE_ONLY if getattr(args, f) is not None] + (["device"] if args.device != "auto" else [])
    if given and not args.race:
        raise SystemExit(f"error: --{given[0].replace('_', '-')} sets the training of --race: add --race "
                         "(without it the script does what the notebook does)")
    if args.n_embd and args.n_head and args.n_embd % args.n_head:
        raise SystemExit(f"error: --n-embd {args.n_embd} must be divisible by --n-head {args.n_head} (each head gets n_embd / n_head channels)")
    if args.out and pathlib.Path(args.out).exists() and not pathlib.Path(args.out).is_dir():
        raise SystemExit(f"error: --out {args.out} is a file, not a folder; give a folder for ckpt.pt")
    choose_device(args)


def choose_device(args):
    """The device of --race for this process (the notebook itself runs on the CPU); stops with one line if it has none."""
    device = pick_device(args.device) if args.race else "cpu"
    if device == "mps" and ddp_world_size > 1:  # no backend for Apple's GPU: several processes use the CPU
        if args.device == "mps":
            raise SystemExit("error: --device mps: DistributedDataParallel has no backend for Apple's MPS; use --device cpu")
        return "cpu"
    if device == "cuda" and ddp_world_size > 1 and ddp_local_rank >= torch.cuda.device_count():
        raise SystemExit(f"error: local rank {ddp_local_rank} has no GPU: this machine has {torch.cuda.device_count()}; "
                         "start at most that many processes per machine (--nproc_per_node)")
    return device


once(check_args, args)

# %%
text = once(load_text)  # the data, as in the other notebooks
chars = sorted(set(text))
stoi = {ch: i for i, ch in enumerate(chars)}
itos = {i: ch for i, ch in enumerate(chars)}
encode = lambda s: [stoi[c] for c in s]           # string -> list of integers
decode = lambda l: ''.join([itos[i] for i in l])  # list of integers -> string
data = torch.tensor(encode(text), dtype=torch.long)
n = int(0.9 * len(data))  # first 90% will be train, rest val
train_data, val_data = data[:n], data[n:]
print(f"{len(text):,} characters, vocab_size = {len(chars)}, train {len(train_data):,}, val {len(val_data):,}")
if args.race:  # the race's context must fit in both splits: checked before any teaching cell runs
    race_block = args.block_size or RACES["tiny" if SMOKE else "cuda" if choose_device(args) == "cuda" else "cpu"][0]["block_size"]
    once(check_split_sizes, train_data, val_data, race_block, "--block-size")

# %% [markdown]
# ## The fast model, exactly as notebook 05 built it
#
# Folded copies of 05's `FastGPT` (its `Block` holds 05's batched heads from the start), `amp_dtype_for`,
# `sync`, `split_loss`, `lr_at` and `configure_optimizer`; a test keeps them equal to 05's and 05c's.

# %% jupyter={"source_hidden": true} cellView="form"
#@title Notebook 05's model and training pieces (copies of its code; the Block holds 05's attention)
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
        return self.dropout(self.proj(y))


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


def amp_dtype_for(device):
    """Mixed precision for a device: bfloat16 on GPUs of compute capability 8.0 and up, float16 on older ones, none elsewhere."""
    if device != 'cuda':
        return None
    return torch.bfloat16 if torch.cuda.get_device_capability() >= (8, 0) else torch.float16


def sync():
    """Wait for the device to finish its queued work, so that timings are real."""
    if device == 'cuda':
        torch.cuda.synchronize()
    elif device == 'mps':
        torch.mps.synchronize()


@torch.no_grad()
def split_loss(model, data, batch=256, amp_dtype=None):
    """Mean loss of model over a whole split, cut into non-overlapping block_size chunks."""
    model.eval()
    n = (len(data) - 1) // block_size * block_size
    x, y = data[:n].view(-1, block_size), data[1:n + 1].view(-1, block_size)  # (N, T) each
    total = torch.zeros((), device=device)
    for xb, yb in zip(x.split(batch), y.split(batch)):
        with torch.autocast(device, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
            total += model(xb.to(device), yb.to(device))[1].float() * len(xb)
    model.train()
    return (total / len(x)).item()


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
# ## 1. Every process draws its own batches
#
# Were the batches the same, W processes would compute one gradient W times. So each rank draws from a
# generator seeded `seed + rank` (nanoGPT: `1337 + rank`), which lets one process replay every rank's
# batches to check the real thing; otherwise this is 05's `get_batch_on_device`.

# %%
def get_batch_of_rank(data, batch_size, block_size, generator):
    """Random (B, T) inputs and targets gathered from data (on the device), the offsets drawn from generator."""
    ix = torch.randint(len(data) - block_size, (batch_size, 1), device=data.device, generator=generator)  # (B, 1)
    pos = ix + torch.arange(block_size + 1, device=data.device)  # (B, T+1) positions of each chunk
    chunk = data[pos]  # (B, T+1)
    return chunk[:, :-1], chunk[:, 1:]  # (B, T) inputs, (B, T) targets


# %% jupyter={"source_hidden": true} cellView="form"
#@title The check of get_batch_of_rank (folded: open it to see how it works)
def check_batches_of_ranks(get_batch_of_rank, data, seed=1337):
    """Two ranks' batches from generators seeded seed + rank: real batches, different, and replayed exactly."""
    draw = lambda r, n=1: [attempt(f"get_batch_of_rank(data, 4, 8, generator of rank {r})", get_batch_of_rank, data, 4, 8, g)
                           for g in [torch.Generator().manual_seed(seed + r)] for _ in range(n)]
    (x0, y0), (x0_next, _) = draw(0, 2)  # rank 0's first two batches
    (x1, _), (again, _) = draw(1)[0], draw(0)[0]  # rank 1's first batch; rank 0's, replayed
    check(torch.equal(again, x0), "rank 0's batch is not the same when drawn again from a generator seeded the same: "
          "draw the offsets with torch.randint(..., generator=generator), not from the global random state")
    check(not torch.equal(x0, x1) and not torch.equal(x0, x0_next), "two ranks, or two steps of one rank, drew the same "
          "batch: draw every batch's offsets from the rank's generator, which moves on at each draw")
    check(x0.shape == y0.shape == (4, 8), f"get_batch_of_rank should return two (4, 8) tensors, got {tuple(x0.shape)} "
          f"and {tuple(y0.shape)}: stack batch_size chunks of block_size")
    check(x0.dtype == y0.dtype == torch.long, f"get_batch_of_rank returns {x0.dtype} and {y0.dtype}: keep the data as torch.long")
    check(not torch.equal(x0, y0), "the targets equal the inputs: take y = data[i+1:i+block_size+1], one step on")
    chunks = data.cpu().unfold(0, 9, 1)  # (len(data) - 8, 9): every chunk of 8 characters with the one after it
    rows = torch.cat((x0, y0[:, -1:]), dim=1).cpu()  # (4, 9): each row of inputs with its last target
    check(torch.equal(x0[:, 1:], y0[:, :-1]) and all((chunks == r).all(1).any() for r in rows), "a row of the batch is not a "
          "chunk of the training split with its targets one character on: x = data[i:i+block_size], y = data[i+1:i+block_size+1]")
    return x0, x1


# %%
x0, x1 = check_batches_of_ranks(get_batch_of_rank, train_data)  # (4, 8) each: rank 0's and rank 1's first batch
print(f"rank 0 starts with {decode(x0[0].tolist())!r}, rank 1 with {decode(x1[0].tolist())!r}")

# %% [markdown]
# ## 2. Averaging the gradients is training on the combined batch
#
# With `L_r` the mean loss of rank r's B sequences, one process's loss on all W × B is the mean of the
# means, `L = (L_0 + … + L_{W-1}) / W` (every batch has size B), so its gradient is the ranks' average,
# which DDP computes. First by hand, in one process: a replica per "rank", then the all-reduce.

# %%
def average_gradients(replicas):
    """The all-reduce of DDP, by hand: give every replica the mean of all replicas' gradients, parameter by parameter."""
    for params in zip(*(replica.parameters() for replica in replicas)):  # the same parameter in every replica
        mean = torch.stack([p.grad for p in params]).mean(dim=0)  # (W, ...) -> (...)
        for p in params:
            p.grad = mean.clone()


# %% [markdown]
# **Check.** Replicas from one seed, each on its own batch, then the averaging: every replica's gradient
# must be one model's on all batches concatenated, `(W × B, T)`, for three replicas and two.

# %% jupyter={"source_hidden": true} cellView="form"
#@title The check of average_gradients (folded: open it to see how it works)
def check_data_parallel(average, world_size=2, batch_size=4, seed=1337):
    """Replicas on their own batches, after average(replicas), must all hold one model's gradient on all the batches."""
    config = GPTConfig(vocab_size=65, block_size=8, n_embd=16, n_head=2, n_layer=1, dropout=0.0)
    tokens = torch.randint(0, 65, (1000,), generator=torch.Generator().manual_seed(0))
    batches = [get_batch_of_rank(tokens, batch_size, 8, torch.Generator().manual_seed(seed + r)) for r in range(world_size)]
    grads = lambda model: torch.cat([p.grad.flatten() for p in model.parameters()])
    replicas = []
    for x, y in batches:  # (B, T) each
        torch.manual_seed(seed)  # the same initial weights in every replica
        replicas.append(FastGPT(config))
        replicas[-1](x, y)[1].backward()
    attempt(f"{average.__name__} on {world_size} replicas", average, replicas, hint="each p.grad must keep its parameter's shape")
    torch.manual_seed(seed)
    whole = FastGPT(config)
    whole(torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches]))[1].backward()  # (W*B, T)
    want, got = grads(whole), [grads(r) for r in replicas]
    close = lambda a, b: torch.allclose(a, b, rtol=1e-4, atol=1e-7)
    check(all(close(g, got[0]) for g in got[1:]), "the replicas hold different gradients after the exchange, so they "
          "would take different steps and drift apart: every replica must receive the same all-reduced gradient")
    check(not close(got[0], world_size * want), f"the gradients are {world_size} times those of the combined batch: "
          "they were summed over the replicas, not averaged (divide the sum by the world size)")
    check(not close(got[0], want / world_size), f"the gradients are 1/{world_size} of those of the combined batch: "
          "they were divided by the world size twice (DDP already averages; do not divide the loss by it as well)")
    check(close(got[0], want), "the exchanged gradients are not the gradient of the combined batch: every replica "
          "must end with the mean over replicas of each parameter's gradient")
    return Passed(f"{average.__name__}: passed ({world_size} replicas on their own batches hold the gradient of one "
                  f"model on all {world_size} x {batch_size} sequences)")


# %%
check_data_parallel(average_gradients, world_size=3)  # three replicas, then two
check_data_parallel(average_gradients)

# %% [markdown]
# **Why gradients, not weights.** A sum instead of an average doubles plain SGD's learning rate; AdamW
# hides it, dividing each gradient by a running estimate of its size. One step of each, with g and 2g:

# %%
torch.manual_seed(0)
w, g = torch.randn(5), torch.randn(5)  # weights and a gradient
for name, optimizer_class, options in (("SGD", torch.optim.SGD, dict(lr=0.1)),
                                       ("AdamW", torch.optim.AdamW, dict(lr=1e-3, weight_decay=0.0))):
    moves = []
    for gradient in (g, 2 * g):  # averaged over two processes, then summed
        p = nn.Parameter(w.clone())
        p.grad = gradient.clone()
        optimizer_class([p], **options).step()
        moves.append(p.detach() - w)  # the change of the weights after one step
    print(f"{name:<6} step with the summed gradient / step with the averaged one: {(moves[1] / moves[0]).mean():.4f}")

# %% [markdown]
# So with AdamW summed gradients train almost the same weights (only `eps` and clipping tell them apart):
# comparing weights would miss the mistake; gradients show it.
#
# ## 3. What DDP adds
#
# `DDP(model)` **broadcasts** rank 0's parameters and buffers to every rank, so replicas start equal
# even if each initialised its own (nanoGPT relies on this; we seed every rank alike). During
# `loss.backward()` hooks gather the gradients into **buckets** (about 25 MB) and all-reduce each as
# soon as it is ready, while backward computes the earlier layers; when it returns, every `.grad` holds
# the average. The all-reduce runs on a **backend**: **NCCL** between CUDA GPUs, **Gloo** for CPU tensors
# (Apple's MPS has none: on a Mac several processes use the CPU). The cost is traffic: a ring all-reduce
# sends about 2 (W − 1) / W times the gradients' size per process and step. For 05c's race, in float32:

# %%
for key in ("cpu", "cuda"):
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        params = sum(p.numel() for p in FastGPT(GPTConfig(vocab_size=len(chars), **RACES[key][0])).parameters())
    for world in (2, 8):
        print(f"the {key} race's model, {params:,} parameters, {world} processes: "
              f"{2 * (world - 1) / world * params * 4 / 1e6:5.1f} MB sent by each process per step")

# %% [markdown]
# ## 4. The training function
#
# 05c's `train_fast` for several processes: `replica` builds the model from one seed on every rank (in
# `DDP` with more than one process) and a generator per rank in `ranks` (one process given `ranks=[0, 1]`
# draws both, `(2B, T)`: the reference). No early stop: every rank must take every step, or the others wait.

# %%
def replica(config, seed, rank, world_size, ranks, peak_lr, weight_decay, amp_dtype, fused, compile):
    """A FastGPT, what runs its forward and backward (DDP around it when world_size > 1), its AdamW and
    gradient scaler, one batch generator per rank in ranks (default: its own), and the training split on the device."""
    torch.manual_seed(seed)  # the same initial weights in every process
    model = FastGPT(config).to(device)
    step_model = model if world_size == 1 else DDP(model, device_ids=[torch.cuda.current_device()] if device == 'cuda' else None)
    step_model = torch.compile(step_model) if compile else step_model
    optimizer = configure_optimizer(model, peak_lr, weight_decay, fused)
    scaler = torch.amp.GradScaler(device, enabled=amp_dtype == torch.float16)
    generators = [torch.Generator(device).manual_seed(seed + r) for r in (ranks or [rank])]
    torch.manual_seed(seed + rank)  # dropout: each rank its own masks, as each has its own batch
    train_on_device = train_data.to(device)
    sync()  # the set-up done before the clock starts
    return model, step_model, optimizer, scaler, generators, train_on_device


# %%
def backward_and_step(loss, model, optimizer, scaler, clip=None):
    """loss.backward() and one optimizer step, clipped if clip; returns the gradient's norm."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()  # with DDP, the gradients are averaged over the processes here
    scaler.unscale_(optimizer)  # the true gradients (nothing to undo without float16)
    grad_norm = nn.utils.clip_grad_norm_(model.parameters(), clip or math.inf)  # their size; clipped if clip
    scaler.step(optimizer)
    scaler.update()
    return grad_norm


# %%
def train_ddp(config, batch_size, iters, peak_lr, warmup, seed=1337, rank=0, world_size=1, ranks=None,
              weight_decay=0.1, clip=None, amp_dtype=None, fused=False, compile=False):
    """Train a FastGPT as process rank of world_size on the batches of ranks (default: its own), the gradients
    averaged by DDP when world_size > 1; returns it and a log of (step, seconds, loss, gradient norm)."""
    model, step_model, optimizer, scaler, generators, train_on_device = replica(
        config, seed, rank, world_size, ranks, peak_lr, weight_decay, amp_dtype, fused, compile)
    log, t0 = [], time.perf_counter()
    for it in range(iters):
        for group in optimizer.param_groups:
            group['lr'] = lr_at(it, peak_lr, warmup, iters)
        batches = [get_batch_of_rank(train_on_device, batch_size, config.block_size, g) for g in generators]
        x, y = torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])  # (len(ranks) * B, T) each
        with torch.autocast(device, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
            _, loss = step_model(x, y)
        grad_norm = backward_and_step(loss, model, optimizer, scaler, clip)
        if it == 0 or (it + 1) % max(1, iters // 20) == 0 or it + 1 == iters:
            last = loss.item()  # this process's own batch loss; waits for the device, so read it before the clock
            log.append((it + 1, time.perf_counter() - t0, last, grad_norm.item()))
    sync()
    return model, log


# %% [markdown]
# ## 5. The script
#
# On CUDA `LOCAL_RANK` picks each process's GPU, with NCCL; elsewhere Gloo on the CPU, `cores // processes`
# threads each. This notebook itself runs on the CPU; `--race` uses the device.

# %% tags=["nbval-ignore-output"]
device = choose_device(args)  # checked with the flags: CUDA, MPS (one process only) or the CPU
if device == "cuda" and ddp_world_size > 1:
    torch.cuda.set_device(ddp_local_rank)  # from here on, 'cuda' means this process's GPU
if device == "cpu":
    torch.set_num_threads(max(1, os.cpu_count() // local_world_size))
backend = "nccl" if device == "cuda" else "gloo"
print(describe_device(device))
print(f"{ddp_world_size} process(es), backend {backend}, {torch.get_num_threads()} CPU thread(s) per process")
if not args.race and torch.cuda.is_available():
    print(f"this notebook runs its processes on the CPU; to use the {torch.cuda.device_count()} GPU(s): "
          f"torchrun --standalone --nproc_per_node={torch.cuda.device_count()} notebooks/08_ddp.py --race")


# %% [markdown]
# **Check.** `train_ddp` in one process on a tiny model, against numbers computed another way: step 1's
# logged gradient norm is a fresh model's on the rank's first batch; the weights after it are one AdamW
# step by hand at `lr_at(0, ...)`; step 2's gradient is those weights' on the second batch alone.

# %% jupyter={"source_hidden": true} cellView="form"
#@title The check of train_ddp (folded: open it to see how it works)
def grad_norm_on(model, x, y):
    """The norm over all weights of model's gradient of its loss on (x, y); leaves no gradient behind."""
    model.zero_grad(set_to_none=True)
    model(x, y)[1].backward()
    norm = torch.cat([p.grad.flatten() for p in model.parameters()]).norm().item()
    model.zero_grad(set_to_none=True)
    return norm


def check_train_ddp(train_ddp, lr=1e-2, warmup=2, seed=1337):
    """One process: step 1's gradient, the weights after one AdamW step, step 2's gradient, each computed another way."""
    config = GPTConfig(vocab_size=len(chars), block_size=8, n_embd=16, n_head=2, n_layer=1, dropout=0.0)
    run = lambda iters: attempt(f"train_ddp(a tiny config, batch_size=4, iters={iters})", train_ddp, config, 4, iters, lr, warmup, seed)
    (one, log1), (_, log2) = run(1), run(2)
    check(len(log2) == 2 and all(len(entry) == 4 for entry in log2), f"train_ddp's log for 2 steps is {log2}: log "
          "(step, seconds, loss, gradient norm) at every step of a short run")
    torch.manual_seed(seed)
    fresh, data, g = FastGPT(config).to(device), train_data.to(device), torch.Generator(device).manual_seed(seed)
    (x1, y1), (x2, y2) = get_batch_of_rank(data, 4, 8, g), get_batch_of_rank(data, 4, 8, g)  # the rank's first two batches
    norm1 = grad_norm_on(fresh, x1, y1)
    check(min(log1[0][3], log2[1][3]) > 1e-3 * norm1, "train_ddp's steps have no gradient: call "
          "optimizer.zero_grad() before loss.backward(), not between backward() and optimizer.step()")
    check(abs(log1[0][3] / norm1 - 1) < 1e-4, f"train_ddp's first step has a gradient norm of {log1[0][3]:.4g}, not "
          f"{norm1:.4g}, a fresh model's on the rank's first batch: build the model after torch.manual_seed(seed), draw "
          "from the rank's generator, and backpropagate the batch's mean loss as it is")
    fresh(x1, y1)[1].backward()
    step = lr_at(0, lr, warmup, 1)  # AdamW's first step: each weight moves by step * g / (|g| + eps), plus decay
    moved = {n: p - step * (0.1 * p * (p.dim() >= 2) + p.grad / (p.grad.abs() + 1e-8)) for n, p in fresh.named_parameters()}
    gap = lambda a: sum(((a[n] - moved[n]) ** 2).sum() for n in moved).sqrt().item()
    check(gap(dict(one.named_parameters())) <= 1e-3 * gap(dict(fresh.named_parameters())), "after one step, "
          f"train_ddp's weights are not one AdamW step at the schedule's first learning rate (lr_at(0, ...) = {step:g}): "
          "set every group's lr from lr_at before optimizer.step(), and step once per batch")
    norm2 = grad_norm_on(one, x2, y2)
    check(abs(log2[1][3] / norm2 - 1) < 1e-3, f"train_ddp's second step has a gradient norm of {log2[1][3]:.4g}, not "
          f"{norm2:.4g}, the gradient of the second batch alone: the gradients pile up from step to step "
          "(optimizer.zero_grad(set_to_none=True) before loss.backward())")
    return Passed("train_ddp: passed (step 1's gradient, one AdamW step, step 2's gradient, each computed another way)")


# %%
check_train_ddp(train_ddp)

# %%
def race_settings(args, device):  # torch.compile and mixed precision on CUDA, as in 05
    """train_ddp's keyword arguments for --race (notebook 05c's race for the device, changed by the flags), and its target."""
    sizes, batch, iters, lr, warmup, target, clip, _ = RACES["tiny" if SMOKE else "cuda" if device == "cuda" else "cpu"]
    given = lambda name, default: default if getattr(args, name, None) is None else getattr(args, name)
    config = GPTConfig(vocab_size=len(chars), **{k: given(k, v) for k, v in sizes.items()})
    if config.n_embd % config.n_head:
        raise SystemExit(f"error: n_embd {config.n_embd} must be divisible by n_head {config.n_head}; change --n-embd or --n-head")
    check_split_sizes(train_data, val_data, config.block_size, flag="--block-size")
    return dict(config=config, batch_size=given("batch_size", batch), iters=given("max_iters", iters),
                peak_lr=given("learning_rate", lr), warmup=given("warmup", warmup), seed=args.seed, clip=clip,
                amp_dtype=amp_dtype_for(device), fused=device != 'mps', compile=device == 'cuda'), target


# %% [markdown]
# The race itself, which `--race` runs and then stops: every process joins the **process group**
# (`init_process_group` reads `RANK`, `WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT`), trains and leaves it;
# rank 0 evaluates and saves. In the notebook these cells do nothing: section 6 runs them by `torchrun`.

# %% tags=["nbval-ignore-output"]
if args.race:
    settings, target = race_settings(args, device)
    if ddp_world_size > 1:
        dist.init_process_group(backend=backend)  # waits until all WORLD_SIZE processes have joined
    if args.out and master_process:
        pathlib.Path(args.out).mkdir(parents=True, exist_ok=True)
    B, T = settings['batch_size'], settings['config'].block_size
    print(f"race: {asdict(settings['config'])}, {ddp_world_size} process(es) x batch {B} = {ddp_world_size * B} "
          f"sequences per step, {settings['iters']} steps, peak lr {settings['peak_lr']}, warmup {settings['warmup']}")
    model, log = train_ddp(**settings, rank=ddp_rank, world_size=ddp_world_size)

# %% tags=["nbval-ignore-output"]
if args.race:  # rank 0 evaluates the whole validation split and saves; every process leaves the group
    (first, t_first, *_), (last, seconds, *_) = log[0], log[-1]  # the first step compiles and allocates: not timed
    if master_process:
        block_size = T  # split_loss cuts the split into chunks of the model's context
        val = split_loss(model, val_data, amp_dtype=settings['amp_dtype'])
        tokens_per_second = max(1, last - first) * ddp_world_size * B * T / (seconds - t_first if last > first else seconds)
        print(f"{settings['iters']} steps in {seconds:.1f} s, {tokens_per_second:,.0f} tokens/s over all processes (after step 1); "
              f"whole-split val loss {val:.4f}" + (f" (target {target})" if target else ""))
        if args.out:
            path = pathlib.Path(args.out) / "ckpt.pt"
            torch.save({'model': model.state_dict(), 'config': asdict(settings['config']), 'log': log, 'val_loss': val,
                        'world_size': ddp_world_size, 'batch_size': B, 'tokens_per_second': tokens_per_second}, path)
            print(f"saved: {path}")
    if ddp_world_size > 1:
        dist.destroy_process_group()
    sys.exit(0)

# %% [markdown]
# ## 6. Launching: one machine, or several
#
# On one machine, `--standalone` lets torchrun pick a free port for its processes to meet (the first
# two lines below). On several machines, run a command on each with the number of machines (`--nnodes`)
# and where they meet: `--node-rank=0` (then 1, …) with `--master-addr=10.0.0.1 --master-port=29500`
# (machine 0), or the same everywhere with a **rendezvous** (PyTorch's c10d store on one machine's
# port, where each machine's torchrun registers and gets its node rank), the third line:
# ```
# torchrun --standalone --nproc_per_node=8 notebooks/08_ddp.py --race     # 8 GPUs (NCCL)
# torchrun --standalone --nproc_per_node=2 notebooks/08_ddp.py --race --device cpu   # 2 CPU processes (Gloo)
# torchrun --nnodes=2 --nproc_per_node=8 --rdzv-backend=c10d --rdzv-endpoint=10.0.0.1:29500 --rdzv-id=gpt08 notebooks/08_ddp.py --race
# ```
# That is 16 processes, `RANK` 0 … 15, `LOCAL_RANK` 0 … 7 on each machine, the script unchanged; the
# machines must reach each other on that port, and each needs the data. **From this notebook**, the
# next cells launch `torchrun` with two Gloo processes on the CPU and read back what rank 0 saved.

# %% jupyter={"source_hidden": true} cellView="form"
#@title Finding this notebook's own script (folded: open it to see how it works)
def own_script():
    """This notebook's script: the file running, else 08_ddp.py beside the notebook (or in the checkout's notebooks/),
    else one written from the code cells of the 08_ddp.ipynb beside it; None when there is none of these."""
    opened = [pathlib.Path(p) for p in (globals().get("__file__"), os.environ.get("JPY_SESSION_NAME")) if p]
    folders = [p.parent for p in opened] + [pathlib.Path("."), course_root() / "notebooks"]
    found = [p for p in opened if p.suffix == ".py"] + [f / f"{RUN_NAME}.py" for f in folders]
    if script := next((p for p in found if p.is_file()), None):
        return script
    if not (notebook := next((f / f"{RUN_NAME}.ipynb" for f in folders if (f / f"{RUN_NAME}.ipynb").is_file()), None)):
        return None
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    script = runs_folder() / f"{RUN_NAME}.py"  # written afresh from the notebook's code cells
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text("\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code") + "\n", encoding="utf-8")
    return script


# %%
def launch_torchrun(nproc, *flags):
    """Run this notebook's script under torchrun with nproc processes and flags; returns rank 0's printed lines of
    the race and its checkpoint, or None (with one line saying why) when neither the script nor the notebook is found."""
    script = own_script()
    if script is None:
        print(f"neither {RUN_NAME}.py nor {RUN_NAME}.ipynb is in this folder: put this notebook's file here, or in a "
              f"checkout of the course run torchrun --standalone --nproc_per_node={nproc} notebooks/{RUN_NAME}.py --race --device cpu")
        return None
    out = runs_folder() / f"torchrun-{nproc}"  # where rank 0 saves ckpt.pt
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, os.cpu_count() // nproc))}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                           str(script), "--race", "--device", "cpu", "--out", str(out), *map(str, flags)],
                          env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"torchrun with {nproc} processes failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    lines = done.stdout.splitlines()
    race = lines[next(i for i, line in enumerate(lines) if line.startswith("race:")):]
    return race, torch.load(out / "ckpt.pt", weights_only=True)


# %% [markdown]
# **Check.** The two processes' weights must equal one process's on both ranks' batches, `train_ddp(...,
# ranks=[0, 1])`, up to rounding, which grows with each step (AdamW can turn a last-bit difference into
# a whole step): the distance over all weights must be under 1% of that to rank 0's batches alone. As
# AdamW hides a scaled gradient, step 1's gradient norms must match too (W or 1/W: a scaled loss).

# %% jupyter={"source_hidden": true} cellView="form"
#@title The check of two processes against one (folded: open it to see how it works)
def check_same_training(trained, combined, alone, world_size, grad_norms):
    """Check weights trained by world_size processes against one process on all their batches (combined) and on rank
    0's (alone), and the first step's gradient norms (grad_norms: the processes', then one process's on the combined)."""
    distance = lambda a, b: sum(((a[k].float() - b[k].float()) ** 2).sum() for k in b).sqrt().item()  # over all weights
    near, far = distance(trained, combined), distance(trained, alone)
    check(far > 0.01 * near, "the weights equal one process on rank 0's batches alone: the processes did not average "
          "their gradients (wrap the model in DDP), or every rank drew the same batches (seed with seed + rank)")
    check(distance(combined, alone) > 10 * near, "one process on both ranks' batches ends where one process on rank 0's "
          "alone does: every rank draws the same batches (seed each rank's generator with seed + rank)")
    ratio = grad_norms[0] / grad_norms[1]  # the same weights and batches at step 1: the same gradient, so 1
    check(not any(abs(ratio - r) < 0.02 * r for r in (world_size, 1 / world_size)), f"the first step's gradient of "
          f"the {world_size} processes is {ratio:.2f}x that of one process on the combined batches: the loss (or the "
          f"gradient) is scaled by the number of processes; DDP already averages, so leave the loss the batch's mean")
    check(near <= 0.01 * far, f"the {world_size}-process weights are not those of one process on the combined batches "
          f"(distance {near:.1e}, against {far:.1e} from rank 0 alone): check that every rank builds the model from the "
          "same seed and draws its batches from seed + rank, with the same learning rate and steps as one process")
    check(abs(ratio - 1) < 1e-3, f"the first step's gradient of the {world_size} processes is {ratio:.4f}x that of one "
          "process on the combined batches, not 1: every rank must take the same mean loss over its own batch")
    return Passed(f"{world_size} processes: passed (distance {near:.1e} from one process on the combined batches, "
                  f"{far:.1e} from one process on rank 0's batches alone)")


# %% tags=["nbval-ignore-output"]
steps = 3 if SMOKE else 5
ran = launch_torchrun(2, "--max-iters", steps)
if ran:
    race_lines, ckpt = ran
    print("\n".join(race_lines))
    settings, _ = race_settings(parse_args(["--race", "--max-iters", str(steps)]), "cpu")
    combined, combined_log = train_ddp(**settings, ranks=[0, 1])  # one process, batch 2B: rank 0's and rank 1's batches
    alone, _ = train_ddp(**settings, ranks=[0])  # one process, batch B: rank 0's batches only
    grad_norms = ckpt['log'][0][3], combined_log[0][3]  # step 1's gradient norms: the processes', one process's
ran and check_same_training(ckpt['model'], combined.state_dict(), alone.state_dict(), ckpt['world_size'], grad_norms)

# %% [markdown]
# ## 7. Is it faster?
#
# Tokens per second of the race's model with one process and with two (the same batch per process and
# steps, start-up and step 1 not timed). On a CPU with few cores expect no gain: two processes share
# the cores one used, and add the all-reduce; DDP pays off with a GPU per process.

# %% tags=["nbval-ignore-output"]
steps = 3 if SMOKE else 50
runs = {nproc: launch_torchrun(nproc, "--max-iters", steps) for nproc in (1, 2)}
if all(runs.values()):
    speed = {nproc: ckpt['tokens_per_second'] for nproc, (_, ckpt) in runs.items()}
    for nproc, (_, ckpt) in runs.items():
        print(f"{nproc} process(es) x batch {ckpt['batch_size']}: {speed[nproc]:,.0f} tokens/s, "
              f"whole-split val loss {ckpt['val_loss']:.4f} after {steps} steps")
    print(f"2 processes / 1 process: {speed[2] / speed[1]:.2f}x the tokens per second ({os.cpu_count()} CPU cores)")
fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2), constrained_layout=True)
if all(runs.values()):
    _ = left.bar([f"{n} process{'es' if n > 1 else ''}" for n in runs], [speed[n] for n in runs], color='tab:green')
    for nproc, (_, ckpt) in runs.items():
        _ = right.plot([entry[0] for entry in ckpt['log']], [entry[2] for entry in ckpt['log']],
                       label=f"{nproc} x {ckpt['batch_size']} sequences per step")
    _ = right.legend()
_ = left.set(ylabel='tokens per second', title=f'Throughput on {os.cpu_count()} CPU cores')
_ = right.set(xlabel='step', ylabel="rank 0's batch loss", title='The same steps, more sequences each')
show(fig, 'processes')

# %% [markdown]
# In the stored run on the 2-core CPU, one process trained 28,494 tokens per second and two 28,602,
# 1.00x as many: one pair of short runs, too few to call a gain; one process already kept both cores busy.
#
# ## Summary
#
# - A replica per process, each on its own batches (seeded `seed + rank`); the all-reduce during backward
#   gives every replica the same average gradient, so W processes with batch B train as one with batch
#   W × B (exactly so without dropout). Checked on gradients in one process, on `train_ddp`'s steps
#   against hand-computed ones, and on a real two-process Gloo run.
# - `torchrun` starts the processes and sets `RANK`, `LOCAL_RANK`, `WORLD_SIZE` and the meeting point;
#   NCCL on GPUs, Gloo on the CPU; `--nnodes` with a node rank or a rendezvous spans machines.
# - The price: an all-reduce of every gradient at every step, overlapped with backward.
#
# ## Exercises
#
# 1. nanoGPT keeps the total batch fixed instead: it divides its gradient-accumulation steps by the world
#    size and skips the all-reduce on all but the last micro-step (`with model.no_sync():`). Add
#    `--grad-accum` and check that 2 processes × 2 micro-steps train one process's weights on the same 4 batches.
# 2. Add notebook 05c's early stop to `train_ddp`: rank 0 evaluates every `eval_every` steps and
#    `dist.broadcast`s whether to stop, so that every rank leaves the loop at the same step.
# 3. On a machine with several GPUs, time the race with 1, 2, 4 … processes. Does the tokens per second
#    grow in proportion? At what model size does the all-reduce start to show?
