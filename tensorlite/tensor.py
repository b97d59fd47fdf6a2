"""The :class:`Tensor`: an array on a device, with an optional link into the autograd graph.

Every operator is a one-liner into :mod:`tensorlite.functional`, where the ops live.
"""

from __future__ import annotations

import numpy as np

from . import autograd
from . import functional as F
from .backend import CPU, Device, get_device, to_device, to_numpy


class Tensor:
    """A multi-dimensional array with reverse-mode autograd, shaped like ``torch.Tensor``."""

    __slots__ = ("data", "grad", "requires_grad", "grad_fn", "device", "_hooks", "__weakref__")
    __array_priority__ = 1000  # so ``ndarray * Tensor`` defers to Tensor.__rmul__

    def __init__(self, data, requires_grad: bool = False, device=None) -> None:
        dev = get_device(device) if device is not None else CPU
        if isinstance(data, Tensor):
            data = data.data
        self.data = to_device(data, dev)
        self.device = dev
        self.grad = None
        self.grad_fn = None
        self._hooks = None
        self.requires_grad = bool(requires_grad)
        if requires_grad and not _is_float(self.data.dtype):
            raise TypeError(
                f"only floating-point tensors can require gradients, got dtype {self.data.dtype}"
            )

    @classmethod
    def _wrap(cls, data, device: Device, requires_grad: bool) -> Tensor:
        """Fast constructor for op outputs: no conversion, no checks."""
        t = object.__new__(cls)
        t.data = data
        t.device = device
        t.grad = None
        t.grad_fn = None
        t._hooks = None
        t.requires_grad = requires_grad
        return t

    # ---- attributes -------------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        """The size of each dimension, a tuple (as NumPy; torch's ``torch.Size`` is a tuple too)."""
        return self.data.shape

    @property
    def dtype(self):
        """The NumPy dtype of the data (``tl.float32`` by default)."""
        return self.data.dtype

    @property
    def ndim(self) -> int:
        """The number of dimensions."""
        return self.data.ndim

    @property
    def is_leaf(self) -> bool:
        """True for tensors not made by a recorded op; only leaves keep ``.grad`` by default."""
        return self.grad_fn is None

    def size(self, dim: int | None = None):
        """The shape, or the size of dimension ``dim``."""
        return self.data.shape if dim is None else self.data.shape[dim]

    def dim(self) -> int:
        return self.data.ndim

    def numel(self) -> int:
        """The number of elements."""
        return int(self.data.size)

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    # ---- conversion -------------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """The values as a NumPy array (a host copy on the GPU). Fails on a tensor that needs grad
        only in torch; here it returns the data, since NumPy arrays never carry a graph."""
        return to_numpy(self.data)

    def item(self):
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(
                f"item: only one-element tensors can be converted to a Python scalar, got shape "
                f"{tuple(self.shape)}"
            )
        return to_numpy(self.data).reshape(()).item()

    def tolist(self):
        """The values as nested Python lists."""
        return to_numpy(self.data).tolist()

    def detach(self) -> Tensor:
        """The same values, cut from the graph (shares memory, like torch)."""
        return Tensor._wrap(self.data, self.device, False)

    def clone(self) -> Tensor:
        """A copy with its own memory, still in the graph."""
        return F.clone(self)

    def contiguous(self) -> Tensor:
        return self

    def to(self, device=None, dtype=None) -> Tensor:
        """Move to ``device`` and/or cast to ``dtype`` (differentiable, like torch)."""
        out = self
        if dtype is not None:
            out = F.cast(out, dtype)
        if device is not None:
            out = F.to_device(out, get_device(device))
        return out

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self) -> Tensor:
        return self.to("cuda")

    def float(self) -> Tensor:
        return self.to(dtype=np.float32)

    def double(self) -> Tensor:
        return self.to(dtype=np.float64)

    def half(self) -> Tensor:
        return self.to(dtype=np.float16)

    def long(self) -> Tensor:
        return self.to(dtype=np.int64)

    def type_as(self, other: Tensor) -> Tensor:
        return self.to(dtype=other.dtype)

    def requires_grad_(self, mode: bool = True) -> Tensor:
        """Set ``requires_grad`` on a leaf tensor, in place; returns the tensor."""
        if mode and not _is_float(self.data.dtype):
            raise TypeError(f"only floating-point tensors can require gradients, got {self.dtype}")
        if not self.is_leaf:
            raise RuntimeError("requires_grad_: can only change the flag of a leaf tensor")
        self.requires_grad = mode
        return self

    # ---- autograd ---------------------------------------------------------------------------
    def backward(self, gradient=None, retain_graph: bool = False) -> None:
        """Accumulate the gradient of this tensor into the ``.grad`` of every leaf it depends on.

        ``gradient`` is required when the tensor is not a scalar (it is the vector in the
        vector-Jacobian product). The graph is freed afterwards unless ``retain_graph=True``.
        """
        autograd.backward(self, gradient, retain_graph)

    def retain_grad(self) -> None:
        """Keep this non-leaf tensor's gradient in ``.grad`` after backward."""
        if self.grad_fn is not None:
            self.grad_fn._retained = self

    def register_hook(self, hook) -> None:
        """Call ``hook(grad)`` when this tensor's gradient is computed; a returned tensor replaces it."""
        if not self.requires_grad:
            raise RuntimeError("register_hook: cannot register a hook on a tensor that doesn't require grad")
        if self.grad_fn is not None:
            hooks = getattr(self.grad_fn, "_hooks", None)
            if hooks is None:
                self.grad_fn._hooks = hooks = []
            hooks.append(hook)
        else:
            if self._hooks is None:
                self._hooks = []
            self._hooks.append(hook)

    def _accumulate(self, g) -> None:
        if self._hooks:
            g = autograd._run_hooks(self._hooks, g, self.device)
        if g.shape != self.data.shape:  # e.g. a 0-d gradient for a broadcast scalar
            g = self.device.xp.broadcast_to(g, self.data.shape)
        if g.dtype != self.data.dtype:
            g = g.astype(self.data.dtype)
        if self.grad is None:
            # Gradients may alias arrays of the graph (Add passes its gradient through), so the
            # first one is copied before it can be accumulated into in place.
            self.grad = Tensor._wrap(g.copy(), self.device, False)
        else:
            self.grad.data += g

    def zero_(self) -> Tensor:
        """Fill with zeros in place (``x.grad.zero_()`` resets an accumulated gradient)."""
        self.data[...] = 0
        return self

    # ---- repr -------------------------------------------------------------------------------
    def __repr__(self) -> str:
        body = np.array2string(
            to_numpy(self.data), separator=", ", precision=4, threshold=200, prefix="tensor("
        )
        extras = []
        if self.device.type != "cpu":
            extras.append(f"device='{self.device}'")
        if self.data.dtype not in (np.float32, np.int64, np.bool_):
            extras.append(f"dtype={self.data.dtype}")
        if self.grad_fn is not None:
            extras.append(f"grad_fn=<{self.grad_fn.name}Backward>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise RuntimeError(
                f"the truth value of a tensor with {self.data.size} elements is ambiguous; "
                "use .any() or .all()"
            )
        return bool(self.item())

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        return int(self.item())

    def __hash__(self) -> int:
        return id(self)

    def __array__(self, dtype=None, copy=None):
        arr = to_numpy(self.data)
        return arr.astype(dtype) if dtype is not None else arr

    # ---- operators --------------------------------------------------------------------------
    def __add__(self, other):
        return F.add(self, other)

    def __radd__(self, other):
        return F.add(self, other)

    def __sub__(self, other):
        return F.sub(self, other)

    def __rsub__(self, other):
        return F.rsub(self, other)

    def __mul__(self, other):
        return F.mul(self, other)

    def __rmul__(self, other):
        return F.mul(self, other)

    def __truediv__(self, other):
        return F.div(self, other)

    def __rtruediv__(self, other):
        return F.rdiv(self, other)

    def __pow__(self, other):
        return F.pow(self, other)

    def __rpow__(self, other):
        return F.rpow(self, other)

    def __matmul__(self, other):
        return F.matmul(self, other)

    def __rmatmul__(self, other):
        return F.matmul(F.as_tensor_like(other, self), self)

    def __neg__(self):
        return F.neg(self)

    def __abs__(self):
        return F.abs(self)

    def __getitem__(self, key):
        return F.getitem(self, key)

    def __setitem__(self, key, value):
        F.setitem_(self, key, value)

    def __iadd__(self, other):
        return F.inplace(self, other, "add")

    def __isub__(self, other):
        return F.inplace(self, other, "sub")

    def __imul__(self, other):
        return F.inplace(self, other, "mul")

    def __itruediv__(self, other):
        return F.inplace(self, other, "div")

    # comparisons: no gradient, boolean result
    def __eq__(self, other):  # type: ignore[override]
        return F.compare(self, other, "eq")

    def __ne__(self, other):  # type: ignore[override]
        return F.compare(self, other, "ne")

    def __lt__(self, other):
        return F.compare(self, other, "lt")

    def __le__(self, other):
        return F.compare(self, other, "le")

    def __gt__(self, other):
        return F.compare(self, other, "gt")

    def __ge__(self, other):
        return F.compare(self, other, "ge")

    def __invert__(self):
        return F.logical_not(self)

    def __and__(self, other):
        return F.compare(self, other, "and")

    def __or__(self, other):
        return F.compare(self, other, "or")

    # ---- methods (PyTorch names) ------------------------------------------------------------
    def exp(self):
        return F.exp(self)

    def log(self):
        return F.log(self)

    def sqrt(self):
        return F.sqrt(self)

    def rsqrt(self):
        return F.rsqrt(self)

    def abs(self):
        return F.abs(self)

    def tanh(self):
        return F.tanh(self)

    def sigmoid(self):
        return F.sigmoid(self)

    def relu(self):
        return F.relu(self)

    def pow(self, exponent):
        return F.pow(self, exponent)

    def clamp(self, min=None, max=None):
        return F.clamp(self, min, max)

    clip = clamp

    def sum(self, dim=None, keepdim: bool = False):
        return F.sum(self, dim, keepdim)

    def mean(self, dim=None, keepdim: bool = False):
        return F.mean(self, dim, keepdim)

    def var(self, dim=None, keepdim: bool = False, correction: int = 1, unbiased=None):
        return F.var(self, dim, keepdim, correction, unbiased)

    def std(self, dim=None, keepdim: bool = False, correction: int = 1, unbiased=None):
        return F.std(self, dim, keepdim, correction, unbiased)

    def max(self, dim=None, keepdim: bool = False):
        return F.max(self, dim, keepdim)

    def min(self, dim=None, keepdim: bool = False):
        return F.min(self, dim, keepdim)

    def amax(self, dim=None, keepdim: bool = False):
        return F.amax(self, dim, keepdim)

    def amin(self, dim=None, keepdim: bool = False):
        return F.amin(self, dim, keepdim)

    def argmax(self, dim=None, keepdim: bool = False):
        return F.argmax(self, dim, keepdim)

    def argmin(self, dim=None, keepdim: bool = False):
        return F.argmin(self, dim, keepdim)

    def any(self, dim=None, keepdim: bool = False):
        return F.any(self, dim, keepdim)

    def all(self, dim=None, keepdim: bool = False):
        return F.all(self, dim, keepdim)

    def norm(self, p=2, dim=None, keepdim: bool = False):
        return F.norm(self, p, dim, keepdim)

    def reshape(self, *shape):
        return F.reshape(self, *shape)

    def view(self, *shape):
        return F.reshape(self, *shape)

    def transpose(self, dim0: int, dim1: int):
        return F.transpose(self, dim0, dim1)

    def permute(self, *dims):
        return F.permute(self, *dims)

    @property
    def T(self):
        return F.permute(self, *reversed(range(self.ndim)))

    @property
    def mT(self):
        return F.transpose(self, -2, -1)

    def unsqueeze(self, dim: int):
        return F.unsqueeze(self, dim)

    def squeeze(self, dim=None):
        return F.squeeze(self, dim)

    def expand(self, *sizes):
        return F.expand(self, *sizes)

    def expand_as(self, other):
        return F.expand(self, *other.shape)

    def flatten(self, start_dim: int = 0, end_dim: int = -1):
        return F.flatten(self, start_dim, end_dim)

    def split(self, split_size_or_sections, dim: int = 0):
        return F.split(self, split_size_or_sections, dim)

    def chunk(self, chunks: int, dim: int = 0):
        return F.chunk(self, chunks, dim)

    def masked_fill(self, mask, value):
        return F.masked_fill(self, mask, value)

    def tril(self, diagonal: int = 0):
        return F.tril(self, diagonal)

    def triu(self, diagonal: int = 0):
        return F.triu(self, diagonal)

    def softmax(self, dim: int):
        return F.softmax(self, dim)

    def log_softmax(self, dim: int):
        return F.log_softmax(self, dim)

    def matmul(self, other):
        return F.matmul(self, other)

    def add(self, other):
        return F.add(self, other)

    def sub(self, other):
        return F.sub(self, other)

    def mul(self, other):
        return F.mul(self, other)

    def div(self, other):
        return F.div(self, other)

    def gather(self, dim: int, index):
        return F.gather(self, dim, index)

    def isnan(self):
        return F.isnan(self)

    def isinf(self):
        return F.isinf(self)

    def isfinite(self):
        return F.isfinite(self)


def _is_float(dtype) -> bool:
    return np.dtype(dtype).kind == "f"


# autograd and functional are imported before this class exists; hand it to them once.
autograd._Tensor = Tensor
F._Tensor = Tensor
