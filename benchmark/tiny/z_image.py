"""A tiny random-weight Z-Image pipeline (diffusers ZImagePipeline, Z-Image-Turbo layout), built offline.

Every component is the real class of Tongyi-MAI/Z-Image-Turbo (model_index.json: ZImageTransformer2DModel,
Qwen3Model text encoder, Qwen2Tokenizer, FlowMatchEulerDiscreteScheduler) with a scaled-down
config. The transformer keeps the real structure: 2 noise-refiner blocks (image only, timestep-modulated),
2 context-refiner blocks (caption only, unmodulated), then single-stream main blocks over [image, caption],
all with ZSingleStreamAttnProcessor, per-head RMS QK-norm and 3-axis RoPE; image and caption are padded to a
multiple of 32 with the learned x_pad_token / cap_pad_token (given random non-zero values here, since the
class initialises them to zeros and the real ones are trained).
"""
from __future__ import annotations

import torch
from diffusers import FlowMatchEulerDiscreteScheduler, ZImagePipeline, ZImageTransformer2DModel
from transformers import Qwen3Config, Qwen3Model

from .components import kl_vae
from .tokenizers import qwen_tokenizer

# Tiny generation settings for tests. Z-Image runs CFG (batched, one transformer call per step) whenever
# guidance_scale > 0; Turbo's own setting is 0. 64x96 pixels -> 8x12 latents -> 4x6 = 24 patches (+8 pads).
SETTINGS = {
    "steps": 2,
    "guidance": 2.0,
    "height": 64,
    "width": 96,
    "max_sequence_length": 64,
}

TEXT_HIDDEN = 32  # Qwen3-4B: 2560 (= the transformer's cap_feat_dim)

# Tongyi-MAI/Z-Image-Turbo scheduler/scheduler_config.json: static shift 3, no dynamic shifting.
SCHEDULER_CONFIG = {"num_train_timesteps": 1000, "shift": 3.0, "use_dynamic_shifting": False}


def _text_encoder(tokenizer) -> Qwen3Model:
    """Qwen3 (Z-Image-Turbo loads its text_encoder as transformers.Qwen3Model; the pipeline reads
    hidden_states[-2]). Real: 36 layers, 32 heads / 8 KV heads of dim 128; here 2 layers, 2 / 1 of dim 16."""
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=TEXT_HIDDEN,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        max_position_embeddings=2048,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),   # as Qwen3: 151643
        eos_token_id=tokenizer.eos_token_id,                             # <|im_end|>: 151645
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    return Qwen3Model(config).eval()


def build_pipeline(seed: int = 0) -> ZImagePipeline:
    """All components of the real classes with tiny configs, random weights from torch.manual_seed(seed)."""
    torch.manual_seed(seed)
    tokenizer = qwen_tokenizer()
    text_encoder = _text_encoder(tokenizer)
    # Z-Image-Turbo: dim 3840, 30 heads (head dim 128 = axes 32+48+48), 30 main layers, 2+2 refiner layers,
    # cap_feat_dim 2560, axes_lens [1536, 512, 512], rope_theta 256, patch 2, f_patch 1, in_channels 16.
    transformer = ZImageTransformer2DModel(
        all_patch_size=(2,),
        all_f_patch_size=(1,),
        in_channels=16,
        dim=32,
        n_layers=2,
        n_refiner_layers=2,
        n_heads=2,
        n_kv_heads=2,
        norm_eps=1e-5,
        qk_norm=True,
        cap_feat_dim=TEXT_HIDDEN,
        rope_theta=256.0,
        t_scale=1000.0,
        axes_dims=[4, 6, 6],
        axes_lens=[1536, 512, 512],
    ).eval()
    with torch.no_grad():
        transformer.x_pad_token.normal_()
        transformer.cap_pad_token.normal_()
    # Z-Image VAE (FLUX's AE): 16 latent channels, 4 levels (spatial factor 8), scaling 0.3611, shift 0.1159,
    # no quant convs. Narrow channels here.
    vae = kl_vae(16, scaling_factor=0.3611, shift_factor=0.1159)   # the FLUX VAE
    scheduler = FlowMatchEulerDiscreteScheduler(**SCHEDULER_CONFIG)
    return ZImagePipeline(
        scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, transformer=transformer
    )
