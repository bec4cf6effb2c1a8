"""Decoding for paper C: the masked-diffusion samplers of LLaDA and Dream, and greedy autoregressive decoding.

Each sampler drives a model through a `forward` callable and calls `on_step(step, ids)` just before the forward of
each step (denoising step for a DLM, decoding step for an ARM), with the token ids that forward will see, so a
probe knows the step index and the sequence (benchmark.lm.session). Deterministic: greedy predictions
(temperature 0, the setting of the paper's GSM8K/HumanEval runs), ties broken by position.

- `llada_generate`: low-confidence remasking with semi-autoregressive blocks (LLaDA, Nie et al. 2025, Alg. 5): the
  generation window starts as mask tokens and is decoded block by block (block_length); each block gets
  steps / n_blocks steps, and each step unmasks the block's masked positions of highest predicted probability,
  as many as the step's share of the block.
- `dream_generate`: Dream's schedule (Ye et al. 2025): the whole window at once, the number of masked positions
  follows the linear schedule t = 1 -> eps over the steps, and each step unmasks the positions of lowest
  predictive entropy (alg="entropy", Dream's default) or highest probability (alg="confidence").
- `greedy_generate`: an ARM, one token per step with a KV cache, until EOS or max_new_tokens.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

Forward = Callable[[torch.Tensor], torch.Tensor]                   # ids (1, N) -> logits (1, N, V)
StepHook = Callable[[int, torch.Tensor], None]                     # (step, ids about to be seen)
DREAM_EPS = 1e-3


@dataclass
class Generation:
    """The tokens a sampler produced: the whole sequence, the generated part, and per step which positions
    were decoded (DLM) or appended (ARM)."""
    ids: torch.Tensor                          # (N,) prompt + generation, final
    prompt_length: int
    steps: int
    decoded_at: list[list[int]] = field(default_factory=list)    # per step: positions unmasked / appended

    @property
    def generated(self) -> torch.Tensor:
        return self.ids[self.prompt_length:]


def transfer_counts(n_masked: int, steps: int) -> list[int]:
    """How many positions each of `steps` steps unmasks so that all `n_masked` are done: the quotient each, the
    remainder one more in the first steps (LLaDA's get_num_transfer_tokens)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    base, extra = divmod(n_masked, steps)
    return [base + (1 if i < extra else 0) for i in range(steps)]


def _pick(score: torch.Tensor, candidates: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k candidates of highest score (ties: the earlier position first)."""
    if k <= 0:
        return torch.zeros(0, dtype=torch.long)
    masked_score = torch.where(candidates, score.double(), torch.tensor(float("-inf"), dtype=torch.float64))
    order = torch.argsort(-masked_score, stable=True)
    return order[:min(k, int(candidates.sum()))]


def _window(prompt: torch.Tensor, gen_length: int, mask_id: int) -> torch.Tensor:
    prompt = prompt.reshape(-1).long()
    return torch.cat([prompt, torch.full((gen_length,), mask_id, dtype=torch.long, device=prompt.device)])


@torch.no_grad()
def llada_generate(forward: Forward, prompt: torch.Tensor, *, mask_id: int, gen_length: int, block_length: int,
                   steps: int, on_step: StepHook | None = None) -> Generation:
    """LLaDA's low-confidence remasking with semi-autoregressive blocks (greedy, temperature 0)."""
    if gen_length % block_length:
        raise ValueError(f"gen_length {gen_length} is not a multiple of block_length {block_length}")
    n_blocks = gen_length // block_length
    if steps % n_blocks:
        raise ValueError(f"steps {steps} is not a multiple of the number of blocks {n_blocks}")
    x = _window(prompt, gen_length, mask_id)
    start = x.numel() - gen_length
    out = Generation(x, start, steps)
    step = 0
    for b in range(n_blocks):
        lo, hi = start + b * block_length, start + (b + 1) * block_length
        in_block = torch.zeros_like(x, dtype=torch.bool)
        in_block[lo:hi] = True
        counts = transfer_counts(int((x[lo:hi] == mask_id).sum()), steps // n_blocks)
        for k in counts:
            if on_step is not None:
                on_step(step, x)
            probs = torch.softmax(forward(x[None])[0].float(), dim=-1)
            confidence, prediction = probs.max(dim=-1)
            chosen = _pick(confidence.cpu(), (in_block & (x == mask_id)).cpu(), k).to(x.device)
            x[chosen] = prediction[chosen]
            out.decoded_at.append(sorted(chosen.tolist()))
            step += 1
    out.ids = x
    return out


@torch.no_grad()
def dream_generate(forward: Forward, prompt: torch.Tensor, *, mask_id: int, gen_length: int, steps: int,
                   alg: str = "entropy", on_step: StepHook | None = None) -> Generation:
    """Dream's sampler: linear schedule over the whole window, lowest-entropy (or most confident) first."""
    if alg not in ("entropy", "confidence"):
        raise ValueError(f"alg must be 'entropy' or 'confidence', got {alg!r}")
    x = _window(prompt, gen_length, mask_id)
    start = x.numel() - gen_length
    out = Generation(x, start, steps)
    timesteps = torch.linspace(1.0, DREAM_EPS, steps + 1, dtype=torch.float64)
    for i in range(steps):
        masked = x == mask_id
        n_masked = int(masked.sum())
        if on_step is not None:
            on_step(i, x)
        probs = torch.softmax(forward(x[None])[0].float(), dim=-1)
        confidence, prediction = probs.max(dim=-1)
        if alg == "entropy":
            confidence = (probs * probs.clamp_min(1e-30).log()).sum(dim=-1)     # minus the entropy
        t, s = float(timesteps[i]), float(timesteps[i + 1])
        k = n_masked if i == steps - 1 else int(n_masked * (1 - s / t))
        chosen = _pick(confidence.cpu(), masked.cpu(), k).to(x.device)
        x[chosen] = prediction[chosen]
        out.decoded_at.append(sorted(chosen.tolist()))
    out.ids = x
    return out


CachedForward = Callable[[torch.Tensor, Any], "tuple[torch.Tensor, Any]"]   # (new ids (1, n), cache) -> (logits, cache)


@torch.no_grad()
def greedy_generate(forward: CachedForward, prompt: torch.Tensor, *, eos_id: int, max_new_tokens: int,
                    on_step: StepHook | None = None) -> Generation:
    """Greedy autoregressive decoding with a KV cache: step 0 reads the prompt, step t >= 1 the token of t - 1."""
    ids = prompt.reshape(-1).long()
    out = Generation(ids, ids.numel(), 0)
    cache = None
    new = ids
    for step in range(max_new_tokens):
        if on_step is not None:
            on_step(step, ids)
        logits, cache = forward(new[None], cache)
        token = logits[0, -1].float().argmax()
        ids = torch.cat([ids, token.reshape(1)])
        out.decoded_at.append([ids.numel() - 1])
        out.steps += 1
        new = token.reshape(1)
        if int(token) == eos_id:
            break
    out.ids = ids
    return out
