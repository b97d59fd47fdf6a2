"""tensorlite: a small tensor library with reverse-mode autograd, a GPT, and the tools to find
out why its training breaks."""

import os as _os

# OpenBLAS's threads spin for about 2**28 cycles after every BLAS call before they sleep, holding
# the core that tensorlite's own pool (attention, GELU, the norms) needs next: a training step at
# two threads runs ~15% faster when they sleep at once (docs/performance.md). OpenBLAS reads this
# when NumPy loads it, so it takes effect when tensorlite is imported first (the command line, a
# script that imports it before NumPy); a value already in the environment is kept.
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numpy as _np  # noqa: E402

from . import amp, cuda, functional, kernels, random
from ._version import __version__
from .amp import autocast
from .autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .backend import Device, cuda_available, get_device
from .creation import (
    arange,
    as_tensor,
    bool_,
    double,
    empty,
    empty_like,
    eye,
    float16,
    float32,
    float64,
    from_numpy,
    full,
    full_like,
    half,
    int32,
    int64,
    linspace,
    long,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    randperm,
    tensor,
    zeros,
    zeros_like,
)
from .functional import (
    abs,
    all,
    amax,
    amin,
    any,
    argmax,
    argmin,
    argsort,
    cat,
    chunk,
    clamp,
    cos,
    cumsum,
    erf,
    exp,
    expand,
    flatten,
    gather,
    gelu,
    isfinite,
    isinf,
    isnan,
    log,
    log1p,
    log_softmax,
    logsumexp,
    masked_fill,
    matmul,
    max,
    maximum,
    mean,
    min,
    minimum,
    multinomial,
    one_hot,
    permute,
    pow,
    reciprocal,
    relu,
    repeat_interleave,
    reshape,
    rsqrt,
    sigmoid,
    silu,
    sin,
    softmax,
    sort,
    split,
    sqrt,
    squeeze,
    stack,
    std,
    sum,
    tanh,
    topk,
    transpose,
    tril,
    triu,
    unbind,
    unsqueeze,
    var,
    where,
)
from .functional import embedding as embedding
from .ops.compare import allclose, equal, isclose
from .ops.products import addmm, bmm, ger, mm, outer
from .gradcheck import GradcheckError, gradcheck
from .kernels import get_num_threads, set_num_threads
from .random import get_rng_state, manual_seed, set_rng_state
from .tensor import Tensor

clip = clamp
device = get_device
finfo, iinfo = _np.finfo, _np.iinfo  # torch.finfo(torch.float32).min and NumPy's agree
inference_mode = no_grad  # torch's faster no_grad; here the two are one


def cuda_is_available() -> bool:
    return cuda_available()


def is_tensor(obj) -> bool:
    return isinstance(obj, Tensor)


def numel(input) -> int:
    return input.numel()


def get_default_dtype():
    return float32


def __getattr__(name):
    # Heavier subpackages load on first use, so ``import tensorlite`` stays fast.
    import importlib

    if name in ("nn", "optim", "data", "debug", "train", "generate", "utils", "faults", "runlog",
                "checkpoint", "ops"):
        return importlib.import_module(f".{name}", __name__)
    if name in ("bfloat16", "complex64", "complex128", "cfloat"):
        raise AttributeError(
            f"tensorlite has no {name}: NumPy and CuPy arrays have no such dtype here; use float32 "
            "(or float16 to halve memory), or keep that part of the code in torch"
        )
    if name in _NOT_HERE:
        raise AttributeError(f"tensorlite has no {name}: {_NOT_HERE[name]}")
    raise AttributeError(f"module 'tensorlite' has no attribute {name!r}")


#: torch names with no tensorlite counterpart, and what to write instead (docs/pytorch.md).
_NOT_HERE = {
    "Generator": "there is one seeded generator per device; call tl.manual_seed(seed) before the draws "
                 "(and drop generator= arguments)",
    "einsum": "write the product with @, transpose and reshape (q @ k.transpose(-2, -1) for 'bhqd,bhkd->bhqk')",
    "polar": "complex numbers are not supported; rotate real pairs instead (tensorlite.nn.RotaryEmbedding, "
             "or x1 * cos - x2 * sin, x1 * sin + x2 * cos)",
    "view_as_complex": "complex numbers are not supported; rotate real pairs instead (tensorlite.nn.RotaryEmbedding)",
    "view_as_real": "complex numbers are not supported; rotate real pairs instead (tensorlite.nn.RotaryEmbedding)",
    "compile": "there is no compiler; the model runs eagerly (remove the torch.compile call)",
}


# torch's short dtype names. Bound last: they shadow Python's bool, int and float in this module.
int8, uint8, int16 = _np.dtype("int8"), _np.dtype("uint8"), _np.dtype("int16")
short = int16
bool = bool_  # noqa: A001
int = int32  # noqa: A001
float = float32  # noqa: A001
