"""A tiny random-weight PixArt-alpha pipeline (diffusers PixArtAlphaPipeline, PixArt-XL-2-1024-MS layout), offline.

Every component is the real class of PixArt-alpha/PixArt-XL-2-1024-MS (model_index.json:
PixArtTransformer2DModel, T5EncoderModel + T5Tokenizer, DPMSolverMultistepScheduler) with a
scaled-down config. The transformer keeps the real structure: 2D sin-cos absolute position embedding on
2x2 patches, adaLN-single timestep modulation, and in every BasicTransformerBlock attn1 (self-attention over
the image patches) then attn2 (cross-attention to the T5 caption, whose padding is masked), learned sigma
(out_channels = 2 x in_channels).

sample_size: the real 1024 model has sample_size 128, which makes the pipeline bin every requested size to
ASPECT_RATIO_1024_BIN (about 1024^2 pixels, 4096 patches) and turns on the resolution / aspect-ratio
micro-conditions. That is too slow for a CPU test, so the tiny transformer has sample_size 32, the layout of
the real PixArt-XL-2-256x256 checkpoint: sizes are binned to ASPECT_RATIO_256_BIN (256^2 = 16x16 patches) and
there are no micro-conditions. The attention layout (self over patches, cross to masked T5) is the same.
"""
from __future__ import annotations

import torch
from diffusers import DPMSolverMultistepScheduler, PixArtAlphaPipeline, PixArtTransformer2DModel

from .components import kl_vae, t5_encoder
from .tokenizers import t5_tokenizer

# Tiny generation settings for tests. CFG is batched (one transformer call per step on [uncond, cond]) when
# guidance > 1. The pipeline bins height/width to the nearest aspect ratio of ASPECT_RATIO_256_BIN
# (use_resolution_binning=True); 192x320 is a bin entry -> 24x40 latents -> 12x20 patches.
# max_sequence_length 32 (real 120): the T5 keys are always padded to it (padding masked). fp32: the card's
# fp16 is for GPUs.
SETTINGS = {
    "steps": 2,
    "guidance": 4.5,
    "height": 192,
    "width": 320,
    "max_sequence_length": 32,
    "dtype": "fp32",
}

TEXT_HIDDEN = 32   # T5-v1.1-XXL: d_model 4096 (= the transformer's caption_channels)

# PixArt-alpha/PixArt-XL-2-1024-MS scheduler/scheduler_config.json.
SCHEDULER_CONFIG = {
    "algorithm_type": "dpmsolver++",
    "beta_end": 0.02,
    "beta_schedule": "linear",
    "beta_start": 0.0001,
    "dynamic_thresholding_ratio": 0.995,
    "lower_order_final": True,
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "sample_max_value": 1.0,
    "solver_order": 2,
    "solver_type": "midpoint",
    "steps_offset": 0,
    "thresholding": False,
    "timestep_spacing": "linspace",
    "trained_betas": None,
    "use_karras_sigmas": False,
}


def build_pipeline(seed: int = 0) -> PixArtAlphaPipeline:
    """All components of the real classes with tiny configs, random weights from torch.manual_seed(seed)."""
    torch.manual_seed(seed)
    tokenizer = t5_tokenizer()
    text_encoder = t5_encoder(tokenizer, d_model=TEXT_HIDDEN)
    # PixArt-XL-2-1024-MS transformer/config.json: 28 layers, 16 heads x 72 (inner 1152 = cross_attention_dim),
    # patch 2, in 4 / out 8 channels, caption_channels 4096, norm_type ada_norm_single, attention_bias,
    # gelu-approximate, sample_size 128. Here 2 layers of 2 heads x 16, sample_size 32 (see the docstring).
    transformer = PixArtTransformer2DModel(
        num_attention_heads=2,
        attention_head_dim=16,
        in_channels=4,
        out_channels=8,
        num_layers=2,
        cross_attention_dim=32,
        attention_bias=True,
        sample_size=32,
        patch_size=2,
        activation_fn="gelu-approximate",
        num_embeds_ada_norm=1000,
        upcast_attention=False,
        norm_type="ada_norm_single",
        norm_elementwise_affine=False,
        norm_eps=1e-6,
        caption_channels=TEXT_HIDDEN,
    ).eval()
    # PixArt's VAE (sd-vae-ft-ema): block_out_channels [128, 256, 512, 512] (spatial factor 8), 4 latent
    # channels, scaling_factor 0.18215. Narrow channels here.
    vae = kl_vae(4, scaling_factor=0.18215)
    scheduler = DPMSolverMultistepScheduler(**SCHEDULER_CONFIG)
    return PixArtAlphaPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler
    )
