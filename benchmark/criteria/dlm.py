"""Paper C's criteria (../shared/CLAIMS.md, C01-C07), as functions of per-problem arrays (unit-tested on planted
data). The arrays come from benchmark.lm.measure: per problem and step, the keys of largest A_bar per layer and for
the mean over layers (row -1), their masses and token classes, and whether the answer was right.

Decisions (one per claim; the report states each):
- C01: a (step, layer) attention map "has a sink" when some key passes the eps rule (benchmark.lm.sinks); the
  claim holds when most maps have one (per-problem share, 95% CI above 1/2). The fraction of tokens the rule
  filters is reported against the paper's >= 96%.
- C02 / C06: the sink position at a step is the top-1 key of A_bar averaged over layers. DLM sinks "move" when
  the top-1 changes at least once during a generation, for most problems (95% Wilson interval above 1/2); ARM
  sinks are "static" when it never changes, for most problems. Stability = 1 - the share of steps at which it
  changes.
- C03: paired per-problem correctness, unmasked vs top-1 masked. DLM: accuracy drop < 5 points (95% CI of the
  mean drop below 0.05); ARM: drop > 50% relative, i.e. mean(masked - base / 2) < 0 (95% CI below 0).
- C04: the share of (step, layer) top-1 keys on punctuation / whitespace / EOS tokens exceeds those classes' share
  of all tokens (paired per problem, 95% CI of the difference above 0). Mask tokens are a class of their own.
- C05: most (step, layer) top-1 keys lie in the first FIRST_POSITIONS positions (95% CI above 1/2).
- C07: the layer-mean top-1 key is position 0 at most decoding steps (95% CI above 1/2).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ..lm.sinks import CLASSES, DEFAULT_EPS, STRUCTURAL, filtered_fraction, is_sink
from ..stats import bootstrap_mean_ci
from ..verdict import ClaimOutcome, inconclusive
from .common import by_interval, wilson_ci
from .effects import combine

MOST = 0.5                  # "most problems / maps / steps"
DLM_MAX_DROP = 0.05         # C03: accuracy points
ARM_MIN_RELATIVE_DROP = 0.5
FIRST_POSITIONS = 4         # C05: "the first positions"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _mean_ci(values: Sequence[float], seed: int):
    values = np.asarray(values, dtype=float)
    if values.size < 2:
        v = float(values.mean()) if values.size else float("nan")
        return v, (v, v), None
    stat = bootstrap_mean_ci(values, seed=seed)
    return stat.estimate, stat.ci, stat


def sink_counts(top_mass: np.ndarray, total: np.ndarray, n_keys: np.ndarray, eps: float = DEFAULT_EPS):
    """(S, L) sinks per (step, layer) map from the stored top keys (S, L, K), and whether the count may be
    higher than stored (every stored key passed)."""
    mass = np.nan_to_num(top_mass, nan=0.0)
    passed = is_sink(mass, total, np.broadcast_to(n_keys[:, None], total.shape), eps) & ~np.isnan(top_mass)
    counts = passed.sum(axis=-1)
    return counts, counts >= top_mass.shape[-1]


def c01_sinks(per_problem_counts: Sequence[np.ndarray], per_problem_keys: Sequence[np.ndarray], *,
              eps: float = DEFAULT_EPS, seed: int, samples: Mapping | None = None) -> ClaimOutcome:
    """C01: sinks in most (step, layer) maps; the fraction of tokens filtered is reported. counts: (S, L) per
    problem (layers only, not the layer mean); keys: (S,) keys per step."""
    with_sink = [float((c > 0).mean()) for c in per_problem_counts]
    filtered = [float(filtered_fraction(c, k[:, None]).mean()) for c, k in zip(per_problem_counts, per_problem_keys)]
    est, (lo, hi), stat = _mean_ci(with_sink, seed)
    f_est, (f_lo, f_hi), f_stat = _mean_ci(filtered, seed)
    measured = (f"a sink (eps = {eps:g}, in units of the uniform share) in {_pct(est)} of the (step, layer) "
                f"attention maps (95% CI [{_pct(lo)}, {_pct(hi)}], n={len(with_sink)} problems); the rule filters "
                f"{_pct(f_est)} of tokens (95% CI [{_pct(f_lo)}, {_pct(f_hi)}]; paper: >= 96%)")
    kw = dict(value=est, ci=(lo, hi), n=len(with_sink), stats=[s.to_dict() for s in (stat, f_stat) if s],
              samples={**(samples or {}), "share_of_maps_with_sink": with_sink, "filtered_fraction": filtered})
    return by_interval(lo, hi, MOST, measured, above="sinks in most attention maps",
                       below="most attention maps have no sink under the rule",
                       inside="the CI of the share of maps with a sink contains 1/2", **kw)


def change_counts(positions: Sequence[np.ndarray]) -> np.ndarray:
    """Per problem, how many times the top-1 position changes between consecutive steps."""
    return np.array([int(np.count_nonzero(np.diff(p) != 0)) for p in positions])


def stability(positions: Sequence[np.ndarray]) -> np.ndarray:
    """Per problem, 1 - the share of step transitions at which the top-1 position changes."""
    return np.array([1.0 - np.count_nonzero(np.diff(p) != 0) / max(len(p) - 1, 1) for p in positions])


def c02_dynamics(positions: Sequence[np.ndarray], kind: str, samples: Mapping | None = None) -> ClaimOutcome:
    """C02: DLM sinks move (the top-1 changes during most generations); ARM sinks are static (it never does)."""
    changes = change_counts(positions)
    n = len(changes)
    moved = int(np.count_nonzero(changes > 0))
    distinct = [len(set(p.tolist())) for p in positions]
    steps = [len(p) for p in positions]
    kw = dict(n=n, samples={**(samples or {}), "changes": changes.tolist(), "distinct_positions": distinct,
                            "steps": steps, "stability": stability(positions).tolist()})
    if kind == "dlm":
        lo, hi = wilson_ci(moved, n)
        measured = (f"the top-1 sink position changes during {moved} of {n} generations (95% CI "
                    f"[{_pct(lo)}, {_pct(hi)}]); mean {np.mean(changes):.2f} changes over {np.mean(steps):.0f} "
                    f"denoising steps, {np.mean(distinct):.2f} distinct positions")
        return by_interval(lo, hi, MOST, measured, above="DLM sinks move across denoising steps",
                           below="the sink stays put in most generations", inside="the CI contains 1/2",
                           value=moved / n, ci=(lo, hi), **kw)
    static = n - moved
    lo, hi = wilson_ci(static, n)
    measured = (f"the top-1 sink position never changes in {static} of {n} generations (95% CI "
                f"[{_pct(lo)}, {_pct(hi)}]); mean {np.mean(changes):.2f} changes over {np.mean(steps):.0f} "
                f"decoding steps, {np.mean(distinct):.2f} distinct positions")
    return by_interval(lo, hi, MOST, measured, above="ARM sinks are static across decoding steps",
                       below="the ARM's sink moves in most generations", inside="the CI contains 1/2",
                       value=static / n, ci=(lo, hi), **kw)


def c03_masking(base: Sequence[float], masked: Mapping[int, Sequence[float]], kind: str, *, seed: int,
                task: str, samples: Mapping | None = None) -> ClaimOutcome:
    """C03 on paired per-problem correctness (1/0): base = unmasked, masked[k] = top-k sinks masked; judged on
    top-1 (the paper's table), top-5/10 reported."""
    base = np.asarray(base, dtype=float)
    top1 = np.asarray(masked[1], dtype=float)
    accs = ", ".join(f"top-{k} {_pct(np.mean(v))}" for k, v in sorted(masked.items()))
    head = f"{task} accuracy unmasked {_pct(base.mean())}, masked {accs} (n={base.size})"
    kw_samples = {**(samples or {}), "unmasked": base.tolist(), **{f"top{k}": list(map(float, v))
                                                                    for k, v in sorted(masked.items())}}
    if kind == "dlm":
        est, (lo, hi), stat = _mean_ci(base - top1, seed)
        measured = f"{head}; top-1 drop {100 * est:+.1f} points (95% CI [{100 * lo:+.1f}, {100 * hi:+.1f}])"
        return by_interval(lo, hi, DLM_MAX_DROP, measured, holds="below",
                           above=f"masking the top-1 sink costs more than {DLM_MAX_DROP * 100:g} points",
                           below=f"the drop is below {DLM_MAX_DROP * 100:g} points: robust to sink masking",
                           inside=f"the CI of the drop contains {DLM_MAX_DROP * 100:g} points",
                           value=est, ci=(lo, hi), n=base.size, stats=[stat.to_dict()] if stat else [],
                           samples=kw_samples)
    if base.mean() == 0:
        return inconclusive(head, "the unmasked accuracy is 0: a relative drop is undefined", n=base.size,
                            samples=kw_samples)
    est, (lo, hi), stat = _mean_ci(top1 - ARM_MIN_RELATIVE_DROP * base, seed)
    relative = 1 - top1.mean() / base.mean()
    measured = (f"{head}; top-1 relative drop {_pct(relative)} (mean(masked - unmasked/2) {est:+.3f}, 95% CI "
                f"[{lo:+.3f}, {hi:+.3f}])")
    return by_interval(lo, hi, 0.0, measured, holds="below",
                       above="the masked accuracy stays above half the unmasked one",
                       below="masking the top-1 sink more than halves the accuracy: the ARM collapses",
                       inside="the CI contains a 50% relative drop", value=float(relative), ci=None, n=base.size,
                       stats=[stat.to_dict()] if stat else [], samples=kw_samples)


def c04_token_classes(top_classes: Sequence[np.ndarray], class_counts: Sequence[np.ndarray], *, seed: int,
                      samples: Mapping | None = None) -> ClaimOutcome:
    """C04: per problem, the share of (step, layer) top-1 keys on punctuation / whitespace / EOS minus those
    classes' share of all tokens. top_classes: (S, L) class codes; class_counts: (S, len(CLASSES))."""
    structural = [CLASSES.index(c) for c in STRUCTURAL]
    mask = CLASSES.index("mask")
    sink_share = [float(np.isin(t, structural).mean()) for t in top_classes]
    token_share = [float((c[:, structural].sum(axis=1) / c.sum(axis=1)).mean()) for c in class_counts]
    mask_share = [float((t == mask).mean()) for t in top_classes]
    diff = np.array(sink_share) - np.array(token_share)
    est, (lo, hi), stat = _mean_ci(diff, seed)
    by_class = {CLASSES[c]: float(np.mean([(t == c).mean() for t in top_classes])) for c in range(len(CLASSES))}
    measured = (f"top-1 sinks on punctuation/whitespace/EOS {_pct(np.mean(sink_share))} vs their share of tokens "
                f"{_pct(np.mean(token_share))} (difference {100 * est:+.1f} points, 95% CI [{100 * lo:+.1f}, "
                f"{100 * hi:+.1f}], n={len(diff)}); on mask tokens {_pct(np.mean(mask_share))} (their own class); "
                "top-1 by class " + ", ".join(f"{k} {_pct(v)}" for k, v in by_class.items() if v > 0))
    return by_interval(lo, hi, 0.0, measured, above="sinks sit on punctuation, whitespace and EOS beyond their share",
                       below="those token classes get fewer sinks than their share of tokens",
                       inside="the CI of the difference contains 0", value=est, ci=(lo, hi), n=len(diff),
                       stats=[stat.to_dict()] if stat else [],
                       samples={**(samples or {}), "sink_share": sink_share, "token_share": token_share,
                                "mask_share": mask_share})


def c05_first_positions(top_positions: Sequence[np.ndarray], *, seed: int, first: int = FIRST_POSITIONS,
                        samples: Mapping | None = None) -> ClaimOutcome:
    """C05: per problem, the share of (step, layer) top-1 keys among the first `first` positions."""
    share = [float((t < first).mean()) for t in top_positions]
    est, (lo, hi), stat = _mean_ci(share, seed)
    measured = (f"top-1 sinks in the first {first} positions in {_pct(est)} of (step, layer) maps (95% CI "
                f"[{_pct(lo)}, {_pct(hi)}], n={len(share)})")
    return by_interval(lo, hi, MOST, measured, above="sinks concentrate in the first positions",
                       below="most sinks lie elsewhere", inside="the CI contains 1/2", value=est, ci=(lo, hi),
                       n=len(share), stats=[stat.to_dict()] if stat else [],
                       samples={**(samples or {}), "share_first_positions": share})


def c06_most_stable(stabilities: Mapping[str, np.ndarray], model: str, *, seed: int) -> ClaimOutcome:
    """C06: `model`'s per-problem stability >= each other model's (paired by problem, 95% CI of the difference)."""
    parts = {}
    for other, values in stabilities.items():
        if other == model:
            continue
        diff = np.asarray(stabilities[model], float) - np.asarray(values, float)
        est, (lo, hi), stat = _mean_ci(diff, seed)
        measured = (f"stability {model} {np.mean(stabilities[model]):.3f} vs {other} {np.mean(values):.3f} "
                    f"(difference {est:+.3f}, 95% CI [{lo:+.3f}, {hi:+.3f}], n={diff.size})")
        parts[f"vs {other}"] = by_interval(lo, hi, 0.0, measured, above=f"more stable than {other}",
                                           below=f"less stable than {other}", inside="the CI contains 0",
                                           value=est, ci=(lo, hi), n=diff.size, stats=[stat.to_dict()] if stat else [],
                                           samples={"difference": diff.tolist()})
    return combine(parts)


def c07_bos(positions: Sequence[np.ndarray], *, seed: int, samples: Mapping | None = None) -> ClaimOutcome:
    """C07: per problem, the share of decoding steps whose layer-mean top-1 key is position 0."""
    share = [float((p == 0).mean()) for p in positions]
    est, (lo, hi), stat = _mean_ci(share, seed)
    others = np.concatenate([p[p != 0] for p in positions]) if positions else np.array([])
    where = f"; otherwise at positions {np.unique(others)[:8].tolist()}" if others.size else ""
    measured = (f"the top-1 sink is position 0 at {_pct(est)} of decoding steps (95% CI [{_pct(lo)}, {_pct(hi)}], "
                f"n={len(share)} generations){where}")
    return by_interval(lo, hi, MOST, measured, above="the ARM's sink sits at the sequence start",
                       below="the ARM's top sink is not at position 0", inside="the CI contains 1/2", value=est,
                       ci=(lo, hi), n=len(share), stats=[stat.to_dict()] if stat else [],
                       samples={**(samples or {}), "share_position0": share})
