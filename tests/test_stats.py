"""Unit and property tests of benchmark.stats against scipy (and statsmodels where installed).

Deterministic: hypothesis runs derandomized without an example database.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from scipy import stats

import benchmark.stats as S
from benchmark.stats import (DEFAULT_SEED, PairedSample, StatResult, StatsInputError, bootstrap_indices,
                             bootstrap_mean_ci, can_decide_equivalence, difference_of_differences, holm,
                             holm_adjust_results, minimum_detectable_effect, monotonic_increase, no_effect_test,
                             paired_differences, paired_trend, paired_ttest, per_sample_dd, required_n_equivalence,
                             spearman_with_ci, tost, tost_power, ttest_power, wilcoxon_signed_rank)

PROPS = settings(max_examples=80, deadline=None, derandomize=True, database=None,
                 phases=[Phase.explicit, Phase.generate, Phase.shrink],
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
FEW = settings(PROPS, max_examples=25)
ALTS = ["two-sided", "greater", "less"]

# Values on a grid (ties and zeros happen) or continuous; moderate magnitudes.
grid = st.integers(-20, 20).map(lambda k: k / 4)
# (magnitudes below 1e-150 are refused by design: their variance underflows)
cont = st.floats(-100, 100, allow_nan=False, allow_infinity=False, allow_subnormal=False).filter(
    lambda v: v == 0 or abs(v) > 1e-9)


def samples(min_size: int = 2, max_size: int = 30, elements=None):
    elements = elements if elements is not None else st.one_of(grid, cont)
    return st.lists(elements, min_size=min_size, max_size=max_size).map(np.array)


def close(x: float, y: float, tol: float = 1e-12) -> bool:
    return x == y or abs(x - y) <= tol * max(1.0, abs(x), abs(y))


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------- pairing

def test_mapping_pairing_sorts_keys_and_diff_is_b_minus_a():
    a = {("p2", 1): 1.0, ("p1", 0): 2.0, ("p1", 1): 3.0}
    b = {("p1", 1): 3.5, ("p2", 1): 0.0, ("p1", 0): 2.25}
    s = paired_differences(a, b)
    assert isinstance(s, PairedSample) and s.keys == (("p1", 0), ("p1", 1), ("p2", 1))
    assert s.diff.tolist() == [0.25, 0.5, -1.0]  # condition (b) minus baseline (a)
    assert s.n == len(s) == 3
    assert paired_differences(dict(reversed(list(a.items()))), b) == s


def test_missing_keys_are_named_per_side():
    a = {("p1", 0): 1.0, ("p2", 0): 1.0, ("p9", 3): 1.0}
    b = {("p1", 0): 1.0, ("p2", 0): 1.0, ("p5", 1): 1.0}
    with pytest.raises(StatsInputError) as exc:
        paired_differences(a, b)
    msg = str(exc.value)
    assert "missing in b: [('p9', 3)]" in msg and "missing in a: [('p5', 1)]" in msg


@pytest.mark.parametrize("bad, word", [(math.nan, "NaN"), (math.inf, "inf"), (-math.inf, "inf")])
def test_nonfinite_values_name_keys(bad, word):
    a = {("p1", 0): 1.0, ("p2", 0): 2.0}
    b = {("p1", 0): 1.0, ("p2", 0): bad}
    with pytest.raises(StatsInputError, match=rf"b has {word} for keys \[\('p2', 0\)\]"):
        paired_differences(a, b)


def test_positional_errors_say_lengths_and_indices():
    with pytest.raises(StatsInputError, match=r"len\(a\)=3, len\(b\)=4"):
        paired_differences([1, 2, 3], [1, 2, 3, 4])
    with pytest.raises(StatsInputError, match=r"a has NaN at indices \[1, 3\]"):
        paired_differences([1, np.nan, 3, np.nan], [1, 2, 3, 4])
    with pytest.raises(StatsInputError, match="1-D"):
        paired_differences(np.ones((2, 2)), np.ones((2, 2)))
    with pytest.raises(StatsInputError, match="N=0"):
        paired_differences([], [])
    with pytest.raises(StatsInputError, match="real numbers"):
        paired_differences(["x", "y"], [1, 2])
    with pytest.raises(StatsInputError, match="not a real number"):
        paired_differences({1: "x"}, {1: 2.0})
    with pytest.raises(StatsInputError, match="keyed and positional"):
        paired_differences({0: 1.0}, [1.0])


def test_records_with_key_fields_and_duplicates():
    a = [{"prompt_id": "p1", "seed": 0, "clip": 0.30}, {"prompt_id": "p2", "seed": 0, "clip": 0.31}]
    b = [{"prompt_id": "p2", "seed": 0, "clip": 0.33}, {"prompt_id": "p1", "seed": 0, "clip": 0.30}]
    s = paired_differences(a, b, key=("prompt_id", "seed"), value="clip")
    assert s.keys == (("p1", 0), ("p2", 0))
    assert np.allclose(s.diff, [0.0, 0.02])
    dup = a + [{"prompt_id": "p1", "seed": 0, "clip": 0.5}]
    with pytest.raises(StatsInputError, match=r"a has duplicate keys: \('p1', 0\) at records \[0, 2\]"):
        paired_differences(dup, b, key=("prompt_id", "seed"), value="clip")
    with pytest.raises(StatsInputError, match="record 0 lacks"):
        paired_differences(a, b, key=("prompt_id", "step"), value="clip")


def test_incomparable_keys_sorted_by_repr_deterministically():
    a = {1: 1.0, "x": 2.0, (0, 1): 3.0}
    s1 = paired_differences(a, {k: v + 1 for k, v in a.items()})
    s2 = paired_differences(dict(reversed(list(a.items()))), {k: v + 1 for k, v in reversed(list(a.items()))})
    assert s1 == s2 and s1.keys == tuple(sorted(a, key=repr))


def test_paired_sample_is_frozen_readonly_hashable():
    s = paired_differences([1.0, 2.0], [2.0, 4.0])
    with pytest.raises(ValueError):
        s.a[0] = 5.0
    with pytest.raises(AttributeError):
        s.keys = ()
    assert hash(s) == hash(paired_differences([1.0, 2.0], [2.0, 4.0]))
    assert paired_differences(s) is s


@PROPS
@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 3), grid, grid), min_size=2, max_size=25,
                unique_by=lambda r: (r[0], r[1])), st.randoms(use_true_random=False))
def test_input_order_never_changes_results(rows, rnd):
    a = {(f"p{p}", s): x for p, s, x, _ in rows}
    b = {(f"p{p}", s): y for p, s, _, y in rows}
    shuffled = list(rows)
    rnd.shuffle(shuffled)
    a2 = {(f"p{p}", s): x for p, s, x, _ in shuffled}
    b2 = {(f"p{p}", s): y for p, s, _, y in shuffled}
    assert paired_differences(a, b) == paired_differences(a2, b2)
    r1 = bootstrap_mean_ci(paired_differences(a, b), n_resamples=50)
    r2 = bootstrap_mean_ci(paired_differences(b2 and a2, b2), n_resamples=50)
    assert r1 == r2


# --------------------------------------------------------------------------- StatResult

def test_statresult_to_dict_is_plain_json_and_round_trips():
    r = StatResult(estimate=np.float64(-1.7e-3), ci=(np.float64(-1.7e-3), np.float32(7e-4)), ci_level=0.95,
                   p_value=np.float64(np.nan), n=np.int64(8), method="m", seed=np.int64(3), mde=np.float64(0.1),
                   extra={"arr": np.arange(3), "x": np.float32(0.5), "bad": np.inf, "nested": {"t": (1, np.nan)}})
    d = r.to_dict()
    text = json.dumps(d, allow_nan=False)
    assert d["p_value"] is None and d["extra"]["bad"] is None and d["extra"]["nested"]["t"] == [1, None]
    assert type(d["n"]) is int and type(d["seed"]) is int and type(d["extra"]["arr"][0]) is int
    back = StatResult.from_dict(json.loads(text))
    assert back == r and hash(back) == hash(r)
    assert r.format_ci() == "[-1.7e-03, +7.0e-04]"
    assert r.format_ci(digits=3) == "[-1.700e-03, +7.000e-04]"


def test_statresult_one_sided_ci_and_nan_estimate_round_trip():
    r = StatResult(estimate=math.nan, ci=(0.1, math.inf), ci_level=0.95, p_value=0.01, n=5, method="m",
                   alternative="greater")
    d = r.to_dict()
    assert d["estimate"] is None and d["ci"] == [0.1, None]
    assert StatResult.from_dict(d) == r
    assert r.format_ci() == "[+1.0e-01, +inf]"
    assert StatResult(estimate=0.0, ci=None, ci_level=None, p_value=None, n=2, method="m").format_ci() == "n/a"


def test_statresult_equality_is_bit_exact_and_validates():
    base = dict(ci=None, ci_level=None, p_value=None, n=2, method="m")
    assert StatResult(estimate=0.1 + 0.2, **base) != StatResult(estimate=0.3, **base)
    assert StatResult(estimate=0.0, **base) != StatResult(estimate=-0.0, **base)
    with pytest.raises(StatsInputError):
        StatResult(estimate=0.0, alternative="bigger", **base)
    with pytest.raises(StatsInputError, match="unknown keys"):
        StatResult.from_dict({**StatResult(estimate=0.0, **base).to_dict(), "foo": 1})
    with pytest.raises(StatsInputError, match="JSON"):
        StatResult(estimate=0.0, extra={"f": object()}, **base)


# --------------------------------------------------------------------------- bootstrap

def test_bootstrap_indices_are_scipys_resamples():
    x = rng(1).normal(size=17)
    idx = bootstrap_indices(17, 300, seed=5)
    assert idx.shape == (300, 17) and idx.dtype == np.int64
    res = stats.bootstrap((x,), np.mean, n_resamples=300, rng=np.random.default_rng(5), method="percentile")
    assert np.array_equal(res.bootstrap_distribution, x[idx].mean(axis=1))
    assert np.array_equal(idx, bootstrap_indices(17, 300, seed=5))


def _scipy_ci(data, statistic, method, n_resamples, seed, confidence=0.95, paired=False):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.bootstrap(data, statistic, n_resamples=n_resamples, method=method, paired=paired,
                              vectorized=True, confidence_level=confidence, rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


@PROPS
@given(samples(), st.sampled_from(["percentile", "bca"]), st.integers(0, 2**32), st.sampled_from([0.9, 0.95]))
def test_bootstrap_ci_matches_scipy_on_same_resamples(x, method, seed, confidence):
    assume(np.ptp(x) > 0)
    r = bootstrap_mean_ci(x, method=method, n_resamples=199, seed=seed, confidence=confidence)
    assume("bca_fallback" not in r.extra)
    lo, hi = _scipy_ci((x,), np.mean, method, 199, seed, confidence)
    assert close(r.ci[0], lo) and close(r.ci[1], hi)
    assert r.estimate == np.mean(x) and r.seed == seed and r.n == x.size


@FEW
@given(samples(min_size=3), samples(min_size=3), st.sampled_from(["percentile", "bca"]))
def test_paired_bootstrap_matches_scipy_paired(a, b, method):
    n = min(a.size, b.size)
    a, b = a[:n], b[:n]
    assume(np.ptp(b - a) > 0)
    r = bootstrap_mean_ci(paired_differences(a, b), method=method, n_resamples=150, seed=11)
    assume("bca_fallback" not in r.extra)
    lo, hi = _scipy_ci((a, b), lambda u, v, axis=-1: np.mean(v - u, axis=axis), method, 150, 11, paired=True)
    assert close(r.ci[0], lo) and close(r.ci[1], hi)


def test_bootstrap_defaults_and_stored_literal():
    x = np.array([3, -1, 4, 1, -5, 9, 2, 6]) / 8
    r = bootstrap_mean_ci(x, method="percentile", n_resamples=200)
    assert (r.estimate, r.ci, r.seed, r.n, r.decision, r.method) == (
        0.296875, (-0.031640624999999936, 0.6253906250000001), 20260522, 8, "ci_contains_zero",
        "paired bootstrap percentile, 200 resamples")
    assert r.mde == pytest.approx(0.6176247318335917, rel=1e-9)
    d = bootstrap_mean_ci(x)
    # default: studentized, the method whose coverage holds at N=16 (docs/STATISTICS.md)
    assert d.seed == DEFAULT_SEED and d.ci_level == 0.95
    assert d.method == "paired bootstrap studentized (bootstrap-t), 1000 resamples"


@pytest.mark.parametrize("method", ["percentile", "bca", "studentized"])
def test_bootstrap_is_bit_identical_and_seed_sensitive(method):
    x = rng(3).standard_exponential(40) - 0.9
    r1, r2 = bootstrap_mean_ci(x, method=method, seed=9), bootstrap_mean_ci(x.copy(), method=method, seed=9)
    assert r1 == r2 and r1.to_dict() == r2.to_dict()
    assert json.dumps(r1.to_dict()) == json.dumps(r2.to_dict())
    assert bootstrap_mean_ci(x, method=method, seed=10).ci != r1.ci


def test_bootstrap_chunking_does_not_change_the_stream(monkeypatch):
    import benchmark.stats.bootstrap as B
    x = rng(4).normal(size=33)
    whole = bootstrap_mean_ci(x, n_resamples=500, seed=2)
    monkeypatch.setattr(B, "_CHUNK_ELEMENTS", 100)  # 3 resamples per chunk
    assert bootstrap_mean_ci(x, n_resamples=500, seed=2) == whole


def test_bootstrap_degenerate_and_bad_input():
    r = bootstrap_mean_ci([0.5, 0.5, 0.5])
    assert r.ci == (0.5, 0.5) and r.decision == "ci_excludes_zero" and "note" in r.extra
    assert bootstrap_mean_ci([0.0, 0.0]).decision == "ci_contains_zero"
    with pytest.raises(StatsInputError, match="N=1"):
        bootstrap_mean_ci([1.0])
    with pytest.raises(StatsInputError, match=r"indices \[2\]"):
        bootstrap_mean_ci([1.0, 2.0, np.nan])
    with pytest.raises(StatsInputError, match="seed=None"):
        bootstrap_mean_ci([1.0, 2.0], seed=None)
    with pytest.raises(StatsInputError, match="method"):
        bootstrap_mean_ci([1.0, 2.0], method="basic")
    with pytest.raises(StatsInputError, match="confidence"):
        bootstrap_mean_ci([1.0, 2.0], confidence=95)


# --------------------------------------------------------------------------- t-test, Wilcoxon

@PROPS
@given(samples(), st.sampled_from(ALTS), st.data())
def test_paired_ttest_matches_scipy(a, alternative, data):
    b = data.draw(samples(a.size, a.size))
    assume(np.ptp(b - a) > 0)
    r = paired_ttest(a, b, alternative=alternative)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = stats.ttest_rel(b, a, alternative=alternative)
    assert close(r.p_value, float(ref.pvalue)) and close(r.extra["t"], float(ref.statistic))
    ci = ref.confidence_interval(0.95)
    assert close(r.ci[0], float(ci.low)) and close(r.ci[1], float(ci.high))
    assert r.decision == ("significant" if r.p_value < 0.05 else "not_significant")


def test_ttest_zero_variance_conventions():
    zero = paired_ttest([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert (zero.p_value, zero.decision, zero.estimate) == (1.0, "not_significant", 0.0)
    assert "all differences are zero" in zero.extra["note"]
    shift = paired_ttest([1.0, 2.0, 3.0], [2.0, 3.0, 4.0])  # every difference = +1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert shift.p_value == float(stats.ttest_rel([2.0, 3.0, 4.0], [1.0, 2.0, 3.0]).pvalue) == 0.0
    assert shift.decision == "significant" and "zero variance" in shift.extra["note"]
    assert shift.extra["t"] is None  # +inf is not JSON: extra stores None, the note says t is infinite
    assert paired_ttest([1.0, 2.0, 3.0], [2.0, 3.0, 4.0], alternative="greater").p_value == 0.0
    assert paired_ttest([1.0, 2.0, 3.0], [2.0, 3.0, 4.0], alternative="less").p_value == 1.0
    with pytest.raises(StatsInputError, match="N=1"):
        paired_ttest([1.0], [2.0])


@PROPS
@given(samples(elements=grid), st.sampled_from(ALTS), st.data())
def test_wilcoxon_matches_scipy_with_ties_and_zeros(a, alternative, data):
    b = data.draw(samples(a.size, a.size, elements=grid))
    d = b - a
    assume(np.any(d != 0))
    r = wilcoxon_signed_rank(a, b, alternative=alternative)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = stats.wilcoxon(d, alternative=alternative)
    assert close(r.p_value, float(ref.pvalue)) and r.extra["statistic"] == float(ref.statistic)


@FEW
@given(samples(min_size=2, max_size=60, elements=cont), st.sampled_from(ALTS))
def test_wilcoxon_matches_scipy_continuous(d, alternative):
    assume(np.all(d != 0))
    r = wilcoxon_signed_rank(np.zeros_like(d), d, alternative=alternative)
    assert close(r.p_value, float(stats.wilcoxon(d, alternative=alternative).pvalue))


def test_wilcoxon_degenerate_and_estimate():
    z = wilcoxon_signed_rank([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert (z.p_value, z.decision) == (1.0, "not_significant") and "zero" in z.extra["note"]
    r = wilcoxon_signed_rank([0.0, 0.0, 0.0], [1.0, 2.0, 10.0])
    # Walsh averages: 1, 1.5, 5.5, 2, 6, 10 -> median 3.75
    assert r.estimate == 3.75 and r.ci is None


# --------------------------------------------------------------------------- Holm

def test_holm_hand_worked_example():
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> running max 0.06
    h = holm([0.01, 0.04, 0.03, 0.005])
    assert h.adjusted == pytest.approx((0.03, 0.06, 0.06, 0.02), abs=1e-15)
    assert h.reject == (True, False, False, True)
    m = holm({"A22a": 0.01, "A22b": 0.04, "A22c": 0.03, "A22d": 0.005}, alpha=0.05)
    assert m.as_dict()["A22b"] == {"p": 0.04, "p_holm": pytest.approx(0.06), "reject": False}
    assert holm([0.6, 0.9]).adjusted == (1.0, 1.0)  # capped at 1
    assert holm([0.05]).reject == (False,)  # strict: p == alpha does not reject


def test_holm_bad_input_is_named():
    with pytest.raises(StatsInputError, match="'b'"):
        holm({"a": 0.1, "b": 1.5})
    with pytest.raises(StatsInputError, match=r"\[1\]"):
        holm([0.1, math.nan])
    with pytest.raises(StatsInputError):
        holm([])


@PROPS
@given(st.lists(st.floats(0, 1), min_size=1, max_size=12), st.sampled_from([0.01, 0.05, 0.1]))
def test_holm_properties(p, alpha):
    h = holm(p, alpha=alpha)
    adj = np.array(h.adjusted)
    raw = np.array(p)
    assert np.all(adj >= raw - 1e-15) and np.all(adj <= 1.0)
    order = np.argsort(raw, kind="stable")
    assert np.all(np.diff(adj[order]) >= 0)
    assert h.reject == tuple(bool(q < alpha) for q in adj)
    assert holm({str(i): v for i, v in enumerate(p)}, alpha=alpha).adjusted == h.adjusted


@PROPS
@given(st.lists(st.floats(0, 1), min_size=1, max_size=12))
def test_holm_matches_statsmodels(p):
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    reject, adj, _, _ = multitest.multipletests(p, alpha=0.05, method="holm")
    h = holm(p)
    assert np.allclose(h.adjusted, adj, rtol=0, atol=1e-12)
    for q, ours, theirs in zip(h.adjusted, h.reject, reject):
        if q != 0.05:  # statsmodels rejects at p == alpha, we do not
            assert ours == bool(theirs)


def test_holm_adjust_results():
    rs = {k: paired_ttest(np.zeros(6), rng(i).normal(0.8 * i, 1, 6)) for i, k in enumerate(["x", "y", "z"])}
    adj = holm_adjust_results(rs)
    h = holm({k: r.p_value for k, r in rs.items()})
    assert [r.p_value for r in adj.values()] == list(h.adjusted)
    assert adj["z"].extra["p_unadjusted"] == rs["z"].p_value and adj["z"].method.endswith("+ Holm (m=3)")


# --------------------------------------------------------------------------- TOST and power

@PROPS
@given(samples(elements=cont), st.floats(0.01, 50), st.sampled_from([0.05, 0.1]))
def test_tost_matches_two_scipy_one_sided_tests(d, margin, alpha):
    assume(np.ptp(d) > 0)
    r = tost(d, margin=margin, alpha=alpha)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p_lo = stats.ttest_1samp(d, -margin, alternative="greater").pvalue
        p_hi = stats.ttest_1samp(d, margin, alternative="less").pvalue
        ci = stats.ttest_1samp(d, 0).confidence_interval(1 - 2 * alpha)
    assert close(r.p_value, max(p_lo, p_hi)) and r.margin == margin and r.ci_level == pytest.approx(1 - 2 * alpha)
    assert close(r.ci[0], ci.low) and close(r.ci[1], ci.high)
    inside = -margin < r.ci[0] and r.ci[1] < margin
    if abs(r.p_value - alpha) > 1e-9:
        assert (r.decision == "equivalent") == (r.p_value < alpha) == inside


def test_tost_edge_cases():
    with pytest.raises(StatsInputError, match="margin"):
        tost([0.1, 0.2], margin=0)
    with pytest.raises(StatsInputError, match="margin"):
        tost([0.1, 0.2], margin=-0.05)
    with pytest.raises(StatsInputError, match="N=1"):
        tost([0.1], margin=0.05)
    assert tost([0.001] * 5, margin=0.002).decision == "equivalent"
    assert tost([0.002] * 5, margin=0.002).p_value == 1.0
    r = tost(rng(0).normal(0, 0.004, 8), margin=0.002)
    assert r.decision == "not_equivalent" and r.extra["can_decide"] is False and r.extra["n_required"] > 8
    hopeless = tost([0.0, 47.0], margin=0.01)  # > 10^8 pairs needed: reported as None, not raised
    assert hopeless.extra["n_required"] is None and hopeless.decision == "not_equivalent"


def test_mde_inverts_power_and_matches_normal_limit():
    for n, alt in [(8, "two-sided"), (16, "greater"), (64, "less"), (553, "two-sided")]:
        mde = minimum_detectable_effect(n, 0.5, alternative=alt)
        signed = -mde if alt == "less" else mde
        assert ttest_power(n, 0.5, signed, alternative=alt) == pytest.approx(0.8, abs=1e-9)
    big = minimum_detectable_effect(100_000, 1.0)
    assert big == pytest.approx((stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) / math.sqrt(100_000), rel=1e-3)
    assert minimum_detectable_effect(8, 0.0) == 0.0
    mdes = [minimum_detectable_effect(n, 1.0) for n in (4, 8, 16, 64)]
    assert mdes == sorted(mdes, reverse=True)
    with pytest.raises(StatsInputError, match="n must be >= 2"):
        minimum_detectable_effect(1, 1.0)


def _simulate_t_rejections(n, sd, mu, reps, seed, tc_lo, tc_hi):
    x = np.random.default_rng(seed).normal(mu, sd, size=(reps, n))
    t = x.mean(1) / (x.std(1, ddof=1) / math.sqrt(n))
    return t, float(np.mean((t > tc_hi) | (t < tc_lo)))


def test_ttest_power_agrees_with_simulation():
    n, sd, mu = 10, 1.0, 0.7
    tc = stats.t.ppf(0.975, n - 1)
    _, sim = _simulate_t_rejections(n, sd, mu, 40_000, 1, -tc, tc)
    assert ttest_power(n, sd, mu) == pytest.approx(sim, abs=0.01)


def test_tost_power_nct_exact_and_simulation_agree():
    n, sd, margin, alpha = 12, 1.0, 0.9, 0.05
    x = np.random.default_rng(2).normal(0.1, sd, size=(40_000, n))
    m, se = x.mean(1), x.std(1, ddof=1) / math.sqrt(n)
    tc = stats.t.ppf(1 - alpha, n - 1)
    sim = float(np.mean(((m + margin) / se > tc) & ((m - margin) / se < -tc)))
    exact = tost_power(n, sd, margin, true_diff=0.1, method="exact")
    approx = tost_power(n, sd, margin, true_diff=0.1)
    assert exact == pytest.approx(sim, abs=0.01)
    assert approx <= exact + 1e-12 and approx == pytest.approx(exact, abs=0.02)
    assert tost_power(n, 0.0, margin) == 1.0 and tost_power(n, 0.0, margin, true_diff=1.0) == 0.0


def test_can_decide_equivalence_at_small_n():
    # CLIP-T: margin 0.002, SD of paired differences ~0.004
    assert can_decide_equivalence(8, 0.004, 0.002) is False
    assert can_decide_equivalence(553, 0.004, 0.002) is True
    n_req = required_n_equivalence(0.004, 0.002)
    assert tost_power(n_req, 0.004, 0.002) >= 0.8 > tost_power(n_req - 1, 0.004, 0.002)
    with pytest.raises(StatsInputError, match="true_diff"):
        required_n_equivalence(0.004, 0.002, true_diff=0.003)


# --------------------------------------------------------------------------- no-effect double rule

def test_no_effect_rule_decisions():
    base = rng(5).normal(0.3, 0.02, 400)
    tiny = no_effect_test(base, base + rng(6).normal(0, 0.001, 400), margin=0.002)
    assert tiny.decision == "no_effect" and tiny.extra["tost"]["decision"] == "equivalent"
    assert tiny.extra["bootstrap"]["decision"] == "ci_contains_zero" and tiny.seed == DEFAULT_SEED
    big = no_effect_test(base, base + 0.01 + rng(7).normal(0, 0.001, 400), margin=0.002)
    assert big.decision == "effect"
    small_real = no_effect_test(base, base + 0.0005 + rng(8).normal(0, 0.001, 400), margin=0.002)
    assert small_real.decision == "negligible_effect"
    n8 = no_effect_test(base[:8], base[:8] + rng(9).normal(0, 0.004, 8), margin=0.002)
    assert n8.decision == "underpowered" and n8.extra["below_n_for_power"] is True
    assert n8.extra["reason"].startswith("cannot decide at N=8")
    assert n8.p_value == n8.extra["tost"]["p_value"] and n8.ci == tuple(n8.extra["bootstrap"]["ci"])
    json.dumps(n8.to_dict(), allow_nan=False)


def test_no_effect_undecided_when_powered_but_not_equivalent():
    # mean 1.7 SE (CI contains 0), margin 3.2 SE (TOST power ~0.88 at 0, yet 90% CI reaches the margin)
    d = rng(10).normal(0, 0.02, 120)
    d = d - d.mean()
    se = d.std(ddof=1) / math.sqrt(120)
    r = no_effect_test(np.zeros(120), d + 1.7 * se, margin=3.2 * se, n_resamples=300)
    assert r.extra["ci_contains_zero"] and not r.extra["tost_equivalent"] and r.extra["power_at_zero"] >= 0.8
    assert r.decision == "undecided" and r.extra["below_n_for_power"] is False


# --------------------------------------------------------------------------- difference of differences, trend

def _dd_data(n=40, seed=0):
    g = rng(seed)
    base = g.normal(0.3, 0.05, n)
    return base, base - 0.02 + g.normal(0, 0.01, n), base - 0.005 + g.normal(0, 0.01, n)


def test_difference_of_differences_matches_components():
    base, sink, rand = _dd_data()
    r = difference_of_differences(base, sink, rand, alternative="less", n_resamples=400, seed=3)
    dd = (sink - base) - (rand - base)
    assert r.estimate == np.mean(dd)
    assert close(r.p_value, float(stats.ttest_1samp(dd, 0, alternative="less").pvalue))
    assert close(r.extra["p_wilcoxon"], float(stats.wilcoxon(dd, alternative="less").pvalue))
    assert r.ci == bootstrap_mean_ci(dd, n_resamples=400, seed=3).ci
    assert r.decision == "significant" and r.alternative == "less"
    w = difference_of_differences(base, sink, rand, alternative="less", test="wilcoxon", n_resamples=400, seed=3)
    assert w.p_value == r.extra["p_wilcoxon"] and "Wilcoxon" in w.method
    deltas = difference_of_differences(None, sink - base, rand - base, alternative="less", n_resamples=400, seed=3)
    assert deltas.ci == pytest.approx(r.ci, abs=1e-15)
    with pytest.raises(TypeError):
        difference_of_differences(base, sink, rand)  # the direction must be stated


def test_difference_of_differences_keyed_alignment_and_errors():
    base, sink, rand = _dd_data(6)
    keys = [(f"p{i}", 0) for i in range(6)]
    mb, ms, mr = (dict(zip(keys, v)) for v in (base, sink, rand))
    r = difference_of_differences(mb, ms, dict(reversed(list(mr.items()))), alternative="less", n_resamples=100)
    assert r == difference_of_differences(base, sink, rand, alternative="less", n_resamples=100)
    del mr[("p3", 0)]
    with pytest.raises(StatsInputError, match=r"missing in random: \[\('p3', 0\)\]"):
        difference_of_differences(mb, ms, mr, alternative="less")


def test_paired_trend_on_per_sample_dd():
    keys = [(f"p{i}", s) for i in range(20) for s in (0, 1)]
    g = rng(12)
    base = {k: g.normal() for k in keys}
    dd10 = per_sample_dd(base, {k: v - 0.1 + g.normal(0, 0.05) for k, v in base.items()},
                         {k: v + g.normal(0, 0.05) for k, v in base.items()})
    dd50 = per_sample_dd(base, {k: v - 0.3 + g.normal(0, 0.05) for k, v in base.items()},
                         {k: v + g.normal(0, 0.05) for k, v in base.items()})
    assert isinstance(dd10, dict) and set(dd10) == set(keys)
    r = paired_trend(dd10, dd50, alternative="less", n_resamples=300)
    diff = np.array([dd50[k] - dd10[k] for k in sorted(keys)])
    assert r.estimate == pytest.approx(diff.mean(), abs=1e-15) and r.n == 40
    assert close(r.p_value, float(stats.ttest_1samp(diff, 0, alternative="less").pvalue), 1e-10)
    assert r.decision == "significant"


# --------------------------------------------------------------------------- monotonic ordering

def _levels(k, n, step, seed=0):
    g = rng(seed)
    subject = g.normal(0.4, 0.1, n)
    return [subject + i * step + g.normal(0, 0.02, n) for i in range(k)]


def test_monotonic_increase_steps_and_page():
    xs = _levels(3, 30, 0.05)
    r = monotonic_increase(xs, levels=["cfg3", "cfg5", "cfg7.5"], n_resamples=300)
    assert r.decision == "increasing" and len(r.extra["steps"]) == 2
    ps = [s["p_t"] for s in r.extra["steps"]]
    assert [s["p_holm"] for s in r.extra["steps"]] == list(holm(ps).adjusted)
    assert r.p_value == max(holm(ps).adjusted)
    data = np.column_stack(xs)
    ranks = stats.rankdata(data, axis=1)
    L = float(np.sum(ranks.sum(axis=0) * np.arange(1, 4)))
    ref = stats.page_trend_test(data)
    assert r.extra["page"]["L"] == L == float(ref.statistic) and r.extra["page"]["p"] == float(ref.pvalue)
    assert monotonic_increase(xs, rule="page", n_resamples=300).p_value == float(ref.pvalue)
    flat = monotonic_increase(_levels(3, 30, 0.0), n_resamples=300)
    assert flat.decision == "not_increasing"
    down = monotonic_increase(_levels(3, 30, -0.05), n_resamples=300)
    assert down.decision == "not_increasing" and down.p_value > 0.5


def test_monotonic_two_levels_a19_and_inputs():
    a1, a2 = _levels(2, 25, 0.03, seed=4)
    r = monotonic_increase({"A1": a1, "A2": a2}, n_resamples=200)
    assert r.extra["levels"] == ["A1", "A2"] and r.extra["page"] is None
    assert close(r.p_value, float(stats.ttest_rel(a2, a1, alternative="greater").pvalue))
    with pytest.raises(StatsInputError, match="at least 3 levels"):
        monotonic_increase([a1, a2], rule="page")
    with pytest.raises(StatsInputError, match="at least 2 levels"):
        monotonic_increase([a1])
    with pytest.raises(StatsInputError, match="len"):
        monotonic_increase([a1, a2[:-1]])


# --------------------------------------------------------------------------- Spearman

def _rho_rows(x, y, axis=-1):
    rx, ry = stats.rankdata(x, axis=-1), stats.rankdata(y, axis=-1)
    rx = rx - rx.mean(axis=-1, keepdims=True)
    ry = ry - ry.mean(axis=-1, keepdims=True)
    with np.errstate(all="ignore"):
        return np.sum(rx * ry, axis=-1) / np.sqrt(np.sum(rx * rx, axis=-1) * np.sum(ry * ry, axis=-1))


@PROPS
@given(samples(min_size=3, max_size=40), st.sampled_from(ALTS), st.data())
def test_spearman_estimate_and_p_match_scipy(x, alternative, data):
    y = data.draw(samples(x.size, x.size))
    assume(np.ptp(x) > 0 and np.ptp(y) > 0)
    r = spearman_with_ci(x, y, alternative=alternative, n_resamples=50)
    ref = stats.spearmanr(x, y, alternative=alternative)
    assert close(r.estimate, float(ref.statistic)) and close(r.p_value, float(ref.pvalue))


@FEW
@given(samples(min_size=8, max_size=40, elements=cont), st.sampled_from(["percentile", "bca"]), st.data())
def test_spearman_ci_matches_scipy_bootstrap(x, method, data):
    y = data.draw(samples(x.size, x.size, elements=st.one_of(grid, cont)))
    assume(np.ptp(x) > 0 and np.ptp(y) > 0)
    r = spearman_with_ci(x, y, method=method, n_resamples=200, seed=4)
    assume(r.extra["n_degenerate_resamples"] == 0 and "bca_fallback" not in r.extra)
    lo, hi = _scipy_ci((x, y), _rho_rows, method, 200, 4, paired=True)
    assert close(r.ci[0], lo) and close(r.ci[1], hi)


def test_spearman_a02_shape_and_degenerate_input():
    cells = [(layer, step) for layer in range(6) for step in range(10)]
    g = rng(13)
    maxmass = {c: g.uniform() for c in cells}
    entropy = {c: -2 * v + g.normal(0, 0.3) for c, v in maxmass.items()}
    r = spearman_with_ci(maxmass, entropy)
    assert r.n == 60 and r.ci[1] < 0 and r.extra["ci_excludes_zero"] and r.decision == "significant"
    idx = bootstrap_indices(60, 5, seed=DEFAULT_SEED)
    xs, ys = np.array([maxmass[c] for c in cells]), np.array([entropy[c] for c in cells])
    for row in idx:  # each bootstrap rho is scipy's rho on that resample of pairs
        assert close(_rho_rows(xs[row], ys[row]), stats.spearmanr(xs[row], ys[row]).statistic)
    const = spearman_with_ci([1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0])
    assert const.decision == "undefined" and math.isnan(const.estimate) and const.ci is None
    assert "x constant" in const.extra["note"] and StatResult.from_dict(const.to_dict()) == const
    tiny = spearman_with_ci([1.0, 2.0, 3.0], [1.0, 3.0, 2.0], n_resamples=100)
    assert tiny.n == 3 and tiny.extra["n_degenerate_resamples"] > 0
    with pytest.raises(StatsInputError, match="N=2"):
        spearman_with_ci([1.0, 2.0], [2.0, 1.0])


# --------------------------------------------------------------------------- reproducibility, hygiene

def test_every_procedure_is_bit_reproducible():
    base, sink, rand = _dd_data(30, seed=21)
    calls = [
        lambda: bootstrap_mean_ci(sink - base),
        lambda: bootstrap_mean_ci(sink - base, method="percentile"),
        lambda: paired_ttest(base, sink),
        lambda: wilcoxon_signed_rank(base, sink, alternative="less"),
        lambda: tost(sink - base, margin=0.05),
        lambda: no_effect_test(base, sink, margin=0.05),
        lambda: difference_of_differences(base, sink, rand, alternative="less"),
        lambda: paired_trend(sink, rand, alternative="greater"),
        lambda: monotonic_increase([sink, rand, base]),
        lambda: spearman_with_ci(base, sink),
    ]
    for call in calls:
        r1, r2 = call(), call()
        assert r1 == r2 and r1.to_dict() == r2.to_dict(), r1.method
        json.dumps(r1.to_dict(), allow_nan=False)


@pytest.mark.parametrize("call", [
    lambda x: paired_ttest(x, x + 1),
    lambda x: wilcoxon_signed_rank(x, x + 1),
    lambda x: tost(x, margin=0.1),
    lambda x: no_effect_test(x, x, margin=0.1),
    lambda x: difference_of_differences(x, x, x, alternative="greater"),
    lambda x: paired_trend(x, x, alternative="greater"),
    lambda x: monotonic_increase([x, x]),
])
def test_n_below_two_is_refused_with_n(call):
    with pytest.raises(StatsInputError, match="N=1"):
        call(np.array([0.5]))


any_float = st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True, width=64)
ROBUST = [
    lambda x, y: bootstrap_mean_ci(y, n_resamples=20),
    lambda x, y: bootstrap_mean_ci(y, method="percentile", n_resamples=20),
    lambda x, y: paired_ttest(x, y, alternative="less"),
    lambda x, y: wilcoxon_signed_rank(x, y),
    lambda x, y: tost(y, margin=0.5),
    lambda x, y: no_effect_test(x, y, margin=0.5, n_resamples=20),
    lambda x, y: difference_of_differences(x, y, x[::-1], alternative="greater", n_resamples=20),
    lambda x, y: paired_trend(x, y, alternative="less", n_resamples=20),
    lambda x, y: monotonic_increase([x, y, x + y], n_resamples=20),
    lambda x, y: spearman_with_ci(x, y, n_resamples=20),
]


@settings(PROPS, max_examples=60)
@given(st.lists(st.tuples(any_float, st.one_of(any_float, grid)), max_size=8), st.sampled_from(range(len(ROBUST))))
def test_bad_input_gives_clear_error_or_defined_result(pairs, which):
    x = np.array([p[0] for p in pairs])
    y = np.array([p[1] for p in pairs])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no stray numpy/scipy warnings either
        try:
            r = ROBUST[which](x, y)
        except StatsInputError as exc:
            assert str(exc)
            return
    assert isinstance(r, StatResult)
    json.dumps(r.to_dict(), allow_nan=False)


def test_public_api_and_no_torch():
    assert set(S.__all__) <= set(dir(S))
    code = "import sys, benchmark.stats; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- studentized (bootstrap-t) interval ------------------------------------------------------

def test_studentized_interval_matches_a_direct_computation_on_the_same_resamples() -> None:
    from benchmark.stats import bootstrap_indices, bootstrap_mean_ci

    x = np.random.default_rng(3).normal(0.2, 1.0, 16)
    idx = bootstrap_indices(x.size, 500, seed=11)
    s = x[idx]
    t = (s.mean(axis=1) - x.mean()) / (s.std(axis=1, ddof=1) / np.sqrt(x.size))
    se = x.std(ddof=1) / np.sqrt(x.size)
    lo_q, hi_q = np.quantile(t, [0.025, 0.975])
    res = bootstrap_mean_ci(x, method="studentized", n_resamples=500, seed=11)
    np.testing.assert_allclose(res.ci, (x.mean() - hi_q * se, x.mean() - lo_q * se), rtol=1e-12, atol=1e-14)
    assert "studentized" in res.method
    # wider than the percentile interval at small N (which undercovers there)
    pct = bootstrap_mean_ci(x, method="percentile", n_resamples=500, seed=11)
    assert res.ci[1] - res.ci[0] > pct.ci[1] - pct.ci[0]
    assert bootstrap_mean_ci(x, method="studentized", n_resamples=500, seed=11) == res
