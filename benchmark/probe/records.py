"""The on-disk format of recorded attention statistics (docs/probe-format.md).

    OUT/measure.json            what was measured: checkpoint, family, settings, probe spec, layers, items,
                                the key segmentation of each probed layer (per item), and the files below
    OUT/items/<item>.npz        one array per (statistic, layer, step, branch):
                                "<stat>__L<layer:03d>__S<step:03d>__<branch>"
    OUT/key_importance/L<layer:03d>.npy
                                mu_k of that layer: incoming mass averaged over items, steps and heads
                                (cond branch), float64, shape (N_keys,)
Files are written atomically; measure.json last, so a directory with measure.json is complete.
"""
from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

FORMAT = "sinkbench-attention-records"
VERSION = 1


def array_name(stat: str, layer: int, step: int, branch: str) -> str:
    return f"{stat}__L{layer:03d}__S{step:03d}__{branch}"


def parse_array_name(name: str) -> tuple[str, int, int, str]:
    stat, layer, step, branch = name.split("__")
    return stat, int(layer[1:]), int(step[1:]), branch


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def item_file_name(prompt_id: str, seed: int) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in prompt_id)
    return f"{safe}_s{seed}.npz"


def write_item(out: Path, prompt_id: str, seed: int, records: Mapping[tuple, Mapping[str, np.ndarray]]) -> str:
    """records: {(layer, step, branch): {stat: array}} of one item -> items/<name>.npz."""
    arrays = {array_name(stat, layer, step, branch): np.asarray(a)
              for (layer, step, branch), stats in records.items() for stat, a in stats.items()}
    name = item_file_name(prompt_id, seed)
    _atomic(out / "items" / name, lambda fh: np.savez_compressed(fh, **arrays))
    return f"items/{name}"


def read_item(path: str | Path) -> dict[tuple[str, int, int, str], np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {parse_array_name(n): data[n] for n in data.files}


def span_layout(spans_per_item: Sequence[Sequence[Sequence[Any]]]) -> list[tuple[str, int, int]]:
    """A common key layout for items whose segments differ in length (e.g. Qwen-Image's unpadded text):
    the segments in order, each as long as its longest occurrence."""
    names: list[str] = []
    longest: dict[str, int] = {}
    for spans in spans_per_item:
        for name, start, end in spans:
            if name not in longest:
                names.append(name)
            longest[name] = max(longest.get(name, 0), int(end) - int(start))
    layout, offset = [], 0
    for name in names:
        layout.append((name, offset, offset + longest[name]))
        offset += longest[name]
    return layout


def align_keys(array: np.ndarray, spans: Sequence[Sequence[Any]], layout: Sequence[tuple[str, int, int]],
               fill: Any = 0.0) -> np.ndarray:
    """Place an item's per-key values (last axis) into the common layout; keys a segment lacks get `fill`."""
    total = layout[-1][2] if layout else array.shape[-1]
    if array.shape[-1] == total and [tuple(s[1:]) for s in spans] == [tuple(s[1:]) for s in layout]:
        return array
    out = np.full(array.shape[:-1] + (total,), fill, dtype=array.dtype)
    where = {name: start for name, start, _ in layout}
    for name, start, end in spans:
        out[..., where[name]:where[name] + (end - start)] = array[..., start:end]
    return out


def key_importance(item_files: Sequence[Path], branch: str = "cond",
                   spans: Sequence[Mapping[int, Sequence[Sequence[Any]]]] | None = None) -> dict[int, np.ndarray]:
    """mu_k per layer: the mean over items and steps of the recorded head-averaged (or per-head) mass.
    `spans` (per item: layer -> segments) aligns items whose key counts differ to a common layout."""
    sums: dict[int, np.ndarray] = {}
    counts: dict[int, int] = defaultdict(int)
    layouts: dict[int, list] = {}
    if spans:
        for layer in spans[0]:
            layouts[layer] = span_layout([s[layer] for s in spans if layer in s])
    for index, path in enumerate(item_files):
        for (stat, layer, _step, br), array in read_item(path).items():
            if stat != "mass" or br != branch:
                continue
            vector = array.mean(axis=0) if array.ndim == 2 else array
            if layer in layouts and spans and layer in spans[index]:
                vector = align_keys(vector, spans[index][layer], layouts[layer])
            sums[layer] = sums.get(layer, 0) + vector.astype(np.float64)
            counts[layer] += 1
    return {layer: sums[layer] / counts[layer] for layer in sums}


def write_measurement(out: str | Path, *, adapter, items: Sequence, probe, item_files: Sequence[str],
                      segmentations: Mapping[str, Any], blocks: Sequence[str] | None = None,
                      condition: Mapping[str, Any] | None = None) -> Path:
    out = Path(out)
    kinds = {layer.index: f"{layer.kind}/{layer.block}" for layer in adapter.attention_layers()}
    spans = [{index: segmentations[it.prompt_id][kind]["spans"] for index, kind in kinds.items()
              if kind in segmentations.get(it.prompt_id, {})} for it in items]
    importance = key_importance([out / f for f in item_files], spans=spans)
    files = {}
    for layer, vector in importance.items():
        rel = f"key_importance/L{layer:03d}.npy"
        _atomic(out / rel, lambda fh, v=vector: np.save(fh, v))
        files[str(layer)] = rel
    doc = {
        "format": FORMAT, "version": VERSION,
        "checkpoint": dict(adapter.checkpoint.identity), "family": adapter.family.name,
        "settings": adapter.settings.to_dict(), "probe": _plain(asdict(probe)),
        "layers": [{"index": l.index, "name": l.name, "kind": l.kind, "block": l.block}
                   for l in adapter.attention_layers()],
        "items": [{"prompt_id": it.prompt_id, "prompt": it.prompt, "seed": it.seed, "file": f}
                  for it, f in zip(items, item_files)],
        "key_importance": files, "segmentation": segmentations,
    }
    if blocks is not None:      # the blocks whose output magnitudes "block_act_max" indexes, in forward order
        doc["blocks"] = list(blocks)
    if condition is not None:   # an edit applied while measuring (content swap, PE edit): name and parameters
        doc["condition"] = _plain(dict(condition))
    path = out / "measure.json"
    _atomic(path, lambda fh: fh.write((json.dumps(doc, indent=1) + "\n").encode()))
    return path


def load_measurement(out: str | Path) -> dict[str, Any]:
    path = Path(out) / "measure.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: not a (complete) `sinkbench measure` directory")
    doc = json.loads(path.read_text())
    if doc.get("format") != FORMAT:
        raise ValueError(f"{path}: format {doc.get('format')!r} is not {FORMAT!r}")
    return doc


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
