"""Measure notebook 05c's CPU race one change at a time: whole-split val loss and seconds per run.

    python dev/race_ablations.py                 # every row of RUNS
    python dev/race_ablations.py 3 5             # rows 3 and 5 only (counting from 0)

Runs notebook 05c's own train_fast and split_loss (loaded from the .py without running the notebook)
on a CPU, with two threads; each row changes one thing against the first. Timing needs a quiet
machine (nothing else computing). About two minutes a row. Appends to dev/results/race_ablations.json.
"""
import json
import os
import pathlib
import sys
import time

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests"))
from notebook_code import ROOT, load  # noqa: E402

KEEP = ("text", "chars", "stoi", "itos", "encode", "decode", "data", "n", "train_data", "val_data")
SIZES = dict(block_size=64, n_embd=128, n_head=4, n_layer=4, dropout=0.0)
BASE = dict(batch_size=32, iters=1000, peak_lr=2e-3, warmup=50, cosine=True, weight_decay=0.1, clip=None,
            fused=True, compile=False)
RUNS = [("1,000 steps (the race before torch.compile)", {}, {}),
        ("1,000 steps, torch.compile", {"compile": True}, {}),
        ("1,300 steps", {"iters": 1300}, {}),
        ("1,500 steps", {"iters": 1500}, {}),
        ("1,300 steps, peak lr 3e-3", {"iters": 1300, "peak_lr": 3e-3}, {}),
        ("1,300 steps, clip 1.0", {"iters": 1300, "clip": 1.0}, {}),
        ("1,300 steps, no weight decay", {"iters": 1300, "weight_decay": 0.0}, {}),
        ("1,000 steps of batch 48", {"iters": 1000, "batch_size": 48}, {}),
        ("1,300 steps, 6 layers x 96", {"iters": 1300}, {"n_layer": 6, "n_embd": 96}),
        ("1,300 steps, 3 layers x 160", {"iters": 1300}, {"n_layer": 3, "n_embd": 160}),
        ("1,500 steps, peak lr 3e-3", {"iters": 1500, "peak_lr": 3e-3}, {}),
        ("1,300 steps, warmup 100", {"iters": 1300, "warmup": 100}, {})]


def main():
    ns = load("05c_against_the_clock", keep=KEEP, device="cpu", amp_dtype=None, text=(ROOT / "datasets" / "tinyshakespeare.txt").read_text())
    chosen = [int(a) for a in sys.argv[1:]] or range(len(RUNS))
    out_file = ROOT / "dev" / "results" / "race_ablations.json"
    results = json.loads(out_file.read_text()) if out_file.exists() else {}
    for i in chosen:
        label, change, sizes = RUNS[i]
        config = ns["GPTConfig"](vocab_size=len(ns["chars"]), **{**SIZES, **sizes})
        ns["block_size"] = config.block_size
        settings = {**BASE, **change}
        model, log, compile_seconds = ns["train_fast"](config, **settings)
        t0 = time.perf_counter()
        val = ns["split_loss"](model, ns["val_data"])
        seconds = log[-1][1] + time.perf_counter() - t0
        print(f"{i}: {label:<50} val {val:.4f}  {seconds:5.1f} s (+ {compile_seconds:.1f} s compiling)", flush=True)
        results[label] = {"val": val, "seconds": seconds, "compile_seconds": compile_seconds}
        out_file.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", 2)))  # time only with 2 threads on a quiet machine
    main()
