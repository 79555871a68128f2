"""Notebook 06's exercises: every check passes on its solution, answers "not done yet" (without raising)
on the starting point, and fails with its sentence on a wrong version: a mistake made in the notebook's
own source (one edit, as a learner would make it) or a wrong implementation passed directly. Also the
pieces around the checks: the War and Peace download, the leakage count, greedy answers, the race."""
import hashlib

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
    ("check_train_on", "train_on", "train_on_solution", "train_on"),
    ("check_gelu", "gelu", "gelu_solution", "gelu"),
    ("check_tying", "TiedGPT", "TiedGPTSolution", "TiedGPT.__init__"),
    ("check_rope", "rope", "rope_solution", "rope"),
]


@pytest.mark.parametrize("check,stub,solution,what", EXERCISES)
def test_every_check_passes_on_its_solution_and_waits_for_the_starting_point(check, stub, solution, what):
    assert nb[check](nb[solution]).startswith(f"{solution}: passed (")
    not_done(nb[check](nb[stub]), what)


def test_every_solution_is_folded_and_every_starting_point_is_checked_in_the_next_cell():
    cells = jupytext.read(NOTEBOOKS / f"{NB}.py").cells
    code = [c for c in cells if c.cell_type == "code"]
    for check, stub, solution, _ in EXERCISES:
        defining = next(c for c in code if f"def {solution}(" in c.source or f"class {solution}(" in c.source)
        assert defining.metadata.get("jupyter", {}).get("source_hidden") is True, solution
        assert "hide-input" in defining.metadata.get("tags", []), solution
        assert any(c.source.strip() == f"{check}({solution})" for c in code), solution
        assert any(c.source.rstrip().endswith(f"{check}({stub})") for c in code), stub
        starting = next(c for c in code if f"def {stub}(" in c.source or f"class {stub}(" in c.source)
        assert "raise NotImplementedError" in starting.source and not starting.metadata.get("jupyter"), stub


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
     "every head computes the right attention, but the layer's output differs"),
])
def test_batched_heads_check_catches(old, new, match):
    wrong = ns([(old, new)])
    fails(wrong["check_batched_heads"], wrong["BatchedHeadAttentionSolution"], match)


def test_batched_heads_check_catches_a_view_without_contiguous():
    old = "y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C): the heads side by side, as torch.cat"
    wrong = ns([(old, old.replace(".contiguous()", ""))])
    fails(wrong["check_batched_heads"], wrong["BatchedHeadAttentionSolution"], r"needs \.contiguous\(\) first")


def test_batched_heads_check_catches_a_mask_that_is_not_cropped():
    wrong = ns([(SCORES + MASK, SCORES + MASK.replace("self.tril[:T, :T]", "self.tril"))])
    fails(wrong["check_batched_heads"], wrong["BatchedHeadAttentionSolution"], "shorter than block_size")


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
     "not one of the problems given"),
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


# Exercise 3: pretrain, then finetune.

def test_train_on_check_catches_a_loop_that_trains_a_new_model():
    def fresh(model, data, steps, peak_lr, batch_size=32, warmup=0):
        return nb["train_on_solution"](nb["FastGPT"](model.config), data, steps, peak_lr, batch_size, warmup)
    fails(nb["check_train_on"], fresh, "train `model` itself, not a new one")


def test_train_on_check_catches_a_fixed_learning_rate():
    wrong = ns([("group['lr'] = lr_at(it, peak_lr, warmup, steps)", "group['lr'] = 1e-3")])
    fails(wrong["check_train_on"], wrong["train_on_solution"], "changed the weights with peak_lr = 0")


def test_train_on_check_catches_training_on_the_global_split():
    wrong = ns([("x, y = get_batch_on_device(data, batch_size, model.config.block_size)  # (B, T) each",
                 "x, y = get_batch_on_device(train_data, batch_size, model.config.block_size)  # (B, T) each")])
    wrong["train_data"] = torch.randint(0, 13, (1000,))  # some other text
    fails(wrong["check_train_on"], wrong["train_on_solution"], r"on `data`, not on train_data")


def test_finetuning_starts_from_the_pretrained_weights():
    config = nb["GPTConfig"](vocab_size=13, block_size=8, n_embd=16, n_head=2, n_layer=1, dropout=0.0)
    torch.manual_seed(0)
    model = nb["FastGPT"](config)
    pattern = torch.tensor(list(range(13)) * 30)
    log = nb["train_on_solution"](model, pattern, 80, 3e-3, batch_size=16)
    later = nb["train_on_solution"](model, pattern, 5, 1e-4, batch_size=16)
    assert len(log) == 80 and later[0][1] < 0.5 * log[0][1]  # the second call continues from the first


def test_shared_windows_counts_the_validation_text_found_in_the_corpus():
    text = "".join(chr(65 + i % 26) + chr(97 + i * 7 % 26) for i in range(100))  # 200 characters
    assert nb["shared_windows"]("x" * 300, text) == 0
    assert nb["shared_windows"]("x" * 10 + text[20:75] + "x" * 10, text) == 6  # 55 characters hold 6 windows of 50
    assert nb["shared_windows"](text[:49], text) == 0


@pytest.fixture
def fake_warpeace(tmp_path):
    """A small stand-in for War and Peace served from file:// URLs, with the notebook's checksum pointed at it."""
    good = tmp_path / "good.txt"
    good.write_bytes(b"\xef\xbb\xbf\"Well, Prince,\r\nso Genoa\r\n")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"not the book\r\n")
    fresh = load(NB, device="cpu")
    fresh["PRETRAIN_SHA256"] = hashlib.sha256(good.read_bytes()).hexdigest()
    return fresh, good, bad, tmp_path


def test_war_and_peace_tries_each_url_in_turn_and_keeps_only_a_verified_file(fake_warpeace, capsys):
    fresh, good, bad, tmp_path = fake_warpeace
    fresh["PRETRAIN_URLS"] = ((tmp_path / "missing.txt").as_uri(), bad.as_uri(), good.as_uri())
    path = fresh["fetch_warpeace"](tmp_path / "datasets")
    assert path.read_bytes() == good.read_bytes() and sorted(p.name for p in path.parent.iterdir()) == ["warpeace.txt"]
    assert capsys.readouterr().out.count("downloading War and Peace from") == 3
    fresh["PRETRAIN_URLS"] = ("http://127.0.0.1:9/nothing.txt",)  # no network: the file already there is used
    assert fresh["fetch_warpeace"](tmp_path / "datasets") == path


def test_war_and_peace_with_the_wrong_checksum_is_refused_in_one_line(fake_warpeace):
    fresh, good, bad, tmp_path = fake_warpeace
    fresh["PRETRAIN_URLS"] = (bad.as_uri(),)
    with pytest.raises(SystemExit) as excinfo:
        fresh["fetch_warpeace"](tmp_path / "datasets")
    message = str(excinfo.value.code)
    assert message.startswith("error: could not get War and Peace:") and "sha256" in message and "\n" not in message
    assert list((tmp_path / "datasets").iterdir()) == []  # no .part left behind
    (tmp_path / "datasets" / "warpeace.txt").write_bytes(bad.read_bytes())
    with pytest.raises(SystemExit, match="delete it and run again"):
        fresh["fetch_warpeace"](tmp_path / "datasets")


def test_the_pretraining_text_loses_its_byte_order_mark_and_windows_line_ends(fake_warpeace, monkeypatch):
    fresh, good, _, tmp_path = fake_warpeace
    monkeypatch.setenv("COURSE_PRETRAIN", str(good))
    assert fresh["load_pretrain_text"]() == (str(good), "\"Well, Prince,\nso Genoa\n")
    monkeypatch.setenv("COURSE_PRETRAIN", str(tmp_path / "nope.txt"))
    with pytest.raises(SystemExit, match="^error: no text file at .*fix the path given to COURSE_PRETRAIN$"):
        fresh["load_pretrain_text"]()


def test_smoke_mode_pretrains_on_the_readme_without_downloading(monkeypatch):
    monkeypatch.delenv("COURSE_PRETRAIN", raising=False)
    monkeypatch.chdir(ROOT / "notebooks")
    fresh = load(NB, device="cpu")
    fresh["SMOKE"] = True
    fresh["PRETRAIN_URLS"] = ("http://127.0.0.1:9/nothing.txt",)
    name, corpus = fresh["load_pretrain_text"]()
    assert name.startswith("README.md, a stand-in") and corpus == (ROOT / "README.md").read_text(encoding="utf-8")


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
     "is a separate Parameter holding a copy of the embedding's values"),
    ("self.lm_head.weight = nn.Parameter(self.token_embedding_table.weight.data)  # one Parameter",
     "is a separate Parameter sharing the embedding's memory"),
    ("self.lm_head.weight.data = self.token_embedding_table.weight.data  # one Parameter",
     "is a separate Parameter sharing the embedding's memory"),
    ("pass  # one Parameter", r"is a separate Parameter: assign the Parameter itself"),
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
    (ANGLES, ANGLES.replace("-2 *", "-1 *"), r"turns the pairs by other angles: at position 1, pair i must turn by"),
    (ANGLES, ANGLES.replace("10000 **", "100 **"), "turns the pairs by other angles"),
    ("angles = torch.arange(T, device=x.device)[:, None] * theta[None, :]",
     "angles = torch.arange(T, device=x.device)[:, None] ** 2 * theta[None, :]", "not only on m - n"),
    ("angles = torch.arange(T, device=x.device)[:, None] * theta[None, :]",
     "angles = torch.arange(1, T + 1, device=x.device)[:, None] * theta[None, :]", "number the positions from 0"),
    ("return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)",
     "return torch.cat([x1 * cos + x2 * sin, x1 * sin + x2 * cos], dim=-1)", "changes the length of the vectors"),
])
def test_rope_check_catches(old, new, match):
    wrong = ns([(old, new)])
    fails(wrong["check_rope"], wrong["rope_solution"], match)


def test_rope_check_catches_interleaved_pairs():
    def rope(x):  # pairs (2i, 2i + 1): another convention, a different function
        pairs = x.unflatten(-1, (-1, 2)).transpose(-1, -2).flatten(-2)  # (..., hs): evens, then odds
        turned = nb["rope_solution"](pairs)
        return turned.unflatten(-1, (2, -1)).transpose(-1, -2).flatten(-2)
    fails(nb["check_rope"], rope, "pair channel i with i \\+ hs/2")


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
    assert nb["RACES"] == load("05_fast_gpt")["RACES"]
