"""What a report records about the machine, the libraries, the code and the checkpoint."""
from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from .paths import REPO_ROOT

# Libraries whose versions can change a measurement.
PACKAGES = ("sinkbench", "numpy", "scipy", "pytest", "torch", "diffusers", "transformers", "accelerate",
            "huggingface-hub", "safetensors", "open-clip-torch", "lpips", "hpsv2", "tabulate", "matplotlib")

# Files up to this size are hashed whole (organisms, tiny pipelines, text encoders and VAEs: any edit,
# even one scaled tensor, changes the identity, so a cache never serves images of other weights; about 1 s
# per GB). Larger files (the shards of real denoisers) are hashed by name, size, for safetensors their header
# (tensor names, dtypes, shapes, offsets), and _SAMPLES evenly spaced 64 KiB content slices: retrained or
# fine-tuned weights change every slice, an edit of a few bytes may fall between them. Documented as an
# identity hash, not a full content hash.
_WHOLE_FILE_LIMIT = 256 << 20
_SAMPLES = 16
_SLICE = 1 << 16


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each package, None where it is not installed."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_state(root: Path = REPO_ROOT) -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                                  timeout=10, check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def device_info(device: str) -> dict[str, Any]:
    """The compute device. torch is only imported when it is already loaded or a GPU is asked for."""
    info: dict[str, Any] = {"requested": device, "cpu": platform.processor() or platform.machine(),
                            "cpu_count": os.cpu_count()}
    if "torch" in sys.modules or device.startswith("cuda"):
        try:
            import torch
        except ImportError:
            info["cuda"] = None
            return info
        info["cuda"] = torch.cuda.is_available()
        if info["cuda"]:
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            info["cuda_version"] = torch.version.cuda
    return info


def environment(device: str = "auto") -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "device": device_info(device),
        "git": git_state(),
    }


def _safetensors_header(path: Path) -> bytes:
    with open(path, "rb") as fh:
        size = int.from_bytes(fh.read(8), "little")
        return fh.read(min(size, 100 << 20))


def _content_slices(path: Path, size: int) -> bytes:
    """_SAMPLES slices of _SLICE bytes at evenly spaced offsets (the last one ends the file)."""
    parts = []
    with open(path, "rb") as fh:
        for i in range(_SAMPLES):
            fh.seek(max(0, (size - _SLICE) * i // (_SAMPLES - 1)))
            parts.append(fh.read(_SLICE))
    return b"".join(parts)


def directory_identity(directory: str | Path) -> dict[str, Any]:
    """A stable identity hash of a checkpoint directory (see _WHOLE_FILE_LIMIT)."""
    root = Path(directory)
    if not root.is_dir():
        raise NotADirectoryError(f"not a directory: {root}")
    digest = hashlib.sha256()
    n_files = 0
    total = 0
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(".") or "/." in rel:
            continue
        size = path.stat().st_size
        digest.update(f"{rel}\0{size}\0".encode())
        if size <= _WHOLE_FILE_LIMIT:
            digest.update(path.read_bytes())
        else:
            if path.suffix == ".safetensors":
                digest.update(_safetensors_header(path))
            digest.update(_content_slices(path, size))
        n_files += 1
        total += size
    return {"path": str(root.resolve()), "identity_sha256": digest.hexdigest(), "files": n_files, "bytes": total,
            "method": "sha256 over (path, size, files up to 256 MiB whole; larger: safetensors header and "
                      "16 x 64 KiB content slices)"}


CONTENT_HASH_LIMIT = 2 << 30      # directories up to 2 GiB also get a full content hash (provenance)


def directory_content_sha256(directory: str | Path, limit: int = CONTENT_HASH_LIMIT) -> str | None:
    """sha256 over every file's relative path and full content (the files directory_identity covers), or None
    above `limit` bytes. Unlike the identity hash it sees any edit, e.g. one scaled tensor."""
    root = Path(directory)
    files = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not (rel.startswith(".") or "/." in rel):     # as directory_identity
            files.append(path)
    if sum(p.stat().st_size for p in files) > limit:
        return None
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.relative_to(root).as_posix()}\0{path.stat().st_size}\0".encode())
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def checkpoint_identity(checkpoint: str) -> dict[str, Any]:
    """Identity of --checkpoint: a directory hash for a local path, the hub id (and cached revision) otherwise."""
    if Path(checkpoint).exists():
        return {"kind": "directory", **directory_identity(checkpoint)}
    info: dict[str, Any] = {"kind": "hub", "hub_id": checkpoint, "revision": None}
    ref = Path(os.environ.get("HF_HUB_CACHE", Path(os.environ.get("HF_HOME", Path.home() / ".cache/huggingface")) / "hub"))
    ref = ref / f"models--{checkpoint.replace('/', '--')}" / "refs" / "main"
    if ref.is_file():
        info["revision"] = ref.read_text().strip()
    return info


def family_of_directory(directory: str | Path, pipeline_classes: dict[str, str]) -> str:
    """The model family of a diffusers pipeline directory, from model_index.json's _class_name."""
    index = Path(directory) / "model_index.json"
    if not index.is_file():
        raise ValueError(f"{directory} has no model_index.json: is it a diffusers pipeline directory? "
                         "(use --model NAME to say which family it is)")
    try:
        class_name = json.loads(index.read_text())["_class_name"]
    except (json.JSONDecodeError, KeyError) as exc:
        raise ValueError(f"{index}: cannot read '_class_name' ({exc})") from exc
    for family, cls in pipeline_classes.items():
        if cls == class_name:
            return family
    raise ValueError(f"{index}: pipeline class {class_name!r} is not one SinkBench knows "
                     f"({', '.join(sorted(set(pipeline_classes.values())))})")
