"""FLUX.1 (FluxPipeline, black-forest-labs/FLUX.1-dev): MM-DiT with double- then single-stream blocks.

Layout (diffusers 0.42 pipeline_flux.py / transformer_flux.py):
- T5 tokenizes the prompt with padding="max_length", max_length=max_sequence_length (512 by default),
  truncation=True: prompt pieces, </s>, <pad>... No attention mask reaches the transformer, so every PAD is
  a key that receives attention. CLIP only gives the pooled vector (no keys).
- Every attention layer (transformer_blocks.{i}.attn, double stream, then single_transformer_blocks.{i}.attn)
  has the same keys: [T5 text (max_sequence_length), image patches (h/16 x w/16 in raster order)]: the
  latents (h/8 x w/8) are packed 2x2.
- FLUX.1-dev is guidance-distilled: one transformer call per step; true CFG (true_cfg_scale > 1 with a
  negative prompt) would call it twice, conditional first.
"""
from __future__ import annotations

from ..family import AttentionLayer, Family, GenerationSettings
from ..segmentation import KeySegmentation, padded_text_keys, patch_keys

DEFAULT_MAX_SEQUENCE_LENGTH = 512


class FluxFamily(Family):
    name = "flux"
    pipeline_class = "FluxPipeline"
    denoiser_attr = "transformer"
    legacy_callback = False
    video = False
    cfg = "separate_cond_first"
    default_scheduler = "FlowMatchEulerDiscreteScheduler"
    key_tokenizer_attr = "tokenizer_2"

    def call_kwargs(self, pipe, settings: GenerationSettings) -> dict:
        """FLUX.1-dev is guidance-distilled (guidance_scale feeds its guidance embedding). A FLUX-class model
        without that embedding (SinkBench's organism) runs true CFG: guidance -> true_cfg_scale with a negative
        prompt ("" unless set), two transformer calls per step, conditional first."""
        kwargs = super().call_kwargs(pipe, settings)
        if not pipe.transformer.config.guidance_embeds and settings.guidance is not None:
            kwargs.pop("guidance_scale", None)
            if settings.guidance > 1:
                kwargs["true_cfg_scale"] = settings.guidance
                kwargs["negative_prompt"] = self.negative_prompt(settings)
        return kwargs

    def attention_layers(self, denoiser) -> list[AttentionLayer]:
        layers: list[AttentionLayer] = []
        for stream, blocks, prefix in (("double", denoiser.transformer_blocks, "transformer_blocks"),
                                       ("single", denoiser.single_transformer_blocks, "single_transformer_blocks")):
            for i, block in enumerate(blocks):
                layers.append(AttentionLayer(index=len(layers), name=f"{prefix}.{i}.attn", kind="joint",
                                             block=stream, module=block.attn))
        return layers

    def segment(self, pipe, prompt: str, settings: GenerationSettings, layer: AttentionLayer) -> KeySegmentation:
        if layer.kind != "joint":
            raise ValueError(f"{layer.name}: FLUX has only joint attention layers, not {layer.kind!r}")
        text = padded_text_keys(pipe.tokenizer_2, prompt, int(settings.max_sequence_length or DEFAULT_MAX_SEQUENCE_LENGTH),
                                padding_masked=False)
        height = int(settings.height or pipe.default_sample_size * pipe.vae_scale_factor)
        width = int(settings.width or pipe.default_sample_size * pipe.vae_scale_factor)
        # prepare_latents: latent size 2 * (size // (vae_scale_factor * 2)), then 2x2 packing.
        rows = (2 * (height // (pipe.vae_scale_factor * 2))) // 2
        cols = (2 * (width // (pipe.vae_scale_factor * 2))) // 2
        return KeySegmentation.concat([text, patch_keys(rows, cols)], layer_kind="joint")


__all__ = ["FluxFamily"]
