"""Measure the optimizer settings of notebook 05's CPU race, one change at a time.

    python dev/race_ablations.py

Runs notebook 05's own train_fast and split_loss (loaded from the .py without running the
notebook) with its CPU race config, changing one setting per run, and prints the whole-split
validation loss and the seconds of each. About two minutes a run on a 2-core CPU.
"""
import os
import pathlib
import sys
import time

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests"))
from notebook_code import ROOT, load  # noqa: E402

KEEP = ("text", "chars", "stoi", "itos", "encode", "decode", "data", "n", "train_data", "val_data")
BASE = dict(batch_size=32, iters=1000, peak_lr=2e-3, warmup=50, cosine=True, weight_decay=0.1, clip=1.0)
RUNS = [("warmup + cosine, peak lr 2e-3, weight decay 0.1, clip 1.0", {}),
        ("peak learning rate 1e-3", {"peak_lr": 1e-3}),
        ("peak learning rate 3e-3", {"peak_lr": 3e-3}),
        ("constant learning rate (no warmup, no decay)", {"cosine": False, "warmup": 0}),
        ("no weight decay", {"weight_decay": 0.0}),
        ("no gradient clipping (the notebook's CPU race)", {"clip": None})]


def main():
    os.chdir(ROOT)
    ns = load("05_fast_gpt", keep=KEEP, device="cpu", amp_dtype=None)
    race = ns["GPTConfig"](vocab_size=len(ns["chars"]), block_size=64, n_embd=128, n_head=4, n_layer=4, dropout=0.0)
    ns["block_size"] = race.block_size
    for label, change in RUNS[int(sys.argv[1]) if len(sys.argv) > 1 else 0:]:
        settings = dict(config=race, **BASE) | change
        t0 = time.perf_counter()
        model, _ = ns["train_fast"](**settings)
        val = ns["split_loss"](model, ns["val_data"])
        print(f"{label:<62} val {val:.4f}  {time.perf_counter() - t0:5.1f} s", flush=True)


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
