"""Notebook 07's own code: the cached sampler writes exactly what the lecture's generate writes, each cached
step gives the full forward pass's logits (before and after the window fills), the notebook's checks fail
with their sentence on a broken cache, and `--bench` runs."""
import pytest
import torch

import notebook_code
from notebook_code import NOTEBOOKS, load
from script_runner import one_line_error, run_script

SCRIPT = NOTEBOOKS / "07_kv_cache.py"
nb = load("07_kv_cache", device="cpu")
CONFIGS = [dict(block_size=8, n_embd=16, n_head=1, n_layer=1), dict(block_size=12, n_embd=32, n_head=4, n_layer=2),
           dict(block_size=5, n_embd=24, n_head=3, n_layer=3)]
SETTINGS = [{}, {"temperature": 0.5}, {"top_k": 3}, {"temperature": 1.5, "top_k": 4}]


def config(dropout=0.0, **sizes):
    return nb["GPTConfig"](vocab_size=11, dropout=dropout, **sizes)


def broken(tmp_path, monkeypatch, old, new):
    """The notebook's definitions loaded from a copy of its .py with one mistake put in (old -> new)."""
    text = SCRIPT.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    (tmp_path / "07_kv_cache.py").write_text(text.replace(old, new), encoding="utf-8")
    monkeypatch.setattr(notebook_code, "NOTEBOOKS", tmp_path)
    return load("07_kv_cache", device="cpu")


@pytest.mark.parametrize("sizes", CONFIGS)
@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("prompt_length", [1, 3, 14])  # 14: longer than every block_size, cropped at the start
def test_cached_sampling_writes_exactly_what_generate_writes(sizes, settings, prompt_length):
    torch.manual_seed(0)
    model = nb["FastGPT"](config(dropout=0.1, **sizes))  # training mode, with dropout: both must sample in eval mode
    prompt = torch.randint(0, 11, (3, prompt_length))  # (B, T)
    n = 4 * sizes["block_size"] + 1  # far past the window
    torch.manual_seed(7)
    expected = nb["generate"](model, prompt, n, **settings)
    torch.manual_seed(7)
    got = nb["generate_cached"](model, prompt, n, **settings)
    assert got.shape == (3, prompt_length + n)
    assert torch.equal(got, expected)
    assert model.training  # put back as it was found
    assert not torch.equal(got[:, prompt_length:], got[:, prompt_length:].roll(1, 0))  # the three rows differ: real sampling


@pytest.mark.parametrize("sizes", CONFIGS)
def test_each_cached_step_equals_the_full_forward_pass(sizes):
    torch.manual_seed(1)
    c = config(**sizes)
    model, bs = nb["FastGPT"](c).eval(), c.block_size
    tokens = torch.randint(0, 11, (2, 3 * bs))
    cache = None
    with torch.no_grad():
        prefill = nb["KVCache"](c.n_layer)  # a whole prompt at once equals the forward pass at every position
        assert torch.allclose(nb["forward_cached"](model, tokens[:, :bs], prefill), model(tokens[:, :bs])[0], atol=1e-5)
        assert len(prefill) == bs
        for t in range(1, 3 * bs + 1):
            logits, cache = nb["next_logits_cached"](model, tokens[:, :t], cache)  # (B, vocab_size)
            assert logits.shape == (2, 11)
            assert torch.allclose(logits, model(tokens[:, max(0, t - bs):t])[0][:, -1], atol=1e-5), t
            assert len(cache) == min(t, bs), t
            assert all(k.shape == (2, c.n_head, len(cache), c.n_embd // c.n_head) for k in cache.keys + cache.values)


@pytest.mark.parametrize("sizes", CONFIGS)
def test_the_notebooks_checks_pass_on_its_code(sizes):
    c = config(**sizes)
    assert nb["check_attend_cached"](nb["attend_cached"], c).endswith("passed (prompts of 7, 4 and 1, then two new "
                                                                      "positions and single ones up to 10, equal CausalSelfAttention)")
    assert "passed" in nb["check_cached_logits"](nb["next_logits_cached"], c)
    assert "passed" in nb["check_generate_cached"](nb["generate_cached"], c)


def test_the_fast_model_is_notebook_05s():
    # 07's Block holds CausalSelfAttention from the start (no lecture Heads built to be replaced): the same
    # parameters, and the same logits from 05's weights
    fast = load("05_fast_gpt", device="cpu")
    c = dict(vocab_size=11, block_size=8, n_embd=16, n_head=2, n_layer=2, dropout=0.0)
    theirs, ours = fast["FastGPT"](fast["GPTConfig"](**c)).eval(), nb["FastGPT"](nb["GPTConfig"](**c)).eval()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    ours.load_state_dict(theirs.state_dict())
    idx = torch.randint(0, 11, (3, 8), generator=torch.Generator().manual_seed(0))
    assert torch.allclose(theirs(idx)[0], ours(idx)[0], atol=1e-6)


TOY = dict(block_size=8, n_embd=32, n_head=4, n_layer=2)


def test_positions_not_advanced_fail_the_check(tmp_path, monkeypatch):
    ns = broken(tmp_path, monkeypatch, "torch.arange(len(cache), len(cache) + T, device=idx.device)",
                "torch.arange(T, device=idx.device)")
    with pytest.raises(ns["CheckFailed"], match=r"step 1 \(position 3\) differ .*the embeddings do: .*at positions len\(cache\)"):
        ns["check_cached_logits"](ns["next_logits_cached"], config(**TOY))
    with pytest.raises(ns["CheckFailed"], match=r"generate_cached\(idx of shape \(2, 3\), 4\) wrote other characters than generate"):
        ns["check_generate_cached"](ns["generate_cached"], config(**TOY))


def test_keys_not_appended_fail_the_checks(tmp_path, monkeypatch):
    ns = broken(tmp_path, monkeypatch, """    if cache.keys[layer] is not None:
        k = torch.cat((cache.keys[layer], k), dim=2)  # (B, nh, T_past + T, hs)
        v = torch.cat((cache.values[layer], v), dim=2)  # (B, nh, T_past + T, hs)
""", "")
    with pytest.raises(ns["CheckFailed"], match="the cache holds 1 positions, not 10: append the new keys and values"):
        ns["check_attend_cached"](ns["attend_cached"], config(**TOY))
    with pytest.raises(ns["CheckFailed"], match="after 4 characters the cache holds 1 positions, not 4: append"):
        ns["check_cached_logits"](ns["next_logits_cached"], config(**TOY))


def test_a_top_left_causal_mask_fails_the_check(tmp_path, monkeypatch):
    ns = broken(tmp_path, monkeypatch, "y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)",
                "y = F.scaled_dot_product_attention(q, k, v, is_causal=True)")
    with pytest.raises(ns["CheckFailed"], match="a new position after cached ones sees only the first key: is_causal=True aligns"):
        ns["check_attend_cached"](ns["attend_cached"], config(**TOY))


def test_a_cache_that_is_never_refilled_fails_the_check(tmp_path, monkeypatch):
    ns = broken(tmp_path, monkeypatch, "if cache is None or len(cache) == block_size:", "if cache is None:")
    with pytest.raises(ns["CheckFailed"], match="with 9 characters of context, more than block_size = 8, step 6, after the window filled asked for a position past 7"):
        ns["check_cached_logits"](ns["next_logits_cached"], config(**TOY))


@pytest.mark.parametrize("old,new,message", [
    ("    model.eval()\n    cache = None", "    cache = None", "ran the model in training mode or with gradients"),
    ("logits = logits / temperature  # (B, vocab_size)", "logits = logits",
     r"with the same seed, generate_cached\(idx of shape \(2, 3\), 24, temperature=0.5\) wrote other characters than generate"),
    ("logits = logits / temperature  # (B, vocab_size)\n        if top_k is not None:",
     "logits = logits / temperature  # (B, vocab_size)\n        if False:",
     r"generate_cached\(idx of shape \(2, 12\), 16, temperature=2.0, top_k=3\) wrote other characters"),
])
def test_a_sampler_that_differs_from_generate_fails_the_check(tmp_path, monkeypatch, old, new, message):
    ns = broken(tmp_path, monkeypatch, old, new)
    with pytest.raises(ns["CheckFailed"], match=message):
        ns["check_generate_cached"](ns["generate_cached"], config(**TOY))


def test_bench_times_both_samplers_and_stops():
    result = run_script(SCRIPT, "--bench", "--num-chars", "40", cwd=NOTEBOOKS)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "smoke mode: True" in result.stdout and lines[-3].startswith("bench: generate against generate_cached")
    assert lines[-2].startswith("the first 16 characters (the window): generate") and lines[-2].endswith("x")
    assert lines[-1].startswith("all 40 characters: generate") and "generate_cached" in lines[-1]
    assert "steps in" not in result.stdout  # it stopped before the training


@pytest.mark.parametrize("argv,line", [
    (["--num-chars", "0"], "error: --num-chars must be at least 1 (got 0)"),
    (["--bench", "--num-chars", "lots"], "error: argument --num-chars: invalid int value: 'lots'; see --help"),
    (["--nope"], "error: unrecognized arguments: --nope; see --help"),
])
def test_a_bad_flag_is_one_line(argv, line):
    assert one_line_error(run_script(SCRIPT, *argv, cwd=NOTEBOOKS)) == line


def test_the_position_count_tells_a_sampler_that_does_not_use_its_cache():
    # the notebook checks that within the window generate_cached feeds one position per character
    torch.manual_seed(0)
    model, n = nb["FastGPT"](config(**CONFIGS[1])), CONFIGS[1]["block_size"] - 1
    assert nb["positions_computed"](nb["generate_cached"], model, n) == n
    assert nb["positions_computed"](nb["generate"], model, n) > n  # recomputing everything: caught
