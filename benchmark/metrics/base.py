"""The metric interface, weight resolution, and the per-image score cache.

A Metric scores a batch of (image, prompt) pairs (CLIP-T, HPS, ImageReward, VQA), (image, image) pairs
(LPIPS), or two image sets (FID, KID). It declares the weight files it needs; they are resolved from an
explicit path, then an environment variable, then the standard caches, never downloaded. A missing file raises
MetricUnavailable naming the file, where to get it and the variable to set: claims that need the metric are
SKIPPED with that text. The identity of a metric (package, model, weight file sha256) goes into the report
and into every cache key.
"""
from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..cache import GenerationCache, cache_key


class MetricUnavailable(Exception):
    """A metric cannot run here (weights or package missing); the message is the how-to."""


@dataclass(frozen=True)
class WeightFile:
    """One weight file a metric needs, and where it may already be on this machine."""
    name: str                        # the file name, e.g. "alexnet-owt-7be5be79.pth"
    env_var: str                     # e.g. "SINKBENCH_LPIPS_TRUNK"
    source: str                      # where to get it (URL or hub id + file)
    candidates: tuple[Path, ...] = ()  # standard cache locations, in order

    def resolve(self, explicit: str | os.PathLike | None = None) -> Path:
        tried = []
        for origin, value in (("argument", explicit), (f"${self.env_var}", os.environ.get(self.env_var))):
            if value:
                path = Path(value).expanduser()
                if path.is_file():
                    return path
                tried.append(f"{origin}={path} (no such file)")
        for path in self.candidates:
            if path.is_file():
                return path
            tried.append(str(path))
        raise MetricUnavailable(
            f"weights {self.name} not found (looked at: {'; '.join(tried) or 'nothing'}); get it from "
            f"{self.source} and set {self.env_var}=/path/to/{self.name} (or put it in the standard cache)")


def torch_home() -> Path:
    return Path(os.environ.get("TORCH_HOME", Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "torch"))


def hf_cached_file(repo_id: str, filename: str) -> Path | None:
    """A file of a hub repository if it is in the local Hugging Face cache (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(repo_id, filename)
    return Path(found) if isinstance(found, str) else None


def file_sha256(path: str | os.PathLike, _cache: dict = {}) -> str:   # noqa: B006 - per-process memo
    path = Path(path)
    key = (str(path.resolve()), path.stat().st_size, path.stat().st_mtime_ns)
    if key not in _cache:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        _cache[key] = digest.hexdigest()
    return _cache[key]


def image_sha256(image: np.ndarray) -> str:
    array = np.ascontiguousarray(image)
    return hashlib.sha256(f"{array.dtype}{array.shape}".encode() + array.tobytes()).hexdigest()


class Metric(ABC):
    """Scores per item (higher is better unless `higher_is_better` says otherwise)."""

    name: str = ""
    pairs: str = "text"          # "text": (image, prompt); "image": (image, reference image); "none": image alone
    higher_is_better: bool = True

    @abstractmethod
    def identity(self) -> dict[str, Any]:
        """Package and version, model, pretrained tag, weight files with sha256: what the report names."""

    @abstractmethod
    def _score_batch(self, images: Sequence[np.ndarray], others: Sequence[Any]) -> np.ndarray:
        """Scores of one batch: images are uint8 (H, W, 3); others are prompts or reference images."""

    batch_size: int = 16

    def score(self, images: Sequence[np.ndarray], others: Sequence[Any] | None = None, *,
              cache: "MetricCache | None" = None, progress: bool = False) -> np.ndarray:
        """One score per pair, batched, re-using cached scores (key: image hash, prompt or reference hash,
        metric identity). A metric of images alone (pairs "none") ignores `others`."""
        if self.pairs == "none":
            others = [""] * len(images)
        elif others is None:
            raise ValueError(f"{self.name} scores (image, {'prompt' if self.pairs == 'text' else 'reference'}) pairs")
        if len(images) != len(others):
            raise ValueError(f"{self.name}: {len(images)} images but {len(others)} prompts/references")
        scores = np.full(len(images), np.nan)
        keys = [cache.key(self, image, other) if cache else None for image, other in zip(images, others)]
        todo = []
        for i, key in enumerate(keys):
            cached = cache.get(key) if key is not None else float("nan")
            if np.isnan(cached):
                todo.append(i)
            else:
                scores[i] = cached
        batches = range(0, len(todo), self.batch_size)
        if progress and todo:
            from tqdm.auto import tqdm

            batches = tqdm(batches, desc=f"scoring {self.name}", unit="batch")
        for start in batches:
            chunk = todo[start:start + self.batch_size]
            values = np.asarray(self._score_batch([images[i] for i in chunk], [others[i] for i in chunk]), float)
            for i, value in zip(chunk, values):
                scores[i] = value
                if cache and keys[i] is not None:
                    cache.put(keys[i], float(value), self)
        return scores


class MetricCache:
    """Per-image scores in the content-addressed cache: re-running a report re-scores nothing."""

    def __init__(self, root: str | os.PathLike):
        self.store = GenerationCache(root)
        self._identities: dict[int, Mapping[str, Any]] = {}

    def _identity(self, metric: Metric) -> Mapping[str, Any]:
        if id(metric) not in self._identities:
            self._identities[id(metric)] = metric.identity()
        return self._identities[id(metric)]

    def key(self, metric: Metric, image: np.ndarray, other: Any) -> str:
        partner = image_sha256(other) if isinstance(other, np.ndarray) else str(other)
        return cache_key({"metric": dict(self._identity(metric)), "image": image_sha256(image), "partner": partner})

    def get(self, key: str) -> float:
        entry = self.store.get(key, log=False)
        return float(entry.load().view(np.float64)[0]) if entry is not None else float("nan")

    def put(self, key: str, value: float, metric: Metric) -> None:
        # the store holds uint8 arrays: the float64 score travels as its 8 bytes (and the meta as text)
        raw = np.frombuffer(np.float64(value).tobytes(), dtype=np.uint8).copy()
        self.store.put(key, raw, {"metric": metric.name, "score": float(value)})


def to_float_batch(images: Iterable[np.ndarray]):
    """uint8 (H, W, 3) images -> float tensor (B, 3, H, W) in [0, 1]."""
    import torch

    arrays = [np.asarray(image) for image in images]
    for a in arrays:
        if a.dtype != np.uint8 or a.ndim != 3 or a.shape[-1] != 3:
            raise ValueError(f"expected uint8 (H, W, 3) images, got {a.dtype} {a.shape}")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0
