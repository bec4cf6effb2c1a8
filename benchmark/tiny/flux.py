"""A tiny random-weight FLUX.1 pipeline (diffusers FluxPipeline), built offline.

Every component is the real class of black-forest-labs/FLUX.1-dev (model_index.json: FluxPipeline with
FluxTransformer2DModel, CLIPTextModel + CLIPTokenizer (pooled only), T5EncoderModel + T5 tokenizer,
AutoencoderKL with 16 latent channels, FlowMatchEulerDiscreteScheduler) with a scaled-down config. The
transformer keeps the real structure: double-stream blocks (FluxAttention over [text, image] with separate
text/image projections) followed by single-stream blocks (one FluxAttention over the same joint sequence),
per-head RMSNorm QK-norm, 3-axis RoPE (axes 16/56/56 of 128 in FLUX, here 4/6/6 of 16), 2x2 latent packing,
and the guidance embedding of the guidance-distilled dev model (no CFG branch: one call per step).
"""
from __future__ import annotations

import torch
from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
from transformers import CLIPTextModel

from .components import clip_text_config, kl_vae, t5_encoder
from .tokenizers import clip_tokenizer, t5_tokenizer

# 64x96 pixels -> 8x12 latents -> 4x6 packed patches = 24 image tokens; 32 T5 tokens (FLUX.1-dev: 512).
SETTINGS = {
    "steps": 2,
    "guidance": 3.5,
    "height": 64,
    "width": 96,
    "max_sequence_length": 32,
}

TEXT_HIDDEN = 32   # T5-XXL d_model 4096 (= joint_attention_dim)
CLIP_HIDDEN = 32   # CLIP ViT-L 768 (= pooled_projection_dim)

# black-forest-labs/FLUX.1-dev scheduler/scheduler_config.json (resolution-dependent shift).
SCHEDULER_CONFIG = {
    "base_image_seq_len": 256,
    "base_shift": 0.5,
    "max_image_seq_len": 4096,
    "max_shift": 1.15,
    "num_train_timesteps": 1000,
    "shift": 3.0,
    "use_dynamic_shifting": True,
}


def build_pipeline(seed: int = 0) -> FluxPipeline:
    """All components of the real classes with tiny configs, random weights from torch.manual_seed(seed)."""
    torch.manual_seed(seed)
    tokenizer = clip_tokenizer()
    tokenizer_2 = t5_tokenizer(model_max_length=512)
    text_encoder = CLIPTextModel(clip_text_config(tokenizer, CLIP_HIDDEN)).eval()
    text_encoder_2 = t5_encoder(tokenizer_2, d_model=TEXT_HIDDEN)
    # FLUX.1-dev: 19 double + 38 single blocks, 24 heads of 128, in_channels 64 (16 latent x 2x2 packing).
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=64, out_channels=None, num_layers=2, num_single_layers=2,
        attention_head_dim=16, num_attention_heads=2, joint_attention_dim=TEXT_HIDDEN,
        pooled_projection_dim=CLIP_HIDDEN, guidance_embeds=True, axes_dims_rope=(4, 6, 6),
    ).eval()
    vae = kl_vae(16, scaling_factor=0.3611, shift_factor=0.1159)   # FLUX VAE
    scheduler = FlowMatchEulerDiscreteScheduler(**SCHEDULER_CONFIG)
    return FluxPipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                        text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2, transformer=transformer)
