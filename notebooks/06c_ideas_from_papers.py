# %% [markdown]
# # 06c · The lecture's exercises, part 3: one idea from a paper, measured
#
# The last of the lecture's four exercises (notebooks 06 and 06b hold the others): take one idea
# from a later paper, check that it does what the paper says, and race it against the lecture's
# model on notebook 05c's CPU race. Three ideas, each a small exercise of its own: GELU, weight
# tying, and rotary position embeddings (RoPE).
#
# Every exercise has the same shape as in notebook 06: a statement with a hint, your starting point
# (it raises `NotImplementedError`), a check that says in one sentence what is wrong or that it
# passed (its code folded, so that reading it does not give the answer away; "not done yet" until
# you fill it in), then a folded solution, the check run on it, and what it reaches when trained.
#
# Standalone (it downloads its data) and a script: `python notebooks/06c_ideas_from_papers.py`.

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
RUN_NAME = "06c_ideas_from_papers"             # as a script, figures go to runs/06c_ideas_from_papers/

# %% [markdown]
# The next cells are plumbing every notebook carries so that it stands alone (folders, figures,
# the device, the data, the checks); they are folded in Jupyter and Colab.

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
# of notebook 05's fast model and training loop, so that this notebook runs on its own (a test
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
#@title Notebook 05's training loop and whole-split loss (folded)
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
    scaler.update()


def warm_up_compiled(step_model, optimizer, autocast, train_on_device, batch_size, block_size):
    """Compile forward and backward on a throwaway batch, leaving the weights and random state untouched."""
    state = torch.get_rng_state(), torch.cuda.get_rng_state_all() if device == 'cuda' else None
    with autocast():
        step_model(*get_batch_on_device(train_on_device, batch_size, block_size))[1].backward()
    optimizer.zero_grad(set_to_none=True)
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state_all(state[1])


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
# ## Exercise 4: one idea from a paper, measured
#
# *Practises* [nanoGPT's walk-through, 1:46:22](https://www.youtube.com/watch?v=kCc8FmEb1nY&t=6382s)
# *(where GELU and weight tying appear) and* [positional encoding, 1:00:18](https://www.youtube.com/watch?v=kCc8FmEb1nY&t=3618s)
# *(taught in notebooks 05 and 03).*
#
# The lecture's model is the decoder of the 2017 Transformer with pre-norm. Later papers changed
# many of its parts. Implement one change, prove it correct with a small check, and measure it:
# train it with notebook 05c's CPU race (the same `train_fast`, settings, steps, seed and fused AdamW)
# beside the unchanged model, and compare the whole-split validation losses and the times. Three
# ideas, each its own small exercise:
#
# - **4a. GELU** (Hendrycks and Gimpel, 2016, "Gaussian Error Linear Units") instead of ReLU in the
#   feed-forward layers, as GPT-2 and nanoGPT do.
# - **4b. Weight tying** (Press and Wolf, 2017, "Using the Output Embedding to Improve Language
#   Models"): `lm_head` and the token embedding share one matrix, as in GPT-2 and nanoGPT.
# - **4c. Rotary position embeddings, RoPE** (Su et al., 2021, "RoFormer"), instead of the learned
#   position table, as in LLaMA and most models since.
#
# ### 4a. GELU
#
# `GELU(x) = x · Φ(x)`, where `Φ` is the cumulative distribution function of the standard normal
# distribution: a smooth ReLU, slightly negative for negative `x`, with a gradient everywhere.
# **Hint.** `Φ(x) = (1 + erf(x / √2)) / 2`, and PyTorch has `torch.erf`.

# %%
def gelu(x):
    """GELU(x) = x * Φ(x), with Φ the cumulative distribution function of the standard normal distribution."""
    raise NotImplementedError("exercise 4a: GELU, with torch.erf")


# %% jupyter={"source_hidden": true} cellView="form"
#@title The check of exercise 4a (folded)
def check_gelu(gelu):
    """Check exercise 4a against PyTorch's F.gelu (either form) on inputs of several shapes, and that it is not ReLU."""
    name = gelu.__name__
    torch.manual_seed(0)
    for x in (torch.linspace(-4, 4, 81), 3 * torch.randn(2, 5, 7)):  # steps of 0.1 on [-4, 4]; a random (B, T, C)
        before = x.clone()
        try:
            y = gelu(x)
        except NotImplementedError:
            return not_done(name)
        except Exception as e:
            raise CheckFailed(f"{name} fails on a tensor of shape {tuple(x.shape)}: {type(e).__name__}: "
                              f"{(str(e).splitlines() or [''])[0]}") from None
        check(torch.equal(x, before), f"{name} changed its input in place: return a new tensor and leave x as it was")
        check(isinstance(y, torch.Tensor) and y.shape == x.shape, f"{name}(x) should return a tensor of x's shape "
              f"{tuple(x.shape)}, got {tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__}")
        check(not torch.allclose(y, F.relu(x), atol=1e-3), f"{name} is ReLU: GELU is x * Φ(x), which is slightly "
              "negative for negative x (GELU(-1) = -0.1587) where ReLU is 0")
        error, tanh_form = (y - F.gelu(x)).abs(), torch.allclose(y, F.gelu(x, approximate='tanh'), atol=1e-5)
        check(error.max() < 1e-5 or tanh_form, f"{name} differs from F.gelu by up to {error.max():.3g} (at x = "
              f"{x.flatten()[error.argmax()]:.2f}): GELU(x) = x * Φ(x), with Φ(x) = (1 + erf(x / √2)) / 2")
    y = gelu(torch.tensor([-1.0]))
    return Passed(f"{name}: passed (equals F.gelu{' in its tanh form' if not torch.allclose(y, F.gelu(torch.tensor([-1.0])), atol=1e-5) else ''}"
                  f" on [-4, 4] and on a random (B, T, C); {name}(-1) = {y.item():.4f} where ReLU gives 0)")


# %%
check_gelu(gelu)

# %% tags=["hide-input"] jupyter={"source_hidden": true}
def gelu_solution(x):
    """Exercise 4a, solved: x times the standard normal distribution function of x."""
    return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


# %%
check_gelu(gelu_solution)


# %% [markdown]
# The model for the race puts PyTorch's `nn.GELU` (the same function, checked above, in one fused
# operation) where `FeedForward` has its ReLU:

# %%
class GELUGPT(FastGPT):
    """FastGPT with GELU in place of ReLU in every feed-forward layer."""

    def __init__(self, config, flash=True):
        super().__init__(config, flash)
        for block in self.blocks:
            block.ffwd.net[1] = nn.GELU()  # net: Linear, activation, Linear, Dropout


toy = GPTConfig(vocab_size=65, block_size=16, n_embd=32, n_head=2, n_layer=2, dropout=0.0)
check(all(isinstance(b.ffwd.net[1], nn.GELU) for b in GELUGPT(toy).blocks), "GELUGPT still has a ReLU")

# %% [markdown]
# ### 4b. Weight tying
#
# The token embedding table maps a token to a vector, `(vocab_size, n_embd)`; `lm_head` maps a
# vector to a score per token with a weight of the same shape. Tying makes them one matrix: one
# `nn.Parameter`, used in both places, whose gradient is the sum of the gradients of both uses.
# Write `TiedGPT`. **Hint.** Assign the Parameter itself, not a copy of its values.

# %%
class TiedGPT(FastGPT):
    """FastGPT whose lm_head uses the token embedding table's weight matrix (exercise 4b)."""

    def __init__(self, config, flash=True):
        super().__init__(config, flash)
        raise NotImplementedError("exercise 4b: make lm_head use the token embedding's weight")


# %% [markdown]
# **The check** (folded) accepts any way of sharing the matrix (the embedding's Parameter given to
# `lm_head`, or `lm_head`'s given to the embedding; with or without `lm_head`'s bias, as nanoGPT
# has it), and requires one Parameter for both uses, counted once, the logits of the untied model
# with the same weights, and a gradient that is the sum of the gradients of both uses.

# %% jupyter={"source_hidden": true} cellView="form"
#@title The check of exercise 4b (folded)
def check_tying(model_class):
    """Check exercise 4b: one Parameter for both uses, counted once, the untied model's logits, both gradients."""
    name, (V, C) = model_class.__name__, (13, 16)
    config = GPTConfig(vocab_size=V, block_size=8, n_embd=C, n_head=2, n_layer=1, dropout=0.0)
    torch.manual_seed(0)
    try:
        model = model_class(config)
    except NotImplementedError:
        return not_done(f"{name}.__init__")
    except Exception as e:
        raise CheckFailed(f"{name}(config) fails: {type(e).__name__}: {(str(e).splitlines() or [''])[0]}" + (
            " (the layers exist only after super().__init__(config, flash))" if isinstance(e, AttributeError) else "")) from None
    embedding = model.token_embedding_table.weight
    head = getattr(getattr(model, "lm_head", None), "weight", None)
    if head is not None and head is not embedding:
        how = (" sharing the embedding's memory" if head.data_ptr() == embedding.data_ptr() else
               " holding a copy of the embedding's values" if torch.equal(head, embedding) else "")
        raise CheckFailed(f"{name}'s lm_head.weight is a separate Parameter{how}: both uses must be one and the same "
                          "Parameter object, or training moves the two matrices apart")
    bias = getattr(getattr(model, "lm_head", None), "bias", None)
    untied = FastGPT(config)
    count = lambda m: sum(p.numel() for p in m.parameters())
    expected = count(untied) - V * C - (0 if bias is not None else V)
    check(count(model) == expected, f"{name} has {count(model):,} parameters, expected {expected:,} (FastGPT's minus "
          "one (vocab_size, n_embd) matrix" + (", and minus lm_head's bias" if bias is None else "") + "): the shared "
          "matrix should be counted once")
    weights = {**model.state_dict(), "lm_head.weight": embedding.detach(),
               "lm_head.bias": bias.detach() if bias is not None else torch.zeros(V)}
    try:
        untied.load_state_dict(weights)  # the same weights, in two separate matrices
    except RuntimeError as e:
        raise CheckFailed(f"{name}'s weights are not FastGPT's plus a shared matrix ({str(e).splitlines()[0][:120]}): "
                          "change only lm_head and the token embedding") from None
    idx, targets = torch.randint(0, V, (4, 8)), torch.randint(0, V, (4, 8))
    try:
        logits, loss = model(idx, targets)
    except Exception as e:
        raise CheckFailed(f"{name} fails on idx of shape (B, T) = (4, 8): {type(e).__name__}: "
                          f"{(str(e).splitlines() or [''])[0]} (lm_head's weight has the embedding's shape, "
                          f"(vocab_size, n_embd) = ({V}, {C}), used as it is)") from None
    check(torch.allclose(logits, untied(idx)[0], atol=1e-5), f"{name}'s logits are not lm_head applied with the "
          "token embedding's matrix: the scores of token v must be the dot product of the last hidden vector with row v")
    loss.backward()
    untied(idx, targets)[1].backward()
    both = untied.token_embedding_table.weight.grad + untied.lm_head.weight.grad
    check(embedding.grad is not None and torch.allclose(embedding.grad, both, atol=1e-6), f"the shared matrix's "
          "gradient is not the sum of the gradients of its two uses: the model must use token_embedding_table and "
          "lm_head as FastGPT does, and nothing else")
    return Passed(f"{name}: passed (one Parameter for the token embedding and lm_head, counted once; the untied "
                  "model's logits; its gradient is the sum of both uses')")


# %%
check_tying(TiedGPT)

# %% tags=["hide-input"] jupyter={"source_hidden": true}
class TiedGPTSolution(FastGPT):
    """Exercise 4b, solved: lm_head and the token embedding share one weight matrix."""

    def __init__(self, config, flash=True):
        super().__init__(config, flash)
        self.lm_head.weight = self.token_embedding_table.weight  # one Parameter (vocab_size, n_embd), used twice


# %%
check_tying(TiedGPTSolution)

# %% [markdown]
# ### 4c. Rotary position embeddings
#
# The lecture adds a learned vector per position to each token. RoPE instead turns every query and
# key by an angle proportional to its position, just before the scores. Split a head's `hs`
# channels into pairs, channel `i` with channel `i + hs/2`, and read each pair as a point in a
# plane; at position `t`, pair `i` turns by the angle `t · θ_i`, with `θ_i = 10000^(-2i/hs)`
# (`i = 0 … hs/2 - 1`): the first pairs turn fast, the last slowly. Since turning `q` by `m·θ` and
# `k` by `n·θ` changes their dot product only through `(m - n)·θ`, the scores depend on how far
# apart two tokens are, not on where they are. Write `rope(x)` for queries or keys `x` of shape
# `(B, n_head, T, hs)`, with positions `0 … T-1`.
#
# **Hint.** Make `angles = t[:, None] * theta[None, :]`, `(T, hs/2)`; with `x1, x2 = x[..., :hs//2],
# x[..., hs//2:]`, the turned pair is `x1·cos - x2·sin` and `x1·sin + x2·cos`; `torch.cat` them.

# %%
def rope(x):
    """x (B, nh, T, hs) with every channel pair (i, i + hs/2) at position t turned by t * 10000**(-2i/hs)."""
    raise NotImplementedError("exercise 4c: rotate each pair of channels by its position's angle")


# %% [markdown]
# **The check** (folded) measures what your `rope` does to inputs of three shapes, without a copy of
# the answer: that it only turns each pair `(i, i + hs/2)` (lengths kept), leaves position 0 alone,
# makes `rope(q) · rope(k)` at positions `m` and `n` depend only on `m - n` (the property that
# matters), and turns pair `i` at position `t` by the angle `t · θ_i` (either way round).

# %% jupyter={"source_hidden": true} cellView="form"
#@title The check of exercise 4c (folded)
def turned_angles(x, y):
    """The angle (B, nh, T, hs/2) by which each pair (i, i + hs/2) of x turned to become y's."""
    half = x.shape[-1] // 2
    x1, x2, y1, y2 = x[..., :half], x[..., half:], y[..., :half], y[..., half:]
    return torch.atan2(x1 * y2 - x2 * y1, x1 * y1 + x2 * y2)


def check_rope(rope):
    """Check exercise 4c by its properties: pairs turned, lengths kept, position 0 still, scores relative, angles t·θ_i."""
    name = rope.__name__
    torch.manual_seed(0)
    for B, nh, T, hs in ((2, 3, 12, 8), (1, 2, 5, 16), (3, 1, 1, 4)):
        x = torch.randn(B, nh, T, hs)
        before = x.clone()
        try:
            y = rope(x)
        except NotImplementedError:
            return not_done(name)
        except Exception as e:
            raise CheckFailed(f"{name} fails on x of shape (B, nh, T, hs) = {(B, nh, T, hs)}: {type(e).__name__}: "
                              f"{(str(e).splitlines() or [''])[0]} (take T and hs from x.shape)") from None
        check(torch.equal(x, before), f"{name} changed its input in place: return a new tensor and leave x as it was")
        check(isinstance(y, torch.Tensor) and y.shape == x.shape, f"{name}(x) should return a tensor of x's shape "
              f"{(B, nh, T, hs)}, got {tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__}")
        pairs = lambda t: t[..., :hs // 2] ** 2 + t[..., hs // 2:] ** 2  # (B, nh, T, hs/2) squared length of each pair
        if not torch.allclose(pairs(y), pairs(x), atol=1e-4):
            check(not torch.allclose(y.norm(dim=-1), x.norm(dim=-1), atol=1e-4), f"{name} turns other pairs of "
                  "channels than (i, i + hs/2): pair channel i with channel i + hs/2, as this exercise does")
            raise CheckFailed(f"{name} changes the length of the pairs: it must only turn each pair (x1, x2), "
                              "to (x1 * cos - x2 * sin, x1 * sin + x2 * cos)")
        if not torch.allclose(y[:, :, 0], x[:, :, 0], atol=1e-6):
            first = turned_angles(x[:, :, :1], y[:, :, :1]).mean(dim=(0, 1, 2))  # (hs/2,) the turn at position 0
            theta = 10000 ** (-2 * torch.arange(hs // 2) / hs)
            check(not torch.allclose(first.abs(), theta, atol=1e-3), f"{name} turns position 0 by θ_i, the angle of "
                  "position 1: number the positions from 0 (torch.arange(T))")
            raise CheckFailed(f"{name} changes position 0 (pair 0 turns by {first[0]:.4f}) where every angle t * θ_i "
                              "is 0: with angle 0, cos is 1 and sin 0, so each pair must come out as it went in")
        q, k = torch.randn(hs), torch.randn(hs)
        scores = rope(q.expand(1, 1, T, hs))[0, 0] @ rope(k.expand(1, 1, T, hs))[0, 0].T  # (T, T): q at m, k at n
        check(all(torch.allclose(scores.diagonal(s), scores.diagonal(s)[:1].expand(T - abs(s)), atol=1e-4)
                  for s in range(-T + 1, T)), f"rope(q) · rope(k) depends on the positions m and n themselves, not only "
              "on m - n: turn queries and keys by the same angles t * θ_i, with t the position")
        theta = 10000 ** (-2 * torch.arange(hs // 2) / hs)  # (hs/2,) the statement's speeds
        wanted = torch.arange(T)[:, None] * theta  # (T, hs/2)
        wrap = lambda a: torch.remainder(a + math.pi, 2 * math.pi) - math.pi  # an angle in [-pi, pi)
        got = turned_angles(x, y)  # (B, nh, T, hs/2)
        errors = [wrap(got - sign * wanted).abs() for sign in (1, -1)]
        if min(e.max() for e in errors) > 1e-3:
            off = errors[0].amax(dim=(0, 1)) > 1e-3  # (T, hs/2): where the angle is not t * θ_i
            t = int(off.any(1).nonzero()[0])  # the first position that is off, and its worst pair
            i = int(errors[0].amax(dim=(0, 1))[t].argmax())
            raise CheckFailed(f"{name} turns the pairs by other angles: at position {t} pair {i} of {hs // 2} turns by "
                              f"{got[0, 0, t, i]:.4f}, not t * θ_i = {t} * 10000**(-2 * {i}/{hs}) = "
                              f"{wrap(wanted[t, i]):.4f} (pair channel i with i + hs/2, as this exercise does)")
    return Passed(f"{name}: passed (turns pair i at position t by t * 10000**(-2i/hs), for three shapes; "
                  "rope(q) · rope(k) depends only on m - n)")


# %%
check_rope(rope)

# %% tags=["hide-input"] jupyter={"source_hidden": true}
def rope_solution(x):
    """Exercise 4c, solved: x (B, nh, T, hs) with channel pair (i, i + hs/2) at position t turned by t * θ_i."""
    T, hs = x.shape[-2], x.shape[-1]
    theta = 10000 ** (-2 * torch.arange(hs // 2, device=x.device) / hs)  # (hs/2,) the pairs' speeds
    angles = torch.arange(T, device=x.device)[:, None] * theta[None, :]  # (T, hs/2)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)  # (T, hs/2) each
    x1, x2 = x[..., :hs // 2], x[..., hs // 2:]  # (B, nh, T, hs/2) each
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)  # (B, nh, T, hs)


# %%
check_rope(rope_solution)


# %% [markdown]
# The model for the race turns queries and keys with `rope_solution` in every attention layer and
# has no position table. A model that only attends, without positions, sees a set: with one layer,
# the last position of `abc` and of `bac` (the same last token, the same tokens before it) gets the
# same logits. (With two layers or more a causal model can already tell some orders apart, because
# `a` and `b` see different pasts in the first layer; one layer shows the point plainly.) The check
# below makes sure `RoPEGPT` is causal, and that with one layer it tells the two orders apart where
# the same model without positions cannot.

# %%
class RotaryAttention(CausalSelfAttention):
    """CausalSelfAttention with the queries and keys turned by position (RoPE) before the scores."""

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)  # (B, T, C) each
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        q, k = rope_solution(q), rope_solution(k)  # (B, nh, T, hs) each, turned by position
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.dropout_p if self.training else 0.0)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.dropout(self.proj(y))  # (B, T, C)


# %%
class RoPEGPT(FastGPT):
    """FastGPT with rotary position embeddings in every attention layer and no learned position table."""

    def __init__(self, config, flash=True):
        super().__init__(config, flash)
        del self.position_embedding_table
        for block in self.blocks:
            block.sa = RotaryAttention(config, flash)
        self.blocks.apply(_init_weights)

    def embed(self, idx):
        return self.token_embedding_table(idx)  # (B, T, C): the positions enter in the attention instead


# %%
class PositionlessGPT(FastGPT):
    """FastGPT with its positions taken out: attention alone, which sees a set of tokens."""

    def embed(self, idx):
        return self.token_embedding_table(idx)  # (B, T, C)


# %%
torch.manual_seed(0)
rotary = RoPEGPT(toy).eval()
idx = torch.randint(0, 65, (2, 16))  # (B, T)
changed = torch.cat([idx[:, :8], (idx[:, 8:] + 1) % 65], dim=1)  # another future
one_layer = GPTConfig(**{**toy.__dict__, 'n_layer': 1})
rotary_1, positionless_1 = RoPEGPT(one_layer).eval(), PositionlessGPT(one_layer).eval()
abc_bac = torch.tensor([[1, 2, 3], [2, 1, 3]])  # (2, 3): 'abc' and 'bac'
with torch.no_grad():
    causal = torch.allclose(rotary(idx)[0][:, :8], rotary(changed)[0][:, :8], atol=1e-5)
    orders = rotary_1(abc_bac)[0][:, -1]  # (2, vocab_size): the last position of 'abc' and 'bac'
    blind = positionless_1(abc_bac)[0][:, -1]  # (2, vocab_size)
check(torch.allclose(blind[0], blind[1], atol=1e-5), "without positions one layer should see 'abc' and 'bac' alike")
check(causal, "RoPEGPT sees the future: changing later tokens changed earlier logits")
check(not torch.allclose(orders[0], orders[1], atol=1e-5), "RoPEGPT gives 'abc' and 'bac' the same last logits: "
      "it does not see the order (are the queries and keys turned by position?)")
print(f"RoPEGPT: causal, and tells 'abc' from 'bac' (without positions: the same logits); "
      f"{sum(p.numel() for p in rotary.parameters()):,} parameters, "
      f"{toy.block_size * toy.n_embd:,} fewer than FastGPT's {sum(p.numel() for p in FastGPT(toy).parameters()):,} (no position table)")

# %% [markdown]
# ### The race
#
# Each variant is trained by notebook 05c's `train_fast`, unchanged, with the settings of its CPU race
# (`RACES["cpu"]`: the same sizes, batch, steps, learning-rate schedule and seed, and the fused AdamW
# that race uses, on any device), and then evaluated on the whole validation split. `train_fast`
# builds its model by the name `FastGPT`, so `race_variant` points that name at the variant for the
# length of one race. The unchanged model's run is therefore notebook 05c's CPU race itself, step for
# step.

# %%
RACES = {  # device: (model sizes, batch, steps, peak lr, warmup, target val loss, clip, steps between checks)
    "tiny": (dict(block_size=16, n_embd=32, n_head=2, n_layer=2, dropout=0.0), 8, 30, 1e-3, 5, None, None, None),
    "cuda": (dict(block_size=256, n_embd=384, n_head=6, n_layer=6, dropout=0.2), 64, 3000, 1e-3, 100, 1.48, 1.0, 100),
    "cpu": (dict(block_size=64, n_embd=128, n_head=4, n_layer=3, dropout=0.0), 32, 1200, 2e-3, 50, 1.70, None, None),
}


def race_variant(model_class, settings):
    """Notebook 05's train_fast with model_class built in place of FastGPT; returns (model, log, seconds)."""
    global FastGPT
    config, batch, iters, peak_lr, warmup, clip = settings
    original, FastGPT = FastGPT, model_class
    try:
        model, log, _ = train_fast(config, batch, iters, peak_lr, warmup, clip=clip, fused=device != 'mps')
    finally:
        FastGPT = original
    return model, log, log[-1][1]


# %% tags=["nbval-ignore-output"]
race_key = "tiny" if SMOKE else "cpu"
sizes, race_batch, race_iters, race_lr, race_warmup, _, race_clip, _ = RACES[race_key]
race_config = GPTConfig(vocab_size=len(chars), **sizes)
block_size = race_config.block_size  # split_loss cuts the split into chunks of the model's context
settings = (race_config, race_batch, race_iters, race_lr, race_warmup, race_clip)
print(f"race: {asdict(race_config)}, batch {race_batch}, {race_iters} steps, peak lr {race_lr}, warmup {race_warmup}, "
      f"clip {race_clip}, fused AdamW {device != 'mps'}, seed 1337, on {device}")
race_results = {}
for label, model_class in {"unchanged (notebook 05's FastGPT)": FastGPT, "GELU": GELUGPT,
                           "weight tying": TiedGPTSolution, "RoPE": RoPEGPT}.items():
    model, log, seconds = race_variant(model_class, settings)
    race_results[label] = (sum(p.numel() for p in model.parameters()), split_loss(model, val_data), seconds, log)
base = race_results["unchanged (notebook 05's FastGPT)"][1]
print(f"{'model':<34} {'parameters':>10} {'val loss':>9} {'vs unchanged':>13} {'seconds':>8}")
for label, (params, val, seconds, _) in race_results.items():
    print(f"{label:<34} {params:>10,} {val:>9.4f} {val - base:>+13.4f} {seconds:>8.1f}")

# %%
fig, ax = plt.subplots(figsize=(7, 3.5), constrained_layout=True)
for label, (_, val, _, log) in race_results.items():
    _ = ax.plot([step for step, _, _ in log], [loss for _, _, loss in log], label=f"{label}: val {val:.3f}")
_ = ax.set(xlabel='training step', ylabel='training loss (one batch)', title="Notebook 05's CPU race, four models")
_ = ax.legend(fontsize=8)
show(fig, 'race')

# %% [markdown]
# In the stored run the unchanged model ended at 1.6974, the whole-split loss notebook 05c's CPU race
# reaches too (the same code, settings and seed). Against it GELU ended 0.0523 worse, weight tying
# 0.0040 worse (with fewer parameters), and RoPE 0.0424 better (with no position table at all).
# Notebook 05c's three seeds of the unchanged race land within 1.68–1.70, a spread of about 0.01: from
# one run each, GELU's loss and RoPE's gain are larger than that, tying's is not. The four took 79.4 s
# (unchanged), 80.3 s (GELU), 86.7 s (tying) and 90.9 s (RoPE): RoPE's extra rotations may cost a little,
# but weight tying, which adds no work, took 9% longer too, so one run each on this machine cannot tell
# such differences from its noise.
#
# Notebook 05 gives the band in which correct CPU races land across seeds. A difference smaller than
# that band is wide, from one run of each model, is not evidence either way: run each variant with a
# few seeds (`train_fast(..., seed=...)`) before you believe it.

# %% [markdown]
# ## Summary
#
# - **4a, GELU**, **4b, weight tying** and **4c, RoPE**: each idea from a paper got a check that
#   tests what the paper says it does (the oracle `F.gelu`; one Parameter with both uses' gradients;
#   turned pairs whose scores depend only on the distance), then a race on equal terms with notebook
#   05c's settings.
# - One run of each is not a measurement of small differences: compare them with the spread of
#   several seeds first.
#
# ## More exercises
#
# 1. Combine the ideas (GELU, tying and RoPE together), and race the result with three seeds against
#    three seeds of the unchanged model.
# 2. Race RoPE past its training length: train with `block_size = 64`, then score the validation
#    split in chunks of 128 (RoPE has no table to run out of; the learned positions do).
# 3. Replace LayerNorm with RMSNorm (Zhang and Sennrich, 2019; `F.rms_norm`), check it against
#    `F.rms_norm`, and race it.
