# %% [markdown]
# # 04 · The complete GPT: train, watch, save, sample
#
# The lecture's final model in one notebook: a decoder-only Transformer with token and position
# embeddings, `n_layer` blocks of multi-head self-attention and feed-forward layers with residual
# connections and pre-norm LayerNorm, and dropout. Everything notebook 03 built, put together and
# made correct and complete: attention scaled by `head_size**-0.5`, sampling in `eval()` mode
# without gradients, the lecture repository's weight initialisation, checkpoints you can resume,
# and a validation loss over the whole validation split.
#
# It is also a command-line script (`python notebooks/04_gpt.py --help`); in Jupyter the defaults
# apply, and running it with no arguments does exactly what this notebook does.

# %%
import argparse, hashlib, math, os, pathlib, platform, sys, tempfile, time, urllib.request
from dataclasses import asdict, dataclass
import torch
import torch.nn as nn
from torch.nn import functional as F
import matplotlib.pyplot as plt
from tqdm import tqdm

SMOKE = os.environ.get("COURSE_SMOKE") == "1"  # set by the tests: a tiny model, same printed facts


# %% [markdown]
# ## The command line
#
# Every choice a learner might want to change from the shell is a flag. Inside Jupyter the flags
# keep their defaults; edit this cell's `parse_args([])` call to try others there.

# %%
def parse_args(argv=None):
    """The command-line flags; argv=[] gives the defaults."""
    p = argparse.ArgumentParser(prog="04_gpt.py", description="Train a character-level GPT, or sample from a checkpoint.")
    p.add_argument("--data", help="UTF-8 text to train on (default: $COURSE_DATA, else tiny Shakespeare)")
    p.add_argument("--max-iters", type=int, help="total optimisation steps (default: sized for the device)")
    p.add_argument("--block-size", type=int, help="context length in characters (default: sized for the device)")
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "mps", "cpu"], help="where to train (default: the fastest there is)")
    p.add_argument("--out", help="folder for the checkpoint ckpt.pt (default: runs/04_gpt; a temporary folder in smoke mode)")
    p.add_argument("--resume", action="store_true", help="continue training from OUT/ckpt.pt, with its config and vocabulary")
    p.add_argument("--seed", type=int, default=1337, help="random seed (default: 1337)")
    p.add_argument("--sample", action="store_true", help="do not train: sample from --ckpt and print the text")
    p.add_argument("--ckpt", help="checkpoint to sample from (with --sample)")
    p.add_argument("--prompt", default="\n", help="text the sample continues (default: a newline)")
    p.add_argument("--num-chars", type=int, default=500, help="characters to sample (default: 500)")
    p.add_argument("--temperature", type=float, default=1.0, help="below 1: safer text, above 1: wilder (default: 1.0)")
    p.add_argument("--top-k", type=int, help="sample only from the k likeliest characters (default: all)")
    return p.parse_args(argv)


IN_NOTEBOOK = "ipykernel" in sys.modules
args = parse_args([] if IN_NOTEBOOK else None)


# %% [markdown]
# ## The model
#
# The same modules as notebook 03, now configured by one `GPTConfig` instead of global variables,
# so that a checkpoint can carry its configuration. `Head.attention` returns the attention weights
# on their own, so that we can draw them at the end.

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


# %% [markdown]
# The language model around the blocks. Weights start as normal(0, 0.02) with zero biases, the
# initialisation the lecture's repository added after the video (PyTorch's defaults start the
# loss higher). `generate` crops the context to `block_size`, divides the logits by a
# `temperature`, and can keep only the `top_k` likeliest characters.

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
# ## Checkpoints
#
# A checkpoint holds everything needed to continue or to sample: the model's and optimizer's
# state, the config, the vocabulary and the step. It is written to a temporary file in the same
# folder and then renamed over the old one: a rename is atomic, so an interrupted save never
# destroys the previous checkpoint. Loading checks what it reads and explains what is wrong.

# %%
def save_checkpoint(path, model, optimizer, chars, step):
    """Write a checkpoint atomically: to a temporary file first, then rename it over path."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ckpt = {'model': model.state_dict(), 'optimizer': optimizer.state_dict(),
            'config': asdict(model.config), 'chars': ''.join(chars), 'step': step}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix='.tmp')
    os.close(fd)
    try:
        torch.save(ckpt, tmp)
        os.replace(tmp, path)
    finally:
        pathlib.Path(tmp).unlink(missing_ok=True)


def load_checkpoint(path):
    """The checkpoint at path and a model built from it (on the CPU), or one line on what is wrong."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise SystemExit(f"error: no checkpoint at {path}; train one first (python notebooks/04_gpt.py --out DIR) or fix the path")
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
        missing = {'model', 'optimizer', 'config', 'chars', 'step'} - set(ckpt)
        if missing:
            raise KeyError(f"it has no {', '.join(sorted(missing))}")
        model = GPTLanguageModel(GPTConfig(**ckpt['config']))
        model.load_state_dict(ckpt['model'])
    except Exception as e:
        reason = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise SystemExit(f"error: {path} is not a usable checkpoint of this notebook ({reason}); "
                         "it may be truncated or from other code: train again or pick another file") from None
    return ckpt, model


# %% [markdown]
# Text and ids convert through the vocabulary a model was trained on, which the checkpoint
# carries. A prompt with a character outside it cannot be encoded: that is an error naming them.

# %%
def encoder_for(chars):
    """encode and decode functions for a vocabulary (a sorted string of characters)."""
    stoi = {ch: i for i, ch in enumerate(chars)}
    itos = {i: ch for i, ch in enumerate(chars)}

    def encode(s):
        unknown = sorted(set(s) - set(stoi))
        if unknown:
            raise SystemExit(f"error: the prompt has characters the model never saw: {''.join(unknown)!r}; "
                             "use only characters of its training text")
        return [stoi[c] for c in s]

    return encode, lambda l: ''.join(itos[i] for i in l)


def sample(model, chars, prompt, num_chars, temperature=1.0, top_k=None, device='cpu'):
    """The prompt followed by num_chars characters sampled from model."""
    if not prompt:
        raise SystemExit("error: the prompt is empty; give it at least one character (the default is a newline)")
    encode, decode = encoder_for(chars)
    idx = torch.tensor([encode(prompt)], dtype=torch.long, device=device)  # (1, T)
    out = model.to(device).generate(idx, num_chars, temperature=temperature, top_k=top_k)
    return prompt + decode(out[0, idx.shape[1]:].tolist())


# %% [markdown]
# With `--sample` the script stops here: it loads the checkpoint, prints a sample and exits,
# without reading any training text. In the notebook this cell does nothing.

# %%
def pick_device(name="auto"):
    """The device asked for, or the fastest there is: CUDA, then MPS, then the CPU."""
    if name != "auto":
        return name
    return 'cuda' if torch.cuda.is_available() else 'mps' if torch.backends.mps.is_available() else 'cpu'


if args.sample:
    if not args.ckpt:
        raise SystemExit("error: --sample needs --ckpt PATH, the checkpoint to sample from")
    torch.manual_seed(args.seed)
    ckpt, model = load_checkpoint(args.ckpt)
    print(sample(model, ckpt['chars'], args.prompt, args.num_chars, args.temperature, args.top_k, pick_device(args.device)))
    sys.exit(0)

# %% [markdown]
# From here on the notebook trains. First, the size of the lecture's configuration: 10,788,929
# parameters. We build it on the CPU just to count them
# (whatever device this notebook trains on) and check that a forward pass keeps the shapes.

# %%
torch.manual_seed(1337)
lecture = GPTLanguageModel(GPTConfig())
n_params = sum(p.numel() for p in lecture.parameters())
print(f"lecture config: {asdict(GPTConfig())}")
print(f"{n_params:,} parameters ({n_params / 1e6:.2f} M)")
assert n_params == 10_788_929
idx, targets = torch.randint(0, 65, (4, 64)), torch.randint(0, 65, (4, 64))  # (B, T) each
logits, loss = lecture(idx, targets)
assert logits.shape == (4, 64, 65)
print(f"initial loss {loss.item():.4f}, ln 65 = {math.log(65):.4f}")  # small init: nearly uniform
assert abs(loss.item() - math.log(65)) < 0.1
del lecture


# %% [markdown]
# ## The data
#
# The same loader as in notebooks 01 and 03: tiny Shakespeare (downloaded and verified if it is not
# in `datasets/`), or your own UTF-8 text through `--data` or `COURSE_DATA`.

# %%
DATA_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
DATA_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"


def dataset_folder():
    """datasets/ of the course checkout (run from its root or from notebooks/), else ./datasets."""
    for folder in (pathlib.Path("datasets"), pathlib.Path("../datasets")):
        if folder.is_dir():
            return folder
    return pathlib.Path("datasets")


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


# %%
def read_text(path):
    """The contents of a UTF-8 text file, or stop with one line that says what to do."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise SystemExit(f"error: no text file at {path}; fix the path in COURSE_DATA, or unset it to use tiny Shakespeare")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise SystemExit(f"error: {path} is not UTF-8 text (byte {e.start}); save it as UTF-8 and run again") from None
    if not text.strip():
        raise SystemExit(f"error: {path} has no text in it; point COURSE_DATA at a file with text")
    return text


def load_text(path=None):
    """Text to train on: path, else $COURSE_DATA, else tiny Shakespeare (downloaded once, verified)."""
    path = path or os.environ.get("COURSE_DATA")
    return read_text(path or fetch_shakespeare(dataset_folder()))


# %%
text = load_text(args.data)
chars = sorted(set(text))
encode, decode = encoder_for(chars)
data = torch.tensor(encode(text), dtype=torch.long)
n = int(0.9 * len(data))  # first 90% will be train, rest val
train_data, val_data = data[:n], data[n:]
print(f"{len(text):,} characters, vocab_size = {len(chars)}, train {len(train_data):,}, val {len(val_data):,}")

# %% [markdown]
# ## The configuration, sized for the device
#
# On CUDA this is the lecture's configuration. On a CPU (or Apple's MPS) the same architecture is
# shrunk until training finishes in about ten minutes on two cores and still writes text with the
# shape of a play. Smoke mode (the tests) makes it tiny. `--resume` takes the config from the
# checkpoint instead.

# %% tags=["nbval-ignore-output"]
device = pick_device(args.device)
if SMOKE:
    config = GPTConfig(block_size=16, n_embd=32, n_head=2, n_layer=2, dropout=0.0)
    batch_size, max_iters, learning_rate, eval_interval, eval_iters = 8, 40, 1e-3, 20, 5
elif device == 'cuda':
    config = GPTConfig()  # the lecture's: 6 layers x 6 heads x 384 channels, context 256
    batch_size, max_iters, learning_rate, eval_interval, eval_iters = 64, 5000, 3e-4, 500, 200
else:
    config = GPTConfig(block_size=64, n_embd=128, n_head=4, n_layer=4, dropout=0.0)
    batch_size, max_iters, learning_rate, eval_interval, eval_iters = 32, 2500, 1e-3, 250, 50
config.vocab_size = len(chars)
config.block_size = args.block_size or config.block_size
max_iters = args.max_iters if args.max_iters is not None else max_iters
out_dir = pathlib.Path(args.out or (tempfile.mkdtemp(prefix='04_gpt-') if SMOKE else 'runs/04_gpt'))
name = torch.cuda.get_device_name() if device == 'cuda' else platform.processor() or platform.machine()
print(f"device: {device} ({name}), torch {torch.__version__}, smoke mode: {SMOKE}")
print(f"config: {asdict(config)}")
print(f"batch_size={batch_size} max_iters={max_iters} learning_rate={learning_rate} out={out_dir}")

# %% [markdown]
# A text must be long enough to cut at least one `block_size + 1` chunk from each split; a learner's
# small file gets a clear error here rather than an obscure one inside `torch.randint`.

# %%
def check_split_sizes(train_data, val_data, block_size):
    """Stop with one line if either split is too short for one chunk of block_size + 1."""
    for split, d in (('training', train_data), ('validation', val_data)):
        if len(d) < block_size + 1:
            need = math.ceil((block_size + 1) / 0.1)
            raise SystemExit(f"error: the {split} split has {len(d)} characters, fewer than block_size + 1 = "
                             f"{block_size + 1}; use a text of at least {need:,} characters or a smaller --block-size")


def get_batch(split):
    """A random batch of inputs x and next-character targets y, both (batch_size, block_size)."""
    data = train_data if split == 'train' else val_data
    ix = torch.randint(len(data) - block_size, (batch_size,))         # (B,) random offsets
    x = torch.stack([data[i:i + block_size] for i in ix])             # (B, T)
    y = torch.stack([data[i + 1:i + block_size + 1] for i in ix])     # (B, T)
    return x.to(device), y.to(device)


# %% [markdown]
# Two ways to measure the loss. `estimate_loss` averages `eval_iters` random batches per split: cheap
# enough to run during training. `split_loss` goes over a **whole** split in non-overlapping chunks of
# `block_size`, each character predicted once: that is the number we report.

# %%
@torch.no_grad()
def estimate_loss(model):
    """Mean loss of model over eval_iters random batches of each split."""
    out = {}
    model.eval()
    for split in ['train', 'val']:
        losses = torch.zeros(eval_iters)
        for k in range(eval_iters):
            X, Y = get_batch(split)
            logits, loss = model(X, Y)
            losses[k] = loss.item()
        out[split] = losses.mean().item()
    model.train()
    return out


@torch.no_grad()
def split_loss(model, data, batch=64):
    """Mean loss of model over a whole split, cut into non-overlapping block_size chunks."""
    model.eval()
    n = (len(data) - 1) // block_size * block_size
    x, y = data[:n].view(-1, block_size), data[1:n + 1].view(-1, block_size)  # (N, T) each
    total = sum(model(xb.to(device), yb.to(device))[1].item() * len(xb)
                for xb, yb in zip(x.split(batch), y.split(batch)))
    model.train()
    return total / len(x)


# %% [markdown]
# ## A model and an optimizer, new or resumed
#
# A fresh run never overwrites an earlier checkpoint in the same folder: it keeps it under a dated
# name. With `--resume`, the checkpoint's config and vocabulary win, and a text with another
# vocabulary is refused.

# %% tags=["nbval-ignore-output"]
ckpt_path = out_dir / 'ckpt.pt'
torch.manual_seed(args.seed)
if args.resume:
    ckpt, model = load_checkpoint(ckpt_path)
    if ckpt['chars'] != ''.join(chars):
        raise SystemExit(f"error: {ckpt_path} was trained on another vocabulary ({len(ckpt['chars'])} characters, "
                         f"this text has {len(chars)}); resume with the same --data, or start afresh in another --out")
    config, start = model.config, ckpt['step']
else:
    model, start = GPTLanguageModel(config), 0
block_size = config.block_size
check_split_sizes(train_data, val_data, block_size)
if not args.resume and ckpt_path.exists():
    kept = ckpt_path.with_name(f"ckpt-{time.strftime('%Y%m%d-%H%M%S')}.pt")
    ckpt_path.rename(kept)
    print(f"kept the earlier checkpoint as {kept}")
model = model.to(device)
optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
if args.resume:
    optimizer.load_state_dict(ckpt['optimizer'])
print(f"{sum(p.numel() for p in model.parameters()):,} parameters, starting at step {start} of {max_iters}")

# %% [markdown]
# ## Training
#
# The loop is the lecture's: sample a batch, compute the loss, backpropagate, step. Every
# `eval_interval` steps it estimates both losses and saves a checkpoint; the progress bar shows the
# latest training loss.

# %% tags=["nbval-ignore-output"]
history = []  # (step, train estimate, val estimate)
t0 = time.time()
bar = tqdm(range(start, max_iters), initial=start, total=max_iters, mininterval=10, file=sys.stdout)
for it in bar:
    xb, yb = get_batch('train')
    logits, loss = model(xb, yb)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    step = it + 1
    if step % eval_interval == 0 or step == max_iters:
        losses = estimate_loss(model)
        history.append((step, losses['train'], losses['val']))
        tqdm.write(f"step {step}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}", file=sys.stdout)
        save_checkpoint(ckpt_path, model, optimizer, chars, step)
    bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
bar.close()
train_seconds = time.time() - t0
print(f"{max_iters - start} steps in {train_seconds:.0f} s on {device}; checkpoint: {ckpt_path}")

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
if history:
    steps, train_losses, val_losses = zip(*history)
    _ = ax.plot(steps, train_losses, label='train')
    _ = ax.plot(steps, val_losses, label='val')
_ = ax.set(xlabel='step', ylabel='loss (estimate)', title='GPT: loss while training')
_ = ax.legend()
plt.show()

# %% [markdown]
# ## The loss over the whole validation split
#
# The estimates above come from random batches; the figure to report is the loss over every
# character of each split.

# %% tags=["nbval-ignore-output"]
t0 = time.time()
final = {'train': split_loss(model, train_data), 'val': split_loss(model, val_data)}
print(f"whole-split loss after {max_iters} steps: train {final['train']:.4f}, val {final['val']:.4f} "
      f"({time.time() - t0:.0f} s to evaluate)")

# %% [markdown]
# ## Sampling
#
# The same `sample` function the command line uses: a prompt, a temperature, and optionally top-k.
# A lower temperature and a small `top_k` trade variety for fewer misspellings.

# %% tags=["nbval-ignore-output"]
torch.manual_seed(args.seed)
print(sample(model, chars, "ROMEO:" if set("ROMEO:") <= set(chars) else chars[0], 400, device=device))
print('-' * 40)
print(sample(model, chars, "\n" if "\n" in chars else chars[0], 400, temperature=0.8, top_k=10, device=device))

# %% [markdown]
# Running `python notebooks/04_gpt.py --sample --ckpt runs/04_gpt/ckpt.pt --prompt "ROMEO:"` does the
# same from the shell; a prompt with a character outside the vocabulary is refused with its name.

# %%
try:
    encoder_for(sorted(set("abc ")))[0]("a cab — ça")
except SystemExit as e:
    print(f"refused, as it should be: {e}")

# %% [markdown]
# ## Where the model looks
#
# The attention weights of the trained model for a short prompt: for every layer, the mean over its
# heads. Each row is a query position (the character doing the looking), each column a key position,
# and everything above the diagonal is zero because the future is masked.

# %%
@torch.no_grad()
def attention_maps(model, idx):
    """The attention weights (n_layer, n_head, T, T) of model for idx (1, T)."""
    model.eval()
    x, maps = model.embed(idx), []  # (1, T, C)
    for block in model.blocks:
        maps.append(torch.stack([h.attention(block.ln1(x))[0] for h in block.sa.heads]))  # (n_head, T, T)
        x = block(x)  # (1, T, C)
    model.train()
    return torch.stack(maps)  # (n_layer, n_head, T, T)


# %% tags=["nbval-ignore-output"]
prompt = "ROMEO:\nBut soft" if set("ROMEO:\nBut soft") <= set(chars) else ''.join(chars[:12])
maps = attention_maps(model, torch.tensor([encode(prompt)], device=device)).mean(1).cpu()  # (n_layer, T, T)
labels = [repr(c)[1:-1] for c in prompt]
fig, axes = plt.subplots(1, len(maps), figsize=(3.2 * len(maps), 3.4), constrained_layout=True, squeeze=False)
for layer, (ax, m) in enumerate(zip(axes[0], maps)):
    _ = ax.imshow(m, cmap='viridis', vmin=0)
    _ = ax.set(title=f'layer {layer + 1}', xticks=range(len(labels)), yticks=range(len(labels)))
    _ = ax.set_xticklabels(labels, fontsize=7)
    _ = ax.set_yticklabels(labels, fontsize=7)
    _ = ax.set(xlabel='key (attended to)', ylabel='query')
plt.show()

# %% [markdown]
# ## Summary
#
# - The complete GPT: embeddings, `n_layer` pre-norm blocks of multi-head attention and feed-forward
#   layers with residual connections, a final LayerNorm and `lm_head`; 10,788,929 parameters in the
#   lecture's configuration.
# - Training saves atomic, resumable checkpoints; the reported loss covers the whole validation split.
# - Sampling runs in `eval()` mode without gradients, with temperature and top-k, from the notebook or
#   the shell, and refuses characters the model never saw.
#
# ## Exercises
#
# 1. Train on your own text: `python notebooks/04_gpt.py --data my.txt --out runs/mine`, then sample
#    from `runs/mine/ckpt.pt`. How long must the text be before the samples look like it?
# 2. Interrupt a run with Ctrl-C and continue it with `--resume`. Does the loss curve carry on
#    where it stopped?
# 3. The attention maps average over heads. Plot the heads of one layer separately: do some look
#    only at the previous character, or at the start of the line?
