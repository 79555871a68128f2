# %% [markdown]
# # 06b · The lecture's exercises, part 2: pretrain, then finetune
#
# Notebook 06 solved the first two of the lecture's four exercises. This one holds the third, with
# the lecture's last chapter on ChatGPT beside it:
#
# 3. **Pretrain, then finetune**: pretrain notebook 05's model on a different, larger text (Tolstoy's
#    *War and Peace*), finetune it on tiny Shakespeare, and compare with training on tiny
#    Shakespeare alone for the same compute.
#
# The fourth exercise, ideas from later papers raced against the lecture's model, is notebook 06c.
#
# The exercise has the same shape as those of notebook 06: a statement with a hint, your starting
# point (it raises `NotImplementedError`), a check that says in one sentence what is wrong or that
# it passed (its code folded, so that reading it does not give the answer away; "not done yet" until
# you fill it in), then a folded solution, the check run on it, and what it reaches when trained.
#
# Standalone (it downloads its data) and a script: `python notebooks/06b_pretrain_finetune.py`.

# %%
import copy, hashlib, math, os, pathlib, platform, statistics, sys, tempfile, time, urllib.request
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
RUN_NAME = "06b_pretrain_finetune"             # as a script, figures go to runs/06b_pretrain_finetune/

# %% [markdown]
# The next cells are plumbing every notebook carries so that it stands alone (folders, figures,
# the device, the data, the checks); they are folded in Jupyter and Colab.

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
# %% jupyter={"source_hidden": true} cellView="form"
#@title Plumbing: the batch check (the same in every notebook that carries it)
def check_batch(x, y, data, batch_size, block_size, draw=None, device=None):
    """Check one batch (x, y) of get_batch: on device (if given), shapes, int64, y = x shifted by one, rows chunks of
    data; with draw (get_batch called without arguments), also offsets at both ends of their range, fresh draws."""
    check(device is None or x.device.type == y.device.type == torch.device(device).type, f"get_batch returns its "
          f"batch on the {x.device.type}, not on {device} where the model trains: move x and y there with .to(device)")
    check(x.shape == y.shape == (batch_size, block_size), f"get_batch should return two ({batch_size}, "
          f"{block_size}) tensors, got {tuple(x.shape)} and {tuple(y.shape)}: stack batch_size chunks of block_size")
    check(x.dtype == y.dtype == torch.long, f"get_batch returns {x.dtype} and {y.dtype}: keep the data as torch.long")
    check(not torch.equal(x, y), "the targets equal the inputs: take y = data[i+1:i+block_size+1], one step on")
    check(torch.equal(x[:, 1:], y[:, :-1]), "the targets are not the inputs shifted by one: "
          "x = data[i:i+block_size] needs y = data[i+1:i+block_size+1]")
    data = data.cpu()
    check_rows(x.cpu(), y.cpu(), data)
    check(len(x) == 1 or len({tuple(r) for r in x.tolist()}) > 1, "every row of the batch is the same chunk: draw "
          "batch_size random offsets, ix = torch.randint(len(data) - block_size, (batch_size,))")
    if draw is not None:
        with torch.random.fork_rng(devices=[]):  # the notebook's random numbers untouched
            torch.manual_seed(0)
            (ex, ey), forced = attempt("get_batch, given the smallest and the largest offsets torch.randint can draw,",
                                       at_extremes, draw, hint="the last chunk needs block_size + 1 characters, so "
                                       "offsets stay below len(data) - block_size")
            check_rows(ex.cpu(), ey.cpu(), data, "with offsets at both ends of their range, ")
            for end, chunk, what in (("top", data[len(data) - block_size - 1:-1], "last chunk of the split, so the offsets "
                                      "stop short of len(data) - block_size - 1 and the last"), ("bottom", data[:block_size],
                                      "first chunk of the split, so offset 0 is never drawn and the first")):
                check(not forced or end == "bottom" and len(ex) < 2 or any(torch.equal(r, chunk) for r in ex.cpu()),
                      f"with torch.randint at the {end} of its range no row is the {what} characters are never trained "
                      "on: torch.randint(n, ...) draws 0 to n - 1")
            again = [draw()[0].cpu() for _ in range(3)]
        check(not all(torch.equal(a, again[0]) for a in again), "get_batch gave the same batch three times in a row: "
              "draw fresh random offsets at every call, ix = torch.randint(len(data) - block_size, (batch_size,))")
    return Passed("get_batch: passed")

def check_rows(x, y, data, when=""):
    """Every row of x is a chunk of data and the row of y the characters that follow it."""
    for row in range(min(len(x), 8)):
        found = torch.arange(len(data) - x.shape[1])  # every start with a next character after the chunk
        for j, c in enumerate(x[row].tolist()):
            found = found[data[found + j] == c]
        check(len(found) > 0, f"{when}row {row} of the batch is not a chunk of the training split: index that "
              "split, x = data[i:i+block_size]")
        for j, c in enumerate(y[row].tolist()):
            found = found[data[found + 1 + j] == c]
        check(len(found) > 0, f"{when}row {row}'s targets are not the characters that follow its inputs in the "
              "training split: y = data[i+1:i+block_size+1] (a shift or roll of x loses the character after the chunk)")

def at_extremes(draw):
    """draw() with torch.randint returning, for any range low..high, high - 1 and low in turn; and whether it was called."""
    real, called = torch.randint, []

    def ends(*args, size=None, **kwargs):
        called.append(True)
        ints = [a for a in args if isinstance(a, int)]
        size = size if size is not None else next(a for a in args if isinstance(a, (tuple, list, torch.Size)))
        low, high = (ints[0], ints[1]) if len(ints) > 1 else (kwargs.get("low", 0), ints[0] if ints else kwargs["high"])
        out = torch.full(tuple(size), low, dtype=kwargs.get("dtype") or torch.long, device=kwargs.get("device"))
        out.view(-1)[::2] = high - 1
        return out

    torch.randint = ends
    try:
        return draw(), bool(called)
    finally:
        torch.randint = real


# %% [markdown]
# A check passes with `Passed("…: passed (…)")` and fails with `CheckFailed` and one sentence. Run on
# a starting point that is not filled in yet, it returns a `NotDone` sentence instead of failing, so
# that the whole notebook still runs from top to bottom.

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
# ## The data and the models of notebooks 04 and 05
#
# Tiny Shakespeare (or your own text through `COURSE_DATA`), and copies of notebook 04's model and
# of notebook 05's fast model and training pieces, so that this notebook runs on its own (a test
# checks that the copies never drift from the originals). The copies are folded: you know them from
# notebooks 04 and 05 (and 05's batched attention is a solution of notebook 06's exercise 1).

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
#@title Notebook 04's model: the configuration, a head, many heads (folded)
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


# %% jupyter={"source_hidden": true} cellView="form"
#@title Notebook 04's model: the feed-forward layer and the block (folded)
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
        return self.dropout(self.proj(y))


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
#@title Notebook 05's training pieces: batches on the device, the schedule, the optimizer (folded)
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
    return chunk[:, :-1], chunk[:, 1:]


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


# %% jupyter={"source_hidden": true} cellView="form"
#@title Notebook 05's whole-split loss (folded)
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
# ## Exercise 3: pretrain, then finetune
#
# ### Back to ChatGPT [▶ 1:48:53](https://www.youtube.com/watch?v=kCc8FmEb1nY&t=6533s)
#
# The lecture ends where it began, with ChatGPT, which is trained in two stages. **Pretraining**: a
# decoder-only Transformer like ours, only far larger, learns to continue text from a large part of
# the internet; it becomes a document completer, not an assistant: asked a question, it may answer
# with more questions. **Finetuning** then aligns it, in three steps: supervised finetuning on a
# smaller set of demonstrations (questions with good answers written by people); a reward model,
# trained on answers that people ranked from best to worst, that scores an answer; and reinforcement
# learning (RLHF, reinforcement learning from human feedback) that tunes the model to write answers
# the reward model scores high. Pretraining is the expensive part; the finetuning data is small.
#
# This exercise practises the first two ideas at our scale: pretrain on one text, finetune on
# another with fewer steps and a lower learning rate.
#
# **The statement.** Pretrain notebook 05's `FastGPT` on a corpus other than tiny Shakespeare, then
# finetune it on tiny Shakespeare, and compare its validation loss (the whole split) with a model
# trained on tiny Shakespeare alone for the same compute (the same number of steps of the same batch).
# Does pretraining help? The corpus is Leo Tolstoy's *War and Peace* in English, as used in
# Karpathy's char-rnn: 3.2 million characters, nearly three times tiny Shakespeare, of 19th-century prose
# instead of verse drama. Point `COURSE_PRETRAIN` at a UTF-8 text of your own to pretrain on it instead.

# %% jupyter={"source_hidden": true} cellView="form"
#@title War and Peace, found or downloaded and verified, and a leakage count (folded)
PRETRAIN_URLS = ("https://cs.stanford.edu/people/karpathy/char-rnn/warpeace_input.txt",
                 "https://raw.githubusercontent.com/ZihanDai2005/PSTAT_160B_Final_Project/"
                 "a86116a2239540182660c91f9801db086e756752/data/warpeace_input.txt")  # a copy pinned to a commit
PRETRAIN_SHA256 = "fb66ba999dafe24017cdd59e04c56d385a9c8466993d374fd4c6f08b2142985e"


def fetch_warpeace(folder):
    """Path of War and Peace in folder, downloaded once from the first of PRETRAIN_URLS that gives the right file."""
    path = pathlib.Path(folder) / "warpeace.txt"
    if not path.exists():
        part, failures = path.with_name(path.name + ".part"), []
        path.parent.mkdir(parents=True, exist_ok=True)
        for url in PRETRAIN_URLS:
            print(f"downloading War and Peace from {url} to {path}")
            try:
                urllib.request.urlretrieve(url, part)
            except OSError as e:
                part.unlink(missing_ok=True)
                failures.append(f"{url} ({e})")
                continue
            digest = hashlib.sha256(part.read_bytes()).hexdigest()
            if digest == PRETRAIN_SHA256:
                part.replace(path)
                break
            part.unlink()
            failures.append(f"{url} (sha256 {digest[:16]}, expected {PRETRAIN_SHA256[:16]})")
        else:
            raise SystemExit(f"error: could not get War and Peace: {'; '.join(failures)}; copy warpeace_input.txt to "
                             f"{path} by hand, or set COURSE_PRETRAIN to a UTF-8 text of your own")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != PRETRAIN_SHA256:
        raise SystemExit(f"error: {path} has sha256 {digest[:16]}, expected {PRETRAIN_SHA256[:16]}; "
                         "delete it and run again to download a fresh copy")
    return path


def load_pretrain_text():
    """(name, text) of the pretraining corpus: $COURSE_PRETRAIN, else War and Peace (downloaded once, verified);
    in smoke mode a stand-in, the course's README.md. Windows line ends become '\\n', as in tiny Shakespeare."""
    if os.environ.get("COURSE_PRETRAIN"):
        name, corpus = os.environ["COURSE_PRETRAIN"], read_text(os.environ["COURSE_PRETRAIN"], "COURSE_PRETRAIN")
    elif SMOKE:
        name, corpus = "README.md, a stand-in (smoke mode does not download War and Peace)", read_text(
            course_root() / "README.md", "the stand-in corpus")
    else:
        name, corpus = "War and Peace", read_text(fetch_warpeace(course_root() / "datasets"), "the download")
    return name, corpus.replace("\r\n", "\n")


def shared_windows(corpus, text, n=50):
    """How many of corpus's n-character windows also occur in text (text's windows are hashed into a set)."""
    windows = {text[i:i + n] for i in range(len(text) - n + 1)}
    return sum(corpus[i:i + n] in windows for i in range(len(corpus) - n + 1))


# %% [markdown]
# The file starts with a byte-order mark (the loader drops it) and ends its lines with `\r\n`
# (Windows'), which become `\n`. Before we trust a comparison on tiny Shakespeare's validation
# split, we make sure none of it is in the corpus: no window of 50 characters of the split may
# occur anywhere in it. The vocabulary is the union of both texts' characters, so that one model
# reads both.

# %% tags=["nbval-ignore-output"]
corpus_name, corpus = load_pretrain_text()
val_text = text[n:]  # tiny Shakespeare's validation split, as characters
leaks = shared_windows(corpus, val_text)
check(leaks == 0, f"{leaks:,} windows of 50 characters of tiny Shakespeare's validation split occur in "
      f"{corpus_name}: the comparison would flatter pretraining; choose another corpus")
print(f"pretraining corpus: {corpus_name}, {len(corpus):,} characters")
print(f"{leaks:,} of its {len(corpus) - 49:,} windows of 50 characters occur in tiny Shakespeare's validation split "
      f"({len(val_text) - 49:,} windows): no leakage")
pt_chars = sorted(set(text) | set(corpus))
pt_stoi = {ch: i for i, ch in enumerate(pt_chars)}
pt_encode = lambda s: torch.tensor([pt_stoi[c] for c in s], dtype=torch.long)  # string -> tensor of integers
shakespeare, pretrain_data = pt_encode(text), pt_encode(corpus)
sp_train, sp_val = shakespeare[:n].to(device), shakespeare[n:].to(device)  # the same split as above
m = int(0.9 * len(pretrain_data))
pt_train, pt_val = pretrain_data[:m].to(device), pretrain_data[m:].to(device)
print(f"vocabulary: {len(pt_chars)} characters ({len(set(corpus) - set(text))} only in the corpus, "
      f"{len(set(text) - set(corpus))} only in tiny Shakespeare); corpus train {len(pt_train):,}, val {len(pt_val):,}")
check_batch(*get_batch_on_device(pt_train, 8, 64), pt_train, 8, 64)

# %% [markdown]
# **Your part** is the training loop that all three runs share: `train_on(model, data, steps,
# peak_lr, batch_size, warmup)` trains the model it is given, in place, on `data` (a 1-D tensor of
# token ids on the device), for `steps` steps of `batch_size` chunks of `model.config.block_size`,
# with notebook 05c's optimizer and schedule peaking at `peak_lr`, and returns a log of
# `(step, loss)`. Pretraining and finetuning are the same loop; only the data, the number of steps
# and the learning rate change.
#
# **Hint.** Notebook 05c's `train_fast` without the clock, the compiling and the mixed precision:
# `configure_optimizer(model, peak_lr)`, then at every step `lr_at(it, peak_lr, warmup, steps)`,
# `get_batch_on_device(data, batch_size, model.config.block_size)`, forward, backward, step. Do not
# build a new model inside: finetuning must start from the pretrained weights.

# %%
def train_on(model, data, steps, peak_lr, batch_size=32, warmup=0):
    """Train model in place on data (token ids) for steps steps with a schedule peaking at peak_lr; returns [(step, loss)]."""
    raise NotImplementedError("exercise 3: the training loop, for a model that may already be trained")


# %% [markdown]
# **The check** (folded) gives your loop a fresh model and a random text, several times: with
# `peak_lr = 0` nothing may change; with other learning rates, warmups and batch sizes it records
# the batches your loop drew and the mode the model ran in, then recomputes every step by hand
# (AdamW's arithmetic, with the learning rate of `lr_at` at each step, on the same batches) and
# requires the same weights and the same logged losses.

# %% jupyter={"source_hidden": true} cellView="form"
#@title The check of exercise 3 (folded: it holds no solution, but reading it is not the exercise)
def record_calls(model):
    """Make model record every call (inputs, targets, training mode, gradients on); returns the list it fills."""
    seen, forward = [], model.forward
    def recording(idx, targets=None, *args, **kwargs):
        seen.append((idx.detach().clone(), None if targets is None else targets.detach().clone(), model.training,
                     torch.is_grad_enabled()))
        return forward(idx, targets, *args, **kwargs)
    model.forward = recording  # an attribute of this model only; `del model.forward` takes it away
    return seen


def adamw_by_hand(model, batches, lrs, accumulate=False, reset=False, betas=(0.9, 0.99), decay=0.1,
                  decay_all=False, clip=None):
    """AdamW's arithmetic step by step on the given batches and learning rates; returns the losses and the weights."""
    params, losses, grads = list(model.parameters()), [], None
    m, v = [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params]
    for t, ((xb, yb), lr) in enumerate(zip(batches, lrs), start=1):
        loss = model(xb, yb)[1]
        fresh = torch.autograd.grad(loss, params)
        grads = [g + f for g, f in zip(grads, fresh)] if accumulate and grads else list(fresh)
        if clip:
            scale = min(1.0, clip / (torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])) + 1e-6).item())
            grads = [g * scale for g in grads]
        if reset:
            m, v, t = [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params], 1
        with torch.no_grad():
            for p, g, mi, vi in zip(params, grads, m, v):
                p.mul_(1 - lr * (decay if p.dim() >= 2 or decay_all else 0.0))
                mi.mul_(betas[0]).add_(g, alpha=1 - betas[0])
                vi.mul_(betas[1]).addcmul_(g, g, value=1 - betas[1])
                p.sub_(lr / (1 - betas[0]**t) * mi / ((vi / (1 - betas[1]**t)).sqrt() + 1e-8))
        losses.append(loss.item())
    return losses, {k: t.detach().clone() for k, t in model.state_dict().items()}


def drawn_batches(name, seen, data, steps, batch_size, block_size):
    """The (x, y) of each training step the loop ran, checked to be chunks of data and their next characters."""
    calls = [(x, y) for x, y, _, grad in seen if grad]
    check(len(calls) > 0 or not seen, f"{name} ran the model only without gradients (inside torch.no_grad() or "
          "torch.inference_mode()): the training steps' forward passes need them")
    check(len(calls) > 0, f"{name} never ran the model it was given: train `model` itself, not a new model or a "
          "copy of it")
    check(all(training for _, _, training, grad in seen if grad), f"{name} ran the model in eval mode while "
          "training (dropout off): the model must be in training mode, model.train(), not model.eval()")
    check(len(calls) == steps, f"{name} ran the model with gradients {len(calls)} times in {steps} steps: one "
          "forward pass of one batch per step")
    windows = data.unfold(0, block_size + 1, 1)  # (N - T, T + 1): every chunk of data and its next character
    batches = []
    for x, y in calls:
        check(tuple(x.shape) == (batch_size, block_size), f"{name} trained on batches of shape {tuple(x.shape)}, not "
              f"(batch_size, block_size) = ({batch_size}, {block_size}): draw batch_size chunks of model.config.block_size")
        found = (x[:, None, :] == windows[None, :, :-1]).all(-1)  # (B, N - T): where each row occurs in data
        check(bool(found.any(1).all()), f"{name} trained on rows that are not chunks of `data`: draw the batches "
              "from the data it is given, not from train_data or another split")
        following = windows[found.float().argmax(1), 1:]  # (B, T): the next character of every position
        check(y is None or torch.equal(y, following), f"{name}'s targets are not the inputs' next characters: "
              "y must be data shifted by one, as get_batch_on_device gives it")
        batches.append((x, following))
    return batches


def check_train_on(train_on):
    """Check exercise 3's loop against AdamW steps computed by hand on the batches it drew, at several settings."""
    name = train_on.__name__
    config = GPTConfig(vocab_size=13, block_size=8, n_embd=16, n_head=2, n_layer=1, dropout=0.0)
    data = torch.randint(0, 13, (2000,), generator=torch.Generator().manual_seed(0)).to(device)  # a random text
    for steps, peak_lr, batch_size, warmup in ((3, 0.0, 4, 0), (6, 3e-3, 4, 2), (5, 1e-2, 3, 0)):
        torch.manual_seed(0)
        model = FastGPT(config).to(device).eval()  # as evaluation leaves it: the loop must put it in training mode
        start, seen = copy.deepcopy(model.state_dict()), record_calls(model)
        try:
            log = train_on(model, data, steps, peak_lr, batch_size=batch_size, warmup=warmup)
        except NotImplementedError:
            return not_done(name)
        except Exception as e:
            error = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}"
            hint = (" (a token id too large for the model's vocabulary: draw the batches from `data`, the text given)"
                    if "index out of range" in error else " (use the arguments and model.config.block_size, not names "
                    "from outside the function)" if isinstance(e, NameError) else "")
            raise CheckFailed(f"{name}(model, data, steps={steps}, peak_lr={peak_lr}, batch_size={batch_size}, "
                              f"warmup={warmup}) fails: {error}{hint}") from None
        finally:
            del model.forward
        weights = {k: t.detach().clone() for k, t in model.state_dict().items()}
        if peak_lr == 0:
            check(all(torch.equal(start[k], w) for k, w in weights.items()), f"{name} changed the weights with "
                  "peak_lr = 0: give the optimizer the learning rate of the schedule, lr_at(it, peak_lr, warmup, steps)")
            continue
        batches = drawn_batches(name, seen, data, steps, batch_size, config.block_size)
        check(any(not torch.equal(start[k], w) for k, w in weights.items()), f"{name} did not change the weights: "
              "each step needs loss.backward() and then optimizer.step()")
        schedule = [lr_at(it, peak_lr, warmup, steps) for it in range(steps)]

        def off(lrs=schedule, **kw):  # how far the loop's weights are from AdamW by hand with these choices
            return max((w - ref).abs().max().item() for w, ref in zip(
                weights.values(), by_hand(config, start, batches, lrs, **kw)[1].values()))
        if min(off(), off(clip=1.0)) > 1e-5:
            raise CheckFailed(f"after {steps} steps at peak_lr = {peak_lr} (warmup {warmup}) the weights are off by "
                              f"{off():.2g} from AdamW computed by hand on the same batches: "
                              + training_diagnosis(off, steps, peak_lr, warmup))
        losses = by_hand(config, start, batches, schedule, clip=1.0 if off(clip=1.0) < off() else None)[0]
        check(logged_losses(log) is not None and len(log) == steps, f"{name} should return a list of (step, loss), "
              f"one per step ({steps} here), got {type(log).__name__}" + (f" of length {len(log)}" if isinstance(log, list) else ""))
        check(torch.allclose(logged_losses(log), torch.tensor(losses), atol=1e-4), f"the losses {name} logged are not "
              "those of its steps: log (step, loss.item()) of each step's batch, computed before that step's update")
    return Passed(f"{name}: passed (every step equals AdamW by hand with the learning rate of lr_at, on batches of "
                  "the data given, in training mode, at three settings)")


def logged_losses(log):
    """The losses of a log [(step, loss), ...] as a tensor, or None if it is not such a list."""
    try:
        return torch.tensor([float(loss) for _, loss in log]) if isinstance(log, list) else None
    except (TypeError, ValueError):
        return None


def by_hand(config, start, batches, lrs, **kw):
    """adamw_by_hand from the weights start, on a fresh FastGPT that is not the learner's."""
    reference = FastGPT(config).to(device)
    reference.load_state_dict(start)
    return adamw_by_hand(reference, batches, lrs, **kw)


def training_diagnosis(off, steps, peak_lr, warmup):
    """The likeliest cause, found by redoing the steps by hand with one known mistake at a time."""
    later = [lr_at(it + 1, peak_lr, warmup, steps) for it in range(steps)]
    suspects = [
        ("the gradients add up from step to step: zero them (optimizer.zero_grad) before each loss.backward()",
         dict(accumulate=True)),
        ("the learning rate stays at peak_lr, so the schedule has no effect: at each step set the 'lr' of every "
         "param group of the optimizer to lr_at(it, peak_lr, warmup, steps)", dict(lrs=[peak_lr] * steps)),
        ("the learning rate never moves from its first value: apply the schedule at every step (a scheduler needs "
         "scheduler.step() after each optimizer.step())", dict(lrs=[lr_at(0, peak_lr, warmup, steps)] * steps)),
        ("the schedule runs one step ahead: the step numbered it (from 0) uses lr_at(it, ...)", dict(lrs=later)),
        ("the warmup is left out: the schedule is lr_at(it, peak_lr, warmup, steps), with the warmup given",
         dict(lrs=[lr_at(it, peak_lr, 0, steps) for it in range(steps)])),
        ("a new optimizer at every step forgets AdamW's running averages: build it once, before the loop",
         dict(reset=True)),
        ("the optimizer is not notebook 05c's: use configure_optimizer(model, peak_lr) (AdamW, betas (0.9, 0.99), "
         "weight decay 0.1 on the matrices only)", dict(betas=(0.9, 0.999), decay=0.01, decay_all=True)),
        ("the optimizer is not notebook 05c's: use configure_optimizer(model, peak_lr), which puts no weight decay "
         "on biases and LayerNorm gains", dict(decay_all=True)),
    ]
    for sentence, kw in suspects:
        if min(off(**kw), off(clip=1.0, **kw)) < 1e-5:
            return sentence
    return ("check the learning rate of each step (lr_at(it, peak_lr, warmup, steps)), zero_grad before backward, and "
            "notebook 05c's configure_optimizer")


# %%
check_train_on(train_on)

# %% [markdown]
# **A solution** (folded):

# %% tags=["hide-input"] jupyter={"source_hidden": true}
def train_on_solution(model, data, steps, peak_lr, batch_size=32, warmup=0):
    """Exercise 3, solved: model trained in place on data, with notebook 05's optimizer and schedule."""
    optimizer = configure_optimizer(model, peak_lr)
    model.train()
    log = []
    for it in range(steps):
        for group in optimizer.param_groups:
            group['lr'] = lr_at(it, peak_lr, warmup, steps)
        x, y = get_batch_on_device(data, batch_size, model.config.block_size)  # (B, T) each
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        log.append((it + 1, loss.item()))
    return log


# %%
check_train_on(train_on_solution)

# %% [markdown]
# **The runs.** One model size for all, and the same batch; the finetuning uses fewer steps and a
# lower learning rate. Beside the pretrained-then-finetuned model, three others: the pretrained
# model before finetuning (how well does *War and Peace* alone predict Shakespeare?), a model
# trained on tiny Shakespeare alone for the same total number of steps (the same compute), and one
# trained on tiny Shakespeare for only the finetuning's steps (as if the pretraining had been free,
# done by someone else, as it is for those who finetune a published model).

# %%
PRETRAIN = dict(block_size=64, n_embd=128, n_head=4, n_layer=4, dropout=0.0)  # notebook 05's CPU benchmark size
PRETRAIN_BATCH, PRETRAIN_LR, PRETRAIN_WARMUP = 32, 2e-3, 50  # as in notebook 05c's CPU race
FINETUNE_LR = 5e-4                                           # finetuning: a quarter of the peak learning rate

# %% tags=["nbval-ignore-output"]
PRETRAIN_STEPS, FINETUNE_STEPS = (20, 10) if SMOKE else (400, 100)
pt_config = GPTConfig(vocab_size=len(pt_chars), **({**PRETRAIN, 'block_size': 16, 'n_embd': 32, 'n_head': 2,
                                                       'n_layer': 2} if SMOKE else PRETRAIN))
block_size = pt_config.block_size  # split_loss cuts a split into chunks of this length
t0 = time.perf_counter()
torch.manual_seed(1337)
pretrained = FastGPT(pt_config).to(device)
pre_log = train_on_solution(pretrained, pt_train, PRETRAIN_STEPS, PRETRAIN_LR, PRETRAIN_BATCH, PRETRAIN_WARMUP)
print(f"pretrained {PRETRAIN_STEPS} steps on {corpus_name.split(',')[0]}: loss on its own validation split "
      f"{split_loss(pretrained, pt_val):.4f}, on the first {len(pt_val):,} characters of its training split "
      f"{split_loss(pretrained, pt_train[:len(pt_val)]):.4f}")

# %% tags=["nbval-ignore-output"]
finetuned = copy.deepcopy(pretrained)  # the pretrained weights, finetuned in place; `pretrained` stays as it was
ft_log = train_on_solution(finetuned, sp_train, FINETUNE_STEPS, FINETUNE_LR, PRETRAIN_BATCH)
torch.manual_seed(1337)
scratch = FastGPT(pt_config).to(device)
scratch_log = train_on_solution(scratch, sp_train, PRETRAIN_STEPS + FINETUNE_STEPS, PRETRAIN_LR, PRETRAIN_BATCH,
                                PRETRAIN_WARMUP)
torch.manual_seed(1337)
short = FastGPT(pt_config).to(device)
train_on_solution(short, sp_train, FINETUNE_STEPS, PRETRAIN_LR, PRETRAIN_BATCH, PRETRAIN_WARMUP)
ex3 = {"pretrained, not finetuned": (PRETRAIN_STEPS, 0, split_loss(pretrained, sp_val)),
       "pretrained, then finetuned": (PRETRAIN_STEPS, FINETUNE_STEPS, split_loss(finetuned, sp_val)),
       "tiny Shakespeare alone, the same compute": (0, PRETRAIN_STEPS + FINETUNE_STEPS, split_loss(scratch, sp_val)),
       "tiny Shakespeare alone, the finetuning's steps": (0, FINETUNE_STEPS, split_loss(short, sp_val))}
print(f"{'model':<48} {'steps on the corpus':>20} {'on Shakespeare':>15} {'Shakespeare val':>16}")
for label, (pre, fine, val) in ex3.items():
    print(f"{label:<48} {pre:>20} {fine:>15} {val:>16.4f}")
print(f"four trainings and their evaluations: {time.perf_counter() - t0:.0f} s on {device}")

# %%
fig, (ax, bars) = plt.subplots(1, 2, figsize=(10, 3.5), width_ratios=(3, 2), constrained_layout=True)
smooth = lambda losses, k=20: [sum(losses[max(0, i - k + 1):i + 1]) / len(losses[max(0, i - k + 1):i + 1])
                               for i in range(len(losses))]  # running mean of the last k steps
_ = ax.plot(range(1, len(pre_log) + 1), smooth([l for _, l in pre_log]), label='pretraining (corpus batches)')
_ = ax.plot(range(len(pre_log) + 1, len(pre_log) + len(ft_log) + 1), smooth([l for _, l in ft_log]),
            label='finetuning (Shakespeare batches)')
_ = ax.plot(range(1, len(scratch_log) + 1), smooth([l for _, l in scratch_log]), label='Shakespeare alone')
_ = ax.set(xlabel='training step', ylabel='training loss (mean of 20 steps)', title='Pretraining, then finetuning')
_ = ax.legend(fontsize=8)
_ = bars.barh(list(ex3), [val for _, _, val in ex3.values()], color=['tab:blue', 'tab:orange', 'tab:green', 'tab:olive'])
bars.invert_yaxis()
_ = bars.set(xlabel='tiny Shakespeare val loss (whole split)', xlim=(min(v for *_, v in ex3.values()) - 0.2, None),
             title='After training')
_ = bars.tick_params(axis='y', labelsize=8)
show(fig, 'pretrain_finetune')

# %% [markdown]
# In the stored run, pretraining on *War and Peace* (400 steps) and then finetuning (100 steps)
# reached a validation loss of 2.0111 on tiny Shakespeare, and tiny Shakespeare alone, with the same
# 500 steps, 1.9152: **at equal compute, pretraining on another text did not help here**; it spent
# four fifths of the budget on 19th-century prose. Counted as free, as it is for whoever finetunes a
# published model, it did: 100 finetuning steps reached 2.0111 where 100 steps from scratch reached
# 2.4650. Unfinetuned, the *War and Peace* model scores 2.6800 on Shakespeare: it knows English
# words, not verse or names.
#
# **Our model beside GPT-3.** The lecture compares its model with GPT-3's published figures (Brown
# et al., 2020, ["Language Models are Few-Shot Learners"](https://arxiv.org/abs/2005.14165): 175 billion
# parameters, trained on 300 billion tokens). Our tokens are characters; GPT-3's are pieces of words
# of about four characters each.

# %% tags=["nbval-ignore-output"]
GPT3_PARAMETERS, GPT3_TOKENS = 175e9, 300e9  # Brown et al. 2020, table 2.1 and its caption
ours = sum(p.numel() for p in finetuned.parameters())
seen = (PRETRAIN_STEPS + FINETUNE_STEPS) * PRETRAIN_BATCH * pt_config.block_size  # characters, repeats included
print(f"our pretrained and finetuned model: {ours:,} parameters, {seen:,} training tokens (characters)")
print(f"GPT-3: {GPT3_PARAMETERS:,.0f} parameters ({GPT3_PARAMETERS / ours:,.0f} times ours), "
      f"{GPT3_TOKENS:,.0f} training tokens ({GPT3_TOKENS / seen:,.0f} times ours)")

# %% [markdown]
# ## Summary and conclusions [▶ 1:54:32](https://www.youtube.com/watch?v=kCc8FmEb1nY&t=6872s)
#
# - **Exercise 3**: pretraining and finetuning are the same loop on different data with different
#   learning rates; whether pretraining pays depends on what is counted as its cost.
# - **The loop's check** compared every step with AdamW computed by hand on the batches the loop
#   drew: a loop that forgets `zero_grad`, keeps one learning rate or trains in eval mode fails it.
#
# The lecture concludes where its code ends: a decoder-only Transformer, the architecture of
# "Attention Is All You Need" without its encoder and cross-attention, trained on tiny Shakespeare,
# is the pretraining stage of a GPT, at toy scale. Everything beyond it (a tokenizer of word pieces,
# far more data and parameters, training on many GPUs, and the finetuning stages that turn a document
# completer into an assistant) builds on the pieces written here. Notebook 06c measures ideas from
# later papers; 07 and 08 go beyond the lecture (a cache for sampling, training on several processes).
#
# ## More exercises
#
# 1. Change the split of the same budget between pretraining and finetuning, or the finetuning's
#    learning rate. Is there a split at which the pretrained model beats the one trained on tiny
#    Shakespeare alone for the same compute?
# 2. Pretrain on a text of your own (`COURSE_PRETRAIN`) closer to Shakespeare, such as other plays
#    of the period, and check first that none of it occurs in the validation split.
# 3. Finetune only the last block and `lm_head` (freeze the rest with `requires_grad_(False)`): how
#    close does it come to finetuning everything, for how much less work per step?
