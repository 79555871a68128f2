"""Why the lecture lowers the learning rate when it scales up: a small and a large model, two learning rates.

    python dev/lr_scaling.py [STEPS]

Notebook 04b's own classes (notebook 04's model); block 64, batch 16, AdamW without warmup (as in the lecture), seed 1337;
the small model is 4 x 4 heads x 128, the large one the lecture's 6 x 6 heads x 384. Prints the
loss estimate (50 batches) every 50 steps and writes dev/results/lr_scaling.json.
"""
import json
import pathlib
import sys
import time

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests"))
from notebook_code import ROOT, load  # noqa: E402


def main():
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    ns = load("04b_dropout_and_learning_rate")
    text = (ROOT / "datasets" / "tinyshakespeare.txt").read_text(encoding="utf-8")
    chars = sorted(set(text))
    data = torch.tensor(ns["encoder_for"](chars)[0](text))
    train_data, val_data = data[:int(0.9 * len(data))], data[int(0.9 * len(data)):]
    T, B = 64, 16
    out = {}
    for name, sizes in (("small", dict(n_embd=128, n_head=4, n_layer=4)), ("large", dict(n_embd=384, n_head=6, n_layer=6))):
        for lr in (1e-3, 3e-4):
            torch.manual_seed(1337)
            model = ns["GPTLanguageModel"](ns["GPTConfig"](vocab_size=len(chars), block_size=T, dropout=0.0, **sizes))
            opt = torch.optim.AdamW(model.parameters(), lr=lr)
            gen, curve, t0 = torch.Generator().manual_seed(1337), [], time.time()
            for it in range(1, steps + 1):
                ix = torch.randint(len(train_data) - T, (B,), generator=gen)
                chunks = torch.stack([train_data[i:i + T + 1] for i in ix])
                ns["train_step"](model, opt, chunks[:, :-1], chunks[:, 1:])
                if it % 50 == 0:
                    g = torch.Generator().manual_seed(0)
                    ix = torch.randint(len(val_data) - T, (50,), generator=g)
                    chunks = torch.stack([val_data[i:i + T + 1] for i in ix])
                    with torch.no_grad():
                        val = model.eval()(chunks[:, :-1], chunks[:, 1:])[1].item()
                    model.train()
                    curve.append((it, val))
                    print(f"{name} lr {lr}: step {it} val {val:.4f} ({time.time() - t0:.0f} s)", flush=True)
            out[f"{name} {lr}"] = curve
            (ROOT / "dev" / "results" / "lr_scaling.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
