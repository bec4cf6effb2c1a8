"""Constants, the input error, and the validation helpers shared by the stats modules.

Every public function validates its inputs here *before* numpy/scipy see them, so bad
input fails with a `StatsInputError` that names the offending keys or indices instead of
a warning or a crash deep inside numpy.
"""
from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Iterable
from typing import Any, Callable, TypeVar

import numpy as np

DEFAULT_SEED = 20260522
DEFAULT_RESAMPLES = 1000
DEFAULT_CONFIDENCE = 0.95
DEFAULT_ALPHA = 0.05
DEFAULT_POWER = 0.8
ALTERNATIVES = ("two-sided", "greater", "less")
BOOTSTRAP_METHODS = ("percentile", "bca", "studentized")

T = TypeVar("T")


class StatsInputError(ValueError):
    """Input the statistics cannot be computed on; the message names the offending keys/indices."""


def preview(items: Iterable[Any], limit: int = 10) -> str:
    """`[k1, k2, ...]` with at most `limit` items shown, then `(+m more)`."""
    items = list(items)
    shown = ", ".join(repr(i) for i in items[:limit])
    more = f", ... (+{len(items) - limit} more)" if len(items) > limit else ""
    return f"[{shown}{more}]"


def to_real(value: Any, where: str) -> float:
    """One scalar as a Python float; refuses str/None/complex (NaN/inf pass, checked later)."""
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, numbers.Real):
        return float(value)
    raise StatsInputError(f"{where} is not a real number: {value!r}")


def as_float_array(x: Any, name: str) -> np.ndarray:
    """`x` as a new 1-D float64 array (no finiteness check)."""
    try:
        raw = np.asarray(x)
    except (TypeError, ValueError) as exc:  # ragged nested sequences
        raise StatsInputError(f"{name}: cannot read as a 1-D numeric array ({exc})") from None
    if raw.ndim != 1:
        raise StatsInputError(f"{name} must be 1-D, got an array of shape {raw.shape}")
    if raw.dtype.kind in "biuf":
        return raw.astype(np.float64, copy=True)
    if raw.dtype.kind == "O":
        return np.array([to_real(v, f"{name}[{i}]") for i, v in enumerate(raw)], dtype=np.float64)
    raise StatsInputError(f"{name} must hold real numbers, got dtype {raw.dtype}")


def check_finite(arr: np.ndarray, name: str, labels: tuple | None = None) -> None:
    """Raise naming the indices (or keys, when `labels` is given) of NaN/inf entries."""
    bad = ~np.isfinite(arr)
    if bad.any():
        where = np.flatnonzero(bad).tolist()
        kinds = sorted({"NaN" if math.isnan(arr[i]) else "inf" for i in where})
        if labels is None:
            raise StatsInputError(f"{name} has {'/'.join(kinds)} at indices {preview(where)}")
        raise StatsInputError(f"{name} has {'/'.join(kinds)} for keys {preview(labels[i] for i in where)}")


def check_n(n: int, minimum: int, what: str) -> None:
    if n < minimum:
        raise StatsInputError(f"{what} needs N >= {minimum} paired samples, got N={n}")


def check_choice(value: Any, allowed: tuple, name: str) -> str:
    if value not in allowed:
        raise StatsInputError(f"{name} must be one of {allowed}, got {value!r}")
    return value


def check_probability(value: Any, name: str) -> float:
    """A float strictly between 0 and 1 (alpha, confidence, power)."""
    v = to_real(value, name)
    if not 0.0 < v < 1.0:
        raise StatsInputError(f"{name} must be strictly between 0 and 1, got {value!r}")
    return v


def check_positive(value: Any, name: str, allow_zero: bool = False) -> float:
    v = to_real(value, name)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise StatsInputError(f"{name} must be a finite number {'>=' if allow_zero else '>'} 0, got {value!r}")
    return v


def check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral,)):
        raise StatsInputError(f"{name} must be an integer, got {value!r}")
    v = int(value)
    if v < minimum:
        raise StatsInputError(f"{name} must be >= {minimum}, got {v}")
    return v


def check_seed(seed: Any) -> int:
    """Seeds must be explicit non-negative integers: an unseeded bootstrap is not reproducible."""
    if seed is None:
        raise StatsInputError("seed=None would make the result irreproducible; pass an integer seed")
    return check_int(seed, "seed", 0)


def quiet(fn: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T, list[str]]:
    """Call `fn` with warnings captured (returned as messages) so they reach `extra`, not stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with np.errstate(all="ignore"):
            out = fn(*args, **kwargs)
    return out, sorted({str(w.message) for w in caught})


def jsonable(obj: Any) -> Any:
    """A deep copy of `obj` made of dict/list/str/int/float/bool/None only; NaN/inf become None."""
    if obj is None or isinstance(obj, (str, bool)):
        return obj
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        f = float(obj)
        return f if math.isfinite(f) else None
    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        return jsonable(obj.to_dict())
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in (obj.tolist() if isinstance(obj, np.ndarray) else obj)]
    raise StatsInputError(f"extra holds a value that is not JSON-serialisable: {obj!r}")
