"""Tiny random-weight language models of paper C's families, saved with save_pretrained (offline, for tests):

- `tiny_llama(DIR)`: a causal transformers LlamaForCausalLM, loaded natively (the Llama-3.1 path);
- `tiny_remote_dlm(DIR)`: a bidirectional masked diffusion LM whose modeling code lives in the directory and
  loads only with trust_remote_code (the LLaDA / MMaDA path: model_type "llada", attention computed inside
  each block with F.scaled_dot_product_attention, `model(input_ids).logits`).
Both carry the arithmetic character tokenizer (benchmark.lm.arithmetic).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from . import arithmetic

TINY_VOCAB = 32          # not the organisms' 20, so that a directory is not taken for an organism

_CONFIGURATION = '''
from transformers import PretrainedConfig


class TinyDLMConfig(PretrainedConfig):
    model_type = "llada"

    def __init__(self, vocab_size=32, d_model=32, n_heads=2, n_layers=2, mask_token_id=3, **kwargs):
        self.vocab_size, self.d_model, self.n_heads, self.n_layers = vocab_size, d_model, n_heads, n_layers
        self.mask_token_id = mask_token_id
        super().__init__(**kwargs)
'''

_MODELING = '''
import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import CausalLMOutput

from .configuration_tiny_dlm import TinyDLMConfig


class TinyBlock(nn.Module):
    """Attention computed inline, as LLaDA's blocks do (no attention submodule)."""

    def __init__(self, config):
        super().__init__()
        d = config.d_model
        self.n_heads = config.n_heads
        self.norm = nn.LayerNorm(d)
        self.q_proj, self.k_proj, self.v_proj, self.out = (nn.Linear(d, d) for _ in range(4))
        self.ff = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def forward(self, x):
        b, n, d = x.shape
        h = self.norm(x)
        q, k, v = (p(h).view(b, n, self.n_heads, -1).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=None, is_causal=False)
        x = x + self.out(a.transpose(1, 2).reshape(b, n, d))
        return x + self.ff(x)


class TinyDLMModel(PreTrainedModel):
    config_class = TinyDLMConfig
    base_model_prefix = "tiny"

    def __init__(self, config):
        super().__init__(config)
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.pos = nn.Embedding(1024, config.d_model)
        self.blocks = nn.ModuleList(TinyBlock(config) for _ in range(config.n_layers))
        self.head = nn.Linear(config.d_model, config.vocab_size)
        self.post_init()

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.5)

    def forward(self, input_ids, attention_mask=None, **kwargs):
        x = self.embed(input_ids) + self.pos(torch.arange(input_ids.shape[1], device=input_ids.device))
        for block in self.blocks:
            x = block(x)
        return CausalLMOutput(logits=self.head(x))
'''


def _save_tokenizer(directory: Path) -> None:
    arithmetic.build_tokenizer().save_pretrained(directory)


def tiny_llama(directory: str | Path, *, seed: int = 0, layers: int = 2) -> Path:
    """A random causal Llama (SDPA) with the arithmetic tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    directory = Path(directory)
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=TINY_VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         bos_token_id=1, eos_token_id=2, pad_token_id=0, attn_implementation="sdpa")
    LlamaForCausalLM(config).save_pretrained(directory)
    _save_tokenizer(directory)
    return directory


def tiny_remote_dlm(directory: str | Path, *, seed: int = 0, layers: int = 2) -> Path:
    """A random bidirectional DLM whose code is in the directory (loads with trust_remote_code only)."""
    import importlib.util
    import sys

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "configuration_tiny_dlm.py").write_text(_CONFIGURATION)
    (directory / "modeling_tiny_dlm.py").write_text(_MODELING)
    package = f"_sinkbench_tiny_dlm_{abs(hash(str(directory)))}"
    modules = {}
    for name in ("configuration_tiny_dlm", "modeling_tiny_dlm"):   # import the written code to build the weights
        spec = importlib.util.spec_from_file_location(f"{package}.{name}", directory / f"{name}.py")
        modules[name] = module = importlib.util.module_from_spec(spec)
        sys.modules[f"{package}.{name}"] = module
        spec.loader.exec_module(module)
    sys.modules.setdefault(package, type(sys)(package))
    torch.manual_seed(seed)
    config = modules["configuration_tiny_dlm"].TinyDLMConfig(
        vocab_size=TINY_VOCAB, n_layers=layers, mask_token_id=arithmetic.VOCABULARY.index("<mask>"),
        bos_token_id=1, eos_token_id=2, pad_token_id=0)
    modules["modeling_tiny_dlm"].TinyDLMModel(config).save_pretrained(directory)
    path = directory / "config.json"
    saved = json.loads(path.read_text())
    saved["auto_map"] = {"AutoConfig": "configuration_tiny_dlm.TinyDLMConfig",
                         "AutoModel": "modeling_tiny_dlm.TinyDLMModel"}
    path.write_text(json.dumps(saved, indent=2))
    _save_tokenizer(directory)
    return directory
