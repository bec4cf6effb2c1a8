"""Equivalence testing (TOST) and the double rule for "no effect" claims.

"The 95% CI contains zero" alone is passed by any small N, so a no-effect verdict also
requires TOST to declare equivalence within a pre-registered margin (CLIP-T 0.002,
ImageReward 0.05), and reports whether N had the power to do so.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from ._common import (DEFAULT_ALPHA, DEFAULT_POWER, DEFAULT_RESAMPLES, DEFAULT_SEED, StatsInputError, check_positive,
                      check_probability, quiet)
from .bootstrap import bootstrap_mean_ci, check_bootstrap_args
from .pairing import KeySpec, ValueSpec, as_diff, as_pair, is_constant
from .power import minimum_detectable_effect, required_n_equivalence, tost_power
from .result import StatResult

__all__ = ["tost", "no_effect_test"]

_MAX_N = 10**8


def _n_required(sd: float, margin: float, alpha: float, power: float) -> int | None:
    """N for `power` at a true difference of 0, or None when more than 10^8 pairs would be needed."""
    try:
        return required_n_equivalence(sd, margin, alpha=alpha, power=power, max_n=_MAX_N)
    except StatsInputError:
        return None


def tost(diff: Any, *, margin: float, alpha: float = DEFAULT_ALPHA) -> StatResult:
    """Two one-sided t-tests (Schuirmann) for ``-margin < mean(diff) < +margin``.

    p_value = max(p of H0: mean <= -margin, p of H0: mean >= +margin); decision
    "equivalent" iff p < alpha, else "not_equivalent". ci: the ``1 - 2*alpha`` t interval
    (equivalent iff it lies inside the margins). extra has both one-sided p-values and
    the power of TOST at a true difference of 0 for this N and the sample SD
    (``can_decide``, ``n_required`` for 80% power). margin must be > 0.
    `diff` is a 1-D array of ``b - a`` or a `PairedSample`.
    """
    margin = check_positive(margin, "margin")
    alpha = check_probability(alpha, "alpha")
    if alpha >= 0.5:
        raise StatsInputError(f"TOST needs alpha < 0.5 (it reports the 1-2*alpha CI), got {alpha}")
    x = as_diff(diff, what="TOST")
    n, m, sd = x.size, float(np.mean(x)), float(np.std(x, ddof=1))
    extra: dict[str, Any] = {"df": n - 1, "sd": sd}
    if is_constant(x):
        c = float(x[0])
        p_lower, p_upper = (0.0 if c > -margin else 1.0), (0.0 if c < margin else 1.0)
        ci = (c, c)
        extra["note"] = f"zero variance: every difference equals {c!r}; each one-sided p is 0 or 1"
    else:
        (lower, upper, full), warns = quiet(lambda: (stats.ttest_1samp(x, -margin, alternative="greater"),
                                                     stats.ttest_1samp(x, margin, alternative="less"),
                                                     stats.ttest_1samp(x, 0.0)))
        p_lower, p_upper = float(lower.pvalue), float(upper.pvalue)
        extra.update(t_lower=float(lower.statistic), t_upper=float(upper.statistic))
        interval = full.confidence_interval(confidence_level=1 - 2 * alpha)
        ci = (float(interval.low), float(interval.high))
        if warns:
            extra["warnings"] = warns
    p = max(p_lower, p_upper)
    power0 = tost_power(n, sd, margin, alpha=alpha)
    extra.update(p_lower=p_lower, p_upper=p_upper, power_at_zero=power0,
                 can_decide=power0 >= DEFAULT_POWER,
                 n_required=_n_required(sd, margin, alpha, DEFAULT_POWER))
    return StatResult(estimate=m, ci=ci, ci_level=1 - 2 * alpha, p_value=p, n=n,
                      method=f"TOST (two one-sided t-tests), margin +-{margin:g}", seed=None,
                      alternative="two-sided", margin=margin,
                      decision="equivalent" if p < alpha else "not_equivalent",
                      mde=minimum_detectable_effect(n, sd, alpha=alpha), extra=extra)


def no_effect_test(a: Any, b: Any = None, *, margin: float, n_resamples: int = DEFAULT_RESAMPLES,
                   seed: int = DEFAULT_SEED, alpha: float = DEFAULT_ALPHA, method: str = "studentized",
                   power: float = DEFAULT_POWER, key: KeySpec = None, value: ValueSpec = "value") -> StatResult:
    """The catalogue's double rule for non-necessity ("removing X has no effect") claims.

    Computes the ``1 - alpha`` (95%) paired bootstrap CI of ``mean(b - a)`` and TOST within
    ``+-margin`` at `alpha`, then decides:

    ==================  =================  ==============================================
    bootstrap CI        TOST               decision
    ==================  =================  ==============================================
    contains 0          equivalent         "no_effect"
    excludes 0          not equivalent     "effect"
    excludes 0          equivalent         "negligible_effect" (real but within margin)
    contains 0          not equivalent     "underpowered" if TOST had < `power` at a true
                                           difference of 0 for this N and sample SD,
                                           else "undecided"
    ==================  =================  ==============================================

    p_value is the TOST p; ci is the bootstrap CI. extra holds both sub-results
    (``bootstrap``, ``tost`` as dicts), ``power_at_zero``, ``n_required`` (N for `power`
    at the observed SD), ``below_n_for_power`` and a one-line ``reason`` such as
    "cannot decide at N=8: ...".
    """
    margin = check_positive(margin, "margin")
    alpha = check_probability(alpha, "alpha")
    power = check_probability(power, "power")
    method, n_resamples, _, seed = check_bootstrap_args(method, n_resamples, 1 - alpha, seed)
    sample = as_pair(a, b, "the no-effect test", key=key, value=value)
    boot = bootstrap_mean_ci(sample, method=method, n_resamples=n_resamples, confidence=1 - alpha, seed=seed)
    equiv = tost(sample, margin=margin, alpha=alpha)
    n, sd = sample.n, float(np.std(sample.diff, ddof=1))
    contains = boot.decision == "ci_contains_zero"
    is_equiv = equiv.decision == "equivalent"
    power0 = tost_power(n, sd, margin, alpha=alpha)
    n_req = _n_required(sd, margin, alpha, power)
    need = f"N>={n_req}" if n_req is not None else f"N>{_MAX_N:.0e}"
    level = f"{100 * (1 - alpha):g}% CI {boot.format_ci()}"
    if contains and is_equiv:
        decision, reason = "no_effect", f"{level} contains 0 and TOST shows |delta| < {margin:g}"
    elif not contains and not is_equiv:
        decision, reason = "effect", f"{level} excludes 0 and TOST cannot bound |delta| by {margin:g}"
    elif is_equiv:
        decision, reason = "negligible_effect", f"{level} excludes 0 but the effect lies within +-{margin:g}"
    elif power0 < power:
        decision = "underpowered"
        reason = (f"cannot decide at N={n}: {level} contains 0 but TOST has only {power0:.0%} power "
                  f"at margin {margin:g} ({need} needed for {power:.0%} at SD {sd:.3g})")
    else:
        decision = "undecided"
        reason = f"{level} contains 0 but TOST did not show |delta| < {margin:g} despite {power0:.0%} power"
    return StatResult(
        estimate=boot.estimate, ci=boot.ci, ci_level=boot.ci_level, p_value=equiv.p_value, n=n,
        method=f"no-effect rule: {boot.method} CI contains 0 AND TOST within +-{margin:g}", seed=seed,
        alternative="two-sided", margin=margin, decision=decision, mde=equiv.mde,
        extra={"bootstrap": boot.to_dict(), "tost": equiv.to_dict(), "ci_contains_zero": contains,
               "tost_equivalent": is_equiv, "power_at_zero": power0, "power_target": power,
               "n_required": n_req, "below_n_for_power": n_req is None or n < n_req, "reason": reason})

