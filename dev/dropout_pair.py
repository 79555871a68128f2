"""Does dropout help notebook 04's small configuration? Train it with several dropout rates, same seed and steps.

    python dev/dropout_pair.py --steps 2500                   # the whole of tiny Shakespeare
    python dev/dropout_pair.py --steps 600 --chars 35000      # a 35 KB text, the size of a learner's own

Uses notebook 04b's own classes, which are notebook 04's (loaded from the .py without running the notebook) and its small
configuration (4 layers x 128, block 64, batch 32, lr 1e-3), splits the text 90/10, and prints the
whole-split train/val loss of each rate; the curves go to dev/results/.
"""
import argparse
import json
import pathlib
import sys
import time

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests"))
from notebook_code import ROOT, load  # noqa: E402


def whole(model, d, block_size):
    m = (len(d) - 1) // block_size * block_size
    xs, ys = d[:m].view(-1, block_size), d[1:m + 1].view(-1, block_size)
    return sum(model(a, b)[1].item() * len(a) for a, b in zip(xs.split(256), ys.split(256))) / len(xs)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=2500)
    p.add_argument("--chars", type=int, default=None)
    p.add_argument("--rates", type=float, nargs="+", default=[0.0, 0.1, 0.2])
    p.add_argument("--every", type=int, default=250)
    p.add_argument("--seed", type=int, default=1337)
    a = p.parse_args()
    ns = load("04b_dropout_and_learning_rate")
    text = (ROOT / "datasets" / "tinyshakespeare.txt").read_text(encoding="utf-8")[:a.chars]
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([stoi[c] for c in text])
    n = int(0.9 * len(data))
    train_data, val_data = data[:n], data[n:]
    block_size, batch_size, lr = 64, 32, 1e-3
    out = {}
    for rate in a.rates:
        torch.manual_seed(a.seed)
        model = ns["GPTLanguageModel"](ns["GPTConfig"](vocab_size=len(chars), block_size=block_size, n_embd=128,
                                                        n_head=4, n_layer=4, dropout=rate))
        opt = torch.optim.AdamW(model.parameters(), lr=lr)
        gen = torch.Generator().manual_seed(a.seed)
        curve, t0 = [], time.time()
        for it in range(a.steps):
            ix = torch.randint(len(train_data) - block_size, (batch_size,), generator=gen)
            x = torch.stack([train_data[i:i + block_size] for i in ix])
            y = torch.stack([train_data[i + 1:i + block_size + 1] for i in ix])
            _, loss = model(x, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if (it + 1) % a.every == 0:
                model.eval()
                with torch.no_grad():
                    tr, va = whole(model, train_data, block_size), whole(model, val_data, block_size)
                model.train()
                curve.append((it + 1, tr, va))
                print(f"dropout {rate}: step {it + 1} train {tr:.4f} val {va:.4f}", flush=True)
        out[rate] = {"curve": curve, "seconds": time.time() - t0}
        print(f"dropout {rate}: final train {curve[-1][1]:.4f} val {curve[-1][2]:.4f} ({time.time() - t0:.0f} s)", flush=True)
    name = f"dropout_pair_{a.steps}" + (f"_{a.chars}" if a.chars else "") + f"_seed{a.seed}.json"
    (ROOT / "dev" / "results" / name).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
