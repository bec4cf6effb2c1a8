"""The generation cache and the seed-paired runner, with a deterministic stand-in generator."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from benchmark.cache import GenerationCache, cache_key
from benchmark.runner import BASELINE, Condition, WorkItem, item_key, paired_items, run


class FakeGenerator:
    """Noise from the seed alone; the prompt and condition shift it. Deterministic."""

    def __init__(self, steps: int = 4, max_batch: int = 3, delay: float = 0.0):
        self.steps, self.max_batch, self.delay = steps, max_batch, delay
        self.calls: list[int] = []

    def identity(self):
        return {"model": "fake", "steps": self.steps, "size": [8, 8]}

    def generate(self, items):
        self.calls.append(len(items))
        out = []
        for it in items:
            noise = np.random.default_rng(it.seed).integers(0, 256, (8, 8, 3))
            shift = sum(map(ord, it.prompt + json.dumps(it.condition.spec()))) + self.steps
            out.append(((noise + shift) % 256).astype(np.uint8))
            time.sleep(self.delay)
        return out


PROMPTS = [(f"p{i}", f"a red circle number {i}") for i in range(5)]
CONDITIONS = [BASELINE, Condition.make("sink_removal", layer=12, k=1)]


def stored(cache: GenerationCache) -> int:
    return sum(e["event"] == "store" for e in cache.events())


def test_second_run_hits_the_cache(tmp_path) -> None:
    cache, gen = GenerationCache(tmp_path), FakeGenerator()
    items = paired_items(PROMPTS, CONDITIONS, base_seed=100)
    entries, stats = run(items, gen, cache, progress=False)
    assert stats.generated == 10 and stats.cached == 0 and stored(cache) == 10
    again, stats2 = run(items, FakeGenerator(), cache, progress=False)
    assert stats2.generated == 0 and stats2.cached == 10 and stored(cache) == 10
    for item in items:
        assert np.array_equal(entries[item].load(), again[item].load())
    meta = entries[items[0]].meta
    assert meta["prompt"] == PROMPTS[0][1] and meta["seed"] == 100 and meta["condition"]["name"] == "baseline"
    assert meta["seconds"] >= 0 and meta["batch_size"] >= 1


def test_baseline_is_generated_once_for_all_claims(tmp_path) -> None:
    cache, gen = GenerationCache(tmp_path), FakeGenerator()
    claim_a = paired_items(PROMPTS, [BASELINE, Condition.make("sink_removal", k=1)])
    claim_b = paired_items(PROMPTS, [BASELINE, Condition.make("random_removal", k=1)])
    _, stats = run(claim_a + claim_b, gen, cache, progress=False)
    assert stats.requested == 20 and stats.unique == 15 and stats.generated == 15


def test_seed_pairing_and_batching(tmp_path) -> None:
    items = paired_items(PROMPTS, CONDITIONS, base_seed=7)
    assert [it.seed for it in items if it.condition == BASELINE] == [7, 8, 9, 10, 11]
    assert {it.seed for it in items if it.prompt_id == "p2"} == {9}
    gen = FakeGenerator(max_batch=4)
    run(items, gen, GenerationCache(tmp_path), progress=False)
    # a batch holds one condition's consecutive prompts (5 prompts x 2 conditions, batches of 4)
    assert gen.calls == [4, 1, 4, 1]


def test_every_setting_in_the_key_changes_it() -> None:
    item = WorkItem("p0", "a cat", 3, Condition.make("eta", eta=0.5))
    ident = {"model": "m", "revision": "abc", "steps": 20, "guidance": 7.0, "size": [64, 64], "scheduler": "Euler"}
    versions = {"torch": "2.13", "diffusers": "0.42.1", "transformers": "5.23"}
    base = item_key(item, ident, versions)
    assert item_key(WorkItem("p0", "a cat", 3, Condition.make("eta", eta=0.5)), dict(ident), dict(versions)) == base
    variants = [
        item_key(WorkItem("p0", "a dog", 3, item.condition), ident, versions),
        item_key(WorkItem("p0", "a cat", 4, item.condition), ident, versions),
        item_key(WorkItem("p0", "a cat", 3, Condition.make("eta", eta=0.25)), ident, versions),
        item_key(WorkItem("p0", "a cat", 3, Condition.make("value_zero", eta=0.5)), ident, versions),
        item_key(item, {**ident, "revision": "abd"}, versions),
        item_key(item, {**ident, "steps": 21}, versions),
        item_key(item, {**ident, "guidance": 7.5}, versions),
        item_key(item, {**ident, "size": [64, 128]}, versions),
        item_key(item, {**ident, "scheduler": "DPM"}, versions),
        item_key(item, ident, {**versions, "diffusers": "0.43.0"}),
    ]
    assert len(set(variants)) == len(variants) and base not in variants
    # the prompt id is a label, not an input: it does not change the image
    assert item_key(WorkItem("other-id", "a cat", 3, item.condition), ident, versions) == base


def test_truncated_entry_is_detected_and_redone(tmp_path) -> None:
    cache, items = GenerationCache(tmp_path), paired_items(PROMPTS[:2], [BASELINE])
    entries, _ = run(items, FakeGenerator(), cache, progress=False)
    path = entries[items[1]].path
    original = path.read_bytes()
    path.write_bytes(original[: len(original) // 2])
    _, stats = run(items, FakeGenerator(), cache, progress=False)
    assert stats.generated == 1 and stats.cached == 1
    assert [e["event"] for e in cache.events()].count("corrupt") == 1
    assert path.read_bytes() == original


def test_cache_rejects_bad_keys_and_dtypes(tmp_path) -> None:
    cache = GenerationCache(tmp_path)
    with pytest.raises(ValueError, match="not a cache key"):
        cache.get("../../etc/passwd")
    with pytest.raises(TypeError, match="uint8"):
        cache.put(cache_key({"a": 1}), np.zeros((2, 2, 3), np.float32), {})


def test_two_shards_equal_one_process(tmp_path) -> None:
    items = paired_items(PROMPTS, CONDITIONS)
    single, _ = run(items, FakeGenerator(), GenerationCache(tmp_path / "one"), progress=False)
    shared = GenerationCache(tmp_path / "two")
    results, errors = {}, []

    def rank(r):
        try:
            results[r] = run(items, FakeGenerator(delay=0.01), shared, progress=False, shard=(r, 2))
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=rank, args=(r,)) for r in (0, 1)]
    [t.start() for t in threads]
    [t.join(60) for t in threads]
    assert not errors
    assert results[0][1].generated + results[1][1].generated == 10
    assert min(results[0][1].generated, results[1][1].generated) == 5
    for item in items:
        assert single[item].path.read_bytes() == results[0][0][item].path.read_bytes()


KILLABLE = """
import sys, time
sys.path.insert(0, {tests!r})
from test_runner import FakeGenerator, PROMPTS
from benchmark.cache import GenerationCache
from benchmark.runner import BASELINE, Condition, paired_items, run
items = paired_items(PROMPTS * 1, [BASELINE, Condition.make("a"), Condition.make("b")])
run(items, FakeGenerator(max_batch=1, delay=0.15), GenerationCache({cache!r}), progress=False)
"""


def test_sigkill_half_way_then_resume_is_byte_identical(tmp_path) -> None:
    script = tmp_path / "job.py"
    script.write_text(KILLABLE.format(tests=str(Path(__file__).parent), cache=str(tmp_path / "cache")))
    proc = subprocess.Popen([sys.executable, str(script)], cwd=Path(__file__).parents[1])
    cache = GenerationCache(tmp_path / "cache")
    deadline = time.monotonic() + 60
    while stored(cache) < 6 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = stored(cache)
    assert 0 < done_before < 15
    items = paired_items(PROMPTS, [BASELINE, Condition.make("a"), Condition.make("b")])
    resumed, stats = run(items, FakeGenerator(max_batch=1), cache, progress=False)
    assert stats.cached == done_before and stats.generated == 15 - done_before
    clean, _ = run(items, FakeGenerator(), GenerationCache(tmp_path / "clean"), progress=False)
    for item in items:
        assert resumed[item].path.read_bytes() == clean[item].path.read_bytes()
