"""Paper B's criteria on planted measurements where the right verdict is known (one that holds, one that
does not, per claim)."""
from __future__ import annotations

import numpy as np
import pytest

from benchmark.criteria import spiral
from benchmark.measurements import AttentionData

N_TEXT, N_IMAGE = 8, 24     # keys: 2 content, 1 eos, 5 pad, then image patches


def planted(strength_by_layer, *, items=16, steps=4, sink_key=3, moving_sink=False, value_factor=1.0,
            pad_mass=0.0, seed=0) -> AttentionData:
    """Uniform attention plus a sink key whose mass is `strength` times any other key's, per layer; optionally
    a sink that moves with the item, sink values scaled by `value_factor`, and extra mass on PAD keys."""
    rng = np.random.default_rng(seed)
    n = N_TEXT + N_IMAGE
    types = np.array(["content"] * 2 + ["eos"] + ["pad"] * 5 + ["patch"] * N_IMAGE)
    mass, values, layers = [], [], []
    for li, strength in enumerate(strength_by_layer):
        m = np.ones((items, steps, n)) * (1 + 0.05 * rng.random((items, steps, n)))
        m[:, :, types == "pad"] += pad_mass
        keys = (np.arange(items) * 7 + 3) % n if moving_sink else np.full(items, sink_key)
        for i, k in enumerate(keys):
            m[i, :, k] = strength * m[i, :, k]
        mass.append(m / m.sum(-1, keepdims=True))
        v = 1 + 0.05 * rng.random((items, steps, n))
        for i, k in enumerate(keys):
            v[i, :, k] *= value_factor
        values.append(v)
        layers.append({"index": li, "name": f"blocks.{li}.attn", "kind": "joint", "block": "main"})
    token_types = tuple(np.tile(types, (items, 1)) for _ in strength_by_layer)
    return AttentionData(tuple(layers), tuple(f"p{i}" for i in range(items)), tuple(mass), token_types,
                         tuple(values), tuple(values))


def test_sink_to_random_matches_its_definition():
    mu = np.array([[0.5, 0.25, 0.25], [1 / 3, 1 / 3, 1 / 3]])
    np.testing.assert_allclose(spiral.sink_to_random(mu), [2.0, 1.0])


def test_b01_strong_sink_reproduces_weak_sink_contradicts():
    assert spiral.b01_peak_ratio(planted([1, 2, 500, 300])).verdict.value == "REPRODUCED"
    weak = spiral.b01_peak_ratio(planted([1, 2, 5, 3]))
    assert weak.verdict.value == "CONTRADICTED" and 4 < weak.value < 6


def test_b02_deterministic_family_needs_few_distinct_sinks():
    rope = ["rope", "joint_attention"]
    fixed, moving = planted([50] * 4, items=40), planted([50] * 4, items=40, moving_sink=True)
    assert spiral.b02_distinct_sinks(fixed, rope).verdict.value == "REPRODUCED"
    assert spiral.b02_distinct_sinks(moving, rope).verdict.value == "CONTRADICTED"
    assert spiral.b02_distinct_sinks(moving, ["abspe"]).verdict.value == "REPRODUCED"
    assert spiral.b02_distinct_sinks(planted([50] * 4, items=8), rope).verdict.value == "INCONCLUSIVE"


def test_b05_sinks_in_the_deeper_half():
    assert spiral.b05_depth(planted([1, 1, 50, 80])).verdict.value == "REPRODUCED"
    assert spiral.b05_depth(planted([80, 50, 1, 1])).verdict.value == "CONTRADICTED"


def test_b06_agreement_of_the_top_sink_across_prompts():
    assert spiral.b06_agreement(planted([20] * 3, items=30)).verdict.value == "REPRODUCED"
    assert spiral.b06_agreement(planted([20] * 3, items=30, moving_sink=True)).verdict.value == "CONTRADICTED"


def test_b12_sink_values_near_zero():
    assert spiral.b12_value_norms(planted([20] * 3, value_factor=0.1)).verdict.value == "REPRODUCED"
    assert spiral.b12_value_norms(planted([20] * 3, value_factor=1.0)).verdict.value == "CONTRADICTED"


def test_b15_pad_budget_against_image_budget():
    heavy_pad = spiral.b15_budget(planted([2] * 3, pad_mass=20.0))
    assert heavy_pad.verdict.value == "REPRODUCED" and heavy_pad.samples["share_pad"][0] > 0.5
    assert spiral.b15_budget(planted([2] * 3)).verdict.value == "CONTRADICTED"


def test_first_takes_a_prefix_of_the_items():
    data = planted([2, 3], items=10)
    assert data.first(4).n_items == 4 and data.first(4).mass[0].shape == (4, 4, N_TEXT + N_IMAGE)
    with pytest.raises(ValueError):
        data.first(11)


def test_an_eos_sink_is_one_token_wherever_the_prompt_length_puts_it():
    data = planted([30] * 3, items=12)
    types = data.token_types[0].copy()
    types[:6, 3], types[:6, 2] = "eos", "content"        # half the prompts are one token longer: EOS at 3
    moved = AttentionData(data.layers, data.prompt_ids, data.mass, tuple(types for _ in data.layers),
                          data.value_norm, data.key_norm)
    sinks = spiral.sink_identities(moved)
    assert sinks[:6] == ["eos"] * 6 and sinks[6:] == ["pad@3"] * 6
    assert spiral.sink_identities(data) == ["pad@3"] * 12


def test_b03_sink_region_follows_the_position_encoding_family():
    pad_sink = planted([30] * 3, sink_key=3)                       # key 3 is a PAD token
    rope_pad = ["rope", "joint_attention", "text_pad_tokens"]
    assert spiral.b03_region(pad_sink, rope_pad).verdict.value == "REPRODUCED"
    assert spiral.b03_region(pad_sink, ["abspe", "joint_attention"]).verdict.value == "CONTRADICTED"
    # image keys 8..31 form a 4 x 6 grid; key 8 is its top-left corner, key 8 + 2*6 + 3 its middle
    grid = tuple((N_TEXT, 1, 4, 6) for _ in range(3))
    corner = planted([30] * 3, sink_key=N_TEXT)
    corner = AttentionData(corner.layers, corner.prompt_ids, corner.mass, corner.token_types, corner.value_norm,
                           corner.key_norm, image_grid=grid)
    assert spiral.b03_region(corner, ["abspe"]).verdict.value == "REPRODUCED"
    assert spiral.b03_region(corner, rope_pad).verdict.value == "CONTRADICTED"
    middle = planted([30] * 3, sink_key=N_TEXT + 2 * 6 + 3)
    middle = AttentionData(middle.layers, middle.prompt_ids, middle.mass, middle.token_types, middle.value_norm,
                           middle.key_norm, image_grid=grid)
    assert not spiral._in_region("corner", "patch", N_TEXT + 2 * 6 + 3, grid[0])
    assert spiral.b03_region(middle, ["abspe"]).verdict.value == "CONTRADICTED"


def test_b09_sink_keys_have_the_others_norm_after_qk_norm():
    equal = planted([20] * 3)                                     # key norms ~1 +- 5% noise for every key
    assert spiral.b09_key_norms(equal).verdict.value == "REPRODUCED"
    big = planted([20] * 3, value_factor=1.6)                     # planted() scales key norms like values
    assert spiral.b09_key_norms(big).verdict.value == "CONTRADICTED"
    # zero keys at one layer (a zeroed key-norm gain): that layer is left out; at every layer: undefined
    zero_one = AttentionData(equal.layers, equal.prompt_ids, equal.mass, equal.token_types, equal.value_norm,
                             [np.zeros_like(equal.key_norm[0])] + list(equal.key_norm[1:]))
    assert spiral.b09_key_norms(zero_one).verdict.value == "REPRODUCED"
    zero_all = AttentionData(equal.layers, equal.prompt_ids, equal.mass, equal.token_types, equal.value_norm,
                             [np.zeros_like(k) for k in equal.key_norm])
    outcome = spiral.b09_key_norms(zero_all)
    assert outcome.verdict.value == "INCONCLUSIVE" and "0/0" in outcome.reason


def _with_step_profile(data: AttentionData, profile) -> AttentionData:
    """The same data with the sink's strength following `profile` over the steps (1 = no sink)."""
    mass = []
    for m in data.mass:
        m = m.copy()
        for s, strength in enumerate(profile):
            m[:, s, 3] = strength * m[:, s, 4]
        mass.append(m / m.sum(-1, keepdims=True))
    return AttentionData(data.layers, data.prompt_ids, tuple(mass), data.token_types, data.value_norm, data.key_norm)


def test_b04_sinks_form_early_and_persist():
    base = planted([1] * 3, steps=8)
    assert spiral.b04_onset(_with_step_profile(base, [30] * 8)).verdict.value == "REPRODUCED"
    late = _with_step_profile(base, [1, 1, 1, 1, 1, 30, 30, 30])
    assert spiral.b04_onset(late).verdict.value == "CONTRADICTED"
    fading = _with_step_profile(base, [30, 30, 1, 1, 1, 1, 1, 1])
    assert spiral.b04_onset(fading).verdict.value == "CONTRADICTED"
    assert spiral.b04_onset(base).verdict.value == "CONTRADICTED"      # no sink at all


def test_items_with_different_text_lengths_align_to_one_layout():
    from benchmark.probe.records import align_keys, span_layout

    short, long = [["text", 0, 3], ["image", 3, 7]], [["text", 0, 5], ["image", 5, 9]]
    layout = span_layout([short, long])
    assert layout == [("text", 0, 5), ("image", 5, 9)]
    aligned = align_keys(np.array([1.0, 2, 3, 10, 11, 12, 13]), short, layout)
    np.testing.assert_array_equal(aligned, [1, 2, 3, 0, 0, 10, 11, 12, 13])
    same = np.arange(9.0)
    assert align_keys(same, long, layout) is same
    # the sink-to-random ratio counts only the item's own keys
    mu = np.array([[0.5, 0.25, 0.25, 0.0]])
    np.testing.assert_allclose(spiral.sink_to_random(mu, np.array([[True, True, True, False]])), [2.0])


def test_figures_are_written_and_linked_from_the_verdict(tmp_path):
    from types import SimpleNamespace

    from benchmark import figures

    data = planted([1, 5, 20])
    ctx = SimpleNamespace(run_dir=tmp_path)
    outcome = figures.attach(spiral.b05_depth(data), ctx, "B05_x.png",
                             lambda path: figures.ratio_over_depth(spiral.ratio_by_layer(data), path, "B05"))
    figures.token_budget(spiral.token_type_shares(data), tmp_path / "budget.png", "B15")
    figures.layer_step_heatmap(np.random.default_rng(0).random((3, 4)), tmp_path / "map.png", "A01", "MaxMass")
    assert outcome.figures == ["figures/B05_x.png"]
    for name in ("figures/B05_x.png", "budget.png", "map.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert figures.attach(spiral.b05_depth(data), SimpleNamespace(run_dir=None), "y.png", None).figures == []


def test_b16_comma_padding_moves_attention_from_pad_to_image():
    base = planted([2] * 3, pad_mass=20.0)
    relieved = planted([2] * 3, pad_mass=2.0, seed=1)          # commas took the PAD slots: image keys gain
    assert spiral.b16_comma_padding(base, relieved).verdict.value == "REPRODUCED"
    assert spiral.b16_comma_padding(relieved, base).verdict.value == "CONTRADICTED"


def _with_logits(data: AttentionData, pre_sink: float, post_sink: float) -> AttentionData:
    """Mean logits: every key 1.0 (+-1%) before and after RoPE, except the sink key (3)."""
    rng = np.random.default_rng(5)
    pre, post = [], []
    for m in data.mass:
        base = 1 + 0.01 * rng.random(m.shape)
        a, b = base.copy(), base.copy()
        a[..., 3], b[..., 3] = pre_sink, post_sink
        b[..., 4:] -= 2.0                                  # RoPE lowers the other keys
        pre.append(a)
        post.append(b)
    return AttentionData(data.layers, data.prompt_ids, data.mass, data.token_types, data.value_norm, data.key_norm,
                         extra={"logit_mean_pre_rope": tuple(pre), "logit_mean": tuple(post)})


def test_b10_sink_advantage_appears_only_after_rope():
    data = planted([30] * 3)
    assert spiral.b10_rope(_with_logits(data, pre_sink=1.05, post_sink=1.0)).verdict.value == "REPRODUCED"
    assert spiral.b10_rope(_with_logits(data, pre_sink=3.0, post_sink=3.0)).verdict.value == "CONTRADICTED"
    assert spiral.b10_rope(data).verdict.value == "INCONCLUSIVE"     # not recorded


def test_measurement_prompt_spec_takes_n_from_the_claim(tmp_path):
    from types import SimpleNamespace

    from benchmark.measurements import prompt_spec

    organism, real = SimpleNamespace(organism=True), SimpleNamespace(organism=False)
    ctx = lambda prompts: SimpleNamespace(settings=SimpleNamespace(prompts=prompts))   # noqa: E731
    assert prompt_spec(organism, ctx(None), 100) == "organism:100"
    assert prompt_spec(real, ctx(None), 16) == "geneval:16"
    assert prompt_spec(real, ctx("geneval:553"), 16) == "geneval:16"
    listed = tmp_path / "p.txt"
    listed.write_text("a red circle\n")
    assert prompt_spec(real, ctx(f"{listed}:50"), 8) == f"{listed}:8"
    assert prompt_spec(real, ctx(str(listed)), 8) == f"{listed}:8"


def test_b08_activations_peak_before_the_sinks():
    data = planted([1, 2, 5, 40, 60, 30])                           # sinks peak at layer 4
    with_acts = lambda block: AttentionData(                        # noqa: E731
        data.layers, data.prompt_ids, data.mass, data.token_types, data.value_norm, data.key_norm,
        block_act_max=np.where(np.arange(6)[None, :, None] == block, 50.0, 1.0) * np.ones((16, 6, 4)),
        block_first_layer=tuple(range(6)))
    assert spiral.b08_activation_before_sink(with_acts(1)).verdict.value == "REPRODUCED"
    assert spiral.b08_activation_before_sink(with_acts(5)).verdict.value == "CONTRADICTED"


def test_b13_content_order_planted():
    from benchmark.criteria.spiral import b13_content_order

    rng = np.random.default_rng(0)
    n = 16
    ordered = {"eos": 50 * rng.uniform(0.9, 1.1, n), "pad": 10 * rng.uniform(0.9, 1.1, n),
               "comma": 3 * rng.uniform(0.9, 1.1, n), "image": rng.uniform(0.9, 1.1, n)}
    assert b13_content_order(ordered).verdict.value == "REPRODUCED"
    swapped = dict(ordered, pad=ordered["comma"], comma=ordered["pad"])
    out = b13_content_order(swapped)
    assert out.verdict.value == "CONTRADICTED" and "pad > comma" in out.reason


def test_b14_relocation_planted():
    from benchmark.criteria.spiral import b14_relocation

    rng = np.random.default_rng(1)
    before = rng.uniform(0.9, 1.1, 16) / 100
    assert b14_relocation(before, before * 8.6).verdict.value == "REPRODUCED"
    assert b14_relocation(before, before / 3).verdict.value == "CONTRADICTED"


def test_b17_compositional_planted():
    from benchmark.criteria.spiral import b17_compositional

    base = np.array([0, 1, 0, 0, 1, 0, 1, 0] * 4, float)
    better = base.copy()
    better[[0, 2, 3, 5, 7, 8, 10, 11, 13]] = 1
    assert b17_compositional(base, better, "detector").verdict.value == "REPRODUCED"
    assert b17_compositional(better, base, "detector").verdict.value == "CONTRADICTED"
    assert b17_compositional(base, base, "detector").verdict.value == "INCONCLUSIVE"


def test_b13_swapped_keys_are_where_the_tokens_differ():
    from benchmark.criteria.spiral import swapped_keys

    pad = np.array([["a", "</s>", "<pad>", "<pad>", "<pad>", ""]] * 2)
    eos = np.array([["a", "</s>", "<pad>", "</s>", "</s>", ""]] * 2)
    assert swapped_keys(eos, pad).tolist() == [3, 4]          # the prompt's own EOS (key 1) is in both
    long_prompt = eos.copy()
    long_prompt[1, 3] = "<pad>"                               # a prompt whose text reached position 3
    assert swapped_keys(long_prompt, pad).tolist() == [4]


def test_b11_band_energy_planted():
    from benchmark.criteria.spiral import b11_band_energy

    rng = np.random.default_rng(2)
    items, layers, steps = 12, 8, 3
    mean = np.full((items, layers, steps), 0.5)
    growing = 0.5 * np.exp(np.linspace(0.2, 1.2, layers))[None, :, None] * rng.uniform(0.98, 1.02, (items, layers, steps))
    out = b11_band_energy(np.minimum(growing, 1.0), mean, "test split")
    assert out.verdict.value == "REPRODUCED", out.measured
    shrinking = growing[:, ::-1]
    assert b11_band_energy(np.minimum(shrinking, 1.0), mean, "test split").verdict.value == "CONTRADICTED"


def test_rope_low_band_per_axis():
    from benchmark.measurements import rope_low_band

    low, split = rope_low_band({"attention_head_dim": 16, "axes_dims_rope": [4, 6, 6]})
    # axis of 4 channels: pairs 0, 1 -> pair 1 is low; axis of 6: pairs 0, 1, 2 -> pairs >= 1.5, i.e. pair 2
    assert low.tolist() == [False, False, True, True] + [False] * 4 + [True] * 2 + [False] * 4 + [True] * 2
    assert "[4, 6, 6]" in split


def test_b07_massive_activations_planted():
    from benchmark.criteria.spiral import b07_massive_activations

    rng = np.random.default_rng(3)
    items, layers, steps, keys = 10, 4, 2, 12
    mass = rng.uniform(0.5, 1.0, (layers, items, steps, keys))
    mass[:, :, :, 3] += 20                                   # key 3 is the sink everywhere
    mass /= mass.sum(axis=-1, keepdims=True)
    types = np.array([["patch"] * keys] * items)
    data = AttentionData(tuple({"index": i} for i in range(layers)), tuple(f"p{i}" for i in range(items)),
                         tuple(mass), (types,) * layers, (None,) * layers, (None,) * layers)
    act = rng.uniform(0.9, 1.1, (items, layers, steps, keys))
    act[:, 0] = np.nan                                       # no block before the first layer
    massive = act.copy()
    massive[..., 3] *= 50
    per_layer = lambda a: [a[:, i] for i in range(layers)]   # noqa: E731
    assert b07_massive_activations(data, per_layer(massive)).verdict.value == "REPRODUCED"
    assert b07_massive_activations(data, per_layer(act)).verdict.value == "CONTRADICTED"
