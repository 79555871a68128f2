# %% [markdown]
# # 01 · From raw text to a trained bigram model
#
# This notebook is the first part of Andrej Karpathy's lecture
# ["Let's build GPT: from scratch, in code, spelled out"](https://www.youtube.com/watch?v=kCc8FmEb1nY),
# spelled out and checked. We read a text, turn its characters into integers, cut it into
# training examples, and train the simplest language model there is: one that predicts the next
# character from the current one alone. Every later notebook reuses these pieces.
#
# The notebook is standalone: on Colab or in a fresh folder it downloads its data itself.
# As a script: `python notebooks/01_bigram.py`.

# %%
import hashlib, math, os, pathlib, platform, time, urllib.request
import torch
import torch.nn as nn
from torch.nn import functional as F
import matplotlib.pyplot as plt

SMOKE = os.environ.get("COURSE_SMOKE") == "1"  # set by the tests: fewer steps, same printed facts

# %% [markdown]
# ## The data
#
# We train on *tiny Shakespeare*, all of Shakespeare's plays in one 1 MB file. The next two cells
# find it in `datasets/` or download it once, and check its SHA-256 so that everyone trains on
# exactly the same characters. To train on your own text instead, set the environment variable
# `COURSE_DATA` to the path of any UTF-8 text file. Anything that goes wrong ends in one line
# that says what to do.

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
USING_SHAKESPEARE = not os.environ.get("COURSE_DATA")
if USING_SHAKESPEARE:
    assert len(text) == 1_115_394
print(f"length of the text in characters: {len(text):,}")
print(text[:250])

# %% [markdown]
# ## The vocabulary: characters as integers
#
# A character-level model reads one character at a time, so the vocabulary is simply the set of
# characters that occur in the text, sorted. Tiny Shakespeare has 65 of them: the newline, the space,
# punctuation, digits (only `3`), and the letters.

# %%
chars = sorted(list(set(text)))
vocab_size = len(chars)
if USING_SHAKESPEARE:
    assert vocab_size == 65
print(''.join(chars))
print(f"vocab_size = {vocab_size}")

# %% [markdown]
# The *tokenizer* maps each character to its index in that list and back. Real GPTs use sub-word
# tokenizers with tens of thousands of tokens; ours trades long sequences for a tiny vocabulary.
# Decoding an encoding must give back the text we started with.

# %%
stoi = {ch: i for i, ch in enumerate(chars)}
itos = {i: ch for i, ch in enumerate(chars)}
encode = lambda s: [stoi[c] for c in s]           # string -> list of integers
decode = lambda l: ''.join([itos[i] for i in l])  # list of integers -> string

print(encode("hii there"))
print(decode(encode("hii there")))
assert decode(encode(text[:10_000])) == text[:10_000]

# %% [markdown]
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
# on, so its loss tells us how well the model generalises rather than how well it memorises.

# %%
n = int(0.9 * len(data))  # first 90% will be train, rest val
train_data = data[:n]
val_data = data[n:]
print(f"train: {len(train_data):,} tokens, val: {len(val_data):,} tokens")
assert len(train_data) + len(val_data) == len(data)

# %% [markdown]
# ## One chunk holds `block_size` examples
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
# right. The seed 1337 makes this batch the same as the lecture's, on any machine.

# %%
torch.manual_seed(1337)
batch_size = 4  # how many independent sequences will we process in parallel?
block_size = 8  # what is the maximum context length for predictions?
device = "cpu"  # the toy stays on the CPU; training below picks the best device


def get_batch(split):
    """A random batch of inputs x and next-character targets y, both (batch_size, block_size)."""
    data = train_data if split == 'train' else val_data
    ix = torch.randint(len(data) - block_size, (batch_size,))         # (B,) random offsets
    x = torch.stack([data[i:i + block_size] for i in ix])             # (B, T)
    y = torch.stack([data[i + 1:i + block_size + 1] for i in ix])     # (B, T)
    return x.to(device), y.to(device)


# %%
xb, yb = get_batch('train')
print('inputs:', xb.shape)
print(xb)
print('targets:', yb.shape)
print(yb)
assert torch.equal(xb[:, 1:], yb[:, :-1])  # the targets are the inputs, one step on

# %% [markdown]
# That one batch holds `4 × 8 = 32` examples. Here are the eight of its first row:

# %%
for t in range(block_size):
    context = xb[0, :t + 1]
    target = yb[0, t]
    print(f"when input is {context.tolist()} the target: {target}")

# %% [markdown]
# ## The bigram language model
#
# The simplest model: a `vocab_size × vocab_size` table in which row `i` holds the scores
# (*logits*) for the character that follows character `i`. `nn.Embedding` is exactly such a
# table: indexing it with `idx` of shape `(B, T)` gives logits of shape `(B, T, C)` with
# `C = vocab_size`. The tokens do not talk to each other yet; that is what attention will add.
#
# `F.cross_entropy` wants the classes in the second dimension, so we flatten the batch and time
# dimensions: logits `(B*T, C)` against targets `(B*T)`. (Unlike the lecture, `forward` always returns
# the logits as `(B, T, C)`, so their shape does not depend on whether targets were given.)
#
# `generate` samples one character at a time and appends it. It runs in `eval()` mode under
# `torch.no_grad()`: the lecture's version did neither, which is harmless for this model but would
# leave dropout on and waste memory on gradients in the later ones.

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


# %% [markdown]
# ## The loss before training
#
# If the untrained model spread its bets evenly over 65 characters, the loss would be
# −ln(1/65) = ln 65 ≈ 4.17. With an all-zero table it is exactly that. The random initial table
# (entries drawn from N(0, 1)) is a little confidently wrong, so its loss starts somewhat higher.

# %%
torch.manual_seed(1337)
m = BigramLanguageModel(vocab_size)
logits, loss = m(xb, yb)
print(logits.shape)
print(f"initial loss {loss.item():.4f}, ln(vocab_size) = {math.log(vocab_size):.4f}")
assert math.log(vocab_size) < loss.item() < math.log(vocab_size) + 1.0

uniform = BigramLanguageModel(vocab_size)
nn.init.zeros_(uniform.token_embedding_table.weight)  # every logit equal: a uniform guess
assert math.isclose(uniform(xb, yb)[1].item(), math.log(vocab_size), rel_tol=1e-6)

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
# ## Training
#
# Now pick the fastest device on this machine (CUDA, else Apple's MPS, else the CPU) and train with
# AdamW. The bigram model is so small that every device gets the same configuration; smoke mode (used
# by the tests) only takes fewer steps. The cell prints the device and config that made the stored
# outputs below.

# %% tags=["nbval-ignore-output"]
device = 'cuda' if torch.cuda.is_available() else 'mps' if torch.backends.mps.is_available() else 'cpu'
batch_size = 32                        # sequences per step
block_size = 8                         # context length (the bigram only uses the last character)
max_iters = 100 if SMOKE else 3000     # optimisation steps
eval_interval = max_iters // 10        # steps between loss estimates
eval_iters = 20 if SMOKE else 200      # batches per loss estimate
learning_rate = 1e-2                   # a table this small tolerates large steps
name = torch.cuda.get_device_name() if device == 'cuda' else platform.processor() or platform.machine()
print(f"device: {device} ({name}), torch {torch.__version__}, smoke mode: {SMOKE}")
print(f"config: batch_size={batch_size} block_size={block_size} max_iters={max_iters} "
      f"eval_interval={eval_interval} eval_iters={eval_iters} learning_rate={learning_rate}")

# %% [markdown]
# A loss measured on a single batch is noisy. `estimate_loss` averages it over `eval_iters` batches of
# each split, in `eval()` mode and without gradients.

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
    xb, yb = get_batch('train')
    logits, loss = model(xb, yb)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
train_seconds = time.time() - t0
print(f"trained {max_iters} steps in {train_seconds:.1f} s on {device}")

# %%
steps, train_losses, val_losses = zip(*history)
fig, ax = plt.subplots(figsize=(6, 3.5))
_ = ax.plot(steps, train_losses, label='train')
_ = ax.plot(steps, val_losses, label='val')
_ = ax.axhline(math.log(vocab_size), color='grey', linestyle=':', label='uniform guess, ln 65')
_ = ax.set(xlabel='step', ylabel='loss (estimate)', title='Bigram model: loss while training')
_ = ax.legend()
plt.show()

# %% [markdown]
# The curve flattens near 2.5: that is as well as any model can do that sees one character of
# context. To report a number that is not an estimate, we also compute the loss over the *whole* of
# each split. The bigram model needs no context window, so each split can go in as one long sequence.

# %% tags=["nbval-ignore-output"]
@torch.no_grad()
def split_loss(model, data):
    """Loss of the bigram model over a whole split, fed as one sequence."""
    model.eval()
    _, loss = model(data[None, :-1].to(device), data[None, 1:].to(device))  # (1, N-1) each
    model.train()
    return loss.item()


final = {'train': split_loss(model, train_data), 'val': split_loss(model, val_data)}
print(f"whole-split loss after {max_iters} steps: train {final['train']:.4f}, val {final['val']:.4f}")
if not SMOKE:
    assert final['val'] < 2.6  # far below ln 65 = 4.17

# %% [markdown]
# And a sample from the trained model. It has learned which characters tend to follow which, so
# the output has the shape of a play (names, line breaks, short words), but no sense.

# %% tags=["nbval-ignore-output"]
torch.manual_seed(1337)
context = torch.zeros((1, 1), dtype=torch.long, device=device)  # (B=1, T=1)
print(decode(model.generate(context, max_new_tokens=500)[0].tolist()))

# %% [markdown]
# ## Summary
#
# - The text became a tensor of 1,115,394 integers over a vocabulary of 65 characters, split 90/10.
# - A chunk of `block_size + 1` characters holds `block_size` examples; `get_batch` stacks random
#   chunks into `(B, T)` inputs and targets shifted by one.
# - The bigram model is a lookup table of next-character logits. It starts at a loss a little above
#   ln 65 ≈ 4.17 and trains to about 2.5; it samples in `eval()` mode under `torch.no_grad()`.
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
