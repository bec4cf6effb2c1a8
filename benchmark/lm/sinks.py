"""Paper C's sink rule and token classes, as pure functions (unit-tested on planted attention).

The rule (paper C, Method): with A_bar_j = (1/S) sum_i A_ij the attention key j receives, averaged over the S
queries (and here over heads), token j is a sink when A_bar_j > mean_{k != j} A_bar_k + eps. The paper does not
give eps's units (eps = 3 cannot be exceeded by a share of attention that sums to 1), so SinkBench measures
A_bar in units of the uniform share 1/N (N keys): j is a sink when N * A_bar_j exceeds N times the mean of the
others by more than eps, i.e. at eps = 3 a sink gets at least ~4x the average key's attention. eps stays a
parameter and every verdict reports the fraction of tokens the rule filters out.
"""
from __future__ import annotations

import string
from typing import Callable

import numpy as np

DEFAULT_EPS = 3.0
STRUCTURAL = ("punctuation", "whitespace", "eos")      # C04's token classes
CLASSES = ("content", "punctuation", "whitespace", "eos", "bos", "pad", "mask")


def sink_margin(mass: np.ndarray, total: np.ndarray | float, n_keys: np.ndarray | int) -> np.ndarray:
    """N * (A_bar_j - mean of the other keys' A_bar), in units of the uniform share. `mass` holds A_bar_j of
    any keys (e.g. the stored top keys, last axis), `total` the sum of A_bar over all N keys (1 for softmax rows)."""
    mass = np.asarray(mass, dtype=np.float64)
    n = np.asarray(n_keys, dtype=np.float64)[..., None]
    total = np.asarray(total, dtype=np.float64)[..., None]
    others = (total - mass) / np.maximum(n - 1, 1)
    return n * (mass - others)


def is_sink(mass, total, n_keys, eps: float = DEFAULT_EPS) -> np.ndarray:
    """Paper C's rule on the given keys: A_bar_j > mean_{k != j} A_bar_k + eps (eps in units of 1/N)."""
    return sink_margin(mass, total, n_keys) > eps


def filtered_fraction(n_sinks: np.ndarray, n_keys: np.ndarray) -> np.ndarray:
    """The fraction of tokens the rule filters out (not sinks)."""
    return 1.0 - np.asarray(n_sinks, dtype=np.float64) / np.asarray(n_keys, dtype=np.float64)


def token_classifier(tokenizer, mask_id: int | None, extra_eos: tuple[int, ...] = ()) -> Callable[[int], str]:
    """id -> one of CLASSES, from the token's text: EOS / BOS / PAD / mask by id (every EOS-like special token:
    eos, <|eot_id|>, <|endoftext|>, <|im_end|>), whitespace when the text is blank, punctuation when every
    character is punctuation, else content. Mask tokens are a class of their own (paper C's Tab. 2 lists them
    among the top sinks; C04 counts them neither as punctuation/whitespace/EOS nor as content)."""
    specials = {"bos": {tokenizer.bos_token_id}, "pad": {tokenizer.pad_token_id}, "mask": {mask_id},
                "eos": {tokenizer.eos_token_id, *extra_eos}}
    for name in ("<|eot_id|>", "<|endoftext|>", "<|im_end|>", "<|end_of_text|>", "<|eos|>"):
        token_id = tokenizer.convert_tokens_to_ids(name) if name in tokenizer.get_vocab() else None
        if token_id is not None:
            specials["eos"].add(token_id)
    for group in specials.values():
        group.discard(None)
    cache: dict[int, str] = {}

    def classify(token_id: int) -> str:
        token_id = int(token_id)
        if token_id not in cache:
            cls = next((name for name in ("mask", "eos", "bos", "pad") if token_id in specials[name]), None)
            if cls is None:
                text = tokenizer.decode([token_id])
                if not text.strip():
                    cls = "whitespace"
                elif all(c in string.punctuation or c.isspace() for c in text):
                    cls = "punctuation"
                else:
                    cls = "content"
            cache[token_id] = cls
        return cache[token_id]

    return classify
