"""Probe cost and correctness on a GPU: chunked attention statistics vs SDPA and vs a materialised map,
at the attention shapes of FLUX.1-dev (1024^2) and Wan2.1 (480p, 81 frames), and a full-size FLUX
transformer (random weights) with the passive probe on all 57 layers.

    python benchmarks/probe_speed.py --out docs/benchmarks/probe-speed.json    (needs CUDA)

Writes JSON; docs/benchmarks/probe-speed.md records a run with its device.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmark.interventions import combine_masks, log_eta_bias, top_keys
from benchmark.probe.math import attention_stats, dense_probabilities, selected_log_mass


def timed(fn, repeats: int = 10) -> tuple[float, float]:
    """(median ms, peak extra GiB) of fn() on the current CUDA device."""
    fn()
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    peak = (torch.cuda.max_memory_allocated() - base) / 2**30
    times.sort()
    return times[len(times) // 2], peak


def correctness(device) -> dict:
    g = torch.Generator(device=device).manual_seed(0)
    out = {}
    for dtype in (torch.float32, torch.bfloat16):
        q = torch.randn(2, 4, 2048, 64, device=device, generator=g).to(dtype)
        k = torch.randn(2, 4, 2304, 64, device=device, generator=g).to(dtype)
        v = torch.randn(2, 4, 2304, 64, device=device, generator=g).to(dtype)
        keep = torch.rand(2, 1, 1, 2304, device=device, generator=g) > 0.2
        stats = attention_stats(q, k, attn_mask=keep, chunk=300)
        dense = dense_probabilities(q, k, keep)
        sel = top_keys(stats.mass, 4)
        bias = log_eta_bias(sel, 0.3, dtype)
        sdpa = F.scaled_dot_product_attention(q, k, v, attn_mask=combine_masks(keep, bias, dtype))
        ref = (dense_probabilities(q, k, keep, bias=bias) @ v.float())
        one = F.scaled_dot_product_attention(q, k, v, attn_mask=combine_masks(keep, log_eta_bias(sel, 1.0, dtype), dtype))
        plain = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
        zero_bias = log_eta_bias(sel, 0.0, dtype)
        zero = F.scaled_dot_product_attention(q, k, v, attn_mask=combine_masks(keep, zero_bias, dtype))
        out[str(dtype)] = {
            "mass_max_abs_err_vs_dense": float((stats.mass - dense.mean(-2)).abs().max()),
            "log_eta_sdpa_max_abs_err_vs_dense": float((sdpa.float() - ref).abs().max()),
            "eta1_equals_no_intervention_bitwise": bool(torch.equal(one, plain)),
            "eta1_max_abs_diff": float((one.float() - plain.float()).abs().max()),
            "eta0_finite": bool(torch.isfinite(zero).all()),
            "eta0_selected_log10_mass_max": float(selected_log_mass(q, k, sel, attn_mask=keep, bias=zero_bias.float()).max() / math.log(10)),
        }
    return out


def layer_costs(device, name, heads, n_keys, n_queries, dim, chunks) -> dict:
    g = torch.Generator(device=device).manual_seed(1)
    q = torch.randn(1, heads, n_queries, dim, device=device, generator=g, dtype=torch.bfloat16)
    k = torch.randn(1, heads, n_keys, dim, device=device, generator=g, dtype=torch.bfloat16)
    v = torch.randn_like(k)
    row = {"shape": f"1x{heads}x{n_queries}x{n_keys}x{dim} bf16"}
    row["sdpa_ms"], row["sdpa_gib"] = timed(lambda: F.scaled_dot_product_attention(q, k, v))
    for chunk in chunks:
        row[f"stats_chunk{chunk}_ms"], row[f"stats_chunk{chunk}_gib"] = timed(
            lambda: attention_stats(q, k, chunk=chunk, entropy=False), repeats=5)
    try:
        row["dense_ms"], row["dense_gib"] = timed(lambda: dense_probabilities(q, k).mean(-2), repeats=3)
    except torch.OutOfMemoryError:
        row["dense_ms"], row["dense_gib"] = None, "out of memory"
        torch.cuda.empty_cache()
    return {name: row}


def flux_forward(device) -> dict:
    from benchmark.adapters import get_family
    from benchmark.probe.hook import attention_hooks
    from benchmark.tiny.full_size import full_size_denoiser

    model = full_size_denoiser("flux", device=device, dtype=torch.bfloat16)
    layers = get_family("flux").attention_layers(model)
    g = torch.Generator(device=device).manual_seed(2)
    inputs = dict(
        hidden_states=torch.randn(1, 4096, 64, device=device, generator=g, dtype=torch.bfloat16),
        encoder_hidden_states=torch.randn(1, 512, 4096, device=device, generator=g, dtype=torch.bfloat16),
        pooled_projections=torch.randn(1, 768, device=device, generator=g, dtype=torch.bfloat16),
        timestep=torch.tensor([0.5], device=device, dtype=torch.bfloat16),
        guidance=torch.tensor([3.5], device=device, dtype=torch.bfloat16),
        img_ids=torch.zeros(4096, 3, device=device), txt_ids=torch.zeros(512, 3, device=device),
        return_dict=False)
    ids = torch.stack(torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij"), -1).reshape(-1, 2)
    inputs["img_ids"][:, 1:] = ids.to(device)
    masses = []

    def probe(call):
        masses.append(attention_stats(call.query, call.key, chunk=1024, entropy=False).mass.mean(1))

    with torch.inference_mode():
        plain_ms, plain_gib = timed(lambda: model(**inputs), repeats=5)
        reference = model(**inputs)[0]
        with attention_hooks(layers, lambda c: None):
            hooked_ms, hooked_gib = timed(lambda: model(**inputs), repeats=5)
        with attention_hooks(layers, probe):
            probed_ms, probed_gib = timed(lambda: model(**inputs), repeats=5)
            masses.clear()
            probed = model(**inputs)[0]
    return {"flux_transformer_1024": {
        "layers": len(layers), "forward_ms": plain_ms, "forward_peak_gib": plain_gib,
        "hooked_no_probe_ms": hooked_ms, "probe_all_layers_ms": probed_ms, "probe_peak_gib": probed_gib,
        "passive_bit_identical": bool(torch.equal(reference, probed)), "layers_measured": len(masses),
        "mass_rows_sum_to_1_max_err": float(max((m.sum(-1) - 1).abs().max() for m in masses)),
    }}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="probe-speed.json")
    args = parser.parse_args()
    device = torch.device("cuda")
    doc = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "python": platform.python_version(),
           "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    doc["correctness"] = correctness(device)
    doc["layers"] = {}
    doc["layers"].update(layer_costs(device, "flux_1024_joint", 24, 4608, 4608, 128, (1024, 4608)))
    doc["layers"].update(layer_costs(device, "wan_480p_81f_self", 12, 32760, 32760, 128, (1024, 4096)))
    doc.update(flux_forward(device))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
