"""Aesthetics: the LAION "improved aesthetic predictor" (an MLP on L2-normalised CLIP ViT-L/14 image embeddings,
trained on SAC + LOGOS + AVA ratings, linear-MSE head), the usual aesthetics score of text-to-image papers.

Paper B reports aesthetics falling ~19% under comma padding without naming its predictor; this is the
community default and the report names it, so a verdict on it is about this predictor.
"""
from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .base import Metric, MetricUnavailable, WeightFile, file_sha256, torch_home
from .clip_score import ClipScore

HEAD_FILE = "sac+logos+ava1-l14-linearMSE.pth"
HEAD_SOURCE = ("https://github.com/christophschuhmann/improved-aesthetic-predictor/raw/main/"
               "sac+logos+ava1-l14-linearMSE.pth")


def head_weight_file() -> WeightFile:
    return WeightFile(HEAD_FILE, "SINKBENCH_AESTHETICS_WEIGHTS", HEAD_SOURCE,
                      (torch_home() / "hub" / "checkpoints" / HEAD_FILE,))


def aesthetic_head(embed_dim: int):
    """The predictor's MLP, laid out so that its state-dict keys (layers.0/2/4/6/7) match the released file."""
    from torch import nn

    return nn.Sequential(nn.Linear(embed_dim, 1024), nn.Dropout(0.2), nn.Linear(1024, 128), nn.Dropout(0.2),
                         nn.Linear(128, 64), nn.Dropout(0.1), nn.Linear(64, 16), nn.Linear(16, 1))


class Aesthetics(Metric):
    name = "aesthetics"
    pairs = "none"              # scores an image alone; prompts passed in are ignored

    def __init__(self, clip: ClipScore, head, *, head_weights: Path | None):
        self.clip, self.head, self.head_weights = clip, head.eval().to(clip.device), head_weights

    @classmethod
    def load(cls, weights: str | None = None, clip_weights: str | None = None, device: str = "cpu") -> "Aesthetics":
        import torch

        path = head_weight_file().resolve(weights)
        clip = ClipScore.load("ViT-L-14", "openai", weights=clip_weights, device=device)
        state = torch.load(path, map_location="cpu", weights_only=True)
        head = aesthetic_head(clip.model.visual.output_dim)
        try:
            head.load_state_dict({k.removeprefix("layers."): v for k, v in state.items()})
        except RuntimeError as exc:
            raise MetricUnavailable(f"{path} is not the aesthetic predictor's MLP state dict ({exc})") from exc
        return cls(clip, head, head_weights=path)

    @classmethod
    def random(cls, model_name: str = "ViT-B-32", seed: int = 0, device: str = "cpu") -> "Aesthetics":
        """Random CLIP and head (tests): the same scoring path without weight files."""
        import torch

        clip = ClipScore.random(model_name, seed=seed, device=device)
        torch.manual_seed(seed)
        return cls(clip, aesthetic_head(clip.model.visual.output_dim), head_weights=None)

    def identity(self) -> dict[str, Any]:
        return {"metric": self.name, "predictor": "LAION improved aesthetic predictor (sac+logos+ava1, linear MSE)",
                "head_weights": str(self.head_weights) if self.head_weights else None,
                "head_sha256": file_sha256(self.head_weights) if self.head_weights else "random-init",
                "clip": {k: v for k, v in self.clip.identity().items() if k != "score"},
                "torch": metadata.version("torch"), "score": "MLP on the L2-normalised CLIP image embedding"}

    def _score_batch(self, images: Sequence[np.ndarray], others: Sequence[Any]) -> np.ndarray:
        import torch
        from PIL import Image

        pixels = torch.stack([self.clip.preprocess(Image.fromarray(np.asarray(i))) for i in images]).to(self.clip.device)
        with torch.inference_mode():
            features = torch.nn.functional.normalize(self.clip.model.encode_image(pixels).float(), dim=-1)
            return self.head(features).squeeze(-1).cpu().numpy()


__all__ = ["Aesthetics", "aesthetic_head", "head_weight_file"]
