"""The papers' metrics behind one interface (benchmark.metrics.base.Metric), with offline weight resolution.

    clip_t   CLIP-T, open_clip (default ViT-B-32 'openai', raw cosine)          clip_score.ClipScore
    hps_v2   HPS-v2.0 / v2.1 (open_clip ViT-H-14 + the HPS checkpoint)          clip_score.HPSv2
    lpips    LPIPS between paired images (AlexNet trunk by default)            lpips_metric.LPIPSMetric
    fid/kid  FID_shift and KID between two sets (pytorch-fid InceptionV3)      fid.fid_shift / InceptionFeatures
    vqa_*    VQA alignment: mean P(yes) of a judge (BLIP-2 by default)             vqa.VQAScore
    image_reward  ImageReward, in the `imagereward` side environment's worker  image_reward.ImageRewardMetric
    aesthetics    LAION improved aesthetic predictor on CLIP ViT-L/14              aesthetics.Aesthetics

On the organisms, `load_metric_for` gives the domain's own counterparts (organism.py): domain CLIP for CLIP-T,
the LPIPS formula on the domain CLIP, domain-CLIP embeddings for FID/KID, the detector as the VQA judge.
"""
from __future__ import annotations

from typing import Any

from .base import Metric, MetricCache, MetricUnavailable, WeightFile

# The spec vocabulary (benchmark.claims.METRICS) is canonical; these are accepted too.
ALIASES = {"hpsv2": "hps_v2", "vqa": "vqa_blip2", "imagereward": "image_reward"}
PENDING: dict[str, str] = {}


def load_metric(name: str, **options: Any):
    """A ready metric by name, or MetricUnavailable with the how-to."""
    if name == "clip_t":
        from .clip_score import ClipScore

        return ClipScore.load(**options)
    name = ALIASES.get(name, name)
    if name == "hps_v2":
        from .clip_score import HPSv2

        return HPSv2.load(**options)
    if name in ("vqa_blip2", "vqa_judge"):
        from .vqa import Blip2Judge, VQAScore

        judge_options = {k: options.pop(k) for k in ("model_id", "device") if k in options}
        return VQAScore(Blip2Judge.load(**judge_options), **options)
    if name == "lpips":
        from .lpips_metric import LPIPSMetric

        return LPIPSMetric.load(**options)
    if name in ("fid", "kid"):
        from .fid import InceptionFeatures

        return InceptionFeatures.load(**options)
    if name == "aesthetics":
        from .aesthetics import Aesthetics

        return Aesthetics.load(**options)
    if name == "image_reward":
        from .image_reward import ImageRewardMetric

        return ImageRewardMetric.load(**options)
    if name in PENDING:
        raise MetricUnavailable(PENDING[name])
    raise KeyError(f"unknown metric {name!r}; known: clip_t, hps_v2, lpips, fid, kid, vqa_blip2, vqa_judge, "
                   f"image_reward, aesthetics")


def load_metric_for(card, name: str, device: str = "cpu", **options: Any):
    """The metric `name` for a model card's images: the domain counterpart on an organism, else load_metric."""
    name = ALIASES.get(name, name)
    if getattr(card, "organism", False):
        from .organism import load_domain_metric

        return load_domain_metric(name, device=device)
    return load_metric(name, device=device, **options)


__all__ = ["Metric", "MetricCache", "MetricUnavailable", "WeightFile", "load_metric", "load_metric_for", "PENDING"]
