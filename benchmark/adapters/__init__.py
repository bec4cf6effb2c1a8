"""Model adapters: one interface over the diffusers pipelines of every family SinkBench knows.

    adapter = DiffusionAdapter.load("black-forest-labs/FLUX.1-dev" or "/path/to/dir", settings)
    images = adapter.generate([WorkItem("p0", "a red circle", seed=0)])
    layers = adapter.attention_layers(); seg = adapter.segment("a red circle", layers[0])
"""
from .adapter import (Checkpoint, CheckpointNotFound, DiffusionAdapter, WrongFamily, how_to_get,
                      resolve_checkpoint)
from .families import FAMILY_NAMES, family_for_pipeline_class, get_family
from .family import AttentionLayer, Family, GenerationSettings, LAYER_KINDS
from .segmentation import MODALITIES, TOKEN_TYPES, KeySegmentation

__all__ = [
    "AttentionLayer", "Checkpoint", "CheckpointNotFound", "DiffusionAdapter", "FAMILY_NAMES", "Family",
    "GenerationSettings", "KeySegmentation", "LAYER_KINDS", "MODALITIES", "TOKEN_TYPES", "WrongFamily",
    "family_for_pipeline_class", "get_family", "how_to_get", "resolve_checkpoint",
]
