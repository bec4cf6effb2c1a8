"""Seeded paired bootstrap: resample indices, percentile and BCa intervals.

Resampling scheme: resample ``r`` uses row ``r`` of
``numpy.random.default_rng(seed).integers(0, n, size=(n_resamples, n), dtype=np.int64)``
(drawn in row chunks, which yields the identical stream). This is exactly what
``scipy.stats.bootstrap(..., rng=np.random.default_rng(seed))`` draws, so scipy and this
module see the same resamples and their intervals can be compared to ~1e-15.

Percentile interval: Hyndman-Fan type 7 ("linear", numpy's default) quantiles of the
bootstrap distribution at ``(1-c)/2`` and ``(1+c)/2``.
Studentized (bootstrap-t) interval of a mean (Efron & Tibshirani 1993, 12.5): from
``t* = (mean* - mean) / se*`` over resamples with ``se* > 0``, the interval is
``[mean - q(1-c/2) se, mean - q(c/2) se]``. Percentile and BCa intervals are too narrow at small N
(about a z instead of a t half-width: ~92% coverage at N=16); bootstrap-t is not
(docs/STATISTICS.md, coverage simulation).
BCa interval (Efron & Tibshirani 1993, 14.3): ``z0 = Phi^-1(p)`` with
``p = (#{theta* < theta} + #{theta* <= theta}) / 2B`` (ties count half: scipy's convention),
acceleration ``a`` from the jackknife, and quantile levels
``Phi(z0 + (z0 + z)/(1 - a(z0 + z)))`` for ``z = Phi^-1((1-c)/2)`` and ``-z``.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np
from scipy.special import ndtr, ndtri

from ._common import (BOOTSTRAP_METHODS, DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES, DEFAULT_SEED, check_choice,
                      check_int, check_probability, check_seed)
from .pairing import as_diff, is_constant
from .power import minimum_detectable_effect
from .result import StatResult

__all__ = ["bootstrap_indices", "bootstrap_mean_ci"]

_CHUNK_ELEMENTS = 1 << 22  # bound on resample-matrix elements held at once


def bootstrap_indices(n: int, n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> np.ndarray:
    """The ``(n_resamples, n)`` index matrix of the bootstrap: row r = pairs drawn for resample r."""
    n = check_int(n, "n", 1)
    n_resamples = check_int(n_resamples, "n_resamples", 1)
    return np.random.default_rng(check_seed(seed)).integers(0, n, size=(n_resamples, n), dtype=np.int64)


def iter_index_chunks(n: int, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """`bootstrap_indices` in consecutive row blocks (same stream, bounded memory)."""
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, n_resamples, rows):
        yield rng.integers(0, n, size=(min(rows, n_resamples - start), n), dtype=np.int64)


def bootstrap_distribution(row_statistic: Callable[[np.ndarray], np.ndarray], n: int, n_resamples: int,
                           seed: int) -> np.ndarray:
    """``row_statistic(idx)`` maps an index block (rows = resamples) to one value per row."""
    return np.concatenate([row_statistic(idx) for idx in iter_index_chunks(n, n_resamples, seed)])


def quantile_type7(values: np.ndarray, probs: Any) -> np.ndarray:
    """Hyndman-Fan type 7 quantiles, with the arithmetic of ``scipy.stats.quantile(method='linear')``.

    (``numpy.quantile``'s default is the same definition; it may differ in the last bit.)
    """
    y = np.sort(np.asarray(values, dtype=np.float64))
    p = np.asarray(probs, dtype=np.float64)
    n = y.size
    jg = p * n + (1 - p)
    jp1 = jg // 1
    j = jp1 - 1
    g = np.where(j < 0, 0.0, jg % 1)
    j = np.clip(j, 0, n - 1).astype(np.int64)
    jp1 = np.clip(jp1, 0, n - 1).astype(np.int64)
    return (1 - g) * y[j] + g * y[jp1]


def jackknife_acceleration(theta_jack: np.ndarray) -> float:
    """BCa acceleration from leave-one-out statistics (Efron & Tibshirani eq. 14.15)."""
    n = float(theta_jack.size)
    u = (n - 1) * (theta_jack.mean() - theta_jack)
    biggest = float(np.max(np.abs(u)))
    if biggest > 0 and np.isfinite(biggest):
        # `a` is scale-free; an exact power-of-two rescale keeps u**3 from over/underflowing
        u = np.ldexp(u, -int(np.frexp(biggest)[1]))
    num = np.sum(u ** 3) / n ** 3
    den = np.sum(u ** 2) / n ** 2
    with np.errstate(all="ignore"):
        return float(1 / 6 * num / den ** 1.5)


def ci_from_distribution(theta_b: np.ndarray, theta_hat: float, *, method: str, confidence: float,
                         theta_jack: np.ndarray | None = None) -> tuple[tuple[float, float], dict]:
    """Percentile or BCa interval from a bootstrap distribution; returns ``(ci, info)``.

    BCa falls back to the percentile interval (saying why in ``info["bca_fallback"]``) when
    it is undefined: the estimate lies outside the bootstrap distribution (z0 infinite) or
    the jackknife statistics are constant (acceleration 0/0).
    """
    alpha = (1 - confidence) / 2
    levels = np.array([alpha, 1 - alpha])
    info: dict[str, Any] = {}
    if method == "bca":
        b = theta_b.size
        pct = (np.count_nonzero(theta_b < theta_hat) + np.count_nonzero(theta_b <= theta_hat)) / (2 * b)
        z0 = float(ndtri(pct))
        accel = jackknife_acceleration(theta_jack) if theta_jack is not None else float("nan")
        z = float(ndtri(alpha))
        with np.errstate(all="ignore"):
            num1, num2 = z0 + z, z0 - z
            bca = np.array([ndtr(z0 + num1 / (1 - accel * num1)), ndtr(z0 + num2 / (1 - accel * num2))])
        if np.isfinite(z0) and np.isfinite(accel) and np.all(np.isfinite(bca)):
            levels = bca
            info.update(bca_z0=z0, bca_acceleration=accel, bca_levels=bca.tolist())
        else:
            info["bca_fallback"] = ("BCa undefined (z0={:.3g}, acceleration={:.3g}); percentile interval used"
                                    .format(z0, accel))
    lo, hi = quantile_type7(theta_b, levels)
    return (float(lo), float(hi)), info


def mean_jackknife(x: np.ndarray) -> np.ndarray:
    """Leave-one-out means, in O(n)."""
    return (x.sum() - x) / (x.size - 1)


def bootstrap_mean_ci_core(x: np.ndarray, *, method: str, n_resamples: int, confidence: float,
                           seed: int) -> tuple[tuple[float, float], dict]:
    """CI of the mean of validated differences `x` (n >= 2); handles constant `x`."""
    est = float(np.mean(x))
    if is_constant(x):
        return (est, est), {"note": "all differences are equal: the bootstrap distribution is a point"}
    if method == "studentized":
        return _studentized_mean_ci(x, n_resamples=n_resamples, confidence=confidence, seed=seed)
    theta_b = bootstrap_distribution(lambda idx: x[idx].mean(axis=1), x.size, n_resamples, seed)
    ci, info = ci_from_distribution(theta_b, est, method=method, confidence=confidence,
                                    theta_jack=mean_jackknife(x) if method == "bca" else None)
    info["bootstrap_se"] = float(np.std(theta_b, ddof=1))
    return ci, info


def _studentized_mean_ci(x: np.ndarray, *, n_resamples: int, confidence: float,
                         seed: int) -> tuple[tuple[float, float], dict]:
    """Bootstrap-t interval of the mean of non-constant `x` (same resamples as the other methods).

    Computed on x / sd(x) and scaled back (the interval is scale-equivariant), so extreme
    magnitudes cannot overflow; if it is still not finite (tiny N with near-degenerate
    resamples), the percentile interval is used and ``extra["studentized_fallback"]`` says so.
    """
    n = x.size
    sd = float(np.std(x, ddof=1))
    z = x / sd
    est_z = float(np.mean(z))
    se_z = float(np.std(z, ddof=1)) / np.sqrt(n)

    def row_t(idx: np.ndarray) -> np.ndarray:
        s = z[idx]
        with np.errstate(all="ignore"):
            return (s.mean(axis=1) - est_z) / (s.std(axis=1, ddof=1) / np.sqrt(n))

    t_b = bootstrap_distribution(row_t, n, n_resamples, seed)
    valid = np.isfinite(t_b)
    alpha = (1 - confidence) / 2
    q_lo, q_hi = quantile_type7(t_b[valid], [alpha, 1 - alpha]) if valid.any() else (np.nan, np.nan)
    with np.errstate(all="ignore"):
        lo, hi = (est_z - q_hi * se_z) * sd, (est_z - q_lo * se_z) * sd
    info = {"bootstrap_t_quantiles": [float(q_lo), float(q_hi)], "standard_error": se_z * sd,
            "degenerate_resamples": int(np.count_nonzero(~valid))}
    if not (np.isfinite(lo) and np.isfinite(hi)):
        theta_b = bootstrap_distribution(lambda idx: x[idx].mean(axis=1), n, n_resamples, seed)
        (lo, hi), _ = ci_from_distribution(theta_b, float(np.mean(x)), method="percentile", confidence=confidence)
        info = {"studentized_fallback": "bootstrap-t interval not finite; percentile interval used"}
    return (float(lo), float(hi)), info


_METHOD_NAMES = {"bca": "BCa", "percentile": "percentile", "studentized": "studentized (bootstrap-t)"}


def method_label(method: str, n_resamples: int) -> str:
    return f"paired bootstrap {_METHOD_NAMES[method]}, {n_resamples} resamples"


def check_bootstrap_args(method: str, n_resamples: int, confidence: float, seed: int) -> tuple[str, int, float, int]:
    return (check_choice(method, BOOTSTRAP_METHODS, "method"), check_int(n_resamples, "n_resamples", 2),
            check_probability(confidence, "confidence"), check_seed(seed))


def bootstrap_mean_ci(diff: Any, *, method: str = "studentized", n_resamples: int = DEFAULT_RESAMPLES,
                      confidence: float = DEFAULT_CONFIDENCE, seed: int = DEFAULT_SEED) -> StatResult:
    """Seeded paired bootstrap CI of the mean difference (``diff = b - a``).

    `diff` is a 1-D array of per-pair differences or a `PairedSample`. Resamples pairs
    (see the module docstring for the exact scheme), so it is the paired bootstrap.
    decision: "ci_excludes_zero" / "ci_contains_zero" (bounds inclusive). p_value is None:
    use `paired_ttest` / `wilcoxon_signed_rank` for p-values. mde: paired-t MDE at
    ``alpha = 1 - confidence`` and 80% power. A constant `diff` gives the point interval.
    """
    method, n_resamples, confidence, seed = check_bootstrap_args(method, n_resamples, confidence, seed)
    x = as_diff(diff, what="a bootstrap CI")
    (lo, hi), info = bootstrap_mean_ci_core(x, method=method, n_resamples=n_resamples, confidence=confidence,
                                            seed=seed)
    sd = float(np.std(x, ddof=1))
    return StatResult(
        estimate=float(np.mean(x)), ci=(lo, hi), ci_level=confidence, p_value=None, n=x.size,
        method=method_label(method, n_resamples), seed=seed, alternative="two-sided",
        decision="ci_contains_zero" if lo <= 0.0 <= hi else "ci_excludes_zero",
        mde=minimum_detectable_effect(x.size, sd, alpha=1 - confidence),
        extra={"sd": sd, "quantile": "Hyndman-Fan type 7 (linear)",
               "resampling": "rows of numpy default_rng(seed).integers(0, n, (n_resamples, n))", **info})
