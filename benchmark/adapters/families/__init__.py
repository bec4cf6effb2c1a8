"""The eight DiT/U-Net families, by name. Each module defines one Family subclass."""
from __future__ import annotations

import importlib

from ..family import Family

# family name -> (module, class name, diffusers pipeline class of its checkpoints)
_FAMILIES = {
    "sd3": ("sd3", "SD3Family", "StableDiffusion3Pipeline"),
    "sdxl": ("sdxl", "SDXLFamily", "StableDiffusionXLPipeline"),
    "flux": ("flux", "FluxFamily", "FluxPipeline"),
    "pixart": ("pixart", "PixArtFamily", "PixArtAlphaPipeline"),
    "qwen_image": ("qwen_image", "QwenImageFamily", "QwenImagePipeline"),
    "z_image": ("z_image", "ZImageFamily", "ZImagePipeline"),
    "wan": ("wan", "WanFamily", "WanPipeline"),
    "ltx": ("ltx", "LTXFamily", "LTXPipeline"),
}
FAMILY_NAMES = tuple(_FAMILIES)


def get_family(name: str) -> Family:
    if name not in _FAMILIES:
        raise KeyError(f"unknown model family {name!r}; known: {', '.join(FAMILY_NAMES)}")
    module, cls, pipeline_class = _FAMILIES[name]
    family = getattr(importlib.import_module(f"{__name__}.{module}"), cls)()
    if family.pipeline_class != pipeline_class:
        raise TypeError(f"{cls}.pipeline_class is {family.pipeline_class!r}, the registry says {pipeline_class!r}")
    return family


def family_for_pipeline_class(class_name: str) -> Family | None:
    """The family whose checkpoints have model_index.json `_class_name` == class_name."""
    for name, (_, _, pipeline_class) in _FAMILIES.items():
        if pipeline_class == class_name:
            return get_family(name)
    return None
