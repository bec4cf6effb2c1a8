"""The papers' metrics behind one interface (benchmark.metrics.base.Metric), with offline weight resolution.

    clip_t   CLIP-T, open_clip (default ViT-B-32 'openai', raw cosine)          clip_score.ClipScore
    lpips    LPIPS between paired images (AlexNet trunk by default)            lpips_metric.LPIPSMetric
    fid      FID_shift and KID between two sets (pytorch-fid InceptionV3)      fid.fid_shift / InceptionFeatures
Not yet here (claims that need them are SKIPPED saying so): HPS-v2, ImageReward (side environment), VQA.
"""
from __future__ import annotations

from typing import Any

from .base import Metric, MetricCache, MetricUnavailable, WeightFile

PENDING = {
    "hpsv2": "HPS-v2 has no SinkBench adapter yet (hpsv2 installed without its pins; issue 6)",
    "image_reward": "ImageReward needs its side environment (`sinkbench env create imagereward`), not built yet (issue 6)",
    "vqa": "the VQA judge (BLIP2-VQA / TIIF-style yes-no) has no SinkBench adapter yet (issue 6)",
}


def load_metric(name: str, **options: Any):
    """A ready metric by name, or MetricUnavailable with the how-to."""
    if name == "clip_t":
        from .clip_score import ClipScore

        return ClipScore.load(**options)
    if name == "lpips":
        from .lpips_metric import LPIPSMetric

        return LPIPSMetric.load(**options)
    if name == "fid":
        from .fid import InceptionFeatures

        return InceptionFeatures.load(**options)
    if name in PENDING:
        raise MetricUnavailable(PENDING[name])
    raise KeyError(f"unknown metric {name!r}; known: clip_t, lpips, fid, {', '.join(PENDING)}")


__all__ = ["Metric", "MetricCache", "MetricUnavailable", "WeightFile", "load_metric", "PENDING"]
