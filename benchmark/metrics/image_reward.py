"""ImageReward, scored by a worker in the `imagereward` side environment (benchmark/side_envs.py).

image-reward 1.5 cannot be installed beside transformers 5 / open_clip 3 (../shared/DESIGN.md), so this adapter
resolves the files here, starts `benchmark/metrics/workers/imagereward_worker.py` with the side environment's
python, and sends it batches. Files: ImageReward.pt (hub THUDM/ImageReward), its med_config.json (same
repository; BLIP's BERT config is built in otherwise) and the bert-base-uncased tokenizer that BLIP uses.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .base import Metric, MetricUnavailable, WeightFile, file_sha256, hf_cached_file

REPO = "THUDM/ImageReward"
WORKER = Path(__file__).resolve().parent / "workers" / "imagereward_worker.py"
BUILTIN_MED_CONFIG = Path(__file__).resolve().parent / "data" / "imagereward_med_config.json"
BERT_REPOS = ("google-bert/bert-base-uncased", "bert-base-uncased")


def weight_file() -> WeightFile:
    cached = hf_cached_file(REPO, "ImageReward.pt")
    return WeightFile("ImageReward.pt", "SINKBENCH_IMAGEREWARD_WEIGHTS", f"the Hugging Face hub repository {REPO} "
                      f"(`hf download {REPO} ImageReward.pt med_config.json`)", (cached,) if cached else ())


def resolve_tokenizer(explicit: str | os.PathLike | None = None) -> Path:
    """A directory with bert-base-uncased's vocab.txt: argument, $SINKBENCH_BERT_TOKENIZER, HF cache."""
    tried = []
    for origin, value in (("argument", explicit), ("$SINKBENCH_BERT_TOKENIZER", os.environ.get("SINKBENCH_BERT_TOKENIZER"))):
        if value:
            path = Path(value).expanduser()
            if (path / "vocab.txt").is_file():
                return path
            tried.append(f"{origin}={path} (no vocab.txt)")
    for repo in BERT_REPOS:
        found = hf_cached_file(repo, "vocab.txt")
        if found:
            return found.parent
        tried.append(f"HF cache {repo}")
    raise MetricUnavailable(
        f"ImageReward's BLIP tokenizer (bert-base-uncased vocab.txt) not found (looked at: {'; '.join(tried)}); get "
        f"it with `hf download {BERT_REPOS[0]} vocab.txt tokenizer_config.json` or set SINKBENCH_BERT_TOKENIZER=DIR")


def resolve_med_config(weights: Path | None, explicit: str | os.PathLike | None = None) -> Path:
    """The med_config.json beside the weights or in the HF cache, else BLIP's BERT config built in here."""
    candidates = [Path(explicit).expanduser()] if explicit else []
    if weights is not None:
        candidates.append(weights.parent / "med_config.json")
    cached = hf_cached_file(REPO, "med_config.json")
    candidates += [cached] if cached else []
    for path in candidates:
        if path.is_file():
            return path
    return BUILTIN_MED_CONFIG


class ImageRewardMetric(Metric):
    name = "image_reward"
    pairs = "text"
    batch_size = 8

    def __init__(self, worker, worker_identity: dict[str, Any], *, weights: Path | None, med_config: Path,
                 tokenizer: Path, device: str):
        self.worker = worker
        self.worker_identity = worker_identity
        self.weights, self.med_config, self.tokenizer, self.device = weights, med_config, tokenizer, device

    @classmethod
    def load(cls, weights: str | None = None, *, tokenizer: str | None = None, med_config: str | None = None,
             device: str = "cpu", env_root: str | None = None, allow_pickle: bool = False) -> "ImageRewardMetric":
        """Resolve the files and the side environment (MetricUnavailable with the how-to when one is missing)."""
        path = weight_file().resolve(weights)
        return cls._start(path, resolve_tokenizer(tokenizer), resolve_med_config(path, med_config), device,
                          env_root, allow_pickle=allow_pickle)

    @classmethod
    def random(cls, tokenizer: str | os.PathLike, *, seed: int = 0, device: str = "cpu",
               env_root: str | None = None) -> "ImageRewardMetric":
        """Random weights from the built-in config (tests): the same worker and scoring path."""
        return cls._start(None, Path(tokenizer), BUILTIN_MED_CONFIG, device, env_root, seed=seed)

    @classmethod
    def _start(cls, weights, tokenizer, med_config, device, env_root, *, seed: int = 0, allow_pickle: bool = False):
        from ..side_envs import SideEnvMissing, SideWorker, check

        try:
            python = check("imagereward", env_root)
        except SideEnvMissing as exc:
            raise MetricUnavailable(f"ImageReward runs in a side environment: {exc}") from exc
        worker = SideWorker(python, WORKER, "ImageReward")
        try:
            answer = worker.request("load", weights=str(weights) if weights else None, med_config=str(med_config),
                                    tokenizer=str(tokenizer), device=device, seed=seed, allow_pickle=allow_pickle)
        except RuntimeError:
            worker.close()
            raise
        return cls(worker, answer["identity"], weights=weights, med_config=med_config, tokenizer=tokenizer,
                   device=device)

    def identity(self) -> dict[str, Any]:
        return {"metric": self.name, "implementation": "image-reward in the imagereward side environment",
                **{k: self.worker_identity.get(k) for k in ("image_reward", "transformers", "timm", "torch", "parameters")},
                "weights": str(self.weights) if self.weights else None,
                "weights_sha256": file_sha256(self.weights) if self.weights else "random-init",
                "med_config_sha256": file_sha256(self.med_config),
                "tokenizer_vocab_sha256": file_sha256(self.tokenizer / "vocab.txt"),
                "score": "standardised reward ((r - mean) / std, the package's constants)"}

    def _score_batch(self, images: Sequence[np.ndarray], prompts: Sequence[Any]) -> np.ndarray:
        with tempfile.TemporaryDirectory() as tmp:
            batch = Path(tmp) / "batch.npz"
            np.savez(batch, **{f"img_{i}": np.asarray(image, np.uint8) for i, image in enumerate(images)})
            answer = self.worker.request("score", batch=str(batch), prompts=[str(p) for p in prompts])
        return np.asarray(answer["scores"], dtype=float)

    def close(self) -> None:
        self.worker.close()


__all__ = ["ImageRewardMetric", "resolve_tokenizer", "weight_file"]
