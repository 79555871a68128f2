"""Notebook 02's own code: four averages of the past that agree, and a causal self-attention head."""
import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings, strategies as st

from notebook_code import load

nb = load("02_self_attention")
sizes = st.tuples(st.integers(1, 5), st.integers(1, 16), st.integers(1, 8))  # B, T, C
seeds = st.integers(0, 2**31 - 1)
fast = settings(max_examples=40, deadline=None)


def make_head(C, head_size, seed):
    torch.manual_seed(seed)
    return [nn.Linear(C, head_size, bias=False) for _ in range(3)]  # key, query, value


@fast
@given(sizes, seeds)
def test_the_four_versions_agree(size, seed):
    torch.manual_seed(seed)
    x = torch.randn(*size)
    xbow = nb["xbow_loop"](x)
    assert torch.allclose(xbow, nb["xbow_matmul"](x), atol=1e-6)
    assert torch.allclose(xbow, nb["xbow_softmax"](x), atol=1e-6)
    assert torch.allclose(xbow[:, -1], x.mean(1), atol=1e-6)  # the last step averages everything


@pytest.mark.parametrize("T", [1, 2, 7, 32])
def test_parameter_free_weights_are_the_normalised_lower_triangle(T):
    expected = torch.tril(torch.ones(T, T)) / torch.arange(1, T + 1)[:, None]
    for average in ("xbow_loop", "xbow_matmul", "xbow_softmax"):
        assert torch.allclose(nb["weights_of"](nb[average], T), expected, atol=1e-6)


@fast
@given(sizes, st.integers(1, 8), seeds)
def test_head_output_shape_and_weights(size, head_size, seed):
    B, T, C = size
    x = torch.randn(B, T, C)
    with torch.no_grad():
        out, wei = nb["self_attention"](x, *make_head(C, head_size, seed))
    assert out.shape == (B, T, head_size) and wei.shape == (B, T, T)
    assert torch.allclose(wei.sum(-1), torch.ones(B, T), atol=1e-5)
    assert torch.all(wei.triu(diagonal=1) == 0)


@fast
@given(sizes, st.data(), seeds)
def test_head_is_causal(size, data, seed):
    """Changing the tokens after position t never changes the output at positions <= t."""
    B, T, C = size
    t = data.draw(st.integers(0, T - 1))
    torch.manual_seed(seed)
    x = torch.randn(B, T, C)
    changed = x.clone()
    changed[:, t + 1:] = torch.randn(B, T - t - 1, C) * 10
    head = make_head(C, 4, seed)
    with torch.no_grad():
        before, _ = nb["self_attention"](x, *head)
        after, _ = nb["self_attention"](changed, *head)
    assert torch.allclose(before[:, :t + 1], after[:, :t + 1], atol=1e-6)


def test_without_the_mask_the_future_leaks():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 16)
    changed = x.clone()
    changed[:, -1] += 1.0
    head = make_head(16, 8, 0)
    with torch.no_grad():
        before, _ = nb["self_attention"](x, *head, causal=False)
        after, _ = nb["self_attention"](changed, *head, causal=False)
    assert not torch.allclose(before[:, 0], after[:, 0])


@pytest.mark.parametrize("head_size", [8, 16, 64])
def test_scaling_brings_the_variance_of_the_affinities_to_one(head_size):
    """With unit-variance q and k, var(q @ k^T) ~ head_size; times head_size**-0.5 it is ~ 1."""
    torch.manual_seed(head_size)
    q, k = torch.randn(64, 64, head_size), torch.randn(64, 64, head_size)
    affinities = q @ k.transpose(-2, -1)
    assert 0.9 * head_size < affinities.var() < 1.1 * head_size
    assert 0.9 < (affinities * head_size**-0.5).var() < 1.1


def test_the_head_scales_by_head_size_not_by_channels():
    """With all-equal key and query weights, the one attention logit to check is q·k / sqrt(head_size)."""
    C, head_size = 32, 4
    key, query, value = make_head(C, head_size, 0)
    for linear in (key, query):
        nn.init.constant_(linear.weight, 0.1)
    x = torch.ones(1, 2, C)
    with torch.no_grad():
        _, wei = nb["self_attention"](x, key, query, value, causal=False)
    assert torch.allclose(wei, torch.full((1, 2, 2), 0.5))  # equal tokens: equal weights
    x[0, 1] = 2.0  # token 1 now has key 2 * 3.2 per channel: logit ratio tells the scale
    with torch.no_grad():
        _, wei = nb["self_attention"](x, key, query, value, causal=False)
    q0, k0, k1 = 3.2, 3.2, 6.4  # each channel of q and k: 0.1 * 32 * x
    expected = torch.softmax(torch.tensor([q0 * k0, q0 * k1]) * head_size * head_size**-0.5, dim=0)
    assert torch.allclose(wei[0, 0], expected, atol=1e-5)
