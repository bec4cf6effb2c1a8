"""Interventions on attention, declared as data (so the cache key and the report can name them).

An InterventionSpec says which keys (selection), what is done to them (score path: add log(eta) to their
logits; value path: replace their values), and where (layers, phase window in t/T, CFG branch). The tensor
operations here are pure functions; benchmark.probe.session applies them inside the pipeline's attention.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import torch

PATHS = ("score", "value")
SELECTIONS = {
    "topk_head": "the k keys with the largest incoming mass, per head (paper A, Tab. 2)",
    "topk_union": "the k keys with the largest head-averaged mass, removed in every head (Tab. 7/19/20)",
    "random": "k random keys per head: the control with the sinks' budget",
    "random_union": "k random keys, the same in every head: the control of topk_union (Tab. 7)",
    "bottomk": "the k keys with the smallest incoming mass, per head",
    "index0": "key 0 in every head (the fixed-index baseline)",
    "fixed": "the given key indices in every head",
}
RANDOM_POLICIES = {
    "same_modality_fixed": "each sink is replaced by a random non-sink key of the same modality, drawn once "
                           "per (prompt, layer, branch) and kept for every step (default)",
    "uniform_per_call": "k keys uniform over all keys, redrawn at every call (the released code's variant)",
}
VALUE_MODES = ("zero", "mean", "lerp")
BRANCHES = ("cond", "uncond", "both")
SINK_MODALITIES = ("any", "text", "image")


class InterventionError(ValueError):
    """An intervention spec is invalid; the message names the field."""


@dataclass(frozen=True)
class InterventionSpec:
    path: str = "score"
    eta: float = 0.0                       # score path: logits of the selected keys get + log(eta)
    value_mode: str = "zero"               # value path: zero | mean (of the non-selected values) | lerp
    alpha: float = 1.0                     # lerp: v <- v + alpha * (mean - v)
    select: str = "topk_head"
    k: int = 1
    keys: tuple[int, ...] = ()             # select="fixed"
    random_policy: str = "same_modality_fixed"
    sink_modality: str = "any"             # restrict candidate sinks to text or image keys (A24)
    layers: tuple[int, ...] | None = None  # layer indices (AttentionLayer.index); None: see layer_fraction
    layer_fraction: tuple[float, float] = (0.0, 1.0)   # depth window, as a fraction of the layer count
    window: tuple[float, float] = (0.0, 1.0)           # phase window in t/T: step i is in iff lo <= i/T <= hi
    cfg_branch: str = "both"
    seed: int = 0                          # random controls

    def __post_init__(self):
        def bad(field_name: str, why: str):
            raise InterventionError(f"intervention field {field_name!r}: {why}")

        if self.path not in PATHS:
            bad("path", f"{self.path!r} is not one of {PATHS}")
        if not (self.eta >= 0.0 and math.isfinite(self.eta)):
            bad("eta", f"must be a finite number >= 0, got {self.eta}")
        if self.value_mode not in VALUE_MODES:
            bad("value_mode", f"{self.value_mode!r} is not one of {VALUE_MODES}")
        if not 0.0 <= self.alpha <= 1.0:
            bad("alpha", f"must be in [0, 1], got {self.alpha}")
        if self.select not in SELECTIONS:
            bad("select", f"{self.select!r} is not one of {sorted(SELECTIONS)}")
        if self.k < 1:
            bad("k", f"must be >= 1, got {self.k}")
        if self.select == "fixed" and not self.keys:
            bad("keys", "select='fixed' needs key indices")
        if self.random_policy not in RANDOM_POLICIES:
            bad("random_policy", f"{self.random_policy!r} is not one of {sorted(RANDOM_POLICIES)}")
        if self.sink_modality not in SINK_MODALITIES:
            bad("sink_modality", f"{self.sink_modality!r} is not one of {SINK_MODALITIES}")
        if self.cfg_branch not in BRANCHES:
            bad("cfg_branch", f"{self.cfg_branch!r} is not one of {BRANCHES}")
        for name in ("window", "layer_fraction"):
            lo, hi = getattr(self, name)
            if not 0.0 <= lo <= hi <= 1.0:
                bad(name, f"needs 0 <= lo <= hi <= 1, got {(lo, hi)}")

    # ---------------------------------------------------------------- as data
    def to_params(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "InterventionSpec":
        known = set(cls.__dataclass_fields__)
        unknown = set(params) - known
        if unknown:
            raise InterventionError(f"unknown intervention field(s) {sorted(unknown)}; known: {sorted(known)}")
        values = dict(params)
        for name in ("keys", "layer_fraction", "window"):
            if name in values and values[name] is not None:
                values[name] = tuple(values[name])
        if values.get("layers") is not None:
            values["layers"] = tuple(int(i) for i in values["layers"])
        return cls(**values)

    def condition(self):
        """The runner Condition naming this intervention (hashable; its params go into the cache key)."""
        from .runner import Condition

        params = {k: (tuple(v) if isinstance(v, list) else v) for k, v in self.to_params().items()}
        return Condition.make("intervention", **params)

    # ---------------------------------------------------------------- scope
    def covers_step(self, step: int, total_steps: int) -> bool:
        """Step i (0-based, the step about to run) is intervened iff lo <= i / T <= hi.
        With window (0.4, 0.6) and T = 20 that is steps 8, 9, 10, 11, 12."""
        lo, hi = self.window
        position = step / total_steps
        return lo - 1e-12 <= position <= hi + 1e-12

    def covers_layer(self, index: int, n_layers: int) -> bool:
        if self.layers is not None:
            return index in self.layers
        lo, hi = self.layer_fraction
        position = index / max(n_layers - 1, 1)
        return lo - 1e-12 <= position <= hi + 1e-12

    def covers_branch(self, branch: str) -> bool:
        return self.cfg_branch == "both" or self.cfg_branch == branch

    def describe(self) -> str:
        what = (f"logit + log({self.eta:g})" if self.path == "score"
                else f"value -> {self.value_mode}" + (f"(alpha={self.alpha:g})" if self.value_mode == "lerp" else ""))
        return (f"{self.select} k={self.k} {what}; layers "
                f"{list(self.layers) if self.layers is not None else self.layer_fraction}; t/T in {self.window}; "
                f"branch {self.cfg_branch}")


# -------------------------------------------------------------------- selection
def top_keys(mass: torch.Tensor, k: int, candidates: torch.Tensor | None = None, largest: bool = True) -> torch.Tensor:
    """(B, H, Nk) bool: the k keys of largest (or smallest) mass per head among `candidates` ((Nk,) bool)."""
    score = mass.clone()
    if candidates is not None:
        fill = float("-inf") if largest else float("inf")
        score[..., ~candidates.to(score.device)] = fill
    k = min(k, score.shape[-1] if candidates is None else int(candidates.sum()))
    idx = torch.topk(score, k, dim=-1, largest=largest).indices
    return torch.zeros_like(mass, dtype=torch.bool).scatter_(-1, idx, True)


def union_keys(mass: torch.Tensor, k: int, candidates: torch.Tensor | None = None) -> torch.Tensor:
    """(B, H, Nk) bool: the k keys of largest head-averaged mass, the same keys in every head."""
    chosen = top_keys(mass.mean(dim=1, keepdim=True), k, candidates)
    return chosen.expand_as(mass).clone()


def fixed_keys(shape: tuple[int, int, int], keys: tuple[int, ...], device) -> torch.Tensor:
    sel = torch.zeros(shape, dtype=torch.bool, device=device)
    sel[..., list(keys)] = True
    return sel


def matched_random_keys(sinks: torch.Tensor, modality: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """For each selected sink (per batch row and head), a random non-sink key of the same modality.
    `modality` is (Nk,) int; the draw uses `generator` on the CPU (device independent)."""
    out = torch.zeros_like(sinks)
    sinks_cpu = sinks.cpu()
    modality = modality.cpu()
    for b in range(sinks.shape[0]):
        for h in range(sinks.shape[1]):
            chosen = sinks_cpu[b, h]
            for m in torch.unique(modality[chosen]):
                pool = torch.nonzero((modality == m) & ~chosen).flatten()
                need = int(((modality == m) & chosen).sum())
                if pool.numel() == 0 or need == 0:
                    continue
                pick = pool[torch.randperm(pool.numel(), generator=generator)[:need]]
                out[b, h, pick.to(out.device)] = True
    return out


def uniform_random_keys(shape: tuple[int, int, int], k: int, generator: torch.Generator, device) -> torch.Tensor:
    """k keys per (row, head), uniform over all keys (the released code's control)."""
    b, h, n = shape
    scores = torch.rand((b, h, n), generator=generator)
    idx = torch.topk(scores, min(k, n), dim=-1).indices
    return torch.zeros((b, h, n), dtype=torch.bool).scatter_(-1, idx, True).to(device)


# -------------------------------------------------------------------- applying
def suppression_value(dtype: torch.dtype) -> float:
    """A large finite negative logit for eta = 0: exp() underflows to exactly 0 in the dtype, and
    adding it to any logit neither overflows to -inf nor turns a row into NaN."""
    return torch.finfo(dtype).min / 2


def log_eta_bias(selected: torch.Tensor, eta: float, dtype: torch.dtype) -> torch.Tensor:
    """(B, H, 1, Nk) additive logit bias: log(eta) on the selected keys, 0 elsewhere."""
    shift = math.log(eta) if eta > 0 else suppression_value(dtype)
    bias = torch.zeros(selected.shape, dtype=dtype, device=selected.device)
    bias[selected] = shift
    return bias[:, :, None, :]


def combine_masks(attn_mask: torch.Tensor | None, bias: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """SDPA's original mask (bool or additive) plus the intervention's additive bias, as one float mask."""
    if attn_mask is None:
        return bias
    if attn_mask.dtype == torch.bool:
        base = torch.zeros(attn_mask.shape, dtype=dtype, device=attn_mask.device)
        base = base.masked_fill(~attn_mask, suppression_value(dtype))
        return base + bias
    return attn_mask.to(dtype) + bias


def replace_values(value: torch.Tensor, selected: torch.Tensor, mode: str, alpha: float = 1.0,
                   key_valid: torch.Tensor | None = None) -> torch.Tensor:
    """Values with the selected keys' rows replaced: zero, the mean of the non-selected (valid) values of
    the same head, or lerp(alpha) toward that mean. value: (B, H, Nk, D); selected: (B, H, Nk) bool."""
    if value.shape[1] != selected.shape[1]:      # GQA: values have fewer heads than the selection
        raise InterventionError("value-path interventions need one selection per value head")
    sel = selected[..., None]
    if mode == "zero":
        return torch.where(sel, torch.zeros_like(value), value)
    keep = ~selected if key_valid is None else (~selected & key_valid)
    weights = keep[..., None].to(value.dtype)
    mean = (value * weights).sum(dim=-2, keepdim=True) / weights.sum(dim=-2, keepdim=True).clamp_min(1)
    target = mean.expand_as(value) if mode == "mean" else value + alpha * (mean - value)
    return torch.where(sel, target, value)


def head_mean_log(log_mass_per_head: torch.Tensor) -> float:
    """log of the head-averaged mass, from per-head log masses (B=1, H), without leaving log space."""
    flat = log_mass_per_head.flatten().double()
    return float(torch.logsumexp(flat, dim=0) - math.log(flat.numel()))


@dataclass
class InterventionLog:
    """What an intervention did, per (step, layer, branch): for the report and for A14's verification."""
    entries: list[dict[str, Any]] = field(default_factory=list)

    def steps(self) -> list[int]:
        return sorted({e["step"] for e in self.entries})

    def layers(self) -> list[int]:
        return sorted({e["layer"] for e in self.entries})
