"""Notebook 06's exercises (1, batched heads; 2, a GPT that adds): every check passes on its solution,
answers "not done yet" (without raising) on the starting point, and fails with its sentence on a wrong
version: a mistake made in the notebook's own source (one edit, as a learner would make it) or a wrong
implementation passed directly. Also the pieces around the checks: the held-out problems, greedy
answers, the training loop. Notebooks 06b and 06c hold exercises 3 and 4 (tests/test_06b_*, test_06c_*)."""
import ast

import jupytext
import pytest
import torch
import torch.nn as nn
from torch.nn import functional as F

from notebook_code import NOTEBOOKS, ROOT, load

NB = "06_exercises"
nb = load(NB, device="cpu")


def ns(replace=()):
    return load(NB, replace=replace, device="cpu") if replace else nb


def not_done(result, what):
    assert isinstance(result, nb["NotDone"]) and not isinstance(result, nb["Passed"])
    assert result == f"not done yet: fill in {what} above, then run this cell again"


def fails(check, thing, match):
    with pytest.raises(AssertionError, match=match) as excinfo:
        check(thing)
    assert type(excinfo.value).__name__ == "CheckFailed", excinfo.value
    assert "\n" not in str(excinfo.value)


# Every exercise has the same shape: a starting point, its check, a folded solution, the check on it.

EXERCISES = [  # (check, starting point, solution, what the "not done yet" sentence names)
    ("check_batched_heads", "BatchedHeadAttention", "BatchedHeadAttentionSolution", "BatchedHeadAttention.forward"),
    ("check_addition_batch", "get_addition_batch", "get_addition_batch_solution", "get_addition_batch"),
]


@pytest.mark.parametrize("check,stub,solution,what", EXERCISES)
def test_every_check_passes_on_its_solution_and_waits_for_the_starting_point(check, stub, solution, what):
    assert nb[check](nb[solution]).startswith(f"{solution}: passed (")
    not_done(nb[check](nb[stub]), what)


def exercise_cells_are_laid_out_as_the_intro_says(notebook, exercises):
    """Solutions and checks folded, starting points visible and checked in a cell of their own, no check
    holding a line of its solution (a check must not give the answer away)."""
    cells = jupytext.read(NOTEBOOKS / f"{notebook}.py").cells
    code = [c for c in cells if c.cell_type == "code"]
    src = (NOTEBOOKS / f"{notebook}.py").read_text(encoding="utf-8")
    defined = {n.name: ast.get_source_segment(src, n) for n in ast.parse(src).body if hasattr(n, "name")}
    hidden = lambda c: c.metadata.get("jupyter", {}).get("source_hidden") is True
    for check, stub, solution, _ in exercises:
        defining = next(c for c in code if f"def {solution}(" in c.source or f"class {solution}(" in c.source)
        assert hidden(defining) and "hide-input" in defining.metadata.get("tags", []), solution
        assert hidden(next(c for c in code if f"def {check}(" in c.source)), check
        assert any(c.source.strip() == f"{check}({solution})" for c in code), solution
        assert any(c.source.strip() == f"{check}({stub})" for c in code), stub
        starting = next(c for c in code if f"def {stub}(" in c.source or f"class {stub}(" in c.source)
        assert "raise NotImplementedError" in starting.source and not starting.metadata.get("jupyter"), stub
        assert code.index(starting) < code.index(defining), f"{solution} comes before the starting point {stub}"
        lines = [l.split("#")[0].strip() for l in defined[solution].splitlines()[1:]]
        telling = [l for l in lines if len(l) > 25 and not l.startswith(('"""', "def ", "super()", "B, T, C"))]
        checking = next(c for c in code if f"def {check}(" in c.source).source  # the check and its helpers
        assert telling and not [l for l in telling if l in checking], (solution, [l for l in telling if l in checking])


def test_every_solution_and_check_is_folded_and_every_starting_point_is_checked_in_the_next_cell():
    exercise_cells_are_laid_out_as_the_intro_says(NB, EXERCISES)


# Exercise 1: the heads as a batch dimension.

SCORES = "wei = q @ k.transpose(-2, -1) * k.shape[-1]**-0.5  # (B, nh, T, T), scaled by head_size\n"
MASK = "        wei = wei.masked_fill(self.tril[:T, :T] == 0, float('-inf'))  # (B, nh, T, T)\n"


@pytest.mark.parametrize("old,new,match", [
    (SCORES + MASK, SCORES, "there is no causal mask, so every position sees the future"),
    (SCORES, SCORES.replace("k.shape[-1]**-0.5", "C**-0.5"), r"scaled by C\*\*-0.5 with C = n_embd = 64"),
    (SCORES, SCORES.replace("q @ k.transpose(-2, -1)", "k @ q.transpose(-2, -1)"), "queries and keys are swapped"),
    ("wei = self.attn_dropout(F.softmax(wei, dim=-1))  # (B, nh, T, T)",
     "wei = self.attn_dropout(F.softmax(wei, dim=-2))  # (B, nh, T, T)", "softmax runs over the wrong dimension"),
    ("return self.dropout(self.proj(y))  # (B, T, C)\n\n\n# %%\ncheck_batched_heads(BatchedHeadAttentionSolution)",
     "return self.dropout(y)  # (B, T, C)\n\n\n# %%\ncheck_batched_heads(BatchedHeadAttentionSolution)",
     "every head is right, but the joined heads are returned as they are: apply self.proj"),
])
def test_batched_heads_check_catches(old, new, match):
    wrong = ns([(old, new)])
    fails(wrong["check_batched_heads"], wrong["BatchedHeadAttentionSolution"], match)


def test_batched_heads_check_catches_a_view_without_contiguous():
    old = "y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C): the heads side by side, as torch.cat"
    wrong = ns([(old, old.replace(".contiguous()", ""))])
    fails(wrong["check_batched_heads"], wrong["BatchedHeadAttentionSolution"], r"view needs a contiguous tensor: call \.contiguous\(\) first")


def test_batched_heads_check_catches_a_mask_that_is_not_cropped():
    wrong = ns([(SCORES + MASK, SCORES + MASK.replace("self.tril[:T, :T]", "self.tril"))])
    fails(wrong["check_batched_heads"], wrong["BatchedHeadAttentionSolution"], r"\(3, 5, 64\).*crop the mask to tril\[:T, :T\]")


def test_the_batched_solution_trains_like_the_lecture_layer():
    """Same weights, same loss and same gradients as MultiHeadAttention, with dropout off."""
    config = nb["GPTConfig"](vocab_size=65, block_size=8, n_embd=48, n_head=6, n_layer=1, dropout=0.0)
    torch.manual_seed(0)
    mha = nb["MultiHeadAttention"](config)
    batched = nb["copy_heads"](mha, nb["BatchedHeadAttentionSolution"](config))
    x = torch.randn(3, 8, 48)
    mha(x).square().sum().backward()
    batched(x).square().sum().backward()
    assert torch.allclose(batched.qkv.weight.grad[:48], torch.cat([h.query.weight.grad for h in mha.heads]), atol=1e-5)
    assert torch.allclose(batched.proj.weight.grad, mha.proj.weight.grad, atol=1e-5)


# Exercise 2: a GPT that adds.

SOLUTION = nb["get_addition_batch_solution"]


@pytest.mark.parametrize("old,new,match", [
    ("answer = answer.flip(1)  # lowest digit first", "pass  # lowest digit first", "the answers are not reversed"),
    ("y[:, :2 * digits + 1] = -1  # no loss", "y[:, :0] = -1  # no loss", "the loss is not masked"),
    ("y[:, :2 * digits + 1] = -1  # no loss", "y[:, :2 * digits + 2] = -1  # no loss", "the first digit of the answer is masked too"),
    ("x, y = seq[:, :-1], seq[:, 1:].clone()  # (B, T) each, T = 3 * digits + 2",
     "x, y = seq[:, :-1], seq[:, :-1].clone()  # (B, T) each, T = 3 * digits + 2", r"row \d+ reads"),
    ("x, y = seq[:, :-1], seq[:, 1:].clone()  # (B, T) each, T = 3 * digits + 2",
     "x, y = seq[:, :-1], seq[:, 1:]  # (B, T) each, T = 3 * digits + 2", "the targets share memory with x"),
    ("digits_of(a, digits), plus, digits_of(b, digits), equals, answer], dim=1)  # (B, 3 * digits + 3)",
     "digits_of(b, digits), plus, digits_of(a, digits), equals, answer], dim=1)  # (B, 3 * digits + 3)",
     "a and b are swapped: row 0 reads 007\\+005 for the problem 5\\+7"),
    ("picked = problems[torch.randint(len(problems), (batch_size,))]", "picked = problems[[0] * batch_size]",
     "every row is the same problem"),
])
def test_addition_batch_check_catches(old, new, match):
    wrong = ns([(old, new)])
    fails(wrong["check_addition_batch"], wrong["get_addition_batch_solution"], match)


def test_addition_batch_check_catches_held_out_problems_in_training():
    def everything(problems, batch_size, digits, reverse=True, mask=True):  # ignores the problems given
        return SOLUTION(torch.arange(10 ** (2 * digits)), batch_size, digits, reverse, mask)
    fails(nb["check_addition_batch"], everything, "not one of the problems given: draw the rows from `problems`")


def test_addition_batch_check_catches_switches_that_do_nothing():
    always = lambda problems, batch_size, digits, reverse=True, mask=True: SOLUTION(problems, batch_size, digits)
    fails(nb["check_addition_batch"], always, "with reverse=False the answer should be written the usual way")
    masked = lambda problems, batch_size, digits, reverse=True, mask=True: SOLUTION(problems, batch_size, digits, reverse)
    fails(nb["check_addition_batch"], masked, "with mask=False, y should be x shifted by one")


def test_held_out_problems_never_reach_training():
    for digits in (2, 3):
        train, test = nb["addition_problems"](digits)
        assert len(test) == 1000 and len(train) + len(test) == 10 ** (2 * digits)
        assert not torch.isin(test, train).any()
        assert torch.equal(nb["addition_problems"](digits)[1], test)  # the same 1,000, run after run
        x, _ = SOLUTION(train, 4096, digits)
        powers = 10 ** torch.arange(digits - 1, -1, -1)
        drawn = (x[:, :digits] * powers).sum(1) * 10 ** digits + (x[:, digits + 1:2 * digits + 1] * powers).sum(1)
        assert not torch.isin(drawn, test).any()


class PerfectAdder(nn.Module):
    """A stand-in model whose most likely next token is always the right next digit of the reversed answer."""

    def __init__(self, digits):
        super().__init__()
        self.digits, self.weight = digits, nn.Parameter(torch.zeros(()))

    def forward(self, idx):
        d, (N, T) = self.digits, idx.shape
        powers = 10 ** torch.arange(d - 1, -1, -1)
        a, b = (idx[:, :d] * powers).sum(1), (idx[:, d + 1:2 * d + 1] * powers).sum(1)
        answer = nb["digits_of"](a + b, d + 1).flip(1)  # (N, d + 1)
        logits = torch.zeros(N, T, 12)
        logits[torch.arange(N), -1, answer[:, T - (2 * d + 2)]] = 1.0
        return logits, None


def test_greedy_answers_and_exact_match():
    _, test = nb["addition_problems"](3)
    assert nb["addition_accuracy"](PerfectAdder(3), test, 3) == 1.0
    assert nb["addition_accuracy"](PerfectAdder(3), test, 3, reverse=False) < 0.05  # only palindromes match
    assert nb["written"](nb["addition_answers"](PerfectAdder(3), torch.tensor([482_319]), 3)[0]) == "1080"


def test_train_adder_masks_the_loss_and_logs_held_out_accuracy():
    nb["ADD_BATCH"] = 32  # small and quick; the notebook's is larger
    try:
        model, log = nb["train_adder"](SOLUTION, 2, 30, every=10)
    finally:
        nb["ADD_BATCH"] = 256
    assert [step for step, _, _ in log] == [10, 20, 30] and all(0 <= acc <= 1 for _, _, acc in log)
    assert model.training and model.config.block_size == 8 and model.config.vocab_size == 12


