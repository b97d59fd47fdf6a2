"""Each framework run natively: the few tensor operations the debugging tools need, for tensorlite
and for PyTorch, behind one small interface.

A check never mixes frameworks: a torch module gets torch tensors (under ``torch.no_grad()`` where
no gradient is wanted), its gradients come from torch autograd, its optimizer is torch's. ``torch``
is imported only when the object handed in is a torch object, so it stays an optional dependency.
"""

from __future__ import annotations

import contextlib
import sys

import numpy as np

from .. import autograd, optim
from .. import functional as F
from ..backend import to_device
from ..backend import to_numpy as _tl_to_numpy
from ..tensor import Tensor

__all__ = ["Native", "eval_mode", "is_torch", "native_for", "to_numpy"]


def is_torch(obj) -> bool:
    """True for a torch object (a module, tensor, optimizer, scheduler), without importing torch."""
    if "torch" not in sys.modules:
        return False
    return any(c.__module__.split(".")[0] == "torch" for c in type(obj).__mro__[:-1])


def to_numpy(x, dtype=np.float64) -> np.ndarray:
    """A NumPy copy of a tensorlite or torch tensor (or an array); floats as ``dtype``."""
    if x is None:
        return None
    if hasattr(x, "detach") and is_torch(x):
        t = x.detach()
        if t.is_floating_point() and t.dtype not in (sys.modules["torch"].float32, sys.modules["torch"].float64):
            t = t.float()  # bfloat16 / float16 have no NumPy twin
        a = t.cpu().numpy()
    else:
        a = _tl_to_numpy(x.data if hasattr(x, "grad_fn") else x)
    a = np.asarray(a)
    return a.astype(dtype) if a.dtype.kind in "fc" and dtype is not None else a.copy()


@contextlib.contextmanager
def eval_mode(model):
    """``model.eval()`` for the block, then every module's own ``training`` flag put back.

    Works on tensorlite and torch modules (anything with ``modules()`` and ``train()``); restores
    each submodule's flag, so a model deliberately left half in training mode comes back as it was.
    """
    mods = list(model.modules()) if hasattr(model, "modules") else []
    flags = [m.training for m in mods]
    try:
        if hasattr(model, "eval"):
            model.eval()
        yield model
    finally:
        for m, f in zip(mods, flags):
            m.training = f


class Native:
    """The operations a check needs, done by one framework. Made by :func:`native_for`."""

    name = "?"

    # arrays in and out ---------------------------------------------------------------------------
    def tokens(self, x: np.ndarray, like=None):
        raise NotImplementedError

    def floats(self, x: np.ndarray, like):
        """A float tensor of ``like``'s dtype and device holding ``x``."""
        raise NotImplementedError

    def is_tensor(self, x) -> bool:
        raise NotImplementedError

    # grad modes ----------------------------------------------------------------------------------
    def no_grad(self):
        raise NotImplementedError

    def enable_grad(self):
        raise NotImplementedError

    # losses and updates --------------------------------------------------------------------------
    def cross_entropy(self, logits2d, targets1d, reduction="mean"):
        raise NotImplementedError

    def item(self, t) -> float:
        return float(to_numpy(t).reshape(-1)[0]) if np.size(to_numpy(t)) else float("nan")

    def adamw(self, params, lr: float):
        raise NotImplementedError

    def clip_grad_norm_(self, params, max_norm: float):
        raise NotImplementedError

    def snapshot(self, params) -> list:
        """Copies of the parameters' values (for :meth:`restore`)."""
        raise NotImplementedError

    def restore(self, params, saved) -> None:
        raise NotImplementedError

    def assign(self, p, values: np.ndarray) -> None:
        """Overwrite parameter ``p`` with the NumPy array ``values`` (its dtype and device kept)."""
        raise NotImplementedError

    def grad(self, p):
        return p.grad

    def set_grad(self, p, g) -> None:
        p.grad = g

    def zeros_like(self, t):
        raise NotImplementedError

    def device_of(self, model):
        for p in model.parameters():
            return p.device
        for b in model.buffers():
            return b.device
        return None

    def count_ops(self):
        """A context manager counting the ops run inside it (``.n`` afterwards)."""
        raise NotImplementedError


class _Counter:
    n = 0


class TensorliteNative(Native):
    name = "tensorlite"

    def __init__(self):
        self.Tensor, self.F, self.optim, self.autograd = Tensor, F, optim, autograd

    def tokens(self, x, like=None):
        dev = self.device_of(like) if like is not None else None
        arr = np.asarray(x, dtype=np.int64)
        return self.Tensor(to_device(arr, dev) if dev is not None else arr, device=dev)

    def floats(self, x, like):
        arr = np.asarray(x).astype(like.dtype)
        return self.Tensor(to_device(arr, like.device), device=like.device)

    def is_tensor(self, x) -> bool:
        return isinstance(x, self.Tensor)

    def no_grad(self):
        return self.autograd.no_grad()

    def enable_grad(self):
        return self.autograd.enable_grad()

    def cross_entropy(self, logits2d, targets1d, reduction="mean"):
        return self.F.cross_entropy(logits2d, targets1d, reduction=reduction)

    def adamw(self, params, lr):
        return self.optim.AdamW(params, lr=lr, weight_decay=0.0)

    def clip_grad_norm_(self, params, max_norm):
        return self.optim.clip_grad_norm_(params, max_norm)

    def snapshot(self, params):
        return [p.data.copy() for p in params]

    def restore(self, params, saved):
        for p, d in zip(params, saved):
            p.data = d

    def assign(self, p, values):
        p.data = self.floats(values, p).data

    def zeros_like(self, t):
        return self.Tensor(t.device.xp.zeros_like(t.data), device=t.device)

    @contextlib.contextmanager
    def count_ops(self):
        c = _Counter()

        def count(fn, inputs, out):
            c.n += 1

        with self.autograd.observe(forward=count):
            yield c


class TorchNative(Native):
    name = "torch"

    def __init__(self):
        import torch  # noqa: PLC0415  (only for torch objects: torch stays optional)

        self.torch = torch

    def tokens(self, x, like=None):
        dev = self.device_of(like) if like is not None else None
        t = self.torch.from_numpy(np.ascontiguousarray(np.asarray(x, dtype=np.int64)))
        return t.to(dev) if dev is not None else t

    def floats(self, x, like):
        return self.torch.from_numpy(np.ascontiguousarray(x)).to(device=like.device, dtype=like.dtype)

    def is_tensor(self, x) -> bool:
        return isinstance(x, self.torch.Tensor)

    def no_grad(self):
        return self.torch.no_grad()

    def enable_grad(self):
        return self.torch.enable_grad()

    def cross_entropy(self, logits2d, targets1d, reduction="mean"):
        return self.torch.nn.functional.cross_entropy(logits2d.float(), targets1d, reduction=reduction)

    def adamw(self, params, lr):
        return self.torch.optim.AdamW(params, lr=lr, weight_decay=0.0)

    def clip_grad_norm_(self, params, max_norm):
        return self.torch.nn.utils.clip_grad_norm_(params, max_norm)

    def snapshot(self, params):
        return [p.detach().clone() for p in params]

    def restore(self, params, saved):
        with self.torch.no_grad():
            for p, d in zip(params, saved):
                p.copy_(d)

    def assign(self, p, values):
        with self.torch.no_grad():
            p.copy_(self.floats(values, p))

    def zeros_like(self, t):
        return self.torch.zeros_like(t)

    @contextlib.contextmanager
    def count_ops(self):
        from torch.overrides import TorchFunctionMode  # noqa: PLC0415

        c = _Counter()

        class Count(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                c.n += 1
                return func(*args, **(kwargs or {}))

        with Count():
            yield c


_CACHE: dict = {}


def native_for(obj) -> Native:
    """The :class:`Native` of ``obj``'s framework (torch for torch objects, else tensorlite)."""
    key = "torch" if is_torch(obj) else "tensorlite"
    if key not in _CACHE:
        _CACHE[key] = TorchNative() if key == "torch" else TensorliteNative()
    return _CACHE[key]
