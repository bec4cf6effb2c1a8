"""The generation job: seed-paired images of a prompt set from one checkpoint, into the cache.

`sinkbench generate CHECKPOINT --prompts geneval:64` loads the checkpoint (hub id or directory), builds the
(prompt, seed) work list, and lets the runner fill the content-addressed cache (resuming whatever an earlier,
interrupted run finished). Under torchrun (WORLD_SIZE > 1) every rank takes its shard of the work and all
ranks write the same cache; the images are identical to a one-process run.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .adapters import Checkpoint, DiffusionAdapter, GenerationSettings, resolve_checkpoint
from .cache import GenerationCache
from .cards import load_cards
from .runner import BASELINE, RunStats, paired_items, run
from .tiny import MARKER_FILE


def card_settings(pipeline_class: str) -> dict[str, Any]:
    """The paper settings of the (real-model) card of this pipeline class, if any."""
    for card in load_cards().values():
        if not card.organism and card.pipeline_class == pipeline_class:
            return dict(card.settings)
    return {}


def organism_card_at(path: Path):
    """The organism card whose weights are this directory, or a copy or fine-tune of them, if any."""
    from .cards import organism_card_for

    return organism_card_for(path)


def settings_for(checkpoint: Checkpoint, overrides: Mapping[str, Any] | None = None) -> GenerationSettings:
    """Card settings of the family (an organism's own card for its directory), then a tiny pipeline's own
    settings, then explicit overrides."""
    organism = organism_card_at(checkpoint.path) if checkpoint.path is not None else None
    values = dict(organism.settings) if organism else card_settings(checkpoint.pipeline_class)
    marker = checkpoint.path / MARKER_FILE
    if marker.is_file():
        values.update(json.loads(marker.read_text())["settings"])
    return GenerationSettings.from_mapping(values, **dict(overrides or {}))


def init_distributed(device: str) -> tuple[int, int, str]:
    """Join the torchrun process group when there is one; returns (rank, world, device for this rank)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, device
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    if device == "cuda":
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(device)
    return dist.get_rank(), dist.get_world_size(), device


@dataclass
class GenerationJob:
    checkpoint: str
    prompts: list[tuple[str, str]]
    cache_dir: str
    base_seed: int = 0
    device: str = "cpu"
    cpu_offload: bool = False
    max_batch: int = 1
    overrides: Mapping[str, Any] | None = None
    progress: bool = True

    def execute(self) -> tuple[dict, RunStats]:
        rank, world, device = init_distributed(self.device)
        checkpoint = resolve_checkpoint(self.checkpoint)
        settings = settings_for(checkpoint, self.overrides)
        adapter = DiffusionAdapter.load(self.checkpoint, settings, device=device, cpu_offload=self.cpu_offload,
                                        max_batch=self.max_batch)
        items = paired_items(self.prompts, [BASELINE], base_seed=self.base_seed)
        cache = GenerationCache(self.cache_dir)
        entries, stats = run(items, adapter, cache, progress=self.progress and rank == 0, shard=(rank, world))
        manifest = {
            "checkpoint": adapter.checkpoint.identity, "family": adapter.family.name,
            "settings": settings.to_dict(), "world_size": world,
            "items": [{"prompt_id": it.prompt_id, "prompt": it.prompt, "seed": it.seed,
                       "condition": it.condition.spec(), "key": e.key, "sha256": e.meta.get("sha256"),
                       "path": str(e.path)} for it, e in entries.items()],
        }
        if world > 1:
            import torch.distributed as dist

            dist.barrier()
        return manifest, stats


def write_manifest(manifest: Mapping[str, Any], out: str | Path, png: bool = False) -> Path:
    """manifest.json (every item with its cache key and sha256), and PNGs of images when asked."""
    import numpy as np

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if png:
        from PIL import Image

        for item in manifest["items"]:
            array = np.load(item["path"], allow_pickle=False)
            frame = array[0] if array.ndim == 4 else array      # videos: first frame as a preview
            name = f"{item['prompt_id']}_s{item['seed']}_{item['condition']['name']}.png"
            Image.fromarray(frame).save(out / name)
            item["png"] = name
    path = out / "manifest.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    tmp.replace(path)
    return path
