"""The SinkBench pytest plugin: options, markers, the run context fixture, verdict recording and the report.

Registered as a pytest11 entry point (name "benchmark.plugin") and loaded by the repository's conftest.py.
It is inert for test sessions that collect no claim tests (no report is written then).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .cards import CardError, load_cards
from .context import DTYPES, RunContext, RunSettings, SettingsError
from .verdict import ClaimOutcome, Verdict, skipped

MODEL_MARKERS = ("sd3", "sdxl", "flux", "pixart", "qwen_image", "z_image", "wan", "ltx",
                 "llada", "dream", "mmada", "llama")
PAPER_MARKERS = {"causal": "paper A, Wu & Summa (claims A01-A31)",
                 "spiral": "paper B, Yang et al. (claims B01-B17)",
                 "dlm": "paper C, Rulli et al. (claims C01-C07)"}


@dataclass
class _State:
    settings: RunSettings
    config: pytest.Config
    ctx: RunContext | None = None
    recorder: object | None = None
    deselected: list[tuple[str, str]] = field(default_factory=list)
    report_path: Path | None = None
    baseline: dict | None = None          # --baseline's results document
    drift: dict | None = None             # the comparison with it (benchmark.compare)
    gate_exit: int | None = None          # the run's exit status as the baseline gate set it


_STATE = pytest.StashKey[_State]()


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("sinkbench", "SinkBench claim verification")
    g.addoption("--gpu", action="store_true", help="run the claims on real checkpoints (needs CUDA and their weights)")
    g.addoption("--model", action="append", metavar="NAME",
                help="run only these models (repeatable or comma-separated); `sinkbench models` lists them")
    g.addoption("--checkpoint", metavar="PATH_OR_HUB_ID",
                help="verify this checkpoint (a local diffusers directory or a hub id) instead of the card's")
    g.addoption("--n-prompts", type=int, metavar="N", help="prompts per claim (default: each claim's default N)")
    g.addoption("--prompts", metavar="SPEC", help="prompt set instead of the claim's: geneval, geneval:N (tag-stratified), FILE or FILE:N")
    g.addoption("--steps", type=int, metavar="N", help="denoising steps (default: the model card's)")
    g.addoption("--seed", type=int, default=0, metavar="S", help="base seed; prompt i uses seed S + i (default 0)")
    g.addoption("--dtype", choices=DTYPES, help="model dtype (default: the model card's)")
    g.addoption("--device", default="auto", help="auto, cpu, cuda or cuda:N; --device cpu runs real-checkpoint "
                                                  "tests on the CPU (for tiny checkpoints)")
    g.addoption("--cache-dir", default=".cache/sinkbench", metavar="DIR", help="generation and metric cache")
    g.addoption("--report-dir", default="reports", metavar="DIR", help="where reports/<run-id>/ is written")
    g.addoption("--paper-settings", action="store_true", help="use each paper's exact settings (steps, N, resolution)")
    g.addoption("--strict-verdicts", action="store_true", help="fail INCONCLUSIVE claims instead of skipping them")
    g.addoption("--trust-remote-code", action="store_true",
                help="allow checkpoints that load only through their own modeling code (LLaDA, MMaDA, Dream); "
                     "off by default, recorded in the report")
    g.addoption("--allow-code-execution", action="store_true",
                help="run model-written code (HumanEval's programs, paper C) in a sandboxed child process; off by "
                     "default (or SINKBENCH_ALLOW_CODE_EXECUTION=1), recorded in the report")
    g.addoption("--baseline", metavar="RESULTS", help="gate on a baseline run (its results.json or report directory): "
                "the exit status says whether a claim regressed, REPORT.md gets a drift section (docs/CHECKPOINT_CI.md)")
    g.addoption("--baseline-fail-on", choices=["regression", "worse", "any"], default="regression",
                help="with --baseline, what fails the run (as `sinkbench compare --fail-on`; default regression)")
    g.addoption("--baseline-allow-incomparable", action="store_true",
                help="with --baseline, run and compare even when the baseline's settings differ")


def _models_option(values: list[str] | None) -> tuple[str, ...] | None:
    if not values:
        return None
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    return tuple(dict.fromkeys(names)) or None


def _resolve_checkpoint(checkpoint: str, models: tuple[str, ...] | None, cards) -> tuple[str, ...]:
    """Which model family a --checkpoint belongs to."""
    from .cards import organism_card_for
    from .environment import family_of_directory

    if models:
        if len(models) != 1:
            raise SettingsError("--checkpoint verifies one checkpoint: give at most one --model")
        card = cards[models[0]]
        if card.organism and organism_card_for(checkpoint, cards) is not card:
            raise SettingsError(f"--checkpoint {checkpoint}: not a copy or fine-tune of {card.name} (a directory "
                                "with its model_index.json and the training.json of models/organism/train.py)")
        return models
    if Path(checkpoint).exists():
        if not Path(checkpoint).is_dir():
            raise SettingsError(f"--checkpoint {checkpoint}: expected a directory (a diffusers pipeline) or a hub id")
        organism = organism_card_for(checkpoint, cards)
        if organism is not None:        # a copy or fine-tune of an organism runs under the organism's card
            return (organism.name,)
        from .lm.adapter import lm_card_of_directory

        language_model = lm_card_of_directory(checkpoint, cards)
        if language_model is not None:     # a transformers directory (config.json) of a paper-C family
            return (language_model,)
        classes = {c.name: c.pipeline_class for c in cards.values() if not c.organism}
        try:
            return (family_of_directory(checkpoint, classes),)
        except ValueError as exc:
            raise SettingsError(f"--checkpoint: {exc}") from exc
    for card in cards.values():
        if card.hub_id == checkpoint:
            return (card.name,)
    if "/" not in checkpoint or checkpoint.startswith((".", "/")):
        raise SettingsError(f"--checkpoint {checkpoint}: no such directory (and not a hub id of the form owner/name)")
    raise SettingsError(f"--checkpoint {checkpoint}: a hub id SinkBench has no card for; add --model NAME "
                        "to say which family it is")


def _settings(config: pytest.Config) -> RunSettings:
    from .lm_tasks.sandbox import code_execution_opt_in

    opt = config.option
    try:
        cards = load_cards()
    except CardError as exc:
        raise pytest.UsageError(f"sinkbench: {exc}") from exc
    models = _models_option(opt.model)
    try:
        if models:
            unknown = [m for m in models if m not in cards]
            if unknown:
                raise SettingsError(f"--model: unknown model(s) {', '.join(unknown)}; known: {', '.join(cards)}")
        if opt.checkpoint:
            models = _resolve_checkpoint(opt.checkpoint, models, cards)
        root = config.rootpath
        return RunSettings(
            gpu=opt.gpu, models=models, checkpoint=opt.checkpoint, n_prompts=opt.n_prompts, prompts=opt.prompts,
            steps=opt.steps, seed=opt.seed, dtype=opt.dtype, device=opt.device,
            cache_dir=str(root / opt.cache_dir), report_dir=str(root / opt.report_dir),
            paper_settings=opt.paper_settings, strict_verdicts=opt.strict_verdicts,
            trust_remote_code=opt.trust_remote_code,
            # the effective opt-in (flag or environment variable), so the report says what ran
            allow_code_execution=code_execution_opt_in(opt.allow_code_execution))
    except SettingsError as exc:
        raise pytest.UsageError(f"sinkbench: {exc}") from exc


def pytest_configure(config: pytest.Config) -> None:
    for m in MODEL_MARKERS:
        config.addinivalue_line("markers", f"{m}: claim tests on the {m} model family")
    config.addinivalue_line("markers", "organism: claim tests on SinkBench's trained model organisms (CPU)")
    for m, what in PAPER_MARKERS.items():
        config.addinivalue_line("markers", f"{m}: {what}")
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU and real weights; skipped unless --gpu (or --device cpu)")
    config.addinivalue_line("markers", "slow: long-running test")
    config.addinivalue_line("markers", "claim(id): a claim-verification test (added by benchmark.suite)")
    state = _State(settings=_settings(config), config=config)
    state.baseline = _load_baseline(config, state.settings)
    config.stash[_STATE] = state


def _load_baseline(config: pytest.Config, settings: RunSettings) -> dict | None:
    """--baseline's document; a baseline run with other measurement settings is a usage error before anything
    runs (prompt sets, weights and generation settings are compared at the end)."""
    path = config.option.baseline
    if not path:
        return None
    from .compare import settings_differences
    from .results import ResultsError, load_results

    try:
        doc = load_results(path)
    except (FileNotFoundError, ResultsError) as exc:
        raise pytest.UsageError(f"sinkbench: --baseline: {exc}") from exc
    incomparable, _ = settings_differences(doc["settings"], settings.to_dict(), prompt_sets_checked=True)
    if incomparable and not config.option.baseline_allow_incomparable:
        diffs = "; ".join(f"{i['what']} {i['baseline']} (baseline) vs {i['new']}" for i in incomparable)
        raise pytest.UsageError(f"sinkbench: --baseline {path} was run with other settings: {diffs}. Run with "
                                "the baseline's settings, or add --baseline-allow-incomparable")
    return doc


def _context(state: _State) -> RunContext:
    if state.ctx is None:
        from .environment import checkpoint_identity
        from .suite import catalogue

        ident = checkpoint_identity(state.settings.checkpoint) if state.settings.checkpoint else None
        state.ctx = RunContext(settings=state.settings, catalogue=catalogue(), checkpoint_identity=ident)
    return state.ctx


def _claim_of(item: pytest.Item) -> tuple[str, str] | None:
    marker = item.get_closest_marker("claim")
    if marker is None or not hasattr(item, "callspec"):
        return None
    return marker.args[0], item.callspec.params["model"]


@pytest.fixture(scope="session")
def sinkbench(request: pytest.FixtureRequest) -> RunContext:
    """The run context every claim test receives."""
    return _context(request.config.stash[_STATE])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    state = config.stash[_STATE]
    if not state.settings.models:
        return
    keep, drop = [], []
    for item in items:
        claim = _claim_of(item)
        (drop if claim and claim[1] not in state.settings.models else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_deselected(items: list[pytest.Item]) -> None:
    for item in items:
        claim = _claim_of(item)
        if claim:
            item.config.stash[_STATE].deselected.append(claim)


def pytest_collection_finish(session: pytest.Session) -> None:
    config = session.config
    state = config.stash[_STATE]
    planned = [(*_claim_of(i), i.nodeid) for i in session.items if _claim_of(i)]
    if not planned or config.option.collectonly:
        return
    from .results import RunRecorder

    scope = state.settings.models or sorted({m for _, m, _ in planned})
    deselected = [(c, m) for c, m in state.deselected if m in scope]
    state.recorder = RunRecorder(_context(state), Path(state.settings.report_dir), command=["pytest", *config.invocation_params.args],
                                 models_in_scope=scope, planned=planned, deselected=deselected)


def pytest_runtest_setup(item: pytest.Item) -> None:
    claim = _claim_of(item)
    if claim is None:
        return
    from .suite import availability

    ctx = _context(item.config.stash[_STATE])
    reason = availability(ctx.cards[claim[1]], ctx)
    if reason:
        pytest.skip(reason)


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return text.removeprefix("Skipped: ")


def _error_reason(call: pytest.CallInfo, phase: str) -> str:
    exc = call.excinfo
    return f"{phase} raised {exc.typename}: {exc.value}" if exc else f"{phase} failed"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    claim = _claim_of(item)
    state = item.config.stash[_STATE]
    if claim is None:
        return report
    outcome: ClaimOutcome | None = None
    if report.when == "setup" and report.skipped:
        outcome = skipped(_skip_reason(report))
    elif report.when == "setup" and report.failed:
        outcome = ClaimOutcome(Verdict.ERROR, _error_reason(call, "setup"))
    elif report.when == "call":
        from .suite import OUTCOME_KEY

        outcome = item.stash.get(OUTCOME_KEY, None)
        if outcome is None and report.failed:
            outcome = ClaimOutcome(Verdict.ERROR, _error_reason(call, "the claim test"))
        elif outcome is None and report.skipped:
            outcome = skipped(_skip_reason(report))
        elif outcome is None:
            # Only a REPRODUCED verdict may pass: a test that ends without one is a bug.
            report.outcome = "failed"
            report.longrepr = f"{item.nodeid} ended without a verdict"
            outcome = ClaimOutcome(Verdict.ERROR, "the claim test ended without a verdict")
    elif report.when == "teardown" and report.failed:
        outcome = ClaimOutcome(Verdict.ERROR, _error_reason(call, "teardown"))
    if outcome is not None:
        report.sinkbench_verdict = outcome.verdict.value
        if state.recorder is not None:
            state.recorder.record(claim_id=claim[0], model=claim[1], nodeid=item.nodeid, outcome=outcome,
                                  duration_s=report.duration)
    return report


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config):
    verdict = getattr(report, "sinkbench_verdict", None)
    if verdict is None or verdict == Verdict.ERROR.value:
        return None
    if verdict == Verdict.INCONCLUSIVE.value and report.skipped:
        return "inconclusive", "I", "INCONCLUSIVE"
    category = {"REPRODUCED": "passed", "CONTRADICTED": "failed", "SKIPPED": "skipped"}.get(verdict)
    if category != report.outcome:
        return None
    return category, {"passed": ".", "failed": "F", "skipped": "s"}[category], verdict


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash.get(_STATE, None)
    if state is None or state.recorder is None:
        return
    status = "interrupted" if exitstatus == pytest.ExitCode.INTERRUPTED else "complete"
    if state.baseline is not None:
        exitstatus = _gate(session, state, status, exitstatus)
    state.report_path = state.recorder.finish(status=status, exit_status=int(exitstatus))


def _gate(session: pytest.Session, state: _State, status: str, exitstatus: int) -> int:
    """Compare the run with --baseline; the run's exit status becomes the gate's (1 on a failing change or an
    incomparable baseline, else 0), so verdicts the baseline shares (e.g. CONTRADICTED in both) do not fail it.
    Interrupted runs and pytest's own errors keep their status."""
    from .compare import compare, exit_code, render_markdown
    from .results import atomic_write_text, dump_json

    opt, recorder = session.config.option, state.recorder
    doc = recorder.document(status=status, exit_status=None, finished=None)
    drift = compare(state.baseline, doc, baseline_label=str(opt.baseline),
                    new_label=str(recorder.run_dir / "results.json"), fail_on=opt.baseline_fail_on)
    recorder.drift = state.drift = drift
    atomic_write_text(recorder.run_dir / "drift.json", dump_json(drift))
    atomic_write_text(recorder.run_dir / "DRIFT.md", render_markdown(drift))
    if exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        return exitstatus
    failed = exit_code(drift, allow_incomparable=opt.baseline_allow_incomparable) != 0
    session.exitstatus = pytest.ExitCode.TESTS_FAILED if failed else pytest.ExitCode.OK
    state.gate_exit = int(session.exitstatus)
    return session.exitstatus


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is None or state.report_path is None:
        return
    summary = state.recorder.document(status="", exit_status=None, finished=None)["summary"]["all"]
    counts = ", ".join(f"{n} {v}" for v, n in summary.items() if n)
    terminalreporter.write_sep("=", "SinkBench")
    terminalreporter.write_line(f"verdicts: {counts or 'none'}")
    terminalreporter.write_line(f"report: {state.report_path}")
    latest = Path(state.settings.report_dir) / "latest" / "REPORT.md"
    terminalreporter.write_line(f"latest: {latest}")
    if state.drift is not None:
        from .compare import headline

        terminalreporter.write_line(f"baseline {config.option.baseline}: {headline(state.drift)}")
        gate = "" if state.gate_exit is None else f" (exit status {state.gate_exit}, set by the baseline gate)"
        terminalreporter.write_line(f"drift: {state.report_path.parent / 'DRIFT.md'}{gate}")
