"""A procedural text-to-image domain with known ground truth: coloured shapes on a dark background.

Every sample is a scene (objects with shape, colour and a bounding box), its rendered RGB image and a
GenEval-style caption with its tag. Everything is a pure function of (seed, index): no files. Tags follow
GenEval: single_object, two_object, counting, colors, position, color_attr.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

SHAPES = ("circle", "square", "triangle")
COLORS = {                      # far apart in RGB so a detector can segment them exactly
    "red": (230, 40, 40), "green": (40, 200, 60), "blue": (50, 90, 235), "yellow": (235, 215, 40),
}
BACKGROUND = (16, 16, 16)
TAGS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
NUMBERS = {1: "one", 2: "two", 3: "three", 4: "four"}
RELATIONS = {"left of": (-1, 0), "right of": (1, 0), "above": (0, -1), "below": (0, 1)}
IMAGE_SIZE = 32


@dataclass(frozen=True)
class SceneObject:
    shape: str
    color: str
    x0: int
    y0: int
    size: int                    # side of the bounding square, pixels

    @property
    def center(self) -> tuple[float, float]:
        return (self.x0 + (self.size - 1) / 2, self.y0 + (self.size - 1) / 2)


@dataclass(frozen=True)
class Sample:
    index: int
    tag: str
    caption: str
    objects: tuple[SceneObject, ...]
    # what the caption asks for, for scoring: [(shape, color or None, count)], and a relation if any
    required: tuple[tuple[str, str | None, int], ...] = ()
    relation: tuple[int, str, int] | None = None     # (required index a, relation, required index b)
    size: int = IMAGE_SIZE
    image: np.ndarray = field(default=None, repr=False, compare=False)


def _plural(shape: str, n: int) -> str:
    return shape if n == 1 else shape + "s"


def render(objects: tuple[SceneObject, ...], size: int = IMAGE_SIZE) -> np.ndarray:
    """uint8 (size, size, 3): filled shapes, no anti-aliasing (exact colours for the detector)."""
    image = np.empty((size, size, 3), np.uint8)
    image[:] = BACKGROUND
    yy, xx = np.mgrid[0:size, 0:size]
    for obj in objects:
        s = obj.size
        cx, cy = obj.center
        if obj.shape == "square":
            mask = (xx >= obj.x0) & (xx < obj.x0 + s) & (yy >= obj.y0) & (yy < obj.y0 + s)
        elif obj.shape == "circle":
            mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= (s / 2) ** 2
        else:   # upward triangle inside the box: apex at the top centre, base on the bottom row
            rel_y = (yy - obj.y0) / max(s - 1, 1)
            half = rel_y * (s / 2)
            mask = (yy >= obj.y0) & (yy < obj.y0 + s) & (np.abs(xx - cx) <= half)
        image[mask] = COLORS[obj.color]
    return image


def _place(rng: np.random.Generator, n: int, size: int, obj_size: tuple[int, int],
           constraint=None, tries: int = 200) -> list[tuple[int, int, int]] | None:
    """n non-overlapping boxes (x0, y0, s) with a 1-pixel gap; optional pairwise constraint on the first two."""
    for _ in range(tries):
        boxes = []
        for _ in range(n):
            s = int(rng.integers(obj_size[0], obj_size[1] + 1))
            for _ in range(50):
                x0, y0 = int(rng.integers(0, size - s + 1)), int(rng.integers(0, size - s + 1))
                if all(x0 + s + 1 <= bx or bx + bs + 1 <= x0 or y0 + s + 1 <= by or by + bs + 1 <= y0
                       for bx, by, bs in boxes):
                    boxes.append((x0, y0, s))
                    break
            else:
                break
        if len(boxes) == n and (constraint is None or constraint(boxes)):
            return boxes
    return None


def relation_holds(a: tuple[float, float], b: tuple[float, float], relation: str, margin: float = 2.0) -> bool:
    """a is <relation> b, by centres, with a margin in pixels (image y grows downwards)."""
    dx, dy = RELATIONS[relation]
    if dx:
        return (a[0] - b[0]) * dx > margin
    return (a[1] - b[1]) * dy > margin


def make_sample(seed: int, index: int, tag: str | None = None, size: int = IMAGE_SIZE) -> Sample:
    """Sample `index` of the domain with base seed `seed` (tags cycle unless given)."""
    rng = np.random.default_rng([seed, index])
    tag = tag or TAGS[index % len(TAGS)]
    shapes, colors = list(SHAPES), list(COLORS)
    if tag in ("single_object", "colors"):
        shape, color = rng.choice(shapes), rng.choice(colors)
        boxes = _place(rng, 1, size, (10, 16))
        objs = (SceneObject(shape, color, *boxes[0]),)
        caption = f"a photo of a {color} {shape}" if tag == "colors" else f"a photo of a {shape}"
        required = ((shape, color if tag == "colors" else None, 1),)
        return Sample(index, tag, caption, objs, required, None, size, render(objs, size))
    if tag in ("two_object", "color_attr"):
        a, b = rng.choice(shapes, 2, replace=False)
        ca, cb = rng.choice(colors, 2, replace=False)
        boxes = _place(rng, 2, size, (8, 12))
        objs = (SceneObject(a, ca, *boxes[0]), SceneObject(b, cb, *boxes[1]))
        if tag == "two_object":
            caption, required = f"a photo of a {a} and a {b}", ((a, None, 1), (b, None, 1))
        else:
            caption, required = f"a photo of a {ca} {a} and a {cb} {b}", ((a, ca, 1), (b, cb, 1))
        return Sample(index, tag, caption, objs, required, None, size, render(objs, size))
    if tag == "counting":
        shape, color = rng.choice(shapes), rng.choice(colors)
        n = int(rng.integers(2, 5))
        boxes = _place(rng, n, size, (6, 8))
        objs = tuple(SceneObject(shape, color, *b) for b in boxes)
        caption = f"a photo of {NUMBERS[n]} {_plural(shape, n)}"
        return Sample(index, tag, caption, objs, ((shape, None, n),), None, size, render(objs, size))
    if tag == "position":
        a, b = rng.choice(shapes, 2, replace=False)
        ca, cb = rng.choice(colors, 2, replace=False)
        relation = str(rng.choice(list(RELATIONS)))

        def ok(boxes):
            centers = [(x + (s - 1) / 2, y + (s - 1) / 2) for x, y, s in boxes]
            return relation_holds(centers[0], centers[1], relation, margin=4.0)

        boxes = _place(rng, 2, size, (8, 11), constraint=ok)
        objs = (SceneObject(a, ca, *boxes[0]), SceneObject(b, cb, *boxes[1]))
        caption = f"a photo of a {a} {relation} a {b}"
        return Sample(index, tag, caption, objs, ((a, None, 1), (b, None, 1)), (0, relation, 1), size,
                      render(objs, size))
    raise ValueError(f"unknown tag {tag!r}; known: {TAGS}")


def meaning(sample: Sample) -> tuple:
    """What a caption asserts, whatever its word order: captions of equal meaning describe the same scenes
    ("a circle and a square" = "a square and a circle"; "a circle left of a square" = "a square right of a
    circle"), so one can never be a distractor for the other."""
    if sample.relation is None:
        return (sample.tag, frozenset(sample.required))
    a, relation, b = sample.relation
    first, second = sample.required[a], sample.required[b]
    if relation in ("right of", "below"):
        first, second, relation = second, first, {"right of": "left of", "below": "above"}[relation]
    return (sample.tag, first, relation, second)


def samples(seed: int, n: int, start: int = 0, tag: str | None = None) -> Iterator[Sample]:
    for index in range(start, start + n):
        yield make_sample(seed, index, tag)


def vocabulary() -> list[str]:
    """Every word a caption can contain (for the organism's word-level tokenizer)."""
    words = {"a", "photo", "of", "and"} | set(SHAPES) | {s + "s" for s in SHAPES} | set(COLORS)
    words |= set(NUMBERS.values()) | {w for r in RELATIONS for w in r.split()}
    return sorted(words)
