"""CLIP-T: cosine similarity of open_clip image and text embeddings (raw cosine, as paper A's released code;
default ViT-B-32 'openai')."""
from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .base import Metric, MetricUnavailable, WeightFile, file_sha256, hf_cached_file, to_float_batch

HUB_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def clip_weight_file(model: str, pretrained: str) -> WeightFile:
    import open_clip

    cfg = open_clip.get_pretrained_cfg(model, pretrained) or {}
    hub = (cfg.get("hf_hub") or "").strip("/")
    candidates = tuple(p for p in (hf_cached_file(hub, f) for f in HUB_FILES) if p) if hub else ()
    source = f"the Hugging Face hub repository {hub} ({' or '.join(HUB_FILES)})" if hub else cfg.get("url", "open_clip")
    return WeightFile(name=f"{model} {pretrained} weights ({HUB_FILES[0]})", env_var="SINKBENCH_CLIP_WEIGHTS",
                      source=source, candidates=candidates)


class ClipScore(Metric):
    name = "clip_t"
    pairs = "text"

    def __init__(self, model, preprocess, tokenizer, *, model_name: str, pretrained: str | None,
                 weights: Path | None, device: str = "cpu"):
        self.model = model.eval().to(device)
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.model_name, self.pretrained, self.weights, self.device = model_name, pretrained, weights, device

    @classmethod
    def load(cls, model_name: str = "ViT-B-32", pretrained: str = "openai", weights: str | None = None,
             device: str = "cpu") -> "ClipScore":
        """Resolve the weights (argument, $SINKBENCH_CLIP_WEIGHTS, HF cache) and build the model offline."""
        try:
            import open_clip
        except ImportError as exc:
            raise MetricUnavailable(f"CLIP-T needs open_clip: pip install 'sinkbench[metrics]' ({exc})") from exc
        path = clip_weight_file(model_name, pretrained).resolve(weights)
        model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=str(path), device=device)
        return cls(model, preprocess, open_clip.get_tokenizer(model_name), model_name=model_name,
                   pretrained=pretrained, weights=path, device=device)

    @classmethod
    def random(cls, model_name: str = "ViT-B-32", seed: int = 0, device: str = "cpu") -> "ClipScore":
        """Random weights (tests): the same code path without a weight file."""
        import open_clip
        import torch

        torch.manual_seed(seed)
        model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=None, device=device)
        return cls(model, preprocess, open_clip.get_tokenizer(model_name), model_name=model_name,
                   pretrained=None, weights=None, device=device)

    def identity(self) -> dict[str, Any]:
        return {"metric": self.name, "package": "open_clip_torch", "version": metadata.version("open_clip_torch"),
                "model": self.model_name, "pretrained": self.pretrained,
                "weights": str(self.weights) if self.weights else None,
                "weights_sha256": file_sha256(self.weights) if self.weights else "random-init",
                "score": "raw cosine of L2-normalised embeddings"}

    def _score_batch(self, images: Sequence[np.ndarray], prompts: Sequence[Any]) -> np.ndarray:
        import torch
        from PIL import Image

        pixels = torch.stack([self.preprocess(Image.fromarray(np.asarray(i))) for i in images]).to(self.device)
        tokens = self.tokenizer([str(p) for p in prompts]).to(self.device)
        with torch.inference_mode():
            image_features = torch.nn.functional.normalize(self.model.encode_image(pixels).float(), dim=-1)
            text_features = torch.nn.functional.normalize(self.model.encode_text(tokens).float(), dim=-1)
        return (image_features * text_features).sum(dim=-1).cpu().numpy()


HPS_FILES = {"v2.0": "HPS_v2_compressed.pt", "v2.1": "HPS_v2.1_compressed.pt"}
HPS_REPO = "xswu/HPSv2"


class HPSv2(ClipScore):
    """HPS-v2 (v2.0 / v2.1): an open_clip ViT-H-14 fine-tuned on human preferences; the score is the cosine
    of its image and text embeddings (as hpsv2's own scorer computes it, without logit scaling).

    Built with open_clip directly from the HPS checkpoint rather than through the hpsv2 package, which pins
    pytest==7.2.0 and protobuf<4, lacks its BPE vocabulary in the wheel and reloads the checkpoint on every
    call (../shared/DESIGN.md): same architecture, same weights, same preprocessing (open_clip's eval
    transform at 224), one model load."""

    name = "hps_v2"

    def __init__(self, *args, version: str = "v2.1", **kwargs):
        super().__init__(*args, **kwargs)
        self.version = version

    @classmethod
    def load(cls, version: str = "v2.1", weights: str | None = None, device: str = "cpu",
             model_name: str = "ViT-H-14") -> "HPSv2":
        """`model_name` other than ViT-H-14 only for tests with a smaller stand-in checkpoint."""
        try:
            import open_clip
        except ImportError as exc:
            raise MetricUnavailable(f"HPS-v2 needs open_clip: pip install 'sinkbench[metrics]' ({exc})") from exc
        if version not in HPS_FILES:
            raise ValueError(f"HPS version {version!r} is not one of {sorted(HPS_FILES)}")
        file = HPS_FILES[version]
        cached = hf_cached_file(HPS_REPO, file)
        path = WeightFile(file, "SINKBENCH_HPS_WEIGHTS", f"the Hugging Face hub repository {HPS_REPO} ({file})",
                          (cached,) if cached else ()).resolve(weights)
        model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=str(path), device=device)
        return cls(model, preprocess, open_clip.get_tokenizer(model_name), model_name=model_name,
                   pretrained=f"HPS {version}", weights=path, device=device, version=version)

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "metric": self.name, "hps_version": self.version,
                "implementation": "open_clip model + HPS checkpoint (not the hpsv2 package)"}


__all__ = ["ClipScore", "HPSv2", "clip_weight_file", "to_float_batch"]
