# %% [markdown]
# # 05b · The speed-ups of notebook 05, taken apart
#
# Notebook 05 makes the lecture's GPT fast and times each change. This notebook opens each change
# up, with experiments small enough for a CPU: the fast model is the lecture's, weight for weight;
# half precision and its gradient scaler, number by number, and notebook 05's training step checked
# against SGD by hand; what `torch.compile` and a fused optimizer save; and the whole validation split
# evaluated in small and in large batches. It belongs to the lecture's walk through nanoGPT
# (**1:46:22 to 1:48:53**), whose `model.py` it reads beside ours; notebook 06 comes next.
#
# Standalone (it downloads its data) and a script: `python notebooks/05b_speed_up_close.py`.

# %%
import argparse, copy, hashlib, math, os, pathlib, platform, shutil, statistics, sys, tempfile, time, urllib.request
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
RUN_NAME = "05b_speed_up_close"                 # as a script, figures go to runs/05b_speed_up_close/

# %% [markdown]
# The next cells are plumbing every notebook carries so that it stands alone (folders, figures,
# the device, the data, the checks); they are folded in Jupyter and Colab.

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
# %% jupyter={"source_hidden": true} cellView="form"
#@title Plumbing: checks of the model's pieces (from 03c_the_complete_model: the parts this notebook uses)
def probe_sizes(T):
    """(B, T) sizes to try a piece on: the whole context, a part of it, one token."""
    return [(2, T), (3, T // 2 + 1), (1, 1)][:3 if T > 1 else 1]

def run_eval(module, *inputs, what=None, hint="look at the shapes of the tensors in that piece", finite=False):
    """module(*inputs) in eval mode without gradients, its mode restored after; a crash becomes a sentence naming the
    sub-module it happened in (or one that returned None); with finite, nan or inf names the piece that made it."""
    was, what = module.training, what or f"{type(module).__name__} on x of shape {tuple(inputs[0].shape)}"
    kept, names, running, bad, empty = [t.clone() for t in inputs], {m: n for n, m in module.named_modules() if n}, [], [], []
    nan = lambda t: isinstance(t, torch.Tensor) and t.is_floating_point() and not torch.isfinite(t).all()
    def leave(m, args, out):  # a piece finished: note the first that returned None or turned finite input into nan
        _ = running.pop(), out is None and empty.append(m), not bad and nan(out) and not any(map(nan, args)) and bad.append(m)
    hooks = [h for m in names for h in (m.register_forward_pre_hook(lambda m, args: running.append((m, args))),
                                        m.register_forward_hook(leave))]
    try:
        with torch.no_grad():
            out = module.eval()(*inputs)
    except Exception as e:  # the learner's code crashed inside a check: say where, not a raw traceback
        said, (m, args) = (str(e).strip().splitlines() or [""])[0][:200], running[-1] if running else (None, ())
        where = f" in {names[m]} ({type(m).__name__}, given input of shape {tuple(args[0].shape)})" if m and args else ""
        raise CheckFailed(f"{what} raised {type(e).__name__} ({said}){where}: " + (f"{names[empty[0]]} ("
                          f"{type(empty[0]).__name__}) returned None: does its forward end with return ...?" if empty else
                          'look at the shapes that piece makes and is given' if m else "a layer is None, not a module (an "
                          "argument not given, with no default such as nn.Identity())" if "'NoneType' object is not callable"
                          in said else hint)) from None
    finally:
        _ = [h.remove() for h in hooks], module.train(was)
    check(out is not None, f"{what} returned None: does its forward end with return ...?")
    check(all(torch.equal(a, b) for a, b in zip(kept, inputs)), f"{what} changed its input in place (x += ... or "
          "an in-place op on x): write x = x + ..., a new tensor, so the input stays as it was (autograd needs it)")
    check(not finite or not nan(out[0] if isinstance(out, tuple) else out), f"{what} gave nan or inf, first made by "
          f"{f'{names[bad[0]]} ({type(bad[0]).__name__})' if bad else 'its own forward'} from finite input: in attention "
          "a query whose scores are all -inf (the mask must keep the diagonal and the past), or no softmax after the mask")
    return out

def dropped(module, fn, p=0.5):
    """fn() with module in training mode, every nn.Dropout in it at p, without gradients; all restored after."""
    drops = [m for m in module.modules() if isinstance(m, nn.Dropout)]
    rates, was = [m.p for m in drops], module.training
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            _ = [setattr(m, "p", p) for m in drops], module.train()
            return fn()
    finally:
        _ = [setattr(m, "p", rate) for m, rate in zip(drops, rates)], module.train(was)

def check_registered(module):
    """Every sub-module is registered (no plain list of modules) and every mask (tril) is a buffer, not a parameter."""
    for owner in module.modules():
        for key, value in vars(owner).items():
            items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else ()
            check(key.startswith("_") or not any(isinstance(v, nn.Module) for v in items), f"{type(owner).__name__}.{key} "
                  f"is a plain Python {type(value).__name__} of modules, so their weights are not parameters of the model "
                  "(the optimizer never sees them, .to(device) never moves them): use nn.ModuleList([...])")
        tril, where = getattr(owner, "tril", None), type(owner).__name__ + ".tril"
        if isinstance(tril, torch.Tensor):
            check(not isinstance(tril, nn.Parameter), f"{where} is an nn.Parameter, so the optimizer trains (and decays) "
                  "the mask: keep it out of the parameters with self.register_buffer('tril', ...)")
            check(any(b is tril for b in owner.buffers(recurse=False)), f"{where} is a plain attribute, not a buffer, so "
                  "model.to(device) leaves it on the CPU (and it is not in state_dict): self.register_buffer('tril', ...)")

def sees_future(module, x, training=False, first=1):
    """Whether the first outputs of module (B, T, ...) change when only later positions of x change; with training,
    in training mode with every dropout at 0.5 and the same random numbers for both inputs."""
    changed, name = x.clone(), type(module).__name__
    changed[:, first:] = torch.randn_like(x[:, first:]) if x.is_floating_point() else (x[:, first:] + 1) % (int(x.max()) + 1)
    seeded = lambda inp: (torch.manual_seed(0), attempt(f"{name} in training mode", module, inp))[1]
    outs = [dropped(module, lambda: seeded(inp)) if training else run_eval(module, inp) for inp in (x, changed, x)]
    outs = [(out[0] if isinstance(out, tuple) else out) for out in outs]
    check(torch.allclose(outs[0], outs[2], rtol=0, atol=0, equal_nan=True), f"{name} gives two outputs for one input{'' if training else ' in eval mode'}: a "
          "dropout ignores the mode (F.dropout(x, p) drops in eval mode too: pass training=self.training, or use nn.Dropout)")
    return not torch.allclose(outs[0][:, :first], outs[1][:, :first], atol=1e-5)

def check_model(model, attends=True):
    """Probe a language model(idx, targets) -> (logits, loss): shapes and loss at several lengths, causal, aware
    of positions, communicating (if attends), no dropout on the logits, mode kept."""
    torch.manual_seed(0)
    positions = getattr(model, "position_embedding_table", None)  # notebook 01's bigram has none
    V, T = model.token_embedding_table.num_embeddings, positions.num_embeddings if positions else 8
    name = type(model).__name__
    check_registered(model)
    masks = [b.shape[-1] for k, b in model.named_buffers() if k.endswith("tril")]
    check(not positions or not masks or T <= min(masks), f"{name}'s position table has {T} rows but its attention "
          f"masks are {min(masks or [0])} x {min(masks or [0])}: one row per position, nn.Embedding(block_size, n_embd)")
    shapes = ("positions are arange(T) with T = idx.shape[1]; logits stay (B, T, vocab_size) and only the loss "
              "flattens them, F.cross_entropy(logits.view(B*T, C), targets.view(B*T))")
    for B, t in probe_sizes(T):
        idx, targets = torch.randint(0, V, (B, t)), torch.randint(0, V, (B, t))
        logits, loss = run_eval(model, idx, targets, what=f"{name}(idx of shape {(B, t)}, targets)", hint=shapes, finite=True)
        check(logits.numel() == B * t * V and loss is not None and loss.dim() == 0, f"{name}(idx of shape {(B, t)}, "
              f"targets) gave logits of shape {tuple(logits.shape)} and loss {loss if loss is None else tuple(loss.shape)}: "
              f"expected (B, T, vocab_size) = {(B, t, V)} and one number")
        expected = F.cross_entropy(logits.reshape(-1, V), targets.flatten())
        check(not ((logits >= 0).all() and torch.allclose(logits.sum(-1), torch.ones(()), atol=1e-4)), f"{name} returns "
              "probabilities (each row of its logits sums to 1): return the raw scores; F.cross_entropy applies the softmax")
        check(torch.allclose(loss, expected, atol=1e-4), f"{name}'s loss {loss.item():.4f} is not the mean cross-entropy "
              f"of its logits and targets ({expected.item():.4f}): F.cross_entropy(logits.view(B*T, C), targets.view(B*T))")
        logits = run_eval(model, idx, what=f"{name}(idx of shape {(B, t)})", hint="it ran with targets, not without: "
                          "called with targets=None, forward must not compute the loss (loss is None then)")[0]
        check(logits.shape == (B, t, V), f"{name}(idx of shape {(B, t)}) gave logits of shape {tuple(logits.shape)}, "
              f"not (B, T, vocab_size) = {(B, t, V)}")
    logits_of = lambda idx: run_eval(model, idx)[0]  # (B, T, V)
    idx = torch.randint(0, V, (-(-V // T), T))  # (B, T) with every character among the targets below
    every = (torch.arange(idx.numel()) % V).view_as(idx)
    logits, loss = run_eval(model, idx, every)
    check(abs(loss.item() - F.cross_entropy(logits.reshape(-1, V), every.flatten()).item()) < 1e-4, f"on targets holding "
          f"each of the {V} characters the loss is not their mean cross-entropy: is some character (an ignore_index, a "
          "mask) left out of the loss?")
    twice = [dropped(model, lambda: model.eval()(idx)[0]) for _ in range(2)]  # eval mode, every nn.Dropout at 0.5
    check(torch.equal(*twice), "in eval mode (dropout rates at 0.5) two passes give different logits: a dropout ignores "
          "the mode (F.dropout(x, p) drops in eval mode too: pass training=self.training, or use nn.Dropout)")
    idx = idx[:2]
    changed, earlier = idx.clone(), idx.clone()
    changed[:, T // 2:] = (changed[:, T // 2:] + 1) % V  # a different second half
    earlier[:, 0] = (earlier[:, 0] + 1) % V  # a different first character
    before, after, same_token = logits_of(idx), logits_of(changed), logits_of(torch.full((1, 2), 1))
    check(torch.allclose(before[:, :T // 2], after[:, :T // 2], atol=1e-5), "changing later characters changed "
          "the predictions at earlier positions: the model sees the future (check the attention mask)")
    deaf = attends and torch.allclose(logits_of(earlier)[:, 1:], before[:, 1:])
    blind = positions and torch.allclose(same_token[0, 0], same_token[0, 1], atol=1e-6)
    check(not (deaf and blind), "the logits depend on the current character alone, not on its position nor on the "
          "characters before it: lm_head is fed the token embeddings (or the body's output is dropped), not the x "
          "that came through the body")
    check(not blind, "the same character at positions 0 "
          "and 1 gives the same logits: the model ignores positions (are position embeddings added, and does the x "
          "that holds them reach lm_head?)")
    check(not deaf, "changing the first character "
          "changed nothing after it: the positions do not communicate (is the attention applied?)")
    check(torch.allclose(logits_of(idx[:, :T // 2]), logits_of(idx)[:, :T // 2], atol=1e-5), "the logits of a prefix "
          "differ from the same positions of the whole input's: a prediction must not depend on how much comes after")
    if positions:  # with the position table zeroed, the tokens must still reach the logits: embeddings add
        saved = positions.weight.detach().clone()
        try:
            flat = (positions.weight.data.zero_(), torch.allclose(logits_of(idx), logits_of((idx + 1) % V), atol=1e-6))[1]
        finally:
            positions.weight.data.copy_(saved)
        check(not flat, "with the position table set to zero the logits no longer depend on the characters: the token "
              "and position embeddings must be added, not combined another way (multiplied?)")
    check(not sees_future(model, idx, training=True, first=T // 2), "in training mode (dropout on) changing later "
          "characters changed the predictions at earlier positions: dropout belongs after the softmax, on the "
          "weights, never on the scores before it")
    slips = device_slips(model, idx)
    check(not slips, f"on a GPU {name} would mix the model's device with tensors made on the CPU (in {slips[:1]}): "
          "make new tensors on the input's device, torch.arange(T, device=idx.device), and keep masks as buffers")
    zeros = dropped(model, lambda: ((z := model(idx)[0] == 0) & ~z.all(-1, keepdim=True)).float().mean().item())  # 0s
    # in rows that are not all 0 (a whole row of 0 logits is a zero input vector, not a dropout on the logits)
    check(zeros < 0.05, f"in training mode {zeros:.0%} of the logits are exactly 0: a dropout is applied to "
          "the logits; dropout belongs inside the blocks, never after lm_head")
    return Passed(f"{name}: passed (causal{', aware of positions' if positions else ''}{', communicating' if attends else ''})")

class MixedDevices(torch.overrides.TorchFunctionMode):
    """Records every torch function called with tensors (not scalars) on two devices."""

    def __init__(self):
        super().__init__()
        self.mixed = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        flat = [a for v in (*args, *kwargs.values()) for a in (v if isinstance(v, (list, tuple)) else [v])]
        if len({a.device.type for a in flat if isinstance(a, torch.Tensor) and a.dim() > 0}) > 1:
            self.mixed.append(getattr(func, "__name__", str(func)))
        return func(*args, **kwargs)

def device_slips(model, idx):
    """The functions in model(idx) that mix devices when a copy of the model sits on the 'meta' device."""
    import copy
    try:
        twin = copy.deepcopy(model).to("meta").eval()
    except Exception:  # a model that cannot be copied: nothing to say
        return []
    mode = MixedDevices()
    try:
        with torch.no_grad(), mode:
            twin(idx.to("meta"))
    except Exception:  # an operation without a meta version, or the mix itself: what was recorded counts
        pass
    return mode.mixed


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
# ## The lecture's model, exactly as notebook 04 built it
#
# Copies of notebook 04's model (`Head`, `MultiHeadAttention`, `FeedForward`, `Block`,
# `GPTLanguageModel`, `generate`) and of notebook 05's fast one (`CausalSelfAttention`, `FastBlock`,
# `FastGPT`), so that this notebook runs on its own; a test keeps the copies equal. They are folded:
# you know them from notebooks 04 and 05.

# %% jupyter={"source_hidden": true} cellView="form"
#@title Notebook 04's model: the configuration, a head, many heads, the feed-forward layer and the block (folded)
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
#@title Notebook 04's model: the GPT and its generate (folded)
def _init_weights(module):
    """normal(0, 0.02) weights for every Linear and Embedding, zero biases: gpt.py's initialisation."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        torch.nn.init.zeros_(module.bias)


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
        self.apply(_init_weights)

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


# %% jupyter={"source_hidden": true} cellView="form"
#@title Notebook 05's fast model: batched heads and scaled_dot_product_attention (folded)
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
        self.blocks.apply(_init_weights)


# %%
def compiler_available():
    """Whether torch.compile can build kernels here: CUDA has Triton; a CPU needs a C++ compiler."""
    return device == 'cuda' or any(shutil.which(c) for c in (os.environ.get("CXX", "g++"), "g++", "c++", "clang++"))


def sync():
    """Wait for the device to finish its queued work, so that timings are real."""
    if device == 'cuda':
        torch.cuda.synchronize()
    elif device == 'mps':
        torch.mps.synchronize()


# %% tags=["nbval-ignore-output"]
device = pick_device()
if SMOKE:
    config = GPTConfig(block_size=16, n_embd=32, n_head=2, n_layer=2, dropout=0.0)
elif device == 'cuda':
    config = GPTConfig()  # the lecture's: 10.8 M parameters
else:
    config = GPTConfig(block_size=64, n_embd=128, n_head=4, n_layer=4, dropout=0.0)  # notebook 05's benchmark size
config = GPTConfig(**{**asdict(config), 'vocab_size': len(chars)})
block_size = config.block_size
print(describe_device(device))
print(f"config: {asdict(config)}")

# %% [markdown]
# ## 1. The fast model is the lecture's, weight for weight
#
# Head `h` of the lecture's layer owns rows `h*hs … (h+1)*hs` of each third of `qkv`: copying the
# weights across must give the same function. We check it on random input, in float32.

# %% jupyter={"source_hidden": true} cellView="form"
#@title The check that two modules compute the same function (folded)
def check_same_function(fast, slow, what, inputs):
    """Stop with one sentence unless fast(x) equals slow(x) (both in eval mode) for every x in inputs."""
    modes = fast.training, slow.training
    for x in inputs:
        try:
            with torch.no_grad():
                a, b = fast.eval()(x), slow.eval()(x)
        except Exception as e:
            raise CheckFailed(f"{what} fails on input of shape {tuple(x.shape)} with {type(e).__name__}: "
                              f"{str(e).splitlines()[0]}") from None
        a, b = (t[0] if isinstance(t, tuple) else t for t in (a, b))  # a model returns (logits, loss)
        check(a.shape == b.shape and torch.allclose(a, b, atol=1e-5), f"{what} computes another function than the "
              f"lecture's on input of shape {tuple(x.shape)}: a weight went to the wrong place or was not copied (which "
              "rows of qkv does each head own, and in which order do query, key and value come?)")
    fast.train(modes[0]), slow.train(modes[1])
    return Passed(f"{what}: passed (the same function as the lecture's, at every input size tried)")


# %%
def copy_heads(mha, attn):
    """Copy a MultiHeadAttention's per-head weights into a CausalSelfAttention."""
    with torch.no_grad():
        for i, name in enumerate(['query', 'key', 'value']):
            attn.qkv.weight[i * attn.proj.in_features:(i + 1) * attn.proj.in_features] = torch.cat(
                [getattr(h, name).weight for h in mha.heads])  # (C, C) the heads stacked
        attn.proj.load_state_dict(mha.proj.state_dict())
    return attn


toy = GPTConfig(vocab_size=65, block_size=16, n_embd=64, n_head=4, n_layer=2, dropout=0.0)
torch.manual_seed(1337)
x = torch.randn(4, 16, toy.n_embd)  # (B, T, C)
mha = MultiHeadAttention(toy)
batched = copy_heads(mha, CausalSelfAttention(toy, flash=False))
print('batched heads == MultiHeadAttention:', torch.allclose(batched(x), mha(x), atol=1e-6))
assert sum(p.numel() for p in batched.parameters()) == sum(p.numel() for p in mha.parameters())
check_same_function(copy_heads(mha, CausalSelfAttention(toy)), mha, "copy_heads",
                    [torch.randn(B, T, toy.n_embd) for B, T in ((2, 16), (3, 5), (1, 1))])

# %% [markdown]
# The whole model: every block's attention copied this way, everything else loaded by name. The
# same weights must give the same loss, and the fast model must pass notebook 04's probes (causal,
# aware of positions, communicating).

# %%
def fast_from_lecture(lecture, flash=True):
    """A FastGPT computing the same function as a GPTLanguageModel, with its weights."""
    fast = FastGPT(lecture.config, flash)
    own = {k: v for k, v in lecture.state_dict().items() if '.sa.' not in k}  # all but the attention
    fast.load_state_dict(own, strict=False)
    for block, fast_block in zip(lecture.blocks, fast.blocks):
        copy_heads(block.sa, fast_block.sa)
    return fast


# %%
torch.manual_seed(1337)
lecture_model = GPTLanguageModel(toy)
fast_model = fast_from_lecture(lecture_model)
idx, targets = torch.randint(0, 65, (4, 16)), torch.randint(0, 65, (4, 16))  # (B, T) each
loss_lecture, loss_fast = lecture_model(idx, targets)[1], fast_model(idx, targets)[1]
print(f"loss: lecture {loss_lecture.item():.6f}, fast {loss_fast.item():.6f}")
count = lambda m: sum(p.numel() for p in m.parameters())
assert count(lecture_model) == count(fast_model)
print(f"both have {count(fast_model):,} parameters")
check_model(fast_model) and check_same_function(fast_model, lecture_model, "fast_from_lecture",
                                                [torch.randint(0, 65, (B, T)) for B, T in ((2, 16), (3, 7))])

# %% [markdown]
# ### The same model in nanoGPT
#
# The lecture ends by walking through nanoGPT's `model.py`, which is this model with other names and
# a few additions. To read one beside the other:
#
# | this course (the lecture's names) | nanoGPT `model.py` |
# |---|---|
# | `GPTLanguageModel` | `GPT` |
# | `token_embedding_table`, `position_embedding_table` | `transformer.wte`, `transformer.wpe` |
# | `blocks` (an `nn.Sequential`) | `transformer.h` (an `nn.ModuleList`) |
# | `Block.sa`: `Head` + `MultiHeadAttention`, here `CausalSelfAttention` | `Block.attn`: `CausalSelfAttention` |
# | `qkv`, `proj` | `c_attn`, `c_proj` |
# | `Block.ffwd`: `FeedForward` (`net`: linear, ReLU, linear, dropout) | `Block.mlp`: `MLP` (`c_fc`, `gelu`, `c_proj`, `dropout`) |
# | `ln1`, `ln2`, `ln_f` | `ln_1`, `ln_2`, `transformer.ln_f` |
# | `lm_head` | `lm_head` (without a bias) |
# | `block_size`, `n_embd`, `n_head`, `n_layer`, `dropout` | the same names in its `GPTConfig`, plus `bias` |
#
# What nanoGPT adds: weight tying (the token embedding and `lm_head` share one matrix), GELU for ReLU,
# output projections that start smaller (std 0.02 / √(2 · n_layer)), `bias=False`, flash attention,
# AdamW with weight decay on the matrices and a warmup-and-cosine schedule, `torch.compile`, mixed
# precision, gradient accumulation and several GPUs. Notebook 05 adds most of them; notebook 06c
# measures GELU and weight tying, notebook 08 trains on several processes.

# %% [markdown]
# ## 2. The GPU's tricks, tried on a CPU
#
# Three of notebook 05's changes help most on a GPU: mixed precision, a fused optimizer, and
# `torch.compile`. Each can be understood, and most can be run, on a CPU.
#
# **Half precision.** A float16 number has 5 bits of exponent and 10 of mantissa; bfloat16 has 8 and
# 7. So float16 is precise but has a small range, and bfloat16 has float32's range but only two or
# three decimal digits:

# %%
for dtype in (torch.float32, torch.float16, torch.bfloat16):
    info = torch.finfo(dtype)
    print(f"{str(dtype):<15} largest {info.max:9.3g}  smallest normal {info.tiny:9.3g}  step after 1.0 {info.eps:9.3g}")
gradient = torch.tensor(1e-8)  # a small gradient, as deep in a network
print(f"1e-8 in float16: {gradient.half().item():g}; scaled by 2**16 first: {(gradient * 2**16).half().float().item() / 2**16:.3g}")
print(f"1e-8 in bfloat16: {gradient.bfloat16().item():.3g}; 1 + 1e-3 in bfloat16: {torch.tensor(1 + 1e-3).bfloat16().item():g}, "
      f"in float16: {torch.tensor(1 + 1e-3).half().item():.4f}")
assert gradient.half() == 0 and (gradient * 2**16).half() > 0 and torch.tensor(1 + 1e-3).bfloat16() == 1

# %% [markdown]
# Under `torch.autocast` the matrix multiplications run in half precision while the weights stay in
# float32. With float16, small gradients would round to zero, so a **gradient scaler** multiplies the
# loss by a large factor (2¹⁶) before `backward`, divides the gradients back before the step, and, if
# the scaled gradients overflowed to `inf`, skips the step and halves the factor. Step by step, on a
# tiny model on the CPU (`torch.amp.GradScaler('cpu')`):

# %%
torch.manual_seed(0)
tiny = nn.Linear(4, 1)
optimizer = torch.optim.SGD(tiny.parameters(), lr=0.1)
scaler = torch.amp.GradScaler('cpu', init_scale=2.0**16)
xs, ys = torch.randn(8, 4), torch.randn(8, 1)
plain = torch.autograd.grad(F.mse_loss(tiny(xs), ys), tiny.weight)[0]  # the true gradient, for comparison
scaler.scale(F.mse_loss(tiny(xs), ys)).backward()
print(f"scaled gradient / true gradient: {(tiny.weight.grad / plain).mean():.0f}")
scaler.unscale_(optimizer)
print(f"after unscale_: equal to the true gradient: {torch.allclose(tiny.weight.grad, plain)}")
scaler.step(optimizer)
scaler.update()
optimizer.zero_grad()
before = tiny.weight.detach().clone()
scaler.scale(F.mse_loss(tiny(xs), ys) * 1e35).backward()  # too large: the scaled gradients overflow to inf
scaler.step(optimizer)
scaler.update()
print(f"overflow: step skipped {torch.equal(tiny.weight, before)}, scale now {scaler.get_scale():.0f} (was {2**16})")
assert torch.equal(tiny.weight, before) and scaler.get_scale() == 2**15

# %% [markdown]
# Notebook 05's benchmark and 05c's race take every step through one function, `scaled_step`: the same
# moves, with clipping between `unscale_` and the step. With the scaler disabled (float32, bfloat16)
# each call is the plain step.

# %%
def scaled_step(model, optimizer, scaler, loss, lr, clip=None):
    """One step on loss at learning rate lr: scaled backward, unscale and clip (if clip), step, new scale."""
    for group in optimizer.param_groups:
        group['lr'] = lr
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if clip:
        scaler.unscale_(optimizer)  # the true gradients, so that the clip sees their real norm
        nn.utils.clip_grad_norm_(model.parameters(), clip)
    scaler.step(optimizer)  # skipped if the scaled gradients overflowed
    scaler.update()  # halve the scale after an overflow, double it after growth_interval good steps


# %% [markdown]
# **Check.** Six steps of a tiny linear model through `scaled_step`, with a real `GradScaler` on the
# CPU (scale 2¹⁰, doubling every 2 good steps), different learning rates, clipping on some steps, and
# one loss so large that its scaled gradients overflow. After every step the weights must equal plain
# SGD computed by hand from the true gradients, and the scale must follow the scaler's rules; then
# the same with the scaler disabled.

# %% jupyter={"source_hidden": true} cellView="form"
#@title The check of scaled_step (folded: open it to see how it works)
def sgd_by_hand(model, x, y, lr, clip, scale=1.0):
    """(weights, gradients) of one SGD step on mse(model(x), y), the gradients clipped to norm clip after times scale."""
    grads = torch.autograd.grad(F.mse_loss(model(x), y), list(model.parameters()))
    norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads)).item() * scale
    grads = [g * min(1.0, clip / (norm + 1e-6)) if clip else g for g in grads]
    return [p.detach() - lr * g for p, g in zip(model.parameters(), grads)], grads


def step_suspects(model, x, y, lr, clip, scale):
    """Likely mistakes in a scaled step, each with the weights it would give, most likely first."""
    by_hand = lambda *a: sgd_by_hand(model, x, y, *a)[0]
    return {"the gradients were clipped while still multiplied by the scale: unscale_ them before clip_grad_norm_":
            by_hand(lr, clip, scale), "the gradients were not clipped to norm clip": by_hand(lr, None),
            "the step used the scaled gradients: step with scaler.step(optimizer), which unscales them": by_hand(lr * scale, None),
            "the gradients were divided by the scale but never multiplied by it: backward through scaler.scale(loss)":
            by_hand(lr / scale, None), "the learning rate lr was not given to the optimizer's param_groups": by_hand(1.0, clip),
            "the weights did not move: no step, or the gradients were zeroed between backward and the step":
            [p.detach().clone() for p in model.parameters()]}


SCALER_SAYS = {  # what GradScaler says when it is used out of order -> the likely cause
    "since the last update()": "scaler.update() is missing: the scaler must update once after every step",
    "No inf checks were recorded prior to update": "scaler.update() ran without scaler.step: step with scaler.step(optimizer)",
    "No inf checks were recorded for this optimizer": "no parameter had a gradient at scaler.step: were the gradients zeroed "
                                                      "between backward and the step?",
    "_scale is None": "the gradients were never multiplied by the scale: backward through scaler.scale(loss)"}


def check_scaled_step(step):
    """step(model, optimizer, scaler, loss, lr, clip) against hand-computed SGD and the GradScaler's rules."""
    for enabled in (True, False):
        torch.manual_seed(0)
        model, xs, ys = nn.Linear(4, 3), torch.randn(6, 8, 4), torch.randn(6, 8, 3)
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        scaler = torch.amp.GradScaler('cpu', init_scale=2.0**10, growth_interval=2, enabled=enabled)
        scale, good = 2.0**10 if enabled else 1.0, 0
        for i, (lr, clip) in enumerate(zip([0.1, 0.05, 0.2, 0.1, 0.3, 0.1], [0.5, None, 0.5, 0.5, None, 0.5])):
            overflow, before = enabled and i == 2, [p.detach().clone() for p in model.parameters()]
            (wanted, grads), suspects = sgd_by_hand(model, xs[i], ys[i], lr, clip), step_suspects(model, xs[i], ys[i], lr, clip, scale)
            try:
                step(model, optimizer, scaler, F.mse_loss(model(xs[i]), ys[i]) * (1e36 if overflow else 1.0), lr, clip)
            except Exception as e:
                said = str(e).splitlines()[0]
                cause = next((c for k, c in SCALER_SAYS.items() if k in said), "the order is zero_grad, scaled backward, "
                             "unscale_ and clip, scaler.step, scaler.update")
                raise CheckFailed(f"step {i + 1} of the check raised {type(e).__name__} ({said.strip()}): {cause}") from None
            same = lambda ws: all(torch.allclose(p.detach(), w, rtol=1e-4, atol=1e-7) for p, w in zip(model.parameters(), ws))
            check(not overflow or same(before), "a step whose scaled gradients overflowed to inf was taken: step with "
                  "scaler.step(optimizer), which skips it, not optimizer.step()")
            own = all(p.grad is None or not p.grad.any() or torch.allclose(p.grad, g, rtol=1e-4, atol=1e-7)
                      for p, g in zip(model.parameters(), grads))
            added = "gradients of earlier steps are added in: zero them before backward"
            cause = next((s for s, ws in suspects.items() if same(ws)), None) or (added if not own else
                                                                                 "compare each line with the recipe above")
            check(overflow or same(wanted), f"after step {i + 1} of the check (lr {lr}, clip {clip}, scaler enabled: {enabled}) "
                  f"the weights differ from SGD computed by hand on the true gradients: {cause}")
            check(overflow or own, f"after step {i + 1} the gradients are not that step's own: {added}")
            good = 0 if overflow else good + 1
            scale, good = (scale / 2 if overflow else scale * 2 if good == 2 else scale), good % 2
            check(not enabled or scaler.get_scale() == scale, f"after step {i + 1} the scale is {scaler.get_scale():g}, "
                  f"not {scale:g}: the scaler must update once after every step (scaler.update())")
    return Passed("scaled_step: passed (hand-computed SGD steps, overflow skipped, the scale halved and doubled)")


# %%
check_scaled_step(scaled_step)

# %% [markdown]
# **`torch.compile`** captures the model's Python code as a graph, then generates fused *kernels*
# (a kernel is one function that runs on the device): a chain of element-wise operations that
# PyTorch normally runs *eagerly*, one at a time as Python reaches it, each reading and writing the
# whole tensor, becomes one loop over memory. It needs Triton on a GPU and a C++ compiler on a
# CPU. The first call compiles (slow, once); later calls are fast. nanoGPT's tanh GELU is such a
# chain of seven operations:

# %%
def new_gelu(x):
    """GELU as nanoGPT once wrote it: seven element-wise operations."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def seconds(f, *a, repeat=20):
    """Median seconds of f(*a) over repeat calls."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f(*a)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# %% [markdown]
# Compiled once, then timed against the eager function on a tensor of the feed-forward layer's size:

# %% tags=["nbval-ignore-output"]
xs = torch.randn(64, 64, 512)  # (B, T, 4C)
if compiler_available():
    t0 = time.perf_counter()
    compiled_gelu = torch.compile(new_gelu)
    same = torch.allclose(compiled_gelu(xs), new_gelu(xs), atol=1e-6)
    print(f"compiling took {time.perf_counter() - t0:.1f} s; the outputs agree: {same}")
    print(f"eager {seconds(new_gelu, xs) * 1e3:.2f} ms, compiled {seconds(compiled_gelu, xs) * 1e3:.2f} ms per call")
else:
    print("no C++ compiler on this machine: torch.compile is skipped here (install g++ or clang++ to try it)")

# %% [markdown]
# **Fused AdamW.** The optimizer updates every parameter tensor. The plain implementation loops over
# them in Python, several small operations each; `foreach=True` updates all tensors with one call per
# operation; `fused=True` does the whole update of all tensors in one kernel. On the CPU, for notebook
# 05's benchmark model:

# %% tags=["nbval-ignore-output"]
def optimizer_step_seconds(**kind):
    """Median seconds of one AdamW step (of the given kind) over the benchmark model's parameters."""
    torch.manual_seed(0)
    params = [p.detach().clone().requires_grad_() for p in FastGPT(config).parameters()]
    for p in params:
        p.grad = torch.randn_like(p)
    opt = torch.optim.AdamW(params, lr=1e-3, **kind)
    return seconds(opt.step)


for kind in ({'foreach': False}, {'foreach': True}, {'fused': True}):
    print(f"AdamW {str(kind):<18} {optimizer_step_seconds(**kind) * 1e3:7.2f} ms per step")


# %% [markdown]
# ## 3. The validation loss over the whole split, in large batches
#
# The lecture estimates the loss from random batches, `eval_iters = 200` per split, one forward pass
# and one `.item()` (a wait for the device) each. Going once over every character of the validation
# split, in non-overlapping chunks of `block_size`, gives the exact number instead of an estimate.
# Both ways below go over exactly the same tokens, the whole validation split: the lecture's habits
# (batches of 32, a `.item()` per batch) against large batches of 256 that add up the loss on the
# device. They must agree on the loss; which is faster depends on the device, so they take turns,
# three rounds each, and the cell prints the median and spread of both.

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
# The same chunks with the lecture's habits, for comparison:

# %%
@torch.no_grad()
def split_loss_lecture_style(model, data, batch=32):
    """The same mean loss, with the lecture's habits: small batches, one .item() per batch."""
    model.eval()
    n = (len(data) - 1) // block_size * block_size
    x, y = data[:n].view(-1, block_size), data[1:n + 1].view(-1, block_size)  # (N, T) each
    total = sum(model(xb.to(device), yb.to(device))[1].item() * len(xb) for xb, yb in zip(x.split(batch), y.split(batch)))
    model.train()
    return total / len(x)


# %% tags=["nbval-ignore-output"]
torch.manual_seed(1337)
model = FastGPT(config).to(device)
times, losses = {32: [], 256: []}, {}
for _ in range(1 if SMOKE else 3):
    for batch, way in ((32, split_loss_lecture_style), (256, split_loss)):
        sync(); t0 = time.perf_counter()
        losses[batch] = way(model, val_data, batch=batch)
        sync(); times[batch].append(time.perf_counter() - t0)
check(abs(losses[32] - losses[256]) < 1e-4, f"the two ways give {losses[32]:.4f} and {losses[256]:.4f}: they must cover the same chunks")
for batch, label in ((32, "batches of 32 with .item()"), (256, "batches of 256, summed on the device")):
    print(f"{label:<38} {statistics.median(times[batch]):.2f} s ({min(times[batch]):.2f}-{max(times[batch]):.2f}), loss {losses[batch]:.4f}")

# %% [markdown]
# ## Summary
#
# - Copying each head's rows into one `qkv` matrix, and every other weight by name, turns the
#   lecture's model into the fast one with the same loss: the speed-ups change the arithmetic's
#   order, not the function.
# - float16 has a small range (a gradient of 1e-8 vanishes unless scaled first), bfloat16 few
#   digits; the gradient scaler scales, unscales, and skips a step that overflowed, halving its scale;
#   notebook 05's `scaled_step` does all of it, step for step as SGD computed by hand.
# - `torch.compile` fuses chains of element-wise operations into one kernel; fused AdamW updates all
#   tensors in one kernel.
# - Going over the whole split gives the exact loss; whether large batches are also faster depends on
#   the device: on this 2-core CPU they were slower (a median of 2.10 s against 1.67 s for the
#   lecture's batches of 32); measure it on yours.
#
# ## Exercises
#
# 1. Time `compiled_gelu` against `new_gelu` for tensors from a thousand to ten million elements. Where
#    does compiling start to pay?
# 2. Train notebook 04's small model for 200 steps under `torch.autocast('cpu', dtype=torch.bfloat16)`
#    and in float32. How far apart are the losses?
# 3. Write `copy_heads` the other way round (from a `CausalSelfAttention` into a `MultiHeadAttention`)
#    and check that the two compute the same function.
