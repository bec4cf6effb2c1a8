"""Probe cost and correctness on a GPU, all ratios measured in the same run:

- per attention call at the shapes of FLUX.1-dev 1024^2, SD3-medium 1024^2 with its CFG batch, and Wan2.1
  480p/81 frames (1.3B: 12 heads; 14B: 40 heads): plain SDPA; cuDNN attention asked for its log-sum-exp;
  the fused Triton passes (rows + columns, and the column pass alone on the reused log-sum-exp); the chunked
  PyTorch path; the materialised map (out of memory at Wan's shape);
- one denoising step of the full-size FLUX transformer (random weights, 57 attention layers): stock, hooks
  only, and the passive mass probe on every layer through the chunked path, the fused passes and the fused
  column pass on cuDNN's log-sum-exp (the session's path), with the outputs compared bit for bit;
- the full-size SD3-medium transformer with CFG: denoiser images/s with 1 prompt per batch (what paper A's
  code did) vs 4 prompts of one condition per batch (SinkBench's runner).

    python benchmarks/probe_speed.py --out docs/benchmarks/probe-speed.json    (needs CUDA)

Writes JSON; docs/BENCHMARKS.md records a run with its device.
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
from benchmark.probe.fused import sdpa_with_lse
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


def layer_costs(device, name, batch, heads, tokens, dim, dense: bool = True) -> dict:
    g = torch.Generator(device=device).manual_seed(1)
    q, k, v = (torch.randn(batch, heads, tokens, dim, device=device, generator=g, dtype=torch.bfloat16)
               for _ in range(3))
    row = {"shape": f"{batch}x{heads}x{tokens}x{tokens}x{dim} bf16"}
    row["sdpa_ms"], row["sdpa_gib"] = timed(lambda: F.scaled_dot_product_attention(q, k, v))
    output, lse = sdpa_with_lse(F.scaled_dot_product_attention, q, k, v)
    row["cudnn_lse_bit_identical_to_sdpa"] = lse is not None
    row["sdpa_with_lse_ms"], _ = timed(lambda: sdpa_with_lse(F.scaled_dot_product_attention, q, k, v))
    row["fused_ms"], row["fused_gib"] = timed(lambda: attention_stats(q, k, entropy=False, backend="fused"))
    row["fused_entropy_ms"], _ = timed(lambda: attention_stats(q, k, entropy=True, backend="fused"))
    if lse is not None:
        row["fused_column_on_lse_ms"], row["fused_column_on_lse_gib"] = timed(
            lambda: attention_stats(q, k, entropy=False, lse=lse))
    row["chunked_ms"], row["chunked_gib"] = timed(
        lambda: attention_stats(q, k, chunk=1024, entropy=False, backend="chunked"), repeats=3)
    reference = attention_stats(q, k, chunk=1024, entropy=False, backend="chunked").mass
    fast = attention_stats(q, k, entropy=False, backend="fused").mass
    row["fused_vs_chunked_max_rel"] = float((fast - reference).abs().max()) / float(reference.abs().max())
    row["fused_vs_chunked_values_differing"] = int((fast != reference).sum())
    row["dense_ms"], row["dense_gib"] = None, "not run"
    if dense:
        try:
            row["dense_ms"], row["dense_gib"] = timed(lambda: dense_probabilities(q, k).mean(-2), repeats=3)
        except torch.OutOfMemoryError:
            row["dense_gib"] = "out of memory"
    torch.cuda.empty_cache()
    base = row["sdpa_ms"]
    row["ratios_to_sdpa"] = {key[:-3]: row[key] / base for key in row
                             if key.endswith("_ms") and key != "sdpa_ms" and row[key] is not None}
    if row["dense_ms"]:
        row["dense_over_fused_column"] = row["dense_ms"] / row.get("fused_column_on_lse_ms", row["fused_ms"])
    return {name: row}


def flux_inputs(device, g):
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
    return inputs


def flux_forward(device) -> dict:
    from benchmark.adapters import get_family
    from benchmark.probe.hook import attention_hooks
    from benchmark.tiny.full_size import full_size_denoiser

    model = full_size_denoiser("flux", device=device, dtype=torch.bfloat16)
    layers = get_family("flux").attention_layers(model)
    inputs = flux_inputs(device, torch.Generator(device=device).manual_seed(2))
    masses = []

    def probe(backend, reuse_lse):
        def on_attention(call):
            output, lse = call.compute_with_lse() if reuse_lse else (None, None)
            masses.append(attention_stats(call.query, call.key, entropy=False, lse=lse, backend=backend).mass.mean(1))
            return output
        return on_attention

    modes = {"probe_chunked": probe("chunked", False), "probe_fused": probe("fused", False),
             "probe_fused_on_cudnn_lse": probe("fused", True)}
    out = {"layers": len(layers)}
    with torch.inference_mode():
        out["forward_ms"], out["forward_peak_gib"] = timed(lambda: model(**inputs), repeats=5)
        reference = model(**inputs)[0]
        with attention_hooks(layers, lambda c: None):
            out["hooked_no_probe_ms"], _ = timed(lambda: model(**inputs), repeats=5)
        per_mode = {}
        for mode, callback in modes.items():
            with attention_hooks(layers, callback):
                out[f"{mode}_ms"], out[f"{mode}_peak_gib"] = timed(lambda: model(**inputs), repeats=5)
                masses.clear()
                probed = model(**inputs)[0]
            out[f"{mode}_bit_identical"] = bool(torch.equal(reference, probed))
            out[f"{mode}_layers_measured"] = len(masses)
            per_mode[mode] = torch.cat(masses)
            out[f"{mode}_overhead"] = out[f"{mode}_ms"] / out["forward_ms"] - 1
        chunked = per_mode["probe_chunked"]
        for mode in ("probe_fused", "probe_fused_on_cudnn_lse"):
            out[f"{mode}_mass_max_rel_vs_chunked"] = float((per_mode[mode] - chunked).abs().max()
                                                           / chunked.abs().max())
    return {"flux_transformer_1024": out}


def sd3_condition_batching(device, prompts_per_batch: int = 4, latent: int = 128) -> dict:
    """Denoiser images/s at SD3-medium (latent 128: 1024^2) with CFG (2 rows per prompt): 1 prompt per call
    vs several."""
    from benchmark.tiny.full_size import full_size_denoiser

    model = full_size_denoiser("sd3", device=device, dtype=torch.bfloat16)
    g = torch.Generator(device=device).manual_seed(3)

    def inputs(prompts):
        rows = 2 * prompts
        return dict(hidden_states=torch.randn(rows, 16, latent, latent, device=device, generator=g, dtype=torch.bfloat16),
                    encoder_hidden_states=torch.randn(rows, 333, 4096, device=device, generator=g,
                                                      dtype=torch.bfloat16),
                    pooled_projections=torch.randn(rows, 2048, device=device, generator=g, dtype=torch.bfloat16),
                    timestep=torch.full((rows,), 500.0, device=device, dtype=torch.bfloat16), return_dict=False)

    out = {}
    with torch.inference_mode():
        for prompts in (1, prompts_per_batch):
            batch = inputs(prompts)
            ms, gib = timed(lambda: model(**batch), repeats=5)
            out[f"{prompts}_prompts_step_ms"] = ms
            out[f"{prompts}_prompts_peak_gib"] = gib
            out[f"{prompts}_prompts_images_per_s_per_step"] = prompts / (ms / 1000)
    out["batched_over_sequential"] = (out[f"{prompts_per_batch}_prompts_images_per_s_per_step"]
                                      / out["1_prompts_images_per_s_per_step"])
    return {f"sd3_condition_batching_{latent * 8}px": out}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="probe-speed.json")
    args = parser.parse_args()
    device = torch.device("cuda")
    doc = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "python": platform.python_version(),
           "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    doc["correctness"] = correctness(device)
    doc["layers"] = {}
    doc["layers"].update(layer_costs(device, "flux_1024_joint", 1, 24, 4608, 128))
    doc["layers"].update(layer_costs(device, "sd3_1024_joint_cfg", 2, 24, 4429, 64))
    doc["layers"].update(layer_costs(device, "wan1.3b_480p_81f_self", 1, 12, 32760, 128))
    doc["layers"].update(layer_costs(device, "wan14b_480p_81f_self", 1, 40, 32760, 128, dense=False))
    doc.update(flux_forward(device))
    torch.cuda.empty_cache()
    doc.update(sd3_condition_batching(device))
    doc.update(sd3_condition_batching(device, latent=64))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
