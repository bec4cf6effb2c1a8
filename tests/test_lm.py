"""Paper C's machinery: the arithmetic task, the samplers, the sink rule, the probe and sink masking, the
language-model adapters (tiny random models saved with save_pretrained, the committed organisms), the remote-code
opt-in, and C01-C07's criteria on planted data. CPU only, deterministic."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import torch.nn.functional as F  # noqa: E402
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from benchmark.cards import load_cards  # noqa: E402
from benchmark.criteria import dlm  # noqa: E402
from benchmark.lm import arithmetic  # noqa: E402
from benchmark.lm.adapter import (REMOTE_CODE_FLAG, LMAdapter, LMCheckpointNotFound, LMSettings,  # noqa: E402
                                  RemoteCodeNotAllowed, lm_card_of_directory, resolve_lm_checkpoint)
from benchmark.lm.sampling import dream_generate, greedy_generate, llada_generate, transfer_counts  # noqa: E402
from benchmark.lm.session import LMAttentionSession, ProbeError  # noqa: E402
from benchmark.lm.sinks import CLASSES, is_sink, sink_margin, token_classifier  # noqa: E402
from benchmark.probe.math import dense_probabilities  # noqa: E402
from benchmark.verdict import Verdict  # noqa: E402

CARDS = load_cards()
MASK = arithmetic.VOCABULARY.index("<mask>")


# ------------------------------------------------------------------------------------------- the task
def test_problems_are_deterministic_exact_and_held_out():
    a, b = arithmetic.problems(50), arithmetic.problems(50)
    assert a == b
    for p in a:
        x, op, y = next((p.query[:i], p.query[i], p.query[i + 1:-1]) for i in range(1, len(p.query))
                        if p.query[i] in arithmetic.OPERATORS)
        assert str(arithmetic.solve(int(x), op, int(y))) == p.answer
        assert p.prompt.count(arithmetic.SEPARATOR) == arithmetic.CONTEXT_PROBLEMS
    train = {arithmetic.sample_text(0, i)[0] for i in range(2000)}
    assert not train & {p.prompt for p in a}


def test_answers_are_extracted_exactly():
    assert arithmetic.is_correct("-712", "-712") and arithmetic.is_correct("86; 11*2", "86")
    assert not arithmetic.is_correct("861", "86") and not arithmetic.is_correct("", "0")
    assert arithmetic.extract_answer("=5") is None


def test_tokenizer_is_character_level_and_round_trips():
    tok = arithmetic.build_tokenizer()
    text = "876+776=1652; 85-797="
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text) and tok.decode(ids) == text
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, tok.mask_token_id) == (1, 2, 0, MASK)


# ------------------------------------------------------------------------------------------- samplers
def planted_forward(confidence: list[float], vocab: int = 9):
    """A model that predicts token (position % 8) everywhere with the planted probability per position (8 is the
    mask token, never predicted)."""
    def forward(ids):
        n = ids.shape[1]
        logits = torch.full((1, n, vocab), -30.0)
        for i in range(n):
            p = confidence[i]
            logits[0, i, :] = math.log((1 - p) / (vocab - 1))
            logits[0, i, i % 8] = math.log(p)
        return logits
    return forward


def test_transfer_counts_spread_the_remainder_first():
    assert transfer_counts(10, 4) == [3, 3, 2, 2]
    assert sum(transfer_counts(7, 7)) == 7 and transfer_counts(2, 4) == [1, 1, 0, 0]


def test_llada_unmasks_the_most_confident_position_of_the_current_block_first():
    prompt = torch.tensor([1, 5])
    conf = [0.9, 0.9, 0.3, 0.8, 0.5, 0.6, 0.99, 0.4, 0.7, 0.2]    # window = positions 2..9, blocks 2-5, 6-9
    steps = []
    gen = llada_generate(planted_forward(conf), prompt, mask_id=8, gen_length=8, block_length=4, steps=8,
                         on_step=lambda s, ids: steps.append((s, ids.clone())))
    assert gen.decoded_at == [[3], [5], [4], [2], [6], [8], [7], [9]]   # by confidence, block 1 before block 2
    assert [s for s, _ in steps] == list(range(8))
    assert (steps[0][1][2:] == 8).all() and (steps[4][1][2:6] != 8).all() and (steps[4][1][6:] == 8).all()
    assert gen.generated.tolist() == [i % 8 for i in range(2, 10)]


def test_llada_checks_its_block_arithmetic():
    with pytest.raises(ValueError, match="multiple of block_length"):
        llada_generate(planted_forward([0.5] * 9), torch.tensor([1]), mask_id=8, gen_length=8, block_length=3,
                       steps=8)


def test_dream_follows_the_linear_schedule_lowest_entropy_first():
    conf = [0.9, 0.5, 0.95, 0.6, 0.99, 0.7, 0.8]                   # window = positions 1..6
    gen = dream_generate(planted_forward(conf), torch.tensor([1]), mask_id=8, gen_length=6, steps=3)
    counts = [len(d) for d in gen.decoded_at]
    assert counts == [int(6 * (1 - s / t)) if i < 2 else 6 - sum(counts[:2])
                      for i, (t, s) in enumerate(zip(np.linspace(1, 1e-3, 4)[:-1], np.linspace(1, 1e-3, 4)[1:]))]
    order = [p for d in gen.decoded_at for p in d]
    assert sorted(order) == list(range(1, 7))
    assert gen.decoded_at[0] == sorted([4, 2, 6][:counts[0]])            # most peaked (lowest entropy) first


def test_greedy_decodes_with_a_cache_and_stops_at_eos():
    seen = []

    def forward(new, cache):
        n = (cache or 0) + new.shape[1]
        logits = torch.zeros(1, new.shape[1], 8)
        logits[0, -1, 2 if n >= 5 else 4] = 5.0            # EOS (2) once the sequence has 5 tokens
        return logits, n

    gen = greedy_generate(forward, torch.tensor([1, 3, 3]), eos_id=2, max_new_tokens=10,
                          on_step=lambda s, ids: seen.append((s, len(ids))))
    assert gen.generated.tolist() == [4, 4, 2] and seen == [(0, 3), (1, 4), (2, 5)]


# ------------------------------------------------------------------------------------------- the sink rule
def test_eps_rule_on_planted_attention():
    n = 50
    uniform = np.full(n, 1 / n)
    assert not is_sink(uniform, 1.0, n).any()
    planted = np.full(n, 0.5 / (n - 1))
    planted[7] = 0.5
    assert is_sink(planted, 1.0, n).tolist() == [i == 7 for i in range(n)]
    assert sink_margin(planted[7:8], 1.0, n)[0] == pytest.approx(n * (0.5 - 0.5 / (n - 1)))
    assert not is_sink(planted, 1.0, n, eps=30.0).any()


@given(st.lists(st.floats(0.0, 1.0), min_size=2, max_size=40), st.floats(0.0, 10.0))
def test_eps_rule_matches_the_papers_definition(weights, eps):
    mass = np.asarray(weights) + 1e-3
    mass = mass / mass.sum()
    n = mass.size
    expected = [n * mass[j] > n * np.mean(np.delete(mass, j)) + eps + 1e-9 for j in range(n)]
    got = sink_margin(mass, mass.sum(), n) > eps + 1e-9
    assert got.tolist() == expected


def test_token_classes_of_the_arithmetic_vocabulary():
    classify = token_classifier(arithmetic.build_tokenizer(), MASK)
    index = {t: i for i, t in enumerate(arithmetic.VOCABULARY)}
    assert {t: classify(index[t]) for t in ("+", "=", ";", " ", "<eos>", "<bos>", "<mask>", "<pad>", "7")} == {
        "+": "punctuation", "=": "punctuation", ";": "punctuation", " ": "whitespace", "<eos>": "eos",
        "<bos>": "bos", "<mask>": "mask", "<pad>": "pad", "7": "content"}


# ------------------------------------------------------------------------------------------- probe and masking
class PlantedAttention(torch.nn.Module):
    """Two SDPA calls per forward (two 'layers') on fixed q, k, v (GQA-free), like a DLM or an ARM."""

    def __init__(self, n=12, heads=3, d=8, causal=False, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.q = torch.randn(2, 1, heads, n, d, generator=g)
        self.k = torch.randn(2, 1, heads, n, d, generator=g)
        self.q[..., 0] += 3.0
        self.k[:, :, :, 4, 0] = 3.0                                           # key 4 attracts attention
        self.v = torch.randn(2, 1, heads, n, d, generator=g)
        self.causal = causal

    def forward(self, n=None):
        outs = []
        for layer in range(2):
            q, k, v = (t[layer][..., :n, :] for t in (self.q, self.k, self.v))
            outs.append(F.scaled_dot_product_attention(q, k, v, is_causal=self.causal))
        return outs


def test_probe_mass_matches_the_dense_reference_and_is_passive():
    model = PlantedAttention()
    plain = model()
    with LMAttentionSession("dlm") as session:
        session.begin_step(0, torch.arange(12))
        probed = model()
    assert all(torch.equal(a, b) for a, b in zip(plain, probed)), "a probe without masking changes nothing"
    cells = session.record.cells[0]
    assert len(cells) == 3                                             # two layers and their mean
    for layer in range(2):
        dense = dense_probabilities(model.q[layer], model.k[layer]).mean(dim=(1, 2))[0].numpy()
        order = np.argsort(-dense, kind="stable")
        assert cells[layer].top_index.tolist() == order[:12].tolist()
        assert np.allclose(cells[layer].top_mass, dense[order], atol=1e-6)
    assert cells[0].top_index[0] == 4


def test_arm_probe_reads_the_last_row_of_causal_attention():
    model = PlantedAttention(causal=True)
    with LMAttentionSession("arm") as session:
        session.begin_step(0, torch.arange(12))
        model()
    causal = torch.ones(12, 12, dtype=torch.bool).tril()
    dense = dense_probabilities(model.q[0], model.k[0], attn_mask=causal)[0, :, -1].mean(0).numpy()
    cell = session.record.cells[0][0]
    assert np.allclose(cell.top_mass, np.sort(dense)[::-1][:12], atol=1e-6)


def test_masking_removes_the_previous_steps_top_keys_exactly():
    model = PlantedAttention()
    with LMAttentionSession("dlm", mask_k=2) as session:
        session.begin_step(0, torch.arange(12))
        first = model()
        session.begin_step(1, torch.arange(12))
        masked = model()
    assert all(torch.equal(a, b) for a, b in zip(model(), first)), "step 0 has no previous step: untouched"
    for layer in range(2):
        chosen = session.record.cells[0][layer].top_index[:2]
        drop = torch.zeros(12)
        drop[torch.as_tensor(chosen)] = float("-inf")
        probs = dense_probabilities(model.q[layer], model.k[layer], bias=drop)
        assert float(probs[..., torch.as_tensor(chosen)].max()) == 0.0
        assert torch.allclose(masked[layer], probs @ model.v[layer], atol=1e-5)
        cell = session.record.cells[1][layer]
        assert np.isfinite(cell.log_mass_before) and cell.log_mass_after < -1e30


def test_the_probe_needs_sdpa_calls():
    with pytest.raises(ProbeError, match="sdpa"):
        with LMAttentionSession("dlm") as session:
            session.begin_step(0, torch.arange(3))


# ------------------------------------------------------------------------------------------- adapters
@pytest.fixture(scope="module")
def organisms():
    return {kind: LMAdapter.load(CARDS[f"organism_{kind}"], str(CARDS[f"organism_{kind}"].weights_path),
                                 LMSettings(sampler="llada" if kind == "mdlm" else "greedy", gen_length=8,
                                            steps=8, block_length=4))
            for kind in ("mdlm", "arm")}


def _first_call_probabilities(adapter, ids):
    calls = []

    def grab(func, args, kwargs):
        calls.append((args, kwargs))
        return func(*args, **kwargs)

    from benchmark.probe.hook import _sdpa_arguments, intercepting_sdpa

    with torch.no_grad(), intercepting_sdpa(grab):
        adapter.model(input_ids=ids[None], use_cache=False)
    bound = _sdpa_arguments(*calls[0])
    mask = bound.get("attn_mask")
    if bound.get("is_causal"):
        n = bound["query"].shape[-2]
        mask = torch.ones(n, n, dtype=torch.bool).tril()
    return dense_probabilities(bound["query"], bound["key"], attn_mask=mask, scale=bound.get("scale"))


def test_the_diffusion_organism_is_bidirectional_and_the_causal_one_is_not(organisms):
    ids = organisms["mdlm"].encode(arithmetic.problems(1)[0].prompt)
    future = {k: float(_first_call_probabilities(a, ids)[0, :, 0, 1:].sum(-1).min()) for k, a in organisms.items()}
    assert future["mdlm"] > 1e-3 and future["arm"] == 0.0
    other = ids.clone()
    other[-2] = (other[-2] + 1) % 10 + 4
    with torch.no_grad():
        moved = {k: float((a.logits(ids[None])[0, 1] - a.logits(other[None])[0, 1]).abs().max())
                 for k, a in organisms.items()}
    assert moved["mdlm"] > 1e-4 and moved["arm"] < 1e-5


def test_committed_organisms_solve_the_task(organisms):
    for kind, adapter in organisms.items():
        right = 0
        for p in arithmetic.problems(8):
            right += arithmetic.is_correct(adapter.decode(adapter.generate(adapter.encode(p.prompt)).generated),
                                           p.answer)
        assert right >= 7, kind


def test_a_saved_llama_loads_natively_with_sdpa(tmp_path, monkeypatch):
    from benchmark.lm.tiny import tiny_llama

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    directory = tiny_llama(tmp_path / "llama")
    assert lm_card_of_directory(directory, CARDS) == "llama"
    adapter = LMAdapter.load(CARDS["llama"], str(directory), LMSettings(sampler="greedy", gen_length=4, steps=4))
    assert adapter.model.config._attn_implementation == "sdpa"
    with LMAttentionSession("arm", mask_k=1) as session:
        gen = adapter.generate(adapter.encode("12+3="), on_step=session.begin_step)
    assert len(session.record.cells) == gen.steps and len(session.record.cells[0]) == 2 + 1
    assert [c[0].n_keys for c in session.record.cells] == list(range(6, 6 + gen.steps))


def test_remote_code_loads_only_with_the_opt_in(tmp_path, monkeypatch):
    from benchmark.lm.tiny import tiny_remote_dlm

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    directory = tiny_remote_dlm(tmp_path / "remote")
    assert lm_card_of_directory(directory, CARDS) == "llada"
    settings = LMSettings(sampler="llada", gen_length=8, steps=8, block_length=4)
    with pytest.raises(RemoteCodeNotAllowed, match=REMOTE_CODE_FLAG):
        LMAdapter.load(CARDS["llada"], str(directory), settings)
    adapter = LMAdapter.load(CARDS["llada"], str(directory), settings, trust_remote_code=True)
    assert adapter.remote_code and adapter.mask_id == MASK
    with LMAttentionSession("dlm", mask_k=1) as session:
        gen = adapter.generate(adapter.encode("12+3="), on_step=session.begin_step)
    assert (gen.generated != MASK).all() and len(session.record.cells) == 8
    assert len(session.record.cells[0]) == 2 + 1                       # inline attention: one call per block


def test_checkpoint_resolution_errors(tmp_path):
    with pytest.raises(LMCheckpointNotFound, match="does not exist"):
        resolve_lm_checkpoint(str(tmp_path / "nothing"))
    with pytest.raises(LMCheckpointNotFound, match="config.json"):
        resolve_lm_checkpoint(str(tmp_path))


def test_remote_code_cards_are_skipped_with_the_flag_named():
    from benchmark.context import RunContext, RunSettings
    from benchmark.suite import availability, catalogue

    for gpu in (False, True):
        ctx = RunContext(settings=RunSettings(gpu=gpu), catalogue=catalogue())
        for name in ("llada", "dream", "mmada"):
            assert REMOTE_CODE_FLAG in availability(CARDS[name], ctx)
        assert REMOTE_CODE_FLAG not in availability(CARDS["llama"], ctx)
    assert availability(CARDS["organism_mdlm"], ctx) is None and availability(CARDS["organism_arm"], ctx) is None


# ------------------------------------------------------------------------------------------- criteria
def test_c01_counts_sinks_from_the_stored_top_keys():
    top = np.array([[[0.5, 0.02, 0.02], [0.05, 0.05, 0.05]]])          # (S=1, L=2, K=3), N = 20
    counts, saturated = dlm.sink_counts(top, np.ones((1, 2)), np.array([20]))
    assert counts.tolist() == [[1, 0]] and not saturated.any()
    many = [np.ones((4, 3), int)] * 6
    keys = [np.full(4, 40)] * 6
    assert dlm.c01_sinks(many, keys, seed=0).verdict is Verdict.REPRODUCED
    assert dlm.c01_sinks([np.zeros((4, 3), int)] * 6, keys, seed=0).verdict is Verdict.CONTRADICTED


def test_c02_dlm_moves_and_arm_is_static():
    moving = [np.array([0, 0, 5, 5, 9])] * 10
    still = [np.array([0, 0, 0, 0])] * 10
    assert dlm.c02_dynamics(moving, "dlm").verdict is Verdict.REPRODUCED
    assert dlm.c02_dynamics(still, "dlm").verdict is Verdict.CONTRADICTED
    assert dlm.c02_dynamics(still, "arm").verdict is Verdict.REPRODUCED
    assert dlm.c02_dynamics(moving, "arm").verdict is Verdict.CONTRADICTED
    assert dlm.stability(moving)[0] == pytest.approx(0.5)


def test_c03_thresholds():
    base = np.ones(40)
    same = {1: np.ones(40), 5: np.ones(40), 10: np.ones(40)}
    half_wrong = {1: np.r_[np.ones(20), np.zeros(20)], 5: np.zeros(40), 10: np.zeros(40)}
    collapse = {1: np.r_[np.ones(2), np.zeros(38)], 5: np.zeros(40), 10: np.zeros(40)}
    kw = dict(seed=0, task="arithmetic")
    assert dlm.c03_masking(base, same, "dlm", **kw).verdict is Verdict.REPRODUCED
    assert dlm.c03_masking(base, half_wrong, "dlm", **kw).verdict is Verdict.CONTRADICTED
    assert dlm.c03_masking(base, collapse, "arm", **kw).verdict is Verdict.REPRODUCED
    assert dlm.c03_masking(base, same, "arm", **kw).verdict is Verdict.CONTRADICTED


def test_c04_compares_sink_classes_with_token_classes():
    punct, content = CLASSES.index("punctuation"), CLASSES.index("content")
    counts = [np.tile(np.bincount([punct] * 2 + [content] * 18, minlength=len(CLASSES)), (3, 1))] * 8
    on_punct = [np.full((3, 4), punct)] * 8
    on_content = [np.full((3, 4), content)] * 8
    assert dlm.c04_token_classes(on_punct, counts, seed=0).verdict is Verdict.REPRODUCED
    assert dlm.c04_token_classes(on_content, counts, seed=0).verdict is Verdict.CONTRADICTED


def test_c05_c06_c07_on_planted_positions():
    assert dlm.c05_first_positions([np.zeros((4, 3))] * 6, seed=0).verdict is Verdict.REPRODUCED
    assert dlm.c05_first_positions([np.full((4, 3), 30)] * 6, seed=0).verdict is Verdict.CONTRADICTED
    assert dlm.c07_bos([np.zeros(6, int)] * 6, seed=0).verdict is Verdict.REPRODUCED
    assert dlm.c07_bos([np.arange(6)] * 6, seed=0).verdict is Verdict.CONTRADICTED
    rng = np.random.default_rng(0)
    stable = {"mmada": rng.uniform(0.9, 1.0, 20), "llada": rng.uniform(0.3, 0.5, 20), "dream": rng.uniform(0.4, 0.6, 20)}
    assert dlm.c06_most_stable(stable, "mmada", seed=0).verdict is Verdict.REPRODUCED
    stable["dream"] = np.ones(20)
    assert dlm.c06_most_stable(stable, "mmada", seed=0).verdict is Verdict.CONTRADICTED


# ------------------------------------------------------------------------------------------- the plugin
PLANTED_DLM = """
from benchmark.suite import claim_tests, criterion
from benchmark.verdict import reproduced

@criterion("C01")
def c01(claim, card, ctx):
    return reproduced("planted", n=1)

globals().update(claim_tests("dlm"))
"""


def test_remote_code_claims_skip_naming_the_flag_and_the_report_records_it(pytester, monkeypatch):
    pytester.makepyfile(test_planted=PLANTED_DLM)
    monkeypatch.setenv("HF_HUB_CACHE", str(pytester.path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from benchmark.results import load_results

    def run(*args):
        pytester.runpytest_subprocess("-p", "benchmark.plugin", "-p", "no:cacheprovider", "-m", "llada or mmada",
                                      "-k", "C01", *args)
        return load_results(pytester.path / "reports" / "latest" / "results.json")

    for args in ((), ("--gpu",)):
        doc = run(*args)
        assert doc["settings"]["trust_remote_code"] is False
        reasons = {r["model"]: r["reason"] for r in doc["results"]}
        assert set(reasons) == {"llada", "mmada"}
        assert all(r["verdict"] == "SKIPPED" for r in doc["results"])
        assert all(REMOTE_CODE_FLAG in why for why in reasons.values()), reasons
    doc = run("--gpu", REMOTE_CODE_FLAG)
    assert doc["settings"]["trust_remote_code"] is True
    # opted in: the next gate is the weights, absent from this empty cache
    assert all(r["verdict"] == "SKIPPED" and "weights not available" in r["reason"] for r in doc["results"])


GSM8K = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k"


@pytest.fixture(scope="module")
def tiny_checkpoints(tmp_path_factory):
    """Built before pytester snapshots sys.modules: a module it drops and re-imports (torch's operator
    registrations, via transformers) cannot be imported twice in one process."""
    from benchmark.lm.tiny import tiny_llama, tiny_remote_dlm

    root = tmp_path_factory.mktemp("tiny_lm")
    return {"llada": tiny_remote_dlm(root / "llada"), "llama": tiny_llama(root / "llama")}


@pytest.mark.skipif(not GSM8K.is_dir(), reason="GSM8K's test split is not in ../shared/data/gsm8k")
@pytest.mark.parametrize("family", ["llada", "llama"])
def test_claims_run_on_tiny_checkpoints_through_the_real_path(family, tiny_checkpoints, pytester, monkeypatch):
    """--checkpoint DIR of a tiny random model: hub-style loading (remote code for LLaDA), GSM8K, the probe and
    the masking run end to end and every claim gets a measured verdict (random weights: any verdict)."""
    from benchmark.results import load_results

    directory = tiny_checkpoints[family]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("SINKBENCH_GSM8K", str(GSM8K))
    pytester.makeconftest("")
    pytester.copy_example(str(Path(__file__).resolve().parents[1] / "suites" / "test_dlm.py"))
    extra = [REMOTE_CODE_FLAG] if family == "llada" else []
    pytester.runpytest_subprocess("-p", "benchmark.plugin", "-p", "no:cacheprovider", "test_dlm.py",
                                  "--checkpoint", str(directory), "--device", "cpu", "--n-prompts", "2",
                                  "--steps", "8", "--dtype", "fp32", "--report-dir", str(pytester.path / "reports"),
                                  "--cache-dir", str(pytester.path / "cache"), *extra)
    doc = load_results(pytester.path / "reports" / "latest" / "results.json")
    verdicts = {r["claim"]: (r["verdict"], r["reason"]) for r in doc["results"]}
    expected = {"llada": {"C01", "C02", "C03", "C04"}, "llama": {"C02", "C03", "C07"}}[family]
    assert set(verdicts) == expected
    assert all(v in ("REPRODUCED", "CONTRADICTED", "INCONCLUSIVE") for v, _ in verdicts.values()), verdicts


HUMANEVAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "humaneval"


def test_humaneval_task_needs_the_opt_in_and_scores_in_the_sandbox(monkeypatch):
    """HumanEval's items are the problems' prompts; a completion is scored by running its program in a child
    process (the canonical solution passes, a wrong body fails); no opt-in: nothing is generated or run."""
    from benchmark.lm.measure import task_for
    from benchmark.lm_tasks import ALLOW_CODE_EXECUTION_FLAG, CodeExecutionNotAllowed, load_humaneval

    data = Path(__file__).resolve().parent / "data" / "lm_tasks" / "HumanEval.jsonl"
    problems = load_humaneval(data, verify=False)
    monkeypatch.setattr("benchmark.lm_tasks.load_humaneval", lambda **kw: problems)
    with pytest.raises(CodeExecutionNotAllowed, match=ALLOW_CODE_EXECUTION_FLAG):
        task_for(CARDS["llama"], 2, "humaneval")
    with pytest.raises(ValueError, match="organism"):
        task_for(CARDS["organism_arm"], 2, "humaneval", allow_code_execution=True)
    task = task_for(CARDS["llama"], 2, "humaneval", allow_code_execution=True)
    assert task.name == "humaneval" and [i.prompt for i in task.items] == [p.prompt for p in problems.head(2)]
    item = task.items[0]
    assert task.score(item, item.reference.canonical_solution)
    assert not task.score(item, "    return None\n")


@pytest.mark.skipif(not (GSM8K.is_dir() and HUMANEVAL.is_dir()),
                    reason="GSM8K / HumanEval are not in ../shared/data/{gsm8k,humaneval}")
@pytest.mark.parametrize("opt_in", [True, False])
def test_c03_humaneval_half_runs_only_with_the_opt_in(opt_in, tiny_checkpoints, pytester, monkeypatch):
    """C03 on a tiny random Llama: with --allow-code-execution the HumanEval half is generated and its programs
    run in the sandbox (random code fails: pass@1 0 is expected), both tasks are in the measured text and the
    report records the flag; without it the GSM8K verdict stands and the reason names the flag."""
    from benchmark.lm_tasks import ALLOW_CODE_EXECUTION_ENV, ALLOW_CODE_EXECUTION_FLAG
    from benchmark.results import load_results

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("SINKBENCH_GSM8K", str(GSM8K))
    monkeypatch.setenv("SINKBENCH_HUMANEVAL", str(HUMANEVAL))
    monkeypatch.delenv(ALLOW_CODE_EXECUTION_ENV, raising=False)
    pytester.makeconftest("")
    pytester.copy_example(str(Path(__file__).resolve().parents[1] / "suites" / "test_dlm.py"))
    pytester.runpytest_subprocess("-p", "benchmark.plugin", "-p", "no:cacheprovider", "test_dlm.py", "-m", "llama",
                                  "--checkpoint", str(tiny_checkpoints["llama"]), "--device", "cpu",
                                  "--n-prompts", "2", "--steps", "8", "--dtype", "fp32",
                                  "--report-dir", str(pytester.path / "reports"),
                                  "--cache-dir", str(pytester.path / "cache"),
                                  *([ALLOW_CODE_EXECUTION_FLAG] if opt_in else []))
    doc = load_results(pytester.path / "reports" / "latest" / "results.json")
    assert doc["settings"]["allow_code_execution"] is opt_in
    row = next(r for r in doc["results"] if r["claim"] == "C03")
    assert row["verdict"] in ("REPRODUCED", "CONTRADICTED", "INCONCLUSIVE"), row
    records = [json.loads(f.read_text()) for f in (pytester.path / "cache" / "lm").rglob("*.json")]
    tasks = sorted({r["task"] for r in records})
    if opt_in:
        assert tasks == ["gsm8k", "humaneval"]
        assert sum(r["task"] == "humaneval" for r in records) == 2 * 4          # 2 problems x 4 conditions
        assert "GSM8K: GSM8K accuracy unmasked" in row["measured"]
        assert "HumanEval: HumanEval (pass@1) accuracy unmasked" in row["measured"]
        assert "top-1" in row["measured"] and "top-10" in row["measured"]
        assert "HumanEval half not run" not in row["reason"]
    else:
        assert tasks == ["gsm8k"]
        assert "HumanEval half not run" in row["reason"] and ALLOW_CODE_EXECUTION_FLAG in row["reason"]
