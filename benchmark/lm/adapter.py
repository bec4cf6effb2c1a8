"""The language models of paper C behind one interface: loading, prompts, logits, generation.

    adapter = LMAdapter.load(card, source, settings, device="cpu", trust_remote_code=False)
    generation = adapter.generate(adapter.encode("12+34="), on_step=session.begin_step)

How each kind of checkpoint is loaded (a hub id from the Hugging Face cache, or a local directory with
config.json, e.g. written by save_pretrained):
- the organisms (models/organism/mdlm, arm): transformers LlamaForCausalLM with the SDPA attention; the masked
  diffusion organism's config has is_causal = False (bidirectional);
- Llama-3.1-8B (the ARM baseline): AutoModelForCausalLM, natively, attn_implementation="sdpa";
- LLaDA-8B, MMaDA-8B (built on LLaDA) and Dream-7B: AutoModel through the checkpoint's own modeling code, which
  runs only with an explicit opt-in (trust_remote_code, the suite's --trust-remote-code flag; off by default).
  Dream predicts token i at position i - 1 (it keeps its ARM initialisation's shift): its logits are shifted
  back by one, as Dream's own sampler does.
The samplers are the project's own (benchmark.lm.sampling), chosen by the card: LLaDA's low-confidence remasking
with semi-autoregressive blocks (organism_mdlm, llada, mmada), Dream's entropy-ordered unmasking, greedy
decoding with a KV cache for an ARM.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from ..environment import directory_identity
from .sampling import Generation, StepHook, dream_generate, greedy_generate, llada_generate

REMOTE_CODE_FLAG = "--trust-remote-code"
SAMPLERS = ("llada", "dream", "greedy")
TORCH_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class LMCheckpointNotFound(Exception):
    """The weights are not on this machine: a SKIPPED verdict, with the how-to."""


class RemoteCodeNotAllowed(PermissionError):
    """The checkpoint runs only through its own modeling code, and the run did not opt in."""


def remote_code_reason(card_name: str, source: str) -> str:
    return (f"{card_name} loads only through the modeling code in its checkpoint ({source}), which SinkBench runs "
            f"only with an explicit opt-in: add {REMOTE_CODE_FLAG} (the report records it)")


@dataclass(frozen=True)
class LMSettings:
    """How a language model is driven: the sampler and its window, steps and dtype."""
    sampler: str                      # llada | dream | greedy
    gen_length: int                   # generation window (DLM) / most new tokens (ARM)
    steps: int                        # denoising steps (DLM); ARM: one per new token, up to gen_length
    block_length: int | None = None   # llada: semi-autoregressive block
    dtype: str = "fp32"
    mask_token_id: int | None = None  # used when the tokenizer names no mask token
    shifted_logits: bool = False      # Dream: position i's logits predict token i + 1
    chat: bool = False                # wrap the prompt in the tokenizer's chat template

    def __post_init__(self):
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if self.dtype not in TORCH_DTYPES:
            raise ValueError(f"dtype must be one of {sorted(TORCH_DTYPES)}, got {self.dtype!r}")

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def settings_for(card, task: str = "arithmetic", overrides: Mapping[str, Any] | None = None) -> LMSettings:
    """The card's settings for a task (gen_length_<task> where the card has one), with --steps / --dtype. An ARM
    decodes one token per step, so --steps caps its new tokens."""
    s = dict(card.settings)
    overrides = dict(overrides or {})
    gen = int(s.get(f"gen_length_{task}", s.get("gen_length", 256)))
    sampler = s.get("sampler", "greedy" if card.kind == "arm" else "llada")
    if sampler == "greedy" and overrides.get("steps"):
        gen = int(overrides["steps"])
    steps = int(overrides.get("steps") or s.get("steps") or gen)
    return LMSettings(sampler=sampler, gen_length=gen, steps=steps, block_length=s.get("block_length"),
                      dtype=overrides.get("dtype") or s.get("dtype", "fp32"), mask_token_id=s.get("mask_token_id"),
                      shifted_logits=bool(s.get("shifted_logits", False)), chat=bool(s.get("chat", False)))


@dataclass(frozen=True)
class LMCheckpoint:
    source: str
    path: Path
    kind: str                         # directory | hub
    identity: Mapping[str, Any]


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def resolve_lm_checkpoint(source: str, local_files_only: bool | None = None) -> LMCheckpoint:
    """A local directory with config.json, or a hub id in the standard Hugging Face cache (downloaded there
    when online and allowed)."""
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise LMCheckpointNotFound(f"{path} has no config.json: not a transformers model directory "
                                       "(write one with model.save_pretrained(DIR))")
        return LMCheckpoint(source, path.resolve(), "directory", {"kind": "directory", **directory_identity(path)})
    if source.count("/") != 1 or source.startswith((".", "/", "~")):
        raise LMCheckpointNotFound(f"checkpoint directory {source} does not exist (a hub id looks like 'owner/name')")
    from huggingface_hub import snapshot_download

    local = offline() if local_files_only is None else local_files_only
    how = (f"get it with `hf download {source}` on a machine with network access into the Hugging Face cache "
           "(HF_HOME / HF_HUB_CACHE), or pass a local directory with --checkpoint DIR")
    try:
        snapshot = Path(snapshot_download(source, local_files_only=True))
    except Exception:            # not cached (LocalEntryNotFoundError, OSError, ...)
        if local:
            raise LMCheckpointNotFound(f"{source} is not in the local Hugging Face cache and HF_HUB_OFFLINE "
                                       f"forbids downloading; {how}") from None
        try:
            snapshot = Path(snapshot_download(source))
        except Exception as exc:  # network, auth, gating: all mean "not here"
            raise LMCheckpointNotFound(f"{source} is not in the local Hugging Face cache and could not be "
                                       f"downloaded ({type(exc).__name__}); {how}") from exc
    return LMCheckpoint(source, snapshot, "hub", {"kind": "hub", "hub_id": source, "snapshot": snapshot.name})


REMOTE_MODEL_TYPES = {"llada": "llada", "mmada": "mmada", "dream": "dream"}


def lm_card_of_directory(directory: str | Path, cards: Mapping[str, Any]) -> str | None:
    """The card a transformers directory (config.json, no model_index.json) belongs to, from its model_type:
    LLaDA / MMaDA / Dream by name; a Llama with the organisms' vocabulary is an organism (causal or not), any
    other causal Llama the Llama baseline. None when it is not one of paper C's families."""
    import json

    root = Path(directory)
    if (root / "model_index.json").is_file() or not (root / "config.json").is_file():
        return None
    try:
        config = json.loads((root / "config.json").read_text())
    except (OSError, ValueError):
        return None
    model_type = str(config.get("model_type", "")).lower()
    if model_type in REMOTE_MODEL_TYPES:
        name = REMOTE_MODEL_TYPES[model_type]
    elif model_type == "llama":
        from .arithmetic import VOCABULARY

        causal = config.get("is_causal", True)
        if config.get("vocab_size") == len(VOCABULARY):
            name = "organism_arm" if causal else "organism_mdlm"
        else:
            name = "llama" if causal else None
    else:
        name = None
    return name if name in cards else None


class LMAdapter:
    """A loaded language model of paper C, driven the same way whatever its family."""

    def __init__(self, model, tokenizer, kind: str, settings: LMSettings, checkpoint: LMCheckpoint, *,
                 device: str = "cpu", remote_code: bool = False):
        self.model, self.tokenizer, self.kind = model, tokenizer, kind
        self.settings, self.checkpoint, self.device, self.remote_code = settings, checkpoint, device, remote_code
        mask = tokenizer.mask_token_id if getattr(tokenizer, "mask_token", None) else None
        self.mask_id = mask if mask is not None else settings.mask_token_id
        if kind == "dlm" and self.mask_id is None:
            raise ValueError(f"{checkpoint.source}: no mask token (the tokenizer names none and the card gives no "
                             "mask_token_id)")
        self.eos_id = tokenizer.eos_token_id
        self._classify = None

    def token_class(self, token_id: int) -> str:
        """The token's class for C04 (benchmark.lm.sinks.CLASSES)."""
        if self._classify is None:
            from .sinks import token_classifier

            self._classify = token_classifier(self.tokenizer, self.mask_id)
        return self._classify(token_id)

    @classmethod
    def load(cls, card, source: str, settings: LMSettings, *, device: str = "cpu",
             trust_remote_code: bool = False) -> "LMAdapter":
        remote = "remote_code" in card.traits
        if remote and not trust_remote_code:
            raise RemoteCodeNotAllowed(remote_code_reason(card.name, source))
        from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

        checkpoint = resolve_lm_checkpoint(source)
        dtype = TORCH_DTYPES[settings.dtype]
        local = {"local_files_only": True} if checkpoint.kind == "hub" else {}
        tokenizer = AutoTokenizer.from_pretrained(checkpoint.path, trust_remote_code=remote, **local)
        if remote:
            model = AutoModel.from_pretrained(checkpoint.path, trust_remote_code=True, dtype=dtype, **local)
        else:
            model = AutoModelForCausalLM.from_pretrained(checkpoint.path, dtype=dtype, attn_implementation="sdpa",
                                                         **local)
            causal = getattr(model.config, "is_causal", True)
            if causal != (card.kind == "arm"):
                raise ValueError(f"{checkpoint.source}: config.is_causal is {causal}, but {card.name} is "
                                 f"{'an autoregressive' if card.kind == 'arm' else 'a diffusion'} LM")
        model.to(device).eval()
        return cls(model, tokenizer, card.kind, settings, checkpoint, device=device, remote_code=remote)

    # ------------------------------------------------------------ text
    def encode(self, prompt: str) -> torch.Tensor:
        """Prompt ids with the model's own framing: its chat template (instruct models), else BOS + text."""
        tok = self.tokenizer
        if self.settings.chat and getattr(tok, "chat_template", None):
            ids = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                          tokenize=True, return_dict=False)
            ids = ids["input_ids"] if isinstance(ids, Mapping) else ids
        else:
            ids = tok(prompt, add_special_tokens=False)["input_ids"]
            if tok.bos_token_id is not None and (not ids or ids[0] != tok.bos_token_id):
                ids = [tok.bos_token_id] + list(ids)
        return torch.tensor(list(ids), dtype=torch.long, device=self.device)

    def decode(self, ids: torch.Tensor) -> str:
        """Generated text up to the first EOS, special tokens dropped."""
        ids = [int(i) for i in ids]
        if self.eos_id is not None and self.eos_id in ids:
            ids = ids[:ids.index(self.eos_id)]
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    # ------------------------------------------------------------ forwards
    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        """(1, N, V) logits of a DLM over the whole sequence, aligned so that position i predicts token i."""
        if self.remote_code and self.settings.shifted_logits:
            out = self.model(ids, attention_mask="full").logits          # Dream's full-attention call
        elif self.remote_code:
            out = self.model(ids).logits                                 # LLaDA's (and MMaDA's) call
        else:
            out = self.model(input_ids=ids, use_cache=False).logits
        if self.settings.shifted_logits:
            out = torch.cat([out[:, :1], out[:, :-1]], dim=1)
        return out

    def cached_logits(self, ids: torch.Tensor, cache):
        """An ARM's next-token logits for new tokens `ids` after `cache` (None: the prompt)."""
        out = self.model(input_ids=ids, past_key_values=cache, use_cache=True)
        return out.logits, out.past_key_values

    def generate(self, prompt: torch.Tensor, on_step: StepHook | None = None) -> Generation:
        s = self.settings
        with torch.no_grad():
            if s.sampler == "greedy":
                return greedy_generate(self.cached_logits, prompt, eos_id=self.eos_id, max_new_tokens=s.gen_length,
                                       on_step=on_step)
            if s.sampler == "dream":
                return dream_generate(self.logits, prompt, mask_id=self.mask_id, gen_length=s.gen_length,
                                      steps=s.steps, on_step=on_step)
            return llada_generate(self.logits, prompt, mask_id=self.mask_id, gen_length=s.gen_length,
                                  block_length=s.block_length or s.gen_length, steps=s.steps, on_step=on_step)
