# %% [markdown]
# # 06 · The lecture's exercises, solved and checked
#
# The lecture's description suggests four exercises. Here each one is a small project you can run:
#
# 1. **The heads as a batch dimension**: one module for all attention heads, equal to the lecture's
#    `MultiHeadAttention` with the same weights.
# 2. **A GPT that adds**: teach notebook 04's model `a+b=c`, with problems served fresh by the data
#    loader, the answer's digits reversed, and the loss masked on the question.
# 3. **Pretrain, then finetune**: pretrain on a different, larger text (Tolstoy's *War and Peace*),
#    finetune on tiny Shakespeare, and compare with training on tiny Shakespeare alone for the same
#    compute. Beside it, the lecture's last chapter on ChatGPT.
# 4. **One idea from a paper, measured**: GELU, weight tying and rotary position embeddings, each
#    checked and then raced against the unchanged model on notebook 05's CPU race.
#
# Every exercise has the same shape. A statement says what to build, with a hint. A cell holds your
# starting point, a function or class that raises `NotImplementedError`: fill it in. The cell after
# it checks your code with real assertions and says in one sentence what is wrong, or that it
# passed. Until you fill it in, the check only says "not done yet". Then comes a solution, folded
# in Jupyter and Colab (click to open it), the same check run on the solution, and what the
# solution reaches when trained.
#
# Standalone (it downloads its data) and a script: `python notebooks/06_exercises.py`.

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
RUN_NAME = "06_exercises"                       # as a script, figures go to runs/06_exercises/

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
# ## The data and the lecture's model, as in notebooks 04 and 05
#
# Tiny Shakespeare (or your own text through `COURSE_DATA`), and copies of notebook 04's model and
# of notebook 05's fast model and training loop, so that this notebook runs on its own (a test checks
# that the copies never drift from the originals).

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
# Notebook 05's fast model (its batched attention is one solution of exercise 1, so read it after
# you have tried) and its training pieces: batches gathered on the device, the learning-rate
# schedule, the optimizer, the race's training loop and the whole-split loss.

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
        self.blocks.apply(self._init_weights)


# %%
def copy_heads(mha, attn):
    """Copy a MultiHeadAttention's per-head weights into a CausalSelfAttention."""
    with torch.no_grad():
        for i, name in enumerate(['query', 'key', 'value']):
            attn.qkv.weight[i * attn.proj.in_features:(i + 1) * attn.proj.in_features] = torch.cat(
                [getattr(h, name).weight for h in mha.heads])  # (C, C) the heads stacked
        attn.proj.load_state_dict(mha.proj.state_dict())
    return attn


def check_causal_self_attention(attn):
    """Check a batched-heads attention module (qkv, proj, n_head, tril) against PyTorch's attention."""
    torch.manual_seed(0)
    attn = copy.deepcopy(attn).eval()
    C, T, nh = attn.proj.in_features, attn.tril.shape[0], attn.n_head
    heads = lambda t: t.view(2, T, nh, C // nh).transpose(1, 2)  # (B, T, C) -> (B, nh, T, hs)
    with torch.no_grad():
        attn.proj.weight.copy_(torch.eye(C))
        attn.proj.bias.zero_()
        x = torch.randn(2, T, C)
        q, k, v = (heads(t) for t in attn.qkv(x).split(C, dim=2))
        y = heads(attn(x))  # the heads' outputs, as the module joined them
    mistake = attention_diagnosis(y, q, k, v, C)
    check(mistake is None, f"{type(attn).__name__} is not causal self-attention: {mistake} "
          "(if that does not fit, check the view and transpose that split and join the heads)")
    return Passed(f"{type(attn).__name__}: passed (every head equals F.scaled_dot_product_attention)")


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


# %%
def train_fast(config, batch_size, iters, peak_lr, warmup, seed=1337, cosine=True, weight_decay=0.1, clip=1.0,
               eval_every=None, target=None, amp_dtype=None, fused=False, compile=False):
    """Train a FastGPT, stopping early once the whole-split val loss (checked every eval_every steps) reaches
    target; returns it, a log of (step, seconds, loss), and the seconds spent compiling before the clock."""
    torch.manual_seed(seed)
    model = FastGPT(config).to(device)
    step_model = torch.compile(model) if compile else model
    optimizer = configure_optimizer(model, peak_lr, weight_decay, fused)
    scaler = torch.amp.GradScaler(device, enabled=amp_dtype == torch.float16)
    train_on_device = train_data.to(device)
    autocast = lambda: torch.autocast(device, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None)
    t0 = time.perf_counter()
    if compile:  # compile forward and backward on a throwaway batch, leaving the weights and random state untouched
        state = torch.get_rng_state(), torch.cuda.get_rng_state_all() if device == 'cuda' else None
        with autocast():
            step_model(*get_batch_on_device(train_on_device, batch_size, config.block_size))[1].backward()
        optimizer.zero_grad(set_to_none=True)
        torch.set_rng_state(state[0])
        if state[1] is not None:
            torch.cuda.set_rng_state_all(state[1])
    sync()
    compile_seconds, log, t0 = time.perf_counter() - t0, [], time.perf_counter()
    for it in range(iters):
        for group in optimizer.param_groups:
            group['lr'] = lr_at(it, peak_lr, warmup, iters) if cosine else peak_lr
        x, y = get_batch_on_device(train_on_device, batch_size, config.block_size)
        with autocast():
            _, loss = step_model(x, y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if clip:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        scaler.step(optimizer)
        scaler.update()
        if (it + 1) % max(1, iters // 20) == 0:
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
# ## Exercise 1: the heads as a batch dimension
#
# *Practises* [multi-head attention, 1:21:59](https://www.youtube.com/watch?v=kCc8FmEb1nY&t=4919s)
# *and* [nanoGPT's batched heads, 1:46:22](https://www.youtube.com/watch?v=kCc8FmEb1nY&t=6382s)
# *(taught in notebooks 03 and 05).*
#
# `MultiHeadAttention` runs `n_head` small `Head` modules one after another. Write
# `BatchedHeadAttention`, one module that computes all heads at once. Its weights are laid out so
# that the lecture's can be copied in (the check does that):
#
# - `qkv = nn.Linear(n_embd, 3 * n_embd, bias=False)`: its output, split in three along the last
#   dimension, is the queries, the keys and the values of all heads, `(B, T, C)` each. Within each
#   third, head `h` owns channels `h * hs` to `(h + 1) * hs` (`hs = n_embd // n_head`): those rows
#   of `qkv.weight` are head `h`'s `query.weight` (first third), `key.weight` (second), `value.weight`
#   (third).
# - `proj`: the output projection, as in `MultiHeadAttention`.
#
# **Hint.** `view` each of q, k, v as `(B, T, n_head, hs)` and `transpose(1, 2)` to
# `(B, n_head, T, hs)`: the heads are now a batch dimension, and `q @ k.transpose(-2, -1)` is every
# head's `(T, T)` scores at once. Scale by `hs**-0.5`, mask with `tril[:T, :T]`, softmax, dropout,
# `@ v`; then transpose back and `view(B, T, C)` (after `.contiguous()`), which places the heads side
# by side exactly as `torch.cat` did.

# %%
class BatchedHeadAttention(nn.Module):
    """Every head of causal self-attention at once, the heads as a batch dimension (exercise 1)."""

    def __init__(self, config):
        super().__init__()
        self.n_head = config.n_head
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=False)  # queries, keys, values of all heads
        self.proj = nn.Linear(config.n_embd, config.n_embd)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.dropout = nn.Dropout(config.dropout)
        self.register_buffer('tril', torch.tril(torch.ones(config.block_size, config.block_size)))

    def forward(self, x):
        B, T, C = x.shape
        raise NotImplementedError("exercise 1: compute all heads at once, join them, then project")


# %% [markdown]
# **The check.** It builds the lecture's `MultiHeadAttention`, copies its weights into your module
# with the layout above, and requires the same output; it also changes the future of a sequence
# (the past must not move) and tries a sequence shorter than `block_size`. If the outputs differ, it
# looks inside each head for the usual mistakes (mask, scale, softmax axis).

# %%
def check_batched_heads(attention_class):
    """Check exercise 1: attention_class(config), given MultiHeadAttention's weights, must compute its output."""
    name = attention_class.__name__
    config = GPTConfig(vocab_size=65, block_size=16, n_embd=64, n_head=4, n_layer=1, dropout=0.0)
    torch.manual_seed(0)
    mha = MultiHeadAttention(config).eval()
    attn = copy_heads(mha, attention_class(config)).eval()
    x = torch.randn(2, 16, 64)  # (B, T, C)
    future = torch.cat([x[:, :8], torch.randn(2, 8, 64)], dim=1)  # the same first 8 positions, another future
    try:
        with torch.no_grad():
            out, out_future, expected = attn(x), attn(future), mha(x)
    except NotImplementedError:
        return not_done(f"{name}.forward")
    except RuntimeError as e:
        raise CheckFailed(f"{name} fails on a (B, T, C) = (2, 16, 64) input: {str(e).splitlines()[0]} (a view after a "
                          "transpose needs .contiguous() first)") from None
    check(out.shape == x.shape, f"{name} returns shape {tuple(out.shape)}, not (B, T, C) = {tuple(x.shape)}: "
          "join the heads with y.transpose(1, 2).contiguous().view(B, T, C)")
    if not torch.allclose(out[:, :8], out_future[:, :8], atol=1e-5):
        check_causal_self_attention(attn)  # a softmax over the wrong axis also leaks the future: name it first
    check(torch.allclose(out[:, :8], out_future[:, :8], atol=1e-5), f"{name} is not causal: changing positions 8-15 "
          "changed the output at positions 0-7; mask the scores with tril[:T, :T] == 0 before the softmax")
    if not torch.allclose(out, expected, atol=1e-5):
        check_causal_self_attention(attn)  # names a mistake inside the heads (mask, scale, softmax axis), if it is one
        raise CheckFailed(f"in {name} every head computes the right attention, but the layer's output differs from "
                          f"MultiHeadAttention's by up to {(out - expected).abs().max():.2g}: join the heads side by side "
                          "in head order, as torch.cat(heads, dim=-1) does, and apply self.proj to them")
    try:
        with torch.no_grad():
            short = attn(x[:, :5])
    except RuntimeError as e:
        raise CheckFailed(f"{name} fails on a sequence shorter than block_size (T = 5): crop the mask to "
                          f"tril[:T, :T] ({str(e).splitlines()[0]})") from None
    check(torch.allclose(short, out[:, :5], atol=1e-5), f"{name} gives other outputs for the first 5 positions when "
          "the sequence is 5 long: crop the mask to tril[:T, :T]")
    return Passed(f"{name}: passed (equals MultiHeadAttention with the same weights, all {config.n_head} heads; "
                  "causal; also for T < block_size)")


check_batched_heads(BatchedHeadAttention)

# %% [markdown]
# **A solution** (folded: click to open it). It is notebook 05's `CausalSelfAttention` without
# `scaled_dot_product_attention`: every step of the lecture's `Head`, on a 4-D tensor.

# %% tags=["hide-input"] jupyter={"source_hidden": true}
class BatchedHeadAttentionSolution(BatchedHeadAttention):
    """Exercise 1, solved: the lecture's Head, computed for all heads at once."""

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)  # (B, T, C) each
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        wei = q @ k.transpose(-2, -1) * k.shape[-1]**-0.5  # (B, nh, T, T), scaled by head_size
        wei = wei.masked_fill(self.tril[:T, :T] == 0, float('-inf'))  # (B, nh, T, T)
        wei = self.attn_dropout(F.softmax(wei, dim=-1))  # (B, nh, T, T)
        y = wei @ v  # (B, nh, T, T) @ (B, nh, T, hs) -> (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C): the heads side by side, as torch.cat put them
        return self.dropout(self.proj(y))  # (B, T, C)


# %%
check_batched_heads(BatchedHeadAttentionSolution)

# %% [markdown]
# **What it gains.** One forward and backward pass through one attention layer of notebook 04's CPU
# size (4 heads of 32 channels, 32 sequences of 64 characters), the lecture's module against the
# batched one, median of 20 timed passes each:

# %%
def ms_per_pass(module, x, repeats=20):
    """Median milliseconds of one forward and backward pass of module on x."""
    times = []
    for _ in range(repeats + 2):
        t0 = time.perf_counter()
        module(x).sum().backward()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[2:]) * 1e3  # the first two passes warm up


# %% tags=["nbval-ignore-output"]
size = GPTConfig(block_size=16, n_embd=32, n_head=2, dropout=0.0) if SMOKE else GPTConfig(block_size=64, n_embd=128, n_head=4, dropout=0.0)
torch.manual_seed(1337)
lecture_attention = MultiHeadAttention(size).to(device)
batched_attention = copy_heads(lecture_attention, BatchedHeadAttentionSolution(size)).to(device)
x = torch.randn(4 if SMOKE else 32, size.block_size, size.n_embd, device=device)  # (B, T, C)
lecture_ms, batched_ms = ms_per_pass(lecture_attention, x), ms_per_pass(batched_attention, x)
print(f"MultiHeadAttention {lecture_ms:.2f} ms, BatchedHeadAttentionSolution {batched_ms:.2f} ms per pass "
      f"({lecture_ms / batched_ms:.2f}x) on {device}")

# %% [markdown]
# The batched module does the same arithmetic as the lecture's in fewer, larger operations: three
# matrix multiplications for `qkv` become one, and the scores, mask and softmax run once for all
# heads instead of once per head.

# %% [markdown]
# ## Exercise 2: a GPT that adds
#
# *Practises* [the data loader, 0:14:27](https://www.youtube.com/watch?v=kCc8FmEb1nY&t=867s)
# *(taught in notebook 01), on a dataset of your own making.*
#
# Teach notebook 04's GPT, unchanged, to add two numbers. Each example is one problem written as
# characters, for 3-digit numbers `482+319=1080`: `a`, `+`, `b`, `=` and the sum `c = 801` as four
# digits (`0801`) **reversed** (`1080`). The lecture's description of the exercise suggests two
# ideas to make this easier to learn; below we measure what each is worth:
#
# - **Reverse the answer.** We add from the right: the last digit of the sum depends only on the
#   last digits of `a` and `b`, and each next digit on one more pair and the carry. Written lowest
#   digit first, each digit needs one pair of digits of the problem and the carry, and the carry can
#   be read from the previous pair and the digit just written; written the usual way, the first digit
#   depends on every carry still to come.
# - **Mask the question.** The digits of `a` and `b` are random: no model can predict them, and a
#   loss on them is noise. Setting those targets to `-1` and computing the loss with
#   `F.cross_entropy(..., ignore_index=-1)` trains only on the answer.
#
# The problems are served fresh by the data loader, drawn at random at every step, instead of read
# from a file. A thousand problems are set aside first and never drawn: the model is tested on them,
# so a right answer cannot be one it memorised.
#
# The vocabulary is the ten digits, `+` and `=`; token `i` is the digit `i`.

# %%
ADD_VOCAB = "0123456789+="  # token i is the digit i; token 10 is '+', token 11 is '='


def digits_of(numbers, width):
    """The decimal digits (N, width) of numbers (N,), most significant first, padded with zeros."""
    powers = 10 ** torch.arange(width - 1, -1, -1)  # (width,)
    return numbers[:, None] // powers % 10  # (N, width)


def addition_problems(digits, held_out=1000, seed=0):
    """Every problem a+b with a, b < 10**digits, as the number a * 10**digits + b, shuffled once with a fixed
    seed: (the problems to train on, the held_out problems to test on, never trained on)."""
    order = torch.randperm(10 ** (2 * digits), generator=torch.Generator().manual_seed(seed))
    return order[held_out:], order[:held_out]


def written(tokens):
    """A row of tokens as text ('_' for a masked target, -1)."""
    return ''.join('_' if t < 0 else ADD_VOCAB[t] for t in tokens.tolist())


for d in (2, 3):
    train_problems, test_problems = addition_problems(d)
    print(f"{d} digits: {len(train_problems):,} problems to train on, {len(test_problems):,} held out; "
          f"the first held out is {test_problems[0] // 10**d}+{test_problems[0] % 10**d}")

# %% [markdown]
# Write `get_addition_batch(problems, batch_size, digits, reverse=True, mask=True)`:
#
# - draw `batch_size` problems at random from `problems` (a tensor of numbers `a * 10**digits + b`;
#   the held-out ones are not in it);
# - write each as tokens: `a`'s `digits` digits, `+` (10), `b`'s digits, `=` (11), then the sum's
#   `digits + 1` digits, lowest first if `reverse`; `digits_of` above gives the digits;
# - return `x`, the sequence without its last token, and `y`, the sequence without its first (the
#   next token at every position), both `(B, 3 * digits + 2)`, with every target before the answer
#   set to `-1` if `mask` (the first `2 * digits + 1`).
#
# **Hint.** `problems[torch.randint(len(problems), (batch_size,))]`, then `//` and `%` by
# `10**digits`; `torch.cat` the pieces along `dim=1`; `.flip(1)` reverses; `y = seq[:, 1:].clone()`
# before writing `-1` into it.

# %%
def get_addition_batch(problems, batch_size, digits, reverse=True, mask=True):
    """A batch (x, y) of random problems 'a+b=c' from problems, the answer reversed and the question masked."""
    raise NotImplementedError("exercise 2: draw problems, write them as tokens, shift by one, mask the question")


# %% [markdown]
# **The check** draws batches from three known problems (`123+456`, `999+999` and `5+7`), reads the
# rows back, and compares every part with what it should be: the problems, the reversed answers,
# the shift by one, the `-1`s; then the same with `reverse=False` and `mask=False`, and with 2 digits.

# %%
def check_addition_batch(get_addition_batch):
    """Check exercise 2's batches: problems drawn from those given, written out, reversed, shifted and masked."""
    name = get_addition_batch.__name__
    problems = torch.tensor([123_456, 999_999, 5_007])  # 123+456, 999+999, 5+7 (3 digits each)
    torch.manual_seed(0)
    try:
        x, y = get_addition_batch(problems, 64, 3)
    except NotImplementedError:
        return not_done(name)
    check(x.shape == y.shape == (64, 11), f"{name}(problems, 64, 3) should return two (64, 11) tensors ('123+456=' "
          f"and 4 answer digits are 12 tokens; x leaves out the last, y the first), got {tuple(x.shape)} and {tuple(y.shape)}")
    check(x.dtype == y.dtype == torch.long, f"{name} returns {x.dtype} and {y.dtype}: tokens must be torch.long")
    check(not bool((x < 0).any()), f"x holds -1 (the first row is {x[0].tolist()}): the targets share memory with x; "
          "mask a copy, y = seq[:, 1:].clone(), not a view of the same tensor")
    check(bool((x[:, 3] == 10).all() and (x[:, 7] == 11).all()), f"the rows do not read a+b=: the first is "
          f"{written(x[0])!r}; write a's 3 digits, '+' (token 10), b's 3 digits, '=' (token 11), then the answer")
    powers = torch.tensor([100, 10, 1])
    a, b = (x[:, :3] * powers).sum(1), (x[:, 4:7] * powers).sum(1)  # (B,) each
    outside = (~torch.isin(a * 1000 + b, problems)).nonzero().flatten().tolist() + [None]
    check(outside[0] is None, f"row {outside[0]} is {written(x[outside[0] or 0, :7])}, not one of the problems "
          "given: draw the rows from `problems`, so that the held-out problems never reach training")
    check(len((a * 1000 + b).unique()) > 1, "every row is the same problem: draw each row at random from problems")
    answer = torch.cat([x[:, 8:], y[:, -1:]], dim=1)  # (B, 4): the answer as written
    plain = digits_of(a + b, 4)  # (B, 4) most significant digit first
    i = int((answer != plain.flip(1)).any(1).nonzero().flatten()[0]) if not torch.equal(answer, plain.flip(1)) else 0
    check(not torch.equal(answer, plain), f"the answers are not reversed: {written(x[i, :8])} should be followed by "
          f"{written(plain[i].flip(0))} ({a[i] + b[i]} as 4 digits, lowest first), not {written(plain[i])}")
    check(torch.equal(answer, plain.flip(1)), f"row {i} reads {written(torch.cat([x[i], y[i, -1:]]))}, but after "
          f"{written(x[i, :8])} comes {written(plain[i].flip(0))} ({a[i] + b[i]} as 4 digits, reversed)")
    check(not bool((y[:, 7] == -1).all()), "the first digit of the answer is masked too: set only the first "
          "2 * digits + 1 = 7 targets to -1")
    check(torch.equal(y[:, 7:], answer), "the answer's targets are not the answer's digits: y "
          "must be the sequence shifted by one (y[:, t] is the token after x[:, t])")
    check(not torch.equal(y[:, :7], x[:, 1:8]), "the loss is not masked: the first 7 targets (the rest of 'a+b=') "
          "should be -1, so that F.cross_entropy(..., ignore_index=-1) skips them")
    check(bool((y[:, :7] == -1).all()), f"the first 7 targets should all be -1 (every target before the answer), "
          f"got {y[0, :7].tolist()}")
    x, y = get_addition_batch(problems, 16, 3, reverse=False, mask=False)
    a, b = (x[:, :3] * powers).sum(1), (x[:, 4:7] * powers).sum(1)
    check(torch.equal(torch.cat([x[:, 8:], y[:, -1:]], dim=1), digits_of(a + b, 4)),
          "with reverse=False the answer should be written the usual way, most significant digit first")
    check(torch.equal(y[:, :-1], x[:, 1:]) and bool((y >= 0).all()), "with mask=False, y should be x shifted by "
          "one, with no -1 in it")
    x, y = get_addition_batch(torch.tensor([1234]), 4, 2)  # 12+34=46, as '12+34=' and '640'
    check(x.shape == (4, 8) and written(x[0]) + written(y[0, -1:]) == "12+34=640", f"with digits=2 the problem 12+34 "
          f"should read 12+34=640 in x and y (8 tokens each), got {written(x[0])!r} and the shape {tuple(x.shape)}")
    return Passed(f"{name}: passed (problems drawn from those given, answers reversed, the question masked with -1; "
                  "reverse=False, mask=False and 2 digits work too)")


check_addition_batch(get_addition_batch)

# %% [markdown]
# **A solution** (folded):

# %% tags=["hide-input"] jupyter={"source_hidden": true}
def get_addition_batch_solution(problems, batch_size, digits, reverse=True, mask=True):
    """Exercise 2, solved: batch_size random problems from problems, as (x, y) token tensors (B, 3 * digits + 2)."""
    picked = problems[torch.randint(len(problems), (batch_size,))]  # (B,) problem numbers
    a, b = picked // 10**digits, picked % 10**digits  # (B,) each
    answer = digits_of(a + b, digits + 1)  # (B, digits + 1)
    if reverse:
        answer = answer.flip(1)  # lowest digit first
    plus, equals = torch.full((batch_size, 1), 10), torch.full((batch_size, 1), 11)  # (B, 1) each
    seq = torch.cat([digits_of(a, digits), plus, digits_of(b, digits), equals, answer], dim=1)  # (B, 3 * digits + 3)
    x, y = seq[:, :-1], seq[:, 1:].clone()  # (B, T) each, T = 3 * digits + 2
    if mask:
        y[:, :2 * digits + 1] = -1  # no loss on the rest of 'a+b=': only the answer is learned
    return x, y


# %%
check_addition_batch(get_addition_batch_solution)

# %% [markdown]
# **Training.** Notebook 04's `GPTLanguageModel`, unchanged and small (a problem is only 12 tokens
# long), trained with notebook 05's optimizer and schedule. The model's own loss knows nothing of
# masks, so the loop asks it for the logits only and computes the loss itself with
# `ignore_index=-1`. Every `every` steps it answers the 1,000 held-out problems greedily (always
# the most likely next digit) and counts the answers right in every digit: exact match. The clock
# counts training only, not these tests.

# %%
ADDER = dict(n_embd=64, n_head=4, n_layer=2, dropout=0.0)  # notebook 04's GPT, small: 2 blocks of 64 channels
ADD_BATCH, ADD_LR, ADD_WARMUP = 256, 1e-3, 100             # problems per step, peak learning rate, warmup steps


@torch.no_grad()
def addition_answers(model, problems, digits):
    """The answer tokens (N, digits + 1) that model writes greedily (its most likely token, in turn) after 'a+b='."""
    model.eval()
    a, b = problems // 10**digits, problems % 10**digits  # (N,) each
    plus, equals = torch.full((len(problems), 1), 10), torch.full((len(problems), 1), 11)
    idx = torch.cat([digits_of(a, digits), plus, digits_of(b, digits), equals], dim=1).to(device)  # (N, 2 * digits + 2)
    for _ in range(digits + 1):
        logits, _ = model(idx)  # (N, T, vocab_size)
        idx = torch.cat([idx, logits[:, -1].argmax(-1, keepdim=True)], dim=1)  # (N, T + 1)
    model.train()
    return idx[:, 2 * digits + 2:].cpu()  # (N, digits + 1)


def addition_accuracy(model, problems, digits, reverse=True):
    """The fraction of problems whose answer, written greedily, is right in every digit."""
    expected = digits_of(problems // 10**digits + problems % 10**digits, digits + 1)  # (N, digits + 1)
    answers = addition_answers(model, problems, digits)
    return (answers == (expected.flip(1) if reverse else expected)).all(1).float().mean().item()


def train_adder(get_batch, digits, steps, reverse=True, mask=True, every=100, seed=1337):
    """Notebook 04's GPT trained on problems served by get_batch, the loss masked through ignore_index=-1;
    returns the model and a log of (step, seconds of training, exact-match accuracy on the held-out problems)."""
    train_problems, test_problems = addition_problems(digits)
    torch.manual_seed(seed)
    model = GPTLanguageModel(GPTConfig(vocab_size=len(ADD_VOCAB), block_size=3 * digits + 2, **ADDER)).to(device)
    optimizer = configure_optimizer(model, ADD_LR)
    log, seconds = [], 0.0
    for it in range(steps):
        t0 = time.perf_counter()
        for group in optimizer.param_groups:
            group['lr'] = lr_at(it, ADD_LR, ADD_WARMUP, steps)
        x, y = get_batch(train_problems, ADD_BATCH, digits, reverse, mask)  # (B, T) each
        logits, _ = model(x.to(device))  # (B, T, vocab_size)
        loss = F.cross_entropy(logits.flatten(0, 1), y.to(device).flatten(), ignore_index=-1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sync()
        seconds += time.perf_counter() - t0
        if (it + 1) % every == 0 or it + 1 == steps:
            log.append((it + 1, seconds, addition_accuracy(model, test_problems, digits, reverse)))
    return model, log


# %% [markdown]
# **The main run**: 3-digit problems, reversed and masked. The goal is at least 99% exact match on
# the 1,000 held-out problems within 5 minutes of training on a 2-core CPU.

# %% tags=["nbval-ignore-output"]
ADD_STEPS = 10 if SMOKE else 700  # training steps of every run of this exercise
adder, add_log = train_adder(get_addition_batch_solution, 3, ADD_STEPS)
reached = next((step for step, _, acc in add_log if acc >= 0.99), None)
step, seconds, accuracy = add_log[-1]
print(f"3 digits, reversed, masked: {accuracy:.1%} exact match on 1,000 held-out problems after {step} steps, "
      f"{seconds:.0f} s of training ({device}); 99% first reached "
      + (f"at step {reached}" if reached else "not at all"))
_, test_problems = addition_problems(3)
answers = addition_answers(adder, test_problems[:6], 3)
for problem, answer in zip(test_problems[:6].tolist(), answers):
    a, b = divmod(problem, 1000)
    usual = written(answer.flip(0))  # the answer read the usual way, most significant digit first
    print(f"  {a}+{b} = {usual} (written {written(answer)}): {'right' if usual == f'{a + b:04d}' else 'WRONG'}")

# %% [markdown]
# **What the two ideas are worth.** The same training (the same steps, schedule and seed), with one
# idea taken away at a time, on 3-digit problems; 2-digit problems for comparison; and the main run
# again with another seed, to show how much the moment a run learns varies by chance alone.

# %% tags=["nbval-ignore-output"]
add_runs = {"3 digits, reversed, masked (the main run)": (3, True, True, 1337, add_log)}
for label, (d, reverse, mask, seed) in {"3 digits, reversed, masked, another seed": (3, True, True, 1338),
                                        "3 digits, not reversed, masked": (3, False, True, 1337),
                                        "3 digits, reversed, not masked": (3, True, False, 1337),
                                        "2 digits, reversed, masked": (2, True, True, 1337)}.items():
    add_runs[label] = (d, reverse, mask, seed, train_adder(get_addition_batch_solution, d, ADD_STEPS, reverse, mask,
                                                           seed=seed)[1])
print(f"{'run':<44} {'steps':>6} {'seconds':>8} {'exact match':>12} {'99% at step':>12}")
for label, (d, reverse, mask, seed, log) in add_runs.items():
    first = next((step for step, _, acc in log if acc >= 0.99), None)
    print(f"{label:<44} {log[-1][0]:>6} {log[-1][1]:>8.0f} {log[-1][2]:>12.1%} {first or '-':>12}")

# %%
fig, ax = plt.subplots(figsize=(7, 3.5), constrained_layout=True)
for label, (d, reverse, mask, seed, log) in add_runs.items():
    _ = ax.plot([step for step, _, _ in log], [acc for _, _, acc in log], label=label)
_ = ax.axhline(0.99, color='grey', linestyle=':', label='99%')
_ = ax.set(xlabel='training step', ylabel='exact match, 1,000 held-out problems', ylim=(0, 1.02),
           title='Learning to add')
_ = ax.legend(fontsize=8)
show(fig, 'addition')

# %% [markdown]
# In the stored run (the 2-core CPU) all five runs passed 99% exact match on their 1,000 held-out
# problems within 700 steps, 23 to 33 s of training each: well inside the goal of 99% in 5 minutes.
# The main run first passed 99% at step 600 and ended at 100%. Without reversed answers the model
# passed 99% only at its last step and ended at 99.1%, the one run short of 100%; without the mask
# it passed at step 400, but so did the main run with another seed, so one run each cannot tell the
# mask's effect from the seed's. At three digits reversing may help a little and masking is not
# needed within this budget; the carry travels further with more digits, which is where reversing
# should matter (see the exercises at the end).
#
# **Now extend it to subtraction.** Add `-` to the vocabulary and let `get_addition_batch` choose
# the operation for each row at random. Decide how a negative result is written (a sign token, or
# only problems with `a >= b`), keep the answer's width fixed, and mask the question as before. Does
# the model need a lowest-digit-first answer for subtraction too, where the borrow travels the same
# way as the carry? Then try `*`: the lowest digit of a product still depends only on the lowest
# digits, but the others depend on many pairs of digits.

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

# %%
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
# with notebook 05's optimizer and schedule peaking at `peak_lr`, and returns a log of
# `(step, loss)`. Pretraining and finetuning are the same loop; only the data, the number of steps
# and the learning rate change.
#
# **Hint.** Notebook 05's `train_fast` without the clock, the compiling and the mixed precision:
# `configure_optimizer(model, peak_lr)`, then at every step `lr_at(it, peak_lr, warmup, steps)`,
# `get_batch_on_device(data, batch_size, model.config.block_size)`, forward, backward, step. Do not
# build a new model inside: finetuning must start from the pretrained weights.

# %%
def train_on(model, data, steps, peak_lr, batch_size=32, warmup=0):
    """Train model in place on data (token ids) for steps steps with a schedule peaking at peak_lr; returns [(step, loss)]."""
    raise NotImplementedError("exercise 3: the training loop, for a model that may already be trained")


# %% [markdown]
# **The check** trains a tiny model on a repeating pattern: with `peak_lr = 0` nothing may change,
# and 60 steps at `3e-3` must lower the loss of the model it gave you on the data it gave you.

# %%
@torch.no_grad()
def loss_on(model, chunks):
    """The model's mean loss on chunks (N, T + 1): inputs chunks[:, :-1], targets chunks[:, 1:]."""
    return F.cross_entropy(model(chunks[:, :-1])[0].flatten(0, 1), chunks[:, 1:].flatten()).item()


def check_train_on(train_on):
    """Check exercise 3's loop: it uses the learning rate, and trains the model and the data it is given."""
    name = train_on.__name__
    config = GPTConfig(vocab_size=13, block_size=8, n_embd=32, n_head=2, n_layer=1, dropout=0.0)
    pattern = torch.tensor(list(range(13)) * 40, device=device)  # a text a tiny model learns in a few steps
    chunks = pattern[:520].view(-1, 13)[:, :9]  # (40, 9): every chunk starts at 0
    torch.manual_seed(0)
    model = FastGPT(config).to(device)
    before, start = copy.deepcopy(model.state_dict()), loss_on(model, chunks)
    try:
        log = train_on(model, pattern, 5, 0.0, batch_size=8)
    except NotImplementedError:
        return not_done(name)
    check(all(torch.equal(before[k], v) for k, v in model.state_dict().items()), f"{name} changed the weights with "
          "peak_lr = 0: give the optimizer the learning rate of the schedule, lr_at(it, peak_lr, warmup, steps)")
    log = train_on(model, pattern, 60, 3e-3, batch_size=16)
    after = loss_on(model, chunks)
    check(after < 0.5 * start, f"60 steps at peak_lr = 3e-3 did not lower the loss of the model given on the data given "
          f"(from {start:.2f} to {after:.2f}): train `model` itself, not a new one, on `data`, not on train_data")
    check(isinstance(log, list) and len(log) == 60 and math.isfinite(log[-1][1]), f"{name} should return a list of "
          "(step, loss), one per step")
    return Passed(f"{name}: passed (trains the model it is given, on the data it is given, at the learning rate given)")


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
PRETRAIN_BATCH, PRETRAIN_LR, PRETRAIN_WARMUP = 32, 2e-3, 50  # as in notebook 05's CPU race
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
finetuned = copy.deepcopy(pretrained)
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
# reached a validation loss of 2.0118 on tiny Shakespeare, and tiny Shakespeare alone, with the same
# 500 steps, 1.9178: **at equal compute, pretraining on another text did not help here**; it spent
# four fifths of the budget on 19th-century prose. Counted as free, as it is for whoever finetunes a
# published model, it did: 100 finetuning steps reached 2.0118 where 100 steps from scratch reached
# 2.4648. Unfinetuned, the *War and Peace* model scores 2.6701 on Shakespeare: it knows English
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
# ## Exercise 4: one idea from a paper, measured
#
# *Practises* [nanoGPT's walk-through, 1:46:22](https://www.youtube.com/watch?v=kCc8FmEb1nY&t=6382s)
# *(where GELU and weight tying appear) and* [positional encoding, 1:00:18](https://www.youtube.com/watch?v=kCc8FmEb1nY&t=3618s)
# *(taught in notebooks 05 and 03).*
#
# The lecture's model is the decoder of the 2017 Transformer with pre-norm. Later papers changed
# many of its parts. Implement one change, prove it correct with a small check, and measure it:
# train it with notebook 05's CPU race (the same `train_fast`, settings, steps and seed) beside the
# unchanged model, and compare the whole-split validation losses and the times. Three ideas, each
# its own small exercise:
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


# %%
def check_gelu(gelu):
    """Check exercise 4a against PyTorch's F.gelu (either form), and that it is not ReLU."""
    name = gelu.__name__
    x = torch.linspace(-4, 4, 81)  # (81,) in steps of 0.1
    try:
        y = gelu(x)
    except NotImplementedError:
        return not_done(name)
    check(isinstance(y, torch.Tensor) and y.shape == x.shape, f"{name}(x) should return a tensor of x's shape {tuple(x.shape)}")
    check(not torch.allclose(y, F.relu(x), atol=1e-3), f"{name} is ReLU: GELU is x * Φ(x), which is slightly negative "
          "for negative x (GELU(-1) = -0.1587) where ReLU is 0")
    error = (y - F.gelu(x)).abs()
    tanh_form = torch.allclose(y, F.gelu(x, approximate='tanh'), atol=1e-5)
    check(error.max() < 1e-5 or tanh_form, f"{name} differs from F.gelu by up to {error.max():.3g} (at x = "
          f"{x[error.argmax()]:.1f}): GELU(x) = x * 0.5 * (1 + erf(x / sqrt(2)))")
    return Passed(f"{name}: passed (equals F.gelu{' in its tanh form' if error.max() >= 1e-5 else ''} on [-4, 4]; "
                  f"{name}(-1) = {y[30]:.4f} where ReLU gives 0)")


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
check_model(GELUGPT(toy))

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


# %%
def check_tying(model_class):
    """Check exercise 4b: one Parameter for both uses, counted once, and trained by both."""
    name = model_class.__name__
    config = GPTConfig(vocab_size=13, block_size=8, n_embd=16, n_head=2, n_layer=1, dropout=0.0)
    torch.manual_seed(0)
    try:
        model = model_class(config)
    except NotImplementedError:
        return not_done(f"{name}.__init__")
    embedding, head = model.token_embedding_table.weight, model.lm_head.weight
    shares = head.data_ptr() == embedding.data_ptr()
    check(head is embedding, f"{name}'s lm_head.weight is a separate Parameter" + (
        " sharing the embedding's memory" if shares else " holding a copy of the embedding's values"
        if torch.equal(head, embedding) else "") + ": assign the Parameter itself, "
        "self.lm_head.weight = self.token_embedding_table.weight, so that one matrix is trained by both uses")
    untied = FastGPT(config)
    count = lambda m: sum(p.numel() for p in m.parameters())
    check(count(model) == count(untied) - 13 * 16, f"{name} has {count(model):,} parameters, expected "
          f"{count(untied) - 13 * 16:,}: the shared matrix should be counted once")
    untied.load_state_dict(model.state_dict())  # the same weights, in two separate matrices
    idx, targets = torch.randint(0, 13, (4, 8)), torch.randint(0, 13, (4, 8))
    model(idx, targets)[1].backward()
    untied(idx, targets)[1].backward()
    both = untied.token_embedding_table.weight.grad + untied.lm_head.weight.grad
    check(torch.allclose(embedding.grad, both, atol=1e-6), f"the shared matrix's gradient is not the sum of the "
          "gradients of its two uses: the model must use token_embedding_table and lm_head as FastGPT does")
    return Passed(f"{name}: passed (one Parameter for the token embedding and lm_head, counted once; its gradient "
                  "is the sum of both uses')")


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
# **The check** compares your `rope` with the same rotation written with complex numbers (a pair is
# `x1 + i·x2`, and turning it is multiplying by `e^(i·t·θ)`), and checks the property that matters:
# for a fixed query and key, `rope(q) · rope(k)` at positions `m` and `n` depends only on `m - n`.

# %%
def check_rope(rope):
    """Check exercise 4c against complex multiplication, and the relative-position property."""
    name = rope.__name__
    torch.manual_seed(0)
    B, nh, T, hs = 2, 3, 12, 8
    x = torch.randn(B, nh, T, hs)
    try:
        y = rope(x)
    except NotImplementedError:
        return not_done(name)
    check(isinstance(y, torch.Tensor) and y.shape == x.shape, f"{name}(x) should return a tensor of x's shape {tuple(x.shape)}")
    check(torch.allclose(y.norm(dim=-1), x.norm(dim=-1), atol=1e-5), f"{name} changes the length of the vectors: it "
          "must only turn each pair, (x1 * cos - x2 * sin, x1 * sin + x2 * cos)")
    check(torch.allclose(y[:, :, 0], x[:, :, 0], atol=1e-6), f"{name} changes position 0, where every angle is "
          "0 * θ = 0: number the positions from 0")
    q, k = torch.randn(hs), torch.randn(hs)
    scores = rope(q.expand(1, 1, T, hs))[0, 0] @ rope(k.expand(1, 1, T, hs))[0, 0].T  # (T, T): q at m, k at n
    relative = all(torch.allclose(scores.diagonal(s), scores.diagonal(s)[:1].expand(T - abs(s)), atol=1e-4)
                   for s in range(-T + 1, T))
    check(relative, f"rope(q) · rope(k) depends on the positions m and n themselves, not only on m - n: turn "
          "queries and keys by the same angles t * θ_i, with t the position")
    half = hs // 2
    theta = 10000 ** (-2 * torch.arange(half) / hs)  # (hs/2,)
    turn = torch.polar(torch.ones(T, half), torch.arange(T)[:, None] * theta)  # (T, hs/2): e^(i t θ)
    z = torch.complex(x[..., :half], x[..., half:]) * turn  # (B, nh, T, hs/2)
    expected = torch.cat([z.real, z.imag], dim=-1)  # (B, nh, T, hs)
    if not torch.allclose(y, expected, atol=1e-5):
        zy = torch.complex(y[..., :half], y[..., half:])[:, :, 1] / torch.complex(x[..., :half], x[..., half:])[:, :, 1]
        got = zy.angle().mean(dim=(0, 1))  # (hs/2,) the angle each pair turned by at position 1
        raise CheckFailed(f"{name} turns the pairs by other angles: at position 1, pair i must turn by "
                          f"10000**(-2i/{hs}) = {[round(a, 4) for a in theta.tolist()]}, got "
                          f"{[round(a, 4) for a in got.tolist()]} (pair channel i with i + hs/2, as this exercise does)")
    return Passed(f"{name}: passed (turns pair i by t * 10000**(-2i/hs), like complex multiplication; "
                  "rope(q) · rope(k) depends only on m - n)")


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


class RoPEGPT(FastGPT):
    """FastGPT with rotary position embeddings in every attention layer and no learned position table."""

    def __init__(self, config, flash=True):
        super().__init__(config, flash)
        del self.position_embedding_table
        for block in self.blocks:
            block.sa = RotaryAttention(config, flash)
        self.blocks.apply(self._init_weights)

    def embed(self, idx):
        return self.token_embedding_table(idx)  # (B, T, C): the positions enter in the attention instead


# %%
torch.manual_seed(0)
rotary = RoPEGPT(toy).eval()
idx = torch.randint(0, 65, (2, 16))  # (B, T)
changed = torch.cat([idx[:, :8], (idx[:, 8:] + 1) % 65], dim=1)  # another future
class PositionlessGPT(FastGPT):
    def embed(self, idx):
        return self.token_embedding_table(idx)  # (B, T, C): the same model with its positions taken out


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
# Each variant is trained by notebook 05's `train_fast`, unchanged, with the settings of its CPU race
# (`RACES["cpu"]`: the same sizes, batch, steps, learning-rate schedule and seed, on any device), and
# then evaluated on the whole validation split. `train_fast` builds its model by the name `FastGPT`, so
# `race_variant` points that name at the variant for the length of one race.

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
        model, log, _ = train_fast(config, batch, iters, peak_lr, warmup, clip=clip)
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
      f"clip {race_clip}, seed 1337, on {device}")
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
# In the stored run, against the unchanged model's 1.6920, GELU ended 0.0577 worse, weight tying
# 0.0114 worse (with fewer parameters), and RoPE 0.0332 better (with no position table at all).
# Notebook 05's three seeds of the unchanged race land within 1.68–1.70, a spread of about 0.01: from
# one run each, GELU's loss and RoPE's gain are larger than that, tying's is not. None of the three
# costs much time on a CPU: all four runs took between 110.5 and 116.9 s, differences of the size
# this machine's noise makes.
#
# Notebook 05 gives the band in which correct CPU races land across seeds. A difference smaller than
# that band is wide, from one run of each model, is not evidence either way: run each variant with a
# few seeds (`train_fast(..., seed=...)`) before you believe it.
#
# ## Summary and conclusions [▶ 1:54:32](https://www.youtube.com/watch?v=kCc8FmEb1nY&t=6872s)
#
# - **Exercise 1**: the heads as a batch dimension compute exactly the lecture's multi-head
#   attention, in fewer and larger operations, which is how nanoGPT writes it.
# - **Exercise 2**: notebook 04's GPT, unchanged, learned to add: the data loader wrote fresh problems
#   at every step, held out a thousand for testing, reversed the answers and masked the questions.
# - **Exercise 3**: pretraining and finetuning are the same loop on different data with different
#   learning rates; whether pretraining pays depends on what is counted as its cost.
# - **Exercise 4**: each idea from a paper got a check that proves it does what the paper says, then
#   a race on equal terms.
#
# The lecture concludes where this course does: a decoder-only Transformer, the architecture of
# "Attention Is All You Need" without its encoder and cross-attention, trained on tiny Shakespeare,
# is the pretraining stage of a GPT, at toy scale. Everything beyond it (a tokenizer of word pieces,
# far more data and parameters, training on many GPUs, and the finetuning stages that turn a document
# completer into an assistant) builds on the pieces written here.
#
# ## More exercises
#
# 1. Extend exercise 2 to subtraction, then to multiplication (see above). How many digits can the
#    same model add before 99% is out of reach in 5 minutes?
# 2. In exercise 3, change the split of the same budget between pretraining and finetuning, or the
#    finetuning's learning rate. Is there a split at which the pretrained model beats the one trained
#    on tiny Shakespeare alone for the same compute?
# 3. Combine the ideas of exercise 4 (GELU, tying and RoPE together), and race the result with three
#    seeds against three seeds of the unchanged model.
