"""Stable Diffusion 3 (StableDiffusion3Pipeline, SD3-medium): MM-DiT joint attention over [image, text].

Layout (diffusers 0.42 pipeline_stable_diffusion_3.py / transformer_sd3.py, JointAttnProcessor2_0):
- Text = 77 CLIP positions (CLIP-L and CLIP-G hidden states side by side, both tokenized with
  padding="max_length", max_length=77: <|startoftext|> prompt <|endoftext|> then padding, "!" for the second
  tokenizer) followed by max_sequence_length T5 positions (256 by default): prompt </s> <pad>...
  No attention mask: every CLIP and T5 pad is a key.
- Joint keys: [image patches ((h/8)/2 x (w/8)/2, raster order), text 77 + T5]; the image comes first.
- CFG is batched: one call per step on [negative, positive], the conditional branch second.
- SD3.5 checkpoints (same pipeline class) add a second, image-only attention (attn2, kind "self": keys =
  the image patches) to the first dual_attention_layers blocks; it runs right after the block's joint attn.
- Without text_encoder_3 the pipeline feeds max_sequence_length zero vectors in place of T5: labelled "pad".
"""
from __future__ import annotations

from ..family import AttentionLayer, Family, GenerationSettings
from ..segmentation import KeySegmentation, padded_text_keys, patch_keys, text_keys

DEFAULT_MAX_SEQUENCE_LENGTH = 256


class SD3Family(Family):
    name = "sd3"
    pipeline_class = "StableDiffusion3Pipeline"
    denoiser_attr = "transformer"
    legacy_callback = False
    video = False
    cfg = "batched_uncond_first"
    default_scheduler = "FlowMatchEulerDiscreteScheduler"
    key_tokenizer_attr = "tokenizer_3"
    joint_text_first = False

    def attention_layers(self, denoiser) -> list[AttentionLayer]:
        """Per block: the joint attn, then (SD3.5 dual-attention blocks only) the image-only attn2."""
        layers: list[AttentionLayer] = []
        for i, block in enumerate(denoiser.transformer_blocks):
            layers.append(AttentionLayer(index=len(layers), name=f"transformer_blocks.{i}.attn", kind="joint",
                                         block="joint", module=block.attn))
            if getattr(block, "attn2", None) is not None:
                layers.append(AttentionLayer(index=len(layers), name=f"transformer_blocks.{i}.attn2", kind="self",
                                             block="joint", module=block.attn2))
        return layers

    def segment(self, pipe, prompt: str, settings: GenerationSettings, layer: AttentionLayer) -> KeySegmentation:
        if layer.kind not in ("joint", "self"):
            raise ValueError(f"{layer.name}: SD3 has joint (and SD3.5 image self-) attention, not {layer.kind!r}")
        height = int(settings.height or pipe.default_sample_size * pipe.vae_scale_factor)
        width = int(settings.width or pipe.default_sample_size * pipe.vae_scale_factor)
        patch = pipe.transformer.config.patch_size
        image = patch_keys((height // pipe.vae_scale_factor) // patch, (width // pipe.vae_scale_factor) // patch)
        if layer.kind == "self":
            return image.with_kind("self")
        clip = padded_text_keys(pipe.tokenizer, prompt, pipe.tokenizer_max_length, padding_masked=False)
        max_length = int(settings.max_sequence_length or DEFAULT_MAX_SEQUENCE_LENGTH)
        if getattr(pipe, "text_encoder_3", None) is None:   # _get_t5_prompt_embeds returns zeros
            t5 = text_keys(["pad"] * max_length, tokens=["<zeros>"] * max_length)
        else:
            t5 = padded_text_keys(pipe.tokenizer_3, prompt, max_length, padding_masked=False)
        t5.text_index = t5.text_index + len(clip)      # position in the concatenated text sequence
        return KeySegmentation.concat([image, clip, t5], layer_kind="joint")


__all__ = ["SD3Family"]
