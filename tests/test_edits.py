"""Paper B's edits: token content swaps at fixed positions (B13) and position-embedding copies (B14)."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from benchmark.edits import ContentSwap, EditError, PositionEmbeddingEdit, as_condition  # noqa: E402
from benchmark.runner import WorkItem  # noqa: E402

PROMPT = "a red circle"


def test_swapping_pad_for_pad_changes_nothing_and_for_eos_changes_the_image(adapters):
    adapter = adapters("flux")
    stock = adapter.generate([WorkItem("p", PROMPT, 5)])[0]
    tokenizer = adapter.pipe.tokenizer_2
    n = len(tokenizer(PROMPT)["input_ids"])            # prompt pieces + </s>
    pads = tuple(range(n + 2, n + 8))
    same = adapter.generate([WorkItem("p", PROMPT, 5, as_condition("content_swap", ContentSwap(pads, "pad")))])[0]
    assert np.array_equal(stock, same), "PAD -> PAD at PAD positions is the identity"
    swapped = adapter.generate([WorkItem("p", PROMPT, 5, as_condition("content_swap", ContentSwap(pads, "eos")))])[0]
    assert not np.array_equal(stock, swapped)
    assert adapter.pipe.tokenizer_2 is tokenizer, "the pipeline's tokenizer is restored"


def test_content_swap_puts_the_token_at_exactly_those_positions(adapters):
    from benchmark.edits import content_swap

    adapter = adapters("flux")
    with content_swap(adapter.pipe, "tokenizer_2", ContentSwap((10, 11), "comma")):
        ids = adapter.pipe.tokenizer_2([PROMPT], padding="max_length", max_length=32)["input_ids"][0]
    plain = adapter.pipe.tokenizer_2([PROMPT], padding="max_length", max_length=32)["input_ids"][0]
    comma = adapter.pipe.tokenizer_2(",", add_special_tokens=False)["input_ids"][-1]
    assert [i for i, (a, b) in enumerate(zip(ids, plain)) if a != b] == [10, 11]
    assert ids[10] == ids[11] == comma


@pytest.mark.parametrize("family", ["sd3", "pixart"])
def test_pe_edit_gives_targets_the_source_patch_embedding(family, adapters):
    from benchmark.edits import position_embedding_edit

    adapter = adapters(family)
    module = adapter.denoiser.pos_embed
    latents = []

    def capture(mod, args, out):
        latents.append(args[0])      # returns None: the output is left alone

    handle = module.register_forward_hook(capture)
    try:
        adapter.generate([WorkItem("p", PROMPT, 5)])
    finally:
        handle.remove()
    latent = latents[0]
    edit = PositionEmbeddingEdit(targets=((1, 2), (2, 3)), source=(0, 0))
    with torch.no_grad():
        plain = module(latent)
        with position_embedding_edit(adapter.denoiser, edit):
            edited = module(latent)
    saved = module.pos_embed
    module.pos_embed = None
    try:
        with torch.no_grad():
            without = module(latent)
    finally:
        module.pos_embed = saved
    cols = latent.shape[-1] // module.patch_size
    pe = plain - without
    for r, c in edit.targets:
        torch.testing.assert_close(edited[:, r * cols + c], without[:, r * cols + c] + pe[:, 0], rtol=0, atol=1e-5)
    untouched = [i for i in range(plain.shape[1]) if i not in {r * cols + c for r, c in edit.targets}]
    assert torch.equal(edited[:, untouched], plain[:, untouched])
    stock = adapter.generate([WorkItem("p", PROMPT, 5)])[0]
    moved = adapter.generate([WorkItem("p", PROMPT, 5, as_condition("pe_edit", edit))])[0]
    assert not np.array_equal(stock, moved)


def test_pe_edit_needs_an_absolute_position_embedding(adapters):
    from benchmark.edits import position_embedding_edit

    with pytest.raises(EditError, match="no absolute position embedding"):
        with position_embedding_edit(adapters("flux").denoiser, PositionEmbeddingEdit(((0, 1),))):
            pass
    with pytest.raises(EditError):
        ContentSwap((1,), "bos")
