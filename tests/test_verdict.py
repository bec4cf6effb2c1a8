"""Verdicts and their pytest outcomes: only a measured REPRODUCED passes."""
import math

import pytest

from benchmark.verdict import PYTEST_OUTCOME, ClaimOutcome, Verdict, contradicted, inconclusive, reproduced, skipped


def test_mapping_to_pytest_outcomes() -> None:
    assert PYTEST_OUTCOME == {
        Verdict.REPRODUCED: "passed", Verdict.CONTRADICTED: "failed", Verdict.INCONCLUSIVE: "skipped",
        Verdict.SKIPPED: "skipped", Verdict.ERROR: "failed",
    }
    assert [v for v in Verdict if v.pytest_outcome == "passed"] == [Verdict.REPRODUCED]


def test_outcomes_carry_what_was_measured_and_why() -> None:
    with pytest.raises(ValueError, match="needs a reason"):
        ClaimOutcome(Verdict.SKIPPED)
    with pytest.raises(ValueError, match="must say what was measured"):
        ClaimOutcome(Verdict.REPRODUCED)
    with pytest.raises(ValueError, match="needs a reason"):
        ClaimOutcome(Verdict.INCONCLUSIVE, measured="x")
    with pytest.raises(ValueError):
        ClaimOutcome("PASSED", measured="x")
    assert reproduced("x").verdict is Verdict.REPRODUCED
    assert contradicted("x", "why").verdict is Verdict.CONTRADICTED
    assert inconclusive("x", "why").verdict is Verdict.INCONCLUSIVE
    assert skipped("why").verdict is Verdict.SKIPPED


def test_non_finite_numbers_become_none() -> None:
    out = reproduced("x", value=math.nan, ci=(0.1, math.inf))
    assert out.value is None and out.ci is None
    out = reproduced("x", value=1, ci=(0, 2))
    assert out.value == 1.0 and out.ci == (0.0, 2.0)
