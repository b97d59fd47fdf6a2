"""tensorlite: a small tensor library with reverse-mode autograd, a GPT, and the tools to find
out why its training breaks."""

from . import amp, functional, kernels, random
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
    cat,
    chunk,
    clamp,
    exp,
    expand,
    flatten,
    gather,
    gelu,
    isfinite,
    isinf,
    isnan,
    log,
    masked_fill,
    matmul,
    max,
    maximum,
    mean,
    min,
    minimum,
    one_hot,
    permute,
    pow,
    relu,
    reshape,
    rsqrt,
    sigmoid,
    silu,
    split,
    sqrt,
    squeeze,
    stack,
    std,
    sum,
    tanh,
    transpose,
    tril,
    triu,
    unsqueeze,
    var,
    where,
)
from .functional import embedding as embedding
from .gradcheck import GradcheckError, gradcheck
from .random import get_rng_state, manual_seed, set_rng_state
from .tensor import Tensor

clip = clamp
device = get_device


def cuda_is_available() -> bool:
    return cuda_available()


def __getattr__(name):
    # Heavier subpackages load on first use, so ``import tensorlite`` stays fast.
    import importlib

    if name in ("nn", "optim", "data", "debug", "train", "generate", "utils"):
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'tensorlite' has no attribute {name!r}")
