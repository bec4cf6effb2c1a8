"""Paper A: Wu & Summa, "Attention Sinks in Diffusion Transformers: A Causal Analysis" (claims A01-A31).

One test per (claim, applicable model). The H1 dynamics claims (A01-A07) are readings of the shared attention
measurement of each model (benchmark.measurements), judged by benchmark.criteria.causal; claims whose
measurements are not built yet are SKIPPED with what they need.
"""
from benchmark import figures
from benchmark.criteria import causal
from benchmark.measurements import attention_data
from benchmark.suite import catalogue, claim_tests, criterion

# the claims that read the shared measurement (with paper B's, which asks for the largest N)
SHARED_MEASUREMENT = ("A01", "A02", "A03", "A04", "A05", "A06", "A07", "A08", "B02", "B06")


def _data(claim, card, ctx):
    others = [catalogue()[c] for c in SHARED_MEASUREMENT]
    return attention_data(ctx, card, ctx.n_for(claim.default_n, claim.paper_n), others)


def _with_maxmass_map(outcome, data, card, ctx, claim_id):
    """Attach MaxMass over layers x steps (mean over prompts) to the verdict."""
    return figures.attach(outcome, ctx, f"{claim_id}_{card.name}.png", lambda path: figures.layer_step_heatmap(
        causal.max_mass(data).mean(axis=0), path, f"{claim_id} {card.name}: MaxMass over layers x steps", "MaxMass"))


@criterion("A01")
def a01(claim, card, ctx):
    data = _data(claim, card, ctx)
    return _with_maxmass_map(causal.a01_middle_peak(data, seed=ctx.settings.seed), data, card, ctx, "A01")


@criterion("A02")
def a02(claim, card, ctx):
    return causal.a02_entropy(_data(claim, card, ctx), seed=ctx.settings.seed)


@criterion("A03")
def a03(claim, card, ctx):
    return causal.a03_top5_rises(_data(claim, card, ctx), seed=ctx.settings.seed)


@criterion("A04")
def a04(claim, card, ctx):
    return causal.a04_not_index0(_data(claim, card, ctx))


@criterion("A05")
def a05(claim, card, ctx):
    data = _data(claim, card, ctx)
    return _with_maxmass_map(causal.a05_early_peak(data, seed=ctx.settings.seed), data, card, ctx, "A05")


@criterion("A06")
def a06(claim, card, ctx):
    return causal.a06_narrow_positions(_data(claim, card, ctx))


@criterion("A07")
def a07(claim, card, ctx):
    return causal.a07_text_sinks(_data(claim, card, ctx))


@criterion("A08")
def a08(claim, card, ctx):
    return causal.a08_activation_peak(_data(claim, card, ctx))


globals().update(claim_tests("causal"))
