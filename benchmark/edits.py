"""Prompt-token and weight edits of paper B, as runner conditions (data in, context manager out).

- content_swap (B13): the text tokens at fixed positions of the key sequence's tokenizer output are replaced
  by another token (EOS, PAD or comma), the rest unchanged: same positions, same seed, different content.
- pe_edit (B14): the absolute position embedding of chosen image patches is replaced by the embedding of a
  source patch (the top-left corner by default), everything else unchanged.
Comma padding (B16/B17) is a prompt transform (benchmark.prompts), not an edit.
"""
from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from typing import Any, Iterator, Mapping

import torch

SWAP_TOKENS = ("eos", "pad", "comma")


class EditError(ValueError):
    pass


@dataclass(frozen=True)
class ContentSwap:
    positions: tuple[int, ...]          # positions in the key tokenizer's output (0-based)
    token: str = "eos"

    def __post_init__(self):
        if self.token not in SWAP_TOKENS:
            raise EditError(f"content_swap token {self.token!r} is not one of {SWAP_TOKENS}")
        if not self.positions or min(self.positions) < 0:
            raise EditError("content_swap needs non-negative positions")

    def token_id(self, tokenizer) -> int:
        if self.token == "eos":
            return tokenizer.eos_token_id
        if self.token == "pad":
            return tokenizer.pad_token_id
        ids = tokenizer(",", add_special_tokens=False)["input_ids"]
        pieces = [i for i in ids if tokenizer.convert_ids_to_tokens(i).strip("\u2581\u0120") == ","]
        if not pieces:
            raise EditError("the tokenizer has no ',' piece")
        return pieces[0]


@dataclass(frozen=True)
class PositionEmbeddingEdit:
    targets: tuple[tuple[int, int], ...]    # (row, col) patches that get the source's embedding
    source: tuple[int, int] = (0, 0)

    def __post_init__(self):
        if not self.targets:
            raise EditError("pe_edit needs target (row, col) patches")


class _EditingTokenizer:
    """Delegates to a tokenizer and replaces the ids at fixed positions of every call's output."""

    def __init__(self, tokenizer, swap: ContentSwap):
        self._tokenizer = tokenizer
        self._swap = swap
        self._id = swap.token_id(tokenizer)

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)

    def __call__(self, *args, **kwargs):
        encoded = self._tokenizer(*args, **kwargs)
        ids = encoded["input_ids"]
        rows = ids if isinstance(ids, torch.Tensor) or (ids and isinstance(ids[0], list)) else [ids]
        for row in rows:
            for p in self._swap.positions:
                if p < len(row):
                    row[p] = self._id
        return encoded


@contextlib.contextmanager
def content_swap(pipe, tokenizer_attr: str, swap: ContentSwap) -> Iterator[None]:
    original = getattr(pipe, tokenizer_attr)
    object.__setattr__(pipe, tokenizer_attr, _EditingTokenizer(original, swap))   # bypass config registration
    try:
        yield
    finally:
        object.__setattr__(pipe, tokenizer_attr, original)


@contextlib.contextmanager
def position_embedding_edit(denoiser, edit: PositionEmbeddingEdit) -> Iterator[None]:
    """Forward hook on the denoiser's PatchEmbed: out = patches + PE; the targets get PE(source) instead.
    PE is measured as out - (the same forward with the PE switched off), so cropping and interpolation of
    the family's PE are whatever the model itself does."""
    module = getattr(denoiser, "pos_embed", None)
    if module is None or getattr(module, "pos_embed", None) is None:
        raise EditError(f"{type(denoiser).__name__} has no absolute position embedding (pos_embed)")
    busy = []

    def hook(mod, args, output):
        if busy:
            return None
        busy.append(True)
        saved = mod.pos_embed
        try:
            mod.pos_embed = None
            without = mod(*args)
        finally:
            mod.pos_embed = saved
            busy.pop()
        latent = args[0]
        patch = mod.patch_size
        cols = latent.shape[-1] // patch
        rows = latent.shape[-2] // patch
        pe = output - without
        index = [r * cols + c for r, c in edit.targets]
        if max(index) >= output.shape[1] or not (0 <= edit.source[0] < rows and 0 <= edit.source[1] < cols):
            raise EditError(f"pe_edit positions outside the {rows}x{cols} patch grid")
        edited = output.clone()
        edited[:, index] = without[:, index] + pe[:, [edit.source[0] * cols + edit.source[1]]]
        return edited

    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def from_params(name: str, params: Mapping[str, Any]):
    if name == "content_swap":
        return ContentSwap(positions=tuple(int(p) for p in params["positions"]), token=params.get("token", "eos"))
    if name == "pe_edit":
        return PositionEmbeddingEdit(targets=tuple(tuple(int(x) for x in t) for t in params["targets"]),
                                     source=tuple(int(x) for x in params.get("source", (0, 0))))
    raise EditError(f"unknown edit {name!r}")


def as_condition(name: str, edit) -> Any:
    from .runner import Condition

    def frozen(v):
        return tuple(frozen(x) for x in v) if isinstance(v, (list, tuple)) else v

    return Condition.make(name, **{k: frozen(v) for k, v in asdict(edit).items()})
