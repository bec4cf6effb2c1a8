"""Attention probes: the hook that sees every attention call (hook.py); statistics come in later modules."""
from .hook import AttentionCall, attention_hooks

__all__ = ["AttentionCall", "attention_hooks"]
