"""Metrics with offline-built random-weight models, through the same code paths as real weights."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")
pytest.importorskip("lpips")

from benchmark.metrics import MetricCache, MetricUnavailable, load_metric  # noqa: E402
from benchmark.metrics.clip_score import ClipScore  # noqa: E402
from benchmark.metrics.fid import fid_from_features, fid_shift, frechet_distance, kid_from_features  # noqa: E402
from benchmark.metrics.lpips_metric import LPIPSMetric  # noqa: E402

IMAGES = [np.random.default_rng(i).integers(0, 256, (64, 64, 3), dtype=np.uint8) for i in range(8)]
PROMPTS = [f"a {c} circle" for c in ("red", "blue", "green", "yellow")] * 2


@pytest.fixture(scope="module")
def clip():
    return ClipScore.random(seed=0)


def test_clip_scores_shape_batch_invariance_and_determinism(clip):
    batch = clip.score(IMAGES, PROMPTS)
    singles = np.concatenate([clip.score([i], [p]) for i, p in zip(IMAGES, PROMPTS)])
    assert batch.shape == (8,) and np.all(np.abs(batch) <= 1)
    np.testing.assert_allclose(batch, singles, atol=1e-5)
    np.testing.assert_array_equal(batch, ClipScore.random(seed=0).score(IMAGES, PROMPTS))


def test_clip_loads_a_weight_file_through_open_clip(clip, tmp_path):
    path = tmp_path / "open_clip_model.pt"
    torch.save(clip.model.state_dict(), path)
    loaded = ClipScore.load(weights=str(path))
    np.testing.assert_allclose(loaded.score(IMAGES[:3], PROMPTS[:3]), clip.score(IMAGES[:3], PROMPTS[:3]), atol=1e-6)
    assert loaded.identity()["weights_sha256"] != "random-init"


def test_hps_loads_an_hps_style_checkpoint_through_the_same_path(clip, tmp_path):
    """HPS checkpoints are {"state_dict": ...}; a ViT-B-32 stand-in replaces ViT-H-14 to stay small."""
    from benchmark.metrics.clip_score import HPSv2

    path = tmp_path / "HPS_v2.1_compressed.pt"
    torch.save({"state_dict": clip.model.state_dict()}, path)
    hps = HPSv2.load(weights=str(path), model_name="ViT-B-32")
    np.testing.assert_allclose(hps.score(IMAGES[:2], PROMPTS[:2]), clip.score(IMAGES[:2], PROMPTS[:2]), atol=1e-6)
    assert hps.identity()["hps_version"] == "v2.1" and hps.name == "hps_v2"


def test_metric_cache_rescoring_scores_nothing(clip, tmp_path):
    cache = MetricCache(tmp_path)
    first = clip.score(IMAGES, PROMPTS, cache=cache)
    calls = []
    original = clip._score_batch
    clip._score_batch = lambda *a: calls.append(1) or original(*a)
    try:
        again = clip.score(IMAGES, PROMPTS, cache=cache)
    finally:
        clip._score_batch = original
    assert not calls and np.array_equal(first, again)


def test_lpips_of_an_image_with_itself_is_zero_and_batching_does_not_matter():
    metric = LPIPSMetric.random(seed=0)
    np.testing.assert_array_equal(metric.score(IMAGES, IMAGES), np.zeros(8))
    shuffled = IMAGES[::-1]
    batch = metric.score(IMAGES, shuffled)
    singles = np.concatenate([metric.score([a], [b]) for a, b in zip(IMAGES, shuffled)])
    assert (batch > 0).all()
    np.testing.assert_allclose(batch, singles, atol=1e-6)
    with pytest.raises(ValueError, match="one size"):
        metric.score([IMAGES[0]], [IMAGES[0][:32]])


def test_lpips_loads_a_trunk_file_with_weights_only(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    trunk = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), trunk)
    metric = LPIPSMetric.load(trunk=str(trunk))
    assert metric.score(IMAGES[:2], IMAGES[:2]).tolist() == [0.0, 0.0]
    assert metric.identity()["trunk_sha256"] != "random-init"


def test_frechet_distance_matches_the_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    s1, s2 = rng.uniform(0.5, 2, 5), rng.uniform(0.5, 2, 5)
    want = ((mu1 - mu2) ** 2).sum() + (s1 + s2 - 2 * np.sqrt(s1 * s2)).sum()
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(want, rel=1e-9)


def test_fid_and_kid_of_a_set_with_itself_are_about_zero_and_shifts_are_seen():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(400, 8))
    assert abs(fid_from_features(a, a)) < 1e-6
    kid_mean, _ = kid_from_features(a, a.copy(), subsets=20, subset_size=200)
    assert abs(kid_mean) < 0.05
    b = a + 1.0
    assert fid_from_features(a, b) == pytest.approx(8.0, rel=1e-6)     # mean shift of 1 in 8 dimensions
    assert kid_from_features(a, b, subsets=20, subset_size=200)[0] > 0.1


def test_fid_shift_warns_below_2048_images():
    class Features:
        def __call__(self, images):
            return np.stack([np.asarray(i, np.float64).reshape(-1)[:16] for i in images])

        def identity(self):
            return {"extractor": "first 16 pixels (test)"}

    result = fid_shift(IMAGES, IMAGES, Features(), kid_subsets=5)
    # 8 images, 16 features: a singular covariance, where sqrtm is accurate only to ~1e-3 of a trace ~1e5
    assert abs(result["fid"]) < 1e-2 and "rank-deficient" in result["warning"]
    assert result["features"] == {"extractor": "first 16 pixels (test)"}


@pytest.mark.parametrize("name, needle", [
    ("clip_t", "SINKBENCH_CLIP_WEIGHTS"), ("lpips", "alexnet-owt-7be5be79.pth"),
    ("fid", "pt_inception-2015-12-05-6726825d.pth"), ("hps_v2", "HPS_v2.1_compressed.pt.*xswu/HPSv2"),
    ("image_reward", "ImageReward.pt.*THUDM/ImageReward"), ("aesthetics", "sac\\+logos\\+ava1-l14-linearMSE.pth"), ("kid", "pt_inception"), ("vqa_blip2", "hf download Salesforce/blip2-opt-2.7b")])
def test_missing_weights_say_what_to_get_and_where(name, needle, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for var in ("SINKBENCH_CLIP_WEIGHTS", "SINKBENCH_LPIPS_TRUNK", "SINKBENCH_FID_INCEPTION"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(MetricUnavailable, match=needle):
        load_metric(name)


def test_vqa_score_averages_p_yes_over_questions_and_names_the_judge():
    from benchmark.metrics.vqa import VQAScore

    class Judge:   # planted: says yes with probability = mean pixel / 255
        def identity(self):
            return {"judge": "planted"}

        def p_yes(self, images, questions):
            return np.array([np.asarray(i).mean() / 255 for i in images])

    bright = np.full((8, 8, 3), 255, np.uint8)
    dark = np.zeros((8, 8, 3), np.uint8)
    metric = VQAScore(Judge(), paper_judge="GPT-4o")
    scores = metric.score([bright, dark, bright], ["a sun", ["is it night?", "is it dark?"], ["q1", "q2"]])
    np.testing.assert_allclose(scores, [1.0, 0.0, 1.0])
    assert "not a replication" in metric.identity()["note"]


def test_aesthetics_scores_images_alone_batch_invariant_and_loads_the_released_layout(tmp_path):
    from benchmark.metrics.aesthetics import Aesthetics

    metric = Aesthetics.random(seed=0)
    batch = metric.score(IMAGES)
    singles = np.concatenate([metric.score([i]) for i in IMAGES])
    assert batch.shape == (8,) and np.ptp(batch) > 0
    np.testing.assert_allclose(batch, singles, atol=1e-5)
    np.testing.assert_array_equal(batch, Aesthetics.random(seed=0).score(IMAGES))
    # the released file's keys are layers.0 .. layers.7 of this MLP; saved and loaded with weights_only
    head_file = tmp_path / "sac+logos+ava1-l14-linearMSE.pth"
    torch.save({f"layers.{k}": v for k, v in metric.head.state_dict().items()}, head_file)
    clip_file = tmp_path / "clip.pt"
    torch.save(metric.clip.model.state_dict(), clip_file)
    import open_clip

    real_clip = open_clip.create_model_and_transforms
    def vit_b_32_stand_in(name, *args, **kwargs):     # ViT-L-14 is large; same path with the small model
        return real_clip("ViT-B-32", *args, **kwargs)
    open_clip.create_model_and_transforms = vit_b_32_stand_in
    try:
        loaded = Aesthetics.load(weights=str(head_file), clip_weights=str(clip_file))
    finally:
        open_clip.create_model_and_transforms = real_clip
    np.testing.assert_allclose(loaded.score(IMAGES[:3]), batch[:3], atol=1e-5)
    assert loaded.identity()["head_sha256"] != "random-init"


def _tiny_blip2(tmp_path):
    """A random BLIP-2 (ViT + Q-Former + OPT) of the real classes, with the project's offline BPE tokenizer."""
    from transformers import Blip2Config, Blip2ForConditionalGeneration, Blip2Processor, BlipImageProcessor

    from benchmark.tiny.tokenizers import qwen_tokenizer

    tokenizer = qwen_tokenizer()
    processor = Blip2Processor(image_processor=BlipImageProcessor(size={"height": 30, "width": 30}),
                               tokenizer=tokenizer, num_query_tokens=4)
    config = Blip2Config(
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                           image_size=30, patch_size=15),
        qformer_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                            encoder_hidden_size=32, vocab_size=64),
        text_config=dict(model_type="opt", vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, ffn_dim=37,
                         num_attention_heads=4, max_position_embeddings=128, word_embed_proj_dim=32,
                         pad_token_id=tokenizer.pad_token_id),
        num_query_tokens=4, image_token_index=tokenizer.convert_tokens_to_ids("<image>"))
    torch.manual_seed(0)
    directory = tmp_path / "tiny-blip2"
    Blip2ForConditionalGeneration(config).save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def test_blip2_judge_p_yes_is_batch_invariant_across_question_lengths(tmp_path):
    """Questions of different lengths are right-padded together: P(yes) must be read after each question's own
    last token, so a batch equals its singles."""
    from benchmark.metrics.vqa import Blip2Judge, VQAScore

    judge = Blip2Judge.load(model_id=str(_tiny_blip2(tmp_path)))
    questions = ["is it red?", "is there a big blue triangle left of a small yellow circle?", "two?", "a square?"]
    images = IMAGES[:4]
    batch = judge.p_yes(images, questions)
    singles = np.concatenate([judge.p_yes([i], [q]) for i, q in zip(images, questions)])
    assert batch.shape == (4,) and np.all((batch > 0) & (batch < 1))
    np.testing.assert_allclose(batch, singles, atol=1e-5)
    score = VQAScore(judge)
    assert score.identity()["judge"]["model"] == str(tmp_path / "tiny-blip2")
