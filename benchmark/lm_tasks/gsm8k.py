"""GSM8K answer extraction and exact-match scoring.

The reference answer of a GSM8K problem is the number after '####' at the end of its solution text.
A model output is read two ways, in the spirit of lm-evaluation-harness's gsm8k task:

- strict: the first "#### N" in the output (lm-eval's strict-match; here whitespace after '####' and a
  '$' before the number are also accepted);
- flexible: the strict answer when there is one, else the last number in the output. (lm-eval's
  flexible-extract takes the last number even when a "#### N" is present; `extract_last_number` gives
  that reading.)

Numbers compare after normalisation: thousands separators, '$' and a trailing '.' are dropped, and
decimals compare by value ("18.00" == "18", "0.50" == ".5").
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable, Sequence

__all__ = ["normalize_number", "reference_answer", "extract_strict", "extract_last_number", "extract_answer",
           "Gsm8kScore", "Gsm8kSummary", "score_gsm8k", "evaluate_gsm8k"]

# A number as written in text: optional sign and '$', digits with proper thousands groups or plain digits,
# optional decimals. Not preceded by a word character or '.', so "x2" and "v1.5" do not yield numbers and
# in "5-3" the '-' is a dash, not a sign.
_NUMBER = r"-?\$?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\$?\.\d+"
_NUMBER_RE = re.compile(rf"(?<![\w.])(?:{_NUMBER})")
_STRICT_RE = re.compile(r"####\s*(-?\$?\s*[0-9.,]*[0-9][0-9.,]*)")


def normalize_number(text: str | None) -> str | None:
    """The canonical form of a written number ("1,000" -> "1000", "$18.00" -> "18", "0.50" -> "0.5",
    "-3." -> "-3"), or None when `text` is not a number."""
    if text is None:
        return None
    s = text.strip().replace(",", "").replace("$", "").replace(" ", "")
    s = s.rstrip(".")
    if not s or not re.fullmatch(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)", s):
        return None
    try:
        value = Decimal(s)
    except InvalidOperation:
        return None
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def reference_answer(solution: str) -> str:
    """The normalised number after the last '####' of a GSM8K reference solution."""
    if "####" not in solution:
        raise ValueError(f"not a GSM8K solution (no '####'): {solution[-80:]!r}")
    tail = solution.rsplit("####", 1)[1].strip()
    value = normalize_number(tail)
    if value is None:
        raise ValueError(f"GSM8K solution does not end with a number after '####': {tail!r}")
    return value


def extract_strict(output: str) -> str | None:
    """The normalised number of the first "#### N" in a model output, or None."""
    for match in _STRICT_RE.finditer(output):
        value = normalize_number(match.group(1))
        if value is not None:
            return value
    return None


def extract_last_number(output: str) -> str | None:
    """The normalised last number anywhere in a model output, or None."""
    matches = _NUMBER_RE.findall(output)
    return normalize_number(matches[-1]) if matches else None


def extract_answer(output: str) -> str | None:
    """The flexible reading: the strict "#### N" answer if present, else the last number."""
    strict = extract_strict(output)
    return strict if strict is not None else extract_last_number(output)


@dataclass(frozen=True)
class Gsm8kScore:
    """One output scored against one reference: the extracted answers and whether they match."""
    target: str
    strict: str | None
    flexible: str | None

    @property
    def strict_correct(self) -> bool:
        return self.strict == self.target

    @property
    def flexible_correct(self) -> bool:
        return self.flexible == self.target


def _target_of(reference: Any) -> str:
    """A reference given as a problem (with .answer), a full solution text, or a bare number."""
    if hasattr(reference, "answer"):
        return str(reference.answer)
    text = str(reference)
    if "####" in text:
        return reference_answer(text)
    value = normalize_number(text)
    if value is None:
        raise ValueError(f"not a GSM8K reference answer: {text!r}")
    return value


def score_gsm8k(output: str, reference: Any) -> Gsm8kScore:
    """Score one model output. `reference`: a Gsm8kProblem, a reference solution ("... #### 18") or "18"."""
    return Gsm8kScore(_target_of(reference), extract_strict(output), extract_answer(output))


@dataclass(frozen=True)
class Gsm8kSummary:
    """Exact-match accuracy over a list of problems (fractions in [0, 1])."""
    n: int
    strict_accuracy: float
    flexible_accuracy: float
    scores: tuple[Gsm8kScore, ...]


def evaluate_gsm8k(references: Sequence[Any] | Iterable[Any], outputs: Sequence[str]) -> Gsm8kSummary:
    """Score outputs[i] against references[i] (problems, solution texts or numbers); same length."""
    refs = list(references)
    outs = list(outputs)
    if len(refs) != len(outs):
        raise ValueError(f"{len(outs)} outputs for {len(refs)} GSM8K problems")
    if not refs:
        raise ValueError("no GSM8K problems to score")
    scores = tuple(score_gsm8k(o, r) for r, o in zip(refs, outs))
    n = len(scores)
    return Gsm8kSummary(n, sum(s.strict_correct for s in scores) / n,
                        sum(s.flexible_correct for s in scores) / n, scores)
