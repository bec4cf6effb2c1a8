"""A tiny random-weight Wan 2.1 text-to-video pipeline (diffusers WanPipeline), built offline.

Every component is the real class of Wan-AI/Wan2.1-T2V-1.3B-Diffusers (model_index.json: WanPipeline with
WanTransformer3DModel, UMT5EncoderModel, a T5 tokenizer (umt5-xxl), AutoencoderKLWan and
UniPCMultistepScheduler) with a scaled-down config. The transformer keeps the real structure: every block
has attn1 (self-attention over the video patches, 3D RoPE split t/h/w like the real 44/42/42 of 128 channels,
here 4/4/4 of 12) and attn2 (cross-attention to the UMT5 text, no RoPE), both WanAttention with
WanAttnProcessor and RMSNorm QK-norm across heads ("rms_norm_across_heads"), patch (1, 2, 2). The VAE keeps
the real compression (8x spatial, 4x temporal, 16 latent channels) with narrow channels.

The pipeline encodes the prompt to max_sequence_length tokens, keeps the valid (attention_mask) tokens and
pads with zero vectors to max_sequence_length; the transformer gets no text mask, so every one of the
max_sequence_length text keys is attended to. CFG is "true" CFG: two transformer calls per step.
"""
from __future__ import annotations

import torch
from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel

from .components import t5_encoder
from .tokenizers import t5_tokenizer

# Tiny generation settings for tests. Wan needs num_frames = 4k + 1 and height/width divisible by 16:
# 9 frames -> 3 latent frames; 32x48 pixels -> 4x6 latents -> 2x3 patches; 18 video tokens.
SETTINGS = {
    "steps": 2,
    "guidance": 5.0,
    "height": 32,
    "width": 48,
    "num_frames": 9,
    "max_sequence_length": 32,
}

TEXT_HIDDEN = 32  # umt5-xxl: d_model 4096 (= the transformer's text_dim)

# Wan-AI/Wan2.1-T2V-1.3B-Diffusers scheduler/scheduler_config.json: UniPC (bh2, order 2) on flow sigmas,
# flow_prediction, flow_shift 3.0 (the 480p value). WanPipeline's __init__ annotates
# FlowMatchEulerDiscreteScheduler, but the checkpoint ships this one.
SCHEDULER_CONFIG = {
    "beta_end": 0.02,
    "beta_schedule": "linear",
    "beta_start": 0.0001,
    "disable_corrector": [],
    "dynamic_thresholding_ratio": 0.995,
    "final_sigmas_type": "zero",
    "flow_shift": 3.0,
    "lower_order_final": True,
    "num_train_timesteps": 1000,
    "predict_x0": True,
    "prediction_type": "flow_prediction",
    "rescale_betas_zero_snr": False,
    "sample_max_value": 1.0,
    "solver_order": 2,
    "solver_p": None,
    "solver_type": "bh2",
    "steps_offset": 0,
    "thresholding": False,
    "timestep_spacing": "linspace",
    "trained_betas": None,
    "use_beta_sigmas": False,
    "use_exponential_sigmas": False,
    "use_flow_sigmas": True,
    "use_karras_sigmas": False,
}


def build_pipeline(seed: int = 0) -> WanPipeline:
    """All components of the real classes with tiny configs, random weights from torch.manual_seed(seed)."""
    torch.manual_seed(seed)
    tokenizer = t5_tokenizer(model_max_length=512)
    text_encoder = t5_encoder(tokenizer, d_model=TEXT_HIDDEN, umt5=True)
    # Wan2.1-T2V-1.3B: 30 layers, 12 heads of 128 (dim 1536), ffn 8960, text_dim 4096, freq_dim 256,
    # patch (1, 2, 2), cross_attn_norm, qk_norm "rms_norm_across_heads", eps 1e-6, rope_max_seq_len 1024.
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=16,
        out_channels=16,
        text_dim=TEXT_HIDDEN,
        freq_dim=32,
        ffn_dim=48,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        eps=1e-6,
        image_dim=None,
        added_kv_proj_dim=None,
        rope_max_seq_len=1024,
    ).eval()
    # Wan2.1 VAE: base_dim 96, dim_mult [1, 2, 4, 4], 2 res blocks, z_dim 16, temporal downsampling in the
    # last two levels (4x), 8x spatial, the checkpoint's latents_mean/std (the class defaults). Narrow here.
    vae = AutoencoderKLWan(
        base_dim=8,
        z_dim=16,
        dim_mult=[1, 2, 2, 2],
        num_res_blocks=1,
        attn_scales=[],
        temperal_downsample=[False, True, True],
        dropout=0.0,
    ).eval()
    scheduler = UniPCMultistepScheduler(**SCHEDULER_CONFIG)
    return WanPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, scheduler=scheduler,
                       transformer=transformer)
