"""One KV-cache decoding step of a plain GPT on raw arrays, for :func:`tensorlite.generate.generate`.

A decoding step is one position through every layer at batch 1: some fifty tiny products and row
ops whose arithmetic takes a few microseconds in all, and, through the modules, about fifty
module calls and forty-five graph nodes whose Python bookkeeping costs more than the arithmetic.
:func:`decoder` returns a function that runs the same kernels on the same parameters in the same
order (so the logits are bitwise those of ``model(ids, cache=cache)``, which the tests check)
without building tensors or calling modules, about twice as fast.

It only takes models it can vouch for: a :class:`~tensorlite.nn.GPT` of the standard parts
(learned positions, LayerNorm or RMSNorm, the GELU MLP, dense linear layers, the fused or tiled
attention) with no hooks and no method replaced on any module. Anything else (RoPE, SwiGLU,
BitLinear, a fault, a hook or a capture that wants to see each call) gets ``None``, and
``generate`` runs the modules as usual.
"""

from __future__ import annotations

from . import kernels
from .kernels import fused
from .kernels.attention import fused_forward, tiled_forward
from .tensor import Tensor

# The standard parts, by qualified name: decoding sits below ``tensorlite.nn`` in the package's
# layering, and an exact name excludes every subclass (a fault's, a user's) as ``type() is`` would.
_NN = "tensorlite.nn."
_PLAIN = {_NN + n for n in ("transformer.GPT", "transformer.Block", "attention.MultiHeadAttention",
                            "layers.Linear", "layers.Embedding", "layers.LayerNorm", "layers.RMSNorm",
                            "layers.MLP", "layers.Dropout", "module.ModuleList")}


def _name(m) -> str:
    return f"{type(m).__module__}.{type(m).__qualname__}"


def decoder(model):
    """``step(token_id, cache) -> logits row`` for ``model``, or None when it is not a plain GPT."""
    if _name(model) != _NN + "transformer.GPT" or model.pos_emb is None or model.training:
        return None
    if kernels.current() != "blas":  # the modules' products go through the selected kernel
        return None
    for m in model.modules():
        if (_name(m) not in _PLAIN or m._forward_hooks or m._forward_pre_hooks
                or any(k in vars(m) for k in ("forward", "attend"))):
            return None
    for block in model.blocks:
        if block.attn.rope is not None:
            return None

    def attend(attn, q, k, v):  # what MultiHeadAttention.attend runs for one query (no mask)
        if attn.attention == "tiled":
            return tiled_forward(q, k, v, None, attn.scale, False)[0]
        return fused_forward(q, k, v, None, attn.scale)[0]

    def norm(m, x):
        if _name(m) == _NN + "layers.LayerNorm":
            return fused.layer_norm(x, m.weight.data, None if m.bias is None else m.bias.data, 1, m.eps)[0]
        return fused.rms_norm(x, m.weight.data, 1, m.eps)[0]

    def linear(m, x):  # LinearFunction.forward's arithmetic
        out = x.reshape(-1, x.shape[-1]) @ m.weight.data.T
        if m.bias is not None:
            out += m.bias.data
        return out.reshape(x.shape[:-1] + out.shape[-1:])

    def step(token: int, cache):
        n = cache.length
        if n + 1 > cache.max_len:
            raise ValueError(f"decode: the cache is full ({n} of {cache.max_len} positions)")
        x = (model.tok_emb.weight.data[token] + model.pos_emb.weight.data[n])[None, None]
        device = model.tok_emb.weight.device
        for block, layer in zip(model.blocks, cache.layers):
            attn = block.attn
            qkv = linear(attn.qkv, norm(block.norm1, x))
            h, c3 = attn.n_heads, qkv.shape[-1]
            parts = qkv.reshape(1, 1, 3, h, c3 // (3 * h))
            q, k, v = (parts[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
            k, v = layer.append(Tensor._wrap(k, device, False), Tensor._wrap(v, device, False))
            y = attend(attn, q, k.data, v.data)
            x = x + linear(attn.proj, y.transpose(0, 2, 1, 3).reshape(1, 1, c3 // 3))
            ffn = block.ffn
            x = x + linear(ffn.proj, fused.gelu_tanh(linear(ffn.fc, norm(block.norm2, x))))
        cache.length += 1
        return linear(model.lm_head, norm(model.norm_f, x))[0, -1]

    return step
