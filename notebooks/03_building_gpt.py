# %% [markdown]
# # 03 · From one head to a Transformer, step by step
#
# The lecture builds its GPT by adding one idea at a time to the bigram model and watching the
# validation loss fall. Its numbers live only in commit messages (one head ≈ 2.4, multi-head 2.28,
# feed-forward 2.24, residual connections and LayerNorm ≈ 2.06). Here every step is trained by this
# notebook with the same small model size, seed and step budget, and the last cell compares them.
#
# The notebook is standalone (it downloads its data) and runs as `python notebooks/03_building_gpt.py`.

# %%
import hashlib, os, pathlib, platform, time, urllib.request
import torch
import torch.nn as nn
from torch.nn import functional as F
import matplotlib.pyplot as plt

SMOKE = os.environ.get("COURSE_SMOKE") == "1"  # set by the tests: fewer steps, same printed facts

# %% [markdown]
# ## The data, as in notebook 01
#
# The same loader as notebook 01 (tiny Shakespeare from `datasets/`, downloaded and verified if
# missing, or your own UTF-8 text through `COURSE_DATA`), the same tokenizer and the same 90/10 split.

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
chars = sorted(list(set(text)))
vocab_size = len(chars)
stoi = {ch: i for i, ch in enumerate(chars)}
itos = {i: ch for i, ch in enumerate(chars)}
encode = lambda s: [stoi[c] for c in s]           # string -> list of integers
decode = lambda l: ''.join([itos[i] for i in l])  # list of integers -> string
data = torch.tensor(encode(text), dtype=torch.long)
n = int(0.9 * len(data))  # first 90% will be train, rest val
train_data, val_data = data[:n], data[n:]
print(f"{len(text):,} characters, vocab_size = {vocab_size}, train {len(train_data):,}, val {len(val_data):,}")

# %% [markdown]
# ## One model size, one budget
#
# Every step below uses the lecture's small model: 32 channels, a context of 8 characters, 4 heads
# and 3 blocks where blocks appear. These sizes are the same on every device, so the parameter counts
# printed below are the same everywhere.

# %%
n_embd = 32        # channels of every token vector
block_size = 8     # maximum context length for predictions
n_head = 4         # attention heads in a multi-head layer
n_layer = 3        # blocks, from step 5 on
dropout = 0.0      # switched on in step 7 only

# %% [markdown]
# The budget (steps, batch size) is what the device decides. On a 2-core CPU the whole notebook
# finishes in about ten minutes; a CUDA GPU trains each step longer on bigger batches. Every step
# starts from the same seed and sees the same batches.

# %% tags=["nbval-ignore-output"]
device = 'cuda' if torch.cuda.is_available() else 'mps' if torch.backends.mps.is_available() else 'cpu'
batch_size = 64 if device == 'cuda' else 32     # sequences per step
max_iters = 20_000 if device == 'cuda' else 4000  # optimisation steps for every step of the ladder
if SMOKE:
    max_iters = 60
learning_rate = 1e-3                             # AdamW, as in the lecture
eval_batch = 4096                                # chunks per forward pass when scoring a whole split
name = torch.cuda.get_device_name() if device == 'cuda' else platform.processor() or platform.machine()
print(f"device: {device} ({name}), torch {torch.__version__}, smoke mode: {SMOKE}")
print(f"budget: max_iters={max_iters} batch_size={batch_size} learning_rate={learning_rate}")


# %% [markdown]
# Batches as in notebook 01. To compare the steps fairly, each is scored on the **whole** of each
# split, cut into non-overlapping chunks of `block_size`: every character is predicted once, from the
# same spread of context lengths (1 to 8) that training uses, with no sampling noise.

# %%
def get_batch(split):
    """A random batch of inputs x and next-character targets y, both (batch_size, block_size)."""
    data = train_data if split == 'train' else val_data
    ix = torch.randint(len(data) - block_size, (batch_size,))         # (B,) random offsets
    x = torch.stack([data[i:i + block_size] for i in ix])             # (B, T)
    y = torch.stack([data[i + 1:i + block_size + 1] for i in ix])     # (B, T)
    return x.to(device), y.to(device)


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


# %% [markdown]
# Every step trains the same way: seed 1337, AdamW, `max_iters` steps. We keep the mean training
# loss of every 100 steps for a plot, and score the whole splits at the end.

# %%
def train(model):
    """Train model on the shared budget; returns its whole-split losses and its training curve."""
    torch.manual_seed(1337)
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    curve, running, t0 = [], [], time.time()
    for it in range(max_iters):
        xb, yb = get_batch('train')
        _, loss = model(xb, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        running.append(loss.item())
        if len(running) == 100 or it == max_iters - 1:
            curve.append((it + 1, sum(running) / len(running)))
            running = []
    return {'train': split_loss(model, train_data), 'val': split_loss(model, val_data),
            'seconds': time.time() - t0, 'curve': curve}


def params(model):
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters())


# %% [markdown]
# ## Step 0: the bigram model, for reference
#
# Notebook 01's model, trained on the same budget. Every later step has to beat this.

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


results = {}
torch.manual_seed(1337)
model = Bigram()
print(f"{params(model):,} parameters")
assert params(model) == vocab_size * vocab_size

# %% tags=["nbval-ignore-output"]
results['0 bigram'] = train(model)
print({k: round(v, 4) for k, v in results['0 bigram'].items() if k != 'curve'})


# %% [markdown]
# ## Step 1: embeddings, a language-model head, and positions
#
# Two changes that do not help yet but make room for what follows. Tokens are now embedded in
# `n_embd = 32` channels, and a linear `lm_head` turns a token's vector into logits. A second table,
# `position_embedding_table`, gives every position `0..block_size-1` its own vector, added to the
# token's: attention has no notion of space (notebook 02), so position has to be put into the data.
#
# The model has a `body` that will hold the attention and the blocks; in step 1 it is empty
# (`nn.Identity`). Since there are only `block_size` position embeddings, `generate` now crops its
# context to the last `block_size` tokens.

# %%
class BigramLanguageModel(nn.Module):
    """Token + position embeddings, a body that lets tokens communicate (step by step), and lm_head."""

    def __init__(self, body=None, ln_f=None):
        super().__init__()
        self.token_embedding_table = nn.Embedding(vocab_size, n_embd)
        self.position_embedding_table = nn.Embedding(block_size, n_embd)
        self.body = body or nn.Identity()  # filled in by the steps below
        self.ln_f = ln_f or nn.Identity()  # a final LayerNorm, from step 6 on
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


# %% [markdown]
# `generate` is the same as notebook 01's, except for the crop: it samples in `eval()` mode under
# `torch.no_grad()` and never feeds the model more than `block_size` tokens.

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

# %%
torch.manual_seed(1337)
model = BigramLanguageModel()
print(f"{params(model):,} parameters")
out = model.generate(torch.zeros((1, 1), dtype=torch.long), max_new_tokens=3 * block_size)
assert out.shape == (1, 1 + 3 * block_size)  # longer than block_size, thanks to the crop

# %% tags=["nbval-ignore-output"]
results['1 embeddings + positions'] = train(model)
print({k: round(v, 4) for k, v in results['1 embeddings + positions'].items() if k != 'curve'})


# %% [markdown]
# ## Step 2: one head of self-attention
#
# Notebook 02's version 4, packaged as a module. The causal mask is a buffer (`tril`), not a
# parameter: it moves with the model to the device but is never trained. The scores are scaled by
# `head_size**-0.5`, not by the channel count `C` as in the lecture's code. The `dropout` line does
# nothing until step 7 (the rate is 0.0 until then).

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
torch.manual_seed(1337)
model = BigramLanguageModel(body=Head(n_embd))  # head_size = n_embd, so the shapes line up
print(f"{params(model):,} parameters")
assert model(torch.zeros((2, block_size), dtype=torch.long))[0].shape == (2, block_size, vocab_size)

# %% tags=["nbval-ignore-output"]
results['2 one head'] = train(model)
print({k: round(v, 4) for k, v in results['2 one head'].items() if k != 'curve'})


# %% [markdown]
# ## Step 3: multi-head attention
#
# Several smaller heads in parallel, their outputs concatenated: 4 heads of 8 channels give back 32.
# Each head can look for something different (vowels, the start of a word, a name before a colon…).
# A final linear layer, `proj`, mixes the heads' outputs; it will matter most in step 5, where it
# projects back into the residual pathway.

# %%
class MultiHeadAttention(nn.Module):
    """Several heads of self-attention in parallel, concatenated and projected."""

    def __init__(self, num_heads, head_size):
        super().__init__()
        self.heads = nn.ModuleList([Head(head_size) for _ in range(num_heads)])
        self.proj = nn.Linear(head_size * num_heads, n_embd)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        out = torch.cat([h(x) for h in self.heads], dim=-1)  # (B, T, num_heads * hs)
        return self.dropout(self.proj(out))  # (B, T, C)


# %%
torch.manual_seed(1337)
model = BigramLanguageModel(body=MultiHeadAttention(n_head, n_embd // n_head))
print(f"{params(model):,} parameters")

# %% tags=["nbval-ignore-output"]
results['3 multi-head'] = train(model)
print({k: round(v, 4) for k, v in results['3 multi-head'].items() if k != 'curve'})


# %% [markdown]
# ## Step 4: a feed-forward layer
#
# Attention is communication: it gathers information from the past. The tokens then need time to
# *think* about what they gathered, each on its own. `FeedForward` is a small MLP applied to every
# position independently: widen to 4 × `n_embd`, ReLU, back to `n_embd` (the 4× is from the
# "Attention is all you need" paper).

# %%
class FeedForward(nn.Module):
    """A per-token MLP: linear, ReLU, linear (4x wider inside)."""

    def __init__(self, n_embd):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_embd, 4 * n_embd),  # (B, T, 4C)
            nn.ReLU(),
            nn.Linear(4 * n_embd, n_embd),  # (B, T, C) the projection back
            nn.Dropout(dropout),
        )

    def forward(self, x):
        return self.net(x)  # (B, T, C) -> (B, T, C)


# %%
torch.manual_seed(1337)
model = BigramLanguageModel(body=nn.Sequential(MultiHeadAttention(n_head, n_embd // n_head), FeedForward(n_embd)))
print(f"{params(model):,} parameters")

# %% tags=["nbval-ignore-output"]
results['4 + feed-forward'] = train(model)
print({k: round(v, 4) for k, v in results['4 + feed-forward'].items() if k != 'curve'})


# %% [markdown]
# ## Step 5: blocks with residual connections
#
# A `Block` is communication followed by computation, and we stack `n_layer = 3` of them. Stacking
# makes the network deep, and deep networks are hard to optimise. The fix is the *residual
# connection*: each block adds its result to its input, `x = x + sa(x)`, instead of replacing it.
# The gradient then flows straight down the sum to the early layers, and each block starts out as a
# small correction to a working pathway. That is why attention and feed-forward end in a projection.

# %%
class Block(nn.Module):
    """Transformer block: communication (attention) followed by computation (feed-forward)."""

    def __init__(self, n_embd, n_head):
        super().__init__()
        head_size = n_embd // n_head
        self.sa = MultiHeadAttention(n_head, head_size)
        self.ffwd = FeedForward(n_embd)

    def forward(self, x):
        x = x + self.sa(x)  # (B, T, C)
        x = x + self.ffwd(x)  # (B, T, C)
        return x


# %%
torch.manual_seed(1337)
model = BigramLanguageModel(body=nn.Sequential(*[Block(n_embd, n_head) for _ in range(n_layer)]))
print(f"{params(model):,} parameters")

# %% tags=["nbval-ignore-output"]
results['5 blocks + residual'] = train(model)
print({k: round(v, 4) for k, v in results['5 blocks + residual'].items() if k != 'curve'})


# %% [markdown]
# One published write-up of the lecture writes its `Block` as `x = self.sa(x)` then
# `x = self.ffwd(x)`, without the adds. Same parameters, no residual pathway: here is what that costs.

# %%
class PlainBlock(Block):
    """A Block without the residual connections (a mistake, measured here)."""

    def forward(self, x):
        x = self.sa(x)  # (B, T, C)
        x = self.ffwd(x)  # (B, T, C)
        return x


torch.manual_seed(1337)
model = BigramLanguageModel(body=nn.Sequential(*[PlainBlock(n_embd, n_head) for _ in range(n_layer)]))
print(f"{params(model):,} parameters")

# %% tags=["nbval-ignore-output"]
results['5b blocks, no residual'] = train(model)
print({k: round(v, 4) for k, v in results['5b blocks, no residual'].items() if k != 'curve'})


# %% [markdown]
# ## Step 6: LayerNorm
#
# The second fix for deep networks: normalise every token's vector to mean 0 and variance 1 across
# its channels, then let the network rescale it with a learnable gain and bias. Here it is by hand.
# It normalises over the last dimension with the *biased* variance (divide by `C`), as
# `nn.LayerNorm` does. The lecture's `LayerNorm1d` called `x.var(1)`, which divides by `C − 1`,
# so it does not match PyTorch's.

# %%
class LayerNorm1d(nn.Module):
    """LayerNorm by hand: normalise each token's channels, then scale by gamma and shift by beta."""

    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(dim))  # (C,) learnable gain
        self.beta = nn.Parameter(torch.zeros(dim))  # (C,) learnable bias

    def forward(self, x):
        xmean = x.mean(-1, keepdim=True)  # (B, T, 1)
        xvar = x.var(-1, keepdim=True, unbiased=False)  # (B, T, 1) biased, like nn.LayerNorm
        xhat = (x - xmean) / torch.sqrt(xvar + self.eps)  # (B, T, C)
        return self.gamma * xhat + self.beta  # (B, T, C)


# %%
torch.manual_seed(1337)
x = torch.randn(32, 8, 100) * 3 + 1  # (B, T, C)
ours, torchs = LayerNorm1d(100), nn.LayerNorm(100)
print('matches nn.LayerNorm:', torch.allclose(ours(x), torchs(x), atol=1e-5))
lecture = (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, keepdim=True) + 1e-5)  # unbiased
print('the unbiased variance matches:', torch.allclose(lecture, torchs(x), atol=1e-5))
print(f'each row: mean {ours(x).mean(-1).abs().max():.4f} (largest), std {ours(x).std(-1, unbiased=False).mean():.4f}')
assert torch.allclose(ours(x), torchs(x), atol=1e-5) and not torch.allclose(lecture, torchs(x), atol=1e-5)


# %% [markdown]
# They match, so from here on we use `nn.LayerNorm`. Modern Transformers put the norm *before* each
# sub-layer ("pre-norm", unlike the original paper), inside the residual branch, and add one final
# `ln_f` before `lm_head`.

# %%
class PreNormBlock(Block):
    """A Block with a LayerNorm before attention and before the feed-forward (pre-norm)."""

    def __init__(self, n_embd, n_head):
        super().__init__(n_embd, n_head)
        self.ln1 = nn.LayerNorm(n_embd)
        self.ln2 = nn.LayerNorm(n_embd)

    def forward(self, x):
        x = x + self.sa(self.ln1(x))  # (B, T, C)
        x = x + self.ffwd(self.ln2(x))  # (B, T, C)
        return x


def transformer():
    """Step 6's model: n_layer pre-norm blocks and a final LayerNorm."""
    blocks = nn.Sequential(*[PreNormBlock(n_embd, n_head) for _ in range(n_layer)])
    return BigramLanguageModel(body=blocks, ln_f=nn.LayerNorm(n_embd))


torch.manual_seed(1337)
model = transformer()
print(f"{params(model):,} parameters")

# %% tags=["nbval-ignore-output"]
results['6 + LayerNorm'] = train(model)
step6 = model  # kept for sampling at the end
print({k: round(v, 4) for k, v in results['6 + LayerNorm'].items() if k != 'curve'})

# %% [markdown]
# ## Step 7: dropout
#
# Dropout zeroes a random fraction of activations during training (and none at evaluation), so the
# network cannot lean on any single path: a regulariser against overfitting. The lecture adds it in
# three places, on the attention weights, after each projection, and after the feed-forward; the
# `dropout` lines have been there since step 2. We switch it on at 0.2, the lecture's rate.

# %%
dropout = 0.2
torch.manual_seed(1337)
model = transformer()
print(f"{params(model):,} parameters")  # dropout has none
dropout = 0.0

# %% tags=["nbval-ignore-output"]
results['7 + dropout 0.2'] = train(model)
print({k: round(v, 4) for k, v in results['7 + dropout 0.2'].items() if k != 'curve'})

# %% [markdown]
# ## The ladder
#
# Validation loss (whole split) of every step, on the same budget. Lower is better; the bar for the
# block without residual connections shows what the residual pathway buys.

# %% tags=["nbval-ignore-output"]
print(f"{'step':<26} {'train':>7} {'val':>7} {'seconds':>8}")
for step, r in results.items():
    print(f"{step:<26} {r['train']:7.4f} {r['val']:7.4f} {r['seconds']:8.1f}")
print(f"device {device}, {max_iters} steps of batch {batch_size} per model, smoke mode: {SMOKE}")
if not SMOKE:  # the claims of the next paragraph, on the real budget
    val = {step: r['val'] for step, r in results.items()}
    assert val['2 one head'] < val['1 embeddings + positions'] and val['3 multi-head'] < val['2 one head']
    assert val['5 blocks + residual'] < val['4 + feed-forward'] < val['3 multi-head']
    assert val['5b blocks, no residual'] > val['5 blocks + residual'] + 0.1
    assert val['7 + dropout 0.2'] > val['6 + LayerNorm']
    assert abs(results['6 + LayerNorm']['train'] - results['6 + LayerNorm']['val']) < 0.1

# %% [markdown]
# What the table shows (the stored outputs come from a 2-core CPU; README lists the numbers):
#
# - Every idea up to the residual blocks helps: one head beats position embeddings alone, several
#   heads beat one, the feed-forward layer helps again, and three residual blocks help most.
# - The same three blocks **without** the residual adds train much worse than with them: depth
#   without a residual pathway is hard to optimise.
# - LayerNorm helps only a little at this depth; it matters more as models get deeper.
# - **Dropout did not help.** This model is too small to overfit in 4,000 steps (its train and
#   validation losses are nearly equal), so dropping activations only slows learning. Regularisation
#   pays when the model is big enough to memorise, as in notebook 04's lecture configuration.

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4), constrained_layout=True)
names, vals = list(results), [r['val'] for r in results.values()]
_ = ax1.barh(names, vals, color=['grey' if 'no residual' in s else 'tab:blue' for s in names])
_ = ax1.set(xlabel='validation loss (whole split)', xlim=(min(vals) - 0.15, max(vals) + 0.05), title='The ladder')
ax1.invert_yaxis()
for step in ['0 bigram', '2 one head', '4 + feed-forward', '6 + LayerNorm', '5b blocks, no residual']:
    its, losses = zip(*results[step]['curve'])
    _ = ax2.plot(its, losses, label=step)
_ = ax2.set(xlabel='step', ylabel='training loss (mean of 100 steps)', title='Training curves')
_ = ax2.legend()
plt.show()

# %% [markdown]
# Some samples from the step-6 model. With a context of only 8 characters it has learned words and
# the look of a play, not sentences; notebook 04 scales the same model up.

# %% tags=["nbval-ignore-output"]
torch.manual_seed(1337)
print(decode(step6.generate(torch.zeros((1, 1), dtype=torch.long, device=device), max_new_tokens=300)[0].tolist()))

# %% [markdown]
# ## What changes when scaling up
#
# With more parameters and a longer context the model can overfit tiny Shakespeare, and then dropout
# earns its place. The lecture's final model has 6 blocks of 6 heads over 384 channels, a context of
# 256 characters and dropout 0.2: 10.8 million parameters, trained in notebook 04.
#
# ## Summary
#
# - Each idea of the Transformer was added to the bigram model in turn and measured with the same
#   budget: position embeddings, one head, several heads, a feed-forward layer, residual blocks,
#   pre-norm LayerNorm (checked equal to one written by hand), and dropout.
# - Without residual connections, a stack of blocks trains worse than one layer of attention.
#
# ## Exercises
#
# 1. Move the LayerNorms after the sub-layers (post-norm, as in the 2017 paper) and rerun step 6.
# 2. Double `block_size` to 16 for step 6. What does the longer context buy, and what does it cost?
# 3. Replace ReLU with GELU in `FeedForward` and measure the difference on this budget.
