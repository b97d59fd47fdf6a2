"""Helpers shaped like ``torch.utils`` (``hooks.RemovableHandle``, ``checkpoint.checkpoint``) and
``port``, which runs a file written for PyTorch on tensorlite.

Submodules load on first use: ``hooks`` sits below the Tensor in the import order, ``checkpoint``
above ``nn``.
"""


def __getattr__(name):
    if name in ("hooks", "checkpoint", "port"):
        import importlib  # noqa: PLC0415

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'tensorlite.utils' has no attribute {name!r}")
