"""The shared attention measurement behind the sink claims: one probe run per (model, settings, prompts,
probe), cached and resumable under the run's cache directory, read back as arrays.

Several claims (B01, B02, B05, B06, B12, B15, ...) are different readings of the same records, so a model is
measured once with the largest N any of them asks for, and each claim takes the first N items it needs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .cache import cache_key
from .cards import ModelCard
from .context import RunContext
from .probe.records import align_keys, load_measurement, read_item, span_layout

STATS = ("mass", "entropy", "value_norm", "key_norm", "activation")
PER_KEY_EXTRA = ("logit_mean", "logit_mean_pre_rope")     # read into AttentionData.extra when recorded
READ = STATS + PER_KEY_EXTRA


@dataclass(frozen=True)
class AttentionData:
    """Per layer (in forward order): incoming attention mass per key averaged over the probed queries and
    heads, conditional branch, `mass[l]` of shape (items, steps, keys) with rows summing to 1; value and key
    norms of the same shape (None when not recorded); `token_types[l]` (items, keys) of strings."""

    layers: tuple[dict[str, Any], ...]
    prompt_ids: tuple[str, ...]
    mass: tuple[np.ndarray, ...]
    token_types: tuple[np.ndarray, ...]
    value_norm: tuple[np.ndarray | None, ...]
    key_norm: tuple[np.ndarray | None, ...]
    source: str = ""
    # per layer: (first image key, frames, rows, cols) of the image/video keys, None when the layer has none
    image_grid: tuple[tuple[int, int, int, int] | None, ...] = ()
    # per layer: (items, steps) attention entropy of the probed queries' rows, mean over heads (nats)
    entropy: tuple[np.ndarray | None, ...] = ()
    # other per-key statistics (e.g. logit_mean, logit_mean_pre_rope): name -> per layer (items, steps, keys)
    extra: dict[str, tuple[np.ndarray | None, ...]] = field(default_factory=dict)
    # block output magnitudes (massive activations): (items, blocks, steps) max |h|, and each block's first
    # attention layer (blocks hold one attention layer in DiTs, two in SDXL's transformer blocks)
    block_act_max: np.ndarray | None = None
    block_first_layer: tuple[int, ...] = ()

    @property
    def n_items(self) -> int:
        return len(self.prompt_ids)

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def depth(self) -> np.ndarray:
        """Relative depth of each layer, (i + 0.5) / L."""
        return (np.arange(self.n_layers) + 0.5) / self.n_layers

    def importance(self, layer: int) -> np.ndarray:
        """Key importance mu_k per item (items, keys): mass averaged over steps."""
        return self.mass[layer].mean(axis=1)

    def first(self, n: int) -> "AttentionData":
        if n > self.n_items:
            raise ValueError(f"asked for {n} items, the measurement has {self.n_items}")
        cut = lambda arrays: tuple(None if a is None else a[:n] for a in arrays)   # noqa: E731
        return AttentionData(self.layers, self.prompt_ids[:n], cut(self.mass), cut(self.token_types),
                             cut(self.value_norm), cut(self.key_norm), self.source, self.image_grid,
                             cut(self.entropy), {k: cut(v) for k, v in self.extra.items()},
                             None if self.block_act_max is None else self.block_act_max[:n], self.block_first_layer)


def load_attention(out: str | Path, branch: str = "cond") -> AttentionData:
    """Read a `sinkbench measure` directory (docs/probe-format.md) into arrays."""
    out = Path(out)
    doc = load_measurement(out)
    layers = tuple(doc["layers"])
    per_stat: dict[str, list[list[np.ndarray]]] = {s: [[] for _ in layers] for s in READ}
    types: list[list[np.ndarray]] = [[] for _ in layers]
    position = {layer["index"]: i for i, layer in enumerate(layers)}
    # items whose segments differ in length (unpadded text) are aligned to one layout per layer
    layouts = [span_layout([doc["segmentation"][it["prompt_id"]][f"{layer['kind']}/{layer['block']}"]["spans"]
                            for it in doc["items"]]) for layer in layers]
    blocks = doc.get("blocks") or []
    activations = []
    for item in doc["items"]:
        arrays = read_item(out / item["file"])
        if blocks:
            act = np.full((len(blocks), max((k[2] for k in arrays), default=-1) + 1), np.nan)
            for (stat, block, step, br), value in arrays.items():
                if stat == "block_act_max" and br == branch:
                    act[block, step] = float(value)
            activations.append(act)
        grouped: dict[tuple[str, int], dict[int, np.ndarray]] = {}
        for (stat, layer, step, br), value in arrays.items():
            if br == branch and stat in READ:
                grouped.setdefault((stat, layer), {})[step] = np.asarray(value, np.float64)
        segmentation = doc["segmentation"][item["prompt_id"]]
        for layer in layers:
            i = position[layer["index"]]
            seg = segmentation[f"{layer['kind']}/{layer['block']}"]
            for stat in READ:
                by_step = grouped.get((stat, layer["index"]))
                if by_step:
                    stacked = np.stack([by_step[s] for s in sorted(by_step)])
                    if stat != "entropy":          # per key; entropy is per head
                        stacked = align_keys(stacked, seg["spans"], layouts[i])
                    per_stat[stat][i].append(stacked)
            types[i].append(align_keys(np.asarray(seg["token_type"], dtype=object), seg["spans"], layouts[i],
                                       fill="absent").astype(str))
    mass = []
    for i, rows in enumerate(per_stat["mass"]):
        if len(rows) != len(doc["items"]):
            raise ValueError(f"{out}: layer {layers[i]['name']} has mass records for {len(rows)} of "
                             f"{len(doc['items'])} items")
        stacked = np.stack(rows)
        mass.append(stacked / stacked.sum(axis=-1, keepdims=True))   # absent keys (alignment) hold 0
    grids = []
    first = doc["segmentation"][doc["items"][0]["prompt_id"]]
    for i, layer in enumerate(layers):
        grid = first[f"{layer['kind']}/{layer['block']}"].get("grid")
        span = next((sp for sp in layouts[i] if sp[0] in ("image", "video")), None)
        grids.append((int(span[1]), *map(int, grid)) if span and grid else None)
    norms = {stat: tuple(np.stack(rows) if len(rows) == len(doc["items"]) else None for rows in per_stat[stat])
             for stat in ("value_norm", "key_norm", "entropy") + PER_KEY_EXTRA}
    entropy = tuple(None if e is None else e.mean(axis=-1) for e in norms["entropy"])   # over heads
    first_layer = tuple(min(position[layer["index"]] for layer in layers if layer["name"].startswith(block + "."))
                        for block in blocks)
    return AttentionData(layers, tuple(item["prompt_id"] for item in doc["items"]), tuple(mass),
                         tuple(np.stack(t) for t in types), norms["value_norm"], norms["key_norm"], str(out),
                         tuple(grids), entropy,
                         {k: norms[k] for k in PER_KEY_EXTRA if any(v is not None for v in norms[k])},
                         np.stack(activations) if activations else None, first_layer)


def checkpoint_source(card: ModelCard, ctx: RunContext) -> str:
    if card.organism:   # --checkpoint with an organism card: a copy or fine-tune of the organism
        return ctx.settings.checkpoint or str(card.weights_path)
    return ctx.settings.checkpoint or card.hub_id


def prompt_spec(card: ModelCard, ctx: RunContext, n: int) -> str:
    """The prompts of a measurement, n of them: --prompts (its own ":N" replaced), else the organisms'
    held-out captions, else GenEval."""
    import re

    given = ctx.settings.prompts
    if given:
        sized = re.fullmatch(r"(.+):(\d+)", given.strip())
        base = sized.group(1) if sized and not Path(given).expanduser().exists() else given.strip()
        return f"{base}:{n}"
    return f"organism:{n}" if card.organism else f"geneval:{n}"


def attention_data(ctx: RunContext, card: ModelCard, n: int, claims: Sequence[Any] = (),
                   transform: Any = None, stats: Sequence[str] = STATS, condition: Any = None) -> AttentionData:
    """The first n items of the model's shared attention measurement (measured once, with the largest N that
    `claims` or n ask for; cached on disk, so a re-run measures nothing). `transform` (a PromptTransform, e.g.
    comma padding) measures the same prompts transformed, `condition` (a runner Condition: content swap, PE
    edit) with an edit applied, and other `stats` (e.g. pre-RoPE logits), as separate measurements."""
    from .prompts import apply_transform, load_prompts
    from .probe.measure import run_measurement
    from .probe.session import ProbeSpec

    n_max = max([n] + [ctx.n_for(c.default_n, c.paper_n) for c in claims])
    memo = ctx.extra.setdefault("attention_data", {})
    memo_key = (card.name, str(transform) if transform is not None else None, tuple(stats), condition)
    if memo_key in memo and memo[memo_key].n_items >= n:
        return memo[memo_key].first(n)
    source = checkpoint_source(card, ctx)
    prompts = load_prompts(prompt_spec(card, ctx, n_max))
    if transform is not None:
        prompts = apply_transform(prompts, transform)
    probe = ProbeSpec(stats=tuple(stats), queries="auto", branches=("cond",))
    overrides = ctx.generation_overrides()
    # format 2: block outputs also keep per-token maxima (B07); the checkpoint's content identity (directory hash
    # or hub revision), so retrained weights at the same path are measured anew
    from .adapters import resolve_checkpoint

    weights = {k: v for k, v in dict(resolve_checkpoint(source).identity).items() if k != "path"}
    key = cache_key({"measurement": "attention", "format": 2, "source": source, "weights": weights, "card": card.name, "prompts": prompts.sha256,
                     "probe": {"stats": list(stats), "queries": "auto", "branches": ["cond"]},
                     "overrides": overrides, "seed": ctx.settings.seed,
                     **({"condition": condition.spec()} if condition is not None else {})})
    out = Path(ctx.settings.cache_dir) / "measurements" / card.name / key[:16]
    device = ctx.device
    if not (out / "measure.json").is_file():
        # the organisms are small enough to batch on a CPU; real models keep one prompt per call
        run_measurement(source, prompts.pairs(), out, probe, base_seed=ctx.settings.seed, device=device,
                        overrides=overrides, progress=True, batch_size=16 if card.organism else 1,
                        condition=condition)
    data = load_attention(out)
    memo[memo_key] = data
    return data.first(n)


def key_tokens(data: AttentionData, layer: int) -> np.ndarray:
    """(items, keys) decoded token of each key of a layer (\"\" for patches), as the measured model saw them
    (under a content swap, the swapped tokens), from the measurement's segmentation."""
    doc = load_measurement(Path(data.source))
    info = data.layers[layer]
    group = f"{info['kind']}/{info['block']}"
    rows = [doc["segmentation"][pid][group]["tokens"] for pid in data.prompt_ids]
    width = max(len(r) for r in rows)
    return np.asarray([list(r) + [""] * (width - len(r)) for r in rows], dtype=object).astype(str)


IMAGE_TYPES = ("patch", "frame_patch")


def key_activations(data: AttentionData) -> list[np.ndarray]:
    """Per layer, (items, steps, keys): max |h| over channels of each key's hidden state at the input of the
    layer's block (the previous block's output, B07), NaN for layers without a measured previous block. A
    block's output tensors are matched to the keys by length (image tensor <-> image keys, text <-> text);
    joint blocks return (text, image) in diffusers, which decides equal lengths."""
    out = Path(data.source)
    doc = load_measurement(out)
    blocks = doc.get("blocks") or []
    n_items, steps = data.n_items, data.mass[0].shape[1]
    result = [np.full((n_items, steps, m.shape[-1]), np.nan) for m in data.mass]
    first = list(data.block_first_layer)
    for item_index, item in enumerate(doc["items"][:n_items]):
        arrays = read_item(out / item["file"])
        for b in range(1, len(blocks)):
            layer = first[b]
            types = data.token_types[layer][item_index]
            image = np.flatnonzero(np.isin(types, IMAGE_TYPES))
            text = np.flatnonzero(~np.isin(types, IMAGE_TYPES + ("absent",)))
            for step in range(steps):
                token_max = arrays.get(("block_token_max", b - 1, step, "cond"))
                lengths = arrays.get(("block_token_lengths", b - 1, step, "cond"))
                if token_max is None or lengths is None:
                    continue
                pieces = np.split(np.asarray(token_max, float), np.cumsum(lengths)[:-1])
                free = {"text": text, "image": image}
                for piece in pieces:
                    if len(piece) == len(text) + len(image) and len(pieces) == 1:
                        target = np.sort(np.concatenate([text, image]))
                    elif "text" in free and len(piece) == len(free["text"]) and \
                            not ("image" in free and len(piece) == len(free["image"]) and len(pieces) == 1):
                        target = free.pop("text")
                    elif "image" in free and len(piece) == len(free["image"]):
                        target = free.pop("image")
                    else:
                        continue            # a tensor that is not keys of this layer (e.g. a modulation output)
                    result[layer][item_index, step, target] = piece
    return result


def rope_low_band(config: Any) -> tuple[np.ndarray, str]:
    """(head_dim,) bool: the channels of each RoPE axis' lower-frequency half, and a description of the split.
    RoPE rotates channel pairs, pair j of an axis of d channels at frequency theta^(-2j/d): the upper half of
    the pairs (j >= d/4) of every axis is the low-frequency band. Axes come from the denoiser config
    (axes_dims_rope / axes_dims; Wan: t, h, w from the head dim), else one axis over the head."""
    head = int(config.get("attention_head_dim") or int(config["dim"]) // int(config["n_heads"]))   # Z-Image
    axes = config.get("axes_dims_rope") or config.get("axes_dims")
    if axes is None and "rope_max_seq_len" in config:              # Wan: h = w = 2 * (head // 6), t = the rest
        hw = 2 * (head // 6)
        axes = [head - 2 * hw, hw, hw]
    axes = [int(a) for a in (axes or [head])]
    if sum(axes) != head:
        axes = [head]
    low = np.zeros(head, dtype=bool)
    start = 0
    for d in axes:
        pair = np.arange(d) // 2
        low[start:start + d] = pair >= (d // 2) / 2
        start += d
    return low, f"per RoPE axis (dims {axes}), the lower-frequency half of its rotation pairs"


def key_band_energy(data: AttentionData, low: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Low-frequency energy fraction of the top-1 key (by mass) and of the average key, (items, layers, steps),
    from a measurement with the key_energy statistic (docs/probe-format.md)."""
    out = Path(data.source)
    doc = load_measurement(out)
    position = {layer["index"]: i for i, layer in enumerate(doc["layers"])}
    sink, mean = [], []
    for item in doc["items"]:
        arrays = read_item(out / item["file"])
        steps = 1 + max(k[2] for k in arrays)
        s = np.full((len(position), steps), np.nan)
        m = np.full((len(position), steps), np.nan)
        for (stat, layer, step, branch), value in arrays.items():
            if branch != "cond" or layer not in position:
                continue
            if stat == "key_energy_top":
                top = np.asarray(value, float)[0]                     # the top-1 key's per-channel energy
                s[position[layer], step] = top[low].sum() / top.sum()
            elif stat == "key_energy_all":
                avg = np.asarray(value, float)
                m[position[layer], step] = avg[low].sum() / avg.sum()
        sink.append(s)
        mean.append(m)
    return np.stack(sink), np.stack(mean)


__all__ = ["AttentionData", "STATS", "attention_data", "key_activations", "key_band_energy", "key_tokens", "load_attention", "rope_low_band"]
