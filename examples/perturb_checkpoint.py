"""Make a train-free "new checkpoint" for trying checkpoint CI: copy a diffusers pipeline directory and
scale one tensor of one of its safetensors files.

    python examples/perturb_checkpoint.py models/organism/rope /tmp/rope-scaled \
        --tensor single_transformer_blocks.1.attn.norm_k.weight --scale 0.25

The copy keeps model_index.json and training.json, so SinkBench runs it under the organism's card
(`pytest suites/ --checkpoint /tmp/rope-scaled`). See docs/CHECKPOINT_CI.md.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path


def perturb(source: Path, dest: Path, tensor: str, scale: float, component: str = "transformer") -> Path:
    from safetensors.torch import load_file, save_file

    if dest.exists():
        raise FileExistsError(f"{dest} exists; remove it first")
    shutil.copytree(source, dest)
    files = sorted((dest / component).glob("*.safetensors"))
    for path in files:
        tensors = load_file(path)
        if tensor in tensors:
            tensors[tensor] = (tensors[tensor].float() * scale).to(tensors[tensor].dtype)
            save_file(tensors, path, metadata={"format": "pt"})
            return path
    shutil.rmtree(dest)
    raise KeyError(f"no tensor {tensor!r} in {component}/*.safetensors of {source}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("source", type=Path, help="a diffusers pipeline directory")
    p.add_argument("dest", type=Path, help="where the perturbed copy goes (must not exist)")
    p.add_argument("--tensor", required=True, help="tensor name, e.g. single_transformer_blocks.1.attn.norm_k.weight")
    p.add_argument("--scale", type=float, required=True, help="multiply the tensor by this")
    p.add_argument("--component", default="transformer", help="pipeline component holding the tensor")
    args = p.parse_args(argv)
    try:
        path = perturb(args.source, args.dest, args.tensor, args.scale, args.component)
    except (FileExistsError, KeyError) as exc:
        print(f"perturb_checkpoint: {exc}", file=sys.stderr)
        return 2
    print(f"{path}: {args.tensor} x {args.scale}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
