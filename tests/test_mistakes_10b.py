"""Notebook 10b's mistake hunt: mistakes a learner makes while writing bits_per_char (one edit of the
notebook's own code each), every one met by the check after it with the sentence that names it; and
correct variants the check must pass. `python tests/test_mistakes_10b.py` prints what the check says."""
import sys

import pytest

from notebook_code import load

NB = "10b_tokens_or_characters"


def ns(edits=()):
    return load(NB, replace=edits, device="cpu")


bits = lambda nb: nb["check_bits_per_char"](nb["bits_per_char"])
RETURN = "return loss * n_tokens / n_chars / math.log(2)"

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
}

CORRECT = {  # correct code a learner may write instead: the check must pass it
    "bits_per_char with log2": ([(RETURN, "return math.log2(math.e) * loss * n_tokens / n_chars")], bits),
    "bits_per_char as bits per token over characters per token": ([(RETURN, "return (loss / math.log(2)) / (n_chars / n_tokens)")], bits),
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
