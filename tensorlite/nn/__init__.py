"""Layers and models, shaped like ``torch.nn``: ``Module``, ``Parameter``, ``Linear`` ... ``GPT``."""

from . import functional, init, utils
from .attention import KVCache, LayerKV, MultiHeadAttention
from .bitlinear import BitLinear
from .layers import (
    GELU,
    MLP,
    CrossEntropyLoss,
    Dropout,
    Embedding,
    LayerNorm,
    Linear,
    LogSoftmax,
    MSELoss,
    NLLLoss,
    ReLU,
    RMSNorm,
    Sigmoid,
    SiLU,
    Softmax,
    SwiGLU,
    Tanh,
)
from .module import (
    Identity,
    Module,
    ModuleDict,
    ModuleList,
    Parameter,
    ParameterDict,
    ParameterList,
    RemovableHandle,
    Sequential,
)
from .rope import RotaryEmbedding
from .transformer import GPT, Block, GPTConfig

__all__ = [
    "GELU",
    "GPT",
    "MLP",
    "BitLinear",
    "Block",
    "CrossEntropyLoss",
    "Dropout",
    "Embedding",
    "GPTConfig",
    "Identity",
    "KVCache",
    "LayerKV",
    "LayerNorm",
    "Linear",
    "LogSoftmax",
    "MSELoss",
    "Module",
    "ModuleDict",
    "ModuleList",
    "MultiHeadAttention",
    "NLLLoss",
    "Parameter",
    "ParameterDict",
    "ParameterList",
    "RMSNorm",
    "ReLU",
    "RemovableHandle",
    "RotaryEmbedding",
    "Sequential",
    "SiLU",
    "Sigmoid",
    "Softmax",
    "SwiGLU",
    "Tanh",
    "functional",
    "init",
    "utils",
]

