"""Paired t-test, Wilcoxon signed-rank test and the Holm-Bonferroni adjustment.

The tests delegate to scipy (``ttest_1samp``/``ttest_rel``, ``wilcoxon``) after validation,
so they agree with scipy to the last bit on regular input; degenerate input (all
differences equal) gets a defined result instead of scipy's NaN and warnings:

* all differences zero: p = 1, decision "not_significant", ``extra["note"]`` says so;
* zero variance, non-zero mean difference c: t = +-inf and p = 0 (two-sided, or one-sided in
  the direction of c) or p = 1 (one-sided against c), with a note. This is the limit of
  the t-test as the variance goes to 0, and what ``scipy.stats.ttest_rel`` returns when the
  differences are exactly equal and non-zero.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy import stats

from ._common import (ALTERNATIVES, DEFAULT_ALPHA, StatsInputError, check_choice, check_probability, preview, quiet,
                      to_real)
from .pairing import KeySpec, ValueSpec, as_pair, is_constant
from .power import minimum_detectable_effect
from .result import StatResult

__all__ = ["paired_ttest", "wilcoxon_signed_rank", "holm", "HolmResult", "holm_adjust_results"]

_HL_MAX_N = 4000  # Hodges-Lehmann needs n(n+1)/2 Walsh averages; above this the median is reported


def ttest_core(x: np.ndarray, alternative: str, alpha: float) -> dict[str, Any]:
    """One-sample t-test of mean(x) = 0 on validated differences: p, t, df, (1-alpha) CI, notes."""
    out: dict[str, Any] = {"df": x.size - 1}
    if is_constant(x):
        c = float(x[0])
        if c == 0.0:
            out.update(p=1.0, t=0.0, ci=(0.0, 0.0), note="all differences are zero: no evidence of a difference")
            return out
        toward = alternative == "two-sided" or (alternative == "greater") == (c > 0)
        ci = {"two-sided": (c, c), "greater": (c, math.inf), "less": (-math.inf, c)}[alternative]
        out.update(p=0.0 if toward else 1.0, t=math.copysign(math.inf, c), ci=ci,
                   note=f"zero variance: every difference equals {c!r}; t is infinite")
        return out
    res, warns = quiet(stats.ttest_1samp, x, 0.0, alternative=alternative)
    ci = res.confidence_interval(confidence_level=1 - alpha)
    out.update(p=float(res.pvalue), t=float(res.statistic), ci=(float(ci.low), float(ci.high)))
    if warns:
        out["warnings"] = warns
    return out


def hodges_lehmann(x: np.ndarray) -> tuple[float, str]:
    """Median of the Walsh averages (the estimator matching the signed-rank test)."""
    if x.size > _HL_MAX_N:
        return float(np.median(x)), "median of differences (N too large for Hodges-Lehmann)"
    i, j = np.triu_indices(x.size)
    return float(np.median((x[i] + x[j]) / 2)), "Hodges-Lehmann (median of Walsh averages)"


def wilcoxon_core(x: np.ndarray, alternative: str, zero_method: str = "wilcox", method: str = "auto") -> dict[str, Any]:
    """Signed-rank test on validated differences via scipy; all-zero differences give p = 1."""
    if np.all(x == 0):
        return {"p": 1.0, "statistic": 0.0, "note": "all differences are zero: no evidence of a difference"}
    res, warns = quiet(stats.wilcoxon, x, zero_method=zero_method, alternative=alternative, method=method)
    out: dict[str, Any] = {"p": float(res.pvalue), "statistic": float(res.statistic)}
    if math.isnan(out["p"]):
        raise StatsInputError(f"Wilcoxon test undefined for these differences (n={x.size}, "
                              f"{int(np.sum(x == 0))} zeros, zero_method={zero_method!r})")
    if warns:
        out["warnings"] = warns
    return out


def _decision(p: float, alpha: float) -> str:
    return "significant" if p < alpha else "not_significant"


def paired_ttest(a: Any, b: Any = None, *, alternative: str = "two-sided", alpha: float = DEFAULT_ALPHA,
                 key: KeySpec = None, value: ValueSpec = "value") -> StatResult:
    """Paired t-test of ``mean(b - a) = 0`` (same p as ``scipy.stats.ttest_rel(b, a)``).

    `a` = baseline, `b` = condition (mappings, records or arrays; see `paired_differences`),
    or a `PairedSample` as `a`. "greater" tests b > a. ci: the t interval at ``1 - alpha``
    matching `alternative` (one-sided intervals have an infinite bound).
    decision: "significant" iff p < alpha.
    """
    check_choice(alternative, ALTERNATIVES, "alternative")
    alpha = check_probability(alpha, "alpha")
    sample = as_pair(a, b, "a paired t-test", key=key, value=value)
    x = sample.diff
    core = ttest_core(x, alternative, alpha)
    sd = float(np.std(x, ddof=1))
    extra = {k: core[k] for k in ("t", "df", "note", "warnings") if k in core}
    extra["sd"] = sd
    return StatResult(estimate=float(np.mean(x)), ci=core["ci"], ci_level=1 - alpha, p_value=core["p"],
                      n=sample.n, method="paired t-test", seed=None, alternative=alternative,
                      decision=_decision(core["p"], alpha),
                      mde=minimum_detectable_effect(sample.n, sd, alpha=alpha, alternative=alternative),
                      extra=extra)


def wilcoxon_signed_rank(a: Any, b: Any = None, *, alternative: str = "two-sided", alpha: float = DEFAULT_ALPHA,
                         zero_method: str = "wilcox", method: str = "auto", key: KeySpec = None,
                         value: ValueSpec = "value") -> StatResult:
    """Wilcoxon signed-rank test on ``b - a`` (same p as ``scipy.stats.wilcoxon(b - a)``).

    estimate: Hodges-Lehmann shift (median of Walsh averages); no CI. `zero_method` and
    `method` are passed to scipy (default: zero differences dropped, exact p for small N
    without ties). mde: the paired-t MDE (an approximation for this test).
    """
    check_choice(alternative, ALTERNATIVES, "alternative")
    alpha = check_probability(alpha, "alpha")
    check_choice(zero_method, ("wilcox", "pratt", "zsplit"), "zero_method")
    check_choice(method, ("auto", "exact", "asymptotic"), "method")
    sample = as_pair(a, b, "a Wilcoxon signed-rank test", key=key, value=value)
    x = sample.diff
    core = wilcoxon_core(x, alternative, zero_method, method)
    est, est_kind = hodges_lehmann(x)
    sd = float(np.std(x, ddof=1))
    extra = {k: core[k] for k in ("statistic", "note", "warnings") if k in core}
    extra.update(estimator=est_kind, n_zero_differences=int(np.sum(x == 0)), zero_method=zero_method,
                 p_method=method, sd=sd)
    return StatResult(estimate=est, ci=None, ci_level=None, p_value=core["p"], n=sample.n,
                      method="Wilcoxon signed-rank test", seed=None, alternative=alternative,
                      decision=_decision(core["p"], alpha),
                      mde=minimum_detectable_effect(sample.n, sd, alpha=alpha, alternative=alternative),
                      extra=extra)


@dataclass(frozen=True)
class HolmResult:
    """Holm-Bonferroni step-down adjustment of a family of m p-values (input order kept).

    adjusted[i] = max over j with rank <= rank(i) of min(1, (m - j) * p_(j)) (0-based j), so
    adjusted p-values are >= the raw ones, capped at 1 and monotone in the raw order.
    reject[i] = adjusted[i] < alpha (strict, like every decision in this package).
    """

    names: tuple[str, ...] | None
    p_values: tuple[float, ...]
    adjusted: tuple[float, ...]
    reject: tuple[bool, ...]
    alpha: float

    def __len__(self) -> int:
        return len(self.p_values)

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """``{name: {"p": raw, "p_holm": adjusted, "reject": bool}}`` (names default to "0", "1", ...)."""
        names = self.names or tuple(str(i) for i in range(len(self)))
        return {n: {"p": p, "p_holm": q, "reject": r}
                for n, p, q, r in zip(names, self.p_values, self.adjusted, self.reject)}

    def to_dict(self) -> dict[str, Any]:
        return {"method": "Holm-Bonferroni", "alpha": self.alpha, "names": list(self.names) if self.names else None,
                "p_values": list(self.p_values), "adjusted": list(self.adjusted), "reject": list(self.reject)}


def holm(p_values: Sequence[float] | Mapping[str, float], *, alpha: float = DEFAULT_ALPHA) -> HolmResult:
    """Holm-Bonferroni adjustment of a family: a sequence of p-values or a mapping name -> p."""
    alpha = check_probability(alpha, "alpha")
    names: tuple[str, ...] | None = None
    if isinstance(p_values, Mapping):
        names = tuple(str(k) for k in p_values)
        raw = [to_real(v, f"p-value {k!r}") for k, v in p_values.items()]
    else:
        if isinstance(p_values, (str, bytes)):
            raise StatsInputError("holm needs a sequence or mapping of p-values")
        raw = [to_real(v, f"p-value [{i}]") for i, v in enumerate(p_values)]
    labels = names or tuple(range(len(raw)))
    if not raw:
        raise StatsInputError("holm needs at least one p-value")
    bad = [lab for lab, p in zip(labels, raw) if not (0.0 <= p <= 1.0)]  # also catches NaN
    if bad:
        raise StatsInputError(f"p-values must lie in [0, 1]; offending: {preview(bad)}")
    p = np.array(raw, dtype=np.float64)
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    return HolmResult(names=names, p_values=tuple(raw), adjusted=tuple(float(v) for v in adjusted),
                      reject=tuple(bool(v < alpha) for v in adjusted), alpha=alpha)


def holm_adjust_results(results: Mapping[str, StatResult], *, alpha: float = DEFAULT_ALPHA) -> dict[str, StatResult]:
    """Holm-adjust a family of `StatResult`s (e.g. the tests of claim A22).

    Returns copies whose p_value is the adjusted p, decision "significant"/"not_significant"
    at `alpha`, method suffixed with "+ Holm (m=...)", and the raw p in
    ``extra["p_unadjusted"]``.
    """
    missing = [k for k, r in results.items() if r.p_value is None]
    if missing:
        raise StatsInputError(f"results without a p-value cannot be Holm-adjusted: {preview(missing)}")
    h = holm({k: r.p_value for k, r in results.items()}, alpha=alpha)
    out = {}
    for (k, r), q, rej in zip(results.items(), h.adjusted, h.reject):
        out[k] = replace(r, p_value=q, decision="significant" if rej else "not_significant",
                         method=f"{r.method} + Holm (m={len(h)})",
                         extra={**r.extra, "p_unadjusted": r.p_value, "holm_family": list(h.names or ())})
    return out
