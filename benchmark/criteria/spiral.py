"""Paper B's criteria (../shared/CLAIMS.md, B01-B17) as judgements of an AttentionData measurement.

Sink identity (B02, B06): BOS and EOS count as one token wherever the prompt's length puts them; any other key
is identified by its type and position.

Definitions (paper B): key importance mu_k = mean attention a key receives (over probed queries and heads, then
steps); sink = top-1 key by mu_k; sink-to-random ratio = mu_k(sink) / mu_k(a random other key), whose
expectation over the random draw is the mean mu_k of the other keys, used here so that no draw is needed.
Every statistic is per prompt first; CIs are seeded paired bootstraps over prompts (benchmark.stats).
"""
from __future__ import annotations

import warnings
from collections import Counter

import numpy as np

from ..measurements import AttentionData
from ..stats import bootstrap_mean_ci
from ..verdict import ClaimOutcome, contradicted, inconclusive, reproduced
from .common import by_interval, wilson_ci

PEAK_RATIO_THRESHOLD = 100.0      # B01: the paper's design example, "> 100x in deep layers"
DETERMINISTIC_SHARE = 0.10        # B02: "deterministic" models have fewer distinct sinks than 10% of prompts
AGREEMENT_THRESHOLD = 0.8         # B06: most prompts and seeds share the top-1 sink
VALUE_NORM_THRESHOLD = 0.5        # B12: sink value norms below half of the others'


def sink_to_random(mu: np.ndarray, present: np.ndarray | None = None) -> np.ndarray:
    """Per row of key importances (items, keys): mu(sink) / mean mu(other keys). `present` (items, keys)
    marks the item's own keys when items were aligned to a longer common layout."""
    top = mu.max(axis=-1)
    n = mu.shape[-1] if present is None else present.sum(axis=-1)
    if present is not None and mu.ndim == 3:          # (items, steps, keys)
        n = n[:, None]
    return top / ((mu.sum(axis=-1) - top) / (n - 1))


def present_keys(data: AttentionData, layer: int) -> np.ndarray:
    return data.token_types[layer] != "absent"


def ratio_by_layer(data: AttentionData) -> np.ndarray:
    """(items, layers) sink-to-random ratios."""
    return np.stack([sink_to_random(data.importance(layer), present_keys(data, layer))
                     for layer in range(data.n_layers)], axis=1)


def _same_keys_layers(data: AttentionData) -> list[int]:
    """The layers that attend over the most common key set (all of them in a joint-attention DiT)."""
    sizes = Counter(m.shape[-1] for m in data.mass)
    common = sizes.most_common(1)[0][0]
    return [i for i, m in enumerate(data.mass) if m.shape[-1] == common]


def global_sinks(data: AttentionData) -> np.ndarray:
    """Per item: the index of the key with the largest importance averaged over layers (of one key set)."""
    layers = _same_keys_layers(data)
    mu = np.mean([data.importance(i) for i in layers], axis=0)
    return mu.argmax(axis=-1)


UNIQUE_TOKENS = ("bos", "eos")     # one per sequence: the same token wherever the prompt's length puts it


def sink_identities(data: AttentionData) -> list[str]:
    """Which token is each item's sink: BOS/EOS by type (their position moves with the prompt's length),
    any other key by type and position ("pad@12", "patch@0")."""
    types = data.token_types[_same_keys_layers(data)[0]]
    return [str(types[i][k]) if str(types[i][k]) in UNIQUE_TOKENS else f"{types[i][k]}@{k}"
            for i, k in enumerate(global_sinks(data).tolist())]


def _ci_verdict(stat, value_text: str, *, threshold: float, holds: str, what: str, log10: bool = False,
                **kw) -> ClaimOutcome:
    """The claim holds when the statistic is `holds` ("above" / "below") the threshold: REPRODUCED when the
    whole CI is on that side, CONTRADICTED when it is on the other, else INCONCLUSIVE."""
    lo, hi = stat.ci
    show = (lambda x: 10 ** x) if log10 else (lambda x: x)
    measured = f"{value_text} (95% CI [{show(lo):.3g}, {show(hi):.3g}], n={stat.n})"
    cut = np.log10(threshold) if log10 else threshold
    kw = {"value": float(show(stat.estimate)), "ci": (float(show(lo)), float(show(hi))), "n": stat.n,
          "stats": [stat.to_dict()], **kw}
    return by_interval(lo, hi, cut, measured, holds=holds, above=f"{what}: the CI lies above {threshold:g}",
                       below=f"{what}: the CI lies below {threshold:g}", inside=f"{what}: the CI contains {threshold:g}",
                       **kw)


def b01_peak_ratio(data: AttentionData, seed: int = 0) -> ClaimOutcome:
    ratios = ratio_by_layer(data)
    peak = ratios.max(axis=1)
    peak_layer = ratios.argmax(axis=1)
    stat = bootstrap_mean_ci(np.log10(peak), seed=seed)
    return _ci_verdict(stat, f"peak sink-to-random ratio {10 ** stat.estimate:.3g}x (geometric mean over prompts; "
                             f"most often at layer {Counter(peak_layer.tolist()).most_common(1)[0][0]})",
                       threshold=PEAK_RATIO_THRESHOLD, holds="above", log10=True,
                       what="peak ratio vs the paper's 100x",
                       samples={"prompt_id": list(data.prompt_ids), "peak_ratio": peak.tolist(),
                                "peak_layer": peak_layer.tolist()})


def deterministic_family(traits) -> bool:
    """Paper B's reading: joint-attention RoPE models with padded text (FLUX, Qwen-Image, Z-Image) have a
    fixed sink; absolute-position and video models (PixArt, Wan, LTX) do not."""
    traits = set(traits)
    return {"rope", "joint_attention"} <= traits and "video" not in traits and "abspe" not in traits


def b02_distinct_sinks(data: AttentionData, traits) -> ClaimOutcome:
    sinks = sink_identities(data)
    count, n = len(set(sinks)), data.n_items
    expected_few = deterministic_family(traits)
    measured = (f"{count} distinct top-1 sink tokens over {n} prompts ({count / n:.0%}): "
                + ", ".join(f"{t} x{c}" for t, c in Counter(sinks).most_common(5)) + (" ..." if count > 5 else ""))
    kw = {"value": float(count), "n": n, "samples": {"prompt_id": list(data.prompt_ids), "sink": sinks,
                                                     "sink_key": global_sinks(data).tolist()}}
    if n * DETERMINISTIC_SHARE < 2:
        return inconclusive(measured, f"{n} prompts are too few to tell {DETERMINISTIC_SHARE:.0%} of prompts apart", **kw)
    few = count < DETERMINISTIC_SHARE * n
    kind = "deterministic (RoPE, joint attention, padded text)" if expected_few else "stochastic (AbsPE or video)"
    if few == expected_few:
        return reproduced(measured, f"the paper reads this family as {kind}, and so it is here", **kw)
    return contradicted(measured, f"the paper reads this family as {kind}; here it is "
                                  f"{'deterministic' if few else 'stochastic'}", **kw)


def expected_sink_region(traits) -> str:
    """Paper B's Models table: where the sink sits, by position-encoding family."""
    traits = set(traits)
    if "t2v" in traits:
        return "first_frame"            # Wan2.1, LTX: first-frame patches (3D RoPE)
    if "abspe" in traits:
        return "corner"                 # PixArt: spatial corners (absolute PE)
    if "text_pad_tokens" in traits or "learned_pad_tokens" in traits:
        return "text_special"           # FLUX, Z-Image: text <PAD> (and <EOS>, Fig.10)
    return "text"                       # Qwen-Image: text tokens


def _in_region(region: str, token_type: str, key: int, grid) -> bool:
    if region == "text_special":
        return token_type in ("pad", "eos", "learned_pad")
    if region == "text":
        return token_type not in ("patch", "frame_patch")
    if grid is None or token_type not in ("patch", "frame_patch"):
        return False
    start, frames, rows, cols = grid
    offset = key - start
    frame, row, col = offset // (rows * cols), (offset // cols) % rows, offset % cols
    if region == "first_frame":
        return frame == 0
    return row in (0, 1, rows - 2, rows - 1) and col in (0, 1, cols - 2, cols - 1)   # within 2 of a corner


REGION_TEXT = {"first_frame": "first-frame patches", "corner": "patches within 2 of a spatial corner",
               "text_special": "text PAD/EOS tokens", "text": "text tokens"}
REGION_SHARE = 0.5                # B03: the top sink of most prompts lies in the expected region


def b03_region(data: AttentionData, traits) -> ClaimOutcome:
    """Top sink per prompt at the final denoising step (as the paper's Fig.3), in the region that the model's
    position-encoding family predicts."""
    region = expected_sink_region(traits)
    if region == "first_frame":
        layers = [i for i, layer in enumerate(data.layers) if layer["kind"] == "self"] or _same_keys_layers(data)
    else:
        layers = _same_keys_layers(data)
    mu = np.mean([data.mass[i][:, -1, :] for i in layers], axis=0)
    sinks = mu.argmax(axis=-1)
    types, grid = data.token_types[layers[0]], data.image_grid[layers[0]] if data.image_grid else None
    inside = [_in_region(region, str(types[i][k]), int(k), grid) for i, k in enumerate(sinks.tolist())]
    hits, n = int(sum(inside)), data.n_items
    lo, hi = wilson_ci(hits, n)
    found = Counter(str(types[i][k]) for i, k in enumerate(sinks.tolist()))
    measured = (f"{hits}/{n} final-step top sinks are {REGION_TEXT[region]} (Wilson 95% CI [{lo:.2f}, "
                f"{hi:.2f}]); sink token types: " + ", ".join(f"{t} {c}" for t, c in found.most_common()))
    return by_interval(lo, hi, REGION_SHARE, measured,
                       above=f"the sink sits where the PE family predicts ({REGION_TEXT[region]})",
                       below=f"the PE family predicts {REGION_TEXT[region]}; most sinks are elsewhere",
                       inside=f"the CI contains {REGION_SHARE:.0%}", value=hits / n, ci=(lo, hi), n=n,
                       samples={"prompt_id": list(data.prompt_ids), "sink_key": sinks.tolist(), "in_region": inside})


EARLY_FRACTION = 0.25             # B04: the sink forms within the first 25% of the denoising steps
ONSET_LEVEL = 0.5                 # ... reaching half of its largest excess over uniform (ratio - 1)
PERSIST_SHARE = 0.8               # ... and staying at that level for 80% of the later steps
MIN_SINK_RATIO = 2.0              # a prompt without a sink-to-random ratio of 2 at any step has no sink to form


def ratio_by_step(data: AttentionData) -> np.ndarray:
    """(items, steps) sink-to-random ratio of the layer-averaged key importance at each step."""
    layers = _same_keys_layers(data)
    mu = np.mean([data.mass[i] for i in layers], axis=0)          # (items, steps, keys)
    return sink_to_random(mu, present_keys(data, layers[0]))


def b04_onset(data: AttentionData) -> ClaimOutcome:
    ratios = ratio_by_step(data)
    steps = ratios.shape[1]
    level = 1 + ONSET_LEVEL * (ratios.max(axis=1) - 1)
    above = ratios >= level[:, None]
    onset = above.argmax(axis=1)
    persists = np.array([above[i, onset[i]:].mean() >= PERSIST_SHARE for i in range(len(onset))])
    has_sink = ratios.max(axis=1) >= MIN_SINK_RATIO
    early = onset <= np.floor(EARLY_FRACTION * (steps - 1))
    ok = has_sink & early & persists
    hits, n = int(ok.sum()), data.n_items
    lo, hi = wilson_ci(hits, n)
    measured = (f"{hits}/{n} prompts form their sink by step {int(np.floor(EARLY_FRACTION * (steps - 1)))} of "
                f"{steps} and keep it (Wilson 95% CI [{lo:.2f}, {hi:.2f}]); median onset step "
                f"{int(np.median(onset))}; mean ratio by step: " + ", ".join(f"{r:.3g}" for r in ratios.mean(axis=0)))
    return by_interval(lo, hi, 0.5, measured, above="most prompts' sinks form early and persist",
                       below="most prompts' sinks form late, fade, or never form", inside="the CI contains 50%",
                       value=hits / n, ci=(lo, hi), n=n,
                       samples={"prompt_id": list(data.prompt_ids), "onset_step": onset.tolist(),
                                "persists": persists.tolist(), "has_sink": has_sink.tolist(),
                                "ratio_by_step": ratios.tolist()})


def b05_depth(data: AttentionData, seed: int = 0) -> ClaimOutcome:
    ratios = np.log10(ratio_by_layer(data))
    half = data.n_layers // 2
    shallow, deep = ratios[:, :half].mean(axis=1), ratios[:, half:].mean(axis=1)
    stat = bootstrap_mean_ci(deep - shallow, seed=seed)
    lo, hi = stat.ci
    by_layer = 10 ** ratios.mean(axis=0)
    measured = (f"deeper/shallower mean sink-to-random ratio {10 ** stat.estimate:.3g}x (95% CI [{10 ** lo:.3g}, "
                f"{10 ** hi:.3g}], n={stat.n}); shallow-half ratio {10 ** shallow.mean():.3g}x; by layer: "
                + ", ".join(f"{r:.3g}" for r in by_layer))
    kw = {"value": float(10 ** stat.estimate), "ci": (float(10 ** lo), float(10 ** hi)), "n": stat.n,
          "stats": [stat.to_dict()], "samples": {"prompt_id": list(data.prompt_ids),
                                                 "log10_ratio_deep_minus_shallow": (deep - shallow).tolist(),
                                                 "geometric_ratio_by_layer": by_layer.tolist()}}
    return by_interval(lo, hi, 0.0, measured, above="sinks are stronger in the deeper half",
                       below="sinks are stronger in the shallower half",
                       inside="the CI of the deeper-minus-shallower log ratio contains 0", **kw)


def b06_agreement(data: AttentionData) -> ClaimOutcome:
    sinks = sink_identities(data)
    modal, hits = Counter(sinks).most_common(1)[0]
    n = data.n_items
    lo, hi = wilson_ci(hits, n)
    measured = f"{hits}/{n} prompts share the top-1 sink ({modal}): {hits / n:.0%} (Wilson 95% CI [{lo:.2f}, {hi:.2f}])"
    return by_interval(lo, hi, AGREEMENT_THRESHOLD, measured,
                       above=f"agreement above {AGREEMENT_THRESHOLD:.0%}: the sink does not depend on the prompt",
                       below=f"agreement below {AGREEMENT_THRESHOLD:.0%}: the sink moves with the prompt",
                       inside=f"the CI contains {AGREEMENT_THRESHOLD:.0%}", value=hits / n, ci=(lo, hi), n=n,
                       samples={"prompt_id": list(data.prompt_ids), "sink": sinks,
                                "sink_key": global_sinks(data).tolist()})


KEY_NORM_TOLERANCE = 0.05         # B09: "sink and non-sink keys have equal norms", within 5%


def _norm_ratio(data: AttentionData, norms) -> np.ndarray | None:
    """Per item: norm at each layer's sink key / mean norm of the other keys, averaged over layers and steps."""
    per_layer = []
    for layer in range(data.n_layers):
        if norms[layer] is None:
            continue
        sink = data.importance(layer).argmax(axis=-1)
        v = norms[layer].mean(axis=1)
        at_sink = v[np.arange(len(sink)), sink]
        n = present_keys(data, layer).sum(axis=-1)
        others = (v.sum(axis=-1) - at_sink) / (n - 1)
        # keys of zero norm (e.g. a zeroed key-norm gain) leave the ratio undefined at that layer: left out
        with np.errstate(divide="ignore", invalid="ignore"):
            per_layer.append(np.where(others > 0, at_sink / np.where(others > 0, others, 1.0), np.nan))
    if not per_layer:
        return None
    stacked = np.stack(per_layer)
    defined = np.isfinite(stacked)
    if not defined.any(axis=0).all():
        return np.full(stacked.shape[1], np.nan)
    return np.where(defined, stacked, 0.0).sum(axis=0) / defined.sum(axis=0)


def b09_key_norms(data: AttentionData, seed: int = 0) -> ClaimOutcome:
    ratio = _norm_ratio(data, data.key_norm)
    if ratio is None:
        return inconclusive("no key norms recorded", "the measurement has no key_norm statistic")
    if not np.isfinite(ratio).all():
        return inconclusive("the keys have zero norm at every probed layer for some items",
                            "the sink/other key-norm ratio is undefined (0/0)")
    stat = bootstrap_mean_ci(ratio, seed=seed)
    lo, hi = stat.ci
    measured = (f"sink key norm / other keys' {stat.estimate:.3f} after QK-norm and RoPE (95% CI [{lo:.3f}, {hi:.3f}], "
                f"n={stat.n})")
    kw = {"value": stat.estimate, "ci": (lo, hi), "n": stat.n, "stats": [stat.to_dict()],
          "samples": {"prompt_id": list(data.prompt_ids), "key_norm_ratio": ratio.tolist()}}
    low, high = 1 - KEY_NORM_TOLERANCE, 1 + KEY_NORM_TOLERANCE
    if low <= lo and hi <= high:
        return reproduced(measured, "equal norms within 5%: the sink is not made by a larger key", **kw)
    if hi < low or lo > high:
        return contradicted(measured, "the sink's key norm differs from the others' by more than 5%", **kw)
    return inconclusive(measured, "the CI crosses the 5% band", **kw)


def b12_value_norms(data: AttentionData, seed: int = 0) -> ClaimOutcome:
    ratio = _norm_ratio(data, data.value_norm)
    if ratio is None:
        return inconclusive("no value norms recorded", "the measurement has no value_norm statistic")
    stat = bootstrap_mean_ci(ratio, seed=seed)
    return _ci_verdict(stat, f"sink value norm / others' {stat.estimate:.3g} (mean over layers and prompts)",
                       threshold=VALUE_NORM_THRESHOLD, holds="below", what="value-norm ratio vs 0.5",
                       samples={"prompt_id": list(data.prompt_ids), "value_norm_ratio": ratio.tolist()})


def token_type_shares(data: AttentionData) -> dict[str, np.ndarray]:
    """Per item: the share of attention (mu summed over keys of a type, averaged over layers of one key set)."""
    layers = _same_keys_layers(data)
    shares: dict[str, list[np.ndarray]] = {}
    for layer in layers:
        mu, types = data.importance(layer), data.token_types[layer]
        for t in np.unique(types):
            shares.setdefault(str(t), []).append(np.where(types == t, mu, 0.0).sum(axis=-1))
    return {t: np.mean(v, axis=0) for t, v in shares.items()}


def b15_budget(data: AttentionData, seed: int = 0) -> ClaimOutcome:
    shares = token_type_shares(data)
    if "pad" not in shares or "patch" not in shares:
        return inconclusive(f"token types measured: {', '.join(sorted(shares))}",
                            "the measurement has no PAD keys or no image keys")
    stat = bootstrap_mean_ci(shares["pad"] - shares["patch"], seed=seed)
    lo, hi = stat.ci
    listing = ", ".join(f"{t} {v.mean():.1%}" for t, v in sorted(shares.items(), key=lambda kv: -kv[1].mean()))
    measured = f"attention shares: {listing}; PAD - image {stat.estimate:+.3f} (95% CI [{lo:+.3f}, {hi:+.3f}], n={stat.n})"
    kw = {"value": float(stat.estimate), "ci": (float(lo), float(hi)), "n": stat.n, "stats": [stat.to_dict()],
          "samples": {"prompt_id": list(data.prompt_ids), **{f"share_{t}": v.tolist() for t, v in shares.items()}}}
    return by_interval(lo, hi, 0.0, measured, above="PAD keys absorb more attention than image keys",
                       below="image keys absorb more attention than PAD keys",
                       inside="the CI of PAD minus image share contains 0", **kw)


PRE_ROPE_TOLERANCE = 0.2         # B10: pre-RoPE mean q.k of the sink within 20% of a random key's


def _sink_vs_random(data: AttentionData, stat: str) -> np.ndarray:
    """Per item: (sink value, mean value of the other keys) of a per-key statistic, over layers and steps,
    the sink being each layer's top key by importance."""
    sink_values, other_values = [], []
    for layer in range(data.n_layers):
        values = data.extra[stat][layer]
        if values is None:
            continue
        sink = data.importance(layer).argmax(axis=-1)
        v = values.mean(axis=1)
        at_sink = v[np.arange(len(sink)), sink]
        n = present_keys(data, layer).sum(axis=-1)
        sink_values.append(at_sink)
        other_values.append((v.sum(axis=-1) - at_sink) / (n - 1))
    return np.mean(sink_values, axis=0), np.mean(other_values, axis=0)


def b10_rope(data: AttentionData, seed: int = 0) -> ClaimOutcome:
    """Before RoPE the sink's mean logit is like a random key's; after RoPE it stands out."""
    if not all(k in data.extra for k in ("logit_mean", "logit_mean_pre_rope")):
        return inconclusive("no pre/post-RoPE logits recorded", "the measurement lacks logit_mean(_pre_rope)")
    pre_sink, pre_other = _sink_vs_random(data, "logit_mean_pre_rope")
    post_sink, post_other = _sink_vs_random(data, "logit_mean")
    relative = (pre_sink - pre_other) / np.maximum(np.abs(pre_sink), np.abs(pre_other))
    pre = bootstrap_mean_ci(relative, seed=seed)
    post = bootstrap_mean_ci(post_sink - post_other, seed=seed)
    measured = (f"pre-RoPE mean logit sink {pre_sink.mean():.3g} vs others {pre_other.mean():.3g} (relative gap "
                f"{pre.estimate:+.2f}, 95% CI [{pre.ci[0]:+.2f}, {pre.ci[1]:+.2f}]); post-RoPE sink {post_sink.mean():.3g} "
                f"vs others {post_other.mean():.3g} (gap {post.estimate:+.3g}, CI [{post.ci[0]:+.3g}, {post.ci[1]:+.3g}]); "
                f"n={pre.n}")
    kw = {"value": post.estimate, "ci": post.ci, "n": pre.n, "stats": [pre.to_dict(), post.to_dict()],
          "samples": {"prompt_id": list(data.prompt_ids), "pre_sink": pre_sink.tolist(), "pre_other": pre_other.tolist(),
                      "post_sink": post_sink.tolist(), "post_other": post_other.tolist()}}
    similar_before = -PRE_ROPE_TOLERANCE <= pre.ci[0] and pre.ci[1] <= PRE_ROPE_TOLERANCE
    if similar_before and post.ci[0] > 0:
        return reproduced(measured, "the sink's advantage appears only after RoPE", **kw)
    if pre.ci[0] > PRE_ROPE_TOLERANCE or post.ci[1] < 0:
        return contradicted(measured, "the sink already stands out before RoPE, or not after it", **kw)
    return inconclusive(measured, "the CIs do not settle both halves of the claim", **kw)


def b08_activation_before_sink(data: AttentionData, seed: int = 0) -> ClaimOutcome:
    """Per prompt: relative depth of the sink peak (largest sink-to-random ratio) minus that of the activation
    peak (largest block output magnitude); paper B: activations peak near depth 0.3, sinks after."""
    if data.block_act_max is None:
        return inconclusive("no block activations recorded", "the measurement has no activation statistic")
    sink_depth = data.depth[ratio_by_layer(data).argmax(axis=1)]
    act_layer = np.asarray(data.block_first_layer)[np.nanmean(data.block_act_max, axis=2).argmax(axis=1)]
    act_depth = data.depth[act_layer]
    stat = bootstrap_mean_ci(sink_depth - act_depth, seed=seed)
    lo, hi = stat.ci
    measured = (f"activation peak at depth {act_depth.mean():.2f}, sink peak at {sink_depth.mean():.2f} (mean over "
                f"prompts); sink minus activation {stat.estimate:+.2f} (95% CI [{lo:+.2f}, {hi:+.2f}], n={stat.n})")
    kw = {"value": stat.estimate, "ci": (lo, hi), "n": stat.n, "stats": [stat.to_dict()],
          "samples": {"prompt_id": list(data.prompt_ids), "sink_depth": sink_depth.tolist(),
                      "activation_depth": act_depth.tolist()}}
    return by_interval(lo, hi, 0.0, measured, above="massive activations peak before the sinks",
                       below="the sinks peak before the massive activations", inside="the CI contains 0", **kw)


def b16_comma_padding(base: AttentionData, padded: AttentionData, seed: int = 0) -> ClaimOutcome:
    """Paired by prompt: image-key share and PAD share with comma padding minus without."""
    if base.prompt_ids != padded.prompt_ids:
        raise ValueError("B16 pairs the same prompts with and without comma padding")
    before, after = token_type_shares(base), token_type_shares(padded)
    zero = np.zeros(base.n_items)
    image = bootstrap_mean_ci(after.get("patch", zero) - before.get("patch", zero), seed=seed)
    pad = bootstrap_mean_ci(after.get("pad", zero) - before.get("pad", zero), seed=seed)
    measured = (f"image-key share {before.get('patch', zero).mean():.1%} -> {after.get('patch', zero).mean():.1%} "
                f"(paired delta {image.estimate:+.3f}, 95% CI [{image.ci[0]:+.3f}, {image.ci[1]:+.3f}]); PAD share "
                f"{before.get('pad', zero).mean():.1%} -> {after.get('pad', zero).mean():.1%} (delta {pad.estimate:+.3f}, "
                f"CI [{pad.ci[0]:+.3f}, {pad.ci[1]:+.3f}]); comma share with padding "
                f"{after.get('comma', zero).mean():.1%}; n={image.n}")
    kw = {"value": image.estimate, "ci": image.ci, "n": image.n, "stats": [image.to_dict(), pad.to_dict()],
          "samples": {"prompt_id": list(base.prompt_ids),
                      **{f"before_{t}": v.tolist() for t, v in before.items()},
                      **{f"after_{t}": v.tolist() for t, v in after.items()}}}
    if image.ci[0] > 0 and pad.ci[1] < 0:
        return reproduced(measured, "commas displace PAD attention and image keys gain", **kw)
    if image.ci[1] < 0:
        return contradicted(measured, "image keys lose attention under comma padding", **kw)
    return inconclusive(measured, "the image-share gain or the PAD-share loss is not resolved by the CIs", **kw)


MASSIVE_ACTIVATION = 10.0         # B07: sink tokens' max |h| over the mean token's, "> 10x"


def b07_massive_activations(data: AttentionData, activations, seed: int = 0) -> ClaimOutcome:
    """Sink tokens carry massive activations: at each layer with a measured input, the max |h| of the top-1 key
    (by mu_k) over the mean of the other keys'; per prompt, the geometric mean over those layers; CI against 10x."""
    ratios = []
    for layer in range(data.n_layers):
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)              # all-NaN layers: no block before them
            act = np.nanmean(activations[layer], axis=1)                 # (items, keys), over steps
        if np.all(np.isnan(act)):
            continue
        sink = data.importance(layer).argmax(axis=1)
        top = act[np.arange(len(sink)), sink]
        others = (np.nansum(act, axis=1) - top) / (np.sum(~np.isnan(act), axis=1) - 1)   # the other keys' mean
        ratios.append(top / others)
    if not ratios:
        return inconclusive("no layer with a measured input activation", "the block outputs were not recorded")
    per_layer = np.stack(ratios, axis=1)                                   # (items, layers measured)
    per_item_log10 = np.log10(per_layer).mean(axis=1)
    stat = bootstrap_mean_ci(per_item_log10, seed=seed)
    value_text = (f"sink token max |h| / mean other token: x{10 ** stat.estimate:.1f} (geometric mean over "
                  f"{per_layer.shape[1]} layers; by layer " + ", ".join(f"{np.exp(np.log(r).mean()):.1f}"
                                                                   for r in per_layer.T) + ")")
    return _ci_verdict(stat, value_text, threshold=MASSIVE_ACTIVATION, holds="above", what="the ratio",
                       log10=True, samples={"ratio_by_layer": per_layer.tolist()})


def b11_band_energy(sink_low: np.ndarray, mean_low: np.ndarray, split: str, seed: int = 0) -> ClaimOutcome:
    """Frequency-aware concentration: the low-frequency energy fraction of the sink key over the average key's
    (items, layers, steps) is > 1 (CI of the mean log gap above 0) and grows with depth (deeper half minus
    shallower half of the layers, per prompt, CI above 0)."""
    gap = np.log(np.nanmean(sink_low, axis=2)) - np.log(np.nanmean(mean_low, axis=2))      # (items, layers)
    half = gap.shape[1] // 2
    overall = bootstrap_mean_ci(gap.mean(axis=1), seed=seed)
    depth = bootstrap_mean_ci(gap[:, half:].mean(axis=1) - gap[:, :half].mean(axis=1), seed=seed)
    profile = ", ".join(f"{np.exp(x):.2f}" for x in gap.mean(axis=0))
    measured = (f"low-frequency energy fraction, sink / average key: x{np.exp(overall.estimate):.2f} (95% CI "
                f"[{np.exp(overall.ci[0]):.2f}, {np.exp(overall.ci[1]):.2f}]); by layer {profile}; deeper half / "
                f"shallower half x{np.exp(depth.estimate):.2f} (95% CI [{np.exp(depth.ci[0]):.2f}, "
                f"{np.exp(depth.ci[1]):.2f}], n={overall.n}); band split: {split}")
    kw = {"value": float(np.exp(overall.estimate)), "ci": tuple(float(np.exp(c)) for c in overall.ci),
          "n": overall.n, "stats": [overall.to_dict(), depth.to_dict()],
          "samples": {"log_gap_by_layer": gap.tolist()}}
    (lo1, hi1), (lo2, hi2) = overall.ci, depth.ci
    if lo1 > 0 and lo2 > 0:
        return reproduced(measured, "sink keys concentrate on low frequencies, more so in deeper layers", **kw)
    if hi1 < 0 or hi2 < 0:
        return contradicted(measured, "sink keys hold less low-frequency energy than average" if hi1 < 0
                            else "the low-frequency gap shrinks with depth", **kw)
    return inconclusive(measured, "a CI contains 1x", **kw)


def swapped_keys(eos_tokens: np.ndarray, pad_tokens: np.ndarray) -> np.ndarray:
    """B13: the keys whose decoded token differs between the EOS swap and the PAD swap in every item (items,
    keys): the swapped positions inside the PAD run. Token types cannot tell them apart (a tokenizer's types
    follow position: everything after the first EOS is padding), the tokens can."""
    return np.flatnonzero(np.all(eos_tokens != pad_tokens, axis=0))


def importance_x_n(data: AttentionData, keys: np.ndarray, layers=None) -> np.ndarray:
    """Per item: mean over `layers` (default: all, which must share one key layout) and the given keys of
    mu_k x N (1 = a uniform share)."""
    out = []
    for layer in (range(data.n_layers) if layers is None else layers):
        mu = data.importance(layer)
        out.append(mu[:, keys].mean(axis=1) * mu.shape[-1])
    return np.mean(out, axis=0)


def b13_content_order(mu: dict[str, np.ndarray], seed: int = 0) -> ClaimOutcome:
    """mu_k x N at the same positions with different content: EOS > PAD > comma > image (paired per prompt, on
    log mu, each step's 95% CI above 0)."""
    order = ["eos", "pad", "comma", "image"]
    parts, stats, verdicts = [], [], []
    for hi_name, lo_name in zip(order, order[1:]):
        diff = np.log(mu[hi_name]) - np.log(mu[lo_name])
        stat = bootstrap_mean_ci(diff, seed=seed)
        stats.append(dict(stat.to_dict(), step=f"{hi_name} > {lo_name}"))
        lo, hi = stat.ci
        verdicts.append("holds" if lo > 0 else ("reversed" if hi < 0 else "undecided"))
        parts.append(f"{hi_name}/{lo_name} x{np.exp(stat.estimate):.2f} [{np.exp(lo):.2f}, {np.exp(hi):.2f}]")
    measured = ("mu_k x N at the swapped positions: " + ", ".join(f"{k} {np.exp(np.log(mu[k]).mean()):.2f}"
                                                                  for k in order)
                + "; " + "; ".join(parts) + f" (n={len(mu['eos'])})")
    kw = {"value": float(np.exp(np.log(mu["eos"]).mean())), "n": len(mu["eos"]), "stats": stats,
          "samples": {k: np.asarray(v).tolist() for k, v in mu.items()}}
    if all(v == "holds" for v in verdicts):
        return reproduced(measured, "EOS > PAD > comma > image at the same positions", **kw)
    if "reversed" in verdicts:
        steps = [f"{a} > {b}" for (a, b), v in zip(zip(order, order[1:]), verdicts) if v == "reversed"]
        return contradicted(measured, f"the order is reversed at {', '.join(steps)}", **kw)
    return inconclusive(measured, "a step of the order has a CI containing 1x", **kw)


def b14_relocation(before: np.ndarray, after: np.ndarray, seed: int = 0) -> ClaimOutcome:
    """mu_k at the edited image positions after the PE edit / before, per prompt; > 1 with the CI of the log
    ratio above 0."""
    ratio = np.log(np.asarray(after, float)) - np.log(np.asarray(before, float))
    stat = bootstrap_mean_ci(ratio, seed=seed)
    lo, hi = stat.ci
    measured = (f"mu_k at the edited positions x{np.exp(stat.estimate):.2f} after the edit (95% CI "
                f"[{np.exp(lo):.2f}, {np.exp(hi):.2f}], n={stat.n}; before {np.mean(before):.4f}, after "
                f"{np.mean(after):.4f})")
    return by_interval(lo, hi, 0.0, measured, above="the edited positions gain attention",
                       below="the edited positions lose attention", inside="the CI contains 1x",
                       value=float(np.exp(stat.estimate)), ci=(float(np.exp(lo)), float(np.exp(hi))), n=stat.n,
                       stats=[stat.to_dict()], samples={"before": np.asarray(before).tolist(),
                                                        "after": np.asarray(after).tolist()})


def b17_compositional(base: np.ndarray, padded: np.ndarray, judge: str, seed: int = 0) -> ClaimOutcome:
    """Paired delta of the compositional score (padded - plain) > 0, by its 95% CI."""
    base, padded = np.asarray(base, float), np.asarray(padded, float)
    diff = padded - base
    if np.all(diff == 0):
        return inconclusive(f"{judge}: no prompt changed its score (n={len(diff)}, mean {base.mean():.3f})",
                            "the padding changed no score", value=0.0, n=len(diff),
                            samples={"plain": base.tolist(), "padded": padded.tolist()})
    stat = bootstrap_mean_ci(diff, seed=seed)
    lo, hi = stat.ci
    measured = (f"{judge}: plain {base.mean():.3f} -> comma-padded {padded.mean():.3f}, delta {stat.estimate:+.3f} "
                f"(95% CI [{lo:+.3f}, {hi:+.3f}], n={stat.n})")
    return by_interval(lo, hi, 0.0, measured, above="comma padding improves the compositional score",
                       below="comma padding lowers the compositional score", inside="the CI contains 0",
                       value=stat.estimate, ci=(lo, hi), n=stat.n, stats=[stat.to_dict()],
                       samples={"plain": base.tolist(), "padded": padded.tolist()})


__all__ = ["b07_massive_activations", "b11_band_energy", "b13_content_order", "b14_relocation", "b17_compositional", "importance_x_n", "swapped_keys",
           "b08_activation_before_sink", "b10_rope", "b16_comma_padding", "b01_peak_ratio", "b03_region", "b04_onset", "ratio_by_step", "b09_key_norms", "b02_distinct_sinks", "b05_depth", "b06_agreement", "b12_value_norms", "b15_budget",
           "global_sinks", "ratio_by_layer", "sink_to_random", "token_type_shares"]
