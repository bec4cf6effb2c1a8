"""One generation with probes and/or an intervention installed: the measurement core.

AttentionSession hooks every attention layer it needs (benchmark.probe.hook), follows the denoising step
(the adapter's step counter, updated before each step runs), tells CFG branches apart (the family's CFG
layout and the call order within a step), and for each attention call
  1. applies the intervention, if the call is in its scope (layer, step window, branch), choosing the keys
     from the current call's own attention and verifying the result in log space;
  2. records the probe statistics of the attention actually used (after any intervention).
A passive probe returns nothing to the hook, so the pipeline's own attention runs untouched.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from ..adapters.segmentation import MODALITIES, KeySegmentation
from ..interventions import (InterventionLog, InterventionSpec, combine_masks, fixed_keys, head_mean_log, log_eta_bias,
                             matched_random_keys, replace_values, top_keys, uniform_random_keys, union_keys)
from .hook import AttentionCall, attention_hooks
from .math import attention_stats, chunked_logits, selected_log_mass

# mass, entropy, key/value norms, the mean logit q.k*scale each key gets (after QK-norm and RoPE), the
# per-channel energy k^2 of the top-5 keys and of all keys (for RoPE frequency bands), and the hidden-state
# magnitudes per token at the output of every block (massive activations).
STATS = ("mass", "entropy", "key_norm", "value_norm", "logit_mean", "logit_mean_pre_rope", "key_energy", "activation")
# Submodules whose outputs are q and k after QK-norm and before RoPE; "added" ones hold the text stream of
# double-stream blocks (joined to the image stream in the family's order, Family.joint_text_first).
PRE_ROPE_MODULES = ("norm_q", "norm_k", "norm_added_q", "norm_added_k")
TOP_ENERGY_KEYS = 5
QUERY_SETS = ("auto", "all", "image", "text")
TEXT = MODALITIES.index("text")


@dataclass(frozen=True)
class ProbeSpec:
    """What to record. `queries="auto"`: image queries in joint layers (paper A), all queries elsewhere."""
    layers: tuple[int, ...] | None = None       # None: every layer
    steps: tuple[int, ...] | None = None        # None: every step
    stats: tuple[str, ...] = ("mass",)
    per_head: bool = False                      # keep (H, Nk) masses, not only the head mean
    queries: str = "auto"
    branches: tuple[str, ...] = ("cond",)
    chunk: int = 1024

    def __post_init__(self):
        unknown = set(self.stats) - set(STATS)
        if unknown:
            raise ValueError(f"unknown probe statistic(s) {sorted(unknown)}; known: {STATS}")
        if self.queries not in QUERY_SETS:
            raise ValueError(f"queries {self.queries!r} is not one of {QUERY_SETS}")
        if not set(self.branches) <= {"cond", "uncond"}:
            raise ValueError(f"branches must be cond and/or uncond, got {self.branches}")

    def covers(self, layer: int, step: int, branch: str) -> bool:
        return ((self.layers is None or layer in self.layers) and (self.steps is None or step in self.steps)
                and branch in self.branches)


@dataclass
class _Row:
    """One batch row of an attention call: which prompt and branch it is, and its keys' labels."""
    row: int
    item: int
    branch: str
    segmentation: KeySegmentation | None


class AttentionSession:
    """Probes and an intervention for one adapter.generate() call over `items` (WorkItems, in batch order)."""

    def __init__(self, adapter, items: Sequence, probe: ProbeSpec | None = None,
                 intervention: InterventionSpec | None = None, chunk: int = 1024):
        self.adapter = adapter
        self.items = list(items)
        self.probe = probe
        self.intervention = intervention
        self.chunk = chunk
        self.layers = adapter.attention_layers()
        self.records: dict[tuple[int, int, int, str], dict[str, np.ndarray]] = {}
        self.log = InterventionLog()
        self.segmentation_mismatches = 0
        self._calls_this_step: dict[int, int] = defaultdict(int)
        self._segments: dict[tuple[str, int], KeySegmentation] = {}
        self._random_cache: dict[tuple, torch.Tensor] = {}
        self._per_call_draws = 0
        self.activations: dict[tuple[int, int, int, str], dict[str, Any]] = {}
        self._pre_rope: dict[tuple[int, str], torch.Tensor] = {}
        self._block_calls_this_step: dict[int, int] = defaultdict(int)

    # ------------------------------------------------------------ installing
    def _needed_layers(self):
        n = len(self.layers)
        out = []
        for layer in self.layers:
            probed = self.probe is not None and (self.probe.layers is None or layer.index in self.probe.layers)
            intervened = self.intervention is not None and self.intervention.covers_layer(layer.index, n)
            if probed or intervened:
                out.append(layer)
        return out

    def __enter__(self) -> "AttentionSession":
        self._remove_listener = self.adapter.add_step_listener(self._on_step)
        self._block_handles = []
        if self.probe is not None and "activation" in self.probe.stats:
            for index, (name, block) in enumerate(_blocks_of(self.adapter.denoiser, self.layers)):
                self._block_handles.append(block.register_forward_hook(self._activation_hook(index, name)))
        if self.probe is not None and "logit_mean_pre_rope" in self.probe.stats:
            for layer in self._needed_layers():
                for attr in PRE_ROPE_MODULES:
                    sub = getattr(layer.module, attr, None)
                    if isinstance(sub, torch.nn.Module):
                        self._block_handles.append(sub.register_forward_hook(self._pre_rope_hook(layer.index, attr)))
        self._hooks = attention_hooks(self._needed_layers(), self._on_attention)
        self._hooks.__enter__()
        return self

    def _pre_rope_hook(self, layer_index: int, attr: str):
        def hook(module, args, output):
            if isinstance(output, torch.Tensor):
                self._pre_rope[(layer_index, attr)] = output.detach()
            return None
        return hook

    def _pre_rope_qk(self, call: AttentionCall):
        """(q, k) in (B, H, N, D) before RoPE for this call, or None when they cannot be assembled."""
        parts = {attr: self._pre_rope.pop((call.layer.index, attr), None) for attr in PRE_ROPE_MODULES}
        heads, dim = call.query.shape[1], call.query.shape[-1]

        def heads_first(t):
            if t is None:
                return None
            if t.dim() == 3:                       # (B, N, H*D): QK-norm across heads (Wan, LTX)
                t = t.unflatten(-1, (-1, dim))
            return t.transpose(1, 2) if t.shape[2] == heads else t   # (B, N, H, D) -> (B, H, N, D)

        q, k = heads_first(parts["norm_q"]), heads_first(parts["norm_k"])
        aq, ak = heads_first(parts["norm_added_q"]), heads_first(parts["norm_added_k"])
        if q is None or k is None:
            return None
        if aq is not None and ak is not None:
            text_first = getattr(self.adapter.family, "joint_text_first", True)
            q = torch.cat([aq, q] if text_first else [q, aq], dim=2)
            k = torch.cat([ak, k] if text_first else [k, ak], dim=2)
        if q.shape != call.query.shape or k.shape != call.key.shape:
            return None
        return q, k

    def __exit__(self, *exc) -> None:
        try:
            self._hooks.__exit__(*exc)
        finally:
            for handle in self._block_handles:
                handle.remove()
            self._remove_listener()

    def _on_step(self, step: int) -> None:
        self._calls_this_step.clear()
        self._block_calls_this_step.clear()

    def _activation_hook(self, index: int, name: str):
        """Per-token max |h| over channels of every (B, N, C) tensor a block outputs, per branch row."""
        def hook(module, args, output):
            step = self.adapter.step
            call = self._block_calls_this_step[index]
            self._block_calls_this_step[index] += 1
            tensors = [t for t in (output if isinstance(output, (tuple, list)) else (output,))
                       if isinstance(t, torch.Tensor) and t.dim() == 3]
            if not tensors:
                return None
            with torch.no_grad():
                for row, item, branch in self._branch_rows(tensors[0].shape[0], call):
                    if branch not in self.probe.branches or (self.probe.steps is not None and step not in self.probe.steps):
                        continue
                    token_max = torch.cat([t[row].detach().float().abs().amax(dim=-1) for t in tensors]).cpu().numpy()
                    self.activations[(item, index, step, branch)] = {
                        "token_max": token_max, "lengths": np.asarray([t.shape[1] for t in tensors], np.int64),
                        "max": np.float64(token_max.max()),
                        "p95": np.float64(np.percentile(token_max, 95)), "block": name}
            return None
        return hook

    # ------------------------------------------------------------ rows and labels
    def _segment(self, prompt: str, layer) -> KeySegmentation:
        key = (prompt, layer.index)
        if key not in self._segments:
            self._segments[key] = self.adapter.segment(prompt, layer)
        return self._segments[key]

    def _branch_rows(self, rows: int, call_in_step: int) -> list[tuple[int, int, str]]:
        """(row, item, branch) of each batch row of a denoiser call: batched CFG splits rows by the family's
        layout; separate CFG calls are told apart by their order within the step (conditional first)."""
        n = len(self.items)
        family = self.adapter.family
        if rows == 2 * n and family.cfg.startswith("batched"):
            cond = family.conditional_rows(rows, n)
            uncond_start = 0 if cond.start == n else n
            return [(r, r - cond.start, "cond") if cond.start <= r < cond.stop else (r, r - uncond_start, "uncond")
                    for r in range(rows)]
        branch = "cond" if call_in_step == 0 else "uncond"
        return [(r, min(r, n - 1), branch) for r in range(rows)]

    def _rows(self, call: AttentionCall) -> list[_Row]:
        negative = self.adapter.family.negative_prompt(self.adapter.settings)
        out = []
        for r, item, branch in self._branch_rows(call.query.shape[0], self._calls_this_step[call.layer.index]):
            prompt = self.items[item].prompt if branch == "cond" else negative
            seg = self._segment(prompt, call.layer)
            if len(seg) != call.key.shape[-2]:
                self.segmentation_mismatches += 1
                seg = None
            out.append(_Row(r, item, branch, seg))
        return out

    def _query_rows(self, row: _Row, layer, queries: str, nq: int) -> torch.Tensor | None:
        if queries == "all" or row.segmentation is None or layer.kind != "joint" or nq != len(row.segmentation):
            return None
        if queries == "auto":
            queries = "image"
        text = row.segmentation.modality == TEXT
        chosen = ~text if queries == "image" else text
        return torch.from_numpy(np.flatnonzero(chosen))

    # ------------------------------------------------------------ the callback
    def _on_attention(self, call: AttentionCall):
        step = self.adapter.step
        rows = self._rows(call)
        self._calls_this_step[call.layer.index] += 1
        bias = None
        output = None
        spec = self.intervention
        if spec is not None and spec.covers_step(step, self.adapter.settings.steps) and \
                spec.covers_layer(call.layer.index, len(self.layers)):
            covered = [r for r in rows if spec.covers_branch(r.branch)]
            if covered:
                output, bias = self._intervene(call, covered, step)
        lse = None
        if output is None and self._wants_lse(call, rows, step):
            output, lse = call.compute_with_lse()
        if self.probe is not None:
            with torch.no_grad():
                self._record(call, rows, step, bias, lse)
        return output

    def _wants_lse(self, call: AttentionCall, rows: list[_Row], step: int) -> bool:
        """A passive call whose mass is recorded on a GPU: its own log-sum-exp saves the fused row pass."""
        probe = self.probe
        return (probe is not None and call.query.is_cuda and "mass" in probe.stats
                and "entropy" not in probe.stats and any(probe.covers(call.layer.index, step, r.branch) for r in rows))

    def _candidates(self, row: _Row, nk: int, device) -> torch.Tensor | None:
        spec = self.intervention
        if spec.sink_modality == "any" or row.segmentation is None:
            return None
        text = torch.from_numpy(row.segmentation.modality == TEXT).to(device)
        return text if spec.sink_modality == "text" else ~text

    def _select(self, call: AttentionCall, row: _Row, step: int) -> torch.Tensor:
        """(1, H, Nk) bool selection for one row, from this call's own attention."""
        spec = self.intervention
        q, k = call.query[row.row:row.row + 1], call.key[row.row:row.row + 1]
        heads, nk = q.shape[1], k.shape[-2]
        if spec.select == "index0":
            return fixed_keys((1, heads, nk), (0,), q.device)
        if spec.select == "fixed":
            return fixed_keys((1, heads, nk), spec.keys, q.device)
        if spec.select == "random" and spec.random_policy == "uniform_per_call":
            generator = torch.Generator().manual_seed(spec.seed * 1_000_003 + self._per_call_draws)
            self._per_call_draws += 1
            return uniform_random_keys((1, heads, nk), spec.k, generator, q.device)
        mask = _row_mask(call.attn_mask, row.row)
        stats = attention_stats(q, k, attn_mask=mask, scale=call.scale, chunk=self.chunk, entropy=False,
                                query_rows=self._query_rows(row, call.layer, "auto", q.shape[-2]))
        candidates = self._candidates(row, nk, q.device)
        if spec.select == "topk_head":
            return top_keys(stats.mass, spec.k, candidates)
        if spec.select == "bottomk":
            return top_keys(stats.mass, spec.k, candidates, largest=False)
        if spec.select == "topk_union":
            return union_keys(stats.mass, spec.k, candidates)
        # random, same modality as the sinks, drawn once per (prompt, layer, branch); random_union matches the
        # union sinks with one draw shared by every head
        key = (self.items[row.item].seed, self.items[row.item].prompt, call.layer.index, row.branch)
        if key not in self._random_cache:
            union = spec.select == "random_union"
            sinks = union_keys(stats.mass, spec.k, candidates)[:, :1] if union else top_keys(stats.mass, spec.k,
                                                                                              candidates)
            modality = (torch.from_numpy(row.segmentation.modality.astype(np.int64)) if row.segmentation is not None
                        else torch.zeros(nk, dtype=torch.int64))
            generator = torch.Generator().manual_seed(
                (spec.seed * 1_000_003 + self.items[row.item].seed) * 1009 + call.layer.index)
            chosen = matched_random_keys(sinks, modality, generator)
            self._random_cache[key] = chosen.expand(1, stats.mass.shape[1], nk).clone() if union else chosen
        return self._random_cache[key].to(q.device)

    def _intervene(self, call: AttentionCall, covered: list[_Row], step: int):
        spec = self.intervention
        q = call.query
        selected = torch.zeros((q.shape[0], q.shape[1], call.key.shape[-2]), dtype=torch.bool, device=q.device)
        with torch.no_grad():
            for row in covered:
                selected[row.row] = self._select(call, row, step)[0]
        bias = None
        if spec.path == "score":
            bias = log_eta_bias(selected, spec.eta, q.dtype)
            output = call.compute(attn_mask=combine_masks(call.attn_mask, bias, q.dtype))
        else:
            valid = None
            if call.attn_mask is not None and call.attn_mask.dtype == torch.bool and call.attn_mask.shape[-2] == 1:
                valid = call.attn_mask[:, :, 0, :].expand(selected.shape)
            output = call.compute(value=replace_values(call.value, selected, spec.value_mode, spec.alpha, valid))
        with torch.no_grad():
            for row in covered:
                self._verify(call, row, step, selected[row.row:row.row + 1], bias)
        return output, bias

    def _verify(self, call: AttentionCall, row: _Row, step: int, selected: torch.Tensor, bias) -> None:
        """Mass on the selected keys before and after, in log space (A14: measured, not floored)."""
        q, k = call.query[row.row:row.row + 1], call.key[row.row:row.row + 1]
        mask = _row_mask(call.attn_mask, row.row)
        query_rows = self._query_rows(row, call.layer, "auto", q.shape[-2])
        before = selected_log_mass(q, k, selected, attn_mask=mask, scale=call.scale, query_rows=query_rows,
                                   chunk=self.chunk)
        entry: dict[str, Any] = {
            "step": step, "layer": call.layer.index, "branch": row.branch, "item": row.item,
            "n_selected_per_head": int(selected[0].sum(dim=-1).max()),
            "log_mass_before": head_mean_log(before), "log_mass_after": None, "log10_reduction": None,
        }
        if bias is not None:
            after = selected_log_mass(q, k, selected, attn_mask=mask, scale=call.scale, chunk=self.chunk,
                                      bias=bias[row.row:row.row + 1], query_rows=query_rows)
            entry["log_mass_after"] = head_mean_log(after)
            entry["log10_reduction"] = (entry["log_mass_before"] - entry["log_mass_after"]) / math.log(10)
        self.log.entries.append(entry)

    # ------------------------------------------------------------ probes
    def _record(self, call: AttentionCall, rows: list[_Row], step: int, bias, lse=None) -> None:
        probe = self.probe
        pre_rope = self._pre_rope_qk(call) if "logit_mean_pre_rope" in probe.stats else None
        for row in rows:
            if not probe.covers(call.layer.index, step, row.branch):
                continue
            q, k = call.query[row.row:row.row + 1], call.key[row.row:row.row + 1]
            out: dict[str, np.ndarray] = {}
            if "mass" in probe.stats or "entropy" in probe.stats:
                stats = attention_stats(q, k, attn_mask=_row_mask(call.attn_mask, row.row), scale=call.scale,
                                        bias=None if bias is None else bias[row.row:row.row + 1],
                                        query_rows=self._query_rows(row, call.layer, probe.queries, q.shape[-2]),
                                        chunk=probe.chunk, entropy="entropy" in probe.stats,
                                        lse=None if lse is None else lse[row.row:row.row + 1])
                if "mass" in probe.stats:
                    out["mass"] = (stats.mass[0] if probe.per_head else stats.mass[0].mean(dim=0)).cpu().numpy()
                if "entropy" in probe.stats:
                    out["entropy"] = stats.entropy[0].mean(dim=-1).cpu().numpy()     # per head
            if "logit_mean" in probe.stats:
                out["logit_mean"] = _mean_logit(q, k, call.scale, self._query_rows(row, call.layer, probe.queries,
                                                                                    q.shape[-2]), probe.chunk)
            if pre_rope is not None:
                out["logit_mean_pre_rope"] = _mean_logit(
                    pre_rope[0][row.row:row.row + 1], pre_rope[1][row.row:row.row + 1], call.scale,
                    self._query_rows(row, call.layer, probe.queries, q.shape[-2]), probe.chunk)
            if "key_energy" in probe.stats:
                energy = k[0].float().pow(2).mean(dim=0)                     # (N, D), head-averaged
                mass = out.get("mass")
                head_mass = mass.mean(axis=0) if mass is not None and mass.ndim == 2 else mass
                top = (np.argsort(-head_mass)[:TOP_ENERGY_KEYS] if head_mass is not None
                       else np.arange(min(TOP_ENERGY_KEYS, energy.shape[0])))
                out["key_energy_top"] = energy[torch.from_numpy(top.copy())].cpu().numpy()
                out["key_energy_top_index"] = top.astype(np.int64)
                out["key_energy_all"] = energy.mean(dim=0).cpu().numpy()
            if "key_norm" in probe.stats:
                out["key_norm"] = k[0].float().norm(dim=-1).mean(dim=0).cpu().numpy()
            if "value_norm" in probe.stats:
                out["value_norm"] = call.value[row.row].float().norm(dim=-1).mean(dim=0).cpu().numpy()
            self.records[(row.item, call.layer.index, step, row.branch)] = out


def _blocks_of(denoiser, layers) -> list[tuple[str, Any]]:
    """The blocks holding the attention layers (the parent module of each), in forward order, once each.
    Their outputs are the hidden states whose magnitudes the activation probe records."""
    names = list(dict.fromkeys(layer.name.rsplit(".", 1)[0] for layer in layers))
    return [(name, denoiser.get_submodule(name)) for name in names]


def _mean_logit(q, k, scale, query_rows, chunk: int) -> np.ndarray:
    """(N_keys,) mean over the chosen queries and the heads of q.k_j * scale (no mask: raw logits)."""
    total = torch.zeros(k.shape[-2], dtype=torch.float64)
    for logits in chunked_logits(q, k, scale=scale, query_rows=query_rows, chunk=chunk):
        total += logits[0].sum(dim=(0, 1)).double().cpu()
    n = q.shape[-2] if query_rows is None else query_rows.numel()
    return (total / (max(n, 1) * q.shape[1])).numpy()


def _row_mask(mask: torch.Tensor | None, row: int) -> torch.Tensor | None:
    if mask is None or mask.dim() < 4 or mask.shape[0] == 1:
        return mask
    return mask[row:row + 1]

