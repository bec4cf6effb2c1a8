"""Paper A's intervention criteria (benchmark.criteria.effects) on planted per-prompt scores: for each, data where
the claim holds and data where it fails, with the verdict known in advance."""
from __future__ import annotations

import numpy as np
import pytest

from benchmark.criteria import effects
from benchmark.verdict import Verdict

R = Verdict.REPRODUCED
C = Verdict.CONTRADICTED
I = Verdict.INCONCLUSIVE


def scores(n=200, sd=0.01, shift=0.0, seed=0):
    rng = np.random.default_rng(seed)
    base = 0.33 + rng.normal(0, 0.02, n)
    return base, base + shift + rng.normal(0, sd, n)


def test_no_effect_reproduced_contradicted_inconclusive():
    base, cond = scores(n=400, sd=0.004)                       # tight around 0: equivalent within 0.002
    assert effects.no_effect(base, cond, 0.002, what="clip_t", seed=0).verdict is R
    base, cond = scores(n=400, sd=0.004, shift=0.01)           # a clear drop beyond the margin
    assert effects.no_effect(base, cond, 0.002, what="clip_t", seed=0).verdict is C
    base, cond = scores(n=12, sd=0.05)                         # too few, too noisy: cannot decide
    out = effects.no_effect(base, cond, 0.002, what="clip_t", seed=0)
    assert out.verdict is I and "cannot decide" in out.reason
    same = effects.no_effect(base, base.copy(), 0.002, what="clip_t", seed=0)
    assert same.verdict is R and same.value == 0.0


def test_no_effect_is_seeded_and_saves_its_samples():
    base, cond = scores(n=50, sd=0.01)
    a = effects.no_effect(base, cond, 0.002, what="clip_t", seed=3)
    b = effects.no_effect(base, cond, 0.002, what="clip_t", seed=3)
    assert a.ci == b.ci and a.samples["condition"] == list(cond)


def test_within_margin_judges_by_tost_alone():
    base, cond = scores(n=400, sd=0.004, shift=0.001)          # CI excludes 0, but inside the margin
    assert effects.within_margin(base, cond, 0.002, what="clip_t", seed=0).verdict is R
    base, cond = scores(n=400, sd=0.004, shift=0.01)
    assert effects.within_margin(base, cond, 0.002, what="clip_t", seed=0).verdict is C


def test_ci_rule_without_margin_reports_detectable_effect():
    base, cond = scores(n=100, sd=0.01)
    out = effects.ci_contains_zero(base, cond, what="hps", seed=0)
    assert out.verdict is R and "detectable effect" in out.measured
    base, cond = scores(n=100, sd=0.01, shift=-0.02)
    assert effects.ci_contains_zero(base, cond, what="hps", seed=0).verdict is C
    assert effects.negative_shift(base, cond, what="hps", seed=0).verdict is R
    base, cond = scores(n=100, sd=0.01, shift=0.02)
    assert effects.negative_shift(base, cond, what="hps", seed=0).verdict is C


def test_sweep_flat_fails_on_one_bad_level():
    flat = {f"eta={e}": scores(n=400, sd=0.004, seed=i) for i, e in enumerate((0.5, 0.1, 0.0))}
    assert effects.sweep_flat(flat, 0.002, what="clip_t", seed=0).verdict is R
    bad = dict(flat, **{"eta=0": scores(n=400, sd=0.004, shift=-0.01, seed=9)})
    out = effects.sweep_flat(bad, 0.002, what="clip_t", seed=0)
    assert out.verdict is C and out.value == pytest.approx(np.mean(bad["eta=0"][1] - bad["eta=0"][0]))


def test_removal_is_measured_not_floored():
    ok = effects.removal([37.0, 12.5, 8.1], np.log([0.05, 0.02, 0.09]))
    assert ok.verdict is R and "10^8.1" in ok.measured
    weak = effects.removal([6.0, 3.2], np.log([0.05, 0.02]))
    assert weak.verdict is C and weak.value == 3.2
    exact = effects.removal([7.4e37], np.log([0.05]))
    assert exact.verdict is R and "exactly 0" in exact.measured


def test_bit_identical():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(4)]
    assert effects.bit_identical(images, [i.copy() for i in images]).verdict is R
    changed = [i.copy() for i in images]
    changed[2][0, 0, 0] ^= 1
    out = effects.bit_identical(images, changed)
    assert out.verdict is C and out.measured.startswith("1 of 4 images differ (max pixel difference 1")


def test_greater_and_increasing():
    rng = np.random.default_rng(1)
    low = rng.uniform(0.1, 0.2, 60)
    high = low + 0.05 + rng.normal(0, 0.01, 60)
    assert effects.greater(low, high, what="LPIPS", seed=0).verdict is R
    assert effects.greater(high, low, what="LPIPS", seed=0).verdict is C
    levels = {"cfg 3": low, "cfg 7.5": high, "cfg 12": high + 0.05}
    assert effects.increasing(levels, what="LPIPS", seed=0).verdict is R
    assert effects.increasing({"a": high, "b": low}, what="LPIPS", seed=0).verdict is C


def test_sink_vs_random_dd():
    rng = np.random.default_rng(2)
    random = rng.uniform(0.03, 0.08, 64)
    sink = random + 0.3 + rng.normal(0, 0.03, 64)
    out = effects.sink_vs_random(sink, random, what="LPIPS", seed=0)
    assert out.verdict is R and "x)" in out.measured
    assert effects.sink_vs_random(random, sink, what="LPIPS", seed=0).verdict is C


def test_flat_after_holm():
    rng = np.random.default_rng(3)
    flat = {f"k={k}": rng.normal(0, 0.003, 300) for k in (1, 5, 10)}
    assert effects.flat_after_holm(flat, 0.002, what="CLIP-T", seed=0).verdict is R
    moved = dict(flat, **{"k=10": rng.normal(-0.01, 0.003, 300)})
    out = effects.flat_after_holm(moved, 0.002, what="CLIP-T", seed=0)
    assert out.verdict is C and "k=10" in out.reason
    noisy = {f"k={k}": (lambda x: x - x.mean())(rng.normal(0, 0.05, 10)) for k in (1, 5)}   # mean exactly 0
    assert effects.flat_after_holm(noisy, 0.002, what="CLIP-T", seed=0).verdict is I


def test_no_regression_per_tag():
    good = {t: scores(n=300, sd=0.002, shift=0.0005, seed=i) for i, t in enumerate(("counting", "position"))}
    assert effects.no_regression(good, 0.002, what="clip_t", seed=0).verdict is R
    bad = dict(good, colors=scores(n=300, sd=0.002, shift=-0.01, seed=7))
    out = effects.no_regression(bad, 0.002, what="clip_t", seed=0)
    assert out.verdict is C and "colors" in out.reason
    tiny = {"counting": scores(n=2)}
    assert effects.no_regression(tiny, 0.002, what="clip_t", seed=0).verdict is I


def test_trend_grows_with_budget():
    rng = np.random.default_rng(4)
    dd10 = rng.normal(-0.005, 0.002, 64)
    dd50 = dd10 - 0.015 + rng.normal(0, 0.002, 64)
    assert effects.trend(dd10, dd50, what="DD(50) - DD(10)", seed=0).verdict is R
    assert effects.trend(dd50, dd10, what="DD(50) - DD(10)", seed=0).verdict is C


def test_combine_takes_the_worst_part():
    base, cond = scores(n=400, sd=0.004)
    ok = effects.no_effect(base, cond, 0.002, what="clip_t", seed=0)
    bad = effects.no_effect(*scores(n=400, sd=0.004, shift=0.02), 0.002, what="clip_t", seed=0)
    assert effects.combine({"a": ok, "b": ok}).verdict is R
    out = effects.combine({"a": ok, "b": bad})
    assert out.verdict is C and out.measured.startswith("a: ") and "b: CONTRADICTED" in out.reason


def test_distribution_shift_exceeds_planted():
    rng = np.random.default_rng(5)
    base = rng.normal(0, 1, (64, 4))
    seed_change = rng.normal(0, 1, (64, 4))                       # same distribution
    moved = rng.normal(1.5, 1, (64, 4))                           # shifted mean
    assert effects.distribution_shift_exceeds(base, moved, seed_change, seed=0).verdict is R
    assert effects.distribution_shift_exceeds(base, seed_change, moved, seed=0).verdict is C
