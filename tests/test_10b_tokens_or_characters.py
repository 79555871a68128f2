"""Notebook 10b: its tokenizer is notebook 10's (the same merges and ids), the race model is notebook 05's,
bits per character is right on a known case and its check passes, train_for_seconds logs its evaluations
in order on the clock; and without regex one line."""
import pytest
import torch

from notebook_code import NOTEBOOKS, ROOT, load
from script_runner import run_script, smoke_env

NB = "10b_tokens_or_characters"
TEXT = (ROOT / "datasets" / "tinyshakespeare.txt").read_text(encoding="utf-8")
TRAIN, VAL = TEXT[:int(0.9 * len(TEXT))], TEXT[int(0.9 * len(TEXT)):]
nb = load(NB, device="cpu", train_text=TRAIN, val_text=VAL)


def test_the_tokenizer_is_notebook_10s():
    """The copy in the folded cell trains the same merges and encodes to the same ids as notebook 10's."""
    nb10 = load("10_tokenizer", device="cpu", train_text=TRAIN, val_text=VAL)
    ours, theirs = nb["RegexTokenizer"](), nb10["RegexTokenizer"]()
    ours.train(TRAIN[:200_000], 256 + 200)
    theirs.train(TRAIN[:200_000], 256 + 200)
    assert list(ours.merges.items()) == list(theirs.merges.items()) and len(ours.merges) == 200
    sample = VAL[:5_000] + " café 12345 👋"
    assert ours.encode(sample) == theirs.encode_ordinary(sample) and ours.decode(ours.encode(sample)) == sample


def test_race_gpt_is_notebook_05s_fast_gpt():
    """Notebook 05's FastGPT and this notebook's RaceGPT hold the same parameters and compute the same loss."""
    nb05 = load("05_fast_gpt", device="cpu")
    config = nb["GPTConfig"](vocab_size=97, block_size=16, n_embd=32, n_head=4, n_layer=3, dropout=0.0)
    torch.manual_seed(0)
    fast, race = nb05["FastGPT"](nb05["GPTConfig"](**vars(config))), nb["RaceGPT"](config)
    assert {k: v.shape for k, v in fast.state_dict().items()} == {k: v.shape for k, v in race.state_dict().items()}
    race.load_state_dict(fast.state_dict())
    x, y = torch.randint(97, (2, 16)), torch.randint(97, (2, 16))
    assert torch.equal(fast(x, y)[0], race(x, y)[0]) and torch.equal(fast(x, y)[1], race(x, y)[1])
    fresh = nb["RaceGPT"](config)  # initialised as notebook 05's: weights N(0, 0.02), biases 0
    for module in (m for m in fresh.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Embedding))):
        assert abs(module.weight.std().item() - 0.02) < 0.005
        assert getattr(module, "bias", None) is None or not module.bias.any()


def test_bits_per_char_of_a_known_case():
    # a loss of ln 2 nats per token (one bit), two tokens for every three characters: 2/3 of a bit per character
    assert abs(nb["bits_per_char"](0.6931471805599453, 200, 300) - 2 / 3) < 1e-12


def test_the_check_passes_on_the_notebooks_own_code():
    assert ": passed (" in nb["check_bits_per_char"](nb["bits_per_char"])


def test_train_for_seconds_logs_its_evaluations_in_order():
    race = load(NB, device="cpu", train_text=TRAIN, val_text=VAL, block_size=8, n_evals=3, race_batch=4, race_lr=1e-3,
                amp_dtype=None, sizes=dict(block_size=8, n_embd=16, n_head=2, n_layer=1, dropout=0.0))
    ids = list(range(50)) * 20
    log = race["train_for_seconds"](50, ids, ids[:200], 0.3, seed=0)
    assert len(log) == 3 and all(a[0] < b[0] and a[1] < b[1] for a, b in zip(log, log[1:]))
    assert all(t >= 0.3 * (k + 1) / 3 for k, (t, _, _) in enumerate(log)) and log[-1][2] < log[0][2] + 1.0


def test_race_step_trains_at_the_learning_rate_it_is_given():
    """One race_step moves the weights by what AdamW at that rate moves them (its first step: about lr per weight)."""
    race = load(NB, device="cpu", block_size=8, race_batch=4, amp_dtype=None)
    torch.manual_seed(0)
    model = race["RaceGPT"](race["GPTConfig"](vocab_size=50, block_size=8, n_embd=16, n_head=2, n_layer=1, dropout=0.0))
    optimizer = race["configure_optimizer"](model, 1.0)
    before = model.lm_head.bias.detach().clone()  # no weight decay on biases: AdamW's first step is lr * sign(grad)
    race["race_step"](model, optimizer, torch.randint(50, (200,)), 1e-3)
    assert all(group["lr"] == 1e-3 for group in optimizer.param_groups)
    step = (model.lm_head.bias.detach() - before).abs()
    assert torch.allclose(step[step > 0], torch.full_like(step[step > 0], 1e-3), rtol=1e-2) and (step > 0).sum() > 25


def test_without_regex_the_script_says_what_to_do_in_one_line(tmp_path):
    wrapper = tmp_path / "no_regex.py"  # runs the notebook's script as if regex were not installed
    wrapper.write_text(f"import runpy, sys\nsys.modules['regex'] = None\nrunpy.run_path({str(NOTEBOOKS / f'{NB}.py')!r}, "
                       "run_name='__main__')\n")
    result = run_script(wrapper, cwd=ROOT, env=smoke_env(), timeout=120)
    assert result.returncode == 1 and result.stderr.strip().splitlines() == [
        "error: this notebook needs regex for its tokenizer's split pattern: pip install regex"]
