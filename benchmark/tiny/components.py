"""Tiny text encoders and VAEs shared by several tiny pipelines (one definition each)."""
from __future__ import annotations

from diffusers import AutoencoderKL
from transformers import CLIPTextConfig, T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel


def clip_text_config(tokenizer, hidden: int, act: str = "quick_gelu", projection_dim: int | None = None) -> CLIPTextConfig:
    """CLIP text tower (real ViT-L: 12 layers x 12 heads; bigG: 32 x 20); here 2 layers x 2 heads, since the
    SD pipelines read hidden_states[-2]. Special ids are the tokenizer's: with the real EOS id CLIP pools at
    the first EOS (the legacy eos_token_id=2 of the real configs pools at argmax(ids), the same position)."""
    return CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
        num_attention_heads=2, max_position_embeddings=77, hidden_act=act,
        projection_dim=projection_dim or hidden, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )


def t5_encoder(tokenizer, d_model: int = 32, umt5: bool = False) -> T5EncoderModel | UMT5EncoderModel:
    """T5 v1.1 encoder (t5-v1_1-xxl: 24 layers, 64 heads of 64, gated-gelu, d_model 4096; Wan's umt5-xxl has
    the same shape with per-layer relative position biases); here 2 layers, 4 heads of 8. Special ids as the
    tokenizer: <pad> 0, </s> 1, no BOS."""
    config_class, model_class = (UMT5Config, UMT5EncoderModel) if umt5 else (T5Config, T5EncoderModel)
    config = config_class(
        vocab_size=len(tokenizer), d_model=d_model, d_kv=8, d_ff=2 * d_model, num_layers=2, num_decoder_layers=2,
        num_heads=4, relative_attention_num_buckets=32, relative_attention_max_distance=128, dropout_rate=0.0,
        layer_norm_epsilon=1e-6, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
        is_encoder_decoder=True, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    return model_class(config).eval()


def kl_vae(latent_channels: int, scaling_factor: float, shift_factor: float | None = None,
           **extra) -> AutoencoderKL:
    """The 8x AutoencoderKL of the SD family (real block_out_channels 128/256/512/512): 4 latent channels
    for SDXL/PixArt's SD VAE, 16 without quant convs for SD3/FLUX/Z-Image; 8-16 channels per level here."""
    sixteen = latent_channels == 16
    return AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(8, 8, 16, 16), layers_per_block=1,
        latent_channels=latent_channels, norm_num_groups=4, sample_size=64, scaling_factor=scaling_factor,
        shift_factor=shift_factor, use_quant_conv=not sixteen, use_post_quant_conv=not sixteen, **extra,
    ).eval()
