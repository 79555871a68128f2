# %% [markdown]
# # 07 · Sampling fast: a cache of keys and values
#
# The lecture's `generate` writes one character at a time, and for every new character it runs the
# whole context through the model again: to write the 100th character it computes the keys, values,
# attention and feed-forward layers of the 99 before it, which it had already computed while writing
# the 99th. This notebook keeps what it computed, a cache of every layer's keys and values, so that
# each new character costs one position instead of the whole context; proves that the cached sampler
# writes exactly the same characters as the lecture's; and measures what it gains, and where the
# learned positions of this model stop it from gaining more.
#
# This goes beyond the lecture (it has no cache); it builds on notebook 05's fast model. Standalone
# (it downloads its data) and a script: `python notebooks/07_kv_cache.py`, or
# `python notebooks/07_kv_cache.py --bench` to time cached against recomputed sampling and stop.

# %%
import argparse, hashlib, math, os, pathlib, platform, statistics, sys, tempfile, time, urllib.request
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
#@title Plumbing: the data, found or downloaded and verified (the same in every notebook)
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
    """Text to train on: path (given with flag), else $COURSE_DATA, else tiny Shakespeare (downloaded once, verified)."""
    if path:
        return read_text(path, flag)
    if os.environ.get("COURSE_DATA"):
        return read_text(os.environ["COURSE_DATA"], "COURSE_DATA")
    return read_text(fetch_shakespeare(course_root() / "datasets"), "the download")


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
    if torch.allclose(out, sdpa(q, k, v, is_causal=True), atol=1e-5):
        return None
    tril = torch.tril(torch.ones(T, T, dtype=torch.bool))
    scores = (q @ k.transpose(-2, -1) * hs**-0.5).masked_fill(~tril, float('-inf'))
    suspects = {
        "there is no causal mask, so every position sees the future: masked_fill the scores where tril == 0":
            sdpa(q, k, v),
        "the mask lets each position see one step into the future: mask where torch.tril(ones(T, T)) == 0":
            sdpa(q, k, v, attn_mask=torch.ones(T, T, dtype=torch.bool).tril(1)),
        f"the scores are scaled by C**-0.5 with C = n_embd = {n_embd} (the lecture's slip), not by head_size**-0.5":
            sdpa(q, k, v, is_causal=True, scale=n_embd**-0.5),
        "the scores are not scaled: multiply q @ k.transpose(-2, -1) by head_size**-0.5":
            sdpa(q, k, v, is_causal=True, scale=1.0),
        "the softmax runs over the wrong dimension: use dim=-1, so that each query's row sums to 1":
            F.softmax(scores, dim=-2) @ v,
        "the weights multiply the keys, not the values: out = wei @ v with v = value(x)":
            sdpa(q, k, k, is_causal=True),
        "queries and keys are swapped in the scores: compute q @ k.transpose(-2, -1)":
            sdpa(k, q, v, is_causal=True),
    }
    for mistake, result in suspects.items():
        if torch.allclose(out, result, atol=1e-5):
            return mistake
    return ("it differs from PyTorch's attention in a way this check cannot name: compare it line by line with "
            "the head above (scores, scale, mask, softmax over dim=-1, weights times v)")


# %% jupyter={"source_hidden": true} cellView="form"
#@title Plumbing: checks of the model's pieces (the same in every notebook that carries it)
def check_head(head):
    """Check one attention head (a module with key, query, value and tril) against PyTorch's attention."""
    torch.manual_seed(0)
    C, T = head.key.in_features, head.tril.shape[0]
    x = torch.randn(3, T, C)
    head.eval()
    with torch.no_grad():
        out, q, k, v = head(x), head.query(x), head.key(x), head.value(x)
    head.train()
    mistake = attention_diagnosis(out, q, k, v, C)
    check(mistake is None, f"{type(head).__name__} is not causal self-attention: {mistake}")
    return Passed(f"{type(head).__name__}: passed (equals F.scaled_dot_product_attention, scaled by head_size**-0.5 = {q.shape[-1]}**-0.5)")


def check_block(block):
    """With both output projections zeroed, a Transformer block must return its input: the residual path."""
    torch.manual_seed(0)
    C = block.sa.proj.out_features
    x = torch.randn(2, 5, C)
    ffwd_out = [m for m in block.ffwd.modules() if isinstance(m, nn.Linear)][-1]
    saved = {name: p.detach().clone() for name, p in block.state_dict().items()}
    with torch.no_grad():
        for linear in (block.sa.proj, ffwd_out):
            linear.weight.zero_()
            linear.bias.zero_()
        block.eval()
        same = torch.allclose(block(x), x, atol=1e-6)
    block.load_state_dict(saved)
    block.train()
    check(same, f"{type(block).__name__} is not x plus corrections: with its two output projections set to zero it "
          "should return its input unchanged; the residual connections are missing (write x = x + self.sa(...))")
    return Passed(f"{type(block).__name__}: passed (the residual path carries x through)")


def check_model(model, attends=True):
    """Probe a language model(idx) -> (logits, loss): causal, aware of positions, and (if attends) communicating."""
    torch.manual_seed(0)
    V, T = model.token_embedding_table.num_embeddings, model.position_embedding_table.num_embeddings
    idx = torch.randint(0, V, (2, T))
    changed = idx.clone()
    changed[:, T // 2:] = (changed[:, T // 2:] + 1) % V  # a different second half
    model.eval()
    with torch.no_grad():
        before, after = model(idx)[0], model(changed)[0]
        same_token = model(torch.full((1, 2), 1))[0]  # (1, 2, V): one character at positions 0 and 1
    model.train()
    check(torch.allclose(before[:, :T // 2], after[:, :T // 2], atol=1e-5), "changing later characters changed "
          "the predictions at earlier positions: the model sees the future (check the attention mask)")
    check(not torch.allclose(same_token[0, 0], same_token[0, 1], atol=1e-6), "the same character at positions 0 "
          "and 1 gives the same logits: the model ignores positions (add position_embedding_table(arange(T)))")
    if attends:
        earlier = idx.clone()
        earlier[:, 0] = (earlier[:, 0] + 1) % V
        with torch.no_grad():
            moved = model.eval()(earlier)[0]
        model.train()
        check(not torch.allclose(moved[:, 1:], before[:, 1:]), "changing the first character changed nothing "
              "after it: the positions do not communicate (is the attention applied?)")
    return Passed(f"{type(model).__name__}: passed (causal, aware of positions{', communicating' if attends else ''})")


# %% jupyter={"source_hidden": true} cellView="form"
#@title Plumbing: the batch check (the same in every notebook that carries it)
def check_batch(x, y, data, batch_size, block_size):
    """Check one batch (x, y) of get_batch: shapes, int64, y = x shifted by one, rows are chunks of data."""
    check(x.shape == y.shape == (batch_size, block_size), f"get_batch should return two ({batch_size}, "
          f"{block_size}) tensors, got {tuple(x.shape)} and {tuple(y.shape)}: stack batch_size chunks of block_size")
    check(x.dtype == y.dtype == torch.long, f"get_batch returns {x.dtype} and {y.dtype}: keep the data as torch.long")
    check(not torch.equal(x, y), "the targets equal the inputs: take y = data[i+1:i+block_size+1], one step on")
    check(torch.equal(x[:, 1:], y[:, :-1]), "the targets are not the inputs shifted by one: "
          "x = data[i:i+block_size] needs y = data[i+1:i+block_size+1]")
    x, y, data = x.cpu(), y.cpu(), data.cpu()
    starts = (data[:len(data) - block_size] == x[0, 0]).nonzero().flatten()  # where the first row could begin
    found = [i for i in starts.tolist() if torch.equal(data[i:i + block_size], x[0])]
    check(any(torch.equal(data[i + 1:i + block_size + 1], y[0]) for i in found),
          "the first row is not a chunk of the training split followed by its next character")
    return Passed("get_batch: passed")


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
# With no flags the script does what the notebook does. `--bench` only times cached against
# recomputed sampling (on freshly initialised weights: the speed does not depend on what the weights
# are) and stops; `--num-chars` sets how many characters are timed. A flag out of range stops with
# one line.

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

# %% jupyter={"source_hidden": true} cellView="form"
#@title Plumbing: every flag of this notebook checked before anything runs
RULES = {"num_chars": (positive, "at least 1"), "seed": (lambda v: 0 <= v < 2**64, "between 0 and 2**64 - 1")}


def check_args(args):
    """Stop with one line if a flag is out of range."""
    check_flags(args, RULES)


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
# ## The lecture's model and notebook 05's fast model
#
# Copies of notebook 04's model and notebook 05's fast one, so that this notebook runs on its own (a
# test checks that the copies never drift apart; notebooks 04 and 05 check each piece). The lecture's
# `generate` is the yardstick: the cached sampler must write exactly what it writes.

# %%
@dataclass
class GPTConfig:
    """Sizes of the model; the defaults are the lecture's final configuration."""
    vocab_size: int = 65
    block_size: int = 256  # maximum context length
    n_embd: int = 384      # channels of every token vector
    n_head: int = 6        # heads per attention layer
    n_layer: int = 6       # blocks
    dropout: float = 0.2


# %%
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


# %%
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


# %%
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


# %%
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


# %%
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


# %%
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


# %% [markdown]
# Notebook 05's attention computes all heads at once from one `qkv` linear layer, with PyTorch's
# `scaled_dot_product_attention`; `FastGPT` is the lecture's model built from it.

# %%
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
        self.blocks.apply(self._init_weights)


# %%
toy = GPTConfig(vocab_size=65, block_size=16, n_embd=64, n_head=4, n_layer=2, dropout=0.0)  # for the checks
check_model(FastGPT(toy))

# %% [markdown]
# ## 1. What `generate` computes again
#
# Attention is causal: position `t` looks only at positions `0 … t`. So appending a character to the
# context changes nothing at the positions before it, in any layer: their keys and values come out
# as they did one step earlier. Each layer's `qkv` output, for a context of 9 characters and
# then for the same 9 with a 10th appended:

# %%
def qkv_outputs(model, idx):
    """The qkv output (B, T, 3C) of every layer of model for idx (B, T): the queries, keys and values side by side."""
    seen = []
    hooks = [block.sa.qkv.register_forward_hook(lambda module, inputs, out: seen.append(out)) for block in model.blocks]
    with torch.no_grad():
        model.eval()(idx)
    for hook in hooks:
        hook.remove()
    return seen


torch.manual_seed(1337)
model = FastGPT(toy)
idx = torch.randint(0, toy.vocab_size, (1, 10))  # (B, T)
for layer, (before, after) in enumerate(zip(qkv_outputs(model, idx[:, :9]), qkv_outputs(model, idx))):
    kv_before, kv_after = before[:, :, toy.n_embd:], after[:, :9, toy.n_embd:]  # (B, 9, 2C) keys and values
    same = torch.allclose(kv_after, kv_before, atol=1e-6)
    print(f"layer {layer}: the keys and values of positions 0-8 are unchanged by the 10th character: {same}")
    assert same

# %% [markdown]
# The only new thing a step needs is the new character's own query, key and value in each layer: its
# query attends to all the keys so far, the cached ones and its own. The work per character drops
# from the whole context to one position. Writing `n` characters from a one-character prompt, the
# lecture's `generate` runs `1 + 2 + … + n` positions through the model (until the context reaches
# `block_size`); with a cache it runs `n`.
#
# ## 2. The cache, and attention over it
#
# The cache holds, for every layer, the keys and values `(B, n_head, T, head_size)` of the `T`
# positions seen so far. It needs no weights of its own, so everything below is a function that takes
# notebook 05's modules, and a trained `FastGPT` can use it as it is.

# %%
class KVCache:
    """The keys and values (B, nh, T, hs) of every layer for the T positions seen so far; len() is T."""

    def __init__(self, n_layer):
        self.keys, self.values = [None] * n_layer, [None] * n_layer

    def __len__(self):
        return 0 if self.keys[0] is None else self.keys[0].shape[2]


# %% [markdown]
# `attend_cached` is `CausalSelfAttention.forward` for new positions only. Their keys and values are
# appended to the layer's cache, and their queries attend over everything in it. With nothing cached
# (a *prefill* of the prompt) this is the ordinary causal attention. After cached positions the mask
# must be placed with care: `T` new queries come after `T_past` cached positions, so query `i` may see
# keys `0 … T_past + i`, a lower-triangular mask shifted right by `T_past`. (`is_causal=True` would be
# wrong there: PyTorch aligns that mask to the top left, so a single new query would see only the
# first key.) Dropout is left out: sampling runs in `eval()` mode.

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
# **Check.** A prompt of 7 positions through `attend_cached`, then three new positions one at a time,
# must give what causal attention over all 10 gives at once. As in notebook 05, the output projection
# is set to the identity so that each head can be compared with PyTorch's own attention; the check
# names the likely mistake.

# %%
def check_attend_cached(attend_cached, config):
    """A prompt, then single new positions through attend_cached must equal causal attention over all of them."""
    torch.manual_seed(0)
    attn = CausalSelfAttention(config).eval()
    C, T, nh, P = config.n_embd, 10, config.n_head, 7  # P: the prompt's length
    heads = lambda t: t.view(2, -1, nh, C // nh).transpose(1, 2)  # (B, T, C) -> (B, nh, T, hs)
    with torch.no_grad():
        attn.proj.weight.copy_(torch.eye(C))
        attn.proj.bias.zero_()
        x = torch.randn(2, T, C)  # (B, T, C)
        q, k, v = (heads(t) for t in attn.qkv(x).split(C, dim=2))  # (B, nh, T, hs) each
        cache = KVCache(1)
        y = heads(torch.cat([attend_cached(attn, x[:, :P], cache, 0)] +
                            [attend_cached(attn, x[:, t:t + 1], cache, 0) for t in range(P, T)], dim=1))
    check(len(cache) == T, f"after a prompt of {P} and {T - P} single steps the cache holds {len(cache)} positions, "
          f"not {T}: append the new keys and values to the cached ones (torch.cat along dim=2) and store the result")
    mistake = attention_diagnosis(y[:, :, :P], q[:, :, :P], k[:, :, :P], v[:, :, :P], C)
    check(mistake is None, f"attend_cached over the prompt is not causal self-attention: {mistake}")
    steps, expected = y[:, :, P:], F.scaled_dot_product_attention(q, k, v, is_causal=True)[:, :, P:]
    check(not torch.allclose(steps, v[:, :, :1].expand_as(steps), atol=1e-5), "each new position sees only the "
          "first key: is_causal=True aligns its mask to the top left; shift the mask right by the cached length")
    check(not torch.allclose(steps, v[:, :, P:], atol=1e-5), "each new position attends only to itself: its query "
          "must see the cached keys and values too (concatenate them before the attention)")
    check(torch.allclose(steps, expected, atol=1e-5), "the new positions do not attend like causal attention over "
          "the whole sequence: each new query must see every cached key and its own, and nothing later")
    return Passed(f"attend_cached: passed (a prompt of {P}, then {T - P} single steps, equal causal attention over all {T})")


check_attend_cached(attend_cached, toy)


# %% [markdown]
# ## 3. The model, one new position at a time
#
# `forward_cached` is the model's forward pass for new characters that follow the cached ones. The
# one line that differs from `GPTLanguageModel.embed` is the positions: the new characters sit at
# positions `len(cache) …`, not `0 …`. Each block is the same pre-norm residual block, its attention
# going through the cache.

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
# The positions are learned embeddings, one row per position `0 … block_size - 1`. When the cache
# holds `block_size` positions there is no row for the next one, and the cache cannot slide: the
# lecture's `generate` crops the context to its last `block_size` characters, which moves every
# character one position to the left, so every key and value in every layer changes. To write exactly
# what `generate` writes, the cached sampler does what it does: when the window is full it runs the
# cropped window through the model afresh (a prefill), and from then on every step is a prefill of
# `block_size` positions, as costly as the lecture's step. The cache saves work only while the context
# is shorter than `block_size`; section 6 measures what that means.
#
# `next_logits_cached` is one step of sampling: a prefill at the start or when the window is full,
# otherwise one position through the cache. `next_logits_recomputed` is the lecture's step, for
# comparison.

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
# **Check.** A fixed text of `3 * block_size` random characters is fed one character at a time, from
# a prompt of three, well past the point where the window fills. After each step the cache must hold
# the right number of positions, and the cached logits must equal the full forward pass's last
# position on the same (cropped) context, with the same weights.

# %%
def check_cached_logits(next_logits, config):
    """Each step of next_logits(model, idx, cache) must give model(idx[:, -block_size:])'s last logits, past the window."""
    torch.manual_seed(0)
    model, bs = FastGPT(config).eval(), config.block_size
    tokens = torch.randint(0, config.vocab_size, (2, 3 * bs))  # (B, 3 * block_size)
    cache = None
    with torch.no_grad():
        for t in range(3, tokens.shape[1] + 1):  # a prompt of 3 characters, then one more per step
            idx = tokens[:, :t]  # (B, t)
            try:
                logits, cache = next_logits(model, idx, cache)  # (B, vocab_size)
            except IndexError:
                check(t <= bs, f"with {t - 1} characters seen the step asked for a position past the last one, "
                      f"block_size - 1 = {bs - 1}: when the cache holds block_size positions, prefill the last block_size afresh")
                raise
            expected = model(idx[:, -bs:])[0][:, -1, :]  # (B, vocab_size) the full forward pass
            check(len(cache) == min(t, bs), f"after {t} characters the cache holds {len(cache)} positions, not "
                  f"{min(t, bs)}: append each step's keys and values to the cache instead of replacing them")
            where = ("the prefill of the prompt" if t == 3 else f"step {t - 3} (position {t - 1})" if t <= bs else
                     f"step {t - 3}, after the window filled")
            check(torch.allclose(logits, expected, atol=1e-5), f"the cached logits of {where} differ from the full "
                  "forward pass's last position: " + (
                      "the prefill must run the whole (cropped) prompt through the model with a causal mask" if t == 3 else
                      "embed the new character at position len(cache), not from 0, and let it attend to every cached key"
                      if t <= bs else "positions are learned, so the cache cannot slide: when it is full, prefill the "
                      "last block_size characters afresh"))
    return Passed(f"next_logits_cached: passed (a prompt of 3, then {3 * bs - 3} steps, {2 * bs} of them after the "
                  f"window of {bs} filled, equal the full forward pass)")


check_cached_logits(next_logits_cached, toy)


# %% [markdown]
# ## 4. Sampling with the cache
#
# `generate_cached` samples exactly as notebook 05's `generate` does (the lecture's `generate`, plus
# the course's `temperature` and `top_k`, and `eval()` mode without gradients, putting the model back
# in the mode it was in): crop, divide by the temperature, keep the `top_k` largest, softmax,
# `torch.multinomial`. Only the logits come from the cache.

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
# **Check.** With the same weights and the same seed, `generate_cached` must write exactly the
# characters the lecture's `generate` writes: two sequences at once, three times `block_size`
# characters long, with the default settings, a low temperature, and a high one with `top_k`. The model has
# dropout, so a sampler that forgets `eval()` writes other characters; and the model must be left in
# training mode, as it was found.

# %%
def check_generate_cached(generate_cached, config):
    """generate_cached must write exactly what generate writes, with the same weights and seed, in eval mode without gradients."""
    torch.manual_seed(0)
    model = FastGPT(replace(config, dropout=0.2))  # in training mode, as a model is after training
    with torch.no_grad():
        model.lm_head.weight.mul_(10)  # logits spread as a trained model's, so that temperature and top_k matter
    seen = []
    hook = model.token_embedding_table.register_forward_hook(lambda *_: seen.append((model.training, torch.is_grad_enabled())))
    prompt, n = torch.randint(0, config.vocab_size, (2, 3)), 3 * config.block_size  # (B, T), past the window
    for settings in ({}, {"temperature": 0.5}, {"temperature": 2.0, "top_k": 3}):
        torch.manual_seed(1)
        expected = generate(model, prompt, n, **settings)  # (B, T + n)
        torch.manual_seed(1)
        seen.clear()
        got = generate_cached(model, prompt, n, **settings)
        check(got.shape == expected.shape, f"generate_cached(idx of shape (2, 3), {n}) gave {tuple(got.shape)}, not "
              f"{tuple(expected.shape)}: append one token per step")
        check(all(not training and not grad for training, grad in seen), "generate_cached ran the model in training "
              "mode or with gradients: use model.eval() and @torch.no_grad()")
        differ = (got != expected).any(0).nonzero()
        check(len(differ) == 0, f"with {settings or 'the default settings'} and the same seed, generate_cached wrote "
              f"other characters than generate from character {differ[0].item() if len(differ) else 0} on: sample as "
              "generate does (logits / temperature, top_k, softmax, torch.multinomial) from the cached logits")
        check(model.training, "generate_cached left the model in eval mode: put it back with model.train(was_training)")
    hook.remove()
    return Passed(f"generate_cached: passed (the same {n} characters as generate, past the window, with and without "
                  "temperature and top_k)")


check_generate_cached(generate_cached, toy)

# %% [markdown]
# How much work each does, counted rather than timed: the number of positions that go through the
# model (a hook on the token embedding counts them) while writing characters from a one-character
# prompt, on the toy model with `block_size = 16`. Within the window the cache does one position per
# character; once the window is full, both do `block_size` positions per character.

# %%
def positions_computed(sample, model, max_new_tokens):
    """How many positions sample(model, idx, max_new_tokens) runs through the model, from a one-character prompt."""
    count = []
    hook = model.token_embedding_table.register_forward_hook(lambda module, inputs, out: count.append(inputs[0].numel()))
    sample(model, torch.zeros((1, 1), dtype=torch.long), max_new_tokens)
    hook.remove()
    return sum(count)


model = FastGPT(toy)
check(positions_computed(generate_cached, model, toy.block_size - 1) == toy.block_size - 1,
      "within the window generate_cached should feed the model one position per character (the prompt's, then "
      "each new one): is the cache used, or rebuilt at every step?")
for n in (toy.block_size, 10 * toy.block_size):
    recomputed, cached = positions_computed(generate, model, n), positions_computed(generate_cached, model, n)
    print(f"{n:3} new characters: generate computes {recomputed:5,} positions, generate_cached {cached:5,} "
          f"(generate: {recomputed / cached:.2f}x as many)")


# %% [markdown]
# The memory it takes: two tensors of `B × T × n_embd` numbers for each layer. For the lecture's
# configuration (6 layers of 384 channels, `block_size = 256`) in float32, one full sequence:

# %%
lecture = GPTConfig()
cache = KVCache(lecture.n_layer)
with torch.no_grad():
    forward_cached(FastGPT(lecture).eval(), torch.zeros((1, lecture.block_size), dtype=torch.long), cache)
size = sum(t.numel() * t.element_size() for t in cache.keys + cache.values)
print(f"{len(cache)} positions x {lecture.n_layer} layers x 2 (keys, values) x {lecture.n_embd} channels x 4 bytes = "
      f"{size:,} bytes ({size / 2**20:.2f} MiB) per sequence")
assert size == 2 * lecture.n_layer * lecture.block_size * lecture.n_embd * 4

# %% [markdown]
# ## 5. A model worth sampling from
#
# To sample text rather than noise, train a fast model briefly, with notebook 05's optimizer and
# schedule (warmup, then cosine decay; weight decay on the matrices). The size is chosen by the device:
# the lecture's configuration on CUDA, notebook 05's CPU benchmark size (4 layers of 128 channels,
# `block_size = 64`) elsewhere, for a few hundred steps: enough for words and names, not for good
# Shakespeare.

# %% tags=["nbval-ignore-output"]
device = pick_device(args.device)
SAMPLER_SIZES = {  # device: (model sizes, batch, steps, peak lr, warmup steps)
    "tiny": (dict(block_size=16, n_embd=32, n_head=2, n_layer=2, dropout=0.0), 8, 20, 1e-3, 5),
    "cuda": (dict(block_size=256, n_embd=384, n_head=6, n_layer=6, dropout=0.2), 64, 500, 1e-3, 50),
    "cpu": (dict(block_size=64, n_embd=128, n_head=4, n_layer=4, dropout=0.0), 32, 400, 2e-3, 40),
}
sizes, batch_size, max_iters, learning_rate, warmup = SAMPLER_SIZES["tiny" if SMOKE else "cuda" if device == "cuda" else "cpu"]
config = GPTConfig(vocab_size=len(chars), **sizes)
check_split_sizes(train_data, val_data, config.block_size)
block_size = config.block_size
num_chars = args.num_chars or (200 if SMOKE else 2000)  # characters per timed sample
repeats = 2 if SMOKE else 3                             # timed runs of each sampler (the median is reported)
print(describe_device(device))
print(f"config: {asdict(config)}; training: batch {batch_size}, {max_iters} steps, peak lr {learning_rate}; "
      f"timing: {num_chars:,} characters, median of {repeats} runs")


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


torch.manual_seed(0)
check_batch(*get_batch_on_device(train_data.to(device), batch_size, block_size), train_data, batch_size, block_size)


# %% [markdown]
# ## 6. Timing both
#
# Both samplers write `num_chars` characters from a one-character prompt with the same seed, taking
# turns so that a slow moment of the machine does not fall on one only; after a short warm-up, each is
# timed `repeats` times and the median is kept. Two lengths are timed: `num_chars` (2,000 by default),
# far past the window, and `block_size`, the characters that fit in the window, where the cache never
# needs a second prefill; being short, it is timed `5 * repeats` times.

# %%
def time_sampling(model, num_chars, repeats):
    """Median characters per second of generate and of generate_cached, taking turns, and the last samples of each."""
    rates, samples = {generate: [], generate_cached: []}, {}
    start = torch.zeros((1, 1), dtype=torch.long, device=device)  # (B, T) one character (index 0, a newline in Shakespeare)
    for sample in rates:
        sample(model, start, min(num_chars, 20))  # warm up
    for r in range(repeats):
        for sample in rates:
            torch.manual_seed(r)
            sync()
            t0 = time.perf_counter()
            samples[sample] = sample(model, start, num_chars)[0]
            sync()
            rates[sample].append(num_chars / (time.perf_counter() - t0))
    return statistics.median(rates[generate]), statistics.median(rates[generate_cached]), samples


def print_speeds(model, num_chars, repeats):
    """Print characters per second of both samplers, for num_chars and for the block_size that fit the window."""
    for n in (num_chars, model.config.block_size):
        recomputed, cached, _ = time_sampling(model, n, repeats)
        print(f"{n:6,} characters: generate {recomputed:8,.0f} chars/s, generate_cached {cached:8,.0f} chars/s: "
              f"{cached / recomputed:.2f}x")


# %% [markdown]
# `--bench` stops here, after timing both on freshly initialised weights.

# %% tags=["nbval-ignore-output"]
if args.bench:
    print(f"bench: generate against generate_cached on freshly initialised weights, median of {repeats} runs")
    torch.manual_seed(args.seed)
    print_speeds(FastGPT(config).to(device), num_chars, repeats)
    sys.exit(0)


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


# %%
def train_briefly(config, batch_size, steps, peak_lr, warmup, seed=1337):
    """A FastGPT trained for steps steps with notebook 05's optimizer and schedule; returns it and the last batch's loss."""
    torch.manual_seed(seed)
    model = FastGPT(config).to(device)
    optimizer = configure_optimizer(model, peak_lr, fused=device == 'cuda')
    train_on_device = train_data.to(device)
    for it in range(steps):
        for group in optimizer.param_groups:
            group['lr'] = lr_at(it, peak_lr, warmup, steps)
        x, y = get_batch_on_device(train_on_device, batch_size, config.block_size)  # (B, T) each
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model, loss.item()


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
# The stored run (the 2-core CPU, seed 1337, 400 steps) reached a whole-split validation loss of
# 1.9961: words, names and line breaks in the right places, not yet good Shakespeare. The cell
# prints where yours landed.

# %% tags=["nbval-ignore-output"]
t0 = time.perf_counter()
model, last_loss = train_briefly(config, batch_size, max_iters, learning_rate, warmup, seed=args.seed)
sync()
print(f"{max_iters} steps in {time.perf_counter() - t0:.1f} s; last batch's loss {last_loss:.4f}, "
      f"whole-split val loss {split_loss(model, val_data):.4f}")

# %% [markdown]
# Now both samplers on the trained model, timed as described above. With the same seed they must
# write the same text: the cell says whether they did, and shows the start of it. (Two ways of adding
# up the same numbers can differ in the last bit; if a draw ever fell exactly on such a boundary the
# texts would part there, and the cell would say where.)

# %% tags=["nbval-ignore-output"]
recomputed, cached, samples = time_sampling(model, num_chars, repeats)
print(f"{num_chars:,} characters: generate {recomputed:,.0f} chars/s, generate_cached {cached:,.0f} chars/s: "
      f"{cached / recomputed:.2f}x")
recomputed_w, cached_w, _ = time_sampling(model, block_size, 5 * repeats)
print(f"{block_size:,} characters (the window): generate {recomputed_w:,.0f} chars/s, generate_cached "
      f"{cached_w:,.0f} chars/s: {cached_w / recomputed_w:.2f}x")
differ = (samples[generate] != samples[generate_cached]).nonzero()
print(f"the same {num_chars:,} characters both ways: {len(differ) == 0}"
      + (f" (they part at character {differ[0].item()})" if len(differ) else ""))
print(decode(samples[generate_cached][:300].tolist()))

# %% [markdown]
# In the stored run, over 2,000 characters the cached sampler ran at 1.01x the lecture's speed (317
# against 314 characters per second): after the first `block_size` characters every step is a
# prefill of the whole window, as costly as the lecture's step. Within the window (64 characters)
# it ran at 1.68x its speed. On this small model and a CPU, much of a step is fixed cost (Python, the
# layers' small matrix products, the sampling itself), so even one position instead of a window
# saves less than the positions counted above suggest.
#
# ## 7. The cost of each character
#
# Where the time goes, character by character: the milliseconds each step takes (the fastest of five
# runs) against the position of the new character, for `3 * block_size` characters.

# %%
def ms_per_character(next_logits, model, num_chars, repeats):
    """Milliseconds (num_chars,) spent on each new character with next_logits, from a one-character prompt: the
    fastest of repeats runs (other work on the machine only ever adds time)."""
    times, was_training = torch.zeros(repeats, num_chars), model.training
    model.eval()
    with torch.no_grad():
        for r in range(repeats):
            torch.manual_seed(r)
            idx, cache = torch.zeros((1, 1), dtype=torch.long, device=device), None  # (B, T)
            for i in range(num_chars):
                sync()
                t0 = time.perf_counter()
                logits, cache = next_logits(model, idx, cache)  # (B, vocab_size)
                idx = torch.cat((idx, torch.multinomial(F.softmax(logits, dim=-1), num_samples=1)), dim=1)  # (B, T+1)
                sync()
                times[r, i] = time.perf_counter() - t0
    model.train(was_training)
    return times.min(0).values * 1e3  # (num_chars,)


# %% tags=["nbval-ignore-output"]
steps_ms = {name: ms_per_character(f, model, 3 * block_size, 5) for name, f in
            (("generate (recomputes the window)", next_logits_recomputed), ("generate_cached", next_logits_cached))}
for name, ms in steps_ms.items():
    print(f"{name:<34} ms per character (median): within the window {ms[:block_size].median():.2f}, "
          f"after it filled {ms[block_size:].median():.2f}")

# %%
fig, ax = plt.subplots(figsize=(7, 3.5), constrained_layout=True)
for name, ms in steps_ms.items():
    _ = ax.plot(range(1, len(ms) + 1), ms, label=name)
_ = ax.axvline(block_size, color='grey', linestyle=':', label=f'the window is full (block_size = {block_size})')
_ = ax.set(xlabel='characters in the context when the next one is written', ylabel='ms per new character',
           ylim=(0, None), title=f'The cost of each character ({device})')
_ = ax.legend()
show(fig, 'ms_per_character')

# %% [markdown]
# The lecture's step grows with the context until it reaches `block_size`, then stays at the cost of
# a full window. The cached step stays nearly flat while the window fills (the new query attends to a
# cache one position longer at each step, too little to see at this size), and from
# the moment the window is full it pays a prefill of the whole window at every step, as the lecture's
# does.
#
# ## Summary
#
# - A cache of each layer's keys and values makes a step of sampling cost one position instead of the
#   whole context: causal attention never changes what earlier positions computed, so the new query
#   only needs the cached keys and values plus its own.
# - The pieces were checked against an oracle each: the cached attention against PyTorch's causal
#   attention over the whole sequence, each step's logits against the full forward pass (before and
#   after the window fills), and the samples against the lecture's `generate`, character for character,
#   with the same seed.
# - Learned positions limit the gain: once the context passes `block_size`, every position moves and
#   the cache must be rebuilt at every step. The gain holds for the first `block_size` characters,
#   which for the lecture's configuration is 256.
#
# ## Exercises
#
# 1. Instead of a prefill of the whole window at every step once it is full, prefill only the last
#    `block_size // 2` characters and keep appending until the window is full again. Measure the
#    speed over 2,000 characters. The samples are no longer the lecture's: why?
# 2. Sample 16 sequences at once (`idx` of shape `(16, 1)`). How do the two samplers' characters per
#    second change, per sequence and in all?
# 3. Rotary position embeddings (RoPE, used by LLaMA) rotate queries and keys by their position
#    instead of adding a learned row. Why does that let a cache slide past `block_size`? (It is no
#    longer exactly the recomputed window: the deeper layers' cached keys and values were computed
#    while the dropped characters were still in view. Measure how much that changes the samples.)
