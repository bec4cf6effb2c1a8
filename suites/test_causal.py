"""Paper A: Wu & Summa, "Attention Sinks in Diffusion Transformers: A Causal Analysis" (claims A01-A31).

One test per (claim, applicable model). The H1 dynamics claims (A01-A08) are readings of the shared attention
measurement of each model (benchmark.measurements), judged by benchmark.criteria.causal. The intervention claims
(A09-A31) compare seed-paired images, baseline vs intervention (benchmark.experiments), scored by the papers'
metrics (the domain's own on the organisms) and judged by benchmark.criteria.effects.

Paper A's conditions: A1 = per-head top-1 key removed at the middle layer, A2 = the same at the shallow, middle
and deep layers, A3 = per-head top-5 at the middle layer; removal = logit + log(0) (a finite -inf), at every
step, in both CFG branches.
"""
import numpy as np

from benchmark import figures
from benchmark.criteria import causal, effects
from benchmark.experiments import (BASELINE, claim_n, distances, intervention, layer_count, paired_images,
                                   probe_layers, text_scores)
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


# ------------------------------------------------------------------------------- interventions (A09-A31)
def _layers(ctx, card):
    return probe_layers(card, layer_count(ctx, card))


def _a(ctx, card, name, **changes):
    """Paper A's conditions A1 / A2 / A3, with optional changes (eta, window, value path, ...)."""
    layers = _layers(ctx, card)
    base = {"A1": dict(select="topk_head", k=1, layers=(layers["middle"],)),
            "A2": dict(select="topk_head", k=1, layers=(layers["shallow"], layers["middle"], layers["deep"])),
            "A3": dict(select="topk_head", k=5, layers=(layers["middle"],))}[name]
    return intervention(**{**base, **changes})


def _margin(claim, metric):
    return float(claim.margins[metric])


def _natural(card):
    return "natural_images" in card.traits


def _images(claim, card, ctx, conditions, kind="core", **kw):
    return paired_images(ctx, card, claim_n(ctx, card, claim, kind), {"baseline": BASELINE, **conditions}, **kw)


def _no_effect_on(claim, card, ctx, label, condition, metric="clip_t", kind="core"):
    imgs = _images(claim, card, ctx, {label: condition}, kind)
    base, cond = text_scores(ctx, card, metric, imgs, "baseline"), text_scores(ctx, card, metric, imgs, label)
    return effects.no_effect(base, cond, _margin(claim, metric), what=metric, seed=ctx.settings.seed,
                             samples={"prompt_id": list(imgs.prompt_ids), "seed": list(imgs.seeds)})


@criterion("A09")
def a09(claim, card, ctx):
    return _no_effect_on(claim, card, ctx, "A1", _a(ctx, card, "A1"))


@criterion("A10")
def a10(claim, card, ctx):
    return _no_effect_on(claim, card, ctx, "A2", _a(ctx, card, "A2"))


@criterion("A11")
def a11(claim, card, ctx):
    imgs = _images(claim, card, ctx, {"A3": _a(ctx, card, "A3")})
    return effects.within_margin(text_scores(ctx, card, "clip_t", imgs, "baseline"),
                                 text_scores(ctx, card, "clip_t", imgs, "A3"), _margin(claim, "clip_t"),
                                 what="clip_t", seed=ctx.settings.seed)


@criterion("A12")
def a12(claim, card, ctx):
    imgs = _images(claim, card, ctx, {c: _a(ctx, card, c) for c in ("A1", "A2", "A3")})
    hps = {label: text_scores(ctx, card, "hps_v2", imgs, label) for label in ("baseline", "A1", "A2", "A3")}
    seed = ctx.settings.seed
    return effects.combine({
        "A1": effects.ci_contains_zero(hps["baseline"], hps["A1"], what="hps_v2", seed=seed),
        "A2": effects.ci_contains_zero(hps["baseline"], hps["A2"], what="hps_v2", seed=seed),
        "A3": effects.negative_shift(hps["baseline"], hps["A3"], what="hps_v2", seed=seed)})


@criterion("A13")
def a13(claim, card, ctx):
    imgs = _images(claim, card, ctx, {c: _a(ctx, card, c) for c in ("A1", "A2")})
    ir = {label: text_scores(ctx, card, "image_reward", imgs, label) for label in ("baseline", "A1", "A2")}
    margin = _margin(claim, "image_reward")
    return effects.combine({c: effects.no_effect(ir["baseline"], ir[c], margin, what="image_reward",
                                                 seed=ctx.settings.seed) for c in ("A1", "A2")})


@criterion("A14")
def a14(claim, card, ctx):
    imgs = _images(claim, card, ctx, {"A2": _a(ctx, card, "A2")})
    entries = [e for m in imgs.meta["A2"] for e in m["generation"]["intervention"]["entries"]]
    outcome = effects.removal([e["log10_reduction"] for e in entries], [e["log_mass_before"] for e in entries])
    by_layer = {}
    for e in entries:
        by_layer.setdefault(e["layer"], []).append(np.exp(float(e["log_mass_before"])))
    outcome.measured += "; mass before by layer " + ", ".join(f"L{k} {np.mean(v):.2%}" for k, v in sorted(by_layer.items()))
    return outcome


@criterion("A15")
def a15(claim, card, ctx):
    from benchmark.experiments import adapter_for

    layers = adapter_for(ctx, card, ctx.generation_overrides()).attention_layers()
    mid = {kind: tuple(layer.index for layer in layers if layer.block == "mid" and layer.kind == kind)
           for kind in ("self", "cross")}
    conditions = {name: intervention(select="topk_head", k=1, layers=mid[kind])
                  for name, kind in (("attn1", "self"), ("attn2", "cross"))}
    imgs = _images(claim, card, ctx, conditions)
    base = text_scores(ctx, card, "clip_t", imgs, "baseline")
    seed, margin = ctx.settings.seed, _margin(claim, "clip_t")
    lp = {name: distances(ctx, card, imgs, name) for name in conditions}
    parts = {f"CLIP-T {name}": effects.no_effect(base, text_scores(ctx, card, "clip_t", imgs, name), margin,
                                                 what="clip_t", seed=seed) for name in conditions}
    parts["LPIPS attn2 > attn1"] = effects.greater(lp["attn1"], lp["attn2"], what="LPIPS attn2 - attn1", seed=seed)
    return effects.combine(parts)


def _sweep(claim, card, ctx, conditions, title, figure):
    """A16/A17: each level's delta for CLIP-T (and ImageReward on natural images), flat within the margins."""
    imgs = _images(claim, card, ctx, conditions, kind="sweep")
    metrics = ["clip_t"] + (["image_reward"] if _natural(card) else [])
    parts, rows = {}, {}
    for metric in metrics:
        base = text_scores(ctx, card, metric, imgs, "baseline")
        levels = {label: (base, text_scores(ctx, card, metric, imgs, label)) for label in conditions}
        parts[metric] = effects.sweep_flat(levels, _margin(claim, metric), what=metric, seed=ctx.settings.seed)
        rows[metric] = [(float(np.mean(c - b)), *effects.no_effect(b, c, _margin(claim, metric), what=metric,
                                                                    seed=ctx.settings.seed).ci)
                        for b, c in levels.values()]
    outcome = effects.combine(parts) if len(parts) > 1 else parts["clip_t"]
    if not _natural(card):
        outcome.reason += " (ImageReward not applicable to the organism's shapes domain: CLIP-T only)"
    return figures.attach(outcome, ctx, f"{figure}_{card.name}.png", lambda path: figures.dose_response(
        list(conditions), rows, path, f"{title} ({card.name}, n={imgs.n})",
        {m: _margin(claim, m) for m in metrics}))


@criterion("A16")
def a16(claim, card, ctx):
    etas = (0.5, 0.25, 0.1, 0.01, 0.0)
    return _sweep(claim, card, ctx, {f"eta={e:g}": _a(ctx, card, "A1", eta=e) for e in etas},
                  "A16 score-path dose-response (logit + log eta, top-1 per head, middle layer)", "A16")


@criterion("A17")
def a17(claim, card, ctx):
    levels = {"lerp 0.5": dict(value_mode="lerp", alpha=0.5), "mean": dict(value_mode="mean"),
              "zero": dict(value_mode="zero")}
    return _sweep(claim, card, ctx, {k: _a(ctx, card, "A1", path="value", **v) for k, v in levels.items()},
                  "A17 value-path sweep (top-1 per head, middle layer)", "A17")


@criterion("A18")
def a18(claim, card, ctx):
    windows = {"early": (0.0, 0.2), "mid": (0.4, 0.6), "late": (0.8, 1.0)}
    imgs = _images(claim, card, ctx, {k: _a(ctx, card, "A1", window=w) for k, w in windows.items()}, kind="sweep")
    steps = int(imgs.settings["steps"])
    base = text_scores(ctx, card, "clip_t", imgs, "baseline")
    parts = {}
    for name, (lo, hi) in windows.items():
        active = sorted({s for m in imgs.meta[name] for s in m["generation"]["intervention"]["steps"]})
        expected = [i for i in range(steps) if lo - 1e-12 <= i / steps <= hi + 1e-12]
        if active != expected:   # the engine's own check: a gating bug is an ERROR, never a verdict
            raise AssertionError(f"A18 {name}: intervened steps {active}, the window {lo}-{hi} of {steps} steps "
                                 f"is {expected}")
        if not expected:
            from benchmark.verdict import inconclusive

            parts[name] = inconclusive(f"no step i of {steps} has {lo} <= i/T <= {hi}", "the window is empty at this T")
            continue
        part = effects.no_effect(base, text_scores(ctx, card, "clip_t", imgs, name), _margin(claim, "clip_t"),
                                 what="clip_t", seed=ctx.settings.seed)
        part.measured += f", active at steps {active[0]}-{active[-1]} ({len(active)}/{steps})"
        parts[name] = part
    return effects.combine(parts)


@criterion("A19")
def a19(claim, card, ctx):
    imgs = _images(claim, card, ctx, {c: _a(ctx, card, c) for c in ("A1", "A2", "A3")})
    lp = {c: distances(ctx, card, imgs, c) for c in ("A1", "A2", "A3")}
    seed = ctx.settings.seed
    outcome = effects.combine({"A2 - A1": effects.greater(lp["A1"], lp["A2"], what="LPIPS A2 - A1", seed=seed),
                               "A3 - A1": effects.greater(lp["A1"], lp["A3"], what="LPIPS A3 - A1", seed=seed)})
    outcome.measured = ("LPIPS A1 {:.4f}, A2 {:.4f}, A3 {:.4f}; ".format(*(float(lp[c].mean()) for c in lp))
                        + outcome.measured + _fid_note(ctx, card, imgs, ("A1", "A2", "A3")))
    return outcome


def _fid_note(ctx, card, imgs, labels):
    """FID_shift and KID of each condition against the baseline (reported, not judged: N is small)."""
    from benchmark.experiments import metric_for
    from benchmark.metrics import MetricUnavailable
    from benchmark.metrics.fid import fid_shift

    try:
        features = metric_for(ctx, card, "fid")
    except MetricUnavailable as exc:      # FID is only reported here: the verdict stands on LPIPS
        return f"; FID_shift not computed ({exc})"
    shifts = {c: fid_shift(imgs.images["baseline"], imgs.images[c], features, seed=ctx.settings.seed) for c in labels}
    return "; FID_shift " + ", ".join(f"{c} {s['fid']:.1f} (KID {s['kid_mean']:.4f})" for c, s in shifts.items())


@criterion("A20")
def a20(claim, card, ctx):
    from benchmark.experiments import fresh_images
    from benchmark.runner import Condition

    n = claim_n(ctx, card, claim)
    imgs = fresh_images(ctx, card, n, {"baseline": BASELINE, "probed": Condition.make("probe")})
    return effects.bit_identical(imgs.images["baseline"], imgs.images["probed"])


def _union(ctx, card, k, random=False):
    middle = _layers(ctx, card)["middle"]
    return intervention(select="random_union" if random else "topk_union", k=k, layers=(middle,))


@criterion("A21")
def a21(claim, card, ctx):
    conditions = {f"{kind} k={k}": _union(ctx, card, k, kind == "random") for k in (1, 5) for kind in ("sink", "random")}
    imgs = _images(claim, card, ctx, conditions)
    lp = {label: distances(ctx, card, imgs, label) for label in conditions}
    seed = ctx.settings.seed
    outcome = effects.combine({f"k={k}": effects.sink_vs_random(lp[f"sink k={k}"], lp[f"random k={k}"],
                                                                what="LPIPS", seed=seed) for k in (1, 5)})
    columns = ["baseline", "sink k=1", "random k=1", "sink k=5", "random k=5"]
    shown = range(min(4, imgs.n))
    return figures.attach(outcome, ctx, f"A21_{card.name}.png", lambda path: figures.image_panels(
        [(imgs.prompts[i], [imgs.images[c][i] for c in columns]) for i in shown], columns, path,
        f"A21 {card.name}: union-budget sink vs random masking at layer {_layers(ctx, card)['middle']}"))


BUDGETS = (1, 5, 10, 20, 50)


@criterion("A22")
def a22(claim, card, ctx):
    conditions = {f"{kind} k={k}": _union(ctx, card, k, kind == "random") for k in BUDGETS for kind in ("sink", "random")}
    imgs = _images(claim, card, ctx, conditions, kind="sweep")
    clip = {label: text_scores(ctx, card, "clip_t", imgs, label) for label in conditions}
    dds = {f"k={k}": clip[f"sink k={k}"] - clip[f"random k={k}"] for k in BUDGETS}
    return effects.flat_after_holm(dds, _margin(claim, "clip_t"), what="CLIP-T", seed=ctx.settings.seed)


@criterion("A23")
def a23(claim, card, ctx):
    budgets = (1, 10, 50)
    conditions = {f"{kind} k={k}": _union(ctx, card, k, kind == "random") for k in budgets for kind in ("sink", "random")}
    imgs = _images(claim, card, ctx, conditions, kind="sweep")
    hps = {label: text_scores(ctx, card, "hps_v2", imgs, label) for label in conditions}
    dd = {k: hps[f"sink k={k}"] - hps[f"random k={k}"] for k in budgets}
    seed = ctx.settings.seed
    zeros = np.zeros(imgs.n)
    return effects.combine({
        "k=1": effects.ci_contains_zero(zeros, dd[1], what="HPS-v2 DD", seed=seed),
        "k=10": effects.negative_shift(zeros, dd[10], what="HPS-v2 DD", seed=seed),
        "k=50": effects.negative_shift(zeros, dd[50], what="HPS-v2 DD", seed=seed),
        "trend": effects.trend(dd[10], dd[50], what="DD(50) - DD(10)", seed=seed)})


@criterion("A24")
def a24(claim, card, ctx):
    sides = {"text-only": _a(ctx, card, "A1", sink_modality="text"),
             "image-only": _a(ctx, card, "A1", sink_modality="image")}
    imgs = _images(claim, card, ctx, sides)
    lp = {s: distances(ctx, card, imgs, s) for s in sides}
    base = text_scores(ctx, card, "clip_t", imgs, "baseline")
    seed, margin = ctx.settings.seed, _margin(claim, "clip_t")
    return effects.combine({
        "LPIPS text - image": effects.greater(lp["image-only"], lp["text-only"], what="LPIPS text-only - image-only",
                                              seed=seed),
        **{f"CLIP-T {s}": effects.no_effect(base, text_scores(ctx, card, "clip_t", imgs, s), margin, what="clip_t",
                                            seed=seed) for s in sides}})


@criterion("A25")
def a25(claim, card, ctx):
    imgs = _images(claim, card, ctx, {"A1": _a(ctx, card, "A1")})
    base, cond = text_scores(ctx, card, "clip_t", imgs, "baseline"), text_scores(ctx, card, "clip_t", imgs, "A1")
    tags = np.asarray(imgs.tags)
    groups = {t: (base[tags == t], cond[tags == t]) for t in dict.fromkeys(imgs.tags)}
    return effects.no_regression(groups, _margin(claim, "clip_t"), what="clip_t", seed=ctx.settings.seed)


SWAP_SCHEDULER = "unipc"        # valid for flow matching (flow sigmas) and for the others


def _sampling_variants(card, settings):
    """A26's sampling changes: CFG at 0.4x and 1.6x the card's guidance (paper: 3 / 7.5 / 12), 0.4x the steps
    (paper: 8 of 20), and a scheduler swap built for the model's kind."""
    guidance, steps = settings.get("guidance"), int(settings["steps"])
    variants = {}
    if guidance:
        variants[f"CFG {0.4 * guidance:g}"] = {"guidance": 0.4 * guidance}
        variants[f"CFG {1.6 * guidance:g}"] = {"guidance": 1.6 * guidance}
    fewer = max(2, round(0.4 * steps))       # one step is a different sampler in some pipelines (PixArt's DMD path)
    if fewer < steps:
        variants[f"{fewer} steps"] = {"steps": fewer}
    variants[f"scheduler {SWAP_SCHEDULER}"] = {"scheduler": SWAP_SCHEDULER}
    return variants


@criterion("A26")
def a26(claim, card, ctx):
    n = claim_n(ctx, card, claim, "sweep")
    default = paired_images(ctx, card, n, {"baseline": BASELINE, "A1": _a(ctx, card, "A1")})
    sets = {f"CFG {default.settings.get('guidance'):g} (default)" if default.settings.get("guidance") else "default":
            default}
    for label, overrides in _sampling_variants(card, default.settings).items():
        sets[label] = paired_images(ctx, card, n, {"baseline": BASELINE, "A1": _a(ctx, card, "A1")},
                                    overrides=overrides)
    seed, margin = ctx.settings.seed, _margin(claim, "clip_t")
    parts = {label: effects.no_effect(text_scores(ctx, card, "clip_t", imgs, "baseline"),
                                      text_scores(ctx, card, "clip_t", imgs, "A1"), margin, what="clip_t", seed=seed)
             for label, imgs in sets.items()}
    lpips = {label: distances(ctx, card, imgs, "A1") for label, imgs in sets.items()}
    cfg = sorted((label for label in sets if label.startswith("CFG")), key=lambda x: float(x.split()[1]))
    if len(cfg) >= 2:
        parts["LPIPS grows with CFG"] = effects.increasing({c: lpips[c] for c in cfg}, what="LPIPS", seed=seed)
    outcome = effects.combine(parts)
    outcome.measured = "LPIPS " + ", ".join(f"{k} {v.mean():.4f}" for k, v in lpips.items()) + "; " + outcome.measured
    return outcome


@criterion("A27")
def a27(claim, card, ctx):
    from benchmark.experiments import metric_for
    from benchmark.metrics.fid import fid_from_features, fid_shift

    n = claim_n(ctx, card, claim)
    imgs = _images(claim, card, ctx, {c: _a(ctx, card, c) for c in ("A1", "A2", "A3")})
    other_seeds = paired_images(ctx, card, n, {"baseline": BASELINE}, seed_offset=100_000)
    calibration = {"seed variation": other_seeds.images["baseline"]}
    variants = {f"scheduler {SWAP_SCHEDULER}": {"scheduler": SWAP_SCHEDULER}}
    if ctx.settings.paper_settings:       # the rest of Tab.18's calibration set
        guidance, steps = imgs.settings.get("guidance"), int(imgs.settings["steps"])
        if guidance:
            variants.update({f"CFG {guidance - 1:g}": {"guidance": guidance - 1}, f"CFG {guidance + 1:g}": {"guidance": guidance + 1}})
        variants.update({f"{steps - d} steps": {"steps": steps - d} for d in (5, 10) if steps - d >= 1})
    for label, overrides in variants.items():
        calibration[label] = paired_images(ctx, card, n, {"baseline": BASELINE}, overrides=overrides).images["baseline"]
    features = metric_for(ctx, card, "fid")
    base = features(imgs.images["baseline"])
    feats = {label: features(images) for label, images in calibration.items()}
    feats.update({c: features(imgs.images[c]) for c in ("A1", "A2", "A3")})
    outcome = effects.distribution_shift_exceeds(base, feats["A1"], feats["seed variation"], seed=ctx.settings.seed)
    fid = {label: fid_from_features(base, f) for label, f in feats.items()}
    kid = {label: fid_shift(imgs.images["baseline"], images, features, seed=ctx.settings.seed)["kid_mean"]
           for label, images in {**calibration, "A1": imgs.images["A1"]}.items()}
    outcome.measured = ("A1 vs seed variation: " + outcome.measured + "; FID_shift " +
                        ", ".join(f"{k} {v:.1f}" for k, v in fid.items()) + "; KID " +
                        ", ".join(f"{k} {v:.4f}" for k, v in kid.items()) +
                        " (FID from N < 2048 is rank-deficient and biased: compare at equal N)")
    outcome.samples = dict(outcome.samples or {}, fid=fid, kid=kid)
    return outcome


@criterion("A28")
def a28(claim, card, ctx):
    imgs = _images(claim, card, ctx, {"A1": _a(ctx, card, "A1")})
    judge = "vqa_blip2"
    outcome = effects.ci_contains_zero(text_scores(ctx, card, judge, imgs, "baseline"),
                                       text_scores(ctx, card, judge, imgs, "A1"), what="VQA", seed=ctx.settings.seed)
    if card.organism:
        outcome.measured += " (judge: the organism's detector, 1 = the caption's objects, counts, colours, position found)"
    return outcome


SUBCONCEPTS = {"color": ("colors", "color_attr"), "spatial": ("position",), "counting": ("counting",)}


@criterion("A29")
def a29(claim, card, ctx):
    imgs = _images(claim, card, ctx, {"A1": _a(ctx, card, "A1")})
    base, cond = text_scores(ctx, card, "clip_t", imgs, "baseline"), text_scores(ctx, card, "clip_t", imgs, "A1")
    tags = np.asarray(imgs.tags)
    parts = {}
    for name, members in SUBCONCEPTS.items():
        chosen = np.isin(tags, members)
        if chosen.sum() >= 3:
            parts[name] = effects.no_effect(base[chosen], cond[chosen], _margin(claim, "clip_t"), what="clip_t",
                                            seed=ctx.settings.seed)
    if not parts:
        from benchmark.verdict import inconclusive

        return inconclusive(f"tags {sorted(set(imgs.tags))}", "no colour, spatial or counting prompts (>= 3) in the set")
    return effects.combine(parts)


@criterion("A30")
def a30(claim, card, ctx):
    from benchmark.experiments import caption_set

    spec, note = caption_set(ctx, card, claim_n(ctx, card, claim))
    imgs = _images(claim, card, ctx, {"A1": _a(ctx, card, "A1")}, prompt_spec=spec)
    outcome = effects.no_effect(text_scores(ctx, card, "clip_t", imgs, "baseline"),
                                text_scores(ctx, card, "clip_t", imgs, "A1"), _margin(claim, "clip_t"),
                                what="clip_t", seed=ctx.settings.seed)
    outcome.measured += f" on {note}; LPIPS {float(distances(ctx, card, imgs, 'A1').mean()):.4f}"
    return outcome


INDEX0_SHARE = 0.1    # A31: "index-0 mass << dynamic top-1 mass", read as less than a tenth of it


@criterion("A31")
def a31(claim, card, ctx):
    from benchmark.criteria.common import by_interval
    from benchmark.stats import bootstrap_mean_ci

    middle = _layers(ctx, card)["middle"]
    removal = _no_effect_on(claim, card, ctx, "index0", intervention(select="index0", layers=(middle,)))
    data = _data(catalogue()["A01"], card, ctx)
    mass = data.mass[middle]                              # (items, steps, keys), head-averaged
    ratio = (mass[..., 0] / mass.max(axis=-1)).mean(axis=1)
    stat = bootstrap_mean_ci(ratio, seed=ctx.settings.seed)
    lo, hi = stat.ci
    share = by_interval(lo, hi, INDEX0_SHARE, (
        f"index-0 mass {mass[..., 0].mean():.3%} vs top-1 {mass.max(axis=-1).mean():.3%} at layer {middle} (index 0 is "
        f"a {data.token_types[middle][0, 0]} token): ratio {stat.estimate:.3f} (95% CI [{lo:.3f}, {hi:.3f}], n={stat.n})"),
        holds="below", above=f"index 0 holds more than {INDEX0_SHARE:g} of the top-1 mass",
        below=f"index 0 holds less than {INDEX0_SHARE:g} of the top-1 mass", inside=f"the CI contains {INDEX0_SHARE:g}",
        value=stat.estimate, ci=(lo, hi), n=stat.n, stats=[stat.to_dict()], samples={"ratio": ratio.tolist()})
    return effects.combine({"removal": removal, "index-0 is not the sink": share})


globals().update(claim_tests("causal"))
