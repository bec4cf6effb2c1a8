"""The organisms' domain metrics (benchmark.metrics.organism) on real procedural images of their domain."""
from __future__ import annotations

import numpy as np
import pytest

from benchmark.metrics.organism import (DetectorJudge, DomainClipScore, DomainEmbeddings, DomainPerceptualDistance,
                                        load_domain_metric)
from benchmark.metrics import MetricUnavailable, load_metric_for
from benchmark.cards import load_cards
from benchmark.organism.dataset import make_sample


@pytest.fixture(scope="module")
def samples():
    return [make_sample(4242, i) for i in range(24)]


def test_domain_clip_prefers_the_true_caption(samples):
    clip = DomainClipScore.load()
    images = [s.image for s in samples]
    true = clip.score(images, [s.caption for s in samples])
    shuffled = clip.score(images, [samples[(i + 7) % len(samples)].caption for i in range(len(samples))])
    assert (true > shuffled).mean() >= 0.9
    assert clip.identity()["weights_sha256"] != "random-init" and "domain CLIP" in clip.identity()["note"]


def test_domain_lpips_is_zero_on_identical_images_and_grows_with_change(samples):
    lp = DomainPerceptualDistance.load()
    images = [s.image for s in samples[:8]]
    assert np.allclose(lp.score(images, images), 0.0, atol=1e-6)
    rng = np.random.default_rng(0)
    small = [np.clip(i.astype(int) + rng.integers(-8, 9, i.shape), 0, 255).astype(np.uint8) for i in images]
    large = [np.clip(i.astype(int) + rng.integers(-80, 81, i.shape), 0, 255).astype(np.uint8) for i in images]
    d_small, d_large = lp.score(small, images), lp.score(large, images)
    assert np.all(d_small > 0) and np.all(d_large > d_small)
    assert np.allclose(lp.score(images[:4], small[:4]), d_small[:4], rtol=1e-5)      # symmetric
    assert lp.pairs == "image" and lp.higher_is_better is False


def test_detector_judge_accepts_the_truth_and_rejects_another_scene(samples):
    judge = DetectorJudge()
    specs = [f"4242:{i}" for i in range(len(samples))]
    assert judge.score([s.image for s in samples], specs).tolist() == [1.0] * len(samples)
    blank = [np.full_like(samples[0].image, 255)] * 4
    assert judge.score(blank, specs[:4]).tolist() == [0.0] * 4


def test_domain_embeddings_and_the_card_routing(samples):
    feats = DomainEmbeddings.load()([s.image for s in samples[:5]])
    assert feats.shape == (5, 128) and np.isfinite(feats).all()
    organism = load_cards()["organism_rope"]
    assert isinstance(load_metric_for(organism, "clip_t"), DomainClipScore)
    assert isinstance(load_metric_for(organism, "vqa_blip2"), DetectorJudge)
    with pytest.raises(MetricUnavailable, match="no counterpart"):
        load_domain_metric("hps_v2")
