# %% [markdown]
# # 09 · A modern GPT, one lever at a time
#
# Notebook 05 made the lecture's GPT fast; on a CPU its step time is now close to what the machine
# can do, so the next gain must come from learning more per step. That is what the changes of the
# last few years did: the [nanoGPT speedrun](https://github.com/KellerJordan/modded-nanogpt) went
# from 45 minutes to under 3 on 8 H100s mostly through a handful of them, and
# [nanochat](https://github.com/karpathy/nanochat) uses them today. This notebook starts from
# notebook 05's race model and changes one thing of the model per section: **RMSNorm**, **rotary
# positions** (and what they free: no `block_size` table), **QK-norm** (and what it prevents,
# measured), **ReLU²**, **zero-initialised output projections without biases**. Each piece gets a
# check that says in one sentence what is wrong. The result, `ModernGPT`, has every lever as a
# switch; with every lever off it is notebook 05's model, weight for weight.
#
# Reading order: after 05; next, notebook 09b trains this model with the **Muon** optimizer and a
# **warmup–stable–decay** schedule, measures every lever on a budget of seconds, and races it.
# Standalone (it downloads its data) and a script: `python notebooks/09_modern_gpt.py`.

# %%
import argparse, hashlib, math, os, pathlib, platform, sys, tempfile, urllib.request
from dataclasses import dataclass, replace
import torch
import torch.nn as nn
from torch.nn import functional as F
import matplotlib
if "ipykernel" not in sys.modules:
    matplotlib.use("Agg")  # as a script, figures are saved as PNG files instead of opening windows
import matplotlib.pyplot as plt

SMOKE = os.environ.get("COURSE_SMOKE") == "1"  # set by the tests: tiny sizes and few steps
IN_NOTEBOOK = "ipykernel" in sys.modules        # False when run as a script
RUN_NAME = "09_modern_gpt"                      # as a script, figures go to runs/09_modern_gpt/

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
# %% jupyter={"source_hidden": true} cellView="form"
#@title Plumbing of this notebook: the command line (folded; `--help` lists it)
def parse_args(argv=None):
    """The flags (argv=[] gives the defaults); --race, which now lives in notebook 09b, is answered in one line."""
    argv = sys.argv[1:] if argv is None else argv
    p = Parser(prog="09_modern_gpt.py", description="A modern GPT, one lever at a time (the race: 09b_muon_and_the_race.py).")
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "mps", "cpu"],
                   help="where the two measurements train (default: the fastest there is)")
    if "--race" in argv:
        p.exit(2, "error: the race now lives in notebook 09b: python notebooks/09b_muon_and_the_race.py --race "
                  "(its --help lists every flag)\n")
    return p.parse_args(argv)


args = parse_args([] if IN_NOTEBOOK else None)
device = pick_device(args.device)  # a device this machine lacks stops here, in one line, before anything runs

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
# ## 1. RMSNorm
#
# The lecture's LayerNorm (1:32:51 in the video) subtracts each token's mean, divides by its
# standard deviation, then multiplies by a learned gain and adds a learned bias. RMSNorm ([Zhang and
# Sennrich, 2019](https://arxiv.org/abs/1910.07467)) keeps only the division, by the root mean
# square `sqrt(mean(x²) + eps)` over the channels, and the gain: no mean, no bias, fewer operations,
# and in practice as good. LLaMA, the speedrun and nanochat use it. `rms_norm` is the function (also
# used bare, without a gain, in section 3); `RMSNorm` the layer with its gain.

# %%
def rms_norm(x, eps=1e-6):
    """x (..., C) divided by its root mean square over the last dimension: no mean, no gain."""
    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)  # (..., C)


class RMSNorm(nn.Module):
    """rms_norm followed by a learned gain per channel (no bias)."""

    def __init__(self, n_embd, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(n_embd))  # (C,) the gain, 1 at the start

    def forward(self, x):
        return rms_norm(x, self.eps) * self.weight  # (B, T, C)


# %% [markdown]
# **Check.** PyTorch's own `F.rms_norm` is the oracle: on inputs of several shapes, some far from
# zero mean, some tiny, `rms_norm` must agree with it; `RMSNorm` must agree with `nn.RMSNorm` given
# the same random gain, hold only that gain, and leave its input as it was.

# %% jupyter={"source_hidden": true} cellView="form"
#@title Plumbing of this notebook: the check of rms_norm and RMSNorm (folded)
def rms_suspects(x, eps):
    """Likely mistakes in an RMS norm, each with what it computes on x."""
    ms = x.pow(2).mean(-1, keepdim=True)
    return {"it subtracts the mean first, which is LayerNorm: RMSNorm divides x itself by sqrt(mean(x**2) + eps)":
            F.layer_norm(x, x.shape[-1:], eps=eps),
            "it divides by mean(x**2) without the square root": x / (ms + eps),
            "it divides by the sum of the squares, not their mean: take .mean(dim=-1)": x * torch.rsqrt(x.pow(2).sum(-1, keepdim=True) + eps),
            "it divides by the standard deviation (x.std), which subtracts the mean: use sqrt(mean(x**2) + eps)": x / (x.std(-1, keepdim=True) + eps),
            "it multiplies by the root mean square instead of dividing by it (rsqrt, or 1 / sqrt)": x * torch.sqrt(ms + eps)}


def check_rms_norm(rms_norm, RMSNorm):
    """rms_norm against F.rms_norm and RMSNorm against nn.RMSNorm, on inputs of several shapes and scales."""
    torch.manual_seed(0)
    for shape, scale, shift in (((2, 5, 8), 1.0, 0.0), ((3, 4, 7, 16), 3.0, 2.0), ((1, 1, 32), 0.1, 0.0), ((6, 12), 1.0, -1.0)):
        x = torch.randn(shape) * scale + shift
        before = x.clone()
        y = attempt(f"rms_norm on x of shape {shape}", rms_norm, x, eps=1e-6, hint="normalise over dim=-1 with keepdim=True")
        check(torch.equal(x, before), "rms_norm changed its input in place: return a new tensor and leave x as it was")
        check(isinstance(y, torch.Tensor) and y.shape == x.shape, f"rms_norm(x) should keep x's shape {shape}, got "
              f"{tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__}: keepdim=True on the mean")
        if not torch.allclose(y, F.rms_norm(x, shape[-1:], eps=1e-6), rtol=1e-4, atol=1e-5):
            cause = next((c for c, r in rms_suspects(x, 1e-6).items() if torch.allclose(y, r, rtol=1e-4, atol=1e-5)),
                         "each token's vector divided by sqrt(mean(x**2) + eps) over the channels, dim=-1")
            raise CheckFailed(f"rms_norm differs from F.rms_norm on x of shape {shape}: {cause}")
    layer = attempt("RMSNorm(16)", RMSNorm, 16)
    params = dict(layer.named_parameters())
    check(list(params) == ["weight"] and params["weight"].shape == (16,), f"RMSNorm(16) holds {list(params)}: it needs one "
          "gain, weight, of shape (C,), and no bias")
    check(torch.equal(params["weight"].detach(), torch.ones(16)), "RMSNorm's gain does not start at 1: torch.ones(n_embd)")
    oracle = nn.RMSNorm(16, eps=1e-6)
    with torch.no_grad():
        layer.weight.copy_(torch.rand(16) + 0.5)
        oracle.weight.copy_(layer.weight)
        x = torch.randn(3, 5, 16) + 1.0
        check(torch.allclose(attempt("RMSNorm", layer, x), oracle(x), rtol=1e-4, atol=1e-5), "RMSNorm differs from "
              "nn.RMSNorm with the same gain: multiply rms_norm(x) by the gain self.weight")
    return Passed("rms_norm and RMSNorm: passed (equal to F.rms_norm and nn.RMSNorm at four shapes and scales)")


# %%
check_rms_norm(rms_norm, RMSNorm)

# %% [markdown]
# ## 2. Rotary position embeddings
#
# The lecture adds a learned vector per position to each token, from a table of `block_size` rows.
# RoPE ([Su et al., 2021, "RoFormer"](https://arxiv.org/abs/2104.09864)) instead turns every query
# and key by an angle proportional to its position, just before the scores. A head's `hs` channels
# are read as `hs/2` pairs, channel `i` with channel `i + hs/2`; at position `t`, pair `i` turns by
# `t · θ_i`, with `θ_i = 10000^(-2i/hs)`. Turning `q` by `m·θ` and `k` by `n·θ` changes their dot
# product only through `(m - n)·θ`: a score depends on how far apart two tokens are, not where
# they are. Notebook 06c's exercise 4c builds the same function; here it is used in every layer.

# %%
def rotary(x, base=10000):
    """x (B, nh, T, hs) with channel pair (i, i + hs/2) at position t turned by the angle t * base**(-2i/hs)."""
    T, hs = x.shape[-2], x.shape[-1]
    theta = base ** (-2 * torch.arange(hs // 2, device=x.device) / hs)  # (hs/2,) each pair's speed
    angles = torch.arange(T, device=x.device)[:, None] * theta[None, :]  # (T, hs/2)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)  # (T, hs/2) each
    x1, x2 = x[..., :hs // 2], x[..., hs // 2:]  # (B, nh, T, hs/2) each
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)  # (B, nh, T, hs)


# %% [markdown]
# **Check**, by properties any correct rotation has, at three shapes: each pair keeps its length,
# position 0 is left alone, and the property that matters: `rotary(q) · rotary(k)` for a query at
# position `m` and a key at `n` depends only on `m - n` (the same on every diagonal of the score
# matrix), for random `q`, `k`; and the angle of pair `i` at position `t` is `t · θ_i` (either way round).

# %% jupyter={"source_hidden": true} cellView="form"
#@title Plumbing of this notebook: the check of rotary (folded)
PAIRINGS = (lambda t: (t[..., :t.shape[-1] // 2], t[..., t.shape[-1] // 2:]),  # pairs (i, i + hs/2), as here
            lambda t: (t[..., 0::2], t[..., 1::2]))  # pairs (2i, 2i + 1), as in RoFormer: correct too


def pair_angles(x, y, pairs):
    """The angle (..., hs/2) by which each pair of x (as pairs splits it) turned to become y's."""
    (x1, x2), (y1, y2) = pairs(x), pairs(y)
    return torch.atan2(x1 * y2 - x2 * y1, x1 * y1 + x2 * y2)


def check_rotary(rotary):
    """rotary(x) for x (B, nh, T, hs): pair lengths kept, position 0 still, scores relative, angles t * θ_i."""
    torch.manual_seed(0)
    for B, nh, T, hs in ((2, 3, 12, 8), (1, 2, 5, 16), (3, 1, 1, 4)):
        x = torch.randn(B, nh, T, hs)
        before = x.clone()
        y = attempt(f"rotary on x of shape (B, nh, T, hs) = {(B, nh, T, hs)}", rotary, x, hint="T and hs are x.shape[-2:], the angles (T, hs/2)")
        check(torch.equal(x, before), "rotary changed its input in place: return a new tensor and leave x as it was")
        check(isinstance(y, torch.Tensor) and y.shape == x.shape, f"rotary(x) should keep x's shape {(B, nh, T, hs)}, got "
              f"{tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__}")
        length = lambda t, pairs: sum(h ** 2 for h in pairs(t))  # (B, nh, T, hs/2) squared length of each pair
        pairs = next((p for p in PAIRINGS if torch.allclose(length(y, p), length(x, p), atol=1e-4)), None)
        check(pairs is not None, "rotary changes the length of the pairs (i, i + hs/2): it must only turn each pair by its "
              "angle, with x1 the first half of the channels and x2 the second (or the even and the odd ones, in and out)")
        check(torch.allclose(y[:, :, 0], x[:, :, 0], atol=1e-6), "rotary moves position 0, whose angle t * θ_i is 0: number "
              "the positions from 0 (torch.arange(T)) and turn by cos and sin of the angle")
        q, k = torch.randn(hs), torch.randn(hs)
        scores = rotary(q.expand(1, 1, T, hs))[0, 0] @ rotary(k.expand(1, 1, T, hs))[0, 0].T  # (T, T): q at m, k at n
        check(all(torch.allclose(scores.diagonal(s), scores.diagonal(s)[:1].expand(T - abs(s)), atol=1e-4)
                  for s in range(-T + 1, T)), "rotary(q) · rotary(k) depends on the positions m and n themselves, not only "
              "on m - n: every angle must be the position t times a fixed speed θ_i per pair")
        wanted = torch.arange(T)[:, None] * 10000 ** (-2 * torch.arange(hs // 2) / hs)  # (T, hs/2)
        wrap = lambda a: torch.remainder(a + math.pi, 2 * math.pi) - math.pi  # an angle in [-pi, pi)
        got = pair_angles(x, y, pairs)  # (B, nh, T, hs/2)
        check(min(wrap(got - sign * wanted).abs().max() for sign in (1, -1)) < 1e-3, f"rotary turns the pairs by other "
              f"angles than t * θ_i with θ_i = 10000**(-2i/hs) at hs = {hs} (look at the exponent and the base)")
    return Passed("rotary: passed (pairs turned by t * θ_i at three shapes; rotary(q) · rotary(k) depends only on m - n)")


# %%
check_rotary(rotary)

# %% [markdown]
# ## 3. QK-norm, in the attention layer
#
# A score is `q · k / sqrt(hs)`. Nothing bounds it: at a high learning rate the queries and keys can
# grow until a softmax saturates on one key, its gradient vanishes, and training stalls or spikes
# ([Dehghani et al., 2023](https://arxiv.org/abs/2302.05442); [Wortsman et al., 2023](https://arxiv.org/abs/2309.14322)).
# QK-norm passes each head's queries and keys through `rms_norm` first, so each has length `sqrt(hs)`
# and every score lies within `±sqrt(hs)`. The attention below is notebook 05's batched heads with
# `scaled_dot_product_attention`, plus the two optional steps on `q` and `k`: QK-norm and RoPE.
# `config` is a `ModernConfig` (the next cell), which says which levers are on.

# %%
class ModernAttention(nn.Module):
    """Causal self-attention with batched heads; optionally RMS-normed queries and keys, and rotary positions."""
    def __init__(self, config):
        super().__init__()
        self.config, self.n_head, self.max_logit = config, config.n_head, None  # None: not recording; set 0.0 to record the largest |score|
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=False)  # query, key, value of all heads
        self.proj, self.dropout = nn.Linear(config.n_embd, config.n_embd, bias=config.bias), nn.Dropout(config.dropout)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in self.qkv(x).split(C, dim=2))  # (B, nh, T, hs)
        if self.config.qk_norm:
            q, k = rms_norm(q), rms_norm(k)  # (B, nh, T, hs) each, of length sqrt(hs)
        if self.config.rope:
            q, k = rotary(q), rotary(k)  # (B, nh, T, hs) each, turned by position
        if self.max_logit is not None:
            self.max_logit = max(self.max_logit, (q @ k.transpose(-2, -1)).abs().max().item() * (C // self.n_head)**-0.5)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.config.dropout if self.training else 0.0)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, nh, T, hs) -> (B, T, C): the heads side by side again
        return self.dropout(self.proj(y))  # (B, T, C)


# %% [markdown]
# Every lever of this notebook is one field of the configuration. The defaults are notebook 05's
# CPU race model; notebook 09b's ladder turns the levers on one by one.

# %%
@dataclass
class ModernConfig:
    """Sizes of the model and its levers; the defaults are notebook 05's CPU race model."""
    vocab_size: int = 65
    block_size: int = 64   # context length of training (RoPE can sample past it)
    n_embd: int = 128      # channels of every token vector
    n_head: int = 4        # heads per attention layer
    n_layer: int = 3       # blocks
    dropout: float = 0.0
    norm: str = 'layer'    # 'layer' (LayerNorm, as the lecture) or 'rms' (RMSNorm)
    rope: bool = False     # rotary positions instead of a learned position table
    qk_norm: bool = False  # rms_norm on each head's queries and keys
    mlp: str = 'relu'      # the feed-forward non-linearity: 'relu', 'relu2' or 'gelu'
    bias: bool = True      # biases in the linear layers, LayerNorms and lm_head
    zero_init: bool = False  # output projections and lm_head start at zero


LEVERS_ON = dict(norm='rms', rope=True, qk_norm=True, mlp='relu2', bias=False, zero_init=True)  # every model lever


# %% [markdown]
# **Check**, with the output projection set to the identity (the check reaches `qkv` and `proj` by
# these names): the layer's output must be PyTorch's `scaled_dot_product_attention` of its own
# queries, keys and values, after `rms_norm` (QK-norm on) and `rotary` (RoPE on), in all four
# combinations; causal (a changed future leaves the past alone); the recorded `max_logit` the largest
# `|q · k| / sqrt(hs)` of the check's own q and k, so with QK-norm within `sqrt(hs)`; and a layer not
# recording (`max_logit` None) still runs.

# %% jupyter={"source_hidden": true} cellView="form"
#@title Plumbing of this notebook: the check of ModernAttention (folded)
def check_modern_attention(Attention):
    """ModernAttention(config) against SDPA on its own (normed, turned) q, k, v, for every QK-norm and RoPE setting."""
    torch.manual_seed(0)
    for qk_norm, rope in ((False, False), (True, False), (False, True), (True, True)):
        config = ModernConfig(block_size=12, n_embd=32, n_head=4, qk_norm=qk_norm, rope=rope, bias=False)
        attn, on = attempt("ModernAttention(config)", Attention, config).eval(), f"(qk_norm={qk_norm}, rope={rope})"
        check(all(isinstance(getattr(attn, n, None), nn.Linear) for n in ('qkv', 'proj')), "ModernAttention needs the layers qkv "
              "(C -> 3C: queries, keys, values of all heads, side by side) and proj (C -> C): the check and 09b read them by name")
        with torch.no_grad():
            attn.proj.weight.copy_(torch.eye(32))
            x = torch.randn(2, 12, 32) * 3
            heads = lambda t: t.view(2, 12, 4, 8).transpose(1, 2)  # (B, T, C) -> (B, nh, T, hs)
            q0, k0, v = (heads(t) for t in attn.qkv(x).split(32, dim=2))
            q, k = (rms_norm(q0), rms_norm(k0)) if qk_norm else (q0, k0)
            q, k = (rotary(q), rotary(k)) if rope else (q, k)
            attn.max_logit = 0.0
            y = attempt(f"ModernAttention {on} on x of shape (2, 12, 32)", attn, x)
            got, scores = attn.max_logit, q @ k.transpose(-2, -1)  # scores (B, nh, T, T), unscaled
            later = attn(torch.cat([x[:, :6], torch.randn(2, 6, 32)], dim=1))
        check(torch.allclose(y[:, :6], later[:, :6], atol=1e-5), f"ModernAttention {on} sees the future: changing later tokens "
              "changes earlier outputs, so something mixes positions (the mask, a norm over T, or how the heads are put back)")
        wrong = {"it lacks the 1/sqrt(hs)": scores.abs().max(),
                 "it is divided by sqrt(C), not by sqrt(hs) of one head": scores.abs().max() / 32**0.5,
                 "it takes the largest signed score, not the largest |score| (abs)": scores.max() / 8**0.5,
                 "it is taken from q and k before QK-norm and RoPE": (q0 @ k0.transpose(-2, -1)).abs().max() / 8**0.5}
        right = [scores.abs().max() / 8**0.5, scores.tril().abs().max() / 8**0.5]  # every score, or the causal ones only
        close = lambda v: isinstance(got, (int, float)) and math.isclose(got, v, rel_tol=1e-4)
        recorded = lambda cause: (f"ModernAttention {on} recorded max_logit {round(got, 3) if isinstance(got, float) else got}, "
                                  f"not the largest |q · k| / sqrt(hs) of its scores, {right[0]:.3f}: {cause}")
        check(any(close(r) for r in right) or not any(close(v) for v in wrong.values()),
              recorded(next((w for w, v in wrong.items() if close(v)), "")))
        check(not qk_norm or attn.max_logit <= 8**0.5 + 1e-4, f"with QK-norm a score reached {attn.max_logit:.2f}, above "
              f"sqrt(hs) = {8**0.5:.2f}: normalise q and k over each head's hs channels (dim=-1 of (B, nh, T, hs))")
        want = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(2, 12, 32)
        if not torch.allclose(y, want, atol=1e-4):
            raise CheckFailed(f"ModernAttention {on} differs from scaled_dot_product_attention of its own queries, keys and "
                              f"values{' after rms_norm' if qk_norm else ''}{' and rotary' if rope else ''}: "
                              + ("normalise q and k (not v, not x) when config.qk_norm" if qk_norm else
                                 "turn q and k (not v) when config.rope" if rope else "look at the split into heads, the scale of the "
                                 "scores and how the heads are put back side by side"))
        check(any(close(r) for r in right), recorded("record the largest |score| of the q and k the attention uses, over sqrt(hs)"))
    attn, x = Attention(ModernConfig(block_size=12, n_embd=32, n_head=4, dropout=0.5)), torch.randn(2, 12, 32)
    runs = attempt("ModernAttention with dropout=0.5 and max_logit None (not recording)", lambda: {mode: [(torch.manual_seed(s),
                   attn.train(mode)(x))[1] for s in (0, 1)] for mode in (True, False)}, hint="with max_logit None it records nothing")
    check(torch.equal(*runs[False]) and not torch.equal(*runs[True]), "with dropout=0.5 ModernAttention should drop at random "
          "in training mode and not at all in eval mode (model.eval()): the dropout of the scores follows self.training")
    return Passed("ModernAttention: passed (SDPA of its own normed and turned q, k, v; causal; scores within ±sqrt(hs))")


# %%
check_modern_attention(ModernAttention)

# %% [markdown]
# ## 4. ReLU² in the feed-forward layer
#
# The lecture's feed-forward layer uses ReLU; GPT-2 and nanoGPT use GELU. The speedrun and nanochat
# square the ReLU ([So et al., 2021, "Primer"](https://arxiv.org/abs/2109.08668)): `relu(x)²` is zero
# for negative inputs like ReLU, but grows quadratically, and it costs one multiplication more.

# %%
def relu_squared(x):
    """max(x, 0) squared, elementwise."""
    return F.relu(x).square()


ACTIVATIONS = {'relu': F.relu, 'gelu': F.gelu, 'relu2': relu_squared}


class ModernMLP(nn.Module):
    """A per-token MLP: linear to 4C, the chosen non-linearity, linear back to C."""

    def __init__(self, config):
        super().__init__()
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.act, self.dropout = ACTIVATIONS[config.mlp], nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.proj(self.act(self.fc(x))))  # (B, T, C) through (B, T, 4C)


# %% [markdown]
# **Check**: on inputs of several shapes, `relu_squared` must equal `F.relu(x) * F.relu(x)`
# (the oracle, written another way), leave its input alone, and be zero for every negative input.

# %% jupyter={"source_hidden": true} cellView="form"
#@title Plumbing of this notebook: the check of relu_squared (folded)
def check_relu_squared(relu_squared):
    """relu_squared against F.relu(x) * F.relu(x) at several shapes; zero for negative inputs; input untouched."""
    torch.manual_seed(0)
    for x in (torch.linspace(-3, 3, 61), torch.randn(2, 5, 7) * 2, torch.randn(4, 3, 2, 8)):
        before = x.clone()
        y = attempt(f"relu_squared on x of shape {tuple(x.shape)}", relu_squared, x)
        check(torch.equal(x, before), "relu_squared changed its input in place: return a new tensor and leave x as it was")
        check(isinstance(y, torch.Tensor) and y.shape == x.shape, f"relu_squared(x) should keep x's shape {tuple(x.shape)}")
        check((y[x < 0] == 0).all(), "relu_squared is not zero for negative inputs: square the ReLU, not x itself")
        check(torch.allclose(y, F.relu(x) * F.relu(x), atol=1e-6), "relu_squared differs from relu(x)² for positive "
              "inputs: square the ReLU, do not only take it")
    return Passed("relu_squared: passed (equal to relu(x) * relu(x) at three shapes)")


# %%
check_relu_squared(relu_squared)


# %% [markdown]
# ## 5. The block and the model: zero-initialised projections, no biases, an untied head
#
# The block is the lecture's pre-norm block with the chosen norm. Three more levers live in the
# model. **No biases** (`bias=False`), as in nanoGPT's option, LLaMA and nanochat: fewer parameters,
# no loss in practice. **Zero-initialised output projections** (`proj` of every attention and MLP,
# and `lm_head`), as in the speedrun: each block starts as the identity, the residual stream is the
# embedding alone, and the first prediction is uniform, with loss exactly `ln(vocab_size)`. The
# first step moves `lm_head` alone (the zero head passes no gradient back); from the second step
# the gradients reach every projection. **Untied
# embeddings** (the lecture's, already): `lm_head` is its own matrix, so the optimizer can give the
# embedding table and the head their own learning rates (notebook 09b does).

# %%
def make_norm(config):
    """The configuration's normalisation layer over n_embd channels."""
    return RMSNorm(config.n_embd) if config.norm == 'rms' else nn.LayerNorm(config.n_embd, bias=config.bias)


class ModernBlock(nn.Module):
    """Pre-norm transformer block: x + attention(norm(x)), then x + MLP(norm(x))."""

    def __init__(self, config):
        super().__init__()
        self.ln1, self.sa, self.ln2, self.ffwd = make_norm(config), ModernAttention(config), make_norm(config), ModernMLP(config)

    def forward(self, x):
        x = x + self.sa(self.ln1(x))  # (B, T, C)
        return x + self.ffwd(self.ln2(x))  # (B, T, C)


# %%
class ModernGPT(nn.Module):
    """A decoder-only Transformer over characters, with the levers of ModernConfig."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.token_embedding_table = nn.Embedding(config.vocab_size, config.n_embd)
        if not config.rope:  # with RoPE the positions enter in the attention: no table, no limit of block_size
            self.position_embedding_table = nn.Embedding(config.block_size, config.n_embd)
        self.blocks = nn.Sequential(*[ModernBlock(config) for _ in range(config.n_layer)])
        self.ln_f = make_norm(config)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=config.bias)
        for module in self.modules():  # notebook 05's initialisation: normal(0, 0.02), biases at 0
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        if config.zero_init:  # every block starts as the identity, the first guess is uniform
            for proj in [b.sa.proj for b in self.blocks] + [b.ffwd.proj for b in self.blocks] + [self.lm_head]:
                nn.init.zeros_(proj.weight)


# %%
def modern_forward(self, idx, targets=None):
    """Logits (B, T, vocab_size) for idx (B, T), and the cross-entropy loss if targets (B, T) are given."""
    x = self.token_embedding_table(idx)  # (B, T, C)
    if not self.config.rope:
        x = x + self.position_embedding_table(torch.arange(idx.shape[1], device=idx.device))  # (B, T, C)
    logits = self.lm_head(self.ln_f(self.blocks(x)))  # (B, T, vocab_size)
    loss = None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten())
    return logits, loss


ModernGPT.forward = modern_forward

# %% [markdown]
# **Check** of the whole model at three settings (every lever off, every lever on, and a mix):
# causal (a changed future leaves earlier logits alone); with `bias=False` not one bias; with
# `zero_init`, every block's output equals its input at the start, the first loss is
# `ln(vocab_size)`, and once `lm_head` has moved, a backward pass reaches every zeroed projection.
# (With every lever off it is notebook 05's race model: a test loads 05's weights into it and gets
# the same logits.)

# %% jupyter={"source_hidden": true} cellView="form"
#@title Plumbing of this notebook: the check of ModernGPT (folded)
ACT_ORACLE = {'relu': F.relu, 'gelu': F.gelu, 'relu2': lambda t: F.relu(t) * F.relu(t)}


def check_modern_gpt(Model):
    """ModernGPT at three settings: causal, no biases with bias=False, zero-init blocks the identity, a uniform first guess."""
    for levers in (dict(), LEVERS_ON, dict(norm='layer', mlp='gelu', zero_init=True, bias=False)):
        torch.manual_seed(0)
        config = ModernConfig(block_size=16, n_embd=32, n_head=4, n_layer=2, **levers)
        model = attempt(f"ModernGPT({levers or 'every lever off'})", Model, config)
        idx, later = torch.randint(0, 65, (2, 16)), torch.randint(0, 65, (2, 16))
        later[:, :8] = idx[:, :8]
        logits, loss = attempt("ModernGPT on idx of shape (2, 16)", model, idx, idx)
        mlp, block, x, act = ModernMLP(config), ModernBlock(config), torch.randn(2, 16, 32), ACT_ORACLE[config.mlp]
        with torch.no_grad():
            check(not torch.allclose(mlp(x + x.flip(0)) + mlp(0 * x), mlp(x) + mlp(x.flip(0)), atol=1e-5), f"ModernMLP with mlp="
                  f"{config.mlp!r} is linear in x: the non-linearity between fc and proj is missing")
            check(torch.allclose(mlp(x), mlp.proj(act(mlp.fc(x))), atol=1e-5), f"ModernMLP with mlp={config.mlp!r} differs "
                  f"from its own fc, then {config.mlp}, then proj: is the non-linearity ACTIVATIONS[{config.mlp!r}], in between?")
            h = x + block.sa(block.ln1(x))
            check(torch.allclose(block(x), h + block.ffwd(block.ln2(h)), atol=1e-5), "ModernBlock differs from the pre-norm "
                  "residual block of its own ln1, sa, ln2 and ffwd: each sublayer adds to x what it makes of the normed x")
        loss.backward()
        unused = [n for n, p in model.named_parameters() if p.grad is None]
        check(not unused, f"ModernGPT({levers}): {unused[:1]} gets no gradient: " + ("it is frozen; zero the weights, nothing "
              "that stops them learning" if not all(p.requires_grad for p in model.parameters()) else "the forward never uses it"))
        model.zero_grad(set_to_none=True)
        check(torch.allclose(logits[:, :8], model(later)[0][:, :8], atol=1e-5), f"ModernGPT({levers}) sees the future")
        biases = [n for n, p in model.named_parameters() if n.endswith('bias')]
        check(config.bias or not biases, f"with bias=False the model still holds {biases[:1]}: pass bias=config.bias")
        if config.zero_init:
            check(abs(loss.item() - math.log(65)) < 1e-5, f"with zero_init the first loss is {loss.item():.4f}, not ln(65) = "
                  f"{math.log(65):.4f}: lm_head must start at zero, like every output projection")
            x = torch.randn(2, 16, 32)
            check(all(torch.equal(b(x), x) for b in model.blocks), "with zero_init a block's output differs from its input at "
                  "the start: zero the weights of both output projections, sa.proj and ffwd.proj")
            with torch.no_grad():  # as after the first step, which moves lm_head alone
                model.lm_head.weight.normal_(0, 0.02)
            model(idx, idx)[1].backward()
            quiet = [n for n, p in model.named_parameters() if n.endswith('proj.weight') and not p.grad.abs().sum() > 0]
            check(not quiet, f"with zero_init {quiet[:1]} gets no gradient: zero only the weights, nothing that stops them learning")
    return Passed("ModernGPT: passed (causal at three settings, no biases, zero-init blocks are the identity)")


# %%
check_modern_gpt(ModernGPT)
print(f"every lever off: {sum(p.numel() for p in ModernGPT(ModernConfig()).parameters()):,} parameters (notebook 05's race "
      f"model); every lever on: {sum(p.numel() for p in ModernGPT(ModernConfig(**LEVERS_ON)).parameters()):,}")

# %% [markdown]
# ## 6. What QK-norm prevents, measured
#
# Two models with every model lever on, one without QK-norm, trained with AdamW at a constant rate
# of 1e-2 (five times notebook 05c's peak), from the same seed and batches, at notebook 05c's CPU race
# size (3 layers of 128 channels, 4 heads, context 64, batch 32). Every 10 steps the largest score
# `|q · k| / sqrt(hs)` of any head in any layer is recorded (`max_logit`, in `ModernAttention`).
# With QK-norm it cannot pass `sqrt(hs)`; without, nothing stops it. This cell trains, so it runs
# on the fastest device there is; batches come from notebook 05's `get_batch_on_device` (folded).

# %% jupyter={"source_hidden": true} cellView="form"
#@title Notebook 05's piece: batches gathered on the device (folded)
def get_batch_on_device(data, batch_size, block_size):
    """Random (B, T) inputs and targets gathered from data, a split that already lives on the device."""
    ix = torch.randint(len(data) - block_size, (batch_size, 1), device=data.device)  # (B, 1) offsets
    pos = ix + torch.arange(block_size + 1, device=data.device)  # (B, T+1) positions of each chunk
    chunk = data[pos]  # (B, T+1)
    return chunk[:, :-1], chunk[:, 1:]  # (B, T) inputs, (B, T) targets


# %% tags=["nbval-ignore-output"]
print(describe_device(device))
QK_SIZES = dict(block_size=16, n_embd=32, n_head=2, n_layer=2) if SMOKE else dict(block_size=64, n_embd=128, n_head=4, n_layer=3)
QK_BATCH, QK_STEPS = (8, 20) if SMOKE else (32, 150)


# %%
def train_recording(levers, lr, steps, seed=1337):
    """A ModernGPT with levers after steps of AdamW at a constant lr, and [(step, largest |score|, loss)] every 10 steps."""
    torch.manual_seed(seed)
    model = ModernGPT(ModernConfig(vocab_size=len(chars), **QK_SIZES, **levers)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.99))
    train_on_device, growth = train_data.to(device), []
    for it in range(steps + 1):
        for block in model.blocks:
            block.sa.max_logit = 0.0 if it % 10 == 0 else None  # record on every tenth step only
        x, y = get_batch_on_device(train_on_device, QK_BATCH, QK_SIZES['block_size'])  # (B, T) each
        _, loss = model(x, y)
        if it % 10 == 0:
            growth.append((it, max(block.sa.max_logit for block in model.blocks), loss.item()))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model, growth


# %% tags=["nbval-ignore-output"]
growth = {qk: train_recording({**LEVERS_ON, 'qk_norm': qk}, 1e-2, QK_STEPS)[1] for qk in (False, True)}
for qk, rows in growth.items():
    print(f"QK-norm {'on ' if qk else 'off'}: largest score {rows[1][1]:5.1f} at step 10, {max(r[1] for r in rows):5.1f} at most, "
          f"{rows[-1][1]:5.1f} at step {rows[-1][0]}; training loss {rows[-1][2]:.3f} at the end")
check(max(r[1] for r in growth[True]) <= (QK_SIZES['n_embd'] // QK_SIZES['n_head']) ** 0.5 + 1e-3,
      "with QK-norm a score passed sqrt(hs): ModernAttention must normalise q and k over each head's channels")

# %%
fig, ax = plt.subplots(figsize=(6, 3))
for qk, rows in growth.items():
    _ = ax.plot([r[0] for r in rows], [r[1] for r in rows], label=f"QK-norm {'on' if qk else 'off'}")
_ = ax.axhline((QK_SIZES['n_embd'] // QK_SIZES['n_head']) ** 0.5, color='gray', linestyle=':', label='sqrt(hs), the bound with QK-norm')
_ = ax.set(xlabel='training step (AdamW, constant lr 1e-2)', ylabel='largest |score|', title='Attention scores at a high learning rate')
_ = ax.legend()
show(fig, 'qk_norm')

# %% [markdown]
# In the stored run, without QK-norm the largest score was 55.8 after ten steps and 252.1 after
# 150: a softmax that puts nearly all its weight on one key. With QK-norm it stayed at 5.6 at most,
# under the bound `sqrt(32) ≈ 5.66`. In this one run the model without QK-norm also ended with the
# higher training loss (3.172 against 2.731): one seed, so a hint, not a verdict. Notebook 09b's
# ladder measures QK-norm at a normal rate over three seeds.

# %% [markdown]
# ## 7. Past `block_size`
#
# With RoPE the model has no table of `block_size` positions: it can read a longer context than it
# was trained on, so `generate` need not crop it (with learned positions it must), and notebook
# 07's key–value cache could slide along without recomputing, since a cached key, turned once at its
# position, keeps its meaning. The cell shows it on a small fresh model: with RoPE, a context three
# times `block_size` gives logits at every position, and the first `block_size` of them are the
# short context's own (causal, and no position depends on the length); the learned table has no row
# past `block_size`.

# %%
torch.manual_seed(0)
config = ModernConfig(block_size=16, n_embd=32, n_head=4, n_layer=2, **{**LEVERS_ON, 'zero_init': False})
rope_model, table_model = ModernGPT(config).eval(), ModernGPT(replace(config, rope=False)).eval()
idx = torch.randint(0, 65, (1, 3 * config.block_size))  # (B, T): three times block_size
with torch.no_grad():
    long, short = rope_model(idx)[0], rope_model(idx[:, :config.block_size])[0]  # (1, 48, 65), (1, 16, 65)
check(torch.allclose(long[:, :config.block_size], short, atol=1e-5), "with RoPE the first block_size logits of a long context "
      "differ from the short context's: a position's angle must depend on its place only, not on the length")
print(f"RoPE: logits of shape {tuple(long.shape)} for a context of {idx.shape[1]} (block_size {config.block_size}); "
      f"the first {config.block_size} equal the short context's")
try:
    table_model(idx)
except IndexError as e:
    print(f"learned positions: IndexError ({e}): the table has {config.block_size} rows, so generate must crop")

# %% [markdown]
# Reading past `block_size` is allowed; is it any good? The model never saw a distance beyond
# `block_size` in training. Below, `generate_modern` crops the context only with learned positions
# (checked next), and `loss_by_position` measures, on the validation split, the loss at each position of chunks twice
# the training context, for a model with every lever on trained briefly (AdamW at 3e-3, constant).

# %%
@torch.no_grad()
def generate_modern(model, idx, max_new_tokens, temperature=1.0):
    """Append max_new_tokens sampled tokens to idx (B, T) in eval mode; learned positions crop to block_size, RoPE does not."""
    was_training = model.training
    model.eval()
    for _ in range(max_new_tokens):
        idx_cond = idx if model.config.rope else idx[:, -model.config.block_size:]  # (B, T)
        logits = model(idx_cond)[0][:, -1, :] / temperature  # (B, vocab_size)
        idx = torch.cat((idx, torch.multinomial(F.softmax(logits, dim=-1), num_samples=1)), dim=1)  # (B, T+1)
    model.train(was_training)
    return idx


# %% [markdown]
# **Check**, on stand-in models whose logits the check chooses, past `block_size`, with RoPE and
# with learned positions, from training and eval mode: one token more per row and step, `idx`
# kept; each step reads the context a slow reference reads (all of it with RoPE, the last
# `block_size` tokens with a table); sampled in eval mode, the mode restored; and over a batch of
# thousands of rows, the tokens drawn at temperatures 0.5 and 2 come as often as `softmax(last logits / temperature)` says.

# %% jupyter={"source_hidden": true} cellView="form"
#@title Plumbing of this notebook: the check of generate_modern (folded)
class SamplingStandIn(nn.Module):
    """A model for the check: logits LAST at the last position (zeros elsewhere); it records each context and its mode."""
    LAST = torch.tensor([2.0, 1.0, 0.0, -1.0])  # (vocab_size,) of the stand-in

    def __init__(self, rope, block_size=4):
        super().__init__()
        self.config, self.seen = ModernConfig(vocab_size=4, block_size=block_size, rope=rope), []

    def forward(self, idx, targets=None):
        self.seen.append((idx.clone(), self.training))
        logits = torch.zeros(*idx.shape, 4)  # (B, T, 4)
        logits[:, -1] = self.LAST
        return logits, None


def check_generate_modern(generate_modern):
    """generate_modern on stand-ins: shapes, the contexts of a slow reference at every step, eval mode, the distribution."""
    torch.manual_seed(0)
    for rope, mode in ((True, True), (False, True), (True, False), (False, False)):
        model, kind, idx = SamplingStandIn(rope).train(mode), "RoPE" if rope else "learned positions", torch.randint(0, 4, (2, 3))
        for n in (1, 6):  # one token, then past block_size = 4
            model.seen.clear()
            out = attempt(f"generate_modern(model, idx of shape (2, 3), {n}) with {kind}", generate_modern, model, idx, n,
                          hint="each step appends one token per row along the time axis, dim=1")
            check(isinstance(out, torch.Tensor) and out.shape == (2, 3 + n), f"generate_modern(model, idx of shape (2, 3), {n}) "
                  f"returned {tuple(getattr(out, 'shape', ()))}, not (2, {3 + n}): one token more per row and step, along dim=1")
            check(torch.equal(out[:, :3], idx), "generate_modern changed idx's own tokens: it appends after them")
            check(model.training == mode, f"generate_modern left a model in {'eval' if mode else 'training'} mode: restore its mode")
            check(len(model.seen) == n and not any(m for _, m in model.seen), f"generate_modern with {kind} called the model "
                  f"{len(model.seen)} times for {n} tokens, {sum(m for _, m in model.seen)} of them in training mode: "
                  "once a token, in eval mode")
            for t, (ctx, _) in enumerate(model.seen):
                want = out[:, :3 + t] if rope else out[:, :3 + t][:, -model.config.block_size:]  # the slow reference's context
                check(torch.equal(ctx, want), f"step {t + 1} of generate_modern with {kind} read {ctx.shape[1]} tokens"
                      f"{' (other ones)' if ctx.shape == want.shape else ''}, not the {want.shape[1]} a reference reads: "
                      + ("RoPE has no position table, so nothing is cropped" if rope else
                         "a table of block_size rows: the last block_size tokens"))
    for temperature in (0.5, 2.0):
        out = generate_modern(SamplingStandIn(True), torch.zeros((4000, 2), dtype=torch.long), 1, temperature=temperature)
        got, want = torch.bincount(out[:, -1], minlength=4) / 4000, F.softmax(SamplingStandIn.LAST / temperature, dim=-1)
        last = SamplingStandIn.LAST
        wrong = {"the temperature multiplies the logits": F.softmax(last * temperature, -1),
                 "the temperature is undone or ignored": F.softmax(last, -1),
                 "the largest logit is taken, not sampled": F.one_hot(torch.tensor(0), 4).float(),
                 "the logits are another position's, or the softmax runs over another dimension than the vocabulary":
                 torch.full((4,), 0.25)}
        check((got - want).abs().max() < 0.04, f"at temperature {temperature} generate_modern draws the tokens with frequencies "
              f"{[round(v, 2) for v in got.tolist()]}, not softmax(last logits / temperature) = {[round(v, 2) for v in want.tolist()]}: "
              + next((w for w, p in wrong.items() if (got - p).abs().max() < 0.04), "sample from the last position's probabilities"))
    return Passed("generate_modern: passed (the reference's context at every step past block_size, RoPE and learned positions; "
                  "eval mode, mode restored; softmax(logits / T) at two temperatures)")


# %%
check_generate_modern(generate_modern)


# %%
@torch.no_grad()
def loss_by_position(model, data, T, chunks=256):
    """Mean loss (T,) at each position of the first `chunks` non-overlapping chunks of length T of data."""
    model.eval()
    x = data[:chunks * T].view(chunks, T).to(device)  # (N, T)
    y = data[1:chunks * T + 1].view(chunks, T).to(device)  # (N, T)
    logits = model(x)[0]  # (N, T, vocab_size)
    model.train()
    return F.cross_entropy(logits.transpose(1, 2), y, reduction='none').mean(0).float().cpu()  # (T,)


# %% tags=["nbval-ignore-output"]
PAST_STEPS, block_size = (20 if SMOKE else 500), QK_SIZES['block_size']
model, log = train_recording(LEVERS_ON, 3e-3, PAST_STEPS)
per_position = loss_by_position(model, val_data, 2 * block_size)  # (2T,)
print(f"after {PAST_STEPS} steps (training loss {log[-1][2]:.3f}): validation loss at positions 0-{block_size - 1}: "
      f"{per_position[:block_size].mean():.4f}; at {block_size}-{2 * block_size - 1}, past the training context: "
      f"{per_position[block_size:].mean():.4f}")
torch.manual_seed(1337)
sample = generate_modern(model, torch.zeros((1, 1), dtype=torch.long, device=device), 3 * block_size, temperature=0.8)
print(f"{sample.shape[1]} characters, each step reading the whole past:\n{decode(sample[0].tolist())}")

# %% [markdown]
# In the stored run the model reads twice its training context without complaint, but does worse
# there: validation loss 1.9725 at positions 0–63, 2.0706 at positions 64–127, after 500 steps.
# RoPE removes the table's hard limit; reading well past the trained distances takes training at
# those lengths (or a trick such as position interpolation). A sliding window of `block_size` keys
# (notebook 07's cache, trimmed) keeps every distance within what the model has seen.

# %% [markdown]
# ## Summary
#
# - **RMSNorm**: `rms_norm` checked against `F.rms_norm`, the layer against `nn.RMSNorm`.
# - **RoPE**: each pair of channels turned by its position times a fixed speed, so a score depends
#   only on the distance (checked on every diagonal); no position table, so a context may run past
#   `block_size`.
# - **QK-norm**: every score within `±sqrt(hs)`, checked, and measured at a high learning rate.
# - **ReLU²**, **zero-initialised projections without biases** (each block starts as the
#   identity, the first loss is `ln(vocab_size)`), and an untied head.
# - `ModernGPT`, every lever a switch (`ModernConfig`, `LEVERS_ON`); with every lever off it is
#   notebook 05's model (a test loads 05's weights into it). Each piece checked by properties any
#   correct version has.
#
# **Next**: notebook 09b trains this model with Muon and warmup–stable–decay, measures each lever on
# the same seconds over three seeds, and races it against the clock.
#
# ## Exercises
#
# 1. Write `rotary` with RoFormer's own pairing, channel `2i` with `2i + 1`. Does `check_rotary`
#    accept it? Why does a score still depend only on the distance?
# 2. Run `train_recording` at rates 3e-3, 3e-2 and 1e-1. At which rate does the model without
#    QK-norm stop learning, and does the one with it still learn?
# 3. Give the queries and keys of QK-norm a learned gain per channel (as OLMo 2 and Gemma do). Is
#    the bound `sqrt(hs)` still a bound? Measure the gain's effect with notebook 09b's ladder.
