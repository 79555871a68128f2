# %% [markdown]
# # 03 · From the bigram to one head of attention, step by step
#
# The lecture builds its GPT one idea at a time; its numbers live only in commit messages (one head ≈ 2.4,
# multi-head 2.28, feed-forward 2.24, blocks ≈ 2.06). Here every step trains on one model size, seed, batch
# stream and budget and is scored on the whole validation split: a *ladder* of nine rungs. This notebook (after
# 02) sets up data, budget and training and climbs rungs 0–2 (the bigram, embeddings with positions, one head);
# 03b climbs the rest. Video: **0:58:26 to 1:02:00** and **1:19:11 to 1:21:59**. Standalone (`python
# notebooks/03_building_gpt.py`); the folded cells are the plumbing it carries (folders, device, data, checks).

# %%
import hashlib, math, os, pathlib, platform, sys, tempfile, time, urllib.request
import torch
import torch.nn as nn
from torch.nn import functional as F
import matplotlib
if "ipykernel" not in sys.modules:
    matplotlib.use("Agg")  # as a script, figures are saved as PNG files instead of opening windows
import matplotlib.pyplot as plt

SMOKE = os.environ.get("COURSE_SMOKE") == "1"  # set by the tests: fewer steps, same printed facts
IN_NOTEBOOK = "ipykernel" in sys.modules        # False when run as a script
RUN_NAME = "03_building_gpt"                    # as a script, figures go to runs/03_building_gpt/

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


# %% jupyter={"source_hidden": true} cellView="form"
#@title Plumbing: the attention oracle (the same in every notebook that carries it)
def attention_diagnosis(out, q, k, v, n_embd):
    """None if out is causal attention of q, k, v (B, ..., T, hs) scaled by head_size**-0.5, computed by
    PyTorch's own F.scaled_dot_product_attention; else the likely mistake, in one sentence."""
    sdpa, T, hs = F.scaled_dot_product_attention, q.shape[-2], q.shape[-1]
    if out.shape != v.shape:
        return f"the output has shape {tuple(out.shape)}, not (B, T, head_size) = {tuple(v.shape)}"
    if not torch.isfinite(out).all():
        return ("the output holds inf or nan: some query's scores are all -inf (the mask must keep the diagonal "
                "and the past, masked_fill where tril == 0), the softmax runs over a dimension other than dim=-1 "
                "(each query's row), or the softmax is missing after the mask")
    if torch.allclose(out, sdpa(q, k, v, is_causal=True), atol=1e-5):
        return None
    tril = torch.tril(torch.ones(T, T, dtype=torch.bool))
    raw = q @ k.transpose(-2, -1)  # (B, T, T) unscaled
    scores = (raw * hs**-0.5).masked_fill(~tril, float('-inf'))
    suspects = {
        "there is no causal mask, so every position sees the future: masked_fill the scores where tril == 0":
            sdpa(q, k, v),
        "the mask lets each position see one step into the future: mask where torch.tril(ones(T, T)) == 0":
            sdpa(q, k, v, attn_mask=torch.ones(T, T, dtype=torch.bool).tril(1)),
        "the mask keeps the future and hides the past (torch.triu): keep the lower triangle, torch.tril":
            sdpa(q, k, v, attn_mask=torch.ones(T, T, dtype=torch.bool).triu()),
        "the future is filled with 0, not float('-inf'), so it keeps a weight of exp(0) after the softmax":
            F.softmax((raw * hs**-0.5).masked_fill(~tril, 0.0), dim=-1) @ v,
        f"the scores are scaled by C**-0.5 with C = n_embd = {n_embd} (the lecture's slip), not by head_size**-0.5":
            sdpa(q, k, v, is_causal=True, scale=n_embd**-0.5),
        "the scores are not scaled: multiply q @ k.transpose(-2, -1) by head_size**-0.5":
            sdpa(q, k, v, is_causal=True, scale=1.0),
        "the scores are multiplied by head_size**0.5: multiply by head_size**-0.5 (divide by its square root)":
            sdpa(q, k, v, is_causal=True, scale=hs**0.5),
        "the scores are divided by head_size, not by its square root: multiply by head_size**-0.5":
            sdpa(q, k, v, is_causal=True, scale=1.0 / hs),
        "the scores are scaled by head_size**-1/2, which Python reads as (head_size**-1) / 2: write head_size**-0.5":
            sdpa(q, k, v, is_causal=True, scale=hs**-1 / 2),
        "the scale is applied after the softmax: scale the scores q @ k.transpose(-2, -1) before masking":
            F.softmax(raw.masked_fill(~tril, float('-inf')), dim=-1) * hs**-0.5 @ v,
        "the softmax runs over the wrong dimension: use dim=-1, so that each query's row sums to 1":
            F.softmax(scores, dim=-2) @ v,
        "the weights multiply the keys, not the values: out = wei @ v with v = value(x)":
            sdpa(q, k, k, is_causal=True),
        "the weights multiply the queries, not the values: out = wei @ v with v = value(x)":
            sdpa(q, k, q, is_causal=True),
        "queries and keys are swapped in the scores: compute q @ k.transpose(-2, -1)":
            sdpa(k, q, v, is_causal=True),
        "the queries come from the key layer, so the scores compare keys with keys: q = query(x)":
            sdpa(k, k, v, is_causal=True),
        "the weights are transposed before they multiply the values: out = wei @ v, each query's row of weights":
            F.softmax(scores, dim=-1).transpose(-2, -1) @ v,
    }
    for mistake, result in suspects.items():
        if result.shape == out.shape and torch.allclose(out, result, atol=1e-5):
            return mistake
    return ("it differs from PyTorch's attention in a way this check cannot name: compare it line by line with "
            "the head above (scores, scale, mask, softmax over dim=-1, weights times v)")


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


# %% jupyter={"source_hidden": true} cellView="form"
#@title The check of the whole-split loss (folded: open it to see how it works)
def check_whole_split(split_loss, model, data, block_size, batch):
    """split_loss(model, data) on 2.5 batches of `batch` chunks must feed the model every block_size chunk of data
    and return the mean cross-entropy over all of them."""
    data, fed = data[:int(2.5 * batch) * block_size + 1], []
    hook = model.register_forward_pre_hook(lambda m, a: fed.append(a[0].numel() if a else 0))
    try:
        got = float(attempt("split_loss(model, data)", split_loss, model, data, hint="x and y must be the same chunks of "
                            "the split one step apart, batched alike, and the model given both, model(xb, yb)"))
    finally:
        hook.remove()
    n = (len(data) - 1) // block_size * block_size
    check(sum(fed) >= n, f"split_loss fed the model {sum(fed):,} of the {n:,} tokens of data: the loss of a whole "
          "split scores every block_size chunk of it, not a random batch")
    x, y = (d[:n].view(-1, block_size).to(next(model.parameters()).device) for d in (data, data[1:]))  # (N, T) each
    mean = sum(F.cross_entropy(run_eval(model, xb)[0].flatten(0, 1), yb.flatten(), reduction="sum").item()
               for xb, yb in zip(x.split(batch), y.split(batch))) / n
    check(abs(got - mean) < 0.01, f"split_loss gave {got:.4f} on {len(x):,} chunks in batches of at most {batch}, not "
          f"their mean loss {mean:.4f}: is each batch weighted by its chunks, the sum divided by all the chunks?")


# %% jupyter={"source_hidden": true} cellView="form"
#@title Plumbing: the check of one attention head (the same in every notebook that carries it)
def check_head(head, head_size=None, block_size=None):
    """Check one attention head (key, query, value, or one Linear making all three; with head_size, its output width;
    with block_size, inputs up to that length and its mask's size) against PyTorch's attention."""
    torch.manual_seed(0)
    check_registered(head)
    tril, name, kqv = getattr(head, "tril", None), type(head).__name__, [getattr(head, a, None) for a in ("key", "query", "value")]
    linears, fused = [m for m in head.modules() if isinstance(m, nn.Linear)], None in kqv  # fused: one Linear, cut in 3
    check(linears and (not fused or len(linears) == 1 and linears[0].out_features % 3 == 0), f"{name} has no key, "
          "query and value layers (nor one Linear making all three): build the projections in __init__")
    check(fused or len({p.data_ptr() for m in kqv for p in m.parameters()}) == sum(1 for m in kqv for _ in m.parameters()),
          f"{name}'s key, query and value share a layer (or its weights), so two of k, q, v are always equal: "
          "each is a projection of its own, learning its own weights")
    size = tuple(tril.shape[-2:]) if isinstance(tril, torch.Tensor) else None  # an SDPA head needs no tril
    check(not block_size or not size or size == (block_size,) * 2, f"{name}.tril is {size and ' x '.join(map(str, size))}"
          f", not block_size x block_size = {block_size} x {block_size}: the mask has one row and one column per "
          "position of the context, so its size comes from block_size (a smaller one fails on longer inputs)")
    C, T = linears[0].in_features, block_size or (size[-1] if size else 8)
    for B, t in probe_sizes(T):
        x = torch.randn(B, t, C)  # (B, T, C)
        out = run_eval(head, x, hint="is something sized by block_size where it should use T = x.shape[1] (self.tril[:T, "
                       ":T])?" if t < T else "the scores are (B, T, hs) @ (B, hs, T) -> (B, T, T): transpose the last two "
                       "dimensions of k (on a 3-D tensor .T reverses all three), and the output is (B, T, T) @ (B, T, hs)")
        with torch.no_grad():  # (B, T, hs) each: q, k, v, or the fused Linear's three parts in any order
            parts = linears[0](x).chunk(3, -1) if fused else [m(x) for m in (head.query, head.key, head.value)]
        check(head_size is None or out.shape[-1] == head_size, f"{name} gives {out.shape[-1]} channels per position, "
              f"not head_size = {head_size}: " + ("the weights multiply x itself, not its values v = self.value(x)" if
              out.shape[-1] == C and parts[2].shape[-1] == head_size else "key, query and value must each map n_embd "
              "channels to head_size"))
        orders = ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)) if fused else ((0, 1, 2),)
        found = [attention_diagnosis(out, *(parts[i] for i in order), C) for order in orders]
        mistake = None if None in found else found[0]
        check(mistake is None, f"{name} is not causal self-attention (on x of shape {(B, t, C)}): {mistake}")
    check(not sees_future(head, x, training=True), f"{name} lets a position see the future in training mode (dropout "
          "on): dropout belongs after the softmax, on the weights, never on the scores before it")
    return Passed(f"{name}: passed (equals F.scaled_dot_product_attention, scaled by head_size**-0.5 = "
                  f"{parts[0].shape[-1]}**-0.5)")


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


# %% jupyter={"source_hidden": true} cellView="form"
#@title Plumbing: checks of sampling and training steps (from 01_bigram: the parts this notebook uses)
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
# %% [markdown]
# ## The data as in notebook 01, one model size, one budget
#
# Tiny Shakespeare (or your own UTF-8 text through `COURSE_DATA`), 01's tokenizer and 90/10 split. Every rung
# uses the lecture's small model (32 channels, a context of 8 characters; 03b adds 4 heads and 3 blocks) and one
# budget, 4,000 steps of 32 sequences, on every device (the models are tiny): the numbers and claims hold
# wherever you run it. Smoke mode (`COURSE_SMOKE=1`) takes a few steps and scores a slice of each split.

# %%
text = load_text()
USING_SHAKESPEARE = not os.environ.get("COURSE_DATA")
chars = sorted(list(set(text)))
vocab_size = len(chars)
stoi = {ch: i for i, ch in enumerate(chars)}
encode = lambda s: [stoi[c] for c in s]           # string -> list of integers
data = torch.tensor(encode(text), dtype=torch.long)
n = int(0.9 * len(data))  # first 90% will be train, rest val
train_data, val_data = data[:n], data[n:]
print(f"{len(text):,} characters, vocab_size = {vocab_size}, train {len(train_data):,}, val {len(val_data):,}")
check_split(text, encode, train_data, val_data)

# %% tags=["nbval-ignore-output"]
n_embd = 32        # channels of every token vector
block_size = 8     # maximum context length for predictions
dropout = 0.0      # switched on in 03b's step 7 only
check_split_sizes(train_data, val_data, block_size)
device = pick_device()
batch_size = 32                         # sequences per step
max_iters = 60 if SMOKE else 4000       # optimisation steps for every step of the ladder
learning_rate = 1e-3                    # AdamW (notebook 01), as in the lecture
eval_batch = 4096                       # chunks per forward pass when scoring a whole split
print(describe_device(device))
print(f"budget: max_iters={max_iters} batch_size={batch_size} learning_rate={learning_rate}")


# %% [markdown]
# Batches as in notebook 01, from their own random-number generator, so every rung sees the same
# batches even when it draws random numbers for dropout (03b). Each rung is scored on the **whole** of
# each split in non-overlapping `block_size` chunks: every character predicted once, from context
# lengths 1 to 8, as in training. `train_step` is notebook 01's (folded); `train` gives every rung seed 1337
# for the model and the batches, AdamW, `max_iters` steps, the mean loss of every 100 steps for a plot, and
# both whole splits scored at the end beside the range correct runs landed in over three seeds.

# %%
def get_batch(split, generator=None):
    """A random batch of inputs x and next-character targets y, both (batch_size, block_size)."""
    data = train_data if split == 'train' else val_data
    ix = torch.randint(len(data) - block_size, (batch_size,), generator=generator)  # (B,) random offsets
    x = torch.stack([data[i:i + block_size] for i in ix])             # (B, T)
    y = torch.stack([data[i + 1:i + block_size + 1] for i in ix])     # (B, T)
    return x.to(device), y.to(device)


check_batch(*attempt("get_batch('train')", get_batch, 'train', torch.Generator().manual_seed(0)),
            train_data, batch_size, block_size, draw=lambda: get_batch('train'), device=device)
same = [get_batch('train', torch.Generator().manual_seed(0))[0] for _ in range(2)]  # (B, T) each
check(torch.equal(*same), "two generators with the same seed gave different batches: get_batch must draw its "
      "offsets with the generator it is given, torch.randint(..., generator=generator)")

# %%
@torch.no_grad()
def split_loss(model, data):
    """Mean loss of model over a whole split, cut into non-overlapping block_size chunks."""
    model.eval()
    n = (len(data) - 1) // block_size * block_size
    x, y = data[:n].view(-1, block_size), data[1:n + 1].view(-1, block_size)  # (N, T) each
    total = sum(model(xb.to(device), yb.to(device))[1].item() * len(xb)
                for xb, yb in zip(x.split(eval_batch), y.split(eval_batch)))
    model.train()
    return total / len(x)


# %% jupyter={"source_hidden": true} cellView="form"
#@title Notebook 01's train_step (folded: the same code, checked there by check_train_step)
def train_step(model, optimizer, xb, yb):
    """One optimisation step on the batch (xb, yb); returns the loss before the step."""
    logits, loss = model(xb, yb)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


# %%
EXPECTED_VAL = {  # whole-split val of correct runs (seeds 1337, 1, 2; CPU; tiny Shakespeare)
    '0 bigram': (2.48, 2.49), '1 embeddings + positions': (2.50, 2.51), '2 one head': (2.41, 2.42)}


def params(model):
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters())


# %%
def train(model, name, lr=None, seed=1337):
    """Train model on the shared budget; returns its whole-split losses and its training curve."""
    torch.manual_seed(seed)
    batches = torch.Generator().manual_seed(seed)
    model.to(device).train()  # in training mode (dropout on), whatever mode the model came in
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr or learning_rate)
    curve, running, t0 = [], [], time.time()
    for it in range(max_iters):
        loss = train_step(model, optimizer, *get_batch('train', batches))
        running.append(torch.as_tensor(loss).item())  # a tensor or a float
        if len(running) == 100 or it == max_iters - 1:
            curve.append((it + 1, sum(running) / len(running)))
            running = []
    scored = 50_000 if SMOKE else None  # smoke mode scores a slice of each split, not the whole
    result = {'train': split_loss(model, train_data[:scored]), 'val': split_loss(model, val_data[:scored]),
              'seconds': time.time() - t0, 'curve': curve}
    band = EXPECTED_VAL.get(name) if USING_SHAKESPEARE and not SMOKE else None
    print(f"{name}: train {result['train']:.4f}, val {result['val']:.4f} ({result['seconds']:.0f} s)"
          + (f"; a correct run: val {band[0]:.2f}-{band[1]:.2f}" if band else ""))
    return result


# %% [markdown]
# ## Step 0: the bigram model, for reference
#
# Notebook 01's model on the same batches, at 01's rate 1e-2 (at 1e-3 it is still learning after 4,000 steps):
# every later rung has to beat it. Checked: its loss is the cross-entropy of its logits over every target, and
# `split_loss` scores every `block_size` row of a split longer than two eval batches.

# %%
class Bigram(nn.Module):
    """Notebook 01's bigram model: a vocab_size x vocab_size table of next-character logits."""

    def __init__(self):
        super().__init__()
        self.token_embedding_table = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx, targets=None):
        logits = self.token_embedding_table(idx)  # (B, T, vocab_size)
        loss = None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return logits, loss


# %%
results = {}
torch.manual_seed(1337)
model = Bigram()
print(f"{params(model):,} parameters")
check(params(model) == vocab_size * vocab_size, "the bigram is one vocab_size x vocab_size table: nn.Embedding(vocab_size, vocab_size)")
check_model(model, attends=False)
check_whole_split(split_loss, model.to(device), val_data, block_size, eval_batch)
check_evaluation(split_loss, model.to(device), val_data[:1000], block_size=block_size)

# %% tags=["nbval-ignore-output"]
results['0 bigram'] = train(model, '0 bigram', lr=1e-2)


# %% [markdown]
# ## Step 1: embeddings, a language-model head, and positions [▶ 0:58:26](https://www.youtube.com/watch?v=kCc8FmEb1nY&t=3506s)
#
# Tokens are embedded in `n_embd = 32` channels and a linear `lm_head` turns a vector into logits (the lecture's
# "minor code clean-up"). A second table, `position_embedding_table`, adds a vector for each position
# `0..block_size-1`: attention has no notion of space (notebook 02), so position is put into the data
# ([▶ 1:00:18](https://www.youtube.com/watch?v=kCc8FmEb1nY&t=3618s)). The `body` will hold attention (step 2) and
# blocks, `ln_f` a final LayerNorm (03b's steps 3-6); in step 1 both are empty (`nn.Identity`). `generate` is
# 01's plus a crop to the last `block_size` tokens; its check feeds it stand-ins whose next character is known.

# %%
class BigramLanguageModel(nn.Module):
    """Token + position embeddings, a body that lets tokens communicate (step by step), and lm_head."""

    def __init__(self, body=None, ln_f=None):
        super().__init__()
        self.token_embedding_table = nn.Embedding(vocab_size, n_embd)
        self.position_embedding_table = nn.Embedding(block_size, n_embd)
        self.body = body or nn.Identity()  # filled in by step 2 and 03b's steps 3-6
        self.ln_f = ln_f or nn.Identity()  # a final LayerNorm, from 03b's step 6 on
        self.lm_head = nn.Linear(n_embd, vocab_size)

    def forward(self, idx, targets=None):
        B, T = idx.shape
        tok_emb = self.token_embedding_table(idx)  # (B, T, C)
        pos_emb = self.position_embedding_table(torch.arange(T, device=idx.device))  # (T, C)
        x = tok_emb + pos_emb  # (B, T, C)
        x = self.ln_f(self.body(x))  # (B, T, C)
        logits = self.lm_head(x)  # (B, T, vocab_size)
        loss = None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return logits, loss


# %%
@torch.no_grad()
def generate(model, idx, max_new_tokens):
    """Append max_new_tokens sampled tokens to idx (B, T), looking at most block_size tokens back."""
    was_training = model.training
    model.eval()
    for _ in range(max_new_tokens):
        idx_cond = idx[:, -block_size:]  # (B, T) with T <= block_size
        logits, _ = model(idx_cond)  # (B, T, vocab_size)
        probs = F.softmax(logits[:, -1, :], dim=-1)  # (B, vocab_size)
        idx_next = torch.multinomial(probs, num_samples=1)  # (B, 1)
        idx = torch.cat((idx, idx_next), dim=1)  # (B, T+1)
    model.train(was_training)
    return idx


BigramLanguageModel.generate = generate  # m.generate(idx, n), as in the lecture
check_generate(generate, block_size=block_size)

# %% [markdown]
# **Check.** `check_model` probes shapes and loss at three lengths, no future seen, positions that reach
# `lm_head`, no dropout on the logits (from step 2, earlier characters moving later predictions too).

# %%
torch.manual_seed(1337)
model = BigramLanguageModel()
print(f"{params(model):,} parameters")
print(check_model(model, attends=False))

# %% tags=["nbval-ignore-output"]
results['1 embeddings + positions'] = train(model, '1 embeddings + positions')


# %% [markdown]
# ## Step 2: one head of self-attention [▶ 1:19:11](https://www.youtube.com/watch?v=kCc8FmEb1nY&t=4751s)
#
# Notebook 02's version 4 as a module. The causal mask is a buffer (`tril`): it moves with the model but is never
# trained. Scores are scaled by `head_size**-0.5`, not by the channel count `C` as in the lecture's code (the
# video's own corrections, [▶ 1:20:05](https://www.youtube.com/watch?v=kCc8FmEb1nY&t=4805s)); `dropout` is 0.0 until 03b.
#
# **Check.** A head of size 4 (neither `C` nor `block_size`, so a scale or mask sized by either shows) must give
# 4 channels from its own projections (or one fused `Linear`), a `block_size` mask, and equal PyTorch's causal
# attention of its q, k, v for 1, 5 and 8 tokens; if not, it names the likely mistake (mask, scale or axis).

# %%
class Head(nn.Module):
    """One head of causal self-attention."""

    def __init__(self, head_size):
        super().__init__()
        self.key = nn.Linear(n_embd, head_size, bias=False)
        self.query = nn.Linear(n_embd, head_size, bias=False)
        self.value = nn.Linear(n_embd, head_size, bias=False)
        self.register_buffer('tril', torch.tril(torch.ones(block_size, block_size)))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        B, T, C = x.shape
        k = self.key(x)  # (B, T, hs)
        q = self.query(x)  # (B, T, hs)
        wei = q @ k.transpose(-2, -1) * k.shape[-1]**-0.5  # (B, T, hs) @ (B, hs, T) -> (B, T, T)
        wei = wei.masked_fill(self.tril[:T, :T] == 0, float('-inf'))  # (B, T, T)
        wei = self.dropout(F.softmax(wei, dim=-1))  # (B, T, T)
        v = self.value(x)  # (B, T, hs)
        return wei @ v  # (B, T, T) @ (B, T, hs) -> (B, T, hs)


# %%
print(check_head(Head(4), head_size=4, block_size=block_size))
torch.manual_seed(1337)
model = BigramLanguageModel(body=Head(n_embd))  # head_size = n_embd, so the shapes line up
print(f"{params(model):,} parameters")
check_model(model)

# %% tags=["nbval-ignore-output"]
results['2 one head'] = train(model, '2 one head')


# %% [markdown]
# ## The first rungs of the ladder
#
# Whole-split losses of rungs 0–2 and the lecture's claims (margins from three seeds; asserted on Shakespeare).

# %% tags=["nbval-ignore-output"]
def first_rungs_claims(val):
    """The lecture's claims about rungs 0-2 as (claim, holds) pairs, given each step's whole-split val loss."""
    return [("embeddings and positions alone do not beat a finished bigram", val['1 embeddings + positions'] > val['0 bigram'] - 0.01),
            ("one head beats embeddings alone", val['2 one head'] < val['1 embeddings + positions'] - 0.03)]


print(f"{'step':<26} {'train':>7} {'val':>7} {'seconds':>8}")
for step, r in results.items():
    print(f"{step:<26} {r['train']:7.4f} {r['val']:7.4f} {r['seconds']:8.1f}")
print(f"device {device}, {max_iters} steps of batch {batch_size} per model, smoke mode: {SMOKE}")
claims = first_rungs_claims({step: r['val'] for step, r in results.items()})
for claim, holds in claims:
    print(f"{'yes' if holds else 'NO '}  {claim}")
if USING_SHAKESPEARE and not SMOKE:
    assert all(holds for _, holds in claims), "a claim failed: look for a difference from this notebook"

# %%
fig, ax = plt.subplots(figsize=(7, 3.5), constrained_layout=True)
for step in results:
    _ = ax.plot(*zip(*results[step]['curve']), label=step)
_ = ax.set(xlabel='step', ylabel='training loss (mean of 100 steps)', title='The first rungs')
_ = ax.legend()
show(fig, 'first_rungs')

# %% [markdown]
# ## Summary
#
# - Every rung trains the same way (one model size, seed 1337, the same batches, 4,000 AdamW steps) and is
#   scored on the **whole** of each split beside the range correct runs landed in over three seeds.
# - Against the bigram trained to the end (val 2.4850), step 1's embeddings, positions and `lm_head` do not
#   help yet (2.5006), as the lecture says: they make room. One head of causal self-attention (mask as a
#   buffer, scaled by `head_size**-0.5`) does (2.4171): each character sees up to `block_size` back.
#   Notebook 03b climbs on from there, with this one head retrained as its first rung.
# - Each piece has a check of properties any correct version has: the split, batches, the whole-split loss,
#   `generate` past `block_size`, the head against PyTorch's attention, causality, positions, every character.
#
# ## Exercises
#
# 1. Double `block_size` to 16 for step 2. What does the longer context buy one head, at what cost?
# 2. Give step 2 a head of 16 channels (and `lm_head = nn.Linear(16, vocab_size)` to match): how much gain is left?
# 3. Train step 0's bigram at 1e-3, as the other rungs: is step 1 then better, or the bigram unfinished?
