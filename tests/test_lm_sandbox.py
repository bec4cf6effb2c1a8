"""Tests of benchmark.lm_tasks.sandbox: opt-in, pass/fail, timeouts, limits, network and file isolation.

Each test runs small fixed programs in child processes (about 0.1 s each; the timeout tests 1-2 s).
"""
from __future__ import annotations

import os
import socket
import textwrap
import time
from pathlib import Path

import pytest

from benchmark.lm_tasks import sandbox as S
from benchmark.lm_tasks import (ALLOW_CODE_EXECUTION_ENV, ALLOW_CODE_EXECUTION_FLAG, CodeExecutionNotAllowed,
                                HumanEvalProblem, SandboxUnavailable, code_execution_opt_in, evaluate_humaneval,
                                namespace_isolation, run_programs, run_python)

PROBLEM = HumanEvalProblem(
    task_id="Fixture/0",
    prompt='def add(a: int, b: int) -> int:\n    """ Return a + b.\n    >>> add(2, 3)\n    5\n    """\n',
    canonical_solution="    return a + b\n",
    test="\n\ndef check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n",
    entry_point="add")


def run(source: str, **kwargs):
    kwargs.setdefault("timeout_s", 10)
    kwargs.setdefault("memory_mb", 512)
    return run_python(textwrap.dedent(source), allow_code_execution=True, **kwargs)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"   # a zombie of another reaper counts as gone


# ------------------------------------------------------------------------------------------ opt-in

def test_refuses_without_opt_in(monkeypatch):
    monkeypatch.delenv(ALLOW_CODE_EXECUTION_ENV, raising=False)
    for call in (lambda: run_python("x = 1", allow_code_execution=False),
                 lambda: run_programs(["x = 1"], allow_code_execution=False),
                 lambda: evaluate_humaneval([PROBLEM], ["    return a + b\n"], allow_code_execution=False)):
        with pytest.raises(CodeExecutionNotAllowed) as exc:
            call()
        assert ALLOW_CODE_EXECUTION_FLAG in str(exc.value) and ALLOW_CODE_EXECUTION_ENV in str(exc.value)
    # a truthy value that is not True is not an opt-in
    with pytest.raises(CodeExecutionNotAllowed):
        run_python("x = 1", allow_code_execution="yes")


def test_opt_in_from_flag_or_env(monkeypatch):
    monkeypatch.delenv(ALLOW_CODE_EXECUTION_ENV, raising=False)
    assert code_execution_opt_in(False) is False
    assert code_execution_opt_in(True) is True
    for value, expected in (("1", True), ("yes", True), ("true", True), ("0", False), ("", False)):
        monkeypatch.setenv(ALLOW_CODE_EXECUTION_ENV, value)
        assert code_execution_opt_in() is expected


# ------------------------------------------------------------------------------------------ outcomes

def test_correct_completion_passes_and_wrong_one_fails():
    good = evaluate_humaneval([PROBLEM], ["    return a + b\n"], allow_code_execution=True)
    assert good.pass_at_1 == 1.0 and good.results[0].execution.status == "passed"
    bad = evaluate_humaneval([PROBLEM], ["    return a - b\n"], allow_code_execution=True)
    r = bad.results[0].execution
    assert bad.pass_at_1 == 0.0 and r.status == "failed" and r.reason == "AssertionError"
    assert "assert candidate(2, 3) == 5" in r.stderr_tail


@pytest.mark.parametrize("source, reason", [
    ("def f(:\n    pass", "SyntaxError"),
    ("raise ValueError('bad value')", "ValueError: bad value"),
    ("import sys\nsys.exit(0)", "SystemExit: 0"),                   # exiting early is not passing
])
def test_failures(source, reason):
    r = run(source)
    assert r.status == "failed" and r.reason.startswith(reason)


def test_stdout_and_order_with_parallel_workers():
    results = run_programs([f"print({i})" for i in range(5)], allow_code_execution=True, workers=2)
    assert [r.stdout_tail.strip() for r in results] == [str(i) for i in range(5)]
    assert all(r.passed for r in results)


def test_exit_before_the_end_is_not_passed_even_without_the_guard():
    r = run("import os\nos._exit(0)\nraise SystemExit", guard=False)
    assert r.status == "failed" and "ended before finishing" in r.reason


# ------------------------------------------------------------------------------------------ time limits

def test_infinite_loop_is_killed_at_the_timeout():
    t0 = time.monotonic()
    r = run("import os\nprint(os.getpid(), flush=True)\nwhile True:\n    pass", timeout_s=1.5)
    elapsed = time.monotonic() - t0
    assert r.status == "timed_out" and "wall-clock timeout after 1.5 s" in r.reason
    assert 1.4 < elapsed < 5
    assert _gone(int(r.stdout_tail.split()[0]))


def test_timeout_kills_the_whole_process_group():
    # without the guard the program can start a process; the timeout must not leave it running
    r = run("""
        import subprocess, time
        p = subprocess.Popen(["sleep", "60"])
        print(p.pid, flush=True)
        time.sleep(60)
        """, timeout_s=1.5, guard=False)
    assert r.status == "timed_out"
    pid = int(r.stdout_tail.split()[0])
    deadline = time.monotonic() + 2
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(pid)


def test_cpu_limit():
    r = run("while True:\n    pass", timeout_s=20, cpu_s=1)
    assert r.status == "timed_out" and "CPU time limit" in r.reason
    assert r.duration_s < 10


# ------------------------------------------------------------------------------------------ memory and files

@pytest.mark.parametrize("bomb", [
    "x = bytearray(4 * 2**30)",
    "x = []\nwhile True:\n    x.append(bytearray(10**7))",
    "x = ' ' * (2**40)",
])
def test_memory_bomb_fails(bomb):
    r = run(bomb, memory_mb=256)
    assert r.status == "failed" and "MemoryError" in r.reason


def test_file_size_limit():
    r = run("open('big', 'wb').write(b'x' * (4 * 2**20))", file_size_mb=1)
    assert r.status == "failed" and "File too large" in r.reason


def test_test_process_cwd_and_files_are_untouched(tmp_path):
    sentinel = tmp_path / "sentinel.txt"
    sentinel.write_text("keep me")
    cwd_before = os.getcwd()
    listing_before = sorted(os.listdir(cwd_before))
    r = run(f"""
        import os
        print(os.getcwd(), flush=True)
        open("scratch.txt", "w").write("inside is fine")
        os.remove("scratch.txt")
        open({str(sentinel)!r}, "w").write("overwritten")
        """)
    assert r.status == "failed" and "writes outside the sandbox folder" in r.reason
    assert sentinel.read_text() == "keep me"
    assert os.getcwd() == cwd_before and sorted(os.listdir(cwd_before)) == listing_before
    sandbox_folder = r.stdout_tail.split()[0]
    assert sandbox_folder != cwd_before and not os.path.exists(sandbox_folder)   # deleted afterwards
    for source in (f"import os\nos.remove({str(sentinel)!r})", f"import shutil\nshutil.rmtree({str(tmp_path)!r})",
                   f"import os\nos.rename({str(sentinel)!r}, 'stolen')"):
        assert run(source).status == "failed"
    assert sentinel.read_text() == "keep me"


def test_minimal_environment(monkeypatch):
    monkeypatch.setenv("SINKBENCH_TEST_SECRET", "do-not-leak")
    r = run("""
        import os, sys
        assert "SINKBENCH_TEST_SECRET" not in os.environ
        assert os.environ["HOME"] == os.getcwd()
        assert sys.flags.isolated == 1
        """)
    assert r.passed, r.reason


# ------------------------------------------------------------------------------------------ network and processes

@pytest.fixture
def listener():
    """A TCP server of the test process on 127.0.0.1; the sandbox must not reach it."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(5)
    s.settimeout(0.2)
    yield s
    s.close()


def _assert_no_connection(server: socket.socket) -> None:
    with pytest.raises(socket.timeout):
        server.accept()[0].close()


@pytest.mark.parametrize("target", ["local", "public"])
def test_network_is_blocked_by_the_guard(listener, target):
    host, port = ("127.0.0.1", listener.getsockname()[1]) if target == "local" else ("1.1.1.1", 53)
    r = run(f"""
        import socket
        c = socket.create_connection(({host!r}, {port}), timeout=2)
        print("CONNECTED")
        """)
    assert r.status == "failed"
    assert "socket.create_connection is blocked by the SinkBench sandbox" in r.stderr_tail
    assert "blocked by the sandbox guard" in r.reason and "CONNECTED" not in r.stdout_tail
    _assert_no_connection(listener)


def test_swallowed_violation_still_fails(listener):
    r = run(f"""
        import socket
        try:
            s = socket.socket()
            s.connect(("127.0.0.1", {listener.getsockname()[1]}))
        except BaseException:
            pass
        """)
    assert r.status == "failed" and r.violations == ("socket.socket (network access)",)
    _assert_no_connection(listener)


def test_network_namespace_blocks_without_the_guard(listener):
    if namespace_isolation() is None:
        pytest.skip("this machine cannot create network namespaces (unshare); the guard is the only barrier")
    r = run(f"""
        import socket
        for target in [("127.0.0.1", {listener.getsockname()[1]}), ("1.1.1.1", 53)]:
            try:
                socket.create_connection(target, timeout=2).close()
            except OSError as exc:
                print("refused", type(exc).__name__)
            else:
                print("CONNECTED", target)
        """, guard=False)
    assert r.passed, r.reason
    assert "CONNECTED" not in r.stdout_tail and r.stdout_tail.count("refused") == 2
    assert any(x.startswith("network namespace") for x in r.isolation)
    _assert_no_connection(listener)


@pytest.mark.parametrize("source, blocked", [
    ("import subprocess\nsubprocess.run(['true'])", "subprocess.Popen"),
    ("import os\nos.system('true')", "os.system"),
    ("import os\nos.fork()", "os.fork"),
    ("import ctypes", "import ctypes"),
    ("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)", "os.kill"),
])
def test_processes_and_ctypes_are_blocked(source, blocked):
    r = run(source)
    assert r.status == "failed" and r.reason.startswith(f"blocked by the sandbox guard: {blocked}")


def test_isolation_modes(monkeypatch):
    r = run("x = 1", isolation="none")
    assert r.passed and "no network namespace" in r.isolation
    monkeypatch.setattr(S, "namespace_isolation", lambda python=None: None)
    with pytest.raises(SandboxUnavailable, match="network namespace"):
        run("x = 1", isolation="namespaces")
    assert run("x = 1", isolation="auto").passed
    with pytest.raises(ValueError, match="isolation must be one of"):
        run("x = 1", isolation="docker")


def test_a_sandbox_that_cannot_start_is_an_error():
    r = run("x = 1", python="/nonexistent/python3")
    assert r.status == "error" and not r.passed
    assert "could not start" in r.reason or "did not start" in r.reason
