"""A tiny random-weight Qwen-Image pipeline (diffusers QwenImagePipeline), built offline.

Every component is the real class of the Qwen/Qwen-Image checkpoint with a scaled-down config:
QwenImageTransformer2DModel (dual-stream MM-DiT blocks, joint [text, image] attention through
QwenDoubleStreamAttnProcessor2_0, per-head RMS QK-norm, MSRoPE with three axes), a
Qwen2_5_VLForConditionalGeneration text encoder (tiny Qwen2_5_VLConfig, multimodal RoPE sections), the
Qwen2Tokenizer from benchmark.tiny.tokenizers, AutoencoderKLQwenImage and FlowMatchEulerDiscreteScheduler
with the checkpoint's dynamic-shift settings.

Note on the prompt template: the pipeline drops the first 34 tokens of
"<|im_start|>system\\nDescribe the image by ...:<|im_end|>\\n<|im_start|>user\\n{prompt}...", which is the
length of that prefix under the real Qwen2.5 tokenizer. The tiny tokenizer spells "system"/"user" with
several pieces, so here the prefix is longer and a few template tokens survive the drop (they are keys of
the joint attention, labelled "special" by the adapter).
"""
from __future__ import annotations

import torch
from diffusers import (
    AutoencoderKLQwenImage,
    FlowMatchEulerDiscreteScheduler,
    QwenImagePipeline,
    QwenImageTransformer2DModel,
)
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

from .tokenizers import qwen_tokenizer

# Tiny generation settings for tests. guidance is Qwen-Image's true_cfg_scale (the adapter passes it with a
# " " negative prompt, as the model card's example does); 64x96 pixels -> 8x12 latents -> 4x6 patches.
SETTINGS = {
    "steps": 2,
    "guidance": 4.0,
    "height": 64,
    "width": 96,
    "max_sequence_length": 64,
}

TEXT_HIDDEN = 32  # Qwen2.5-VL-7B: 3584 (= the transformer's joint_attention_dim)

# Qwen/Qwen-Image scheduler/scheduler_config.json (FlowMatchEulerDiscreteScheduler, exponential dynamic shift).
SCHEDULER_CONFIG = {
    "base_image_seq_len": 256,
    "base_shift": 0.5,
    "invert_sigmas": False,
    "max_image_seq_len": 8192,
    "max_shift": 0.9,
    "num_train_timesteps": 1000,
    "shift": 1.0,
    "shift_terminal": 0.02,
    "stochastic_sampling": False,
    "time_shift_type": "exponential",
    "use_beta_sigmas": False,
    "use_dynamic_shifting": True,
    "use_exponential_sigmas": False,
    "use_karras_sigmas": False,
}


def _text_encoder(tokenizer) -> Qwen2_5_VLForConditionalGeneration:
    """Qwen2.5-VL with a tiny language model (2 layers, 2 query heads / 1 KV head of dim 16, mrope sections
    scaled from [16, 24, 24] to [2, 3, 3]) and a one-block vision tower that text-only prompts never run."""
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": TEXT_HIDDEN,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "max_position_embeddings": 2048,
            "max_window_layers": 2,
            "rms_norm_eps": 1e-6,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [2, 3, 3]},
            "bos_token_id": tokenizer.convert_tokens_to_ids("<|endoftext|>"),   # as Qwen2.5-VL: 151643
            "eos_token_id": tokenizer.eos_token_id,                             # <|im_end|>: 151645
            "pad_token_id": tokenizer.pad_token_id,
            "tie_word_embeddings": False,
        },
        vision_config={
            "depth": 1,
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_heads": 2,
            "out_hidden_size": TEXT_HIDDEN,
            "fullatt_block_indexes": [0],
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
        },
        # Vision placeholder ids of the real checkpoint: outside the tiny vocabulary, so text never hits them.
        image_token_id=151655,
        video_token_id=151656,
        vision_start_token_id=151652,
        vision_end_token_id=151653,
        tie_word_embeddings=False,
    )
    return Qwen2_5_VLForConditionalGeneration(config).eval()


def build_pipeline(seed: int = 0) -> QwenImagePipeline:
    """All components of the real classes with tiny configs, random weights from torch.manual_seed(seed)."""
    torch.manual_seed(seed)
    tokenizer = qwen_tokenizer()
    text_encoder = _text_encoder(tokenizer)
    # Qwen-Image: patch 2, in_channels 64 (16 latent channels x 2x2), 60 layers of 24 heads x 128,
    # axes_dims_rope (16, 56, 56). Here: 2 layers of 2 heads x 16, axes (4, 6, 6).
    transformer = QwenImageTransformer2DModel(
        patch_size=2,
        in_channels=64,
        out_channels=16,
        num_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=TEXT_HIDDEN,
        guidance_embeds=False,
        axes_dims_rope=(4, 6, 6),
    ).eval()
    # Qwen-Image VAE: base_dim 96, z_dim 16, dim_mult [1, 2, 4, 4], temporal downsample [False, True, True]
    # (spatial factor 8); the real latents_mean / latents_std are the class defaults.
    vae = AutoencoderKLQwenImage(
        base_dim=8,
        z_dim=16,
        dim_mult=[1, 2, 2, 2],
        num_res_blocks=1,
        attn_scales=[],
        temperal_downsample=[False, True, True],
    ).eval()
    scheduler = FlowMatchEulerDiscreteScheduler(**SCHEDULER_CONFIG)
    return QwenImagePipeline(
        scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, transformer=transformer
    )
