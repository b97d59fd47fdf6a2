"""Layers and models, shaped like ``torch.nn``: ``Module``, ``Parameter``, ``Linear`` ... ``GPT``."""

from . import functional, init
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
from .transformer import FAULT_REQUIREMENTS, GPT, KNOWN_FAULTS, Block, GPTConfig

__all__ = [
    "FAULT_REQUIREMENTS",
    "GELU",
    "GPT",
    "KNOWN_FAULTS",
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


def __getattr__(name):
    # nn.utils reaches into optim, which imports nn: load it on first use.
    if name == "utils":
        import importlib  # noqa: PLC0415

        return importlib.import_module(".utils", __name__)
    raise AttributeError(f"module 'tensorlite.nn' has no attribute {name!r}")
