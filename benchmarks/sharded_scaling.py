"""Images/s of the sharded runner on 1 GPU vs N GPUs (issue 9's 2-GPU scaling target: >= 1.8x).

    python benchmarks/sharded_scaling.py --gpus 2 --out docs/benchmarks/sharded-scaling.json     # N GPUs
    python benchmarks/sharded_scaling.py --gpus 2 --device cpu --family tiny                     # mechanics

Each rank is a process of its own (CUDA_VISIBLE_DEVICES=i, RANK=i, WORLD_SIZE=N, as torchrun sets them) that
runs `benchmark.runner.run` over the same work list into one shared cache; the runner splits the work by
rank. A rank's generator is the family's full-size denoiser with random weights (benchmark/tiny/full_size.py)
running `--steps` CFG denoising steps per batch: the denoiser is what generation spends its time on. The
clock runs from the first rank's start of generation (after its model is built) to the last rank's end, so
model construction is not counted. The 1-GPU run uses a fresh cache.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class DenoiserGenerator:
    """The runner's BatchGenerator over a random-weight denoiser: `steps` CFG forwards per batch."""

    def __init__(self, family: str, device: str, steps: int, latent: int, batch: int):
        import torch

        self.torch, self.device, self.steps, self.latent, self.max_batch = torch, device, steps, latent, batch
        self.family = family
        if family == "tiny":        # the mechanics on a CPU: a small SD3 transformer
            import diffusers
            self.model = diffusers.SD3Transformer2DModel(
                sample_size=latent, patch_size=2, in_channels=16, num_layers=2, attention_head_dim=16,
                num_attention_heads=2, joint_attention_dim=32, caption_projection_dim=32,
                pooled_projection_dim=32, out_channels=16, pos_embed_max_size=latent).eval()
            self.text_dim, self.pooled_dim = 32, 32
        else:
            from benchmark.tiny.full_size import full_size_denoiser
            self.model = full_size_denoiser(family, device=device, dtype=torch.bfloat16)
            self.text_dim, self.pooled_dim = 4096, 2048
        self.dtype = next(self.model.parameters()).dtype

    def identity(self):
        return {"benchmark": "sharded_scaling", "family": self.family, "steps": self.steps, "latent": self.latent}

    def generate(self, items):
        torch = self.torch
        rows = 2 * len(items)                 # CFG: conditional and unconditional rows
        g = torch.Generator(device=self.device).manual_seed(items[0].seed)
        x = torch.randn(rows, 16, self.latent, self.latent, device=self.device, generator=g, dtype=self.dtype)
        text = torch.randn(rows, 333, self.text_dim, device=self.device, generator=g, dtype=self.dtype)
        pooled = torch.randn(rows, self.pooled_dim, device=self.device, generator=g, dtype=self.dtype)
        with torch.inference_mode():
            for step in range(self.steps):
                t = torch.full((rows,), 1000.0 * (1 - step / self.steps), device=self.device, dtype=self.dtype)
                x = x - 0.01 * self.model(hidden_states=x, encoder_hidden_states=text, pooled_projections=pooled,
                                          timestep=t, return_dict=False)[0]
        pixels = x[: len(items), :3].float().clamp(-1, 1).add(1).mul(127.5).byte().permute(0, 2, 3, 1)
        return list(pixels.cpu().numpy())


def rank_main(args) -> None:
    """One rank: build the model, then time the runner over the shared work list."""
    from benchmark.cache import GenerationCache
    from benchmark.runner import WorkItem, run

    generator = DenoiserGenerator(args.family, args.device, args.steps, args.latent, args.batch)
    items = [WorkItem(f"p{i}", f"prompt {i}", i) for i in range(args.images)]
    start = time.time()
    _, stats = run(items, generator, GenerationCache(args.cache), progress=False)
    Path(args.report).write_text(json.dumps({"start": start, "end": time.time(), "generated": stats.generated}))


def timed_world(args, world: int, workdir: Path) -> dict:
    cache = workdir / f"cache-{world}"
    procs, reports = [], []
    for rank in range(world):
        report = workdir / f"rank-{world}-{rank}.json"
        reports.append(report)
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": str(world), "PYTHONPATH": str(ROOT)}
        if args.device == "cuda":
            env["CUDA_VISIBLE_DEVICES"] = str(rank)
        cmd = [sys.executable, __file__, "--rank-main", "--cache", str(cache), "--report", str(report),
               "--family", args.family, "--device", args.device, "--steps", str(args.steps),
               "--latent", str(args.latent), "--batch", str(args.batch), "--images", str(args.images)]
        procs.append(subprocess.Popen(cmd, env=env))
    codes = [p.wait() for p in procs]
    if any(codes):
        raise SystemExit(f"a rank failed (exit codes {codes})")
    done = [json.loads(r.read_text()) for r in reports]
    seconds = max(d["end"] for d in done) - min(d["start"] for d in done)
    return {"world": world, "seconds": seconds, "images": args.images, "images_per_s": args.images / seconds,
            "generated_per_rank": [d["generated"] for d in done]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpus", type=int, default=2, help="ranks of the sharded run (compared with 1)")
    parser.add_argument("--family", default="sd3", help="full-size denoiser (sd3) or 'tiny' for a CPU check")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--latent", type=int, default=128, help="latent side (128 = 1024^2 for SD3)")
    parser.add_argument("--batch", type=int, default=2, help="prompts per batch")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--out", default=None)
    parser.add_argument("--rank-main", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    parser.add_argument("--report", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rank_main:
        rank_main(args)
        return
    if args.gpus < 2:
        parser.error("--gpus must be >= 2 (the run is compared with one GPU)")
    if args.device == "cuda":
        import torch
        if torch.cuda.device_count() < args.gpus:
            parser.error(f"--gpus {args.gpus} but this machine has {torch.cuda.device_count()} CUDA device(s)")
    with tempfile.TemporaryDirectory() as tmp:
        one = timed_world(args, 1, Path(tmp))
        many = timed_world(args, args.gpus, Path(tmp))
    doc = {"time": time.strftime("%Y-%m-%d %H:%M:%S"), "family": args.family, "device": args.device,
           "steps": args.steps, "latent": args.latent, "batch": args.batch, "one": one, "sharded": many,
           "speedup": many["images_per_s"] / one["images_per_s"], "target": 1.8}
    if args.device == "cuda":
        import torch
        doc["gpu"] = torch.cuda.get_device_name(0)
    print(json.dumps(doc, indent=2))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
