"""Run model-written Python in a child process with limits; only with an explicit opt-in.

Each program runs in its own child process (never in the calling process):
- opt-in: every entry point takes `allow_code_execution`; without it CodeExecutionNotAllowed names the
  pytest flag --allow-code-execution and the environment variable SINKBENCH_ALLOW_CODE_EXECUTION;
- no network: a new network namespace (`unshare --user --net`, else `unshare --net` when permitted),
  probed at run time; where neither works the Python guard below is the only network barrier;
- limits set in the child before exec (preexec): RLIMIT_AS (memory), RLIMIT_CPU, RLIMIT_FSIZE, no core
  files; a wall-clock timeout kills the child's whole process group (its own session);
- a fresh temporary folder as working directory and HOME/TMPDIR (deleted afterwards), a minimal
  environment, `python -I` (no user site, no PYTHON* variables, no script folder on sys.path);
- a guard in the child (_sandbox_child.py) before the program runs: sockets, processes, ctypes and file
  writes outside the working folder raise SandboxViolation. A Python-level guard is a tripwire against
  accidents, not a security boundary; see docs/LM_TASKS.md.
"""
from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import resource
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

__all__ = ["ALLOW_CODE_EXECUTION_FLAG", "ALLOW_CODE_EXECUTION_ENV", "CodeExecutionNotAllowed", "SandboxUnavailable",
           "ExecutionResult", "code_execution_opt_in", "namespace_isolation", "run_python", "run_programs"]

ALLOW_CODE_EXECUTION_FLAG = "--allow-code-execution"
ALLOW_CODE_EXECUTION_ENV = "SINKBENCH_ALLOW_CODE_EXECUTION"
CHILD_SCRIPT = Path(__file__).with_name("_sandbox_child.py")
PROGRAM_NAME = "program.py"
ISOLATION_MODES = ("auto", "namespaces", "none")

PASSED, FAILED, TIMED_OUT, ERROR = "passed", "failed", "timed_out", "error"
_POLL_S = 0.01
_TAIL_CHARS = 4000


class CodeExecutionNotAllowed(PermissionError):
    """Running model-written code was not opted into."""


class SandboxUnavailable(RuntimeError):
    """isolation="namespaces" was asked for but this machine cannot create network namespaces."""


@dataclass(frozen=True)
class ExecutionResult:
    """The outcome of one program.

    status: "passed" (ran to the end), "failed" (raised, exited early, crashed, hit the memory limit or a
    guard), "timed_out" (wall-clock timeout or CPU limit) or "error" (the sandbox itself could not run it).
    reason: one line, empty when passed. violations: what the guard blocked (any makes the run fail).
    isolation: the protections this run had."""
    status: str
    reason: str
    returncode: int | None
    duration_s: float
    stdout_tail: str
    stderr_tail: str
    violations: tuple[str, ...]
    isolation: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return self.status == PASSED


def code_execution_opt_in(flag: bool = False) -> bool:
    """True when the user opted into running model-written code: the pytest flag's value (`flag`) or
    SINKBENCH_ALLOW_CODE_EXECUTION=1 (also true/yes)."""
    env = os.environ.get(ALLOW_CODE_EXECUTION_ENV, "").strip().lower()
    return bool(flag) or env in ("1", "true", "yes")


def _require_opt_in(allow_code_execution: bool) -> None:
    if allow_code_execution is not True:
        raise CodeExecutionNotAllowed(
            "running model-written code needs an explicit opt-in: pass the pytest flag "
            f"{ALLOW_CODE_EXECUTION_FLAG} (or set {ALLOW_CODE_EXECUTION_ENV}=1). It then runs in a child process "
            "with a timeout, memory/CPU limits, a temporary working folder and no network where the machine "
            "allows it (docs/LM_TASKS.md).")


# --------------------------------------------------------------------------------------------------
# Network namespace probe
# --------------------------------------------------------------------------------------------------

_PROBE = "import socket, sys; sys.exit(0 if [n for _, n in socket.if_nameindex()] == ['lo'] else 3)"


@functools.lru_cache(maxsize=None)
def _namespace_prefix(python: str) -> tuple[str, ...] | None:
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    # --user first: works unprivileged where user namespaces are enabled, and the program keeps no capabilities
    for flags in (("--user", "--net"), ("--net",)):
        cmd = [unshare, *flags, "--", python, "-I", "-c", _PROBE]
        try:
            r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               timeout=20, env={"PATH": "/usr/bin:/bin"})
        except (OSError, subprocess.SubprocessError):
            continue
        if r.returncode == 0:
            return (unshare, *flags, "--")
    return None


def namespace_isolation(python: str | None = None) -> tuple[str, ...] | None:
    """The command prefix that runs a program in a new network namespace (only a loopback interface,
    down), e.g. ("/usr/bin/unshare", "--user", "--net", "--"), or None where this machine does not allow
    it. Probed once per process."""
    return _namespace_prefix(python or sys.executable)


# --------------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------------

def _limits(memory_bytes: int, cpu_s: int, fsize_bytes: int):
    """The preexec function: set the child's limits (soft = hard, so the program cannot raise them)."""
    def clamp(which: int, value: int) -> tuple[int, int]:
        _, hard = resource.getrlimit(which)
        v = value if hard == resource.RLIM_INFINITY else min(value, hard)
        return v, v

    cpu_soft, cpu_hard = clamp(resource.RLIMIT_CPU, cpu_s + 1)
    plan = [(resource.RLIMIT_AS, clamp(resource.RLIMIT_AS, memory_bytes)),
            # SIGXCPU at cpu_s, SIGKILL one second later
            (resource.RLIMIT_CPU, (min(cpu_s, cpu_soft), cpu_hard)),
            (resource.RLIMIT_FSIZE, clamp(resource.RLIMIT_FSIZE, fsize_bytes)),
            (resource.RLIMIT_CORE, (0, 0))]
    setrlimit = resource.setrlimit

    def apply() -> None:    # runs between fork and exec: only setrlimit calls
        for which, limits in plan:
            setrlimit(which, limits)
    return apply


def _child_env(folder: str) -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": folder, "TMPDIR": folder, "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _tail(path: Path, chars: int = _TAIL_CHARS) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 4 * chars))
            return fh.read().decode("utf-8", "replace")[-chars:]
    except OSError:
        return ""


def _remove_tree(path: str) -> None:
    """Delete a folder the program may have made read-only."""
    def make_writable_and_retry(func, p, _exc):
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(p), stat.S_IRWXU)
            os.chmod(p, stat.S_IRWXU)
            func(p)
    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=make_writable_and_retry)
    else:
        shutil.rmtree(path, onerror=make_writable_and_retry)
    if os.path.exists(path):
        shutil.rmtree(path, ignore_errors=True)


@dataclass
class _Run:
    index: int
    source: str
    folder: str = ""
    io_folder: str = ""
    proc: subprocess.Popen | None = None
    status_r: int = -1
    status_buf: bytes = b""
    nonce: str = ""
    started: float = 0.0
    killed_at_timeout: bool = False
    start_error: str = ""

    def drain(self) -> None:
        if self.status_r < 0:
            return
        while True:
            try:
                chunk = os.read(self.status_r, 65536)
            except BlockingIOError:
                return
            except OSError:
                return
            if not chunk:
                return
            self.status_buf += chunk


@dataclass(frozen=True)
class _Settings:
    python: str
    prefix: tuple[str, ...]
    timeout_s: float
    preexec: object
    guard: bool
    isolation: tuple[str, ...]


def _start(run: _Run, s: _Settings) -> None:
    run.folder = tempfile.mkdtemp(prefix="sinkbench-sandbox-")
    run.io_folder = tempfile.mkdtemp(prefix="sinkbench-sandbox-io-")
    Path(run.folder, PROGRAM_NAME).write_text(run.source, encoding="utf-8")
    run.nonce = secrets.token_hex(16)
    r, w = os.pipe()
    os.set_blocking(r, False)
    cmd = [*s.prefix, s.python, "-I", "-X", "utf8", str(CHILD_SCRIPT), str(w), PROGRAM_NAME, "1" if s.guard else "0"]
    try:
        with open(Path(run.io_folder, "stdout"), "wb") as out, open(Path(run.io_folder, "stderr"), "wb") as err:
            run.started = time.monotonic()
            run.proc = subprocess.Popen(cmd, cwd=run.folder, env=_child_env(run.folder), stdin=subprocess.PIPE,
                                        stdout=out, stderr=err, pass_fds=(w,), start_new_session=True,
                                        preexec_fn=s.preexec)
    except (OSError, subprocess.SubprocessError) as exc:
        os.close(r)
        run.start_error = f"could not start the sandbox process: {exc}"
        return
    finally:
        os.close(w)
    run.status_r = r
    try:
        run.proc.stdin.write(f"{run.nonce}\n".encode())
        run.proc.stdin.close()
    except OSError:
        pass    # the child died at once; reported from its exit status


def _exited(proc: subprocess.Popen) -> bool:
    """Whether the child exited, without reaping it (its pid, and so its process group id, stay reserved
    until the group is killed below)."""
    if proc.returncode is not None:
        return True
    if not hasattr(os, "waitid"):   # not Linux: poll() reaps, a reused process group id is then possible
        return proc.poll() is not None
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:   # reaped elsewhere
        return True


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _finish(run: _Run, s: _Settings) -> ExecutionResult:
    proc = run.proc
    duration = time.monotonic() - run.started if run.started else 0.0
    if proc is not None:
        _kill_group(proc)           # stray descendants, if any got past the guard
        returncode = proc.wait()
    else:
        returncode = None
    run.drain()
    if run.status_r >= 0:
        os.close(run.status_r)
        run.status_r = -1
    stdout_tail = _tail(Path(run.io_folder, "stdout"), 1000) if run.io_folder else ""
    stderr_tail = _tail(Path(run.io_folder, "stderr")) if run.io_folder else ""
    for folder in (run.folder, run.io_folder):
        if folder:
            _remove_tree(folder)

    records = []
    for line in run.status_buf.decode("utf-8", "replace").splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            rec = json.loads(line)
            if isinstance(rec, dict):
                records.append(rec)
    ready = any(r.get("ready") is True for r in records)
    final = next((r for r in records if r.get("nonce") == run.nonce), None)
    violations = tuple(str(v) for v in (final or {}).get("violations") or ())

    def result(status: str, reason: str) -> ExecutionResult:
        return ExecutionResult(status, reason, returncode, round(duration, 3), stdout_tail, stderr_tail,
                               violations, s.isolation)

    if run.start_error:
        return result(ERROR, run.start_error)
    if run.killed_at_timeout:
        return result(TIMED_OUT, f"wall-clock timeout after {s.timeout_s:g} s (process group killed)")
    if returncode == -signal.SIGXCPU:
        return result(TIMED_OUT, "CPU time limit reached (SIGXCPU)")
    if final is not None:
        if final.get("completed") and not violations and returncode == 0:
            return result(PASSED, "")
        if violations:
            return result(FAILED, f"blocked by the sandbox guard: {violations[0]}"
                          + (f" (+{len(violations) - 1} more)" if len(violations) > 1 else ""))
        if final.get("exception"):
            return result(FAILED, str(final["exception"]))
        return result(FAILED, f"exit status {returncode}")
    if not ready:
        last = stderr_tail.strip().splitlines()[-1:] or ["no output"]
        return result(ERROR, f"the sandbox did not start the program (exit status {returncode}): {last[0][:300]}")
    if returncode is not None and returncode < 0:
        name = signal.Signals(-returncode).name if -returncode in signal.valid_signals() else str(-returncode)
        what = {"SIGKILL": " (CPU hard limit or out of memory)", "SIGXFSZ": " (file size limit)",
                "SIGSEGV": " (crash, e.g. memory limit in a C extension or deep recursion)"}.get(name, "")
        return result(FAILED, f"killed by {name}{what}")
    return result(FAILED, f"the program ended before finishing (exit status {returncode}, e.g. os._exit)")


def run_programs(sources: Sequence[str], *, allow_code_execution: bool, timeout_s: float = 10.0,
                 memory_mb: int = 1024, cpu_s: int | None = None, file_size_mb: int = 16, workers: int = 1,
                 isolation: str = "auto", guard: bool = True, python: str | None = None) -> list[ExecutionResult]:
    """Run each source as its own program in the sandbox; results in input order.

    timeout_s: wall clock per program (the whole process group is killed); cpu_s: CPU seconds (default
    ceil(timeout_s) + 1); memory_mb: address-space limit; file_size_mb: largest file (and output) it may
    write; workers: programs running at once; isolation: "auto" (a network namespace where the machine
    allows one), "namespaces" (required: SandboxUnavailable otherwise) or "none" (limits and guard only);
    guard=False leaves out the Python guard (for testing the outer layers only); python: the interpreter
    (default: this one)."""
    _require_opt_in(allow_code_execution)
    if isolation not in ISOLATION_MODES:
        raise ValueError(f"isolation must be one of {ISOLATION_MODES}, got {isolation!r}")
    if timeout_s <= 0 or memory_mb <= 0 or workers < 1:
        raise ValueError("timeout_s and memory_mb must be positive and workers >= 1")
    python = python or sys.executable
    prefix: tuple[str, ...] = ()
    if isolation != "none":
        prefix = namespace_isolation(python) or ()
        if not prefix and isolation == "namespaces":
            raise SandboxUnavailable("cannot create a network namespace here (`unshare --user --net` and "
                                     "`unshare --net` both failed or are missing); use isolation='auto' to run "
                                     "with limits and the Python guard only")
    cpu = int(cpu_s) if cpu_s is not None else math.ceil(timeout_s) + 1
    isolation_desc = ((f"network namespace (unshare {' '.join(prefix[1:-1])})",) if prefix
                      else ("no network namespace",)) + (
        f"rlimits: address space {memory_mb} MiB, CPU {cpu} s, file size {file_size_mb} MiB",
        f"wall-clock timeout {timeout_s:g} s (process group killed)",
        "temporary working folder, minimal environment, python -I",
        "Python guard" if guard else "no Python guard")
    settings = _Settings(python, prefix, timeout_s, _limits(memory_mb * 2**20, cpu, file_size_mb * 2**20), guard,
                         isolation_desc)

    pending = [_Run(i, src) for i, src in enumerate(sources)]
    pending.reverse()
    active: list[_Run] = []
    results: list[ExecutionResult | None] = [None] * len(pending)
    try:
        while pending or active:
            while pending and len(active) < workers:
                run = pending.pop()
                _start(run, settings)
                if run.proc is None:
                    results[run.index] = _finish(run, settings)
                else:
                    active.append(run)
            time.sleep(_POLL_S)
            still = []
            for run in active:
                run.drain()
                if _exited(run.proc):
                    results[run.index] = _finish(run, settings)
                elif time.monotonic() - run.started > timeout_s:
                    run.killed_at_timeout = True
                    results[run.index] = _finish(run, settings)
                else:
                    still.append(run)
            active = still
    finally:        # interrupted (e.g. Ctrl-C): leave no child running and no folder behind
        for run in active:
            if results[run.index] is None:
                with contextlib.suppress(Exception):
                    _finish(run, settings)
    return [r for r in results if r is not None]


def run_python(source: str, *, allow_code_execution: bool, timeout_s: float = 10.0, memory_mb: int = 1024,
               **kwargs) -> ExecutionResult:
    """Run one program in the sandbox (see `run_programs` for the options)."""
    return run_programs([source], allow_code_execution=allow_code_execution, timeout_s=timeout_s,
                        memory_mb=memory_mb, **kwargs)[0]
