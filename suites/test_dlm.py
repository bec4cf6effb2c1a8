"""Paper C: Rulli et al., "Attention Sinks in Diffusion Language Models" (claims C01-C07).

One test per (claim, applicable model). Every claim reads the same measurement (benchmark.lm.measure): the first
N problems of the model's task generated with the attention probe on (the organisms: the arithmetic task; real
checkpoints: GSM8K), unmasked, and for C03 also with the top-1/5/10 sinks of the previous step masked; with
--allow-code-execution, C03 on real checkpoints also measures HumanEval pass@1 the same way. Judged by
benchmark.criteria.dlm. A DLM's A_bar averages over every query, an ARM's is its last token's row (as the paper
does for Llama).
"""
import functools

import numpy as np

from benchmark import figures
from benchmark.criteria import dlm
from benchmark.criteria.common import wilson_ci
from benchmark.lm.sinks import DEFAULT_EPS
from benchmark.suite import catalogue, claim_tests, criterion
from benchmark.verdict import skipped

# the claims that read the unmasked measurement: it is taken once with the largest N among them
SHARED_MEASUREMENT = ("C01", "C02", "C03", "C04", "C05", "C06", "C07")


def _skips_when_unavailable(fn):
    """Missing task data, weights or the remote-code opt-in: a SKIPPED verdict with the how-to, not an ERROR."""
    @functools.wraps(fn)
    def run(claim, card, ctx):
        from benchmark.lm.adapter import LMCheckpointNotFound, RemoteCodeNotAllowed
        from benchmark.lm.measure import TaskUnavailable

        try:
            return fn(claim, card, ctx)
        except (TaskUnavailable, LMCheckpointNotFound, RemoteCodeNotAllowed) as exc:
            return skipped(str(exc))
    return run


def _n(ctx):
    return max(ctx.n_for(c.default_n, c.paper_n) for c in (catalogue()[c] for c in SHARED_MEASUREMENT))


def _runs(ctx, card, mask_k=0, task=None):
    from benchmark.lm.measure import measure

    return measure(ctx, card, _n(ctx), mask_k, task)


def _samples(runs, **more):
    return {"problem_id": runs.ids, "correct": runs.correct.tolist(), **more}


def _measured_in_run(ctx, mask_k=0):
    """{model: runs} of every language model this run has measured under a condition on its own task (for the
    comparisons; C03's HumanEval runs are left out)."""
    return {key[0]: runs for key, runs in ctx.extra.get("lm_runs", {}).items()
            if key[3] == mask_k and key[1] != "humaneval"}


def _kind_label(ctx, name):
    card = ctx.cards[name]
    return f"{name} ({'DLM, denoising' if card.kind == 'dlm' else 'ARM, decoding'} steps)"


@criterion("C01")
@_skips_when_unavailable
def c01(claim, card, ctx):
    runs = _runs(ctx, card)
    counts, keys = [], []
    for r in runs.records:
        c, _ = dlm.sink_counts(r.top_mass[:, :-1], r.total[:, :-1], r.n_keys, DEFAULT_EPS)
        counts.append(c)
        keys.append(r.n_keys)
    outcome = dlm.c01_sinks(counts, keys, eps=DEFAULT_EPS, seed=ctx.settings.seed, samples=_samples(runs))
    outcome.measured += f"; {runs.task.description}"
    return outcome


@criterion("C02")
@_skips_when_unavailable
def c02(claim, card, ctx):
    from benchmark.lm.measure import first_positions

    runs = _runs(ctx, card)
    outcome = dlm.c02_dynamics(first_positions(runs), card.kind, samples=_samples(runs))
    panels = {_kind_label(ctx, name): (first_positions(other), other.records[0].prompt_length)
              for name, other in _measured_in_run(ctx).items()}
    return figures.attach(outcome, ctx, f"C02_{card.name}.png", lambda path: figures.sink_positions(
        panels, path, "C02: top-1 sink position (attention averaged over layers) over steps"))


HUMANEVAL_NOT_RUN = ("HumanEval half not run: pass --allow-code-execution (runs model-written code in a "
                     "sandbox)")


def _c03_part(ctx, card, task_name, label):
    """One task's C03 verdict: unmasked vs top-1/5/10 masked, paired by problem, with the masked keys' mass."""
    from benchmark.lm.measure import MASK_KS

    base = _runs(ctx, card, task=task_name)
    masked = {k: _runs(ctx, card, k, task_name) for k in MASK_KS}
    if any(runs.ids != base.ids for runs in masked.values()):
        raise RuntimeError("the masked runs are not paired with the unmasked ones (different problems)")
    held = {k: float(np.nanmedian(np.exp(np.concatenate([r.log_mass_before.ravel() for r in runs.records]))))
            for k, runs in masked.items()}
    left = max(float(np.nanmax(np.concatenate([r.log_mass_after.ravel() for r in runs.records])))
               for runs in masked.values())
    outcome = dlm.c03_masking(base.correct, {k: r.correct for k, r in masked.items()}, card.kind,
                              seed=ctx.settings.seed, task=label, samples={"problem_id": base.ids})
    outcome.measured += ("; the masked keys held a median " + ", ".join(f"{v:.1%} (top-{k})" for k, v in held.items())
                         + f" of a layer's attention, after masking at most exp({left:.2g})")
    return outcome


@criterion("C03")
@_skips_when_unavailable
def c03(claim, card, ctx):
    from benchmark.criteria.effects import combine
    from benchmark.lm.measure import MASK_KS, task_for
    from benchmark.lm_tasks import code_execution_opt_in

    task = "arithmetic (the organism's exact-match counterpart of GSM8K)" if card.organism else "GSM8K"
    humaneval = not card.organism and code_execution_opt_in(ctx.settings.allow_code_execution)
    if humaneval:        # missing HumanEval data: SKIPPED with the how-to before any generation
        task_for(card, _n(ctx), "humaneval", allow_code_execution=True)
    outcome = _c03_part(ctx, card, None, task)
    if humaneval:
        # the paper's table has both tasks: the claim holds only where both halves hold
        outcome = combine({"GSM8K": outcome, "HumanEval": _c03_part(ctx, card, "humaneval", "HumanEval (pass@1)")})
    elif not card.organism:
        outcome.reason = f"{outcome.reason}; {HUMANEVAL_NOT_RUN}" if outcome.reason else HUMANEVAL_NOT_RUN

    def rows(name):
        out = {}
        for label, k in (("unmasked", 0), *((f"top-{k}", k) for k in MASK_KS)):
            runs = _measured_in_run(ctx, k).get(name)
            if runs is None:
                return None
            hits = int(runs.correct.sum())
            lo, hi = wilson_ci(hits, len(runs.records))
            out[label] = (hits / len(runs.records), lo, hi)
        return out

    models = {_kind_label(ctx, name): r for name in _measured_in_run(ctx) if (r := rows(name))}
    return figures.attach(outcome, ctx, f"C03_{card.name}.png", lambda path: figures.accuracy_under_masking(
        models, path, f"C03: accuracy with the top-k sinks of step t-1 masked at step t ({task.split(' ')[0]})"))


@criterion("C04")
@_skips_when_unavailable
def c04(claim, card, ctx):
    runs = _runs(ctx, card)
    return dlm.c04_token_classes([r.top_class[:, :-1, 0] for r in runs.records],
                                 [r.class_counts for r in runs.records], seed=ctx.settings.seed,
                                 samples=_samples(runs))


@criterion("C05")
@_skips_when_unavailable
def c05(claim, card, ctx):
    runs = _runs(ctx, card)
    return dlm.c05_first_positions([r.top_index[:, :-1, 0] for r in runs.records], seed=ctx.settings.seed,
                                   samples=_samples(runs))


@criterion("C06")
@_skips_when_unavailable
def c06(claim, card, ctx):
    from benchmark.lm.measure import first_positions
    from benchmark.suite import availability

    stabilities = {card.name: dlm.stability(first_positions(_runs(ctx, card)))}
    for other in ("llada", "dream"):
        reason = availability(ctx.cards[other], ctx)
        if reason:
            return skipped(f"C06 compares {card.name}'s sink stability with llada's and dream's, measured in the "
                           f"same run: {other}: {reason}")
        stabilities[other] = dlm.stability(first_positions(_runs(ctx, ctx.cards[other])))
    return dlm.c06_most_stable(stabilities, card.name, seed=ctx.settings.seed)


@criterion("C07")
@_skips_when_unavailable
def c07(claim, card, ctx):
    from benchmark.lm.measure import first_positions

    runs = _runs(ctx, card)
    return dlm.c07_bos(first_positions(runs), seed=ctx.settings.seed, samples=_samples(runs))


globals().update(claim_tests("dlm"))
