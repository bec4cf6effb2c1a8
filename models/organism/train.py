"""Train SinkBench's model organisms on the procedural shapes domain (runs on one GPU, a few minutes).

    python models/organism/train.py --arch rope --out models/organism/rope      # FluxPipeline organism
    python models/organism/train.py --arch abspe --out models/organism/abspe    # StableDiffusion3Pipeline organism

The committed v3 organisms are v1 continued with --init-from: three stages with --lr 3e-4 and --tag-weights (a
multi-object-heavy mix, v2), then two (abspe) or three (rope) with --timestep-shift, --stream-seed and the
auxiliary word-order losses on the T5 encoder (--text-order-weight, --text-context-weight) that let the denoisers
learn spatial relations: models/organism/README.md has the exact commands and step counts.

Each organism is a complete diffusers pipeline of the real classes, so it loads through the same adapter as a
real checkpoint and every probe and intervention applies unchanged: a small AutoencoderKL (2x, 4 latent
channels, trained first on the domain), CLIP and T5 text encoders with SinkBench's offline tokenizers (trained
jointly with the denoiser; T5 pads with <pad> after </s> to max_sequence_length, as in FLUX), and a
FluxTransformer2DModel (RoPE, joint attention, double + single stream) or an SD3Transformer2DModel (absolute
position embedding). Training is rectified flow (x_t = (1 - t) x_0 + t noise, target noise - x_0) with 10% empty
captions for classifier-free guidance. Deterministic from --seed. Writes the pipeline, training.json (config,
loss curve, detector scores of generated images per tag) and samples.png.
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

from benchmark.organism.dataset import TAGS, make_sample  # noqa: E402
from benchmark.organism.detector import accuracy_by_tag  # noqa: E402
from benchmark.tiny.components import clip_text_config, t5_encoder  # noqa: E402
from benchmark.tiny.tokenizers import clip_tokenizer, t5_tokenizer  # noqa: E402

MAX_SEQUENCE_LENGTH = 32
CONTEXT_OFFSETS = (-4, -3, -2, -1, 1, 2, 3, 4)     # neighbours that --text-context-weight predicts
LATENT_CHANNELS = 4


def dataset(seed: int, n: int, start: int = 0):
    items = [make_sample(seed, i) for i in range(start, start + n)]
    images = torch.from_numpy(np.stack([s.image for s in items])).permute(0, 3, 1, 2).float() / 127.5 - 1
    return items, images, [s.caption for s in items]


def build_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                         up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(32, 64), layers_per_block=1,
                         latent_channels=LATENT_CHANNELS, norm_num_groups=32, sample_size=32,
                         use_quant_conv=False, use_post_quant_conv=False)


def train_vae(images, device, steps: int, batch: int, log):
    vae = build_vae().to(device).train()
    opt = torch.optim.AdamW(vae.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(1)
    for step in range(steps):
        x = images[torch.randint(0, len(images), (batch,), generator=g)].to(device)
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample()).sample
        kl = posterior.kl().mean() / x[0].numel()
        loss = F.mse_loss(recon, x) + 1e-4 * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 200 == 0 or step == steps - 1:
            log("vae", step, loss.item())
    vae.eval()
    with torch.no_grad():
        z = torch.cat([vae.encode(images[i:i + 512].to(device)).latent_dist.mode() for i in range(0, min(4096, len(images)), 512)])
    vae.register_to_config(scaling_factor=float(1.0 / z.std()), shift_factor=float(z.mean()))
    return vae


def build_pipeline(arch: str, vae):
    from diffusers import (FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel,
                           SD3Transformer2DModel, StableDiffusion3Pipeline)
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=False)
    t5_tok = t5_tokenizer(model_max_length=512)
    t5 = t5_encoder(t5_tok, d_model=128)
    if arch == "rope":
        clip_tok = clip_tokenizer()
        clip = CLIPTextModel(clip_text_config(clip_tok, 64)).eval()
        transformer = FluxTransformer2DModel(
            patch_size=1, in_channels=4 * LATENT_CHANNELS, num_layers=4, num_single_layers=6, attention_head_dim=32,
            num_attention_heads=4, joint_attention_dim=128, pooled_projection_dim=64, guidance_embeds=False,
            axes_dims_rope=(8, 12, 12))
        return FluxPipeline(scheduler=scheduler, vae=vae, text_encoder=clip, tokenizer=clip_tok, text_encoder_2=t5,
                            tokenizer_2=t5_tok, transformer=transformer)
    clip_tok, clip_tok_2 = clip_tokenizer(), clip_tokenizer(pad_token="!")
    clip = CLIPTextModelWithProjection(clip_text_config(clip_tok, 32)).eval()
    clip_2 = CLIPTextModelWithProjection(clip_text_config(clip_tok_2, 32, act="gelu")).eval()
    transformer = SD3Transformer2DModel(
        sample_size=16, patch_size=2, in_channels=LATENT_CHANNELS, out_channels=LATENT_CHANNELS, num_layers=8,
        attention_head_dim=32, num_attention_heads=4, joint_attention_dim=128, caption_projection_dim=128,
        pooled_projection_dim=64, pos_embed_max_size=16, qk_norm=None)
    return StableDiffusion3Pipeline(transformer=transformer, scheduler=scheduler, vae=vae, text_encoder=clip,
                                    tokenizer=clip_tok, text_encoder_2=clip_2, tokenizer_2=clip_tok_2,
                                    text_encoder_3=t5, tokenizer_3=t5_tok)


class CachedTokenizer:
    """Training-time stand-in for a pipeline's tokenizer: each distinct caption is tokenized once (the domain has
    about 130), and a batch is assembled from those rows, right-padded with the pad id where the padding is
    "longest". The result equals the tokenizer's own for list inputs with return_tensors="pt" (checked at
    start-up by check_token_cache); anything else goes to the tokenizer. Saves the per-step CPU cost of tokenizing
    1024 captions several times (pipelines tokenize twice per encoder)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.cache: dict = {}

    def __getattr__(self, name):
        return getattr(self.tokenizer, name)

    def __call__(self, text, *args, **kwargs):
        if args or not isinstance(text, list) or kwargs.get("return_tensors") != "pt" or \
                self.tokenizer.padding_side != "right":
            return self.tokenizer(text, *args, **kwargs)
        key = tuple(sorted((k, repr(v)) for k, v in kwargs.items()))
        rows = []
        for caption in text:
            row = self.cache.get((caption, key))
            if row is None:
                row = self.cache[(caption, key)] = self.tokenizer([caption], **kwargs)
            rows.append(row)
        width = max(r["input_ids"].shape[1] for r in rows)
        out = {}
        for name in rows[0].keys():
            pad = self.tokenizer.pad_token_id if name == "input_ids" else 0
            out[name] = torch.cat([F.pad(r[name], (0, width - r[name].shape[1]), value=pad) for r in rows])
        from transformers import BatchEncoding

        return BatchEncoding(out)


TOKENIZER_NAMES = ("tokenizer", "tokenizer_2", "tokenizer_3")


def cache_tokenizers(pipe, on: bool) -> None:
    """Swap the pipeline's tokenizers for CachedTokenizer (on) or back (off), without touching its config."""
    for name in TOKENIZER_NAMES:
        tok = getattr(pipe, name, None)
        if tok is None:
            continue
        if on and not isinstance(tok, CachedTokenizer):
            object.__setattr__(pipe, name, CachedTokenizer(tok))
        elif not on and isinstance(tok, CachedTokenizer):
            object.__setattr__(pipe, name, tok.tokenizer)


def check_token_cache(pipe, captions) -> None:
    """The cached tokenizers give exactly the tokenizers' own ids and masks, in the calls the pipelines make."""
    for name in TOKENIZER_NAMES:
        tok = getattr(pipe, name, None)
        if not isinstance(tok, CachedTokenizer):
            continue
        for kwargs in (dict(padding="max_length", max_length=77, truncation=True, return_tensors="pt"),
                       dict(padding="max_length", max_length=MAX_SEQUENCE_LENGTH, truncation=True,
                            return_tensors="pt"),
                       dict(padding="longest", return_tensors="pt")):
            for batch in (captions, captions[:7], captions[-3:]):
                got, want = tok(batch, **kwargs), tok.tokenizer(batch, **kwargs)
                assert set(got.keys()) == set(want.keys()), (name, got.keys(), want.keys())
                for key in want:
                    assert torch.equal(got[key], want[key]), (name, kwargs, key)


def encode(pipe, arch: str, captions, device):
    if arch == "rope":
        embeds, pooled, text_ids = pipe.encode_prompt(captions, None, device=device,
                                                      max_sequence_length=MAX_SEQUENCE_LENGTH)
        return embeds, pooled, text_ids
    embeds, _, pooled, _ = pipe.encode_prompt(captions, None, None, device=device, do_classifier_free_guidance=False,
                                              max_sequence_length=MAX_SEQUENCE_LENGTH)
    return embeds, pooled, None


def denoise(pipe, arch: str, latents, t, embeds, pooled, text_ids):
    b, c, h, w = latents.shape
    if arch == "rope":
        packed = pipe._pack_latents(latents, b, c, h, w)
        image_ids = pipe._prepare_latent_image_ids(b, h // 2, w // 2, latents.device, latents.dtype)
        out = pipe.transformer(hidden_states=packed, timestep=t, pooled_projections=pooled,
                               encoder_hidden_states=embeds, txt_ids=text_ids, img_ids=image_ids,
                               return_dict=False)[0]
        return pipe._unpack_latents(out, h * pipe.vae_scale_factor, w * pipe.vae_scale_factor, pipe.vae_scale_factor)
    return pipe.transformer(hidden_states=latents, timestep=t * 1000, encoder_hidden_states=embeds,
                            pooled_projections=pooled, return_dict=False)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=["rope", "abspe"], required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, default=4000,
                        help="denoiser steps (ignored with --time-budget, which records the steps it chose)")
    parser.add_argument("--time-budget", type=float, default=None,
                        help="seconds for the denoiser loop: the step count is set from the time of steps 200-230")
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--vae-steps", type=int, default=1500)
    parser.add_argument("--init-from", default=None,
                        help="continue training the organism stored in this directory (its VAE is kept as is)")
    parser.add_argument("--train-size", type=int, default=40000)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-per-tag", type=int, default=64)
    parser.add_argument("--tag-weights", default=None,
                        help="sample training images by tag with these relative weights, e.g. "
                             "'single_object=1.5,colors=1,two_object=2,counting=2,position=2,color_attr=2' "
                             "(tags left out weigh 1); default: uniform over the training set (as v1)")
    parser.add_argument("--no-token-cache", action="store_true",
                        help="tokenize every training batch with the pipeline's tokenizers (v1 did; the default "
                             "tokenizes each distinct caption once, checked equal at the start)")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="safety stop: end the denoiser loop early once this many seconds have passed since "
                             "the start (recorded as stopped_early_at_step; the schedule is then not finished)")
    parser.add_argument("--stream-seed", type=int, default=None,
                        help="seed of the batch, caption-dropout, timestep and noise stream (default --seed + 1, as "
                             "v1/v2); --seed still selects the training images and the held-out evaluation set")
    parser.add_argument("--timestep-shift", type=float, default=1.0,
                        help="train on t = s u / (1 + (s - 1) u), u uniform: s > 1 samples more high-noise steps, "
                             "where the layout is decided (SD3/FLUX's shift); 1 = uniform t (v1/v2)")
    parser.add_argument("--text-order-weight", type=float, default=0.0,
                        help="weight of an auxiliary loss on the T5 encoder's output: a linear head (discarded) "
                             "predicts each token's index up to </s>, so that token states carry word order (FLUX "
                             "gives every text token position 0, so order reaches the denoiser only through "
                             "T5); 0 = off (v1/v2)")
    parser.add_argument("--text-context-weight", type=float, default=0.0,
                        help="weight of an auxiliary loss on the T5 encoder's output: a linear head (discarded) "
                             "predicts the tokens at offsets -4..4 of each token up to </s>, so that a word's state "
                             "carries its neighbours (which relation follows a shape, which colour precedes it); "
                             "0 = off (v1/v2)")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.backends.cuda.matmul.allow_tf32 = True     # fp32 weights, TF32 matmuls (bf16 autocast crashed in backward)
    torch.backends.cudnn.allow_tf32 = True
    device = "cuda" if torch.cuda.is_available() else "cpu"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    history = []
    t0 = time.time()

    def log(phase, step, loss):
        history.append({"phase": phase, "step": step, "loss": loss, "seconds": round(time.time() - t0, 1)})
        print(f"{phase} step {step} loss {loss:.4f} ({time.time() - t0:.0f} s)", flush=True)

    items, images, captions = dataset(args.seed, args.train_size)
    sample_probs = None
    if args.tag_weights:
        weights = {tag: 1.0 for tag in TAGS}
        for part in args.tag_weights.split(","):
            tag, _, value = part.partition("=")
            if tag.strip() not in weights:
                raise SystemExit(f"--tag-weights: unknown tag {tag!r}; known: {TAGS}")
            weights[tag.strip()] = float(value)
        sample_probs = torch.tensor([weights[s.tag] for s in items], dtype=torch.float64)
        sample_probs /= sample_probs.sum()
        share = {tag: round(float(sample_probs[[i for i, s in enumerate(items) if s.tag == tag]].sum()), 4)
                 for tag in TAGS}
        print("training mix by tag:", json.dumps(share), flush=True)
    parent = None
    if args.init_from:
        from diffusers import FluxPipeline, StableDiffusion3Pipeline

        cls = FluxPipeline if args.arch == "rope" else StableDiffusion3Pipeline
        pipe = cls.from_pretrained(args.init_from, torch_dtype=torch.float32).to(device)
        parent_log = Path(args.init_from) / "training.json"
        parent = json.loads(parent_log.read_text()) if parent_log.is_file() else {"note": "no training.json"}
    else:
        vae = train_vae(images, device, args.vae_steps, 128, log)
        pipe = build_pipeline(args.arch, vae.cpu()).to(device)
    pipe.vae.requires_grad_(False)
    if not args.no_token_cache:
        cache_tokenizers(pipe, True)
        check_token_cache(pipe, [captions[i] for i in range(min(512, len(captions)))] + [""])
    with torch.no_grad():
        latents_all = torch.cat([(pipe.vae.encode(images[i:i + 1024].to(device)).latent_dist.mode()
                                  - pipe.vae.config.shift_factor) * pipe.vae.config.scaling_factor
                                 for i in range(0, len(images), 1024)])
    modules = [pipe.transformer, pipe.text_encoder, pipe.text_encoder_2] + \
              ([pipe.text_encoder_3] if args.arch == "abspe" else [])
    t5, t5_tok = (pipe.text_encoder_2, pipe.tokenizer_2) if args.arch == "rope" else \
        (pipe.text_encoder_3, pipe.tokenizer_3)
    order_head = context_head = None
    if args.text_order_weight:
        order_head = torch.nn.Linear(t5.config.d_model, MAX_SEQUENCE_LENGTH).to(device)
    if args.text_context_weight:
        context_head = torch.nn.Linear(t5.config.d_model, len(CONTEXT_OFFSETS) * t5.config.vocab_size).to(device)
    params = [p for m in modules for p in m.parameters()] + \
        [p for h in (order_head, context_head) if h is not None for p in h.parameters()]
    for m in modules:
        m.train()
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0, fused=device == "cuda")
    warmup = 200
    total = {"steps": args.steps}

    def lr_factor(s: int) -> float:
        # linear warmup, then cosine to 0; the first `warmup` steps do not depend on the total, so a run with
        # --time-budget is reproduced exactly by --steps <the steps it recorded>
        if s < warmup:
            return (s + 1) / warmup
        span = max(total["steps"] - warmup, 1)
        return 0.5 * (1 + math.cos(math.pi * min(s - warmup, span) / span))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    g = torch.Generator().manual_seed(args.seed + 1 if args.stream_seed is None else args.stream_seed)
    if args.time_budget:
        total["steps"] = 10 ** 9
    loop_start = time.time()
    step = -1
    stopped_early = None
    while step + 1 < total["steps"]:
        step += 1
        if args.max_seconds and time.time() - t0 > args.max_seconds:
            stopped_early = step
            print(f"--max-seconds {args.max_seconds}: stopping at step {step} of {total['steps']}", flush=True)
            step -= 1
            break
        if args.time_budget and step == warmup:
            torch.cuda.synchronize() if device == "cuda" else None
            timed_from = time.time()
        if args.time_budget and step == warmup + 30:
            torch.cuda.synchronize() if device == "cuda" else None
            per_step = (time.time() - timed_from) / 30
            total["steps"] = max(step + 1, int((args.time_budget - (time.time() - loop_start)) / per_step) + step)
            print(f"{per_step:.3f} s/step: training {total['steps']} steps", flush=True)
        if sample_probs is None:
            idx = torch.randint(0, len(images), (args.batch,), generator=g)
        else:
            idx = torch.multinomial(sample_probs, args.batch, replacement=True, generator=g)
        x0 = latents_all[idx.to(device)]
        batch_captions = ["" if torch.rand((), generator=g) < 0.1 else captions[i] for i in idx.tolist()]
        embeds, pooled, text_ids = encode(pipe, args.arch, batch_captions, device)
        t = torch.rand(args.batch, generator=g).to(device)
        if args.timestep_shift != 1.0:
            t = args.timestep_shift * t / (1 + (args.timestep_shift - 1) * t)
        noise = torch.randn(x0.shape, generator=g).to(device)
        xt = (1 - t[:, None, None, None]) * x0 + t[:, None, None, None] * noise
        pred = denoise(pipe, args.arch, xt, t, embeds, pooled, text_ids)
        loss = F.mse_loss(pred.float(), (noise - x0).float())
        order_loss = context_loss = None
        loss_total = loss
        if order_head is not None or context_head is not None:
            # the T5 states as the pipeline computes them (no attention mask), graded only up to </s>
            ids = t5_tok(batch_captions, padding="max_length", max_length=MAX_SEQUENCE_LENGTH, truncation=True,
                         return_tensors="pt").input_ids.to(device)
            states = (embeds if args.arch == "rope" else embeds[:, -MAX_SEQUENCE_LENGTH:]).float()
            keep = ids != t5_tok.pad_token_id
        if order_head is not None:
            target = torch.arange(MAX_SEQUENCE_LENGTH, device=device).expand_as(ids)
            order_loss = F.cross_entropy(order_head(states)[keep], target[keep])
            loss_total = loss_total + args.text_order_weight * order_loss
        if context_head is not None:
            logits = context_head(states).unflatten(-1, (len(CONTEXT_OFFSETS), -1))
            total_ce, count = 0.0, 0
            for j, k in enumerate(CONTEXT_OFFSETS):
                lo, hi = max(0, -k), MAX_SEQUENCE_LENGTH - max(0, k)      # sources whose neighbour exists
                m = keep[:, lo:hi]
                total_ce = total_ce + F.cross_entropy(logits[:, lo:hi, j][m], ids[:, lo + k:hi + k][m], reduction="sum")
                count += int(m.sum())
            context_loss = total_ce / count
            loss_total = loss_total + args.text_context_weight * context_loss
        opt.zero_grad(set_to_none=True)
        loss_total.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if step % 200 == 0 or step == total["steps"] - 1:
            log("denoiser", step, loss.item())
            if order_loss is not None:
                log("text_order", step, order_loss.item())
            if context_loss is not None:
                log("text_context", step, context_loss.item())
    if stopped_early is not None and step >= 0 and history[-1]["step"] != step:
        log("denoiser", step, loss.item())
    args.steps = total["steps"]
    for m in modules:
        m.eval()
    # stored in fp16 (a few MB per organism); evaluated below as loaded back from disk, so the scores are
    # those of the committed weights
    cache_tokenizers(pipe, False)
    pipe.to("cpu", torch.float16).save_pretrained(out, safe_serialization=True)
    scores, generated = evaluate(out, args.arch, args.eval_per_tag, args.seed, device)
    per_row = min(8, args.eval_per_tag)
    grid = np.concatenate([np.concatenate(generated[r * args.eval_per_tag:r * args.eval_per_tag + per_row], axis=1)
                           for r in range(len(TAGS))], axis=0)      # one row per tag, in TAGS order
    from PIL import Image

    Image.fromarray(grid).resize((grid.shape[1] * 4, grid.shape[0] * 4), Image.NEAREST).save(out / "samples.png")
    n_params = {name: sum(p.numel() for p in m.parameters()) for name, m in
                (("transformer", pipe.transformer), ("text_encoder", pipe.text_encoder),
                 ("text_encoder_2", pipe.text_encoder_2), ("text_encoder_3", getattr(pipe, "text_encoder_3", None)),
                 ("vae", pipe.vae)) if m is not None}
    (out / "training.json").write_text(json.dumps({
        "arch": args.arch, "args": vars(args), "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "torch": torch.__version__, "parameters": n_params, "seconds": round(time.time() - t0, 1),
        "generated_detector_accuracy": scores,
        "eval": f"20 steps, guidance 4.0, {args.eval_per_tag} held-out captions per tag (seed {args.seed + 999}), "
                "weights as stored (fp16) loaded back in fp32",
        "stopped_early_at_step": stopped_early, "history": history, "parent": parent}, indent=1) + "\n")


def evaluate(pipeline_dir, arch: str, per_tag: int, seed: int, device: str):
    """Generate `per_tag` held-out captions per tag (20 steps, guidance 4) with the stored pipeline and score
    them with the detector: ({tag: accuracy}, images in TAGS order)."""
    from diffusers import FluxPipeline, StableDiffusion3Pipeline

    cls = FluxPipeline if arch == "rope" else StableDiffusion3Pipeline
    pipe = cls.from_pretrained(pipeline_dir, torch_dtype=torch.float32).to(device)
    pipe.set_progress_bar_config(disable=True)
    held_out = [make_sample(seed + 999, i, tag=tag) for tag in TAGS for i in range(per_tag)]
    generated = []
    with torch.no_grad():
        for i in range(0, len(held_out), 64):
            chunk = held_out[i:i + 64]
            gens = [torch.Generator("cpu").manual_seed(1000 + i + j) for j in range(len(chunk))]
            kwargs = dict(num_inference_steps=20, height=32, width=32, max_sequence_length=MAX_SEQUENCE_LENGTH,
                          output_type="np", generator=gens)
            if arch == "rope":
                kwargs.update(true_cfg_scale=4.0, negative_prompt=[""] * len(chunk))
            else:
                kwargs.update(guidance_scale=4.0)
            images_np = pipe([s.caption for s in chunk], **kwargs).images
            generated += [np.clip(np.rint(a * 255), 0, 255).astype(np.uint8) for a in images_np]
    scores = accuracy_by_tag(held_out, generated)
    print("detector accuracy of generated images:", json.dumps(scores), flush=True)
    return scores, generated

if __name__ == "__main__":
    main()
