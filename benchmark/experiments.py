"""Seed-paired image experiments: the images and scores that paper A's intervention claims compare.

A claim asks for named conditions (baseline, an InterventionSpec, a prompt transform...) over the first N prompts
of the model's prompt set; every condition of a (prompt, seed) starts from the same noise. Images go through the
runner into the content-addressed cache under <cache>/images, so conditions shared by several claims (the
baseline, paper A's A1 condition) are generated once and an interrupted run resumes. Scores go through each
metric's cache under <cache>/metrics.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .cards import ModelCard
from .context import RunContext
from .interventions import InterventionSpec
from .runner import BASELINE, Condition

# Organisms run on a CPU inside the plain `pytest suites/` budget: claims use at most this many prompts per
# condition there (the report states N); --n-prompts or --paper-settings override it.
ORGANISM_PROMPTS = {"core": 16, "sweep": 8}


@dataclass
class ImageSet:
    """Images of the same prompts and seeds under several conditions (label -> one image per prompt)."""

    prompt_ids: tuple[str, ...]
    prompts: tuple[str, ...]
    tags: tuple[str, ...]
    seeds: tuple[int, ...]
    images: dict[str, list[np.ndarray]]
    meta: dict[str, list[dict[str, Any]]]
    settings: dict[str, Any] = field(default_factory=dict)
    prompt_meta: tuple[Mapping[str, Any], ...] = ()

    @property
    def n(self) -> int:
        return len(self.prompt_ids)

    def keys(self) -> list[tuple[str, int]]:
        return list(zip(self.prompt_ids, self.seeds))


def claim_n(ctx: RunContext, card: ModelCard, claim: Any, kind: str = "core") -> int:
    """N of one claim on one model: --paper-settings / --n-prompts, else the claim's default (on an organism,
    capped by its CPU budget: ORGANISM_PROMPTS[kind])."""
    n = ctx.n_for(claim.default_n, claim.paper_n)
    if card.organism and not (ctx.settings.paper_settings or ctx.settings.n_prompts):
        n = min(n, ORGANISM_PROMPTS[kind])
    return n


def probe_layers(card: ModelCard, n_layers: int) -> dict[str, int]:
    """Paper A's shallow / middle / deep layers (6 / 12 / 18 of SD3's 24): the card's `probed_layers` when it
    has them, else the layers at 1/4, 1/2 and 3/4 of the depth."""
    given = (card.settings or {}).get("probed_layers")
    if given and len(given) == 3 and max(given) < n_layers:
        return dict(zip(("shallow", "middle", "deep"), (int(x) for x in given)))
    return {"shallow": n_layers // 4, "middle": n_layers // 2, "deep": (3 * n_layers) // 4}


def adapter_for(ctx: RunContext, card: ModelCard, overrides: Mapping[str, Any] | None = None):
    """The loaded pipeline of a model under some generation settings; the weights are loaded once per model."""
    from .adapters import DiffusionAdapter, resolve_checkpoint
    from .generate import settings_for
    from .measurements import checkpoint_source

    overrides = dict(overrides or {})
    memo = ctx.extra.setdefault("adapters", {})
    key = (card.name, tuple(sorted(overrides.items())))
    if key not in memo:
        source = checkpoint_source(card, ctx)
        settings = settings_for(resolve_checkpoint(source), overrides)
        # other sampling settings of a loaded model (A26's guidance, steps, scheduler) share its weights
        loaded = next((a for (name, _), a in memo.items() if name == card.name and a.settings.dtype == settings.dtype),
                      None)
        if loaded is not None:
            memo[key] = loaded.with_settings(settings)
        else:
            memo.clear()            # one model in memory at a time: real checkpoints are large
            memo[key] = DiffusionAdapter.load(source, settings, device=ctx.device,
                                              max_batch=16 if card.organism else 1)
    return memo[key]


def layer_count(ctx: RunContext, card: ModelCard) -> int:
    return len(adapter_for(ctx, card, ctx.generation_overrides()).attention_layers())


def paired_images(ctx: RunContext, card: ModelCard, n: int, conditions: Mapping[str, Condition], *,
                  overrides: Mapping[str, Any] | None = None, prompt_spec: str | None = None,
                  seed_offset: int = 0, transform: Any = None) -> ImageSet:
    """The first n prompts of the model's prompt set (or `prompt_spec`; `transform`ed, e.g. comma padding) under
    each named condition, seed = run seed + seed_offset + prompt index, generated with the card's settings plus
    `overrides`."""
    from .cache import GenerationCache
    from .measurements import prompt_spec as default_spec
    from .prompts import apply_transform, load_prompts
    from .runner import paired_items, run

    prompts = load_prompts(prompt_spec or default_spec(card, ctx, n))
    if transform is not None:
        prompts = apply_transform(prompts, transform)
    if len(prompts) < n:
        raise ValueError(f"asked for {n} prompts, {prompt_spec or 'the prompt set'} has {len(prompts)}")
    adapter = adapter_for(ctx, card, ctx.generation_overrides(**dict(overrides or {})))
    items = paired_items(prompts.pairs()[:n], list(conditions.values()),
                         base_seed=ctx.settings.seed + seed_offset)
    entries, _ = run(items, adapter, GenerationCache(Path(ctx.settings.cache_dir) / "images"), progress=True)
    images: dict[str, list[np.ndarray]] = {label: [] for label in conditions}
    meta: dict[str, list[dict[str, Any]]] = {label: [] for label in conditions}
    by_condition = {cond: label for label, cond in conditions.items()}
    if len(by_condition) != len(conditions):
        raise ValueError("two labels name the same condition: " + ", ".join(conditions))
    for item in items:
        entry = entries[item]
        label = by_condition[item.condition]
        images[label].append(entry.load())
        meta[label].append(dict(entry.meta))
    chosen = prompts.prompts[:n]
    return ImageSet(tuple(p.id for p in chosen), tuple(p.text for p in chosen),
                    tuple(p.tags[0] if p.tags else "" for p in chosen),
                    tuple(ctx.settings.seed + seed_offset + i for i in range(n)), images, meta,
                    adapter.settings.to_dict(), tuple(p.meta for p in chosen))


def fresh_images(ctx: RunContext, card: ModelCard, n: int, conditions: Mapping[str, Condition]) -> ImageSet:
    """Like paired_images, but generated now, outside the cache, with every condition in identical batches
    (A20 compares bits: batch composition must not differ between the conditions)."""
    from .measurements import prompt_spec as default_spec
    from .prompts import load_prompts
    from .runner import WorkItem

    prompts = load_prompts(default_spec(card, ctx, n)).prompts[:n]
    adapter = adapter_for(ctx, card, ctx.generation_overrides())
    seeds = [ctx.settings.seed + i for i in range(n)]
    images: dict[str, list[np.ndarray]] = {label: [] for label in conditions}
    for start in range(0, n, adapter.max_batch):
        chunk = range(start, min(n, start + adapter.max_batch))
        for label, condition in conditions.items():
            images[label] += adapter.generate([WorkItem(prompts[i].id, prompts[i].text, seeds[i], condition)
                                               for i in chunk])
    return ImageSet(tuple(p.id for p in prompts), tuple(p.text for p in prompts),
                    tuple(p.tags[0] if p.tags else "" for p in prompts), tuple(seeds), images,
                    {label: [{} for _ in range(n)] for label in conditions}, adapter.settings.to_dict(),
                    tuple(p.meta for p in prompts))


CAPTIONS_ENV = "SINKBENCH_CAPTIONS"
ORGANISM_CAPTION_SEED = 30_000


def caption_set(ctx: RunContext, card: ModelCard, n: int) -> tuple[str, str]:
    """(prompt spec, description) of the caption set of A30 (paper A: COCO captions). Real models: the file in
    $SINKBENCH_CAPTIONS (text or JSONL, e.g. COCO val2014 captions; nothing is downloaded). Organisms: held-out
    captions of their own domain drawn with another seed, written once under the cache."""
    import json
    import os

    from .prompts import PromptError

    if card.organism:
        from .organism.dataset import make_sample

        path = Path(ctx.settings.cache_dir) / "prompts" / f"organism-captions-{ORGANISM_CAPTION_SEED}-{n}.jsonl"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            rows = [make_sample(ORGANISM_CAPTION_SEED, i) for i in range(n)]
            tmp = path.with_suffix(".tmp")
            tmp.write_text("".join(json.dumps({"id": f"cap-{i:05d}", "prompt": r.caption, "tag": r.tag}) + "\n"
                                   for i, r in enumerate(rows)))
            tmp.replace(path)
        return str(path), f"{n} held-out organism captions (seed {ORGANISM_CAPTION_SEED}; COCO is not its domain)"
    given = os.environ.get(CAPTIONS_ENV)
    if not given:
        raise PromptError(f"A30 needs a caption set: set {CAPTIONS_ENV} to a text file (one caption per line) or a "
                          "JSONL file with \"prompt\" fields, e.g. captions from COCO val2014 "
                          "(annotations/captions_val2014.json at https://cocodataset.org)")
    return f"{given}:{n}", f"{n} captions of {given}"


def intervention(**params: Any) -> Condition:
    """The runner condition of an intervention (validated by InterventionSpec)."""
    return InterventionSpec(**params).condition()


# -------------------------------------------------------------------- scores
def metric_for(ctx: RunContext, card: ModelCard, name: str):
    """A metric ready to score this model's images (the organisms' domain metrics on an organism), loaded once
    per run; MetricUnavailable (-> SKIPPED with the how-to) when its weights are missing."""
    from .metrics import load_metric_for

    memo = ctx.extra.setdefault("metrics", {})
    key = (name, bool(card.organism))
    if key not in memo:
        memo[key] = load_metric_for(card, name, device=ctx.device)
    return memo[key]


def scores(ctx: RunContext, card: ModelCard, name: str, images: Sequence[np.ndarray],
           others: Sequence[Any] | None = None) -> np.ndarray:
    """Per-image scores of a metric, through its cache (re-running a report re-scores nothing)."""
    from .metrics import MetricCache

    metric = metric_for(ctx, card, name)
    cache = ctx.extra.setdefault("metric_cache", MetricCache(Path(ctx.settings.cache_dir) / "metrics"))
    return metric.score(list(images), None if others is None else list(others), cache=cache)


def text_scores(ctx: RunContext, card: ModelCard, name: str, images: ImageSet, label: str) -> np.ndarray:
    """A prompt-alignment metric (CLIP-T, HPS-v2, ImageReward, VQA) of one condition's images. The organisms'
    judge (the detector) reads each prompt's scene requirements instead of its text."""
    metric = metric_for(ctx, card, name)
    if getattr(metric, "pairs", "text") == "scene":
        others = [f"{m['organism_seed']}:{m['organism_index']}" for m in images.prompt_meta]
    else:
        others = list(images.prompts)
    return scores(ctx, card, name, images.images[label], others)


def distances(ctx: RunContext, card: ModelCard, images: ImageSet, label: str, reference: str = "baseline",
              name: str = "lpips") -> np.ndarray:
    """Perceptual distance (LPIPS) of each image of `label` to its seed-paired `reference` image."""
    return scores(ctx, card, name, images.images[label], images.images[reference])


__all__ = ["ImageSet", "ORGANISM_PROMPTS", "BASELINE", "adapter_for", "caption_set", "claim_n", "distances",
           "fresh_images", "intervention",
           "layer_count", "metric_for", "paired_images", "probe_layers", "scores", "text_scores"]
