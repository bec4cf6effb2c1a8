"""Power and minimum detectable effect for paired designs (noncentral t).

All quantities refer to the one-sample t-test on the per-pair differences ``d = b - a``
with ``df = n - 1`` and `sd` the standard deviation of the differences (use the sample SD
of the run, ``np.std(d, ddof=1)``). This is what lets a report say "cannot decide at N=8"
instead of reading "CI contains zero" as "no effect".
"""
from __future__ import annotations

import math

from scipy import integrate, optimize, stats

from ._common import (ALTERNATIVES, DEFAULT_ALPHA, DEFAULT_POWER, StatsInputError, check_choice, check_int,
                      check_positive, check_probability, to_real)

__all__ = ["ttest_power", "minimum_detectable_effect", "tost_power", "can_decide_equivalence",
           "required_n_equivalence"]


def _nct_cdf(x: float, df: int, nc: float) -> float:
    """``nct.cdf`` guarded: scipy returns NaN far in the tails, where the value is 0 or 1."""
    v = float(stats.nct.cdf(x, df, nc))
    if math.isnan(v):
        v = 1.0 - float(stats.nct.sf(x, df, nc))
    if math.isnan(v):
        v = 0.0 if x < nc else 1.0
    return v


def _nct_sf(x: float, df: int, nc: float) -> float:
    return 1.0 - _nct_cdf(x, df, nc) if math.isnan(float(stats.nct.sf(x, df, nc))) else float(stats.nct.sf(x, df, nc))


def _common(n: int, alpha: float) -> tuple[int, float]:
    n = check_int(n, "n", 2)
    return n, check_probability(alpha, "alpha")


def ttest_power(n: int, sd: float, effect: float, *, alpha: float = DEFAULT_ALPHA,
                alternative: str = "two-sided") -> float:
    """Power of the paired t-test at true mean difference `effect` (exact, noncentral t).

    two-sided: ``P(T > t_{1-a/2}) + P(T < -t_{1-a/2})``; "greater": ``P(T > t_{1-a})``;
    "less": ``P(T < -t_{1-a})``, with ``T ~ nct(n-1, effect*sqrt(n)/sd)``.
    """
    n, alpha = _common(n, alpha)
    sd = check_positive(sd, "sd")
    effect = to_real(effect, "effect")
    check_choice(alternative, ALTERNATIVES, "alternative")
    df, nc = n - 1, effect * math.sqrt(n) / sd
    if alternative == "two-sided":
        tc = stats.t.ppf(1 - alpha / 2, df)
        return _nct_sf(tc, df, nc) + _nct_cdf(-tc, df, nc)
    tc = stats.t.ppf(1 - alpha, df)
    if alternative == "greater":
        return _nct_sf(tc, df, nc)
    return _nct_cdf(-tc, df, nc)


def minimum_detectable_effect(n: int, sd: float, *, alpha: float = DEFAULT_ALPHA,
                              power: float = DEFAULT_POWER, alternative: str = "two-sided") -> float:
    """Smallest |mean difference| the paired t-test detects with probability `power`.

    Solves ``ttest_power(n, sd, mde) == power`` for the noncentrality (Brent's method).
    Returned as a magnitude (>= 0): for ``alternative="less"`` the detectable effect is
    ``-mde``. ``sd == 0`` gives 0.0 (any non-zero difference is detected).
    """
    n, alpha = _common(n, alpha)
    power = check_probability(power, "power")
    sd = check_positive(sd, "sd", allow_zero=True)
    check_choice(alternative, ALTERNATIVES, "alternative")
    if power <= alpha:
        raise StatsInputError(f"power ({power}) must exceed alpha ({alpha})")
    if sd == 0.0:
        return 0.0
    sign = -1.0 if alternative == "less" else 1.0

    def gap(effect: float) -> float:
        return ttest_power(n, sd, sign * effect, alpha=alpha, alternative=alternative) - power

    hi = sd
    while gap(hi) < 0:
        hi *= 2.0
    return float(optimize.brentq(gap, 0.0, hi, xtol=1e-14 * sd, rtol=1e-12, maxiter=200))


def _tost_power_exact(n: int, sd: float, margin: float, true_diff: float, alpha: float) -> float:
    # Both one-sided tests reject iff -m + tc*S/sqrt(n) < mean < m - tc*S/sqrt(n), with the
    # mean ~ N(true_diff, sd^2/n) independent of S^2 = sd^2 V/df, V ~ chi2(df): integrate over V.
    df = n - 1
    tc = stats.t.ppf(1 - alpha, df)
    se = sd / math.sqrt(n)
    v_max = df * (margin / (tc * se)) ** 2
    if v_max <= 0:
        return 0.0

    def integrand(v: float) -> float:
        half = margin - tc * se * math.sqrt(v / df)
        p = stats.norm.cdf((half - true_diff) / se) - stats.norm.cdf((-half - true_diff) / se)
        return p * stats.chi2.pdf(v, df)

    val, _ = integrate.quad(integrand, 0.0, v_max, limit=200, epsabs=1e-12, epsrel=1e-10)
    return float(min(1.0, max(0.0, val)))


def tost_power(n: int, sd: float, margin: float, *, true_diff: float = 0.0, alpha: float = DEFAULT_ALPHA,
               method: str = "nct") -> float:
    """Probability that TOST declares equivalence within ``+-margin`` when the true mean difference is `true_diff`.

    method="nct" (default): ``P(T1 > t_c) + P(T2 < -t_c) - 1`` with
    ``T1 ~ nct(n-1, (true_diff+margin)/se)``, ``T2 ~ nct(n-1, (true_diff-margin)/se)``,
    ``se = sd/sqrt(n)``, ``t_c = t_{1-alpha, n-1}``, clipped at 0. The two tests share the
    sample SD; this standard approximation ignores the (small when power is high)
    probability that both fail together, so it slightly *under*-states power.
    method="exact": integrates the joint event over the chi-square law of the sample variance
    (Owen's formula), by quadrature.
    """
    n, alpha = _common(n, alpha)
    sd = check_positive(sd, "sd", allow_zero=True)
    margin = check_positive(margin, "margin")
    true_diff = to_real(true_diff, "true_diff")
    check_choice(method, ("nct", "exact"), "method")
    if sd == 0.0:
        return 1.0 if abs(true_diff) < margin else 0.0
    if method == "exact":
        return _tost_power_exact(n, sd, margin, true_diff, alpha)
    df, se = n - 1, sd / math.sqrt(n)
    tc = stats.t.ppf(1 - alpha, df)
    p_low = _nct_sf(tc, df, (true_diff + margin) / se)
    p_up = _nct_cdf(-tc, df, (true_diff - margin) / se)
    return float(max(0.0, p_low + p_up - 1.0))


def can_decide_equivalence(n: int, sd: float, margin: float, alpha: float = DEFAULT_ALPHA,
                           power: float = DEFAULT_POWER) -> bool:
    """True iff TOST at this N has at least `power` to declare equivalence when the true difference is 0.

    False is what the report renders as "cannot decide at N=8": a non-equivalent TOST at
    such an N says nothing about the effect.
    """
    power = check_probability(power, "power")
    return tost_power(n, sd, margin, true_diff=0.0, alpha=alpha) >= power


def required_n_equivalence(sd: float, margin: float, *, alpha: float = DEFAULT_ALPHA,
                           power: float = DEFAULT_POWER, true_diff: float = 0.0, max_n: int = 10**8) -> int:
    """Smallest N at which `tost_power` (nct) reaches `power`.

    StatsInputError if |true_diff| >= margin (never reachable) or if more than `max_n` pairs are needed.
    """
    margin = check_positive(margin, "margin")
    sd = check_positive(sd, "sd", allow_zero=True)
    power = check_probability(power, "power")
    true_diff = to_real(true_diff, "true_diff")
    if abs(true_diff) >= margin:
        raise StatsInputError(f"equivalence cannot be shown when |true_diff| ({abs(true_diff)}) >= margin ({margin})")

    def ok(n: int) -> bool:
        return tost_power(n, sd, margin, true_diff=true_diff, alpha=alpha) >= power

    lo, hi = 1, 2  # invariant: ok(hi), not ok(lo) (N=1 never suffices)
    while not ok(hi):
        lo, hi = hi, hi * 2
        if hi > max_n:
            raise StatsInputError(f"more than max_n={max_n} pairs would be needed")
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi

