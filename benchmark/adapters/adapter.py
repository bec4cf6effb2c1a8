"""Load a diffusers pipeline of any known family and generate seed-paired batches with it.

One interface for every family (`DiffusionAdapter`): generate a batch of (prompt, seed) work items under a
condition, list the attention layers in depth order, segment their keys, and count denoising steps.
Checkpoints come from a hub id (standard Hugging Face caches; `local_files_only` when offline) or a local
directory; model_index.json decides the family.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator, Mapping, Sequence

import numpy as np

from ..environment import directory_identity
from ..runner import WorkItem
from .families import FAMILY_NAMES, family_for_pipeline_class, get_family
from .family import AttentionLayer, Family, GenerationSettings
from .segmentation import KeySegmentation

TORCH_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


class CheckpointNotFound(Exception):
    """The weights are not on this machine (and cannot be downloaded): a SKIPPED verdict, with the how-to."""


class WrongFamily(ValueError):
    """A checkpoint of another family than the one asked for."""


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def how_to_get(source: str) -> str:
    return (f"get it with `hf download {source}` (or `huggingface-cli download {source}`) on a machine with "
            f"network access into the Hugging Face cache (HF_HOME / HF_HUB_CACHE), or pass a local diffusers "
            f"directory with --checkpoint DIR; gated models need `hf auth login` and accepting the licence")


@dataclass(frozen=True)
class Checkpoint:
    """Where a pipeline's files are and what they are."""
    source: str                 # what the user gave: hub id or directory
    path: Path                  # the local directory holding model_index.json
    kind: str                   # "directory" or "hub"
    pipeline_class: str
    identity: Mapping[str, Any]  # directory hash, or hub id + revision

    @property
    def family(self) -> Family:
        family = family_for_pipeline_class(self.pipeline_class)
        if family is None:
            raise WrongFamily(f"{self.source}: pipeline class {self.pipeline_class!r} is not one SinkBench knows "
                              f"(families: {', '.join(FAMILY_NAMES)})")
        return family


def _looks_like_path(source: str) -> bool:
    return source.startswith((".", "/", "~")) or os.sep in source.strip("/").split("/", 1)[-1] or \
        Path(source).expanduser().exists()


def _read_class_name(index: Path) -> str:
    try:
        return json.loads(index.read_text())["_class_name"]
    except (OSError, json.JSONDecodeError, KeyError) as exc:
        raise WrongFamily(f"{index}: cannot read '_class_name' ({exc}); is this a diffusers pipeline?") from exc


def resolve_checkpoint(source: str, revision: str | None = None,
                       local_files_only: bool | None = None) -> Checkpoint:
    """Find the checkpoint's files: a local directory, or the hub id in the standard HF cache
    (downloaded there first when online and not local_files_only)."""
    local_files_only = hub_offline() if local_files_only is None else local_files_only
    path = Path(source).expanduser()
    if path.is_dir():
        index = path / "model_index.json"
        if not index.is_file():
            raise WrongFamily(f"{path} has no model_index.json: it is not a diffusers pipeline directory "
                              f"(save one with pipe.save_pretrained(DIR), or try `sinkbench make-tiny FAMILY DIR`)")
        return Checkpoint(source, path.resolve(), "directory", _read_class_name(index),
                          {"kind": "directory", **directory_identity(path)})
    if _looks_like_path(source) or source.count("/") != 1:
        raise CheckpointNotFound(f"checkpoint directory {source} does not exist "
                                 f"(a hub id looks like 'owner/name')")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        snapshot = snapshot_download(source, revision=revision, local_files_only=True)
    except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError):
        snapshot = None
    if snapshot is None and not local_files_only:
        try:
            snapshot = snapshot_download(source, revision=revision)
        except Exception as exc:  # network, auth, gating: all mean "not here"
            raise CheckpointNotFound(f"{source} is not in the local Hugging Face cache and could not be "
                                     f"downloaded ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
                                     f"{how_to_get(source)}") from exc
    if snapshot is None:
        raise CheckpointNotFound(f"{source} is not in the local Hugging Face cache and HF_HUB_OFFLINE / "
                                 f"local_files_only forbids downloading; {how_to_get(source)}")
    path = Path(snapshot)
    index = path / "model_index.json"
    if not index.is_file():
        raise WrongFamily(f"{source} has no model_index.json: it is not a diffusers pipeline")
    return Checkpoint(source, path, "hub", _read_class_name(index),
                      {"kind": "hub", "hub_id": source, "revision": path.name if revision is None else revision,
                       "snapshot": path.name})


# A condition handler returns a context manager active while the batch of that condition is generated.
ConditionHandler = Callable[["DiffusionAdapter", Sequence[WorkItem]], ContextManager[None]]


class DiffusionAdapter:
    """A loaded pipeline of one family, driven the same way for all families (a runner BatchGenerator)."""

    def __init__(self, pipe, family: Family, settings: GenerationSettings, checkpoint: Checkpoint, *,
                 device: str = "cpu", max_batch: int = 1):
        self.pipe = pipe
        self.family = family
        self.settings = settings
        self.checkpoint = checkpoint
        self.device = device
        self.max_batch = max(1, int(max_batch))
        self.step = 0                         # the denoising step about to run (callbacks fire after a step)
        self._step_listeners: list[Callable[[int], None]] = []
        self._conditions: dict[str, ConditionHandler] = {
            "baseline": lambda adapter, items: contextlib.nullcontext(),
            "intervention": _intervention_condition,
            "content_swap": _content_swap_condition,
            "pe_edit": _pe_edit_condition,
            "probe": _probe_condition,
        }
        self.last_metadata: list[dict[str, Any]] = []   # per item of the last generate(): what was done
        self._checkpoint_scheduler = pipe.scheduler       # before any swap: the base of with_settings

    # ------------------------------------------------------------ loading
    @classmethod
    def load(cls, source: str, settings: GenerationSettings | Mapping[str, Any], *, family: str | None = None,
             device: str = "cpu", cpu_offload: bool = False, revision: str | None = None,
             local_files_only: bool | None = None, max_batch: int = 1) -> "DiffusionAdapter":
        """Load a hub id or a local pipeline directory. `family`, when given, must match model_index.json."""
        import diffusers
        import torch

        if not isinstance(settings, GenerationSettings):
            settings = GenerationSettings.from_mapping(settings)
        checkpoint = resolve_checkpoint(source, revision=revision, local_files_only=local_files_only)
        found = checkpoint.family
        if family is not None and found.name != get_family(family).name:
            raise WrongFamily(f"{source} is a {checkpoint.pipeline_class} checkpoint (family '{found.name}'), "
                              f"not '{family}'; pass --model {found.name} or another checkpoint")
        pipeline_class = getattr(diffusers, found.pipeline_class)
        pipe = pipeline_class.from_pretrained(
            str(checkpoint.path), dtype=getattr(torch, TORCH_DTYPES[settings.dtype]), local_files_only=True)
        checkpoint_scheduler = pipe.scheduler
        if settings.scheduler is not None:
            from .family import build_scheduler

            pipe.scheduler = build_scheduler(pipe.scheduler, settings.scheduler)
        if cpu_offload:
            pipe.enable_model_cpu_offload(device=device)
        else:
            pipe.to(device)
        if str(device) == "cpu" and not cpu_offload:
            _own_cpu_storage(pipe)
        pipe.set_progress_bar_config(disable=True)
        adapter = cls(pipe, found, settings, checkpoint, device=device, max_batch=max_batch)
        adapter._checkpoint_scheduler = checkpoint_scheduler
        return adapter

    def with_settings(self, settings: GenerationSettings | Mapping[str, Any]) -> "DiffusionAdapter":
        """The same loaded weights under other generation settings (guidance, steps, size, scheduler), without
        loading again: a new pipeline object over the same modules, with a scheduler of its own built from
        the checkpoint's. A different dtype needs other weights, so it is refused (load again instead)."""
        if not isinstance(settings, GenerationSettings):
            settings = GenerationSettings.from_mapping(settings)
        if settings.dtype != self.settings.dtype:
            raise ValueError(f"with_settings keeps the weights' dtype {self.settings.dtype}; {settings.dtype} "
                             "needs DiffusionAdapter.load")
        components = dict(self.pipe.components)
        base = self._checkpoint_scheduler
        scheduler = type(base).from_config(base.config)
        if settings.scheduler is not None:
            from .family import build_scheduler

            scheduler = build_scheduler(scheduler, settings.scheduler)
        components["scheduler"] = scheduler
        pipe = type(self.pipe)(**components)
        pipe.set_progress_bar_config(disable=True)
        adapter = type(self)(pipe, self.family, settings, self.checkpoint, device=self.device,
                             max_batch=self.max_batch)
        adapter._checkpoint_scheduler = base
        return adapter

    # ------------------------------------------------------------ structure
    @property
    def denoiser(self):
        return getattr(self.pipe, self.family.denoiser_attr)

    def attention_layers(self) -> list[AttentionLayer]:
        return self.family.attention_layers(self.denoiser)

    def segment(self, prompt: str, layer: AttentionLayer) -> KeySegmentation:
        return self.family.segment(self.pipe, prompt, self.settings, layer)

    # ------------------------------------------------------------ runner interface
    def identity(self) -> dict[str, Any]:
        scheduler = self.pipe.scheduler
        return {
            "family": self.family.name, "pipeline_class": self.checkpoint.pipeline_class,
            "checkpoint": dict(self.checkpoint.identity), "settings": self.settings.to_dict(),
            "scheduler": {"class": type(scheduler).__name__, "config": _plain(dict(scheduler.config))},
            "device_type": str(self.device).split(":")[0],
        }

    def register_condition(self, name: str, handler: ConditionHandler) -> None:
        """Make a condition runnable: `handler(adapter, items)` returns the context to generate them in."""
        self._conditions[name] = handler

    def add_step_listener(self, listener: Callable[[int], None]) -> Callable[[], None]:
        """listener(step) is called before each denoising step runs (step 0 before the first).
        Returns a function that removes it."""
        self._step_listeners.append(listener)
        return lambda: self._step_listeners.remove(listener)

    def condition_context(self, condition, items: Sequence[WorkItem]):
        """The context that applies `condition` (an edit, an intervention...) to a generation of `items`."""
        if condition.name not in self._conditions:
            raise ValueError(f"condition {condition.name!r} has no handler on this adapter "
                             f"(known: {sorted(self._conditions)})")
        items = [it if it.condition == condition else dataclasses.replace(it, condition=condition) for it in items]
        return self._conditions[condition.name](self, items)

    def generate(self, items: Sequence[WorkItem]) -> list[np.ndarray]:
        """One uint8 image/video per item; each item's noise comes from its own seed only."""
        out: dict[int, np.ndarray] = {}
        meta: dict[int, dict[str, Any]] = {}
        groups: dict[Any, list[int]] = {}
        for i, item in enumerate(items):
            groups.setdefault(item.condition, []).append(i)
        for condition, indices in groups.items():
            batch = [items[i] for i in indices]
            with self.condition_context(condition, batch) as session:
                images = self._generate_batch([it.prompt for it in batch], [it.seed for it in batch])
            out.update(zip(indices, images))
            for position, i in enumerate(indices):
                meta[i] = _session_metadata(session, position)
        self.last_metadata = [meta[i] for i in range(len(items))]
        return [out[i] for i in range(len(items))]

    def measure(self, items: Sequence[WorkItem], probe=None, intervention=None):
        """Generate `items` (one condition's worth, in one batch) with probes and/or an intervention
        installed; returns (images, the AttentionSession with .records and .log)."""
        from ..probe.session import AttentionSession

        with AttentionSession(self, items, probe=probe, intervention=intervention) as session:
            images = self._generate_batch([it.prompt for it in items], [it.seed for it in items])
        return images, session

    # ------------------------------------------------------------ internals
    def _set_step(self, step: int) -> None:
        self.step = step
        for listener in list(self._step_listeners):
            listener(step)

    @contextlib.contextmanager
    def _counting_steps(self) -> Iterator[dict[str, Any]]:
        self._set_step(0)
        kwargs: dict[str, Any] = {}
        if self.family.legacy_callback:
            def callback(step, timestep, latents):
                self._set_step(step + 1)
            kwargs = {"callback": callback, "callback_steps": 1}
        else:
            def callback_on_step_end(pipe, step, timestep, callback_kwargs):
                self._set_step(step + 1)
                return callback_kwargs
            kwargs = {"callback_on_step_end": callback_on_step_end}
        yield kwargs

    def _generate_batch(self, prompts: list[str], seeds: list[int]) -> list[np.ndarray]:
        import torch

        kwargs = self.family.call_kwargs(self.pipe, self.settings)
        generators = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
        with self._counting_steps() as step_kwargs, torch.inference_mode(), \
                self.family.generation_context(self.pipe):
            output = self.pipe(prompt=prompts, generator=generators, **kwargs, **step_kwargs)
        images = self.family.to_uint8(output)
        if len(images) != len(prompts):
            raise RuntimeError(f"{self.family.name}: pipeline returned {len(images)} outputs for {len(prompts)} prompts")
        return images


def _intervention_condition(adapter: "DiffusionAdapter", items: Sequence[WorkItem]):
    """Condition "intervention": the items' condition params are an InterventionSpec."""
    from ..interventions import InterventionSpec
    from ..probe.session import AttentionSession

    spec = InterventionSpec.from_params(dict(items[0].condition.params))
    return AttentionSession(adapter, items, intervention=spec)


def _probe_condition(adapter: "DiffusionAdapter", items: Sequence[WorkItem]):
    """Condition "probe": every statistic recorded at every layer, step and CFG branch, nothing changed
    (paper A's no-op check, A20: the images must equal the baseline's bit for bit)."""
    from ..probe.session import STATS, AttentionSession, ProbeSpec

    return AttentionSession(adapter, items, probe=ProbeSpec(stats=tuple(STATS), branches=("cond", "uncond")))


def _content_swap_condition(adapter: "DiffusionAdapter", items: Sequence[WorkItem]):
    from ..edits import content_swap, from_params

    return content_swap(adapter.pipe, adapter.family.key_tokenizer_attr,
                        from_params("content_swap", dict(items[0].condition.params)))


def _pe_edit_condition(adapter: "DiffusionAdapter", items: Sequence[WorkItem]):
    from ..edits import from_params, position_embedding_edit

    return position_embedding_edit(adapter.denoiser, from_params("pe_edit", dict(items[0].condition.params)))


def _session_metadata(session, position: int) -> dict[str, Any]:
    """What an intervention did to one item (stored with its image in the cache metadata)."""
    if session is None or not hasattr(session, "log"):
        return {}
    # JSON has no infinities: a mass that is exactly 0 (log -inf) is stored as the string "-inf" (float() reads it)
    finite = lambda v: v if not isinstance(v, float) or math.isfinite(v) else repr(v)   # noqa: E731
    entries = [{k: finite(v) for k, v in e.items()} for e in session.log.entries if e["item"] == position]
    reductions = [float(e["log10_reduction"]) for e in entries if e["log10_reduction"] is not None]
    return {"intervention": {
        "spec": session.intervention.to_params() if session.intervention else None,
        "steps": sorted({e["step"] for e in entries}), "layers": sorted({e["layer"] for e in entries}),
        "calls": len(entries), "segmentation_mismatches": session.segmentation_mismatches,
        "log10_reduction_min": finite(min(reductions)) if reductions else None,
        "log10_reduction_median": finite(float(np.median(reductions))) if reductions else None,
        "entries": entries,
    }}


def _own_cpu_storage(pipe) -> None:
    """Give every CPU weight its own freshly allocated storage.

    from_pretrained leaves CPU weights as views into the memory-mapped safetensors file; CPU matmul kernels
    for batch-1 calls can round differently with the alignment of such views (measured: one uint8 level in
    Qwen-Image's timestep embedding), which would make images depend on how the file happened to be mapped
    and a reloaded or second process differ from the first."""
    import torch

    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            for tensor in list(component.parameters()) + list(component.buffers()):
                if tensor.device.type == "cpu":
                    tensor.data = tensor.data.clone()


def _plain(value: Any) -> Any:
    """JSON-able copy of a config (tuples -> lists, numpy scalars -> python)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.generic,)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)           # e.g. DPM-Solver's lambda_min_clipped = -inf: JSON has no infinities
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)
