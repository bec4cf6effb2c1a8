"""The eight DiT/U-Net families, by name. Each module defines one Family subclass."""
from __future__ import annotations

import importlib

from ..family import Family

# family name -> (module, class name)
_FAMILIES = {
    "sd3": ("sd3", "SD3Family"),
    "sdxl": ("sdxl", "SDXLFamily"),
    "flux": ("flux", "FluxFamily"),
    "pixart": ("pixart", "PixArtFamily"),
    "qwen_image": ("qwen_image", "QwenImageFamily"),
    "z_image": ("z_image", "ZImageFamily"),
    "wan": ("wan", "WanFamily"),
    "ltx": ("ltx", "LTXFamily"),
}
FAMILY_NAMES = tuple(_FAMILIES)


def get_family(name: str) -> Family:
    if name not in _FAMILIES:
        raise KeyError(f"unknown model family {name!r}; known: {', '.join(FAMILY_NAMES)}")
    module, cls = _FAMILIES[name]
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)()


def family_for_pipeline_class(class_name: str) -> Family | None:
    """The family whose checkpoints have model_index.json `_class_name` == class_name."""
    for name in FAMILY_NAMES:
        family = get_family(name)
        if family.pipeline_class == class_name:
            return family
    return None
