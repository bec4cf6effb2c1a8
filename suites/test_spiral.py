"""Paper B: Yang, Shao, Gao, Liao, "From a Spiral to a Sink" (claims B01-B17).

One test per (claim, applicable model). The key-importance claims are readings of one shared attention
measurement per model (benchmark.measurements), judged by benchmark.criteria.spiral; claims whose
measurements are not built yet are SKIPPED with what they need.
"""
from benchmark import figures
from benchmark.criteria import spiral
from benchmark.measurements import attention_data
from benchmark.suite import catalogue, claim_tests, criterion

# the claims that read the shared measurement: it is taken once with the largest N among them
SHARED_MEASUREMENT = ("B01", "B02", "B03", "B04", "B05", "B08", "B06", "B09", "B12", "B15")


def _data(claim, card, ctx):
    others = [catalogue()[c] for c in SHARED_MEASUREMENT]
    return attention_data(ctx, card, ctx.n_for(claim.default_n, claim.paper_n), others)


@criterion("B01")
def b01(claim, card, ctx):
    return spiral.b01_peak_ratio(_data(claim, card, ctx), seed=ctx.settings.seed)


@criterion("B02")
def b02(claim, card, ctx):
    return spiral.b02_distinct_sinks(_data(claim, card, ctx), card.traits)


@criterion("B03")
def b03(claim, card, ctx):
    return spiral.b03_region(_data(claim, card, ctx), card.traits)


@criterion("B04")
def b04(claim, card, ctx):
    return spiral.b04_onset(_data(claim, card, ctx))


@criterion("B05")
def b05(claim, card, ctx):
    data = _data(claim, card, ctx)
    return figures.attach(spiral.b05_depth(data, seed=ctx.settings.seed), ctx, f"B05_{card.name}.png",
                   lambda path: figures.ratio_over_depth(spiral.ratio_by_layer(data), path,
                                                         f"B05 {card.name}: sink-to-random ratio over depth"))


@criterion("B06")
def b06(claim, card, ctx):
    return spiral.b06_agreement(_data(claim, card, ctx))


@criterion("B08")
def b08(claim, card, ctx):
    return spiral.b08_activation_before_sink(_data(claim, card, ctx), seed=ctx.settings.seed)


@criterion("B09")
def b09(claim, card, ctx):
    return spiral.b09_key_norms(_data(claim, card, ctx), seed=ctx.settings.seed)


@criterion("B10")
def b10(claim, card, ctx):
    # a separate measurement: pre-RoPE logits need hooks on the QK-norm outputs
    data = attention_data(ctx, card, ctx.n_for(claim.default_n, claim.paper_n),
                          stats=("mass", "logit_mean", "logit_mean_pre_rope"))
    return spiral.b10_rope(data, seed=ctx.settings.seed)


@criterion("B12")
def b12(claim, card, ctx):
    return spiral.b12_value_norms(_data(claim, card, ctx), seed=ctx.settings.seed)


@criterion("B15")
def b15(claim, card, ctx):
    data = _data(claim, card, ctx)
    return figures.attach(spiral.b15_budget(data, seed=ctx.settings.seed), ctx, f"B15_{card.name}.png",
                   lambda path: figures.token_budget(spiral.token_type_shares(data), path,
                                                     f"B15 {card.name}: attention budget by token type"))


@criterion("B16")
def b16(claim, card, ctx):
    from benchmark.prompts import comma_padding

    base = _data(claim, card, ctx)
    padded = attention_data(ctx, card, base.n_items, transform=comma_padding(200))   # prompt + ", " x 200
    return spiral.b16_comma_padding(base, padded, seed=ctx.settings.seed)


globals().update(claim_tests("spiral"))
