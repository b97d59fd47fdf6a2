"""Layers and models, shaped like ``torch.nn``: ``Module``, ``Parameter``, ``Linear`` ... ``GPT``."""

from . import functional, init
from .attention import KVCache, LayerKV, MultiHeadAttention
from .bitlinear import BitLinear
from .layers import GELU, MLP, Dropout, Embedding, LayerNorm, Linear, RMSNorm, SiLU, SwiGLU
from .module import Identity, Module, ModuleList, Parameter, RemovableHandle, Sequential
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
    "Dropout",
    "Embedding",
    "GPTConfig",
    "Identity",
    "KVCache",
    "LayerKV",
    "LayerNorm",
    "Linear",
    "Module",
    "ModuleList",
    "MultiHeadAttention",
    "Parameter",
    "RMSNorm",
    "RemovableHandle",
    "RotaryEmbedding",
    "Sequential",
    "SiLU",
    "SwiGLU",
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
