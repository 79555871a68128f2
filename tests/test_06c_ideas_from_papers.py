"""Notebook 06c's exercise 4 (GELU, weight tying, RoPE): every check passes on its solution and on
correct variants, waits for the starting point, and fails with its sentence on a wrong version; the
models raced (GELUGPT, RoPEGPT) and the race itself, on notebook 05c's settings."""
import pytest
import torch
import torch.nn as nn
from torch.nn import functional as F

from notebook_code import load
from test_06_exercises import exercise_cells_are_laid_out_as_the_intro_says

NB = "06c_ideas_from_papers"
nb = load(NB, device="cpu")
EXERCISES = [  # (check, starting point, solution, what the "not done yet" sentence names)
    ("check_gelu", "gelu", "gelu_solution", "gelu"),
    ("check_tying", "TiedGPT", "TiedGPTSolution", "TiedGPT.__init__"),
    ("check_rope", "rope", "rope_solution", "rope"),
]


def ns(replace=()):
    return load(NB, replace=replace, device="cpu") if replace else nb


def fails(check, thing, match):
    with pytest.raises(AssertionError, match=match) as excinfo:
        check(thing)
    assert type(excinfo.value).__name__ == "CheckFailed", excinfo.value
    assert "\n" not in str(excinfo.value)


@pytest.mark.parametrize("check,stub,solution,what", EXERCISES)
def test_every_check_passes_on_its_solution_and_waits_for_the_starting_point(check, stub, solution, what):
    assert nb[check](nb[solution]).startswith(f"{solution}: passed (")
    result = nb[check](nb[stub])
    assert isinstance(result, nb["NotDone"]) and result == f"not done yet: fill in {what} above, then run this cell again"


def test_every_solution_and_check_is_folded_and_every_starting_point_is_checked_in_the_next_cell():
    exercise_cells_are_laid_out_as_the_intro_says(NB, EXERCISES)


# Exercise 4: GELU, weight tying, RoPE.

@pytest.mark.parametrize("wrong,match", [
    (torch.relu, "gelu is ReLU"),  # named like the learner's function by the wrapper below
    (F.silu, "differs from F.gelu by up to"),
    (lambda x: x * torch.sigmoid(1.702 * x), "differs from F.gelu by up to"),
])
def test_gelu_check_catches(wrong, match):
    def gelu(x):
        return wrong(x)
    fails(nb["check_gelu"], gelu, match)


def test_gelu_check_accepts_the_tanh_form_and_says_so():
    def gelu(x):
        return F.gelu(x, approximate='tanh')
    assert "in its tanh form" in nb["check_gelu"](gelu)


def test_gelu_check_catches_a_gelu_that_is_really_relu_in_the_notebooks_source():
    wrong = ns([("return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))", "return torch.relu(x)")])
    fails(wrong["check_gelu"], wrong["gelu_solution"], "gelu_solution is ReLU")


def test_the_gelu_model_has_no_relu_left():
    model = nb["GELUGPT"](nb["GPTConfig"](vocab_size=13, block_size=8, n_embd=16, n_head=2, n_layer=2, dropout=0.0))
    assert not any(isinstance(m, nn.ReLU) for m in model.modules()) and sum(isinstance(m, nn.GELU) for m in model.modules()) == 2


TIE = "self.lm_head.weight = self.token_embedding_table.weight  # one Parameter"


@pytest.mark.parametrize("new,match", [
    ("self.lm_head.weight = nn.Parameter(self.token_embedding_table.weight.detach().clone())  # one Parameter",
     "is a separate Parameter holding a copy of the embedding's values: both uses must be one and the same"),
    ("self.lm_head.weight = nn.Parameter(self.token_embedding_table.weight.data)  # one Parameter",
     "is a separate Parameter sharing the embedding's memory"),
    ("self.lm_head.weight.data = self.token_embedding_table.weight.data  # one Parameter",
     "is a separate Parameter sharing the embedding's memory"),
    ("pass  # one Parameter", r"is a separate Parameter: both uses must be one and the same Parameter object"),
])
def test_tying_check_catches(new, match):
    wrong = ns([(TIE, new)])
    fails(wrong["check_tying"], wrong["TiedGPTSolution"], match)


def test_tying_check_catches_a_model_that_adds_a_third_use():
    class Doubled(nb["TiedGPTSolution"]):
        def forward(self, idx, targets=None):
            logits, loss = super().forward(idx, targets)
            return logits, loss + self.token_embedding_table.weight.square().sum()
    fails(nb["check_tying"], Doubled, "is not the sum of the gradients of its two uses")


ANGLES = "theta = 10000 ** (-2 * torch.arange(hs // 2, device=x.device) / hs)  # (hs/2,) the pairs' speeds"


@pytest.mark.parametrize("old,new,match", [
    (ANGLES, ANGLES.replace("-2 *", "-1 *"), r"turns the pairs by other angles: at position \d+ pair \d+ of 4 turns by"),
    (ANGLES, ANGLES.replace("10000 **", "100 **"), "turns the pairs by other angles"),
    ("angles = torch.arange(T, device=x.device)[:, None] * theta[None, :]",
     "angles = torch.arange(T, device=x.device)[:, None] ** 2 * theta[None, :]", "not only on m - n"),
    ("angles = torch.arange(T, device=x.device)[:, None] * theta[None, :]",
     "angles = torch.arange(1, T + 1, device=x.device)[:, None] * theta[None, :]", "number the positions from 0"),
    ("return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)",
     "return torch.cat([x1 * cos + x2 * sin, x1 * sin + x2 * cos], dim=-1)", "changes the length of the pairs"),
])
def test_rope_check_catches(old, new, match):
    wrong = ns([(old, new)])
    fails(wrong["check_rope"], wrong["rope_solution"], match)


def test_rope_check_catches_interleaved_pairs():
    def rope(x):  # pairs (2i, 2i + 1): another convention, a different function
        pairs = x.unflatten(-1, (-1, 2)).transpose(-1, -2).flatten(-2)  # (..., hs): evens, then odds
        turned = nb["rope_solution"](pairs)
        return turned.unflatten(-1, (2, -1)).transpose(-1, -2).flatten(-2)
    fails(nb["check_rope"], rope, "turns other pairs of channels than \\(i, i \\+ hs/2\\)")


def test_rope_relative_positions_in_the_attention_scores():
    torch.manual_seed(0)
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)
    score = lambda m, n: (nb["rope_solution"](q.expand(1, 1, 30, 16))[0, 0, m] @ nb["rope_solution"](k.expand(1, 1, 30, 16))[0, 0, n]).item()
    assert score(9, 5) == pytest.approx(score(20, 16), abs=1e-4) == pytest.approx(score(4, 0), abs=1e-4)
    assert abs(score(9, 9) - score(9, 0)) > 1  # at another distance, another score


def test_the_rope_model_is_causal_sees_order_and_has_no_position_table():
    config = nb["GPTConfig"](vocab_size=13, block_size=8, n_embd=16, n_head=2, n_layer=2, dropout=0.0)
    torch.manual_seed(0)
    model = nb["RoPEGPT"](config).eval()
    assert not hasattr(model, "position_embedding_table")
    idx = torch.randint(0, 13, (2, 8))
    with torch.no_grad():
        a, b = model(idx)[0], model(torch.cat([idx[:, :4], (idx[:, 4:] + 1) % 13], 1))[0]
    assert torch.allclose(a[:, :4], b[:, :4], atol=1e-5)
    one_layer = nb["GPTConfig"](vocab_size=13, block_size=8, n_embd=16, n_head=2, n_layer=1, dropout=0.0)
    rotary, blind = nb["RoPEGPT"](one_layer).eval(), nb["PositionlessGPT"](one_layer).eval()
    with torch.no_grad():
        abc, bac = rotary(torch.tensor([[1, 2, 3], [2, 1, 3]]))[0][:, -1]
        abc_blind, bac_blind = blind(torch.tensor([[1, 2, 3], [2, 1, 3]]))[0][:, -1]
    assert not torch.allclose(abc, bac, atol=1e-5)  # RoPE sees the order
    assert torch.allclose(abc_blind, bac_blind, atol=1e-5)  # one layer without positions cannot: the test can tell
    assert model.generate(torch.zeros((1, 1), dtype=torch.long), 10).shape == (1, 11)  # past block_size too


def test_race_variant_trains_the_variant_with_notebook_05s_loop_and_restores_fastgpt():
    race = load(NB, device="cpu")
    pattern = torch.tensor(list(range(13)) * 40)
    race.update(train_data=pattern, val_data=pattern, block_size=8)
    original = race["FastGPT"]
    settings = (race["GPTConfig"](vocab_size=13, block_size=8, n_embd=16, n_head=2, n_layer=1, dropout=0.0), 8, 20, 3e-3, 2, None)
    model, log, seconds = race["race_variant"](race["TiedGPTSolution"], settings)
    assert type(model).__name__ == "TiedGPTSolution" and race["FastGPT"] is original
    assert len(log) == 20 and seconds == log[-1][1] and log[-1][2] < log[0][2]
    with pytest.raises(RuntimeError):
        race["race_variant"](race["TiedGPT"], settings)  # the starting point raises NotImplementedError
    assert race["FastGPT"] is original


def test_the_race_settings_are_notebook_05s():
    assert nb["RACES"] == load("05c_against_the_clock")["RACES"]
