"""Measure the band a correct run lands in: the notebooks' own training code with several seeds.

    python dev/bands.py 01 [SEED ...]     # notebook 01's bigram (default seeds 1337 0 1 2)
    python dev/bands.py 03 [SEED ...]     # every rung of the ladder, 03's and 03b's (default seeds 1337 1 2)
    python dev/bands.py 04 [SEED ...]     # notebook 04's small configuration (default seeds 1337 1 2)
    python dev/bands.py 05 [SEED ...]     # notebook 05c's CPU race (default seeds 1337 1 2; it times, too: run it alone)

Each run uses the notebook's own definitions (loaded from its .py without running the notebook),
its default CPU configuration and tiny Shakespeare, and prints the whole-split losses per seed; the
seed 1337 row must equal the notebook's stored output. Results are appended to dev/results/bands.json.
"""
import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests"))
from notebook_code import ROOT, load  # noqa: E402

TEXT = (ROOT / "datasets" / "tinyshakespeare.txt").read_text(encoding="utf-8")
SPLIT = ("chars", "vocab_size", "stoi", "itos", "encode", "decode", "data", "n", "train_data", "val_data")


def bigram(seed):
    ns = load("01_bigram", keep=SPLIT, text=TEXT)
    ns.update(device="cpu", batch_size=32, block_size=8, eval_iters=200)
    torch.manual_seed(seed)
    model = ns["BigramLanguageModel"](ns["vocab_size"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for step in range(3001):
        if step % 300 == 0:
            ns["estimate_loss"](model)  # draws batches, as the notebook's loop does
        if step == 3000:
            break
        xb, yb = ns["get_batch"]("train", 32, 8)
        ns["train_step"](model, optimizer, xb, yb)
    return {"train": ns["split_loss"](model, ns["train_data"]), "val": ns["split_loss"](model, ns["val_data"])}


def ladder(seed):
    """Rungs 0-2 with notebook 03's own code, rungs 3-7 with notebook 03b's (its folded copy of 03's code is 03's)."""
    def notebook(name):
        ns = load(name, keep=SPLIT + ("n_embd", "block_size", "n_head", "n_layer", "dropout"), text=TEXT)
        ns.update(device="cpu", batch_size=32, max_iters=4000, learning_rate=1e-3, eval_batch=4096, EXPECTED_VAL={},
                  USING_SHAKESPEARE=True, SMOKE=False)
        return ns
    a, b = notebook("03_building_gpt"), notebook("03b_blocks_and_the_ladder")
    C, H, L, hs = b["n_embd"], b["n_head"], b["n_layer"], b["n_embd"] // b["n_head"]
    M, nn = b["BigramLanguageModel"], torch.nn

    def with_dropout():
        b["dropout"] = 0.2
        model = b["transformer"]()
        b["dropout"] = 0.0
        return model
    steps = {
        "0 bigram": (a, lambda: a["Bigram"](), 1e-2),
        "1 embeddings + positions": (a, lambda: a["BigramLanguageModel"](), None),
        "2 one head": (a, lambda: a["BigramLanguageModel"](body=a["Head"](C)), None),
        "3 multi-head": (b, lambda: M(body=b["MultiHeadAttention"](H, hs)), None),
        "4 + feed-forward": (b, lambda: M(body=nn.Sequential(b["MultiHeadAttention"](H, hs), b["FeedForward"](C))), None),
        "5 blocks + residual": (b, lambda: M(body=nn.Sequential(*[b["Block"](C, H) for _ in range(L)])), None),
        "5b blocks, no residual": (b, lambda: M(body=nn.Sequential(*[b["PlainBlock"](C, H) for _ in range(L)])), None),
        "6 + LayerNorm": (b, lambda: b["transformer"](), None),
        "7 + dropout 0.2": (b, with_dropout, None),
    }
    out = {}
    for name, (ns, build, lr) in steps.items():
        torch.manual_seed(seed)
        model = build()
        r = ns["train"](model, name, lr=lr, seed=seed)
        out[name] = {"train": r["train"], "val": r["val"]}
    return out


def small_gpt(seed):
    ns = load("04_gpt")
    sizes, settings = ns["SIZES"]["small"]
    ns["text"] = TEXT
    chars = sorted(set(TEXT))
    encode, _ = ns["encoder_for"](chars)
    data = torch.tensor(encode(TEXT), dtype=torch.long)
    n = int(0.9 * len(data))
    folder = pathlib.Path(tempfile.mkdtemp(prefix="bands-"))
    ns.update(train_data=data[:n], val_data=data[n:], chars=chars, device="cpu", block_size=sizes["block_size"],
              settings=settings, ckpt_path=folder / "ckpt.pt", IN_NOTEBOOK=False,
              args=ns["parse_args"](["--seed", str(seed)]), **settings)
    torch.manual_seed(seed)
    model = ns["GPTLanguageModel"](ns["GPTConfig"](vocab_size=len(chars), **sizes))
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings["learning_rate"])
    torch.manual_seed(seed)
    ns["train"](model, optimizer, 0, settings["max_iters"])
    return {"train": ns["split_loss"](model, ns["train_data"]), "val": ns["split_loss"](model, ns["val_data"])}


def race(seed):
    ns = load("05c_against_the_clock", keep=SPLIT, text=TEXT, device="cpu", amp_dtype=None)
    sizes, batch, iters, lr, warmup, target, clip, every = ns["RACES"]["cpu"]
    config = ns["GPTConfig"](vocab_size=len(ns["chars"]), **sizes)
    ns["block_size"] = config.block_size
    model, log, _ = ns["train_fast"](config, batch, iters, lr, warmup, seed=seed, clip=clip, fused=True)
    t0 = time.perf_counter()
    val = ns["split_loss"](model, ns["val_data"])
    return {"val": val, "seconds": log[-1][1] + time.perf_counter() - t0}


RUNS = {"01": (bigram, [1337, 0, 1, 2]), "03": (ladder, [1337, 1, 2]), "04": (small_gpt, [1337, 1, 2]),
        "05": (race, [1337, 1, 2])}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("notebook", choices=sorted(RUNS))
    p.add_argument("seeds", type=int, nargs="*")
    a = p.parse_args()
    run, seeds = RUNS[a.notebook]
    results_file = ROOT / "dev" / "results" / "bands.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    for seed in a.seeds or seeds:
        t0 = time.time()
        r = run(seed)
        print(f"{a.notebook} seed {seed}: {json.dumps(r)} ({time.time() - t0:.0f} s)", flush=True)
        results.setdefault(a.notebook, {})[str(seed)] = r
        results_file.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", 2)))  # 2, as the notebooks use; 1 beside other work
    main()
