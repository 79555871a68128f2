"""Notebook 11's own code: the checks pass on the notebook's pieces, held-out problems never reach training, the
one-class model is notebook 05's, a grown model keeps the base model's logits, and bad flags are one line."""
import re

import pytest
import torch

from notebook_code import NOTEBOOKS, load
from script_runner import one_line_error, run_script, smoke_env

SCRIPT = NOTEBOOKS / "11_chat_model.py"
KEEP = ("vocab", "stoi", "itos", "encode", "decode", "special_ids")
CHECKS = (("check_grow_vocab", "grow_vocab"), ("check_render", "render"), ("check_sample_replies", "sample_replies"),
          ("check_held_out", "training_conversations"), ("check_sft_batch", "sft_batch"),
          ("check_held_out_accuracy", "held_out_accuracy"), ("check_gpt", "GPT"), ("check_finetune", "finetune"))


def notebook(shakespeare, name="11_chat_model", **replace):
    chars = sorted(set(shakespeare))
    data = torch.tensor([chars.index(c) for c in shakespeare[:200_000]])
    return load(name, keep=KEEP, device="cpu", chars=chars, train_data=data[:180_000], val_data=data[180_000:], **replace)


@pytest.fixture(scope="module")
def nb(shakespeare):
    return notebook(shakespeare)


def test_every_check_passes_on_the_notebooks_own_pieces(nb):
    for check, piece in CHECKS:
        assert "passed" in nb[check](nb[piece]), check


def test_held_out_problems_never_reach_training(nb):
    rng = torch.Generator().manual_seed(3)
    drawn = torch.tensor(nb["training_problems"](50_000, rng))
    assert len(drawn) == 50_000 and not nb["IS_HELD_OUT"][drawn].any()
    assert int(nb["IS_HELD_OUT"].sum()) == len(nb["HELD_OUT"]) == 500
    for p in nb["HELD_OUT"][:50].tolist():  # every phrasing of a held-out problem reads back to it
        for phrasing in range(4):
            assert nb["read_problem"](nb["problem"](p, phrasing)[0]) == p


def test_the_one_class_gpt_is_notebook_05s_fast_gpt(nb):
    """The same weights give the same logits as a reference written from torch's own layers."""
    torch.manual_seed(0)
    config = nb["GPTConfig"](vocab_size=20, block_size=12, n_embd=24, n_head=3, n_layer=2, dropout=0.0)
    model, idx = nb["GPT"](config).eval(), torch.randint(0, 20, (2, 12))
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x = model.token_embedding_table(idx) + model.position_embedding_table(torch.arange(12))
    for block in model.blocks:
        h = block.ln1(x)
        q, k, v = (t.view(2, 12, 3, 8).transpose(1, 2) for t in block.qkv(h).split(24, dim=2))
        wei = (q @ k.transpose(-2, -1) / 8 ** 0.5).masked_fill(torch.ones(12, 12).tril() == 0, float("-inf")).softmax(-1)
        x = x + block.proj((wei @ v).transpose(1, 2).reshape(2, 12, 24))
        x = x + block.ffwd[2](torch.relu(block.ffwd[0](block.ln2(x))))
    assert torch.allclose(model(idx)[0], model.lm_head(model.ln_f(x)), atol=1e-4)


def test_a_grown_model_keeps_the_base_models_logits_and_sampling_stops_at_end(nb):
    torch.manual_seed(0)
    base = nb["GPT"](nb["GPTConfig"](vocab_size=65, block_size=16, n_embd=32, n_head=2, n_layer=1, dropout=0.0))
    grown = nb["grow_vocab"](base, len(nb["vocab"]))
    idx = torch.randint(0, 65, (2, 16))
    assert torch.allclose(grown(idx)[0][..., :65], base(idx)[0], atol=1e-5)
    prompts = [nb["render"]([("user", "what is 1 + 2?")])[0], nb["render"]([("user", "hi")])[0]]
    for reply in nb["sample_replies"](grown, prompts, 9, 1.0):
        assert len(reply) <= 9 and (nb["END"] not in reply or reply.index(nb["END"]) == len(reply) - 1)


def finetune_cell():
    """The visible cell that runs finetuning (the learner meets its mistakes there)."""
    cells = re.split(r"(?m)^# %%.*\n", SCRIPT.read_text(encoding="utf-8"))
    return next(c for c in cells if "sfts[seed] = attempt(" in c)


def test_the_finetuning_cell_runs_on_a_tiny_model(nb):
    import argparse
    torch.manual_seed(0)
    base = nb["GPT"](nb["GPTConfig"](vocab_size=65, block_size=64, n_embd=16, n_head=2, n_layer=1, dropout=0.0))
    ns = {**nb, "base": base, "S": dict(sft=(3, 8, 1e-3), unmasked_steps=2), "args": argparse.Namespace(seed=0), "seconds": {}}
    exec(finetune_cell(), ns)
    assert set(ns["sfts"]) == {0, 1} and ns["sft"] is ns["sfts"][0] and "sft, another seed" in ns["seconds"]
    assert not torch.equal(ns["sfts"][0].lm_head.weight, ns["sfts"][1].lm_head.weight)


BAD_FLAGS = [
    (["--seed", "-3"], "--seed must be between 0 and 2**63 - 1"),
    (["--device", "tpu"], "argument --device: invalid choice: 'tpu'"),
    (["--chat"], "unrecognized arguments: --chat"),
]


@pytest.mark.parametrize("argv,expected", BAD_FLAGS, ids=[" ".join(a) for a, _ in BAD_FLAGS])
def test_bad_flags_are_one_line(argv, expected):
    assert expected in one_line_error(run_script(SCRIPT, *argv, cwd=NOTEBOOKS, env=smoke_env()))
