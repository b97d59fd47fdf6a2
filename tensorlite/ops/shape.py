"""``view`` with torch's rule (a view never copies), ``contiguous``, ``repeat``, ``repeat_interleave``."""

from __future__ import annotations

import numpy as np

from .. import functional as F


def is_contiguous(a) -> bool:
    """True when the elements lie in memory in row-major order, without gaps (as torch)."""
    return bool(a.data.flags.c_contiguous)


def contiguous(a):
    """``a`` itself when it is contiguous, else a row-major copy (differentiable, as torch)."""
    return a if a.data.flags.c_contiguous else F.clone(a)


def _resolve(shape, size):
    """``shape`` with its one ``-1`` filled in, or None when it cannot hold ``size`` elements."""
    if list(shape).count(-1) > 1 or any(s < -1 for s in shape):
        return None
    known = 1
    for s in shape:
        if s != -1:
            known *= s
    if -1 in shape:
        if known == 0 or size % known:
            return None
        shape = tuple(size // known if s == -1 else s for s in shape)
    elif known != size:
        return None
    return shape


def _view_strides(old_shape, old_strides, new_shape):
    """The strides that show ``old_shape`` as ``new_shape`` without moving any element, or None.

    torch's rule (``computeStride`` in ATen): the old dims split into runs that are contiguous
    among themselves; each run must map onto whole new dims. Strides in bytes or elements alike.
    """
    new_strides = [0] * len(new_shape)
    view_d = len(new_shape) - 1
    chunk_base = old_strides[-1]
    tensor_numel = view_numel = 1
    for d in range(len(old_shape) - 1, -1, -1):
        tensor_numel *= old_shape[d]
        if d == 0 or (old_shape[d - 1] != 1 and old_strides[d - 1] != tensor_numel * chunk_base):
            while view_d >= 0 and (view_numel < tensor_numel or new_shape[view_d] == 1):
                new_strides[view_d] = view_numel * chunk_base
                view_numel *= new_shape[view_d]
                view_d -= 1
            if view_numel != tensor_numel:
                return None
            if d > 0:
                chunk_base = old_strides[d - 1]
                tensor_numel = view_numel = 1
    return new_strides if view_d == -1 else None


def view(a, *shape):
    """The same memory seen with a new shape, as ``torch.Tensor.view``: never a copy.

    Where the layout does not allow it (a transposed or permuted tensor merged across the moved
    dims) it raises RuntimeError like torch, instead of quietly copying, so that writes through
    the view reach the original. ``.reshape()`` copies when it must; ``.contiguous().view()`` too.
    """
    if len(shape) == 1 and not isinstance(shape[0], (tuple, list, int, np.integer)):
        raise TypeError(
            f"view: got {shape[0]!r}; torch's view(dtype) reinterprets the bytes, which tensorlite "
            "does not support: use .to(dtype) to convert the values"
        )
    shape = F._shape_arg(shape)
    arr = a.data
    target = _resolve(shape, arr.size)
    if target is not None and arr.size and not arr.flags.c_contiguous and arr.ndim:
        if _view_strides(arr.shape, arr.strides, target) is None:
            raise RuntimeError(
                f"view: shape {shape} is not compatible with the size {tuple(a.shape)} and strides of "
                "this tensor (at least one dimension spans two non-adjacent parts of memory, e.g. "
                "after transpose or permute); as in torch, use .reshape(...) (which copies when it "
                "must) or call .contiguous() first"
            )
    return F.reshape(a, *shape)


def repeat(a, *sizes):
    """Tile ``a``: ``repeat(a, 2, 3)`` repeats dim 0 twice and dim 1 three times (torch's
    ``Tensor.repeat``, NumPy's ``tile``); ``sizes`` may add leading dims."""
    sizes = F._shape_arg(sizes)
    if len(sizes) < a.ndim:
        raise ValueError(
            f"repeat: {len(sizes)} repeat counts for a tensor with {a.ndim} dimensions; give one per "
            "dimension (leading extra counts add dimensions)"
        )
    shape = (1,) * (len(sizes) - a.ndim) + tuple(a.shape)
    x = F.reshape(a, *[n for d in shape for n in (1, d)])  # (1, d0, 1, d1, ...)
    x = F.expand(x, *[n for r, d in zip(sizes, shape) for n in (r, d)])
    return F.reshape(x, *[r * d for r, d in zip(sizes, shape)])


def repeat_interleave(a, repeats, dim=None):
    """Repeat each element ``repeats`` times along ``dim`` (flattened first when None), as torch:
    ``[a, b]`` -> ``[a, a, b, b]``. ``repeats`` is an int (one count for all)."""
    if not isinstance(repeats, (int, np.integer)):
        raise TypeError(
            f"repeat_interleave: repeats must be an int here, got {type(repeats).__name__}; torch also "
            "takes a tensor of per-element counts, tensorlite does not"
        )
    if dim is None:
        a, dim = F.flatten(a), 0
    d = F._dim(dim, a.ndim, "repeat_interleave")
    x = F.unsqueeze(a, d + 1)
    shape = list(x.shape)
    shape[d + 1] = int(repeats)
    x = F.expand(x, *shape)
    out = list(a.shape)
    out[d] *= int(repeats)
    return F.reshape(x, *out)


def unbind(a, dim: int = 0):
    """The slices along ``dim``, as a tuple (each differentiable)."""
    d = F._dim(dim, a.ndim, "unbind")
    return tuple(F.getitem(a, (slice(None),) * d + (i,)) for i in range(a.shape[d]))
