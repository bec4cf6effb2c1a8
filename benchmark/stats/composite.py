"""Composite procedures behind specific claims.

* `difference_of_differences` (A21/A23): per-sample DD = (sink - base) - (random - base).
* `paired_trend` (A23): DD at one budget minus DD at another, paired.
* `monotonic_increase` (A19, A26): consecutive one-sided paired tests with Holm, plus Page's L.
* `spearman_with_ci` (A02): Spearman rho with a seeded pairs-bootstrap CI.

All take keyed mappings (aligned on their keys, order-independent) or positional arrays,
like `paired_differences`.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

from ._common import (ALTERNATIVES, DEFAULT_ALPHA, DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES, DEFAULT_SEED,
                      StatsInputError, check_choice, check_finite, check_n, check_probability, quiet)
from .bootstrap import (_CHUNK_ELEMENTS, bootstrap_distribution, bootstrap_mean_ci_core, check_bootstrap_args,
                        ci_from_distribution, method_label)
from .classical import holm, ttest_core, wilcoxon_core
from .pairing import KeySpec, ValueSpec, align, as_diff, is_constant
from .power import minimum_detectable_effect
from .result import StatResult

__all__ = ["per_sample_dd", "difference_of_differences", "paired_trend", "monotonic_increase", "spearman_with_ci"]

TESTS = ("t", "wilcoxon")
_TEST_LABEL = {"t": "paired t-test", "wilcoxon": "Wilcoxon signed-rank"}


def _one_sided_p(x: np.ndarray, alternative: str, alpha: float) -> dict[str, Any]:
    """t and Wilcoxon p-values for mean/location of `x` (Wilcoxon failure is recorded, not raised)."""
    t = ttest_core(x, alternative, alpha)
    out: dict[str, Any] = {"p_t": t["p"], "t": t["t"]}
    try:
        w = wilcoxon_core(x, alternative)
        out.update(p_wilcoxon=w["p"], wilcoxon_statistic=w["statistic"])
    except StatsInputError as exc:
        out.update(p_wilcoxon=None, wilcoxon_note=str(exc))
    notes = [t.get("note")] + t.get("warnings", [])
    if any(notes):
        out["notes"] = [s for s in notes if s]
    return out


def _directional(x: np.ndarray, *, label: str, alternative: str, alpha: float, test: str, method: str,
                 n_resamples: int, confidence: float, seed: int, extra: dict | None = None) -> StatResult:
    """Mean of per-sample `x` with bootstrap CI and a (one-sided) t or Wilcoxon p."""
    x = as_diff(x, name=label, what=label)
    ci, info = bootstrap_mean_ci_core(x, method=method, n_resamples=n_resamples, confidence=confidence, seed=seed)
    tests = _one_sided_p(x, alternative, alpha)
    p = tests["p_t"] if test == "t" else tests["p_wilcoxon"]
    if p is None:
        raise StatsInputError(f"{label}: {tests['wilcoxon_note']}")
    sd = float(np.std(x, ddof=1))
    return StatResult(
        estimate=float(np.mean(x)), ci=ci, ci_level=confidence, p_value=p, n=x.size,
        method=f"{label}: {method_label(method, n_resamples)} CI; {alternative} {_TEST_LABEL[test]} p",
        seed=seed, alternative=alternative, decision="significant" if p < alpha else "not_significant",
        mde=minimum_detectable_effect(x.size, sd, alpha=alpha, alternative=alternative),
        extra={**(extra or {}), **tests, "p_source": _TEST_LABEL[test], "sd": sd,
               "ci_excludes_zero": not (ci[0] <= 0.0 <= ci[1]), "bootstrap": info})


def _check_common(alternative: str, alpha: float, test: str, method: str, n_resamples: int, confidence: float,
                  seed: int) -> tuple:
    check_choice(alternative, ALTERNATIVES, "alternative")
    check_choice(test, TESTS, "test")
    return (check_probability(alpha, "alpha"),) + check_bootstrap_args(method, n_resamples, confidence, seed)


def _dd(base: Any, sink: Any, random: Any, key: KeySpec, value: ValueSpec) -> tuple[tuple, np.ndarray]:
    if base is None:
        keys, (s, r) = align(sink, random, names=["sink", "random"], key=key, value=value)
        with np.errstate(over="ignore", invalid="ignore"):
            dd = s - r
        return keys, _checked(dd, "sink - random", keys)
    keys, (b0, s, r) = align(base, sink, random, names=["base", "sink", "random"], key=key, value=value)
    with np.errstate(over="ignore", invalid="ignore"):
        dd = (s - b0) - (r - b0)
    return keys, _checked(dd, "(sink - base) - (random - base)", keys)


def _checked(x: np.ndarray, name: str, keys: tuple) -> np.ndarray:
    """A derived per-sample array: finite (overflow named by key) and of a safe magnitude."""
    check_finite(x, f"{name} (overflow)", labels=keys)
    return as_diff(x, name=name, minimum=1)


def per_sample_dd(base: Any, sink: Any, random: Any, *, key: KeySpec = None,
                  value: ValueSpec = "value") -> dict | np.ndarray:
    """Per-sample difference of differences ``(sink - base) - (random - base)``.

    With ``base=None``, `sink` and `random` are already per-sample deltas (e.g. LPIPS to the
    unmodified image) and DD = sink - random. Keyed input gives ``{key: dd}`` (feed two of
    these to `paired_trend`), positional input an array.
    """
    keys, dd = _dd(base, sink, random, key, value)
    keyed = key is not None or isinstance(sink, Mapping)
    return {k: float(v) for k, v in zip(keys, dd)} if keyed else dd


def difference_of_differences(base: Any, sink: Any, random: Any, *, alternative: str, test: str = "t",
                              alpha: float = DEFAULT_ALPHA, confidence: float = DEFAULT_CONFIDENCE,
                              method: str = "studentized", n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                              key: KeySpec = None, value: ValueSpec = "value") -> StatResult:
    """Mean DD = mean[(sink - base) - (random - base)] with bootstrap CI and a one-sided p (A21/A23).

    `alternative` is required: "greater" tests that removing sinks changes the score more
    upward than removing random tokens (e.g. LPIPS damage), "less" the opposite (e.g. a CLIP
    drop). p_value comes from `test` ("t": paired t on DD, default; "wilcoxon"); both p-values
    are in extra (``p_t``, ``p_wilcoxon``). decision "significant" iff p < alpha. ci is the
    two-sided `confidence` bootstrap CI. ``base=None``: `sink`/`random` are deltas already.
    """
    alpha, method, n_resamples, confidence, seed = _check_common(alternative, alpha, test, method, n_resamples,
                                                                 confidence, seed)
    keys, dd = _dd(base, sink, random, key, value)
    return _directional(dd, label="difference of differences (sink - random)", alternative=alternative,
                        alpha=alpha, test=test, method=method, n_resamples=n_resamples, confidence=confidence,
                        seed=seed, extra={"deltas_given": base is None})


def paired_trend(dd_low: Any, dd_high: Any, *, alternative: str, test: str = "t", alpha: float = DEFAULT_ALPHA,
                 confidence: float = DEFAULT_CONFIDENCE, method: str = "studentized", n_resamples: int = DEFAULT_RESAMPLES,
                 seed: int = DEFAULT_SEED, key: KeySpec = None, value: ValueSpec = "value") -> StatResult:
    """Paired change ``dd_high - dd_low`` between two per-sample arrays (A23: DD(k=50) - DD(k=10)).

    Same output as `difference_of_differences`: mean, bootstrap CI, one-sided p from `test`.
    """
    alpha, method, n_resamples, confidence, seed = _check_common(alternative, alpha, test, method, n_resamples,
                                                                 confidence, seed)
    keys, (lo, hi) = align(dd_low, dd_high, names=["dd_low", "dd_high"], key=key, value=value)
    with np.errstate(over="ignore", invalid="ignore"):
        change = hi - lo
    return _directional(_checked(change, "dd_high - dd_low", keys), label="paired trend (high - low)",
                        alternative=alternative, alpha=alpha, test=test, method=method, n_resamples=n_resamples,
                        confidence=confidence, seed=seed)


def monotonic_increase(samples: Sequence[Any] | Mapping[str, Any], *, levels: Sequence[Any] | None = None,
                       rule: str = "steps", test: str = "t", alpha: float = DEFAULT_ALPHA,
                       confidence: float = DEFAULT_CONFIDENCE, method: str = "studentized",
                       n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED, key: KeySpec = None,
                       value: ValueSpec = "value") -> StatResult:
    """Is the per-sample metric increasing across ordered levels? (A19: 2 levels, A26: 3 CFG levels).

    `samples`: one paired input per level in increasing level order (or a mapping
    level -> input, in insertion order), all aligned on the same keys.
    rule="steps" (default): a one-sided ("greater") paired `test` between each pair of
    consecutive levels, Holm-adjusted across the k-1 steps; "increasing" iff every step is
    significant; p_value = the largest adjusted p. rule="page": Page's L trend test
    (``scipy.stats.page_trend_test``, levels as treatments, samples as blocks, needs k >= 3)
    decides; p_value = Page's p. Page's result is reported in extra whenever k >= 3.
    estimate/ci: mean (last - first) with a bootstrap CI.
    """
    check_choice(rule, ("steps", "page"), "rule")
    alpha, method, n_resamples, confidence, seed = _check_common("greater", alpha, test, method, n_resamples,
                                                                 confidence, seed)
    if isinstance(samples, Mapping):
        levels = list(samples) if levels is None else list(levels)
        samples = list(samples.values())
    samples = list(samples)
    if len(samples) < 2:
        raise StatsInputError(f"monotonic_increase needs at least 2 levels, got {len(samples)}")
    levels = [str(i) for i in range(len(samples))] if levels is None else [str(v) for v in levels]
    if len(levels) != len(samples):
        raise StatsInputError(f"{len(levels)} level names for {len(samples)} samples")
    if rule == "page" and len(samples) < 3:
        raise StatsInputError("Page's L test needs at least 3 levels; use rule='steps'")
    keys, arrays = align(*samples, names=[f"level {v}" for v in levels], key=key, value=value)
    check_n(len(keys), 2, "monotonic_increase")
    steps, p_raw = [], []
    for i in range(len(arrays) - 1):
        with np.errstate(over="ignore", invalid="ignore"):
            d = arrays[i + 1] - arrays[i]
        d = _checked(d, f"level {levels[i + 1]} - level {levels[i]}", keys)
        tests = _one_sided_p(d, "greater", alpha)
        p = tests["p_t"] if test == "t" else tests["p_wilcoxon"]
        if p is None:
            raise StatsInputError(f"step {levels[i]} -> {levels[i + 1]}: {tests['wilcoxon_note']}")
        p_raw.append(p)
        steps.append({"from": levels[i], "to": levels[i + 1], "mean_diff": float(np.mean(d)), **tests})
    h = holm(p_raw, alpha=alpha)
    for step, q, rej in zip(steps, h.adjusted, h.reject):
        step.update(p=step["p_t"] if test == "t" else step["p_wilcoxon"], p_holm=q, reject=rej)
    page = None
    if len(arrays) >= 3:
        res, warns = quiet(stats.page_trend_test, np.column_stack(arrays))
        page = {"L": float(res.statistic), "p": float(res.pvalue), "method": str(res.method)}
        if warns:
            page["warnings"] = warns
    if rule == "steps":
        p_value, ok = max(h.adjusted), all(h.reject)
    else:
        p_value = page["p"]
        ok = p_value < alpha
    with np.errstate(over="ignore", invalid="ignore"):
        span = arrays[-1] - arrays[0]
    span = _checked(span, "last - first level", keys)
    ci, info = bootstrap_mean_ci_core(span, method=method, n_resamples=n_resamples, confidence=confidence, seed=seed)
    rule_text = (f"one-sided {_TEST_LABEL[test]} per consecutive step + Holm (m={len(steps)})" if rule == "steps"
                 else "Page's L trend test")
    return StatResult(
        estimate=float(np.mean(span)), ci=ci, ci_level=confidence, p_value=p_value, n=len(keys),
        method=f"monotonic increase over {len(levels)} levels: {rule_text}; {method_label(method, n_resamples)} CI "
               f"of last - first", seed=seed, alternative="greater",
        decision="increasing" if ok else "not_increasing",
        mde=minimum_detectable_effect(len(keys), float(np.std(span, ddof=1)), alpha=alpha, alternative="greater"),
        extra={"levels": levels, "rule": rule, "steps": steps, "page": page, "bootstrap": info})


def _spearman_rows(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Spearman rho of (x[idx[r]], y[idx[r]]) for every row r (average ranks; NaN for a constant row)."""
    rx = stats.rankdata(x[idx], axis=1)
    ry = stats.rankdata(y[idx], axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    with np.errstate(all="ignore"):
        return np.sum(rx * ry, axis=1) / np.sqrt(np.sum(rx * rx, axis=1) * np.sum(ry * ry, axis=1))


def _leave_one_out_rows(n: int) -> Any:
    """Index blocks whose row i is 0..n-1 without i."""
    base = np.arange(n - 1)[None, :]
    rows = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, n, rows):
        drop = np.arange(start, min(n, start + rows))[:, None]
        yield base + (base >= drop)


def spearman_with_ci(x: Any, y: Any, *, n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                     method: str = "bca", confidence: float = DEFAULT_CONFIDENCE, alternative: str = "two-sided",
                     alpha: float = DEFAULT_ALPHA, key: KeySpec = None, value: ValueSpec = "value") -> StatResult:
    """Spearman rho with a seeded bootstrap CI over pairs (A02: MaxMass vs entropy over (layer, step) cells).

    estimate and p_value: ``scipy.stats.spearmanr(x, y, alternative=...)`` (p from its t
    approximation). ci: percentile/BCa over resampled pairs (same index scheme as
    `bootstrap_indices`; BCa acceleration from the leave-one-out rho). Resamples in which x
    or y is constant have no rho and are dropped (counted in ``extra``). Constant x or y:
    estimate NaN, no CI/p, decision "undefined". Otherwise decision "significant" iff
    p < alpha; ``extra["ci_excludes_zero"]`` reports the CI. Needs N >= 3.
    """
    check_choice(alternative, ALTERNATIVES, "alternative")
    alpha = check_probability(alpha, "alpha")
    method, n_resamples, confidence, seed = check_bootstrap_args(method, n_resamples, confidence, seed)
    if method == "studentized":
        raise StatsInputError("spearman_with_ci: the studentized bootstrap needs a standard error of rho; "
                              "use method='bca' or 'percentile'")
    keys, (xv, yv) = align(x, y, names=["x", "y"], key=key, value=value)
    n = len(keys)
    check_n(n, 3, "a Spearman correlation")
    label = (f"Spearman rank correlation; {method_label(method, n_resamples).replace('paired ', '')} CI over pairs")
    constant = [name for name, v in (("x", xv), ("y", yv)) if is_constant(v)]
    if constant:
        return StatResult(estimate=math.nan, ci=None, ci_level=None, p_value=None, n=n, method=label, seed=seed,
                          alternative=alternative, decision="undefined",
                          extra={"note": f"{' and '.join(constant)} constant: Spearman correlation undefined"})
    res, warns = quiet(stats.spearmanr, xv, yv, alternative=alternative)
    rho, p = float(res.statistic), float(res.pvalue)
    theta_b = bootstrap_distribution(lambda idx: _spearman_rows(xv, yv, idx), n, n_resamples, seed)
    valid = np.isfinite(theta_b)
    extra: dict[str, Any] = {"n_degenerate_resamples": int(np.sum(~valid)), "p_method": "scipy.stats.spearmanr"}
    if warns:
        extra["warnings"] = warns
    ci = None
    if valid.sum() >= 2:
        theta_hat = float(_spearman_rows(xv, yv, np.arange(n)[None, :])[0])
        jack = (np.concatenate([_spearman_rows(xv, yv, idx) for idx in _leave_one_out_rows(n)])
                if method == "bca" else None)
        ci, info = ci_from_distribution(theta_b[valid], theta_hat, method=method, confidence=confidence,
                                        theta_jack=jack)
        extra.update(info, ci_excludes_zero=not (ci[0] <= 0.0 <= ci[1]))
    else:
        extra["note"] = "almost every resample was constant: no bootstrap CI"
    return StatResult(estimate=rho, ci=ci, ci_level=confidence if ci else None, p_value=p, n=n, method=label,
                      seed=seed, alternative=alternative, decision="significant" if p < alpha else "not_significant",
                      extra=extra)
