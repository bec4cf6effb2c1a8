"""Tests of benchmark.lm_tasks data loading, GSM8K scoring and HumanEval program assembly.

Offline: fixtures are made-up problems in the upstream formats (tests/data/lm_tasks/); downloads go to
file:// URLs or a closed local port. Tests of the real files read ../shared/data (never copied into the
repository) and skip where it is absent.
"""
from __future__ import annotations

import gzip
import hashlib
import shutil
import socket
from pathlib import Path

import pytest

from benchmark.lm_tasks import (GSM8K_PIN, HUMANEVAL_PIN, Gsm8kProblem, TaskDataError, TaskDataUnavailable,
                                build_program, clean_completion, evaluate_gsm8k, evaluate_humaneval, extract_answer,
                                extract_code, extract_last_number, extract_strict, load_gsm8k, load_humaneval,
                                normalize_number, reference_answer, score_gsm8k, task_cache_dir, truncate_at_stops)
from benchmark.lm_tasks import data as D

FIXTURES = Path(__file__).resolve().parent / "data" / "lm_tasks"
GSM8K_FIXTURE = FIXTURES / "gsm8k_test.jsonl"
HUMANEVAL_FIXTURE = FIXTURES / "HumanEval.jsonl"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def _no_user_data(monkeypatch, tmp_path):
    """No test sees the user's cache or environment variables."""
    monkeypatch.setenv("SINKBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(GSM8K_PIN.env, raising=False)
    monkeypatch.delenv(HUMANEVAL_PIN.env, raising=False)


def _closed_port_url(name: str) -> str:
    """A URL on a local port nothing listens on: the download fails at once, without the network."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{name}"


# ------------------------------------------------------------------------------------------ GSM8K scoring

@pytest.mark.parametrize("text, expected", [
    ("18", "18"), ("18.00", "18"), ("$18", "18"), ("1,000", "1000"), ("$1,250.50", "1250.5"), ("0.50", "0.5"),
    (".5", "0.5"), ("-3", "-3"), ("-3.", "-3"), ("18.", "18"), (" 7 ", "7"), ("+4", "4"), ("-0", "0"),
    ("abc", None), ("", None), ("1.2.3", None), (None, None), ("12 apples", None),
])
def test_normalize_number(text, expected):
    assert normalize_number(text) == expected


def test_reference_answer_takes_the_number_after_the_last_marker():
    assert reference_answer("He has 3 + 4 = <<3+4=7>>7 apples.\n#### 7") == "7"
    assert reference_answer("Total 2,125 dollars.\n#### 2,125") == "2125"
    with pytest.raises(ValueError, match="no '####'"):
        reference_answer("The answer is 7")
    with pytest.raises(ValueError, match="number"):
        reference_answer("#### seven")


@pytest.mark.parametrize("output, strict, last, flexible", [
    ("So the total is 5 + 13 = 18.\n#### 18", "18", "18", "18"),
    ("#### 18\n\nQuestion: next one has 7 apples", "18", "7", "18"),         # strict: the first marker
    ("The answer is 18.", None, "18", "18"),                                  # no marker: the last number
    ("She pays $1,250.00 in total.", None, "1250", "1250"),
    ("####  $1,250.", "1250", "1250", "1250"),
    ("#### -4", "-4", "-4", "-4"),
    ("From 3 to 5 there are 2 steps, i.e. 2.50 hours", None, "2.5", "2.5"),
    ("#### The answer is 12", None, "12", "12"),                              # a marker without a number
    ("no numbers here", None, None, None),
    ("version v1.5 of x2", None, None, None),                                 # digits inside words are not numbers
    ("It dropped 5-3 points", None, "3", "3"),                                # a dash, not a minus sign
    ("#### 18\n#### 20", "18", "20", "18"),
])
def test_extraction(output, strict, last, flexible):
    assert extract_strict(output) == strict
    assert extract_last_number(output) == last
    assert extract_answer(output) == flexible


def test_score_and_evaluate_gsm8k():
    s = score_gsm8k("Step 1 ... #### 18.00", "Reasoning <<9*2=18>>18\n#### 18")
    assert (s.target, s.strict, s.flexible, s.strict_correct, s.flexible_correct) == ("18", "18", "18", True, True)
    s = score_gsm8k("so she makes 18 dollars", "18")
    assert not s.strict_correct and s.flexible_correct
    problems = [Gsm8kProblem("a", "q", "#### 3", "3"), Gsm8kProblem("b", "q", "#### 1,000", "1000"),
                Gsm8kProblem("c", "q", "#### 5", "5")]
    summary = evaluate_gsm8k(problems, ["#### 3", "it is 1,000", "#### 6 (or 5)"])
    assert summary.n == 3
    assert summary.strict_accuracy == pytest.approx(1 / 3)
    assert summary.flexible_accuracy == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="2 outputs for 3"):
        evaluate_gsm8k(problems, ["1", "2"])
    with pytest.raises(ValueError, match="not a GSM8K reference"):
        score_gsm8k("#### 1", "seven")


# ------------------------------------------------------------------------------------------ data: local files

def test_load_gsm8k_from_a_local_file():
    ts = load_gsm8k(GSM8K_FIXTURE, verify=False)
    assert len(ts) == 3 and ts.name == "gsm8k"
    assert [p.id for p in ts] == ["gsm8k-test-0000", "gsm8k-test-0001", "gsm8k-test-0002"]
    assert [p.answer for p in ts] == ["54", "1250", "14"]
    assert ts[1].solution.endswith("#### 1,250")
    assert ts.source["verified"] is False
    assert ts.source["sha256"] == hashlib.sha256(GSM8K_FIXTURE.read_bytes()).hexdigest()
    assert ts.source["commit"] == GSM8K_PIN.commit
    head = ts.head(2)
    assert len(head) == 2 and head.source["limit"] == 2


def test_a_file_that_is_not_the_pinned_one_is_refused():
    with pytest.raises(TaskDataError, match=f"sha256 expected {GSM8K_PIN.sha256}"):
        load_gsm8k(GSM8K_FIXTURE)
    with pytest.raises(TaskDataError, match="pin is of the gzip file"):
        load_humaneval(HUMANEVAL_FIXTURE)


def test_env_var_names_a_checkout(monkeypatch, tmp_path):
    checkout = tmp_path / "grade-school-math"
    (checkout / "grade_school_math" / "data").mkdir(parents=True)
    shutil.copy(GSM8K_FIXTURE, checkout / GSM8K_PIN.path)
    monkeypatch.setenv(GSM8K_PIN.env, str(checkout))
    ts = load_gsm8k(verify=False)
    assert ts.source["file"] == str(checkout / GSM8K_PIN.path)
    assert len(ts) == 3


def test_load_humaneval_gzip_and_plain(tmp_path):
    gz = tmp_path / "HumanEval.jsonl.gz"
    gz.write_bytes(gzip.compress(HUMANEVAL_FIXTURE.read_bytes(), mtime=0))
    for source in (gz, tmp_path, HUMANEVAL_FIXTURE):
        ts = load_humaneval(source, verify=False)
        assert [p.task_id for p in ts] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
        assert ts[0].entry_point == "sum_of_evens"
        assert ts[0].prompt.startswith("from typing import List")


def test_malformed_records_name_the_line(tmp_path):
    bad = tmp_path / "test.jsonl"
    bad.write_text('{"question": "q", "answer": "#### 1"}\n{"question": "q", "answer": "no marker"}\n')
    with pytest.raises(TaskDataError, match=r"test.jsonl:2: .*no '####'"):
        load_gsm8k(bad, verify=False)
    bad.write_text('{"task_id": "X/0", "prompt": "p"}\n')
    with pytest.raises(TaskDataError, match=r":1: a HumanEval record needs string fields canonical_solution"):
        load_humaneval(bad, verify=False)
    bad.write_text("not json\n")
    with pytest.raises(TaskDataError, match=r":1: not JSON"):
        load_gsm8k(bad, verify=False)


def test_missing_local_path_is_unavailable(tmp_path, monkeypatch):
    monkeypatch.setenv(HUMANEVAL_PIN.env, str(tmp_path / "nowhere"))
    with pytest.raises(TaskDataUnavailable, match=rf"\${HUMANEVAL_PIN.env}: no such file or folder") as exc:
        load_humaneval()
    assert HUMANEVAL_PIN.url in str(exc.value)
    with pytest.raises(TaskDataUnavailable, match="holds neither test.jsonl"):
        load_gsm8k(tmp_path)


# ------------------------------------------------------------------------------------------ data: cache, download

@pytest.mark.parametrize("pin, load", [(GSM8K_PIN, load_gsm8k), (HUMANEVAL_PIN, load_humaneval)])
def test_offline_missing_data_names_file_url_and_env_var(tmp_path, pin, load):
    cached = task_cache_dir(pin) / pin.filename
    assert cached == tmp_path / "cache" / pin.task / pin.commit / pin.filename
    for kwargs in ({"download": False}, {"url": _closed_port_url(pin.filename), "timeout": 5}):
        with pytest.raises(TaskDataUnavailable) as exc:
            load(**kwargs)
        msg = str(exc.value)
        assert pin.url in msg and pin.env in msg and str(cached) in msg and pin.sha256 in msg
        assert not cached.exists()


def test_the_pins_point_at_raw_files_of_full_commits():
    for pin in (GSM8K_PIN, HUMANEVAL_PIN):
        assert len(pin.commit) == 40 and len(pin.sha256) == 64
        assert pin.url == f"https://raw.githubusercontent.com/{pin.repository}/{pin.commit}/{pin.path}"


def test_fetch_writes_only_a_matching_file(tmp_path):
    dest = tmp_path / "c" / "test.jsonl"
    good = hashlib.sha256(GSM8K_FIXTURE.read_bytes()).hexdigest()
    with pytest.raises(TaskDataError, match="discarded and nothing was written"):
        D._fetch(GSM8K_FIXTURE.as_uri(), dest, "0" * 64, timeout=5, how_to="")
    assert not dest.exists() and not list(tmp_path.rglob("*.part"))
    D._fetch(GSM8K_FIXTURE.as_uri(), dest, good, timeout=5, how_to="")
    assert dest.read_bytes() == GSM8K_FIXTURE.read_bytes()


def test_a_wrong_download_is_discarded(tmp_path):
    with pytest.raises(TaskDataError, match="discarded"):
        load_gsm8k(url=GSM8K_FIXTURE.as_uri())
    assert not (task_cache_dir(GSM8K_PIN) / GSM8K_PIN.filename).exists()


# ------------------------------------------------------------------------------------------ the real files

def _shared(pin):
    folder = SHARED / pin.task
    if not (folder / pin.filename).is_file():
        pytest.skip(f"no shared copy of {pin.filename} at {folder}")
    return folder / pin.filename


@pytest.mark.parametrize("pin, load", [(GSM8K_PIN, load_gsm8k), (HUMANEVAL_PIN, load_humaneval)])
def test_real_file_matches_the_pin_and_downloads_into_the_cache(pin, load):
    real = _shared(pin)
    assert real.stat().st_size == pin.bytes
    ts = load(real)
    assert len(ts) == pin.records and ts.source["verified"] is True
    # a "download" (file:// URL of the real file) lands in the cache, and the cache is used afterwards
    downloaded = load(url=real.as_uri())
    assert downloaded.source["downloaded_from"] == real.as_uri()
    cached = load(download=False)
    assert cached.source["file"] == str(task_cache_dir(pin) / pin.filename)
    assert [p.id for p in cached] == [p.id for p in ts]


def test_real_gsm8k_references_parse():
    ts = load_gsm8k(_shared(GSM8K_PIN))
    assert all(normalize_number(p.answer) == p.answer for p in ts)
    assert evaluate_gsm8k(ts, [p.solution for p in ts]).strict_accuracy == 1.0


def test_real_humaneval_canonical_solutions_pass_in_the_sandbox():
    ts = load_humaneval(_shared(HUMANEVAL_PIN))
    sample = ts.problems[::8]       # 21 of 164 (all of them pass too; about 12 s on 2 cores)
    summary = evaluate_humaneval(sample, [p.canonical_solution for p in sample], allow_code_execution=True,
                                 workers=2)
    assert summary.n_passed == len(sample), [r.execution.reason for r in summary.results if not r.passed]


# ------------------------------------------------------------------------------------------ HumanEval programs

@pytest.fixture
def fixture_problems():
    return load_humaneval(HUMANEVAL_FIXTURE, verify=False)


def test_truncate_and_extract():
    assert truncate_at_stops("    return 1\n\ndef helper():\n    pass") == "    return 1\n"
    assert truncate_at_stops("    return 1\n") == "    return 1\n"
    assert truncate_at_stops("    x = 1\n    # ok, indented\n    return x\n# done") == \
        "    x = 1\n    # ok, indented\n    return x"
    assert extract_code("Sure:\n```python\ndef f():\n    return 1\n```\nDone") == "def f():\n    return 1\n"
    assert extract_code("```\nx = 1\n```") == "x = 1\n"
    assert extract_code("```py\nx = 1") == "x = 1"              # unclosed fence
    assert extract_code("    return 1") == "    return 1"


def test_clean_completion_and_build_program(fixture_problems):
    p0, _, p2 = fixture_problems
    cont = clean_completion(p0, "    return sum(v for v in values if v % 2 == 0)\n\nprint(sum_of_evens([2]))")
    assert cont == "    return sum(v for v in values if v % 2 == 0)\n"
    program = build_program(p0, cont)
    assert program.startswith(p0.prompt + cont) and program.endswith("check(sum_of_evens)\n")
    assert p0.test in program
    # a chat-style whole definition replaces the stub but keeps the prompt's imports and helpers
    chat = "Here you go:\n```python\ndef quadruple(x: int) -> int:\n    return double(double(x))\n```"
    full = clean_completion(p2, chat)
    assert full.startswith("def quadruple")
    program = build_program(p2, full)
    assert "def double" in program and program.count("def quadruple") == 1


def test_evaluate_humaneval_on_fixtures(fixture_problems):
    canonical = {p.task_id: p.canonical_solution for p in fixture_problems}
    summary = evaluate_humaneval(fixture_problems, canonical, allow_code_execution=True, timeout_s=10, workers=2)
    assert (summary.n, summary.n_passed, summary.pass_at_1) == (3, 3, 1.0)
    wrong = ["    return 0\n", "    return text == text.upper()\n", "def quadruple(x):\n    return 4 * x\n"]
    summary = evaluate_humaneval(fixture_problems, wrong, allow_code_execution=True, timeout_s=10, workers=2)
    assert [r.passed for r in summary.results] == [False, False, True]
    assert summary.pass_at_1 == pytest.approx(1 / 3)
    assert summary.results[0].execution.reason.startswith("AssertionError")
    assert summary.status_counts == {"failed": 2, "passed": 1}
    with pytest.raises(ValueError, match="no completion for 1"):
        evaluate_humaneval(fixture_problems, {"HumanEval/0": "", "HumanEval/1": ""}, allow_code_execution=True)
