"""Pinned downloads: fetch a file, check its sha256, write it atomically (GenEval prompts, GSM8K, HumanEval).

Nothing is written unless the bytes match the pin; a partial file never appears under the final name. Callers
turn the two errors into their own (with their how-to): DownloadUnreachable (offline, no such URL) and
DownloadRejected (too large, wrong hash, the cache not writable).
"""
from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path


class DownloadUnreachable(Exception):
    """The URL could not be fetched (this machine may be offline)."""


class DownloadRejected(Exception):
    """The download was not the pinned file, or could not be stored; nothing was written."""


def sha256_of_file(path: Path) -> str:
    """sha256 of a file's content, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_verified(url: str, dest: Path, expected_sha256: str, *, timeout: float, max_bytes: int) -> None:
    """Download `url` (at most `max_bytes`), check its sha256 against the pin, then write `dest` atomically."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            data = resp.read(max_bytes + 1)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DownloadUnreachable(f"could not download {url}: {reason}. This machine may be offline.") from exc
    if len(data) > max_bytes:
        raise DownloadRejected(f"download from {url} is larger than {max_bytes} bytes, not the pinned file; "
                               "nothing was written.")
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise DownloadRejected(f"download from {url} has sha256 {actual}, expected {expected_sha256}; it was "
                               f"discarded and nothing was written to {dest.parent}.")
    tmp: str | None = None
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
        tmp = None
    except OSError as exc:
        raise DownloadRejected(f"could not write the cache file {dest}: {exc}.") from exc
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
