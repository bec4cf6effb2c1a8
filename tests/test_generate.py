"""The generation job on a real (tiny) pipeline: resume after SIGKILL, corrupt entries, cache keys, and a
2-process gloo run equal to a 1-process run. Runs `python -m benchmark generate` exactly as a user would."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("diffusers")
pytest.importorskip("torch")

from benchmark.cache import GenerationCache  # noqa: E402
from benchmark.tiny import make_tiny  # noqa: E402

REPO = Path(__file__).parents[1]
FAMILY = "flux"   # the cheapest tiny pipeline that has every part (two text encoders, joint attention)
N = 8


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return make_tiny(FAMILY, tmp_path_factory.mktemp("ckpt") / FAMILY)


@pytest.fixture(scope="module")
def prompt_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("prompts") / "prompts.txt"
    colours, shapes = ["red", "blue", "green", "yellow"], ["circle", "square"]
    path.write_text("\n".join(f"a {c} {s}" for c in colours for s in shapes) + "\n")
    return path


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _generate_cmd(checkpoint, prompts, cache, out, *extra) -> list[str]:
    return [sys.executable, "-m", "benchmark", "generate", "--checkpoint", str(checkpoint), "--prompts", str(prompts),
            "--cache-dir", str(cache), "--out", str(out), "--quiet", *extra]


def _run(cmd) -> dict:
    done = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _images(out: Path) -> dict[tuple[str, int], bytes]:
    manifest = json.loads((out / "manifest.json").read_text())
    return {(i["prompt_id"], i["seed"]): Path(i["path"]).read_bytes() for i in manifest["items"]}


def _stores(cache: Path) -> int:
    return sum(1 for e in GenerationCache(cache).events() if e["event"] == "store")


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory, checkpoint, prompt_file):
    root = tmp_path_factory.mktemp("clean")
    summary = _run(_generate_cmd(checkpoint, prompt_file, root / "cache", root / "out"))
    assert summary["generated"] == N
    return root, _images(root / "out")


def test_rerun_hits_the_cache_and_changed_settings_miss_it(clean_run, checkpoint, prompt_file):
    root, _ = clean_run
    again = _run(_generate_cmd(checkpoint, prompt_file, root / "cache", root / "again"))
    assert again == {**again, "cached": N, "generated": 0}
    for change in (["--steps", "3"], ["--guidance", "2.5"], ["--height", "48"], ["--seed", "100"]):
        summary = _run(_generate_cmd(checkpoint, prompt_file, root / "cache", root / "changed", *change,
                                     "--prompts", f"{prompt_file}:2"))
        assert summary["generated"] == 2, f"{change} must produce new cache entries"


def test_sigkill_half_way_then_resume_is_byte_identical(tmp_path, checkpoint):
    # Slower items (24 prompts x 16 steps) so that the kill lands mid-run even on a fast machine.
    prompts = tmp_path / "many.txt"
    prompts.write_text("\n".join(f"a {size} {c} {s}" for size in ("small", "large", "big")
                                 for c in ("red", "blue", "green", "yellow") for s in ("circle", "square")) + "\n")
    n, slow = 24, ("--steps", "16")
    clean_out = tmp_path / "clean"
    _run(_generate_cmd(checkpoint, prompts, tmp_path / "clean_cache", clean_out, *slow))
    cache, out = tmp_path / "cache", tmp_path / "out"
    proc = subprocess.Popen(_generate_cmd(checkpoint, prompts, cache, out, *slow), cwd=REPO, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while _stores(cache) < n // 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = _stores(cache)
    assert 0 < finished < n, f"the kill should land mid-run, {finished} of {n} were stored"
    summary = _run(_generate_cmd(checkpoint, prompts, cache, out, *slow))
    assert summary["cached"] == finished and summary["generated"] == n - finished
    assert _stores(cache) == n, "finished items were not regenerated (cache log)"
    assert _images(out) == _images(clean_out), "resumed images are byte-identical to an uninterrupted run"


def test_truncated_entry_is_detected_and_redone(tmp_path, clean_run, checkpoint, prompt_file):
    _, clean = clean_run
    cache, out = tmp_path / "cache", tmp_path / "out"
    _run(_generate_cmd(checkpoint, prompt_file, cache, out))
    victim = next((cache / "objects").rglob("*.npy"))
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    summary = _run(_generate_cmd(checkpoint, prompt_file, cache, out))
    assert summary["generated"] == 1 and summary["cached"] == N - 1
    assert any(e["event"] == "corrupt" for e in GenerationCache(cache).events())
    assert _images(out) == clean


def test_two_gloo_processes_equal_one_process(tmp_path, clean_run, checkpoint, prompt_file):
    _, clean = clean_run
    cache, out = tmp_path / "cache", tmp_path / "out"
    cmd = _generate_cmd(checkpoint, prompt_file, cache, out)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                str(29500 + os.getpid() % 1000), "-m", "benchmark", *cmd[3:]]
    done = subprocess.run(torchrun, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summaries = [json.loads(m) for m in re.findall(r"\{[^{}]*\}", done.stdout)]   # one per rank, any interleaving
    assert len(summaries) == 2 and all(s["world_size"] == 2 for s in summaries)
    assert sorted(s["generated"] for s in summaries) == [N // 2, N // 2], "each rank generated its half"
    assert _images(out) == clean, "2 processes give the same bytes as 1"
    first = np.load(next((cache / "objects").rglob("*.npy")))
    assert first.dtype == np.uint8


def test_directory_identity_sees_one_scaled_tensor_in_a_small_checkpoint(tmp_path):
    """Files up to 256 MiB are hashed whole: scaling one small tensor (a norm gain) changes the identity."""
    import torch
    from safetensors.torch import save_file

    from benchmark.environment import directory_identity

    weights = {"big": torch.randn(256, 1024), "norm_k.weight": torch.ones(16)}
    save_file(weights, tmp_path / "model.safetensors")
    before = directory_identity(tmp_path)["identity_sha256"]
    save_file({**weights, "norm_k.weight": weights["norm_k.weight"] * 0.25}, tmp_path / "model.safetensors")
    assert directory_identity(tmp_path)["identity_sha256"] != before


def test_directory_identity_changes_with_retrained_weights_of_the_same_layout(tmp_path, monkeypatch):
    """A retrained checkpoint keeps its tensors' names and shapes: the identity (cache keys) must still change,
    also for files above the whole-file limit, which are hashed by header and content slices."""
    import torch
    from safetensors.torch import save_file

    from benchmark import environment
    from benchmark.environment import directory_identity

    monkeypatch.setattr(environment, "_WHOLE_FILE_LIMIT", 1 << 20)
    torch.manual_seed(0)
    weights = {"w": torch.randn(512, 1024)}                     # 2 MiB > 1 MiB: header and content slices
    save_file(weights, tmp_path / "model.safetensors")
    before = directory_identity(tmp_path)["identity_sha256"]
    assert directory_identity(tmp_path)["identity_sha256"] == before
    save_file({"w": weights["w"] + 1e-3}, tmp_path / "model.safetensors")
    assert directory_identity(tmp_path)["identity_sha256"] != before
