"""The basic layers: Linear, Embedding, the norms, Dropout, GELU and the two feed-forwards."""

from __future__ import annotations

import numpy as np

from .. import functional as F
from .. import kernels
from ..autograd import Function
from ..kernels import fused as fused_kernels
from ..tensor import Tensor
from . import init
from .module import Module, Parameter


class LinearFunction(Function):
    """``x @ W^T + b`` as one graph node, with the leading dims flattened into one GEMM.

    ``weight_used`` (an array) replaces ``W`` in the product while the gradient still goes to ``W``:
    that is the straight-through estimator :class:`~tensorlite.nn.BitLinear` needs.
    """

    def forward(self, x, w, b=None, weight_used=None):
        wu = w if weight_used is None else weight_used
        self.x, self.w = x, wu
        x2 = x.reshape(-1, x.shape[-1])
        out = kernels.matmul(x2, wu.T)
        if b is not None:
            out += b
        return out.reshape(x.shape[:-1] + (wu.shape[0],))

    def backward(self, g):
        need = self.needs_input_grad
        g2 = g.reshape(-1, g.shape[-1])
        gx = kernels.matmul(g2, self.w).reshape(self.x.shape) if need[0] else None
        gw = kernels.matmul(g2.T, self.x.reshape(-1, self.x.shape[-1])) if need[1] else None
        # the bias gradient as ones @ g: BLAS's column sums are ~3x faster than NumPy's sum(axis=0)
        gb = fused_kernels.column_sums(g2) if len(need) > 2 and need[2] else None
        return gx, gw, gb


def linear(x, weight, bias=None, weight_used=None):
    """``x @ weight.T + bias`` (as ``torch.nn.functional.linear``), fused into one node."""
    if x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: input of shape {tuple(x.shape)} does not fit weight of shape {tuple(weight.shape)}: "
            f"in_features is {weight.shape[1]}, the input's last dimension is {x.shape[-1]}"
        )
    if F._amp.dtype is not None:  # autocast: the product in float16, gradients back in each dtype
        x, weight, bias = F._autocast_lower(x, weight, bias)
        if weight_used is not None:
            weight_used = weight_used.astype(F._amp.dtype)
    if x.dtype != weight.dtype:
        raise TypeError(f"linear: input dtype {x.dtype} differs from weight dtype {weight.dtype}")
    if bias is None:
        return LinearFunction.apply(x, weight, weight_used=weight_used)
    return LinearFunction.apply(x, weight, bias, weight_used=weight_used)


class Linear(Module):
    """``y = x W^T + b`` with ``W`` of shape ``(out_features, in_features)`` (torch's layout).

    Initialised as torch: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias (the GPT re-initialises).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(np.empty((out_features, in_features), dtype=np.float32))
        init.fan_in_uniform_(self.weight, in_features)
        if bias:
            self.bias = Parameter(np.empty((out_features,), dtype=np.float32))
            init.fan_in_uniform_(self.bias, in_features)
        else:
            self.bias = None

    def forward(self, x):
        return linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    """A lookup table: ``Embedding(n, d)(idx)`` picks rows of a ``(n, d)`` weight (init N(0, 1))."""

    def __init__(self, num_embeddings: int, embedding_dim: int) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = Parameter(np.empty((num_embeddings, embedding_dim), dtype=np.float32))
        init.normal_(self.weight)

    def forward(self, idx):
        if not isinstance(idx, Tensor):
            idx = Tensor(np.asarray(idx, dtype=np.int64), device=self.weight.device)
        return F.embedding(idx, self.weight)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"


def _shape_tuple(normalized_shape) -> tuple:
    if isinstance(normalized_shape, (int, np.integer)):
        return (int(normalized_shape),)
    return tuple(int(n) for n in normalized_shape)


class LayerNorm(Module):
    """Normalise the trailing ``normalized_shape`` dims to zero mean and unit variance, then scale
    by ``weight`` and shift by ``bias`` (torch's arguments; ``bias=False`` drops the shift)."""

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True) -> None:
        super().__init__()
        self.normalized_shape, self.eps = _shape_tuple(normalized_shape), float(eps)
        self.elementwise_affine = bool(elementwise_affine)
        if self.elementwise_affine:
            self.weight = Parameter(np.ones(self.normalized_shape, dtype=np.float32))
            self.bias = Parameter(np.zeros(self.normalized_shape, dtype=np.float32)) if bias else None
        else:
            self.weight = self.bias = None

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:  # torch's, plus bias=False when there is none
        out = f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
        return out + (", bias=False" if self.elementwise_affine and self.bias is None else "")


class RMSNorm(Module):
    """``x / sqrt(mean(x^2) + eps) * weight`` over the trailing dims (no centring, no bias).

    ``eps=None`` (torch's default) means the dtype's machine epsilon. ``eps=0`` is accepted; an
    all-zero row then gives NaN (0 / 0).
    """

    def __init__(self, normalized_shape, eps: float | None = None, elementwise_affine: bool = True) -> None:
        super().__init__()
        if eps is not None and eps < 0:
            raise ValueError(f"RMSNorm: eps must be >= 0, got {eps}")
        self.normalized_shape = _shape_tuple(normalized_shape)
        self.eps = None if eps is None else float(eps)
        self.elementwise_affine = bool(elementwise_affine)
        self.weight = Parameter(np.ones(self.normalized_shape, dtype=np.float32)) if elementwise_affine else None

    def forward(self, x):
        return F.rms_norm(x, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class Dropout(Module):
    """Zero elements with probability ``p`` while training (survivors scaled by 1/(1-p))."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p = float(p)

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        return F.dropout(x, self.p, True)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class GELU(Module):
    """GELU, as torch: exact ``x * Phi(x)`` by default (``approximate="none"``); ``"tanh"`` is
    GPT-2's formula (what tensorlite's own :class:`MLP` uses, and minGPT's ``NewGELU``)."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class SiLU(Module):
    """``x * sigmoid(x)``."""

    def forward(self, x):
        return F.silu(x)


class ReLU(Module):
    """``max(x, 0)``."""

    def forward(self, x):
        return F.relu(x)


class Tanh(Module):
    def forward(self, x):
        return F.tanh(x)


class Sigmoid(Module):
    def forward(self, x):
        return F.sigmoid(x)


class Softmax(Module):
    """Softmax over ``dim`` (torch's default ``None`` is refused: say which dim)."""

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        if dim is None:
            raise ValueError("Softmax: give dim (torch guesses one from the input's rank and warns); usually dim=-1")
        self.dim = dim

    def forward(self, x):
        return F.softmax(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    def forward(self, x):
        return F.log_softmax(x, self.dim)


class CrossEntropyLoss(Module):
    """``F.cross_entropy`` as a module (torch's arguments)."""

    def __init__(self, weight=None, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.weight, self.ignore_index = weight, ignore_index
        self.reduction, self.label_smoothing = reduction, label_smoothing

    def forward(self, input, target):
        return F.cross_entropy(input, target, self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(Module):
    """``F.nll_loss`` as a module."""

    def __init__(self, weight=None, ignore_index: int = -100, reduction: str = "mean") -> None:
        super().__init__()
        self.weight, self.ignore_index, self.reduction = weight, ignore_index, reduction

    def forward(self, input, target):
        return F.nll_loss(input, target, self.weight, ignore_index=self.ignore_index, reduction=self.reduction)


class MSELoss(Module):
    """``F.mse_loss`` as a module."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = reduction

    def forward(self, input, target):
        return F.mse_loss(input, target, self.reduction)


class MLP(Module):
    """GPT-2's feed-forward: ``proj(gelu_tanh(fc(x)))`` with ``fc: d -> d_ff``, ``proj: d_ff -> d``."""

    def __init__(self, d_model: int, d_ff: int, bias: bool = True, linear_cls=Linear) -> None:
        super().__init__()
        self.fc = linear_cls(d_model, d_ff, bias=bias)
        self.proj = linear_cls(d_ff, d_model, bias=bias)

    def forward(self, x):
        return self.proj(F.gelu(self.fc(x), "tanh"))


class SwiGLU(Module):
    """LLaMA's gated feed-forward: ``proj(silu(w_gate(x)) * w_up(x))``."""

    def __init__(self, d_model: int, d_ff: int, bias: bool = True, linear_cls=Linear) -> None:
        super().__init__()
        self.w_gate = linear_cls(d_model, d_ff, bias=bias)
        self.w_up = linear_cls(d_model, d_ff, bias=bias)
        self.proj = linear_cls(d_ff, d_model, bias=bias)

    def forward(self, x):
        return self.proj(F.silu(self.w_gate(x)) * self.w_up(x))
