"""The per-family knowledge an adapter needs, behind one small interface.

A Family says how a diffusers pipeline of one architecture is driven (call arguments, step callback style),
where its attention layers are (depth order, block labels, kind of attention), and what each layer's keys
are (KeySegmentation). Everything else (loading, batching, seeding, caching) is generic in adapter.py.
"""
from __future__ import annotations

import contextlib
import inspect
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Mapping

import numpy as np

from .segmentation import KeySegmentation

# What the keys of a layer are.
LAYER_KINDS = {
    "joint": "image and text tokens attend to each other in one sequence (MM-DiT)",
    "self": "image/video tokens attend to image/video tokens",
    "cross": "image/video queries attend to text keys",
    "text_self": "text tokens attend to text tokens only (Z-Image context refiner)",
    "image_self": "image tokens only, before the joint stack (Z-Image noise refiner)",
}


@dataclass(frozen=True)
class AttentionLayer:
    index: int          # depth order over the whole denoiser, from 0
    name: str           # qualified module name inside the denoiser, e.g. "transformer_blocks.3.attn"
    kind: str           # a key of LAYER_KINDS
    block: str          # block label: "double", "single", "down.1", "mid", "up.0", "refiner", "main", ...
    module: Any = field(repr=False, compare=False, default=None)

    def __post_init__(self):
        if self.kind not in LAYER_KINDS:
            raise ValueError(f"layer {self.name}: kind {self.kind!r} is not one of {sorted(LAYER_KINDS)}")


DTYPES = ("fp32", "fp16", "bf16")

# Scheduler swaps (paper A, A26/A27), each built for the checkpoint's kind: a flow-matching model gets the
# flow-matching form (flow sigmas, flow prediction, the checkpoint's shift), never an epsilon-prediction
# scheduler in a flow-matching config (the released code's invalid swap).
SCHEDULERS = {
    "euler": "Euler (FlowMatchEulerDiscrete on flow-matching models, EulerDiscrete otherwise)",
    "heun": "Heun (FlowMatchHeunDiscrete / HeunDiscrete)",
    "unipc": "UniPC multistep (with flow sigmas and flow prediction on flow-matching models)",
    "dpm++": "DPM-Solver++ multistep (with flow sigmas and flow prediction on flow-matching models)",
}


def build_scheduler(current, name: str):
    """The scheduler `name` configured from the checkpoint's scheduler `current`, valid for its training kind."""
    import diffusers

    config = dict(current.config)
    flow = "FlowMatch" in type(current).__name__
    if flow:
        shift = float(config.get("shift", 1.0))
        flow_kw = {"use_flow_sigmas": True, "prediction_type": "flow_prediction", "flow_shift": shift}
        built = {"euler": lambda: diffusers.FlowMatchEulerDiscreteScheduler.from_config(config),
                 "heun": lambda: diffusers.FlowMatchHeunDiscreteScheduler.from_config(config),
                 "unipc": lambda: diffusers.UniPCMultistepScheduler.from_config(config, **flow_kw),
                 "dpm++": lambda: diffusers.DPMSolverMultistepScheduler.from_config(config, **flow_kw)}
    else:
        built = {"euler": lambda: diffusers.EulerDiscreteScheduler.from_config(config),
                 "heun": lambda: diffusers.HeunDiscreteScheduler.from_config(config),
                 "unipc": lambda: diffusers.UniPCMultistepScheduler.from_config(config),
                 "dpm++": lambda: diffusers.DPMSolverMultistepScheduler.from_config(config)}
    if name not in built:
        raise ValueError(f"scheduler {name!r} is not one of {sorted(SCHEDULERS)}")
    scheduler = built[name]()
    if flow and name in ("unipc", "dpm++"):
        _sigmas_as_array(scheduler)
    return scheduler


def _sigmas_as_array(scheduler) -> None:
    """diffusers 0.42's multistep schedulers scale flow sigmas with array arithmetic, but some pipelines
    (Z-Image) pass them as a list: give set_timesteps an array (same values)."""
    original = scheduler.set_timesteps

    def set_timesteps(num_inference_steps=None, device=None, sigmas=None, **kwargs):
        if sigmas is not None:
            sigmas = np.asarray(sigmas, dtype=np.float64)
        return original(num_inference_steps, device, sigmas=sigmas, **kwargs)

    scheduler.set_timesteps = set_timesteps


@dataclass(frozen=True)
class GenerationSettings:
    """The settings that change an image (all of them go into the cache key)."""
    steps: int
    guidance: float | None = None
    height: int | None = None
    width: int | None = None
    num_frames: int | None = None
    max_sequence_length: int | None = None
    dtype: str = "fp32"
    negative_prompt: str | None = None
    scheduler: str | None = None        # None: the checkpoint's own; else a key of SCHEDULERS

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype {self.dtype!r} is not one of {DTYPES}")
        if self.scheduler is not None and self.scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler {self.scheduler!r} is not one of {sorted(SCHEDULERS)}")
        for name in ("height", "width", "num_frames", "max_sequence_length"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], **overrides: Any) -> "GenerationSettings":
        known = {f for f in cls.__dataclass_fields__}
        merged = {k: v for k, v in values.items() if k in known}
        merged.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**merged)

    def replace(self, **changes: Any) -> "GenerationSettings":
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        # the checkpoint's own scheduler is left out, so cache keys made before scheduler swaps existed hold
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if not (k == "scheduler" and self.scheduler is None)}


class Family(ABC):
    """One DiT / U-Net family. Subclasses are stateless; instances are shared."""

    name: ClassVar[str]                 # "flux", "sd3", ... (matches the model card's family)
    pipeline_class: ClassVar[str]       # model_index.json "_class_name" of a checkpoint of this family
    denoiser_attr: ClassVar[str] = "transformer"
    legacy_callback: ClassVar[bool] = False      # PixArt-alpha: callback/callback_steps, not callback_on_step_end
    video: ClassVar[bool] = False
    # How the pipeline runs classifier-free guidance, i.e. where the conditional branch is:
    # "batched_uncond_first" (one call on [negative, positive]: conditional = second half),
    # "batched_cond_first" (one call on [positive, negative]), "separate_cond_first" (two calls per step,
    # conditional first; also guidance-distilled models that make one call).
    cfg: ClassVar[str] = "batched_uncond_first"
    default_scheduler: ClassVar[str] = ""
    key_tokenizer_attr: ClassVar[str] = "tokenizer"   # the tokenizer whose output becomes text keys
    joint_text_first: ClassVar[bool] = True           # joint sequence [text, image] (FLUX, Qwen) or [image, text] (SD3)        # informative: the scheduler class of the real checkpoint

    # ------------------------------------------------------------ structure
    @abstractmethod
    def attention_layers(self, denoiser) -> list[AttentionLayer]:
        """Every attention module of the denoiser, in the order the forward pass runs them."""

    @abstractmethod
    def segment(self, pipe, prompt: str, settings: GenerationSettings, layer: AttentionLayer) -> KeySegmentation:
        """The keys of `layer` for the conditional branch of `prompt` at `settings`, in key order."""

    # ------------------------------------------------------------ driving the pipeline
    def call_kwargs(self, pipe, settings: GenerationSettings) -> dict[str, Any]:
        """Keyword arguments for pipe(...) (prompt, generator and callbacks are added by the adapter)."""
        accepted = inspect.signature(type(pipe).__call__).parameters
        kwargs: dict[str, Any] = {"num_inference_steps": settings.steps}
        optional = {
            "guidance_scale": settings.guidance, "height": settings.height, "width": settings.width,
            "num_frames": settings.num_frames, "max_sequence_length": settings.max_sequence_length,
            "negative_prompt": settings.negative_prompt,
        }
        for key, value in optional.items():
            if value is not None and key in accepted:
                kwargs[key] = value
        kwargs["output_type"] = "np"
        return kwargs

    def negative_prompt(self, settings: GenerationSettings) -> str:
        """The prompt of the unconditional branch as the pipeline runs it."""
        return settings.negative_prompt or ""

    def generation_context(self, pipe):
        """Entered around every pipeline call (e.g. to silence a per-call warning)."""
        return contextlib.nullcontext()

    def to_uint8(self, output) -> list[np.ndarray]:
        """Pipeline output -> one uint8 array per prompt: (H, W, 3) images or (F, H, W, 3) videos."""
        frames = output.frames if self.video else output.images
        arrays = [np.asarray(x) for x in frames]
        return [np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8) for a in arrays]

    def describe(self) -> dict[str, Any]:
        return {"family": self.name, "pipeline_class": self.pipeline_class, "denoiser": self.denoiser_attr,
                "legacy_callback": self.legacy_callback, "video": self.video, "cfg": self.cfg}

    def conditional_rows(self, batch_rows: int, n_prompts: int) -> slice:
        """Rows of an attention call's batch that belong to the conditional branch, for a call on
        `batch_rows` rows made while generating `n_prompts` prompts (separate calls: every row of the
        conditional call; which call that is, the caller counts)."""
        if batch_rows == 2 * n_prompts and self.cfg == "batched_uncond_first":
            return slice(n_prompts, 2 * n_prompts)
        return slice(0, n_prompts)
