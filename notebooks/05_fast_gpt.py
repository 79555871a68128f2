# %% [markdown]
# # 05 · Making the GPT fast
#
# Notebook 04's GPT is the lecture's, written for clarity: every head is its own module, batches are
# assembled in a Python loop, everything runs in float32. The lecture's model needs about 15 minutes on
# an A100 to reach a validation loss of 1.48; nanoGPT, the same size, gets there in about 3. This
# notebook closes that distance one change at a time, measuring each against the lecture's code in the
# same run, then trains the fast model against the clock.
#
# Standalone (it downloads its data) and a script: `python notebooks/05_fast_gpt.py`, or
# `python notebooks/05_fast_gpt.py --bench` to time the lecture's model against the fast one.

# %%
import argparse, hashlib, math, os, pathlib, platform, sys, time, urllib.request
from dataclasses import asdict, dataclass
import torch
import torch.nn as nn
from torch.nn import functional as F
import matplotlib.pyplot as plt

SMOKE = os.environ.get("COURSE_SMOKE") == "1"  # set by the tests: tiny sizes and few steps


def parse_args(argv=None):
    """The command-line flags; argv=[] gives the defaults."""
    p = argparse.ArgumentParser(prog="05_fast_gpt.py", description="Train the fast GPT against the clock, or benchmark it.")
    p.add_argument("--bench", action="store_true", help="only time the lecture's model against the fast one, and print the figures")
    p.add_argument("--race", action="store_true", help="skip the benchmark: only train against the clock and report the loss")
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "mps", "cpu"], help="where to run (default: the fastest there is)")
    p.add_argument("--max-iters", type=int, help="training steps of the race (default: sized for the device)")
    p.add_argument("--learning-rate", type=float, help="peak learning rate of the race (default: sized for the device)")
    p.add_argument("--seed", type=int, default=1337, help="random seed (default: 1337)")
    return p.parse_args(argv)


args = parse_args([] if "ipykernel" in sys.modules else None)

# %% [markdown]
# ## The data, as in the other notebooks

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
# The starting point and the yardstick. These cells are a copy of notebook 04's (a test checks
# that the two copies never drift apart), so this notebook runs on its own.

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
# ## 1. All heads in one batched matrix multiplication
#
# The lecture's exercise 1. `MultiHeadAttention` runs `n_head` small `Head` modules one after another,
# each with its own key, query and value matrices. Stack those matrices into one `qkv` linear layer
# of width `3 * n_embd` and treat the heads as one more batch dimension, `(B, n_head, T, head_size)`,
# and the whole layer becomes three large matrix multiplications instead of `3 * n_head` small ones.
# With `flash=True` the scores, mask, softmax and weighted sum are left to PyTorch's fused
# `F.scaled_dot_product_attention` (step 2).

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
        return self.dropout(self.proj(y))  # (B, T, C)


# %% [markdown]
# Head `h` of the lecture's layer owns rows `h*hs … (h+1)*hs` of each third of `qkv`: copying the
# weights across must give the same function. We check it on random input, in float32.

# %%
def copy_heads(mha, attn):
    """Copy a MultiHeadAttention's per-head weights into a CausalSelfAttention."""
    with torch.no_grad():
        for i, name in enumerate(['query', 'key', 'value']):
            attn.qkv.weight[i * attn.proj.in_features:(i + 1) * attn.proj.in_features] = torch.cat(
                [getattr(h, name).weight for h in mha.heads])  # (C, C) the heads stacked
        attn.proj.load_state_dict(mha.proj.state_dict())
    return attn


torch.manual_seed(1337)
toy = GPTConfig(vocab_size=65, block_size=16, n_embd=64, n_head=4, n_layer=2, dropout=0.0)
x = torch.randn(4, 16, toy.n_embd)  # (B, T, C)
mha = MultiHeadAttention(toy)
batched = copy_heads(mha, CausalSelfAttention(toy, flash=False))
print('batched heads == MultiHeadAttention:', torch.allclose(batched(x), mha(x), atol=1e-6))
assert torch.allclose(batched(x), mha(x), atol=1e-6)
assert sum(p.numel() for p in batched.parameters()) == sum(p.numel() for p in mha.parameters())

# %% [markdown]
# ## 2. `scaled_dot_product_attention`
#
# The same attention as one fused call (`is_causal=True` is the mask). On a GPU it picks a
# FlashAttention kernel that never writes the `(T, T)` weight matrix to memory; on a CPU it is
# a fused kernel too. Same weights, same function:

# %%
flash = copy_heads(mha, CausalSelfAttention(toy, flash=True))
print('scaled_dot_product_attention == by hand:', torch.allclose(flash(x), batched(x), atol=1e-6))
assert torch.allclose(flash(x), batched(x), atol=1e-6)


# %% [markdown]
# The fast model is the lecture's model with this attention in every block. It has exactly the same
# parameters, so the lecture's weights can be moved into it, and then both compute the same loss.

# %%
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
assert torch.allclose(loss_lecture, loss_fast, atol=1e-6)
count = lambda m: sum(p.numel() for p in m.parameters())
assert count(lecture_model) == count(fast_model)
print(f"both have {count(fast_model):,} parameters")

# %% [markdown]
# ## The device and the sizes
#
# The benchmark uses notebook 04's model size for the device (the lecture's configuration on CUDA,
# 4 layers of 128 channels on a CPU). Mixed precision is bfloat16 on GPUs that support it, float16
# with a gradient scaler on older ones (Colab's T4), and none on the CPU. `torch.compile` and the
# fused AdamW are for CUDA only.

# %% tags=["nbval-ignore-output"]
device = 'cuda' if torch.cuda.is_available() else 'mps' if torch.backends.mps.is_available() else 'cpu'
device = device if args.device == 'auto' else args.device
if SMOKE:
    config = GPTConfig(block_size=16, n_embd=32, n_head=2, n_layer=2, dropout=0.0)
    batch_size, bench_steps = 8, 3
elif device == 'cuda':
    config, batch_size, bench_steps = GPTConfig(), 64, 30  # the lecture's: 10.8 M parameters
else:
    config = GPTConfig(block_size=64, n_embd=128, n_head=4, n_layer=4, dropout=0.0)
    batch_size, bench_steps = 32, 20
config.vocab_size = len(chars)
block_size = config.block_size
bf16 = device == 'cuda' and torch.cuda.is_bf16_supported()
amp_dtype = torch.bfloat16 if bf16 else torch.float16 if device == 'cuda' else None
name = torch.cuda.get_device_name() if device == 'cuda' else platform.processor() or platform.machine()
print(f"device: {device} ({name}), torch {torch.__version__}, smoke mode: {SMOKE}")
print(f"config: {asdict(config)}, batch_size={batch_size}, mixed precision: {amp_dtype}")


# %% [markdown]
# ## 3. Batches sampled on the device
#
# The lecture's `get_batch` slices `batch_size` chunks out of a CPU tensor in a Python list, stacks
# them, and copies the result to the device every step. Keeping the whole split on the device and
# gathering all chunks with one indexing operation does the same with no Python loop and no copy.

# %%
def get_batch(split):
    """The lecture's batches: a Python list of slices, stacked, then moved to the device."""
    data = train_data if split == 'train' else val_data
    ix = torch.randint(len(data) - block_size, (batch_size,))         # (B,) random offsets
    x = torch.stack([data[i:i + block_size] for i in ix])             # (B, T)
    y = torch.stack([data[i + 1:i + block_size + 1] for i in ix])     # (B, T)
    return x.to(device), y.to(device)


def get_batch_on_device(data, batch_size, block_size):
    """Random (B, T) inputs and targets gathered from data, a split that already lives on the device."""
    ix = torch.randint(len(data) - block_size, (batch_size, 1), device=data.device)  # (B, 1) offsets
    pos = ix + torch.arange(block_size + 1, device=data.device)  # (B, T+1) positions of each chunk
    chunk = data[pos]  # (B, T+1)
    return chunk[:, :-1], chunk[:, 1:]  # (B, T) inputs, (B, T) targets


torch.manual_seed(0)
xb, yb = get_batch_on_device(torch.arange(100), 4, 8)
print(xb[0], yb[0])
assert torch.equal(yb, xb + 1) and torch.equal(xb[:, 1:], xb[:, :-1] + 1)

# %% [markdown]
# ## Timing every change
#
# One training step (forward, backward, optimizer step) of each variant, each adding one change to
# the one before: the lecture's code; batched heads; `scaled_dot_product_attention`; batches on the
# device; mixed precision; fused AdamW; `torch.compile`. A variant that does not apply on this device
# is skipped. Every variant starts from the same weights and trains for a few warm-up steps before
# `bench_steps` timed steps.

# %%
def sync():
    """Wait for the device to finish its queued work, so that timings are real."""
    if device == 'cuda':
        torch.cuda.synchronize()
    elif device == 'mps':
        torch.mps.synchronize()


def time_steps(model, batches, steps, amp_dtype=None, fused=False, warmup=3):
    """Seconds per training step of model with batches() -> (x, y), averaged over steps."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=fused or None)
    scaler = torch.amp.GradScaler(enabled=amp_dtype == torch.float16)
    for i in range(warmup + steps):
        if i == warmup:
            sync()
            t0 = time.perf_counter()
        x, y = batches()
        with torch.autocast(device, dtype=amp_dtype, enabled=amp_dtype is not None):
            _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    sync()
    return (time.perf_counter() - t0) / steps


# %%
def variants():
    """(name, model factory, batch function, mixed precision dtype, fused AdamW); each adds one change."""
    torch.manual_seed(1337)
    base = GPTLanguageModel(config).to(device)
    train_on_device = train_data.to(device)
    on_device = lambda: get_batch_on_device(train_on_device, batch_size, block_size)
    steps = [('lecture (04)', lambda: base, lambda: get_batch('train'), None, False),
             ('+ batched heads', lambda: fast_from_lecture(base, flash=False).to(device), lambda: get_batch('train'), None, False),
             ('+ scaled_dot_product_attention', lambda: fast_from_lecture(base).to(device), lambda: get_batch('train'), None, False),
             ('+ batches on the device', lambda: fast_from_lecture(base).to(device), on_device, None, False)]
    if amp_dtype is not None:
        steps.append((f'+ autocast {str(amp_dtype)[6:]}', steps[-1][1], on_device, amp_dtype, False))
    if device == 'cuda':
        steps.append(('+ fused AdamW', steps[-1][1], on_device, amp_dtype, True))
        steps.append(('+ torch.compile', lambda: torch.compile(fast_from_lecture(base).to(device)), on_device, amp_dtype, True))
    return steps


def flops_per_token(config, params):
    """Training FLOPs per token: 6 per parameter (forward and backward) plus attention's 12 * L * C * T."""
    return 6 * params + 12 * config.n_layer * config.n_embd * config.block_size


# %% [markdown]
# On a GPU we also compare the achieved FLOPs with the device's peak (dense bf16/fp16 tensor-core
# figures from the data sheets) to see how much of the hardware the model uses.

# %%
PEAK_TFLOPS = {'H100': 989, 'H200': 989, 'A100': 312, 'L4': 121, 'A10': 125, 'T4': 65, 'V100': 125}


def peak_flops(name):
    """The dense half-precision peak of a GPU by name, or None if unknown (and on CPUs)."""
    return next((tf * 1e12 for key, tf in PEAK_TFLOPS.items() if key in name), None) if device == 'cuda' else None


def benchmark():
    """Time every variant; returns rows of (name, seconds per step, tokens per second, fraction of peak)."""
    rows, peak = [], peak_flops(name)
    for label, make, batches, amp, fused in variants():
        model = make()
        seconds = time_steps(model, batches, bench_steps, amp_dtype=amp, fused=fused)
        tokens = batch_size * block_size / seconds
        fpt = flops_per_token(config, sum(p.numel() for p in model.parameters()))
        rows.append((label, seconds, tokens, tokens * fpt / peak if peak else None))
        print(f"{label:<32} {seconds * 1e3:9.1f} ms/step {tokens:12,.0f} tokens/s"
              + (f"  {rows[-1][3]:6.1%} of peak" if peak else ""))
    return rows


# %% [markdown]
# `--bench` stops here: it prints the table and the ratio of the fastest variant to the lecture's code.

# %% tags=["nbval-ignore-output"]
if args.bench:
    print(f"device: {device} ({name}), config {asdict(config)}, batch_size {batch_size}, smoke mode: {SMOKE}")
    rows = benchmark()
    best = min(rows, key=lambda r: r[1])
    print(f"fast ({best[0].lstrip('+ ')}) vs lecture: {rows[0][1] / best[1]:.2f}x the tokens per second")
    sys.exit(0)

# %% tags=["nbval-ignore-output"]
rows = [] if args.race else benchmark()  # --race skips to section 5
if rows:
    print(f"flops per token: {flops_per_token(config, count(GPTLanguageModel(config))):,}")
    print(f"fastest variant vs the lecture's code: {rows[0][1] / min(r[1] for r in rows):.2f}x")

# %%
fig, ax = plt.subplots(figsize=(7, 3.5), constrained_layout=True)
_ = ax.barh([r[0] for r in rows], [r[2] for r in rows], color='tab:green')
ax.invert_yaxis()
_ = ax.set(xlabel='tokens per second (training)', title=f'Each change on top of the last ({device})')
plt.show()


# %% [markdown]
# ## 4. The validation loss over the whole split, in large batches
#
# The lecture estimates the loss from `2 × eval_iters = 400` random batches. Going once over every
# character of the validation split, in non-overlapping chunks of `block_size` and in large batches
# without gradients, costs less and gives the exact number rather than an estimate.

# %%
@torch.no_grad()
def split_loss(model, data, batch=256, amp_dtype=None):
    """Mean loss of model over a whole split, cut into non-overlapping block_size chunks."""
    model.eval()
    n = (len(data) - 1) // block_size * block_size
    x, y = data[:n].view(-1, block_size), data[1:n + 1].view(-1, block_size)  # (N, T) each
    total = torch.zeros((), device=device)
    for xb, yb in zip(x.split(batch), y.split(batch)):
        with torch.autocast(device, dtype=amp_dtype, enabled=amp_dtype is not None):
            total += model(xb.to(device), yb.to(device))[1].float() * len(xb)
    model.train()
    return (total / len(x)).item()


# %% tags=["nbval-ignore-output"]
torch.manual_seed(1337)
model = fast_from_lecture(GPTLanguageModel(config)).to(device)
eval_iters = 5 if SMOKE or args.race else 200
sync(); t0 = time.perf_counter()
with torch.no_grad():
    model.eval()
    estimate = sum(model(*get_batch(s))[1].item() for s in ['train', 'val'] for _ in range(eval_iters)) / (2 * eval_iters)
    model.train()
sync(); t_estimate = time.perf_counter() - t0
t0 = time.perf_counter()
exact = split_loss(model, val_data, amp_dtype=amp_dtype)
sync(); t_exact = time.perf_counter() - t0
print(f"2 x {eval_iters} random batches: {t_estimate:.2f} s; the whole validation split: {t_exact:.2f} s")

# %% [markdown]
# ## 5. Against the clock
#
# Now train the fast model for real. The optimizer settings were chosen by measuring the CPU race
# with one change at a time (`python dev/race_ablations.py`; README lists the runs):
#
# - A short linear **warmup** and a **cosine decay** to a tenth of the peak: the largest gain of all;
#   a constant learning rate ends clearly higher.
# - A **peak learning rate** of 2e-3, twice the lecture's: 1e-3 learns too slowly for a short run,
#   and 3e-3 is no better.
# - **Weight decay** 0.1 on the matrices only (not on biases, LayerNorms or embeddings), with AdamW's
#   `beta2 = 0.99` as nanoGPT uses for small character models. In a run this short it made no
#   measurable difference; it is there for longer runs, where the model can overfit.
# - **Gradient clipping** at norm 1.0 made the CPU race slower and no better, so the CPU run goes
#   without. The GPU run keeps it as a guard for its larger model (not measured here).
#
# On CUDA the target is the lecture's 1.48 with the lecture's model size, and training stops as soon
# as a whole-split check reaches it; on a CPU it is 1.75 within two minutes (training plus the one
# evaluation at the end), with a model sized for that.

# %% tags=["nbval-ignore-output"]
if SMOKE:
    race = GPTConfig(block_size=16, n_embd=32, n_head=2, n_layer=2, dropout=0.0)
    race_batch, race_iters, race_lr, warmup, target, clip = 8, 30, 1e-3, 5, None, None
    eval_every = None
elif device == 'cuda':
    race = GPTConfig(dropout=0.2)  # notebook 04's size: the lecture's configuration
    race_batch, race_iters, race_lr, warmup, target, clip = 64, 3000, 1e-3, 100, 1.48, 1.0
    eval_every = 100  # a whole-split check costs well under a second here: stop at the target
else:
    race = GPTConfig(block_size=64, n_embd=128, n_head=4, n_layer=4, dropout=0.0)
    race_batch, race_iters, race_lr, warmup, target, clip = 32, 1000, 2e-3, 50, 1.75, None
    eval_every = None  # a whole-split check costs about 2 s here: evaluate once, at the end
race.vocab_size = len(chars)
race_iters = args.max_iters or race_iters
race_lr = args.learning_rate or race_lr
print(f"race: {asdict(race)}, batch {race_batch}, {race_iters} steps, peak lr {race_lr}, clip {clip}, target {target}")


# %%
def lr_at(it, peak, warmup, total):
    """Linear warmup to peak, then cosine decay to peak / 10 at step total."""
    if it < warmup:
        return peak * (it + 1) / warmup
    progress = (it - warmup) / max(1, total - warmup)
    return peak / 10 + 0.5 * (peak - peak / 10) * (1 + math.cos(math.pi * min(1.0, progress)))


def configure_optimizer(model, lr, weight_decay=0.1):
    """AdamW with weight decay on the matrices only; fused on CUDA."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{'params': decay, 'weight_decay': weight_decay}, {'params': no_decay, 'weight_decay': 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.99), fused=True if device == 'cuda' else None)


# %%
def train_fast(config, batch_size, iters, peak_lr, warmup, seed=1337, cosine=True, weight_decay=0.1, clip=1.0,
               eval_every=None, target=None):
    """Train a FastGPT with every speed-up this device supports, stopping early once the whole-split val
    loss (checked every eval_every steps) reaches target; returns it and a log of (step, seconds, loss)."""
    torch.manual_seed(seed)
    model = FastGPT(config).to(device)
    step_model = torch.compile(model) if device == 'cuda' else model
    optimizer = configure_optimizer(model, peak_lr, weight_decay)
    scaler = torch.amp.GradScaler(enabled=amp_dtype == torch.float16)
    train_on_device, log, t0 = train_data.to(device), [], time.perf_counter()
    for it in range(iters):
        for group in optimizer.param_groups:
            group['lr'] = lr_at(it, peak_lr, warmup, iters) if cosine else peak_lr
        x, y = get_batch_on_device(train_on_device, batch_size, config.block_size)
        with torch.autocast(device, dtype=amp_dtype, enabled=amp_dtype is not None):
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
    return model, log


# %% tags=["nbval-ignore-output"]
block_size = race.block_size  # split_loss cuts the split into chunks of the model's context
t0 = time.perf_counter()
model, log = train_fast(race, race_batch, race_iters, race_lr, warmup, seed=args.seed, clip=clip,
                        eval_every=eval_every, target=target)
train_seconds = time.perf_counter() - t0
val = split_loss(model, val_data, amp_dtype=amp_dtype)
total_seconds = time.perf_counter() - t0
steps_done = log[-1][0] if log else race_iters
print(f"{steps_done} steps in {train_seconds:.1f} s; whole-split val loss {val:.4f}; "
      f"{total_seconds:.1f} s with the evaluation (device {device})")
if target is not None:
    print(f"target {target}: {'reached' if val <= target else 'not reached'}")

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
if log:
    _ = ax.plot([t for _, t, _ in log], [l for _, _, l in log], label='training loss (one batch)')
    _ = ax.axhline(val, color='tab:orange', linestyle='--', label='whole-split val loss at the end')
_ = ax.set(xlabel='seconds of training', ylabel='loss', title='The fast GPT against the clock')
_ = ax.legend()
plt.show()

# %% [markdown]
# A sample from the fast model, with the lecture's `generate` (in `eval()` mode, without gradients).

# %% tags=["nbval-ignore-output"]
torch.manual_seed(args.seed)
print(decode(model.generate(torch.zeros((1, 1), dtype=torch.long, device=device), 400, temperature=0.8)[0].tolist()))

# %% [markdown]
# ## Summary
#
# - Batched heads, `scaled_dot_product_attention`, batches gathered on the device, mixed precision,
#   fused AdamW and `torch.compile` each remove work the lecture's code did; each was timed against
#   it, and the first two were shown to compute the same function with the same weights.
# - The whole validation split, evaluated in large batches, is both cheaper and exact.
# - A warmup-and-cosine schedule with a higher peak learning rate, weight decay on the matrices and
#   gradient clipping train the fast model to the target loss in a fraction of the lecture's time.
#
# ## Exercises
#
# 1. Run `python notebooks/05_fast_gpt.py --bench` on every device you have. Where does the largest
#    speed-up come from on each?
# 2. Replace ReLU with GELU and the LayerNorms' biases with none (as GPT-2 and nanoGPT do). Does the
#    race finish lower?
# 3. Find the largest `race_lr` that still trains. What happens without gradient clipping?
