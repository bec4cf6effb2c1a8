"""`sinkbench measure`: record attention statistics of a checkpoint over a prompt set (resumable)."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .records import item_file_name, write_item, write_measurement
from .session import ProbeSpec


def run_measurement(checkpoint: str, prompts: Sequence[tuple[str, str]], out: str | Path, probe: ProbeSpec, *,
                    base_seed: int = 0, device: str = "cpu", overrides: Mapping[str, Any] | None = None,
                    progress: bool = True, batch_size: int = 1, condition: Any = None) -> Path:
    """Generate each prompt (seed = base_seed + index) with the probe installed and write the records,
    `batch_size` prompts per pipeline call (each keeps its own seed). Items whose file already exists are not
    measured again (an interrupted run resumes; items are written as their batch finishes)."""
    from ..adapters import DiffusionAdapter, resolve_checkpoint
    from ..generate import settings_for
    from ..runner import WorkItem

    out = Path(out)
    adapter = DiffusionAdapter.load(checkpoint, settings_for(resolve_checkpoint(checkpoint), overrides),
                                    device=device)
    layers = adapter.attention_layers()
    items = [WorkItem(pid, text, base_seed + i) for i, (pid, text) in enumerate(prompts)]
    files, segmentations = [], {}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(items), desc="measuring", unit="prompt")
        bar.update(sum((out / f"items/{item_file_name(it.prompt_id, it.seed)}").is_file() for it in items))
    try:
        pending = [it for it in items if not (out / f"items/{item_file_name(it.prompt_id, it.seed)}").is_file()]
        for start in range(0, len(pending), max(1, batch_size)):
            batch = pending[start:start + max(1, batch_size)]
            if condition is None:
                _, session = adapter.measure(batch, probe=probe)
            else:                          # an edit (content swap, PE edit) applied around the probed generation
                with adapter.condition_context(condition, batch):
                    _, session = adapter.measure(batch, probe=probe)
            for position, item in enumerate(batch):
                records = {(layer, step, branch): dict(stats) for (row, layer, step, branch), stats
                           in session.records.items() if row == position}
                # block output magnitudes: stat "block_act_max", indexed by block (docs/probe-format.md)
                for (row, block, step, branch), act in session.activations.items():
                    if row == position:
                        stats = records.setdefault((block, step, branch), {})
                        stats["block_act_max"] = np.asarray(act["max"])
                        # per token, the block's output tensors concatenated (B07), and each tensor's length
                        stats["block_token_max"] = np.asarray(act["token_max"], np.float32)
                        stats["block_token_lengths"] = act["lengths"]
                write_item(out, item.prompt_id, item.seed, records)
            if bar is not None:
                bar.update(len(batch))
        for item in items:
            files.append(f"items/{item_file_name(item.prompt_id, item.seed)}")
            groups = {}
            # token types as the model saw them: under a content swap, the swapped tokens
            context = adapter.condition_context(condition, [item]) if condition is not None else contextlib.nullcontext()
            with context:
                for layer in layers:
                    if (probe.layers is None or layer.index in probe.layers) and \
                            f"{layer.kind}/{layer.block}" not in groups:
                        groups[f"{layer.kind}/{layer.block}"] = adapter.segment(item.prompt, layer).to_dict()
            segmentations[item.prompt_id] = groups
    finally:
        if bar is not None:
            bar.close()
    blocks = None
    if "activation" in probe.stats:
        from .session import _blocks_of

        probed = [layer for layer in layers if probe.layers is None or layer.index in probe.layers]
        blocks = [name for name, _ in _blocks_of(adapter.denoiser, probed)]
    return write_measurement(out, adapter=adapter, items=items, probe=probe, item_files=files,
                             segmentations=segmentations, blocks=blocks,
                             condition=condition.spec() if condition is not None else None)
