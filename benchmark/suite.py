"""Turns claim specs into pytest tests: one test per (claim, applicable model), ids like `test_A09[sd3]`.

A suite file (suites/test_<paper>.py) holds the criteria of its paper's claims, registered with
`@criterion("A09")`, and ends with `globals().update(claim_tests("causal"))`. A claim without a
registered criterion, or whose model or measurements are not available, is SKIPPED with the reason;
a claim test can only pass through a REPRODUCED verdict.
"""
from __future__ import annotations

import functools
from typing import Callable

import pytest

from .cards import ModelCard
from .claims import INTERVENTIONS, MEASUREMENTS, METRICS, Catalogue, Claim, load_catalogue
from .context import RunContext
from .verdict import ClaimOutcome, Verdict, skipped

Criterion = Callable[[Claim, ModelCard, RunContext], ClaimOutcome]
CRITERIA: dict[str, Criterion] = {}
OUTCOME_KEY = pytest.StashKey[ClaimOutcome]()


def criterion(claim_id: str) -> Callable[[Criterion], Criterion]:
    """Register the function that measures and judges a claim."""

    def register(fn: Criterion) -> Criterion:
        if claim_id in CRITERIA and CRITERIA[claim_id] is not fn:
            raise ValueError(f"claim {claim_id} already has a criterion: {CRITERIA[claim_id].__qualname__}")
        CRITERIA[claim_id] = fn
        return fn

    return register


@functools.lru_cache(maxsize=1)
def catalogue() -> Catalogue:
    """The claim catalogue, loaded (and validated) once per process."""
    return load_catalogue()


def pending_reason(claim: Claim) -> str:
    """Why a claim has no measurement yet, naming the components it waits for."""
    providers: dict[str, list[str]] = {}
    for need in claim.needs():
        provider = MEASUREMENTS.get(need) or INTERVENTIONS.get(need) or METRICS[need]
        providers.setdefault(provider, []).append(need)
    parts = [f"{', '.join(needs)} from {provider}" for provider, needs in providers.items()]
    return f"not implemented yet: {claim.id} needs " + "; ".join(parts)


def availability(card: ModelCard, ctx: RunContext) -> str | None:
    """None when the model can be run in this session, else the SKIPPED reason with the how-to."""
    if card.organism and is_language_model(card):
        weights = card.weights_path
        if weights is None or not (weights / "config.json").is_file():
            return (f"no trained weights for {card.name} at {card.weights}/ (a transformers model directory with "
                    "config.json; trained by `python models/organism/train_lm.py`, issue 10)")
        return None
    if card.organism:
        weights = card.weights_path
        if weights is None or not (weights / "model_index.json").is_file():
            return (f"no trained weights for {card.name} at {card.weights}/ (a diffusers pipeline directory with "
                    "model_index.json; trained by `python models/organism/train.py`, issue 7)")
        return None
    if not ctx.settings.runs_real_models:
        return how_to_run_on_gpu(card)
    if "remote_code" in card.traits and not ctx.settings.trust_remote_code:
        from .lm.adapter import remote_code_reason

        return remote_code_reason(card.name, ctx.settings.checkpoint or card.hub_id)
    return checkpoint_missing(card, ctx)


def is_language_model(card: ModelCard) -> bool:
    return card.kind in ("dlm", "arm")


def checkpoint_missing(card: ModelCard, ctx: RunContext) -> str | None:
    """The SKIPPED reason when the card's (or --checkpoint's) weights are not on this machine."""
    problem = _checkpoint_problem(ctx.settings.checkpoint or card.hub_id, is_language_model(card))
    return f"weights not available for {card.name}: {problem}" if problem else None


@functools.lru_cache(maxsize=None)
def _checkpoint_problem(source: str, language_model: bool = False) -> str | None:
    """Resolved once per process: a hub lookup may try the network."""
    if language_model:       # a transformers directory (config.json), not a diffusers pipeline
        from .lm.adapter import LMCheckpointNotFound, resolve_lm_checkpoint

        try:
            resolve_lm_checkpoint(source)
        except LMCheckpointNotFound as exc:
            return str(exc)
        return None
    from .adapters import CheckpointNotFound, resolve_checkpoint

    try:
        resolve_checkpoint(source)
    except CheckpointNotFound as exc:
        return str(exc)
    return None


def how_to_run_on_gpu(card: ModelCard) -> str:
    flags = " --trust-remote-code" if "remote_code" in card.traits else ""
    why = (" (it loads through the modeling code in its checkpoint, which runs only with --trust-remote-code)"
           if flags else "")
    return (f"needs a GPU and the weights of {card.hub_id}: run `pytest suites/ -m {card.name} --gpu{flags}` "
            f"on a CUDA machine with the weights in the Hugging Face cache (or add --checkpoint DIR){why}")


def evaluate(claim: Claim, card: ModelCard, ctx: RunContext) -> ClaimOutcome:
    """Measure and judge one claim on one model, or say why it cannot be done here."""
    reason = availability(card, ctx)
    if reason:
        return skipped(reason)
    fn = CRITERIA.get(claim.id)
    if fn is None:
        return skipped(pending_reason(claim))
    from .metrics import MetricUnavailable
    from .prompts import PromptError

    try:
        outcome = fn(claim, card, ctx)
    except MetricUnavailable as exc:    # a metric's weights or side environment are missing: the how-to
        return skipped(f"metric unavailable: {exc}")
    except PromptError as exc:          # the prompt set is not on this machine (e.g. GenEval offline): the how-to
        return skipped(f"prompts unavailable: {exc}")
    if not isinstance(outcome, ClaimOutcome):
        raise TypeError(f"the criterion of {claim.id} returned {type(outcome).__name__}, not a ClaimOutcome")
    return outcome


def conclude(outcome: ClaimOutcome, request: pytest.FixtureRequest, strict: bool) -> None:
    """Hand the outcome to the plugin and end the test with the matching pytest outcome."""
    request.node.stash[OUTCOME_KEY] = outcome
    v = outcome.verdict
    if v is Verdict.REPRODUCED:
        return
    detail = "; ".join(x for x in (outcome.measured, outcome.reason) if x)
    if v in (Verdict.CONTRADICTED, Verdict.ERROR) or (v is Verdict.INCONCLUSIVE and strict):
        pytest.fail(f"{v.value}: {detail}", pytrace=False)
    pytest.skip(f"{v.value}: {detail}" if v is Verdict.INCONCLUSIVE else outcome.reason)


def _model_param(claim: Claim, card: ModelCard):
    marks = [getattr(pytest.mark, card.marker)]
    if card.requires_gpu:
        marks.append(pytest.mark.gpu)
    return pytest.param(card.name, id=card.name, marks=marks)


def _make_test(claim: Claim, cards: list[ModelCard]):
    @pytest.mark.parametrize("model", [_model_param(claim, c) for c in cards])
    def test(model: str, sinkbench: RunContext, request: pytest.FixtureRequest) -> None:
        card = sinkbench.cards[model]
        conclude(evaluate(claim, card, sinkbench), request, sinkbench.settings.strict_verdicts)

    test.__name__ = test.__qualname__ = f"test_{claim.id}"
    test.__doc__ = f"{claim.id} ({claim.source}): {claim.statement}"
    test = getattr(pytest.mark, claim.paper.key)(test)
    return pytest.mark.claim(claim.id)(test)


def claim_tests(paper: str) -> dict[str, Callable]:
    """The test functions of one paper's claims, to be put in a suite module's namespace."""
    cat = catalogue()
    return {f"test_{c.id}": _make_test(c, cat.applicable_models(c)) for c in cat.for_paper(paper)}
