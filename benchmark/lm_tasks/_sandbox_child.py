"""The sandbox's child process: installs the guard, then runs the untrusted program.

Started by sandbox.py as `python -I _sandbox_child.py STATUS_FD PROGRAM GUARD` inside a fresh temporary
folder (the working directory); never imported by SinkBench. Stand-alone on purpose (stdlib only).

stdin carries one line, the run's nonce. On STATUS_FD the child writes JSON lines: {"ready": true} before
the untrusted code runs, and at the end {"nonce", "completed", "exception", "violations"}. The parent
counts a run as passed only when that last record arrives with the nonce and says completed, so a
program that exits early (sys.exit, os._exit) does not pass.

The guard is a Python-level tripwire against accidents of model-written code (network access, processes,
writes outside the working folder, ctypes); it is not a security boundary: code that means harm can undo
it. The operating-system limits (namespaces, rlimits) are set by the parent.
"""
import builtins
import io
import json
import os
import posix
import shutil
import socket
import subprocess
import sys
import traceback

import _io
import _posixsubprocess
import _socket

MAX_VIOLATIONS = 20
MAX_MESSAGE = 500
BLOCKED_MODULES = ("ctypes", "_ctypes", "resource", "pty")


class SandboxViolation(BaseException):
    """Raised by the guard. A BaseException so that `except Exception` in the program does not hide it."""


def install_guard(root, violations):
    """Replace network, process and file-mutation functions by ones that raise SandboxViolation; file
    writes stay allowed inside `root` (the working folder)."""
    realpath, fspath, sep = os.path.realpath, os.fspath, os.sep

    def violation(name, what):
        if len(violations) < MAX_VIOLATIONS:
            violations.append(f"{name} ({what})")
        raise SandboxViolation(f"{name} is blocked by the SinkBench sandbox ({what})")

    def blocked(name, what):
        def fn(*args, **kwargs):
            violation(name, what)
        fn.__name__ = name.rsplit(".", 1)[-1]
        return fn

    def check_inside(name, path):
        if isinstance(path, int):       # an open file descriptor: checked when it was opened
            return
        try:
            p = fspath(path)
        except TypeError:
            return                      # the real function reports the bad argument
        if isinstance(p, bytes):
            p = os.fsdecode(p)
        real = realpath(p)
        if real != root and not real.startswith(root + sep):
            violation(name, f"writes outside the sandbox folder: {p}")

    def relative_to_fd(name, path, dir_fd):
        """`path` as the file system sees it when given relative to the open folder `dir_fd`."""
        if dir_fd is None or isinstance(path, int):
            return path
        try:
            folder = os.readlink(f"/proc/self/fd/{int(dir_fd)}")
        except (OSError, TypeError, ValueError):
            violation(name, "dir_fd that cannot be resolved")
        return os.path.join(folder, os.fsdecode(fspath(path)))

    def path_checked(name, fn, slots):
        """`fn` that first checks its path arguments; slots: (position, keyword, dir_fd keyword or None)."""
        def wrapper(*args, **kwargs):
            for pos, key, fd_key in slots:
                path = args[pos] if len(args) > pos else kwargs.get(key)
                if path is not None:
                    check_inside(name, relative_to_fd(name, path, kwargs.get(fd_key) if fd_key else None))
            return fn(*args, **kwargs)
        wrapper.__name__ = fn.__name__
        return wrapper

    # network: the socket classes stay classes (the stdlib subclasses them at import) but cannot be built
    class BlockedSocket(socket.socket):
        def __init__(self, *args, **kwargs):
            violation("socket.socket", "network access")

    class BlockedRawSocket(_socket.socket):
        def __init__(self, *args, **kwargs):
            violation("_socket.socket", "network access")

    socket.socket = socket.SocketType = BlockedSocket
    _socket.socket = _socket.SocketType = BlockedRawSocket
    for name in ("create_connection", "create_server", "socketpair", "fromfd", "getaddrinfo", "gethostbyname",
                 "gethostbyname_ex", "gethostbyaddr", "getnameinfo"):
        for mod in (socket, _socket):
            if hasattr(mod, name):
                setattr(mod, name, blocked(f"socket.{name}", "network access"))

    # processes, identity, system state
    proc_names = ["system", "popen", "fork", "forkpty", "vfork", "execl", "execle", "execlp", "execlpe", "execv",
                  "execve", "execvp", "execvpe", "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve",
                  "spawnvp", "spawnvpe", "posix_spawn", "posix_spawnp", "kill", "killpg", "_exit", "setsid",
                  "setpgid", "chroot", "chdir", "fchdir", "chown", "lchown", "fchown", "mkfifo", "mknod",
                  "setuid", "setgid", "seteuid", "setegid", "setreuid", "setregid", "setresuid", "setresgid"]
    for name in proc_names:
        for mod in (os, posix):
            if hasattr(mod, name):
                setattr(mod, name, blocked(f"os.{name}", "processes and system state"))

    class BlockedPopen(subprocess.Popen):
        def __init__(self, *args, **kwargs):
            violation("subprocess.Popen", "processes")

    subprocess.Popen = BlockedPopen
    _posixsubprocess.fork_exec = blocked("_posixsubprocess.fork_exec", "processes")
    shutil.chown = blocked("shutil.chown", "file system")

    # file mutations: only inside the working folder
    one = [(0, "path", "dir_fd")]
    two = [(0, "src", "src_dir_fd"), (1, "dst", "dst_dir_fd")]
    # symlink: only where the link is made (writes through it are checked at open); link: both, since a
    # hard link to an outside file would look inside
    for name, slots in (("remove", one), ("unlink", one), ("rmdir", one), ("mkdir", one), ("chmod", one),
                        ("lchmod", one), ("truncate", one), ("utime", one), ("rename", two), ("replace", two),
                        ("link", two), ("renames", [(0, "old", None), (1, "new", None)]),
                        ("symlink", [(1, "dst", "dir_fd")])):
        for mod in (os, posix):
            if hasattr(mod, name):
                setattr(mod, name, path_checked(f"os.{name}", getattr(mod, name), slots))

    real_os_open = os.open
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

    def guarded_os_open(path, flags, *args, **kwargs):
        if flags & write_flags:
            check_inside("os.open", relative_to_fd("os.open", path, kwargs.get("dir_fd")))
        return real_os_open(path, flags, *args, **kwargs)

    os.open = posix.open = guarded_os_open

    real_open = _io.open

    def guarded_open(file, mode="r", *args, **kwargs):
        if set(str(mode)) & set("wax+"):
            check_inside("open", file)
        return real_open(file, mode, *args, **kwargs)

    builtins.open = io.open = _io.open = guarded_open

    # modules that reach below the guard
    class ImportBlocker:
        def find_spec(self, fullname, path=None, target=None):
            if fullname.split(".")[0] in BLOCKED_MODULES:
                violation(f"import {fullname}", "module disabled in the sandbox")
            return None

    for name in list(sys.modules):
        if name.split(".")[0] in BLOCKED_MODULES:
            del sys.modules[name]
    sys.meta_path.insert(0, ImportBlocker())


def main():
    status_fd, program_path, use_guard = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
    write, exit_now = os.write, os._exit
    nonce = sys.stdin.readline().strip()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.set_inheritable(status_fd, False)

    def report(record):
        data = (json.dumps(record) + "\n").encode("utf-8")
        while data:
            data = data[write(status_fd, data):]

    with _io.open(program_path, encoding="utf-8") as fh:
        source = fh.read()
    violations = []
    if use_guard:
        install_guard(os.path.realpath(os.getcwd()), violations)
    report({"ready": True})

    completed, exception = False, None
    try:
        code = compile(source, program_path, "exec")
        # __name__ is not "__main__": `if __name__ == "__main__":` blocks of the program do not run
        exec(code, {"__name__": "__sandbox__", "__builtins__": builtins})
        completed = True
    except BaseException as exc:    # SystemExit and SandboxViolation included: the program did not finish
        try:
            message = str(exc)
            exception = (f"{type(exc).__name__}: {message}" if message else type(exc).__name__)[:MAX_MESSAGE]
        except BaseException:
            exception = type(exc).__name__
        try:
            traceback.print_exc()
        except BaseException:
            pass
    finally:
        for stream in (sys.__stdout__, sys.__stderr__):
            try:
                stream.flush()
            except BaseException:
                pass
        report({"nonce": nonce, "completed": completed, "exception": exception, "violations": violations})
        exit_now(0 if completed and not violations else 1)


if __name__ == "__main__":
    main()
