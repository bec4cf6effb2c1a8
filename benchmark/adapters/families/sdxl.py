"""SDXL (StableDiffusionXLPipeline, SDXL base 1.0): U-Net with self- and cross-attention at several resolutions.

Layout (read from diffusers 0.42 pipeline_stable_diffusion_xl.py / unet_2d_condition.py / unet_2d_blocks.py):
- Attention lives in the Transformer2DModels of the CrossAttn down blocks, the mid block and the CrossAttn up
  blocks. Each BasicTransformerBlock runs attn1 (self-attention over the latent pixels of its level, flattened
  row-major by the linear projection: keys = rows x cols of that level) then attn2 (cross-attention: keys =
  the 77 text positions). Forward order: down blocks (resnet, attention pairs), mid block, up blocks.
- Text keys: encode_prompt tokenizes the prompt with BOTH CLIP tokenizers (padding="max_length",
  max_length=tokenizer.model_max_length = 77, truncation=True), takes hidden_states[-2] of each encoder and
  concatenates the two along the feature axis, so the 77 keys are the 77 token positions of both
  tokenizers at once. Tokenizer 1 pads with <|endoftext|>, tokenizer 2 with "!"; positions agree (same BPE),
  classify_tokens labels everything after the first EOS "pad" for either. No attention mask: pad keys are
  attended to (masked=False).
- Resolution per level: latents are height // vae_scale_factor; each down block with a downsampler halves
  them (stride-2 conv, ceil for padding 1); up block i runs at the resolution of down block n-1-i, the mid
  block at that of the last down block.
- CFG (guidance_scale > 1, and time_cond_proj_dim None) is batched: one U-Net call per step on
  [uncond, cond] (the conditional branch is the SECOND half of the batch). With no negative prompt
  (force_zeros_for_empty_prompt) the unconditional text features are all zeros.
- Step callback: callback_on_step_end.
"""
from __future__ import annotations

from ..family import AttentionLayer, Family, GenerationSettings
from ..segmentation import KeySegmentation, classify_tokens, patch_keys, text_keys


def _conv_out(size: int, conv) -> int:
    kernel = conv.kernel_size[0] if isinstance(conv.kernel_size, tuple) else conv.kernel_size
    stride = conv.stride[0] if isinstance(conv.stride, tuple) else conv.stride
    padding = conv.padding[0] if isinstance(conv.padding, tuple) else conv.padding
    return (size + 2 * padding - kernel) // stride + 1


def _downsampled(size: int, downsampler) -> int:
    """Output size of a diffusers Downsample2D (stride-2 conv; padding 0 first pads right/bottom by one)."""
    conv = getattr(downsampler, "conv", None)
    if getattr(downsampler, "use_conv", False) and hasattr(conv, "kernel_size"):
        extra = 1 if getattr(downsampler, "padding", 1) == 0 else 0
        return _conv_out(size + extra, conv)
    return size // 2    # AvgPool2d(2, 2)


class SDXLFamily(Family):
    name = "sdxl"
    pipeline_class = "StableDiffusionXLPipeline"
    denoiser_attr = "unet"
    legacy_callback = False
    video = False
    cfg = "batched_uncond_first"
    default_scheduler = "EulerDiscreteScheduler"

    # ------------------------------------------------------------ structure
    @staticmethod
    def _stages(unet):
        """(prefix, block label, block module) in forward order."""
        stages = [(f"down_blocks.{i}", f"down.{i}", b) for i, b in enumerate(unet.down_blocks)]
        if getattr(unet, "mid_block", None) is not None:
            stages.append(("mid_block", "mid", unet.mid_block))
        stages += [(f"up_blocks.{i}", f"up.{i}", b) for i, b in enumerate(unet.up_blocks)]
        return stages

    def attention_layers(self, denoiser) -> list[AttentionLayer]:
        """Every attn1/attn2 of every BasicTransformerBlock, in forward order (within a block the resnet and
        attention modules alternate, so the attentions run in their list order)."""
        layers: list[AttentionLayer] = []
        for prefix, label, block in self._stages(denoiser):
            for a, transformer in enumerate(getattr(block, "attentions", None) or []):
                for t, tblock in enumerate(getattr(transformer, "transformer_blocks", [])):
                    for attr in ("attn1", "attn2"):
                        module = getattr(tblock, attr, None)
                        if module is None:
                            continue
                        kind = "cross" if getattr(module, "is_cross_attention", False) else "self"
                        layers.append(AttentionLayer(
                            index=len(layers), name=f"{prefix}.attentions.{a}.transformer_blocks.{t}.{attr}",
                            kind=kind, block=label, module=module))
        return layers

    # ------------------------------------------------------------ keys
    def _size(self, pipe, settings: GenerationSettings) -> tuple[int, int]:
        default = pipe.default_sample_size * pipe.vae_scale_factor
        height = int(settings.height or default)
        width = int(settings.width or default)
        return height // pipe.vae_scale_factor, width // pipe.vae_scale_factor   # prepare_latents

    def _level_grid(self, pipe, settings: GenerationSettings, block_label: str) -> tuple[int, int]:
        """(rows, cols) of the latent pixels that the Transformer2DModels of this block see."""
        rows, cols = self._size(pipe, settings)
        unet = pipe.unet
        inputs = []                                  # input size of each down block
        for block in unet.down_blocks:
            inputs.append((rows, cols))
            for down in getattr(block, "downsamplers", None) or []:
                rows, cols = _downsampled(rows, down), _downsampled(cols, down)
        if block_label == "mid":
            return rows, cols
        side, index = block_label.split(".")
        index = int(index)
        if side == "down":
            return inputs[index]
        return inputs[len(unet.down_blocks) - 1 - index]   # up block i: resolution of down block n-1-i

    def _tokenizers(self, pipe):
        return [t for t in (pipe.tokenizer, pipe.tokenizer_2) if t is not None]

    def _text(self, pipe, prompt: str) -> KeySegmentation:
        """The 77 text keys: the token positions of both CLIP tokenizers (prompt_2 = prompt). Labels and pieces
        come from the first tokenizer; the second splits the prompt identically (same BPE) and only pads
        with "!" instead of <|endoftext|>, which classify_tokens labels "pad" all the same."""
        tokenizer = self._tokenizers(pipe)[0]
        text = pipe.maybe_convert_prompt(prompt, tokenizer) if hasattr(pipe, "maybe_convert_prompt") else prompt
        encoded = tokenizer([text], padding="max_length", max_length=tokenizer.model_max_length, truncation=True)
        ids = list(encoded["input_ids"][0])
        types = classify_tokens(ids, list(encoded["attention_mask"][0]), tokenizer)
        pieces = tokenizer.convert_ids_to_tokens(ids)
        return text_keys(types, tokens=pieces, masked=[False] * len(ids))

    def segment(self, pipe, prompt: str, settings: GenerationSettings, layer: AttentionLayer) -> KeySegmentation:
        if layer.kind == "cross":
            return self._text(pipe, prompt).with_kind(layer.kind)
        rows, cols = self._level_grid(pipe, settings, layer.block)
        return patch_keys(rows, cols).with_kind(layer.kind)


__all__ = ["SDXLFamily"]
