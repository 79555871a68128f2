# %% [markdown]
# # 11 · From GPT to a chat model, in miniature
#
# The lecture ends by explaining how ChatGPT is made from a model like ours (its closing chapter
# [▶ 1:48:53](https://www.youtube.com/watch?v=kCc8FmEb1nY&t=6533s)): pretrain on a lot of text, finetune the model to
# answer, then tune it with reinforcement learning. Notebook 06b retells that in prose; this notebook and the next run
# it on a CPU, in minutes, on data they make themselves: **the chat format** (section 1: special tokens past the
# characters, sampling that stops at `<|end|>`); **base** (section 2: notebook 05's GPT pretrained on tiny Shakespeare);
# **sft** (sections 3 to 5: finetuning on conversations written by code, with a **loss mask**); **rl** in the next
# notebook, [11b](11b_reinforcement_learning.ipynb), which starts from the model this one saves. Every stage is measured
# on the same 500 held-out problems, which no stage trains on. The stages are those of Karpathy's
# [nanochat](https://github.com/karpathy/nanochat) (8 GPUs):
# [`base_train.py`](https://github.com/karpathy/nanochat/blob/master/scripts/base_train.py),
# [`mid_train.py`](https://github.com/karpathy/nanochat/blob/master/scripts/mid_train.py) (the chat format),
# [`chat_sft.py`](https://github.com/karpathy/nanochat/blob/master/scripts/chat_sft.py). Standalone (it downloads its
# data) and a script: `python notebooks/11_chat_model.py` runs every stage and saves the finetuned model.

# %%
import argparse, collections, copy, contextlib, hashlib, io, math, os, pathlib, platform, random, re, signal, sys, tempfile, time, urllib.request
from dataclasses import asdict, dataclass, replace
import torch
import torch.nn as nn
from torch.nn import functional as F

SMOKE = os.environ.get("COURSE_SMOKE") == "1"  # set by the tests: tiny sizes and few steps
IN_NOTEBOOK = "ipykernel" in sys.modules        # False when run as a script
RUN_NAME = "11_chat_model"                      # as a script, the finetuned model goes to runs/11_chat_model/

# %% [markdown]
# The next cells are plumbing every notebook carries so that it stands alone; folded in Jupyter and Colab.

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
# %%
def parse_args(argv=None):
    """The command-line flags; argv=[] gives the defaults."""
    p = Parser(prog="11_chat_model.py", description="Pretrain a tiny GPT and finetune it into a chat model (notebook 11b tunes it, and chats).")
    p.add_argument("--ckpt", help="where to save the finetuned model (default: runs/11_chat_model/chat.pt)")
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "mps", "cpu"], help="where to run (default: the fastest there is)")
    p.add_argument("--seed", type=int, default=1337, help="random seed of every stage (default: 1337)")
    return p.parse_args(argv)


RULES = {"seed": (lambda v: 0 <= v < 2**63, "between 0 and 2**63 - 1")}
args = parse_args([] if IN_NOTEBOOK else None)
check_flags(args, RULES)
if not IN_NOTEBOOK:  # Ctrl-C: one line, not a traceback; the saved model is replaced only at the end of a run
    signal.signal(signal.SIGINT, lambda *_: sys.exit("\ninterrupted (Ctrl-C); a model saved earlier is unchanged"))
device = pick_device(args.device)
ckpt_path = pathlib.Path(args.ckpt) if args.ckpt else runs_folder() / "chat.pt"

# %% [markdown]
# ## The data, notebook 05's model and the sizes
#
# Tiny Shakespeare, its characters as the vocabulary, and notebook 05's fast GPT in one class with its optimizer
# and schedule (folded). One size on every device: notebook 05's CPU race model (3 blocks of 128 channels, context
# 64). **Check** of the model: its loss, causal, a block its attention (`F.scaled_dot_product_attention`) plus the residual.

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
#@title Notebook 05's fast GPT in two classes, its optimizer and schedule, and its check (folded)
@dataclass
class GPTConfig:
    """Sizes of the model; the defaults are the lecture's final configuration."""
    vocab_size: int = 65
    block_size: int = 256  # maximum context length
    n_embd: int = 384      # channels of every token vector
    n_head: int = 6        # heads per attention layer
    n_layer: int = 6       # blocks
    dropout: float = 0.2

class Block(nn.Module):
    """Notebook 05's FastBlock in one class: causal self-attention (one fused qkv, heads as a batch dimension), then the
    feed-forward layer, each pre-normed and added to the residual."""
    def __init__(self, config):
        super().__init__()
        C, self.n_head, self.dropout_p = config.n_embd, config.n_head, config.dropout
        self.ln1, self.ln2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.qkv, self.proj = nn.Linear(C, 3 * C, bias=False), nn.Linear(C, C)  # query, key, value of all heads
        self.ffwd = nn.Sequential(nn.Linear(C, 4 * C), nn.ReLU(), nn.Linear(4 * C, C))  # (B, T, 4C) inside
        self.dropout = nn.Dropout(config.dropout)
    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)  # (B, T, C) each
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.dropout_p if self.training else 0.0)
        x = x + self.dropout(self.proj(y.transpose(1, 2).contiguous().view(B, T, C)))  # (B, T, C)
        return x + self.dropout(self.ffwd(self.ln2(x)))  # (B, T, C)

class GPT(nn.Module):
    """Notebook 05's FastGPT in one class: the same layers, initialisation and loss."""
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.token_embedding_table = nn.Embedding(config.vocab_size, config.n_embd)
        self.position_embedding_table = nn.Embedding(config.block_size, config.n_embd)
        self.blocks = nn.Sequential(*[Block(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd)  # final layer norm
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                torch.nn.init.zeros_(module.bias)
    def forward(self, idx, targets=None):
        pos = torch.arange(idx.shape[1], device=idx.device)  # (T,)
        x = self.blocks(self.token_embedding_table(idx) + self.position_embedding_table(pos))  # (B, T, C)
        logits = self.lm_head(self.ln_f(x))  # (B, T, vocab_size)
        loss = None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return logits, loss

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

def check_gpt(GPT):
    """The GPT on a small random model: its loss, causality, a block against F.scaled_dot_product_attention, ln_f."""
    torch.manual_seed(0)
    model = attempt("GPT(config)", GPT, GPTConfig(vocab_size=11, block_size=8, n_embd=16, n_head=2, n_layer=2, dropout=0.0)).to(device)
    idx, later = torch.randint(0, 11, (3, 8), device=device), torch.randint(0, 11, (3, 8), device=device)
    later[:, :5] = idx[:, :5]  # the same first 5 tokens, then others
    logits, loss = attempt("model(idx, targets)", model, idx, idx)
    check(logits.shape == (3, 8, 11) and loss.shape == () and torch.allclose(loss, F.cross_entropy(logits.flatten(0, 1), idx.flatten())),
          f"the model gives logits {tuple(logits.shape)}, not (3, 8, 11), or a loss that is not the mean cross-entropy over all B * T positions")
    check(torch.allclose(attempt("model(idx)", model, later)[0][:, :5], logits[:, :5], atol=1e-5), "the logits at a position change when "
          "a later token changes, so the model sees the future: attention must be causal, and each head's output put back at its position")
    block, x, orders = model.blocks[0], torch.randn(3, 8, 16, device=device), [(a, b, 3 - a - b) for a in range(3) for b in range(3) if a != b]
    with torch.no_grad():
        _ = [p.zero_() for layer in model.blocks for p in layer.ffwd[-1].parameters()]  # each block: its attention and the residual
        qkv, heads = block.qkv(block.ln1(x)).split(16, dim=2), lambda t: t.view(3, 8, 2, 8).transpose(1, 2)  # (B, nh, T, hs)
        want = [x + block.proj(F.scaled_dot_product_attention(*(heads(qkv[i]) for i in order), is_causal=True).transpose(1, 2).reshape(3, 8, 16))
                for order in orders]  # whichever third of qkv is the query, the key, the value
        check(any(torch.allclose(attempt("a block", block, x), w, atol=1e-5) for w in want), "a block (its feed-forward layer set to 0) is "
              "not x + proj(causal attention of ln1(x)) by F.scaled_dot_product_attention: look at the residual, and at how the heads are split and joined")
        _ = [p.zero_() for layer in model.blocks for p in layer.proj.parameters()]  # now every block passes its input through
        model.token_embedding_table.weight.normal_(), model.position_embedding_table.weight.normal_()
        one = model(idx)[0]
        model.token_embedding_table.weight.mul_(10), model.position_embedding_table.weight.mul_(10)
        check(torch.allclose(model(idx)[0], one, atol=1e-4), "the logits change when every token vector is scaled by 10: the final "
              "LayerNorm (ln_f) must come before the head")
    return Passed("GPT: passed (the loss, causal, each block its attention plus the residual, ln_f before the head)")

# %% tags=["nbval-ignore-output"]
CHAT_SIZES = {  # "cpu" on every device (a teaching toy); "tiny" for the tests
    "cpu": dict(model=dict(block_size=64, n_embd=128, n_head=4, n_layer=3, dropout=0.0),
                base=(1200, 32, 2e-3),           # pretraining: steps, sequences per step, peak learning rate
                sft=(2000, 128, 2e-3),           # finetuning: steps, conversations per step, peak learning rate
                unmasked_steps=400),             # the finetuning without the mask, to see what it writes
    "tiny": dict(model=dict(block_size=64, n_embd=32, n_head=2, n_layer=1, dropout=0.0),
                 base=(20, 8, 2e-3), sft=(20, 16, 1e-3), unmasked_steps=8),
}
S = CHAT_SIZES["tiny" if SMOKE else "cpu"]
config = GPTConfig(vocab_size=len(chars), **S["model"])
print(describe_device(device))
print(f"model {asdict(config)}; base {S['base']}, sft {S['sft']}")
check_gpt(GPT)

# %% [markdown]
# ## 1. The chat format
#
# A conversation is a list of turns, `("user", text)` and `("assistant", text)`. As tokens a user turn is `<|user|>`,
# its characters, `<|assistant|>`; an assistant turn is its characters and `<|end|>`. These three **special tokens**
# mark who speaks; `<|end|>` is how the model says it is done (nanochat has `<|user_start|>`, `<|assistant_end|>` and
# others). They get ids past the characters, as do the characters tiny Shakespeare lacks (nine digits and `+`); the
# embedding table and the head get a row for each, every old row kept. **Check**: a small model grown by four tokens
# gives the old logits on old tokens; its new rows are distinct parameters.

# %%
SPECIALS = ["<|user|>", "<|assistant|>", "<|end|>"]
vocab = chars + [c for c in "0123456789+" if c not in chars] + SPECIALS  # token i is vocab[i]
stoi, itos = {s: i for i, s in enumerate(vocab)}, dict(enumerate(vocab))
USER, ASSISTANT, END = special_ids = tuple(stoi[s] for s in SPECIALS)
encode = lambda s: [stoi[c] for c in s]         # as before, over the grown vocabulary: the old ids are unchanged
decode = lambda l: ''.join(itos[i] for i in l)
print(f"{len(chars)} characters + {len(vocab) - len(chars) - 3} new characters + 3 special tokens = {len(vocab)} tokens; "
      f"ids of {', '.join(SPECIALS)}: {USER}, {ASSISTANT}, {END}")

# %%
def grow_vocab(model, vocab_size):
    """A copy of model with vocab_size tokens: embedding and head rows of the old tokens kept, the new ones fresh."""
    grown = GPT(replace(model.config, vocab_size=vocab_size)).to(device)  # freshly initialized
    old = model.config.vocab_size
    with torch.no_grad():
        for name, p in grown.named_parameters():
            q = model.get_parameter(name)
            if name in ('token_embedding_table.weight', 'lm_head.weight', 'lm_head.bias'):
                p[:old] = q  # (old, ...) rows of the old tokens; rows old.. stay fresh
            else:
                p.copy_(q)
    return grown

# %% jupyter={"source_hidden": true} cellView="form"
#@title The check of grow_vocab (folded: open it to see how it works)
def check_grow_vocab(grow_vocab):
    """Probe grow_vocab(model, vocab_size) on a small random model grown by 4 tokens."""
    torch.manual_seed(0)
    small = GPT(GPTConfig(vocab_size=11, block_size=8, n_embd=16, n_head=2, n_layer=1, dropout=0.0)).to(device)
    idx, _ = torch.randint(0, 11, (3, 8), device=device), small.lm_head.bias.data.normal_()  # a bias not 0, so that one left behind shows
    before = attempt("the model", small, idx)[0].detach()  # (3, 8, 11)
    grown = attempt("grow_vocab(model, 15)", grow_vocab, small, 15, hint="look at the shapes of the new tables")
    tables = (grown.token_embedding_table.weight, grown.lm_head.weight, grown.lm_head.bias)
    shapes = tuple(tuple(t.shape) for t in tables)
    check(shapes == ((15, 16), (15, 16), (15,)), f"the grown tables have shapes {shapes}, not (15, n_embd), (15, n_embd) and (15,): "
          "grow the token embedding table and the head (weight and bias), not the position table")
    check(grown.config.vocab_size == 15, f"the grown model's config.vocab_size is {grown.config.vocab_size}, not 15: the model is saved "
          "and rebuilt from its config, so give the grown model a config with the new vocab_size")
    check(all(any(t is p for p in grown.parameters()) for t in tables), "a grown table is not a parameter of the grown model, "
          "so it would never train: keep them nn.Parameters in nn.Embedding and nn.Linear")
    if not torch.allclose(attempt("the grown model", grown, idx)[0].detach()[..., :11], before, atol=1e-5):  # (3, 8, 11) of (3, 8, 15)
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
# `render` turns a conversation into ids and a **mask**: 1 on every token the assistant writes (its `<|end|>` too),
# 0 on the user's turn and on the `<|assistant|>` the prompt supplies. A prompt ends with `<|assistant|>`.

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
# **Sampling that stops at `<|end|>`**, for many prompts at once. `next_tokens` is one step: the next token
# after every row, the most likely at temperature 0 (greedy), else sampled. `sample_replies` groups the prompts
# by length into `(N, T)` tensors and appends a token to every row; a row that wrote the stop token is done.

# %%
def next_tokens(model, idx, temperature):
    """The next token (N, 1) that model picks after each row of idx (N, T)."""
    logits = model(idx[:, -model.config.block_size:])[0][:, -1]  # (N, vocab_size) at the last position
    if temperature == 0:
        return logits.argmax(-1, keepdim=True)  # (N, 1)
    return torch.multinomial(F.softmax(logits / temperature, dim=-1), 1)  # (N, 1)

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
            next_id = next_tokens(model, idx, temperature)  # (N, 1)
            idx = torch.cat([idx, next_id.masked_fill(done[:, None], stop)], dim=1)  # (N, T + 1)
            if (done := done | (idx[:, -1] == stop)).all():
                break
        for i, row in zip(rows, idx[:, length:].tolist()):
            replies[i] = row[:row.index(stop) + 1] if stop in row else row
    model.train(was_training)
    return replies

# %% jupyter={"source_hidden": true} cellView="form"
#@title The check of sample_replies (folded)
class Scripted(nn.Module):
    """After a prompt (to its <|assistant|>, or a few-shot question's newline) it writes one of scripts[prompt] = [(tokens, logit), ...],
    drawn at the first token (its last token again past its end); no scripts: token 1 twice as likely as 2. Notes context and mode."""
    def __init__(self, scripts=None, block_size=64):
        super().__init__()
        self.scripts, self.config, self.longest, self.ran_in_train = scripts, GPTConfig(vocab_size=len(vocab), block_size=block_size), 0, False
    def forward(self, idx):
        self.longest, self.ran_in_train = max(self.longest, idx.shape[1]), self.ran_in_train or self.training
        (rows, back), newline = torch.unique(idx, dim=0, return_inverse=True), stoi["\n"]  # rows (U, T): each distinct row once
        logits, picks = torch.full((len(rows), len(vocab)), -1e9, device=idx.device), []  # (U, vocab_size) at the last position
        if self.scripts is None:  # token 1 twice as likely as token 2
            logits[:, 1], logits[:, 2] = math.log(2), 0.0
        for b, row in enumerate(rows.tolist() if self.scripts else []):  # picks: (row, token, logit) of each token it may write next
            cut = row.index(ASSISTANT) + 1 if ASSISTANT in row else row.index(newline, len(FEW_SHOT)) + 1 if newline in row[len(FEW_SHOT):] else 0
            options = self.scripts.get(tuple(row[:cut]))  # the prompt ends at <|assistant|>, or at the newline after a few-shot question
            check(options is not None, f"sample_replies gave the model a row of {len(row)} tokens that is no prompt followed by its reply: "
                  "each step must append one token to each row, a next token of shape (N, 1)")
            picks += [(b, tokens[min(len(row) - cut, len(tokens) - 1)], logit) for tokens, logit in options
                      if len(row) == cut or tokens[0] == row[cut]]  # the first token decides which script it writes
        at, tokens, values = zip(*picks) if picks else ((), (), ())
        logits[list(at), list(tokens)] = torch.tensor(values, device=idx.device)
        return logits[back][:, None].expand(*idx.shape, -1), None  # (B, T, vocab_size)

def token_names(ids):
    return [itos[int(t)] for t in ids]

def check_sample_replies(sample_replies):
    """Stand-in models that write known scripts: replies cut after the stop, rows kept apart, mode restored, context cropped."""
    scripts = {(USER, 8, ASSISTANT): [5, 6, END, 7], (USER, 9, ASSISTANT): [END, 7], (USER, ASSISTANT): [1, 2, 3, 4, 4],
               (USER, 9, 9, 9, ASSISTANT): [4, END], (USER, 7, ASSISTANT): [3, 0, 4, 5]}
    model = Scripted({p: [(tokens, 0.0)] for p, tokens in scripts.items()})
    for t, stop, mode in ((0, None, True), (1.0, None, True), (0, 0, False)):  # stop 0: '\n'
        replies = [r if r is None else list(r) for r in attempt(f"sample_replies(model, prompts, 4, temperature={t}, stop={stop})",
                                                                sample_replies, model.train(mode), [list(p) for p in scripts], 4, t, stop)]
        end = END if stop is None else stop
        want = [w[:w.index(end) + 1] if end in w else w for w in ((s + s[-1:] * 4)[:4] for s in scripts.values())]  # 4 tokens at most
        check(replies == want, f"{'' if stop is None else f'with stop={itos[stop]!r} '}sample_replies gives "
              f"{[r if r is None else token_names(r) for r in replies]} where the stand-in models write {[token_names(r) for r in want]}: "
              "each reply is what was written after its own prompt, " + ("cut just after the first <|end|>" if stop is None else
              "stop at the stop token asked for (<|end|> only when stop is None)") + ", at most max_new_tokens long, in the order of the prompts")
        check(model.training == mode, f"sample_replies leaves {'the model in eval()' if mode else 'a model that was in eval() mode in train()'}"
              " mode: put it back in the mode it was in")
    tied, _ = Scripted(block_size=4), torch.manual_seed(0)
    replies = attempt("sample_replies(model, prompts, 2, temperature=0.5)", sample_replies, tied, [[USER, 9, 9, 9, 9, ASSISTANT]] * 1000, 2, 0.5)
    check(tied.longest <= 4, f"sample_replies gives the model {tied.longest} tokens at once, more than its block_size (4): crop the "
          "context to its last block_size tokens")
    check(not tied.ran_in_train, "sample_replies runs the model in train() mode, dropout on: sample in eval() mode")
    share = sum(r[0] == 1 for r in replies) / 1000
    check(0.74 < share < 0.86, f"at temperature 0.5 a token twice as likely as the other is sampled {share:.0%} of the time, not 80%: "
          "divide the logits by the temperature before the softmax")
    return Passed("sample_replies: passed (stops after <|end|>, at most max_new_tokens, one reply per prompt in order)")

# %%
check_sample_replies(sample_replies)

# %% [markdown]
# ## 2. The base model
#
# Pretraining as in notebook 05. The base model continues text; it has never seen a question, a digit but `3`
# or a special token. Its Shakespeare: its loss on 24 characters of the validation split after the 24 before them.

# %%
def pretrain(config, steps, batch_size, peak_lr, seed):
    """A GPT trained on tiny Shakespeare's training split."""
    torch.manual_seed(seed)
    model = GPT(config).to(device)
    optimizer, on_device = configure_optimizer(model, peak_lr), train_data.to(device)
    for it in range(steps):
        for group in optimizer.param_groups:
            group['lr'] = lr_at(it, peak_lr, min(50, steps // 10), steps)
        _, loss = model(*get_batch_on_device(on_device, batch_size, config.block_size))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model

# %%
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
print(f"base: {S['base'][0]} steps in {seconds['base']:.0f} s; loss {shakespeare['base']:.3f} on 24 characters of the "
      "validation split after the 24 before them (200 passages)")

# %% [markdown]
# ## 3. Data made by code
#
# **Arithmetic asked in words.** Every problem `a + b` and `a - b` with `a` and `b` below 100, asked in one of eight
# phrasings and answered with the number alone (`-38`): its answer is checked exactly, as nanochat's GSM8K reward checks
# the final number. 500 problems are held out, drawn with a fixed seed (the same in every run and in 11b): no stage
# trains on them, in any phrasing. **Continuing Shakespeare** (24 characters of the training split after `continue: `,
# the next 24 as the answer) is the second task, so that the model keeps its Shakespeare. **Check.** Many training
# batches drawn, every question read back to its numbers: each answer right, none a held-out problem, both operations
# and every phrasing drawn; the held-out problems the same at every draw.

# %%
DIGITS = 2                                   # a and b below 10**DIGITS
ASK = {"+": ["what is {a} + {b}?", "what is {a} plus {b}?", "add {a} and {b}.", "{a} + {b}?"],
       "-": ["what is {a} - {b}?", "what is {a} minus {b}?", "take {b} from {a}.", "{a} - {b}?"]}
N_PROBLEMS = 2 * 10 ** (2 * DIGITS)          # problem p: a, b = divmod(p // 2, 10**DIGITS), '+' if p is even


def held_out_problems(count=500):
    """count distinct problems, never trained on: the same at every call, so in every run and in notebook 11b."""
    return torch.randperm(N_PROBLEMS, generator=torch.Generator().manual_seed(0))[:count]  # (count,)


HELD_OUT = held_out_problems()  # (500,)
IS_HELD_OUT = torch.zeros(N_PROBLEMS, dtype=torch.bool).index_fill(0, HELD_OUT, True)  # (N_PROBLEMS,)


def problem(p, phrasing=None):
    """(question, answer) of problem p, in phrasing number `phrasing` (default: one fixed by p)."""
    (a, b), op = divmod(p // 2, 10**DIGITS), "+-"[p % 2]
    question = ASK[op][p // 7 % 4 if phrasing is None else phrasing].format(a=a, b=b)
    return question, str(a + b if op == "+" else a - b)

# %%
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

# %% jupyter={"source_hidden": true} cellView="form"
#@title The check of the held-out problems (folded)
def read_problem(question):
    """The problem number of an arithmetic question in any phrasing of ASK, or None."""
    for op, way in ((op, way) for op, ways in ASK.items() for way in ways):
        if m := re.fullmatch(re.escape(way).replace(r"\{a\}", r"(?P<a>\d+)").replace(r"\{b\}", r"(?P<b>\d+)"), question):
            return 2 * (int(m["a"]) * 10**DIGITS + int(m["b"])) + "+-".index(op)
    return None

def check_held_out(training_conversations):
    """Draw 40 batches of 64 conversations: right answers, no held-out problem among them, both operations drawn."""
    rng, seen, ways, asked, train_text = torch.Generator().manual_seed(1), [], set(), collections.defaultdict(set), decode(train_data.tolist())
    drawn = attempt("training_problems(100, rng)", training_problems, 100, rng)
    check(not IS_HELD_OUT[drawn].all(), "training_problems gives only held-out problems: keep those not held out")
    for _ in range(40):
        convos = attempt("training_conversations(64, rng)", training_conversations, 64, rng)
        n_math = sum(read_problem(q) is not None for (_, q), _ in convos)
        check(len(convos) == 64 and n_math == 48, f"training_conversations(64, rng) gives {len(convos)} conversations, {n_math} of them "
              "arithmetic, not 64 and 48 (share 0.75): draw exactly count problems and count - n_math passages")
        for (_, question), (_, answer) in convos:
            check(not question.startswith("continue: ") or len(answer) == 24 == len(question) - 10 and question[10:] + answer in train_text,
                  f"the passage {question[10:]!r}, answered {answer!r}, is not 24 characters from train_data and the 24 after them: "
                  "continuation_loss measures that task on the validation split, so train it on the training split only")
            if (p := read_problem(question)) is not None:
                check(p < N_PROBLEMS, f"the question {question!r} asks about a number of more than {DIGITS} digits: problem p's "
                      "numbers come from p // 2, since p's last bit is the operation")
                ways, (a, b) = ways | {("+-"[p % 2], k) for k in range(4) if problem(p, k)[0] == question}, divmod(p // 2, 10**DIGITS)
                check(answer == str(a - b if p % 2 else a + b), f"the answer to {question!r} is {answer!r}: check the arithmetic")
                seen.append(p)
                asked[p].add(question)
    for share, want in ((0.0, 0), (1.0, 16)):
        n = sum(read_problem(q) is not None for (_, q), _ in attempt("training_conversations", training_conversations, 16, rng, share))
        check(n == want, f"training_conversations(16, rng, share={share}) gives {n} arithmetic conversations, not {want}: share is the "
              "fraction of them that is arithmetic")
    check(training_conversations(8, rng) != training_conversations(8, rng), "two batches drawn one after the other are the same: "
          "draw from the rng given, not from a generator made afresh")
    again, held = attempt("held_out_problems()", held_out_problems), HELD_OUT.tolist()
    check(torch.equal(again, held_out_problems()) and torch.equal(again, HELD_OUT), ("HELD_OUT is not the problems held_out_problems() "
          "draws" if torch.equal(again, held_out_problems()) else "held_out_problems() draws other problems at every call") + ": draw them "
          "with a generator of a fixed seed, so that every run (and notebook 11b) holds out the same problems, never trained on in another")
    check(int(IS_HELD_OUT.sum()) == len(set(held)) and IS_HELD_OUT[HELD_OUT].all(), f"IS_HELD_OUT marks {int(IS_HELD_OUT.sum())} "
          f"problems, not the {len(set(held))} of HELD_OUT: it must be True exactly at HELD_OUT's problems")
    check(len(set(held)) == len(held) and {p % 2 for p in held} == {0, 1}, "the held-out problems "
          "repeat, or are all of one operation: draw distinct problem numbers, from both operations (p even: +, odd: -)")
    leaked = [p for p in seen if IS_HELD_OUT[p]]
    check(not leaked, f"{len(leaked)} of {len(seen)} training questions are held-out problems: draw training "
          "problems only from those not held out")
    check({p % 2 for p in seen} == {0, 1}, "the training questions are all of one operation: draw both + and -")
    check(len(ways) == 8, f"the training questions come in {len(ways)} of the 8 phrasings: draw every phrasing, or the held-out "
          "questions asked in a phrasing never trained test the phrasing, not the arithmetic")
    check(any(len(q) > 1 for q in asked.values()), "every problem drawn more than once came in one phrasing every time: draw each "
          "question's phrasing at random (from rng), so that a problem is learned in every phrasing")
    return Passed(f"held out: passed ({len(seen):,} training questions drawn, none held out, the same held out at every draw)")

# %%
check_held_out(training_conversations)
# %% [markdown]
# ## 4. Supervised finetuning, with a loss mask
#
# `x` is a rendered conversation without its last token, `y` without its first: `y[t]` is the token after `x[t]`.
# A target not to learn is `-1`, which `F.cross_entropy(..., ignore_index=-1)` skips: the padding, and those the
# mask does not cover (read at the target: `y[t]` is learned if the assistant wrote token `t + 1`), as notebook
# 06's adder masked its question. **Check**, on random conversations: each row's inputs are its ids, its targets
# exactly the assistant's tokens and `<|end|>`s (`-1` elsewhere); with `masked=False` every next token.

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

# %% jupyter={"source_hidden": true} cellView="form"
#@title The check of sft_batch (folded)
def check_sft_batch(sft_batch):
    """sft_batch against the definition, on random conversations of different lengths."""
    convos = random_conversations(1, (1, 3, 2, 1))
    rows, T = [render(c) for c in convos], max(len(render(c)[0]) for c in convos) - 1
    for masked in (True, False):
        x, y = attempt(f"sft_batch(conversations, masked={masked})", sft_batch, convos, masked)
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
# The finetuning loop: a copy of the grown base model, notebook 05's optimizer and schedule, fresh conversations at
# every step: three batches of arithmetic, then one a quarter as large of Shakespeare (a mixed batch would pad every
# problem to a passage's length). It runs twice: the second seed draws other new rows and conversations, to show how
# much is chance; a third, shorter run leaves the mask out. **Check**, on a small model that records each step: two
# steps tune a copy, learn the next tokens and nothing where `y` is `-1` (all with `masked=False`), each its own gradient.

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

# %% jupyter={"source_hidden": true} cellView="form"
#@title The check of finetune (folded)
class Recorder(GPT):
    """A GPT that records, at each run with gradients, its inputs, its weights and the gradient of the loss at its logits."""
    def forward(self, idx, targets=None):
        logits, loss = super().forward(idx, targets)
        if torch.is_grad_enabled():
            self.seen = getattr(self, "seen", []) + [(idx.detach().clone(), copy.deepcopy(self.state_dict()), [])]
            logits.register_hook(self.seen[-1][2].append)
        return logits, loss

def check_finetune(finetune):
    """Two steps of finetune on a small random model, with and without the mask."""
    torch.manual_seed(0)
    small = Recorder(GPTConfig(vocab_size=len(vocab), block_size=64, n_embd=16, n_head=2, n_layer=1, dropout=0.0)).to(device)
    start, hint = copy.deepcopy(small.state_dict()), "look at the shapes given to F.cross_entropy, and at the targets -1 (not learned)"
    for masked in (True, False):
        tuned = attempt(f"finetune(model, 2, 8, 1e-3, masked={masked})", finetune, small, 2, 8, 1e-3, masked=masked, seed=0, hint=hint)
        check(tuned is not small and all(torch.equal(v, start[k]) for k, v in small.state_dict().items()), "finetune changed the "
              "model it was given: tune a copy (copy.deepcopy), so that the base model is still there to measure and to finetune again")
        check(any(not torch.equal(v, start[k]) for k, v in tuned.state_dict().items()), "finetune returned a model whose weights "
              "never changed: the optimizer must hold the parameters of the copy that is trained (build it after the copy)")
        x, weights, (g,) = tuned.seen[-1]  # the last step: inputs (B, T), the weights it ran with, the loss's gradient (B, T, V)
        learned, target = g.abs().sum(-1) > 0, g.argmin(-1)  # (B, T): where the loss has a gradient, and which token it raises
        check(not (target == x)[learned].all(), "the loss compares the logits with the inputs x: the targets are y, the next tokens")
        inside = (x == ASSISTANT).cumsum(1) > (x == END).cumsum(1)  # (B, T): from <|assistant|> to the end of the assistant's turn
        check(learned[~inside].any() != masked, "targets that are not learned (the user's turn, the padding) get a gradient: their -1 "
              "must be skipped by the loss, not replaced by a token" if masked else "with masked=False only the assistant's tokens are "
              "learned, as with the mask: pass masked on to sft_batch")
        nxt = learned[:, :-1]  # (B, T - 1): a learned target whose next token is in x
        check(torch.equal(target[:, :-1][nxt], x[:, 1:][nxt]), "the targets learned are not the next tokens: y[t] is token t + 1")
        (model := GPT(tuned.config).to(device)).load_state_dict(weights), model(x)[0].backward(g)  # the last step's gradient, again by hand
        check(all(torch.allclose(p.grad, q.grad, atol=1e-6) for p, q in zip(tuned.parameters(), model.parameters())
                  if p.grad is not None and p.grad.any()), "the gradient after the second step is not that step's own: the first's "
              "was added to it, so zero the gradients (optimizer.zero_grad) at every step")
    return Passed("finetune: passed (a copy tuned; no gradient where nothing is learned; each step's gradient its own)")

# %%
check_finetune(finetune)

# %% tags=["nbval-ignore-output"]
hint = "a target of -1 is a token not learned (the user's turn, the padding), which the loss must be told to skip"
sfts, chat_bases = {}, {}
for seed in (args.seed, args.seed + 1):
    torch.manual_seed(seed)  # the new rows of the embedding table and the head
    chat_bases[seed], t0 = grow_vocab(base, len(vocab)), time.perf_counter()
    sfts[seed] = attempt(f"finetune(chat_base, ...) with seed {seed}", finetune, chat_bases[seed], *S["sft"], seed=seed, hint=hint)
    seconds["sft" if seed == args.seed else "sft, another seed"] = time.perf_counter() - t0
sft, chat_base = sfts[args.seed], chat_bases[args.seed]
unmasked = finetune(chat_base, S["unmasked_steps"], *S["sft"][1:], masked=False, seed=args.seed)
print(f"sft: {S['sft'][0]} steps in {seconds['sft']:.0f} s (another seed: {seconds['sft, another seed']:.0f} s); "
      f"without the mask {S['unmasked_steps']} steps")

# %% [markdown]
# ## 5. Measuring a stage
#
# Every stage answers the same 500 held-out problems. **Exact match**: the answer written greedily is the number,
# then `<|end|>`. **pass@k**: of 8 answers sampled at temperature 1, the share that is exact (k = 1), or whether
# any is (k = 8). The base model knows no chat format: it is **prompted with two examples** in plain text, and
# stops at a newline. **Check**, with stand-ins that answer by script: always right scores 100% on every measure
# (in plain text too), always wrong or never stopping 0%; right 30% of the time: 0% exact, pass@1 ≈ 30%.

# %%
MAX_ANSWER = 6  # tokens an answer may take: '-99' or '198' and <|end|> take 4
FEW_SHOT = "what is 25 + 17?\n42\nwhat is 61 - 80?\n-19\n"  # the base model's prompt before each question


def prompt_for(p, few_shot=False):
    question = problem(p)[0]
    return encode(FEW_SHOT + question + "\n") if few_shot else render([("user", question)])[0]


def is_right(reply, p, stop=None):
    """Whether reply (ids) is problem p's answer followed by the stop token."""
    return reply[-1:] == [END if stop is None else stop] and decode(reply[:-1]) == problem(p)[1]

# %%
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

# %% jupyter={"source_hidden": true} cellView="form"
#@title The check of held_out_accuracy (folded)
def answers(asked, right, end=True, odd=None):
    """A stand-in model: asked[p, few_shot], it writes p's answer with probability `right` (`odd` on the odd p), else a wrong one,
    then <|end|> (end=False: zeros, never stopping); asked in plain text (few-shot), the answer, a newline and a next question."""
    scripts = {}
    for (p, few_shot), prompt in asked.items():
        answer, r, tail = problem(p)[1], right if odd is None or p % 2 == 0 else odd, [END] if end else encode("0") * 8
        wrong, tail = answer[1:] if answer[0] == "-" else "-" + answer, encode("\nwhat is 1 + 1?") if few_shot else tail
        scripts[prompt] = [(encode(answer) + tail, math.log(max(r, 1e-9))), (encode(wrong) + tail, math.log(max(1 - r, 1e-9)))]
    return Scripted(scripts, block_size=10_000)

def check_held_out_accuracy(held_out_accuracy):
    """held_out_accuracy of stand-in models whose scores are known."""
    torch.manual_seed(0)
    check(prompt_for(0)[-1] == ASSISTANT, f"prompt_for ends with {itos[prompt_for(0)[-1]]!r}: a prompt ends with <|assistant|>, for the "
          "model to write the assistant's turn, so render the user's turn only")
    asked = {(p, few_shot): tuple(prompt_for(p, few_shot)) for p in HELD_OUT.tolist() for few_shot in (False, True)}
    def scores(model, few_shot=False):  # exact match, pass@1, pass@8
        with contextlib.redirect_stdout(io.StringIO()):
            got = attempt(f"held_out_accuracy(model, 'test', few_shot={few_shot})", held_out_accuracy, model, "test", few_shot=few_shot)
        check(isinstance(got, dict) and {"exact", "pass1", "pass8"} <= set(got), "held_out_accuracy returns no dict with 'exact', 'pass1' and 'pass8'")
        return [float(got[k]) for k in ("exact", "pass1", "pass8")]
    for right, end, want, why in ((1.0, True, 1.0, "a reply is right when it is the answer's characters and then <|end|>"),
                                  (0.0, True, 0.0, "count only the replies that are the right answer"),
                                  (1.0, False, 0.0, "an answer counts only when <|end|> follows it: a model that never stops is not right")):
        got = scores(answers(asked, right, end))
        why = ("exact match is a share of the problems, one greedy answer each" if right and end and got[1:] == [1.0, 1.0] else
               "the sampled answers are paired with other problems than they answer: keep them in the order of their prompts"
               if right and end and got[0] == 1.0 else why)
        check(all(abs(s - want) < 1e-9 for s in got), f"a model {'always right' if right else 'always wrong'}{'' if end else ' that never stops'} "
              f"scores exact match, pass@1, pass@8 = {', '.join(f'{s:.0%}' for s in got)}, not {want:.0%} each: {why}")
    got = scores(answers(asked, 1.0), few_shot=True)
    check(got == [1.0] * 3, f"a model always right, asked in plain text (few_shot=True, as the base model is), scores {got[0]:.0%}, "
          f"{got[1]:.0%}, {got[2]:.0%}: there an answer ends with a newline, not <|end|>, so give that stop token to every sample_replies and is_right")
    exact, pass1, pass8 = scores(answers(asked, 0.3))
    check(exact == 0, f"a model right 30% of the time at temperature 1 (its likeliest answer wrong) scores exact match {exact:.0%}, not 0%: "
          "exact match is the answer written greedily, at temperature 0")
    check(0.25 < pass1 < 0.35, f"that model scores pass@1 {pass1:.1%}, not about 30%: " + ("the samples are all its greedy answer: sample "
          "at temperature 1" if pass8 == 0 else "pass@1 is the share of all sampled answers that are right"))
    check(pass1 <= pass8 and 0.88 < pass8 < 0.99, f"that model scores pass@8 {pass8:.1%}, not about 94%: pass@8 is the share of problems "
          "that at least one of their 8 samples answers right")
    pass8, share = scores(answers(asked, 1.0, odd=0.0))[2], (HELD_OUT % 2 == 0).float().mean().item()
    check(abs(pass8 - share) < 1e-6, f"a model always right on additions and always wrong on subtractions scores pass@8 "
          f"{pass8:.1%}, not {share:.1%} (the additions' share): a row of right must hold one problem's own samples")
    return Passed("held_out_accuracy: passed (100% or 0% where every answer is right or wrong, in plain text too; exact match greedy; pass@1 <= pass@8)")

# %%
check_held_out_accuracy(held_out_accuracy)

# %% tags=["nbval-ignore-output"]
results = {}
for stage, model in (("base", chat_base), ("sft", sft), ("sft, another seed", sfts[args.seed + 1])):
    torch.manual_seed(args.seed)
    results[stage] = held_out_accuracy(model, stage, few_shot=stage == "base")
    if stage != "base":  # the base model's Shakespeare was measured on plain text, above
        shakespeare[stage] = continuation_loss(model)
for p, reply in zip(HELD_OUT[:4].tolist(), sample_replies(sft, [prompt_for(p) for p in HELD_OUT[:4].tolist()], MAX_ANSWER, 0)):
    print(f"  sft, asked {problem(p)[0]!r} (answer {problem(p)[1]}), writes {decode(reply)!r}")

# %% [markdown]
# **What the mask does.** Trained without it, does the model write the user's turns too, a question of the
# training data after a bare `<|user|>`?

# %% tags=["nbval-ignore-output"]
torch.manual_seed(args.seed)
for name, model in (("sft", sft), ("sft without the mask", unmasked)):
    written = [decode(r[:-1]) for r in sample_replies(model, [[USER]] * 200, 40, 1.0, stop=ASSISTANT)]
    asks = sum(read_problem(w) is not None or w.startswith("continue: ") for w in written)
    print(f"{name}: after <|user|>, {asks} of 200 samples are a question of the training data; e.g. {written[0]!r}, {written[1]!r}")

# %% [markdown]
# ## 6. What finetuning added
#
# Every measure side by side; a difference counts only beyond the noise (two standard errors, the seeds' spread).

# %% tags=["nbval-ignore-output"]
print(f"{'stage':<18} {'exact match':>12} {'pass@1':>8} {'pass@8':>8} {'Shakespeare loss':>17} {'seconds':>8}")
for stage, r in results.items():
    print(f"{stage:<18} {r['exact']:>12.1%} {r['pass1']:>8.1%} {r['pass8']:>8.1%} {shakespeare[stage]:>17.3f} {seconds[stage]:>8.0f}")
band, at_sft = sorted(results[s]["exact"] for s in ("sft", "sft, another seed")), results["sft"]["exact"]
noise = 2 * (at_sft * (1 - at_sft) / len(HELD_OUT)) ** 0.5  # two standard errors of sft's share
print(f"sft: held-out exact match {band[0]:.1%} to {band[1]:.1%} over two seeds; two standard errors of one share: {noise:.1%}")

# %% [markdown]
# **In the stored run** (the 2-core CPU, 443 s for the whole notebook) the base model, prompted with two examples,
# answered none of the 500 held-out problems. Finetuning reached 30.6% exact match (pass@8 79.4%) with the first seed
# and 39.4% (pass@8 82.6%) with the second: a gap twice two standard errors of one share (4.1 points), so a learner's
# run may land anywhere near that band; the wrong answers were mostly near misses in the last digit. Shakespeare held
# up: the loss on the 24 characters after 24 others went from 1.625 (base, plain text) to 1.728 and 1.729 (asked in
# the chat format). Without the mask, the model wrote a question of the training data in 190 of 200 samples after
# `<|user|>` (`'what is 43 plus 86?'`): it had learned to play the user too. With the mask, none of the 200 was one:
# nothing had taught it what follows `<|user|>`, and it wrote fragments of answers.
#
# The finetuned model (the first seed) is saved for notebook 11b, whose `--chat` talks to it, and asked a few things.

# %% tags=["nbval-ignore-output"]
def save_chat_model(model, path):
    """Save model, its sizes and the vocabulary to path (written beside it first, so an old file survives a crash)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config": asdict(model.config), "vocab": vocab, "model": model.state_dict()}, path.with_suffix(".part"))
    path.with_suffix(".part").replace(path)


save_chat_model(sft, ckpt_path)
print(f"saved the finetuned model to {ckpt_path}; talk to it with: python notebooks/11b_reinforcement_learning.py --chat "
      f"--ckpt {args.ckpt or 'runs/11_chat_model/chat.pt'}")
asks = ["what is 47 + 85?", "take 30 from 1.", "what is 99 minus 99?", "continue: " + decode(val_data[1000:1024].tolist())]
for q, reply in zip(asks, sample_replies(sft, [render([("user", q)])[0] for q in asks], 30, 0)):
    print(f"you> {q!r}\nmodel> {decode(reply)!r}")

# %% [markdown]
# ## Summary
#
# - A base model continues text. Special tokens, given rows of their own in the embedding table and the head (every
#   old row kept), turn text into conversations, and `<|end|>` lets the model stop.
# - Supervised finetuning teaches the format and the task from conversations written by code; the loss mask keeps
#   the model from learning to write the user's side.
# - Every stage was measured on the same held-out problems, which no stage trained on; two seeds show how much of a
#   result is chance. Next, [11b](11b_reinforcement_learning.ipynb) tunes the model with RL.
#
# ## Exercises
#
# 1. Leave the Shakespeare batches out of finetuning. How much does the Shakespeare loss rise, and does the
#    arithmetic get better?
# 2. Finetune for half the steps, or twice as many. Where does held-out exact match stop rising, and is the
#    difference larger than the seed band?
# 3. Add a third task made by code (say, "reverse: abc" answered "cba"). Does learning it cost the arithmetic anything?
