# %% [markdown]
# # 01 · From raw text to a trained bigram model
#
# This notebook is the first part of Andrej Karpathy's lecture
# ["Let's build GPT: from scratch, in code, spelled out"](https://www.youtube.com/watch?v=kCc8FmEb1nY),
# spelled out and checked: **0:07:52 to 0:42:13 of the video**. We read a text, turn its characters
# into integers, cut it into training examples, and train the simplest language model there is: one
# that predicts the next character from the current one alone. Every later notebook reuses these pieces.
#
# The notebook is standalone: on Colab or in a fresh folder it downloads its data itself.
# As a script: `python notebooks/01_bigram.py`.

# %%
import collections, hashlib, math, os, pathlib, platform, sys, tempfile, time, urllib.request
import torch
import torch.nn as nn
from torch.nn import functional as F
import matplotlib
if "ipykernel" not in sys.modules:
    matplotlib.use("Agg")  # as a script, figures are saved as PNG files instead of opening windows
import matplotlib.pyplot as plt

SMOKE = os.environ.get("COURSE_SMOKE") == "1"  # set by the tests: fewer steps, same printed facts
IN_NOTEBOOK = "ipykernel" in sys.modules        # False when run as a script
RUN_NAME = "01_bigram"                          # as a script, figures go to runs/01_bigram/

# %% [markdown]
# The next three cells are plumbing that every notebook carries so that it can stand alone: where
# the course's folders are, figures saved by scripts, the checks that tell you when a piece of code
# is wrong, the device, and the data. They are folded in Jupyter and Colab; unfold them to read.

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


# %% [markdown]
# ## The data [▶ 0:07:52](https://www.youtube.com/watch?v=kCc8FmEb1nY&t=472s)
#
# We train on *tiny Shakespeare*: a selection of Shakespeare's plays, about 40,000 lines in one 1 MB
# file. The cells above find it in `datasets/` or download it once, and check its SHA-256 so that
# everyone trains on exactly the same characters. To train on your own text instead, set the
# environment variable `COURSE_DATA` to the path of any UTF-8 text file. Anything that goes wrong
# ends in one line that says what to do.

# %%
text = load_text()
USING_SHAKESPEARE = not os.environ.get("COURSE_DATA")
if USING_SHAKESPEARE:
    assert len(text) == 1_115_394 and text.count("\n") == 40_000
print(f"length of the text in characters: {len(text):,}")
print(text[:250])

# %% [markdown]
# ## The vocabulary: characters as integers [▶ 0:09:28](https://www.youtube.com/watch?v=kCc8FmEb1nY&t=568s)
#
# A character-level model reads one character at a time, so the vocabulary is simply the set of
# characters that occur in the text, sorted. Tiny Shakespeare has 65 of them: the newline, the space,
# punctuation, digits (only `3`), and the letters.

# %%
chars = sorted(list(set(text)))
vocab_size = len(chars)
if USING_SHAKESPEARE:
    assert vocab_size == 65 and [c for c in chars if c.isdigit()] == ["3"]
print(''.join(chars))
print(f"vocab_size = {vocab_size}")

# %% [markdown]
# The *tokenizer* maps each character to its index in that list and back. Decoding an encoding must
# give back the text we started with.

# %%
stoi = {ch: i for i, ch in enumerate(chars)}
itos = {i: ch for i, ch in enumerate(chars)}
encode = lambda s: [stoi[c] for c in s]           # string -> list of integers
decode = lambda l: ''.join([itos[i] for i in l])  # list of integers -> string

print(encode("hii there"))
print(decode(encode("hii there")))
check(decode(encode(text[:10_000])) == text[:10_000], "decode(encode(s)) is not s: itos must invert stoi")

# %% [markdown]
# ### Other tokenizers
#
# Real GPTs do not read characters; they read *sub-word* tokens. A tokenizer such as byte-pair
# encoding (BPE) starts from characters and repeatedly merges the most frequent adjacent pair into a
# new token, so common pieces like `th`, `e ` or `the` become one token each. Here are 50 merges
# learned on the first 20,000 characters:

# %%
def bpe(ids, num_merges, first_new_id):
    """Byte-pair encoding: merge the most frequent adjacent pair num_merges times; returns ids and merges."""
    merges = {}
    for new_id in range(first_new_id, first_new_id + num_merges):
        pair = collections.Counter(zip(ids, ids[1:])).most_common(1)[0][0]  # the most frequent neighbours
        merged, i = [], 0
        while i < len(ids):
            if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
                merged.append(new_id)
                i += 2
            else:
                merged.append(ids[i])
                i += 1
        ids, merges[new_id] = merged, pair
    return ids, merges


sample_ids = encode(text[:20_000])
bpe_ids, merges = bpe(sample_ids, 50, vocab_size)
pieces = {i: c for i, c in itos.items()}
for new_id, (a, b) in merges.items():
    pieces[new_id] = pieces[a] + pieces[b]
print(f"vocabulary {vocab_size} -> {vocab_size + len(merges)}; {len(sample_ids):,} characters -> {len(bpe_ids):,} tokens")
print("the first ten merges:", [pieces[i] for i in list(merges)[:10]])

# %% [markdown]
# That is the trade-off. More tokens in the vocabulary make the sequences shorter, so a context of
# `block_size` tokens covers more text; but every token needs its own row in the embedding table and
# its own output in `lm_head`, and the model must learn what each one means from fewer examples.
# GPT-2's tokenizer has 50,257 tokens. With the `tiktoken` package installed and online, this cell
# counts its tokens for the same text; otherwise it says why it skipped.

# %% tags=["nbval-ignore-output"]
try:
    import tiktoken
    gpt2 = tiktoken.get_encoding("gpt2")  # downloads the GPT-2 vocabulary the first time
    print(f"GPT-2's tokenizer: vocabulary {gpt2.n_vocab:,}; {len(sample_ids):,} characters -> "
          f"{len(gpt2.encode(text[:20_000])):,} tokens")
except Exception as e:  # not installed, or offline
    print(f"skipped GPT-2's tokenizer ({type(e).__name__}: tiktoken is not installed, or its vocabulary could not be downloaded)")

# %% [markdown]
# We stay with characters: a vocabulary of 65, tiny tables, and a model small enough to train on a
# laptop, at the price of long sequences.
#
# The whole text becomes one long tensor of integers (`int64`, the type `nn.Embedding` and
# `cross_entropy` expect).

# %%
data = torch.tensor(encode(text), dtype=torch.long)
print(data.shape, data.dtype)
print(data[:100])

# %% [markdown]
# ## Train and validation splits
#
# The first 90% is for training, the last 10% for validation. The validation text is never trained
# on, so its loss tells us how well the model generalises rather than how well it memorises.

# %%
n = int(0.9 * len(data))  # first 90% will be train, rest val
train_data = data[:n]
val_data = data[n:]
print(f"train: {len(train_data):,} tokens, val: {len(val_data):,} tokens")
assert len(train_data) + len(val_data) == len(data)
check_split_sizes(train_data, val_data, 8)  # a text too short for one chunk stops here, with one line

# %% [markdown]
# ## One chunk holds `block_size` examples [▶ 0:14:27](https://www.youtube.com/watch?v=kCc8FmEb1nY&t=867s)
#
# We never feed the whole text at once; we feed chunks of at most `block_size` characters. A chunk of
# `block_size + 1` characters holds `block_size` training examples: after 1 character predict the 2nd,
# after 2 predict the 3rd, and so on. Training on every context length from 1 to `block_size` is
# what later lets the model start generating from a single character.

# %%
block_size = 8
x = train_data[:block_size]
y = train_data[1:block_size + 1]
for t in range(block_size):
    context = x[:t + 1]
    target = y[t]
    print(f"when input is {context.tolist()} the target: {target}")

# %% [markdown]
# ## Batches
#
# To keep the hardware busy we stack `batch_size` independent chunks, taken at random offsets, into a
# `(B, T)` tensor of inputs `xb`; the targets `yb` are the same chunks shifted one character to the
# right. The seed 1337 makes this batch the same as the lecture's, on any machine. (The lecture's
# `get_batch` reads `batch_size` and `block_size` from global variables; here they are arguments, so
# this cell prints the same batch even if you re-run it after the training configuration below.)

# %%
torch.manual_seed(1337)
batch_size = 4  # how many independent sequences will we process in parallel?
block_size = 8  # what is the maximum context length for predictions?


def get_batch(split, batch_size, block_size):
    """A random batch of inputs x and next-character targets y, both (batch_size, block_size), on the CPU."""
    data = train_data if split == 'train' else val_data
    ix = torch.randint(len(data) - block_size, (batch_size,))         # (B,) random offsets
    x = torch.stack([data[i:i + block_size] for i in ix])             # (B, T)
    y = torch.stack([data[i + 1:i + block_size + 1] for i in ix])     # (B, T)
    return x, y


# %%
xb, yb = get_batch('train', batch_size, block_size)
print('inputs:', xb.shape)
print(xb)
print('targets:', yb.shape)
print(yb)

# %% [markdown]
# **Check.** A learner's most common slip here is a target that is not shifted (`data[i:i+block_size]`
# twice), which trains a model to copy its input. `check_batch` takes a fresh batch and checks its
# shapes, that the targets are the inputs one step on, and that a row is a real chunk of the split.

# %%
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


check_batch(*get_batch('train', batch_size, block_size), train_data, batch_size, block_size)

# %% [markdown]
# That one batch holds `4 × 8 = 32` examples. Here are the eight of its first row:

# %%
for t in range(block_size):
    context = xb[0, :t + 1]
    target = yb[0, t]
    print(f"when input is {context.tolist()} the target: {target}")

# %% [markdown]
# ## The bigram language model [▶ 0:22:11](https://www.youtube.com/watch?v=kCc8FmEb1nY&t=1331s)
#
# The simplest model: a `vocab_size × vocab_size` table in which row `i` holds the scores
# (*logits*) for the character that follows character `i`. `nn.Embedding` is exactly such a
# table: indexing it with `idx` of shape `(B, T)` gives logits of shape `(B, T, C)` with
# `C = vocab_size`. The tokens do not talk to each other yet; that is what attention will add.
#
# The loss is the *cross-entropy*: turn each row of logits into probabilities with a softmax
# (`exp`, then divide by the sum), and take minus the log of the probability given to the character
# that really comes next, averaged over all positions. A perfect model scores 0; a model that gives
# the right character probability 1/65 scores ln 65. `F.cross_entropy` wants the classes in the
# second dimension, so we flatten the batch and time dimensions: logits `(B*T, C)` against targets
# `(B*T)`. (Unlike the lecture, `forward` always returns the logits as `(B, T, C)`.)
#
# `generate` extends a sequence one character at a time: the logits of the last position become
# probabilities (softmax), and `torch.multinomial` draws the next character from them, so likely
# characters come often and unlikely ones sometimes. It runs in `eval()` mode under
# `torch.no_grad()`; the lecture's version did neither, which is harmless for this model but matters
# for the later ones (layers that behave differently in training, and gradients that waste memory).

# %%
class BigramLanguageModel(nn.Module):
    """Predicts the next character from the current one with a single lookup table."""

    def __init__(self, vocab_size):
        super().__init__()
        self.token_embedding_table = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx, targets=None):
        logits = self.token_embedding_table(idx)  # (B, T, C)
        if targets is None:
            return logits, None
        B, T, C = logits.shape
        loss = F.cross_entropy(logits.view(B * T, C), targets.view(B * T))
        return logits, loss

    @torch.no_grad()
    def generate(self, idx, max_new_tokens):
        """Append max_new_tokens sampled tokens to idx (B, T), in eval mode."""
        was_training = self.training
        self.eval()
        for _ in range(max_new_tokens):
            logits, _ = self(idx)                                # (B, T, C)
            probs = F.softmax(logits[:, -1, :], dim=-1)          # (B, C) last time step only
            idx_next = torch.multinomial(probs, num_samples=1)   # (B, 1)
            idx = torch.cat((idx, idx_next), dim=1)              # (B, T+1)
        self.train(was_training)
        return idx


# %% [markdown]
# **Check.** `check_generate` runs `generate` on stand-in models whose next-character distribution we
# know exactly: one that always continues `3 → 4 → 5 …` (so the samples must follow the *last*
# position), and one with probabilities 0.5 / 0.3 / 0.2 (so the frequencies must match them, which
# an `argmax` would not). It also checks the shape, eval mode and that no gradients are kept.

# %%
class StandIn(nn.Module):
    """A stand-in model with a known next-token distribution: fixed probs, or 'last token + 1' when probs is None."""

    def __init__(self, vocab_size, probs=None, block_size=None):
        super().__init__()
        self.vocab_size, self.probs, self.seen = vocab_size, probs, []
        self.config = type("Config", (), {"block_size": block_size})()

    def forward(self, idx, targets=None):
        self.seen.append((idx.shape[1], self.training, torch.is_grad_enabled()))
        if self.probs is not None:  # (B, T, C) the same distribution at every position
            return self.probs.log().expand(*idx.shape, self.vocab_size).clone(), None
        return F.one_hot((idx + 1) % self.vocab_size, self.vocab_size).float() * 100, None  # next = token + 1


def check_generate(generate, block_size=None, sampling=False):
    """Check generate(model, idx, max_new_tokens[, temperature, top_k]) on stand-ins with known distributions."""
    chain = StandIn(10, block_size=block_size)
    out = generate(chain, torch.tensor([[3], [7]]), 5)
    check(out.shape == (2, 6), f"generate(idx of shape (2, 1), 5) gave {tuple(out.shape)}, not (2, 6): append one token per step")
    check(out[:, 0].tolist() == [3, 7], "generate changed the prompt: it must only append to idx")
    check(out.tolist() == [[3, 4, 5, 6, 7, 8], [7, 8, 9, 0, 1, 2]], "the samples do not follow the last "
          "position: sample from logits[:, -1, :], the prediction after the last token")
    check(all(not training and not grad for _, training, grad in chain.seen),
          "generate ran the model in training mode or with gradients: use model.eval() and torch.no_grad()")
    check(chain.training, "generate left the model in eval mode: put it back with model.train(was_training)")
    if block_size:
        chain.seen.clear()
        generate(chain, torch.zeros((1, 1), dtype=torch.long), 3 * block_size)
        longest = max(t for t, _, _ in chain.seen)
        check(longest <= block_size, f"generate fed the model {longest} tokens, more than block_size = {block_size}: "
              "crop the context to idx[:, -block_size:]")
    probs = torch.tensor([0.5, 0.3, 0.2])
    settings = [({}, probs)]
    if sampling:
        settings += [({"temperature": 0.5}, F.softmax(probs.log() / 0.5, -1)),
                     ({"temperature": 2.0}, F.softmax(probs.log() / 2.0, -1)),
                     ({"top_k": 1}, torch.tensor([1.0, 0.0, 0.0])),
                     ({"top_k": 2}, torch.tensor([0.625, 0.375, 0.0]))]
    for kwargs, expected in settings:
        torch.manual_seed(0)
        draws = generate(StandIn(3, probs, block_size), torch.zeros((4000, 1), dtype=torch.long), 1, **kwargs)[:, 1]
        freq = torch.bincount(draws, minlength=3) / len(draws)
        check((freq - expected).abs().max() < 0.04, f"with {kwargs or 'the defaults'} the samples come out with "
              f"frequencies {[round(f, 2) for f in freq.tolist()]}, not {[round(e, 2) for e in expected.tolist()]}: "
              + ("draw with torch.multinomial(softmax(logits), 1), not argmax" if not kwargs else
                 "divide the logits by the temperature, and keep only the top_k largest before the softmax"))
    return Passed("generate: passed")


check_generate(BigramLanguageModel.generate)

# %% [markdown]
# ## The loss before training
#
# If the untrained model spread its bets evenly over 65 characters, the loss would be
# −ln(1/65) = ln 65 ≈ 4.17. With an all-zero table it is exactly that. The random initial table
# (entries drawn from N(0, 1)) is confidently wrong, so its loss starts clearly higher: 4.8786 on this
# batch, the lecture's number.

# %%
torch.manual_seed(1337)
m = BigramLanguageModel(vocab_size)
logits, loss = m(xb, yb)
print(logits.shape)
print(f"initial loss {loss.item():.4f}, ln(vocab_size) = {math.log(vocab_size):.4f}")
check(math.log(vocab_size) < loss.item() < math.log(vocab_size) + 1.0,
      "the initial loss is not a little above ln(vocab_size): check the cross-entropy of (B*T, C) logits")

uniform = BigramLanguageModel(vocab_size)
nn.init.zeros_(uniform.token_embedding_table.weight)  # every logit equal: a uniform guess
check(math.isclose(uniform(xb, yb)[1].item(), math.log(vocab_size), rel_tol=1e-6),
      "a uniform model should score exactly ln(vocab_size): check the loss")

# %% [markdown]
# Flattening to `(B*T, C)` changes nothing about the value: it is the mean of the per-position
# losses. PyTorch can also take the classes in dimension 1 directly, `(B, C, T)`:

# %%
per_position = F.cross_entropy(logits.transpose(1, 2), yb, reduction='none')  # (B, T)
print(per_position.shape)
assert torch.allclose(per_position.mean(), loss)
assert torch.allclose(F.cross_entropy(logits.transpose(1, 2), yb), loss)

# %% [markdown]
# Sampling from the untrained model gives noise. We start from index 0 (the newline character).

# %% tags=["nbval-ignore-output"]
idx = torch.zeros((1, 1), dtype=torch.long)  # (B=1, T=1): a single newline
print(decode(m.generate(idx, max_new_tokens=100)[0].tolist()))

# %% [markdown]
# ## Training [▶ 0:34:53](https://www.youtube.com/watch?v=kCc8FmEb1nY&t=2093s)
#
# Now pick the fastest device on this machine (CUDA, else Apple's MPS, else the CPU) and train with
# AdamW. The bigram model is so small that every device gets the same configuration; smoke mode (used
# by the tests) only takes fewer steps. The cell prints the device and config that made the stored
# outputs below.

# %% tags=["nbval-ignore-output"]
device = pick_device()
batch_size = 32                        # sequences per step
block_size = 8                         # context length (the bigram only uses the last character)
max_iters = 100 if SMOKE else 3000     # optimisation steps
eval_interval = max_iters // 10        # steps between loss estimates
eval_iters = 20 if SMOKE else 200      # batches per loss estimate
learning_rate = 1e-2                   # a table this small tolerates large steps
print(describe_device(device))
print(f"config: batch_size={batch_size} block_size={block_size} max_iters={max_iters} "
      f"eval_interval={eval_interval} eval_iters={eval_iters} learning_rate={learning_rate}")

# %% [markdown]
# One optimisation step: compute the loss of a batch, clear the old gradients, backpropagate, and let
# the optimizer move every weight. `check_train_step` compares two steps of yours with plain gradient
# descent computed by hand from a *fresh* gradient each time; it fails if gradients pile up across
# steps (a missing `zero_grad`) or if the weights never move.

# %%
def train_step(model, optimizer, xb, yb):
    """One optimisation step on the batch (xb, yb); returns the loss before the step."""
    logits, loss = model(xb, yb)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


def check_train_step(train_step, model, batches, lr=0.1):
    """Two steps of train_step(model, optimizer, x, y) with SGD must equal gradient descent done by hand."""
    start = [p.detach().clone() for p in model.parameters()]
    reference = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for xb, yb in batches:
        train_step(model, optimizer, xb, yb)
        saved = [p.detach().clone() for p in model.parameters()]
        with torch.no_grad():  # the same step by hand: a fresh gradient at the reference weights
            for p, r in zip(model.parameters(), reference):
                p.copy_(r)
        grads = torch.autograd.grad(model(xb, yb)[1], list(model.parameters()))
        with torch.no_grad():
            for p, r, g, s in zip(model.parameters(), reference, grads, saved):
                r -= lr * g
                p.copy_(s)
    moved = any(not torch.equal(p, s) for p, s in zip(model.parameters(), start))
    check(moved, "the weights did not change: call loss.backward() and then optimizer.step()")
    worst = max((p - r).abs().max().item() for p, r in zip(model.parameters(), reference))
    check(worst < 1e-5, f"after two steps the weights are off by {worst:.2g} from gradient descent with fresh "
          "gradients: the gradients are accumulating; call optimizer.zero_grad() before loss.backward()")
    return Passed("train_step: passed")


torch.manual_seed(0)
check_train_step(train_step, BigramLanguageModel(vocab_size), [get_batch('train', 4, 8) for _ in range(2)])


# %% [markdown]
# A loss measured on a single batch is noisy. `estimate_loss` averages it over `eval_iters` batches of
# each split, in `eval()` mode and without gradients.

# %%
@torch.no_grad()
def estimate_loss(model):
    """Mean loss of model over eval_iters random batches of each split."""
    out = {}
    model.eval()
    for split in ['train', 'val']:
        losses = torch.zeros(eval_iters)
        for k in range(eval_iters):
            X, Y = get_batch(split, batch_size, block_size)
            logits, loss = model(X.to(device), Y.to(device))
            losses[k] = loss.item()
        out[split] = losses.mean().item()
    model.train()
    return out


# %% tags=["nbval-ignore-output"]
torch.manual_seed(1337)
model = BigramLanguageModel(vocab_size).to(device)
optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
history = []  # (step, train loss, val loss)
t0 = time.time()
for step in range(max_iters + 1):
    if step % eval_interval == 0:
        losses = estimate_loss(model)
        history.append((step, losses['train'], losses['val']))
        print(f"step {step:5d}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}")
    if step == max_iters:
        break
    xb, yb = get_batch('train', batch_size, block_size)
    train_step(model, optimizer, xb.to(device), yb.to(device))
train_seconds = time.time() - t0
print(f"trained {max_iters} steps in {train_seconds:.1f} s on {device}")

# %% [markdown]
# Step 0's estimate (about 4.7) is not the 4.8786 above: it averages `eval_iters` batches of 32
# sequences, where the earlier number came from one batch of 4. Both are well above ln 65, as they
# should be for this initialisation.

# %%
steps, train_losses, val_losses = zip(*history)
fig, ax = plt.subplots(figsize=(6, 3.5))
_ = ax.plot(steps, train_losses, label='train')
_ = ax.plot(steps, val_losses, label='val')
_ = ax.axhline(math.log(vocab_size), color='grey', linestyle=':', label=f'uniform guess, ln {vocab_size}')
_ = ax.set(xlabel='step', ylabel='loss (estimate)', title='Bigram model: loss while training')
_ = ax.legend()
show(fig, 'loss')

# %% [markdown]
# The curve flattens near 2.5: that is about as well as a model can do that sees one character of
# context. To report a number that is not an estimate, we also compute the loss over the *whole* of
# each split. The bigram model needs no context window, so each split can go in as one long sequence.
# The cell also prints the range a correct run lands in, measured with four seeds on a CPU: if yours
# falls outside it, something above differs from this notebook.

# %% tags=["nbval-ignore-output"]
@torch.no_grad()
def split_loss(model, data):
    """Loss of the bigram model over a whole split, fed as one sequence."""
    model.eval()
    _, loss = model(data[None, :-1].to(device), data[None, 1:].to(device))  # (1, N-1) each
    model.train()
    return loss.item()


EXPECTED_VAL = (2.48, 2.50)  # whole-split val of a correct default run on tiny Shakespeare (seeds 1337, 0, 1, 2)
final = {'train': split_loss(model, train_data), 'val': split_loss(model, val_data)}
print(f"whole-split loss after {max_iters} steps: train {final['train']:.4f}, val {final['val']:.4f}")
if USING_SHAKESPEARE and not SMOKE:
    low, high = EXPECTED_VAL
    print(f"a correct run lands at val {low:.2f}-{high:.2f}: {'yes' if low <= final['val'] <= high else 'NO, look for a mistake above'}")
    assert final['val'] < 2.6  # far below ln 65 = 4.17
else:
    print(f"(ln vocab_size = {math.log(vocab_size):.2f} is a uniform guess; a bigram model learns which character follows which, "
          "so on a text of your own a value well below it means it learned)")

# %% [markdown]
# And a sample from the trained model. It has learned which characters tend to follow which, so
# the output has the shape of a play (names, line breaks, short words), but no sense.

# %% tags=["nbval-ignore-output"]
torch.manual_seed(1337)
context = torch.zeros((1, 1), dtype=torch.long, device=device)  # (B=1, T=1)
print(decode(model.generate(context, max_new_tokens=500)[0].tolist()))

# %% [markdown]
# ## The same, as a script [▶ 0:38:00](https://www.youtube.com/watch?v=kCc8FmEb1nY&t=2280s)
#
# The lecture now copies this code into a file, `bigram.py`. Here that file already exists: every
# notebook is paired with a plain Python script holding the same cells, `notebooks/01_bigram.py`.
# `python notebooks/01_bigram.py` does everything above and saves the loss curve as a PNG file
# under `runs/01_bigram/` instead of showing it.
#
# ## Summary
#
# - The text became a tensor of 1,115,394 integers over a vocabulary of 65 characters, split 90/10.
#   Sub-word tokenizers trade a bigger vocabulary for shorter sequences; we keep characters.
# - A chunk of `block_size + 1` characters holds `block_size` examples; `get_batch` stacks random
#   chunks into `(B, T)` inputs and targets shifted by one.
# - The bigram model is a lookup table of next-character logits. It starts at a loss of 4.88, above
#   ln 65 ≈ 4.17, and trains to about 2.5; it samples in `eval()` mode under `torch.no_grad()`.
# - Each piece you might edit (`get_batch`, `generate`, `train_step`) has a check that fails, with a
#   sentence, on the mistakes learners make there.
#
# Its limit is that the tokens never look at each other. Notebook 02 shows the trick that lets
# them: a weighted average of the past, computed with one matrix multiplication.
#
# ## Exercises
#
# 1. Train on your own text: `COURSE_DATA=path/to/file.txt python notebooks/01_bigram.py`. How large
#    is your vocabulary, and what loss does the bigram reach?
# 2. Count the bigrams in the training split directly (a 65×65 table of counts, then normalise the
#    rows). What validation loss does that table give, and how close is the trained model to it?
# 3. Try `learning_rate = 1e-3` with the same number of steps. What happens to the curve, and why?
