"""Paper C's measurement: each evaluation problem generated with the attention probe on, unmasked or with the
top-k sinks of the previous step masked, scored, and cached per problem.

One record per (model, problem, condition): the answer and whether it is right, and per step the tokens the
forward saw and, per layer and for the layer mean, the keys of largest A_bar (benchmark.lm.session) with their
token classes. Records are cached under <cache-dir>/lm/ (content-addressed: checkpoint identity, sampler
settings, problem, condition, device type, library versions), so a re-run measures nothing and a killed run
resumes. The claims read arrays stacked over problems (`LMRuns`).

Tasks: the organisms are scored on the arithmetic task (exact match); real checkpoints on GSM8K
(benchmark.lm_tasks, exact match of the final number, flexible extraction) and, when the run opted into code
execution (--allow-code-execution), HumanEval (pass@1: the program runs in benchmark.lm_tasks' sandbox, a child
process, never in the test process).
"""
from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..cache import _atomic_write_bytes, cache_key
from ..measurements import checkpoint_source
from .session import TOP_STORED
from .sinks import CLASSES

RECORD_FORMAT = 1
MASK_KS = (1, 5, 10)          # paper C's sink masking: top-1, top-5, top-10


@dataclass(frozen=True)
class TaskItem:
    id: str
    prompt: str
    reference: Any               # the exact answer (arithmetic), the GSM8K or the HumanEval problem


HUMANEVAL_SANDBOX = {"timeout_s": 10.0, "memory_mb": 1024}   # per program (the sandbox's defaults)


@dataclass(frozen=True)
class Task:
    name: str                    # arithmetic | gsm8k | humaneval
    items: tuple[TaskItem, ...]
    description: str
    allow_code_execution: bool = False   # humaneval: the run's opt-in, passed on to the sandbox

    def score(self, item: TaskItem, generated: str) -> bool:
        if self.name == "arithmetic":
            from .arithmetic import is_correct

            return is_correct(generated, item.reference)
        if self.name == "humaneval":
            from ..lm_tasks import clean_completion, evaluate_humaneval

            problem = item.reference
            result = evaluate_humaneval([problem], [clean_completion(problem, generated)],
                                        allow_code_execution=self.allow_code_execution,
                                        **HUMANEVAL_SANDBOX).results[0].execution
            if result.status == "error":     # the sandbox failed, not the model: never cache that as a fail
                raise RuntimeError(f"the sandbox could not run {problem.task_id}'s program: {result.reason}")
            return result.passed
        from ..lm_tasks import score_gsm8k

        return score_gsm8k(generated, item.reference).flexible_correct


class TaskUnavailable(Exception):
    """The task's data is not on this machine: a SKIPPED verdict with the how-to."""


def task_for(card, n: int, task: str | None = None, *, allow_code_execution: bool = False) -> Task:
    """The first n problems of a task: by default the model's own (the organisms' arithmetic, else GSM8K's test
    split); task="humaneval" (real checkpoints only) needs allow_code_execution (CodeExecutionNotAllowed)."""
    if task == "humaneval":
        return _humaneval(card, n, allow_code_execution)
    if task not in (None, "arithmetic" if card.organism else "gsm8k"):
        raise ValueError(f"{card.name} has no task {task!r}")
    if card.organism:
        from . import arithmetic

        items = tuple(TaskItem(p.id, p.prompt, p.answer) for p in arithmetic.problems(n))
        return Task("arithmetic", items, f"arithmetic organism task (exact match, {arithmetic.CONTEXT_PROBLEMS} "
                                         "solved problems before the query)")
    from ..lm_tasks import TaskDataError, load_gsm8k
    from .adapter import offline

    try:
        problems = load_gsm8k(download=not offline()).head(n)
    except TaskDataError as exc:
        raise TaskUnavailable(f"GSM8K: {exc}") from exc
    items = tuple(TaskItem(p.id, p.question, p) for p in problems)
    return Task("gsm8k", items, "GSM8K test split (exact match of the final number)")


def _humaneval(card, n: int, allow_code_execution: bool) -> Task:
    from ..lm_tasks import TaskDataError, load_humaneval
    from ..lm_tasks.sandbox import _require_opt_in
    from .adapter import offline

    if card.organism:
        raise ValueError(f"{card.name} is an organism: its task is arithmetic, not HumanEval")
    _require_opt_in(allow_code_execution)    # before any generation: the completions could not be scored
    try:
        problems = load_humaneval(download=not offline()).head(n)
    except TaskDataError as exc:
        raise TaskUnavailable(f"HumanEval: {exc}") from exc
    # the prompt as given (signature and docstring): the model continues it, or writes the whole function
    items = tuple(TaskItem(p.task_id, p.prompt, p) for p in problems)
    return Task("humaneval", items, "HumanEval (pass@1, the program run in a sandboxed child process)",
                allow_code_execution=True)


@dataclass
class ProblemRecord:
    id: str
    correct: bool
    generated: str
    prompt_length: int
    n_keys: np.ndarray           # (S,) keys at each step
    top_index: np.ndarray        # (S, L + 1, K) key indices by descending A_bar; row L = the mean over layers
    top_mass: np.ndarray         # (S, L + 1, K) their A_bar (NaN where a step has fewer than K keys)
    top_class: np.ndarray        # (S, L + 1, K) class codes (sinks.CLASSES) of the tokens at those keys
    total: np.ndarray            # (S, L + 1) sum of A_bar over all keys (1 for softmax rows)
    class_counts: np.ndarray     # (S, len(CLASSES)) how many keys of each class at each step
    log_mass_before: np.ndarray  # (S, L) attention on the masked keys, before / after (NaN: nothing masked)
    log_mass_after: np.ndarray

    ARRAYS = ("n_keys", "top_index", "top_mass", "top_class", "total", "class_counts", "log_mass_before",
              "log_mass_after")

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, **{k: getattr(self, k) for k in self.ARRAYS})
        return buf.getvalue()

    @classmethod
    def from_files(cls, meta: dict, data: bytes) -> "ProblemRecord":
        arrays = np.load(io.BytesIO(data), allow_pickle=False)
        return cls(meta["id"], bool(meta["correct"]), meta["generated"], int(meta["prompt_length"]),
                   **{k: arrays[k] for k in cls.ARRAYS})


def record_from_session(item_id: str, correct: bool, generated: str, prompt_length: int, record,
                        classify) -> ProblemRecord:
    """Stack a session's per-step cells into arrays (the layer mean is computed in the session)."""
    steps = len(record.cells)
    layers = len(record.cells[0]) - 1
    k = TOP_STORED
    top_index = np.full((steps, layers + 1, k), -1, dtype=np.int64)
    top_mass = np.full((steps, layers + 1, k), np.nan, dtype=np.float32)
    top_class = np.full((steps, layers + 1, k), -1, dtype=np.int8)
    total = np.zeros((steps, layers + 1))
    before = np.full((steps, layers), np.nan)
    after = np.full((steps, layers), np.nan)
    counts = np.zeros((steps, len(CLASSES)), dtype=np.int64)
    n_keys = np.zeros(steps, dtype=np.int64)
    for s, (ids, cells) in enumerate(zip(record.ids, record.cells)):
        codes = np.array([CLASSES.index(classify(t)) for t in ids], dtype=np.int8)
        counts[s] = np.bincount(codes, minlength=len(CLASSES))
        n_keys[s] = cells[0].n_keys
        for layer, cell in enumerate(cells):
            m = len(cell.top_index)
            top_index[s, layer, :m] = cell.top_index
            top_mass[s, layer, :m] = cell.top_mass
            top_class[s, layer, :m] = codes[cell.top_index]
            total[s, layer] = cell.total
            if layer < layers:
                before[s, layer], after[s, layer] = cell.log_mass_before, cell.log_mass_after
    return ProblemRecord(item_id, bool(correct), generated, prompt_length, n_keys, top_index, top_mass, top_class,
                         total, counts, before, after)


@dataclass(frozen=True)
class LMRuns:
    """One condition's records over the first n problems of a task."""
    model: str
    task: Task
    mask_k: int
    records: tuple[ProblemRecord, ...]
    settings: dict

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.records]

    @property
    def correct(self) -> np.ndarray:
        return np.array([r.correct for r in self.records], dtype=float)


class _Cache:
    """<root>/<key[:2]>/<key>.npz + .json (the JSON written last: an entry counts only when it exists)."""

    def __init__(self, root: Path):
        self.root = root

    def _paths(self, key: str) -> tuple[Path, Path]:
        d = self.root / key[:2]
        return d / f"{key}.npz", d / f"{key}.json"

    def get(self, key: str) -> ProblemRecord | None:
        data_path, meta_path = self._paths(key)
        try:
            return ProblemRecord.from_files(json.loads(meta_path.read_text()), data_path.read_bytes())
        except (OSError, ValueError, KeyError):
            return None

    def put(self, key: str, record: ProblemRecord, meta: dict) -> None:
        data_path, meta_path = self._paths(key)
        _atomic_write_bytes(data_path, record.to_bytes())
        full = {**meta, "id": record.id, "correct": record.correct, "generated": record.generated,
                "prompt_length": record.prompt_length}
        _atomic_write_bytes(meta_path, (json.dumps(full, indent=1, sort_keys=True) + "\n").encode())


def _versions() -> dict[str, str | None]:
    from ..environment import package_versions

    return package_versions(("torch", "transformers"))


def adapter_for(ctx, card, settings):
    """The loaded model, once per suite run (one language model in memory at a time: real ones are large)."""
    from .adapter import LMAdapter

    memo = ctx.extra.setdefault("lm_adapters", {})
    key = (card.name, tuple(sorted(settings.to_dict().items())))
    if key not in memo:
        memo.clear()
        memo[key] = LMAdapter.load(card, checkpoint_source(card, ctx), settings, device=ctx.device,
                                   trust_remote_code=ctx.settings.trust_remote_code)
    return memo[key]


def measure(ctx, card, n: int, mask_k: int = 0, task: str | None = None) -> LMRuns:
    """The first n problems of a task (default: the model's own, see task_for) under one condition
    (mask_k = 0: unmasked), cached per problem. HumanEval runs only with the run's code-execution opt-in."""
    from ..lm_tasks import code_execution_opt_in
    from .adapter import resolve_lm_checkpoint, settings_for

    task = task_for(card, n, task,
                    allow_code_execution=code_execution_opt_in(ctx.settings.allow_code_execution))
    settings = settings_for(card, task.name, ctx.generation_overrides())
    memo = ctx.extra.setdefault("lm_runs", {})
    memo_key = (card.name, task.name, n, mask_k, tuple(sorted(settings.to_dict().items())))
    if memo_key in memo:
        return memo[memo_key]
    identity = resolve_lm_checkpoint(checkpoint_source(card, ctx)).identity
    cache = _Cache(Path(ctx.settings.cache_dir) / "lm")
    device_type = ctx.device.split(":")[0]
    fields = {"lm_record": RECORD_FORMAT, "identity": {k: v for k, v in identity.items() if k != "path"},
              "settings": settings.to_dict(), "task": task.name, "mask_k": mask_k, "device": device_type,
              "versions": _versions()}
    if task.name == "humaneval":             # the sandbox's limits decide a pass (GSM8K keys stay as they were)
        fields["sandbox"] = HUMANEVAL_SANDBOX
    records = []
    with _one_thread_on_cpu(device_type):
        for item in task.items:
            key = cache_key({**fields, "item": item.id, "prompt": item.prompt})
            record = cache.get(key)
            if record is None:
                record = _generate(adapter_for(ctx, card, settings), card.kind, task, item, mask_k)
                cache.put(key, record, {"model": card.name, "task": task.name, "mask_k": mask_k,
                                        "settings": settings.to_dict()})
            records.append(record)
    runs = LMRuns(card.name, task, mask_k, tuple(records), settings.to_dict())
    memo[memo_key] = runs
    return runs


def _generate(adapter, kind: str, task: Task, item: TaskItem, mask_k: int) -> ProblemRecord:
    """One problem generated with the probe (and the masking) on, scored."""
    from .session import LMAttentionSession

    prompt = adapter.encode(item.prompt)
    with LMAttentionSession(kind, mask_k=mask_k) as session:
        generation = adapter.generate(prompt, on_step=session.begin_step)
    text = adapter.decode(generation.generated)
    return record_from_session(item.id, task.score(item, text), text, int(prompt.numel()), session.record,
                               adapter.token_class)


@contextlib.contextmanager
def _one_thread_on_cpu(device_type: str):
    """The organisms' matrices are tiny: on a CPU, thread synchronisation costs more than it saves (on this
    project's shared 2-core machine a forward took 1.2 s with 2 threads, 0.06 s with 1)."""
    if device_type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def first_positions(runs: LMRuns) -> list[np.ndarray]:
    """Per problem, the top-1 key of the attention averaged over layers, at each step."""
    return [r.top_index[:, -1, 0] for r in runs.records]

