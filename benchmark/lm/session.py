"""Probing and sink masking inside a language model's attention, step by step (paper C).

`LMAttentionSession` intercepts every F.scaled_dot_product_attention call of the model (benchmark.probe.hook);
the n-th call of a forward is layer n (one attention call per layer and forward: LLaDA computes attention inside
its blocks, so there is no attention module to hook). At each step (`begin_step`, called by the sampler before
the step's forward) and layer it
  1. computes A_bar_j, the attention mass per key averaged over heads and over the queries paper C uses: every
     position for a DLM, only the last token's row for an ARM (benchmark.probe.math.attention_stats, chunked);
  2. with `mask_k` > 0 and a previous step: removes the top-k keys of the previous step's A_bar in this layer
     from every query and head (logit + a finite -inf, benchmark.interventions.log_eta_bias with eta = 0) and
     measures in log space the attention left on them (selected_log_mass, before and after);
  3. keeps the step's top keys (index, mass) per layer and for the mean over layers as the record, and the
     layer's top-k as the next step's selection.
The selection for step t is the attention of step t - 1 as the model would have computed it without the
removal (its own q and k, no bias): a sink is where attention goes, so masking at t - 1 does not hide the sink
that step t removes. Without masking the model's own SDPA call runs untouched (the probe only reads q and k).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ..interventions import combine_masks, head_mean_log, log_eta_bias
from ..probe.hook import attention_call, intercepting_sdpa
from ..probe.math import attention_stats, selected_log_mass

TOP_STORED = 32                  # top keys kept per (step, layer): the sink rule counts up to this many sinks


class ProbeError(RuntimeError):
    """The model's attention cannot be probed as loaded (e.g. no SDPA calls: an eager attention implementation)."""


@dataclass
class StepLayer:
    """One (step, layer) cell: the keys of largest A_bar (descending) and what the removal did."""
    top_index: np.ndarray
    top_mass: np.ndarray
    total: float
    n_keys: int
    log_mass_before: float = math.nan      # log of the mean attention on the removed keys, before / after
    log_mass_after: float = math.nan


@dataclass
class SessionRecord:
    steps: list[int] = field(default_factory=list)
    ids: list[np.ndarray] = field(default_factory=list)              # per step: the tokens the forward saw
    cells: list[list[StepLayer]] = field(default_factory=list)       # per step: each layer, then the layer mean


def causal_mask(nq: int, nk: int, device) -> torch.Tensor:
    """SDPA's is_causal as an explicit bool mask (True = attend; upper-left aligned as SDPA's: query i sees keys
    <= i), so that a removal can be added to it."""
    return torch.ones(nq, nk, dtype=torch.bool, device=device).tril()


class LMAttentionSession:
    """Probe (and optionally sink masking) for one generation; a context manager around the sampler."""

    def __init__(self, mode: str, mask_k: int = 0, chunk: int = 1024, top_stored: int = TOP_STORED):
        if mode not in ("dlm", "arm"):
            raise ValueError(f"mode must be 'dlm' or 'arm', got {mode!r}")
        self.mode, self.mask_k, self.chunk, self.top_stored = mode, int(mask_k), chunk, top_stored
        self.record = SessionRecord()
        self._layer = 0
        self._step: int | None = None
        self._selection: dict[int, np.ndarray] = {}      # layer -> key indices chosen at the previous step
        self._next: dict[int, np.ndarray] = {}
        self._layer_mass: list[np.ndarray] = []
        self._context = None

    def __enter__(self) -> "LMAttentionSession":
        self._context = intercepting_sdpa(self._on_sdpa)
        self._context.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        try:
            if exc[0] is None:          # a failing forward's own error is the one to see
                self._end_step()
        finally:
            self._context.__exit__(*exc)

    def begin_step(self, step: int, ids: torch.Tensor) -> None:
        """The sampler's on_step: step `step` is about to run its forward on `ids`."""
        self._end_step()
        self._step, self._layer = step, 0
        self.record.steps.append(step)
        self.record.ids.append(ids.detach().reshape(-1).cpu().numpy().astype(np.int64))
        self.record.cells.append([])

    def _end_step(self) -> None:
        """Close the step: its layer-mean cell (A_bar averaged over layers) goes last in the step's cells."""
        if self._step is None:
            return
        if not self._layer_mass:
            raise ProbeError("the model made no F.scaled_dot_product_attention call: load it with the SDPA "
                             "attention (attn_implementation='sdpa') so that the probe sees its attention")
        mean = np.mean(np.stack(self._layer_mass), axis=0)
        self.record.cells[-1].append(self._cell(mean))
        self._selection, self._next, self._layer_mass, self._step = self._next, {}, [], None

    def _cell(self, mass: np.ndarray) -> StepLayer:
        order = np.argsort(-mass, kind="stable")[:self.top_stored]
        return StepLayer(order.astype(np.int64), mass[order].astype(np.float32), float(mass.sum()), int(mass.shape[-1]))

    def _on_sdpa(self, func, args, kwargs):
        if self._step is None:                 # a forward outside any step (e.g. a warm-up): untouched
            return func(*args, **kwargs)
        call = attention_call(self._layer, self._layer, func, args, kwargs)
        layer = self._layer
        self._layer += 1
        q, k = call.query, call.key
        if q.shape[0] != 1:
            raise ProbeError(f"the LM probe takes one sequence per forward, got a batch of {q.shape[0]}")
        mask = call.attn_mask
        if call.is_causal:
            mask = causal_mask(q.shape[-2], k.shape[-2], q.device)
        rows = None if self.mode == "dlm" else torch.tensor([q.shape[-2] - 1])
        with torch.no_grad():
            natural = attention_stats(q, k, attn_mask=mask, scale=call.scale, query_rows=rows, chunk=self.chunk,
                                      entropy=False).head_mean()[0].float().cpu().numpy()
        n_keys = natural.shape[-1]
        cell = self._cell(natural)
        self.record.cells[-1].append(cell)
        self._layer_mass.append(natural)
        if self.mask_k > 0:
            self._next[layer] = cell.top_index[:self.mask_k]
        chosen = self._selection.get(layer)
        if chosen is None or self.mask_k == 0:
            return func(*args, **kwargs)
        selected = torch.zeros((1, q.shape[1], n_keys), dtype=torch.bool, device=q.device)
        selected[..., torch.as_tensor(chosen[chosen < n_keys], device=q.device)] = True
        bias = log_eta_bias(selected, 0.0, q.dtype)
        with torch.no_grad():
            before = selected_log_mass(q, k, selected, attn_mask=mask, scale=call.scale, query_rows=rows,
                                       chunk=self.chunk)
            after = selected_log_mass(q, k, selected, attn_mask=mask, scale=call.scale, query_rows=rows,
                                      chunk=self.chunk, bias=bias)
        cell.log_mass_before, cell.log_mass_after = head_mean_log(before), head_mean_log(after)
        return call.compute(attn_mask=combine_masks(mask, bias, q.dtype), is_causal=False)

