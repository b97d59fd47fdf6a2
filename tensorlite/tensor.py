"""The :class:`Tensor`: an array on a device, with an optional link into the autograd graph.

Every operator is a one-liner into :mod:`tensorlite.functional`, where the ops live.
"""

from __future__ import annotations

import numpy as np

from . import autograd
from . import functional as F
from .autograd import RemovableHandle
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

    def contiguous(self, memory_format=None) -> Tensor:
        """This tensor if its memory is row-major without gaps, else a contiguous copy (as torch)."""
        return F.contiguous(self)

    def is_contiguous(self, memory_format=None) -> bool:
        return F.is_contiguous(self)

    def to(self, *args, **kwargs) -> Tensor:
        """Move and/or cast, as torch: ``to(dtype)``, ``to(device)``, ``to(device, dtype)``,
        ``to(other)`` (its device and dtype), or by keyword. Differentiable; ``self`` when nothing
        changes."""
        device, dtype = parse_to_args("Tensor.to", args, kwargs)
        out = self
        if dtype is not None:
            out = F.cast(out, dtype)
        if device is not None:
            out = F.to_device(out, device)
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

    def int(self) -> Tensor:
        return self.to(dtype=np.int32)

    def bool(self) -> Tensor:
        return self.to(dtype=np.bool_)

    def type(self, dtype=None):
        """With ``dtype``: cast to it (as ``.to(dtype)``). Without: the type name, e.g.
        ``'tensorlite.FloatTensor'`` (torch says ``'torch.FloatTensor'``)."""
        if dtype is None:
            return "tensorlite." + _TYPE_NAMES.get(np.dtype(self.dtype).name, "Tensor")
        return self.to(dtype=dtype)

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def new_tensor(self, data, dtype=None, requires_grad: bool = False) -> Tensor:
        """A new tensor (a copy of ``data``) with this tensor's dtype and device unless ``dtype``, as torch."""
        if isinstance(data, Tensor):
            data = data.data
        arr = self.device.xp.array(to_device(data, self.device), dtype=dtype or self.dtype, copy=True)
        return Tensor(arr, requires_grad=requires_grad, device=self.device)

    def _new(self, fill, size, dtype, requires_grad, *value):
        shape = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else tuple(size)
        arr = getattr(self.device.xp, fill)(shape, *value, dtype=np.dtype(dtype or self.dtype))
        return Tensor(arr, requires_grad=requires_grad, device=self.device)

    def new_zeros(self, *size, dtype=None, requires_grad: bool = False) -> Tensor:
        """Zeros of ``size`` with this tensor's dtype and device (unless ``dtype``)."""
        return self._new("zeros", size, dtype, requires_grad)

    def new_ones(self, *size, dtype=None, requires_grad: bool = False) -> Tensor:
        return self._new("ones", size, dtype, requires_grad)

    def new_empty(self, *size, dtype=None, requires_grad: bool = False) -> Tensor:
        return self._new("empty", size, dtype, requires_grad)

    def new_full(self, size, fill_value, dtype=None, requires_grad: bool = False) -> Tensor:
        return self._new("full", (size,), dtype, requires_grad, fill_value)

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
    def backward(self, gradient=None, retain_graph=None, create_graph: bool = False, inputs=None) -> None:
        """Accumulate the gradient of this tensor into the ``.grad`` of every leaf it depends on.

        ``gradient`` is required when the tensor is not a scalar (it is the vector in the
        vector-Jacobian product). The graph is freed afterwards unless ``retain_graph=True``.
        """
        if create_graph:
            raise NotImplementedError(
                "backward(create_graph=True): tensorlite's backward pass works on raw arrays and builds "
                "no graph of its own, so there are no second derivatives; torch would record one"
            )
        if inputs is not None:
            raise NotImplementedError(
                "backward(inputs=...): not supported; gradients go to every leaf that requires grad "
                "(set requires_grad=False on the others, or read the .grad you need)"
            )
        autograd.backward(self, gradient, bool(retain_graph))

    def retain_grad(self) -> None:
        """Keep this non-leaf tensor's gradient in ``.grad`` after backward."""
        if self.grad_fn is not None:
            self.grad_fn._retained = self

    def register_hook(self, hook) -> RemovableHandle:
        """Call ``hook(grad)`` when this tensor's gradient is computed; a returned tensor replaces it.

        Returns a handle: ``handle.remove()`` unregisters the hook (as torch).
        """
        if not self.requires_grad:
            raise RuntimeError("register_hook: cannot register a hook on a tensor that doesn't require grad")
        if self.grad_fn is not None:
            hooks = self.grad_fn.__dict__.get("_hooks")
            if hooks is None:
                self.grad_fn._hooks = hooks = []
        else:
            if self._hooks is None:
                self._hooks = []
            hooks = self._hooks
        hooks.append(hook)
        return RemovableHandle(hooks, hook)

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

    # ---- in place (trailing underscore, as torch; not recorded in the graph: see ops/inplace.py)
    def zero_(self) -> Tensor:
        """Fill with zeros in place (``x.grad.zero_()`` resets an accumulated gradient)."""
        return F.zero_(self)

    def fill_(self, value) -> Tensor:
        return F.fill_(self, value)

    def copy_(self, src, non_blocking: bool = False) -> Tensor:
        """Copy ``src``'s values (broadcast, cast to this dtype and device) into this tensor."""
        return F.copy_(self, src)

    def add_(self, other, alpha=1) -> Tensor:
        return F.add_(self, other, alpha)

    def sub_(self, other, alpha=1) -> Tensor:
        return F.sub_(self, other, alpha)

    def mul_(self, other) -> Tensor:
        return F.mul_(self, other)

    def div_(self, other) -> Tensor:
        return F.div_(self, other)

    def clamp_(self, min=None, max=None) -> Tensor:
        return F.clamp_(self, min, max)

    clip_ = clamp_

    def masked_fill_(self, mask, value) -> Tensor:
        return F.masked_fill_(self, mask, value)

    def addcmul_(self, tensor1, tensor2, value=1) -> Tensor:
        return F.addcmul_(self, tensor1, tensor2, value=value)

    def addcdiv_(self, tensor1, tensor2, value=1) -> Tensor:
        return F.addcdiv_(self, tensor1, tensor2, value=value)

    def lerp_(self, end, weight) -> Tensor:
        return F.lerp_(self, end, weight)

    def normal_(self, mean: float = 0.0, std: float = 1.0, *, generator=None) -> Tensor:
        return F.normal_(self, mean, std, generator=generator)

    def uniform_(self, a: float = 0.0, b: float = 1.0, *, generator=None) -> Tensor:
        return F.uniform_(self, a, b, generator=generator)

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

    def __format__(self, spec: str) -> str:
        # as torch: a 0-d tensor formats like its value (f"{loss:.4f}"); others like their repr
        if self.data.ndim == 0:
            return format(self.item(), spec)
        return object.__format__(self, spec)

    def __iter__(self):
        if self.data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (F.getitem(self, i) for i in range(self.data.shape[0]))

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

    def __xor__(self, other):
        return F.compare(self, other, "xor")

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

    def sin(self):
        return F.sin(self)

    def cos(self):
        return F.cos(self)

    def erf(self):
        return F.erf(self)

    def log1p(self):
        return F.log1p(self)

    def reciprocal(self):
        return F.reciprocal(self)

    def logsumexp(self, dim, keepdim: bool = False):
        return F.logsumexp(self, dim, keepdim)

    def outer(self, vec2):
        return F.outer(self, vec2)

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
        """The same memory with a new shape; raises (as torch) where that needs a copy: use
        ``.reshape()`` or ``.contiguous().view()`` there."""
        return F.view(self, *shape)

    def view_as(self, other):
        return F.view(self, *other.shape)

    def reshape_as(self, other):
        return F.reshape(self, *other.shape)

    def t(self):
        """Transpose a 2-D tensor (0-D and 1-D come back as they are, as torch)."""
        if self.ndim > 2:
            raise ValueError(f"t: expects a tensor with <= 2 dimensions, got {self.ndim}; use .transpose(d0, d1)")
        return self if self.ndim < 2 else F.transpose(self, 0, 1)

    def repeat(self, *sizes):
        return F.repeat(self, *sizes)

    def repeat_interleave(self, repeats, dim=None):
        return F.repeat_interleave(self, repeats, dim)

    def unbind(self, dim: int = 0):
        return F.unbind(self, dim)

    def ndimension(self) -> int:
        return self.data.ndim

    def nelement(self) -> int:
        return int(self.data.size)

    def element_size(self) -> int:
        return int(self.data.dtype.itemsize)

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

    def tril(self, diagonal: int = 0):
        return F.tril(self, diagonal)

    def triu(self, diagonal: int = 0):
        return F.triu(self, diagonal)

    def softmax(self, dim: int, dtype=None):
        return F.softmax(self, dim, dtype=dtype)

    def log_softmax(self, dim: int, dtype=None):
        return F.log_softmax(self, dim, dtype=dtype)

    def topk(self, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):
        return F.topk(self, k, dim, largest, sorted)

    def sort(self, dim: int = -1, descending: bool = False, stable: bool = False):
        return F.sort(self, dim, descending, stable)

    def argsort(self, dim: int = -1, descending: bool = False, stable: bool = False):
        return F.argsort(self, dim, descending, stable)

    def multinomial(self, num_samples: int, replacement: bool = False):
        return F.multinomial(self, num_samples, replacement)

    def cumsum(self, dim: int, dtype=None):
        return F.cumsum(self, dim, dtype)

    def neg(self):
        return F.neg(self)

    def square(self):
        return F.mul(self, self)

    def where(self, condition, other):
        return F.where(condition, self, other)

    def masked_fill(self, mask, value):
        return F.masked_fill(self, mask, value)

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


_TYPE_NAMES = {"float32": "FloatTensor", "float64": "DoubleTensor", "float16": "HalfTensor",
               "int64": "LongTensor", "int32": "IntTensor", "int16": "ShortTensor", "int8": "CharTensor",
               "uint8": "ByteTensor", "bool": "BoolTensor"}


def parse_to_args(op: str, args: tuple, kwargs: dict):
    """``(device, dtype)`` from torch's ``.to(...)`` forms: ``(dtype)``, ``(device)``,
    ``(device, dtype)``, ``(tensor)``, and the keywords ``device=``, ``dtype=``, ``non_blocking=``,
    ``copy=`` (the last two accepted and ignored). Either may be None (unchanged)."""
    unknown = set(kwargs) - {"device", "dtype", "non_blocking", "copy", "memory_format"}
    if unknown:
        raise TypeError(f"{op}: unexpected keyword argument(s) {sorted(unknown)}")
    device, dtype = kwargs.get("device"), kwargs.get("dtype")
    if len(args) > 2:
        raise TypeError(f"{op}: expected at most (device, dtype) positionally, got {len(args)} arguments")
    if args and isinstance(args[0], Tensor):
        if len(args) > 1:
            raise TypeError(f"{op}: to(other) takes no further positional arguments")
        return args[0].device, args[0].dtype
    for a in args:
        if a is None:
            continue
        if isinstance(a, (str, Device)):
            if device is not None:
                raise TypeError(f"{op}: device given twice")
            device = a
        else:
            try:
                a = np.dtype(a)
            except TypeError:
                raise TypeError(
                    f"{op}: expected a device ('cpu', 'cuda'), a dtype (tl.float32, ...) or a tensor, "
                    f"got {a!r}"
                ) from None
            if dtype is not None:
                raise TypeError(f"{op}: dtype given twice")
            dtype = a
    return (get_device(device) if device is not None else None), (np.dtype(dtype) if dtype is not None else None)


# autograd and functional are imported before this class exists; hand it to them once.
autograd._Tensor = Tensor
F._Tensor = Tensor


def clear_grads(tensors, set_to_none: bool = True) -> None:
    """Drop each tensor's ``.grad`` (``set_to_none=True``, the default and the cheaper choice) or
    fill it with zeros in place: what ``Module.zero_grad`` and ``Optimizer.zero_grad`` do."""
    for t in tensors:
        if t.grad is None:
            continue
        if set_to_none:
            t.grad = None
        else:
            t.grad.data[...] = 0
