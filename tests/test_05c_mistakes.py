"""Notebook 05c's checks meet a learner's own mistakes (moved here from tests/test_mistakes_05.py with the
race): each mistake below is one edit to the notebook's own source (tests/notebook_code.load(replace=...)),
and the check that follows that piece in the notebook must stop with CheckFailed and the sentence that
names it; each correct variant must pass. The hunt's table is in dev/results/mistake_hunt/hunt_05.md."""
import pytest

from notebook_code import load

NOTEBOOK = "05c_against_the_clock"


def ns(replace=()):
    return load(NOTEBOOK, replace=replace, device="cpu", amp_dtype=None)


def schedule(ns):
    return ns["check_schedule"](ns["lr_at"])


def optimizer(ns):
    toy = ns["GPTConfig"](vocab_size=65, block_size=8, n_embd=16, n_head=2, n_layer=1, dropout=0.0)
    return ns["check_optimizer_groups"](ns["configure_optimizer"], ns["FastGPT"](toy))


COSINE = "return peak / 10 + 0.5 * (peak - peak / 10) * (1 + math.cos(math.pi * min(1.0, progress)))"
DECAY = ("    decay = [p for p in model.parameters() if p.dim() >= 2]\n"
         "    no_decay = [p for p in model.parameters() if p.dim() < 2]\n")

MISTAKES = {  # name: (the learner's edit as (old, new) pairs, the check, what its sentence says)
    "warmup from zero": ([("return peak * (it + 1) / warmup", "return peak * it / warmup")], schedule,
                         "every step needs a positive rate"),
    "decay to zero": ([(COSINE, "return 0.5 * peak * (1 + math.cos(math.pi * min(1.0, progress)))")], schedule,
                      "not the floor peak / 10"),
    "no clamp after the last step": ([(COSINE, COSINE.replace("min(1.0, progress)", "progress"))], schedule,
                                     "not the floor peak / 10"),
    "cosine upside down": ([(COSINE, COSINE.replace("(1 + math.cos", "(1 - math.cos"))], schedule, "jumps by"),
    "linear decay for the cosine": ([(COSINE, "return peak - (peak - peak / 10) * min(1.0, progress)")], schedule,
                                    "a cosine is still near the top"),
    "decay on vectors, not on matrices": ([(DECAY, DECAY.replace(">= 2", "@").replace("< 2", ">= 2").replace("@", "< 2"))],
                                          optimizer, "token_embedding_table.weight (2-d) has weight decay 0.0"),
    "decay by name: every weight": ([(DECAY, "    decay = [p for n, p in model.named_parameters() if n.endswith('weight')]\n"
                                             "    no_decay = [p for n, p in model.named_parameters() if n.endswith('bias')]\n")],
                                    optimizer, "ln1.weight (1-d) has weight decay 0.1"),
    "every parameter in the no-decay group too": ([(DECAY, DECAY.replace("if p.dim() < 2]", "]"))], optimizer,
                                                   "configure_optimizer fails with ValueError"),
}

CORRECT = {  # name: (a variant a learner may write, the check)
    "nanoGPT's warmup, (it + 1) / (warmup + 1)": ([("return peak * (it + 1) / warmup", "return peak * (it + 1) / (warmup + 1)")],
                                                  schedule),
    "decay chosen by name and shape": ([(DECAY, "    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]\n"
                                                "    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]\n")],
                                       optimizer),
}


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_the_check_stops_the_mistake_with_its_sentence(mistake):
    edit, run_check, sentence = MISTAKES[mistake]
    assert "passed" in run_check(ns())  # the check passes on the code as written
    with pytest.raises(AssertionError) as caught:
        run_check(ns(replace=edit))
    assert type(caught.value).__name__ == "CheckFailed" and sentence in str(caught.value), str(caught.value)
    assert "\n" not in str(caught.value)  # one sentence, not a traceback


@pytest.mark.parametrize("variant", list(CORRECT))
def test_the_check_accepts_a_correct_variant(variant):
    edit, run_check = CORRECT[variant]
    assert "passed" in run_check(ns(replace=edit))


def test_every_check_is_probed():
    assert {c for _, c, _ in MISTAKES.values()} >= {schedule, optimizer}
    assert len(MISTAKES) >= 8  # the hunt's eight rows of the schedule and the optimizer (05 keeps its own 15 and more)
