"""`StatResult`: the one result object every test returns, consumed by the verdict layer and the report."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from typing import Any

from ._common import ALTERNATIVES, StatsInputError, jsonable

__all__ = ["StatResult"]


def _opt_float(value: Any) -> float | None:
    """Optional float field: numpy scalars become Python floats, NaN becomes None."""
    if value is None:
        return None
    f = float(value)
    return None if math.isnan(f) else f


def _json_float(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _canon(value: Any) -> Any:
    """Hashable, bit-exact form of a field: floats by repr, so -0.0 != 0.0 and NaN == NaN."""
    if isinstance(value, float):
        return ("f", repr(value))
    if isinstance(value, tuple):
        return tuple(_canon(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return value


@dataclass(frozen=True, eq=False)
class StatResult:
    """The outcome of one statistical procedure.

    estimate: the point estimate (mean paired difference ``b - a``, rho, ...); NaN only when
        undefined (e.g. Spearman on constant input; `decision` then says "undefined").
    ci, ci_level: confidence interval and its level (None when not computed). A one-sided
        interval has an infinite bound.
    p_value: None when the procedure has no p-value (e.g. a bare bootstrap CI).
    n: number of pairs (or cells) used.
    method: human-readable description, e.g. "paired bootstrap BCa, 1000 resamples".
    seed: the RNG seed used (None for deterministic procedures).
    alternative: "two-sided", "greater" (b > a) or "less" (b < a).
    margin: equivalence margin, when one was used.
    decision: short machine word: "ci_contains_zero", "ci_excludes_zero", "equivalent",
        "not_equivalent", "significant", "not_significant", "no_effect", "effect",
        "negligible_effect", "underpowered", "undecided", "increasing", "not_increasing",
        "undefined".
    mde: minimum detectable effect at this N, alpha and 80% power (paired t approximation).
    extra: JSON-serialisable details (sub-results as dicts, notes, warnings). Do not mutate.

    Instances compare and hash bit-exactly (floats by repr), so two runs with the same
    inputs and seed can be checked with ``==``.
    """

    estimate: float
    ci: tuple[float, float] | None
    ci_level: float | None
    p_value: float | None
    n: int
    method: str
    seed: int | None = None
    alternative: str = "two-sided"
    margin: float | None = None
    decision: str | None = None
    mde: float | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        put = object.__setattr__
        put(self, "estimate", math.nan if self.estimate is None else float(self.estimate))
        if self.ci is not None:
            lo, hi = self.ci
            put(self, "ci", (float(lo), float(hi)))
        for name in ("ci_level", "p_value", "margin", "mde"):
            put(self, name, _opt_float(getattr(self, name)))
        put(self, "n", int(self.n))
        put(self, "seed", None if self.seed is None else int(self.seed))
        put(self, "method", str(self.method))
        if self.alternative not in ALTERNATIVES:
            raise StatsInputError(f"alternative must be one of {ALTERNATIVES}, got {self.alternative!r}")
        put(self, "decision", None if self.decision is None else str(self.decision))
        put(self, "extra", jsonable(dict(self.extra)))

    def _key(self) -> tuple:
        return tuple(_canon(getattr(self, f.name)) for f in fields(self))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StatResult):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dict: Python floats/ints/str/None only. NaN and +-inf become None
        (`from_dict` maps a None CI bound back to -inf/+inf and a None estimate to NaN)."""
        return {
            "estimate": _json_float(self.estimate),
            "ci": None if self.ci is None else [_json_float(self.ci[0]), _json_float(self.ci[1])],
            "ci_level": self.ci_level,
            "p_value": self.p_value,
            "n": self.n,
            "method": self.method,
            "seed": self.seed,
            "alternative": self.alternative,
            "margin": self.margin,
            "decision": self.decision,
            "mde": _json_float(self.mde),
            "extra": jsonable(self.extra),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "StatResult":
        """Inverse of `to_dict` (also accepts the dict after a JSON round trip)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise StatsInputError(f"StatResult.from_dict: unknown keys {unknown}")
        missing = sorted({"estimate", "ci", "ci_level", "p_value", "n", "method"} - set(d))
        if missing:
            raise StatsInputError(f"StatResult.from_dict: missing keys {missing}")
        kw = dict(d)
        if kw["estimate"] is None:
            kw["estimate"] = math.nan
        if kw["ci"] is not None:
            lo, hi = kw["ci"]
            kw["ci"] = (-math.inf if lo is None else lo, math.inf if hi is None else hi)
        kw["extra"] = dict(kw.get("extra") or {})
        return cls(**kw)

    def format_ci(self, digits: int = 1) -> str:
        """The CI as ``[-1.7e-03, +7.0e-04]`` (``n/a`` when absent)."""
        if self.ci is None:
            return "n/a"
        return "[" + ", ".join(_fmt(v, digits) for v in self.ci) + "]"

    def summary(self, digits: int = 2) -> str:
        """One line for logs and reports."""
        parts = [f"{self.method}: estimate {_fmt(self.estimate, digits)}"]
        if self.ci is not None:
            parts.append(f"{100 * (self.ci_level or 0):g}% CI {self.format_ci(digits)}")
        if self.p_value is not None:
            parts.append(f"p={self.p_value:.3g} ({self.alternative})")
        if self.margin is not None:
            parts.append(f"margin {self.margin:g}")
        parts.append(f"N={self.n}")
        if self.mde is not None:
            parts.append(f"MDE {self.mde:.2g}")
        return ", ".join(parts) + (f" -> {self.decision}" if self.decision else "")


def _fmt(value: float, digits: int) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "+inf" if value > 0 else "-inf"
    return f"{value:+.{digits}e}"
