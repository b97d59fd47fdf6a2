"""Helpers shaped like ``torch.utils`` (``hooks.RemovableHandle``, ``checkpoint.checkpoint``) and
``port``, which runs a file written for PyTorch on tensorlite."""

from . import checkpoint, hooks, port

__all__ = ["checkpoint", "hooks", "port"]
