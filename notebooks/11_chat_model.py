# %% [markdown]
# # 11 · From GPT to a chat model, in miniature
#
# The lecture ends by explaining how ChatGPT is made from a model like ours (its closing chapter
# [▶ 1:48:53](https://www.youtube.com/watch?v=kCc8FmEb1nY&t=6533s)): pretrain on a lot of text, then
# finetune the model to answer, then tune it further with reinforcement learning. Notebook 06b retells
# that in prose; this notebook runs every stage, on a CPU, in minutes, on data it makes itself:
#
# - **the chat format** (section 1): special tokens `<|user|>`, `<|assistant|>`, `<|end|>` past the
#   characters, the embedding table and the head grown to hold them, and sampling that stops at `<|end|>`;
# - **base** (section 2): notebook 05's GPT, pretrained on tiny Shakespeare: a document completer;
# - **sft** (sections 3 to 5): supervised finetuning on conversations written by code (arithmetic asked in
#   words, and continuing Shakespeare), with a **loss mask** so that only the assistant's tokens count;
# - **rl** (section 6): reinforcement learning with a *verifiable* reward: sample several answers to a
#   problem, reward the exact ones, push up those that beat the group's average.
#
# Each stage is measured the same way, on 500 held-out problems that no stage trains on. The stages are
# those of Karpathy's [nanochat](https://github.com/karpathy/nanochat), which runs them for real on 8 GPUs:
# [`base_train.py`](https://github.com/karpathy/nanochat/blob/master/scripts/base_train.py),
# [`mid_train.py`](https://github.com/karpathy/nanochat/blob/master/scripts/mid_train.py) (the chat
# format and its special tokens), [`chat_sft.py`](https://github.com/karpathy/nanochat/blob/master/scripts/chat_sft.py)
# and [`chat_rl.py`](https://github.com/karpathy/nanochat/blob/master/scripts/chat_rl.py).
#
# Standalone (it downloads its data) and a script: `python notebooks/11_chat_model.py` runs every
# stage and saves the finetuned model; `python notebooks/11_chat_model.py --chat` then talks to it.

# %%
import argparse, collections, copy, hashlib, math, os, pathlib, platform, random, re, signal, sys, tempfile, time, urllib.request
from dataclasses import asdict, dataclass, replace
import torch
import torch.nn as nn
from torch.nn import functional as F
import matplotlib
if "ipykernel" not in sys.modules:
    matplotlib.use("Agg")  # as a script, figures are saved as PNG files instead of opening windows
import matplotlib.pyplot as plt

SMOKE = os.environ.get("COURSE_SMOKE") == "1"  # set by the tests: tiny sizes and few steps
IN_NOTEBOOK = "ipykernel" in sys.modules        # False when run as a script
RUN_NAME = "11_chat_model"                      # as a script, figures and the chat model go to runs/11_chat_model/

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
# %% [markdown]
# ## The command line
#
# With no flag the script does what the notebook does and saves the finetuned model (to
# `runs/11_chat_model/chat.pt`, or where `--ckpt` says); `--chat` skips the training and talks to
# that model, one question a line (an empty line, Ctrl-D or Ctrl-C ends it).

# %%
def parse_args(argv=None):
    """The command-line flags; argv=[] gives the defaults."""
    p = Parser(prog="11_chat_model.py", description="Pretrain, finetune and RL-tune a tiny chat model, or talk to it.")
    p.add_argument("--chat", action="store_true", help="talk to the finetuned model saved by an earlier run (no training)")
    p.add_argument("--ckpt", help="the finetuned model's file (default: runs/11_chat_model/chat.pt)")
    p.add_argument("--temperature", type=float, default=0.0, help="--chat's sampling temperature (default 0: the most likely token)")
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "mps", "cpu"], help="where to run (default: the fastest there is)")
    p.add_argument("--seed", type=int, default=1337, help="random seed of every stage (default: 1337)")
    return p.parse_args(argv)


RULES = {"temperature": (lambda v: math.isfinite(v) and v >= 0, "a finite number, at least 0"),
         "seed": (lambda v: 0 <= v < 2**63, "between 0 and 2**63 - 1")}
args = parse_args([] if IN_NOTEBOOK else None)
check_flags(args, RULES)
if args.temperature and not args.chat:
    raise SystemExit("error: --temperature sets --chat's sampling; the training run samples at its own settings: drop it or add --chat")
if not IN_NOTEBOOK:  # Ctrl-C: one line, not a traceback; the saved chat model is replaced only at the end of a run
    signal.signal(signal.SIGINT, lambda *_: sys.exit("\ninterrupted (Ctrl-C); a chat model saved earlier is unchanged"))
device = pick_device(args.device)
ckpt_path = pathlib.Path(args.ckpt) if args.ckpt else runs_folder() / "chat.pt"

# %% [markdown]
# ## The data and notebook 05's model
#
# Tiny Shakespeare, its characters as the vocabulary, and copies of notebook 05's fast GPT and its
# optimizer and schedule (folded: you know them from notebooks 04 and 05; a test keeps the copies equal).

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
#@title Notebook 05's model: the configuration, heads, the feed-forward layer and the block (folded)
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
#@title Notebook 05's model: the GPT, its batched attention, and the training pieces (folded)
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
        self.apply(self._init_weights)

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            torch.nn.init.zeros_(module.bias)

    def embed(self, idx):
        """Token plus position embeddings (B, T, C) of idx (B, T)."""
        pos = torch.arange(idx.shape[1], device=idx.device)  # (T,)
        return self.token_embedding_table(idx) + self.position_embedding_table(pos)  # (B, T, C)

    def forward(self, idx, targets=None):
        x = self.blocks(self.embed(idx))  # (B, T, C)
        logits = self.lm_head(self.ln_f(x))  # (B, T, vocab_size)
        loss = None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return logits, loss

class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with one fused qkv linear and the heads as a batch dimension."""

    def __init__(self, config, flash=True):
        super().__init__()
        self.n_head, self.dropout_p, self.flash = config.n_head, config.dropout, flash
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=False)  # query, key, value of all heads
        self.proj = nn.Linear(config.n_embd, config.n_embd)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.dropout = nn.Dropout(config.dropout)
        self.register_buffer('tril', torch.tril(torch.ones(config.block_size, config.block_size)), persistent=False)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)  # (B, T, C) each
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        if self.flash:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                               dropout_p=self.dropout_p if self.training else 0.0)  # (B, nh, T, hs)
        else:
            wei = q @ k.transpose(-2, -1) * k.shape[-1]**-0.5  # (B, nh, T, T)
            wei = wei.masked_fill(self.tril[:T, :T] == 0, float('-inf'))  # (B, nh, T, T)
            y = self.attn_dropout(F.softmax(wei, dim=-1)) @ v  # (B, nh, T, hs)
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
        self.blocks.apply(self._init_weights)

def get_batch_on_device(data, batch_size, block_size):
    """Random (B, T) inputs and targets gathered from data, a split that already lives on the device."""
    ix = torch.randint(len(data) - block_size, (batch_size, 1), device=data.device)  # (B, 1) offsets
    pos = ix + torch.arange(block_size + 1, device=data.device)  # (B, T+1) positions of each chunk
    chunk = data[pos]  # (B, T+1)
    return chunk[:, :-1], chunk[:, 1:]  # (B, T) inputs, (B, T) targets

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
# ## The sizes
#
# One size for every device, sized for two CPU cores: notebook 05's CPU race model (3 blocks of 128
# channels, context 64). Each stage has its own steps, batch and learning rate.

# %% tags=["nbval-ignore-output"]
CHAT_SIZES = {  # "cpu" on every device (a teaching toy); "tiny" for the tests
    "cpu": dict(model=dict(block_size=64, n_embd=128, n_head=4, n_layer=3, dropout=0.0),
                base=(1200, 32, 2e-3),           # pretraining: steps, sequences per step, peak learning rate
                sft=(2000, 128, 2e-3),           # finetuning: steps, conversations per step, peak learning rate
                unmasked_steps=400,              # the finetuning without the mask, to see what it writes
                rl=(300, 16, 8, 3e-5, 25)),      # RL: steps, problems per step, samples per problem, learning rate, steps between tests
    "tiny": dict(model=dict(block_size=64, n_embd=32, n_head=2, n_layer=1, dropout=0.0),
                 base=(20, 8, 2e-3), sft=(20, 16, 1e-3), unmasked_steps=8, rl=(4, 4, 4, 1e-4, 2)),
}
S = CHAT_SIZES["tiny" if SMOKE else "cpu"]
config = GPTConfig(vocab_size=len(chars), **S["model"])
print(describe_device(device))
print(f"model {asdict(config)}; base {S['base']}, sft {S['sft']}, rl {S['rl']}")

# %% [markdown]
# ## 1. The chat format
#
# A conversation is a list of turns, `("user", text)` and `("assistant", text)`. As tokens a user turn
# is `<|user|>`, its characters, `<|assistant|>`; an assistant turn is its characters and `<|end|>`.
# Three **special tokens** that no text contains mark who speaks, and `<|end|>` is how the model says it
# is done (nanochat's tokenizer has `<|user_start|>`, `<|assistant_end|>` and others). They get ids past
# the characters, and so do the characters the chat data needs that tiny Shakespeare lacks (nine digits
# and `+`). The embedding table needs a row for each new id, and the head a row and a bias; every old
# row is kept, so that the grown model is the base model on Shakespeare's characters.

# %%
SPECIALS = ["<|user|>", "<|assistant|>", "<|end|>"]
vocab = chars + [c for c in "0123456789+" if c not in chars] + SPECIALS  # token i is vocab[i]
stoi = {s: i for i, s in enumerate(vocab)}
itos = {i: s for i, s in enumerate(vocab)}
USER, ASSISTANT, END = special_ids = tuple(stoi[s] for s in SPECIALS)
encode = lambda s: [stoi[c] for c in s]         # as before, over the grown vocabulary: the old ids are unchanged
decode = lambda l: ''.join(itos[i] for i in l)
print(f"{len(chars)} characters + {len(vocab) - len(chars) - 3} new characters + 3 special tokens = {len(vocab)} tokens; "
      f"ids of {', '.join(SPECIALS)}: {USER}, {ASSISTANT}, {END}")


# %%
def grow_vocab(model, vocab_size):
    """A copy of model with vocab_size tokens: embedding and head rows of the old tokens kept, the new ones fresh."""
    grown = FastGPT(replace(model.config, vocab_size=vocab_size)).to(device)  # freshly initialized
    old = model.config.vocab_size
    with torch.no_grad():
        for name, p in grown.named_parameters():
            q = model.get_parameter(name)
            if name in ('token_embedding_table.weight', 'lm_head.weight', 'lm_head.bias'):
                p[:old] = q  # (old, ...) rows of the old tokens; rows old.. stay fresh
            else:
                p.copy_(q)
    return grown


# %% [markdown]
# **Check.** A small random model grown by four tokens must give exactly the old logits for the old
# tokens, on any text of old tokens; its new rows must be parameters (so that they train), different
# from each other (or the model could not tell the new tokens apart).

# %% jupyter={"source_hidden": true} cellView="form"
#@title The check of grow_vocab (folded: open it to see how it works)
def check_grow_vocab(grow_vocab):
    """Probe grow_vocab(model, vocab_size) on a small random model grown by 4 tokens."""
    torch.manual_seed(0)
    small = FastGPT(GPTConfig(vocab_size=11, block_size=8, n_embd=16, n_head=2, n_layer=1, dropout=0.0)).to(device)
    with torch.no_grad():
        small.lm_head.bias.normal_()  # a bias that is not zero, so that a bias left behind shows
    idx = torch.randint(0, 11, (3, 8), device=device)
    before = small(idx)[0].detach()  # (3, 8, 11)
    grown = attempt("grow_vocab(model, 15)", grow_vocab, small, 15, hint="look at the shapes of the new tables")
    tables = (grown.token_embedding_table.weight, grown.lm_head.weight, grown.lm_head.bias)
    shapes = tuple(tuple(t.shape) for t in tables)
    check(shapes == ((15, 16), (15, 16), (15,)), f"the grown tables have shapes {shapes}, not (15, n_embd), (15, n_embd) and (15,): "
          "grow the token embedding table and the head (weight and bias), not the position table")
    check(grown.config.vocab_size == 15, f"the grown model's config.vocab_size is {grown.config.vocab_size}, not 15: the model is saved "
          "and rebuilt from its config, so give the grown model a config with the new vocab_size")
    check(all(any(t is p for p in grown.parameters()) for t in tables), "a grown table is not a parameter of the grown model, "
          "so it would never train: keep them nn.Parameters in nn.Embedding and nn.Linear")
    after = attempt("the grown model", grown, idx)[0].detach()  # (3, 8, 15)
    if not torch.allclose(after[..., :11], before, atol=1e-5):
        old = (small.token_embedding_table.weight, small.lm_head.weight, small.lm_head.bias)
        lost = [k for k, t, o in zip(("the embedding table's", "the head's weight", "the head's bias"), tables, old) if not torch.equal(t[:11], o)]
        raise CheckFailed("the grown model's logits for the old tokens differ from the old model's: " + (
            f"{', '.join(lost)} old rows are not rows 0..old-1 of the grown one" if lost else
            "the three tables kept their rows, so copy every other weight (blocks, positions, ln_f) too"))
    new = grown.token_embedding_table.weight[11:]
    check(torch.cdist(new, new).add(torch.eye(4, device=device)).min() > 1e-6, "two of the new embedding rows are equal, so the "
          "model cannot tell those tokens apart: give the new rows a random initialization")
    return Passed("grow_vocab: passed (the old logits unchanged, the new rows distinct parameters)")


# %%
check_grow_vocab(grow_vocab)


# %% [markdown]
# `render` turns a conversation into ids and a **mask**: 1 on every token the assistant writes (its
# `<|end|>` too), 0 on the user's turn and on the `<|assistant|>` that the prompt supplies. A prompt for
# the model to answer is a conversation that ends with a user's turn: its ids end with `<|assistant|>`.

# %%
def render(conversation):
    """Token ids of a conversation [(role, text), ...] and its mask: 1 on what the assistant writes, 0 elsewhere."""
    ids, mask = [], []
    for role, content in conversation:
        if role == "user":
            part, writes = [USER] + [stoi[c] for c in content] + [ASSISTANT], 0
        elif role == "assistant":
            part, writes = [stoi[c] for c in content] + [END], 1
        else:
            raise ValueError(f"a turn's role must be 'user' or 'assistant', not {role!r}")
        ids, mask = ids + part, mask + [writes] * len(part)
    return ids, mask


# %% jupyter={"source_hidden": true} cellView="form"
#@title The check of render (folded)
def random_conversations(seed, exchanges):
    """Conversations of random text, one per number of exchanges (a user's turn and the assistant's)."""
    rng, text_chars = random.Random(seed), [c for c in vocab if c not in SPECIALS]
    return [[(role, ''.join(rng.choices(text_chars, k=rng.randint(1, 8)))) for _ in range(n) for role in ("user", "assistant")]
            for n in exchanges]


def check_render(render):
    """render on random conversations of one to three exchanges: the format, and the mask on the assistant's tokens."""
    for convo in random_conversations(0, (1, 2, 3)):
        ids, mask = (list(t) for t in attempt(f"render of a conversation of {len(convo)} turns", render, convo))
        parts = [([USER] + encode(c) + [ASSISTANT], 0) if r == "user" else (encode(c) + [END], 1) for r, c in convo]
        want_ids, want_mask = sum((p for p, _ in parts), []), sum(([m] * len(p) for p, m in parts), [])
        check(ids == want_ids, f"render writes {decode(ids)!r}, not {decode(want_ids)!r}: <|user|>, the user's text, <|assistant|>, "
              "the assistant's text, <|end|>")
        wrong = [(itos[t], m) for t, m, w in zip(ids, mask, want_mask) if int(m) != w] + [("", "")]
        check(len(mask) == len(ids) and wrong[0][0] == "", f"the mask is {wrong[0][1]} on {wrong[0][0]!r} (or not one per token): "
              "it must be 1 on the assistant's characters and its <|end|>, 0 on the user's turn and on <|assistant|>")
    return Passed("render: passed (the format, and the mask on the assistant's tokens and <|end|> only)")


# %%
check_render(render)
ids, mask = render([("user", "what is 12 + 5?"), ("assistant", "17")])
print(decode(ids))
print(''.join('^' if m else '.' for m in mask), "(^: learned)")

# %% [markdown]
# **Sampling that stops at `<|end|>`**, for many prompts at once: grouped by length, so that each group
# is one `(N, T)` tensor; each step appends a token to every row; a row that wrote the stop token is done,
# and the loop ends when every row is. Temperature 0 takes the most likely token (greedy).

# %%
@torch.no_grad()
def sample_replies(model, prompts, max_new_tokens, temperature=1.0, stop=None):
    """The reply (a list of ids, ending with stop if it was written) that model samples after each prompt."""
    stop = END if stop is None else stop
    was_training, replies, by_length = model.training, [None] * len(prompts), collections.defaultdict(list)
    model.eval()
    for i, prompt in enumerate(prompts):
        by_length[len(prompt)].append(i)
    for length, rows in by_length.items():
        idx = torch.tensor([prompts[i] for i in rows], device=device)  # (N, T0)
        done = torch.zeros(len(rows), dtype=torch.bool, device=device)  # (N,)
        for _ in range(max_new_tokens):
            logits = model(idx[:, -model.config.block_size:])[0][:, -1]  # (N, vocab_size)
            if temperature == 0:
                next_id = logits.argmax(-1, keepdim=True)  # (N, 1)
            else:
                next_id = torch.multinomial(F.softmax(logits / temperature, dim=-1), 1)  # (N, 1)
            idx = torch.cat([idx, next_id.masked_fill(done[:, None], stop)], dim=1)  # (N, T + 1)
            done |= idx[:, -1] == stop
            if done.all():
                break
        for i, row in zip(rows, idx[:, length:].tolist()):
            replies[i] = row[:row.index(stop) + 1] if stop in row else row
    model.train(was_training)
    return replies


# %% jupyter={"source_hidden": true} cellView="form"
#@title The check of sample_replies (folded)
class Scripted(nn.Module):
    """A stand-in model: after prompt p it writes scripts[p], one token a step (the last one again past its end)."""

    def __init__(self, scripts):
        super().__init__()
        self.scripts, self.config = scripts, GPTConfig(vocab_size=len(vocab), block_size=64)

    def forward(self, idx):
        logits = torch.full((*idx.shape, len(vocab)), -1e9, device=idx.device)  # (B, T, vocab_size)
        for b, row in enumerate(idx.tolist()):
            prompt = next((p for p in self.scripts if tuple(row[:len(p)]) == p), None)
            check(prompt is not None, f"sample_replies gave the model a row of {len(row)} tokens that is no prompt followed by its reply: "
                  "each step must append one token to each row, a next token of shape (N, 1)")
            logits[b, -1, self.scripts[prompt][min(len(row) - len(prompt), len(self.scripts[prompt]) - 1)]] = 0.0
        return logits, None


class Tied(nn.Module):
    """A stand-in model of block_size 4 that finds token 1 twice as likely as token 2; it notes the longest context and its mode."""
    def __init__(self):
        super().__init__()
        self.config, self.longest = GPTConfig(vocab_size=len(vocab), block_size=4), 0

    def forward(self, idx):
        self.longest, self.sampled_in_train = max(self.longest, idx.shape[1]), self.training
        logits = torch.tensor([-1e9, math.log(2), 0.0] + [-1e9] * (len(vocab) - 3), device=idx.device)  # (vocab_size,)
        return logits.expand(*idx.shape, -1), None  # (B, T, vocab_size)


def token_names(ids):
    return [itos[int(t)] for t in ids]


def check_sample_replies(sample_replies):
    """Stand-in models that write known scripts: replies cut after the stop, rows kept apart, mode restored."""
    scripts = {(USER, 8, ASSISTANT): [5, 6, END, 7], (USER, 9, ASSISTANT): [END, 7], (USER, ASSISTANT): [1, 2, 3, 4, 4],
               (USER, 9, 9, 9, ASSISTANT): [4, END]}
    prompts, want, model = [list(p) for p in scripts], [[5, 6, END], [END], [1, 2, 3, 4], [4, END]], Scripted(scripts).train()
    for t in (0, 1.0):
        replies = [r if r is None else list(r) for r in attempt(f"sample_replies(model, prompts, 4, temperature={t})", sample_replies,
                                                                model, prompts, 4, t)]
        check(replies == want, f"sample_replies gives {[r if r is None else token_names(r) for r in replies]} where the stand-in models write "
              f"{[token_names(r) for r in want]}: each reply is what was "
              "written after its own prompt, cut just after the first <|end|>, at most max_new_tokens long, in the order of the prompts")
        check(model.training, "sample_replies leaves the model in eval() mode: put it back in the mode it was in")
    model.scripts[(USER, 7, ASSISTANT)] = [3, 0, 4, 5]
    got = attempt("sample_replies(model, prompts, 4, stop=0)", sample_replies, model.eval(), [[USER, 7, ASSISTANT]], 4, 0, stop=0)
    check(list(got[0]) == [3, 0], f"with stop={itos[0]!r} sample_replies gives {token_names(got[0])}, not {token_names([3, 0])}: stop at the stop "
          "token asked for (<|end|> only when stop is None)")
    check(not model.training, "sample_replies leaves a model that was in eval() mode in train() mode: put it back in the mode it was in")
    torch.manual_seed(0)
    tied = Tied()
    share = sum(r[0] == 1 for r in attempt("sample_replies(model, prompts, 2, temperature=0.5)", sample_replies, tied,
                                           [[USER, 9, 9, 9, 9, ASSISTANT]] * 1000, 2, 0.5)) / 1000
    check(tied.longest <= 4, f"sample_replies gives the model {tied.longest} tokens at once, more than its block_size (4): crop the "
          "context to its last block_size tokens")
    check(not tied.sampled_in_train, "sample_replies runs the model in train() mode, dropout on: sample in eval() mode")
    check(0.74 < share < 0.86, f"at temperature 0.5 a token twice as likely as the other is sampled {share:.0%} of the time, not 80%: "
          "divide the logits by the temperature before the softmax")
    return Passed("sample_replies: passed (stops after <|end|>, at most max_new_tokens, one reply per prompt in order)")


# %%
check_sample_replies(sample_replies)

# %% [markdown]
# **Talking to it**, as `--chat` does: each line typed becomes a one-turn conversation rendered up to
# `<|assistant|>`, and the reply is sampled until `<|end|>`. A line the model cannot read (a character it
# has no token for, or too long for its context) is refused in one line, and the loop goes on. The
# finetuned model is saved with its sizes and vocabulary (section 7).

# %%
def chat(model, temperature=0.0):
    """Answer each line typed on stdin with model's reply, until an empty line, Ctrl-D or Ctrl-C."""
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C ends the loop below
    try:  # from the first line on: a Ctrl-C just after the greeting ends cleanly too
        print("Ask something ('what is 47 + 85?', 'continue: ROMEO:'); an empty line, Ctrl-D or Ctrl-C ends.", flush=True)
        while (line := input("you> ")).strip():
            unknown, room = ''.join(sorted(set(line) - set(vocab[:-3]))), model.config.block_size - 8  # room for a reply
            if unknown:
                print(f"error: the model has no token for {unknown!r}: use letters, digits, spaces and punctuation such as .,;:!?'-+")
            elif len(line) > room:
                print(f"error: {len(line)} characters is too long for the model's context: ask in at most {room}")
            else:
                prompt = render([("user", line)])[0]
                reply = sample_replies(model, [prompt], model.config.block_size - len(prompt), temperature)[0]
                print("model>", decode(reply[:-1]) if reply[-1:] == [END] else decode(reply) + " (no <|end|> within the context)", flush=True)
    except (EOFError, KeyboardInterrupt):
        print()
    print("bye")


def save_chat_model(model, path):
    """Save model, its sizes and the vocabulary to path (written beside it first, so an old file survives a crash)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config": asdict(model.config), "vocab": vocab, "model": model.state_dict()}, path.with_suffix(".part"))
    path.with_suffix(".part").replace(path)


def load_chat_model(path):
    """The model and vocabulary saved by save_chat_model at path, or stop with one line."""
    if not path.is_file():
        raise SystemExit(f"error: no finetuned model at {path}; run `python notebooks/11_chat_model.py` first (it saves one there), "
                         "or give --ckpt FILE")
    try:
        saved = torch.load(path, map_location=device, weights_only=True)
        model = FastGPT(GPTConfig(**saved["config"])).to(device)
        model.load_state_dict(saved["model"])
    except Exception as e:
        raise SystemExit(f"error: {path} is not a chat model saved by this notebook ({type(e).__name__}); run the notebook "
                         "again to save one") from None
    return model.eval(), list(saved["vocab"])


# %% [markdown]
# `--chat` stops here, before any training.

# %%
if args.chat:
    model, vocab = load_chat_model(ckpt_path)
    stoi, itos = {s: i for i, s in enumerate(vocab)}, dict(enumerate(vocab))
    USER, ASSISTANT, END = (stoi[s] for s in SPECIALS)
    chat(model, args.temperature)
    sys.exit(0)

# %% [markdown]
# ## 2. The base model
#
# Pretraining as in notebook 05: random chunks of the training split, the next character at every
# position. The base model continues text; it has never seen a question, a digit other than `3` (the
# only one in tiny Shakespeare) or a special token. Its Shakespeare is measured as its loss on 24
# characters of the validation split after the 24 before them (later stages: the same, asked as
# `continue: ...` in the chat format).

# %%
def pretrain(config, steps, batch_size, peak_lr, seed):
    """A FastGPT trained on tiny Shakespeare's training split."""
    torch.manual_seed(seed)
    model = FastGPT(config).to(device)
    optimizer, on_device = configure_optimizer(model, peak_lr), train_data.to(device)
    for it in range(steps):
        for group in optimizer.param_groups:
            group['lr'] = lr_at(it, peak_lr, min(50, steps // 10), steps)
        _, loss = model(*get_batch_on_device(on_device, batch_size, config.block_size))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model


@torch.no_grad()
def continuation_loss(model, chat=True, n=200):
    """Mean loss of model on the 24 characters after 24 others, in n fixed passages of the validation split,
    asked in the chat format (or given as plain text)."""
    pieces = [(decode(val_data[i:i + 24].tolist()), decode(val_data[i + 24:i + 48].tolist())) for i in range(0, 500 * n, 500)]
    if chat:
        x, y = sft_batch([[("user", "continue: " + a), ("assistant", b)] for a, b in pieces])  # (n, T) each
        y[y == END] = -1  # the 24 characters only
    else:
        x = torch.tensor([encode(a + b)[:-1] for a, b in pieces])  # (n, 47)
        y = torch.tensor([[-1] * 23 + encode(b) for a, b in pieces])  # (n, 47): the second 24 characters scored
    was_training = model.training
    logits = model.eval()(x.to(device))[0]  # (n, T, vocab_size)
    model.train(was_training)
    return F.cross_entropy(logits.flatten(0, 1), y.to(device).flatten(), ignore_index=-1).item()


# %% tags=["nbval-ignore-output"]
t0 = time.perf_counter()
base = pretrain(config, *S["base"], seed=args.seed)
seconds, shakespeare = {"base": time.perf_counter() - t0}, {"base": continuation_loss(base, chat=False)}
chat_base = grow_vocab(base, len(vocab))
print(f"base: {S['base'][0]} steps in {seconds['base']:.0f} s; loss {shakespeare['base']:.3f} on 24 characters of the "
      "validation split after the 24 before them (200 passages)")

# %% [markdown]
# ## 3. Data made by code
#
# **Arithmetic asked in words.** Every problem `a + b` and `a - b` with `a` and `b` below 100, asked in
# one of eight phrasings and answered with the number alone (`-38` when it is negative): a task whose
# answer is checked exactly, as nanochat's GSM8K reward checks the final number. 500 problems are held
# out, drawn once with a fixed seed: no stage trains on them, in any phrasing, and every test is on them.
# **Continuing Shakespeare** is the second task, so that the model keeps what it was pretrained on: the
# user gives 24 characters of the training split after `continue: `, the assistant writes the next 24.

# %%
DIGITS = 2                                   # a and b below 10**DIGITS
ASK = {"+": ["what is {a} + {b}?", "what is {a} plus {b}?", "add {a} and {b}.", "{a} + {b}?"],
       "-": ["what is {a} - {b}?", "what is {a} minus {b}?", "take {b} from {a}.", "{a} - {b}?"]}
N_PROBLEMS = 2 * 10 ** (2 * DIGITS)          # problem p: a, b = divmod(p // 2, 10**DIGITS), '+' if p is even
HELD_OUT = torch.randperm(N_PROBLEMS, generator=torch.Generator().manual_seed(0))[:500]  # (500,) never trained on
IS_HELD_OUT = torch.zeros(N_PROBLEMS, dtype=torch.bool).index_fill(0, HELD_OUT, True)  # (N_PROBLEMS,)


def problem(p, phrasing=None):
    """(question, answer) of problem p, in phrasing number `phrasing` (default: one fixed by p)."""
    (a, b), op = divmod(p // 2, 10**DIGITS), "+-"[p % 2]
    question = ASK[op][p // 7 % 4 if phrasing is None else phrasing].format(a=a, b=b)
    return question, str(a + b if op == "+" else a - b)


def training_problems(count, rng):
    """count problems drawn at random from those not held out."""
    drawn = torch.randint(N_PROBLEMS, (2 * count,), generator=rng)
    return drawn[~IS_HELD_OUT[drawn]][:count].tolist()


def training_conversations(count, rng, share=0.75):
    """count conversations: arithmetic (share of them, each in a random phrasing) and passages to continue."""
    n_math = round(count * share)
    convos = [[("user", q), ("assistant", a)] for q, a in (problem(p, torch.randint(4, (1,), generator=rng).item())
                                                           for p in training_problems(n_math, rng))]
    starts = torch.randint(len(train_data) - 49, (count - n_math,), generator=rng).tolist()
    return convos + [[("user", "continue: " + decode(train_data[i:i + 24].tolist())), ("assistant", decode(train_data[i + 24:i + 48].tolist()))]
                     for i in starts]


# %%
rng = torch.Generator().manual_seed(0)
for convo in training_conversations(4, rng, share=0.5):
    print(convo)
print(f"{N_PROBLEMS:,} problems, {len(HELD_OUT)} held out; the longest conversation is "
      f"{max(len(render(c)[0]) for c in training_conversations(2000, rng)) - 1} input tokens (block_size {config.block_size})")

# %% [markdown]
# **Check.** Many training batches drawn, every arithmetic question read back to its numbers: each
# answer must be right, none may be a held-out problem (in any phrasing), and both operations must come up.

# %% jupyter={"source_hidden": true} cellView="form"
#@title The check of the held-out problems (folded)
def read_problem(question):
    """The problem number of an arithmetic question in any phrasing of ASK, or None."""
    for op, ways in ASK.items():
        for way in ways:
            m = re.fullmatch(re.escape(way).replace(r"\{a\}", r"(?P<a>\d+)").replace(r"\{b\}", r"(?P<b>\d+)"), question)
            if m:
                return 2 * (int(m["a"]) * 10**DIGITS + int(m["b"])) + "+-".index(op)
    return None


def check_held_out(training_conversations):
    """Draw 40 batches of 64 conversations: right answers, no held-out problem among them, both operations drawn."""
    rng, seen, ways, train_text = torch.Generator().manual_seed(1), [], set(), decode(train_data.tolist())
    for _ in range(40):
        convos = attempt("training_conversations(64, rng)", training_conversations, 64, rng)
        n_math = sum(read_problem(q) is not None for (_, q), _ in convos)
        check(len(convos) == 64 and n_math == 48, f"training_conversations(64, rng) gives {len(convos)} conversations, {n_math} of them "
              "arithmetic, not 64 and 48 (share 0.75): draw exactly count problems and count - n_math passages")
        for (_, question), (_, answer) in convos:
            if question.startswith("continue: "):
                check(question[10:] + answer in train_text, f"the passage {question[10:]!r} is not from train_data: the validation "
                      "split is what continuation_loss measures on, so never train on it")
            if (p := read_problem(question)) is not None:
                ways |= {("+-"[p % 2], k) for k in range(4) if problem(p, k)[0] == question}
                a, b = divmod(p // 2, 10**DIGITS)
                check(answer == str(a - b if p % 2 else a + b), f"the answer to {question!r} is {answer!r}: check the arithmetic")
                seen.append(p)
    leaked = [p for p in seen if IS_HELD_OUT[p]] + [None]
    check(leaked[0] is None, f"{len(leaked) - 1} of {len(seen)} training questions are held-out problems: draw training "
          "problems only from those not held out")
    check({p % 2 for p in seen} == {0, 1}, "the training questions are all of one operation: draw both + and -")
    check(len(ways) == 8, f"the training questions come in {len(ways)} of the 8 phrasings: draw every phrasing, or the held-out "
          "questions asked in a phrasing never trained test the phrasing, not the arithmetic")
    return Passed(f"held out: passed ({len(seen):,} training questions drawn, none held out)")


# %%
check_held_out(training_conversations)

# %% [markdown]
# ## 4. Supervised finetuning, with a loss mask
#
# A batch is made as in pretraining: `x` is a rendered conversation without its last token, `y` without
# its first, so that `y[t]` is the token after `x[t]`. Every target the model must not learn is then set
# to `-1`, which `F.cross_entropy(..., ignore_index=-1)` skips: those the mask does not cover, and the
# padding that gives the rows one length. The mask is read at the target: `y[t]` is learned if the
# assistant wrote token `t + 1`. (Notebook 06's adder masked its question the same way.)

# %%
def sft_batch(conversations, masked=True):
    """Inputs x and targets y (B, T) of the conversations, padded with <|end|>; y is -1 where nothing is learned."""
    rows = [render(c) for c in conversations]
    T = max(len(ids) for ids, _ in rows) - 1
    x = torch.full((len(rows), T), END, dtype=torch.long)  # (B, T)
    y = torch.full((len(rows), T), -1, dtype=torch.long)   # (B, T) padding is never learned
    for i, (ids, mask) in enumerate(rows):
        ids, mask = torch.tensor(ids), torch.tensor(mask)  # (L,) each
        x[i, :len(ids) - 1] = ids[:-1]
        y[i, :len(ids) - 1] = ids[1:].masked_fill(mask[1:] == 0, -1) if masked else ids[1:]  # y[t] is token t + 1
    return x, y


# %% [markdown]
# **Check**, on random conversations: every row's inputs are its ids, and its targets exactly the
# assistant's tokens and `<|end|>`s, each at the position before it (`-1` elsewhere, padding included);
# with `masked=False` every next token. The sentence names the usual mistakes: the mask shifted by one
# against the targets, the user's tokens counted, `<|end|>` left out of the loss.

# %% jupyter={"source_hidden": true} cellView="form"
#@title The check of sft_batch (folded)
def check_sft_batch(sft_batch):
    """sft_batch against the definition, on random conversations of different lengths."""
    convos = random_conversations(1, (1, 3, 2, 1))
    rows = [render(c) for c in convos]
    for masked in (True, False):
        x, y = attempt(f"sft_batch(conversations, masked={masked})", sft_batch, convos, masked)
        T = max(len(ids) for ids, _ in rows) - 1
        T = x.shape[1] if x.shape == y.shape and x.shape[1] > T and x.shape[0] == 4 and (y[:, T:] == -1).all() else T  # extra padding
        check(x.shape == y.shape == (4, T), f"sft_batch returns {tuple(x.shape)} and {tuple(y.shape)} for 4 conversations whose "
              f"longest is {T + 1} tokens: both should be (4, {T}), the ids without the last and without the first")
        for i, (ids, mask) in enumerate(rows):
            L, got = len(ids) - 1, y[i].tolist()
            check(x[i, :L].tolist() == ids[:-1], f"row {i} of x is not the conversation's ids without the last: x[i, :L] = ids[:-1]")
            if got == [t if m or not masked else -1 for t, m in zip(ids[1:], mask[1:])] + [-1] * (T - L):
                continue
            learned = {t for t, v in enumerate(got) if v != -1}
            check(all(t < L and got[t] == ids[t + 1] for t in learned), f"row {i} of y learns from the padding or holds targets "
                  "that are not the next tokens: y[t] must be token t + 1 (ids[1:]) or -1, and -1 past the row's end")
            check(masked, f"with masked=False row {i} leaves out targets: every next token is learned")
            says = {"the mask is shifted by one against the targets: y[t] is token t + 1, so read mask[t + 1] (mask[1:]), not mask[t]":
                    {t for t in range(L) if mask[t]},
                    "the user's tokens are counted in the loss: set every target whose mask is 0 to -1": set(range(L)),
                    "<|end|> is left out of the loss, so the model never learns to stop: the mask covers the assistant's <|end|> too":
                    {t for t in range(L) if mask[t + 1] and ids[t + 1] != END}}
            raise CheckFailed(f"row {i}: " + next((s for s, where in says.items() if learned == where), "the targets learned should be "
                                                  "exactly those whose token the assistant wrote (mask 1 at t + 1)"))
    return Passed("sft_batch: passed (the assistant's tokens and <|end|> learned, nothing else; masked=False learns every token)")


# %%
check_sft_batch(sft_batch)
x, y = sft_batch([[("user", "what is 12 + 5?"), ("assistant", "17")]])
print(decode(x[0].tolist()))
print(''.join('.' if t < 0 else '$' if t == END else itos[t] for t in y[0].tolist()), "(targets; .: -1, $: <|end|>)")


# %% [markdown]
# The finetuning loop: a copy of the grown base model, notebook 05's optimizer and schedule, fresh
# conversations at every step: three batches of arithmetic, then a batch a quarter as large of
# Shakespeare to continue (a mixed batch would pad every short problem to a passage's length).

# %%
def finetune(model, steps, batch_size, peak_lr, masked=True, seed=1337):
    """A copy of model finetuned on training conversations."""
    torch.manual_seed(seed)
    model, rng = copy.deepcopy(model).train(), torch.Generator().manual_seed(seed)
    optimizer = configure_optimizer(model, peak_lr)
    for it in range(steps):
        for group in optimizer.param_groups:
            group['lr'] = lr_at(it, peak_lr, steps // 10, steps)
        text_turn = it % 4 == 3  # every fourth batch continues Shakespeare
        x, y = sft_batch(training_conversations(batch_size // 4 if text_turn else batch_size, rng, 0.0 if text_turn else 1.0), masked)
        logits, _ = model(x.to(device))  # (B, T, vocab_size)
        loss = F.cross_entropy(logits.flatten(0, 1), y.to(device).flatten(), ignore_index=-1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model


# %% tags=["nbval-ignore-output"]
t0 = time.perf_counter()
sft = finetune(chat_base, *S["sft"], seed=args.seed)
seconds["sft"] = time.perf_counter() - t0
unmasked = finetune(chat_base, S["unmasked_steps"], *S["sft"][1:], masked=False, seed=args.seed)
print(f"sft: {S['sft'][0]} steps in {seconds['sft']:.0f} s; without the mask {S['unmasked_steps']} steps")

# %% [markdown]
# ## 5. Measuring a stage
#
# Every stage answers the same 500 held-out problems. **Exact match**: the answer written greedily (the
# most likely token each time) is the number, then `<|end|>`. **pass@k**: of 8 answers sampled at
# temperature 1, the share of them that is exact (k = 1), or whether any of the 8 is (k = 8). The base
# model knows no chat format, so it is **prompted with two examples** in plain text, and stops at a newline.

# %%
MAX_ANSWER = 6  # tokens an answer may take: '-99' or '198' and <|end|> take 4
FEW_SHOT = "what is 25 + 17?\n42\nwhat is 61 - 80?\n-19\n"  # the base model's prompt before each question


def prompt_for(p, few_shot=False):
    question = problem(p)[0]
    return encode(FEW_SHOT + question + "\n") if few_shot else render([("user", question)])[0]


def is_right(reply, p, stop=None):
    """Whether reply (ids) is problem p's answer followed by the stop token."""
    return reply[-1:] == [END if stop is None else stop] and decode(reply[:-1]) == problem(p)[1]


def held_out_accuracy(model, stage, samples=8, few_shot=False):
    """Exact match (greedy), pass@1 and pass@samples (at temperature 1) on the held-out problems; prints the stage's line."""
    ps, stop = HELD_OUT.tolist(), stoi["\n"] if few_shot else END
    prompts = [prompt_for(p, few_shot) for p in ps]
    exact = sum(is_right(r, p, stop) for r, p in zip(sample_replies(model, prompts, MAX_ANSWER, 0, stop), ps)) / len(ps)
    if not samples:
        return exact
    replies = sample_replies(model, [q for q in prompts for _ in range(samples)], MAX_ANSWER, 1.0, stop)
    right = torch.tensor([is_right(r, p, stop) for r, p in zip(replies, [p for p in ps for _ in range(samples)])]).view(len(ps), samples)
    print(f"{stage}: held-out exact match {exact:.1%} (pass@{samples} {right.any(1).float().mean():.1%}) on {len(ps)} problems")
    return dict(exact=exact, pass1=right.float().mean().item(), pass8=right.any(1).float().mean().item())


# %% tags=["nbval-ignore-output"]
torch.manual_seed(args.seed)
results = {"base": held_out_accuracy(chat_base, "base", few_shot=True), "sft": held_out_accuracy(sft, "sft")}
shakespeare["sft"] = continuation_loss(sft)
for p, reply in zip(HELD_OUT[:4].tolist(), sample_replies(sft, [prompt_for(p) for p in HELD_OUT[:4].tolist()], MAX_ANSWER, 0)):
    print(f"  sft, asked {problem(p)[0]!r} (answer {problem(p)[1]}), writes {decode(reply)!r}")

# %% [markdown]
# **What the mask does.** Trained without it, the model learns to write the user's turns too. Asked to
# go on after a bare `<|user|>`, does it write a question like those of the training data? (With the
# mask, nothing ever taught it what follows `<|user|>`.)

# %% tags=["nbval-ignore-output"]
torch.manual_seed(args.seed)
for name, model in (("sft", sft), ("sft without the mask", unmasked)):
    written = [decode(r[:-1]) for r in sample_replies(model, [[USER]] * 200, 40, 1.0, stop=ASSISTANT)]
    asks = sum(read_problem(w) is not None or w.startswith("continue: ") for w in written)
    print(f"{name}: after <|user|>, {asks} of 200 samples are a question of the training data; e.g. {written[0]!r}, {written[1]!r}")

# %% [markdown]
# In the stored run, the model finetuned without the mask wrote a question of the training data in 188
# of 200 samples after `<|user|>` (`'what is 43 plus 86?'`): it had learned to play the user too. With
# the mask, none of the 200 was one; what it wrote there looked like its pretraining text.

# %% [markdown]
# ## 6. Reinforcement learning with a verifiable reward
#
# The finetuned model answers a training problem 8 times at temperature 1, and each answer gets the
# **reward** 1 if it is exact, else 0. The answers of a group share a problem, so the group's mean reward
# is a baseline: the **advantage** of an answer is its reward minus that mean, positive for an answer
# better than the model's average on this problem, negative for a worse one, zero for every answer of a
# group that is all right or all wrong (nothing to learn there). The **policy gradient** raises the
# log-probability of each token of an answer in proportion to its advantage. This is nanochat's
# simplified GRPO ([`chat_rl.py`](https://github.com/karpathy/nanochat/blob/master/scripts/chat_rl.py)):
# no KL penalty towards a reference model, no PPO ratio or clipping (each batch is fresh, sampled by the
# model being trained), `reward - mean` without dividing by the standard deviation, a mean over tokens.
#
# The batch is made as `sft_batch` makes it, but the targets learned are the tokens the model sampled
# (its `<|end|>` too, where it wrote one); the prompt is never learned.

# %%
def rollout_batch(prompts, replies):
    """Inputs x and targets y (B, T) of each prompt followed by its sampled reply; y is -1 except on the reply."""
    T = max(len(p) + len(r) for p, r in zip(prompts, replies)) - 1
    x = torch.full((len(prompts), T), END, dtype=torch.long)  # (B, T)
    y = torch.full((len(prompts), T), -1, dtype=torch.long)   # (B, T)
    for i, (prompt, reply) in enumerate(zip(prompts, replies)):
        ids = torch.tensor(prompt + reply)  # (L,)
        x[i, :len(ids) - 1] = ids[:-1]
        y[i, len(prompt) - 1:len(ids) - 1] = ids[len(prompt):]  # y[t] is token t + 1: the reply's tokens only
    return x, y


def token_logprobs(model, x, y):
    """log p(y[b, t] | x[b, :t + 1]) under model (B, T), with gradients; 0 where y is -1."""
    logits, _ = model(x)  # (B, T, vocab_size)
    logp = F.log_softmax(logits, dim=-1).gather(-1, y.clamp(min=0).unsqueeze(-1)).squeeze(-1)  # (B, T)
    return logp * (y != -1)


def group_advantages(rewards):
    """Advantages (P, G) of rewards (P problems, G samples each): each reward minus its group's mean."""
    return rewards - rewards.mean(dim=1, keepdim=True)


def policy_gradient_loss(logp, y, advantages):
    """Minus the advantage-weighted log-probability of the sampled tokens, averaged over sampled tokens."""
    sampled = (y != -1).float()  # (B, T)
    return -(logp * advantages.unsqueeze(1) * sampled).sum() / sampled.sum().clamp(min=1)


# %% [markdown]
# **Checks.** `rollout_batch` on made-up replies: the targets learned are exactly the reply's tokens,
# each at the position before it. `token_logprobs` against each token's log-probability computed one
# position at a time. `group_advantages` on random rewards of several sizes: each group sums to zero, a
# group of equal rewards gets zeros, a better answer more than a worse one. `policy_gradient_loss`: no
# gradient on any position that is not a sampled token (nothing is learned from the prompt or the
# padding), and each sampled token pushed up where its advantage is positive, down where negative.

# %% jupyter={"source_hidden": true} cellView="form"
#@title The checks of the RL pieces (folded)
def check_rollout_batch(rollout_batch):
    prompts, replies = [[USER, 3, 4, ASSISTANT], [USER, 5, ASSISTANT], [USER, ASSISTANT]], [[7, END], [8, 9, 9, END], [6]]
    x, y = attempt("rollout_batch(prompts, replies)", rollout_batch, prompts, replies)
    T = x.shape[1] if x.shape == y.shape and x.shape[0] == 3 and x.shape[1] > 6 and (y[:, 6:] == -1).all() else 6  # extra padding
    check(x.shape == y.shape == (3, T), f"rollout_batch gives {tuple(x.shape)} and {tuple(y.shape)}, not (3, 6): the longest prompt "
          "and reply are 7 tokens, x leaves out the last and y the first")
    for i, (p, r) in enumerate(zip(prompts, replies)):
        L, learned = len(p) + len(r) - 1, [(t, v) for t, v in enumerate(y[i].tolist()) if v != -1]
        check(x[i, :L].tolist() == (p + r)[:-1], f"row {i} of x is not the prompt and its reply (without the last token)")
        got, why = [v for _, v in learned], {tuple(r[:-1]): ", its last one too", tuple(r[1:]): ", its first one too",
                                             tuple((p + r)[len(p) - 1:-1]): ", each one place later (y[t] is token t + 1, not token t)"}
        check(got == r, f"row {i} learns the tokens {token_names(got)}, not the sampled reply {token_names(r)}: only the reply's tokens are targets "
              "(the prompt's are -1)" + why.get(tuple(got), ""))
        check([t for t, _ in learned] == list(range(len(p) - 1, L)), f"row {i}'s reply tokens are targets at the wrong positions: "
              "y[t] is token t + 1, so the first reply token is the target at position len(prompt) - 1")
    return Passed("rollout_batch: passed (the sampled tokens are the targets, nothing of the prompt)")


def check_token_logprobs(token_logprobs):
    torch.manual_seed(0)
    model = FastGPT(GPTConfig(vocab_size=13, block_size=8, n_embd=16, n_head=2, n_layer=1, dropout=0.0)).to(device)
    x, y = torch.randint(0, 13, (3, 6), device=device), torch.randint(0, 13, (3, 6), device=device)
    y[0, :2], y[2, 4:] = -1, -1
    logp = attempt("token_logprobs(model, x, y)", token_logprobs, model, x, y, hint="look at the shapes, and at the -1s of y (the "
                   "prompt, the padding), which are no token's index")
    with torch.no_grad():
        want = torch.stack([F.log_softmax(model(x[:, :t + 1])[0][:, -1], -1).gather(-1, y[:, t:t + 1].clamp(min=0))[:, 0]
                            for t in range(6)], 1) * (y != -1)  # (3, 6), one position at a time
        logits, pick = model(x)[0], lambda v: v.gather(-1, y.clamp(min=0)[..., None])[..., 0] * (y != -1)
    check(logp.shape == (3, 6), f"token_logprobs gives shape {tuple(logp.shape)}, not (B, T) = (3, 6)")
    check(logp.requires_grad, "token_logprobs carries no gradient, so the policy gradient cannot flow: do not compute it under "
          "torch.no_grad() or detach it")
    says = {"the probabilities are not logged: take log_softmax, not softmax": pick(F.softmax(logits, -1)),
            "the logits are taken raw: log_softmax normalizes them over the vocabulary": pick(logits),
            "these are the log-probabilities of the most likely tokens, not of the tokens sampled (y)": F.log_softmax(logits, -1).max(-1).values * (y != -1)}
    check(not torch.allclose((logp.detach() * (y != -1)), want, atol=1e-5) or torch.allclose(logp.detach(), want, atol=1e-5),
          "token_logprobs is not 0 where y is -1 (the prompt, the padding): those positions are no sampled token")
    check(torch.allclose(logp.detach(), want, atol=1e-5), "token_logprobs differs from each sampled token's log-probability computed "
          "position by position: " + next((s for s, v in says.items() if torch.allclose(logp.detach(), v, atol=1e-5)),
                                         "each must be log_softmax(logits[b, t])[y[b, t]], the log-probability of the token that was sampled"))
    return Passed("token_logprobs: passed (the log-probabilities of the tokens sampled, with gradients, 0 elsewhere)")


def check_group_advantages(group_advantages):
    torch.manual_seed(0)
    for P, G in ((4, 8), (1, 3), (6, 2)):
        rewards = torch.randint(0, 2, (P, G)).float().index_fill(0, torch.tensor([0]), 1.0)  # group 0: all right
        adv = attempt(f"group_advantages of rewards ({P}, {G})", group_advantages, rewards)
        check(not adv.isnan().any(), "group_advantages gives NaN for a group whose rewards are all equal: their spread is 0, so "
              "do not divide by it alone (add a small number to it)")
        check(adv.shape == (P, G), f"group_advantages gives shape {tuple(adv.shape)} for rewards ({P}, {G}): one advantage per sample")
        check(torch.allclose(adv.sum(1), torch.zeros(P), atol=1e-5), "the advantages of a group do not sum to zero: " + (
            "the mean is taken over the problems (dim 0), not over a problem's samples (dim 1)" if torch.allclose(adv.sum(0), torch.zeros(G), atol=1e-5)
            else "the mean is taken over the whole batch, not over each problem's group" if abs(adv.sum()) < 1e-4
            else "subtract each group's mean reward, the mean over its own samples"))
        check(torch.allclose(adv[0], torch.zeros(G), atol=1e-6), "a group whose rewards are all equal gets advantages other than 0")
        better = rewards[:, :, None] > rewards[:, None, :]  # (P, G, G): sample i beat sample j
        check(bool((adv[:, :, None] > adv[:, None, :])[better].all()), "a better answer gets a smaller advantage than a worse one in its "
              "group: the advantage is the reward minus the mean, not the mean minus the reward")
    return Passed("group_advantages: passed (each group sums to zero, equal rewards give 0, a better answer more)")


def check_policy_gradient_loss(policy_gradient_loss):
    torch.manual_seed(0)
    y = torch.tensor([[-1, -1, 4, 5, -1], [-1, 3, 3, 3, 2], [-1, -1, -1, 6, -1]])  # -1: the prompt or padding
    advantages, logp = torch.tensor([0.5, -0.25, -0.25]), (-torch.rand(3, 5) * (y != -1)).requires_grad_()
    loss = attempt("policy_gradient_loss(logp, y, advantages)", policy_gradient_loss, logp, y, advantages)
    check(loss.dim() == 0, f"policy_gradient_loss gives a tensor of shape {tuple(loss.shape)}, not one number to call backward on")
    grad, = torch.autograd.grad(loss, logp)
    check(not grad[y == -1].any(), "the loss has a gradient on positions that are not sampled tokens (the prompt, the padding): "
          "multiply by the mask of sampled tokens, (y != -1), so that nothing is learned from the prompt")
    again, = torch.autograd.grad(policy_gradient_loss(logp * 0.5, y, advantages), logp)
    weight = -grad / advantages[:, None]  # (3, 5) of each sampled token: the same in a row, whatever logp is
    check(torch.allclose(again, 0.5 * grad, atol=1e-6) and all(torch.allclose(w[m], w[m][:1]) for w, m in zip(weight, y != -1)), "the loss's gradient at a sampled token is not minus its advantage times a weight of its row: the loss "
          "must be linear in the log-probabilities (not the probabilities) and weigh the sampled tokens of a row alike")
    check(torch.equal(torch.sign(-grad[y != -1]), torch.sign(advantages[:, None].expand(3, 5)[y != -1])), "the loss pushes a sampled "
          "token's log-probability down when its advantage is positive: minimize minus the advantage times the log-probability")
    return Passed("policy_gradient_loss: passed (no gradient on the prompt or padding; the sign of the advantage)")


# %%
check_rollout_batch(rollout_batch)
check_token_logprobs(token_logprobs)
check_group_advantages(group_advantages)
check_policy_gradient_loss(policy_gradient_loss)


# %% [markdown]
# The RL loop: at every step fresh training problems (never held out), 8 answers to each, one gradient
# step, the learning rate falling linearly to zero as in nanochat. Every few steps the held-out exact
# match is measured, for the plot. A second run from the same finetuned model, with another seed, shows
# how much of a difference is chance.

# %%
def reinforce(model, steps, n_problems, group, lr, every, seed):
    """A copy of model tuned by RL, and a log of (step, held-out exact match, mean reward of the last steps)."""
    torch.manual_seed(seed)
    model, rng = copy.deepcopy(model).train(), torch.Generator().manual_seed(seed + 1)
    optimizer = configure_optimizer(model, lr, weight_decay=0.0)
    log, rewards = [(0, held_out_accuracy(model, "", samples=0), None)], []
    for it in range(steps):
        for g in optimizer.param_groups:
            g['lr'] = lr * (1 - it / steps)
        ps = [p for p in training_problems(n_problems, rng) for _ in range(group)]  # each problem group times
        prompts = [prompt_for(p) for p in ps]
        replies = sample_replies(model, prompts, MAX_ANSWER, temperature=1.0)
        reward = torch.tensor([float(is_right(r, p)) for r, p in zip(replies, ps)]).view(n_problems, group)  # (P, G)
        x, y = (t.to(device) for t in rollout_batch(prompts, replies))  # (B, T) each, B = P * G
        loss = policy_gradient_loss(token_logprobs(model, x, y), y, group_advantages(reward).flatten().to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        rewards.append(reward.mean().item())
        if (it + 1) % every == 0 or it + 1 == steps:
            log.append((it + 1, held_out_accuracy(model, "", samples=0), sum(rewards[-every:]) / len(rewards[-every:])))
    return model, log


# %% tags=["nbval-ignore-output"]
t0 = time.perf_counter()
rl, rl_log = reinforce(sft, *S["rl"], seed=args.seed)
seconds["rl"] = time.perf_counter() - t0
rl_2, rl_log_2 = reinforce(sft, *S["rl"], seed=args.seed + 1)
print(f"rl: {S['rl'][0]} steps in {seconds['rl']:.0f} s; held-out exact match every {S['rl'][4]} steps: "
      f"{' '.join(f'{a:.1%}' for _, a, _ in rl_log)}; another seed: {' '.join(f'{a:.1%}' for _, a, _ in rl_log_2)}")
torch.manual_seed(args.seed)
results["rl"], results["rl, another seed"] = held_out_accuracy(rl, "rl"), held_out_accuracy(rl_2, "rl, another seed")
shakespeare["rl"], shakespeare["rl, another seed"] = continuation_loss(rl), continuation_loss(rl_2)

# %% [markdown]
# ## 7. What each stage added
#
# The three stages' lines, every measure side by side, and the held-out exact match over the RL steps.
# A difference counts only if it is larger than the noise: the standard error of a share measured on
# 500 problems, and the spread between the two RL seeds.

# %% tags=["nbval-ignore-output"]
for stage in ("base", "sft", "rl"):
    print(f"{stage}: held-out exact match {results[stage]['exact']:.1%} (pass@8 {results[stage]['pass8']:.1%}) on {len(HELD_OUT)} problems")
print(f"\n{'stage':<18} {'exact match':>12} {'pass@1':>8} {'pass@8':>8} {'Shakespeare loss':>17} {'seconds':>8}")
for stage, r in results.items():
    print(f"{stage:<18} {r['exact']:>12.1%} {r['pass1']:>8.1%} {r['pass8']:>8.1%} {shakespeare[stage]:>17.3f} {seconds.get(stage, 0):>8.0f}")
for measure in ("exact", "pass1"):
    rl_band, at_sft = sorted(results[s][measure] for s in ("rl", "rl, another seed")), results["sft"][measure]
    noise = 2 * (at_sft * (1 - at_sft) / len(HELD_OUT)) ** 0.5  # two standard errors of sft's share
    print(f"{'exact match' if measure == 'exact' else 'pass@1'}: rl {rl_band[0]:.1%} to {rl_band[1]:.1%} (two seeds) against sft "
          f"{at_sft:.1%} ± {noise:.1%}: " + ("RL improved on SFT beyond the noise" if rl_band[0] > at_sft + noise else
                                             "RL did not improve on SFT beyond the noise"))

# %% [markdown]
# **In the stored run** (the 2-core CPU, 387 s for the whole notebook) the base model, prompted with
# two examples, answered none of the 500 held-out problems: it had never seen nine of the ten digits.
# Finetuning reached 39.8% exact match (pass@8 79.8%); its wrong answers were mostly near misses in the
# last digit. RL then raised exact match to 47.2% and 49.0% (two seeds), beyond two standard errors of
# SFT's share (4.4 points), and pass@1 from 28.1% to 32.6% and 32.5%: RL improved on SFT, with no
# example answer, only the check. Finetuning is the noisiest stage: a run whose new embedding rows started
# from other random numbers reached 52.0% after SFT and 64.8% after RL. Shakespeare held up: the loss
# on the 24 characters after 24 others went from 1.619 (base, plain text) to 1.743 (asked in the chat
# format), and RL did not move it at the third decimal.

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
for log, label in ((rl_log, f"seed {args.seed}"), (rl_log_2, f"seed {args.seed + 1}")):
    _ = ax.plot([s for s, _, _ in log], [a for _, a, _ in log], marker='o', label=f"held-out exact match, {label}")
    _ = ax.plot([s for s, _, r in log[1:]], [r for _, _, r in log[1:]], linestyle='--', label=f"mean training reward, {label}")
_ = ax.set(xlabel='RL step', ylabel='fraction right', title='Reinforcement learning with a verifiable reward')
_ = ax.legend(fontsize=8)
show(fig, 'rl')

# %% [markdown]
# The model after RL is saved for `--chat` (to `runs/11_chat_model/chat.pt`, or where `--ckpt` says),
# and asked a few things here.

# %% tags=["nbval-ignore-output"]
save_chat_model(rl, ckpt_path)
print(f"saved the chat model to {ckpt_path}; talk to it with: python notebooks/11_chat_model.py --chat"
      + (f" --ckpt {ckpt_path}" if args.ckpt else ""))
asks = ["what is 47 + 85?", "take 30 from 1.", "what is 99 minus 99?", "continue: " + decode(val_data[1000:1024].tolist())]
for q, reply in zip(asks, sample_replies(rl, [render([("user", q)])[0] for q in asks], 30, 0)):
    print(f"you> {q!r}\nmodel> {decode(reply)!r}")

# %% [markdown]
# ## Summary
#
# - A base model continues text. Special tokens, given rows of their own in the embedding table and the
#   head (every old row kept), turn text into conversations, and `<|end|>` lets the model stop.
# - Supervised finetuning teaches the format and the task from conversations written by code; the loss
#   mask keeps the model from learning to write the user's side.
# - Reinforcement learning with a verifiable reward needs no examples of good answers, only a check of
#   an answer: the sampled answers better than their group's average are made more likely.
# - Every stage was measured on the same held-out problems, which no stage trained on.
#
# ## Exercises
#
# 1. Divide the advantages by the group's standard deviation, as the original GRPO does. Does RL learn faster?
# 2. Leave the Shakespeare batches out of finetuning. How much does the Shakespeare loss rise, and does
#    the arithmetic get better?
# 3. Give RL 4 samples per problem instead of 8, or 16. What happens to the groups whose answers are all
#    right or all wrong, and to what RL learns in the same time?
