"""LTX-Video (LTXPipeline, Lightricks/LTX-Video): DiT with separate self/cross attention.

Layout (read from diffusers 0.42 pipeline_ltx.py / transformer_ltx.py):
- The prompt is tokenized with padding="max_length", max_length=max_sequence_length (128 by default),
  truncation=True, add_special_tokens=True (T5: prompt pieces, </s>, <pad>...; no BOS) and encoded by T5
  WITHOUT the mask; the mask goes to the transformer, which turns it into an additive bias
  (1 - mask) * -10000 on the cross-attention logits.
- Every LTXVideoTransformerBlock runs attn1 then attn2:
    attn1 (kind self)  keys = video tokens (patch size 1 x 1 in LTX-Video: one per latent voxel), packed by
                       _pack_latents in (frame, row, col) raster order; latent frames = (F - 1) // 8 + 1,
                       rows = height // 32, cols = width // 32 (the VAE's compression), / patch size.
    attn2 (kind cross) keys = the max_sequence_length T5 positions; padding after EOS is masked (-10000).
- CFG (guidance_scale > 1) is batched: ONE transformer call per step on torch.cat([negative, positive]),
  so the conditional branch is the SECOND half of the batch (item B..2B-1), the unconditional one the first.
  Both halves are padded to max_sequence_length, so they have the same keys. No rope on text.
"""
from __future__ import annotations

from ..family import AttentionLayer, Family, GenerationSettings
from ..segmentation import KeySegmentation, padded_text_keys, patch_keys

# LTXPipeline.__call__ defaults, used when a setting is None.
DEFAULT_HEIGHT = 512
DEFAULT_WIDTH = 704
DEFAULT_NUM_FRAMES = 161
DEFAULT_MAX_SEQUENCE_LENGTH = 128


class LTXFamily(Family):
    name = "ltx"
    pipeline_class = "LTXPipeline"
    denoiser_attr = "transformer"
    legacy_callback = False
    video = True
    cfg = "batched_uncond_first"
    default_scheduler = "FlowMatchEulerDiscreteScheduler"

    # ------------------------------------------------------------ structure
    def attention_layers(self, denoiser) -> list[AttentionLayer]:
        """Forward order: transformer_blocks.0.attn1, transformer_blocks.0.attn2, transformer_blocks.1.attn1, ..."""
        layers = []
        for i, block in enumerate(denoiser.transformer_blocks):
            for attr, kind in (("attn1", "self"), ("attn2", "cross")):
                layers.append(AttentionLayer(index=len(layers), name=f"transformer_blocks.{i}.{attr}", kind=kind,
                                             block="main", module=getattr(block, attr)))
        return layers

    # ------------------------------------------------------------ keys
    def _text(self, pipe, prompt: str, settings: GenerationSettings) -> KeySegmentation:
        """LTXPipeline._get_t5_prompt_embeds for one prompt: max_sequence_length keys, padding masked."""
        max_len = int(settings.max_sequence_length or DEFAULT_MAX_SEQUENCE_LENGTH)
        return padded_text_keys(pipe.tokenizer, prompt, max_len, padding_masked=True)

    def _video(self, pipe, settings: GenerationSettings) -> KeySegmentation:
        """The token grid LTXPipeline.prepare_latents / _pack_latents produce."""
        num_frames = int(settings.num_frames or DEFAULT_NUM_FRAMES)
        height = int(settings.height or DEFAULT_HEIGHT)
        width = int(settings.width or DEFAULT_WIDTH)
        latent_frames = (num_frames - 1) // pipe.vae_temporal_compression_ratio + 1
        latent_height = height // pipe.vae_spatial_compression_ratio
        latent_width = width // pipe.vae_spatial_compression_ratio
        p = pipe.transformer_spatial_patch_size
        p_t = pipe.transformer_temporal_patch_size
        return patch_keys(rows=latent_height // p, cols=latent_width // p, frames=latent_frames // p_t, video=True)

    def segment(self, pipe, prompt: str, settings: GenerationSettings, layer: AttentionLayer) -> KeySegmentation:
        if layer.kind == "self":
            return self._video(pipe, settings).with_kind(layer.kind)
        if layer.kind == "cross":
            return self._text(pipe, prompt, settings).with_kind(layer.kind)
        raise ValueError(f"{layer.name}: LTX has no {layer.kind!r} layers")


__all__ = ["LTXFamily"]
