"""Denoisers of the real checkpoints' shapes with random weights (no download).

For timing and memory benchmarks on a GPU, and to check on the meta device that the adapters' layer
listing holds at full size. The configs are the published config.json values of each card's checkpoint.
"""
from __future__ import annotations

from typing import Any, Callable

# family -> (diffusers class name, config of the card's checkpoint)
FULL_SIZE: dict[str, tuple[str, dict[str, Any]]] = {
    "sd3": ("SD3Transformer2DModel", dict(     # stable-diffusion-3-medium-diffusers/transformer
        sample_size=128, patch_size=2, in_channels=16, num_layers=24, attention_head_dim=64,
        num_attention_heads=24, joint_attention_dim=4096, caption_projection_dim=1536,
        pooled_projection_dim=2048, out_channels=16, pos_embed_max_size=192)),
    "sdxl": ("UNet2DConditionModel", dict(     # stable-diffusion-xl-base-1.0/unet
        sample_size=128, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(320, 640, 1280), layers_per_block=2, transformer_layers_per_block=(1, 2, 10),
        attention_head_dim=(5, 10, 20), cross_attention_dim=2048, use_linear_projection=True,
        addition_embed_type="text_time", addition_time_embed_dim=256,
        projection_class_embeddings_input_dim=2816)),
    "flux": ("FluxTransformer2DModel", dict(   # FLUX.1-dev/transformer
        patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
        num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True,
        axes_dims_rope=(16, 56, 56))),
    "pixart": ("PixArtTransformer2DModel", dict(   # PixArt-XL-2-1024-MS/transformer
        num_attention_heads=16, attention_head_dim=72, in_channels=4, out_channels=8, num_layers=28,
        cross_attention_dim=1152, sample_size=128, patch_size=2, caption_channels=4096,
        norm_type="ada_norm_single", use_additional_conditions=True)),
    "qwen_image": ("QwenImageTransformer2DModel", dict(   # Qwen-Image/transformer
        patch_size=2, in_channels=64, out_channels=16, num_layers=60, attention_head_dim=128,
        num_attention_heads=24, joint_attention_dim=3584, axes_dims_rope=(16, 56, 56))),
    "z_image": ("ZImageTransformer2DModel", dict(   # Z-Image-Turbo/transformer
        in_channels=16, dim=3840, n_layers=30, n_refiner_layers=2, n_heads=30, n_kv_heads=30,
        cap_feat_dim=2560, axes_dims=[32, 48, 48], axes_lens=[1024, 512, 512])),
    "wan": ("WanTransformer3DModel", dict(   # Wan2.1-T2V-1.3B-Diffusers/transformer
        patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=16, out_channels=16,
        text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", eps=1e-6)),
    "ltx": ("LTXVideoTransformer3DModel", dict(   # LTX-Video/transformer
        in_channels=128, out_channels=128, patch_size=1, patch_size_t=1, num_attention_heads=32,
        attention_head_dim=64, cross_attention_dim=2048, num_layers=28, caption_channels=4096,
        qk_norm="rms_norm_across_heads", activation_fn="gelu-approximate", norm_elementwise_affine=False)),
}


def full_size_denoiser(family: str, device: str = "meta", dtype: Any = None):
    """The family's denoiser at the card checkpoint's size with random weights. On "meta" nothing is
    allocated (structure only); on "cuda" it is a real model for timing and memory."""
    import diffusers
    import torch

    if family not in FULL_SIZE:
        raise KeyError(f"no full-size config for {family!r}; known: {', '.join(FULL_SIZE)}")
    class_name, config = FULL_SIZE[family]
    cls: Callable = getattr(diffusers, class_name)
    with torch.device(device):
        model = cls(**config)
    if dtype is not None:
        model = model.to(dtype)
    return model.eval()
