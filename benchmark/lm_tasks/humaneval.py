"""HumanEval: from a model's output to a program, and pass@1 in the sandbox.

The program of a problem is prompt + completion + test + `check(entry_point)`, run in sandbox.py. A
completion is either a continuation of the prompt (the function body, as base models write it) or, as
chat models often write it, a whole definition of the entry point, possibly inside a Markdown code
fence; `clean_completion` turns raw model text into one of the two and `build_program` handles both.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .data import HumanEvalProblem
from .sandbox import ExecutionResult, _require_opt_in, run_programs

__all__ = ["HUMANEVAL_STOP_SEQUENCES", "truncate_at_stops", "extract_code", "defines_entry_point",
           "clean_completion", "build_program", "HumanEvalResult", "HumanEvalSummary", "evaluate_humaneval"]

# The stop sequences of lm-evaluation-harness's humaneval task: a new top-level statement ends the body.
HUMANEVAL_STOP_SEQUENCES = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")

_FENCE_RE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)(?:```|\Z)", re.S | re.I)


def truncate_at_stops(text: str, stops: Sequence[str] = HUMANEVAL_STOP_SEQUENCES) -> str:
    """`text` up to the first stop sequence (all of it when none occurs)."""
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=len(text))
    return text[:cut]


def extract_code(text: str) -> str:
    """The first Markdown code block of `text` (an unclosed block runs to the end), else `text`."""
    m = _FENCE_RE.search(text)
    return m.group(1) if m else text


def defines_entry_point(code: str, entry_point: str) -> bool:
    """Whether `code` has a top-level `def entry_point(`."""
    return re.search(rf"^def\s+{re.escape(entry_point)}\s*\(", code, re.M) is not None


def clean_completion(problem: HumanEvalProblem, text: str) -> str:
    """Raw model output -> completion: the code block if there is one; a whole definition of the entry
    point is kept as it is, a continuation is cut at the first stop sequence (HUMANEVAL_STOP_SEQUENCES)."""
    code = extract_code(text)
    if defines_entry_point(code, problem.entry_point):
        return code
    return truncate_at_stops(code)


def build_program(problem: HumanEvalProblem, completion: str) -> str:
    """The program run for one problem. A completion that defines the entry point replaces the prompt's
    stub: it follows the prompt's text before `def entry_point(` (imports and helper functions)."""
    if defines_entry_point(completion, problem.entry_point):
        m = re.search(rf"^def\s+{re.escape(problem.entry_point)}\s*\(", problem.prompt, re.M)
        head = problem.prompt[:m.start()] if m else ""
        body = head + completion
    else:
        body = problem.prompt + completion
    return f"{body}\n\n{problem.test}\n\ncheck({problem.entry_point})\n"


@dataclass(frozen=True)
class HumanEvalResult:
    """One problem: the completion that ran and the sandbox's result."""
    task_id: str
    completion: str
    execution: ExecutionResult

    @property
    def passed(self) -> bool:
        return self.execution.passed


@dataclass(frozen=True)
class HumanEvalSummary:
    """pass@1 over the problems (one completion each); `pass_at_1` is a fraction in [0, 1]."""
    n: int
    n_passed: int
    pass_at_1: float
    results: tuple[HumanEvalResult, ...]

    @property
    def status_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.results:
            counts[r.execution.status] = counts.get(r.execution.status, 0) + 1
        return counts


def evaluate_humaneval(problems: Sequence[HumanEvalProblem], completions: Sequence[str] | Mapping[str, str], *,
                       allow_code_execution: bool, timeout_s: float = 10.0, memory_mb: int = 1024, workers: int = 1,
                       isolation: str = "auto", **sandbox_options: Any) -> HumanEvalSummary:
    """pass@1 of one completion per problem. `completions`: in problem order, or task_id -> completion
    (every problem needs one). Completions are used as given: pass model text through `clean_completion`
    first. Runs the programs in the sandbox (needs allow_code_execution=True, see sandbox.run_programs
    for the options); an error of the sandbox itself counts as not passed and shows in status_counts."""
    _require_opt_in(allow_code_execution)
    problems = list(problems)
    if isinstance(completions, Mapping):
        missing = [p.task_id for p in problems if p.task_id not in completions]
        if missing:
            raise ValueError(f"no completion for {len(missing)} problems, e.g. {missing[:3]}")
        texts = [completions[p.task_id] for p in problems]
    else:
        texts = list(completions)
        if len(texts) != len(problems):
            raise ValueError(f"{len(texts)} completions for {len(problems)} HumanEval problems")
    if not problems:
        raise ValueError("no HumanEval problems to evaluate")
    runs = run_programs([build_program(p, c) for p, c in zip(problems, texts)],
                        allow_code_execution=allow_code_execution, timeout_s=timeout_s, memory_mb=memory_mb,
                        workers=workers, isolation=isolation, **sandbox_options)
    results = tuple(HumanEvalResult(p.task_id, c, r) for p, c, r in zip(problems, texts, runs))
    n_passed = sum(r.passed for r in results)
    return HumanEvalSummary(len(results), n_passed, n_passed / len(results), results)
