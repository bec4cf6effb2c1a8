"""PixArt-alpha (PixArtAlphaPipeline, PixArt-XL-2-1024-MS): DiT with separate self- and cross-attention.

Layout (read from diffusers 0.42 pipeline_pixart_alpha.py / pixart_transformer_2d.py / attention.py):
- Every BasicTransformerBlock runs attn1 (self-attention over the image patches: PatchEmbed flattens the
  (latent / patch_size) grid row-major, 2D sin-cos absolute position embedding added before the blocks)
  then attn2 (cross-attention to the T5 caption).
- Text keys: __call__ preprocesses the prompt with _text_preprocessing(clean_caption=True) (lower-case and
  strip, or the full _clean_caption when bs4 and ftfy are installed), then T5-tokenizes it with
  padding="max_length", max_length=max_sequence_length (120), truncation=True, add_special_tokens=True:
  [prompt pieces, </s>, <pad>...]. The attention mask becomes an additive bias ((1 - mask) * -10000) on
  attn2, so pad keys are masked; </s> is attended to.
- Image size: with use_resolution_binning (default True) height/width are first snapped to the nearest aspect
  ratio of ASPECT_RATIO_{1024,512,256}_BIN (by transformer sample_size 128/64/32), the latents are generated
  at that size and the decoded image is resized back. The patch grid is binned size / vae_scale_factor /
  patch_size.
- CFG (guidance_scale > 1) is batched: one transformer call per step on [uncond, cond] (the conditional
  branch is the SECOND half of the batch).
- No callback_on_step_end: the legacy callback(step, timestep, latents) with callback_steps=1 fires after
  every step (step index = i // scheduler.order; DPMSolverMultistepScheduler.order is 1).
"""
from __future__ import annotations

import contextlib
import logging

from ..family import AttentionLayer, Family, GenerationSettings
from ..segmentation import KeySegmentation, padded_text_keys, patch_keys

DEFAULT_MAX_SEQUENCE_LENGTH = 120   # PixArtAlphaPipeline.__call__ default
DEFAULT_CLEAN_CAPTION = True        # PixArtAlphaPipeline.__call__ default (call_kwargs does not change it)


def _aspect_ratio_bin(sample_size: int):
    from diffusers.pipelines.pixart_alpha.pipeline_pixart_alpha import (ASPECT_RATIO_256_BIN,
                                                                        ASPECT_RATIO_512_BIN,
                                                                        ASPECT_RATIO_1024_BIN)
    return {128: ASPECT_RATIO_1024_BIN, 64: ASPECT_RATIO_512_BIN, 32: ASPECT_RATIO_256_BIN}.get(int(sample_size))


@contextlib.contextmanager
def _quiet(pipe):
    """_text_preprocessing warns on every call when bs4/ftfy are missing (and falls back to lower().strip())."""
    logger = logging.getLogger(type(pipe).__module__)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


class PixArtFamily(Family):
    name = "pixart"
    pipeline_class = "PixArtAlphaPipeline"
    denoiser_attr = "transformer"
    legacy_callback = True
    video = False
    cfg = "batched_uncond_first"
    default_scheduler = "DPMSolverMultistepScheduler"

    def generation_context(self, pipe):
        return _quiet(pipe)

    # ------------------------------------------------------------ structure
    def attention_layers(self, denoiser) -> list[AttentionLayer]:
        layers: list[AttentionLayer] = []
        for i, block in enumerate(denoiser.transformer_blocks):
            for attr in ("attn1", "attn2"):
                module = getattr(block, attr, None)
                if module is None:
                    continue
                kind = "cross" if getattr(module, "is_cross_attention", False) else "self"
                layers.append(AttentionLayer(index=len(layers), name=f"transformer_blocks.{i}.{attr}", kind=kind,
                                             block="main", module=module))
        return layers

    # ------------------------------------------------------------ keys
    def generation_size(self, pipe, settings: GenerationSettings) -> tuple[int, int]:
        """(height, width) the latents are generated at: the requested size after resolution binning."""
        sample_size = pipe.transformer.config.sample_size
        height = int(settings.height or sample_size * pipe.vae_scale_factor)
        width = int(settings.width or sample_size * pipe.vae_scale_factor)
        ratios = _aspect_ratio_bin(sample_size)
        if ratios is None:
            raise ValueError(f"pixart: transformer sample_size {sample_size} has no resolution bin "
                             f"(PixArtAlphaPipeline raises 'Invalid sample size' too)")
        return pipe.image_processor.classify_height_width_bin(height, width, ratios=ratios)

    def _grid(self, pipe, settings: GenerationSettings) -> tuple[int, int]:
        height, width = self.generation_size(pipe, settings)
        patch = pipe.transformer.config.patch_size
        scale = pipe.vae_scale_factor
        return (int(height) // scale) // patch, (int(width) // scale) // patch

    def _text(self, pipe, prompt: str, settings: GenerationSettings) -> KeySegmentation:
        """The T5 keys of PixArtAlphaPipeline.encode_prompt for one prompt."""
        tokenizer = pipe.tokenizer
        with _quiet(pipe):
            text = pipe._text_preprocessing(prompt, clean_caption=DEFAULT_CLEAN_CAPTION)[0]
        max_len = settings.max_sequence_length or DEFAULT_MAX_SEQUENCE_LENGTH
        return padded_text_keys(tokenizer, text, int(max_len), padding_masked=True)

    def segment(self, pipe, prompt: str, settings: GenerationSettings, layer: AttentionLayer) -> KeySegmentation:
        if layer.kind == "cross":
            return self._text(pipe, prompt, settings).with_kind(layer.kind)
        rows, cols = self._grid(pipe, settings)
        return patch_keys(rows, cols).with_kind(layer.kind)


__all__ = ["PixArtFamily"]
