"""Prompt sets for generation runs: GenEval (pinned, downloaded or local), plain text / JSONL files,
stratified samples for small N, and prompt transforms (comma padding) as data.

A generation run takes (prompt id, prompt text, tags) from a `PromptSet`. Ids are stable within a set
("geneval-0042" is line 42 of GenEval's evaluation_metadata.jsonl, i.e. GenEval's own output folder
00042), so caches, seeds (seed = base seed + prompt index) and reports can name prompts.

Where the GenEval file comes from, in this order (see fixtures/README.md):
  1. an explicit path (`load_geneval(path)`, `--prompts PATH`): the file, a folder holding it, or a
     GenEval checkout (its prompts/ folder);
  2. the environment variable SINKBENCH_GENEVAL (same forms);
  3. the cache: $SINKBENCH_CACHE/geneval/<commit>/ or ~/.cache/sinkbench/geneval/<commit>/;
  4. a download of the raw file at the pinned commit (fixtures/geneval.lock.json), kept only if its
     sha256 matches the lock.
The GenEval files are never committed to this repository.

Pure Python: no torch, no numpy random streams (samples must not change with a library version).
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from .downloads import sha256_of_file as _sha256_file
from .paths import REPO_ROOT

__all__ = [
    "Prompt", "PromptSet", "PromptError", "PromptTransform",
    "GENEVAL_LOCK", "GENEVAL_ENV", "CACHE_ENV", "GENEVAL_FILE", "SPEC_FORMS",
    "geneval_lock", "geneval_cache_dir", "load_geneval",
    "stratified_allocation", "stratified_sample",
    "load_text_prompts", "load_prompts",
    "identity", "comma_padding", "COMMA_STYLES", "transform_from_spec", "parse_transform", "apply_transform",
    "add_cli_arguments", "cli_prompts",
]

FIXTURES_DIR = REPO_ROOT / "fixtures"
GENEVAL_LOCK = FIXTURES_DIR / "geneval.lock.json"
GENEVAL_ENV = "SINKBENCH_GENEVAL"          # path to evaluation_metadata.jsonl (or a folder holding it)
CACHE_ENV = "SINKBENCH_CACHE"             # root of SinkBench's download cache
GENEVAL_FILE = "evaluation_metadata.jsonl"
GENEVAL_PROMPTS_TXT = "generation_prompts.txt"
DOWNLOAD_TIMEOUT_S = 30.0
MAX_DOWNLOAD_BYTES = 16 * 2**20           # the pinned file is 85 kB; anything this large is not it

SPEC_FORMS = (
    "'geneval' (all 553 GenEval prompts)",
    "'geneval:N' (N GenEval prompts, stratified by tag, seed 0)",
    "a .txt file (one prompt per line; blank lines and lines starting with # are ignored)",
    "a .jsonl file (one {\"prompt\": ..., \"tag\": ...} or {\"id\": ..., \"prompt\": ...} object per line)",
    "GenEval's evaluation_metadata.jsonl, or a folder / GenEval checkout holding it",
    "'FILE:N' (N prompts of FILE, stratified by tag)",
    "'organism' or 'organism:N' (held-out captions of the organisms' shapes domain, tags cycling; default 600)",
)

ORGANISM_PROMPT_SEED = 20_000       # held out: the organisms trained on seed 0 and were evaluated on seed 999

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class PromptError(ValueError):
    """A prompt set cannot be loaded or built; the message says which file/spec and what to do."""


# --------------------------------------------------------------------------------------------------
# Prompt and PromptSet
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Prompt:
    """One prompt. `id` is stable and unique within its set; `tags` name its category (GenEval's tag);
    `meta` carries loader-specific data (GenEval's include/exclude, applied transforms). `meta` takes
    part in equality but not in the hash, and is copied on construction (do not mutate it)."""

    id: str
    text: str
    tags: tuple[str, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _ID_RE.match(self.id):
            raise PromptError(f"bad prompt id {self.id!r}: ids are non-empty and use only letters, digits, "
                              "'.', '_' and '-' (they name cache entries and files)")
        if not isinstance(self.text, str):
            raise PromptError(f"prompt {self.id}: text must be a string, got {type(self.text).__name__}")
        tags = (self.tags,) if isinstance(self.tags, str) else tuple(self.tags)
        if not all(isinstance(t, str) and t for t in tags):
            raise PromptError(f"prompt {self.id}: tags must be non-empty strings, got {self.tags!r}")
        object.__setattr__(self, "tags", tags)
        if not isinstance(self.meta, Mapping):
            raise PromptError(f"prompt {self.id}: meta must be a mapping, got {type(self.meta).__name__}")
        object.__setattr__(self, "meta", copy.deepcopy(dict(self.meta)))

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "tags": list(self.tags), "meta": copy.deepcopy(dict(self.meta))}


def _stratum(prompt: Prompt) -> str:
    """The stratum used for sampling: the prompt's first (primary) tag, "" when untagged."""
    return prompt.tags[0] if prompt.tags else ""


@dataclass(frozen=True)
class PromptSet:
    """An ordered set of prompts with unique ids.

    `sha256` hashes the canonical JSON of the [id, text, tags] list in set order (UTF-8, no spaces,
    ensure_ascii=False): it changes when any prompt, id, tag or the order changes, and not with `name`,
    `meta` or `source` (provenance: loader, file, pinned commit, sample, transforms)."""

    name: str
    prompts: tuple[Prompt, ...]
    source: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise PromptError(f"a prompt set needs a non-empty name, got {self.name!r}")
        prompts = tuple(self.prompts)
        if not prompts:
            raise PromptError(f"prompt set {self.name!r} is empty")
        if not all(isinstance(p, Prompt) for p in prompts):
            raise PromptError(f"prompt set {self.name!r}: every item must be a Prompt")
        seen: set[str] = set()
        dups = sorted({p.id for p in prompts if p.id in seen or seen.add(p.id)})
        if dups:
            shown = ", ".join(dups[:10]) + (" ..." if len(dups) > 10 else "")
            raise PromptError(f"prompt set {self.name!r}: duplicate prompt ids: {shown}")
        object.__setattr__(self, "prompts", prompts)
        object.__setattr__(self, "source", copy.deepcopy(dict(self.source)))

    def __len__(self) -> int:
        return len(self.prompts)

    def __iter__(self) -> Iterator[Prompt]:
        return iter(self.prompts)

    def __getitem__(self, key: int | str) -> Prompt:
        """By position (int) or by id (str)."""
        if isinstance(key, str):
            try:
                return self._by_id[key]
            except KeyError:
                raise KeyError(f"no prompt with id {key!r} in {self.name!r}") from None
        return self.prompts[key]

    @cached_property
    def _by_id(self) -> dict[str, Prompt]:
        return {p.id: p for p in self.prompts}

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(p.id for p in self.prompts)

    def pairs(self) -> list[tuple[str, str]]:
        """[(id, text)] in order: the input of benchmark.runner.paired_items."""
        return [(p.id, p.text) for p in self.prompts]

    @cached_property
    def sha256(self) -> str:
        payload = json.dumps([[p.id, p.text, list(p.tags)] for p in self.prompts],
                             ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def by_tag(self) -> dict[str, tuple[Prompt, ...]]:
        """tag -> prompts carrying it, tags in order of first appearance. A prompt with several tags
        appears under each; untagged prompts are grouped under "" (absent when there are none)."""
        groups: dict[str, list[Prompt]] = {}
        for p in self.prompts:
            for t in (p.tags or ("",)):
                groups.setdefault(t, []).append(p)
        return {t: tuple(ps) for t, ps in groups.items()}

    def tag_counts(self) -> dict[str, int]:
        return {t: len(ps) for t, ps in self.by_tag().items()}

    def to_dict(self, *, prompts: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "sha256": self.sha256, "count": len(self),
                             "tag_counts": self.tag_counts(), "source": copy.deepcopy(dict(self.source))}
        if prompts:
            d["prompts"] = [p.to_dict() for p in self.prompts]
        return d


# --------------------------------------------------------------------------------------------------
# GenEval: pinned source, cache, download
# --------------------------------------------------------------------------------------------------

def geneval_lock(path: str | Path | None = None) -> dict[str, Any]:
    """The pinned GenEval source (fixtures/geneval.lock.json): repository, commit, per-file url and sha256."""
    p = Path(path) if path is not None else GENEVAL_LOCK
    try:
        lock = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PromptError(f"GenEval lock file missing: {p} (SinkBench runs from its checkout)") from None
    except json.JSONDecodeError as exc:
        raise PromptError(f"GenEval lock file {p} is not valid JSON: {exc}") from None
    try:
        entry = lock["files"][GENEVAL_FILE]
        _ = (lock["repository"], lock["commit"], entry["url"], entry["sha256"])
    except (KeyError, TypeError):
        raise PromptError(f"GenEval lock file {p} lacks repository/commit/files.{GENEVAL_FILE}.url/sha256") from None
    return lock


def geneval_cache_dir(root: str | Path | None = None, *, lock: Mapping[str, Any] | None = None) -> Path:
    """Where the downloaded GenEval file is kept: <root>/geneval/<commit>/, root = `root`, else
    $SINKBENCH_CACHE, else ~/.cache/sinkbench."""
    lock = lock if lock is not None else geneval_lock()
    if root is None:
        env = os.environ.get(CACHE_ENV)
        root = Path(env).expanduser() if env else Path.home() / ".cache" / "sinkbench"
    return Path(root) / "geneval" / str(lock["commit"])


def _resolve_geneval_path(path: Path, origin: str) -> Path:
    """A file, a folder holding evaluation_metadata.jsonl, or a GenEval checkout (prompts/ inside)."""
    if path.is_file():
        return path
    if path.is_dir():
        for cand in (path / GENEVAL_FILE, path / "prompts" / GENEVAL_FILE):
            if cand.is_file():
                return cand
        raise PromptError(f"{origin}: {path} is a folder without {GENEVAL_FILE} (nor prompts/{GENEVAL_FILE})")
    raise PromptError(f"{origin}: no such file or folder: {path}")


def _how_to_supply(lock: Mapping[str, Any], dest: Path) -> str:
    entry = lock["files"][GENEVAL_FILE]
    return (f"Either download {entry['url']} elsewhere and put it at {dest} (sha256 {entry['sha256']}), "
            f"or point SinkBench at a local copy: `--prompts /path/to/{GENEVAL_FILE}` (or a GenEval checkout "
            f"at commit {lock['commit']}), or set {GENEVAL_ENV}=/path/to/{GENEVAL_FILE}.")


def _check_pinned(file: Path, lock: Mapping[str, Any], origin: str) -> str:
    expected = lock["files"][GENEVAL_FILE]["sha256"]
    actual = _sha256_file(file)
    if actual == expected:
        return actual
    hint = ""
    txt = lock["files"].get(GENEVAL_PROMPTS_TXT, {})
    if txt.get("sha256") == actual:
        hint = (f" This is GenEval's {GENEVAL_PROMPTS_TXT} (prompts without tags); give the "
                f"{GENEVAL_FILE} from the same folder.")
    raise PromptError(
        f"{origin}: {file} is not the pinned GenEval {GENEVAL_FILE}: sha256 expected {expected} "
        f"(djghosh13/geneval@{lock['commit']}), actual {actual}.{hint} Line endings count (a CRLF checkout "
        f"differs). To use a modified file on purpose, pass verify=False or rename it (any other .jsonl name "
        f"loads as a plain prompt file).")


def _download(url: str, dest: Path, expected: str, lock: Mapping[str, Any], timeout: float) -> None:
    """Fetch url, check sha256, then write dest atomically. Nothing is written unless the hash matches."""
    from .downloads import DownloadRejected, DownloadUnreachable, fetch_verified

    try:
        fetch_verified(url, dest, expected, timeout=timeout, max_bytes=MAX_DOWNLOAD_BYTES)
    except DownloadUnreachable as exc:
        raise PromptError(f"GenEval's {GENEVAL_FILE} (pinned in {GENEVAL_LOCK.name}): {exc} "
                          f"{_how_to_supply(lock, dest)}") from exc
    except DownloadRejected as exc:
        extra = f" Pass another cache_dir (or set {CACHE_ENV})." if "cache file" in str(exc) else ""
        raise PromptError(f"GenEval's {GENEVAL_FILE} (pinned in {GENEVAL_LOCK.name}): {exc}{extra} "
                          f"{_how_to_supply(lock, dest)}") from exc


def _parse_geneval(file: Path, source: dict[str, Any]) -> PromptSet:
    prompts: list[Prompt] = []
    with open(file, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise PromptError(f"{file}:{lineno}: not JSON ({exc.msg})") from None
            if not (isinstance(rec, dict) and isinstance(rec.get("prompt"), str) and rec["prompt"].strip()
                    and isinstance(rec.get("tag"), str) and rec["tag"]):
                raise PromptError(f"{file}:{lineno}: a GenEval record needs a non-empty 'prompt' and 'tag'")
            meta = {k: v for k, v in rec.items() if k not in ("prompt", "tag")}
            prompts.append(Prompt(f"geneval-{len(prompts):04d}", rec["prompt"], (rec["tag"],), meta))
    if not prompts:
        raise PromptError(f"{file}: no GenEval records")
    return PromptSet("geneval", tuple(prompts), source)


def load_geneval(path: str | Path | None = None, *, cache_dir: str | Path | None = None, download: bool = True,
                 verify: bool = True, url: str | None = None, timeout: float = DOWNLOAD_TIMEOUT_S) -> PromptSet:
    """GenEval's 553 prompts (evaluation_metadata.jsonl at the pinned commit).

    Ids "geneval-%04d" by record index (= GenEval's output folder index), tags = (tag,), meta keeps the
    record's other keys (include, exclude). `path` (or $SINKBENCH_GENEVAL when path is None) is a file,
    a folder holding it, or a GenEval checkout; its sha256 must match the lock unless verify=False.
    Without a path: the cache `cache_dir` (the folder that holds the file; default
    `geneval_cache_dir()`), else a download of `url` (default: the lock's raw URL) when download=True.
    Cached and downloaded files are always checked against the lock."""
    lock = geneval_lock()
    entry = lock["files"][GENEVAL_FILE]
    expected = entry["sha256"]
    base_source = {"loader": "geneval", "repository": lock["repository"], "commit": lock["commit"],
                   "license": lock.get("license")}
    origin = "load_geneval(path)"
    if path is None and os.environ.get(GENEVAL_ENV):
        path, origin = os.environ[GENEVAL_ENV], f"${GENEVAL_ENV}"
    if path is not None:
        file = _resolve_geneval_path(Path(path).expanduser(), origin)
        actual = _check_pinned(file, lock, origin) if verify else _sha256_file(file)
        return _parse_geneval(file, base_source | {"file": str(file), "sha256": actual,
                                                    "verified": actual == expected})

    folder = Path(cache_dir).expanduser() if cache_dir is not None else geneval_cache_dir(lock=lock)
    cached = folder / GENEVAL_FILE
    if cached.is_file():
        actual = _sha256_file(cached)
        if actual == expected:
            return _parse_geneval(cached, base_source | {"file": str(cached), "sha256": actual, "verified": True})
        if not download:
            raise PromptError(f"cached {cached} has sha256 {actual}, expected {expected}: delete it (or allow the "
                              f"download to replace it). {_how_to_supply(lock, cached)}")
    if not download:
        raise PromptError(f"GenEval's {GENEVAL_FILE} is not cached at {cached} and downloading is off. "
                          f"{_how_to_supply(lock, cached)}")
    src = url or entry["url"]
    _download(src, cached, expected, lock, timeout)
    return _parse_geneval(cached, base_source | {"file": str(cached), "sha256": expected, "verified": True,
                                                  "downloaded_from": src})


# --------------------------------------------------------------------------------------------------
# Stratified sampling
# --------------------------------------------------------------------------------------------------

def _rank_key(seed: int, kind: str, name: str) -> str:
    return hashlib.sha256(f"sinkbench-stratified\0{seed}\0{kind}\0{name}".encode("utf-8")).hexdigest()


def _check_n_seed(n: Any, total: int, seed: Any, what: str) -> None:
    if isinstance(n, bool) or not isinstance(n, int):
        raise PromptError(f"sample size must be an integer, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise PromptError(f"seed must be an integer, got {seed!r}")
    if n < 1:
        raise PromptError(f"sample size must be >= 1, got {n}")
    if n > total:
        raise PromptError(f"cannot sample {n} prompts from {what}, which has {total}")


def stratified_allocation(counts: Mapping[str, int], n: int, *, seed: int = 0) -> dict[str, int]:
    """How many of n go to each stratum (tag -> size): proportional, by largest remainder.

    Quota q_t = n * c_t / N (exact fractions). When n >= number of strata every stratum gets at least
    one: strata whose quota is < 1 get exactly 1 and the remaining seats are re-apportioned among the
    others in proportion (repeated until no quota is < 1). Each stratum then gets floor or ceil of its
    (re-apportioned) quota; the leftover seats go to the largest fractional parts, exact ties broken by
    a seeded hash of the tag. Hence: sizes sum to n; no stratum exceeds ceil(q_t); when no quota is < 1
    (or n < number of strata) every size is within 1 of q_t."""
    items = [(str(t), c) for t, c in counts.items()]
    if not items or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for _, c in items):
        raise PromptError(f"stratum sizes must be positive integers, got {dict(counts)!r}")
    total = sum(c for _, c in items)
    _check_n_seed(n, total, seed, "strata")
    alloc = {t: 0 for t, _ in items}
    free = dict(items)
    seats = n
    if n >= len(items):
        while True:
            free_total = sum(free.values())
            small = [t for t, c in free.items() if Fraction(seats * c, free_total) < 1]
            if not small:
                break
            for t in small:
                alloc[t] = 1
                del free[t]
            seats = n - (len(items) - len(free))
    free_total = sum(free.values())
    quotas = {t: Fraction(seats * c, free_total) for t, c in free.items()}
    for t, q in quotas.items():
        alloc[t] = q.numerator // q.denominator
    left = seats - sum(alloc[t] for t in free)
    order = sorted(free, key=lambda t: (-(quotas[t] - alloc[t]), _rank_key(seed, "tag", t)))
    for t in order[:left]:
        alloc[t] += 1
    assert sum(alloc.values()) == n and all(alloc[t] <= c for t, c in items)
    return alloc


def stratified_sample(prompt_set: PromptSet, n: int, *, seed: int = 0) -> PromptSet:
    """n prompts drawn proportionally from each tag (see `stratified_allocation`), in original order.

    Why: prompt files are often grouped by category. GenEval's first 80 prompts are all single_object
    (then two_object, counting, colors, position, color_attr), so "the first N prompts" measures one
    category only. The stratum of a prompt is its first tag ("" when untagged: a seeded random subset).

    Within a stratum the prompts with the smallest sha256(seed, prompt id) are taken: deterministic per
    seed, independent of library versions and of the other strata. n == len returns every prompt;
    n > len raises PromptError."""
    _check_n_seed(n, len(prompt_set), seed, f"prompt set {prompt_set.name!r}")
    strata: dict[str, list[int]] = {}
    for i, p in enumerate(prompt_set.prompts):
        strata.setdefault(_stratum(p), []).append(i)
    alloc = stratified_allocation({t: len(ix) for t, ix in strata.items()}, n, seed=seed)
    chosen: list[int] = []
    for t, ix in strata.items():
        ranked = sorted(ix, key=lambda i: _rank_key(seed, "id", prompt_set.prompts[i].id))
        chosen.extend(ranked[:alloc[t]])
    chosen.sort()
    name = f"{prompt_set.name}:{n}" + (f"@seed{seed}" if seed else "")
    source = dict(prompt_set.source) | {"sample": {
        "method": "stratified", "n": n, "seed": seed, "strata": alloc,
        "parent": prompt_set.name, "parent_sha256": prompt_set.sha256, "parent_count": len(prompt_set)}}
    return PromptSet(name, tuple(prompt_set.prompts[i] for i in chosen), source)


# --------------------------------------------------------------------------------------------------
# Text / JSONL prompt files and the spec dispatcher
# --------------------------------------------------------------------------------------------------

def _safe_stem(path: Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem).strip("._-")
    return stem or "prompts"


def _jsonl_prompt(rec: Any, where: str, default_id: str) -> Prompt:
    if not isinstance(rec, dict):
        raise PromptError(f"{where}: each line must be a JSON object")
    text = rec.get("prompt")
    if not isinstance(text, str) or not text.strip():
        raise PromptError(f"{where}: needs a non-empty string 'prompt' (keys: {', '.join(sorted(rec)) or 'none'})")
    pid = rec.get("id", default_id)
    if isinstance(pid, int) and not isinstance(pid, bool):
        pid = str(pid)
    if not isinstance(pid, str):
        raise PromptError(f"{where}: 'id' must be a string, got {pid!r}")
    if "tag" in rec and "tags" in rec:
        raise PromptError(f"{where}: give 'tag' or 'tags', not both")
    tags = rec.get("tags", [rec["tag"]] if "tag" in rec else [])
    if isinstance(tags, str) or not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        raise PromptError(f"{where}: 'tag' must be a non-empty string ('tags' a list of them), got {tags!r}")
    meta = {k: v for k, v in rec.items() if k not in ("id", "prompt", "tag", "tags")}
    try:
        return Prompt(pid, text, tuple(tags), meta)
    except PromptError as exc:
        raise PromptError(f"{where}: {exc}") from None


def load_text_prompts(path: str | Path) -> PromptSet:
    """A prompt file. .jsonl: one JSON object per line with "prompt" and optionally "id", "tag" (or
    "tags"); other keys go to meta. Anything else: one prompt per line, surrounding whitespace stripped,
    blank lines and lines starting with # ignored. Ids not given are "<file stem>-%04d" by prompt index.
    The set is named after the file stem."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise PromptError(f"no such prompt file: {path}")
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PromptError(f"{path}: not UTF-8 text ({exc})") from None
    stem = _safe_stem(path)
    prompts: list[Prompt] = []
    is_jsonl = path.suffix.lower() == ".jsonl"
    for lineno, line in enumerate(raw.splitlines(), 1):
        s = line.strip()
        if not s or (not is_jsonl and s.startswith("#")):
            continue
        default_id = f"{stem}-{len(prompts):04d}"
        if is_jsonl:
            try:
                rec = json.loads(s)
            except json.JSONDecodeError as exc:
                raise PromptError(f"{path}:{lineno}: not JSON ({exc.msg})") from None
            prompts.append(_jsonl_prompt(rec, f"{path}:{lineno}", default_id))
        else:
            prompts.append(Prompt(default_id, s))
    if not prompts:
        what = "blank lines are ignored" if is_jsonl else "blank lines and lines starting with # are ignored"
        raise PromptError(f"{path}: no prompts ({what})")
    source = {"loader": "jsonl" if is_jsonl else "text", "file": str(path), "sha256": _sha256_file(path)}
    try:
        return PromptSet(stem, tuple(prompts), source)
    except PromptError as exc:
        raise PromptError(f"{path}: {exc}") from None


def _unknown_spec(spec: str, why: str) -> PromptError:
    forms = "\n  ".join(SPEC_FORMS)
    return PromptError(f"unknown prompt spec {spec!r} ({why}). Accepted forms:\n  {forms}")


def organism_prompts(n: int, seed: int = ORGANISM_PROMPT_SEED) -> PromptSet:
    """The first n held-out captions of the organisms' domain (tags cycle, so any prefix is balanced); each
    prompt's meta holds the (seed, index) that rebuilds its scene for the detector."""
    from .organism.dataset import make_sample

    prompts = []
    for index in range(n):
        sample = make_sample(seed, index)
        prompts.append(Prompt(f"org-{index:05d}", sample.caption, (sample.tag,),
                              {"organism_seed": seed, "organism_index": index}))
    return PromptSet(f"organism:{n}", tuple(prompts), {"loader": "organism", "seed": seed, "n": n})


def load_prompts(spec: str | Path, *, seed: int = 0, cache_dir: str | Path | None = None,
                 download: bool = True) -> PromptSet:
    """A prompt set from a spec: "geneval" | "geneval:N" | a file path | "FILE:N" (see SPEC_FORMS).
    N is a stratified sample (seed `seed`, default 0). cache_dir/download are passed to load_geneval."""
    s = str(spec).strip()
    if not s:
        raise _unknown_spec(s, "empty")
    gkw: dict[str, Any] = {"cache_dir": cache_dir, "download": download}
    m = re.fullmatch(r"organism(?::(\d+))?", s, flags=re.IGNORECASE)
    if m:
        n = int(m.group(1)) if m.group(1) else 600
        if n < 1:
            raise _unknown_spec(s, "N in 'organism:N' must be a positive integer")
        return organism_prompts(n)
    if s.lower() == "geneval":
        return load_geneval(**gkw)
    if s.lower().startswith("geneval:"):
        m = re.fullmatch(r"geneval:(\d+)", s, flags=re.IGNORECASE)
        if not m or int(m.group(1)) < 1:
            raise _unknown_spec(s, "N in 'geneval:N' must be a positive integer")
        return stratified_sample(load_geneval(**gkw), int(m.group(1)), seed=seed)
    p = Path(s).expanduser()
    if p.is_dir():
        if (p / GENEVAL_FILE).is_file() or (p / "prompts" / GENEVAL_FILE).is_file():
            return load_geneval(p)
        raise _unknown_spec(s, f"a folder without {GENEVAL_FILE}")
    if p.is_file():
        return load_geneval(p) if p.name == GENEVAL_FILE else load_text_prompts(p)
    m = re.fullmatch(r"(.+):(\d+)", s)
    if m and Path(m.group(1)).expanduser().exists():
        return stratified_sample(load_prompts(m.group(1), seed=seed, **gkw), int(m.group(2)), seed=seed)
    raise _unknown_spec(s, "not a known set and no such file")


# --------------------------------------------------------------------------------------------------
# Prompt transforms
# --------------------------------------------------------------------------------------------------

# Comma padding (paper B, "From a Spiral to a Sink", Sec. Application: "appending 200 commas").
#   comma_space:  text + ", " * n  -- the definition in SinkBench's spec (spiral.yaml, CLAIMS.md):
#                 ", " repeated n times, exactly, so the result ends with a space; no stripping.
#   pe2sink_demo: text + " " + "," * n (no extra space when text already ends with one) -- what the
#                 authors' public demo code (github freemty/pe2sink, build_comma_prompt defaults:
#                 padding_token ",", separator " ") builds, said there to match the paper's scripts.
# The two differ in how many text-encoder tokens the padding takes; a run should record the token
# count it actually got.
COMMA_STYLES = ("comma_space", "pe2sink_demo")


def _check_n(n: Any) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= 100_000:
        raise PromptError(f"comma_padding: n must be an integer in [0, 100000], got {n!r}")


def _check_style(style: Any) -> None:
    if style not in COMMA_STYLES:
        raise PromptError(f"comma_padding: style must be one of {', '.join(COMMA_STYLES)}, got {style!r}")


def _apply_comma(text: str, n: int, style: str) -> str:
    if style == "comma_space":
        return text + ", " * n
    if n == 0:
        return text
    return text + ("" if text.endswith(" ") else " ") + "," * n


# name -> (defaults, {param: validator}, apply(text, **params))
_TRANSFORMS: dict[str, tuple[dict[str, Any], dict[str, Callable[[Any], None]], Callable[..., str]]] = {
    "identity": ({}, {}, lambda text: text),
    "comma_padding": ({"n": 200, "style": "comma_space"}, {"n": _check_n, "style": _check_style}, _apply_comma),
}


@dataclass(frozen=True)
class PromptTransform:
    """A prompt transform as data: a registered name and its parameters as sorted (key, value) pairs
    (the same shape as benchmark.runner.Condition). Missing parameters take their defaults, so the
    spec always names every parameter and can key caches and reports."""

    name: str
    params: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if self.name not in _TRANSFORMS:
            raise PromptError(f"unknown prompt transform {self.name!r}; known: {', '.join(sorted(_TRANSFORMS))}")
        defaults, checks, _ = _TRANSFORMS[self.name]
        try:
            given = dict(self.params.items() if isinstance(self.params, Mapping) else self.params)
        except (TypeError, ValueError):
            raise PromptError(f"{self.name}: params must be (key, value) pairs, got {self.params!r}") from None
        unknown = sorted(set(given) - set(defaults))
        if unknown:
            raise PromptError(f"{self.name}: unknown parameter(s) {', '.join(map(str, unknown))}; "
                              f"known: {', '.join(sorted(defaults)) or 'none'}")
        full = defaults | given
        for k, v in full.items():
            checks[k](v)
        object.__setattr__(self, "params", tuple(sorted(full.items())))

    def apply(self, text: str) -> str:
        return _TRANSFORMS[self.name][2](text, **dict(self.params))

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "params": dict(self.params)}

    def __str__(self) -> str:
        return self.name + "(" + ",".join(f"{k}={v}" for k, v in self.params) + ")"


def identity() -> PromptTransform:
    return PromptTransform("identity")


def comma_padding(n: int = 200, *, style: str = "comma_space") -> PromptTransform:
    """Comma padding of paper B. Default: text + ", " * n, exactly (ends with ", "). style="pe2sink_demo":
    text + " " + "," * n, as the authors' demo code builds it."""
    return PromptTransform("comma_padding", (("n", n), ("style", style)))


def transform_from_spec(spec: Mapping[str, Any]) -> PromptTransform:
    """Inverse of PromptTransform.spec(): {"name": ..., "params": {...}} (params optional)."""
    if not isinstance(spec, Mapping) or "name" not in spec:
        raise PromptError(f"a transform spec is {{'name': ..., 'params': {{...}}}}, got {spec!r}")
    extra = sorted(set(spec) - {"name", "params"})
    if extra:
        raise PromptError(f"transform spec has unknown key(s) {', '.join(extra)}")
    params = spec.get("params", {}) or {}
    if not isinstance(params, Mapping):
        raise PromptError(f"transform spec 'params' must be a mapping, got {params!r}")
    return PromptTransform(str(spec["name"]), tuple(sorted(params.items())))


def parse_transform(text: str) -> PromptTransform:
    """A transform from a command-line string: "identity", "comma_padding", "comma_padding:200",
    "comma_padding:n=200,style=pe2sink_demo", or a JSON spec object."""
    s = text.strip()
    if s.startswith("{"):
        try:
            return transform_from_spec(json.loads(s))
        except json.JSONDecodeError as exc:
            raise PromptError(f"transform {text!r}: bad JSON ({exc.msg})") from None
    name, _, rest = s.partition(":")
    params: dict[str, Any] = {}
    for i, part in enumerate(p for p in rest.split(",") if p.strip()):
        key, eq, value = part.partition("=")
        if not eq:
            if i:
                raise PromptError(f"transform {text!r}: only the first parameter may omit its name")
            key, value = "n", key
        value = value.strip()
        params[key.strip()] = int(value) if re.fullmatch(r"-?\d+", value) else value
    return PromptTransform(name.strip(), tuple(sorted(params.items())))


def apply_transform(prompt_set: PromptSet, transform: PromptTransform) -> PromptSet:
    """The set with every text transformed; ids and tags unchanged. Each prompt's meta gets
    "transforms" (the list of applied specs, in order) and "original_text" (the text before the first
    transform); the set's source gets the same "transforms" list."""
    if not isinstance(transform, PromptTransform):
        raise PromptError(f"apply_transform needs a PromptTransform, got {type(transform).__name__}")
    spec = transform.spec()
    out = []
    for p in prompt_set:
        meta = dict(p.meta)
        meta["transforms"] = list(meta.get("transforms", [])) + [spec]
        meta.setdefault("original_text", p.text)
        out.append(Prompt(p.id, transform.apply(p.text), p.tags, meta))
    source = dict(prompt_set.source)
    source["transforms"] = list(source.get("transforms", [])) + [spec]
    return PromptSet(f"{prompt_set.name}+{transform}", tuple(out), source)


# --------------------------------------------------------------------------------------------------
# Command line (wired by benchmark/cli.py: `sinkbench prompts SPEC`)
# --------------------------------------------------------------------------------------------------

def add_cli_arguments(parser: Any) -> None:
    """Arguments of `sinkbench prompts` (an argparse parser)."""
    parser.add_argument("spec", help="; ".join(SPEC_FORMS))
    parser.add_argument("--seed", type=int, default=0, help="seed of the stratified sample (default 0)")
    parser.add_argument("--transform", action="append", default=[], metavar="T",
                        help="apply a prompt transform (repeatable), e.g. comma_padding:200 or "
                             "comma_padding:n=200,style=pe2sink_demo")
    parser.add_argument("--cache-dir", metavar="DIR", help="folder holding the downloaded GenEval file "
                        f"(default ${CACHE_ENV}/geneval/<commit> or ~/.cache/sinkbench/geneval/<commit>)")
    parser.add_argument("--offline", action="store_true", help="never download; fail if GenEval is not local")
    parser.add_argument("--full", action="store_true", help="do not shorten prompt texts")
    parser.add_argument("--json", action="store_true", help="print the set as JSON (ids, texts, tags, meta, sha256)")


def cli_prompts(args: Any, *, out: Any = None, err: Any = None) -> int:
    """`sinkbench prompts`: load, sample and transform a prompt set and print it. Returns the exit status
    (0, or 2 with the reason on stderr)."""
    import sys

    out = out or sys.stdout
    err = err or sys.stderr
    try:
        ps = load_prompts(args.spec, seed=args.seed, cache_dir=args.cache_dir, download=not args.offline)
        for t in args.transform:
            ps = apply_transform(ps, parse_transform(t))
    except PromptError as exc:
        print(f"sinkbench prompts: {exc}", file=err)
        return 2
    if args.json:
        print(json.dumps(ps.to_dict(), indent=2, ensure_ascii=False), file=out)
        return 0
    from tabulate import tabulate

    def short(text: str) -> str:
        return text if args.full or len(text) <= 90 else text[:87] + "..."

    rows = [[p.id, " ".join(p.tags), short(p.text)] for p in ps]
    print(tabulate(rows, headers=["id", "tags", "text"], tablefmt="simple"), file=out)
    counts = ", ".join(f"{t or '(untagged)'} {c}" for t, c in ps.tag_counts().items())
    src = ps.source
    origin = src.get("file", "")
    if src.get("commit"):
        origin += f" ({src.get('repository')}@{src['commit'][:12]})"
    print(f"\n{ps.name}: {len(ps)} prompt(s); {counts}\nsha256 {ps.sha256}\nsource {origin}", file=out)
    return 0
