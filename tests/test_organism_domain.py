"""The organism's procedural domain, its detector, and the committed organisms."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from benchmark.organism.dataset import COLORS, TAGS, make_sample, meaning, render, samples, vocabulary
from benchmark.organism.detector import accuracy_by_tag, detect, score


def test_samples_are_a_pure_function_of_seed_and_index():
    a, b = make_sample(7, 42), make_sample(7, 42)
    assert a.caption == b.caption and np.array_equal(a.image, b.image)
    assert make_sample(8, 42).caption != a.caption or not np.array_equal(make_sample(8, 42).image, a.image)
    assert [make_sample(0, i).tag for i in range(6)] == list(TAGS)


def test_captions_use_only_the_vocabulary():
    words = set(vocabulary())
    for s in samples(0, 300):
        assert set(s.caption.split()) <= words, s.caption


def test_detector_is_at_least_98_percent_right_per_tag_on_held_out_images():
    held_out = list(samples(seed=123, n=600, start=10_000))
    accuracy = accuracy_by_tag(held_out, [s.image for s in held_out])
    assert set(accuracy) == set(TAGS)
    assert min(accuracy.values()) >= 0.98, accuracy


def test_detector_rejects_images_of_other_captions():
    held_out = list(samples(seed=5, n=300))
    shifted = [held_out[(i + 7) % len(held_out)].image for i in range(len(held_out))]
    wrong = np.mean([score(s, img)["correct"] for s, img in zip(held_out, shifted)])
    assert wrong < 0.5, f"{wrong:.0%} of mismatched images pass"


def test_detector_finds_planted_objects_with_their_colour_and_place():
    from benchmark.organism.dataset import SceneObject

    objs = (SceneObject("square", "red", 2, 2, 10), SceneObject("triangle", "blue", 18, 16, 12))
    found = {(d.shape, d.color) for d in detect(render(objs))}
    assert found == {("square", "red"), ("triangle", "blue")}
    noisy = np.clip(render(objs).astype(int) + np.random.default_rng(0).integers(-20, 21, (32, 32, 3)), 0, 255)
    assert {(d.shape, d.color) for d in detect(noisy.astype(np.uint8))} == found


@pytest.mark.parametrize("tag", TAGS)
def test_every_tag_renders_its_objects(tag):
    s = make_sample(1, 3, tag=tag)
    assert s.tag == tag and s.image.shape == (32, 32, 3) and s.image.dtype == np.uint8
    colours = {tuple(c) for c in s.image.reshape(-1, 3)}
    assert {COLORS[o.color] for o in s.objects} <= colours


def test_meaning_equates_word_order_paraphrases_only():
    by_caption = {}
    for s in samples(0, 3000):
        by_caption.setdefault(s.caption, meaning(s))
    assert by_caption["a photo of a circle and a square"] == by_caption["a photo of a square and a circle"]
    assert by_caption["a photo of a circle left of a square"] == by_caption["a photo of a square right of a circle"]
    assert by_caption["a photo of a circle above a square"] == by_caption["a photo of a square below a circle"]
    assert by_caption["a photo of a circle left of a square"] != by_caption["a photo of a circle right of a square"]
    assert by_caption["a photo of a red circle and a blue square"] != by_caption["a photo of a blue circle and a red square"]
    assert by_caption["a photo of two circles"] != by_caption["a photo of three circles"]
    # every meaning class holds only captions of one tag
    assert len({m[0] for m in by_caption.values()}) == len(TAGS)


ORGANISMS = Path(__file__).resolve().parents[1] / "models" / "organism"


def test_committed_organism_weights_match_their_recorded_hashes():
    lines = (ORGANISMS / "SHA256SUMS").read_text().split("\n")
    recorded = dict(reversed(line.split(None, 1)) for line in lines if line.strip())
    on_disk = {str(p.relative_to(ORGANISMS)) for p in ORGANISMS.glob("**/*.safetensors")}
    assert set(recorded) == on_disk
    for name, digest in recorded.items():
        assert hashlib.sha256((ORGANISMS / name).read_bytes()).hexdigest() == digest, name


def test_organism_directory_gets_its_own_card_settings():
    from benchmark.adapters import resolve_checkpoint
    from benchmark.generate import settings_for

    settings = settings_for(resolve_checkpoint(str(ORGANISMS / "rope")))
    assert (settings.steps, settings.height, settings.max_sequence_length, settings.guidance) == (20, 32, 32, 4.0)
