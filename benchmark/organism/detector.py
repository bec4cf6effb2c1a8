"""A deterministic detector for the organism's domain, scoring images GenEval-style.

Colour segmentation (each pixel to the nearest palette colour within a tolerance, else background), 4-connected
components per colour, and a shape rule on each component: squares fill their bounding box, triangles are
narrow at the top and wide at the bottom, circles are neither. A caption's requirements (objects present,
their count and colour, a relative position by centres) are then checked as GenEval does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import ndimage

from .dataset import COLORS, Sample, relation_holds

COLOR_TOLERANCE = 60.0     # max RGB distance to a palette colour (generated images are not exact)
MIN_AREA = 8               # components smaller than this are noise


@dataclass(frozen=True)
class Detection:
    shape: str
    color: str
    center: tuple[float, float]
    area: int
    bbox: tuple[int, int, int, int]      # x0, y0, x1, y1 (inclusive)


def classify_shape(mask: np.ndarray) -> str:
    """Shape of one component (a bool mask cropped to its bounding box)."""
    h, w = mask.shape
    fill = mask.sum() / float(h * w)
    rows = mask.sum(axis=1).astype(float)
    top, bottom = rows[: max(1, h // 4)].mean(), rows[-max(1, h // 4):].mean()
    if fill > 0.9:
        return "square"
    if bottom > 0 and top / bottom < 0.55:
        return "triangle"
    return "circle"


def detect(image: np.ndarray) -> list[Detection]:
    image = np.asarray(image, dtype=np.float32)
    palette = np.array(list(COLORS.values()), dtype=np.float32)
    distance = np.linalg.norm(image[:, :, None, :] - palette[None, None], axis=-1)   # (H, W, colours)
    nearest = distance.argmin(axis=-1)
    close = distance.min(axis=-1) <= COLOR_TOLERANCE
    detections = []
    for ci, name in enumerate(COLORS):
        labels, n = ndimage.label(close & (nearest == ci))
        for component, box in enumerate(ndimage.find_objects(labels), start=1):
            mask = labels[box] == component
            area = int(mask.sum())
            if area < MIN_AREA:
                continue
            ys, xs = np.nonzero(labels == component)
            detections.append(Detection(classify_shape(mask), name, (float(xs.mean()), float(ys.mean())), area,
                                        (box[1].start, box[0].start, box[1].stop - 1, box[0].stop - 1)))
    return detections


def _matches(detections, shape: str, color: str | None) -> list[Detection]:
    return [d for d in detections if d.shape == shape and (color is None or d.color == color)]


def score(sample: Sample, image: np.ndarray) -> dict:
    """GenEval-style correctness of `image` for the caption of `sample` (its requirements, not its pixels)."""
    found = detect(image)
    reasons = []
    for shape, color, count in sample.required:
        hits = _matches(found, shape, color)
        if sample.tag == "counting":
            if len(hits) != count:
                reasons.append(f"{len(hits)} {shape}(s), wanted {count}")
        elif not hits:
            reasons.append(f"no {color + ' ' if color else ''}{shape}")
    if sample.relation is not None and not reasons:
        a, relation, b = sample.relation
        first = _matches(found, *sample.required[a][:2])
        second = _matches(found, *sample.required[b][:2])
        if not any(relation_holds(x.center, y.center, relation) for x in first for y in second):
            reasons.append(f"{sample.required[a][0]} is not {relation} {sample.required[b][0]}")
    return {"correct": not reasons, "reasons": reasons, "tag": sample.tag, "detections": len(found)}


def accuracy_by_tag(samples: Sequence[Sample], images: Sequence[np.ndarray]) -> dict[str, float]:
    totals: dict[str, list[int]] = {}
    for sample, image in zip(samples, images):
        totals.setdefault(sample.tag, []).append(int(score(sample, image)["correct"]))
    return {tag: float(np.mean(v)) for tag, v in sorted(totals.items())}
