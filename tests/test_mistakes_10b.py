"""Notebook 10b's mistake hunt: mistakes a learner makes while writing bits_per_char, race_step and
train_for_seconds (one edit of the notebook's own code each), every one met by the check after it with the
sentence that names it; and correct variants the check must pass. `python tests/test_mistakes_10b.py` prints
what the check says."""
import sys

import pytest

from notebook_code import load

NB = "10b_tokens_or_characters"


def ns(edits=()):  # the race's globals at smoke-mode sizes, so that race_step and train_for_seconds run
    return load(NB, replace=edits, device="cpu", race_batch=8, race_lr=1e-3, n_evals=2, block_size=16, amp_dtype=None,
                sizes=dict(block_size=16, n_embd=32, n_head=2, n_layer=2, dropout=0.0))


bits = lambda nb: nb["check_bits_per_char"](nb["bits_per_char"])
steps = lambda nb: nb["check_race_step"](nb["race_step"])
seconds = lambda nb: nb["check_train_for_seconds"](nb["train_for_seconds"])
RETURN = "return loss * n_tokens / n_chars / math.log(2)"
STEP = "    optimizer.zero_grad(set_to_none=True)\n    loss.backward()\n    optimizer.step()\n    sync()"

MISTAKES = {  # name: (the learner's edits as (old, new) pairs, the check, what its sentence must say)
    "bits_per_char in nats": ([(RETURN, "return loss * n_tokens / n_chars")], bits, "the loss is in nats per token"),
    "bits_per_char with the ratio upside down": ([(RETURN, "return loss * n_chars / n_tokens / math.log(2)")], bits,
                                                 "the tokens and the characters are the wrong way round"),
    "bits_per_char per token": ([(RETURN, "return loss / math.log(2)")], bits,
                                "over 2048 tokens with 350 tokens for 1000 characters: it is a loss per token, not yet spread"),
    # found by a cold reader (dev/results/mistake_hunt/cold_reader_10.md, B1 and B5)
    "bits_per_char times ln 2": ([(RETURN, "return loss * n_tokens / n_chars * math.log(2)")], bits,
                                 "not the bits per character of a uniform guess"),
    "bits_per_char over the characters only": ([(RETURN, "return loss / n_chars / math.log(2)")], bits,
                                               "not the bits per character of a uniform guess"),
    "bits_per_char returns a string": ([(RETURN, 'return f"{loss * n_tokens / n_chars / math.log(2):.4f}"')], bits,
                                       "it must return a number"),
    "bits_per_char per token in nats": ([(RETURN, "return loss")], bits, "it is a loss per token, not yet spread"),
    # found by cold reader 3 (dev/results/mistake_hunt/hunt_10b.md, B7-B18, RS1-RS7 and TS1-TS6)
    "bits_per_char with a floor division": ([(RETURN, "return loss * n_tokens // n_chars / math.log(2)")], bits,
                                            "a floor division (//) drops the fraction"),
    "bits_per_char rounded": ([(RETURN, "return round(loss * n_tokens / n_chars / math.log(2), 3)")], bits, "it is rounded"),
    "bits_per_char as an int": ([(RETURN, "return int(loss * n_tokens / n_chars / math.log(2))")], bits, "it is rounded"),
    "bits_per_char over n_tokens - 1 predictions": ([(RETURN, "return loss * (n_tokens - 1) / n_chars / math.log(2)")], bits,
                                                    "one prediction fewer than the tokens"),
    "bits_per_char as a perplexity": ([(RETURN, "return math.exp(loss * n_tokens / n_chars)")], bits, "a perplexity"),
    "bits_per_char of the whole text": ([(RETURN, "return loss * n_tokens / math.log(2)")], bits,
                                        "the whole text's bits, not yet spread over its characters"),
    "race_step without zero_grad": ([(STEP, "    loss.backward()\n    optimizer.step()\n    sync()")], steps,
                                    "the old gradients are never zeroed"),
    "race_step never sets the lr": ([('    for group in optimizer.param_groups:\n        group["lr"] = lr\n', "")], steps,
                                    "stepped at the optimizer's own learning rate"),
    "race_step steps before backward": ([(STEP, STEP.replace("loss.backward()\n    optimizer.step()",
                                                             "optimizer.step()\n    loss.backward()"))], steps,
                                        "left every weight unchanged"),
    "race_step without backward": ([(STEP, STEP.replace("    loss.backward()\n", ""))], steps, "left every weight unchanged"),
    "race_step with x and y swapped": ([("    x, y = get_batch_on_device(", "    y, x = get_batch_on_device(")], steps,
                                       "the wrong way round"),
    "race_step at race_lr": ([('        group["lr"] = lr\n', '        group["lr"] = race_lr\n')], steps,
                             "stepped at race_lr, not at the lr it is given"),
    "race_step zeroes after backward": ([(STEP, "    loss.backward()\n    optimizer.zero_grad(set_to_none=True)\n"
                                                "    optimizer.step()\n    sync()")], steps, "left every weight unchanged"),
    "train_for_seconds without a seed": ([("    torch.manual_seed(seed)\n    model = RaceGPT", "    model = RaceGPT")],
                                         seconds, "two runs with the same seed start from different weights"),
    "train_for_seconds evaluates on the training ids": ([("split_loss(model, val_data, amp_dtype", "split_loss(model, data, amp_dtype")],
                                                         seconds, "its losses must be the validation split's"),
    "train_for_seconds starts the clock once": ([("    while len(log) < n_evals:\n        t0 = time.perf_counter()\n",
                                                  "    t0 = time.perf_counter()\n    while len(log) < n_evals:\n")],
                                                seconds, "the evaluations must stop the clock"),
    "train_for_seconds evaluates at every step after the first": (
        [("if spent >= seconds * (len(log) + 1) / n_evals:", "if spent >= seconds / n_evals:")], seconds, "not at once"),
    "train_for_seconds schedules by steps": ([("lr_at(int(1000 * spent / seconds), race_lr", "lr_at(steps, race_lr")],
                                             seconds, "the schedule over the seconds"),
    "train_for_seconds in eval mode": ([("    log, spent, steps = [], 0.0, 0\n", "    log, spent, steps = [], 0.0, 0\n    model.eval()\n")],
                                       seconds, "in eval mode"),
}

CORRECT = {  # correct code a learner may write instead: the check must pass it
    "bits_per_char with log2": ([(RETURN, "return math.log2(math.e) * loss * n_tokens / n_chars")], bits),
    "bits_per_char as bits per token over characters per token": ([(RETURN, "return (loss / math.log(2)) / (n_chars / n_tokens)")], bits),
    "race_step as notebook 05 writes it": ([], steps),
    "race_step zeroes after the step, its own cross-entropy": ([(STEP, "    loss = F.cross_entropy(model(x)[0].view(-1, "
        "model.lm_head.out_features), y.reshape(-1))\n    loss.backward()\n    optimizer.step()\n"
        "    optimizer.zero_grad()\n    sync()")], steps),
    "train_for_seconds as written": ([], seconds),
    "train_for_seconds on time.time": ([("        t0 = time.perf_counter()", "        t0 = time.time()"),
        ("spent + time.perf_counter() - t0", "spent + time.time() - t0")], seconds),
}


def said(edits, run_check):
    """What the check says about the notebook with edits: CheckFailed's sentence, a raw traceback, or SILENT."""
    try:
        result = run_check(ns(edits))
    except AssertionError as e:
        return f"{type(e).__name__}: {e}"
    except Exception as e:
        return f"TRACEBACK {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    return f"SILENT: {result}"


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_the_check_names_the_mistake(mistake):
    edits, run_check, sentence = MISTAKES[mistake]
    with pytest.raises(AssertionError) as caught:
        run_check(ns(edits))
    message = str(caught.value)
    assert type(caught.value).__name__ == "CheckFailed" and sentence in message and "\n" not in message, message


@pytest.mark.parametrize("variant", list(CORRECT))
def test_the_check_accepts_a_correct_variant(variant):
    edits, run_check = CORRECT[variant]
    assert "passed" in run_check(ns(edits))


def test_the_check_does_not_give_the_answer_away():
    """Its sentence names the property (a uniform guess, nats per token), not the formula or the number wanted."""
    message = said([(RETURN, "return loss * n_tokens / n_chars")], bits)
    assert "ln 2" not in message and "log(2)" not in message and "6.02" not in message, message


if __name__ == "__main__":  # the table of dev/results/mistake_hunt/hunt_10b.md: mistake | what the check says
    for name, (edits, run_check, *_) in {**MISTAKES, **{f"CORRECT {k}": v for k, v in CORRECT.items()}}.items():
        print(f"| {name} | {said(edits, run_check)[:200].replace('|', '/')} |")
        sys.stdout.flush()
