"""GSM8K (test split) and HumanEval problems: pinned upstream files, read locally or downloaded once.

Where a task's file comes from, in this order:
  1. an explicit path (`load_gsm8k(path)`): the file, a folder holding it, or a checkout of the
     upstream repository;
  2. the environment variable SINKBENCH_GSM8K / SINKBENCH_HUMANEVAL (same forms);
  3. the cache: $SINKBENCH_CACHE/<task>/<commit>/<file>, else ~/.cache/sinkbench/<task>/<commit>/<file>;
  4. a download of the raw file at the pinned commit, kept only if its sha256 matches the pin.
Every file is checked against the pinned sha256 unless verify=False. The datasets are never committed to
SinkBench. A file that is not on this machine (and cannot be downloaded) raises TaskDataUnavailable,
whose message names the file, the URL and the environment variable.
"""
from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

from ..downloads import DownloadRejected, DownloadUnreachable, fetch_verified
from ..downloads import sha256_of_file as _sha256_file
from ..prompts import CACHE_ENV
from .gsm8k import reference_answer

__all__ = ["TaskDataError", "TaskDataUnavailable", "DataPin", "GSM8K_PIN", "HUMANEVAL_PIN",
           "Gsm8kProblem", "HumanEvalProblem", "TaskSet", "task_cache_dir", "load_gsm8k", "load_humaneval"]

DOWNLOAD_TIMEOUT_S = 30.0
MAX_DOWNLOAD_BYTES = 16 * 2**20      # both pinned files are under 1 MB


class TaskDataError(Exception):
    """A task's data cannot be used (missing, not the pinned file, malformed); the message says what to do."""


class TaskDataUnavailable(TaskDataError):
    """The task's file is not on this machine and could not be downloaded (e.g. offline)."""


@dataclass(frozen=True)
class DataPin:
    """One upstream file at a fixed commit, with its sha256 (of the bytes as stored in the repository)."""
    task: str            # cache folder name and label
    title: str
    repository: str      # owner/name on GitHub
    commit: str
    path: str            # path of the file inside the repository
    sha256: str
    bytes: int
    records: int
    license: str
    env: str             # environment variable naming a local copy
    alternatives: tuple[str, ...] = ()   # other file names accepted in a folder (e.g. an uncompressed copy)

    @property
    def filename(self) -> str:
        return Path(self.path).name

    @property
    def url(self) -> str:
        return f"https://raw.githubusercontent.com/{self.repository}/{self.commit}/{self.path}"


# The commits and hashes are those that several public projects pin; the sha256 values were checked
# against copies of both files (see docs/LM_TASKS.md).
GSM8K_PIN = DataPin(
    task="gsm8k", title="GSM8K test split", repository="openai/grade-school-math",
    commit="3101c7d5072418e28b9008a6636bde82a006892c", path="grade_school_math/data/test.jsonl",
    sha256="3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14", bytes=749_738, records=1319,
    license="MIT", env="SINKBENCH_GSM8K")
HUMANEVAL_PIN = DataPin(
    task="humaneval", title="HumanEval", repository="openai/human-eval",
    commit="6d43fb980f9fee3c892a914eda09951f772ad10d", path="data/HumanEval.jsonl.gz",
    sha256="b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef", bytes=44_877, records=164,
    license="MIT", env="SINKBENCH_HUMANEVAL", alternatives=("HumanEval.jsonl",))


@dataclass(frozen=True)
class Gsm8kProblem:
    """One GSM8K problem. `solution` is the reference text; `answer` the normalised number after '####'."""
    id: str
    question: str
    solution: str
    answer: str


@dataclass(frozen=True)
class HumanEvalProblem:
    """One HumanEval problem, as in HumanEval.jsonl: the model completes `prompt`; `test` defines check()."""
    task_id: str
    prompt: str
    canonical_solution: str
    test: str
    entry_point: str

    @property
    def id(self) -> str:
        return self.task_id


@dataclass(frozen=True)
class TaskSet:
    """The problems of one task in file order, and where they came from (`source`: file, sha256,
    verified, repository, commit, license, ...)."""
    name: str
    problems: tuple[Any, ...]
    source: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.problems)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.problems)

    def __getitem__(self, index: int) -> Any:
        return self.problems[index]

    def head(self, n: int) -> "TaskSet":
        """The first n problems (file order), recorded in `source["limit"]`."""
        if n < 1:
            raise ValueError(f"head(n) needs n >= 1, got {n}")
        if n >= len(self.problems):
            return self
        return replace(self, problems=self.problems[:n], source={**self.source, "limit": n})


# --------------------------------------------------------------------------------------------------
# Locating the file
# --------------------------------------------------------------------------------------------------

def task_cache_dir(pin: DataPin, root: str | Path | None = None) -> Path:
    """Where the downloaded file is kept: <root>/<task>/<commit>/, root = `root`, else $SINKBENCH_CACHE,
    else ~/.cache/sinkbench (the cache of SinkBench's GenEval prompts)."""
    if root is None:
        env = os.environ.get(CACHE_ENV)
        root = Path(env).expanduser() if env else Path.home() / ".cache" / "sinkbench"
    return Path(root) / pin.task / pin.commit


def _how_to_supply(pin: DataPin, dest: Path) -> str:
    return (f"Download {pin.url} (sha256 {pin.sha256}) and either put it at {dest}, or set "
            f"{pin.env}=/path/to/{pin.filename} (the file, a folder holding it, or a checkout of "
            f"github.com/{pin.repository} at commit {pin.commit}).")


def _resolve_local(pin: DataPin, path: Path, origin: str) -> Path:
    if path.is_file():
        return path
    if path.is_dir():
        names = (pin.filename, pin.path, *pin.alternatives, *(str(Path(pin.path).parent / a) for a in pin.alternatives))
        for name in names:
            if (path / name).is_file():
                return path / name
        raise TaskDataUnavailable(f"{origin}: the folder {path} holds neither {pin.filename} nor {pin.path}. "
                                  f"{_how_to_supply(pin, task_cache_dir(pin) / pin.filename)}")
    raise TaskDataUnavailable(f"{origin}: no such file or folder: {path}. "
                              f"{_how_to_supply(pin, task_cache_dir(pin) / pin.filename)}")


def _check_pinned(pin: DataPin, file: Path, origin: str) -> str:
    actual = _sha256_file(file)
    if actual != pin.sha256:
        raise TaskDataError(
            f"{origin}: {file} is not the pinned {pin.title} file {pin.path} of {pin.repository}@{pin.commit}: "
            f"sha256 expected {pin.sha256}, actual {actual}"
            + (" (the pin is of the gzip file; give the .gz, or pass verify=False)" if pin.path.endswith(".gz")
               and not file.name.endswith(".gz") else "")
            + ". To use a modified file on purpose, pass verify=False.")
    return actual


def _fetch(url: str, dest: Path, expected_sha256: str, *, timeout: float, how_to: str) -> None:
    """Download url, check its sha256, then write dest atomically. Nothing is written unless it matches."""
    try:
        fetch_verified(url, dest, expected_sha256, timeout=timeout, max_bytes=MAX_DOWNLOAD_BYTES)
    except DownloadUnreachable as exc:
        raise TaskDataUnavailable(f"{exc} {how_to}") from exc
    except DownloadRejected as exc:
        extra = f" Pass another cache_dir (or set {CACHE_ENV})." if "cache file" in str(exc) else ""
        raise TaskDataError(f"{exc}{extra} {how_to}") from exc


def _locate(pin: DataPin, path: str | Path | None, cache_dir: str | Path | None, download: bool, verify: bool,
            url: str | None, timeout: float) -> tuple[Path, dict[str, Any]]:
    """The file to read and its provenance record."""
    source: dict[str, Any] = {"task": pin.task, "repository": pin.repository, "commit": pin.commit,
                              "path": pin.path, "license": pin.license}
    origin = f"load_{pin.task}(path)"
    if path is None and os.environ.get(pin.env):
        path, origin = os.environ[pin.env], f"${pin.env}"
    if path is not None:
        file = _resolve_local(pin, Path(path).expanduser(), origin)
        actual = _check_pinned(pin, file, origin) if verify else _sha256_file(file)
        return file, source | {"file": str(file), "sha256": actual, "verified": actual == pin.sha256}

    folder = Path(cache_dir).expanduser() if cache_dir is not None else task_cache_dir(pin)
    cached = folder / pin.filename
    how_to = _how_to_supply(pin, cached)
    if cached.is_file():
        actual = _sha256_file(cached)
        if actual == pin.sha256:
            return cached, source | {"file": str(cached), "sha256": actual, "verified": True}
        if not download:
            raise TaskDataError(f"the cached {cached} has sha256 {actual}, expected {pin.sha256}: delete it "
                                f"(or allow the download to replace it). {how_to}")
    if not download:
        raise TaskDataUnavailable(f"{pin.title} ({pin.filename}) is not cached at {cached} and downloading is off. "
                                  f"{how_to}")
    src = url or pin.url
    _fetch(src, cached, pin.sha256, timeout=timeout, how_to=how_to)
    return cached, source | {"file": str(cached), "sha256": pin.sha256, "verified": True, "downloaded_from": src}


# --------------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------------

def _json_lines(file: Path, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TaskDataError(f"{file}:{lineno}: not JSON ({exc.msg})") from None
        if not isinstance(rec, dict):
            raise TaskDataError(f"{file}:{lineno}: expected a JSON object")
        yield lineno, rec


def _read_text(file: Path) -> str:
    raw = file.read_bytes()
    if raw[:2] == b"\x1f\x8b":     # gzip magic: HumanEval ships as .jsonl.gz
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise TaskDataError(f"{file}: damaged gzip file ({exc})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TaskDataError(f"{file}: not UTF-8 ({exc})") from None


def _parse_gsm8k(file: Path) -> tuple[Gsm8kProblem, ...]:
    problems = []
    for lineno, rec in _json_lines(file, _read_text(file)):
        question, solution = rec.get("question"), rec.get("answer")
        if not (isinstance(question, str) and question.strip() and isinstance(solution, str)):
            raise TaskDataError(f"{file}:{lineno}: a GSM8K record needs string 'question' and 'answer'")
        try:
            answer = reference_answer(solution)
        except ValueError as exc:
            raise TaskDataError(f"{file}:{lineno}: {exc}") from None
        problems.append(Gsm8kProblem(f"gsm8k-test-{len(problems):04d}", question, solution, answer))
    return tuple(problems)


_HUMANEVAL_FIELDS = ("task_id", "prompt", "canonical_solution", "test", "entry_point")


def _parse_humaneval(file: Path) -> tuple[HumanEvalProblem, ...]:
    problems, seen = [], set()
    for lineno, rec in _json_lines(file, _read_text(file)):
        missing = [k for k in _HUMANEVAL_FIELDS if not isinstance(rec.get(k), str)]
        if missing:
            raise TaskDataError(f"{file}:{lineno}: a HumanEval record needs string fields {', '.join(missing)}")
        if rec["task_id"] in seen:
            raise TaskDataError(f"{file}:{lineno}: duplicate task_id {rec['task_id']}")
        seen.add(rec["task_id"])
        problems.append(HumanEvalProblem(**{k: rec[k] for k in _HUMANEVAL_FIELDS}))
    return tuple(problems)


def _load(pin: DataPin, parse: Callable[[Path], tuple[Any, ...]], path, cache_dir, download, verify, url,
          timeout) -> TaskSet:
    file, source = _locate(pin, path, cache_dir, download, verify, url, timeout)
    problems = parse(file)
    if not problems:
        raise TaskDataError(f"{file}: no {pin.title} records")
    if source.get("verified") and len(problems) != pin.records:
        raise TaskDataError(f"{file}: {len(problems)} records, the pinned file has {pin.records}")
    return TaskSet(pin.task, problems, source | {"records": len(problems)})


def load_gsm8k(path: str | Path | None = None, *, cache_dir: str | Path | None = None, download: bool = True,
               verify: bool = True, url: str | None = None, timeout: float = DOWNLOAD_TIMEOUT_S) -> TaskSet:
    """The 1319 GSM8K test problems (grade_school_math/data/test.jsonl at the pinned commit), ids
    "gsm8k-test-%04d" by line. `path` (or $SINKBENCH_GSM8K): a file, a folder holding test.jsonl, or a
    checkout. Without one: the cache `cache_dir` (default `task_cache_dir(GSM8K_PIN)`), else a download of
    `url` (default: the pinned raw URL) when download=True. Raises TaskDataUnavailable when the file is
    not here, TaskDataError when it is not the pinned file (unless verify=False) or is malformed."""
    return _load(GSM8K_PIN, _parse_gsm8k, path, cache_dir, download, verify, url, timeout)


def load_humaneval(path: str | Path | None = None, *, cache_dir: str | Path | None = None, download: bool = True,
                   verify: bool = True, url: str | None = None, timeout: float = DOWNLOAD_TIMEOUT_S) -> TaskSet:
    """The 164 HumanEval problems (data/HumanEval.jsonl.gz at the pinned commit). `path` (or
    $SINKBENCH_HUMANEVAL): the .jsonl.gz (an uncompressed .jsonl loads only with verify=False, the pin is
    of the gzip file), a folder holding it, or a checkout. Otherwise as `load_gsm8k`."""
    return _load(HUMANEVAL_PIN, _parse_humaneval, path, cache_dir, download, verify, url, timeout)
