# %% [markdown]
# # 10 · The tokenizer: byte-level BPE from scratch, checked against tiktoken
#
# The course's GPT reads characters; every real GPT reads *sub-word tokens*, made by a tokenizer
# trained before the model and apart from it. Karpathy's follow-up lecture, ["Let's build the GPT
# Tokenizer"](https://www.youtube.com/watch?v=zduSFxRajkE), builds the byte-pair encoding (BPE) of
# GPT-2 and GPT-4. This notebook builds it with the names of that lecture and of its code,
# [minbpe](https://github.com/karpathy/minbpe), checks every piece, proves it gives the same ids as
# OpenAI's `tiktoken` run on our own merges, and shows what the tokens do to a text. It can be read
# any time after notebook 01; notebook 10b then trains notebook 05's GPT on these tokens and on
# characters for the same seconds, and compares them.
#
# Standalone (it downloads its data) and a script: `python notebooks/10_tokenizer.py`. It needs
# `tiktoken` (Colab has it; elsewhere `pip install tiktoken`), which downloads nothing here: every
# `tiktoken.Encoding` below is built from this notebook's own merges.

# %%
import collections, hashlib, os, pathlib, platform, random, statistics, sys, time, urllib.request
import torch
import importlib.util
if not all(importlib.util.find_spec(name) for name in ("regex", "tiktoken")):
    raise SystemExit("error: this notebook needs tiktoken and regex: pip install tiktoken regex (neither downloads anything here)")
import regex  # unlike Python's own `re`, it knows \p{L} (any letter) and \p{N} (any digit); tiktoken needs it too
import tiktoken

SMOKE = os.environ.get("COURSE_SMOKE") == "1"  # set by the tests: the speed test times a shorter text

# %% [markdown]
# The next cells are plumbing every notebook carries so that it stands alone (folders, the device,
# the data, the checks); they are folded in Jupyter and Colab.

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
# ## 1. Text is bytes [▶ 0:14:56](https://www.youtube.com/watch?v=zduSFxRajkE&t=896s)
#
# The text is cut once, before anything is trained: the tokenizer, like a model, learns from the
# first 90% only; the last 10% is the validation text it is tested on (the characters of notebook
# 05's validation split, on which notebook 10b scores its models).

# %%
text = load_text()
n = int(0.9 * len(text))  # first 90% will be train, rest val
train_text, val_text = text[:n], text[n:]
print(f"{len(text):,} characters ({len(text.encode('utf-8')):,} UTF-8 bytes): train {len(train_text):,}, val {len(val_text):,}")

# %% [markdown]
# A Python string is a sequence of Unicode *code points*, up to 0x10FFFF: too many, and most too
# rare, to be a vocabulary. UTF-8 [▶ 0:18:15](https://www.youtube.com/watch?v=zduSFxRajkE&t=1095s)
# writes each as 1 to 4 bytes, so every text becomes a sequence over 256 symbols, only longer. BPE
# starts from those bytes and buys the length back by merging.

# %%
s = "héllo 👋"
print([ord(c) for c in s])      # 7 code points
print(list(s.encode("utf-8")))  # 11 bytes: 'é' takes 2, the emoji 4

# %% [markdown]
# ## 2. Counting pairs and merging one [▶ 0:28:35](https://www.youtube.com/watch?v=zduSFxRajkE&t=1715s)
#
# BPE ([▶ 0:23:50](https://www.youtube.com/watch?v=zduSFxRajkE&t=1430s)) repeats two steps: count
# every adjacent pair of tokens (`get_stats`), then replace each occurrence of the most frequent
# pair with one new token (`merge`). Pairs overlap: `aaa` holds the pair `(a, a)` twice, but it can
# be merged only once, reading from the left.

# %%
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


# %% [markdown]
# **Check.** `get_stats` against `collections.Counter` of the pairs, `merge` against `str.replace`
# (which also replaces from the left, without overlaps), on random sequences of several lengths over
# two to four symbols, so that runs like `aaaa` are common.

# %% jupyter={"source_hidden": true} cellView="form"
#@title The checks of get_stats and merge (folded: open them to see how they work)
def replaced(ids, pair, idx):
    """The oracle of merge: the ids as characters, pair replaced by str.replace (from the left, no overlaps)."""
    return [ord(c) for c in "".join(map(chr, ids)).replace(chr(pair[0]) + chr(pair[1]), chr(idx))]


def shown(ids):
    return str(ids) if len(ids) < 8 else str(ids[:6])[:-1] + ", ...]"


import signal, threading, types


def check_get_stats(get_stats):
    """get_stats(ids) against collections.Counter of the pairs; get_stats(ids, counts) adds into counts."""
    rng = random.Random(0)
    for ids in [[97, 97, 97], [], [97]] + [[97 + rng.randrange(s) for _ in range(n)] for n, s in ((2, 2), (9, 2), (400, 4))]:
        got = attempt(f"get_stats({shown(ids)})", get_stats, list(ids), hint="ids is a list of integers")
        want = dict(collections.Counter(zip(ids, ids[1:])))
        if got == want:
            continue
        keys_ok = isinstance(got, dict) and all(isinstance(k, tuple) and len(k) == 2 for k in got)
        cause = (": its keys must be pairs, tuples (a, b) of two ids" if not keys_ok else
                 ": counts left over from an earlier call (a default counts={} is one dict shared by every call)" if not ids else
                 ": the pairs are the wrong way round ((a, b) is a followed by b)" if got == {(b, a): n for (a, b), n in want.items()} != want else
                 ": each pair is counted once more than it occurs" if got == {k: v + 1 for k, v in want.items()} else
                 ": the last pair is missed" if attempt("get_stats([97, 98, 99, 100])", get_stats, [97, 98, 99, 100],
                                                        hint="ids is a list of integers") == {(97, 98): 1, (98, 99): 1} else
                 " (overlapping pairs too: [97, 97, 97] holds (97, 97) twice)" if set(got) == set(want) else
                 ": each adjacent pair once for every place it occurs")
        raise CheckFailed(f"get_stats({shown(ids)}) gives {str(got)[:50]}, not the count of every adjacent pair{cause}")
    counts = {(97, 98): 5}
    got = attempt("get_stats([97, 98, 99], counts)", get_stats, [97, 98, 99], counts,
                  hint="counts is a dict {pair: count}")
    empty = {}
    got_empty = attempt("get_stats([97, 98], {})", get_stats, [97, 98], empty, hint="counts is a dict {pair: count}")
    check(got is counts and counts == {(97, 98): 6, (98, 99): 1} and got_empty is empty and empty == {(97, 98): 1},
          "get_stats(ids, counts) must add this list's pairs into the counts it is given, an empty {} too, and return that "
          "same dict (the regex tokenizer sums its chunks' stats so)")
    return Passed("get_stats: passed (every adjacent pair counted, overlapping ones too, added into counts)")


def in_time(seconds, message, fn, *args, **kwargs):
    """fn(*args, **kwargs), stopped with message after seconds (where signal.alarm exists, in the main thread)."""
    if not hasattr(signal, "SIGALRM") or threading.current_thread() is not threading.main_thread():
        return fn(*args, **kwargs)
    def stop(*_):
        raise CheckFailed(message)
    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        return fn(*args, **kwargs)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def check_merge(merge):
    """merge(ids, pair, idx) against str.replace, on random ids with overlapping runs; ids left unchanged."""
    rng = random.Random(0)
    cases = [([97, 97, 97], (97, 97)), ([97, 97, 97, 97], (97, 97)), ([97, 98], (97, 98)), ([97], (97, 98)), ([], (97, 97))]
    cases += [([97 + rng.randrange(s) for _ in range(n)], (97 + rng.randrange(s), 97)) for n, s in ((5, 2), (40, 2), (300, 3))]
    for ids, pair in cases:
        before = list(ids)
        got = in_time(1, f"merge({shown(ids)}, {pair}, 256) did not finish on a {len(ids)}-token list: does every turn of its loop "
                      "move i forward?", attempt, f"merge({shown(ids)}, {pair}, 256)", merge, ids, pair, 256,
                      hint="it must not read past the end of ids (the last token starts no pair)")
        check(ids == before, "merge changed the list it was given: build and return a new list")
        check(isinstance(got, list), f"merge must return a list, not a {type(got).__name__}")
        check(all(isinstance(i, int) for i in got), f"merge({shown(ids)}, {pair}, 256) gives {shown(got)}: its list must "
              "hold ids (ints) only, the new id where the pair was")
        want = replaced(ids, pair, 256)
        check(got != ids or want == ids, f"merge({shown(ids)}, {pair}, 256) merged nothing, though the pair occurs: look at "
              "how two tokens are compared with the pair (a list never equals a tuple)")
        check(isinstance(got, list) and got == want, f"merge({shown(ids)}, {pair}, 256) gives {shown(got)}, not {shown(want)}: "
              "replace each occurrence reading from the left; after a match both tokens of the pair are used up"
              + (", and the last token must be kept" if isinstance(got, list) and got == want[:-1] else ""))
    return Passed("merge: passed (as str.replace: from the left, overlapping pairs merged once)")


# %%
check_get_stats(get_stats)
check_merge(merge)

# %% [markdown]
# Both checked, the lecture's example [▶ 0:30:36](https://www.youtube.com/watch?v=zduSFxRajkE&t=1836s):

# %%
ids = list("aaabdaaabac".encode("utf-8"))
stats = get_stats(ids)
top_pair = max(stats, key=stats.get)
print(f"{ids}\nmost frequent pair {top_pair} ({stats[top_pair]} times) -> {merge(ids, top_pair, 256)}")
print(f"'aaa' with (97, 97) -> 256: {merge([97, 97, 97], (97, 97), 256)}")

# %% [markdown]
# ## 3. The basic tokenizer: train, decode, encode [▶ 0:34:58](https://www.youtube.com/watch?v=zduSFxRajkE&t=2098s)
#
# Training repeats count-and-merge until the vocabulary holds `vocab_size` tokens: the 256 bytes
# and one new token per merge. It keeps `merges`, each merged pair and its new id in the order they
# were made, and `vocab`, the bytes each id stands for.

# %%
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


# %% [markdown]
# Decoding [▶ 0:42:47](https://www.youtube.com/watch?v=zduSFxRajkE&t=2567s) joins the bytes of all
# the tokens, then reads them as UTF-8. A list of tokens may end inside a character, and such bytes
# are not UTF-8: `errors="replace"` writes '�' (U+FFFD) there instead of raising.

# %%
def decode(self, ids):
    """The text of a list of token ids: their bytes joined, then read as UTF-8 (a cut character becomes '�')."""
    text_bytes = b"".join(self.vocab[idx] for idx in ids)
    return text_bytes.decode("utf-8", errors="replace")


BasicTokenizer.decode = decode

# %% [markdown]
# Encoding [▶ 0:48:21](https://www.youtube.com/watch?v=zduSFxRajkE&t=2901s) makes the merges **in
# the order training made them**: among the pairs present, the one with the lowest id first, since
# each merge was learned on text in which all earlier ones had been made. Not the most frequent
# pair of the new text: that would make other tokens than training did.

# %%
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


BasicTokenizer._encode_chunk = _encode_chunk
BasicTokenizer.encode = encode

# %% [markdown]
# **Check.** Training: each merge a most frequent pair of the text as merged so far (a tie broken
# either way), numbered 256, 257, ... in order, its `vocab` entry the bytes of its two halves.
# Encoding: the ids of `tiktoken` built from the same merges, on slices of the validation text,
# other languages and random Unicode of several lengths; decoding: the text back, and '�' for a
# cut character. The tokenizer checked is trained here on the first 20,000 characters of the
# training text, 12 merges, each printed.

# %% jupyter={"source_hidden": true} cellView="form"
#@title The checks of training, encoding and decoding (folded: open them to see how they work)
OTHER_TEXTS = {  # Article 1 of the Universal Declaration of Human Rights, and some Python
    "English": "All human beings are born free and equal in dignity and rights. They are endowed with reason and "
               "conscience and should act towards one another in a spirit of brotherhood.",
    "French": "Tous les êtres humains naissent libres et égaux en dignité et en droits. Ils sont doués de raison et "
              "de conscience et doivent agir les uns envers les autres dans un esprit de fraternité.",
    "German": "Alle Menschen sind frei und gleich an Würde und Rechten geboren. Sie sind mit Vernunft und Gewissen "
              "begabt und sollen einander im Geist der Brüderlichkeit begegnen.",
    "Russian": "Все люди рождаются свободными и равными в своем достоинстве и правах. Они наделены разумом и "
               "совестью и должны поступать в отношении друг друга в духе братства.",
    "Chinese": "人人生而自由，在尊严和权利上一律平等。他们赋有理性和良心，并应以兄弟关系的精神相对待。",
    "Python": "def bigrams(words):\n    seen = {}\n    for a, b in zip(words, words[1:]):\n        seen[a, b] = seen.get((a, b), 0) + 1\n"
              "    return sorted(seen.items(), key=lambda kv: -kv[1])[:10]\n",
}


def check_texts(seed=0):
    """Texts to test a tokenizer on: validation slices, other languages, random Unicode of several lengths."""
    rng = random.Random(seed)
    alphabet = "aeinost ETAO\n\n\t  '’s-.,!?0123456789éüßçαβγжщ中文字👋🏽\u0301\r\u00a0\u2028"
    texts = [val_text[:400], val_text[-2000:], " leading space,  two spaces   and three\n\n\n", "1599 12345678 3.14159",
             "don't WE'LL you're THEY'VE", *OTHER_TEXTS.values()]
    for length in (1, 2, 3, 17, 200):
        texts.append("".join(rng.choice(alphabet) for _ in range(length)))
        texts.append("".join(chr(rng.choice([rng.randrange(32, 0x250), rng.randrange(0x250, 0xD800), rng.randrange(0xE000, 0x30000)]))
                             for _ in range(length)))
    return texts


def replay(tokenizer, text, name):
    """Replay tokenizer.merges on text's chunks (with their counts): each must be a most frequent pair at its turn.
    Returns the pairs left."""
    pattern = getattr(tokenizer, "pattern", None)
    chunks = collections.Counter(regex.findall(pattern, text) if pattern else [text])  # {chunk: count}
    words = {chunk: list(chunk.encode("utf-8")) for chunk in chunks}

    def weighted():
        stats = collections.Counter()  # {pair: count}, each chunk's pairs counted as often as the chunk occurs
        for chunk, count in chunks.items():
            for p in zip(words[chunk], words[chunk][1:]):
                stats[p] += count
        return stats

    made = set(range(256))
    for k, pair in enumerate(tokenizer.merges):  # first what every merge is: a pair of two ids made before it
        check(isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(i, int) for i in pair), f"{name}'s merge {k + 1} "
              f"is keyed by {pair!r}, not by a pair of two ids (ints)" + (": max over stats.items() gives (pair, count)"
              if isinstance(pair, tuple) and pair and isinstance(pair[0], tuple) else ": train on the text's bytes, not its characters"))
        check(all(i in made for i in pair), f"{name}'s merge {k + 1}, {pair}, holds an id that is neither a byte nor a token "
              "made before it: train on the text's UTF-8 bytes, not its characters' code points")
        made.add(tokenizer.merges[pair])
    for k, (pair, idx) in enumerate(tokenizer.merges.items()):
        check(idx == 256 + k, f"{name}'s merge {k + 1} made token {idx}, not {256 + k}: number the new tokens 256, 257, ... "
              "in the order they are merged (ids 0..255 are the bytes)")
        stats = weighted()
        check(bool(stats), f"{name}'s merge {k + 1} was made when nothing was left to merge (every chunk one token): stop there, "
              "and take a pair out of the counts when its count falls to 0")
        best = max(stats, key=stats.get)
        cause = ("count every adjacent pair" + (" within the chunks of self.pattern, each as often as it occurs" if pattern else "")
                 if k == 0 else f"the first {k} were right: after a merge, bring the ids (and any counts kept) up to date")
        check(stats.get(pair, 0) == stats[best], f"{name}'s merge {k + 1}, {pair} -> {idx}, occurs {stats.get(pair, 0):,} times "
              f"at that point, but {best} occurs {stats[best]:,} times: each merge must take a most frequent pair ({cause})")
        want = tokenizer.vocab.get(pair[0], b"?") + tokenizer.vocab.get(pair[1], b"?")
        check(tokenizer.vocab.get(idx) == want, f"{name}.vocab[{idx}] is {tokenizer.vocab.get(idx)!r}, not the bytes of "
              f"its pair {pair} joined in order, {want!r}")
        words = {chunk: replaced(ids, pair, idx) for chunk, ids in words.items()}
    return weighted()


def check_training(make_tokenizer, vocab_size=256 + 40):
    """Train fresh tokenizers on small texts and replay their merges (a most frequent pair each, ids in order, vocab)."""
    for text, size in ((train_text[:3000], vocab_size), ("aaaa aaa aa a  aaaaaa\n" * 5 + "abab ab ba", 256 + 12),
                       ("ab ab abc", 256 + 10), (train_text[50_000:56_000], vocab_size),
                       (OTHER_TEXTS["Russian"] + OTHER_TEXTS["French"] + " héllo wörld 👋" * 3, 256 + 30)):
        tokenizer = attempt("make_tokenizer()", make_tokenizer, hint="look at __init__")
        name = type(tokenizer).__name__
        try:
            tokenizer.train(text, size)
        except Exception as e:  # first replay the merges made before the crash: an earlier one may be the cause
            left, pattern = replay(tokenizer, text, name), getattr(tokenizer, "pattern", None)
            raise CheckFailed(f"{name}().train(text, {size}) raised {type(e).__name__} ({str(e)[:80]}) in merge "
                              f"{len(tokenizer.merges) + 1}, after {len(tokenizer.merges)} right ones: " + (
                                  "no pair was left (the text is one token), so stop merging there" if not (left or pattern) else
                                  "the counts must always be those of the current words (each chunk counted as often as it "
                                  "occurs), so a merge takes each changed word's old pairs out (a pair at 0 leaves), puts its "
                                  "new pairs in, and notes which words hold them" if pattern else
                                  "each merge must count the pairs of the ids as merged so far")) from None
        check(all(tokenizer.vocab.get(i) == bytes([i]) for i in range(256)), f"{name}.vocab must keep the 256 bytes as ids 0..255")
        made = sorted(tokenizer.merges.values())
        check(not made or len(made) >= size - 256 or made[-1] != size - 1, f"{name}.train(text, {size}) made ids up to "
              f"{made[-1] if made else 0} but holds {len(made)} merges: a pair was merged again, overwriting its entry, because "
              "the counts it was chosen from were not those of the ids as merged so far (count the merged list again)")
        left = replay(tokenizer, text, name)
        check(len(tokenizer.merges) == size - 256 or not left, f"{name}.train(text, {size}) made {len(tokenizer.merges)} "
              f"merges, not {size - 256}: vocab_size counts the 256 bytes too")
    if getattr(tokenizer, "pattern", None):  # another pattern than the default: train must split with self.pattern
        gpt2, text = attempt(f"{name}(GPT2_SPLIT_PATTERN)", make_tokenizer, GPT2_SPLIT_PATTERN), "12345 don't DON'T " * 20
        attempt(f"{name}(GPT2_SPLIT_PATTERN).train(text, 276)", gpt2.train, text, 256 + 20)
        try:
            replay(gpt2, text, f"{name}(GPT2_SPLIT_PATTERN)")
        except CheckFailed as failed:
            try:  # are its merges those of GPT-4's chunks?
                replay(types.SimpleNamespace(pattern=GPT4_SPLIT_PATTERN, merges=gpt2.merges, vocab=gpt2.vocab), text, name)
            except CheckFailed:
                raise failed from None
            raise CheckFailed(f"{name}(GPT2_SPLIT_PATTERN).train made the merges of GPT-4's chunks: it must split the "
                              "text with self.pattern, not with the default pattern") from None
    return Passed(f"{name}.train: passed (a most frequent pair each time, ids 256, 257, ... in order, vocab = the pair's bytes)")


def tiktoken_twin(tokenizer):
    """tiktoken.Encoding of the tokenizer's vocab (bytes -> id as its rank), pattern (else the whole text) and special tokens."""
    return tiktoken.Encoding(name=f"twin_{len(tokenizer.vocab)}", pat_str=getattr(tokenizer, "pattern", r"[\s\S]+"),
                             mergeable_ranks={b: i for i, b in tokenizer.vocab.items()},
                             special_tokens=getattr(tokenizer, "special_tokens", {}))


def encoded(what, encode, s, seconds=2):
    """encode(s), stopped with one sentence if it does not finish, or recurses without end, or crashes."""
    try:
        return in_time(seconds, f"{what} did not finish in {seconds} s: its loop must end when no pair present has a merge, "
                       "and count the pairs of the ids as merged so far at each turn", encode, s)
    except RecursionError:
        raise CheckFailed(f"{what} calls itself without end: each chunk's bytes go to _encode_chunk, not to encode") from None
    except CheckFailed:
        raise
    except Exception as e:
        raise CheckFailed(f"{what} raised {type(e).__name__} ({str(e)[:80]}): look at {what.split('(')[0]} (it must stop when "
                          "no pair present has a merge)") from None


def check_encode_decode(tokenizer):
    """encode equals tiktoken's on the same merges; decode(encode(s)) == s; a cut character decodes to '�'."""
    name, twin, pattern, texts = type(tokenizer).__name__, tiktoken_twin(tokenizer), getattr(tokenizer, "pattern", None), check_texts()
    bare = attempt(f"{name}()", type(tokenizer), hint="look at __init__")
    for s in ("ab", "ab cd, ef", "é中👋"):  # no merges at all: the ids are the UTF-8 bytes
        ids = encoded(f"{name}.encode({s!r}) with no merges", bare.encode, s)
        check(isinstance(ids, list) and all(isinstance(i, int) for i in ids), f"{name}().encode({s!r}) gives {str(ids)[:40]}: "
              "encode must return a flat list of ids (ints)")
        check(ids == list(s.encode("utf-8")), f"with no merges {name}().encode({s!r}) gives {ids}, not the text's UTF-8 bytes "
              f"{list(s.encode('utf-8'))}" + (": a part of the text is lost (is every chunk encoded?)" if len(ids) < len(s) else
              ": encode the text's UTF-8 bytes, not its characters' code points" if ids == [ord(c) for c in s] else ""))
    for merges in ({(97, 98): 256, (98, 99): 257, (256, 99): 258}, {(98, 99): 256, (97, 98): 257, (97, 256): 258}):
        small = attempt(f"{name}()", type(tokenizer), hint="look at __init__")
        small.merges, small.vocab = dict(merges), {i: bytes([i]) for i in range(256)}
        for (a, b), i in merges.items():
            small.vocab[i] = small.vocab[a] + small.vocab[b]
        for s in ("ab", "bc", "abc", "xabcx abc bcab"):
            ids, want = encoded(f"{name}.encode({s!r})", small.encode, s), tiktoken_twin(small).encode_ordinary(s)
            check(ids == want, f"with the merges {merges}, {name}.encode({s!r}) gives {ids}, not {want}: " + (
                "two bytes that have a merge must be merged too: make the merges in training order until no pair present "
                "has one" if len(s) == 2 else "make the merges in training order "
                "(among the pairs present, the lowest merge id first, not the latest or the most frequent)"))
    for s in texts:
        ids, want = encoded(f"{name}.encode({s[:20]!r}...)", tokenizer.encode, s, seconds=10), twin.encode_ordinary(s)
        if ids != want and pattern and [i for c in regex.findall(pattern, s) for i in tokenizer.encode(c)] == want:
            raise CheckFailed(f"{name}.encode({s[:20]!r}...) differs from tiktoken's: split the text with self.pattern first and "
                              "encode each chunk on its own (no merge crosses two chunks)")
        other = lambda: GPT2_SPLIT_PATTERN if pattern == GPT4_SPLIT_PATTERN else GPT4_SPLIT_PATTERN  # defined in section 4
        check(ids == want or not pattern or ids != tiktoken_twin(types.SimpleNamespace(pattern=other(), vocab=tokenizer.vocab)
              ).encode_ordinary(s), f"{name}.encode({s[:20]!r}...) splits the text with another pattern than self.pattern")
        at = next((i for i, (a, b) in enumerate(zip(ids, want)) if a != b), min(len(ids), len(want)))
        check(ids == want, f"{name}.encode({s[:20]!r}...) gives {ids[at:at + 4]} from token {at} on, tiktoken on the same "
              f"merges {want[at:at + 4]}: " + ("encode the text's UTF-8 bytes, not its characters' code points" if not s.isascii()
              else "make the merges in training order (among the pairs present, the lowest merge id first)"))
        back = attempt(f"{name}.decode(encode({s[:20]!r}...))", tokenizer.decode, ids, hint=f"look at {name}.decode")
        if back != s:
            one_by_one = "".join(attempt(f"{name}.decode([{i}])", tokenizer.decode, [i], hint=f"look at {name}.decode") for i in ids)
            joined = b"".join(tokenizer.vocab.get(i, b"") for i in ids)
            raise CheckFailed(f"{name}.decode(encode(s)) gives {back[:20]!r}..., not s = {s[:20]!r}..." + (
                ": it decodes each token on its own, which breaks a character whose bytes are in two tokens; join all "
                "the bytes first, then decode once" if back == one_by_one and
                back == "".join(tokenizer.vocab.get(i, b"").decode("utf-8", "replace") for i in ids) else
                ": the tokens' bytes joined are s's UTF-8 bytes, so read them as UTF-8" if joined.decode("utf-8", "replace") == s
                else ""))
    cut = tokenizer.encode("é")[:1]  # the first of the two bytes of 'é'
    got = attempt(f"{name}.decode({cut}), half of 'é',", tokenizer.decode, cut,
                  hint="a list of tokens may end inside a character: decode with errors='replace'")
    check(got == "\ufffd", f"{name}.decode({cut}), half of 'é', gives {got!r}, not '\ufffd': decode with errors='replace'")
    return Passed(f"{name}.encode and decode: passed (tiktoken's ids on {len(texts)} texts, the text back, '�' for a cut character)")


# %%
check_training(BasicTokenizer)  # first train alone, on small texts of the check's own
basic = BasicTokenizer()
basic.train(train_text[:20_000], 256 + 12, verbose=True)
check_encode_decode(basic)

# %% [markdown]
# The first merges are English's commonest pairs: a letter and the space after it, `th`, `ou`, a
# comma and its space. Twelve of them already shorten the text by about a sixth:

# %%
ids = basic.encode(train_text[:20_000])
print(f"{len(train_text[:20_000].encode('utf-8')):,} bytes -> {len(ids):,} tokens after 12 merges")

# %% [markdown]
# Trained this way on the whole training split, each merge would count and rewrite a million ids
# in Python. One merge, timed:

# %% tags=["nbval-ignore-output"]
all_ids = list(train_text.encode("utf-8"))
t0 = time.perf_counter()
stats = get_stats(all_ids)
all_ids = merge(all_ids, max(stats, key=stats.get), 256)
naive_seconds = time.perf_counter() - t0
print(f"one merge over {len(train_text.encode('utf-8')):,} bytes: {naive_seconds:.2f} s; the 1,792 merges of a 2,048-token vocabulary "
      f"would take about {naive_seconds * 1792 / 60:.0f} min (fewer ids each time, but not many fewer)")

# %% [markdown]
# ## 4. Split first: the GPT-2 and GPT-4 patterns [▶ 0:57:36](https://www.youtube.com/watch?v=zduSFxRajkE&t=3456s)
#
# BPE on raw text merges across words: `e` with the space after it, `dog` with the `.`, `!` or `?`
# that follows, spending tokens on every combination. GPT-2 first cuts the text into chunks with a
# regular expression and merges only inside a chunk: letters, digits and punctuation never share a
# token, and a word carries its leading space (` the`). GPT-4's pattern also takes contractions in
# any case (`'S`), digits in groups of at most three, and newlines apart from the spaces before them.

# %%
GPT2_SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
GPT4_SPLIT_PATTERN = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
example = "HOW'S it going? 1234567 dogs!!!\n   hello  world"
for name, pattern in (("GPT-2", GPT2_SPLIT_PATTERN), ("GPT-4", GPT4_SPLIT_PATTERN)):
    print(f"{name}: {regex.findall(pattern, example)}")

# %% [markdown]
# ## 5. The regex tokenizer, trained in seconds
#
# minbpe's `RegexTokenizer` trains on the chunks. Two changes make that fast without changing what
# it learns. Most chunks repeat (the training split is 236,405 chunks, only 14,312 different ones):
# train on each *different* chunk once, weighted by its count (`chunk_stats`). And a merge changes
# only the chunks that hold its pair: take their pairs out of the counts, merge, put their new pairs
# back in, instead of counting everything again (`where` remembers which chunks hold each pair).

# %%
def chunk_stats(words, counts):
    """{pair: count} over the words, each pair as often as its chunk occurs, and {pair: the words that hold it}."""
    stats, where = {}, collections.defaultdict(set)
    for w, ids in enumerate(words):
        for pair in zip(ids, ids[1:]):
            stats[pair] = stats.get(pair, 0) + counts[w]
            where[pair].add(w)
    return stats, where


# %%
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


# %%
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


# %% [markdown]
# Encoding splits the same way and encodes each chunk on its own with the basic tokenizer's
# `_encode_chunk`.

# %%
def encode_ordinary(self, text):
    """The token ids of text, any special token in it read as ordinary text: each chunk of the pattern encoded alone."""
    ids = []
    for chunk in self.compiled_pattern.findall(text):
        ids.extend(self._encode_chunk(chunk.encode("utf-8")))
    return ids


RegexTokenizer.encode_ordinary = encode_ordinary
RegexTokenizer.encode = encode_ordinary  # until section 6 adds the special tokens

# %% [markdown]
# **Check**, as for the basic tokenizer, now with the pattern:

# %%
check_training(RegexTokenizer)
small = RegexTokenizer()
small.train(train_text[:20_000], 256 + 60)
check_encode_decode(small)

# %% [markdown]
# Then the real thing, on the whole training split, from scratch in every run: 2,048 tokens (1.0 s
# in the stored run, where the basic tokenizer would need about 5 min), and 512, whose merges must
# be the first 256 of the larger vocabulary's (BPE makes one merge after another, so a smaller
# vocabulary is a prefix of a larger one).

# %% tags=["nbval-ignore-output"]
t0 = time.perf_counter()
tokenizer = RegexTokenizer()
tokenizer.train(train_text, 2048)
train_seconds = time.perf_counter() - t0
tokenizer_512 = RegexTokenizer()
tokenizer_512.train(train_text, 512)
print(f"2,048 tokens trained in {train_seconds:.1f} s (pure Python), 512 in {time.perf_counter() - t0 - train_seconds:.1f} s")

# %%
chunks = collections.Counter(tokenizer.compiled_pattern.findall(train_text))
print(f"{len(train_text):,} characters, {sum(chunks.values()):,} chunks, {len(chunks):,} different; {len(tokenizer.merges):,} merges")
check(list(tokenizer.merges.items())[:256] == list(tokenizer_512.merges.items()),
      "the 512 tokens' merges must be the first 256 of the 2,048's: does train depend on vocab_size before its last merge?")
print("the last merges:", [tokenizer.vocab[i].decode() for i in range(2040, 2048)])
print("the longest tokens:", [t.decode() for t in sorted(tokenizer.vocab.values(), key=len)[-8:]])

# %% [markdown]
# ## 6. Special tokens [▶ 1:18:26](https://www.youtube.com/watch?v=zduSFxRajkE&t=4706s)
#
# GPT-2 separates documents with `<|endoftext|>`, a token with an id of its own after all the
# merged ones, which no text can make by accident: the regex would cut the string into `<|`,
# `endoftext` and `|>`. So special tokens are cut out of the text *before* the regex, and only where
# the caller allows it (`allowed_special="all"`); by default `encode` refuses a text that holds one,
# as tiktoken does, so that text from a user cannot fake a document boundary.

# %%
def register_special_tokens(self, special_tokens):
    """Add tokens such as {'<|endoftext|>': 2048} that stand for themselves and are never merged."""
    self.special_tokens = dict(special_tokens)
    self.inverse_special_tokens = {idx: token for token, idx in special_tokens.items()}


def encode_with_special(self, text, allowed_special="none_raise"):
    """Special tokens in text become their ids ('all'), are refused ('none_raise') or are ordinary text ('none')."""
    if allowed_special == "none_raise" and any(token in text for token in self.special_tokens):
        raise ValueError("the text holds a special token: encode(text, allowed_special='all') makes it one token")
    special = self.special_tokens if allowed_special == "all" else {}
    if not special:
        return self.encode_ordinary(text)
    parts = regex.split("(" + "|".join(regex.escape(token) for token in special) + ")", text)  # keeps the tokens
    return [idx for part in parts for idx in ([special[part]] if part in special else self.encode_ordinary(part))]


# %%
def decode_with_special(self, ids):
    """decode, with the special tokens' ids turned back into their text."""
    parts = (self.vocab[idx] if idx in self.vocab else self.inverse_special_tokens[idx].encode("utf-8") for idx in ids)
    return b"".join(parts).decode("utf-8", errors="replace")


RegexTokenizer.register_special_tokens = register_special_tokens
RegexTokenizer.encode = encode_with_special
RegexTokenizer.decode = decode_with_special

# %% [markdown]
# **Check**, on a copy of the tokenizer with two special tokens of its own (so it runs before ours
# are registered): with `allowed_special="all"` each special token must be one id and the rest
# ordinary tokens (tiktoken's ids on the same merges); with `"none"` everything ordinary text; by
# default a `ValueError`; and decoding gives the documents back.

# %% jupyter={"source_hidden": true} cellView="form"
#@title The check of the special tokens (folded)
def check_special_tokens(trained):
    """On a copy of trained with two special tokens of the check's own: encode(text, allowed_special=...) against
    tiktoken's on the same merges; a refusal by default; decode back."""
    name, n = type(trained).__name__, len(trained.vocab)
    tokenizer = attempt(f"{name}(pattern)", type(trained), getattr(trained, "pattern", GPT4_SPLIT_PATTERN), hint="look at __init__")
    tokenizer.merges, tokenizer.vocab, given = dict(trained.merges), dict(trained.vocab), {"<|endoftext|>": n, "<|sep|>": n + 1}
    attempt(f"{name}.register_special_tokens({given})", tokenizer.register_special_tokens, dict(given),
            hint="special_tokens is a dict {token: id}")
    check(getattr(tokenizer, "special_tokens", None) == given, f"{name}.register_special_tokens({given}) must keep them as "
          "self.special_tokens, {token: id}")
    twin, (eot, sep) = tiktoken_twin(tokenizer), given
    for text in (f"First Citizen:{eot}ROMEO:", f"{eot}{sep} a{eot}", f"x {sep}\n", eot, f"héllo wörld 👋{sep}Все люди{eot}"):
        ids = attempt(f"{name}.encode({text!r}, allowed_special='all')", tokenizer.encode, text, allowed_special="all",
                      hint="with allowed_special='all' each special token gets its id")
        want = twin.encode(text, allowed_special="all")
        cut_up = ids == twin.encode_ordinary(text)
        for token, idx in ((t, i) for t, i in given.items() if t in text):
            check(idx in ids, f"{name}.encode({text!r}, allowed_special='all') holds no {idx}: " + (
                "only some special tokens are cut out: split the text at every registered one" if set(given.values()) & set(ids)
                else "the special token was cut up: split the text at the special tokens first, each matched literally "
                "(regex.escape)" if cut_up else "keep each special token when splitting the text at them (a capturing "
                "group in regex.split), and give it its id"))
        check(ids == want, f"{name}.encode({text!r}, allowed_special='all') gives {ids}, not tiktoken's {want}: each special "
              "token one id, the text between them encoded as usual")
        plain = attempt(f"{name}.encode({text!r}, allowed_special='none')", tokenizer.encode, text, allowed_special="none",
                        hint="with allowed_special='none' a special token is ordinary text: encode it, refuse nothing")
        check(plain == twin.encode_ordinary(text), f"{name}.encode({text!r}, allowed_special='none') must be all ordinary text")
        try:
            said = f"gives {tokenizer.encode(text)[:6]}"
        except ValueError:
            said = None
        except Exception as e:
            said = f"raises {type(e).__name__}"
        check(said is None, f"{name}.encode({text!r}) {said}: it must raise ValueError, as tiktoken does (a special token "
              "counts only where allowed_special='all' says so)")
        back = attempt(f"{name}.decode({ids})", tokenizer.decode, ids, hint="a special token's id decodes to its text")
        one_by_one = "".join(tokenizer.vocab[i].decode("utf-8", "replace") if i in tokenizer.vocab else
                             tokenizer.inverse_special_tokens.get(i, "") for i in ids)
        check(back == text, f"{name}.decode({ids[:8]}...) gives {back!r}, not {text!r}: " + (
            "it decodes each token on its own, which breaks a character whose bytes are in two tokens" if back == one_by_one
            else "a special token's id decodes to its text"))
    return Passed(f"{name}'s special tokens: passed (one id each where allowed, tiktoken's ids, refused by default, decoded back)")


# %%
check_special_tokens(tokenizer)  # on a copy, with special tokens of its own
tokenizer.register_special_tokens({"<|endoftext|>": 2048})
tokenizer_512.register_special_tokens({"<|endoftext|>": 512})

# %% [markdown]
# Two documents joined by `<|endoftext|>`: one id where it is allowed, nine ordinary tokens where not.

# %%
documents = "First Citizen:<|endoftext|>ROMEO:"
print(tokenizer.encode(documents, allowed_special="all"))
print(tokenizer.encode(documents, allowed_special="none"))

# %% [markdown]
# ## 7. The oracle: tiktoken on our own merges [▶ 1:11:38](https://www.youtube.com/watch?v=zduSFxRajkE&t=4298s)
#
# OpenAI's `tiktoken` does the same encoding in Rust. It describes a tokenizer by its
# `mergeable_ranks`, `{bytes of a token: its rank}` (inside a chunk it merges, again and again, the
# adjacent pair whose joined bytes have the lowest rank), where ours has `merges`, `{(id, id): new
# id}`. A token made earlier has a lower id, so our ids are ranks already: the conversion only
# spells out each token's bytes. Nothing is downloaded.

# %%
def mergeable_ranks(tokenizer):
    """tiktoken's description of a tokenizer: {the bytes of every token: its rank}, the rank being its id."""
    vocab = {idx: bytes([idx]) for idx in range(256)}
    for (p0, p1), idx in tokenizer.merges.items():  # in training order, so both halves are spelled out already
        vocab[idx] = vocab[p0] + vocab[p1]
    return {token_bytes: idx for idx, token_bytes in vocab.items()}


# %% jupyter={"source_hidden": true} cellView="form"
#@title The check of mergeable_ranks (folded)
def check_mergeable_ranks(mergeable_ranks, tokenizer):
    """mergeable_ranks(tokenizer): {bytes: rank}, every byte b at rank b, every merged token its pair's bytes at its id."""
    try:
        ranks = mergeable_ranks(tokenizer)
    except KeyError as e:
        raise CheckFailed(f"mergeable_ranks(tokenizer) raised KeyError ({e}): a token's bytes were needed before they "
                          "were spelled out, so go through the merges in the order they were made") from None
    except Exception as e:
        raise CheckFailed(f"mergeable_ranks(tokenizer) raised {type(e).__name__} ({str(e)[:80]}): a token's bytes are the "
                          "bytes of its pair's tokens joined (an id above 255 is no byte)") from None
    check(isinstance(ranks, dict) and all(isinstance(b, bytes) and isinstance(r, int) for b, r in ranks.items()),
          "mergeable_ranks must return a dict {bytes of a token: its rank (an int)}")
    check(all(ranks.get(bytes([b])) == b for b in range(256)), "in mergeable_ranks each single byte b must have rank b")
    by_rank = {r: b for b, r in ranks.items()}
    check(len(ranks) == len(by_rank) == 256 + len(tokenizer.merges), f"mergeable_ranks holds {len(ranks):,} tokens and "
          f"{len(by_rank):,} ranks, not {256 + len(tokenizer.merges):,}: one entry for every byte and every merge")
    for (p0, p1), idx in tokenizer.merges.items():
        want = by_rank.get(p0, b"?") + by_rank.get(p1, b"?")
        check(by_rank.get(idx) == want, f"mergeable_ranks gives rank {idx} to {by_rank.get(idx)!r}, but merge {(p0, p1)} -> {idx} "
              f"makes {want!r}: the bytes of the pair's first token, then of its second")
    return Passed(f"mergeable_ranks: passed ({len(ranks):,} tokens, each byte at its own rank, each merge's bytes at its id)")


# %%
check_mergeable_ranks(mergeable_ranks, tokenizer)
enc = tiktoken.Encoding(name="shakespeare_2048", pat_str=tokenizer.pattern, mergeable_ranks=mergeable_ranks(tokenizer),
                        special_tokens=tokenizer.special_tokens)
enc_512 = tiktoken.Encoding(name="shakespeare_512", pat_str=tokenizer_512.pattern,
                            mergeable_ranks=mergeable_ranks(tokenizer_512), special_tokens=tokenizer_512.special_tokens)
val_ids = tokenizer.encode(val_text)
check(val_ids == enc.encode(val_text), "our encode and tiktoken's differ on the validation text at 2,048 tokens")
check(tokenizer_512.encode(val_text) == enc_512.encode(val_text), "our encode and tiktoken's differ at 512 tokens")
print(f"validation text: {len(val_text):,} characters -> {len(val_ids):,} tokens, the same ids as tiktoken's")
check_encode_decode(tokenizer)

# %% [markdown]
# The same ids on the whole validation text at both sizes, on other languages and code, and on
# random Unicode; the tests add a property test in which `hypothesis` draws any string.
#
# ## 8. What the tokens do to a text [▶ 1:51:41](https://www.youtube.com/watch?v=zduSFxRajkE&t=6701s)
#
# **Leading spaces.** The space belongs to the word after it: `the` at the start of a line and
# ` the` after a space are different tokens, `The` and ` The` two more, and the model must learn
# each on its own. Some have no token of their own at all.

# %%
pieces = lambda tok, s: [tok.decode([idx]) for idx in tok.encode(s)]
for s in ("the", " the", "The", " The", " THE", "\nthe", " thee"):
    print(f"{s!r:>8} -> {tokenizer.encode(s)} {pieces(tokenizer, s)}")

# %% [markdown]
# **Digits.** GPT-4's pattern cuts a number into groups of three from the left, so the same digits
# fall into different groups as the number grows; tiny Shakespeare has few digits, so ours stay
# single bytes.

# %%
for s in (" 1599", " 12345", " 1234567", " 3.14159"):
    print(f"{s!r:>11} -> {regex.findall(GPT4_SPLIT_PATTERN, s)} -> {pieces(tokenizer, s)}")

# %% [markdown]
# **A cut character.** Non-ASCII characters never occur in tiny Shakespeare, so they stay bytes:
# `é` is two tokens, and decoding the first alone gives '�' (without `errors="replace"`, an error).
# Decoding token by token, as a streaming printer might, breaks every such character.

# %%
ids = tokenizer.encode("café")
print(ids, repr(tokenizer.decode(ids[:-1])), repr(tokenizer.decode(ids)))
try:
    b"".join(tokenizer.vocab[i] for i in ids[:-1]).decode("utf-8")  # errors="strict", Python's default
except UnicodeDecodeError as e:
    print(f"UnicodeDecodeError: {e}")
print("token by token:", repr("".join(tokenizer.decode([i]) for i in tokenizer.encode("naïve café"))))

# %% [markdown]
# **Its own language.** A vocabulary compresses the text it was trained on. Shakespeare's
# validation text needs the fewest tokens per character; modern English more; French and German
# more still; Russian and Chinese were never seen, so each character costs its two or three UTF-8
# bytes, one token each: more tokens than characters. (Notebook 01's 65 characters cannot write
# them at all.)

# %%
print(f"{'text':<26} {'chars':>7} {'512 tokens':>11} {'2,048 tokens':>13} {'chars per token':>16}")
for label, s in {"Shakespeare (validation)": val_text, **OTHER_TEXTS}.items():
    n512, n2048 = len(tokenizer_512.encode(s)), len(tokenizer.encode(s))
    print(f"{label:<26} {len(s):>7,} {n512:>11,} {n2048:>13,} {len(s) / n2048:>16.2f}")

# %% [markdown]
# ## 9. How fast: our Python against tiktoken's Rust
#
# Both encoders on the whole text, taking turns, three rounds each: the median and the spread.

# %% tags=["nbval-ignore-output"]
timed_text = val_text if SMOKE else text  # smoke mode: the validation text only
times = {"ours (Python)": [], "tiktoken (Rust)": []}
for _ in range(1 if SMOKE else 3):
    for label, encode_fn in (("ours (Python)", tokenizer.encode), ("tiktoken (Rust)", enc.encode)):
        t0 = time.perf_counter()
        encode_fn(timed_text)
        times[label].append(time.perf_counter() - t0)
for label, ts in times.items():
    print(f"{label:<16} {statistics.median(ts):6.3f} s ({min(ts):.3f}-{max(ts):.3f}) for {len(timed_text):,} characters: "
          f"{len(timed_text) / statistics.median(ts) / 1e6:.2f} M characters/s")
print(f"tiktoken: {statistics.median(times['ours (Python)']) / statistics.median(times['tiktoken (Rust)']):.0f}x faster")

# %% [markdown]
# In the stored run our encoder took 1.351 s for the whole text and tiktoken 0.055 s: 25 times
# faster, far outside the spread of the rounds. Ours is not slower still only because Shakespeare's
# chunks are short, a few bytes each, so the `while` loop of `_encode_chunk` turns a few times per
# chunk; on long chunks (code, long numbers, languages the merges never saw) its cost grows with
# the square of a chunk's length. tiktoken is compiled Rust, and looks a chunk that is one whole
# token up in a single step.

# %% [markdown]
# ## Summary
#
# - Text is UTF-8 bytes; BPE counts adjacent pairs (`get_stats`, overlapping pairs too), merges the
#   most frequent (`merge`, from the left), and repeats: `merges` in training order and `vocab`, the
#   bytes of every token, are the whole tokenizer.
# - `encode` applies the merges in training order (the lowest id first), never the most frequent
#   pair of the new text; `decode` joins all bytes before reading UTF-8, with `errors="replace"`.
# - GPT-2's and GPT-4's regex patterns keep merges inside words, numbers and punctuation; special
#   tokens are cut out before the regex and only where allowed.
# - Trained on the unique chunks with their counts, and counts updated rather than redone, the
#   2,048-token vocabulary trains in about a second in pure Python; tiktoken built from its merges
#   gives the same ids everywhere (checked here and by a property test), and encodes 24x faster.
# - Notebook 10b uses this tokenizer to answer notebook 01's open question: for the same seconds of
#   training, does notebook 05's GPT learn Shakespeare better from these tokens or from characters?
#
# ## Exercises
#
# 1. Give `RegexTokenizer.encode_ordinary` a cache `{chunk: ids}` and time it again against tiktoken
#    on the whole text. How much of the gap closes, and why does Shakespeare suit a cache so well?
# 2. Train on `GPT2_SPLIT_PATTERN` instead of GPT-4's. Which tokens change (look at numbers and
#    newlines), and does `tiktoken` with that pattern still give the same ids?
# 3. Train a 2,048-token vocabulary on *War and Peace* (`datasets/warpeace.txt`, or any English text
#    of your own) and count the tokens per character of Shakespeare's validation text with it, against
#    the vocabulary trained on Shakespeare: how much does its own language matter?
