"""Drift between two runs (benchmark/compare.py), `sinkbench compare`, and the pytest --baseline gate."""
import copy
import json
import os
from pathlib import Path

import pytest

from benchmark.cli import main as cli_main
from benchmark.compare import (CompareError, compare, exit_code, pair_models, parse_tolerance, render_markdown,
                               tolerance_for, transition_kind)
from benchmark.report import render_markdown as render_report
from benchmark.results import dump_json, load_results, validate_results

DATA = Path(__file__).parent / "data"
BASELINE, NEW = DATA / "compare_baseline.json", DATA / "compare_new.json"
GOLDEN_MD = Path(__file__).parent / "golden" / "DRIFT_example.md"
GOLDEN_JSON = Path(__file__).parent / "golden" / "drift_example.json"
LABELS = {"baseline_label": "tests/data/compare_baseline.json", "new_label": "tests/data/compare_new.json"}


@pytest.fixture
def base() -> dict:
    return load_results(BASELINE)


@pytest.fixture
def new() -> dict:
    return load_results(NEW)


def test_drift_matches_golden_files(base, new) -> None:
    drift = compare(base, new, **LABELS)
    text, doc = render_markdown(drift), dump_json(drift)
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN_MD.write_text(text)
        GOLDEN_JSON.write_text(doc)
    assert text == GOLDEN_MD.read_text()
    assert doc == GOLDEN_JSON.read_text()


def test_planted_differences_are_found(base, new) -> None:
    drift = compare(base, new, **LABELS)
    changes = [(c["claim"], c["kind"], c["from"], c["to"]) for c in drift["verdict_changes"]]
    # most severe first, REPRODUCED -> CONTRADICTED before REPRODUCED -> ERROR
    assert changes == [
        ("A03", "regression", "REPRODUCED", "CONTRADICTED"),
        ("A14", "regression", "REPRODUCED", "ERROR"),
        ("B02", "new_error", "CONTRADICTED", "ERROR"),
        ("A01", "weakened", "INCONCLUSIVE", "CONTRADICTED"),
        ("B06", "weakened", "REPRODUCED", "INCONCLUSIVE"),
        ("A20", "not_measured", "REPRODUCED", "SKIPPED"),
        ("A07", "improved", "CONTRADICTED", "REPRODUCED"),
    ]
    moved = {f["claim"]: f for f in drift["figure_drift"]}
    assert set(moved) == {"A01", "A07", "B01", "B06"}          # A03, A05, B09 moved within tolerance
    assert moved["B01"]["tolerance"] == {"abs": None, "rel": 0.5, "source": "spec"}
    assert moved["B06"]["tolerance"]["source"] == "default"     # B06's spec has only a note
    assert moved["B01"]["outside_baseline_ci"] is True
    assert {s["claim"] for s in drift["new_skip_reasons"]} == {"A12", "A20"}
    assert drift["coverage"]["only_baseline"] == [{"claim": "A04", "model": "organism_rope", "verdict": "REPRODUCED"}]
    assert [x["claim"] for x in drift["coverage"]["only_new"]] == ["B15"]
    assert drift["comparable"] is True
    assert [w["what"] for w in drift["warnings"]] == ["packages.torch"]   # cache_dir and checkpoint are ignored
    assert drift["gate"] == {"fail_on": "regression", "failed": True, "failing": [
        "A03[organism_rope]: REPRODUCED -> CONTRADICTED", "A14[organism_rope]: REPRODUCED -> ERROR",
        "B02[organism_rope]: CONTRADICTED -> ERROR"]}
    assert exit_code(drift) == 1


@pytest.mark.parametrize("before, after, kind", [
    ("REPRODUCED", "CONTRADICTED", "regression"), ("REPRODUCED", "ERROR", "regression"),
    ("REPRODUCED", "INCONCLUSIVE", "weakened"), ("INCONCLUSIVE", "CONTRADICTED", "weakened"),
    ("INCONCLUSIVE", "REPRODUCED", "improved"), ("CONTRADICTED", "INCONCLUSIVE", "improved"),
    ("CONTRADICTED", "REPRODUCED", "improved"), ("ERROR", "CONTRADICTED", "improved"),
    ("SKIPPED", "ERROR", "new_error"), ("INCONCLUSIVE", "ERROR", "new_error"),
    ("REPRODUCED", "SKIPPED", "not_measured"), ("ERROR", "SKIPPED", "not_measured"),
    ("SKIPPED", "CONTRADICTED", "newly_measured"), ("REPRODUCED", "REPRODUCED", None),
])
def test_transition_kinds(before, after, kind) -> None:
    assert transition_kind(before, after) == kind


def test_fail_on_policies(base, new) -> None:
    worse = compare(base, new, fail_on="worse")["gate"]["failing"]
    assert len(worse) == 6 and any("A20" in f for f in worse) and not any("A07" in f for f in worse)
    anything = compare(base, new, fail_on="any")["gate"]["failing"]
    assert any("A07" in f for f in anything) and any("B01" in f and "beyond tolerance" in f for f in anything)
    with pytest.raises(CompareError, match="fail_on"):
        compare(base, new, fail_on="sometimes")


def test_same_run_has_no_drift(base) -> None:
    drift = compare(base, copy.deepcopy(base))
    assert not drift["verdict_changes"] and not drift["figure_drift"] and not drift["warnings"]
    assert drift["counts"]["unchanged"] == drift["counts"]["compared"] == len(base["results"])
    # the same weights on both sides is said: then changes could only come from code, settings or environment
    assert [n["what"] for n in drift["notes"]] == ["weights (organism_rope)"]
    assert exit_code(drift) == 0
    assert "No verdict changed." in render_markdown(drift)


def test_tolerance_precedence() -> None:
    spec = {"tolerance": {"abs": 0.002, "note": "x"}}
    assert tolerance_for("A09", spec) == {"abs": 0.002, "rel": None, "source": "spec"}
    assert tolerance_for("A09", {"tolerance": {"note": "qualitative"}})["source"] == "default"
    overrides = {"*": {"rel": 0.1}, "A09": {"abs": 0.5}}
    assert tolerance_for("A09", spec, overrides) == {"abs": 0.5, "rel": None, "source": "flag (claim)"}
    assert tolerance_for("A10", spec, overrides) == {"abs": None, "rel": 0.1, "source": "flag"}
    assert parse_tolerance("abs:0.01,rel:0.2") == {"abs": 0.01, "rel": 0.2}
    for bad in ("0.1", "abs:x", "rel:-1", "max:1"):
        with pytest.raises(CompareError):
            parse_tolerance(bad)


def test_zero_tolerance_flags_any_change(base) -> None:
    new = copy.deepcopy(base)
    a20 = next(r for r in new["results"] if r["claim"] == "A20")
    a20["value"] = 1.0                                            # A20's spec: abs 0 (bit-identical)
    assert [f["claim"] for f in compare(base, new)["figure_drift"]] == ["A20"]
    assert not compare(base, new, tolerances={"A20": {"abs": 1.0}})["figure_drift"]


@pytest.mark.parametrize("change, what", [
    (lambda d: d["settings"].__setitem__("steps", 10), "settings.steps"),
    (lambda d: d["settings"].__setitem__("n_prompts", 8), "settings.n_prompts"),
    (lambda d: d["settings"].__setitem__("seed", 1), "settings.seed"),
    (lambda d: d["provenance"]["models"]["organism_rope"]["prompts"].__setitem__("sha256", "f" * 64),
     "prompts (organism_rope)"),
    (lambda d: d["provenance"]["models"]["organism_rope"]["generation"].__setitem__("guidance", 7.0),
     "generation.guidance (organism_rope)"),
    (lambda d: d["provenance"]["seeds"].__setitem__("organism_prompts", 1), "seeds"),
])
def test_incomparable_runs_are_flagged(base, new, change, what) -> None:
    change(new)
    drift = compare(base, new)
    assert drift["comparable"] is False
    assert what in [i["what"] for i in drift["incomparable"]]
    assert exit_code(drift) == 3                                  # not comparable wins over the regressions
    assert exit_code(drift, allow_incomparable=True) == 1
    text = render_markdown(drift)
    assert "**NOT COMPARABLE" in text and "| **not comparable** |" in text


def test_prompt_path_may_differ_when_the_prompt_set_is_the_same(base, new) -> None:
    base["settings"]["prompts"], new["settings"]["prompts"] = "/data/a/prompts.txt", "/ci/prompts.txt"
    assert compare(base, new)["comparable"] is True
    del base["provenance"], new["provenance"]                     # schema 1.0: only the spec can be compared
    drift = compare(base, new)
    assert not drift["comparable"] and drift["incomparable"][0]["what"] == "settings.prompts"


def test_schema_1_0_documents_compare_with_a_warning(base, new) -> None:
    base["schema_version"] = "1.0"
    del base["provenance"]
    validate_results(base)
    drift = compare(base, new)
    assert drift["comparable"] is True
    assert "predates results.json 1.1" in next(w["why"] for w in drift["warnings"] if w["what"] == "provenance")


def test_model_pairing_rules() -> None:
    assert pair_models(["organism_rope"], ["flux"]) == (
        [{"baseline": "organism_rope", "new": "flux", "rule": "one model on each side"}], [], [])
    pairs, only_b, only_n = pair_models(["organism_rope", "organism_abspe"], ["organism_rope", "flux"])
    assert pairs == [{"baseline": "organism_rope", "new": "organism_rope", "rule": "same name"}]
    assert only_b == ["organism_abspe"] and only_n == ["flux"]
    pairs, _, _ = pair_models(["a", "b"], ["c", "d"], {"a": "d"})
    assert pairs == [{"baseline": "a", "new": "d", "rule": "explicit (--pair)"}]
    with pytest.raises(CompareError, match="the new run has no results for x"):
        pair_models(["a"], ["b"], {"a": "x"})


def test_different_model_names_pair_when_each_run_has_one(base, new) -> None:
    for r in new["results"]:
        r["model"] = "flux"
    new["models"] = {"flux": new["models"].pop("organism_rope")}
    new["provenance"]["models"] = {"flux": new["provenance"]["models"].pop("organism_rope")}
    drift = compare(base, new)
    assert drift["pairs"][0]["rule"] == "one model on each side"
    assert drift["verdict_changes"][0]["model"] == "organism_rope -> flux"


def test_report_has_a_drift_section(base, new) -> None:
    new["drift"] = compare(base, new, **LABELS)
    validate_results(new)
    text = render_report(new)
    assert text.index("## Summary") < text.index("## Drift against the baseline") < text.index("## A. ")
    assert "### Verdict changes" in text and "| A03     | organism_rope | regression " in text
    assert "| provenance (organism_rope) | weights d4d4d4d4d4d4, prompts organism (600, sha256 2c1f59d7365f) " in text


# -- the command ---------------------------------------------------------------------------------------------

def test_cli_compare_exit_codes_and_outputs(tmp_path, capsys) -> None:
    assert cli_main(["compare", str(BASELINE), str(BASELINE)]) == 0
    capsys.readouterr()
    assert cli_main(["compare", str(BASELINE), str(NEW)]) == 1
    out, err = capsys.readouterr()
    assert out.startswith("# SinkBench drift report") and "A03[organism_rope]: REPRODUCED -> CONTRADICTED" in err
    assert cli_main(["compare", str(BASELINE), str(NEW), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["counts"]["regression"] == 2
    # a report directory works as well as its results.json; --out writes both renderings
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "results.json").write_text(NEW.read_text())
    assert cli_main(["compare", str(BASELINE), str(run_dir), "--out", str(tmp_path / "drift")]) == 1
    assert (tmp_path / "drift" / "DRIFT.md").read_text().startswith("# SinkBench drift report")
    assert json.loads((tmp_path / "drift" / "drift.json").read_text())["drift_version"] == 1
    # incomparable settings: 3, unless allowed
    doc = json.loads(NEW.read_text())
    doc["settings"]["steps"] = 10
    (tmp_path / "steps10.json").write_text(json.dumps(doc))
    assert cli_main(["compare", str(BASELINE), str(tmp_path / "steps10.json")]) == 3
    assert cli_main(["compare", str(BASELINE), str(tmp_path / "steps10.json"), "--allow-incomparable"]) == 1
    # tolerances from flags
    capsys.readouterr()
    assert cli_main(["compare", str(BASELINE), str(NEW), "--json", "--rel-tol", "10", "--fail-on", "any",
                     "--claim-tol", "B01=abs:0.5"]) == 1
    drift = json.loads(capsys.readouterr().out)
    assert [f["claim"] for f in drift["figure_drift"]] == ["B01"]          # A01 moved less than 10x its value


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "no results.json at"),
    (lambda p: p.write_text("not json"), "is not valid JSON"),
    (lambda p: p.write_text("{}"), "does not follow schema"),
    (lambda p: p.write_text(json.dumps({**json.loads(NEW.read_text()), "schema_version": "2.0"})),
     "'2.0' is another major version"),
])
def test_cli_compare_bad_input(tmp_path, capsys, make, message) -> None:
    path = tmp_path / "results.json"
    make(path)
    assert cli_main(["compare", str(BASELINE), str(path)]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--pair", "organism_rope=flux"], "the new run has no results for flux"),
    (["--pair", "nonsense"], "expected BASELINE_MODEL=NEW_MODEL"),
    (["--claim-tol", "Z99=abs:1"], "a known claim id"),
    (["--claim-tol", "A01=abs"], "expected abs:X"),
])
def test_cli_compare_bad_options(capsys, args, message) -> None:
    assert cli_main(["compare", str(BASELINE), str(NEW), *args]) == 2
    assert message in capsys.readouterr().err


# -- the gated pytest run ----------------------------------------------------------------------------------------

# B05 is REPRODUCED unless PLANTED_B05=contradicted; B09 is CONTRADICTED in every run.
PLANTED = """
import os
from benchmark.suite import claim_tests, criterion
from benchmark.verdict import contradicted, reproduced

@criterion("B05")
def b05(claim, card, ctx):
    if os.environ.get("PLANTED_B05") == "contradicted":
        return contradicted("deep/shallow ratio 0.8", "no sinks in the deeper half", value=0.8, n=16)
    return reproduced("deep/shallow ratio 3.1", value=3.1, ci=(2.0, 4.0), n=16)

@criterion("B09")
def b09(claim, card, ctx):
    return contradicted("norm ratio 1.4", "sink keys have 40% larger norms", value=1.4, n=16)

globals().update(claim_tests("spiral"))
"""


@pytest.fixture
def gated(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    pytester.makepyfile(test_planted=PLANTED)
    monkeypatch.delenv("PLANTED_B05", raising=False)
    return pytester


def run_gated(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "benchmark.plugin", "-p", "no:cacheprovider",
                                         "--model", "organism_rope", "-k", "B05 or B09", *args)


def test_gated_run_fails_on_a_regression_only(gated: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    first = run_gated(gated)
    assert first.ret == pytest.ExitCode.TESTS_FAILED                 # B09 is CONTRADICTED
    baseline = (gated.path / "reports" / "latest").resolve() / "results.json"
    assert load_results(baseline)["provenance"]["models"]["organism_rope"]["prompts"]["count"] == 600

    # the same verdicts: B09 is CONTRADICTED in both runs, so the gate passes
    same = run_gated(gated, "--baseline", str(baseline))
    assert same.ret == pytest.ExitCode.OK
    same.stdout.fnmatch_lines(["*baseline *: no failing change (--fail-on regression)*",
                               "*drift: *DRIFT.md (exit status 0, set by the baseline gate)*"])
    run_dir = (gated.path / "reports" / "latest").resolve()
    doc = load_results(run_dir / "results.json")
    assert doc["run"]["exit_status"] == 0 and doc["drift"]["gate"]["failed"] is False
    assert "## Drift against the baseline" in (run_dir / "REPORT.md").read_text()
    assert json.loads((run_dir / "drift.json").read_text()) == doc["drift"]

    monkeypatch.setenv("PLANTED_B05", "contradicted")
    regressed = run_gated(gated, "--baseline", str(baseline))
    assert regressed.ret == pytest.ExitCode.TESTS_FAILED
    regressed.stdout.fnmatch_lines(["*1 failing change(s)*B05[[]organism_rope[]]: REPRODUCED -> CONTRADICTED*"])
    report = ((gated.path / "reports" / "latest") / "REPORT.md").read_text()
    assert "| B05     | organism_rope | regression" in report


@pytest.mark.parametrize("args, message", [
    (["--seed", "3"], "was run with other settings: settings.seed 0 (baseline) vs 3"),
    (["--baseline-fail-on", "any"], "no results.json at"),
])
def test_gated_run_usage_errors(gated: pytest.Pytester, tmp_path: Path, args, message) -> None:
    baseline = tmp_path / "results.json"
    if "--seed" in args:
        doc = json.loads(NEW.read_text())
        doc["settings"]["models"] = ["organism_rope"]
        baseline.write_text(json.dumps(doc))
    res = run_gated(gated, "--baseline", str(baseline), *args)
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    assert message in res.stderr.str()
    assert not (gated.path / "reports").exists()


def test_checkpoint_copy_of_an_organism_runs_under_its_card(gated: pytest.Pytester) -> None:
    """A copy or fine-tune of an organism (its model_index.json and training.json) is verified under the
    organism's card, so a perturbed organism can be compared with the organism."""
    from benchmark.paths import REPO_ROOT

    tmp_path = gated.path          # checkpoint paths outside it would move pytest's rootdir (and the reports)
    copy_dir = tmp_path / "rope-copy"
    copy_dir.mkdir()
    for name in ("model_index.json", "training.json"):
        (copy_dir / name).write_bytes((REPO_ROOT / "models" / "organism" / "rope" / name).read_bytes())
    res = gated.runpytest_subprocess("-p", "benchmark.plugin", "-p", "no:cacheprovider", "-k", "B05",
                                     "--checkpoint", str(copy_dir))
    assert res.ret == pytest.ExitCode.OK
    doc = load_results(gated.path / "reports" / "latest" / "results.json")
    assert {r["model"] for r in doc["results"]} == {"organism_rope"}
    weights = doc["provenance"]["models"]["organism_rope"]["weights"]
    assert weights["path"] == str(copy_dir.resolve()) and len(weights["content_sha256"]) == 64
    assert doc["provenance"]["models"]["organism_rope"]["generation"]["height"] == 32      # the organism card's
    flux_dir = tmp_path / "flux"
    flux_dir.mkdir()
    (flux_dir / "model_index.json").write_text(json.dumps({"_class_name": "FluxPipeline"}))
    res = gated.runpytest_subprocess("-p", "benchmark.plugin", "--model", "organism_rope", "--checkpoint", str(flux_dir))
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    assert "not a copy or fine-tune of organism_rope" in res.stderr.str()
