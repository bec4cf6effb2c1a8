"""End-to-end behaviour of the pytest plugin, run in subprocesses on small planted suites."""
import json
import textwrap
from pathlib import Path

import pytest

from benchmark.results import load_results

# A suite with planted criteria: B05 reproduced, B09 contradicted, B12 inconclusive, B07 crashes,
# B08 returns nothing. Real-model tests run on the CPU with --device cpu (no model is loaded here).
PLANTED = """
from benchmark.suite import claim_tests, criterion
from benchmark.verdict import contradicted, inconclusive, reproduced

@criterion("B05")
def b05(claim, card, ctx):
    return reproduced("deep/shallow ratio 3.1", value=3.1, ci=(2.0, 4.0), n=16, samples={"ratio": [3.0, 3.2]})

@criterion("B09")
def b09(claim, card, ctx):
    return contradicted("norm ratio 1.4", "sink keys have 40% larger norms", value=1.4, n=16)

@criterion("B12")
def b12(claim, card, ctx):
    return inconclusive("value-norm ratio 0.6", "CI [0.2, 1.1] straddles the 0.5 threshold", n=4)

@criterion("B07")
def b07(claim, card, ctx):
    raise RuntimeError("probe exploded")

@criterion("B08")
def b08(claim, card, ctx):
    return None

@criterion("B17")
def b17(claim, card, ctx):
    from benchmark.metrics import load_metric
    load_metric("aesthetics")          # no weights on this machine
    raise AssertionError("unreachable")

globals().update(claim_tests("spiral"))
"""


def fake_hub_cache(root: Path, hub_id: str, class_name: str) -> Path:
    """A Hugging Face cache holding only model_index.json of `hub_id` (enough to resolve it offline)."""
    repo = root / f"models--{hub_id.replace('/', '--')}"
    revision = "0" * 40
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (snapshot / "model_index.json").write_text(json.dumps({"_class_name": class_name}))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    return root


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    pytester.makepyfile(test_planted=PLANTED)
    # The planted criteria load no model, but a real-model test first checks that the weights are here.
    cache = fake_hub_cache(pytester.path / "hub", "black-forest-labs/FLUX.1-dev", "FluxPipeline")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(pytester.path / "torch"))
    monkeypatch.delenv("SINKBENCH_AESTHETICS_WEIGHTS", raising=False)
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "benchmark.plugin", "-p", "no:cacheprovider", *args)


def results_of(pytester: pytest.Pytester) -> dict:
    return load_results(pytester.path / "reports" / "latest" / "results.json")


def by_claim(doc: dict) -> dict:
    return {(r["claim"], r["model"]): r for r in doc["results"]}


def test_verdicts_map_to_pytest_outcomes_and_report(suite: pytest.Pytester) -> None:
    res = run(suite, "--model", "flux", "--device", "cpu", "-v", "-rs")
    # CONTRADICTED and the two ERRORs fail the run; INCONCLUSIVE and SKIPPED do not pass.
    assert res.ret == pytest.ExitCode.TESTS_FAILED
    res.stdout.fnmatch_lines(["*test_B05?flux? REPRODUCED*", "*test_B09?flux? CONTRADICTED*",
                              "*test_B12?flux? INCONCLUSIVE*", "*verdicts: *", "*report: *REPORT.md"])
    outcomes = res.parseoutcomes()
    assert outcomes["passed"] == 1 and outcomes["failed"] == 3 and outcomes["inconclusive"] == 1
    doc = results_of(suite)
    rows = by_claim(doc)
    assert rows[("B05", "flux")]["verdict"] == "REPRODUCED"
    assert rows[("B05", "flux")]["ci"] == [2.0, 4.0]
    assert rows[("B09", "flux")]["verdict"] == "CONTRADICTED"
    assert rows[("B12", "flux")]["verdict"] == "INCONCLUSIVE"
    assert rows[("B07", "flux")]["verdict"] == "ERROR"
    assert "probe exploded" in rows[("B07", "flux")]["reason"]
    assert rows[("B08", "flux")]["verdict"] == "ERROR"
    assert rows[("B01", "flux")]["verdict"] == "SKIPPED"
    assert rows[("B01", "flux")]["reason"].startswith("not implemented yet: B01 needs")
    # a metric without weights: SKIPPED with the file, where to get it and the variable to set
    assert rows[("B17", "flux")]["verdict"] == "SKIPPED"
    assert "sac+logos+ava1-l14-linearMSE.pth" in rows[("B17", "flux")]["reason"]
    assert "SINKBENCH_AESTHETICS_WEIGHTS" in rows[("B17", "flux")]["reason"]
    # per-sample numbers are saved next to the report
    samples = suite.path / "reports" / "latest" / rows[("B05", "flux")]["samples_path"]
    assert json.loads(samples.read_text()) == {"ratio": [3.0, 3.2]}
    assert doc["run"]["status"] == "complete"
    assert {m for _, m in rows} == {"flux"}
    # B14 needs an absolute position embedding: listed as not applicable to flux, with why
    na = {(x["claim"], x["model"]): x["why"] for x in doc["not_applicable"]}
    assert na[("B14", "flux")] == ["has no absolute position embedding"]
    report = (suite.path / "reports" / "latest" / "REPORT.md").read_text()
    for claim_id in ("B01", "B05", "B09", "B12", "B17"):
        assert f"| {claim_id} " in report
    assert (suite.path / "reports" / "latest" / "figures" / "verdicts.png").is_file()


def test_strict_verdicts_fails_inconclusive(suite: pytest.Pytester) -> None:
    res = run(suite, "--model", "flux", "--device", "cpu", "-k", "B12", "--strict-verdicts")
    assert res.ret == pytest.ExitCode.TESTS_FAILED
    assert by_claim(results_of(suite))[("B12", "flux")]["verdict"] == "INCONCLUSIVE"


def test_gpu_tests_skip_with_how_to_without_gpu(suite: pytest.Pytester) -> None:
    res = run(suite, "-m", "flux", "-rs")
    assert res.ret == pytest.ExitCode.OK
    res.stdout.fnmatch_lines(["*needs a GPU and the weights of black-forest-labs/FLUX.1-dev: run "
                              "`pytest suites/ -m flux --gpu`*"])
    doc = results_of(suite)
    assert {r["model"] for r in doc["results"]} == {"flux"}
    assert all(r["verdict"] == "SKIPPED" for r in doc["results"])
    assert "passed" not in res.parseoutcomes()


def test_nothing_passes_without_a_measurement(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_empty="from benchmark.suite import claim_tests\nglobals().update(claim_tests('dlm'))\n")
    res = run(pytester, "--device", "cpu")
    assert res.ret == pytest.ExitCode.OK
    outcomes = res.parseoutcomes()
    assert "passed" not in outcomes and outcomes["skipped"] > 0


def test_interrupted_run_keeps_what_was_measured(suite: pytest.Pytester) -> None:
    pytester = suite
    pytester.makepyfile(test_interrupt="""
from benchmark.suite import claim_tests, criterion
from benchmark.verdict import reproduced

@criterion("B01")
def b01(claim, card, ctx):
    return reproduced("peak ratio 150x", value=150.0)

@criterion("B02")
def b02(claim, card, ctx):
    raise KeyboardInterrupt

globals().update(claim_tests("spiral"))
""")
    res = run(pytester, "test_interrupt.py", "--model", "flux", "--device", "cpu", "-p", "no:randomly")
    assert res.ret == pytest.ExitCode.INTERRUPTED
    doc = results_of(pytester)
    assert doc["run"]["status"] == "interrupted"
    assert by_claim(doc)[("B01", "flux")]["verdict"] == "REPRODUCED"
    assert any(x["why"].startswith("not run") for x in doc["not_run"])
    assert "interrupted" in (pytester.path / "reports" / "latest" / "REPORT.md").read_text()


def test_collect_only_writes_no_report(suite: pytest.Pytester) -> None:
    res = run(suite, "--collect-only", "-q")
    assert res.ret == pytest.ExitCode.OK
    res.stdout.fnmatch_lines(["*test_B01[[]flux[]]*", "*test_B14[[]pixart[]]*"])
    assert not (suite.path / "reports").exists()


def test_deselected_tests_are_listed_as_not_run(suite: pytest.Pytester) -> None:
    run(suite, "--model", "flux", "-k", "B05 or B06")
    doc = results_of(suite)
    assert {r["claim"] for r in doc["results"]} == {"B05", "B06"}
    not_run = {(x["claim"], x["model"]) for x in doc["not_run"]}
    assert ("B01", "flux") in not_run and ("B05", "flux") not in not_run


@pytest.mark.parametrize("args, message", [
    (["--model", "nosuchmodel"], "--model: unknown model(s) nosuchmodel"),
    (["--prompts", "missing.txt"], "--prompts 'missing.txt': no such file"),
    (["--n-prompts", "0"], "--n-prompts must be >= 1"),
    (["--device", "tpu"], "--device must be auto, cpu, cuda or cuda:N"),
    (["--checkpoint", "./no/such/dir"], "no such directory"),
    (["--checkpoint", "someone/unknown-model"], "add --model NAME"),
    (["--paper-settings", "--steps", "4"], "--paper-settings uses each paper's steps"),
])
def test_bad_options_are_usage_errors(suite: pytest.Pytester, args: list[str], message: str) -> None:
    res = run(suite, *args)
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    assert message in res.stderr.str()


def test_checkpoint_directory_family_from_model_index(suite: pytest.Pytester) -> None:
    ckpt = suite.path / "my-flux"
    ckpt.mkdir()
    (ckpt / "model_index.json").write_text(json.dumps({"_class_name": "FluxPipeline"}))
    (ckpt / "weights.bin").write_bytes(b"\0" * 10)
    run(suite, "--checkpoint", str(ckpt), "-k", "B05", "--device", "cpu")
    doc = results_of(suite)
    assert {r["model"] for r in doc["results"]} == {"flux"}
    ident = doc["models"]["flux"]["checkpoint"]
    assert ident["kind"] == "directory" and len(ident["identity_sha256"]) == 64
    (ckpt / "model_index.json").write_text(json.dumps({"_class_name": "NotAPipeline"}))
    res = run(suite, "--checkpoint", str(ckpt))
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    assert "'NotAPipeline' is not one SinkBench knows" in res.stderr.str()


def test_unknown_marker_is_an_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\naddopts = --strict-markers\n")
    pytester.makepyfile(test_typo="import pytest\n@pytest.mark.fluxx\ndef test_x():\n    pass\n")
    res = run(pytester)
    assert res.ret == pytest.ExitCode.INTERRUPTED  # collection error
    res.stdout.fnmatch_lines(["*'fluxx' not found in `markers` configuration option*"])


def test_malformed_spec_fails_collection_naming_file_claim_and_field(pytester: pytest.Pytester) -> None:
    from benchmark.paths import SPECS_DIR

    bad = pytester.mkdir("specs")
    for path in SPECS_DIR.glob("*.yaml"):
        text = path.read_text()
        if path.stem == "causal":
            text = text.replace("metrics: [clip_t]", "metrics: [clipt]", 1)
        (bad / path.name).write_text(text)
    pytester.makepyfile(test_bad=textwrap.dedent("""
        import functools
        from pathlib import Path
        import benchmark.suite as suite
        from benchmark.claims import load_catalogue
        suite.catalogue = functools.lru_cache(maxsize=1)(lambda: load_catalogue(Path("specs")))
        globals().update(suite.claim_tests("causal"))
    """))
    res = run(pytester)
    assert res.ret == pytest.ExitCode.INTERRUPTED
    out = res.stdout.str()
    assert "SpecError" in out and "causal.yaml: claim A09: field 'metrics.0': 'clipt' is not one of" in out
