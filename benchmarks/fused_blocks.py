"""Block sizes of the fused mass passes, and what SDPA's own kernels cost, at one attention shape (CUDA).

    python benchmarks/fused_blocks.py --heads 24 --tokens 4608 --dim 128 --out fused-blocks.json

Times, per layer call (bf16, B=1): plain SDPA, the flash kernel asked for its log-sum-exp (and whether its
output is bit-identical to plain SDPA's, i.e. whether reusing its log-sum-exp can leave images unchanged), and
the row and column passes for each (queries per block, keys per block, warps, stages) tried.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmark.probe import fused
from benchmark.probe.math import attention_stats
from probe_speed import timed    # this folder's sibling script: one timing loop for both


def timed_ms(fn) -> float:
    return timed(fn, repeats=20)[0]


def cudnn_with_lse(q, k, v):
    """cuDNN's attention (SDPA's first choice on Hopper in some releases) asked for its log-sum-exp."""
    out = torch.ops.aten._scaled_dot_product_cudnn_attention(q, k, v, None, True, 0.0, False, False)
    return out[0], out[1]


def flash_with_lse(q, k, v):
    """The flash kernel SDPA dispatches to, asked for its log-sum-exp (natural log, (B, H, N) fp32)."""
    out = torch.ops.aten._scaled_dot_product_flash_attention(q, k, v, 0.0, False, False)
    return out[0], out[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--heads", type=int, default=24)
    parser.add_argument("--tokens", type=int, default=4608)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--out", default="fused-blocks.json")
    args = parser.parse_args()
    g = torch.Generator(device="cuda").manual_seed(0)
    shape = (1, args.heads, args.tokens, args.dim)
    q, k, v = (torch.randn(shape, device="cuda", generator=g, dtype=torch.bfloat16) for _ in range(3))
    scale = args.dim ** -0.5
    doc = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "shape": list(shape),
           "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    doc["sdpa_ms"] = timed_ms(lambda: F.scaled_dot_product_attention(q, k, v))
    try:
        out, lse = flash_with_lse(q, k, v)
        doc["flash_lse_ms"] = timed_ms(lambda: flash_with_lse(q, k, v))
        doc["flash_output_bit_identical_to_sdpa"] = bool(torch.equal(out, F.scaled_dot_product_attention(q, k, v)))
    except (RuntimeError, NotImplementedError) as error:
        doc["flash_lse_error"] = str(error)[:300]
        lse = None
    try:
        out, lse_c = cudnn_with_lse(q, k, v)
        doc["cudnn_lse_ms"] = timed_ms(lambda: cudnn_with_lse(q, k, v))
        doc["cudnn_output_bit_identical_to_sdpa"] = bool(torch.equal(out, F.scaled_dot_product_attention(q, k, v)))
        doc["cudnn_lse_shape"] = list(lse_c.shape)
        lse = lse_c if lse is None else lse
        doc["cudnn_lse_vs_flash_max_abs"] = float((lse_c.reshape(lse.shape) - lse).abs().max())
    except (RuntimeError, NotImplementedError) as error:
        doc["cudnn_lse_error"] = str(error)[:300]
    reference = attention_stats(q, k, chunk=512, entropy=True)
    ref_lse, _ = fused.row_statistics(q, k, None, scale, False)
    if lse is not None:
        doc["flash_lse_vs_row_pass_max_abs"] = float((lse - ref_lse).abs().max())
    doc["configs"] = []
    for block_m, block_n in ((64, 64), (64, 128), (128, 64), (128, 128), (128, 32)):
        for warps, stages in ((4, 2), (4, 3), (8, 2), (8, 3)):
            blocks = (block_m, block_n, warps, stages)
            row = {"blocks": list(blocks)}
            try:
                row["row_ms"] = timed_ms(lambda: fused.row_statistics(q, k, None, scale, False, blocks))
                row["row_entropy_ms"] = timed_ms(lambda: fused.row_statistics(q, k, None, scale, True, blocks))
                row["column_ms"] = timed_ms(lambda: fused.column_mass(q, k, ref_lse, None, scale, blocks,
                                                                      transposed=False))
                row["column_t_ms"] = timed_ms(lambda: fused.column_mass(q, k, ref_lse, None, scale, blocks))
                lse_b, ent_b = fused.row_statistics(q, k, None, scale, True, blocks)
                mass = fused.column_mass(q, k, lse_b, None, scale, blocks) / q.shape[2]
                row["mass_max_rel_err"] = float((mass - reference.mass).abs().max() / reference.mass.abs().max())
                row["entropy_max_abs_err"] = float((ent_b - reference.entropy).abs().max())
            except Exception as error:    # a config that does not compile (shared memory) is recorded, not fatal
                row["error"] = f"{type(error).__name__}: {str(error)[:200]}"
            doc["configs"].append(row)
            print(json.dumps(row), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps({k: v for k, v in doc.items() if k != "configs"}, indent=2))


if __name__ == "__main__":
    main()
