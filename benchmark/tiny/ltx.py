"""A tiny random-weight LTX-Video pipeline (diffusers LTXPipeline), built offline.

Every component is the real class of Lightricks/LTX-Video (model_index.json: LTXPipeline with
LTXVideoTransformer3DModel, T5EncoderModel + T5 tokenizer (t5-v1_1-xxl, model_max_length 128),
AutoencoderKLLTXVideo and FlowMatchEulerDiscreteScheduler) with a scaled-down config. The transformer keeps
the real structure: every block has attn1 (self-attention over the video tokens with 3D RoPE on the full
inner dimension, dim // 6 frequencies per axis and the remainder padded, like the real 2048 channels) and
attn2 (cross-attention to the T5 text with the tokenizer's attention mask as an additive -10000 bias), both
LTXAttention with LTXVideoAttnProcessor and RMSNorm QK-norm across heads; patch size 1 (one token per latent
voxel). The VAE keeps the real compression (32x spatial: patch 4 then three 2x levels; 8x temporal) with
narrow channels and few latent channels.

CFG is batched: one transformer call per step on [negative, positive] (the unconditional half FIRST).
"""
from __future__ import annotations

import torch
from diffusers import (
    AutoencoderKLLTXVideo,
    FlowMatchEulerDiscreteScheduler,
    LTXPipeline,
    LTXVideoTransformer3DModel,
)

from .components import t5_encoder
from .tokenizers import t5_tokenizer

# Tiny generation settings for tests. LTX needs height/width divisible by 32 and num_frames = 8k + 1:
# 9 frames -> 2 latent frames; 64x96 pixels -> 2x3 latents; 12 video tokens.
SETTINGS = {
    "steps": 2,
    "guidance": 3.0,
    "height": 64,
    "width": 96,
    "num_frames": 9,
    "max_sequence_length": 32,
}

TEXT_HIDDEN = 32  # t5-v1_1-xxl: d_model 4096 (= the transformer's caption_channels)
LATENT_CHANNELS = 8  # LTX-Video: 128

# Lightricks/LTX-Video scheduler/scheduler_config.json: FlowMatchEulerDiscreteScheduler with dynamic
# (exponential) shifting, mu from the video token count between 1024 and 4096 tokens, stretched so the
# last sigma is 0.1.
SCHEDULER_CONFIG = {
    "base_image_seq_len": 1024,
    "base_shift": 0.95,
    "invert_sigmas": False,
    "max_image_seq_len": 4096,
    "max_shift": 2.05,
    "num_train_timesteps": 1000,
    "shift": 1.0,
    "shift_terminal": 0.1,
    "use_beta_sigmas": False,
    "use_dynamic_shifting": True,
    "use_exponential_sigmas": False,
    "use_karras_sigmas": False,
}


def build_pipeline(seed: int = 0) -> LTXPipeline:
    """All components of the real classes with tiny configs, random weights from torch.manual_seed(seed)."""
    torch.manual_seed(seed)
    tokenizer = t5_tokenizer(model_max_length=128)
    text_encoder = t5_encoder(tokenizer, d_model=TEXT_HIDDEN)
    # LTX-Video: 28 layers, 32 heads of 64 (dim 2048), cross_attention_dim 2048, caption_channels 4096,
    # in/out 128, patch 1 x 1, qk_norm "rms_norm_across_heads", gelu-approximate, no norm affine, eps 1e-6.
    transformer = LTXVideoTransformer3DModel(
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=2,
        attention_head_dim=16,
        cross_attention_dim=32,
        num_layers=2,
        activation_fn="gelu-approximate",
        qk_norm="rms_norm_across_heads",
        norm_elementwise_affine=False,
        norm_eps=1e-6,
        caption_channels=TEXT_HIDDEN,
        attention_bias=True,
        attention_out_bias=True,
    ).eval()
    # LTX-Video VAE: block_out_channels (128, 256, 512, 512), layers (4, 3, 3, 3, 4), spatio-temporal
    # scaling in the first three levels, patch 4 x 1, causal encoder, non-causal decoder, no timestep
    # conditioning. Same levels here with 8 channels and one layer each.
    vae = AutoencoderKLLTXVideo(
        in_channels=3,
        out_channels=3,
        latent_channels=LATENT_CHANNELS,
        block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1),
        spatio_temporal_scaling=(True, True, True, False),
        decoder_spatio_temporal_scaling=(True, True, True, False),
        decoder_inject_noise=(False, False, False, False, False),
        upsample_residual=(False, False, False, False),
        upsample_factor=(1, 1, 1, 1),
        timestep_conditioning=False,
        patch_size=4,
        patch_size_t=1,
        encoder_causal=True,
        decoder_causal=False,
    ).eval()
    scheduler = FlowMatchEulerDiscreteScheduler(**SCHEDULER_CONFIG)
    return LTXPipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                       transformer=transformer)
