"""What the papers' metrics become on the organisms' procedural shapes domain (issue 7).

The papers score natural images with models trained on natural images (OpenAI CLIP, AlexNet for LPIPS,
InceptionV3 for FID, BLIP-2 for VQA). On 32x32 coloured shapes those models measure nothing useful, so an
organism is scored with its domain's own models, named as such in every identity and report row:

    clip_t      DomainClipScore: raw cosine of the domain CLIP (models/organism/clip, trained on the domain)
    lpips       DomainPerceptualDistance: the LPIPS formula (unit-normalised features, squared difference,
                spatial mean, mean over layers) on the domain CLIP's vision-transformer blocks, uniform weights
                (LPIPS's learned per-channel heads exist only for AlexNet/VGG/SqueezeNet)
    fid / kid   DomainEmbeddings: Frechet / kernel distance of the domain CLIP's image embeddings
    vqa_*       DetectorJudge: 1 when the deterministic detector finds what the caption asks for, else 0
                (GenEval-style: objects, counts, colours, relative position)

Human-preference scorers (HPS-v2, ImageReward, the aesthetics predictor) have no counterpart: the claims that
use only them are not applicable to the organisms (cards: trait natural_images).
"""
from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..paths import REPO_ROOT
from .base import Metric, MetricUnavailable, file_sha256, image_sha256
from .clip_score import ClipScore

DOMAIN_CLIP_DIR = REPO_ROOT / "models" / "organism" / "clip"
WEIGHTS_FILE = "open_clip_model.safetensors"


def _domain_clip(directory: str | Path | None, device: str):
    directory = Path(directory or DOMAIN_CLIP_DIR)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise MetricUnavailable(f"the organisms' domain CLIP is missing: {weights} (committed with the repository; "
                                "retrain with `python models/organism/train_clip.py --out models/organism/clip`)")
    import open_clip

    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{directory}", device=device)
    return model.eval(), preprocess, open_clip.get_tokenizer(f"local-dir:{directory}"), weights


class DomainClipScore(ClipScore):
    """CLIP-T on the organisms: the domain CLIP's raw cosine between image and caption."""

    @classmethod
    def load(cls, directory: str | Path | None = None, device: str = "cpu") -> "DomainClipScore":
        model, preprocess, tokenizer, weights = _domain_clip(directory, device)
        return cls(model, preprocess, tokenizer, model_name="organism domain CLIP", pretrained="organism",
                   weights=weights, device=device)

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "note": "the organisms' domain CLIP (models/organism/clip), not OpenAI CLIP"}


class DomainPerceptualDistance(Metric):
    """LPIPS on the organisms: the LPIPS formula on the domain CLIP's vision blocks (lower is closer)."""

    name = "lpips"
    pairs = "image"
    higher_is_better = False

    def __init__(self, model, preprocess, weights: Path, device: str = "cpu"):
        self.model, self.preprocess, self.weights, self.device = model.eval().to(device), preprocess, weights, device

    @classmethod
    def load(cls, directory: str | Path | None = None, device: str = "cpu") -> "DomainPerceptualDistance":
        model, preprocess, _, weights = _domain_clip(directory, device)
        return cls(model, preprocess, weights, device)

    def identity(self) -> dict[str, Any]:
        return {"metric": "lpips", "variant": "organism domain-CLIP LPIPS (uniform weights over the ViT blocks)",
                "package": "open_clip_torch", "version": metadata.version("open_clip_torch"),
                "weights": str(self.weights), "weights_sha256": file_sha256(self.weights)}

    def features(self, images: Sequence[np.ndarray]) -> list:
        """Per block: patch-token features (B, P, D), unit-normalised over channels."""
        import torch
        from PIL import Image

        blocks = self.model.visual.transformer.resblocks
        outputs: list = []
        hooks = [b.register_forward_hook(lambda module, args, out: outputs.append(out)) for b in blocks]
        try:
            pixels = torch.stack([self.preprocess(Image.fromarray(np.asarray(i))) for i in images]).to(self.device)
            with torch.inference_mode():
                self.model.encode_image(pixels)
        finally:
            for h in hooks:
                h.remove()
        # batch-first tokens; the class token (position 0) is not a spatial feature
        return [torch.nn.functional.normalize(o[:, 1:, :].float(), dim=-1) for o in outputs]

    def _score_batch(self, images: Sequence[np.ndarray], references: Sequence[Any]) -> np.ndarray:
        a, b = self.features(images), self.features([np.asarray(r) for r in references])
        per_block = [((x - y) ** 2).sum(dim=-1).mean(dim=-1) for x, y in zip(a, b)]
        return (sum(per_block) / len(per_block)).cpu().numpy()


class DomainEmbeddings:
    """Image features for FID_shift / KID on the organisms: the domain CLIP's image embeddings."""

    batch_size = 64

    def __init__(self, model, preprocess, weights: Path, device: str = "cpu"):
        self.model, self.preprocess, self.weights, self.device = model.eval().to(device), preprocess, weights, device
        self._memo: dict[str, np.ndarray] = {}

    @classmethod
    def load(cls, directory: str | Path | None = None, device: str = "cpu") -> "DomainEmbeddings":
        model, preprocess, _, weights = _domain_clip(directory, device)
        return cls(model, preprocess, weights, device)

    def identity(self) -> dict[str, Any]:
        return {"features": "organism domain-CLIP image embeddings (128-d), not InceptionV3",
                "weights": str(self.weights), "weights_sha256": file_sha256(self.weights)}

    def __call__(self, images: Sequence[np.ndarray]) -> np.ndarray:
        import torch
        from PIL import Image

        keys = [image_sha256(i) for i in images]
        todo = [i for i, k in enumerate(keys) if k not in self._memo]
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start:start + self.batch_size]
            pixels = torch.stack([self.preprocess(Image.fromarray(np.asarray(images[i]))) for i in chunk])
            with torch.inference_mode():
                feats = self.model.encode_image(pixels.to(self.device)).float().cpu().numpy()
            self._memo.update({keys[i]: f for i, f in zip(chunk, feats)})
        return np.stack([self._memo[k] for k in keys])


class DetectorJudge(Metric):
    """The organisms' VQA judge: 1.0 when the detector finds what the caption asks for (objects, counts, colours,
    relative position), else 0.0. Pairs each image with its prompt's scene spec "seed:index"."""

    name = "vqa_detector"
    pairs = "scene"
    batch_size = 64

    def identity(self) -> dict[str, Any]:
        from ..organism import detector

        return {"metric": self.name, "judge": "benchmark.organism.detector (colour segmentation + shape classifier)",
                "source_sha256": file_sha256(detector.__file__)}

    def _score_batch(self, images: Sequence[np.ndarray], scenes: Sequence[Any]) -> np.ndarray:
        from ..organism.dataset import make_sample
        from ..organism.detector import score

        out = []
        for image, scene in zip(images, scenes):
            seed, index = (int(x) for x in str(scene).split(":"))
            out.append(float(score(make_sample(seed, index), np.asarray(image))["correct"]))
        return np.asarray(out)


def load_domain_metric(name: str, device: str = "cpu"):
    """The organism counterpart of a paper metric, or MetricUnavailable saying why there is none."""
    if name == "clip_t":
        return DomainClipScore.load(device=device)
    if name == "lpips":
        return DomainPerceptualDistance.load(device=device)
    if name in ("fid", "kid"):
        return DomainEmbeddings.load(device=device)
    if name.startswith("vqa"):
        return DetectorJudge()
    raise MetricUnavailable(f"{name} has no counterpart on the organisms' shapes domain (a human-preference "
                            "model of natural images); claims judged only by it are not applicable to them")


__all__ = ["DetectorJudge", "DomainClipScore", "DomainEmbeddings", "DomainPerceptualDistance", "load_domain_metric"]
