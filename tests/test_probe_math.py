"""The attention statistics and intervention maths against dense references (hypothesis)."""
from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from hypothesis import given, settings, strategies as st  # noqa: E402

from benchmark.interventions import (combine_masks, log_eta_bias, replace_values, top_keys,  # noqa: E402
                                     union_keys)
from benchmark.probe.math import attention_stats, dense_probabilities, selected_log_mass  # noqa: E402

torch.set_default_dtype(torch.float32)


def _case(seed, b, h, nq, nk, d, mask_kind):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, h, nq, d, generator=g) * 2
    k = torch.randn(b, h, nk, d, generator=g) * 2
    v = torch.randn(b, h, nk, d, generator=g)
    mask = None
    if mask_kind == "key_padding":          # (B, 1, 1, Nk) bool, at least one key kept
        keep = torch.rand(b, 1, 1, nk, generator=g) > 0.3
        keep[..., 0] = True
        mask = keep
    elif mask_kind == "additive":           # full (B, 1, Nq, Nk) float
        mask = torch.randn(b, 1, nq, nk, generator=g)
    return q, k, v, mask


shapes = st.tuples(st.integers(0, 10_000), st.integers(1, 2), st.integers(1, 3), st.integers(1, 40),
                   st.integers(1, 40), st.sampled_from([4, 8, 16]), st.sampled_from([None, "key_padding", "additive"]),
                   st.integers(1, 64))


@settings(max_examples=60, deadline=None)
@given(shapes, st.booleans())
def test_chunked_mass_and_entropy_equal_the_dense_map(case, subset):
    seed, b, h, nq, nk, d, mask_kind, chunk = case
    q, k, _, mask = _case(seed, b, h, nq, nk, d, mask_kind)
    rows = torch.arange(0, nq, 2) if subset else None
    stats = attention_stats(q, k, attn_mask=mask, query_rows=rows, chunk=chunk)
    probs = dense_probabilities(q, k, mask)
    if rows is not None:
        probs = probs[..., rows, :]
    torch.testing.assert_close(stats.mass, probs.mean(dim=-2), rtol=0, atol=1e-6)
    entropy = -(probs * probs.clamp_min(1e-12).log()).sum(-1)
    torch.testing.assert_close(stats.entropy, entropy, rtol=0, atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(shapes, st.floats(0.05, 3.0))
def test_selected_log_mass_is_the_log_of_the_dense_mass(case, eta):
    seed, b, h, nq, nk, d, mask_kind, chunk = case
    q, k, _, mask = _case(seed, b, h, nq, nk, d, mask_kind)
    g = torch.Generator().manual_seed(seed + 1)
    selected = torch.rand(b, h, nk, generator=g) > 0.6
    selected[..., 0] = True
    bias = log_eta_bias(selected, eta, torch.float32)
    got = selected_log_mass(q, k, selected, attn_mask=mask, bias=bias, chunk=chunk)
    dense = dense_probabilities(q, k, mask, bias=bias)
    want = (dense * selected[:, :, None, :]).sum(-1).mean(-1)
    np.testing.assert_allclose(got.exp().numpy(), want.double().numpy(), rtol=1e-5, atol=1e-7)


@settings(max_examples=40, deadline=None)
@given(shapes, st.floats(0.01, 1.0))
def test_log_eta_is_a_logit_shift_through_sdpa(case, eta):
    """The score-path intervention equals a dense softmax with log(eta) added to the selected logits."""
    seed, b, h, nq, nk, d, mask_kind, _ = case
    q, k, v, mask = _case(seed, b, h, nq, nk, d, mask_kind)
    sel = top_keys(attention_stats(q, k, attn_mask=mask).mass, 1)
    bias = log_eta_bias(sel, eta, q.dtype)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=combine_masks(mask, bias, q.dtype))
    want = dense_probabilities(q, k, mask, bias=bias) @ v
    # fp32 SDPA against the reference: both round at ~1e-7 per operation over a softmax and a weighted sum
    torch.testing.assert_close(out, want, rtol=1e-5, atol=5e-6)


def test_log_eta_is_not_the_released_probability_scaling():
    """The released code set the sink's probability to eta * p and rescaled the others to fill 1 - eta * p.
    A logit shift gives the sink eta * p / (1 - p + eta * p) instead: the two differ for 0 < eta < 1."""
    q, k, _, _ = _case(0, 1, 1, 5, 7, 8, None)
    sel = torch.zeros(1, 1, 7, dtype=torch.bool)
    sel[..., 2] = True
    eta = 0.5
    shifted = dense_probabilities(q, k, bias=log_eta_bias(sel, eta, torch.float32))
    p = dense_probabilities(q, k)
    ps = p[..., 2:3]
    released = p * (1 - eta * ps) / (1 - ps)
    released[..., 2:3] = eta * ps
    torch.testing.assert_close(shifted[..., 2:3], eta * ps / (1 - ps + eta * ps), rtol=0, atol=1e-6)
    assert (shifted[..., 2] - released[..., 2]).abs().max() > 1e-3


def test_eta_one_is_bit_identical_and_eta_zero_suppresses_below_1e_30():
    q, k, v, mask = _case(3, 2, 4, 33, 45, 16, "key_padding")
    sel = union_keys(attention_stats(q, k, attn_mask=mask).mass, 3)
    plain = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    one = F.scaled_dot_product_attention(q, k, v, attn_mask=combine_masks(mask, log_eta_bias(sel, 1.0, q.dtype), q.dtype))
    assert torch.equal(plain, one)
    plain_nomask = F.scaled_dot_product_attention(q, k, v)
    one_nomask = F.scaled_dot_product_attention(q, k, v, attn_mask=log_eta_bias(sel, 1.0, q.dtype))
    assert torch.equal(plain_nomask, one_nomask)
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        bias = log_eta_bias(sel, 0.0, dtype)
        out = F.scaled_dot_product_attention(q.to(dtype), k.to(dtype), v.to(dtype),
                                             attn_mask=combine_masks(mask, bias, dtype))
        assert torch.isfinite(out).all(), f"eta=0 gives NaN/inf in {dtype}"
        log_after = selected_log_mass(q, k, sel, attn_mask=mask, bias=bias.float())
        assert (log_after < math.log(1e-30)).all(), "selected keys keep >= 1e-30 of the attention"


def test_union_and_per_head_selection_differ_as_specified():
    mass = torch.tensor([[[0.5, 0.1, 0.1, 0.3], [0.1, 0.6, 0.1, 0.2]]])   # (1, 2 heads, 4 keys)
    per_head = top_keys(mass, 1)
    union = union_keys(mass, 1)
    assert per_head[0, 0].nonzero().flatten().tolist() == [0] and per_head[0, 1].nonzero().flatten().tolist() == [1]
    assert union[0, 0].nonzero().flatten().tolist() == [1] == union[0, 1].nonzero().flatten().tolist()  # mean 0.35


def test_value_replacement_modes():
    v = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(1, 2, 4, 3)
    sel = torch.zeros(1, 2, 4, dtype=torch.bool)
    sel[0, 0, 1] = True
    zero = replace_values(v, sel, "zero")
    assert torch.equal(zero[0, 0, 1], torch.zeros(3)) and torch.equal(zero[0, 1], v[0, 1])
    mean = replace_values(v, sel, "mean")
    torch.testing.assert_close(mean[0, 0, 1], v[0, 0, [0, 2, 3]].mean(0))
    half = replace_values(v, sel, "lerp", alpha=0.5)
    torch.testing.assert_close(half[0, 0, 1], 0.5 * v[0, 0, 1] + 0.5 * v[0, 0, [0, 2, 3]].mean(0))


class _LargestTensor(torch.overrides.TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in (out if isinstance(out, (tuple, list)) else (out,)):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_probe_memory_is_chunk_times_keys_not_the_full_map():
    n, chunk = 8192, 256
    q = torch.randn(1, 1, n, 16)
    k = torch.randn(1, 1, n, 16)
    with _LargestTensor() as seen:
        stats = attention_stats(q, k, chunk=chunk)
        selected_log_mass(q, k, torch.zeros(1, 1, n, dtype=torch.bool).index_fill_(-1, torch.tensor([0]), True), chunk=chunk)
    assert stats.mass.shape == (1, 1, n)
    assert seen.largest <= chunk * n, f"a tensor of {seen.largest} elements (> chunk x N = {chunk * n})"
    assert seen.largest < n * n // 8
