"""Verdicts and how they map onto pytest outcomes.

| verdict       | meaning                                                        | pytest outcome |
|---------------|----------------------------------------------------------------|----------------|
| REPRODUCED    | measured, and the criterion holds                              | passed         |
| CONTRADICTED  | measured, and the criterion fails                              | failed         |
| INCONCLUSIVE  | measured, but the data cannot decide (N too small, CI too wide)| skipped (shown as INCONCLUSIVE; failed with --strict-verdicts) |
| SKIPPED       | not measured: needs a GPU, weights missing, not implemented yet | skipped        |
| ERROR         | the measurement itself crashed: a bug, not a verdict            | failed         |

Only REPRODUCED passes, so nothing that was not measured can pass; CI fails on CONTRADICTED (and ERROR).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Mapping, Sequence


class Verdict(str, Enum):
    REPRODUCED = "REPRODUCED"
    CONTRADICTED = "CONTRADICTED"
    INCONCLUSIVE = "INCONCLUSIVE"
    SKIPPED = "SKIPPED"
    ERROR = "ERROR"

    @property
    def pytest_outcome(self) -> str:
        return PYTEST_OUTCOME[self]


PYTEST_OUTCOME: dict[Verdict, str] = {
    Verdict.REPRODUCED: "passed",
    Verdict.CONTRADICTED: "failed",
    Verdict.INCONCLUSIVE: "skipped",
    Verdict.SKIPPED: "skipped",
    Verdict.ERROR: "failed",
}


def _finite_or_none(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


@dataclass
class ClaimOutcome:
    """What a claim test concluded, with the numbers behind it.

    measured: the measured figure as people read it (e.g. "delta CLIP-T -4.1e-04");
    value / ci / n: the headline estimate, its confidence interval and the sample count;
    stats: StatResult.to_dict() of every test behind the verdict;
    samples: the per-sample numbers behind the verdict (saved next to the report);
    replication: the comparison with the paper's figure when the run used the paper's model and settings.
    """

    verdict: Verdict
    reason: str = ""
    measured: str | None = None
    value: float | None = None
    ci: tuple[float, float] | None = None
    n: int | None = None
    stats: list[dict[str, Any]] = field(default_factory=list)
    samples: Mapping[str, Sequence[Any]] | None = None
    replication: dict[str, Any] | None = None
    figures: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.verdict = Verdict(self.verdict)
        if self.verdict in (Verdict.SKIPPED, Verdict.ERROR, Verdict.INCONCLUSIVE) and not self.reason:
            raise ValueError(f"a {self.verdict.value} outcome needs a reason")
        if self.verdict in (Verdict.REPRODUCED, Verdict.CONTRADICTED, Verdict.INCONCLUSIVE) and self.measured is None:
            raise ValueError(f"a {self.verdict.value} outcome must say what was measured")
        self.value = _finite_or_none(self.value)
        if self.ci is not None:
            lo, hi = (_finite_or_none(v) for v in self.ci)
            self.ci = None if lo is None or hi is None else (lo, hi)


def reproduced(measured: str, reason: str = "", **kw: Any) -> ClaimOutcome:
    return ClaimOutcome(Verdict.REPRODUCED, reason, measured, **kw)


def contradicted(measured: str, reason: str, **kw: Any) -> ClaimOutcome:
    return ClaimOutcome(Verdict.CONTRADICTED, reason, measured, **kw)


def inconclusive(measured: str, reason: str, **kw: Any) -> ClaimOutcome:
    return ClaimOutcome(Verdict.INCONCLUSIVE, reason, measured, **kw)


def skipped(reason: str) -> ClaimOutcome:
    return ClaimOutcome(Verdict.SKIPPED, reason)
