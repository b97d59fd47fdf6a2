"""Neural-network functions, as ``torch.nn.functional``."""

from ..functional import (  # noqa: F401
    attention_reference,
    causal_mask,
    cross_entropy,
    dropout,
    embedding,
    gelu,
    layer_norm,
    log_softmax,
    mse_loss,
    nll_loss,
    one_hot,
    packed_self_attention,
    relu,
    rms_norm,
    scaled_dot_product_attention,
    sigmoid,
    silu,
    softmax,
    tanh,
    tiled_attention,
)
from .layers import linear  # noqa: F401  (fused x @ W^T + b)
