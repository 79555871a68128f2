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
# As a script: `python notebooks/01_bigram.py`. The course's tests run every notebook in *smoke mode*
# (the environment variable `COURSE_SMOKE=1`): a quick run with fewer training steps that must print
# the same facts; the stored outputs come from a full run.

# %%
import collections, hashlib, math, os, pathlib, platform, sys, tempfile, time, urllib.request
import torch
import torch.nn as nn
from torch.nn import functional as F
import matplotlib
if "ipykernel" not in sys.modules:
    matplotlib.use("Agg")  # as a script, figures are saved as PNG files instead of opening windows
import matplotlib.pyplot as plt

SMOKE = os.environ.get("COURSE_SMOKE") == "1"  # smoke mode, set by the tests: fewer steps, same printed facts
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

def check_split(text, encode, train_data, val_data, fraction=0.9):
    """Check the split: train_data is the encoded text's first 90% and val_data the rest, both in order."""
    data = torch.tensor(encode(text), dtype=torch.long)  # (N,) the reference, encoded afresh
    n = len(train_data)
    check(n + len(val_data) == len(data), f"the splits hold {n:,} + {len(val_data):,} tokens, not the text's "
          f"{len(data):,}: cut data once, train_data = data[:n] and val_data = data[n:]")
    check(abs(n - fraction * len(data)) <= 1, f"the training split is {n / len(data):.1%} of the text, not "
          f"{fraction:.0%}: n = int({fraction} * len(data)), train_data = data[:n]")
    check(torch.equal(train_data.cpu(), data[:n]) and torch.equal(val_data.cpu(), data[n:]), "train_data and "
          "val_data are not the text's head and tail in order: split data[:n] / data[n:] without shuffling "
          "(validation must be text the model never saw, read in its order)")
    return Passed(f"split: passed (the first {n:,} tokens train, the last {len(val_data):,} validate)")


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
ids = attempt("encode(text[:10_000])", encode, text[:10_000], hint="every character of the text needs a key in stoi")
check(all(0 <= i < vocab_size for i in ids), f"encode gives indices outside 0 .. vocab_size - 1 = {vocab_size - 1}: "
      "number the characters from 0, as enumerate(chars) does")
check(attempt("decode(encode(text[:10_000]))", decode, ids, hint="every index encode gives needs a key in itos: "
              "build stoi and itos from the same enumerate(chars)") == text[:10_000], "decode(encode(s)) is not s: itos must invert stoi")

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


# %%
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
# its own output in the model's last layer (`lm_head`, the *language-model head*, which turns a
# token's vector into scores for the next token; notebook 03 adds it), and the model must learn
# what each one means from fewer examples. GPT-2's tokenizer has 50,257 tokens. With the `tiktoken` package installed and online, this cell
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
# on, so its loss tells us how well the model generalises rather than how well it memorises. The
# split must keep the text in order: shuffled characters would leak every passage into both halves.
# `check_split` (folded above) compares both halves with the text encoded afresh.

# %%
n = int(0.9 * len(data))  # first 90% will be train, rest val
train_data = data[:n]
val_data = data[n:]
print(f"train: {len(train_data):,} tokens, val: {len(val_data):,} tokens")
check_split_sizes(train_data, val_data, 8)  # a text too short for one chunk stops here, with one line
check_split(text, encode, train_data, val_data)  # the text's head and tail, in order

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
# twice), which trains a model to copy its input. `check_batch` (folded below, like every check's
# code: unfold it once you have tried) takes a fresh batch and checks its shapes, that the targets
# are the inputs one step on, that its rows are real chunks of the split, and that they differ. It
# also calls `get_batch` itself: once with `torch.randint` forced to the two ends of its range (so an
# offset that runs past the end of the split shows now, not once in a million batches), and three
# times more, which must not give the same batch.

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


# %%
check_batch(*attempt("get_batch('train', batch_size, block_size)", get_batch, 'train', batch_size, block_size),
            train_data, batch_size, block_size, draw=lambda: get_batch('train', batch_size, block_size))

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


# %% [markdown]
# `generate` extends a sequence one character at a time: the logits of the last position become
# probabilities (softmax), and `torch.multinomial` draws the next character from them, so likely
# characters come often and unlikely ones sometimes. It runs in `eval()` mode under
# `torch.no_grad()`; the lecture's version did neither, which is harmless for this model but matters
# for the later ones (layers that behave differently in training, and gradients that waste memory).
# The lecture writes it inside the class; here it has a cell of its own and is attached to the class
# after, so `m.generate(idx, max_new_tokens)` works as in the video (run this cell again whenever you
# run the class's cell again: a new class has no `generate` yet).

# %%
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


BigramLanguageModel.generate = generate  # a method of the class, as if written inside it


# %% [markdown]
# **Check.** `check_generate` runs `generate` on stand-in models whose next-character distribution we
# know exactly: one that always continues `3 → 4 → 5 …` (so the samples must follow the *last*
# position), and one with probabilities 0.5 / 0.3 / 0.2 (so the frequencies must match them, which
# an `argmax` would not). It also checks the shape, that the model runs in eval mode without
# gradients, and that `generate` hands the model back in the mode it found it (training or eval).
# First the cell checks that `m.generate` is a method of the model, then runs `check_generate` on it.
# The folded cell also holds the checks of the training step and of the loss estimate used below.

# %% jupyter={"source_hidden": true} cellView="form"
#@title Plumbing: checks of sampling and training steps (the same in every notebook that carries it)
class StandIn(nn.Module):
    """A stand-in model with a known next token: fixed probs, else a function of the whole context it is fed."""

    def __init__(self, vocab_size, probs=None, block_size=None, window=False):
        super().__init__()
        self.vocab_size, self.probs, self.window, self.seen = vocab_size, probs, window, []
        self.config = type("Config", (), {"block_size": block_size})()

    def next_token(self, idx):
        """(B, T) -> (B, T): the token that must follow each position ('token + 1', or a sum over the window)."""
        return (idx.cumsum(1) + 1 if self.window else idx + 1) % self.vocab_size

    def forward(self, idx, targets=None):
        self.seen.append((idx.shape[1], self.training, torch.is_grad_enabled()))
        if self.probs is not None:  # (B, T, C) the same distribution at every position
            return self.probs.log().expand(*idx.shape, self.vocab_size).clone(), None
        return F.one_hot(self.next_token(idx), self.vocab_size).float() * 100, None  # (B, T, C) all but certain

def check_generate(generate, block_size=None, sampling=False):
    """Check generate(model, idx, max_new_tokens[, temperature, top_k]) on stand-ins with known distributions."""
    def run(model, idx, n, **kw):
        hint = ("torch.multinomial needs probabilities, F.softmax(logits[:, -1, :], dim=-1) of shape (B, C); the model gets "
                "every row of idx (a crop cuts only the time axis, dim 1), and torch.cat joins on dim=1") if "top_k" not in kw else (f"top_k = {kw['top_k']} is more than the 3 characters here: "
                "torch.topk takes at most logits.size(-1)") if kw["top_k"] > 3 else (f"the top_k = {kw['top_k']} largest "
                "logits must survive the mask (only those below the k-th largest, kept (B, 1) to compare with each row, "
                "become -inf), else every logit is -inf and the softmax gives nan")
        said = "".join(f", {k}={v}" for k, v in kw.items())
        return attempt(f"generate(model, idx of shape {tuple(idx.shape)}, {n}{said})", generate, model, idx, n, **kw, hint=hint)
    probs = torch.tensor([0.5, 0.3, 0.2])
    settings = [({}, probs)] + ([({"temperature": 0.5}, F.softmax(probs.log() / 0.5, -1)),
                                 ({"temperature": 2.0}, F.softmax(probs.log() / 2.0, -1)),
                                 ({"top_k": 1}, torch.tensor([1.0, 0.0, 0.0])),
                                 ({"top_k": 2}, torch.tensor([0.625, 0.375, 0.0])), ({"top_k": 5}, probs)] if sampling else [])
    for kwargs, expected in settings:
        torch.manual_seed(0)
        out = run(StandIn(3, probs, block_size), torch.zeros((100_000, 1), dtype=torch.long), 1, **kwargs)
        check(out.shape == (100_000, 2), f"generate(idx of shape (100000, 1), 1) gave {tuple(out.shape)}, not (100000, 2): "
              "append one token per step")
        check(not out[:, 0].any(), "generate(idx, 1) did not keep the prompt first: each new token goes after it")
        freq = torch.bincount(out[:, 1], minlength=3) / len(out)  # (3,) of the 100,000 samples
        check((freq - expected).abs().max() < 0.008, f"with {kwargs or 'the defaults'} the samples come out with "
              f"frequencies {[round(f, 3) for f in freq.tolist()]}, not {[round(e, 3) for e in expected.tolist()]}: " + (
                  "draw with torch.multinomial(F.softmax(logits[:, -1, :], dim=-1), 1): not argmax, no temperature, and "
                  "the softmax over the last dimension" if not kwargs else
                  "divide the logits by the temperature, and keep only the top_k largest before the softmax"))
    chain = StandIn(10, block_size=block_size)
    out = run(chain, torch.tensor([[3], [7]]), 5)
    check(out.shape == (2, 6), f"generate(idx of shape (2, 1), 5) gave {tuple(out.shape)}, not (2, 6): append one token per step")
    check(out[:, 0].tolist() == [3, 7], "generate changed the prompt: it must only append to idx")
    check(out.tolist() == [[3, 4, 5, 6, 7, 8], [7, 8, 9, 0, 1, 2]], "the samples do not follow the last "
          "position: sample from logits[:, -1, :], the prediction after the last token")
    modes = [(training, grad) for _, training, grad in chain.seen]
    why = ("gradients were on, so decorate it with @torch.no_grad()" if any(grad for _, grad in modes) else "it was in "
           "training mode from the first step, so call model.eval() before the loop" if modes[0][0] else "it put the model "
           "back in training mode before it had finished, so restore the mode after the loop, not inside it")
    check(not any(training or grad for training, grad in modes), f"generate ran the model in training mode or with gradients: {why}")
    check(chain.training, "generate left a model in training mode in eval mode: put it back with model.train(was_training)")
    run(chain.eval(), torch.tensor([[3]]), 2)
    check(not chain.training, "generate left a model in eval mode in training mode: restore the mode it found, "
          "was_training = model.training first, model.train(was_training) last")
    if block_size:  # past block_size, against a slow reference that feeds the last block_size tokens at every step
        window, n = StandIn(11, block_size=block_size, window=True), 3 * block_size
        reference = prompt = torch.tensor([[1, 2], [3, 4]])  # (B, T)
        out = run(window, prompt, n)
        longest = max(t for t, _, _ in window.seen)
        check(longest <= block_size, f"generate fed the model {longest} tokens, more than block_size = {block_size}: "
              "crop the context to idx[:, -block_size:]")
        check(out.shape == (2, 2 + n), f"generate(idx of shape (2, 2), {n}) with block_size = {block_size} gave "
              f"{tuple(out.shape)}, not (2, {2 + n}): return the whole sequence, and crop only what the model is fed "
              "(idx_cond), never idx itself")
        for _ in range(n):
            reference = torch.cat((reference, window.next_token(reference[:, -block_size:])[:, -1:]), dim=1)
        wrong = [s for s in range(n) if not torch.equal(out[:, 2 + s], reference[:, 2 + s])]
        check(not wrong, f"from new token {wrong[0] + 1 if wrong else 0} on, generate differs from a reference that "
              f"feeds the model the last block_size = {block_size} tokens: crop to the most recent, idx[:, -block_size:]")
    return Passed("generate: passed")

def modes_seen(model, call, *args, hint="look at the shapes of the tensors in that piece"):
    """call(*args), and the (training, gradients on) of every forward pass of model during it."""
    seen = []
    hook = model.register_forward_pre_hook(lambda module, inputs: seen.append((module.training, torch.is_grad_enabled())))
    try:
        attempt(f"{getattr(call, '__name__', 'it')}(model, ...)", call, *args, hint=hint)
    finally:
        hook.remove()
    return seen

def check_evaluation(evaluate, model, *args, splits=None, block_size=None):
    """evaluate(model, *args) must run model in eval mode without gradients, hand it back in training mode, feed it
    targets one step on (rows of at most block_size, if given), return means of its losses (of both splits, if given)."""
    name, calls, result = getattr(evaluate, "__name__", "the function"), [], []
    run = lambda *a: result.append(evaluate(*a))
    run.__name__ = name
    hook = model.register_forward_hook(lambda m, a, kw, out: calls.append(
        (a[0], a[1] if len(a) > 1 else kw.get("targets"), out[1] if isinstance(out, tuple) else None)), with_kwargs=True)
    try:
        seen = modes_seen(model.train(), run, model, *args)
    finally:
        hook.remove()
    check(seen, f"{name} never called the model")
    check(not any(training for training, _ in seen), f"{name} ran the model in training mode, so dropout was on "
          "while measuring: call model.eval() before the loop")
    check(not any(grad for _, grad in seen), f"{name} ran the model with gradients on, keeping every activation: "
          "decorate it with @torch.no_grad()")
    check(model.training, f"{name} left the model in eval mode, so training after it would run without dropout: "
          "end with model.train()")
    for x, y, _ in calls:
        check(block_size is None or x.shape[-1] <= block_size, f"{name} fed the model rows of {x.shape[-1]} tokens, more "
              f"than block_size = {block_size}, so a model with block_size positions would fail: cut the data into rows "
              "of block_size consecutive tokens")
        check(y is None or (y.shape == x.shape and torch.equal(x[..., 1:], y[..., :-1])), f"{name} fed the model "
              "targets that are not its inputs one step on (y[:, :-1] must equal x[:, 1:]): for x = data[i:i+T] the "
              "targets are y = data[i+1:i+T+1]")
    losses = [float(loss) for _, _, loss in calls if isinstance(loss, torch.Tensor) and loss.numel() == 1]
    values = result[0].values() if isinstance(result[0], dict) else [result[0]]
    for v in [float(v) for v in values if isinstance(v, (int, float, torch.Tensor))] if losses else []:
        check(min(losses) - 1e-4 <= v <= max(losses) + 1e-4, f"{name} returned {v:.4f}, outside the range of the "
              f"losses the model gave it ({min(losses):.4f} to {max(losses):.4f}), so it is not their mean: divide "
              "their sum by the number of losses (or chunks) added up")
    if splits is not None:
        sample = [x.cpu() for x, _, _ in calls[::max(1, len(calls) // 8)]]
        absent = lambda x, data: any(not found_in(r, data.cpu()) for r in x.reshape(-1, x.shape[-1])[:8])
        for data, other, split in ((splits[1], splits[0], "validation"), (splits[0], splits[1], "training")):
            check(any(absent(x, other) for x in sample), f"{name} never fed the model a batch of the {split} "
                  "split: fetch each split's batches with the loop's split, get_batch(split, ...)")
    return Passed(f"{name}: passed (eval mode and no gradients inside, training mode after)")

def found_in(row, data):
    """Whether the 1-D tensor row occurs in data."""
    found = torch.arange(len(data) - len(row) + 1)
    for j, c in enumerate(row.tolist()):
        found = found[data[found + j] == c]
    return len(found) > 0

def check_train_step(train_step, model, batches, lr=0.1):
    """train_step(model, optimizer, x, y) with SGD at two learning rates, over several steps, must equal gradient
    descent by hand from a fresh gradient at every step, and keep the model in training mode."""
    start, params = {k: v.detach().clone() for k, v in model.state_dict().items()}, list(model.parameters())
    drops = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    rates, steps = [m.p for m in drops], list(batches) * 2
    try:
        for m in drops:
            m.p = 0.0  # the same forward pass in the learner's step and in ours
        for rate in (lr, lr / 4):
            model.load_state_dict(start)
            first = [p.detach().clone() for p in params]
            fresh, piled, total = list(first), list(first), [0] * len(params)  # by hand; with gradients piling up
            for xb, yb in steps:
                optimizer, returned, order = torch.optim.SGD(params, lr=rate), [], []
                optimizer.register_step_pre_hook(lambda *a: order.append(  # "0": step() found every gradient empty
                    "0" if all(p.grad is None or not p.grad.any() for p in params) else "g"))
                with torch.no_grad():
                    before = model(xb, yb)[1].item()
                run, pre, fed = lambda *a: returned.append(train_step(*a)), [p.detach().clone() for p in params], []
                run.__name__ = "train_step"
                landed = [p.register_post_accumulate_grad_hook(lambda p: order.append("b")) for p in params] + [
                    model.register_forward_pre_hook(lambda m, a, kw: fed.append((*a, *kw.values())), with_kwargs=True)]
                try:
                    seen = modes_seen(model.train(), run, model, optimizer, xb, yb,
                                      hint="one forward pass, then zero_grad, loss.backward() and optimizer.step(), once each")
                finally:
                    _ = [h.remove() for h in landed]
                same = lambda a, b: isinstance(a, torch.Tensor) and a.shape == b.shape and bool((a == b).all())
                check(not (fed and len(fed[0]) > 1 and same(fed[0][0], yb) and same(fed[0][1], xb)), "train_step fed the "
                      "model (yb, xb): it takes the inputs first and their targets second, else it learns the character before")
                events = "".join(order)
                stepped = events.count("0") + events.count("g")  # calls of optimizer.step()
                check(stepped == 1 or not stepped and all(torch.equal(p, q) for p, q in zip(params, pre)), "train_step "
                      f"called step() of the optimizer it was given {stepped} times, not once: " + (
                          "use the optimizer passed in, not one of its own" if not stepped else "call optimizer.step() once per step"))
                got = returned[0]
                one = isinstance(got, (float, torch.Tensor)) and torch.as_tensor(got).numel() == 1
                said = (f"{torch.as_tensor(got).item():.4f}" if one else f"a tensor of shape {tuple(got.shape)}" if
                        isinstance(got, torch.Tensor) else "None" if got is None else f"a {type(got).__name__}")
                check(one and abs(torch.as_tensor(got).detach().item() - before) < 1e-4,
                      f"train_step returned {said}, not the loss before its step ({before:.4f}): return "
                      "loss (a tensor or a float), which the training loop records")
                check(model.training and all(t for t, _ in seen), "train_step ran or left the model in eval mode, so "
                      "dropout is off while training: leave model.eval() to the loss estimate")
                check("0" not in events or "b" not in events[:events.index("0")], "the weights did not change because "
                      "optimizer.step() found the gradients of loss.backward() already zeroed: call optimizer.zero_grad() "
                      "before loss.backward(), not between loss.backward() and optimizer.step()")
                saved = [p.detach().clone() for p in params]
                for weights in (fresh, piled):
                    with torch.no_grad():
                        _ = [p.copy_(w) for p, w in zip(params, weights)]
                    grads = torch.autograd.grad(model(xb, yb)[1], params)
                    total = [t + g for t, g in zip(total, grads)] if weights is piled else total
                    weights[:] = [w - rate * g for w, g in zip(weights, total if weights is piled else grads)]
                with torch.no_grad():
                    _ = [p.copy_(s) for p, s in zip(params, saved)]
            check(any(not torch.equal(p, f) for p, f in zip(params, first)),
                  "the weights did not change: call loss.backward() and then optimizer.step()")
            worst = max((p - w).abs().max().item() for p, w in zip(params, fresh))
            accumulating = max((p - w).abs().max().item() for p, w in zip(params, piled)) < 1e-5
            check(worst < 1e-5, f"after {len(steps)} steps at lr = {rate:g} the weights are off by {worst:.2g} from "
                  "gradient descent with a fresh gradient at every step: " + (
                      "the gradients are accumulating; call optimizer.zero_grad() before loss.backward()" if accumulating
                      else "call optimizer.zero_grad(), loss.backward() and optimizer.step() once each, in that order"))
    finally:
        for m, p in zip(drops, rates):
            m.p = p
        model.load_state_dict(start)
    return Passed("train_step: passed")


# %%
probe = BigramLanguageModel(vocab_size)
method = getattr(probe, "generate", None)  # what m.generate is for a model m: a function, with m as its self
check(getattr(method, "__self__", None) is probe, "m.generate is not a method of the model: run generate's cell after "
      "the class's cell; its last line attaches the function to the class")
check_generate(method.__func__)

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
logits, loss = attempt("m(xb, yb)", m, xb, yb, hint="flatten for the loss: logits.view(B*T, C), targets.view(B*T)")
print(logits.shape)
print(f"initial loss {loss.item():.4f}, ln(vocab_size) = {math.log(vocab_size):.4f}")
check(logits.shape == (*xb.shape, vocab_size), f"the logits have shape {tuple(logits.shape)}, not (B, T, C) = "
      f"{(*xb.shape, vocab_size)}: return the table's rows, logits = self.token_embedding_table(idx)")
check(torch.allclose(loss, F.cross_entropy(logits.view(-1, vocab_size), yb.view(-1))), "the loss is not the mean "
      "cross-entropy of the logits against the targets: F.cross_entropy(logits.view(B*T, C), targets.view(B*T))")
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
# AdamW, the optimizer of the lecture: Adam (each weight's step scaled by running averages of its
# gradient and of its square) with *weight decay*, a small pull of every weight toward zero. The
# bigram model is so small that every device gets the same configuration; smoke mode (used
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
# the optimizer move every weight. `check_train_step` runs four steps of yours with plain gradient
# descent (SGD) at two learning rates and compares them with the same steps computed by hand from a
# *fresh* gradient each time; it fails if gradients pile up across steps (a missing `zero_grad`),
# if the steps come in the wrong order, if the weights never move, if the optimizer it is given does
# not take exactly one step, if it returns something other than the loss, or if the model leaves training mode.

# %%
def train_step(model, optimizer, xb, yb):
    """One optimisation step on the batch (xb, yb); returns the loss before the step."""
    logits, loss = model(xb, yb)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


torch.manual_seed(0)
check_train_step(train_step, BigramLanguageModel(vocab_size), [get_batch('train', 4, 8) for _ in range(2)])


# %% [markdown]
# A loss measured on a single batch is noisy. `estimate_loss` averages it over `eval_iters` batches of
# each split, in `eval()` mode and without gradients, and then puts the model back into training
# mode: a model left in eval mode would train on without dropout (a silent slip, once the model
# has dropout). `check_evaluation` watches every call of the model to check all three, and more: the
# targets it feeds are the inputs one step on, what it returns is a mean of the losses it saw, and
# both splits were measured.

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


check_evaluation(estimate_loss, BigramLanguageModel(vocab_size).to(device), splits=(train_data, val_data))

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


check_evaluation(split_loss, BigramLanguageModel(vocab_size).to(device), val_data[:1000])
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
