"""Notebook 11's mistake hunt: mistakes a learner makes in the chat model's pieces (one edit of the notebook's own
code), each met by the check after the piece with the sentence that names it; and correct variants that must pass.
The RL pieces' mistakes are in test_mistakes_11b.py."""
import argparse

import pytest
import torch

from notebook_code import load
from test_11_chat_model import KEEP, finetune_cell

NB = "11_chat_model"
ROWS = "                p[:old] = q  # (old, ...) rows of the old tokens; rows old.. stay fresh\n"
OTHERS = "            else:\n                p.copy_(q)\n"
USER_TURN = "part, writes = [USER] + [stoi[c] for c in content] + [ASSISTANT], 0"
BOT_TURN = "part, writes = [stoi[c] for c in content] + [END], 1"
REPLY = "replies[i] = row[:row.index(stop) + 1] if stop in row else row"
TARGETS = "y[i, :len(ids) - 1] = ids[1:].masked_fill(mask[1:] == 0, -1) if masked else ids[1:]  # y[t] is token t + 1"
HELD = "return torch.randperm(N_PROBLEMS, generator=torch.Generator().manual_seed(0))[:count]"
RIGHT = "return reply[-1:] == [END if stop is None else stop] and decode(reply[:-1]) == problem(p)[1]"
LOSS = "loss = F.cross_entropy(logits.flatten(0, 1), y.to(device).flatten(), ignore_index=-1)"

checked = lambda check, piece: lambda ns: ns[check](ns[piece])
grow, render = checked("check_grow_vocab", "grow_vocab"), checked("check_render", "render")
sample, held = checked("check_sample_replies", "sample_replies"), checked("check_held_out", "training_conversations")
sft, accuracy = checked("check_sft_batch", "sft_batch"), checked("check_held_out_accuracy", "held_out_accuracy")
tune, gpt = checked("check_finetune", "finetune"), lambda ns: ns["check_gpt"](ns["GPT"])
ACC = "replies = sample_replies(model, [q for q in prompts for _ in range(samples)], MAX_ANSWER, 1.0, stop)"
HEADS = "q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))"
JOIN = "x = x + self.dropout(self.proj(y.transpose(1, 2).contiguous().view(B, T, C)))"
COPY = "model, rng = copy.deepcopy(model).train(), torch.Generator().manual_seed(seed)"
OPT = "    optimizer = configure_optimizer(model, peak_lr)"


def finetuning_cell(ns):
    """The visible finetuning cell, run on a tiny base model."""
    torch.manual_seed(0)
    base = ns["GPT"](ns["GPTConfig"](vocab_size=65, block_size=64, n_embd=16, n_head=2, n_layer=1, dropout=0.0))
    exec(finetune_cell(), {**ns, "base": base, "S": dict(sft=(3, 8, 1e-3), unmasked_steps=2), "args": argparse.Namespace(seed=0),
                           "seconds": {}})


MISTAKES = {  # name: (the learner's edits as (old, new) pairs, the check, what its sentence must say)
    "old rows copied to the end": ([(ROWS, ROWS.replace("p[:old]", "p[-old:]"))], grow,
                                   "the embedding table's, the head's weight, the head's bias old rows are not rows 0..old-1"),
    "only the embedding table's rows kept": ([(ROWS, ROWS.replace("p[:old] = q", "p[:old] = q if 'emb' in name else p[:old]"))],
                                             grow, "the head's weight, the head's bias old rows are not rows 0..old-1"),
    "the blocks left fresh": ([(OTHERS, "            else:\n                pass\n")], grow, "copy every other weight"),
    "the new rows all zero": ([(ROWS, ROWS + "                p[old:] = 0\n")], grow, "two of the new embedding rows are equal"),
    "the model returned ungrown": ([("    return grown\n\n# %% jupyter", "    return model\n\n# %% jupyter")], grow, "the grown tables have shapes ((11, 16)"),
    "the user's turn learned": ([(USER_TURN, USER_TURN.replace("], 0", "], 1"))], render, "the mask is 1 on '<|user|>'"),
    "<|assistant|> learned": ([(USER_TURN, "part, writes = [USER] + [stoi[c] for c in content], 0"),
                               (BOT_TURN, "part, writes = [ASSISTANT] + [stoi[c] for c in content] + [END], 1")],
                              render, "the mask is 1 on '<|assistant|>'"),
    "no <|end|> written": ([(BOT_TURN, "part, writes = [stoi[c] for c in content], 1")], render, "render writes"),
    "the reply without its <|end|>": ([(REPLY, REPLY.replace("row.index(stop) + 1", "row.index(stop)"))], sample,
                                      "cut just after the first <|end|>"),
    "the prompt in the reply": ([("zip(rows, idx[:, length:].tolist())", "zip(rows, idx.tolist())")], sample,
                                "each reply is what was written after its own prompt"),
    "replies given to the wrong prompts": ([("zip(rows, idx[:, length:].tolist())", "zip(range(len(rows)), idx[:, length:].tolist())")],
                                           sample, "in the order of the prompts"),
    "the model left in eval mode": ([("    model.train(was_training)\n    return replies", "    return replies")], sample,
                                    "leaves the model in eval() mode"),
    "the greedy token without keepdim": ([("return logits.argmax(-1, keepdim=True)", "return logits.argmax(-1)")], sample,
                                         """sample_replies gives [["'", '<|end|>'], ["'", '<|end|>']"""),
    "held-out problems drawn": ([("return drawn[~IS_HELD_OUT[drawn]][:count].tolist()", "return drawn[:count].tolist()")], held,
                                "training questions are held-out problems"),
    "subtraction the wrong way round": ([('str(a + b if op == "+" else a - b)', 'str(a + b if op == "+" else b - a)')], held,
                                        "check the arithmetic"),
    "the mask shifted by one": ([(TARGETS, TARGETS.replace("mask[1:] == 0", "mask[:-1] == 0"))], sft,
                                "the mask is shifted by one against the targets"),
    "the user's tokens counted": ([(TARGETS, TARGETS.replace(".masked_fill(mask[1:] == 0, -1) if masked else ids[1:]", ""))], sft,
                                  "the user's tokens are counted in the loss"),
    "<|end|> left out of the loss": ([(TARGETS, TARGETS.replace("mask[1:] == 0", "(mask[1:] == 0) | (ids[1:] == END)"))], sft,
                                     "<|end|> is left out of the loss, so the model never learns to stop"),
    "the padding learned": ([("y = torch.full((len(rows), T), -1, dtype=torch.long)   # (B, T) padding is never learned",
                              "y = torch.full((len(rows), T), END, dtype=torch.long)")], sft, "learns from the padding"),
    "x not shifted": ([("        x[i, :len(ids) - 1] = ids[:-1]\n        y[i, :len(ids) - 1]", "        x[i, :len(ids) - 1] = ids[1:]\n"
                        "        y[i, :len(ids) - 1]")], sft, "row 0 of x is not the conversation's ids without the last"),
    # found by a cold reader (dev/results/mistake_hunt/hunt_11.md)
    "config.vocab_size left stale": ([("    return grown\n\n# %% jupyter",
                                       "    grown.config = model.config\n    return grown\n\n# %% jupyter")],
                                     grow, "config.vocab_size is 11, not 15"),
    "the stop token ignored": ([("stop = END if stop is None else stop", "stop = END")], sample, "stop at the stop token asked for"),
    "always back to train()": ([("    model.train(was_training)\n    return replies", "    model.train()\n    return replies")], sample,
                               "in eval() mode in train() mode"),
    "sampled in train mode": ([("    model.eval()\n    for i, prompt", "    for i, prompt")], sample, "runs the model in train() mode"),
    "the temperature ignored": ([("F.softmax(logits / temperature, dim=-1)", "F.softmax(logits, dim=-1)")], sample,
                                "divide the logits by the temperature"),
    "the context not cropped": ([("model(idx[:, -model.config.block_size:])", "model(idx)")], sample, "more than its block_size"),
    "the greedy token over the batch": ([("logits.argmax(-1, keepdim=True)", "logits.argmax(0, keepdim=True)")], sample,
                                        "a next token of shape (N, 1)"),
    "a phrasing never trained": ([("torch.randint(4, (1,), generator=rng)", "torch.randint(3, (1,), generator=rng)")], held,
                                 "come in 6 of the 8 phrasings"),
    "more problems than asked": ([("return drawn[~IS_HELD_OUT[drawn]][:count].tolist()", "return drawn[~IS_HELD_OUT[drawn]].tolist()")],
                                 held, "not 64 and 48"),
    "passages from the validation split": ([("decode(train_data[i:i + 24].tolist())), (\"assistant\", decode(train_data[i + 24:i + 48]",
                                             "decode(val_data[i % 5000:i % 5000 + 24].tolist())), (\"assistant\", "
                                             "decode(val_data[i % 5000 + 24:i % 5000 + 48]")], held, "is not 24 characters from train_data"),
    # the cold reader's open items (H8, X1, X2), fixed in the S3 session
    "only additions held out": ([(HELD, HELD + " // 2 * 2")], held, "the held-out problems repeat, or are all of one operation"),
    "ignore_index dropped in finetuning": ([(LOSS, LOSS.replace(", ignore_index=-1", ""))], finetuning_cell,
                                           "finetune(chat_base, ...) with seed 0 raised IndexError"),
    "pass@8 as all eight right": ([("pass8=right.any(1)", "pass8=right.all(1)")], accuracy, "not about 94%: pass@8 is the share of problems"),
    "an answer followed by anything": ([(RIGHT, "return decode(reply).startswith(problem(p)[1])")], accuracy,
                                       "an answer counts only when <|end|> follows it"),
    "exact match sampled": ([("zip(sample_replies(model, prompts, MAX_ANSWER, 0, stop), ps)",
                              "zip(sample_replies(model, prompts, MAX_ANSWER, 1.0, stop), ps)")], accuracy,
                            "exact match is the answer written greedily"),
    "pass@1 as pass@8": ([("pass1=right.float().mean().item()", "pass1=right.any(1).float().mean().item()")], accuracy,
                         "that model scores pass@1"),
    # the cold reader of session 3 (F2-F12): the finetuning loop's check
    "y not flattened": ([(LOSS, LOSS.replace("y.to(device).flatten()", "y.to(device)"))], tune,
                        "finetune(model, 2, 8, 1e-3, masked=True) raised ValueError"),
    "-1 targets clamped to a token": ([(LOSS, "loss = F.cross_entropy(logits.flatten(0, 1), y.to(device).flatten().clamp(min=0))")], tune,
                                      "their -1 must be skipped by the loss"),
    "the base model finetuned in place": ([(COPY, COPY.replace("copy.deepcopy(model).train()", "model.train()"))], tune,
                                          "finetune changed the model it was given"),
    "masked not passed on": ([("0.0 if text_turn else 1.0), masked)", "0.0 if text_turn else 1.0))")], tune,
                             "pass masked on to sft_batch"),
    "gradients never zeroed": ([("        optimizer.zero_grad(set_to_none=True)\n        loss.backward()\n        optimizer.step()\n    return model\n\n# %% jupyter",
                                 "        loss.backward()\n        optimizer.step()\n    return model\n\n# %% jupyter")], tune, "zero the gradients"),
    "the optimizer on the model before the copy": ([("    " + COPY + "\n" + OPT, OPT + "\n    " + COPY)], tune,
                                                   "the optimizer must hold the parameters of the copy"),
    "the loss against the inputs": ([(LOSS, LOSS.replace("y.to(device)", "x.to(device)"))], tune, "compares the logits with the inputs x"),
    "problem numbers past N_PROBLEMS": ([('(a, b), op = divmod(p // 2, 10**DIGITS), "+-"[p % 2]', '(a, b), op = divmod(p, 10**DIGITS), "+-"[p % 2]')],
                                         held, "asks about a number of more than 2 digits"),
    # the cold reader of session 3 (H, P): wrong causes and silent ones
    "samples drawn greedily": ([(ACC, ACC.replace("MAX_ANSWER, 1.0, stop)", "MAX_ANSWER, 0, stop)"))], accuracy,
                               "the samples are all its greedy answer"),
    "replies sample-major, problems problem-major": ([(ACC, ACC.replace("[q for q in prompts for _ in range(samples)]",
                                                                         "[q for _ in range(samples) for q in prompts]"))], accuracy,
                                                     "paired with other problems than they answer"),
    "exact match over every sample": ([("ps)) / len(ps)\n", "ps)) / (len(ps) * samples)\n")], accuracy,
                                      "exact match is a share of the problems"),
    "the prompt ends with an empty assistant turn": ([('else render([("user", question)])[0]',
                                                        'else render([("user", question), ("assistant", "")])[0]')], accuracy,
                                                       "a prompt ends with <|assistant|>"),
    "rows of problems mixed": ([(ACC, ACC.replace("[q for q in prompts for _ in range(samples)]", "[q for _ in range(samples) for q in prompts]")),
                                ("zip(replies, [p for p in ps for _ in range(samples)])", "zip(replies, [p for _ in range(samples) for p in ps])")],
                               accuracy, "a row of right must hold one problem's own samples"),
    "the filter inverted": ([("return drawn[~IS_HELD_OUT[drawn]][:count].tolist()", "return drawn[IS_HELD_OUT[drawn]][:count].tolist()")],
                            held, "training_problems gives only held-out problems"),
    "IS_HELD_OUT from half of HELD_OUT": ([("index_fill(0, HELD_OUT, True)", "index_fill(0, HELD_OUT[:250], True)")], held,
                                          "IS_HELD_OUT marks 250 problems, not the 500"),
    "share ignored": ([("n_math = round(count * share)", "n_math = round(count * 0.75)")], held, "share is the fraction"),
    "a fresh generator in every batch": ([("n_math = round(count * share)", "n_math = round(count * share)\n    rng = torch.Generator().manual_seed(0)")],
                                         held, "two batches drawn one after the other are the same"),
    # the cold reader of session 3 (B1-B11): the folded model's check
    "attention not causal": ([("is_causal=True, dropout_p", "is_causal=False, dropout_p")], gpt, "so the model sees the future"),
    "heads joined without the transpose back": ([(JOIN, JOIN.replace("y.transpose(1, 2).contiguous()", "y.contiguous()"))], gpt,
                                                 "so the model sees the future"),
    "the attention's residual dropped": ([(JOIN, JOIN.replace("x = x + self", "x = self"))], gpt, "look at the residual"),
    "ln_f left out": ([("logits = self.lm_head(self.ln_f(x))", "logits = self.lm_head(x)")], gpt, "(ln_f) must come before the head"),
    "heads viewed without the transpose": ([(HEADS, "q, k, v = (t.view(B, self.n_head, T, C // self.n_head) for t in (q, k, v))")], gpt,
                                           "model(idx, targets) raised RuntimeError"),
    "positions from the batch size": ([("pos = torch.arange(idx.shape[1], device=idx.device)", "pos = torch.arange(idx.shape[0], device=idx.device)")],
                                      gpt, "model(idx, targets) raised RuntimeError"),
    "the loss not flattened": ([("F.cross_entropy(logits.flatten(0, 1), targets.flatten())", "F.cross_entropy(logits, targets)")], gpt,
                               "model(idx, targets) raised RuntimeError"),
    "q, k, v split over time": ([("q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)", "q, k, v = self.qkv(self.ln1(x)).split(C, dim=1)")], gpt,
                                "model(idx, targets) raised ValueError"),
    # the cold reader of session 3, left open then (H10, H11, P10; dev/results/mistake_hunt/cold_11_s3.md): fixed in session 4
    "the greedy answers not stopped at the newline (H10)": ([("sample_replies(model, prompts, MAX_ANSWER, 0, stop), ps)",
                                                              "sample_replies(model, prompts, MAX_ANSWER, 0), ps)")], accuracy,
                                                            "asked in plain text (few_shot=True, as the base model is), scores 0%, 100%, 100%"),
    "exact match judged without the stop (H11)": ([("exact = sum(is_right(r, p, stop) for", "exact = sum(is_right(r, p) for")], accuracy,
                                                  "there an answer ends with a newline, not <|end|>"),
    "the samples not stopped at the newline": ([(ACC, ACC.replace("MAX_ANSWER, 1.0, stop)", "MAX_ANSWER, 1.0)"))], accuracy,
                                               "scores 100%, 0%, 0%: there an answer ends with a newline"),
    "pass@k judged without the stop": ([("right = torch.tensor([is_right(r, p, stop) for", "right = torch.tensor([is_right(r, p) for")], accuracy,
                                       "scores 100%, 0%, 0%: there an answer ends with a newline"),
    "held-out problems drawn unseeded (P10)": ([(HELD, "return torch.randperm(N_PROBLEMS)[:count]")], held,
                                               "held_out_problems() draws other problems at every call: draw them with a generator of a fixed seed"),
    "a passage answered with 23 characters (P18)": ([('("assistant", decode(train_data[i + 24:i + 48].tolist()))]\n',
                                                      '("assistant", decode(train_data[i + 24:i + 47].tolist()))]\n')], held,
                                                    "is not 24 characters from train_data and the 24 after them"),
    "each problem always in one phrasing (P7)": ([("problem(p, torch.randint(4, (1,), generator=rng).item())", "problem(p)")], held,
                                                 "came in one phrasing every time"),
    "HELD_OUT drawn afresh, unseeded (P10 as the cold reader wrote it)": ([("HELD_OUT = held_out_problems()", "HELD_OUT = torch.randperm(N_PROBLEMS)[:500]")],
                                                                          held, "HELD_OUT is not the problems held_out_problems() draws"),
}

VARIANTS = {  # correct ways to write a piece: each check must pass
    "rows that go on writing <|end|> unmasked": ([("next_id.masked_fill(done[:, None], stop)", "next_id")], sample),
    "an extra padding column in sft_batch": ([("    T = max(len(ids) for ids, _ in rows) - 1\n    x = torch.full",
                                                "    T = max(len(ids) for ids, _ in rows)\n    x = torch.full")], sft),
    "softmax exponentiated by hand in sampling": ([("F.softmax(logits / temperature, dim=-1), 1)", "(logits / temperature).exp(), 1)")],
                                                  sample),
    "finetune as written": ([], tune),
    "the model as written": ([], gpt),
    "k, q, v in that order": ([("q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)", "k, q, v = self.qkv(self.ln1(x)).split(C, dim=2)")], gpt),
    "the loss on (B, V, T)": ([(LOSS, "loss = F.cross_entropy(logits.transpose(1, 2), y.to(device), ignore_index=-1)")], tune),
    "a masked mean by hand": ([(LOSS, "loss = (F.cross_entropy(logits.flatten(0, 1), y.to(device).flatten().clamp(min=0), reduction='none')"
                                      " * (y.to(device).flatten() != -1)).sum() / (y != -1).sum()")], tune),
    "zero_grad after the step": ([("        optimizer.zero_grad(set_to_none=True)\n        loss.backward()\n        optimizer.step()\n    return model\n\n# %% jupyter",
                                   "        loss.backward()\n        optimizer.step()\n        optimizer.zero_grad()\n    return model\n\n# %% jupyter")], tune),
    "pass@1 from each problem's first sample": ([("pass1=right.float().mean().item()", "pass1=right[:, 0].float().mean().item()")],
                                                accuracy),
    "the answer compared as text with <|end|>": ([(RIGHT, "return decode(reply) == problem(p)[1] + itos[END if stop is None else stop]")],
                                                 accuracy),
    "held-out problems drawn with another seed": ([(HELD, HELD.replace("manual_seed(0)", "manual_seed(7)"))], held),
    "held-out problems by random.sample": ([(HELD, "return torch.tensor(random.Random(0).sample(range(N_PROBLEMS), count))")], held),
}


@pytest.fixture(scope="module")
def chars(shakespeare):
    return sorted(set(shakespeare))


@pytest.fixture(scope="module")
def data(chars, shakespeare):
    """The first 100,000 characters as ids, made once for the module (a notebook's code never changes them)."""
    return torch.tensor([chars.index(c) for c in shakespeare[:100_000]])


def loaded(chars, data, edits):
    return load(NB, keep=KEEP, replace=edits, device="cpu", chars=chars, train_data=data[:90_000], val_data=data[90_000:])


@pytest.mark.parametrize("name", list(MISTAKES))
def test_the_check_names_the_mistake(name, chars, data):
    edits, run, sentence = MISTAKES[name]
    ns = loaded(chars, data, edits)
    with pytest.raises(ns["CheckFailed"]) as caught:
        run(ns)
    assert sentence in str(caught.value), str(caught.value)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_a_correct_variant_passes(name, chars, data):
    edits, run = VARIANTS[name]
    assert "passed" in run(loaded(chars, data, edits))
