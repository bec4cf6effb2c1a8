"""Adapters on the eight tiny offline pipelines: the same code path a user's checkpoint takes.

Each family's tiny pipeline is written with `make_tiny` (save_pretrained) and loaded back with
HF_HUB_OFFLINE=1 through DiffusionAdapter.load. The key segmentation is checked against what the attention
actually receives (key counts per layer, and which keys depend on the seed), not against itself.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("diffusers")
torch = pytest.importorskip("torch")

from benchmark.adapters import (CheckpointNotFound, DiffusionAdapter, GenerationSettings, WrongFamily,  # noqa: E402
                                resolve_checkpoint)
from benchmark.probe import attention_hooks  # noqa: E402
from benchmark.runner import WorkItem  # noqa: E402
from benchmark.tiny import TINY_FAMILIES  # noqa: E402

SHORT = "a red circle"
LONG = "two blue squares above a small yellow triangle, on a white background"


def _first_calls(adapter: DiffusionAdapter, prompt: str, seed: int):
    """(layer order of first calls, {layer index: key tensor of its first call}) for one generation."""
    order: list[int] = []
    keys: dict[int, torch.Tensor] = {}
    lengths: dict[int, int] = {}

    def record(call):
        if call.call == 0:   # the first call of a step is the conditional one where CFG makes two calls
            order.append(call.layer.index)
            rows = adapter.family.conditional_rows(call.key.shape[0], 1)
            keys[call.layer.index] = call.key[rows][0].detach().clone()
            lengths[call.layer.index] = call.key.shape[-2]
        return None

    with attention_hooks(adapter.attention_layers(), record):
        adapter.generate([WorkItem("p", prompt, seed)])
    return order, keys, lengths


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_tiny_pipeline_loads_offline_and_is_deterministic(family, adapters, record_property, tiny_timings):
    adapter = adapters(family)
    assert adapter.family.name == family
    assert adapter.checkpoint.kind == "directory"
    t0 = time.process_time()
    wall0 = time.perf_counter()
    first = adapter.generate([WorkItem("p", SHORT, 7)])[0]
    cpu_s, wall_s = time.process_time() - t0, time.perf_counter() - wall0
    again = adapter.generate([WorkItem("p", SHORT, 7)])[0]
    other = adapter.generate([WorkItem("p", SHORT, 8)])[0]
    assert first.dtype == np.uint8 and first.shape[-1] == 3
    assert first.ndim == (4 if adapter.family.video else 3)
    assert np.array_equal(first, again), "same seed twice must give identical images"
    assert not np.array_equal(first, other), "another seed must give another image"
    assert adapter.step == adapter.settings.steps, "the step counter counts every denoising step"
    record_property("cpu_seconds_per_generation", round(cpu_s, 3))
    tiny_timings[family] = (wall_s, cpu_s, tuple(first.shape), adapter.settings.steps)


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_attention_layers_are_listed_in_execution_order(family, adapters):
    adapter = adapters(family)
    layers = adapter.attention_layers()
    assert [l.index for l in layers] == list(range(len(layers)))
    assert len({l.name for l in layers}) == len(layers)
    order, _, _ = _first_calls(adapter, SHORT, 0)
    assert order == [l.index for l in layers], "every layer runs attention, in the listed order"


@pytest.mark.parametrize("family", TINY_FAMILIES)
@pytest.mark.parametrize("prompt", [SHORT, LONG], ids=["short", "long"])
def test_segmentation_matches_the_keys_attention_receives(family, prompt, adapters):
    adapter = adapters(family)
    _, _, lengths = _first_calls(adapter, prompt, 0)
    for layer in adapter.attention_layers():
        seg = adapter.segment(prompt, layer)
        assert len(seg) == lengths[layer.index], f"{layer.name} ({layer.kind}): {len(seg)} labels vs {lengths[layer.index]} keys"
        assert len(seg.tokens) == len(seg)
        if layer.kind in ("self", "image_self"):
            assert set(seg.type_names()) <= {"patch", "frame_patch", "learned_pad"}
        if layer.kind in ("cross", "text_self"):
            assert set(seg.type_names()).isdisjoint({"patch", "frame_patch"})
        if layer.kind == "joint":
            assert {m for m, _, _ in seg.spans()} >= {"text"} and any(t in seg.counts() for t in ("patch", "frame_patch"))


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_text_keys_do_not_depend_on_the_seed_and_image_keys_do(family, adapters):
    """A planted-truth check of the modality labels: at the first call of each layer, keys computed from the
    prompt alone are the same for two seeds, keys of latent patches are not."""
    adapter = adapters(family)
    _, keys_a, _ = _first_calls(adapter, SHORT, 1)
    _, keys_b, _ = _first_calls(adapter, SHORT, 2)
    first_joint = next((l.index for l in adapter.attention_layers() if l.kind == "joint"), None)
    for layer in adapter.attention_layers():
        # Only the first joint layer: after it, the text stream has mixed in image tokens.
        if layer.kind not in ("cross", "self") and layer.index != first_joint:
            continue
        seg = adapter.segment(SHORT, layer)
        same = torch.isclose(keys_a[layer.index], keys_b[layer.index], rtol=0, atol=1e-6).all(dim=(0, 2)).numpy()
        text = (seg.modality == 0) & ~seg.masked
        patches = np.isin(seg.type_names(), ["patch", "frame_patch"])
        if layer.block != "main":   # Z-Image's first main layer sees captions already refined with time
            assert same[text].all(), f"{layer.name}: keys labelled text change with the seed"
        if patches.any():
            assert (~same[patches]).mean() > 0.9, f"{layer.name}: keys labelled image do not change with the seed"


T5_FAMILIES = ("sd3", "flux", "pixart", "wan", "ltx")


@pytest.mark.parametrize("family", T5_FAMILIES)
def test_t5_eos_and_pad_positions_follow_the_tokenizer(family, adapters):
    adapter = adapters(family)
    layer = next(l for l in adapter.attention_layers() if l.kind in ("joint", "cross"))
    for prompt in (SHORT, LONG):
        seg = adapter.segment(prompt, layer)
        t5 = _t5_tokenizer(adapter.pipe)
        n_content = len(t5(prompt, add_special_tokens=False).input_ids)
        t5_part = _t5_positions(adapter, seg)
        types = [seg.type_names()[i] for i in t5_part]
        assert set(types[:n_content]) <= {"content", "comma"}
        assert types[n_content] == "eos", f"EOS right after the {n_content} prompt tokens"
        assert set(types[n_content + 1:]) <= {"pad"}
        assert types.count("comma") == prompt.count(",")


def _t5_tokenizer(pipe):
    from transformers import T5Tokenizer

    for name in ("tokenizer_3", "tokenizer_2", "tokenizer"):
        tok = getattr(pipe, name, None)
        if isinstance(tok, T5Tokenizer) or type(tok).__name__.startswith(("T5", "UMT5")):
            return tok
    raise AssertionError("no T5 tokenizer")


def _t5_positions(adapter, seg) -> list[int]:
    """Key positions of the T5 part of the text keys (SD3 puts 77 CLIP tokens first)."""
    text = [i for i in range(len(seg)) if seg.modality[i] == 0]
    if adapter.family.name == "sd3":
        return text[77:] if len(text) > 77 else text
    return text


def test_z_image_learned_pads_fill_to_a_multiple_of_32(adapters):
    adapter = adapters("z_image")
    layers = adapter.attention_layers()
    for prompt in (SHORT, LONG):
        for kind in ("text_self", "image_self"):
            layer = next(l for l in layers if l.kind == kind)
            seg = adapter.segment(prompt, layer)
            pads = seg.counts().get("learned_pad", 0)
            real = len(seg) - pads
            assert len(seg) % 32 == 0 and pads == (-real) % 32, (kind, len(seg), pads)
        joint = next(l for l in layers if l.kind == "joint")
        assert len(adapter.segment(prompt, joint)) % 32 == 0


# ---------------------------------------------------------------- loading errors
def test_wrong_family_is_a_clear_error(tiny_dirs):
    with pytest.raises(WrongFamily, match=r"FluxPipeline checkpoint \(family 'flux'\), not 'sd3'"):
        DiffusionAdapter.load(str(tiny_dirs("flux")), {"steps": 1}, family="sd3")


def test_directory_without_model_index_is_a_clear_error(tmp_path):
    with pytest.raises(WrongFamily, match="no model_index.json"):
        resolve_checkpoint(str(tmp_path))


def test_missing_directory_and_uncached_hub_id_are_not_found(tmp_path, monkeypatch):
    with pytest.raises(CheckpointNotFound, match="does not exist"):
        resolve_checkpoint(str(tmp_path / "nowhere"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(CheckpointNotFound, match=r"hf download black-forest-labs/FLUX.1-dev"):
        resolve_checkpoint("black-forest-labs/FLUX.1-dev")


def test_settings_are_validated():
    with pytest.raises(ValueError, match="steps must be >= 1"):
        GenerationSettings(steps=0)
    with pytest.raises(ValueError, match="dtype"):
        GenerationSettings(steps=1, dtype="fp8")


# ---------------------------------------------------------------- model cards agree with the adapters
def _card_of(family: str):
    from benchmark.cards import load_cards

    return next(c for c in load_cards().values() if c.family == family)


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_card_layer_names_kinds_and_key_order_match_the_adapter(family, adapters):
    import re

    card = _card_of(family)
    adapter = adapters(family)
    assert card.pipeline_class == adapter.family.pipeline_class
    declared = card.attention["layers"]
    patterns = [(re.compile(re.escape(d["name"]).replace(r"\{i\}", r"\d+") + "$"), d["kind"], d["block"])
                for d in declared]
    layers = adapter.attention_layers()
    for layer in layers:
        assert any(p.match(layer.name) and k == layer.kind and b == layer.block for p, k, b in patterns), \
            f"{layer.name} ({layer.kind}, {layer.block}) is not described by the {card.name} card"
    assert {(l.kind, l.block) for l in layers} == {(d["kind"], d["block"]) for d in declared}
    for kind, order in card.attention["keys"].items():
        layer = next(l for l in layers if l.kind == kind)
        spans = [m for m, _, _ in adapter.segment(SHORT, layer).spans()]
        assert spans == order, f"{card.name} {kind}: keys are {spans}, the card says {order}"


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_full_size_layer_listing_matches_the_card(family):
    """At the real checkpoint's size (built on the meta device: no memory), the adapter lists exactly the
    layers the card declares, per kind and block."""
    from collections import Counter

    from benchmark.adapters import get_family
    from benchmark.tiny.full_size import full_size_denoiser

    card = _card_of(family)
    layers = get_family(family).attention_layers(full_size_denoiser(family, device="meta"))
    found = Counter((l.kind, l.block) for l in layers)
    declared = Counter()
    for d in card.attention["layers"]:
        declared[(d["kind"], d["block"])] += d["count"]
    assert found == declared


@pytest.mark.parametrize("family", ["flux", "sdxl"])
def test_with_settings_reuses_the_weights_and_matches_a_fresh_load(family, adapters, tiny_dirs, monkeypatch):
    """Another guidance / step count / scheduler on the loaded weights gives what loading again gives:
    the same identity (so the same cache keys) and the same images."""
    from benchmark.adapters import resolve_checkpoint
    from benchmark.generate import settings_for

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = adapters(family)
    directory = str(tiny_dirs(family))
    other = settings_for(resolve_checkpoint(directory),
                         {"guidance": 1.6 * (loaded.settings.guidance or 1.0), "steps": 3, "scheduler": "unipc"})
    derived = loaded.with_settings(other)
    fresh = DiffusionAdapter.load(directory, other)
    assert derived.denoiser is loaded.denoiser, "the weights are shared, not loaded again"
    assert derived.pipe.scheduler is not loaded.pipe.scheduler
    assert derived.identity() == fresh.identity()
    item = [WorkItem("p", SHORT, 3)]
    assert np.array_equal(derived.generate(item)[0], fresh.generate(item)[0])
    # the loaded adapter keeps its own settings and scheduler
    assert loaded.identity()["settings"] != derived.identity()["settings"]
    with pytest.raises(ValueError, match="dtype"):
        loaded.with_settings(settings_for(resolve_checkpoint(directory), {"dtype": "bf16"}))
