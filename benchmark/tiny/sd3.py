"""A tiny random-weight Stable Diffusion 3 pipeline (diffusers StableDiffusion3Pipeline), built offline.

Every component is the real class of stabilityai/stable-diffusion-3-medium-diffusers (model_index.json:
SD3Transformer2DModel, two CLIPTextModelWithProjection + CLIPTokenizer (the second pads with "!"),
T5EncoderModel + T5 tokenizer, AutoencoderKL with 16 latent channels, FlowMatchEulerDiscreteScheduler) with a
scaled-down config. The transformer keeps SD3-medium's structure: MM-DiT joint blocks over [image, text] with
no QK-norm and no dual attention (those are SD3.5), the last block context_pre_only, a 2D sin-cos absolute
position embedding cropped from a pos_embed_max_size grid, patch size 2. Text keys are the 77 CLIP tokens
(CLIP-L and CLIP-G features side by side, zero-padded to the T5 width) followed by the T5 tokens.
CFG is batched: one transformer call per step on [negative, positive].
"""
from __future__ import annotations

import torch
from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
from transformers import CLIPTextModelWithProjection

from .components import clip_text_config, kl_vae, t5_encoder
from .tokenizers import clip_tokenizer, t5_tokenizer

# 64x96 pixels -> 8x12 latents -> 4x6 patches = 24 image tokens; 77 CLIP + 32 T5 text tokens (real: 256 T5).
SETTINGS = {
    "steps": 2,
    "guidance": 7.0,
    "height": 64,
    "width": 96,
    "max_sequence_length": 32,
}

CLIP_L, CLIP_G = 8, 16   # real 768 and 1280 (the transformer's pooled_projection_dim is their sum, 2048)
T5_HIDDEN = 32           # real 4096 (= joint_attention_dim)

# stabilityai/stable-diffusion-3-medium-diffusers scheduler/scheduler_config.json.
SCHEDULER_CONFIG = {"num_train_timesteps": 1000, "shift": 3.0}


def build_pipeline(seed: int = 0) -> StableDiffusion3Pipeline:
    """All components of the real classes with tiny configs, random weights from torch.manual_seed(seed)."""
    torch.manual_seed(seed)
    tokenizer = clip_tokenizer()
    tokenizer_2 = clip_tokenizer(pad_token="!")
    tokenizer_3 = t5_tokenizer(model_max_length=512)
    text_encoder = CLIPTextModelWithProjection(clip_text_config(tokenizer, CLIP_L)).eval()
    text_encoder_2 = CLIPTextModelWithProjection(clip_text_config(tokenizer_2, CLIP_G, act="gelu")).eval()
    text_encoder_3 = t5_encoder(tokenizer_3, d_model=T5_HIDDEN)
    # SD3-medium: 24 layers, 24 heads of 64, caption_projection_dim 1536, pos_embed_max_size 192, sample 128.
    # 3 layers: two full joint blocks and the context_pre_only last block (its text stream is not updated).
    transformer = SD3Transformer2DModel(
        sample_size=16, patch_size=2, in_channels=16, out_channels=16, num_layers=3, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=T5_HIDDEN, caption_projection_dim=32,
        pooled_projection_dim=CLIP_L + CLIP_G, pos_embed_max_size=32, qk_norm=None,
    ).eval()
    vae = kl_vae(16, scaling_factor=1.5305, shift_factor=0.0609)   # SD3 VAE
    scheduler = FlowMatchEulerDiscreteScheduler(**SCHEDULER_CONFIG)
    return StableDiffusion3Pipeline(
        transformer=transformer, scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
        text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2, text_encoder_3=text_encoder_3,
        tokenizer_3=tokenizer_3)
