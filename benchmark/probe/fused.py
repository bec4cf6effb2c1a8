"""Incoming attention mass and per-query entropy in two fused GPU passes (Triton), no N x N map.

Pass 1 (rows) streams the keys once per block of queries and keeps an online max, sum and sum of p*logit:
it yields each query's log-sum-exp and entropy. Pass 2 (columns) streams the queries once per block of keys
and sums exp(logit - lse) down each column: the incoming mass. Extra memory is O(B x H x N). When the
attention itself already produced its log-sum-exp (a flash kernel returns it), pass 1 is skipped.

What the passes support: a key-only additive bias (B or 1, H or 1, 1, Nk), which covers SDPA's key-padding
masks and the interventions' log(eta) on chosen keys, GQA keys, and a subset of query rows. Anything else
(per-query masks, CPU tensors, no Triton) goes through the chunked reference in `math.py`; both paths are
tested against the dense softmax (tests/test_probe_fused.py on the CPU through Triton's interpreter, and
benchmarks/probe_speed.py on a GPU).
"""
from __future__ import annotations

import math
import os

import torch

try:
    import triton
    import triton.language as tl
except ImportError:     # the chunked path serves every call without it
    triton = None

LOG2E = 1.4426950408889634
LN2 = 0.6931471805599453


def interpreting() -> bool:
    """Triton's CPU interpreter (TRITON_INTERPRET=1): the kernels run on CPU tensors, for the unit tests."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def available(tensor: torch.Tensor) -> bool:
    """Whether the fused passes can run on this tensor's device (on a CPU only under the interpreter)."""
    return triton is not None and (tensor.is_cuda or interpreting())


if triton is not None:
    @triton.jit
    def _row_pass(q_ptr, k_ptr, bias_ptr, lse_ptr, ent_ptr,
                  sqb, sqh, sqn, skb, skh, skn, sbb, sbh, n_heads, group, nq, nk, scale_log2,
                  D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, HAS_BIAS: tl.constexpr,
                  ENTROPY: tl.constexpr, IEEE: tl.constexpr):
        bh = tl.program_id(0)
        b, h = bh // n_heads, bh % n_heads
        rows = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)
        dims = tl.arange(0, D)
        q = tl.load(q_ptr + b * sqb + h * sqh + rows[:, None] * sqn + dims[None, :], mask=rows[:, None] < nq,
                    other=0.0)
        k_base = k_ptr + b * skb + (h // group) * skh
        # running max starts finite so that a block of fully masked keys gives exp2(-inf) = 0, not NaN
        m = tl.full((BLOCK_M,), -1.0e30, tl.float32)
        total = tl.zeros((BLOCK_M,), tl.float32)
        weighted = tl.zeros((BLOCK_M,), tl.float32)
        for start in range(0, nk, BLOCK_N):
            cols = start + tl.arange(0, BLOCK_N)
            k = tl.load(k_base + cols[:, None] * skn + dims[None, :], mask=cols[:, None] < nk, other=0.0)
            if IEEE:
                s = tl.dot(q, tl.trans(k), input_precision="ieee")
            else:
                s = tl.dot(q, tl.trans(k))
            s = s * scale_log2
            if HAS_BIAS:
                s += tl.load(bias_ptr + b * sbb + h * sbh + cols, mask=cols < nk, other=0.0)[None, :] * 1.4426950408889634
            s = tl.where(cols[None, :] < nk, s, float("-inf"))
            m_new = tl.maximum(m, tl.max(s, axis=1))
            alpha = tl.exp2(m - m_new)
            p = tl.exp2(s - m_new[:, None])
            total = total * alpha + tl.sum(p, axis=1)
            if ENTROPY:
                weighted = weighted * alpha + tl.sum(p * tl.where(p > 0, s, 0.0), axis=1)
            m = m_new
        lse2 = m + tl.log2(total)
        out = bh * nq + rows
        tl.store(lse_ptr + out, lse2 * 0.6931471805599453, mask=rows < nq)
        if ENTROPY:
            # H = ln(sum e^s) - sum p s, both in nats; the logits here are in log2 units
            tl.store(ent_ptr + out, (lse2 - weighted / total) * 0.6931471805599453, mask=rows < nq)

    @triton.jit
    def _column_pass(q_ptr, k_ptr, bias_ptr, lse_ptr, mass_ptr,
                       sqb, sqh, sqn, skb, skh, skn, sbb, sbh, n_heads, group, nq, nk, scale_log2,
                       D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, HAS_BIAS: tl.constexpr,
                       IEEE: tl.constexpr):
        # keys on the tile's rows, queries on its columns: the sum over queries is a row reduction, and it is
        # done once at the end from an elementwise accumulator rather than at every block of queries
        bh = tl.program_id(0)
        b, h = bh // n_heads, bh % n_heads
        cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
        dims = tl.arange(0, D)
        k = tl.load(k_ptr + b * skb + (h // group) * skh + cols[:, None] * skn + dims[None, :],
                    mask=cols[:, None] < nk, other=0.0)
        key_bias = tl.zeros((BLOCK_N,), tl.float32)
        if HAS_BIAS:
            key_bias = tl.load(bias_ptr + b * sbb + h * sbh + cols, mask=cols < nk, other=0.0) * 1.4426950408889634
        q_base = q_ptr + b * sqb + h * sqh
        acc = tl.zeros((BLOCK_N, BLOCK_M), tl.float32)
        for start in range(0, nq, BLOCK_M):
            rows = start + tl.arange(0, BLOCK_M)
            q = tl.load(q_base + rows[:, None] * sqn + dims[None, :], mask=rows[:, None] < nq, other=0.0)
            lse2 = tl.load(lse_ptr + bh * nq + rows, mask=rows < nq, other=float("inf")) * 1.4426950408889634
            if IEEE:
                s = tl.dot(k, tl.trans(q), input_precision="ieee")
            else:
                s = tl.dot(k, tl.trans(q))
            acc += tl.exp2(s * scale_log2 + key_bias[:, None] - lse2[None, :])
        tl.store(mass_ptr + bh * nk + cols, tl.sum(acc, axis=1), mask=cols < nk)


class Unsupported(ValueError):
    """The call's mask or shapes are outside what the fused passes handle (the caller falls back)."""


def key_bias(attn_mask: torch.Tensor | None, bias: torch.Tensor | None, batch: int, heads: int,
             n_keys: int) -> torch.Tensor | None:
    """SDPA's mask plus an extra additive bias as one (B, H, Nk) fp32 key bias, or Unsupported when either
    varies with the query (per-query masks need the chunked path)."""
    total = None
    for part in (attn_mask, bias):
        if part is None:
            continue
        if part.dim() >= 2 and part.shape[-2] != 1:
            raise Unsupported("a per-query mask or bias")
        if part.dtype == torch.bool:
            part = torch.zeros(part.shape, dtype=torch.float32, device=part.device).masked_fill(~part, float("-inf"))
        part = part.float().reshape(*part.shape[:-2], part.shape[-1]) if part.dim() >= 2 else part.float()
        while part.dim() < 3:
            part = part.unsqueeze(0)
        total = part if total is None else total + part
    if total is None:
        return None
    return total.expand(batch, heads, n_keys).contiguous()


# (queries per block, keys per block, warps, pipeline stages), the fastest of benchmarks/fused_blocks.py's
# sweep on an H100 (docs/benchmarks/fused-blocks.md); the interpreter takes the smallest tl.dot tiles
ROW_BLOCKS = {64: (64, 128, 4, 3), 128: (64, 128, 4, 3)}
COLUMN_BLOCKS = {64: (128, 64, 4, 3), 128: (64, 128, 8, 3)}


def _blocks(table: dict, dim: int) -> tuple[int, ...]:
    if interpreting():
        return 16, 16, 1
    return table[64] if dim <= 64 else table[128]


def row_statistics(q: torch.Tensor, k: torch.Tensor, bias: torch.Tensor | None, scale: float,
                   entropy: bool, blocks: tuple[int, ...] | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Pass 1: each query's log-sum-exp (natural log, fp32) and, if asked, entropy in nats: (B, H, Nq).
    `blocks` = (queries per block, keys per block, warps[, pipeline stages]), for tuning."""
    batch, heads, nq, dim = q.shape
    nk = k.shape[-2]
    lse = torch.empty((batch, heads, nq), dtype=torch.float32, device=q.device)
    ent = torch.empty_like(lse) if entropy else lse
    block_m, block_n, warps, *stages = blocks or _blocks(ROW_BLOCKS, dim)
    grid = (batch * heads, triton.cdiv(nq, block_m))
    _row_pass[grid](q, k, bias if bias is not None else lse, lse, ent,
                    q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1), k.stride(2),
                    *(bias.stride()[:2] if bias is not None else (0, 0)), heads, heads // k.shape[1], nq, nk,
                    scale * LOG2E, D=dim, BLOCK_M=block_m, BLOCK_N=block_n, HAS_BIAS=bias is not None,
                    ENTROPY=entropy, IEEE=q.dtype == torch.float32, num_warps=warps, **({'num_stages': stages[0]} if stages else {}))
    return lse, (ent if entropy else None)


def column_mass(q: torch.Tensor, k: torch.Tensor, lse: torch.Tensor, bias: torch.Tensor | None,
                scale: float, blocks: tuple[int, ...] | None = None) -> torch.Tensor:
    """Pass 2: sum over the queries of softmax(q k^T * scale + bias) per key, (B, H, Nk) fp32."""
    batch, heads, nq, dim = q.shape
    nk = k.shape[-2]
    mass = torch.empty((batch, heads, nk), dtype=torch.float32, device=q.device)
    block_m, block_n, warps, *stages = blocks or _blocks(COLUMN_BLOCKS, dim)
    grid = (batch * heads, triton.cdiv(nk, block_n))
    _column_pass[grid](q, k, bias if bias is not None else mass, lse.contiguous(), mass,
                       q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1), k.stride(2),
                       *(bias.stride()[:2] if bias is not None else (0, 0)), heads, heads // k.shape[1], nq, nk,
                       scale * LOG2E, D=dim, BLOCK_M=block_m, BLOCK_N=block_n, HAS_BIAS=bias is not None,
                       IEEE=q.dtype == torch.float32, num_warps=warps, **({'num_stages': stages[0]} if stages else {}))
    return mass


def fused_mass_entropy(q: torch.Tensor, k: torch.Tensor, *, attn_mask: torch.Tensor | None = None,
                       scale: float | None = None, bias: torch.Tensor | None = None,
                       query_rows: torch.Tensor | None = None, entropy: bool = True,
                       lse: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(mean incoming mass over the chosen queries (B, H, Nk), entropy per chosen query (B, H, Nq') or None).

    Same contract as `math.attention_stats`; `lse` (B, H, Nq), the attention's own natural-log log-sum-exp
    over all queries, skips pass 1 when no entropy is asked for. Raises Unsupported for what it cannot do."""
    if not available(q):
        raise Unsupported("no Triton, or a CPU tensor")
    if q.shape[-1] not in (16, 32, 64, 128) or k.shape[-1] != q.shape[-1]:
        raise Unsupported(f"head dim {q.shape[-1]}")
    if q.shape[1] % k.shape[1]:
        raise Unsupported("query heads not a multiple of key heads")
    if q.dtype not in (torch.float32, torch.float16, torch.bfloat16) or k.dtype != q.dtype:
        raise Unsupported(f"dtype {q.dtype}/{k.dtype}")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    batch, heads, nq = q.shape[:3]
    bias_keys = key_bias(attn_mask, bias, batch, heads, k.shape[-2])
    if query_rows is not None:
        rows = query_rows.to(q.device)
        q = q.index_select(2, rows)
        lse = None if lse is None else lse.index_select(2, rows)
    if q.stride(-1) != 1:
        q = q.contiguous()
    if k.stride(-1) != 1:
        k = k.contiguous()
    ent = None
    if lse is None or entropy:
        lse, ent = row_statistics(q, k, bias_keys, scale, entropy)
    n = q.shape[2]
    mass = column_mass(q, k, lse, bias_keys, scale)
    return mass / max(n, 1), ent


# (shapes, dtype, device, scale) -> whether cuDNN's attention asked for its log-sum-exp returns exactly the
# output that F.scaled_dot_product_attention returns: checked once per signature, so reusing its log-sum-exp
# never changes what a passive probe's generation computes
_CUDNN_IS_SDPA: dict[tuple, bool] = {}


def sdpa_with_lse(sdpa, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                  attn_mask: torch.Tensor | None = None, dropout_p: float = 0.0, is_causal: bool = False,
                  scale: float | None = None, enable_gqa: bool = False,
                  **extra) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`sdpa(...)`'s output and, where the GPU gives it for free, its log-sum-exp (B, H, Nq) in natural log.

    On Hopper SDPA runs cuDNN's kernel for unmasked half-precision attention; asked for its log-sum-exp
    the same kernel costs the same, so the column pass is the only extra work. Anything else (a mask, a
    causal call, fp32, GQA, a CPU, a release where the two differ) returns (sdpa(...), None)."""
    def plain():
        # enable_gqa is passed on only when set: older torch releases do not take it
        gqa = {"enable_gqa": True} if enable_gqa else {}
        return sdpa(query, key, value, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, scale=scale,
                    **gqa, **extra)

    if (extra or not query.is_cuda or attn_mask is not None or is_causal or dropout_p
            or query.dtype not in (torch.float16, torch.bfloat16) or key.shape[1] != query.shape[1]):
        return plain(), None
    signature = (tuple(query.shape), tuple(key.shape), tuple(value.shape), query.dtype, query.device, scale)
    if _CUDNN_IS_SDPA.get(signature) is False:
        return plain(), None
    try:
        output, lse = torch.ops.aten._scaled_dot_product_cudnn_attention(
            query, key, value, None, True, 0.0, False, False, scale=scale)[:2]
    except (RuntimeError, AttributeError, NotImplementedError):
        _CUDNN_IS_SDPA[signature] = False
        return plain(), None
    if signature not in _CUDNN_IS_SDPA:
        reference = plain()
        _CUDNN_IS_SDPA[signature] = bool(torch.equal(output, reference))
        if not _CUDNN_IS_SDPA[signature]:
            return reference, None
    return output, lse.reshape(query.shape[:3])
