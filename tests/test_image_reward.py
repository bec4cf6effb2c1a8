"""ImageReward through its side environment: created by `sinkbench env create imagereward` with pip, scored by
the worker with random weights from the built-in BLIP config (no weights can be downloaded here)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmark.metrics import MetricUnavailable, load_metric
from benchmark.metrics.image_reward import ImageRewardMetric

REPO = Path(__file__).resolve().parents[1]
WORDS = "a photo of red green blue yellow circle square triangle and left right above below two three four".split()


def test_missing_weights_say_what_to_get_and_where(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("SINKBENCH_IMAGEREWARD_WEIGHTS", raising=False)
    with pytest.raises(MetricUnavailable) as info:
        load_metric("image_reward")
    message = str(info.value)
    assert "ImageReward.pt" in message and "THUDM/ImageReward" in message
    assert "SINKBENCH_IMAGEREWARD_WEIGHTS" in message and "hf download" in message


def test_missing_side_environment_names_the_command(tmp_path):
    with pytest.raises(MetricUnavailable) as info:
        ImageRewardMetric.random(tmp_path, env_root=tmp_path / "no-env")
    assert "sinkbench env create imagereward" in str(info.value)


def _bert_vocab(directory: Path) -> Path:
    """A stand-in for bert-base-uncased's vocab.txt (same special tokens, the domain's words, word pieces)."""
    directory.mkdir(parents=True, exist_ok=True)
    tokens = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokens += WORDS + list("abcdefghijklmnopqrstuvwxyz") + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"]
    (directory / "vocab.txt").write_text("\n".join(tokens) + "\n")
    return directory


@pytest.fixture(scope="module")
def side_env(tmp_path_factory) -> Path:
    """The imagereward environment: $SINKBENCH_TEST_IMAGEREWARD_ENV if given, else created here with the CLI."""
    given = os.environ.get("SINKBENCH_TEST_IMAGEREWARD_ENV")
    if given:
        return Path(given)
    root = tmp_path_factory.mktemp("envs") / "imagereward"
    proc = subprocess.run([sys.executable, "-m", "benchmark", "env", "create", "imagereward", "--root", str(root)],
                          cwd=REPO, capture_output=True, text=True)
    if proc.returncode:
        if os.environ.get("CI"):
            pytest.fail(f"`sinkbench env create imagereward` failed:\n{proc.stderr[-3000:]}")
        pytest.skip(f"could not create the imagereward environment here (needs pip access): {proc.stderr[-500:]}")
    return root


@pytest.fixture(scope="module")
def image_reward(side_env, tmp_path_factory):
    metric = ImageRewardMetric.random(_bert_vocab(tmp_path_factory.mktemp("bert")), seed=0, env_root=side_env)
    yield metric
    metric.close()


def _images(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (32 + 8 * (i % 3), 32, 3), dtype=np.uint8) for i in range(n)]


def test_worker_round_trips_batch_invariant_deterministic_scores(image_reward):
    images = _images(8)
    prompts = [f"a photo of a {c} {s}" for c, s in zip(["red", "green", "blue", "yellow"] * 2,
                                                      ["circle", "square", "triangle", "circle"] * 2)]
    batched = image_reward.score(images, prompts)
    singles = np.concatenate([image_reward._score_batch([im], [p]) for im, p in zip(images, prompts)])
    assert batched.shape == (8,) and np.isfinite(batched).all()
    np.testing.assert_allclose(batched, singles, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(image_reward.score(images, prompts), batched)
    assert np.ptp(batched) > 0          # a random model still tells images apart
    identity = image_reward.identity()
    assert identity["transformers"].startswith("4.") and identity["weights_sha256"] == "random-init"
    assert identity["parameters"] > 4e8  # BLIP ViT-L + BERT-base: the real architecture


def test_worker_errors_come_back_as_errors(image_reward, tmp_path):
    with pytest.raises(RuntimeError, match="worker failed 'score'"):
        image_reward.worker.request("score", batch=str(tmp_path / "missing.npz"), prompts=["a photo of a circle"])
    # and the worker is still alive afterwards
    assert image_reward._score_batch(_images(1), ["a photo of a circle"]).shape == (1,)
