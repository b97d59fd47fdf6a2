"""Layers and models, shaped like ``torch.nn``: ``Module``, ``Parameter``, ``Linear`` ... ``GPT``."""

from . import functional, init, utils
from .attention import KVCache, LayerKV, MultiHeadAttention
from .bitlinear import BitLinear
from .layers import GELU, MLP, Dropout, Embedding, LayerNorm, Linear, RMSNorm, SiLU, SwiGLU
from .module import Identity, Module, ModuleList, Parameter, RemovableHandle, Sequential
from .rope import RotaryEmbedding
from .transformer import GPT, Block, GPTConfig

__all__ = [
    "GELU",
    "GPT",
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

