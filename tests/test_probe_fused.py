"""The fused Triton mass/entropy passes against the dense softmax.

On a CPU the kernels run under Triton's interpreter, which must be switched on before Triton compiles
anything, so those cases run in a subprocess. On a GPU (the lent device: `pytest tests/test_probe_fused.py`)
the compiled kernels are checked at production-like shapes, and the cuDNN log-sum-exp reuse is checked to
leave the attention output bit-identical.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

pytest.importorskip("triton")

ROOT = Path(__file__).resolve().parents[1]

# Each case: (batch, heads, key heads, queries, keys, head dim, mask kind, bias, query subset, dtype, seed).
# Sizes straddle the interpreter's 16-wide blocks; masks: key padding (bool), additive key mask (float).
CASES = [
    (1, 2, 2, 40, 50, 16, None, False, False, "float32", 0),
    (2, 4, 2, 33, 70, 32, "bool", False, False, "float32", 1),
    (1, 2, 1, 50, 37, 16, None, True, True, "float32", 2),
    (2, 2, 2, 17, 100, 64, "bool", True, True, "float32", 3),
    (1, 3, 3, 16, 16, 32, "float", False, False, "float32", 4),
    (2, 2, 2, 48, 31, 16, "float", True, False, "float16", 5),
    (1, 1, 1, 1, 65, 16, None, False, False, "float32", 6),
]

SCRIPT = textwrap.dedent("""
    import json, sys, torch
    from benchmark.probe.fused import fused_mass_entropy, key_bias, row_statistics, Unsupported
    from benchmark.probe.math import attention_stats, dense_probabilities
    from benchmark.interventions import log_eta_bias

    out = []
    for b, h, hk, nq, nk, d, mask_kind, with_bias, subset, dtype, seed in json.loads(sys.argv[1]):
        g = torch.Generator().manual_seed(seed)
        dtype = getattr(torch, dtype)
        q = (torch.randn(b, h, nq, d, generator=g) * 2).to(dtype)
        k = (torch.randn(b, hk, nk, d, generator=g) * 2).to(dtype)
        mask = None
        if mask_kind == "bool":
            mask = torch.rand(b, 1, 1, nk, generator=g) > 0.3
            mask[..., 0] = True
        elif mask_kind == "float":
            mask = torch.randn(1, 1, 1, nk, generator=g) * 3
        bias = None
        if with_bias:     # an intervention: log(eta) on two keys, the suppression value on a third
            selected = torch.zeros(1, h, nk, dtype=torch.bool)
            selected[..., :2] = True
            bias = log_eta_bias(selected, 0.3, torch.float32)
            bias[..., 2] = -1e30
        rows = torch.randperm(nq, generator=g)[: max(1, nq // 2)] if subset else None
        mass, ent = fused_mass_entropy(q, k, attn_mask=mask, bias=bias, query_rows=rows)
        ref = attention_stats(q, k, attn_mask=mask, bias=bias, query_rows=rows, chunk=7, backend="chunked")
        dense = dense_probabilities(q, k.repeat_interleave(h // hk, dim=1), mask, bias=bias)
        dense = dense if rows is None else dense[:, :, rows]
        # the attention's own log-sum-exp handed in (as the cuDNN reuse does): the column pass alone
        lse_all, _ = row_statistics(q, k, key_bias(mask, bias, b, h, nk), 1 / d ** 0.5, False)
        mass_lse, _ = fused_mass_entropy(q, k, attn_mask=mask, bias=bias, query_rows=rows, entropy=False, lse=lse_all)
        out.append({
            "mass_rel_err": float((mass - dense.mean(-2)).abs().max() / dense.mean(-2).abs().max()),
            "mass_vs_chunked_rel_err": float((mass - ref.mass).abs().max() / ref.mass.abs().max()),
            "mass_lse_rel_err": float((mass_lse - mass).abs().max() / mass.abs().max()),
            "entropy_abs_err": float((ent - ref.entropy).abs().max()),
            "rows_sum_err": float((mass.sum(-1) - 1).abs().max()),
        })
    try:
        fused_mass_entropy(torch.randn(1, 1, 4, 16), torch.randn(1, 1, 4, 16),
                           attn_mask=torch.ones(1, 1, 4, 4, dtype=torch.bool))
        per_query = "accepted"
    except Unsupported:
        per_query = "unsupported"
    print(json.dumps({"cases": out, "per_query_mask": per_query}))
""")


def test_fused_passes_match_dense_softmax_under_the_interpreter():
    import triton
    from packaging.version import Version
    if Version(triton.__version__) < Version("3.7"):
        # Triton 3.6's interpreter fails on these kernels (a numpy scalar conversion) where the compiled
        # kernels run; the interpreter of 3.7 (installed with torch 2.13) runs them
        pytest.skip(f"Triton {triton.__version__}'s interpreter; needs >= 3.7")
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(CASES)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["per_query_mask"] == "unsupported"
    for case, errors in zip(CASES, result["cases"]):
        fp16 = case[9] == "float16"
        # fp32 accumulation: 1e-5 relative; fp16 inputs are the same numbers in both paths (upcast), so
        # only the accumulation order differs there too
        assert errors["mass_rel_err"] < (1e-4 if fp16 else 1e-5), (case, errors)
        assert errors["mass_vs_chunked_rel_err"] < (1e-4 if fp16 else 1e-5), (case, errors)
        assert errors["mass_lse_rel_err"] < 1e-5, (case, errors)
        assert errors["entropy_abs_err"] < 1e-4, (case, errors)
        assert errors["rows_sum_err"] < 1e-5, (case, errors)


def test_auto_backend_keeps_cpu_calls_on_the_chunked_path():
    from benchmark.probe.math import attention_stats
    q, k = torch.randn(1, 2, 8, 16), torch.randn(1, 2, 8, 16)
    auto = attention_stats(q, k, chunk=3)
    chunked = attention_stats(q, k, chunk=3, backend="chunked")
    assert torch.equal(auto.mass, chunked.mass)
    with pytest.raises(ValueError, match="backend"):
        attention_stats(q, k, backend="triton")


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run on the lent device)")


@cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("heads,tokens,dim", [(24, 4608, 128), (24, 4429, 64), (4, 1000, 32)])
def test_fused_passes_on_gpu_match_dense(dtype, heads, tokens, dim):
    from benchmark.probe.math import attention_stats, dense_probabilities
    g = torch.Generator(device="cuda").manual_seed(tokens)
    q = torch.randn(1, heads, tokens, dim, device="cuda", generator=g).to(dtype)
    k = torch.randn(1, heads, tokens, dim, device="cuda", generator=g).to(dtype)
    keep = torch.rand(1, 1, 1, tokens, device="cuda", generator=g) > 0.1
    fast = attention_stats(q, k, attn_mask=keep, backend="fused")
    dense = dense_probabilities(q, k, keep)
    reference = dense.mean(-2)
    assert float((fast.mass - reference).abs().max() / reference.abs().max()) < 1e-5
    entropy = -(dense * dense.clamp_min(1e-12).log()).sum(-1)
    assert float((fast.entropy - entropy).abs().max()) < 1e-4


@cuda
def test_cudnn_lse_reuse_leaves_the_output_bit_identical():
    import torch.nn.functional as F

    from benchmark.probe.fused import sdpa_with_lse
    from benchmark.probe.math import attention_stats
    g = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (torch.randn(1, 24, 4608, 128, device="cuda", generator=g, dtype=torch.bfloat16) for _ in range(3))
    output, lse = sdpa_with_lse(F.scaled_dot_product_attention, q, k, v)
    assert torch.equal(output, F.scaled_dot_product_attention(q, k, v))
    if lse is None:
        pytest.skip("this GPU/torch does not run cuDNN attention bit-identically to SDPA (the row pass is used)")
    reused = attention_stats(q, k, entropy=False, lse=lse)
    fresh = attention_stats(q, k, entropy=False, backend="fused")
    assert float((reused.mass - fresh.mass).abs().max() / fresh.mass.abs().max()) < 1e-5
