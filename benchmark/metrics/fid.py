"""FID_shift and KID between two generated sets (baseline vs condition), from a named feature extractor.

Features: pytorch-fid's InceptionV3 with the TF-FID weights (pt_inception-2015-12-05-6726825d.pth), the
extractor the FID literature's numbers come from (pool3, 2048-d, images resized to 299 bilinearly). We use
pytorch-fid rather than clean-fid or torchmetrics because its weights are a plain state dict (loadable with
weights_only=True) and its resize is documented; the distance itself is computed here (scipy sqrtm) so that
any extractor goes through one implementation. With N < 2048 images the 2048-d covariance is rank-deficient
and FID is biased upwards: the result carries a warning, and KID (unbiased) is reported alongside.
"""
from __future__ import annotations

import os
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from scipy import linalg

from .base import MetricUnavailable, WeightFile, file_sha256, image_sha256, to_float_batch, torch_home

FID_WEIGHTS = "pt_inception-2015-12-05-6726825d.pth"
FID_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + FID_WEIGHTS
FEATURE_DIM_WARNING = 2048


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)); a tiny diagonal offset if the product is singular."""
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    covmean = np.real(covmean)
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def fid_from_features(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


def kid_from_features(a: np.ndarray, b: np.ndarray, *, subsets: int = 100, subset_size: int = 1000,
                      seed: int = 0) -> tuple[float, float]:
    """Unbiased MMD^2 with the cubic polynomial kernel (x.y / d + 1)^3, mean and std over random subsets."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    d = a.shape[1]
    m = min(len(a), len(b), subset_size)
    if m < 2:
        raise ValueError("KID needs at least 2 images per set")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        values.append((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                      - 2 * kxy.mean())
    return float(np.mean(values)), float(np.std(values))


class InceptionFeatures:
    """pool3 features of pytorch-fid's FID InceptionV3 (or any module mapping (B,3,H,W) in [0,1] to (B,d))."""

    def __init__(self, model, *, identity: dict[str, Any], device: str = "cpu", batch_size: int = 32):
        self.model = model.eval().to(device)
        self._identity, self.device, self.batch_size = identity, device, batch_size
        self._memo: dict[str, np.ndarray] = {}

    @classmethod
    def load(cls, weights: str | None = None, device: str = "cpu") -> "InceptionFeatures":
        try:
            from pytorch_fid.inception import InceptionV3
        except ImportError as exc:
            raise MetricUnavailable(f"FID needs pytorch-fid: pip install 'sinkbench[metrics]' ({exc})") from exc
        path = WeightFile(FID_WEIGHTS, "SINKBENCH_FID_INCEPTION", FID_URL,
                          (torch_home() / "hub" / "checkpoints" / FID_WEIGHTS,)).resolve(weights)
        # pytorch-fid looks for the file in TORCH_HOME/hub/checkpoints (and would download it otherwise):
        # point TORCH_HOME at a folder holding exactly the resolved file while it builds the model.
        with tempfile.TemporaryDirectory() as home:
            target = Path(home) / "hub" / "checkpoints" / FID_WEIGHTS
            target.parent.mkdir(parents=True)
            target.symlink_to(path.resolve())
            old = os.environ.get("TORCH_HOME")
            os.environ["TORCH_HOME"] = home
            try:
                model = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]], use_fid_inception=True)
            finally:
                if old is None:
                    os.environ.pop("TORCH_HOME", None)
                else:
                    os.environ["TORCH_HOME"] = old
        return cls(model, identity={"extractor": "pytorch-fid InceptionV3 pool3 (2048)",
                                    "package_version": metadata.version("pytorch-fid"), "weights": str(path),
                                    "weights_sha256": file_sha256(path), "resize": "bilinear to 299x299"},
                   device=device)

    def identity(self) -> dict[str, Any]:
        return dict(self._identity)

    def __call__(self, images: Sequence[np.ndarray]) -> np.ndarray:
        import torch

        keys = [image_sha256(i) for i in images]
        todo = [i for i, k in enumerate(keys) if k not in self._memo]
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start:start + self.batch_size]
            with torch.inference_mode():
                out = self.model(to_float_batch([images[i] for i in chunk]).to(self.device))
            out = out[0] if isinstance(out, (list, tuple)) else out
            feats = out.reshape(len(chunk), -1).float().cpu().numpy()
            for i, f in zip(chunk, feats):
                self._memo[keys[i]] = f
        return np.stack([self._memo[k] for k in keys])


def fid_shift(baseline: Sequence[np.ndarray], condition: Sequence[np.ndarray], features: Callable,
              *, kid_subsets: int = 100, seed: int = 0) -> dict[str, Any]:
    """FID and KID between two generated sets, with the extractor's identity and a small-N warning."""
    a, b = features(baseline), features(condition)
    kid_mean, kid_std = kid_from_features(a, b, subsets=kid_subsets, seed=seed)
    result: dict[str, Any] = {"fid": fid_from_features(a, b), "kid_mean": kid_mean, "kid_std": kid_std,
                              "n_baseline": len(a), "n_condition": len(b), "feature_dim": int(a.shape[1]),
                              "features": features.identity() if hasattr(features, "identity") else repr(features)}
    if min(len(a), len(b)) < FEATURE_DIM_WARNING:
        result["warning"] = (f"FID from N = {min(len(a), len(b))} < {FEATURE_DIM_WARNING} images: the covariance "
                             f"is rank-deficient and FID is biased upwards; compare conditions at equal N, "
                             f"and prefer KID (unbiased)")
    return result
