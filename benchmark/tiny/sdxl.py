"""A tiny random-weight SDXL pipeline (diffusers StableDiffusionXLPipeline, SDXL base 1.0 layout), built offline.

Every component is the real class of stabilityai/stable-diffusion-xl-base-1.0 (model_index.json:
UNet2DConditionModel, CLIPTextModel + CLIPTokenizer, CLIPTextModelWithProjection + CLIPTokenizer,
EulerDiscreteScheduler) with a scaled-down config. The U-Net keeps the real structure: three
levels (DownBlock2D without attention, then two CrossAttnDownBlock2D), a UNetMidBlock2DCrossAttn, the mirrored
up blocks, linear-projection Transformer2DModels whose BasicTransformerBlocks run attn1 (self-attention over
the latent pixels of that level) then attn2 (cross-attention to the 77 concatenated CLIP features), more
transformer blocks at the lower resolutions (real [1, 2, 10], here [1, 1, 2]), and the "text_time" added
conditioning (pooled CLIP-2 embedding + six size/crop numbers). The first tokenizer pads with <|endoftext|>,
the second with "!", as the real ones do.
"""
from __future__ import annotations

import torch
from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTextModelWithProjection

from .components import clip_text_config, kl_vae
from .tokenizers import clip_tokenizer

# Tiny generation settings for tests. CFG is batched (one U-Net call per step on [uncond, cond]) when
# guidance > 1. 128x192 pixels -> 16x24 latents; down.0 (no attention) halves them, so the self-attention
# keys are 8x12 at down.1 / up.1 and 4x6 at down.2 / mid / up.0 (SDXL at 1024^2: 64x64 and 32x32).
# fp32: the card's fp16 is for GPUs.
SETTINGS = {
    "steps": 2,
    "guidance": 5.0,
    "height": 128,
    "width": 192,
    "dtype": "fp32",
}

TEXT_HIDDEN_1 = 32    # CLIP ViT-L/14: 768
TEXT_HIDDEN_2 = 48    # OpenCLIP ViT-bigG/14: 1280 (also its projection_dim)
TIME_EMBED_DIM = 8    # addition_time_embed_dim: 256

# stabilityai/stable-diffusion-xl-base-1.0 scheduler/scheduler_config.json (its DDIM-era keys clip_sample,
# set_alpha_to_one, skip_prk_steps and sample_max_value are not EulerDiscreteScheduler arguments: left out).
SCHEDULER_CONFIG = {
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "interpolation_type": "linear",
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "trained_betas": None,
    "use_karras_sigmas": False,
}


def build_pipeline(seed: int = 0) -> StableDiffusionXLPipeline:
    """All components of the real classes with tiny configs, random weights from torch.manual_seed(seed)."""
    torch.manual_seed(seed)
    tokenizer = clip_tokenizer()                    # pads with <|endoftext|>
    tokenizer_2 = clip_tokenizer(pad_token="!")     # pads with "!"
    text_encoder = CLIPTextModel(clip_text_config(tokenizer, TEXT_HIDDEN_1, "quick_gelu", TEXT_HIDDEN_1)).eval()
    text_encoder_2 = CLIPTextModelWithProjection(
        clip_text_config(tokenizer_2, TEXT_HIDDEN_2, "gelu", TEXT_HIDDEN_2)).eval()
    # SDXL base unet/config.json: block_out_channels [320, 640, 1280], attention_head_dim (= heads) [5, 10, 20]
    # (head dim 64), transformer_layers_per_block [1, 2, 10], layers_per_block 2, cross_attention_dim 2048,
    # use_linear_projection, addition_embed_type text_time, addition_time_embed_dim 256,
    # projection_class_embeddings_input_dim 2816 = 1280 + 6 * 256, sample_size 128.
    # Here: channels [16, 32, 64], heads [1, 2, 4] (head dim 16).
    unet = UNet2DConditionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        mid_block_type="UNetMidBlock2DCrossAttn",
        block_out_channels=(16, 32, 64),
        layers_per_block=2,
        attention_head_dim=(1, 2, 4),
        transformer_layers_per_block=(1, 1, 2),
        cross_attention_dim=TEXT_HIDDEN_1 + TEXT_HIDDEN_2,
        norm_num_groups=8,
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=TIME_EMBED_DIM,
        projection_class_embeddings_input_dim=TEXT_HIDDEN_2 + 6 * TIME_EMBED_DIM,
        flip_sin_to_cos=True,
        freq_shift=0,
        act_fn="silu",
        norm_eps=1e-5,
    ).eval()
    # SDXL VAE: block_out_channels [128, 256, 512, 512] (spatial factor 8), 4 latent channels,
    # scaling_factor 0.13025, force_upcast. Narrow channels here.
    vae = kl_vae(4, scaling_factor=0.13025, force_upcast=True)
    scheduler = EulerDiscreteScheduler(**SCHEDULER_CONFIG)
    # add_watermarker is left to the real default (on when invisible-watermark is installed);
    # force_zeros_for_empty_prompt=True as in the real model_index.json.
    return StableDiffusionXLPipeline(
        vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2, tokenizer=tokenizer,
        tokenizer_2=tokenizer_2, unet=unet, scheduler=scheduler, force_zeros_for_empty_prompt=True,
    )
