"""Pairing per-sample records into aligned arrays.

Sign convention (used everywhere in `benchmark.stats`): ``diff = b - a``, i.e.
**condition minus baseline**. Pass the baseline (e.g. the unmodified model) as `a` and the
intervention (e.g. sinks removed) as `b`; a positive mean difference means the
intervention raised the score, and ``alternative="greater"`` tests ``b > a``.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Callable, Union

import numpy as np

from ._common import StatsInputError, as_float_array, check_finite, check_n, preview, to_real

__all__ = ["PairedSample", "paired_differences", "align"]

KeySpec = Union[None, str, Sequence[str], Callable[[Any], Any]]
ValueSpec = Union[str, Callable[[Any], Any]]


@dataclass(frozen=True, eq=False)
class PairedSample:
    """Aligned baseline `a` and condition `b` values; ``keys[i]`` identifies pair ``i``.

    Keys are the sorted record keys (e.g. ``(prompt_id, seed)``) or ``0..n-1`` for
    positional input. Arrays are read-only float64 copies.
    """

    keys: tuple
    a: np.ndarray
    b: np.ndarray

    def __post_init__(self) -> None:
        a = np.array(self.a, dtype=np.float64)
        b = np.array(self.b, dtype=np.float64)
        if a.ndim != 1 or a.shape != b.shape or len(self.keys) != a.size:
            raise StatsInputError(
                f"PairedSample needs 1-D a and b of equal length matching keys: "
                f"got a{a.shape}, b{b.shape}, {len(self.keys)} keys")
        a.setflags(write=False)
        b.setflags(write=False)
        object.__setattr__(self, "keys", tuple(self.keys))
        object.__setattr__(self, "a", a)
        object.__setattr__(self, "b", b)

    @property
    def diff(self) -> np.ndarray:
        """Per-pair difference ``b - a`` (condition minus baseline)."""
        return self.b - self.a

    @property
    def n(self) -> int:
        return int(self.a.size)

    def __len__(self) -> int:
        return self.n

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PairedSample):
            return NotImplemented
        return (self.keys == other.keys and self.a.tobytes() == other.a.tobytes()
                and self.b.tobytes() == other.b.tobytes())

    def __hash__(self) -> int:
        return hash((self.keys, self.a.tobytes(), self.b.tobytes()))


def _sorted_keys(keys: Any) -> list:
    """Deterministic order independent of input order: natural order, else by repr."""
    keys = list(keys)
    try:
        return sorted(keys)
    except TypeError:
        return sorted(keys, key=repr)


def _field_getter(spec: Any, what: str) -> Callable[[Any], Any]:
    if callable(spec):
        return spec
    names = (spec,) if isinstance(spec, str) else tuple(spec)
    if not names or not all(isinstance(n, str) for n in names):
        raise StatsInputError(f"{what} must be a field name, a tuple of field names or a callable, got {spec!r}")

    def get(rec: Any) -> Any:
        vals = tuple(rec[n] if isinstance(rec, Mapping) else getattr(rec, n) for n in names)
        return vals[0] if len(vals) == 1 else vals
    return get


def _records_to_mapping(records: Any, name: str, key: KeySpec, value: ValueSpec) -> dict:
    """Records (dicts or objects) -> {key: value}; duplicates are an error naming them."""
    if isinstance(records, (str, bytes, Mapping)) or not isinstance(records, Iterable):
        raise StatsInputError(f"with key=..., {name} must be a sequence of records, got {type(records).__name__}")
    get_key, get_value = _field_getter(key, "key"), _field_getter(value, "value")
    out: dict = {}
    seen: dict = {}
    dups: dict = {}
    for i, rec in enumerate(records):
        try:
            k, v = get_key(rec), get_value(rec)
        except (KeyError, AttributeError, IndexError, TypeError) as exc:
            raise StatsInputError(f"{name}: record {i} lacks the key/value field ({exc!r})") from None
        try:
            hash(k)
        except TypeError:
            raise StatsInputError(f"{name}: record {i} has an unhashable key {k!r}") from None
        if k in seen:
            dups.setdefault(k, [seen[k]]).append(i)
        else:
            seen[k] = i
            out[k] = v
    if dups:
        detail = "; ".join(f"{k!r} at records {idx}" for k, idx in list(dups.items())[:10])
        raise StatsInputError(f"{name} has duplicate keys: {detail}")
    return out


def align(*samples: Any, names: Sequence[str] | None = None, key: KeySpec = None,
          value: ValueSpec = "value") -> tuple[tuple, list[np.ndarray]]:
    """Align several per-sample inputs on their keys; returns ``(keys, [array, ...])``.

    Each input is either a mapping ``{key: value}`` (keys e.g. ``(prompt_id, seed)``; all
    inputs must have exactly the same key set), a sequence of records when `key` is given
    (`key`/`value` are field names or callables; duplicate keys are refused), or a 1-D
    sequence/array (positional pairing; all lengths must match). Keys are sorted so input
    order never changes a result. Errors name missing keys per side, duplicates, and
    non-finite or non-numeric values.
    """
    names = list(names) if names is not None else [chr(ord("a") + i) for i in range(len(samples))]
    if len(names) != len(samples) or not samples:
        raise StatsInputError("align needs one name per input and at least one input")
    if key is not None:
        samples = tuple(_records_to_mapping(s, n, key, value) for s, n in zip(samples, names))
    is_map = [isinstance(s, Mapping) for s in samples]
    if any(is_map) and not all(is_map):
        kinds = ", ".join(f"{n}={'mapping' if m else 'sequence'}" for n, m in zip(names, is_map))
        raise StatsInputError(f"cannot pair keyed and positional inputs ({kinds}); "
                              "pass all as mappings or all as arrays")
    if all(is_map):
        return _align_mappings(samples, names)
    arrays = [as_float_array(s, n) for s, n in zip(samples, names)]
    lengths = {n: arr.size for n, arr in zip(names, arrays)}
    if len(set(lengths.values())) > 1:
        raise StatsInputError("positional inputs have different lengths: "
                              + ", ".join(f"len({n})={k}" for n, k in lengths.items()))
    for n, arr in zip(names, arrays):
        check_finite(arr, n)
    n = arrays[0].size
    check_n(n, 1, "pairing")
    return tuple(range(n)), arrays


def _align_mappings(maps: Sequence[Mapping], names: list[str]) -> tuple[tuple, list[np.ndarray]]:
    union = set().union(*(m.keys() for m in maps))
    problems = []
    for m, n in zip(maps, names):
        missing = union - set(m.keys())
        if missing:
            others = [o for o, mm in zip(names, maps) if mm is not m]
            problems.append(f"{len(missing)} key(s) present in {'/'.join(others)} but missing in {n}: "
                            f"{preview(_sorted_keys(missing))}")
    if problems:
        raise StatsInputError("inputs are not paired: " + "; ".join(problems))
    keys = tuple(_sorted_keys(union))
    check_n(len(keys), 1, "pairing")
    arrays = []
    for m, n in zip(maps, names):
        vals = np.array([to_real(m[k], f"{n}[{k!r}]") for k in keys], dtype=np.float64)
        check_finite(vals, n, labels=keys)
        arrays.append(vals)
    return keys, arrays


def paired_differences(a: Any, b: Any = None, *, key: KeySpec = None,
                       value: ValueSpec = "value") -> PairedSample:
    """Pair baseline `a` with condition `b`; ``result.diff == b - a`` (condition minus baseline).

    `a` and `b` are mappings ``{(prompt_id, seed): value}`` (key sets must match exactly),
    sequences of records with ``key=("prompt_id", "seed"), value="clip_t"`` (or callables),
    or equal-length 1-D arrays (positional pairing). A `PairedSample` passed as `a` (with
    ``b=None``) is returned unchanged. Raises `StatsInputError` naming missing keys on each
    side, duplicate keys, or the keys/indices holding NaN/inf.
    """
    if b is None:
        if isinstance(a, PairedSample):
            return a
        raise StatsInputError("paired_differences needs both a (baseline) and b (condition)")
    keys, (xa, xb) = align(a, b, names=["a", "b"], key=key, value=value)
    return PairedSample(keys, xa, xb)


_MAX_ABS, _MIN_ABS = 1e150, 1e-150  # beyond these, squares/variances over- or underflow


def as_diff(x: Any, name: str = "diff", minimum: int = 2, what: str = "this test") -> np.ndarray:
    """Validated 1-D finite float differences from an array-like or a `PairedSample` (`.diff`).

    Also refuses magnitudes whose variance would over- or underflow (rescale the metric).
    """
    if isinstance(x, PairedSample):
        with np.errstate(over="ignore", invalid="ignore"):
            arr = x.diff
        check_finite(arr, f"{name} (b - a overflows)", labels=x.keys)
    elif isinstance(x, Mapping):
        raise StatsInputError(f"{name}: pass differences as an array or a PairedSample, "
                              "or use paired_differences(a, b) for keyed records")
    else:
        arr = as_float_array(x, name)
        check_finite(arr, name)
    check_n(arr.size, minimum, what)
    biggest = float(np.max(np.abs(arr)))
    if biggest > _MAX_ABS or (0.0 < biggest < _MIN_ABS and not is_constant(arr)):
        raise StatsInputError(f"{name}: |values| up to {biggest:.3g} would over/underflow the variance; "
                              "rescale the metric")
    return np.ascontiguousarray(arr, dtype=np.float64)


def as_pair(a: Any, b: Any, what: str, minimum: int = 2, key: KeySpec = None,
            value: ValueSpec = "value") -> PairedSample:
    """`paired_differences` plus the checks of `as_diff` (minimum N, no overflow) on ``b - a``."""
    sample = paired_differences(a, b, key=key, value=value)
    as_diff(sample, minimum=minimum, what=what)
    return sample


def is_constant(x: np.ndarray) -> bool:
    return bool(x.size == 0 or np.all(x == x[0]))

