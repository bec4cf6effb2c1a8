"""The decision rule every criterion shares: where a confidence interval lies against a threshold."""
from __future__ import annotations

from typing import Any

from ..verdict import ClaimOutcome, contradicted, inconclusive, reproduced


def wilson_ci(hits: int, n: int) -> tuple[float, float]:
    """95% Wilson interval of a proportion hits / n."""
    from scipy.stats import binomtest

    ci = binomtest(hits, n).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


def by_interval(lo: float, hi: float, threshold: float, measured: str, *, above: str, below: str, inside: str,
                holds: str = "above", **kw: Any) -> ClaimOutcome:
    """The claim holds when the statistic lies `holds` ("above" / "below") the threshold: REPRODUCED when the
    whole interval [lo, hi] is on that side, CONTRADICTED when it is on the other, else INCONCLUSIVE. `above`,
    `below` and `inside` are the reasons for each place of the interval."""
    if lo > threshold:
        return (reproduced if holds == "above" else contradicted)(measured, above, **kw)
    if hi < threshold:
        return (reproduced if holds == "below" else contradicted)(measured, below, **kw)
    return inconclusive(measured, inside, **kw)


__all__ = ["by_interval", "wilson_ci"]
