"""Train the organism's domain CLIP (CLIP-T on the shapes domain): an open_clip CLIP trained contrastively on
the procedural captioned images, saved as an open_clip directory (open_clip_config.json +
open_clip_model.safetensors) that `open_clip.create_model_and_transforms("local-dir:<dir>")` loads, so CLIP-T
scores the organism through the same ClipScore code path as ViT-B-32 on real models.

    python models/organism/train_clip.py --out models/organism/clip            # one GPU, a few minutes

Captions repeat (the domain has ~130 distinct ones, some of equal meaning: "a circle and a square" = "a square
and a circle"), so the contrastive targets are multi-positive: every pair in the batch whose captions have the
same meaning is a positive. Images get mild blur and noise so that the
model also scores imperfect generated images. Writes training.json with the loss curve and the held-out
retrieval accuracy (top-1 among same-tag distractor captions false of the image) per tag.

Position scenes are often described truly by two captions ("a circle left of a square" and "a circle above a
square"): --truth-positives counts both as positives, and --same-tag-weight adds a loss against every caption of
the image's tag (relation- and order-swapped hard negatives). The stored CLIP is stage 3 with both.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from dataclasses import replace  # noqa: E402

from benchmark.organism.dataset import RELATIONS, TAGS, make_sample, meaning, relation_holds  # noqa: E402
from benchmark.tiny.tokenizers import clip_tokenizer  # noqa: E402

CONTEXT_LENGTH = 32
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
MODEL_CFG = {
    "embed_dim": 128,
    "vision_cfg": {"image_size": 32, "patch_size": 4, "width": 192, "layers": 6, "head_width": 32, "mlp_ratio": 4.0},
    # the organism's offline CLIP BPE tokenizer, saved beside the weights (open_clip's local-dir HF path);
    # pooled at the first <|endoftext|> (id 1)
    "text_cfg": {"context_length": CONTEXT_LENGTH, "vocab_size": None, "width": 128, "heads": 4, "layers": 4,
                 "hf_tokenizer_name": "local-dir", "pool_type": "eos", "eos_id": 1, "pad_id": 1},
}
PREPROCESS_CFG = {"mean": list(OPENAI_MEAN), "std": list(OPENAI_STD), "interpolation": "bicubic",
                  "resize_mode": "shortest"}


def pixels(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> normalised float (N, 3, H, W), as open_clip's eval transform at the native size."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    return (x - torch.tensor(OPENAI_MEAN)[:, None, None]) / torch.tensor(OPENAI_STD)[:, None, None]


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Blend towards a 3x3 blur by a random amount and add a little noise (generated images are soft)."""
    amount = torch.rand(x.shape[0], 1, 1, 1, generator=g).to(x.device)
    blurred = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    noise = torch.randn(x.shape, generator=g).to(x.device) * 0.05
    return x + amount * (blurred - x) + noise


def true_meanings(sample) -> frozenset:
    """Every caption meaning the image satisfies. Position scenes constrain one axis only (margin 4 px) and
    place the other freely, so about 3 in 4 also satisfy a relation on the other axis by the detector's rule
    (relation_holds, margin 2): "a circle left of a square" and "a circle above a square" can both be true."""
    if sample.relation is None:
        return frozenset([meaning(sample)])
    a, b = sample.objects[0].center, sample.objects[1].center
    return frozenset(meaning(replace(sample, relation=(0, rel, 1))) for rel in RELATIONS if relation_holds(a, b, rel))


def retrieval_accuracy(model, tokenizer, seed: int, per_tag: int, distractors: int, device: str) -> dict:
    """Top-1 caption retrieval per tag on held-out images: the true caption against up to `distractors`
    other captions of the same tag that are false of the image ("top1"), and, the rule of v1/v2, against
    captions of a different meaning, true of the image or not ("top1_different_meaning")."""
    # one generator per rule, so the v1/v2 rule draws the same distractors as before
    rngs = {"different_meaning": np.random.default_rng(seed), "false": np.random.default_rng(seed + 1)}
    result = {}
    for tag in TAGS:
        meanings = {s.caption: meaning(s) for s in (make_sample(seed + 7, i, tag=tag) for i in range(2000))}
        pool = sorted(meanings)
        held = [make_sample(seed, i, tag=tag) for i in range(per_tag)]
        with torch.no_grad():
            image_features = F.normalize(model.encode_image(pixels(np.stack([s.image for s in held])).to(device)), dim=-1)
            text_features = F.normalize(model.encode_text(tokenizer(pool).to(device)), dim=-1)
        sims = (image_features @ text_features.T).cpu().numpy()
        scores = {}
        for rule in ("different_meaning", "false"):
            hits, n_candidates = 0, []
            for k, sample in enumerate(held):
                true = pool.index(sample.caption)
                wrong = {meaning(sample)} if rule == "different_meaning" else true_meanings(sample)
                others = [j for j in range(len(pool)) if meanings[pool[j]] not in wrong]
                chosen = rngs[rule].choice(others, size=min(distractors, len(others)), replace=False)
                hits += sims[k, true] > sims[k, chosen].max()
                n_candidates.append(1 + len(chosen))
            scores[rule] = (hits / per_tag, max(n_candidates))
        result[tag] = {"top1": scores["false"][0], "candidates": scores["false"][1],
                       "top1_different_meaning": scores["different_meaning"][0]}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--train-size", type=int, default=60000)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-per-tag", type=int, default=500)
    parser.add_argument("--distractors", type=int, default=15)
    parser.add_argument("--init-from", default=None, help="continue from the CLIP stored in this directory")
    parser.add_argument("--evaluate-only", action="store_true", help="score the CLIP already in --out")
    parser.add_argument("--truth-positives", action="store_true",
                        help="count as positives all captions true of an image (true_meanings), not only those "
                             "of its own caption's meaning (v1/v2); matters for position scenes")
    parser.add_argument("--same-tag-weight", type=float, default=0.0,
                        help="add this weight times a loss of each image against every distinct training caption "
                             "of its tag (hard negatives: relation- and order-swapped captions); v1/v2: 0")
    args = parser.parse_args()
    import open_clip
    from safetensors.torch import save_file

    torch.manual_seed(args.seed)
    torch.backends.cuda.matmul.allow_tf32 = True
    device = "cuda" if torch.cuda.is_available() else "cpu"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.evaluate_only:
        loaded, _, _ = open_clip.create_model_and_transforms(f"local-dir:{out}", device=device)
        print(json.dumps(retrieval_accuracy(loaded.eval(), open_clip.get_tokenizer(f"local-dir:{out}"),
                                            args.seed + 12345, args.eval_per_tag, args.distractors, device)))
        return
    t0 = time.time()
    items = [make_sample(args.seed, i) for i in range(args.train_size)]
    images = pixels(np.stack([s.image for s in items])).to(device)
    captions = [s.caption for s in items]
    distinct = sorted(set(captions))
    caption_id = torch.tensor([distinct.index(c) for c in captions], device=device)
    meanings = sorted({meaning(s) for s in items}, key=repr)
    meaning_id = torch.tensor([meanings.index(meaning(s)) for s in items], device=device)
    # (item, distinct caption): the caption is true of the item's image / has the item's tag
    first = {}
    for s in items:
        first.setdefault(s.caption, s)
    caption_meaning = np.array([meanings.index(meaning(first[c])) for c in distinct])
    truth = np.zeros((len(items), len(distinct)), bool)
    for i, s in enumerate(items):
        true_ids = [meanings.index(m) for m in true_meanings(s) if m in meanings] if args.truth_positives else \
            [meanings.index(meaning(s))]
        truth[i] = np.isin(caption_meaning, true_ids)
    truth = torch.from_numpy(truth).to(device)
    caption_tag = np.array([TAGS.index(first[c].tag) for c in distinct])
    same_tag = torch.from_numpy(np.array([TAGS.index(s.tag) for s in items])[:, None] == caption_tag[None, :]).to(device)
    hf_tokenizer = clip_tokenizer(model_max_length=CONTEXT_LENGTH)
    MODEL_CFG["text_cfg"]["vocab_size"] = len(hf_tokenizer)
    (out / "open_clip_config.json").write_text(json.dumps({"model_cfg": MODEL_CFG, "preprocess_cfg": PREPROCESS_CFG},
                                                          indent=1) + "\n")
    hf_tokenizer.save_pretrained(out)
    tokenizer = open_clip.get_tokenizer(f"local-dir:{out}")
    tokens = tokenizer(distinct).to(device)

    model = open_clip.CLIP(**MODEL_CFG)
    if args.init_from:
        from safetensors.torch import load_file

        model.load_state_dict({k: v.float() for k, v in load_file(f"{args.init_from}/open_clip_model.safetensors").items()})
    model = model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.1, fused=device == "cuda")
    warmup = 200
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (s + 1) / warmup if s < warmup else
                                              0.5 * (1 + math.cos(math.pi * (s - warmup) / max(args.steps - warmup, 1))))
    g = torch.Generator().manual_seed(args.seed + 1)
    history = []
    for step in range(args.steps):
        idx = torch.randint(0, len(items), (args.batch,), generator=g).to(device)
        x = augment(images[idx], g)
        image_features = F.normalize(model.encode_image(x), dim=-1)
        text_features = F.normalize(model.encode_text(tokens[caption_id[idx]]), dim=-1)
        logits = model.logit_scale.exp().clamp(max=100) * image_features @ text_features.T
        if args.truth_positives:
            positives = truth[idx][:, caption_id[idx]].float()          # (image, text) of the batch
            targets, targets_t = (positives / positives.sum(1, keepdim=True),
                                  positives.T / positives.T.sum(1, keepdim=True))
        else:
            same = meaning_id[idx]
            positives = (same[:, None] == same[None, :]).float()
            targets = targets_t = positives / positives.sum(1, keepdim=True)
        loss = 0.5 * (torch.sum(-targets * F.log_softmax(logits, 1), 1).mean()
                      + torch.sum(-targets_t * F.log_softmax(logits.T, 1), 1).mean())
        if args.same_tag_weight:
            # every image against all its tag's captions, as the retrieval evaluation asks
            all_text = F.normalize(model.encode_text(tokens), dim=-1)
            tag_logits = (model.logit_scale.exp().clamp(max=100) * image_features @ all_text.T
                          ).masked_fill(~same_tag[idx], float("-inf"))
            tag_pos = truth[idx].float()
            tag_loss = torch.sum(-(tag_pos / tag_pos.sum(1, keepdim=True))
                                 * F.log_softmax(tag_logits, 1).masked_fill(~same_tag[idx], 0), 1).mean()
            loss = loss + args.same_tag_weight * tag_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 200 == 0 or step == args.steps - 1:
            history.append({"step": step, "loss": loss.item(), "seconds": round(time.time() - t0, 1)})
            print(f"clip step {step} loss {loss.item():.4f} ({time.time() - t0:.0f} s)", flush=True)
    model.eval()
    # stored in fp16 (a few MB); evaluated below as loaded back, so the scores are those of the stored weights
    save_file({k: v.detach().cpu().half().contiguous() for k, v in model.state_dict().items()},
              str(out / "open_clip_model.safetensors"))
    # evaluate as stored: loaded back through open_clip's local-dir path, on held-out seeds
    loaded, _, _ = open_clip.create_model_and_transforms(f"local-dir:{out}", device=device)
    loaded.eval()
    scores = retrieval_accuracy(loaded, open_clip.get_tokenizer(f"local-dir:{out}"), args.seed + 12345,
                                args.eval_per_tag, args.distractors, device)
    print("retrieval top-1:", json.dumps(scores), flush=True)
    (out / "training.json").write_text(json.dumps({
        "args": vars(args), "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "torch": torch.__version__, "open_clip": open_clip.__version__,
        "parameters": sum(p.numel() for p in model.parameters()), "seconds": round(time.time() - t0, 1),
        "retrieval_top1": scores,
        "eval": f"{args.eval_per_tag} held-out images per tag (seed {args.seed + 12345}); true caption vs up to "
                f"{args.distractors} distinct same-tag captions",
        "history": history}, indent=1) + "\n")


if __name__ == "__main__":
    main()
