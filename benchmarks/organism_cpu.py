"""Load an organism and generate 64 images on the CPU, as `pytest suites/` does (issue 7 target: < 60 s).

    python benchmarks/organism_cpu.py --out docs/benchmarks/organism-cpu.json

For each organism card: seconds to load the pipeline through DiffusionAdapter, seconds to generate 64 held-out
captions (tags cycling) at the card's settings, and the detector's accuracy on them. Writes JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from benchmark.adapters import DiffusionAdapter
from benchmark.cards import load_cards
from benchmark.organism.dataset import make_sample
from benchmark.organism.detector import accuracy_by_tag
from benchmark.runner import WorkItem


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=None)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    results = {"device": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
               "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "organisms": {}}
    for card in load_cards().values():
        if not card.organism or card.kind != "t2i" or not (card.weights_path / "model_index.json").is_file():
            continue
        t0 = time.perf_counter()
        adapter = DiffusionAdapter.load(str(card.weights_path), card.settings, family=card.family,
                                        max_batch=args.batch)
        loaded = time.perf_counter() - t0
        held_out = [make_sample(10_000, i) for i in range(args.images)]
        items = [WorkItem(f"p{i}", s.caption, seed=i) for i, s in enumerate(held_out)]
        t1 = time.perf_counter()
        images = []
        for start in range(0, len(items), args.batch):
            images += adapter.generate(items[start:start + args.batch])
        generated = time.perf_counter() - t1
        results["organisms"][card.name] = {
            "load_s": round(loaded, 2), "generate_s": round(generated, 2), "images": len(images),
            "batch": args.batch, "settings": adapter.settings.to_dict(),
            "detector_accuracy": accuracy_by_tag(held_out, images)}
        print(card.name, json.dumps(results["organisms"][card.name]), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
