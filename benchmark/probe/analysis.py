"""Summaries of a key-importance vector: share of attention per segment, top keys, sink-to-random ratio.

Key importance mu_j is the incoming attention mass of key j averaged over queries (and over heads, steps,
layers and prompts as asked). Definitions (docs/probe-format.md):
- share(segment) = sum_{j in segment} mu_j / sum_j mu_j;
- ratio x uniform of key j = mu_j / (sum_j mu_j / N): 1 means "as much as a uniform share";
- sink-to-random ratio (k) = mean of the top-k mu_j / mean of the other mu_j, i.e. how much more a sink
  receives than a key drawn at random from the rest.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np


class AnalysisError(ValueError):
    pass


@dataclass(frozen=True)
class Segment:
    name: str
    start: int
    stop: int      # exclusive

    def __len__(self) -> int:
        return self.stop - self.start


def parse_segments(text: str) -> list[Segment]:
    """"text:0-511,image:512-4607" (inclusive ranges) -> segments; they must not overlap."""
    segments = []
    for part in [p.strip() for p in text.split(",") if p.strip()]:
        m = re.fullmatch(r"([A-Za-z_][\w.-]*):(\d+)-(\d+)", part)
        if not m:
            raise AnalysisError(f"bad segment {part!r}: expected NAME:START-END (inclusive), e.g. text:0-511")
        start, end = int(m.group(2)), int(m.group(3))
        if end < start:
            raise AnalysisError(f"bad segment {part!r}: END < START")
        segments.append(Segment(m.group(1), start, end + 1))
    ordered = sorted(segments, key=lambda s: s.start)
    for a, b in zip(ordered, ordered[1:]):
        if b.start < a.stop:
            raise AnalysisError(f"segments {a.name} and {b.name} overlap")
    return segments


def segments_from_spans(spans: Sequence[Sequence[Any]]) -> list[Segment]:
    """[[name, length], ...] laid end to end (a model card's attention.spans)."""
    out, start = [], 0
    for name, length in spans:
        out.append(Segment(str(name), start, start + int(length)))
        start += int(length)
    return out


def load_vector(path: str | Path) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise AnalysisError(f"no such file: {path}")
    if path.suffix == ".npy":
        vector = np.load(path, allow_pickle=False)
    else:
        try:
            vector = np.asarray(json.loads(path.read_text()), dtype=np.float64)
        except (json.JSONDecodeError, ValueError) as exc:
            raise AnalysisError(f"{path}: expected a JSON list of numbers or a .npy file ({exc})") from exc
    vector = np.asarray(vector, dtype=np.float64).squeeze()
    if vector.ndim != 1 or vector.size == 0:
        raise AnalysisError(f"{path}: expected one key-importance vector, got shape {vector.shape}")
    if not np.isfinite(vector).all() or (vector < 0).any():
        raise AnalysisError(f"{path}: importances must be finite and >= 0")
    return vector


def summarize(importance: np.ndarray, segments: Sequence[Segment] = (), k: int = 5,
              token_types: Sequence[str] | None = None) -> dict[str, Any]:
    mu = np.asarray(importance, dtype=np.float64)
    n = mu.size
    total = float(mu.sum())
    if total <= 0:
        raise AnalysisError("the importances sum to 0")
    for seg in segments:
        if seg.stop > n:
            raise AnalysisError(f"segment {seg.name} ends at {seg.stop - 1}, past the last key {n - 1}")
    k = min(k, n)
    order = np.argsort(-mu, kind="stable")[:k]

    def segment_of(j: int) -> str | None:
        return next((s.name for s in segments if s.start <= j < s.stop), None)

    rest = np.delete(mu, order)
    doc: dict[str, Any] = {
        "n_keys": n,
        "shares": {s.name: float(mu[s.start:s.stop].sum() / total) for s in segments},
        "top_keys": [{"index": int(j), "importance": float(mu[j]), "ratio_x_uniform": float(mu[j] * n / total),
                      "segment": segment_of(int(j)),
                      **({"token_type": token_types[j]} if token_types is not None else {})} for j in order],
        "sink_to_random_ratio": float(mu[order].mean() / rest.mean()) if rest.size and rest.mean() > 0 else None,
        "k": k,
    }
    if segments:
        covered = sum(len(s) for s in segments)
        doc["unsegmented_share"] = float(1.0 - sum(doc["shares"].values())) if covered < n else 0.0
    if token_types is not None:
        types: dict[str, float] = {}
        for j, t in enumerate(token_types):
            types[t] = types.get(t, 0.0) + float(mu[j])
        doc["shares_by_token_type"] = {t: v / total for t, v in types.items()}
    return doc


# ------------------------------------------------------------------ per-call concentration measures
def max_mass(mass: np.ndarray) -> np.ndarray:
    """MaxMass: the largest incoming mass, per head (last axis = keys)."""
    return np.asarray(mass).max(axis=-1)


def top_concentration(mass: np.ndarray, k: int = 5) -> np.ndarray:
    """Share of the attention held by the k keys of largest mass (top-5 concentration), per head."""
    mass = np.asarray(mass)
    k = min(k, mass.shape[-1])
    return np.sort(mass, axis=-1)[..., -k:].sum(axis=-1) / mass.sum(axis=-1)


def index0_overlap(mass: np.ndarray) -> float:
    """Fraction of heads (rows) whose top-1 key is key 0."""
    mass = np.atleast_2d(np.asarray(mass))
    return float((mass.argmax(axis=-1) == 0).mean())


def ratio_x_uniform(mass: np.ndarray) -> np.ndarray:
    """mu_j x N / sum(mu): 1 is a uniform share."""
    mass = np.asarray(mass, dtype=np.float64)
    return mass * mass.shape[-1] / mass.sum(axis=-1, keepdims=True)


def rope_band_energy(channel_energy: np.ndarray, axes_dims: Sequence[int]) -> list[np.ndarray]:
    """Key channel energy grouped by RoPE frequency, per position axis.

    RoPE as diffusers applies it (FLUX, Qwen-Image: axes concatenated along the head dimension, channels
    rotated in adjacent pairs 2i, 2i+1 at frequency theta^(-2i/d_axis)): returns, for each axis, the energy of
    each rotated pair, from the highest frequency (i = 0) to the lowest. `channel_energy` is (..., D) with
    D = sum(axes_dims)."""
    energy = np.asarray(channel_energy, dtype=np.float64)
    if energy.shape[-1] != sum(axes_dims) or any(d % 2 for d in axes_dims):
        raise AnalysisError(f"channel energy of width {energy.shape[-1]} does not split into RoPE axes {list(axes_dims)}")
    bands, start = [], 0
    for d in axes_dims:
        chunk = energy[..., start:start + d]
        bands.append(chunk.reshape(*chunk.shape[:-1], d // 2, 2).sum(axis=-1))
        start += d
    return bands
