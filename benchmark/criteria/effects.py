"""Paper A's intervention criteria (../shared/CLAIMS.md, A09-A31): judged from per-prompt scores of seed-paired
images, baseline vs intervention, with benchmark.stats. Pure functions of arrays, so each is unit-tested on
planted data.

Sign convention: delta = condition - baseline. A "no effect" claim (A09, A10, ...) is REPRODUCED only when the
95% CI contains 0 AND TOST bounds |delta| by the margin (no verdict from lack of power); a claim without a
margin in the paper (HPS-v2, VQA) is judged by the CI rule alone and the outcome states the detectable effect.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..stats import (bootstrap_mean_ci, difference_of_differences, holm, no_effect_test, paired_trend,
                     paired_ttest, tost)
from ..verdict import ClaimOutcome, Verdict, contradicted, inconclusive, reproduced
from .common import by_interval

REMOVAL_LOG10 = 5.0        # A14: post-intervention mass < 1e-5 of the pre value


def _fmt(x: float) -> str:
    return f"{x:+.2e}" if x != 0 and abs(x) < 1e-2 else f"{x:+.4f}"


def _exactly_equal(base: np.ndarray, cond: np.ndarray) -> bool:
    return bool(np.array_equal(np.asarray(base, float), np.asarray(cond, float)))


def no_effect(base: Sequence[float], cond: Sequence[float], margin: float, *, what: str, seed: int,
              samples: Mapping[str, Any] | None = None) -> ClaimOutcome:
    """The catalogue's double rule: CI contains 0 and TOST within +-margin -> REPRODUCED; CI excludes 0 ->
    CONTRADICTED (also when the effect is within the margin: the criterion asks for a CI containing 0);
    CI contains 0 but TOST cannot bound the effect -> INCONCLUSIVE (underpowered or undecided)."""
    base, cond = np.asarray(base, float), np.asarray(cond, float)
    kw = {"samples": dict(samples or {}, baseline=base.tolist(), condition=cond.tolist()), "n": len(base)}
    if _exactly_equal(base, cond):
        return reproduced(f"delta {what} exactly 0 on all {len(base)} pairs (identical scores)",
                          "the intervention did not change any score", value=0.0, ci=(0.0, 0.0), **kw)
    stat = no_effect_test(base, cond, margin=margin, seed=seed)
    lo, hi = stat.ci
    measured = f"delta {what} {_fmt(stat.estimate)} (95% CI [{_fmt(lo)}, {_fmt(hi)}], n={stat.n}, margin {margin:g})"
    kw.update(value=stat.estimate, ci=(lo, hi), stats=[stat.to_dict()])
    reason = stat.extra["reason"]
    if stat.decision == "no_effect":
        return reproduced(measured, reason, **kw)
    if stat.decision in ("effect", "negligible_effect"):
        return contradicted(measured, reason, **kw)
    return inconclusive(measured, reason, **kw)


def within_margin(base: Sequence[float], cond: Sequence[float], margin: float, *, what: str,
                  seed: int) -> ClaimOutcome:
    """|delta| < margin by TOST alone (A11: the paper's own CI excludes 0). CONTRADICTED when the whole 95% CI
    lies beyond the margin, INCONCLUSIVE when TOST cannot decide."""
    base, cond = np.asarray(base, float), np.asarray(cond, float)
    kw = {"samples": {"baseline": base.tolist(), "condition": cond.tolist()}, "n": len(base)}
    if _exactly_equal(base, cond):
        return reproduced(f"delta {what} exactly 0 on all {len(base)} pairs", "identical scores", value=0.0, **kw)
    eq = tost(cond - base, margin=margin)
    boot = bootstrap_mean_ci(cond - base, seed=seed)
    lo, hi = boot.ci
    measured = (f"delta {what} {_fmt(boot.estimate)} (95% CI [{_fmt(lo)}, {_fmt(hi)}], TOST p={eq.p_value:.3g}, "
                f"margin {margin:g}, n={boot.n})")
    kw.update(value=boot.estimate, ci=(lo, hi), stats=[eq.to_dict(), boot.to_dict()])
    if eq.decision == "equivalent":
        return reproduced(measured, f"TOST shows |delta| < {margin:g}", **kw)
    if lo > margin or hi < -margin:
        return contradicted(measured, f"the whole CI lies beyond the margin {margin:g}", **kw)
    return inconclusive(measured, f"TOST cannot bound |delta| by {margin:g} at this N", **kw)


def ci_contains_zero(base: Sequence[float], cond: Sequence[float], *, what: str, seed: int) -> ClaimOutcome:
    """No margin in the paper (HPS-v2, VQA): REPRODUCED when the 95% CI contains 0, CONTRADICTED otherwise; the
    measured figure gives the minimum detectable effect, since a CI containing 0 is not evidence of no effect."""
    base, cond = np.asarray(base, float), np.asarray(cond, float)
    kw = {"samples": {"baseline": base.tolist(), "condition": cond.tolist()}, "n": len(base)}
    if _exactly_equal(base, cond):
        return reproduced(f"delta {what} exactly 0 on all {len(base)} pairs", "identical scores", value=0.0,
                          ci=(0.0, 0.0), **kw)
    boot = bootstrap_mean_ci(cond - base, seed=seed)
    t = paired_ttest(base, cond)
    lo, hi = boot.ci
    measured = (f"delta {what} {_fmt(boot.estimate)} (95% CI [{_fmt(lo)}, {_fmt(hi)}], n={boot.n}; "
                f"detectable effect at 80% power {t.mde:.3g})")
    kw.update(value=boot.estimate, ci=(lo, hi), stats=[boot.to_dict(), t.to_dict()])
    if lo <= 0.0 <= hi:
        return reproduced(measured, "the CI contains 0 (no margin stated by the paper; see the detectable effect)",
                          **kw)
    return contradicted(measured, "the CI excludes 0", **kw)


def _paired_shift(a: np.ndarray, b: np.ndarray, what: str, *, seed: int, holds: str, above: str, below: str,
                  samples: Mapping[str, Any]) -> ClaimOutcome:
    """The 95% bootstrap CI of mean(b - a) against 0: the claim holds `holds` ("above" / "below") it."""
    boot = bootstrap_mean_ci(b - a, seed=seed)
    lo, hi = boot.ci
    measured = f"{what} {_fmt(boot.estimate)} (95% CI [{_fmt(lo)}, {_fmt(hi)}], n={boot.n})"
    return by_interval(lo, hi, 0.0, measured, holds=holds, above=above, below=below, inside="the CI contains 0",
                       value=boot.estimate, ci=(lo, hi), n=boot.n, stats=[boot.to_dict()], samples=samples)


def negative_shift(base: Sequence[float], cond: Sequence[float], *, what: str, seed: int) -> ClaimOutcome:
    """delta < 0 (A12's A3): the 95% CI below 0."""
    base, cond = np.asarray(base, float), np.asarray(cond, float)
    return _paired_shift(base, cond, f"delta {what}", seed=seed, holds="below", above="the score rose",
                         below="the score fell", samples={"baseline": base.tolist(), "condition": cond.tolist()})


def combine(parts: Mapping[str, ClaimOutcome], *, headline: str | None = None) -> ClaimOutcome:
    """All parts must hold: CONTRADICTED if any part is, REPRODUCED if all are, else INCONCLUSIVE. The measured
    figure lists every part; value/CI come from `headline` (default: the first part)."""
    order = (Verdict.CONTRADICTED, Verdict.INCONCLUSIVE, Verdict.REPRODUCED)
    verdict = next(v for v in order if any(p.verdict is v for p in parts.values()))
    measured = "; ".join(f"{name}: {p.measured}" for name, p in parts.items())
    reasons = "; ".join(f"{name}: {p.verdict.value} ({p.reason})" for name, p in parts.items() if p.reason)
    head = parts[headline] if headline else next(iter(parts.values()))
    stats = [dict(s, part=name) for name, p in parts.items() for s in p.stats]
    samples = {f"{name}.{k}": v for name, p in parts.items() for k, v in (p.samples or {}).items()}
    return ClaimOutcome(verdict, reasons, measured, value=head.value, ci=head.ci, n=head.n, stats=stats,
                        samples=samples)


def sweep_flat(levels: Mapping[str, tuple[Sequence[float], Sequence[float]]], margin: float, *, what: str,
               seed: int) -> ClaimOutcome:
    """A16/A17: every level's CI contains 0 and max |mean delta| < margin. REPRODUCED when every level passes
    the no-effect rule (TOST within the margin bounds the mean too); CONTRADICTED when a level's CI excludes 0;
    else INCONCLUSIVE. A point estimate beyond the margin whose CI still contains 0 is noise, not a verdict:
    it leaves the level INCONCLUSIVE, and the largest |mean delta| is reported."""
    parts = {name: no_effect(b, c, margin, what=what, seed=seed) for name, (b, c) in levels.items()}
    means = {name: float(np.mean(np.asarray(c, float) - np.asarray(b, float))) for name, (b, c) in levels.items()}
    worst = max(means, key=lambda k: abs(means[k]))
    out = combine(parts)
    out.reason = f"max |mean delta| {abs(means[worst]):.3g} at {worst} (margin {margin:g}); " + out.reason
    out.value = means[worst]
    out.ci = parts[worst].ci
    out.samples = dict(out.samples or {}, mean_delta_by_level=means)
    return out


def removal(log10_reductions: Sequence[float], log_mass_before: Sequence[float]) -> ClaimOutcome:
    """A14: the selected keys' mass after the intervention is < 1e-5 of before in every intervened call; the
    factor is measured (before / after, both computed from the actual logits), never floored."""
    r = np.asarray([float(x) for x in log10_reductions if x is not None], float)   # "inf" strings from JSON
    if r.size == 0:
        return inconclusive("no intervened attention call was logged", "nothing to measure")
    before = np.exp(np.asarray([float(x) for x in log_mass_before], float))
    finite = r[np.isfinite(r)]
    worst = float(finite.min()) if finite.size else float("inf")
    def factor(log10: float) -> str:
        # past 10^308 the mass after is exactly 0 in every floating-point format: say so, with the exponent
        return f"10^{log10:.1f}" if log10 < 308 else f"10^{log10:.3g} (the mass after is exactly 0 in float64)"

    median = float(np.median(finite)) if finite.size else float("inf")
    measured = (f"selected keys' mass before {np.median(before):.3%} (median), reduced by {factor(worst)} in the "
                f"least-reduced of {r.size} calls (median {factor(median)}"
                f"{'; ' + str(r.size - finite.size) + ' calls to exactly 0' if finite.size < r.size else ''})")
    kw = {"value": worst, "n": int(r.size), "samples": {"log10_reduction": r.tolist(),
                                                          "mass_before": before.tolist()}}
    if worst >= REMOVAL_LOG10:
        return reproduced(measured, f"every call reduced the mass by more than 10^{REMOVAL_LOG10:g}", **kw)
    return contradicted(measured, f"a call kept more than 1e-{REMOVAL_LOG10:g} of the mass", **kw)


def bit_identical(base: Sequence[np.ndarray], probed: Sequence[np.ndarray]) -> ClaimOutcome:
    """A20: the images with the full measurement path installed equal the baseline, bit for bit."""
    diffs = [np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)) for a, b in zip(base, probed)]
    changed = [int((d > 0).sum()) for d in diffs]
    worst = max((int(d.max()) for d in diffs), default=0)
    measured = (f"{sum(c > 0 for c in changed)} of {len(diffs)} images differ (max pixel difference {worst}, "
                f"{sum(changed)} pixel values changed)")
    kw = {"value": float(sum(c > 0 for c in changed)), "n": len(diffs), "samples": {"changed_values": changed}}
    if not any(changed):
        return reproduced(measured, "bit-identical with probes recording every layer and step", **kw)
    return contradicted(measured, "installing the probes changed the images", **kw)


def greater(low: Sequence[float], high: Sequence[float], *, what: str, seed: int) -> ClaimOutcome:
    """Paired: high > low (e.g. LPIPS(A2) > LPIPS(A1)), by the 95% bootstrap CI of mean(high - low)."""
    low, high = np.asarray(low, float), np.asarray(high, float)
    return _paired_shift(low, high, what, seed=seed, holds="above", above="holds", below="the opposite order holds",
                         samples={"low": low.tolist(), "high": high.tolist()})


def sink_vs_random(sink: Sequence[float], random: Sequence[float], *, what: str, seed: int) -> ClaimOutcome:
    """A21: DD = sink - random (both already distances to the baseline, e.g. LPIPS) > 0 with the CI excluding 0;
    the ratio of the means is reported."""
    sink, random = np.asarray(sink, float), np.asarray(random, float)
    dd = difference_of_differences(None, sink, random, alternative="greater", seed=seed)
    lo, hi = dd.ci
    ratio = float(sink.mean() / random.mean()) if random.mean() > 0 else float("inf")
    measured = (f"{what} sink {sink.mean():.4f} vs random {random.mean():.4f} ({ratio:.1f}x), DD {_fmt(dd.estimate)} "
                f"(95% CI [{_fmt(lo)}, {_fmt(hi)}], n={dd.n})")
    return by_interval(lo, hi, 0.0, measured, above="sink masking moves images more than random masking",
                       below="random masking moves images more", inside="the DD CI contains 0",
                       value=dd.estimate, ci=(lo, hi), n=dd.n, stats=[dd.to_dict()],
                       samples={"sink": sink.tolist(), "random": random.tolist()})


def flat_after_holm(dds: Mapping[str, Sequence[float]], margin: float, *, what: str, seed: int) -> ClaimOutcome:
    """A22: per budget, DD = delta(sink) - delta(random); no Holm-adjusted paired t-test rejects 0. REPRODUCED
    when none rejects and TOST bounds every DD by the margin; CONTRADICTED when one rejects; else INCONCLUSIVE."""
    arrays = {k: np.asarray(v, float) for k, v in dds.items()}
    tests = {k: paired_ttest(np.zeros_like(v), v) for k, v in arrays.items()}
    adjusted = holm({k: t.p_value for k, t in tests.items()})
    adj = dict(zip(adjusted.names, adjusted.adjusted))
    equivalent = {k: (np.all(v == 0) or tost(v, margin=margin).decision == "equivalent") for k, v in arrays.items()}
    parts = ", ".join(f"{k}: DD {_fmt(float(v.mean()))} p_holm={adj[k]:.3g}" for k, v in arrays.items())
    measured = f"{what} DD (sink - random) by budget: {parts} (n={len(next(iter(arrays.values())))})"
    worst = max(arrays, key=lambda k: abs(arrays[k].mean()))
    kw = {"value": float(arrays[worst].mean()), "ci": tests[worst].ci, "n": tests[worst].n,
          "stats": [dict(t.to_dict(), budget=k, p_holm=adj[k]) for k, t in tests.items()],
          "samples": {f"dd_{k}": v.tolist() for k, v in arrays.items()}}
    rejected = [k for k, r in zip(adjusted.names, adjusted.reject) if r]
    if rejected:
        return contradicted(measured, f"Holm-adjusted test rejects DD = 0 at {', '.join(rejected)}", **kw)
    if all(equivalent.values()):
        return reproduced(measured, f"no budget differs after Holm and TOST bounds every DD by {margin:g}", **kw)
    loose = [k for k, e in equivalent.items() if not e]
    return inconclusive(measured, f"no Holm rejection, but TOST cannot bound the DD by {margin:g} at {', '.join(loose)}",
                        **kw)


def no_regression(groups: Mapping[str, tuple[Sequence[float], Sequence[float]]], margin: float, *, what: str,
                  seed: int) -> ClaimOutcome:
    """A25: per group (tag), no 95% CI of delta entirely below 0. REPRODUCED when every group's CI lower bound
    is above -margin (non-inferior), CONTRADICTED when a CI lies entirely below 0, else INCONCLUSIVE. Groups
    with fewer than 3 pairs are reported and not judged."""
    rows, stats, judged = [], [], {}
    for name, (b, c) in groups.items():
        d = np.asarray(c, float) - np.asarray(b, float)
        if d.size < 3:
            rows.append(f"{name}: n={d.size} (too few)")
            continue
        if np.all(d == 0):
            judged[name] = (0.0, 0.0)
            rows.append(f"{name}: exactly 0 (n={d.size})")
            continue
        boot = bootstrap_mean_ci(d, seed=seed)
        judged[name] = boot.ci
        stats.append(dict(boot.to_dict(), group=name))
        rows.append(f"{name}: {_fmt(boot.estimate)} [{_fmt(boot.ci[0])}, {_fmt(boot.ci[1])}] (n={d.size})")
    measured = f"delta {what} by tag: " + "; ".join(rows)
    kw = {"stats": stats, "n": sum(len(b) for b, _ in groups.values()),
          "samples": {f"{k}.delta": (np.asarray(c, float) - np.asarray(b, float)).tolist()
                      for k, (b, c) in groups.items()}}
    if not judged:
        return inconclusive(measured, "no tag has 3 or more prompts", **kw)
    below = [k for k, (lo, hi) in judged.items() if hi < 0]
    if below:
        return contradicted(measured, f"regression at {', '.join(below)} (CI entirely below 0)", **kw)
    loose = [k for k, (lo, hi) in judged.items() if lo <= -margin]
    if loose:
        return inconclusive(measured, f"no CI below 0, but {', '.join(loose)} cannot exclude a drop of {margin:g}",
                            **kw)
    return reproduced(measured, f"every tag's CI lies above -{margin:g}", **kw)


def increasing(levels: Mapping[str, Sequence[float]], *, what: str, seed: int) -> ClaimOutcome:
    """A26: a per-prompt quantity increases along ordered levels (e.g. LPIPS over CFG): every adjacent step's 95%
    CI above 0 -> REPRODUCED; a step's CI below 0 -> CONTRADICTED; else INCONCLUSIVE."""
    names = list(levels)
    parts = {f"{a} -> {b}": greater(levels[a], levels[b], what=f"{what} {b} - {a}", seed=seed)
             for a, b in zip(names, names[1:])}
    return combine(parts)


def trend(dd_low: Sequence[float], dd_high: Sequence[float], *, what: str, seed: int) -> ClaimOutcome:
    """A23: DD(high budget) < DD(low budget), paired."""
    t = paired_trend(dd_low, dd_high, alternative="less", seed=seed)
    lo, hi = t.ci
    measured = f"{what} {_fmt(t.estimate)} (95% CI [{_fmt(lo)}, {_fmt(hi)}], n={t.n})"
    return by_interval(lo, hi, 0.0, measured, holds="below", above="the effect shrinks with the budget",
                       below="the effect grows with the budget", inside="the CI contains 0", value=t.estimate,
                       ci=(lo, hi), n=t.n, stats=[t.to_dict()])


def distribution_shift_exceeds(base: np.ndarray, condition: np.ndarray, reference: np.ndarray, *, seed: int,
                               resamples: int = 200) -> ClaimOutcome:
    """A27: FID_shift(condition) > FID_shift(reference), both against the same baseline features (items, dims),
    paired by prompt; 95% percentile CI of the difference from `resamples` prompt resamples (seeded)."""
    from ..metrics.fid import fid_from_features

    n = len(base)
    fid_c, fid_r = fid_from_features(base, condition), fid_from_features(base, reference)
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(resamples):
        idx = rng.integers(0, n, n)
        diffs.append(fid_from_features(base[idx], condition[idx]) - fid_from_features(base[idx], reference[idx]))
    lo, hi = (float(x) for x in np.percentile(diffs, [2.5, 97.5]))
    measured = (f"FID_shift {fid_c:.1f} vs {fid_r:.1f}: difference {fid_c - fid_r:+.1f} (95% bootstrap CI "
                f"[{lo:+.1f}, {hi:+.1f}], n={n}, {resamples} resamples)")
    return by_interval(lo, hi, 0.0, measured, above="the condition moves the distribution more than the reference",
                       below="the reference moves the distribution more", inside="the bootstrap CI contains 0",
                       value=fid_c - fid_r, ci=(lo, hi), n=n, samples={"bootstrap_difference": diffs})


__all__ = ["bit_identical", "ci_contains_zero", "combine", "distribution_shift_exceeds", "flat_after_holm", "greater", "increasing",
           "negative_shift", "no_effect", "no_regression", "removal", "sink_vs_random", "sweep_flat",
           "trend", "within_margin"]
