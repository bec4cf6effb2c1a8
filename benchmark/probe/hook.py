"""The one hook point: see (and optionally replace) every scaled-dot-product attention of chosen layers.

A diffusers ModelHook on each attention module runs the module's own forward inside a TorchFunctionMode that
intercepts torch.nn.functional.scaled_dot_product_attention, so the callback sees q, k (after QK-norm and
RoPE), v and the real mask in (B, H, N, D) without touching or wrapping any attention processor (a wrapper
with *args/**kwargs silently loses arguments: Attention.forward filters kwargs by the processor signature).
Only diffusers' 'native' attention backend reaches F.sdpa, so it is forced while hooks are installed.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

HOOK_NAME = "sinkbench_attention"


@dataclass
class AttentionCall:
    """One F.scaled_dot_product_attention call inside a hooked layer."""
    layer: object                 # the AttentionLayer
    call: int                     # how many sdpa calls this layer has made before this one (since install)
    query: torch.Tensor           # (B, H, Nq, D)
    key: torch.Tensor             # (B, H, Nk, D)
    value: torch.Tensor
    attn_mask: torch.Tensor | None
    is_causal: bool
    scale: float | None
    _func: Callable = None        # the real F.scaled_dot_product_attention
    _args: tuple = ()
    _kwargs: dict | None = None

    def compute(self, **changes) -> torch.Tensor:
        """Run the real attention with some arguments changed (query, key, value, attn_mask)."""
        bound = _sdpa_arguments(self._args, self._kwargs or {})
        bound.update(changes)
        return self._func(**bound)

    def compute_with_lse(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The unchanged attention output, and its log-sum-exp (B, H, Nq) where the GPU gives it for free
        (else None): the fused mass pass then needs only its column pass."""
        from .fused import sdpa_with_lse
        return sdpa_with_lse(self._func, **_sdpa_arguments(self._args, self._kwargs or {}))


# on_attention(call) -> None to leave the attention alone, or a tensor to use as its output.
AttentionCallback = Callable[[AttentionCall], "torch.Tensor | None"]


class _SDPAInterceptor(TorchFunctionMode):
    def __init__(self, hook: "_AttentionModuleHook"):
        super().__init__()
        self.hook = hook

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            return self.hook.on_sdpa(func, args, kwargs)
        return func(*args, **kwargs)


def _sdpa_arguments(args, kwargs):
    names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale")
    bound = dict(zip(names, args))
    bound.update(kwargs)
    return bound


def attention_call(layer, call: int, func, args, kwargs) -> AttentionCall:
    """The AttentionCall of one intercepted F.scaled_dot_product_attention(*args, **kwargs)."""
    bound = _sdpa_arguments(args, kwargs)
    return AttentionCall(
        layer=layer, call=call, query=bound["query"], key=bound["key"], value=bound["value"],
        attn_mask=bound.get("attn_mask"), is_causal=bool(bound.get("is_causal", False)),
        scale=bound.get("scale"), _func=func, _args=tuple(args), _kwargs=dict(kwargs),
    )


@contextlib.contextmanager
def intercepting_sdpa(on_sdpa: Callable[[Callable, tuple, dict], torch.Tensor]) -> Iterator[None]:
    """Every F.scaled_dot_product_attention call made in the block, by any module, goes to
    on_sdpa(func, args, kwargs), whose return value is the attention's output. For language models whose
    attention is not a module of its own (remote-code LLaDA computes it inside the block): there the order of
    the calls within one forward tells the layers apart (benchmark.lm.session)."""
    with _SDPAInterceptor(SimpleNamespace(on_sdpa=on_sdpa)):
        yield


class _AttentionModuleHook:
    """Built lazily on a diffusers ModelHook subclass (diffusers is an optional dependency)."""

    def __init__(self, layer, on_attention: AttentionCallback):
        self.layer = layer
        self.on_attention = on_attention
        self.calls = 0

    def on_sdpa(self, func, args, kwargs):
        call = attention_call(self.layer, self.calls, func, args, kwargs)
        self.calls += 1
        replacement = self.on_attention(call)
        if replacement is not None:
            return replacement
        return func(*args, **kwargs)


def _model_hook_class():
    from diffusers.hooks import ModelHook

    class AttentionModuleHook(ModelHook):
        def __init__(self, state: _AttentionModuleHook):
            super().__init__()
            self.state = state

        def new_forward(self, module, *args, **kwargs):
            with _SDPAInterceptor(self.state):
                return self.fn_ref.original_forward(*args, **kwargs)

    return AttentionModuleHook


@contextlib.contextmanager
def attention_hooks(layers: Sequence, on_attention: AttentionCallback) -> Iterator[None]:
    """Install the hook on each AttentionLayer's module for the duration of the block."""
    from diffusers.hooks import HookRegistry
    from diffusers.models.attention_dispatch import attention_backend

    hook_class = _model_hook_class()
    registries = []
    try:
        for layer in layers:
            registry = HookRegistry.check_if_exists_or_initialize(layer.module)
            registry.register_hook(hook_class(_AttentionModuleHook(layer, on_attention)), HOOK_NAME)
            registries.append(registry)
        with attention_backend("native"):
            yield
    finally:
        for registry in registries:
            registry.remove_hook(HOOK_NAME, recurse=False)
