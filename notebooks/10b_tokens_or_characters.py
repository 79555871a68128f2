# %% [markdown]
# # 10b · Tokens or characters: the same GPT, the same seconds, in bits per character
#
# Notebook 01 gives the GPT characters and says in a sentence what a sub-word tokenizer would do;
# notebook 10 builds that tokenizer, byte-level BPE as GPT-2 and GPT-4 have it. This notebook asks
# what it does to the model: notebook 05's race model trained for the same wall-clock seconds on
# characters, on 512 BPE tokens and on 2,048, over three seeds, compared in *bits per character* on
# the same validation text. Read it after notebooks 05 and 10; the end of Karpathy's tokenizer
# lecture ([▶ 1:43:27](https://www.youtube.com/watch?v=zduSFxRajkE&t=6207s)) asks the same question.
#
# Standalone (it downloads its data and trains its own tokenizers, in seconds) and a script:
# `python notebooks/10b_tokens_or_characters.py`. It needs `regex` (`pip install regex`; Colab has it).

# %%
import collections, hashlib, math, os, pathlib, platform, statistics, sys, tempfile, time, urllib.request
from dataclasses import dataclass
import torch
import torch.nn as nn
from torch.nn import functional as F
import matplotlib
if "ipykernel" not in sys.modules:
    matplotlib.use("Agg")  # as a script, figures are saved as PNG files instead of opening windows
import matplotlib.pyplot as plt
import importlib.util
if not importlib.util.find_spec("regex"):
    raise SystemExit("error: this notebook needs regex for its tokenizer's split pattern: pip install regex")
import regex  # unlike Python's own `re`, it knows \p{L} (any letter) and \p{N} (any digit)

SMOKE = os.environ.get("COURSE_SMOKE") == "1"  # set by the tests: tiny sizes and few steps
IN_NOTEBOOK = "ipykernel" in sys.modules        # False when run as a script
RUN_NAME = "10b_tokens_or_characters"           # as a script, figures go to runs/10b_tokens_or_characters/

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
# %% tags=["nbval-ignore-output"]
device = pick_device()
print(describe_device(device))

# %% [markdown]
# ## 1. The text and its tokenizers
#
# Notebook 10's cut: the tokenizers, like the models, learn from the first 90% only; the last 10%
# is the validation text every model below is scored on (the characters of notebook 05's
# validation split).

# %%
text = load_text()
n = int(0.9 * len(text))  # first 90% will be train, rest val
train_text, val_text = text[:n], text[n:]
print(f"{len(text):,} characters: train {len(train_text):,}, val {len(val_text):,}")

# %% [markdown]
# The tokenizer is notebook 10's `RegexTokenizer` (GPT-4's split pattern, then BPE inside each
# chunk), copied unchanged into the folded cell below; notebook 10 builds it piece by piece and
# checks it against `tiktoken`, and a test holds the two copies equal.

# %% jupyter={"source_hidden": true} cellView="form"
#@title Notebook 10's RegexTokenizer and what it needs, copied unchanged (folded)
GPT4_SPLIT_PATTERN = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""


def get_stats(ids, counts=None):
    """{pair: count} of every adjacent pair in ids, added into counts if one is given."""
    counts = {} if counts is None else counts
    for pair in zip(ids, ids[1:]):  # every adjacent pair, overlapping ones too
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def merge(ids, pair, idx):
    """ids with every occurrence of pair, read from the left, replaced by the new token idx."""
    newids, i = [], 0
    while i < len(ids):
        if i < len(ids) - 1 and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            newids.append(idx)
            i += 2  # both tokens of the pair are used up
        else:
            newids.append(ids[i])
            i += 1
    return newids


class BasicTokenizer:
    """Byte-level BPE over the whole text, as minbpe's BasicTokenizer: merges, vocab, train, encode, decode."""

    def __init__(self):
        self.merges = {}  # (int, int) -> int: the new id of each merged pair, in training order
        self.vocab = {idx: bytes([idx]) for idx in range(256)}  # int -> bytes: what each id stands for

    def train(self, text, vocab_size, verbose=False):
        """Merge the most frequent pair vocab_size - 256 times, starting from the UTF-8 bytes of text."""
        ids = list(text.encode("utf-8"))  # (N,) integers 0..255
        for idx in range(256, vocab_size):
            stats = get_stats(ids)
            if not stats:
                break  # the whole text is one token: nothing is left to merge
            pair = max(stats, key=stats.get)  # the most frequent pair (on a tie, the first one counted)
            ids = merge(ids, pair, idx)
            self.merges[pair] = idx
            self.vocab[idx] = self.vocab[pair[0]] + self.vocab[pair[1]]
            if verbose:
                print(f"merge {idx - 255}/{vocab_size - 256}: {pair} -> {idx} {self.vocab[idx]} ({stats[pair]:,} times)")


def decode(self, ids):
    """The text of a list of token ids: their bytes joined, then read as UTF-8 (a cut character becomes '�')."""
    text_bytes = b"".join(self.vocab[idx] for idx in ids)
    return text_bytes.decode("utf-8", errors="replace")


def _encode_chunk(self, text_bytes):
    """The ids of some bytes: the earliest merge among the pairs present, again and again, until none applies."""
    ids = list(text_bytes)
    while len(ids) >= 2:
        stats = get_stats(ids)
        pair = min(stats, key=lambda p: self.merges.get(p, float("inf")))  # the lowest merge id
        if pair not in self.merges:
            break  # no pair left has a merge
        ids = merge(ids, pair, self.merges[pair])
    return ids


def encode(self, text):
    """The token ids of text."""
    return self._encode_chunk(text.encode("utf-8"))


BasicTokenizer.decode = decode
BasicTokenizer._encode_chunk = _encode_chunk
BasicTokenizer.encode = encode


def chunk_stats(words, counts):
    """{pair: count} over the words, each pair as often as its chunk occurs, and {pair: the words that hold it}."""
    stats, where = {}, collections.defaultdict(set)
    for w, ids in enumerate(words):
        for pair in zip(ids, ids[1:]):
            stats[pair] = stats.get(pair, 0) + counts[w]
            where[pair].add(w)
    return stats, where


def merge_everywhere(pair, idx, words, counts, stats, where):
    """Merge pair into idx in every word (a different chunk's ids) that holds it, keeping stats and where up to date."""
    for w in where.pop(pair):
        ids, count = words[w], counts[w]
        for p in zip(ids, ids[1:]):  # take this word's pairs out of the stats...
            stats[p] -= count
            if stats[p] == 0:
                del stats[p]
        words[w] = ids = merge(ids, pair, idx)
        for p in zip(ids, ids[1:]):  # ...and put the merged word's pairs back in
            stats[p] = stats.get(p, 0) + count
            where[p].add(w)


class RegexTokenizer(BasicTokenizer):
    """BPE inside the chunks of a split pattern, with special tokens, as minbpe's RegexTokenizer."""

    def __init__(self, pattern=GPT4_SPLIT_PATTERN):
        super().__init__()
        self.pattern, self.compiled_pattern = pattern, regex.compile(pattern)
        self.special_tokens, self.inverse_special_tokens = {}, {}  # str -> int, and int -> str

    def train(self, text, vocab_size, verbose=False):
        """BPE over the text's chunks: each different chunk once, weighted by its count; counts updated, not redone."""
        chunks = collections.Counter(self.compiled_pattern.findall(text))  # {chunk: how often it occurs}
        words, counts = [list(chunk.encode("utf-8")) for chunk in chunks], list(chunks.values())
        stats, where = chunk_stats(words, counts)  # {pair: weighted count}, {pair: the words that hold it}
        for idx in range(256, vocab_size):
            if not stats:
                break  # every chunk is a single token: nothing is left to merge
            pair = max(stats, key=stats.get)
            merge_everywhere(pair, idx, words, counts, stats, where)
            self.merges[pair] = idx
            self.vocab[idx] = self.vocab[pair[0]] + self.vocab[pair[1]]


def encode_ordinary(self, text):
    """The token ids of text, any special token in it read as ordinary text: each chunk of the pattern encoded alone."""
    ids = []
    for chunk in self.compiled_pattern.findall(text):
        ids.extend(self._encode_chunk(chunk.encode("utf-8")))
    return ids


RegexTokenizer.encode = encode_ordinary  # notebook 10's special tokens are not needed here


# %% [markdown]
# Both vocabularies are trained from scratch on the training split. BPE makes one merge after
# another, so the 512-token vocabulary must be the first 256 merges of the 2,048-token one.

# %% tags=["nbval-ignore-output"]
t0 = time.perf_counter()
tokenizer = RegexTokenizer()
tokenizer.train(train_text, 2048)
tokenizer_512 = RegexTokenizer()
tokenizer_512.train(train_text, 512)
print(f"2,048 and 512 tokens trained in {time.perf_counter() - t0:.1f} s (pure Python)")

# %%
check(list(tokenizer.merges.items())[:256] == list(tokenizer_512.merges.items()),
      "the 512-token vocabulary is not the first 256 merges of the 2,048-token one: was the training text the same?")
print(f"{len(tokenizer.merges):,} merges; the last: {[tokenizer.vocab[i].decode() for i in range(2040, 2048)]}")

# %% [markdown]
# ## 2. Bits per character
#
# The race below trains notebook 05's model for the same wall-clock seconds on characters (65
# tokens, as in notebooks 01-05), on 512 BPE tokens and on 2,048. Losses per token cannot be
# compared across vocabularies, since a token is a different amount of text in each; *bits per
# character* can: the validation text's total loss in bits, spread over its characters. With `L`
# the mean loss per token (in nats), `N` tokens and `M` characters, it is `L · N / M / ln 2`: the
# bits per token divided by the characters per token. Every model is scored on the same validation
# characters.

# %%
def bits_per_char(loss, n_tokens, n_chars):
    """Bits per character of a text of n_chars characters coded as n_tokens tokens at a mean loss (nats per token)."""
    return loss * n_tokens / n_chars / math.log(2)


# %% jupyter={"source_hidden": true} cellView="form"
#@title The check of bits_per_char (folded)
def check_bits_per_char(bits_per_char):
    """bits_per_char against a uniform guess over V tokens (log2 V bits per token) at several tokens-per-character ratios."""
    for vocab_size, n_tokens, n_chars in ((2048, 350, 1000), (65, 1000, 1000), (512, 10, 27), (2, 1, 4)):
        loss = math.log(vocab_size)  # a uniform guess over vocab_size tokens: log2(vocab_size) bits per token
        got = attempt(f"bits_per_char({loss:.3f}, {n_tokens}, {n_chars})", bits_per_char, loss, n_tokens, n_chars,
                      hint="it takes plain numbers")
        want = math.log2(vocab_size) * n_tokens / n_chars
        if isinstance(got, (int, float)) and math.isclose(got, want, rel_tol=1e-6):
            continue
        near = lambda x: isinstance(got, (int, float)) and math.isclose(got, x, rel_tol=1e-6)
        causes = (([loss, math.log2(vocab_size)], "it is a loss per token, not yet spread over the characters"),
                  ([want * n_chars], "it is the whole text's bits, not yet spread over its characters"),
                  ([want * (n_chars / n_tokens) ** 2], "the tokens and the characters are the wrong way round"),
                  ([want * math.log(2)], "the loss is in nats per token"),
                  ([want * math.log(2) / math.log(10)], "it counts in digits (base 10), not in bits"),
                  ([want * (n_tokens - 1) / n_tokens], "it counts one prediction fewer than the tokens"),
                  ([math.floor(loss * n_tokens / n_chars) / math.log(2)], "a floor division (//) drops the fraction"),
                  ([math.exp(x) for x in (loss * n_tokens / n_chars, want)], "it is a perplexity (e to a loss), not bits"),
                  ([int(want)] + [round(want, k) for k in range(6)], "it is rounded: round() or int() loses digits"),
                  ([math.log2(loss) * n_tokens / n_chars], "it takes a logarithm of the loss, which is one already"))
        cause = ("it must return a number" if not isinstance(got, (int, float)) else
                 next((c for xs, c in causes if any(map(near, xs))), None) or
                 ("it is close but rounded: a constant typed in short loses digits" if math.isclose(got, want, rel_tol=1e-2)
                  else "look at how the loss, the tokens and the characters combine"))
        raise CheckFailed(f"bits_per_char({loss:.3f}, {n_tokens}, {n_chars}) gives {got!r}, not the bits per character of a "
                          f"uniform guess over {vocab_size} tokens with {n_tokens} tokens for {n_chars} characters: {cause}")
    return Passed("bits_per_char: passed (a uniform guess costs log2 V bits per token, spread over the characters)")


# %%
check_bits_per_char(bits_per_char)

# %% [markdown]
# ## 3. One text, three tokenizations
#
# The same split three ways (the characters' ids are notebook 01's, from the sorted characters of
# the whole text), with what each vocabulary leaves rare in training:

# %%
chars = sorted(set(text))
stoi = {ch: i for i, ch in enumerate(chars)}
tokenizations = {  # name: (vocab_size, training ids, validation ids), all from the same train_text and val_text
    "characters": (len(chars), [stoi[c] for c in train_text], [stoi[c] for c in val_text]),
    "BPE 512": (512, tokenizer_512.encode(train_text), tokenizer_512.encode(val_text)),
    "BPE 2,048": (2048, tokenizer.encode(train_text), tokenizer.encode(val_text)),
}
for name, (vocab_size, train_ids, ids) in tokenizations.items():
    seen = collections.Counter(train_ids)
    print(f"{name:<10} vocab {vocab_size:>5,}: train {len(train_ids):>9,} tokens, val {len(ids):>7,} ({len(val_text) / len(ids):.2f} "
          f"characters per token); in training {sum(seen[i] == 0 for i in range(vocab_size))} tokens never occur, "
          f"{sum(0 < seen[i] < 10 for i in range(vocab_size))} fewer than 10 times")

# %% [markdown]
# ## 4. Notebook 05's race model, on the clock
#
# Notebook 05's model (`FastGPT`, here `RaceGPT`: the same layers and names in one class; a test
# loads the weights of one into the other), its batches, schedule and optimizer are in the folded
# cells below. The settings are notebook 05c's CPU race (3 blocks of 128 channels, a context of 64
# *tokens*, batch 32, peak learning rate 2e-3), with the warmup-and-cosine schedule run on the clock:
# each model decays to the end of its own seconds, whatever its speed.

# %% jupyter={"source_hidden": true} cellView="form"
#@title Notebook 05's model pieces, copied unchanged (folded)
@dataclass
class GPTConfig:
    """Sizes of the model; the defaults are the lecture's final configuration."""
    vocab_size: int = 65
    block_size: int = 256  # maximum context length
    n_embd: int = 384      # channels of every token vector
    n_head: int = 6        # heads per attention layer
    n_layer: int = 6       # blocks
    dropout: float = 0.2


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



# %% jupyter={"source_hidden": true} cellView="form"
#@title Notebook 05's FastGPT in one class (folded)
class RaceBlock(nn.Module):
    """Notebook 05's FastBlock: attention, then the feed-forward layer, each pre-normed and added to the residual."""

    def __init__(self, config):
        super().__init__()
        self.sa, self.ffwd = CausalSelfAttention(config), FeedForward(config)
        self.ln1, self.ln2 = nn.LayerNorm(config.n_embd), nn.LayerNorm(config.n_embd)

    def forward(self, x):
        x = x + self.sa(self.ln1(x))  # (B, T, C)
        return x + self.ffwd(self.ln2(x))  # (B, T, C)


class RaceGPT(nn.Module):
    """Notebook 05's FastGPT in one class: the same layers, names, initialisation and loss."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.token_embedding_table = nn.Embedding(config.vocab_size, config.n_embd)
        self.position_embedding_table = nn.Embedding(config.block_size, config.n_embd)
        self.blocks = nn.Sequential(*[RaceBlock(config) for _ in range(config.n_layer)])
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


# %% jupyter={"source_hidden": true} cellView="form"
#@title Notebook 05's training pieces: batches, schedule, optimizer, whole-split loss (folded)
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



# %% tags=["nbval-ignore-output"]
RACE = {  # device: (model sizes, batch, peak lr, seconds of training per run, seeds, evaluations per run)
    "tiny": (dict(block_size=16, n_embd=32, n_head=2, n_layer=2, dropout=0.0), 8, 1e-3, 0.5, (1337, 1), 2),
    "cuda": (dict(block_size=256, n_embd=384, n_head=6, n_layer=6, dropout=0.2), 64, 1e-3, 60.0, (1337, 1, 2), 6),
    "cpu": (dict(block_size=64, n_embd=128, n_head=4, n_layer=3, dropout=0.0), 32, 2e-3, 30.0, (1337, 1, 2), 6),
}
race_key = "tiny" if SMOKE else "cuda" if device == "cuda" else "cpu"
sizes, race_batch, race_lr, race_seconds, seeds, n_evals = RACE[race_key]
block_size = sizes["block_size"]  # split_loss cuts the validation ids into chunks of the model's context
amp_dtype = torch.bfloat16 if device == "cuda" and torch.cuda.is_bf16_supported() else None
print(f"race on {device}: {sizes}, batch {race_batch}, peak lr {race_lr}, {race_seconds:.0f} s of training per run, "
      f"seeds {seeds}, mixed precision {amp_dtype}")
for name, (vocab_size, _, _) in tokenizations.items():
    model = RaceGPT(GPTConfig(vocab_size=vocab_size, **sizes))
    table = sum(p.numel() for p in (*model.token_embedding_table.parameters(), *model.lm_head.parameters()))
    print(f"{name:<10} {sum(p.numel() for p in model.parameters()):>9,} parameters, {table:>7,} of them in the token "
          f"embedding and lm_head, {sum(p.numel() for p in model.blocks.parameters()):,} in the blocks")


# %%
def race_step(model, optimizer, data, lr):
    """One training step of notebook 05's race on a random batch of data, at learning rate lr."""
    x, y = get_batch_on_device(data, race_batch, block_size)  # (B, T) each
    with torch.autocast(device, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
        _, loss = model(x, y)  # the mean loss over the B * T predictions
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    sync()  # the clock must see the step finished


# %% jupyter={"source_hidden": true} cellView="form"
#@title check_race_step: two steps on a fixed batch against two AdamW steps made by hand (folded)
def check_race_step(race_step):
    """race_step's two steps at two learning rates match two AdamW steps made here on the same batch."""
    import copy
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=11, block_size=block_size, n_embd=16, n_head=2, n_layer=1, dropout=0.0)
    start = RaceGPT(config).to(device)
    data = torch.randint(11, (block_size + 1,), device=device)  # one possible batch: every row is the same
    x, y = data[:-1].repeat(race_batch, 1), data[1:].repeat(race_batch, 1)  # (B, T) each
    lrs = (3e-3, 5e-3)  # neither race_lr nor the optimizer's own 1e-2

    def by_hand(lr_of, inputs, zero=True):
        model = copy.deepcopy(start)
        optimizer = configure_optimizer(model, 1e-2, fused=device != "mps")
        for lr in lrs:
            with torch.autocast(device, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
                loss = model(*inputs)[1]
            if zero:
                optimizer.zero_grad(set_to_none=True)
            loss.backward()
            for group in optimizer.param_groups:
                group["lr"] = lr_of(lr)
            optimizer.step()
        return [p.detach() for p in model.parameters()]

    model = copy.deepcopy(start)
    optimizer = configure_optimizer(model, 1e-2, fused=device != "mps")
    for lr in lrs:
        attempt("race_step", race_step, model, optimizer, data, lr, hint="look at the lines of race_step")
    ours = [p.detach() for p in model.parameters()]
    same = lambda ps: all(torch.allclose(a, b, rtol=1e-3, atol=1e-5) for a, b in zip(ours, ps))
    check(not same([p.detach() for p in start.parameters()]), "race_step left every weight unchanged: "
          "optimizer.step() must come after loss.backward() has filled the gradients, none zeroed in between.")
    check(not same(by_hand(lambda lr: 1e-2, (x, y))), "race_step stepped at the optimizer's own learning rate, "
          "not at the lr it is given: the schedule never reaches the optimizer.")
    check(not same(by_hand(lambda lr: race_lr, (x, y))), "race_step stepped at race_lr, not at the lr it is "
          "given: the schedule never reaches the optimizer.")
    check(not same(by_hand(lambda lr: lr, (y, x))), "race_step's step follows the loss of (targets, inputs): "
          "the batch's two halves are the wrong way round.")
    check(not same(by_hand(lambda lr: lr, (x, y), zero=False)), "race_step's second step used the gradients "
          "of both steps added up: the old gradients are never zeroed.")
    check(same(by_hand(lambda lr: lr, (x, y))), "race_step's two steps on a fixed batch do not match two AdamW "
          "steps made by hand at the learning rates given: look at the order of zero_grad, backward and step.")
    return Passed("check_race_step: passed (two steps on a fixed batch match two AdamW steps made by hand)")


# %%
check_race_step(race_step)

# %%
def train_for_seconds(vocab_size, train_ids, val_ids, seconds, seed):
    """Notebook 05's race model trained on train_ids for `seconds` (the evaluations stop the clock);
    returns [(seconds, steps, whole-split val loss)] at n_evals evenly spaced moments."""
    torch.manual_seed(seed)
    model = RaceGPT(GPTConfig(vocab_size=vocab_size, **sizes)).to(device)
    optimizer = configure_optimizer(model, race_lr, fused=device != "mps")
    data, val_data = torch.tensor(train_ids, device=device), torch.tensor(val_ids, device=device)
    log, spent, steps = [], 0.0, 0
    while len(log) < n_evals:
        t0 = time.perf_counter()
        lr = lr_at(int(1000 * spent / seconds), race_lr, 40, 1000)  # the schedule runs in thousandths of the seconds
        race_step(model, optimizer, data, lr)
        spent, steps = spent + time.perf_counter() - t0, steps + 1
        if spent >= seconds * (len(log) + 1) / n_evals:
            log.append((spent, steps, split_loss(model, val_data, amp_dtype=amp_dtype)))
    return log


# %% jupyter={"source_hidden": true} cellView="form"
#@title check_train_for_seconds: the evaluations, the clock, the schedule, a model that learns (folded)
class FakeClock:
    """Stands in for the time module: its clock moves only when a training step or an evaluation runs."""
    def __init__(self):
        self.now = 0.0

    def __getattr__(self, name):  # every other function of the time module
        return getattr(time, name)

    def perf_counter(self):
        return self.now

    time = monotonic = perf_counter


def check_train_for_seconds(train_for_seconds, seconds=1.0, vocab_size=8):
    """train_for_seconds on a repeating text, on a clock where a step costs seconds/40 and an evaluation more."""
    space, ids, clock, seen = globals(), list(range(vocab_size)) * 300, FakeClock(), []
    real = {name: space[name] for name in ("race_step", "split_loss", "time")}

    def step(model, optimizer, data, lr):  # the real step, noted, then the fake clock moves on
        seen.append(dict(lr=lr, training=model.training, data=data,
                         weights=[p.detach().clone() for p in model.parameters()] if not seen else None))
        real["race_step"](model, optimizer, data, lr)
        clock.now += seconds / 40

    def evaluate(model, data, *args, **kwargs):
        seen.append(dict(eval=data, steps=sum("lr" in s for s in seen)))
        clock.now += seconds / 3  # an evaluation is slow: it must not count
        return real["split_loss"](model, data, *args, **kwargs)

    space.update(race_step=step, split_loss=evaluate, time=clock)
    try:
        torch.manual_seed(12345)
        log = attempt("train_for_seconds", train_for_seconds, vocab_size, ids, ids[:4 * block_size + 1], seconds, 7,
                      hint="look at the lines of train_for_seconds")
        first, evals = seen[0], [s for s in seen if "eval" in s]
        steps = [s for s in seen if "lr" in s]
        seen.clear()
        torch.manual_seed(54321)
        attempt("train_for_seconds", train_for_seconds, vocab_size, ids, ids[:4 * block_size + 1], seconds / 40, 7)
    finally:
        space.update(real)
    check(isinstance(log, list) and len(log) == n_evals and all(len(e) == 3 for e in log),
          f"train_for_seconds must return a list of n_evals = {n_evals} (seconds, steps, loss) entries.")
    check(all(torch.equal(s["eval"].cpu(), torch.tensor(ids[:4 * block_size + 1])) for s in evals),
          "train_for_seconds evaluated on other ids than val_ids: its losses must be the validation split's.")
    check(all(s["training"] for s in steps), "a training step ran with the model in eval mode (dropout off): "
          "is there a model.eval() before the loop?")
    check([e[1] for e in log] == [s["steps"] for s in evals] and all(a[1] < b[1] for a, b in zip(log, log[1:])),
          "train_for_seconds' step counts must be the steps taken before each evaluation, rising from one to the next.")
    check(all(abs(t - s * seconds / 40) < 1e-6 for t, s, _ in log), "train_for_seconds' seconds are not the time "
          "spent in the training steps: the evaluations must stop the clock (where does t0 start?).")
    check(all(k * seconds / n_evals <= t < k * seconds / n_evals + 2 * seconds / 40 for k, (t, _, _) in enumerate(log, 1)),
          f"the evaluations must come each time another 1/{n_evals} of the seconds is spent, not at once.")
    check(steps[-1]["lr"] < 0.2 * race_lr < max(s["lr"] for s in steps) and steps[-1]["lr"] > 0,
          "the learning rate must follow the schedule over the seconds, near its floor when they are spent, "
          "not over the steps.")
    check(all(torch.equal(a, b) for a, b in zip(first["weights"], seen[0]["weights"])),
          "two runs with the same seed start from different weights: is torch.manual_seed(seed) called before the model?")
    check(log[-1][2] < math.log(vocab_size) - 0.1, f"after {log[-1][1]} steps on a repeating text the loss is "
          f"{log[-1][2]:.2f}, not below ln {vocab_size}: the model does not learn (look at race_step's call).")
    return Passed(f"check_train_for_seconds: passed ({n_evals} evaluations at the right seconds, "
                  f"loss {log[-1][2]:.2f} < ln {vocab_size} after {log[-1][1]} steps)")


# %% tags=["nbval-ignore-output"]
check_train_for_seconds(train_for_seconds)

# %% [markdown]
# ## 5. The race
#
# The runs take turns, seed by seed, so that a slow moment of the machine does not fall on one
# tokenization only.

# %% tags=["nbval-ignore-output"]
runs = {name: [] for name in tokenizations}
for seed in seeds:
    for name, (vocab_size, train_ids, ids) in tokenizations.items():
        log = train_for_seconds(vocab_size, train_ids, ids, race_seconds, seed)
        runs[name].append([(t, s, bits_per_char(loss, len(ids), len(val_text))) for t, s, loss in log])

# %% [markdown]
# At the end of the seconds, for each tokenization: its steps, its loss in bits per *token*, its
# characters per token, and the bits per *character* that the two make, for each seed, their band
# (lowest to highest) and their mean; then each pair compared, its bands apart or not.

# %% tags=["nbval-ignore-output"]
ends = {name: [log[-1][2] for log in logs] for name, logs in runs.items()}  # bits per character at the end
print(f"{'':<10} {'steps':>5} {'bits/token':>10} {'chars/token':>11}   bits per character: seeds {seeds}, band, mean")
for name, bpc in ends.items():
    per_token = len(val_text) / len(tokenizations[name][2])  # characters per token of the validation text
    print(f"{name:<10} {statistics.median(log[-1][1] for log in runs[name]):>5.0f} {statistics.mean(bpc) * per_token:>10.3f} "
          f"{per_token:>11.2f}   {'  '.join(f'{b:.4f}' for b in bpc)}   {min(bpc):.3f}-{max(bpc):.3f}   {statistics.mean(bpc):.3f}")
for a, b in (("BPE 512", "characters"), ("BPE 2,048", "characters"), ("BPE 512", "BPE 2,048")):
    gap, apart = statistics.mean(ends[a]) - statistics.mean(ends[b]), max(ends[a]) < min(ends[b]) or min(ends[a]) > max(ends[b])
    print(f"{a} against {b}: {gap:+.3f} bits per character ({gap / statistics.mean(ends[b]):+.1%}), "
          + ("the bands apart" if apart else "the bands overlap: no verdict"))

# %%
fig, ax = plt.subplots(figsize=(6.5, 3.6))
for name, logs in runs.items():
    seconds = [statistics.mean(log[k][0] for log in logs) for k in range(n_evals)]
    lows, highs = ([f(log[k][2] for log in logs) for k in range(n_evals)] for f in (min, max))
    _ = ax.plot(seconds, [statistics.mean(log[k][2] for log in logs) for k in range(n_evals)], marker="o", label=name)
    _ = ax.fill_between(seconds, lows, highs, alpha=0.25)
_ = ax.set(xlabel="seconds of training", ylabel="bits per character (validation)",
           title=f"One model, the same seconds, three tokenizations ({device})")
_ = ax.legend()
show(fig, "bits_per_character")

# %% [markdown]
# **What it shows.** In the stored run (a 2-core CPU, 30 s of training each, three seeds) BPE with
# 512 tokens ended at 2.519–2.662 bits per character (mean 2.568), BPE with 2,048 at 2.639–2.727
# (2.684), characters at 2.831–2.847 (2.841). Both BPE bands lie apart from the characters' band, so
# those verdicts hold beyond the seeds: BPE 512 is 0.273 bits per character (9.6%) below characters,
# BPE 2,048 0.157 (5.5%). BPE 512's lead over BPE 2,048, 0.116 (4.3%), is no verdict: their bands
# overlap. In the plot the means keep their order at every evaluation. Per *token* the order is the
# other way round: a character costs 2.841 bits, a BPE 512 token 5.118, a BPE 2,048 token 7.542, since
# a token is more text. But a BPE 2,048 token costs 2.7 times a character's bits and carries 2.81
# characters, so divided by them it comes to 2.684 bits per character; a BPE 512 token costs 1.8
# times and carries 1.99 characters: 2.568, the lowest mean. Why the division comes out
# as it does:
#
# - **A token sees more text.** Every model has a context of 64 tokens: 64 characters for the
#   character model, about 127 for BPE 512 (1.99 characters per token), about 180 for BPE 2,048
#   (2.81). Each step's batch of 32 × 64 tokens is that much more text too.
# - **The embedding table grows.** At 2,048 tokens the token embedding and `lm_head` hold 526,336
#   parameters, nearly as many as the three blocks' 593,664 (at 512: 131,584), and every step costs
#   more: 331 steps in the 30 s, against 451 at 512 tokens and 473 on characters.
# - **Rare tokens get few updates.** Of the 2,048 tokens, 296 never occur in the training ids (the
#   191 bytes Shakespeare never uses, and tokens that later merges swallowed whole) and 82 occur
#   fewer than 10 times, so their rows barely learn; at 512 only the 191 unused bytes never occur,
#   and 2 tokens occur fewer than 10 times.
#
# So on this budget both vocabularies of tokens beat characters, which give too little text per step
# and per context; 2,048 tokens give more text still, but too few steps and too many rare rows cost
# them part of that lead: their mean ends above 512's, though within its band. With longer training the larger vocabulary's wider view may pay for its slower steps
# (exercise 1). The comparison is fair to all three: bits per character on the same 111,540
# validation characters, whatever the tokens (the last partial chunk of each split, under 64
# tokens, is left out of the mean loss).
#
# ## Summary
#
# - Losses per token do not compare across vocabularies; bits per character do: the loss in bits
#   per token divided by the characters per token, on the same validation text.
# - Notebook 05's race model, trained for 30 s on a CPU on each, reached the fewest bits per
#   character (mean of three seeds) on 512 BPE tokens: 9.6% below characters, its band apart from
#   theirs. BPE 2,048 ended 5.5% below characters, apart too; BPE 512's mean is 4.3% below BPE
#   2,048's, but their bands overlap: no verdict between the two vocabularies.
# - A token carries more text per position and per step; a larger vocabulary costs steps (its
#   embedding and head) and leaves rare tokens undertrained; on this budget those costs keep the
#   2,048-token vocabulary's mean above 512's.
#
# ## Exercises
#
# 1. Race a 1024-token vocabulary, or a longer race (`race_seconds`): where does the best
#    vocabulary size move as training gets longer, and why?
# 2. Tie the token embedding and `lm_head` weights (notebook 06c) and race BPE 2,048 again: how much
#    of its gap to BPE 512 was the size of its table?
# 3. Compare the three at the same number of *steps* instead of seconds. Which tokenization wins
#    then, and what does that say about where the characters' model loses?
