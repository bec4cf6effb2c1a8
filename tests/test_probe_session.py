"""Probes and interventions inside real (tiny) pipelines and a planted toy model."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
import torch.nn.functional as F  # noqa: E402

from benchmark.adapters import AttentionLayer, GenerationSettings  # noqa: E402
from benchmark.adapters.segmentation import patch_keys  # noqa: E402
from benchmark.interventions import InterventionSpec  # noqa: E402
from benchmark.probe.session import STATS, AttentionSession, ProbeSpec  # noqa: E402
from benchmark.runner import WorkItem  # noqa: E402
from benchmark.tiny import TINY_FAMILIES  # noqa: E402

REPO = Path(__file__).parents[1]
ITEM = [WorkItem("p", "a red circle, a blue square", 11)]
FULL_PROBE = ProbeSpec(stats=STATS, per_head=True, branches=("cond", "uncond"))


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_passive_probe_leaves_images_bit_identical(family, adapters):
    """A20: with every statistic recorded on every layer, step and branch, the images do not change."""
    adapter = adapters(family)
    stock = adapter.generate(ITEM)[0]
    probed, session = adapter.measure(ITEM, probe=FULL_PROBE)
    assert np.array_equal(stock, probed[0])
    assert session.segmentation_mismatches == 0
    layers = {key[1] for key in session.records}
    assert layers == {l.index for l in adapter.attention_layers()}, "every layer was measured"
    some = next(iter(session.records.values()))
    assert {"mass", "entropy", "key_norm", "value_norm", "logit_mean", "key_energy_top", "key_energy_all"} <= set(some)
    np.testing.assert_allclose(some["mass"].sum(axis=-1), 1.0, rtol=1e-5)
    assert session.activations, "block outputs were measured"
    first = next(iter(session.activations.values()))
    assert first["max"] >= first["p95"] > 0


@pytest.mark.parametrize("family", ["flux", "sdxl", "wan", "z_image"])
def test_eta_one_is_bit_identical_and_eta_zero_is_measured(family, adapters):
    adapter = adapters(family)
    stock = adapter.generate(ITEM)[0]
    one, session_one = adapter.measure(ITEM, intervention=InterventionSpec(eta=1.0, k=2))
    assert np.array_equal(stock, one[0]), "eta = 1 runs the whole path and changes nothing"
    assert session_one.log.entries and all(abs(e["log10_reduction"]) < 1e-9 for e in session_one.log.entries)
    zero, session_zero = adapter.measure(ITEM, intervention=InterventionSpec(eta=0.0, k=2))
    assert not np.array_equal(stock, zero[0])
    after = [e["log_mass_after"] for e in session_zero.log.entries]
    assert max(after) < np.log(1e-30), "selected keys keep < 1e-30 of the attention, measured in log space"


def test_phase_window_intervenes_exactly_steps_8_to_12_of_20(adapters):
    """Convention: step i (0-based, gated before it runs) is intervened iff lo <= i/T <= hi."""
    spec = InterventionSpec(eta=0.0, k=1, window=(0.4, 0.6))
    assert [i for i in range(20) if spec.covers_step(i, 20)] == [8, 9, 10, 11, 12]
    adapter = adapters("flux")
    old = adapter.settings
    adapter.settings = old.replace(steps=20)
    try:
        _, session = adapter.measure(ITEM, intervention=spec)
    finally:
        adapter.settings = old
    assert session.log.steps() == [8, 9, 10, 11, 12]
    per_step = {s: len([e for e in session.log.entries if e["step"] == s]) for s in session.log.steps()}
    assert set(per_step.values()) == {len(adapter.attention_layers())}, "every layer, each gated step"


def test_cfg_branch_scope(adapters):
    adapter = adapters("sd3")            # batched CFG, conditional rows second
    _, cond_only = adapter.measure(ITEM, intervention=InterventionSpec(eta=0.0, k=1, cfg_branch="cond"))
    assert {e["branch"] for e in cond_only.log.entries} == {"cond"}
    _, both = adapter.measure(ITEM, intervention=InterventionSpec(eta=0.0, k=1))
    assert {e["branch"] for e in both.log.entries} == {"cond", "uncond"}


def test_random_control_draws_from_the_sinks_modality_and_is_fixed_per_prompt(adapters):
    adapter = adapters("flux")
    spec = InterventionSpec(select="random", k=2, sink_modality="text")
    _, session = adapter.measure(ITEM, intervention=spec)
    drawn = list(session._random_cache.values())
    assert drawn and all(int(d.sum(dim=-1).max()) == 2 for d in drawn)
    layer = adapter.attention_layers()[0]
    text = adapter.segment(ITEM[0].prompt, layer).modality == 0
    for d in drawn:
        assert text[d[0].any(dim=0).numpy()].all(), "random keys come from the text, like the text sinks"
    assert len(drawn) == len(adapter.attention_layers()), "one draw per (prompt, layer, branch), reused per step"


def test_intervention_condition_through_the_runner_records_what_it_did(adapters, tmp_path):
    from benchmark.cache import GenerationCache
    from benchmark.runner import run

    adapter = adapters("flux")
    condition = InterventionSpec(eta=0.0, k=1, window=(0.0, 0.5)).condition()
    items = [WorkItem("p", ITEM[0].prompt, 11), WorkItem("p", ITEM[0].prompt, 11, condition)]
    entries, stats = run(items, adapter, GenerationCache(tmp_path), progress=False)
    assert stats.generated == 2
    meta = entries[items[1]].meta["generation"]["intervention"]
    assert meta["steps"] == [0, 1]                       # t/T = 0 and 0.5 of 2 steps
    assert meta["calls"] == 2 * len(adapter.attention_layers())   # FLUX: one call per layer and step
    assert meta["log10_reduction_min"] > 30
    assert meta["spec"]["eta"] == 0.0
    assert "generation" not in entries[items[0]].meta or not entries[items[0]].meta["generation"]


# ---------------------------------------------------------------- a planted sink in a toy model
class _ToyAttention(torch.nn.Module):
    def __init__(self, dim: int, heads: int, planted: dict[int, int] | None = None):
        super().__init__()
        self.qkv = torch.nn.Linear(dim, 3 * dim)
        self.heads = heads
        self.planted = planted or {}       # head -> key index made dominant

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        k = k.clone()
        for head, key in self.planted.items():
            k[:, head, key] = 8.0 * q[:, head].mean(dim=1) / q[:, head].mean(dim=1).norm(dim=-1, keepdim=True) * 4
        out = F.scaled_dot_product_attention(q, k, v)
        return out.transpose(1, 2).reshape(b, n, d)


class _ToyAdapter:
    """The three things AttentionSession needs from an adapter, for a stack of toy attention layers."""

    class family:
        cfg = "separate_cond_first"

        @staticmethod
        def negative_prompt(settings):
            return ""

    def __init__(self, modules):
        self.modules = modules
        self.step = 0
        self.settings = GenerationSettings(steps=1)
        self._listeners = []

    def attention_layers(self):
        return [AttentionLayer(i, f"layers.{i}", "self", "main", m) for i, m in enumerate(self.modules)]

    def segment(self, prompt, layer):
        return patch_keys(4, 4).with_kind("self")

    def add_step_listener(self, fn):
        self._listeners.append(fn)
        return lambda: self._listeners.remove(fn)


def test_planted_sink_is_found_top1_at_its_layer_only():
    torch.manual_seed(0)
    modules = [_ToyAttention(16, 2), _ToyAttention(16, 2, planted={0: 5, 1: 9}), _ToyAttention(16, 2)]
    adapter = _ToyAdapter(modules)
    x = torch.randn(1, 16, 16)
    with AttentionSession(adapter, [WorkItem("p", "x", 0)], probe=ProbeSpec(per_head=True)) as session:
        h = x
        for m in modules:
            h = m(h)
    masses = {layer: rec["mass"] for (_, layer, _, _), rec in session.records.items()}
    assert masses[1][0].argmax() == 5 and masses[1][1].argmax() == 9
    assert masses[1][0, 5] > 0.5 and masses[1][1, 9] > 0.5
    for layer in (0, 2):
        assert masses[layer].max() < 0.5, "no sink where none was planted"
    # per-head top-1 takes each head's own sink; the union budget takes one key for every head
    spec_head = InterventionSpec(select="topk_head", k=1, layers=(1,))
    spec_union = InterventionSpec(select="topk_union", k=1, layers=(1,))
    chosen = {}
    for name, spec in (("head", spec_head), ("union", spec_union)):
        with AttentionSession(adapter, [WorkItem("p", "x", 0)], intervention=spec) as session:
            h = x
            for m in modules:
                h = m(h)
        chosen[name] = session
    assert len(chosen["head"].log.entries) == 1 and len(chosen["union"].log.entries) == 1
    assert chosen["head"].log.entries[0]["log10_reduction"] > 30
    # union masks one key in both heads: the other head's sink survives, so less total mass is removed
    assert chosen["union"].log.entries[0]["log_mass_before"] < chosen["head"].log.entries[0]["log_mass_before"]


# ---------------------------------------------------------------- the measure / analyze commands
def test_measure_writes_the_documented_format_offline(tiny_dirs, tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_text("a red circle\ntwo blue squares, a yellow triangle\n")
    out = tmp_path / "m"
    env = {"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "benchmark", "measure", "--checkpoint", str(tiny_dirs("flux")),
                           "--prompts", str(prompts), "--out", str(out), "--stats", "mass,entropy", "--quiet"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    from benchmark.probe.records import load_measurement, read_item

    doc = load_measurement(out)
    assert doc["version"] == 1 and len(doc["items"]) == 2 and doc["family"] == "flux"
    arrays = read_item(out / doc["items"][0]["file"])
    assert {("mass", 0, 0, "cond"), ("entropy", 3, 1, "cond")} <= set(arrays)
    importance = np.load(out / doc["key_importance"]["0"])
    assert importance.shape == (56,) and abs(importance.sum() - 1) < 1e-5
    from benchmark.measurements import load_attention

    data = load_attention(out)           # the arrays the claims read
    assert data.n_items == 2 and data.n_layers == len(doc["layers"]) and data.mass[0].shape[-1] == 56
    np.testing.assert_allclose(data.mass[3].sum(-1), 1.0, rtol=1e-9)
    assert data.token_types[0].shape == (2, 56) and set(data.token_types[0][0][32:]) == {"patch"}
    assert data.value_norm[0] is None     # not asked for in this measurement
    summary = subprocess.run([sys.executable, "-m", "benchmark", "analyze", str(out / doc["key_importance"]["0"]),
                              "--segments", "text:0-31,image:32-55"], cwd=REPO, env=env, capture_output=True,
                             text=True, timeout=120)
    shares = json.loads(summary.stdout)["shares"]
    assert abs(shares["text"] + shares["image"] - 1) < 1e-9


def test_analyze_returns_known_shares_exactly(tmp_path, capsys):
    from benchmark.cli import main

    vector = [0.5, 0.25, 0.125, 0.125] + [0.0] * 4
    path = tmp_path / "v.json"
    path.write_text(json.dumps(vector))
    assert main(["analyze", str(path), "--segments", "a:0-1,b:2-7", "--top", "1"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["shares"] == {"a": 0.75, "b": 0.25}
    assert doc["top_keys"][0] == {"index": 0, "importance": 0.5, "ratio_x_uniform": 4.0, "segment": "a"}
    assert doc["sink_to_random_ratio"] == 0.5 / (0.5 / 7)
    np.save(tmp_path / "v.npy", np.array(vector))
    assert main(["analyze", str(tmp_path / "v.npy"), "--segments-from-card", "flux"]) == 2   # 8 keys < 4608
    assert main(["analyze", str(path), "--segments", "a:0-3,b:2-7"]) == 2                  # overlap


def test_concentration_measures():
    from benchmark.probe.analysis import index0_overlap, max_mass, ratio_x_uniform, top_concentration

    mass = np.array([[0.6, 0.1, 0.1, 0.1, 0.05, 0.05], [0.1, 0.5, 0.1, 0.1, 0.1, 0.1]])
    np.testing.assert_allclose(max_mass(mass), [0.6, 0.5])
    np.testing.assert_allclose(top_concentration(mass, 2), [0.7, 0.6])
    assert index0_overlap(mass) == 0.5
    np.testing.assert_allclose(ratio_x_uniform(mass)[0, 0], 3.6)


def test_pre_rope_logits_equal_post_rope_for_keys_at_position_zero(adapters):
    """FLUX gives text tokens position ids 0, where RoPE is the identity: text-query x text-key logits are
    the same before and after RoPE, while image keys (rotated) differ. A planted truth for the pre-RoPE probe."""
    adapter = adapters("flux")
    _, session = adapter.measure(ITEM, probe=ProbeSpec(stats=("logit_mean", "logit_mean_pre_rope"), queries="text"))
    text = adapter.segment(ITEM[0].prompt, adapter.attention_layers()[0]).modality == 0
    for record in session.records.values():
        np.testing.assert_allclose(record["logit_mean_pre_rope"][text], record["logit_mean"][text], atol=1e-5)
        assert not np.allclose(record["logit_mean_pre_rope"][~text], record["logit_mean"][~text], atol=1e-5)


def test_rope_band_energy_groups_adjacent_pairs_per_axis():
    from benchmark.probe.analysis import rope_band_energy

    energy = np.arange(12, dtype=float)                 # axes (4, 8): pairs (0,1),(2,3) | (4,5),(6,7),...
    first, second = rope_band_energy(energy, (4, 8))
    np.testing.assert_array_equal(first, [1, 5])
    np.testing.assert_array_equal(second, [9, 13, 17, 21])


def test_batched_measurement_records_what_single_prompts_record(tiny_dirs, tmp_path):
    """Batching prompts (each with its own seed) changes no record beyond float rounding."""
    from benchmark.measurements import load_attention
    from benchmark.probe.measure import run_measurement
    from benchmark.probe.session import ProbeSpec

    prompts = [("a", "a red circle"), ("b", "two blue squares and a yellow triangle"), ("c", "a green square")]
    probe = ProbeSpec(stats=("mass", "value_norm", "activation"), steps=(0, 1))
    run_measurement(str(tiny_dirs("flux")), prompts, tmp_path / "one", probe, progress=False, batch_size=1)
    run_measurement(str(tiny_dirs("flux")), prompts, tmp_path / "three", probe, progress=False, batch_size=3)
    single, batched = load_attention(tmp_path / "one"), load_attention(tmp_path / "three")
    for layer in range(single.n_layers):
        np.testing.assert_allclose(batched.mass[layer], single.mass[layer], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(batched.value_norm[layer], single.value_norm[layer], rtol=1e-4)
    # block output magnitudes: one per block (flux: 2 double + 2 single blocks) and step, each block's layer
    assert single.block_act_max.shape == (3, single.n_layers, 2) and np.all(single.block_act_max > 0)
    assert single.block_first_layer == tuple(range(single.n_layers))
    np.testing.assert_allclose(batched.block_act_max, single.block_act_max, rtol=1e-4)
