# %% [markdown]
# # 05c · Against the clock
#
# Notebook 05 made the lecture's GPT fast and timed every change; notebook 05b took the GPU's tricks
# apart on a CPU. This notebook trains the fast model for real against the clock, as the lecture's
# walk through nanoGPT does (**1:46:22 to 1:48:53**): the validation loss measured exactly over the
# whole split, a warmup-and-cosine learning-rate schedule, weight decay on the matrices, each checked,
# and a race to a target loss on the device you have. Reading order: after 05 and 05b, before 06 (05's
# model and training step are carried here, folded).
#
# Standalone (it downloads its data) and a script: `python notebooks/05c_against_the_clock.py` (or
# `--race`, notebook 05's old command, which does the same); every setting is a flag (`--help`).

# %%
import argparse, hashlib, math, os, pathlib, platform, shutil, sys, tempfile, time, urllib.request
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
RUN_NAME = "05c_against_the_clock"              # as a script, figures go to runs/05c_against_the_clock/

# %% [markdown]
# The next cells are plumbing every notebook carries so that it stands alone (folders, figures,
# the device, the data, the checks, the command line); they are folded in Jupyter and Colab.

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
# ## The command line
#
# The script does what the notebook does: the race. The model's size and the race's settings are
# flags (default: sized for the device), `--data FILE` trains on your own text (as in notebook 04);
# a flag out of range, or a file that is no usable text, stops with one line.

# %% jupyter={"source_hidden": true} cellView="form"
#@title Plumbing: this notebook's flags (unfold to read them; `--help` lists them too)
def parse_args(argv=None):
    """The command-line flags; argv=[] gives the defaults (None: sized for the device)."""
    p = Parser(prog="05c_against_the_clock.py", description="Train notebook 05's fast GPT against the clock.")
    g = p.add_argument_group("what to run (default: the race, everything the notebook does)")
    g.add_argument("--race", action="store_true", help="only train against the clock: what this notebook does anyway "
                                                        "(notebook 05's command for it, kept)")
    g.add_argument("--device", default="auto", choices=["auto", "cuda", "mps", "cpu"], help="where to run (default: the fastest there is)")
    g.add_argument("--compile", default="auto", choices=["auto", "yes", "no"],
                   help="torch.compile the race's model (default auto: on CUDA only; on the CPUs measured here it was slower)")
    g.add_argument("--data", help="UTF-8 text to train on (default: $COURSE_DATA, else tiny Shakespeare)")
    g = p.add_argument_group("model (default: sized for the device)")
    g.add_argument("--n-layer", type=int, help="blocks")
    g.add_argument("--n-head", type=int, help="attention heads per block (must divide --n-embd)")
    g.add_argument("--n-embd", type=int, help="channels of every token vector")
    g.add_argument("--block-size", type=int, help="context length in characters")
    g.add_argument("--dropout", type=float, help="dropout rate, 0 <= rate < 1")
    g = p.add_argument_group("the race (default: sized for the device)")
    g.add_argument("--max-iters", type=int, help="training steps")
    g.add_argument("--batch-size", type=int, help="sequences per step")
    g.add_argument("--learning-rate", type=float, help="peak learning rate of the schedule")
    g.add_argument("--warmup", type=int, help="steps of linear warmup before the cosine decay")
    g.add_argument("--seed", type=int, default=1337, help="random seed (default: 1337)")
    return p.parse_args(argv)


args = parse_args([] if IN_NOTEBOOK else None)

# %% jupyter={"source_hidden": true} cellView="form"
#@title Plumbing: every flag of this notebook checked before anything runs
RULES = {"n_layer": (positive, "at least 1"), "n_head": (positive, "at least 1"), "n_embd": (positive, "at least 1"),
         "block_size": (positive, "at least 1"), "dropout": (lambda v: 0 <= v < 1, "at least 0 and below 1"),
         "max_iters": (positive, "at least 1"), "batch_size": (positive, "at least 1"),
         "learning_rate": (finite, "a positive finite number"), "warmup": (lambda v: v >= 0, "at least 0"),
         "seed": (lambda v: 0 <= v < 2**64, "between 0 and 2**64 - 1")}


def check_args(args):
    """Stop with one line if a flag is out of range or does not go with another."""
    check_flags(args, RULES)
    if args.warmup is not None and args.max_iters is not None and args.warmup > args.max_iters:
        raise SystemExit(f"error: --warmup {args.warmup} is longer than the race's --max-iters {args.max_iters}; "
                         f"give --warmup at most {args.max_iters}")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise SystemExit("error: notebook 05c trains on one process; under torchrun use notebook 08: "
                         "torchrun --standalone --nproc_per_node=N notebooks/08_ddp.py --race")
    if args.n_embd and args.n_head and args.n_embd % args.n_head:
        raise SystemExit(f"error: --n-embd {args.n_embd} must be divisible by --n-head {args.n_head} (each head gets n_embd / n_head channels)")


check_args(args)

# %% [markdown]
# ## The data, as in the other notebooks

# %%
text = load_text(args.data)
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
# ## The models of notebooks 04 and 05
#
# The lecture's model as notebook 04 built it, notebook 05's fast model (all heads in one batched
# matrix multiplication, `F.scaled_dot_product_attention`), 05's batches gathered on the device and
# its one training step, `scaled_step`, with the gradient scaler for float16. Copied unchanged (a test
# keeps the copies equal) so that this notebook runs on its own, and folded: notebook 05 builds and
# checks each of them.

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
#@title Notebook 04's model: the GPT and its generate (folded)
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


# %% jupyter={"source_hidden": true} cellView="form"
#@title Notebook 05's fast model: batched heads and scaled_dot_product_attention (folded)
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


# %% jupyter={"source_hidden": true} cellView="form"
#@title Notebook 05's training pieces: batches on the device, the training step, mixed precision (folded)
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


def amp_dtype_for(device):
    """Mixed precision for a device: bfloat16 on GPUs of compute capability 8.0 and up, float16 on older ones, none elsewhere."""
    if device != 'cuda':
        return None
    return torch.bfloat16 if torch.cuda.get_device_capability() >= (8, 0) else torch.float16


def compiler_available():
    """Whether torch.compile can build kernels here: CUDA has Triton; a CPU needs a C++ compiler."""
    return device == 'cuda' or any(shutil.which(c) for c in (os.environ.get("CXX", "g++"), "g++", "c++", "clang++"))

# %% [markdown]
# ## The device
#
# As in notebook 05: bfloat16 mixed precision on GPUs of compute capability 8.0 and up, float16 with
# the gradient scaler on older ones (Colab's T4), float32 on a CPU; `torch.compile` on CUDA only.

# %% tags=["nbval-ignore-output"]
device = pick_device(args.device)
amp_dtype = amp_dtype_for(device)
use_compile = args.compile == "yes" or args.compile == "auto" and device == "cuda"  # on this CPU it measured slower
if use_compile and not compiler_available():
    raise SystemExit("error: --compile yes: no C++ compiler found for torch.compile on this CPU; install g++ or "
                     "clang++, or use --compile no")
print(describe_device(device))
print(f"mixed precision: {amp_dtype}, torch.compile: {use_compile}")

# %% [markdown]
# ## 1. The validation loss, exactly
#
# The race's validation loss is measured once over every character of the validation split, in
# non-overlapping chunks of `block_size` whose losses add up on the device: the exact number, where
# the lecture's `estimate_loss` averages 200 random batches (05b times both).

# %%
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



# %% [markdown]
# ## 2. The settings of the race
#
# The settings were chosen by measuring the CPU race one change at a time (`python
# dev/race_ablations.py`; README lists the runs): a short linear **warmup** and a **cosine decay** to
# a tenth of the peak (the largest gain: a constant rate ends clearly higher); a **peak** of 2e-3,
# twice the lecture's (1e-3 learns too slowly, 3e-3 was no better); **weight decay** 0.1 on every
# matrix, embeddings included, and AdamW's `beta2 = 0.99`, as nanoGPT has them (no measurable
# difference in a run this short); **clipping** at norm 1.0 on the GPU only (on the CPU: no better);
# on a CPU **three layers** of 128 channels, not four (more steps in the same time, a lower end);
# **`torch.compile`** on CUDA only (on this CPU a compiled step was slower than an eager one; `--compile
# yes` tries it). On CUDA the target is the lecture's 1.48, checked every 100 steps; on a CPU it is
# 1.70, after training and the one evaluation at the end.

# %%
RACES = {  # device: (model sizes, batch, steps, peak lr, warmup, target val loss, clip, steps between checks)
    "tiny": (dict(block_size=16, n_embd=32, n_head=2, n_layer=2, dropout=0.0), 8, 30, 1e-3, 5, None, None, None),
    "cuda": (dict(block_size=256, n_embd=384, n_head=6, n_layer=6, dropout=0.2), 64, 3000, 1e-3, 100, 1.48, 1.0, 100),
    "cpu": (dict(block_size=64, n_embd=128, n_head=4, n_layer=3, dropout=0.0), 32, 1200, 2e-3, 50, 1.70, None, None),
}

# %% [markdown]
# The device picks its race; sizes and settings given as flags replace its values.

# %% tags=["nbval-ignore-output"]
race_key = "tiny" if SMOKE else "cuda" if device == "cuda" else "cpu"
sizes, race_batch, race_iters, race_lr, warmup, target, clip, eval_every = RACES[race_key]
race = GPTConfig(vocab_size=len(chars), **{**sizes, **{k: getattr(args, k) for k in sizes if getattr(args, k) is not None}})
flags = (args.batch_size, args.max_iters, args.learning_rate, args.warmup)  # a value given as a flag wins
race_batch, race_iters, race_lr, warmup = (d if g is None else g for d, g in zip((race_batch, race_iters, race_lr, warmup), flags))
if race.n_embd % race.n_head:
    raise SystemExit(f"error: n_embd {race.n_embd} must be divisible by n_head {race.n_head}; change --n-embd or --n-head")
if warmup > race_iters:
    raise SystemExit(f"error: --warmup {warmup} is longer than the race's {race_iters} steps; give --warmup at most "
                     f"{race_iters}, or more --max-iters")
check_split_sizes(train_data, val_data, race.block_size, flag="--block-size")
block_size = race.block_size  # split_loss cuts the split into chunks of the model's context
torch.set_float32_matmul_precision('high')  # TF32 on GPUs that have it; nothing changes on a CPU
print(f"race: {asdict(race)}, batch {race_batch}, {race_iters} steps, peak lr {race_lr}, warmup {warmup}, clip {clip}, "
      f"target {target}, torch.compile {use_compile}")


# %% [markdown]
# ## 3. The schedule and the optimizer
#
# `lr_at` gives each step its learning rate: a linear warmup to the peak, then a cosine down to a
# tenth of it. `configure_optimizer` puts every matrix in a group with weight decay and every vector
# (biases, LayerNorm gains) in one without, as nanoGPT does.

# %%
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
# **Check.** The schedule, at three settings: positive at every step, rising through the warmup to
# the peak without a jump, falling after it along a cosine (halfway down midway between the warmup's
# end and `total`, still near the top a quarter of the way), a tenth of the peak at step `total` and
# after it. The optimizer: AdamW (decoupled weight decay), every parameter in exactly one group, decay
# on every matrix and on no vector, 0.1 by default, and the `lr` and `weight_decay` it is given.

# %% jupyter={"source_hidden": true} cellView="form"
#@title The checks of lr_at and configure_optimizer (folded: open them to see how they work)
def check_schedule(lr_at):
    """Probe lr_at(it, peak, warmup, total) for the properties of a warmup-and-cosine schedule."""
    for peak, warmup, total in ((1e-3, 10, 100), (2e-3, 50, 1200), (3e-4, 0, 40)):
        where = f"lr_at(it, peak={peak}, warmup={warmup}, total={total})"
        try:
            lrs = [lr_at(it, peak, warmup, total) for it in range(2 * total)]
        except Exception as e:
            raise CheckFailed(f"{where} fails with {type(e).__name__}: {e}") from None
        low = next((it for it, lr in enumerate(lrs[:total]) if not lr > 0), None)
        check(low is None, f"{where} is {lrs[low] if low is not None else 0} at step {low}: every step needs a positive rate")
        check(max(lrs) <= peak * 1.0001, f"{where} rises to {max(lrs):.3g}, above the peak")
        check(all(a < b for a, b in zip(lrs[:warmup], lrs[1:warmup])), f"{where} does not rise through the warmup")
        check(max(lrs[:warmup + 1]) >= peak * 0.95, f"{where} reaches only {max(lrs[:warmup + 1]):.3g} by the end of the warmup")
        check(warmup == 0 or lrs[warmup - 1] >= peak * 0.8, f"{where} is only {lrs[warmup - 1]:.3g} at step {warmup - 1}, "
              f"the warmup's last step: the warmup must climb to the peak over its own {warmup} steps")
        edge = lrs[max(0, warmup - 1):warmup + 2]
        jump = max(abs(b - a) for a, b in zip(edge, edge[1:]))
        check(jump <= peak * max(2 / max(warmup, 1), 0.05), f"{where} jumps by {jump:.3g} at the end of the warmup: "
              "the decay must start from the peak")
        check(all(a >= b for a, b in zip(lrs[warmup:total], lrs[warmup + 1:total])), f"{where} rises again after the warmup")
        fall, at = max((lrs[it] - lrs[it + 1], it) for it in range(warmup, total))
        check(fall <= 2 * peak / max(1, total - warmup), f"{where} falls by {fall:.3g} in one step, from step {at} to {at + 1}: "
              "a cosine falls a little at every step; does its progress grow step by step from 0 at the warmup's end to 1 at total?")
        check(all(abs(lr - peak / 10) <= peak * 1e-3 for lr in lrs[total:]), f"{where} is {lrs[total]:.3g} at step total and "
              f"{max(lrs[total:]):.3g} at most after it, not the floor peak / 10 = {peak / 10:.3g}")
        tol = max(2, (total - warmup) // 50)
        floor_at = next((it for it in range(warmup, total + 1) if abs(lrs[it] - peak / 10) <= peak * 1e-9), total)
        early = total - floor_at
        check(early <= tol or abs(early - warmup) > tol, f"{where} reaches the floor at step {floor_at}, {early} steps before "
              f"total = {total}: does the decay count its steps from 0, not from {warmup}, where it starts?")
        check(early <= tol, f"{where} reaches the floor peak / 10 at step {floor_at} and stays flat there until total = {total}: "
              "a cosine from the peak down to the floor touches it only at total; is the cosine aimed below the floor?")
        mid, half = (warmup + total) // 2, (lrs[warmup] + peak / 10) / 2  # a cosine (or a line) is halfway down midway
        crossed = next(it for it in range(warmup, total + 1) if lrs[it] <= half)
        check(abs(crossed - mid) <= tol, f"{where} is halfway down at step {crossed}, not midway between the warmup's end and "
              f"total (step {mid}): from which step, and over how many, does the decay count?")
        quarter = lrs[warmup + (total - warmup) // 4]
        check(quarter > peak * 0.8, f"{where} is {quarter:.3g} a quarter of the way down: a cosine is still near the top there")
    return Passed("lr_at: passed (positive, warmup to the peak, cosine down to peak / 10, flat after)")


def check_optimizer_groups(configure_optimizer, model):
    """Every parameter in exactly one group; weight decay on every matrix, none on vectors."""
    try:
        optimizer = configure_optimizer(model, 1e-3)
    except Exception as e:
        raise CheckFailed(f"configure_optimizer fails with {type(e).__name__}: {str(e).splitlines()[0]}") from None
    decay = {id(p): g['weight_decay'] for g in optimizer.param_groups for p in g['params']}
    held, params = sum(len(g['params']) for g in optimizer.param_groups), list(model.named_parameters())
    check(held == len(decay) == len(params), f"the groups hold {held} tensors, {len(decay)} different, for a model of "
          f"{len(params)}: each parameter must be in exactly one group")
    for name, p in params:
        check((decay[id(p)] > 0) == (p.dim() >= 2), f"{name} ({p.dim()}-d) has weight decay {decay[id(p)]}: decay "
              "every matrix, embeddings included, and no bias or LayerNorm gain")
    decoupled = all(g.get('decoupled_weight_decay', isinstance(optimizer, torch.optim.AdamW)) for g in optimizer.param_groups)
    check(isinstance(optimizer, torch.optim.Adam) and decoupled, f"configure_optimizer returns {type(optimizer).__name__}"
          f"{'' if not isinstance(optimizer, torch.optim.Adam) else ' with weight decay added to the gradient'}: the race "
          "uses Adam with decoupled weight decay, as the lecture's optimizer does")
    matrix = max(decay.values())
    check(abs(matrix - 0.1) < 1e-12, f"configure_optimizer(model, lr) decays matrices by {matrix} by default: the race's "
          "setting (nanoGPT's) is 0.1")
    try:
        asked = configure_optimizer(model, 2e-3, weight_decay=0.05)
    except Exception as e:
        raise CheckFailed(f"configure_optimizer(model, 2e-3, weight_decay=0.05) fails with {type(e).__name__}: {e}") from None
    given = {(g['lr'], g['weight_decay']) for g in asked.param_groups}
    check(given == {(2e-3, 0.05), (2e-3, 0.0)}, f"configure_optimizer(model, 2e-3, weight_decay=0.05) makes groups with "
          f"(lr, weight decay) {sorted(given)}: use the lr and weight_decay it is given")
    return Passed("configure_optimizer: passed (AdamW, every matrix decayed, no vector)")


def check_whole_split_loss(split_loss):
    """split_loss on a stand-in model whose loss differs from chunk to chunk, against the mean over all chunks by hand."""
    class StandIn(nn.Module):  # loss of a batch: the mean of 0.01 * token, plus 5 wherever a target is not its token + 1
        config = GPTConfig(vocab_size=8 * block_size, block_size=block_size)  # as a model has it

        def forward(self, idx, targets):
            modes.append((self.training, torch.is_grad_enabled()))
            per = idx.float() * 0.01 + (targets != idx + 1).float() * 5  # (B, T)
            return None, per.mean()
    T, modes, probe = block_size, [], StandIn()
    data = torch.arange(7 * T + 1)  # 7 chunks: batches of 3, 3 and 1 with batch=3
    expected = (torch.arange(7 * T).float() * 0.01).mean().item()  # every target is its token + 1
    try:
        got = split_loss(probe, data, batch=3)
    except Exception as e:
        raise CheckFailed(f"split_loss(model, data, batch=3) fails with {type(e).__name__}: {str(e).splitlines()[0]}") from None
    check(all(not training for training, _ in modes), "split_loss ran the model in training mode: dropout would "
          "perturb the loss it measures")
    check(all(not grad for _, grad in modes), "split_loss built a graph for gradients: it only measures, without them")
    check(probe.training, "split_loss left the model in eval mode: training goes on after it, with dropout")
    check(isinstance(got, float), f"split_loss returned a {type(got).__name__}, not a Python float")
    off = (torch.arange(7 * T).float() * 0.01 + 5).mean().item()
    check(abs(got - off) > 1e-3, f"split_loss gave {got:.4f}: the stand-in's loss says each chunk's targets are not "
          "the characters one step after its inputs")
    by_characters = abs(got * T - expected) <= 1e-4 * expected
    check(abs(got - expected) <= 1e-4 * expected, f"split_loss(batch=3) gave {got:.4f}, not {expected:.4f}, the mean "
          "loss over all 7 chunks of a stand-in model" + (", but 1 / block_size of it: is the sum of the chunks' losses divided "
          "by the number of characters, not of chunks?" if by_characters else ": is each batch weighted by the number of chunks it holds?"))
    try:  # 8 * T characters hold only 7 chunks whose targets are all inside the split
        again = split_loss(probe, torch.arange(8 * T), batch=3)
    except Exception as e:
        raise CheckFailed(f"split_loss fails with {type(e).__name__} on a split of 8 * block_size characters: the last "
                          "chunk's targets run one character past the end; how many whole chunks does such a split hold?") from None
    check(abs(again - expected) <= 1e-4 * expected, f"split_loss gave {again:.4f} on a split of 8 * block_size characters, "
          f"not {expected:.4f}, the mean over its 7 chunks whose targets are all inside the split")
    return Passed("split_loss: passed (eval mode and back, targets one step on, the mean over every chunk)")


def check_train_fast(train_fast):
    """Watch short train_fast runs: one step per iteration at the schedule's rate on the training split, the clip
    and the seed obeyed, the early stop measured on the validation split."""
    g, seen = train_fast.__globals__, {"lrs": [], "data": [], "optimizers": set(), "clips": set(), "blocks": set(), "evals": []}
    saved = g["scaled_step"], g["get_batch_on_device"], g["split_loss"]

    def watched_step(model, optimizer, scaler, loss, lr, clip=None):
        seen["lrs"].append(lr), seen["clips"].add(clip)
        seen["optimizers"].add(optimizer)
        return saved[0](model, optimizer, scaler, loss, lr, clip)

    def watched_batch(data, batch_size, block_size):
        seen["data"].append(len(data)), seen["blocks"].add(block_size)
        return saved[1](data, batch_size, block_size)

    def watched_loss(model, data, *args, **kwargs):  # stands in for split_loss: it records the split, and says 0.5
        seen["evals"].append(len(data))
        return 0.5
    tiny = GPTConfig(vocab_size=int(max(train_data.max(), val_data.max())) + 1, block_size=6, n_embd=16, n_head=2, n_layer=1, dropout=0.0)
    peak, warmup, iters = 1e-3, 2, 6

    def run(where, **kwargs):
        for kept in seen.values():
            kept.clear()
        try:
            return train_fast(tiny, 4, iters, peak, warmup, **{"weight_decay": 0.05, "seed": 1337, **kwargs})
        except Exception as e:
            check(seen["blocks"] <= {tiny.block_size}, f"{where} draws batches of {sorted(seen['blocks'])} characters for a "
                  f"model of block_size {tiny.block_size}: whose context length do its batches take?")
            raise CheckFailed(f"{where} fails with {type(e).__name__}: {str(e).splitlines()[0]}") from None
    g["scaled_step"], g["get_batch_on_device"], g["split_loss"] = watched_step, watched_batch, watched_loss
    try:
        for cosine, clip in ((True, 0.5), (False, None)):
            where = f"train_fast(..., iters={iters}, peak_lr={peak}, warmup={warmup}, cosine={cosine}, clip={clip})"
            model, log, _ = run(where, cosine=cosine, clip=clip)
            check(seen["blocks"] == {tiny.block_size}, f"{where} draws batches of {sorted(seen['blocks'])} characters for a "
                  f"model of block_size {tiny.block_size}: whose context length do its batches take?")
            check(seen["clips"] == {clip}, f"{where} clips the gradients at {sorted(seen['clips'], key=str)}: pass "
                  "train_fast's clip on to scaled_step")
            lrs = seen["lrs"]
            check(len(lrs) == iters, f"{where} took {len(lrs)} optimizer steps, not one per iteration")
            want = [lr_at(it, peak, warmup, iters) if cosine else peak for it in range(iters)]
            bad = next((it for it in range(iters) if abs(lrs[it] - want[it]) > 1e-12), None)
            check(bad is None, f"{where} runs step {bad} at learning rate {lrs[bad] if bad is not None else 0:.3g}, where "
                  f"{'the schedule lr_at gives' if cosine else 'a constant rate is'} {want[bad] if bad is not None else 0:.3g}: "
                  "which step, peak, warmup and total does each step's rate come from?")
            check(set(seen["data"]) == {len(train_data)}, f"{where} draws batches from a split of {sorted(set(seen['data']))} "
                  f"characters, not the training split's {len(train_data)}")
            optimizer = next(iter(seen["optimizers"]))
            decays = {grp['weight_decay'] for grp in optimizer.param_groups} if optimizer else set()
            check(decays == {0.05, 0.0}, f"{where}, weight_decay=0.05 steps an optimizer with weight decays {sorted(decays)}: "
                  "pass train_fast's weight_decay on")
            trained = {id(p) for grp in optimizer.param_groups for p in grp['params']}
            check(trained == {id(p) for p in model.parameters()}, f"{where} returns a model other than the one it trained")
            check(bool(log) and log[-1][0] == iters, f"{where} logs its last step as {log[-1][0] if log else None}, not {iters}")
            if cosine:
                first = [p.detach().clone() for p in model.parameters()]
        apart = lambda seed: max((a - b).abs().max().item() for a, b in zip(first, run(f"train_fast(..., seed={seed})",
                                                                                     clip=0.5, seed=seed)[0].parameters()))
        check(apart(1337) <= 1e-4, "two train_fast runs with seed=1337 end with different weights: does seed set torch's "
              "random numbers before the model's weights and the batches are drawn?")
        check(apart(1) > 1e-4, "train_fast with seed=1 ends with the same weights as with seed=1337: the seed it is given "
              "must be the one torch's random numbers start from")
        where = f"train_fast(..., iters={iters}, eval_every=2, target=1.0)"
        run(where, eval_every=2, target=1.0)
        check(bool(seen["evals"]), f"{where} never measured the validation loss: check it every eval_every steps")
        check(set(seen["evals"]) == {len(val_data)}, f"{where} measures its early stop on splits of "
              f"{sorted(set(seen['evals']))} characters, not on the validation split's {len(val_data)}")
        check(len(seen["lrs"]) < iters, f"{where} ran all {iters} steps, though split_loss gave 0.5 at its first check: "
              "stop once the validation loss reaches the target")
    finally:
        g["scaled_step"], g["get_batch_on_device"], g["split_loss"] = saved
    return Passed("train_fast: passed (one step per iteration at the schedule's rate, on the training split; clip, seed and "
                  "early stop obeyed)")


# %%
check_schedule(lr_at)

# %%
toy = GPTConfig(vocab_size=65, block_size=16, n_embd=64, n_head=4, n_layer=2, dropout=0.2)
check_optimizer_groups(configure_optimizer, FastGPT(toy))

# %% [markdown]
# **Check.** `split_loss` (section 1) on a stand-in model whose loss differs from chunk to chunk:
# the mean over every chunk, in eval mode, without gradients, and back in training mode after; on
# splits of 7 `block_size` + 1 and of 8 `block_size` characters (7 whole chunks in each).

# %%
check_whole_split_loss(split_loss)


# %% [markdown]
# ## 4. The training loop
#
# `train_fast` trains a `FastGPT` with 05's batches on the device and 05's `scaled_step`, at the
# schedule's rate for each step, under autocast when the device has mixed precision. With
# `torch.compile`, one throwaway step compiles the model before the clock starts (the weights and
# the random state left as they were), so that the compile time is reported apart. `start_fast` builds
# what the loop needs; `train_fast` is the loop.

# %%
def warm_up_compiled(step_model, optimizer, autocast, train_on_device, batch_size, block_size):
    """Compile forward and backward on a throwaway batch, leaving the weights and random state untouched."""
    state = torch.get_rng_state(), torch.cuda.get_rng_state_all() if device == 'cuda' else None
    with autocast():
        step_model(*get_batch_on_device(train_on_device, batch_size, block_size))[1].backward()
    optimizer.zero_grad(set_to_none=True)
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state_all(state[1])


# %%
def start_fast(config, train_on_device, batch_size, seed, peak_lr, weight_decay, fused, amp_dtype, compile):
    """A fresh FastGPT on the device (seeded), the module that steps (compiled and warmed up, if asked), its
    optimizer, the gradient scaler (float16 only), the autocast context, and the seconds compiling took."""
    torch.manual_seed(seed)
    model = FastGPT(config).to(device)
    step_model = torch.compile(model) if compile else model
    optimizer = configure_optimizer(model, peak_lr, weight_decay, fused)
    scaler = torch.amp.GradScaler(device, enabled=amp_dtype == torch.float16)
    autocast = lambda: torch.autocast(device, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None)
    t0 = time.perf_counter()
    if compile:
        warm_up_compiled(step_model, optimizer, autocast, train_on_device, batch_size, config.block_size)
    sync()
    return model, step_model, optimizer, scaler, autocast, time.perf_counter() - t0


# %%
def train_fast(config, batch_size, iters, peak_lr, warmup, seed=1337, cosine=True, weight_decay=0.1, clip=1.0,
               eval_every=None, target=None, amp_dtype=None, fused=False, compile=False):
    """Train a FastGPT, stopping early once the whole-split val loss (checked every eval_every steps) reaches
    target; returns it, a log of (step, seconds, loss), and the seconds spent compiling before the clock."""
    train_on_device = train_data.to(device)
    model, step_model, optimizer, scaler, autocast, compile_seconds = start_fast(
        config, train_on_device, batch_size, seed, peak_lr, weight_decay, fused, amp_dtype, compile)
    log, t0 = [], time.perf_counter()
    for it in range(iters):
        x, y = get_batch_on_device(train_on_device, batch_size, config.block_size)  # (B, T) each
        with autocast():
            _, loss = step_model(x, y)
        scaled_step(model, optimizer, scaler, loss, lr_at(it, peak_lr, warmup, iters) if cosine else peak_lr, clip)
        if (it + 1) % max(1, iters // 20) == 0 or it + 1 == iters:  # 20 points, and the last step
            log.append((it + 1, time.perf_counter() - t0, loss.item()))
        if eval_every and (it + 1) % eval_every == 0 and split_loss(model, val_data, amp_dtype=amp_dtype) <= target:
            log.append((it + 1, time.perf_counter() - t0, loss.item()))
            break
    sync()
    return model, log, compile_seconds


# %% [markdown]
# **Check.** Six-step runs of a tiny model, watched: one optimizer step per iteration, each at the
# schedule's rate (or the constant peak with `cosine=False`), batches of the model's `block_size` from
# the training split, the weight decay and the clip passed on, the trained model returned, the same
# weights from the same seed and others from another, and the early stop measured on the validation split.

# %%
check_train_fast(train_fast)



# %% [markdown]
# ## 5. The race
#
# A correct run on a CPU lands at a whole-split validation loss of 1.68 to 1.70 (three seeds); the
# cell prints where yours landed.

# %% tags=["nbval-ignore-output"]
EXPECTED_VAL = {"cpu": (1.68, 1.70)}  # whole-split val of correct CPU races on tiny Shakespeare (seeds 1337, 1, 2)
model, log, compile_seconds = train_fast(race, race_batch, race_iters, race_lr, warmup, seed=args.seed, clip=clip,
                                         eval_every=eval_every, target=target, amp_dtype=amp_dtype,
                                         fused=device != 'mps', compile=use_compile)
train_seconds = log[-1][1] if log else 0.0
t0 = time.perf_counter()
val = split_loss(model, val_data, amp_dtype=amp_dtype)
total_seconds = train_seconds + time.perf_counter() - t0
steps_done = log[-1][0] if log else race_iters
print(f"{steps_done} steps in {train_seconds:.1f} s; whole-split val loss {val:.4f}; {total_seconds:.1f} s with the "
      f"evaluation (device {device}; compiling took {compile_seconds:.1f} s before the clock started)")
if target is not None:
    print(f"target {target}: {'reached' if val <= target else 'not reached'}")
band = EXPECTED_VAL.get(race_key) if device == race_key and not (args.data or os.environ.get("COURSE_DATA")) else None
if band and (race_batch, race_iters, race_lr) == RACES[race_key][1:4]:
    print(f"a correct run lands at val {band[0]:.2f}-{band[1]:.2f}: {'yes' if band[0] <= val <= band[1] else 'NO: look for a difference'}")

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
if log:
    _ = ax.plot([t for _, t, _ in log], [l for _, _, l in log], label='training loss (one batch)')
    _ = ax.axhline(val, color='tab:orange', linestyle='--', label='whole-split val loss at the end')
_ = ax.set(xlabel='seconds of training', ylabel='loss', title='The fast GPT against the clock')
_ = ax.legend()
show(fig, 'race')

# %% [markdown]
# A sample from the fast model, with the lecture's `generate` (in `eval()` mode, without gradients).

# %% tags=["nbval-ignore-output"]
if not all(p.isfinite().all() for p in model.parameters()):
    raise SystemExit(f"error: the model diverged (its weights are no longer finite numbers), so there is nothing to "
                     f"sample: lower --learning-rate (it was {race_lr:g})")
torch.manual_seed(args.seed)
print(decode(model.generate(torch.zeros((1, 1), dtype=torch.long, device=device), 400, temperature=0.8)[0].tolist()))

# %% [markdown]
# ## Summary
#
# - The validation loss is computed once over the whole split: exact, not an estimate.
# - A warmup-and-cosine schedule with a higher peak learning rate than the lecture's, and weight
#   decay on every matrix, trains notebook 05's fast model against the clock (both checked by their
#   properties); on a CPU the race's settings were chosen by measuring one change at a time.
# - `train_fast` runs every device's path through one loop: batches on the device, `scaled_step`
#   with the gradient scaler for float16, autocast, fused AdamW, `torch.compile` timed apart.
#
# ## Exercises
#
# 1. Replace ReLU with GELU and drop the LayerNorms' biases (as nanoGPT's `bias=False` option does).
#    Does the race finish lower? (Notebook 06c measures GELU and weight tying.)
# 2. Find the largest `--learning-rate` that still trains. What happens then with gradient clipping?
# 3. Run `python notebooks/05c_against_the_clock.py` with `--seed 1` and `--seed 2`: does each land
#    in the band the race prints? How far apart are two seeds, compared with the changes in the
#    settings' table of the README?
