"""What each key of an attention layer is: modality, token type and position.

Claims about *which* tokens are sinks (EOS vs PAD vs comma, text vs image, corner patches) stand on this
being right, so every family builds it from the pipeline's own tokenizer output and sequence layout, and the
tests check it against the keys the attention actually receives.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

MODALITIES = ("text", "image", "video")
TOKEN_TYPES = (
    "content",      # a word piece of the prompt
    "bos",          # begin-of-sequence (<|startoftext|>, <|im_start|> ...)
    "eos",          # the first end-of-sequence token after the prompt
    "pad",          # padding after EOS (CLIP pads with EOS or "!", T5 with <pad>, zeros in Wan)
    "comma",        # "," pieces of the prompt (paper B's comma sinks)
    "special",      # template / chat tokens that are not the user's words (Qwen system prompt, <|im_end|>)
    "learned_pad",  # learned pad embeddings appended by the model itself (Z-Image, to a multiple of 32)
    "patch",        # an image latent patch
    "frame_patch",  # a video latent patch
)
NO_POSITION = -1


@dataclass
class KeySegmentation:
    """Labels for the N keys of one attention layer (one batch item, one CFG branch).

    Arrays are length N. `row`/`col`/`frame` are the patch grid position for image/video keys and -1 for
    text keys; `text_index` is the position in the text sequence the pipeline builds (the tokenizer output;
    SD3: CLIP 0-76 then T5 from 77; Qwen-Image counts the dropped template prefix), -1 for other keys;
    `masked` marks keys the attention mask removes (they receive no attention)."""

    layer_kind: str
    modality: np.ndarray            # int8 index into MODALITIES
    token_type: np.ndarray          # int8 index into TOKEN_TYPES
    row: np.ndarray
    col: np.ndarray
    frame: np.ndarray
    text_index: np.ndarray
    masked: np.ndarray              # bool
    tokens: list[str] = field(default_factory=list)   # decoded piece per key ("" for patches)
    grid: tuple[int, int, int] | None = None           # (frames, rows, cols) of the latent patch grid

    def __len__(self) -> int:
        return int(self.modality.shape[0])

    # ---------------------------------------------------------------- queries
    def where(self, token_type: str | None = None, modality: str | None = None) -> np.ndarray:
        """Indices of keys with this token type and/or modality."""
        keep = np.ones(len(self), dtype=bool)
        if token_type is not None:
            keep &= self.token_type == TOKEN_TYPES.index(token_type)
        if modality is not None:
            keep &= self.modality == MODALITIES.index(modality)
        return np.flatnonzero(keep)

    def counts(self) -> dict[str, int]:
        """Number of keys per token type (only types present)."""
        values, counts = np.unique(self.token_type, return_counts=True)
        return {TOKEN_TYPES[v]: int(c) for v, c in zip(values, counts)}

    def type_names(self) -> list[str]:
        return [TOKEN_TYPES[t] for t in self.token_type]

    def spans(self) -> list[tuple[str, int, int]]:
        """Contiguous (modality, start, stop) runs, e.g. [("text", 0, 512), ("image", 512, 4608)]."""
        out: list[tuple[str, int, int]] = []
        for i, m in enumerate(self.modality):
            name = MODALITIES[m]
            if out and out[-1][0] == name and out[-1][2] == i:
                out[-1] = (name, out[-1][1], i + 1)
            else:
                out.append((name, i, i + 1))
        return out

    def to_dict(self) -> dict:
        return {
            "layer_kind": self.layer_kind, "n": len(self), "spans": self.spans(), "counts": self.counts(),
            "grid": list(self.grid) if self.grid else None,
            "token_type": self.type_names(), "tokens": list(self.tokens),
        }

    # ---------------------------------------------------------------- building
    @staticmethod
    def concat(parts: Sequence["KeySegmentation"], layer_kind: str) -> "KeySegmentation":
        """Keys laid out as the concatenation of `parts` (e.g. [text, image] in FLUX)."""
        grids = [p.grid for p in parts if p.grid is not None]
        return KeySegmentation(
            layer_kind=layer_kind,
            modality=np.concatenate([p.modality for p in parts]),
            token_type=np.concatenate([p.token_type for p in parts]),
            row=np.concatenate([p.row for p in parts]),
            col=np.concatenate([p.col for p in parts]),
            frame=np.concatenate([p.frame for p in parts]),
            text_index=np.concatenate([p.text_index for p in parts]),
            masked=np.concatenate([p.masked for p in parts]),
            tokens=[t for p in parts for t in p.tokens],
            grid=grids[0] if grids else None,
        )

    def with_kind(self, layer_kind: str) -> "KeySegmentation":
        return KeySegmentation(layer_kind, self.modality, self.token_type, self.row, self.col, self.frame,
                               self.text_index, self.masked, list(self.tokens), self.grid)


def _filled(n: int, value: int, dtype=np.int32) -> np.ndarray:
    return np.full(n, value, dtype=dtype)


def text_keys(token_types: Iterable[str], tokens: Sequence[str] | None = None,
              masked: Iterable[bool] | None = None, text_index: Iterable[int] | None = None) -> KeySegmentation:
    """Text keys with the given token types (one per key, in key order)."""
    types = np.array([TOKEN_TYPES.index(t) for t in token_types], dtype=np.int8)
    n = types.shape[0]
    return KeySegmentation(
        layer_kind="text", modality=_filled(n, MODALITIES.index("text"), np.int8), token_type=types,
        row=_filled(n, NO_POSITION), col=_filled(n, NO_POSITION), frame=_filled(n, NO_POSITION),
        text_index=np.arange(n, dtype=np.int32) if text_index is None else np.asarray(list(text_index), np.int32),
        masked=np.zeros(n, bool) if masked is None else np.asarray(list(masked), bool),
        tokens=list(tokens) if tokens is not None else [""] * n,
    )


def patch_keys(rows: int, cols: int, frames: int = 1, video: bool = False) -> KeySegmentation:
    """Latent patches in raster order (frame, row, col), as every family here flattens them."""
    f, r, c = np.meshgrid(np.arange(frames), np.arange(rows), np.arange(cols), indexing="ij")
    n = frames * rows * cols
    modality = MODALITIES.index("video" if video else "image")
    token_type = TOKEN_TYPES.index("frame_patch" if video else "patch")
    return KeySegmentation(
        layer_kind="image", modality=_filled(n, modality, np.int8), token_type=_filled(n, token_type, np.int8),
        row=r.ravel().astype(np.int32), col=c.ravel().astype(np.int32), frame=f.ravel().astype(np.int32),
        text_index=_filled(n, NO_POSITION), masked=np.zeros(n, bool), tokens=[""] * n,
        grid=(frames, rows, cols),
    )


def learned_pad_keys(n: int, modality: str) -> KeySegmentation:
    """Pad embeddings the model appends itself (Z-Image pads image and caption to a multiple of 32)."""
    return KeySegmentation(
        layer_kind=modality, modality=_filled(n, MODALITIES.index(modality), np.int8),
        token_type=_filled(n, TOKEN_TYPES.index("learned_pad"), np.int8),
        row=_filled(n, NO_POSITION), col=_filled(n, NO_POSITION), frame=_filled(n, NO_POSITION),
        text_index=_filled(n, NO_POSITION), masked=np.zeros(n, bool), tokens=["<learned_pad>"] * n,
    )


def classify_tokens(input_ids: Sequence[int], attention_mask: Sequence[int], tokenizer,
                    template_ids: frozenset[int] = frozenset()) -> list[str]:
    """Token type of each position of one tokenizer output.

    The first EOS after the prompt is "eos"; every later position is "pad" whatever its id (CLIP pads with
    EOS itself, SD3's second CLIP tokenizer with "!"); masked positions are "pad"; BOS is "bos"; "," pieces are
    "comma"; other special/template ids are "special"; the rest is "content"."""
    ids = [int(i) for i in input_ids]
    mask = [int(m) for m in attention_mask]
    bos = tokenizer.bos_token_id
    eos = tokenizer.eos_token_id
    special = set(getattr(tokenizer, "all_special_ids", [])) | set(template_ids)
    pieces = tokenizer.convert_ids_to_tokens(ids)
    types: list[str] = []
    seen_eos = False
    for position, (token_id, keep, piece) in enumerate(zip(ids, mask, pieces)):
        if seen_eos or not keep:
            types.append("pad")
        elif eos is not None and token_id == eos:
            types.append("eos")
            seen_eos = True
        elif bos is not None and token_id == bos and position == 0:
            types.append("bos")
        elif piece is not None and piece.replace("\u2581", "").replace("\u0120", "").replace("</w>", "") == ",":
            types.append("comma")
        elif token_id in special:
            types.append("special")
        else:
            types.append("content")
    return types


def padded_text_keys(tokenizer, text: str, max_length: int, *, padding_masked: bool) -> KeySegmentation:
    """The keys of one prompt tokenized as the T5/CLIP pipelines do (padding="max_length", truncation):
    prompt pieces, EOS, then padding, which the attention mask removes when `padding_masked` (PixArt, LTX)
    and which are real keys otherwise (FLUX, SD3, Wan: no text mask)."""
    encoded = tokenizer([text], padding="max_length", max_length=max_length, truncation=True,
                        add_special_tokens=True)
    ids = list(encoded["input_ids"][0])
    mask = list(encoded["attention_mask"][0])
    return text_keys(classify_tokens(ids, mask, tokenizer), tokens=tokenizer.convert_ids_to_tokens(ids),
                     masked=[not m for m in mask] if padding_masked else None)
