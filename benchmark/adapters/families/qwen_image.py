"""Qwen-Image (QwenImagePipeline): dual-stream MM-DiT, joint attention over [text, image].

Layout (read from diffusers 0.42 pipeline_qwenimage.py / transformer_qwenimage.py):
- The prompt is wrapped in a chat template with a fixed system prompt, tokenized with padding=True and
  max_length=1024 + drop_idx, encoded by Qwen2.5-VL (last hidden state); the valid tokens are kept and the
  first `prompt_template_encode_start_idx` (34) are dropped (system prompt and "<|im_start|>user\\n" under the
  real tokenizer), then cut to max_sequence_length. What is left, "{prompt}<|im_end|>\\n<|im_start|>assistant\\n",
  are the text keys.
- Every block's QwenDoubleStreamAttnProcessor2_0 runs ONE sdpa over [text, image] (text first). The text mask
  is dropped when no key is padded (always for one prompt), so there are no masked keys for a single prompt.
- Image keys are the 2x2-packed latent patches in raster order: rows = height / (vae_scale_factor * 2).
- True CFG (true_cfg_scale > 1 AND a negative prompt): the transformer is called twice per step, the
  conditional branch first (cache_context "cond"), then the negative one; each call has its own text length.
"""
from __future__ import annotations

from typing import Any

from ..family import AttentionLayer, Family, GenerationSettings
from ..segmentation import KeySegmentation, classify_tokens, patch_keys, text_keys

DEFAULT_NEGATIVE_PROMPT = " "   # the model card's example enables true CFG with negative_prompt=" "


def chat_token_types(input_ids, offsets, prompt_start: int, prompt_stop: int, tokenizer) -> list[str]:
    """Token types of a chat-templated tokenization: pieces of the user's prompt (by character offset) get
    classify_tokens' content/comma; the first EOS id after the prompt is "eos"; every other template token
    (system prompt, role names, <|im_start|>, the assistant turn) is "special"."""
    ids = [int(i) for i in input_ids]
    in_prompt = [int(start) < prompt_stop and int(stop) > prompt_start for start, stop in offsets]
    prompt_positions = [i for i, inside in enumerate(in_prompt) if inside]
    prompt_types = classify_tokens([ids[i] for i in prompt_positions], [1] * len(prompt_positions), tokenizer)
    types = ["special"] * len(ids)
    for position, kind in zip(prompt_positions, prompt_types):
        types[position] = kind if kind in ("content", "comma") else "special"
    eos = tokenizer.eos_token_id
    for i, token_id in enumerate(ids):
        if not in_prompt[i] and token_id == eos and int(offsets[i][0]) >= prompt_stop:
            types[i] = "eos"
            break
    return types


class QwenImageFamily(Family):
    name = "qwen_image"
    pipeline_class = "QwenImagePipeline"
    denoiser_attr = "transformer"
    legacy_callback = False
    video = False
    cfg = "separate_cond_first"
    default_scheduler = "FlowMatchEulerDiscreteScheduler"

    # ------------------------------------------------------------ structure
    def attention_layers(self, denoiser) -> list[AttentionLayer]:
        layers = []
        for i, block in enumerate(denoiser.transformer_blocks):
            layers.append(AttentionLayer(index=len(layers), name=f"transformer_blocks.{i}.attn", kind="joint",
                                         block="double", module=block.attn))
        return layers

    def _text_segment(self, pipe, prompt: str, settings: GenerationSettings) -> KeySegmentation:
        """The text keys of one prompt, exactly as QwenImagePipeline._get_qwen_prompt_embeds builds them."""
        template = pipe.prompt_template_encode
        drop = pipe.prompt_template_encode_start_idx
        text = template.format(prompt)
        prompt_start = template.index("{}")
        prompt_stop = prompt_start + len(prompt)
        encoded = pipe.tokenizer([text], max_length=pipe.tokenizer_max_length + drop, padding=True,
                                 truncation=True, return_offsets_mapping=True)
        ids = list(encoded["input_ids"][0])
        mask = list(encoded["attention_mask"][0])
        offsets = list(encoded["offset_mapping"][0])
        valid = [i for i, m in enumerate(mask) if m]            # _extract_masked_hidden
        kept = valid[drop:]                                     # e[drop_idx:]
        max_len = settings.max_sequence_length if settings.max_sequence_length is not None else 512
        kept = kept[:max_len]                                   # prompt_embeds[:, :max_sequence_length]
        types_all = chat_token_types(ids, offsets, prompt_start, prompt_stop, pipe.tokenizer)
        pieces = pipe.tokenizer.convert_ids_to_tokens([ids[i] for i in kept])
        return text_keys([types_all[i] for i in kept], tokens=pieces, text_index=kept)

    def _grid(self, pipe, settings: GenerationSettings) -> tuple[int, int]:
        height = settings.height or pipe.default_sample_size * pipe.vae_scale_factor
        width = settings.width or pipe.default_sample_size * pipe.vae_scale_factor
        return int(height) // (pipe.vae_scale_factor * 2), int(width) // (pipe.vae_scale_factor * 2)

    def segment(self, pipe, prompt: str, settings: GenerationSettings, layer: AttentionLayer) -> KeySegmentation:
        rows, cols = self._grid(pipe, settings)
        parts = [self._text_segment(pipe, prompt, settings), patch_keys(rows, cols)]
        return KeySegmentation.concat(parts, layer_kind=layer.kind)

    # ------------------------------------------------------------ driving the pipeline
    def negative_prompt(self, settings: GenerationSettings) -> str:
        return settings.negative_prompt if settings.negative_prompt is not None else DEFAULT_NEGATIVE_PROMPT

    def call_kwargs(self, pipe, settings: GenerationSettings) -> dict[str, Any]:
        """Qwen-Image's CFG is `true_cfg_scale` with a negative prompt (`guidance_scale` is only for
        guidance-distilled variants): settings.guidance -> true_cfg_scale, and a " " negative prompt when
        guidance > 1 and none is set."""
        kwargs: dict[str, Any] = {"num_inference_steps": settings.steps, "output_type": "np"}
        for key in ("height", "width", "max_sequence_length"):
            value = getattr(settings, key)
            if value is not None:
                kwargs[key] = value
        if settings.guidance is not None:
            kwargs["true_cfg_scale"] = settings.guidance
            if getattr(pipe.transformer.config, "guidance_embeds", False):
                kwargs["guidance_scale"] = settings.guidance
            if settings.guidance > 1:
                kwargs["negative_prompt"] = (settings.negative_prompt if settings.negative_prompt is not None
                                             else DEFAULT_NEGATIVE_PROMPT)
        elif settings.negative_prompt is not None:
            kwargs["negative_prompt"] = settings.negative_prompt
        return kwargs


__all__ = ["QwenImageFamily", "chat_token_types"]
