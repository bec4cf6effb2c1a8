"""Tiny random-weight pipelines of the real diffusers classes, built offline, for tests and demos.

`make_tiny("flux", DIR)` writes a complete pipeline directory with save_pretrained; it loads back through
exactly the path a user's checkpoint takes (DiffusionAdapter.load(DIR, ...), HF_HUB_OFFLINE=1 is fine).
"""
from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

TINY_FAMILIES = ("sd3", "sdxl", "flux", "pixart", "qwen_image", "z_image", "wan", "ltx")
MARKER_FILE = "sinkbench_tiny.json"


def _module(family: str):
    if family not in TINY_FAMILIES:
        raise KeyError(f"no tiny pipeline for {family!r}; known: {', '.join(TINY_FAMILIES)}")
    return importlib.import_module(f"{__name__}.{family}")


def tiny_settings(family: str) -> dict[str, Any]:
    """Generation settings that suit the tiny pipeline (2 steps, small size, fp32: CPU half precision is slow
    and not what the cards' fp16/bf16 are about)."""
    return {"dtype": "fp32", **_module(family).SETTINGS}


def build_tiny(family: str, seed: int = 0):
    """The tiny pipeline object (not saved)."""
    return _module(family).build_pipeline(seed=seed)


def make_tiny(family: str, directory: str | Path, seed: int = 0, overwrite: bool = False) -> Path:
    """Build the tiny pipeline of `family` and save it to `directory` with save_pretrained."""
    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()) and not overwrite:
        raise FileExistsError(f"{directory} exists and is not empty (use overwrite=True / --overwrite)")
    pipe = build_tiny(family, seed=seed)
    directory.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(directory, safe_serialization=True)
    (directory / MARKER_FILE).write_text(json.dumps(
        {"family": family, "seed": seed, "settings": tiny_settings(family),
         "note": "random weights: for testing SinkBench's code paths, not for verdicts"}, indent=2) + "\n")
    return directory
