"""The language organisms' procedural task: integer arithmetic written as text, with exact answers.

A sequence is a few solved problems (few-shot context) and a query whose answer is generated:

    <bos>417+85=502; 61*7=427; 9-230=-221; 58+603=        (here 3 solved problems; 5 at evaluation)

The answer is the integer the query evaluates to, written in decimal, followed by <eos> (the masked diffusion LM
fills the rest of its generation window with <eos>, as LLaDA's SFT data does). A problem is a pure function of
(seed, index), so train and evaluation sets are disjoint by seed. The tokenizer is character-level with the
special tokens <pad> <bos> <eos> <mask>; both organisms share it (a transformers tokenizer, saved with each model).
For C04 the operators, '=' and ';' class as punctuation and ' ' as whitespace (benchmark.lm.sinks).
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass

OPERATORS = ("+", "-", "*")
SEPARATOR = "; "
SPECIAL = {"pad": "<pad>", "bos": "<bos>", "eos": "<eos>", "mask": "<mask>"}
CHARACTERS = tuple("0123456789") + OPERATORS + ("=", ";", " ")
VOCABULARY = tuple(SPECIAL.values()) + CHARACTERS
GEN_LENGTH = 8                    # the generation window: the longest answer (1998, -999), then <eos> to the end
BLOCK_LENGTH = 4                  # semi-autoregressive blocks of the LLaDA sampler (2 blocks)
EVAL_SEED = 1_000_003             # evaluation problems; training uses other seeds
CONTEXT_PROBLEMS = 5              # solved problems before the query at evaluation
TRAIN_MAX_CONTEXT = 6             # training: 0 to this many, uniformly


@dataclass(frozen=True)
class Problem:
    """One evaluation item: the prompt (context and query, without <bos>) and the exact answer."""
    id: str
    prompt: str
    answer: str

    @property
    def query(self) -> str:
        return self.prompt.rsplit(SEPARATOR, 1)[-1]


def _operands(rng: random.Random) -> tuple[int, str, int]:
    op = rng.choice(OPERATORS)
    if op == "*":
        return rng.randint(0, 99), op, rng.randint(0, 9)
    return rng.randint(0, 999), op, rng.randint(0, 999)


def solve(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


def equation(rng: random.Random) -> tuple[str, str]:
    """('417+85=', '502'): a random problem and its answer."""
    a, op, b = _operands(rng)
    return f"{a}{op}{b}=", str(solve(a, op, b))


def sample_text(seed: int, index: int, context: int | None = None,
                max_context: int = TRAIN_MAX_CONTEXT) -> tuple[str, str]:
    """(prompt, answer) of item `index` of stream `seed`; `context` solved problems before the query
    (None: 0 to max_context at random, the training mix)."""
    rng = random.Random(seed * 1_000_000_007 + index)
    n = rng.randint(0, max_context) if context is None else context
    shots = [q + a for q, a in (equation(rng) for _ in range(n))]
    query, answer = equation(rng)
    return SEPARATOR.join(shots + [query]), answer


def problems(n: int, seed: int = EVAL_SEED, context: int = CONTEXT_PROBLEMS) -> list[Problem]:
    """The first n evaluation problems of `seed` (the suite's held-out set)."""
    out = []
    for i in range(n):
        prompt, answer = sample_text(seed, i, context)
        out.append(Problem(f"arith-{seed}-{i}", prompt, answer))
    return out


ANSWER = re.compile(r"^\s*(-?\d+)")


def extract_answer(generated: str) -> str | None:
    """The integer at the start of the generated text (up to the first non-digit), or None."""
    match = ANSWER.match(generated)
    return match.group(1) if match else None


def is_correct(generated: str, answer: str) -> bool:
    return extract_answer(generated) == answer


def build_tokenizer():
    """The character-level tokenizer (a transformers PreTrainedTokenizerFast; built offline)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(VOCABULARY)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIAL["pad"]))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    backend.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=SPECIAL["bos"], eos_token=SPECIAL["eos"], pad_token=SPECIAL["pad"],
        mask_token=SPECIAL["mask"], model_max_length=256)
    tokenizer.add_special_tokens({k + "_token": v for k, v in SPECIAL.items()})
    return tokenizer
