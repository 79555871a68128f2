# %% [markdown]
# # 09 · A modern GPT, one lever at a time
#
# Notebook 05 made the lecture's GPT fast; on a CPU its step time is now close to what the machine
# can do, so the next gain must come from learning more per step. That is what the changes of the
# last few years did: the [nanoGPT speedrun](https://github.com/KellerJordan/modded-nanogpt) went
# from 45 minutes to under 3 on 8 H100s mostly through a handful of them, and
# [nanochat](https://github.com/karpathy/nanochat) uses them today. This notebook starts from
# notebook 05's race model and changes one thing per section: **RMSNorm**, **rotary positions**,
# **QK-norm**, **ReLU²**, **zero-initialised output projections without biases**, the **Muon**
# optimizer and a **warmup–stable–decay** schedule. Each piece gets a check that says in one
# sentence what is wrong; then a ladder measures every lever on the same budget of seconds over
# three seeds, and a race trains them all against the clock.
#
# Standalone (it downloads its data) and a script: `python notebooks/09_modern_gpt.py`, or
# `python notebooks/09_modern_gpt.py --race` for the race alone (every setting is a flag: `--help`).

# %%
import argparse, copy, hashlib, math, os, pathlib, platform, statistics, sys, tempfile, time, urllib.request
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


def check_split_sizes(train_data, val_data, block_size, flag="block_size"):
    """Stop with one line if either split is too short for one chunk of block_size + 1 characters."""
    for split, d in (("training", train_data), ("validation", val_data)):
        if len(d) < block_size + 1:
            need = math.ceil((block_size + 1) / 0.1)
            raise SystemExit(f"error: the {split} split has {len(d)} characters, fewer than block_size + 1 = "
                             f"{block_size + 1}; use a text of at least {need:,} characters or a smaller {flag}")
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
# `--race` only trains against the clock; without it the script does what the notebook does. The
# model's size, each lever and the race's settings are flags (default: sized for the device, every
# lever on). A flag out of range, or one that does not apply, stops with one line.

# %% jupyter={"source_hidden": true} cellView="form"
#@title Plumbing of this notebook: the flags (folded; `--help` lists them)
def parse_args(argv=None):
    """The command-line flags; argv=[] gives the defaults (None: sized for the device)."""
    p = Parser(prog="09_modern_gpt.py", description="A modern GPT, one lever at a time; --race trains it against the clock.")
    g = p.add_argument_group("what to run (default: everything the notebook does)")
    g.add_argument("--race", action="store_true", help="only train against the clock and report the loss")
    g.add_argument("--device", default="auto", choices=["auto", "cuda", "mps", "cpu"], help="where to run (default: the fastest there is)")
    g = p.add_argument_group("model (default: sized for the device, every lever on)")
    for flag, kind, say in (("--n-layer", int, "blocks"), ("--n-head", int, "attention heads per block (must divide --n-embd)"),
                            ("--n-embd", int, "channels of every token vector"), ("--block-size", int, "context length in characters"),
                            ("--dropout", float, "dropout rate, 0 <= rate < 1")):
        g.add_argument(flag, type=kind, help=say)
    for flag, choices, say in (("--norm", ["rms", "layer"], "RMSNorm or notebook 05's LayerNorm"),
                               ("--positions", ["rope", "learned"], "rotary positions or a learned table"),
                               ("--qk-norm", ["yes", "no"], "normalise each head's queries and keys"),
                               ("--mlp", ["relu2", "relu", "gelu"], "the feed-forward layer's non-linearity"),
                               ("--zero-init", ["yes", "no"], "output projections start at zero, no biases"),
                               ("--optimizer", ["muon", "adamw"], "Muon for the hidden matrices, or AdamW for all"),
                               ("--schedule", ["wsd", "cosine"], "warmup-stable-decay or notebook 05's cosine")):
        g.add_argument(flag, choices=choices, help=f"{say} (default: {choices[0]})")
    g = p.add_argument_group("the race (default: sized for the device)")
    for flag, kind, say in (("--max-iters", int, "training steps"), ("--batch-size", int, "sequences per step"),
                            ("--learning-rate", float, "peak AdamW rate of the hidden matrices (with --optimizer adamw) and gains"),
                            ("--muon-lr", float, "peak Muon rate of the hidden matrices"), ("--embed-lr", float, "peak rate of the embeddings"),
                            ("--head-lr", float, "peak rate of lm_head"), ("--warmup", int, "steps of linear warmup"),
                            ("--cooldown", int, "last steps of the linear decay to 0 (--schedule wsd)")):
        g.add_argument(flag, type=kind, help=say)
    g.add_argument("--seed", type=int, default=1337, help="random seed (default: 1337)")
    return p.parse_args(argv)


args = parse_args([] if IN_NOTEBOOK else None)

# %% jupyter={"source_hidden": true} cellView="form"
#@title Plumbing of this notebook: every flag checked before anything runs
MODERN_RULES = {"n_layer": (positive, "at least 1"), "n_head": (positive, "at least 1"), "n_embd": (positive, "at least 1"),
                "block_size": (positive, "at least 1"), "dropout": (lambda v: 0 <= v < 1, "at least 0 and below 1"),
                "max_iters": (positive, "at least 1"), "batch_size": (positive, "at least 1"),
                "learning_rate": (finite, "a positive finite number"), "muon_lr": (finite, "a positive finite number"),
                "embed_lr": (finite, "a positive finite number"), "head_lr": (finite, "a positive finite number"),
                "warmup": (lambda v: v >= 0, "at least 0"), "cooldown": (positive, "at least 1 (wsd divides by the length of its decay)"),
                "seed": (lambda v: 0 <= v < 2**64, "between 0 and 2**64 - 1")}


def check_modern_args(args):
    """Stop with one line if a flag is out of range or does not apply to what was asked."""
    check_flags(args, MODERN_RULES)
    if args.optimizer == "adamw" and args.muon_lr is not None:
        raise SystemExit("error: --muon-lr sets Muon, which --optimizer adamw does not use; drop it or use --optimizer muon")
    if args.schedule == "cosine" and args.cooldown is not None:
        raise SystemExit("error: --cooldown is the decay of --schedule wsd; the cosine decays all the way: drop it")
    if args.max_iters is not None and (args.warmup or 0) + (args.cooldown or 0) > args.max_iters:
        raise SystemExit(f"error: --warmup {args.warmup or 0} plus --cooldown {args.cooldown or 0} is longer than "
                         f"--max-iters {args.max_iters}; give them at most {args.max_iters} steps together")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise SystemExit("error: notebook 09 trains on one process; run it with python, not torchrun")
    if args.n_embd and args.n_head and args.n_embd % args.n_head:
        raise SystemExit(f"error: --n-embd {args.n_embd} must be divisible by --n-head {args.n_head} (each head gets n_embd / n_head channels)")


def check_race(config, iters, warmup, cooldown):
    """Stop with one line if the race's settings (flags and defaults together) cannot run."""
    hs = config.n_embd // config.n_head
    if config.n_embd % config.n_head:
        raise SystemExit(f"error: n_embd {config.n_embd} must be divisible by n_head {config.n_head}; change --n-embd or --n-head")
    if config.rope and hs % 2:
        raise SystemExit(f"error: RoPE turns pairs of channels, so the head size n_embd / n_head = {hs} must be even; "
                         "change --n-embd or --n-head, or use --positions learned")
    if cooldown is not None and cooldown < 1:
        raise SystemExit(f"error: the race's cooldown rounds to {cooldown} steps of its {iters}, and wsd divides by it; give --cooldown 1 or more")
    if warmup + (cooldown or 0) > iters:
        raise SystemExit(f"error: warmup {warmup} plus cooldown {cooldown} steps are longer than the race's {iters} steps; "
                         "give less --warmup or --cooldown, or more --max-iters")
    check_split_sizes(train_data, val_data, config.block_size, flag="--block-size")


check_modern_args(args)

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
def pair_angles(x, y):
    """The angle (..., hs/2) by which each pair (i, i + hs/2) of x turned to become y's."""
    half = x.shape[-1] // 2
    x1, x2, y1, y2 = x[..., :half], x[..., half:], y[..., :half], y[..., half:]
    return torch.atan2(x1 * y2 - x2 * y1, x1 * y1 + x2 * y2)


def check_rotary(rotary):
    """rotary(x) for x (B, nh, T, hs): pair lengths kept, position 0 still, scores relative, angles t * θ_i."""
    torch.manual_seed(0)
    for B, nh, T, hs in ((2, 3, 12, 8), (1, 2, 5, 16), (3, 1, 1, 4)):
        x = torch.randn(B, nh, T, hs)
        before = x.clone()
        y = attempt(f"rotary on x of shape (B, nh, T, hs) = {(B, nh, T, hs)}", rotary, x, hint="take T and hs from x.shape[-2:]")
        check(torch.equal(x, before), "rotary changed its input in place: return a new tensor and leave x as it was")
        check(isinstance(y, torch.Tensor) and y.shape == x.shape, f"rotary(x) should keep x's shape {(B, nh, T, hs)}, got "
              f"{tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__}")
        pairs = lambda t: t[..., :hs // 2] ** 2 + t[..., hs // 2:] ** 2  # (B, nh, T, hs/2) squared length of each pair
        check(torch.allclose(pairs(y), pairs(x), atol=1e-4), "rotary changes the length of the pairs (i, i + hs/2): it must only "
              "turn each pair by its angle, with x1 the first half of the channels and x2 the second")
        check(torch.allclose(y[:, :, 0], x[:, :, 0], atol=1e-6), "rotary moves position 0, whose angle t * θ_i is 0: number "
              "the positions from 0 (torch.arange(T)) and turn by cos and sin of the angle")
        q, k = torch.randn(hs), torch.randn(hs)
        scores = rotary(q.expand(1, 1, T, hs))[0, 0] @ rotary(k.expand(1, 1, T, hs))[0, 0].T  # (T, T): q at m, k at n
        check(all(torch.allclose(scores.diagonal(s), scores.diagonal(s)[:1].expand(T - abs(s)), atol=1e-4)
                  for s in range(-T + 1, T)), "rotary(q) · rotary(k) depends on the positions m and n themselves, not only "
              "on m - n: every angle must be the position t times a fixed speed θ_i per pair")
        wanted = torch.arange(T)[:, None] * 10000 ** (-2 * torch.arange(hs // 2) / hs)  # (T, hs/2)
        wrap = lambda a: torch.remainder(a + math.pi, 2 * math.pi) - math.pi  # an angle in [-pi, pi)
        got = pair_angles(x, y)  # (B, nh, T, hs/2)
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
        self.config, self.n_head = config, config.n_head
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=False)  # query, key, value of all heads
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)
        self.max_logit = None  # set to 0.0 to record the largest |score| of the next forward passes

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)  # (B, T, C) each
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        if self.config.qk_norm:
            q, k = rms_norm(q), rms_norm(k)  # (B, nh, T, hs) each, of length sqrt(hs)
        if self.config.rope:
            q, k = rotary(q), rotary(k)  # (B, nh, T, hs) each, turned by position
        if self.max_logit is not None:
            self.max_logit = max(self.max_logit, (q @ k.transpose(-2, -1)).abs().max().item() * (C // self.n_head)**-0.5)
        dropout = self.config.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout)  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C) the heads side by side again
        return self.dropout(self.proj(y))  # (B, T, C)


# %% [markdown]
# Every lever of this notebook is one field of the configuration. The defaults are notebook 05's
# CPU race model; the ladder below turns the levers on one by one.

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
# **Check**, with the output projection set to the identity: the layer's output must be PyTorch's
# `scaled_dot_product_attention` of its own queries, keys and values, after `rms_norm` (QK-norm on)
# and `rotary` (RoPE on), in all four combinations; causal (a changed future leaves the past alone);
# and with QK-norm every recorded score within `±sqrt(hs)`.

# %% jupyter={"source_hidden": true} cellView="form"
#@title Plumbing of this notebook: the check of ModernAttention (folded)
def check_modern_attention(Attention):
    """ModernAttention(config) against SDPA on its own (normed, turned) q, k, v, for every QK-norm and RoPE setting."""
    torch.manual_seed(0)
    for qk_norm, rope in ((False, False), (True, False), (False, True), (True, True)):
        config = ModernConfig(block_size=12, n_embd=32, n_head=4, qk_norm=qk_norm, rope=rope, bias=False)
        attn, on = attempt("ModernAttention(config)", Attention, config).eval(), f"(qk_norm={qk_norm}, rope={rope})"
        with torch.no_grad():
            attn.proj.weight.copy_(torch.eye(32))
            x = torch.randn(2, 12, 32) * 3
            heads = lambda t: t.view(2, 12, 4, 8).transpose(1, 2)  # (B, T, C) -> (B, nh, T, hs)
            q, k, v = (heads(t) for t in attn.qkv(x).split(32, dim=2))
            q, k = (rms_norm(q), rms_norm(k)) if qk_norm else (q, k)
            q, k = (rotary(q), rotary(k)) if rope else (q, k)
            attn.max_logit = 0.0
            y = attempt(f"ModernAttention {on} on x of shape (2, 12, 32)", attn, x)
            later = attn(torch.cat([x[:, :6], torch.randn(2, 6, 32)], dim=1))
        check(torch.allclose(y[:, :6], later[:, :6], atol=1e-5), f"ModernAttention {on} sees the future: changing later tokens "
              "changes earlier outputs, so something mixes positions (the mask, a norm over T, or how the heads are put back)")
        check(not qk_norm or attn.max_logit <= 8**0.5 + 1e-4, f"with QK-norm a score reached {attn.max_logit:.2f}, above "
              f"sqrt(hs) = {8**0.5:.2f}: normalise q and k over each head's hs channels (dim=-1 of (B, nh, T, hs))")
        want = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(2, 12, 32)
        if not torch.allclose(y, want, atol=1e-4):
            raise CheckFailed(f"ModernAttention {on} differs from scaled_dot_product_attention of its own queries, keys and "
                              f"values{' after rms_norm' if qk_norm else ''}{' and rotary' if rope else ''}: "
                              + ("normalise q and k (not v, not x) when config.qk_norm" if qk_norm else
                                 "turn q and k (not v) when config.rope" if rope else "look at the split into heads, the scale of the "
                                 "scores and how the heads are put back side by side"))
    attn, x = Attention(ModernConfig(block_size=12, n_embd=32, n_head=4, dropout=0.5)), torch.randn(2, 12, 32)
    runs = {mode: [(torch.manual_seed(s), attn.train(mode)(x))[1] for s in (0, 1)] for mode in (True, False)}
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
# embeddings** (the lecture's, already): `lm_head` is its own matrix, and the optimizer below gives
# the embedding table and the head their own learning rates.

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
# ## 6. Muon: orthogonalised updates for the hidden matrices
#
# AdamW scales each entry of a gradient on its own. Muon ([Jordan et al., 2024](https://kellerjordan.github.io/posts/muon/),
# the optimizer of the speedrun's records since October 2024) treats a weight matrix as a matrix:
# it keeps a momentum of the gradients, `G`, and replaces `G = U S Vᵀ` (its singular value
# decomposition) by `U Vᵀ`, every singular value set to 1. A gradient is dominated by a few
# directions (a few large singular values); the orthogonalised update moves all directions equally.
# The SVD is slow on a GPU, so Muon runs five steps of a Newton–Schulz iteration instead: scale
# `X = G / ‖G‖` (so every singular value is at most 1), then five times `X ← aX + (bA + cA²)X` with
# `A = XXᵀ`, an odd polynomial of `X` that pushes every singular value towards 1. Its coefficients
# `(3.4445, -4.7750, 2.0315)` are chosen for speed, not exactness: the singular values end near 1,
# roughly between 0.7 and 1.2, and that is enough. The iteration works on the wide orientation
# (`A` is the smaller Gram matrix): transpose a tall `G` first, and back after.

# %%
def newton_schulz(G, steps=5, eps=1e-7):
    """G (m, n) with its singular values pushed towards 1 (about U Vᵀ of G = U S Vᵀ), by a quintic iteration."""
    a, b, c = 3.4445, -4.7750, 2.0315
    X = G / (G.norm() + eps)  # (m, n), every singular value at most 1
    tall = X.shape[0] > X.shape[1]
    if tall:
        X = X.T  # (n, m): the wide way, so that A is the smaller Gram matrix
    for _ in range(steps):
        A = X @ X.T  # (m, m)
        X = a * X + (b * A + c * A @ A) @ X  # (m, n)
    return X.T if tall else X


# %% [markdown]
# **Check**, against the exact SVD on random matrices of several shapes (wide, tall, square) with
# singular values spread over a factor of a hundred, as a gradient's are: the result's singular values
# all lie between 0.6 and 1.25, its singular vectors are `G`'s (`Uᵀ X V` is diagonal), the scale of `G`
# does not matter (`newton_schulz(3G) = newton_schulz(G)`), and `G` itself is left as it was.

# %% jupyter={"source_hidden": true} cellView="form"
#@title Plumbing of this notebook: the check of newton_schulz (folded)
def spread_matrix(m, n, low=0.01):
    """A random (m, n) matrix whose singular values run from 1 down to low, evenly on a log scale."""
    U, _ = torch.linalg.qr(torch.randn(m, m))
    V, _ = torch.linalg.qr(torch.randn(n, n))
    S = torch.logspace(0, math.log10(low), min(m, n))
    return U[:, :len(S)] @ torch.diag(S) @ V[:, :len(S)].T  # (m, n)


def check_newton_schulz(newton_schulz):
    """newton_schulz(G) against the SVD of G, for wide, tall and square G with spread singular values."""
    torch.manual_seed(0)
    for m, n in ((32, 96), (96, 32), (48, 48), (8, 200)):
        G = spread_matrix(m, n) * 5
        before = G.clone()
        X = attempt(f"newton_schulz on G of shape ({m}, {n})", newton_schulz, G, hint="A is the smaller Gram matrix of X, and each step multiplies X by a polynomial of A")
        check(torch.equal(G, before), "newton_schulz changed G in place: work on a scaled copy of G")
        check(isinstance(X, torch.Tensor) and X.shape == G.shape, f"newton_schulz(G) of shape ({m}, {n}) returned "
              f"{tuple(X.shape) if isinstance(X, torch.Tensor) else type(X).__name__}: a tall G goes in transposed and must come out transposed back")
        check(bool(torch.isfinite(X).all()), f"newton_schulz(G) of shape ({m}, {n}) holds inf or nan: the iteration "
              "diverged (is G scaled by its norm first, does each step multiply X, and are the coefficients' signs as given?)")
        U, S, Vh = torch.linalg.svd(G, full_matrices=False)
        inner = U.T @ X @ Vh.T  # (k, k): diagonal if X has G's singular vectors
        values = inner.diagonal()
        check(values.min() > 0.6 and values.max() < 1.25, f"newton_schulz(G) of shape ({m}, {n}) leaves singular values between "
              f"{values.min():.3f} and {values.max():.3f}, not all near 1 (0.6 to 1.25): look at the coefficients (3.4445, "
              "-4.7750, 2.0315) and the five steps")
        check((inner - torch.diag(values)).abs().max() < 0.02, f"newton_schulz(G) of shape ({m}, {n}) does not keep G's "
              "singular vectors: every step must be X ← aX + (bA + cA²)X with A = X Xᵀ")
        again = attempt("newton_schulz on 3 * G", newton_schulz, 3 * G)
        check(torch.allclose(again, X, atol=1e-4), "newton_schulz(3 * G) differs from newton_schulz(G): divide G by its norm first")
    return Passed("newton_schulz: passed (singular values between 0.6 and 1.25, G's singular vectors, at four shapes)")


# %%
check_newton_schulz(newton_schulz)

# %% [markdown]
# What it does to a real gradient: the singular values of the gradient of one attention matrix
# (`qkv` of the first block, after one forward and backward pass of a fresh model with every lever
# on), scaled so that the largest is 1, before and after `newton_schulz`.

# %%
torch.manual_seed(0)
probe = ModernGPT(ModernConfig(**{**LEVERS_ON, 'zero_init': False}))  # zero_init would leave qkv no gradient at step 1
idx = torch.randint(0, 65, (8, 64))  # (B, T)
probe(idx, torch.roll(idx, -1, dims=1))[1].backward()
grad = probe.blocks[0].sa.qkv.weight.grad  # (3C, C)
before, after = torch.linalg.svdvals(grad), torch.linalg.svdvals(newton_schulz(grad))
fig, ax = plt.subplots(figsize=(6, 3))
_ = ax.semilogy(before / before.max(), label='gradient (largest = 1)')
_ = ax.semilogy(after, label='after newton_schulz')
_ = ax.set(xlabel='singular value, largest first', ylabel='size', title='One gradient, before and after Newton–Schulz')
_ = ax.legend()
show(fig, 'newton_schulz')
half = len(before) // 2
print(f"the gradient's largest singular value is {before[0] / before[half]:.0f} times its median one; after newton_schulz "
      f"the largest half lie within {after[:half].min():.2f}-{after[:half].max():.2f}")


# %% [markdown]
# The optimizer: SGD with Nesterov momentum (`momentum_buffer ← lerp(momentum_buffer, g, 1 - μ)`,
# then the update direction `lerp(g, momentum_buffer, μ)`), orthogonalised by `newton_schulz`,
# applied with the learning rate times `sqrt(max(1, rows / cols))` (so that a tall matrix moves as
# much per entry as a wide one), and decoupled weight decay, as `torch.optim.Muon` does it. Muon is
# for the matrices inside the blocks only; embeddings, `lm_head` and the gains stay on AdamW.

# %%
class MuonByHand(torch.optim.Optimizer):
    """Muon: Nesterov momentum, orthogonalised by newton_schulz, for 2-D weights (torch.optim.Muon's rules)."""

    def __init__(self, params, lr=0.02, momentum=0.95, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group['params']:
                if p.grad is None:
                    continue
                buf = self.state[p].setdefault('momentum_buffer', torch.zeros_like(p))  # (m, n)
                buf.lerp_(p.grad, 1 - group['momentum'])
                update = newton_schulz(p.grad.lerp(buf, group['momentum']))  # (m, n) Nesterov, orthogonalised
                p.mul_(1 - group['lr'] * group['weight_decay'])
                p.add_(update, alpha=-group['lr'] * max(1, p.shape[0] / p.shape[1]) ** 0.5)


# %% [markdown]
# **Check**: five steps of `MuonByHand` on matrices of three shapes against `torch.optim.Muon` (in
# PyTorch since 2.9; its Newton–Schulz runs in bfloat16, hence a tolerance of 4% of each update),
# with a fresh gradient each step, momentum and weight decay on.

# %% jupyter={"source_hidden": true} cellView="form"
#@title Plumbing of this notebook: the check of MuonByHand (folded)
def check_muon(Muon):
    """Five steps of Muon against torch.optim.Muon on (48, 16), (16, 48), (32, 32) weights; a note on older PyTorch."""
    if not hasattr(torch.optim, "Muon"):
        return Passed(f"MuonByHand: not compared (torch.optim.Muon arrived in PyTorch 2.9; this is {torch.__version__}); "
                      "newton_schulz was checked above")
    torch.manual_seed(0)
    ours = [nn.Parameter(torch.randn(m, n) * 0.1) for m, n in ((48, 16), (16, 48), (32, 32))]
    theirs = [nn.Parameter(p.detach().clone()) for p in ours]
    mine = attempt("MuonByHand(params, lr=0.05, momentum=0.9, weight_decay=0.1)", Muon, ours, lr=0.05, momentum=0.9, weight_decay=0.1)
    oracle = torch.optim.Muon(theirs, lr=0.05, momentum=0.9, weight_decay=0.1)
    for step in range(5):
        before = [p.detach().clone() for p in ours]
        for a, b in zip(ours, theirs):
            a.grad = torch.randn_like(a) * (step + 1)
            b.grad = a.grad.clone()
        attempt(f"MuonByHand.step() at step {step + 1}", mine.step, hint="a step changes the parameters in place, outside autograd")
        oracle.step()
        for a, b, was in zip(ours, theirs, before):
            moved, wanted = a.detach() - was, b.detach() - was
            error = (moved - wanted).norm() / wanted.norm()
            check(error < 0.04, f"after step {step + 1}, MuonByHand's update of a {tuple(a.shape)} weight differs from "
                  f"torch.optim.Muon's by {error:.0%}: look at the momentum (lerp, then Nesterov), the orthogonalisation, "
                  "the factor sqrt(max(1, rows / cols)) and the weight decay lr * weight_decay")
            with torch.no_grad():
                a.copy_(b)  # the next step starts from the oracle's weights: bfloat16's rounding does not pile up
    return Passed("MuonByHand: passed (five steps equal to torch.optim.Muon's within bfloat16's rounding)")


# %%
check_muon(MuonByHand)

# %% [markdown]
# ## The device, the race's sizes, and notebook 05's pieces
#
# Four of notebook 05's pieces are used unchanged (folded below): `get_batch_on_device`, `sync`,
# `amp_dtype_for` and the whole-split `split_loss`. The sizes are the race's: notebook 05's CPU race
# model on a CPU (3 layers of 128 channels, context 64, batch 32); on CUDA the lecture's size.

# %% jupyter={"source_hidden": true} cellView="form"
#@title Notebook 05's pieces: batches on the device, sync, mixed precision, the whole-split loss (folded)
def get_batch_on_device(data, batch_size, block_size):
    """Random (B, T) inputs and targets gathered from data, a split that already lives on the device."""
    ix = torch.randint(len(data) - block_size, (batch_size, 1), device=data.device)  # (B, 1) offsets
    pos = ix + torch.arange(block_size + 1, device=data.device)  # (B, T+1) positions of each chunk
    chunk = data[pos]  # (B, T+1)
    return chunk[:, :-1], chunk[:, 1:]  # (B, T) inputs, (B, T) targets


def sync():
    """Wait for the device to finish its queued work, so that timings are real."""
    if device == 'cuda':
        torch.cuda.synchronize()
    elif device == 'mps':
        torch.mps.synchronize()


def amp_dtype_for(device):
    """Mixed precision for a device: bfloat16 on GPUs of compute capability 8.0 and up, float16 on older ones, none elsewhere."""
    if device != 'cuda':
        return None
    return torch.bfloat16 if torch.cuda.get_device_capability() >= (8, 0) else torch.float16


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
# The race's settings per device. On a CPU the target is whole-split validation loss 1.60 after
# at most 90 s of training and the evaluation; on CUDA the configuration is sized for one GPU and
# aims at 1.47, checked every 100 steps, **not measured** in this run (no GPU here): run it and see.

# %% tags=["nbval-ignore-output"]
MODERN_RACES = {  # device: (sizes, batch, steps, peak rates, warmup and cooldown (fractions of the steps), target, steps between checks)
    "tiny": (dict(block_size=16, n_embd=32, n_head=2, n_layer=2), 8, 30,
             dict(lr=2e-3, embed_lr=5e-2, head_lr=4e-3, muon_lr=0.03), 0.02, 0.5, None, None),
    "cuda": (dict(block_size=256, n_embd=384, n_head=6, n_layer=6, dropout=0.1), 64, 2500,
             dict(lr=2e-3, embed_lr=5e-2, head_lr=4e-3, muon_lr=0.03), 0.02, 0.5, 1.47, 100),
    "cpu": (dict(block_size=64, n_embd=128, n_head=4, n_layer=3), 32, 1000,
            dict(lr=2e-3, embed_lr=5e-2, head_lr=4e-3, muon_lr=0.03), 0.02, 0.5, 1.60, None),
}
device = pick_device(args.device)
amp_dtype = amp_dtype_for(device)
race_key = "tiny" if SMOKE else "cuda" if device == "cuda" else "cpu"
sizes, race_batch, race_iters, race_rates, race_warmup, race_cooldown, target, eval_every = MODERN_RACES[race_key]
print(describe_device(device) + f", mixed precision: {amp_dtype}")

# %% [markdown]
# ## 7. The schedule: warmup, stable, decay
#
# Notebook 05's schedule warms up, then decays along a cosine to a tenth of the peak. The speedrun
# and nanochat use *warmup–stable–decay* ([Hägele et al., 2024](https://arxiv.org/abs/2405.18392)):
# a short warmup, the peak rate held for most of training, then a straight line down to zero over
# the last part. Both are written as the factor of the peak rate at `progress`, the fraction of
# training done (of the steps, or of the seconds).

# %%
def wsd(progress, warmup=0.02, cooldown=0.4):
    """Factor of the peak rate at progress (0 to 1): linear up over warmup, 1, then linear down to 0 over the last cooldown."""
    if progress < warmup:
        return max(progress / warmup, 0.01)
    return min(1.0, (1 - progress) / cooldown)


def cosine(progress, warmup=0.04):
    """Notebook 05's schedule as a factor: linear up over warmup, then a cosine down to 0.1 at progress 1."""
    if progress < warmup:
        return max(progress / warmup, 0.01)
    return 0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, (progress - warmup) / (1 - warmup))))


# %% [markdown]
# **Check** of `wsd` at three settings: positive everywhere before the end and never above 1, rising
# through the warmup to 1, flat at 1 in the stable part, then falling by the same amount at every
# step of the decay, to zero at the end.

# %% jupyter={"source_hidden": true} cellView="form"
#@title Plumbing of this notebook: the check of wsd, and of modern_optimizers and modern_step below (folded)
def check_wsd(wsd):
    """wsd(progress, warmup, cooldown) on a grid of 1,000 points for three settings."""
    for warmup, cooldown in ((0.02, 0.4), (0.1, 0.2), (0.0, 0.5)):
        where, grid = f"wsd(progress, warmup={warmup}, cooldown={cooldown})", [i / 1000 for i in range(1000)]
        f = [attempt(f"{where} at progress {p}", wsd, p, warmup=warmup, cooldown=cooldown,
                     hint="every progress from 0 to 1 needs a factor, at every setting (warmup=0 included)") for p in grid]
        check(all(0 < v <= 1 + 1e-9 for v in f), f"{where} leaves (0, 1] before the end: every step needs a positive factor, at most 1")
        up = [v for p, v in zip(grid, f) if p < warmup]
        check(all(a <= b for a, b in zip(up, up[1:])) and (not up or up[0] < 0.5 < 0.9 < up[-1]), f"{where} does not rise "
              "through the warmup from near 0 to the peak")
        flat = [v for p, v in zip(grid, f) if warmup <= p <= 1 - cooldown - 1e-9]
        check(all(abs(v - 1) < 1e-9 for v in flat), f"{where} is not 1 between the warmup and the decay (from {warmup} to "
              f"{1 - cooldown:g}): the stable part holds the peak")
        down = [v for p, v in zip(grid, f) if p > 1 - cooldown + 1e-9]
        steps = [a - b for a, b in zip(down, down[1:])]
        check(max(steps) - min(steps) < 1e-6 and min(steps) > 0, f"{where} does not fall in a straight line over the last "
              f"{cooldown:g} of training")
        check(f[-1] < 0.01, f"{where} ends at {f[-1]:.3f}, not near 0: the decay goes to 0 at progress 1")
    return Passed("wsd: passed (warmup, a stable peak, a straight decay to 0, at three settings)")


def check_modern_step(modern_optimizers, modern_step):
    """Three steps of a tiny model against a copy of the same optimizers stepped by hand at the same factors."""
    torch.manual_seed(0)
    model = ModernGPT(ModernConfig(block_size=8, n_embd=16, n_head=2, n_layer=1, **{**LEVERS_ON, 'zero_init': False}))
    rates = dict(lr=1e-3, embed_lr=2e-2, head_lr=3e-3, muon_lr=0.02)
    optimizers = attempt(f"modern_optimizers(model, **{rates})", modern_optimizers, model, **rates)
    names, groups = {id(p): n for n, p in model.named_parameters()}, [g for o in optimizers for g in o.param_groups]
    held = [id(p) for g in groups for p in g['params']]
    twice, left = [names[i] for i in names if held.count(i) > 1], [names[i] for i in names if i not in held]
    check(not twice, f"modern_optimizers puts {twice[:1]} in two groups: each parameter belongs to exactly one, or it steps twice")
    check(not left, f"modern_optimizers leaves {left[:1]} out of every group: each parameter belongs to exactly one")
    check(all('peak_lr' in g for g in groups), "a group of modern_optimizers has no peak_lr: each group remembers its peak rate")
    reference, by_hand = copy.deepcopy((model, optimizers))
    for step, factor in enumerate((0.5, 1.0, 0.25), 1):
        x, y = torch.randint(0, 65, (2, 2, 8))
        before, where = [p.detach().clone() for p in model.parameters()], f"after modern_step {step} (at factor {factor})"
        attempt(f"modern_step {step}", modern_step, optimizers, torch.amp.GradScaler('cpu', enabled=False), model(x, y)[1], factor)
        for g in (g for o in by_hand for g in o.param_groups):  # by hand: rates from the peaks, cleared, backward, every step
            g['lr'] = g['peak_lr'] * factor
        reference.zero_grad(set_to_none=True), reference(x, y)[1].backward(), [o.step() for o in by_hand]
        off = [g['lr'] / g['peak_lr'] for g in groups if not math.isclose(g['lr'], g['peak_lr'] * factor, rel_tol=1e-9)]
        check(not off, f"{where} a group's lr is {off[:1]} of its peak_lr, not the factor {factor}: each step's rate is the "
              "group's peak times that step's factor, never a multiple of the last step's rate")
        moved = {id(p) for p, b in zip(model.parameters(), before) if not torch.equal(p, b)}
        check(moved or any(p.grad is not None for p in model.parameters()), f"{where} no parameter moved and no gradient is "
              "left: the gradients were cleared between backward and the steps, not before backward")
        for o, r in zip(optimizers, by_hand):
            mine, theirs = [[p for g in q.param_groups for p in g['params']] for q in (o, r)]
            check(any(id(p) in moved for p in mine), f"{where} no parameter of {type(o).__name__} moved: every optimizer steps, every step")
            if not all(torch.allclose(p, q, atol=1e-6) for p, q in zip(mine, theirs)):
                stale = any(p.grad is not None and not torch.allclose(p.grad, q.grad, atol=1e-6) for p, q in zip(mine, theirs))
                raise CheckFailed(f"{where} the parameters of {type(o).__name__} differ from the same optimizer stepped by hand"
                                  + (": the gradients add up over the steps; clear them every step" if stale else ""))
    return Passed("modern_optimizers and modern_step: passed (one group per parameter, rates from the peaks, every optimizer steps)")


# %%
check_wsd(wsd)
fig, ax = plt.subplots(figsize=(6, 2.5))
grid = [i / 500 for i in range(500)]
_ = ax.plot(grid, [cosine(p) for p in grid], label="notebook 05's cosine")
_ = ax.plot(grid, [wsd(p) for p in grid], label='warmup–stable–decay')
_ = ax.set(xlabel='progress of training', ylabel='factor of the peak rate', title='Two schedules')
_ = ax.legend()
show(fig, 'schedules')


# %% [markdown]
# ## Training with every lever
#
# One function builds the optimizers. AdamW (notebook 05's, `betas=(0.9, 0.99)`) holds the
# embeddings and `lm_head`, each at its own rate, the gains and biases without weight decay, and,
# without Muon, the hidden matrices with decay 0.1 as in notebook 05; with `muon_lr` the hidden
# matrices (every 2-D weight inside the blocks) go to `MuonByHand` instead.

# %%
def modern_optimizers(model, lr=2e-3, embed_lr=None, head_lr=None, muon_lr=None, weight_decay=0.1):
    """[AdamW] or [AdamW, MuonByHand] for model; embed_lr and head_lr default to lr; each group remembers its peak_lr."""
    named = dict(model.named_parameters())
    hidden = [p for name, p in named.items() if name.startswith('blocks.') and p.dim() == 2]
    groups = [dict(params=[p for name, p in named.items() if 'embedding' in name], lr=embed_lr or lr, weight_decay=weight_decay),
              dict(params=[model.lm_head.weight], lr=head_lr or lr, weight_decay=weight_decay),
              dict(params=[p for p in named.values() if p.dim() < 2], lr=lr, weight_decay=0.0)]
    if muon_lr is None:
        groups.append(dict(params=hidden, lr=lr, weight_decay=weight_decay))
    optimizers = [torch.optim.AdamW(groups, betas=(0.9, 0.99), fused=device != 'mps' or None)]
    if muon_lr is not None:
        optimizers.append(MuonByHand(hidden, lr=muon_lr))
    for group in (g for o in optimizers for g in o.param_groups):
        group['peak_lr'] = group['lr']
    return optimizers


# %% [markdown]
# One step at a factor of the peak rates, and the loop. A budget is a number of steps, or, with
# `in_seconds=True`, of seconds of training: the ladder below gives every rung the same time,
# since some levers cost time per step on a CPU. The schedule's `progress` is the fraction of the
# budget spent. With `target` (on a GPU), the whole-split validation loss is measured every
# `eval_every` steps and training stops once it is reached.

# %%
def modern_step(optimizers, scaler, loss, factor):
    """Backward through loss, then every optimizer steps at factor times each group's peak_lr."""
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group['lr'] = group['peak_lr'] * factor
        optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    for optimizer in optimizers:
        scaler.step(optimizer)  # skipped if float16's scaled gradients overflowed
    scaler.update()


def train_modern(config, batch_size, budget, rates, seed=1337, in_seconds=False, schedule=wsd, amp_dtype=None,
                 eval_every=None, target=None):
    """Train a ModernGPT for budget steps (or seconds); returns it and a log of (step, seconds, loss)."""
    torch.manual_seed(seed)
    model = ModernGPT(config).to(device)
    optimizers, scaler = modern_optimizers(model, **rates), torch.amp.GradScaler(device, enabled=amp_dtype == torch.float16)
    train_on_device, log, it, t0 = train_data.to(device), [], 0, time.perf_counter()
    spent = lambda: time.perf_counter() - t0 if in_seconds else it  # the budget used so far
    while spent() < budget:
        x, y = get_batch_on_device(train_on_device, batch_size, config.block_size)
        with torch.autocast(device, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
            _, loss = model(x, y)
        modern_step(optimizers, scaler, loss, schedule(spent() / budget))
        it += 1
        if it % 25 == 0 or in_seconds and device != 'cpu':
            log.append((it, time.perf_counter() - t0, loss.item()))  # .item() waits for the device
        if eval_every and it % eval_every == 0 and split_loss(model, val_data, amp_dtype=amp_dtype) <= target:
            break
    sync()
    return model, log + [(it, time.perf_counter() - t0, loss.item())]



# %% [markdown]
# ## What QK-norm prevents, measured
#
# Two models with every model lever on, one without QK-norm, trained on AdamW alone at a constant
# rate of 1e-2 (five times notebook 05's peak), from the same seed and batches. Every 10 steps the
# largest score `|q · k| / sqrt(hs)` of any head in any layer is recorded. With QK-norm it cannot
# pass `sqrt(hs)`; without, nothing stops it.

# %% tags=["nbval-ignore-output"]
check_modern_step(modern_optimizers, modern_step)  # one group per parameter, rates from the peaks, every optimizer steps


def logit_growth(qk_norm, lr=1e-2, steps=150 if not SMOKE else 20, seed=1337):
    """[(step, largest |score| in any head, loss)] every 10 steps of AdamW at a constant lr, with or without QK-norm."""
    torch.manual_seed(seed)
    model = ModernGPT(ModernConfig(vocab_size=len(chars), **sizes, **{**LEVERS_ON, 'qk_norm': qk_norm})).to(device)
    optimizers, scaler = modern_optimizers(model, lr=lr), torch.amp.GradScaler(device, enabled=False)
    train_on_device, growth = train_data.to(device), []
    for it in range(steps + 1):
        for block in model.blocks:
            block.sa.max_logit = 0.0 if it % 10 == 0 else None  # record on every tenth step only
        x, y = get_batch_on_device(train_on_device, race_batch, sizes['block_size'])
        _, loss = model(x, y)
        if it % 10 == 0:
            growth.append((it, max(block.sa.max_logit for block in model.blocks), loss.item()))
        modern_step(optimizers, scaler, loss, 1.0)
    return growth


growth = {} if args.race else {qk: logit_growth(qk) for qk in (False, True)}  # --race skips to the race
for qk, rows in growth.items():
    print(f"QK-norm {'on ' if qk else 'off'}: largest score {rows[1][1]:5.1f} at step 10, {max(r[1] for r in rows):5.1f} at most, "
          f"{rows[-1][1]:5.1f} at step {rows[-1][0]}; training loss {rows[-1][2]:.3f} at the end")

# %%
fig, ax = plt.subplots(figsize=(6, 3))
for qk, rows in growth.items():
    _ = ax.plot([r[0] for r in rows], [r[1] for r in rows], label=f"QK-norm {'on' if qk else 'off'}")
_ = ax.axhline((sizes['n_embd'] // sizes['n_head']) ** 0.5, color='gray', linestyle=':', label='sqrt(hs), the bound with QK-norm')
_ = ax.set(xlabel='training step (AdamW, constant lr 1e-2)', ylabel='largest |score|', title='Attention scores at a high learning rate')
_ = ax.legend()
show(fig, 'qk_norm')

# %% [markdown]
# In the stored run, without QK-norm the largest score was 33.1 after ten steps and 461.3 after
# 150: a softmax that puts all its weight on one key. With QK-norm it stayed at 5.5, under the bound
# `sqrt(32) ≈ 5.66`. Bounded scores are not yet a better model: at this rate the model with QK-norm
# ended with the higher training loss (3.193 against 2.880), and neither trained well; the rate that
# the race uses is the one the bound makes safe to push, not this one.

# %% [markdown]
# ## The ladder: one lever at a time, on the same budget of seconds
#
# Each rung adds one lever to the rung above and is trained for the same number of **seconds**
# (not steps: RoPE, QK-norm and Muon each cost time per step on a CPU), from the same seeds and so
# the same batches, then evaluated on the whole validation split. Three seeds per rung, the rungs
# taking turns within each seed so that a slow moment of the machine does not fall on one rung only.
# A rung is called better or worse than the rung above only when the ranges of their three seeds do
# not overlap; otherwise the difference is within the seed noise.

# %%
LADDER = [  # (rung, model levers added, training settings added): each rung adds to the ones above
    ("notebook 05's race model, AdamW, cosine", {}, dict(rates=dict(lr=2e-3), schedule=cosine)),
    ("+ RMSNorm", dict(norm='rms'), {}),
    ("+ RoPE (no position table)", dict(rope=True), {}),
    ("+ QK-norm", dict(qk_norm=True), {}),
    ("+ ReLU² (was ReLU)", dict(mlp='relu2'), {}),
    ("+ zero-init, no biases, own rates", dict(bias=False, zero_init=True), dict(rates=dict(lr=2e-3, embed_lr=5e-2, head_lr=4e-3))),
    ("+ Muon for the hidden matrices", {}, dict(rates=dict(lr=2e-3, embed_lr=5e-2, head_lr=4e-3, muon_lr=0.03))),
    ("+ warmup-stable-decay (was cosine)", {}, dict(schedule=lambda p: wsd(p, 0.02, 0.5))),
]
SIDE_ROWS = [("  GELU instead of ReLU² (beside its rung)", 4, dict(mlp='gelu'))]  # (label, rung it varies, change)


def rungs():
    """[(label, config, settings)] of the ladder, each rung with the levers of every rung above, then the side rows."""
    levers, settings, out = {}, {}, []
    for label, more_levers, more_settings in LADDER:
        levers, settings = {**levers, **more_levers}, {**settings, **more_settings}
        out.append((label, ModernConfig(vocab_size=len(chars), **sizes, **levers), settings))
    for label, rung, change in SIDE_ROWS:
        out.append((label, replace(out[rung][1], **change), out[rung][2]))
    return out


# %% tags=["nbval-ignore-output"]
SEEDS, LADDER_SECONDS = (1337, 1, 2), (0.25 if SMOKE else 12)
block_size = sizes['block_size']  # split_loss cuts the split into chunks of the model's context
def run_ladder(seconds, seeds):
    """{rung: [(whole-split val loss, steps) for each seed]}, every rung trained for the same seconds."""
    results = {label: [] for label, _, _ in rungs()}
    for seed in seeds:  # the rungs take turns within each seed
        for label, config, settings in rungs():
            model, log = train_modern(config, race_batch, seconds, seed=seed, in_seconds=True, amp_dtype=amp_dtype, **settings)
            results[label].append((split_loss(model, val_data, amp_dtype=amp_dtype), log[-1][0]))
    return results


t_ladder = time.perf_counter()
results = {} if args.race else run_ladder(LADDER_SECONDS, SEEDS)  # --race skips to the race
if results:
    print(f"{len(SEEDS)} seeds x {len(results)} rungs x {LADDER_SECONDS} s of training: {time.perf_counter() - t_ladder:.0f} s in all")

# %% tags=["nbval-ignore-output"]
def verdict(vals, above):
    """'better' or 'worse' than the rung above only where the ranges over the seeds do not overlap."""
    return "better" if max(vals) < min(above) else "worse" if min(vals) > max(above) else "within the noise"


labels = list(results)
compare = [i - 1 for i in range(len(LADDER))] + [rung for _, rung, _ in SIDE_ROWS]  # the row each row is judged against
if results:  # --race ran no ladder
    print(f"{'rung':<44} {'steps':>6} {'val (3 seeds)':>16} {'mean':>7}  vs the rung above (side rows: vs their rung)")
    for i, label in enumerate(labels):
        vals, steps = [v for v, _ in results[label]], statistics.median(s for _, s in results[label])
        say = verdict(vals, [v for v, _ in results[labels[compare[i]]]]) if i else ""
        print(f"{label:<44} {steps:>6.0f} {min(vals):>8.4f}-{max(vals):.4f} {statistics.mean(vals):>7.4f}  {say}")
    first, last = [v for v, _ in results[labels[0]]], [v for v, _ in results[labels[len(LADDER) - 1]]]
    print(f"every lever against notebook 05's race model, on {LADDER_SECONDS} s: {statistics.mean(first) - statistics.mean(last):+.4f} "
          f"lower ({verdict(last, first)})")

# %%
fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
for i, label in enumerate(labels):
    vals = [v for v, _ in results[label]]
    _ = ax.errorbar(statistics.mean(vals), i, xerr=[[statistics.mean(vals) - min(vals)], [max(vals) - statistics.mean(vals)]],
                    fmt='o', color='tab:gray' if i >= len(LADDER) else 'tab:blue', capsize=3)
_ = ax.set_yticks(range(len(labels)), labels, fontsize=8)
ax.invert_yaxis()
_ = ax.set(xlabel=f'whole-split val loss after {LADDER_SECONDS} s (dot: mean of 3 seeds; bar: their range)', title='The ladder')
show(fig, 'ladder')

# %% [markdown]
# **What the stored ladder shows** (12 s a rung, 2-core CPU). Beyond the seed noise, three levers
# paid on this budget: **RoPE** (2.2945 → 2.0789 on average, with no position table to learn),
# **zero-initialised projections without biases, with their own rates** (→ 2.0245), and **Muon**
# (→ 1.9128), although Muon's step costs more on a CPU (141 steps in 12 s against 183): it learns
# more per step than it loses in steps. **RMSNorm**, **QK-norm**, **ReLU² against ReLU** and
# **warmup–stable–decay** stayed within the noise of three seeds; GELU, beside the ReLU² rung, was
# worse. All the levers together ended 0.4030 lower than notebook 05's model on the same seconds.
# Which may pay only at scale (not measured here): RMSNorm is a saving of operations, which a GPU
# bound by memory traffic feels more than this CPU; QK-norm matters when the rate is pushed or the
# model is deep (above); a schedule's decay matters most at the end of a long run, which 12 s is
# not (the race's tuning runs below try a longer decay). A ladder adds the levers in one order
# only: a lever's gain depends on the ones below it (exercise 1).

# %% [markdown]
# ## The race
#
# Every lever on, against the clock: `python notebooks/09_modern_gpt.py --race` runs this alone.
# The clock counts training and the one evaluation over the whole validation split, printed in
# notebook 05's format, so the two races read side by side. The settings below are the ones the
# tuning runs chose (what each change gave is in the next section); every one is a flag.

# %% tags=["nbval-ignore-output"]
levers = {**LEVERS_ON, **{k: v for k, v in (('norm', args.norm), ('mlp', args.mlp)) if v}}
levers.update({k: getattr(args, f) == 'yes' for k, f in (('qk_norm', 'qk_norm'), ('zero_init', 'zero_init')) if getattr(args, f)})
levers.update({'bias': not levers['zero_init']} if args.zero_init else {})
levers.update({'rope': args.positions == 'rope'} if args.positions else {})
given = {k: getattr(args, k) for k in ('n_layer', 'n_head', 'n_embd', 'block_size', 'dropout') if getattr(args, k) is not None}
race = ModernConfig(vocab_size=len(chars), **{**sizes, **given, **levers})
race_batch, race_iters = args.batch_size or race_batch, args.max_iters or race_iters
rates = {**race_rates, **{k: getattr(args, f) for k, f in (('lr', 'learning_rate'), ('embed_lr', 'embed_lr'),
                                                         ('head_lr', 'head_lr'), ('muon_lr', 'muon_lr')) if getattr(args, f)}}
rates['muon_lr'] = None if args.optimizer == 'adamw' else rates['muon_lr']
warmup = args.warmup if args.warmup is not None else round(race_warmup * race_iters)
cooldown = args.cooldown if args.cooldown is not None else round(race_cooldown * race_iters)
check_race(race, race_iters, warmup, cooldown if args.schedule != 'cosine' else None)
schedule = (lambda p: cosine(p, warmup / race_iters)) if args.schedule == 'cosine' else (lambda p: wsd(p, warmup / race_iters, cooldown / race_iters))
print(f"race: {asdict(race)}, batch {race_batch}, {race_iters} steps, rates {rates}, warmup {warmup}, "
      f"{'cosine' if args.schedule == 'cosine' else f'cooldown {cooldown}'}, target {target}, seed {args.seed}")

# %% tags=["nbval-ignore-output"]
EXPECTED_VAL = {"cpu": (1.58, 1.60)}  # whole-split val of correct CPU races on tiny Shakespeare (seeds 1337, 1, 2)
block_size = race.block_size  # split_loss cuts the split into chunks of the model's context
model, log = train_modern(race, race_batch, race_iters, rates, seed=args.seed, schedule=schedule, amp_dtype=amp_dtype,
                          eval_every=eval_every, target=target)
train_seconds, steps_done = log[-1][1], log[-1][0]
t0 = time.perf_counter()
val = split_loss(model, val_data, amp_dtype=amp_dtype)
total_seconds = train_seconds + time.perf_counter() - t0
print(f"{steps_done} steps in {train_seconds:.1f} s; whole-split val loss {val:.4f}; {total_seconds:.1f} s with the "
      f"evaluation (device {device})")
if target is not None:
    print(f"target {target}: {'reached' if val <= target else 'not reached'}")
band = EXPECTED_VAL.get(race_key) if device == race_key and not os.environ.get("COURSE_DATA") else None
if band and not [k for k, v in vars(args).items() if k not in ('race', 'device', 'seed') and v is not None]:  # the defaults
    print(f"a correct run lands at val {band[0]:.2f}-{band[1]:.2f}: {'yes' if band[0] <= val <= band[1] else 'NO: look for a difference'}")

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
_ = ax.plot([t for _, t, _ in log], [l for _, _, l in log], label='training loss (one batch)')
_ = ax.axhline(val, color='tab:orange', linestyle='--', label='whole-split val loss at the end')
_ = ax.set(xlabel='seconds of training', ylabel='loss', title='The modern GPT against the clock')
_ = ax.legend()
show(fig, 'race')

# %% [markdown]
# In the stored run the race reached a whole-split validation loss of 1.5860 after 1,000 steps,
# 83.8 s with the evaluation: the target of 1.60 in 90 s, reached. Three seeds of the same settings
# (the table below) landed within 1.5852–1.5953 in 80.5–87.3 s. Notebook 05's race, run beside them
# on the same machine, reached 1.6974 in 71.7 s: the modern model ends 0.11 lower in 1.1–1.2 times
# the time. The margin on the clock is thin on a busy machine: the times of one setting varied by
# up to 11 s between runs.
#
# **On CUDA** the configuration (the lecture's size, dropout 0.1, batch 64, checked every 100 steps
# against 1.47) has not been run: no GPU was at hand for this notebook. Run it and see.

# %% [markdown]
# ### How the race's settings were found
#
# Each row below is one run of `--race` on this 2-core CPU, under the machine's lock so that no
# other process shared the cores (`python dev/modern_ladder.py FLAGS`; the runs are stored in
# `dev/results/modern_race_tuning.json`). The first six used the settings of the first try: Muon at
# 0.03, the embeddings at 0.02, the last 400 of 1,000 steps in the decay. Notebook 05's own race ran
# in the same session, for the ratio.

# %%
RACE_TUNING = [  # (settings, seed, steps, seconds of training, seconds with the evaluation, whole-split val loss)
    ("first try: Muon 0.03, embeddings 0.02, cooldown 400", 1337, 1000, 79.8, 81.6, 1.5936),
    ("first try", 1, 1000, 77.7, 79.3, 1.5889), ("first try", 2, 1000, 85.7, 87.7, 1.5897),
    ("first try, Muon at 0.05", 1337, 1000, 77.7, 79.3, 1.6050),
    ("first try, cooldown 500", 1337, 1000, 74.4, 76.4, 1.5917),
    ("first try, embeddings at 0.05", 1337, 1000, 79.0, 80.6, 1.5857),
    ("the defaults: embeddings at 0.05 and cooldown 500", 1337, 1000, 78.7, 80.5, 1.5860),
    ("the defaults", 1, 1000, 83.1, 84.6, 1.5852), ("the defaults", 2, 1000, 85.5, 87.3, 1.5953),
    ("notebook 05's --race, beside them", 1337, 1200, 70.3, 71.7, 1.6974),
]
for settings, seed, steps, train_s, total_s, val_loss in RACE_TUNING:
    print(f"{settings:<52} seed {seed:<5} {steps:>5} steps {train_s:5.1f} s, {total_s:5.1f} s with the evaluation: val {val_loss:.4f}")

# %% [markdown]
# ## Past `block_size`
#
# With RoPE the model has no table of `block_size` positions: nothing stops it from reading a longer
# context than it was trained on, so `generate` need not crop (with learned positions it must).
# Notebook 07's key–value cache could then slide along without recomputing, since a cached key,
# turned once at its position, keeps its meaning. Whether the model *uses* the longer past well is
# another matter: it never saw distances beyond `block_size` in training. The cell measures it on
# the validation split, in chunks twice the training context.

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
if model.config.rope:
    per_position = loss_by_position(model, val_data, 2 * block_size)
    print(f"validation loss at positions 0-{block_size - 1}: {per_position[:block_size].mean():.4f}; at positions "
          f"{block_size}-{2 * block_size - 1} (past the training context): {per_position[block_size:].mean():.4f}")
torch.manual_seed(args.seed)
sample = generate_modern(model, torch.zeros((1, 1), dtype=torch.long, device=device), 3 * block_size, temperature=0.8)
print(f"{sample.shape[1]} characters, {'each step reading the whole past' if model.config.rope else f'cropped to {block_size}'}:")
print(decode(sample[0].tolist()))

# %% [markdown]
# In the stored run the model reads twice its training context without complaint, but does not use
# it well: the loss at positions 0–63 was 1.5374, at positions 64–127 1.8652, and the sample falls
# apart past its first hundred characters or so. RoPE removes the table's hard limit; reading well
# past the trained distances takes training at those lengths (or a trick such as position
# interpolation). A sliding window of `block_size` keys (notebook 07's cache, trimmed) keeps every
# distance within what the model has seen.

# %% [markdown]
# ## Summary
#
# - **RMSNorm** (`rms_norm` checked against `F.rms_norm`, the layer against `nn.RMSNorm`), **RoPE**
#   (the score depends only on the distance, checked on every diagonal), **QK-norm** (every score
#   within `±sqrt(hs)`), **ReLU²**, **zero-initialised projections without biases**, and an untied
#   head at its own rate: each a few lines, each checked by properties any correct version has.
# - **Muon**: five Newton–Schulz steps push a gradient's singular values near 1 (checked against
#   the SVD), and the optimizer equals `torch.optim.Muon` within bfloat16's rounding.
# - **Warmup–stable–decay** holds the peak and decays straight to zero at the end.
# - The ladder measures each lever on the same seconds over three seeds and calls a difference
#   only beyond the seed noise; the race trains all of them against the clock.
#
# ## Exercises
#
# 1. Run the race with one lever off at a time (`--optimizer adamw`, `--positions learned`,
#    `--qk-norm no`, `--schedule cosine`, ...) over three seeds each. Which lever costs most when
#    it is missing? Does the answer agree with the ladder, which adds them in one order only?
# 2. Find the largest `--muon-lr` that still trains, then the largest `--learning-rate` with
#    `--optimizer adamw`. Which is more forgiving, and what does QK-norm change?
# 3. Give the queries and keys of QK-norm a learned gain per channel (as OLMo 2 and Gemma do) and
#    measure it on the ladder's budget.
