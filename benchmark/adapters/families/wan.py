"""Wan 2.1 text-to-video (WanPipeline, Wan-AI/Wan2.1-T2V-*-Diffusers): DiT with separate self/cross attention.

Layout (read from diffusers 0.42 pipeline_wan.py / transformer_wan.py):
- The prompt is cleaned with the pipeline's own prompt_clean (ftfy when installed, html unescape, whitespace
  collapsed), tokenized with padding="max_length", max_length=max_sequence_length (512 by default),
  truncation=True, add_special_tokens=True (T5/UMT5: prompt pieces, </s>, <pad>...; no BOS). UMT5 encodes
  it with the attention mask; the pipeline keeps the first seq_len = sum(mask) vectors and pads with ZERO
  vectors back to max_sequence_length. The transformer gets no text mask.
- Every WanTransformerBlock runs attn1 then attn2:
    attn1 (kind self)  keys = video patches, (frame, row, col) raster order from Conv3d(patch (1, 2, 2))
                       + flatten: frames = latent frames / p_t, rows = latent height / p_h, ...
    attn2 (kind cross) keys = the max_sequence_length text positions: prompt pieces, EOS, then the zero
                       pads (type "pad", NOT masked: with no mask they receive attention; their keys are
                       what the projections make of a zero vector, identical for every pad position).
- The pipeline rounds num_frames to 4k + 1 and height/width down to multiples of vae_scale * patch (16).
- True CFG (guidance_scale > 1): the transformer is called twice per step, the conditional branch first
  (cache_context "cond", batch = the prompts), then the negative prompt ("" by default, "uncond"); both
  calls have the same number of keys. Timesteps are passed as they are (1000 -> 0).
- Wan 2.2 (transformer_2 + boundary_ratio) switches denoisers mid-run; attention_layers() lists the
  layers of the one denoiser it is given.
"""
from __future__ import annotations

from ..family import AttentionLayer, Family, GenerationSettings
from ..segmentation import KeySegmentation, padded_text_keys, patch_keys

# WanPipeline.__call__ defaults, used when a setting is None.
DEFAULT_HEIGHT = 480
DEFAULT_WIDTH = 832
DEFAULT_NUM_FRAMES = 81
DEFAULT_MAX_SEQUENCE_LENGTH = 512


def _prompt_clean(text: str) -> str:
    """The pipeline's own prompt cleaning (same module, so the same ftfy availability)."""
    from diffusers.pipelines.wan.pipeline_wan import prompt_clean

    return prompt_clean(text)


class WanFamily(Family):
    name = "wan"
    pipeline_class = "WanPipeline"
    denoiser_attr = "transformer"
    legacy_callback = False
    video = True
    cfg = "separate_cond_first"
    default_scheduler = "UniPCMultistepScheduler"

    # ------------------------------------------------------------ structure
    def attention_layers(self, denoiser) -> list[AttentionLayer]:
        """Forward order: blocks.0.attn1, blocks.0.attn2, blocks.1.attn1, ..."""
        layers = []
        for i, block in enumerate(denoiser.blocks):
            for attr, kind in (("attn1", "self"), ("attn2", "cross")):
                layers.append(AttentionLayer(index=len(layers), name=f"blocks.{i}.{attr}", kind=kind,
                                             block="main", module=getattr(block, attr)))
        return layers

    # ------------------------------------------------------------ keys
    def _text(self, pipe, prompt: str, settings: GenerationSettings) -> KeySegmentation:
        """WanPipeline._get_t5_prompt_embeds for one prompt: every max_sequence_length position is a key."""
        max_len = int(settings.max_sequence_length or DEFAULT_MAX_SEQUENCE_LENGTH)
        # Positions past the prompt hold zero vectors in the pipeline (not the <pad> embedding), unmasked.
        return padded_text_keys(pipe.tokenizer, _prompt_clean(prompt), max_len, padding_masked=False)

    def _video(self, pipe, settings: GenerationSettings) -> KeySegmentation:
        """The patch grid WanPipeline.__call__ produces (same rounding of frames and size)."""
        denoiser = pipe.transformer if pipe.transformer is not None else pipe.transformer_2
        p_t, p_h, p_w = denoiser.config.patch_size
        scale_t = pipe.vae_scale_factor_temporal
        scale_s = pipe.vae_scale_factor_spatial
        num_frames = int(settings.num_frames or DEFAULT_NUM_FRAMES)
        if num_frames % scale_t != 1:
            num_frames = num_frames // scale_t * scale_t + 1
        num_frames = max(num_frames, 1)
        height = int(settings.height or DEFAULT_HEIGHT)
        width = int(settings.width or DEFAULT_WIDTH)
        height = height // (scale_s * p_h) * (scale_s * p_h)
        width = width // (scale_s * p_w) * (scale_s * p_w)
        latent_frames = (num_frames - 1) // scale_t + 1
        return patch_keys(rows=(height // scale_s) // p_h, cols=(width // scale_s) // p_w,
                          frames=latent_frames // p_t, video=True)

    def segment(self, pipe, prompt: str, settings: GenerationSettings, layer: AttentionLayer) -> KeySegmentation:
        if layer.kind == "self":
            return self._video(pipe, settings).with_kind(layer.kind)
        if layer.kind == "cross":
            return self._text(pipe, prompt, settings).with_kind(layer.kind)
        raise ValueError(f"{layer.name}: Wan has no {layer.kind!r} layers")


__all__ = ["WanFamily"]
