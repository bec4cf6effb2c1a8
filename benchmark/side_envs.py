"""Managed side environments for metric packages that cannot live in the main one.

image-reward 1.5 needs transformers 4.x (its BLIP code imports helpers that transformers 5 removed) and timm
0.6.13 (open_clip 3 needs timm >= 1.0.17): ../shared/DESIGN.md. It runs in its own virtual environment, created
by `sinkbench env create imagereward`, behind a worker process (benchmark/metrics/workers/) that reads JSON
requests on stdin and answers on stdout.

By default a side environment shares the main environment's torch and torchvision (a .pth line appends the main
site-packages after its own, so its pinned packages win): no second multi-GB torch download. `--torch install`
installs the same torch version into it instead.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import time
import venv
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

MANIFEST = "sinkbench-env.json"
SHARED_PTH = "zz_sinkbench_shared_main.pth"


class SideEnvMissing(RuntimeError):
    """The side environment is absent or broken; the message says how to (re)create it."""


@dataclass(frozen=True)
class SideEnv:
    name: str
    purpose: str
    requirements: tuple[str, ...]          # installed with their dependencies
    no_deps: tuple[str, ...] = ()          # installed without (packages whose pins are wrong or needless)
    check: str = ""                        # python code that must run in the environment
    notes: tuple[str, ...] = field(default=())


SIDE_ENVS = {
    "imagereward": SideEnv(
        name="imagereward",
        purpose="ImageReward (image-reward 1.5: BLIP ViT-L + BERT-base cross-attention + MLP head)",
        requirements=("transformers==4.46.3", "timm==0.6.13", "fairscale==0.4.13"),
        # its other pins (diffusers, datasets, accelerate, clip) serve training code (ReFL) the worker never imports
        no_deps=("image-reward==1.5",),
        check="import importlib.util, transformers, timm, fairscale, torch, torchvision; "
              "assert importlib.util.find_spec('ImageReward'); assert transformers.__version__.startswith('4.')",
    ),
}


def envs_root() -> Path:
    """$SINKBENCH_ENVS, else ~/.cache/sinkbench/envs."""
    root = os.environ.get("SINKBENCH_ENVS")
    if root:
        return Path(root).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "sinkbench" / "envs"


def spec(name: str) -> SideEnv:
    if name not in SIDE_ENVS:
        raise KeyError(f"unknown side environment {name!r}; known: {', '.join(SIDE_ENVS)}")
    return SIDE_ENVS[name]


def env_dir(name: str, root: str | os.PathLike | None = None) -> Path:
    return Path(root).expanduser() if root else envs_root() / spec(name).name


def env_python(path: Path) -> Path:
    return path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _site_packages(python: Path) -> Path:
    out = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         check=True, capture_output=True, text=True)
    return Path(out.stdout.strip())


def _pip(python: Path, args: list[str], log) -> None:
    command = [str(python), "-m", "pip", "install", "--disable-pip-version-check", *args]
    log("$ " + " ".join(command))
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        raise SideEnvMissing(f"pip failed ({result.returncode}) for {' '.join(args)}:\n{result.stderr[-3000:]}")


def create(name: str, root: str | os.PathLike | None = None, *, torch: str = "shared", force: bool = False,
           log=print) -> Path:
    """Create (or re-create with `force`) a side environment; returns its directory."""
    env = spec(name)
    if torch not in ("shared", "install"):
        raise ValueError(f"torch must be 'shared' or 'install', not {torch!r}")
    path = env_dir(name, root)
    if path.exists() and not force and (path / MANIFEST).is_file():
        log(f"{path} exists; checking it (use --force to re-create)")
        check(name, root)
        return path
    start = time.time()
    log(f"creating {env.name} at {path}")
    venv.EnvBuilder(with_pip=True, clear=True).create(path)
    python = env_python(path)
    main_site = Path(sysconfig.get_paths()["purelib"])
    if torch == "shared":
        # appended after the environment's own site-packages, so its pins shadow the main versions
        (_site_packages(python) / SHARED_PTH).write_text(f"{main_site}\n")
        torch_args: list[str] = []
    else:
        torch_args = [f"torch=={metadata.version('torch').split('+')[0]}",
                      f"torchvision=={metadata.version('torchvision').split('+')[0]}"]
    _pip(python, ["--quiet", *torch_args, *env.requirements], log)
    if env.no_deps:
        _pip(python, ["--quiet", "--no-deps", *env.no_deps], log)
    (path / MANIFEST).write_text(json.dumps({
        "name": env.name, "purpose": env.purpose, "requirements": list(env.requirements),
        "no_deps": list(env.no_deps), "torch": torch, "shared_site_packages": str(main_site) if torch == "shared" else None,
        "python": sys.version.split()[0], "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(time.time() - start, 1)}, indent=1) + "\n")
    check(name, root)
    log(f"ready: {path} ({time.time() - start:.0f} s)")
    return path


def check(name: str, root: str | os.PathLike | None = None) -> Path:
    """The environment's python if the environment exists and passes its import check, else SideEnvMissing."""
    env = spec(name)
    path = env_dir(name, root)
    python = env_python(path)
    how_to = f"create it with `sinkbench env create {env.name}`" + (f" --root {path}" if root else "")
    if not python.is_file() or not (path / MANIFEST).is_file():
        raise SideEnvMissing(f"the {env.name} side environment is not at {path} (it runs {env.purpose}); {how_to}")
    result = subprocess.run([str(python), "-c", env.check], capture_output=True, text=True)
    if result.returncode:
        raise SideEnvMissing(f"the {env.name} side environment at {path} is broken "
                             f"({result.stderr.strip().splitlines()[-1] if result.stderr.strip() else 'check failed'}); "
                             f"re-create it with `sinkbench env create {env.name} --force`")
    return python


def describe(name: str, root: str | os.PathLike | None = None) -> dict:
    path = env_dir(name, root)
    manifest = path / MANIFEST
    info = {"name": name, "path": str(path), "exists": manifest.is_file()}
    if manifest.is_file():
        info.update(json.loads(manifest.read_text()))
        try:
            check(name, root)
            info["status"] = "ok"
        except SideEnvMissing as exc:
            info["status"] = str(exc)
    return info


class SideWorker:
    """A worker script run by a side environment's python: JSON lines in, JSON lines out."""

    def __init__(self, python: Path, script: Path, name: str):
        import tempfile

        self.name = name
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self._process = subprocess.Popen([str(python), str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=self._stderr, text=True, bufsize=1)

    def request(self, op: str, **fields) -> dict:
        if self._process.poll() is not None:
            raise RuntimeError(f"the {self.name} worker has exited ({self._process.returncode}): {self._stderr_tail()}")
        self._process.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        if not line:
            self._process.wait(timeout=10)
            raise RuntimeError(f"the {self.name} worker died during {op!r} ({self._process.returncode}): "
                               f"{self._stderr_tail()}")
        answer = json.loads(line)
        if not answer.pop("ok", False):
            raise RuntimeError(f"the {self.name} worker failed {op!r}: {answer.get('error')}")
        return answer

    def _stderr_tail(self, lines: int = 15) -> str:
        self._stderr.seek(0)
        return "\n".join(self._stderr.read().strip().splitlines()[-lines:])

    def close(self) -> None:
        if self._process.poll() is None:
            try:
                self._process.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self._process.stdin.flush()
                self._process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self._process.kill()
        self._stderr.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


__all__ = ["SIDE_ENVS", "SideWorker", "SideEnv", "SideEnvMissing", "check", "create", "describe", "env_dir", "envs_root"]
