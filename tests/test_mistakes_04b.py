"""Notebook 04b's checks catch mistakes a learner makes in its experiments: each mistake is made in the
notebook's own source, and the check after that piece must fail with a sentence naming the property and
the likely cause. Correct variants of the experiments must pass."""
import pytest
import torch

from notebook_code import load

NAME = "04b_dropout_and_learning_rate"
torch.manual_seed(0)
IDS = torch.randint(0, 11, (3000,))
TEXT = "".join("abcdefghij\n"[i] for i in IDS.tolist())
TINY = dict(block_size=8, n_embd=16, n_head=2, n_layer=1)


def ns_04b(replace=()):
    ns = load(NAME, replace=replace)
    ns.update(chars=sorted(set(TEXT)), train_data=IDS[:2500], val_data=IDS[2500:], device="cpu", block_size=8)
    return ns


def dropout_check(ns):
    ns["block_size"] = 8
    return ns["check_comparison"](lambda rates: ns["dropout_pair"](TEXT, 4, rates, every=2, sizes=TINY), "dropout_pair",
                                  (0.0, 1e-12), (0.0, 0.5), every=2)


def lr_check(ns):
    ns["block_size"] = 8
    run = lambda rates: ns["lr_grid"](4, 2, {"tiny": dict(n_embd=16, n_head=2, n_layer=1)}, rates)
    return ns["check_comparison"](run, "lr_grid", (1e-3, 1e-3 + 1e-12), (1e-3, 1e-2), every=2, trained_on=ns["train_data"])


def split_loss_check(ns):
    ns["block_size"] = 8
    torch.manual_seed(0)
    probe = ns["GPTLanguageModel"](ns["GPTConfig"](vocab_size=11, dropout=0.5, **TINY))
    return ns["check_evaluation"](ns["split_loss"], probe, IDS[:100])


def split_check(ns):
    encode, _ = ns["encoder_for"](sorted(set(TEXT)))
    data = torch.tensor(encode(TEXT))
    return ns["check_split"](TEXT, encode, *ns["split"](data))


SPLIT = '''
def split(data):
    n = int(0.9 * len(data))
    return data[:n], data[n:]
'''

CHECKS = {"dropout": dropout_check, "lr": lr_check, "split_loss": split_loss_check, "split": split_check}

MISTAKES_04B = {  # name: ([(old, new)] in the notebook's source, the check that must catch it, words of its sentence)
    "dropout_pair seeded once, outside the loop": (
        [("    T, curves = sizes[\"block_size\"], {}\n    for rate in rates:\n        torch.manual_seed(seed)\n",
          "    T, curves = sizes[\"block_size\"], {}\n    torch.manual_seed(seed)\n    for rate in rates:\n")], "dropout", "the runs do not start alike"),
    "dropout_pair: one batch generator for every run": (
        [("    T, curves = sizes[\"block_size\"], {}\n", "    T, curves = sizes[\"block_size\"], {}\n    shared = torch.Generator().manual_seed(seed)\n"),
         ("torch.optim.AdamW(net.parameters(), lr=1e-3), torch.Generator().manual_seed(seed), []", "torch.optim.AdamW(net.parameters(), lr=1e-3), shared, []")],
        "dropout", "the runs do not start alike"),
    "dropout_pair: the rate never reaches the model": (
        [('**{**sizes, "dropout": rate}', '**{**sizes, "dropout": 0.0}')], "dropout", "the setting never reaches the model"),
    "dropout_pair: scored every 50 steps whatever every says": (
        [("            if it % every == 0:\n                curves[rate]", "            if it % 50 == 0:\n                curves[rate]")],
        "dropout", "every one scored at least once"),
    "dropout_pair: val scored on the training split": (
        [("for s in ('train', 'val'))))", "for s in ('train', 'train'))))")], "dropout", "the validation loss equals the training loss"),
    "dropout_pair: scored at the wrong steps": (
        [("            if it % every == 0:\n                curves[rate]", "            if it % every == 1:\n                curves[rate]")],
        "dropout", "not every 2 steps"),
    "dropout_pair: chunks concatenated, not stacked": (
        [("chunks = torch.stack([splits['train'][i:i + T + 1] for i in ix]).to(device)", "chunks = torch.cat([splits['train'][i:i + T + 1] for i in ix]).to(device)")],
        "dropout", "dropout_pair failed on a short run: IndexError"),
    "dropout_pair: only the first rate trained": (
        [("    for rate in rates:\n        torch.manual_seed(seed)", "    for rate in rates[:1]:\n        torch.manual_seed(seed)")],
        "dropout", "one curve of (step, loss, ...) tuples per setting"),
    "lr_grid seeded once per size": (
        [("        for lr in rates:\n            torch.manual_seed(seed)\n", "        torch.manual_seed(seed)\n        for lr in rates:\n")],
        "lr", "the runs do not start alike"),
    "lr_grid: one batch generator for every run": (
        [("    curves, T, held_out = {}, 64, val_data[:20_000]\n", "    curves, T, held_out = {}, 64, val_data[:20_000]\n    shared = torch.Generator().manual_seed(seed)\n"),
         ("torch.optim.AdamW(net.parameters(), lr=lr), torch.Generator().manual_seed(seed), []", "torch.optim.AdamW(net.parameters(), lr=lr), shared, []")],
        "lr", "the runs do not start alike"),
    "lr_grid: AdamW at its default rate": (
        [("opt, batches, curves[name, lr] = torch.optim.AdamW(net.parameters(), lr=lr)", "opt, batches, curves[name, lr] = torch.optim.AdamW(net.parameters())")],
        "lr", "the setting never reaches the model or its optimizer"),
    "lr_grid: scored before the step": (
        [("                train_step(net, opt, chunks[:, :-1], chunks[:, 1:])\n                if it % every == 0:\n                    curves[name, lr].append((it, split_loss(net, held_out)))",
          "                if (it - 1) % every == 0:\n                    curves[name, lr].append((it, split_loss(net, held_out)))\n                train_step(net, opt, chunks[:, :-1], chunks[:, 1:])")],
        "lr", "not every 2 steps"),
    "lr_grid: steps counted from 0": (
        [("            for it in range(1, steps + 1):\n                ix = torch.randint(len(train_data) - T, (16,)", "            for it in range(steps):\n                ix = torch.randint(len(train_data) - T, (16,)")],
        "lr", "counting steps from 1"),
    "dropout_pair: targets the same chunk as the inputs": (
        [("train_step(net, opt, chunks[:, :-1], chunks[:, 1:])\n            if it % every == 0:\n                curves[rate]",
          "train_step(net, opt, chunks[:, :-1], chunks[:, :-1])\n            if it % every == 0:\n                curves[rate]")],
        "dropout", "targets that are not its inputs one step on"),
    "lr_grid: targets shifted by two": (
        [("                chunks = torch.stack([train_data[i:i + T + 1] for i in ix]).to(device)  # (B, T+1)\n                train_step(net, opt, chunks[:, :-1], chunks[:, 1:])",
          "                chunks = torch.stack([train_data[i:i + T + 2] for i in ix]).to(device)  # (B, T+2)\n                train_step(net, opt, chunks[:, :-2], chunks[:, 2:])")],
        "lr", "targets that are not its inputs one step on"),
    "lr_grid: held-out text from the training split": (
        [("held_out = {}, 64, val_data[:20_000]", "held_out = {}, 64, train_data[:20_000]")], "lr", "held-out loss on text of the training split"),
    "lr_grid: held-out text from the end of the training split": (
        [("held_out = {}, 64, val_data[:20_000]", "held_out = {}, 64, train_data[-20_000:]")], "lr", "held-out loss on text of the training split"),
    "split_loss without eval()": ([("    model.eval()\n    n = (len(data) - 1)", "    n = (len(data) - 1)")], "split_loss", "ran the model in training mode"),
    "split_loss leaves eval mode on": ([("    model.train()\n    return total / len(x)", "    return total / len(x)")], "split_loss", "left the model in eval mode"),
    "split_loss with gradients": ([("@torch.no_grad()\ndef split_loss", "def split_loss")], "split_loss", "with gradients on"),
    "the split at 80%": ([(SPLIT, SPLIT.replace("0.9", "0.8"))], "split", "not 90%"),
    "the split shuffled": ([(SPLIT, SPLIT.replace("    n = int", "    data = data[torch.randperm(len(data))]\n    n = int"))], "split", "not the text's head and tail"),
}

CORRECT_VARIANTS = {
    "dropout_pair with its generator made first": (
        [("        torch.manual_seed(seed)\n        net = GPTLanguageModel(GPTConfig(vocab_size=len(small_chars)",
          "        batches = torch.Generator().manual_seed(seed)\n        torch.manual_seed(seed)\n        net = GPTLanguageModel(GPTConfig(vocab_size=len(small_chars)"),
         ("torch.optim.AdamW(net.parameters(), lr=1e-3), torch.Generator().manual_seed(seed), []", "torch.optim.AdamW(net.parameters(), lr=1e-3), batches, []")], "dropout"),
    "lr_grid with the loops swapped": ([("    for name, dims in sizes.items():\n        for lr in rates:", "    for lr in rates:\n        for name, dims in sizes.items():")], "lr"),
    "split_loss restoring the mode it found": ([("    model.eval()\n    n = (len(data) - 1)", "    was = model.training\n    model.eval()\n    n = (len(data) - 1)"),
                                                ("    model.train()\n    return total / len(x)", "    model.train(was)\n    return total / len(x)")], "split_loss"),
}


def make(replace=()):
    ns = ns_04b([(a, b) for a, b in replace if a != SPLIT])
    ns["split"] = _split(dict(replace).get(SPLIT, SPLIT))
    return ns


def _split(source):
    namespace = {"torch": torch}
    exec(source, namespace)
    return namespace["split"]


@pytest.mark.parametrize("name", list(MISTAKES_04B))
def test_the_check_after_the_experiment_names_the_mistake(name):
    edit, check_name, sentence = MISTAKES_04B[name]
    assert "passed" in CHECKS[check_name](make())
    with pytest.raises(AssertionError) as caught:
        CHECKS[check_name](make(edit))
    assert type(caught.value).__name__ == "CheckFailed" and sentence in str(caught.value), str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("name", list(CORRECT_VARIANTS))
def test_a_correct_variant_passes(name):
    edit, check_name = CORRECT_VARIANTS[name]
    assert "passed" in CHECKS[check_name](make(edit))


def test_the_hunt_is_at_least_fifteen_mistakes():
    assert len(MISTAKES_04B) >= 15
