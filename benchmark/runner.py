"""The seed-paired generation runner.

For every (prompt, seed) each condition (baseline, interventions, prompt transforms) starts from
the same initial noise: the seed alone decides the noise, never the batch or the condition. Work
is deduplicated by cache key, so a baseline shared by several claims is generated once; finished
images are stored as soon as their batch ends, so an interrupted run resumes where it stopped.
Work can be sharded over processes (torchrun / accelerate): each rank generates its share of the
missing items into the same cache, and every rank then reads the full result from it.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Protocol, Sequence

import numpy as np

from .cache import CacheEntry, GenerationCache, cache_key
from .environment import package_versions

# Libraries whose versions can change pixels; part of every cache key.
KEY_LIBRARIES = ("torch", "diffusers", "transformers")


@dataclass(frozen=True)
class Condition:
    """What is done to a generation, as data: a name and its parameters (names the cache entry)."""

    name: str = "baseline"
    params: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def make(cls, name: str, **params: Any) -> "Condition":
        return cls(name, tuple(sorted(params.items())))

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "params": dict(self.params)}


BASELINE = Condition()


@dataclass(frozen=True)
class WorkItem:
    prompt_id: str
    prompt: str
    seed: int
    condition: Condition = BASELINE


class BatchGenerator(Protocol):
    """What the runner needs from a model adapter."""

    max_batch: int

    def identity(self) -> Mapping[str, Any]:
        """Model identity and every generation setting (steps, guidance, size, scheduler, dtype...)."""

    def generate(self, items: Sequence[WorkItem]) -> list[np.ndarray]:
        """uint8 images (H, W, 3) or videos (F, H, W, 3), one per item, each from its own seed."""


def library_versions() -> dict[str, str | None]:
    return package_versions(KEY_LIBRARIES)


def item_key(item: WorkItem, identity: Mapping[str, Any], versions: Mapping[str, Any]) -> str:
    return cache_key({"model": dict(identity), "prompt": item.prompt, "seed": item.seed,
                      "condition": item.condition.spec(), "libraries": dict(versions)})


def shard_of() -> tuple[int, int]:
    """(rank, world size) from torch.distributed when initialised, else from RANK/WORLD_SIZE, else (0, 1)."""
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
    except ImportError:
        pass
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _wait_for_other_ranks(world: int, keys: Iterable[str], cache: GenerationCache, timeout_s: float) -> None:
    """torch.distributed's barrier when initialised; otherwise poll the shared cache."""
    if world <= 1:
        return
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.barrier()
            return
    except ImportError:
        pass
    pending = set(keys)
    deadline = time.monotonic() + timeout_s
    while pending:
        pending = {k for k in pending if cache.get(k, log=False) is None}
        if pending and time.monotonic() > deadline:
            raise TimeoutError(f"{len(pending)} item(s) of other ranks still missing after {timeout_s:.0f} s")
        if pending:
            time.sleep(0.2)


@dataclass
class RunStats:
    requested: int = 0
    unique: int = 0
    cached: int = 0
    generated: int = 0
    seconds: float = 0.0
    per_image_s: list[float] = field(default_factory=list)


def run(items: Iterable[WorkItem], generator: BatchGenerator, cache: GenerationCache, *,
        progress: bool = True, shard: tuple[int, int] | None = None,
        shard_timeout_s: float = 24 * 3600) -> tuple[dict[WorkItem, CacheEntry], RunStats]:
    """Generate what the cache lacks and return every item's cache entry."""
    items = list(items)
    identity = dict(generator.identity())
    versions = library_versions()
    keys = {item: item_key(item, identity, versions) for item in items}
    stats = RunStats(requested=len(items), unique=len(set(keys.values())))
    rank, world = shard or shard_of()
    if not 0 <= rank < world:
        raise ValueError(f"bad shard: rank {rank} of world size {world}")

    # One representative item per key, grouped by condition (in order of first appearance) and in the
    # given order within a condition: a batch holds one condition's consecutive prompts, so the batches of
    # a condition are the same whichever other conditions share the run.
    first_seen: dict[Condition, int] = {}
    for item in items:
        first_seen.setdefault(item.condition, len(first_seen))
    position = {item: i for i, item in reversed(list(enumerate(items)))}
    unique: dict[str, WorkItem] = {}
    for item in sorted(items, key=lambda i: (first_seen[i.condition], position[i])):
        unique.setdefault(keys[item], item)
    mine = [(k, it) for n, (k, it) in enumerate(unique.items()) if n % world == rank]
    todo = [(k, it) for k, it in mine if cache.get(k) is None]
    stats.cached = len(mine) - len(todo)

    t0 = time.monotonic()
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc=f"generating (rank {rank}/{world})" if world > 1 else "generating",
                   unit="img")
    batch = max(1, int(generator.max_batch))
    chunks: list[list[tuple[str, WorkItem]]] = []
    for key, it in todo:                  # never mix conditions in one batch
        if chunks and len(chunks[-1]) < batch and chunks[-1][-1][1].condition == it.condition:
            chunks[-1].append((key, it))
        else:
            chunks.append([(key, it)])
    try:
        for chunk in chunks:
            t = time.monotonic()
            images = generator.generate([it for _, it in chunk])
            dt = (time.monotonic() - t) / len(chunk)
            if len(images) != len(chunk):
                raise RuntimeError(f"the generator returned {len(images)} images for {len(chunk)} items")
            extra = list(getattr(generator, "last_metadata", None) or [])
            extra = extra if len(extra) == len(chunk) else [{}] * len(chunk)
            for (key, it), image, done in zip(chunk, images, extra):
                cache.put(key, np.asarray(image), {
                    "prompt_id": it.prompt_id, "prompt": it.prompt, "seed": it.seed,
                    "condition": it.condition.spec(), "model": identity, "libraries": versions,
                    "seconds": dt, "batch_size": len(chunk), **({"generation": done} if done else {})})
                stats.per_image_s.append(dt)
            stats.generated += len(chunk)
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    stats.seconds = time.monotonic() - t0
    _wait_for_other_ranks(world, unique, cache, shard_timeout_s)

    entries: dict[WorkItem, CacheEntry] = {}
    for item in items:
        entry = cache.get(keys[item], log=False)
        if entry is None:
            raise RuntimeError(f"no cache entry for {item} after generation (key {keys[item]})")
        entries[item] = entry
    return entries, stats


def paired_items(prompts: Iterable[tuple[str, str]], conditions: Sequence[Condition], *,
                 base_seed: int = 0) -> list[WorkItem]:
    """Every (prompt, condition) with seed = base_seed + prompt index, as in paper A."""
    return [WorkItem(pid, text, base_seed + i, cond)
            for i, (pid, text) in enumerate(prompts) for cond in conditions]
