"""Z-Image (ZImagePipeline, Z-Image-Turbo): single-stream DiT with image and caption refiners.

Layout (read from diffusers 0.42 pipeline_z_image.py / transformer_z_image.py):
- The prompt goes through tokenizer.apply_chat_template([{"role": "user", ...}], add_generation_prompt=True,
  enable_thinking=True) -> "<|im_start|>user\\n{prompt}<|im_end|>\\n<|im_start|>assistant\\n", then the
  tokenizer with padding="max_length", max_length=max_sequence_length, truncation=True; Qwen3's
  hidden_states[-2] of the valid (attention_mask) tokens are the caption features, padding dropped.
- The transformer pads the caption and the image patches, each, to a multiple of 32 (SEQ_MULTI_OF) with the
  learned cap_pad_token / x_pad_token (unmasked: they are attended to), then:
    noise_refiner layers   keys = [image patches, learned image pads]                 (kind image_self)
    context_refiner layers keys = [caption tokens, learned caption pads]              (kind text_self)
    main layers            keys = [image patches + pads, caption tokens + pads]       (kind joint)
- CFG (guidance_scale > 0, not > 1) is batched: one transformer call per step on [cond..., uncond...]; items
  of a batch are zero-padded to the longest and masked, so the conditional caption can carry masked keys
  when the negative prompt's padded caption is longer. The model receives time reversed: t' = (1000 - t)/1000.
"""
from __future__ import annotations

from ..family import AttentionLayer, Family, GenerationSettings
from ..segmentation import KeySegmentation, learned_pad_keys, patch_keys, text_keys
from .qwen_image import chat_token_types

SEQ_MULTI_OF = 32   # diffusers.models.transformers.transformer_z_image.SEQ_MULTI_OF
DEFAULT_MAX_SEQUENCE_LENGTH = 512
DEFAULT_GUIDANCE = 5.0   # ZImagePipeline.__call__ default, used when settings.guidance is None


def _multiple_of(n: int, m: int = SEQ_MULTI_OF) -> int:
    return n + (-n) % m


def _masked_pad_keys(n: int) -> KeySegmentation:
    """Zero padding that makes the CFG batch rectangular (after the caption): masked, receives no attention."""
    return text_keys(["pad"] * n, tokens=[""] * n, masked=[True] * n, text_index=[-1] * n)


class ZImageFamily(Family):
    name = "z_image"
    pipeline_class = "ZImagePipeline"
    denoiser_attr = "transformer"
    legacy_callback = False
    video = False
    cfg = "batched_cond_first"
    default_scheduler = "FlowMatchEulerDiscreteScheduler"

    # ------------------------------------------------------------ structure
    _STACKS = (("noise_refiner", "image_self"), ("context_refiner", "text_self"), ("layers", "joint"))
    _BLOCK_LABEL = {"noise_refiner": "noise_refiner", "context_refiner": "context_refiner", "layers": "main"}

    def attention_layers(self, denoiser) -> list[AttentionLayer]:
        """Forward order: noise refiner (image), context refiner (caption), main layers ([image, caption]).
        (The Omni variant's siglip_refiner is not run by ZImagePipeline and is left out.)"""
        layers = []
        for stack, kind in self._STACKS:
            for i, block in enumerate(getattr(denoiser, stack)):
                layers.append(AttentionLayer(index=len(layers), name=f"{stack}.{i}.attention", kind=kind,
                                             block=self._BLOCK_LABEL[stack], module=block.attention))
        return layers

    # ------------------------------------------------------------ keys
    def _encode(self, pipe, prompt: str, settings: GenerationSettings):
        """The tokenizer call of ZImagePipeline._encode_prompt for one prompt: (ids, types, positions kept)."""
        tokenizer = pipe.tokenizer
        messages = [{"role": "user", "content": prompt}]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                             enable_thinking=True)
        # Where the prompt sits inside the rendered template (rendered once with a sentinel to be exact).
        sentinel = "\u0000SINKBENCH\u0000"
        rendered = tokenizer.apply_chat_template([{"role": "user", "content": sentinel}], tokenize=False,
                                                 add_generation_prompt=True, enable_thinking=True)
        start = rendered.index(sentinel)
        if text[start:start + len(prompt)] != prompt:
            start = text.find(prompt)
        stop = start + len(prompt)
        max_len = settings.max_sequence_length or DEFAULT_MAX_SEQUENCE_LENGTH
        encoded = tokenizer([text], padding="max_length", max_length=max_len, truncation=True,
                            return_offsets_mapping=True)
        ids = list(encoded["input_ids"][0])
        mask = list(encoded["attention_mask"][0])
        offsets = list(encoded["offset_mapping"][0])
        kept = [i for i, m in enumerate(mask) if m]             # prompt_embeds[i][prompt_masks[i]]
        types = chat_token_types(ids, offsets, start, stop, tokenizer)
        return ids, types, kept

    def _caption(self, pipe, prompt: str, settings: GenerationSettings) -> KeySegmentation:
        ids, types, kept = self._encode(pipe, prompt, settings)
        pieces = pipe.tokenizer.convert_ids_to_tokens([ids[i] for i in kept])
        caption = text_keys([types[i] for i in kept], tokens=pieces, text_index=kept)
        pads = _multiple_of(len(kept)) - len(kept)
        return KeySegmentation.concat([caption, learned_pad_keys(pads, "text")], layer_kind="text") if pads \
            else caption

    def _caption_batch_padding(self, pipe, prompt: str, settings: GenerationSettings, own: int) -> int:
        """Masked keys after the conditional caption when the batched negative caption is longer."""
        guidance = settings.guidance if settings.guidance is not None else DEFAULT_GUIDANCE
        if not guidance > 0:
            return 0
        negative = settings.negative_prompt if settings.negative_prompt is not None else ""
        _, _, kept = self._encode(pipe, negative, settings)
        return max(0, _multiple_of(len(kept)) - own)

    def _image(self, pipe, settings: GenerationSettings) -> KeySegmentation:
        height = int(settings.height or 1024)     # ZImagePipeline defaults to 1024 x 1024
        width = int(settings.width or 1024)
        patch = pipe.transformer.config.all_patch_size[0]
        scale = pipe.vae_scale_factor
        rows = (2 * (height // (scale * 2))) // patch
        cols = (2 * (width // (scale * 2))) // patch
        image = patch_keys(rows, cols)
        pads = _multiple_of(rows * cols) - rows * cols
        return KeySegmentation.concat([image, learned_pad_keys(pads, "image")], layer_kind="image") if pads \
            else image

    def segment(self, pipe, prompt: str, settings: GenerationSettings, layer: AttentionLayer) -> KeySegmentation:
        if layer.kind == "image_self":
            return self._image(pipe, settings).with_kind(layer.kind)
        caption = self._caption(pipe, prompt, settings)
        extra = self._caption_batch_padding(pipe, prompt, settings, len(caption))
        tail = [_masked_pad_keys(extra)] if extra else []
        if layer.kind == "text_self":
            return KeySegmentation.concat([caption, *tail], layer_kind=layer.kind)
        return KeySegmentation.concat([self._image(pipe, settings), caption, *tail], layer_kind=layer.kind)


__all__ = ["ZImageFamily"]
