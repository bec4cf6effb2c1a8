"""Content-addressed on-disk cache of generated images (or videos) as uint8 numpy arrays.

An entry is `objects/<k[:2]>/<k>.npy` plus `<k>.json` metadata that records the array's sha256.
Both are written atomically, the array first and the metadata last. An entry counts only when
its metadata exists and the array's hash matches, so a killed write, a truncated file or a
hand-edited file is detected, logged as corrupt and regenerated. Every hit, miss, store and
corruption is appended to `log.jsonl` (one line per event, any number of processes), which is
how a resumed run can show what it redid.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

CACHE_FORMAT = 1


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def cache_key(fields: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of everything that can change the output."""
    return hashlib.sha256(canonical_json({"cache_format": CACHE_FORMAT, **fields}).encode()).hexdigest()


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class CacheEntry:
    key: str
    path: Path
    meta: Mapping[str, Any]

    def load(self) -> np.ndarray:
        return np.load(self.path, allow_pickle=False)


class GenerationCache:
    """The generation cache rooted at `root` (shared safely by several processes)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.log_path = self.root / "log.jsonl"

    def _paths(self, key: str) -> tuple[Path, Path]:
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise ValueError(f"not a cache key (64 hex digits): {key!r}")
        d = self.root / "objects" / key[:2]
        return d / f"{key}.npy", d / f"{key}.json"

    def log(self, event: str, key: str, **extra: Any) -> None:
        line = canonical_json({"event": event, "key": key, "time": time.time(), "pid": os.getpid(), **extra})
        # O_APPEND writes of one short line are not interleaved between processes.
        fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)

    def get(self, key: str, *, log: bool = True) -> CacheEntry | None:
        """The verified entry, or None (a corrupt entry is removed and logged)."""
        data_path, meta_path = self._paths(key)
        if not meta_path.is_file():
            if log:
                self.log("miss", key)
            return None
        try:
            meta = json.loads(meta_path.read_text())
            ok = hashlib.sha256(data_path.read_bytes()).hexdigest() == meta["sha256"]
        except (OSError, ValueError, KeyError):
            ok = False
        if not ok:
            self.log("corrupt", key)
            data_path.unlink(missing_ok=True)
            meta_path.unlink(missing_ok=True)
            return None
        if log:
            self.log("hit", key)
        return CacheEntry(key, data_path, meta)

    def put(self, key: str, array: np.ndarray, meta: Mapping[str, Any]) -> CacheEntry:
        if array.dtype != np.uint8:
            raise TypeError(f"the cache stores uint8 images, got {array.dtype}")
        data_path, meta_path = self._paths(key)
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
        data = buf.getvalue()
        full = {**meta, "key": key, "sha256": hashlib.sha256(data).hexdigest(), "shape": list(array.shape),
                "stored": time.time()}
        _atomic_write_bytes(data_path, data)
        _atomic_write_bytes(meta_path, (json.dumps(full, indent=1, sort_keys=True) + "\n").encode())
        self.log("store", key)
        return CacheEntry(key, data_path, full)

    def events(self) -> list[dict[str, Any]]:
        """Every logged event, oldest first."""
        if not self.log_path.is_file():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.strip()]
