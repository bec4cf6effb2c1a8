"""Tokenizers for the tiny offline pipelines, built without any download.

They are real `transformers` tokenizer classes (CLIP byte-level BPE with `</w>` word ends, T5/UMT5
sentencepiece-style unigram, Qwen2 byte-level BPE with a chat template), so a tiny pipeline saved with
`save_pretrained` reloads through exactly the code path of a real checkpoint. Their vocabularies are small:
whole-word pieces for the words SinkBench prompts use (shapes, colours, GenEval objects, the pipelines'
prompt templates) and single characters for everything else, so any text still tokenizes.
"""
from __future__ import annotations

import json

from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import CLIPTokenizer, Qwen2Tokenizer, T5Tokenizer

# Words that get whole-word tokens. The rest of any prompt falls back to characters.
WORDS = tuple("""
a an the of and in on with photo image picture two three four above below left right next to
red green blue yellow orange purple pink brown black white gray
circle square triangle shape shapes background small large big
dog cat car bus person bicycle bench bird horse cup chair table book clock banana apple
describe detailing color size texture quantity text spatial relationships objects system user assistant by
""".split())
PUNCTUATION = tuple(",.:!?'\"-")

CLIP_BOS, CLIP_EOS = "<|startoftext|>", "<|endoftext|>"
QWEN_SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")

# A small chat template in the Qwen format (system/user/assistant turns between <|im_start|> and <|im_end|>).
# `enable_thinking=False` appends an empty think block, as Qwen3's template does; Z-Image passes True.
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}"
    "{% endif %}"
)


def _byte_alphabet() -> list[str]:
    """The 256 printable stand-ins for bytes used by byte-level BPE (GPT-2 / CLIP / Qwen)."""
    return sorted(pre_tokenizers.ByteLevel.alphabet())


def _train_bpe(corpus: list[str], word_suffix: str | None) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Train a byte-level BPE on `corpus` (deterministic) so that every word of WORDS is one token.
    Hand-written merges conflict (shared sub-words merge in the wrong order); a trained table does not."""
    suffix = {"end_of_word_suffix": word_suffix} if word_suffix else {}
    tokenizer = Tokenizer(models.BPE(**suffix))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(vocab_size=4096, min_frequency=1, show_progress=False, special_tokens=[],
                                  initial_alphabet=_byte_alphabet(), **suffix)
    tokenizer.train_from_iterator(corpus, trainer)
    model = json.loads(tokenizer.to_str())["model"]
    return model["vocab"], [tuple(pair) for pair in model["merges"]]


def _word_corpus() -> list[str]:
    forms = list(WORDS) + [w.capitalize() for w in WORDS]
    return forms + [" ".join(forms)] * 2 + [" ".join(PUNCTUATION)]


def clip_tokenizer(model_max_length: int = 77, pad_token: str = CLIP_EOS) -> CLIPTokenizer:
    """CLIP BPE: <|startoftext|> prompt <|endoftext|>, padded with `pad_token` (SD3/SDXL's second
    tokenizer pads with "!", the first with <|endoftext|>). Lower-cases like the real one."""
    trained, merges = _train_bpe([w.lower() for w in _word_corpus()], word_suffix="</w>")
    vocab: dict[str, int] = {CLIP_BOS: 0, CLIP_EOS: 1}
    for ch in _byte_alphabet():                 # every byte, inside and at the end of a word
        vocab.setdefault(ch, len(vocab))
        vocab.setdefault(ch + "</w>", len(vocab))
    for piece in sorted(trained, key=trained.get):
        vocab.setdefault(piece, len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length, pad_token=pad_token)


def t5_tokenizer(model_max_length: int = 512) -> T5Tokenizer:
    """T5/UMT5 unigram: prompt </s> then <pad> (id 0) up to the pipeline's max_sequence_length."""
    pieces: list[tuple[str, float]] = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [("\u2581" + w, -1.0) for w in WORDS]
    pieces += [("\u2581" + w.capitalize(), -1.2) for w in WORDS]
    pieces += [(p, -1.5) for p in PUNCTUATION]
    pieces += [(chr(c), -5.0) for c in range(ord("a"), ord("z") + 1)]
    pieces += [(chr(c), -6.0) for c in range(ord("A"), ord("Z") + 1)]
    pieces += [(str(d), -6.0) for d in range(10)]
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=model_max_length)


def qwen_tokenizer(model_max_length: int = 32768) -> Qwen2Tokenizer:
    """Qwen2 byte-level BPE with <|im_start|>/<|im_end|> and a chat template (Qwen-Image, Z-Image)."""
    vocab, merges = _train_bpe(_word_corpus(), word_suffix=None)
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length,
                               eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tokenizer.add_special_tokens({"additional_special_tokens": list(QWEN_SPECIAL[1:])})
    tokenizer.chat_template = QWEN_CHAT_TEMPLATE
    return tokenizer
