"""Paper B: Yang, Shao, Gao, Liao, "From a Spiral to a Sink" (claims B01-B17).

One test per (claim, applicable model). The key-importance claims are readings of one shared attention
measurement per model (benchmark.measurements), judged by benchmark.criteria.spiral; claims whose
measurements are not built yet are SKIPPED with what they need.
"""
import numpy as np

from benchmark import figures
from benchmark.criteria import spiral
from benchmark.measurements import attention_data
from benchmark.suite import catalogue, claim_tests, criterion

# the claims that read the shared measurement: it is taken once with the largest N among them
SHARED_MEASUREMENT = ("B01", "B02", "B03", "B04", "B05", "B07", "B08", "B06", "B09", "B12", "B15")


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
    data = _data(claim, card, ctx)
    return figures.attach(spiral.b03_region(data, card.traits), ctx, f"B03_{card.name}.png",
                          lambda path: figures.token_budget(spiral.token_type_shares(data), path,
                                                            f"B03 {card.name}: key importance by token type"))


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


@criterion("B07")
def b07(claim, card, ctx):
    from benchmark.measurements import key_activations

    data = _data(claim, card, ctx)
    return spiral.b07_massive_activations(data, key_activations(data), seed=ctx.settings.seed)


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


@criterion("B11")
def b11(claim, card, ctx):
    from benchmark.experiments import adapter_for
    from benchmark.measurements import key_band_energy, rope_low_band

    data = attention_data(ctx, card, ctx.n_for(claim.default_n, claim.paper_n), stats=("mass", "key_energy"))
    low, split = rope_low_band(dict(adapter_for(ctx, card, ctx.generation_overrides()).denoiser.config))
    sink_low, mean_low = key_band_energy(data, low)
    outcome = spiral.b11_band_energy(sink_low, mean_low, split, seed=ctx.settings.seed)
    gap = np.exp(np.log(np.nanmean(sink_low, axis=2)) - np.log(np.nanmean(mean_low, axis=2)))
    return figures.attach(outcome, ctx, f"B11_{card.name}.png", lambda path: figures.ratio_over_depth(
        gap, path, f"B11 {card.name}: low-frequency RoPE energy fraction, sink key / average key",
        ylabel="low-frequency fraction, sink / average"))


SWAP_TOKENS = ("eos", "pad", "comma")


@criterion("B13")
def b13(claim, card, ctx):
    from benchmark.experiments import adapter_for
    from benchmark.runner import Condition

    length = int(adapter_for(ctx, card, ctx.generation_overrides()).settings.max_sequence_length)
    positions = tuple(range(length - 6, length - 2))       # inside the PAD run of any prompt shorter than L - 6
    n = ctx.n_for(claim.default_n, claim.paper_n)
    swapped = {tok: attention_data(ctx, card, n, stats=("mass",), condition=Condition.make(
        "content_swap", positions=positions, token=tok)) for tok in SWAP_TOKENS}
    from benchmark.measurements import key_tokens

    keys = spiral.swapped_keys(key_tokens(swapped["eos"], 0), key_tokens(swapped["pad"], 0))
    if len(keys) != len(positions):
        from benchmark.verdict import inconclusive

        return inconclusive(f"{len(keys)} of the {len(positions)} swapped positions are in every prompt's PAD run",
                            f"text positions {positions} of {length} are not padding in every prompt")
    image = np.flatnonzero(np.all(np.isin(swapped["pad"].token_types[0], ("patch", "frame_patch")), axis=0))
    mu = {tok: spiral.importance_x_n(swapped[tok], keys) for tok in SWAP_TOKENS}
    mu["image"] = spiral.importance_x_n(swapped["pad"], image)
    outcome = spiral.b13_content_order(mu, seed=ctx.settings.seed)
    outcome.measured += f"; text positions {positions[0]}-{positions[-1]} of {length}, mean over layers and steps"
    return outcome


def smiley(rows: int, cols: int, count: int = 20) -> list[tuple[int, int]]:
    """Paper B's smiley: two eyes and a mouth arc on the patch grid, `count` patches (fewer on small grids)."""
    count = min(count, rows * cols // 3)
    points = [(rows * 0.3, cols * 0.3), (rows * 0.3, cols * 0.7)]
    arc = np.linspace(0.15, 0.85, max(count, 3) * 4)
    points += [(rows * (0.62 + 0.18 * np.sin(np.pi * a)), cols * a) for a in arc]
    cells: list[tuple[int, int]] = []
    for r, c in points:
        cell = (min(rows - 1, int(r)), min(cols - 1, int(c)))
        if cell not in cells and cell != (0, 0):
            cells.append(cell)
    return cells[:count]


@criterion("B14")
def b14(claim, card, ctx):
    from benchmark.runner import Condition

    n = ctx.n_for(claim.default_n, claim.paper_n)
    before = attention_data(ctx, card, n, stats=("mass",))
    layer = next(i for i, g in enumerate(before.image_grid) if g is not None)
    first, _, rows, cols = before.image_grid[layer]
    targets = smiley(rows, cols)
    after = attention_data(ctx, card, n, stats=("mass",), condition=Condition.make(
        "pe_edit", targets=tuple(tuple(t) for t in targets), source=(0, 0)))
    keys = np.asarray([first + r * cols + c for r, c in targets])
    same = [i for i, g in enumerate(before.image_grid) if g == before.image_grid[layer]]   # the image self-attentions
    outcome = spiral.b14_relocation(spiral.importance_x_n(before, keys, same), spiral.importance_x_n(after, keys, same),
                                    seed=ctx.settings.seed)
    outcome.measured += f"; {len(targets)} patches of the {rows}x{cols} grid get the corner (0, 0) embedding"
    return outcome


@criterion("B17")
def b17(claim, card, ctx):
    from benchmark.experiments import BASELINE, paired_images, scores
    from benchmark.prompts import comma_padding

    n = ctx.n_for(claim.default_n, claim.paper_n)
    plain = paired_images(ctx, card, n, {"plain": BASELINE})
    padded = paired_images(ctx, card, n, {"padded": BASELINE}, transform=comma_padding(200))
    judge = "vqa_detector" if card.organism else "vqa_judge"
    # both are judged against the plain prompt (the organism's detector: the prompt's scene requirements)
    others = ([f"{m['organism_seed']}:{m['organism_index']}" for m in plain.prompt_meta] if card.organism
              else list(plain.prompts))
    base = scores(ctx, card, judge, plain.images["plain"], others)
    pad = scores(ctx, card, judge, padded.images["padded"], others)
    name = "the organism's detector (GenEval-style correctness)" if card.organism else "the configured VQA judge"
    return spiral.b17_compositional(base, pad, name, seed=ctx.settings.seed)


globals().update(claim_tests("spiral"))
