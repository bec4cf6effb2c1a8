"""Attention statistics without an N x N map: queries are processed in chunks.

Everything here is exact up to floating point (fp32 accumulation) and is tested against a dense reference
(`dense_probabilities`) under hypothesis-generated shapes, masks and chunk sizes. Peak extra memory is
O(B x H x chunk x Nk), never O(Nq x Nk).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# Entropy clamps probabilities at this floor before the log (paper A, App. A.4), so p log p of a zero is 0.
ENTROPY_FLOOR = 1e-12


def _logits(q: torch.Tensor, k: torch.Tensor, scale: float | None) -> torch.Tensor:
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    return torch.matmul(q.float(), k.float().transpose(-1, -2)) * scale


def additive_mask(attn_mask: torch.Tensor | None, dtype=torch.float32) -> torch.Tensor | None:
    """SDPA's mask as an additive float mask (bool: True = attend; float: added to the logits)."""
    if attn_mask is None:
        return None
    if attn_mask.dtype == torch.bool:
        zero = torch.zeros((), dtype=dtype, device=attn_mask.device)
        return torch.where(attn_mask, zero, torch.full((), float("-inf"), dtype=dtype, device=attn_mask.device))
    return attn_mask.to(dtype)


def dense_probabilities(q, k, attn_mask=None, scale=None, bias=None) -> torch.Tensor:
    """The full (B, H, Nq, Nk) attention map in fp32: the reference the chunked code is tested against."""
    logits = _logits(q, k, scale)
    mask = additive_mask(attn_mask)
    if mask is not None:
        logits = logits + mask
    if bias is not None:
        logits = logits + bias.float()
    return torch.softmax(logits, dim=-1)


@dataclass
class AttentionStats:
    """Per (batch, head) statistics of one attention call, over the chosen queries."""
    mass: torch.Tensor            # (B, H, Nk): incoming attention m_j, mean over the chosen queries
    entropy: torch.Tensor | None  # (B, H, Nq'): entropy (nats) of each chosen query's row
    n_queries: int

    def head_mean(self) -> torch.Tensor:
        """(B, Nk) key importance averaged over heads."""
        return self.mass.mean(dim=1)


def chunked_logits(q: torch.Tensor, k: torch.Tensor, *, attn_mask=None, scale: float | None = None,
                   bias: torch.Tensor | None = None, query_rows: torch.Tensor | None = None, chunk: int = 1024):
    """Yield the fp32 logits (+ mask + bias) of `chunk` chosen queries at a time: (B, H, c, Nk).
    The one place the statistics below build logits; GQA keys are repeated to the query heads."""
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    if k.shape[1] != q.shape[1]:
        k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
    nq = q.shape[-2]
    rows = torch.arange(nq, device=q.device) if query_rows is None else query_rows.to(q.device)
    mask = additive_mask(attn_mask)
    for start in range(0, rows.numel(), chunk):
        idx = rows[start:start + chunk]
        logits = _logits(q[..., idx, :], k, scale)
        if mask is not None:
            logits = logits + _rows(mask, idx, nq)
        if bias is not None:
            logits = logits + _rows(bias.float(), idx, nq)
        yield logits


def _n_rows(q: torch.Tensor, query_rows: torch.Tensor | None) -> int:
    return int(q.shape[-2] if query_rows is None else query_rows.numel())


BACKENDS = ("auto", "chunked", "fused")


def attention_stats(q: torch.Tensor, k: torch.Tensor, *, attn_mask: torch.Tensor | None = None,
                    scale: float | None = None, bias: torch.Tensor | None = None,
                    query_rows: torch.Tensor | None = None, chunk: int = 1024,
                    entropy: bool = True, lse: torch.Tensor | None = None, backend: str = "auto") -> AttentionStats:
    """Incoming mass per key and per-query entropy.

    q: (B, H, Nq, D), k: (B, H, Nk, D) (k may have fewer heads for GQA: it is repeated). `attn_mask` as SDPA
    takes it; `bias` an extra additive logit bias broadcastable to (B, H, Nq, Nk) (e.g. an intervention's
    log eta); `query_rows` the query indices to average over (e.g. the image queries, as paper A).
    backend "fused": the two Triton passes of `fused.py` (CUDA; `lse`, the attention's own log-sum-exp of
    these logits (B, H, Nq), saves the first); "chunked": `chunk` queries at a time in PyTorch, any device
    and mask; "auto": fused where it applies (a CUDA tensor, a key-only mask), chunked otherwise."""
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r} is not one of {BACKENDS}")
    if backend != "chunked" and (backend == "fused" or q.is_cuda):
        from . import fused
        try:
            mass, ent = fused.fused_mass_entropy(q, k, attn_mask=attn_mask, scale=scale, bias=bias,
                                                 query_rows=query_rows, entropy=entropy, lse=lse)
            return AttentionStats(mass=mass, entropy=ent, n_queries=_n_rows(q, query_rows))
        except fused.Unsupported:
            if backend == "fused":
                raise
    mass = torch.zeros((q.shape[0], q.shape[1], k.shape[-2]), dtype=torch.float32, device=q.device)
    entropies = []
    for logits in chunked_logits(q, k, attn_mask=attn_mask, scale=scale, bias=bias, query_rows=query_rows,
                                 chunk=chunk):
        probs = torch.softmax(logits, dim=-1)
        mass += probs.sum(dim=-2)
        if entropy:
            entropies.append(-(probs * probs.clamp_min(ENTROPY_FLOOR).log()).sum(dim=-1))
        del logits, probs
    n = _n_rows(q, query_rows)
    return AttentionStats(mass=mass / max(n, 1), entropy=torch.cat(entropies, dim=-1) if entropies else None,
                          n_queries=n)


def _rows(mask: torch.Tensor, idx: torch.Tensor, nq: int) -> torch.Tensor:
    if mask.dim() >= 2 and mask.shape[-2] == nq and nq != 1:
        return mask.index_select(-2, idx)
    return mask


def selected_log_mass(q: torch.Tensor, k: torch.Tensor, selected: torch.Tensor, *,
                      attn_mask: torch.Tensor | None = None, scale: float | None = None,
                      bias: torch.Tensor | None = None, query_rows: torch.Tensor | None = None,
                      chunk: int = 1024) -> torch.Tensor:
    """log of the mean (over chosen queries) attention on the `selected` keys, (B, H), in log space.

    `selected` is a bool (B or 1, H or 1, Nk) key selection. Computed as logsumexp over the selected logits
    minus logsumexp over all logits, so a mass of 1e-300 is still a number (no underflow to 0): the
    post-intervention mass behind a reduction factor is measured, not floored."""
    minus_inf = torch.tensor(float("-inf"), device=q.device)
    sel = selected.to(torch.bool)[:, :, None, :]
    per_query = []
    for logits in chunked_logits(q, k, attn_mask=attn_mask, scale=scale, bias=bias, query_rows=query_rows,
                                 chunk=chunk):
        total = torch.logsumexp(logits, dim=-1)
        chosen = torch.logsumexp(torch.where(sel, logits, minus_inf), dim=-1)
        per_query.append(chosen - total)
    log_p = torch.cat(per_query, dim=-1).double()       # (B, H, Nq'): log of each query's selected mass
    return torch.logsumexp(log_p, dim=-1) - math.log(max(_n_rows(q, query_rows), 1))
