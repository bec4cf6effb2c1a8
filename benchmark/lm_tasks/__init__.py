"""Task data and scoring for the language-model benchmarks of paper C: GSM8K and HumanEval.

- data: the pinned GSM8K test split and HumanEval problems (local path, env var, cache or download);
- gsm8k: answer extraction and exact-match accuracy;
- sandbox: running model-written Python in a limited child process, only with an explicit opt-in;
- humaneval: completion cleaning, program assembly and pass@1.

See docs/LM_TASKS.md.
"""
from .data import (GSM8K_PIN, HUMANEVAL_PIN, DataPin, Gsm8kProblem, HumanEvalProblem, TaskDataError,
                   TaskDataUnavailable, TaskSet, load_gsm8k, load_humaneval, task_cache_dir)
from .gsm8k import (Gsm8kScore, Gsm8kSummary, evaluate_gsm8k, extract_answer, extract_last_number, extract_strict,
                    normalize_number, reference_answer, score_gsm8k)
from .humaneval import (HUMANEVAL_STOP_SEQUENCES, HumanEvalResult, HumanEvalSummary, build_program,
                        clean_completion, evaluate_humaneval, extract_code, truncate_at_stops)
from .sandbox import (ALLOW_CODE_EXECUTION_ENV, ALLOW_CODE_EXECUTION_FLAG, CodeExecutionNotAllowed, ExecutionResult,
                      SandboxUnavailable, code_execution_opt_in, namespace_isolation, run_programs, run_python)

__all__ = [
    "GSM8K_PIN", "HUMANEVAL_PIN", "DataPin", "Gsm8kProblem", "HumanEvalProblem", "TaskDataError",
    "TaskDataUnavailable", "TaskSet", "load_gsm8k", "load_humaneval", "task_cache_dir",
    "Gsm8kScore", "Gsm8kSummary", "evaluate_gsm8k", "extract_answer", "extract_last_number", "extract_strict",
    "normalize_number", "reference_answer", "score_gsm8k",
    "HUMANEVAL_STOP_SEQUENCES", "HumanEvalResult", "HumanEvalSummary", "build_program", "clean_completion",
    "evaluate_humaneval", "extract_code", "truncate_at_stops",
    "ALLOW_CODE_EXECUTION_ENV", "ALLOW_CODE_EXECUTION_FLAG", "CodeExecutionNotAllowed", "ExecutionResult",
    "SandboxUnavailable", "code_execution_opt_in", "namespace_isolation", "run_programs", "run_python",
]
