"""Paper A's H1 criteria (../shared/CLAIMS.md, A01-A07): concentration dynamics read from an AttentionData
measurement.

Definitions (paper A): m_j = incoming attention mass of key j, averaged over the probed queries (image queries in
joint layers, as the released code) and heads; MaxMass = max_j m_j; top-5 concentration = the sum of the five
largest m_j; a record = one (prompt, layer, step) with head-averaged masses (paper A counts per head as well).
Per-prompt statistics first; CIs are seeded paired bootstraps over prompts (benchmark.stats).
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from ..measurements import AttentionData
from ..stats import bootstrap_mean_ci, spearman_with_ci
from ..verdict import ClaimOutcome, contradicted, inconclusive, reproduced
from .common import by_interval, wilson_ci

INDEX0_LIMIT = 0.002          # A04: "overlap < 0.2%"
POSITION_SHARE_LIMIT = 0.05   # A06: top-1 positions cover < 5% of the key positions
TEXT_SHARE = 0.999            # A07: "> 99.9% of dynamic sinks are text tokens"


def max_mass(data: AttentionData) -> np.ndarray:
    """(items, layers, steps) MaxMass."""
    return np.stack([m.max(axis=-1) for m in data.mass], axis=1)


def _mean_diff_verdict(diff: np.ndarray, measured_prefix: str, holds: str, fails: str, samples: dict,
                       seed: int) -> ClaimOutcome:
    stat = bootstrap_mean_ci(diff, seed=seed)
    lo, hi = stat.ci
    measured = f"{measured_prefix}: mean difference {stat.estimate:+.4g} (95% CI [{lo:+.4g}, {hi:+.4g}], n={stat.n})"
    kw = {"value": stat.estimate, "ci": (lo, hi), "n": stat.n, "stats": [stat.to_dict()], "samples": samples}
    return by_interval(lo, hi, 0.0, measured, above=holds, below=fails, inside="the CI contains 0", **kw)


def _thirds(n_layers: int) -> tuple[list[int], list[int], list[int]]:
    edges = np.linspace(0, n_layers, 4).round().astype(int)
    return tuple(list(range(edges[i], edges[i + 1])) for i in range(3))


def a01_middle_peak(data: AttentionData, seed: int = 0) -> ClaimOutcome:
    mm = max_mass(data).mean(axis=2)                       # (items, layers), over steps
    shallow, middle, deep = _thirds(data.n_layers)
    if not (shallow and middle and deep):
        return inconclusive(f"{data.n_layers} attention layers", "fewer than three layers: no middle third")
    diff = mm[:, middle].max(axis=1) - mm[:, shallow + deep].max(axis=1)
    keys = data.mass[0].shape[-1]
    by_layer = mm.mean(axis=0)
    prefix = (f"MaxMass by layer {', '.join(f'{x:.3f}' for x in by_layer)} (uniform 1/N = {1 / keys:.4f}; peak "
              f"{by_layer.max() * keys:.1f}x uniform at layer {int(by_layer.argmax())}); middle-third peak minus "
              "the other thirds' peak")
    return _mean_diff_verdict(diff, prefix, "the middle third is the most concentrated",
                              "an outer third is more concentrated than the middle",
                              {"prompt_id": list(data.prompt_ids), "middle_minus_outer": diff.tolist(),
                               "maxmass_by_layer": mm.tolist()}, seed)


def a02_entropy(data: AttentionData, seed: int = 0) -> ClaimOutcome:
    if not data.entropy or any(e is None for e in data.entropy):
        return inconclusive("no entropy recorded", "the measurement has no entropy statistic")
    mm = max_mass(data).mean(axis=0)                                      # (layers, steps), over prompts
    ent = np.stack([e.mean(axis=0) for e in data.entropy])               # (layers, steps)
    stat = spearman_with_ci(mm.ravel(), ent.ravel(), seed=seed)
    if stat.ci is None:
        return inconclusive("MaxMass or entropy is constant over (layer, step)", "Spearman's rho is undefined")
    lo, hi = stat.ci
    measured = (f"Spearman rho(MaxMass, entropy) over {stat.n} (layer, step) cells {stat.estimate:+.3f} "
                f"(95% CI [{lo:+.3f}, {hi:+.3f}], p={stat.p_value:.2g})")
    kw = {"value": stat.estimate, "ci": (lo, hi), "n": stat.n, "stats": [stat.to_dict()],
          "samples": {"maxmass": mm.ravel().tolist(), "entropy": ent.ravel().tolist()}}
    if hi < 0 and stat.decision == "significant":
        return reproduced(measured, "concentration and entropy anti-correlate", **kw)
    if lo > 0:
        return contradicted(measured, "concentration and entropy correlate positively", **kw)
    return inconclusive(measured, "no significant negative correlation", **kw)


def a03_top5_rises(data: AttentionData, seed: int = 0) -> ClaimOutcome:
    top5 = np.stack([np.sort(m, axis=-1)[..., -5:].sum(axis=-1) for m in data.mass], axis=1)   # (items, L, S)
    per_layer = top5[:, :, -1] - top5[:, :, 0]
    rising = int((per_layer.mean(axis=0) > 0).sum())
    return _mean_diff_verdict(per_layer.mean(axis=1), f"top-5 mass last minus first step, rising in {rising} of "
                                                      f"{data.n_layers} layers; averaged over layers",
                              "top-5 concentration rises during denoising", "top-5 concentration falls",
                              {"prompt_id": list(data.prompt_ids), "last_minus_first": per_layer.tolist()}, seed)


def _top1(data: AttentionData) -> list[np.ndarray]:
    """Per layer: (items, steps) index of the top-1 key."""
    return [m.argmax(axis=-1) for m in data.mass]


def a04_not_index0(data: AttentionData) -> ClaimOutcome:
    top = _top1(data)
    hits = int(sum((t == 0).sum() for t in top))
    n = int(sum(t.size for t in top))
    lo, hi = wilson_ci(hits, n)
    first = Counter(str(types[0]) for types in data.token_types[0]).most_common(1)[0][0]
    measured = (f"{hits}/{n} (prompt, layer, step) records have key 0 ({first}) as top-1: {hits / n:.3%} "
                f"(Wilson 95% CI [{lo:.3%}, {hi:.3%}])")
    return by_interval(lo, hi, INDEX0_LIMIT, measured, holds="below",
                       above="index 0 is the top-1 sink in more than 0.2% of records",
                       below="index 0 is (almost) never the top-1 sink", inside="the CI contains 0.2%",
                       value=hits / n, ci=(lo, hi), n=n)


def a06_narrow_positions(data: AttentionData) -> ClaimOutcome:
    top = _top1(data)
    positions = Counter()
    kinds = Counter()
    for layer, t in enumerate(top):
        types = data.token_types[layer]
        for item in range(t.shape[0]):
            for key in t[item]:
                positions[(data.mass[layer].shape[-1], int(key))] += 1
                kinds[str(types[item][key])] += 1
    keys = max(m.shape[-1] for m in data.mass)
    distinct = len(positions)
    share = distinct / keys
    span = sorted(k for _, k in positions)
    measured = (f"{distinct} distinct top-1 key positions of {keys} ({share:.1%}), range {span[0]}-{span[-1]}; "
                "token types: " + ", ".join(f"{t} {c}" for t, c in kinds.most_common()))
    kw = {"value": share, "n": int(sum(t.size for t in top)),
          "samples": {"position": [k for _, k in positions], "records": list(positions.values())}}
    if share < POSITION_SHARE_LIMIT:
        return reproduced(measured, "top-1 sinks occupy a narrow range of positions", **kw)
    return contradicted(measured, f"top-1 sinks spread over {share:.0%} of the positions (>= 5%)", **kw)


def a07_text_sinks(data: AttentionData) -> ClaimOutcome:
    hits = n = 0
    for layer, t in enumerate(_top1(data)):
        types = data.token_types[layer]
        text = np.isin(types, ["patch", "frame_patch"], invert=True)           # (items, keys)
        hits += int(np.take_along_axis(text, t, axis=1).sum())
        n += t.size
    lo, hi = wilson_ci(hits, n)
    measured = f"{hits}/{n} top-1 sinks are text tokens: {hits / n:.2%} (Wilson 95% CI [{lo:.2%}, {hi:.2%}])"
    kw = {"value": hits / n, "ci": (lo, hi), "n": n}
    if hi < TEXT_SHARE:
        return contradicted(measured, "fewer than 99.9% of the top-1 sinks are text tokens", **kw)
    if hits / n >= TEXT_SHARE:
        return reproduced(measured, "at least 99.9% of the top-1 sinks are text tokens", **kw)
    return inconclusive(measured, "the CI contains 99.9%", **kw)


def a08_activation_peak(data: AttentionData) -> ClaimOutcome:
    """Per prompt: the layer of the largest block output magnitude (mean over steps) is the layer of the largest
    MaxMass, or adjacent to it."""
    if data.block_act_max is None:
        return inconclusive("no block activations recorded", "the measurement has no activation statistic")
    mm_layer = max_mass(data).mean(axis=2).argmax(axis=1)                        # (items,)
    act_block = np.nanmean(data.block_act_max, axis=2).argmax(axis=1)
    act_layer = np.asarray(data.block_first_layer)[act_block]
    close = np.abs(act_layer - mm_layer) <= 1
    hits, n = int(close.sum()), data.n_items
    lo, hi = wilson_ci(hits, n)
    measured = (f"{hits}/{n} prompts have their activation peak at or next to their MaxMass peak layer (Wilson 95% CI "
                f"[{lo:.2f}, {hi:.2f}]); most common peaks: activation layer "
                f"{Counter(act_layer.tolist()).most_common(1)[0][0]}, MaxMass layer {Counter(mm_layer.tolist()).most_common(1)[0][0]}")
    return by_interval(lo, hi, 0.5, measured, above="activation magnitude peaks where concentration peaks",
                       below="activation and concentration peak at different depths", inside="the CI contains 50%",
                       value=hits / n, ci=(lo, hi), n=n,
                       samples={"prompt_id": list(data.prompt_ids), "activation_peak_layer": act_layer.tolist(),
                                "maxmass_peak_layer": mm_layer.tolist()})


def a05_early_peak(data: AttentionData, seed: int = 0) -> ClaimOutcome:
    mm = max_mass(data).mean(axis=1)                               # (items, steps), over layers
    steps = mm.shape[1]
    frac = np.arange(steps) / max(steps - 1, 1)                     # t/T, 0 = the noisiest step
    early, late = mm[:, frac <= 0.2].mean(axis=1), mm[:, frac >= 0.8].mean(axis=1)
    return _mean_diff_verdict(early - late, "MaxMass over t/T in [0, 0.2] minus [0.8, 1]",
                              "concentration peaks early and diminishes late", "concentration grows late",
                              {"prompt_id": list(data.prompt_ids), "early_minus_late": (early - late).tolist()}, seed)


__all__ = ["a08_activation_peak", "a01_middle_peak", "a02_entropy", "a03_top5_rises", "a04_not_index0", "a05_early_peak",
           "a06_narrow_positions", "a07_text_sinks", "max_mass"]
