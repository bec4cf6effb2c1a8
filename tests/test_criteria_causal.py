"""Paper A's H1 criteria on planted measurements where the right verdict is known."""
from __future__ import annotations

import numpy as np

from benchmark.criteria import causal
from benchmark.measurements import AttentionData

N_TEXT, N_IMAGE = 8, 24


def planted(strength, *, items=12, steps=10, sink_key=3, sink_of=None, entropy=None, seed=0) -> AttentionData:
    """strength[layer][step]: the sink's mass relative to any other key; sink_of(item, layer, step) -> key."""
    rng = np.random.default_rng(seed)
    n = N_TEXT + N_IMAGE
    types = np.array(["content"] * 2 + ["eos"] + ["pad"] * 5 + ["patch"] * N_IMAGE)
    mass, layers, ent = [], [], []
    for li, per_step in enumerate(strength):
        m = 1 + 0.05 * rng.random((items, steps, n))
        for i in range(items):
            for s in range(steps):
                k = sink_of(i, li, s) if sink_of else sink_key
                m[i, s, k] *= per_step[s]
        m /= m.sum(-1, keepdims=True)
        mass.append(m)
        ent.append(-(m * np.log(m)).sum(-1)[..., None].repeat(2, -1).mean(-1) if entropy is None else entropy[li])
        layers.append({"index": li, "name": f"b.{li}", "kind": "joint", "block": "main"})
    tt = tuple(np.tile(types, (items, 1)) for _ in strength)
    return AttentionData(tuple(layers), tuple(f"p{i}" for i in range(items)), tuple(mass), tt,
                         tuple(None for _ in strength), tuple(None for _ in strength), entropy=tuple(ent))


def flat(values, steps=10):
    return [[v] * steps for v in values]


def test_a01_middle_third_most_concentrated():
    assert causal.a01_middle_peak(planted(flat([2, 2, 30, 30, 3, 3]))).verdict.value == "REPRODUCED"
    assert causal.a01_middle_peak(planted(flat([30, 30, 2, 2, 3, 3]))).verdict.value == "CONTRADICTED"


def test_a02_concentration_and_entropy_anticorrelate():
    varied = [[1 + 5 * ((li * 3 + s) % 7) for s in range(10)] for li in range(4)]
    assert causal.a02_entropy(planted(varied)).verdict.value == "REPRODUCED"   # entropy computed from the mass
    data = planted(varied)
    same = AttentionData(data.layers, data.prompt_ids, data.mass, data.token_types, data.value_norm,
                         data.key_norm, entropy=tuple(-np.log(1 - m.max(-1)) for m in data.mass))
    assert causal.a02_entropy(same).verdict.value == "CONTRADICTED"          # an entropy that rises with MaxMass


def test_a03_and_a05_follow_the_step_profile():
    rising = [[1 + 3 * s for s in range(10)]] * 3
    falling = [[1 + 3 * (9 - s) for s in range(10)]] * 3
    assert causal.a03_top5_rises(planted(rising)).verdict.value == "REPRODUCED"
    assert causal.a03_top5_rises(planted(falling)).verdict.value == "CONTRADICTED"
    assert causal.a05_early_peak(planted(falling)).verdict.value == "REPRODUCED"
    assert causal.a05_early_peak(planted(rising)).verdict.value == "CONTRADICTED"


def test_a04_index0_and_a07_text_share():
    pad_sink = planted(flat([40] * 3))
    # 360 records without index 0 cannot show a rate below 0.2% (Wilson upper bound ~1%); 3200 can
    assert causal.a04_not_index0(pad_sink).verdict.value == "INCONCLUSIVE"
    assert causal.a04_not_index0(planted(flat([40] * 4, steps=20), items=40, steps=20)).verdict.value == "REPRODUCED"
    assert causal.a07_text_sinks(pad_sink).verdict.value == "REPRODUCED"
    index0 = planted(flat([40] * 3), sink_key=0)
    assert causal.a04_not_index0(index0).verdict.value == "CONTRADICTED"
    image = planted(flat([40] * 3), sink_key=N_TEXT + 5)
    assert causal.a07_text_sinks(image).verdict.value == "CONTRADICTED"


def test_a06_narrow_or_spread_positions():
    assert causal.a06_narrow_positions(planted(flat([40] * 3))).verdict.value == "REPRODUCED"
    spread = planted(flat([40] * 3), sink_of=lambda i, li, s: (i * 5 + s) % (N_TEXT + N_IMAGE))
    assert causal.a06_narrow_positions(spread).verdict.value == "CONTRADICTED"


def _with_activations(data: AttentionData, peak_block: int) -> AttentionData:
    acts = np.ones((data.n_items, data.n_layers, data.mass[0].shape[1]))
    acts[:, peak_block] = 50.0
    return AttentionData(data.layers, data.prompt_ids, data.mass, data.token_types, data.value_norm, data.key_norm,
                         entropy=data.entropy, block_act_max=acts, block_first_layer=tuple(range(data.n_layers)))


def test_a08_activation_peak_at_the_concentration_peak():
    data = planted(flat([2, 3, 40, 5, 2, 2]))                      # MaxMass peaks at layer 2
    assert causal.a08_activation_peak(_with_activations(data, 3)).verdict.value == "REPRODUCED"   # adjacent
    assert causal.a08_activation_peak(_with_activations(data, 5)).verdict.value == "CONTRADICTED"
    assert causal.a08_activation_peak(data).verdict.value == "INCONCLUSIVE"                       # not recorded
