"""SinkBench statistics engine: paired, seeded, power-aware tests (pure numpy/scipy).

Sign convention: ``diff = b - a`` = **condition minus baseline** everywhere; pass the
baseline as `a`. Every procedure returns a `StatResult`; every bootstrap is seeded
(default `DEFAULT_SEED`, recorded in the result), so the same inputs and seed give
bit-identical results. Bad input raises `StatsInputError` naming the offending keys or
indices. See docs/STATISTICS.md for the decision rules and the coverage simulation.

Modules: `pairing` (record alignment), `result` (`StatResult`), `bootstrap`,
`classical` (t, Wilcoxon, Holm), `power` (MDE, TOST power), `equivalence` (TOST,
no-effect rule), `composite` (difference of differences, trend, monotonicity, Spearman).
"""
from ._common import (DEFAULT_ALPHA, DEFAULT_CONFIDENCE, DEFAULT_POWER, DEFAULT_RESAMPLES, DEFAULT_SEED,
                      StatsInputError)
from .bootstrap import bootstrap_indices, bootstrap_mean_ci
from .classical import HolmResult, holm, holm_adjust_results, paired_ttest, wilcoxon_signed_rank
from .composite import difference_of_differences, monotonic_increase, paired_trend, per_sample_dd, spearman_with_ci
from .equivalence import no_effect_test, tost
from .pairing import PairedSample, align, paired_differences
from .power import can_decide_equivalence, minimum_detectable_effect, required_n_equivalence, tost_power, ttest_power
from .result import StatResult

__all__ = [
    # constants and errors
    "DEFAULT_SEED", "DEFAULT_RESAMPLES", "DEFAULT_CONFIDENCE", "DEFAULT_ALPHA", "DEFAULT_POWER", "StatsInputError",
    # data
    "PairedSample", "paired_differences", "align", "StatResult", "HolmResult",
    # bootstrap
    "bootstrap_indices", "bootstrap_mean_ci",
    # classical tests and multiplicity
    "paired_ttest", "wilcoxon_signed_rank", "holm", "holm_adjust_results",
    # equivalence and power
    "tost", "no_effect_test", "minimum_detectable_effect", "ttest_power", "tost_power", "can_decide_equivalence",
    "required_n_equivalence",
    # claim-shaped procedures
    "per_sample_dd", "difference_of_differences", "paired_trend", "monotonic_increase", "spearman_with_ci",
]
