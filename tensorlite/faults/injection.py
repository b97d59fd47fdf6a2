"""``inject(target, *names)``: switch catalogued faults on in a model, an optimizer, a scheduler, a
batcher or a loss function."""

from __future__ import annotations

from ..nn import BitLinear, Block, Embedding, Module, MultiHeadAttention, RMSNorm, RotaryEmbedding
from ..optim import Optimizer
from ..optim.lr_scheduler import LRScheduler
from . import attention, block, layers, loop, rope
from .catalogue import as_names, get

# Model faults: the healthy module class each one rewrites (every instance in the target), and how.
_MODULE_FAULTS = {
    "attn_scale_multiply": (MultiHeadAttention, attention.attn_scale_multiply),
    "softmax_over_queries": (MultiHeadAttention, attention.softmax_over_queries),
    "rope_on_values": (MultiHeadAttention, attention.rope_on_values),
    "causal_mask_open": (MultiHeadAttention, attention.causal_mask_open),
    "rmsnorm_no_eps": (RMSNorm, layers.rmsnorm_no_eps),
    "rope_sign_flip": (RotaryEmbedding, rope.rope_sign_flip),
    "rope_pairing_mismatch": (RotaryEmbedding, rope.rope_pairing_mismatch),
    "no_ffn_residual": (Block, block.no_ffn_residual),
    "no_attn_residual": (Block, block.no_attn_residual),
    "no_prenorm": (Block, block.no_prenorm),
    "bitlinear_latent_scale": (BitLinear, layers.bitlinear_latent_scale),
    "per_token_loop": (Embedding, layers.per_token_loop),
}

_INJECT_LOOP = {
    "ce_sign_flip": loop.flip_loss,
    "bos_pad_misalignment": loop.MisalignedBatcher,
}
_IN_PLACE_LOOP = {
    "adamw_decay_on_moment": loop.adamw_decay_on_moment,
    "no_warmup": loop.no_warmup,
}


def target_kind(obj) -> str:
    """Which part of a run ``obj`` is: "model", "optimizer", "scheduler", "batcher" or "loss"."""
    if isinstance(obj, Module):
        return "model"
    if isinstance(obj, Optimizer):
        return "optimizer"
    if isinstance(obj, LRScheduler):
        return "scheduler"
    if hasattr(obj, "get_batch"):
        return "batcher"
    if callable(obj):
        return "loss"
    raise TypeError(f"inject: cannot inject a fault into {type(obj).__name__}")


def inject(target, *names):
    """Switch the faults ``names`` on in ``target`` and return the faulty target.

    ``target`` is the part of a run the fault belongs to (``faults.get(name).target``):

    * a tensorlite model (or any module holding the layers a fault rewrites): changed **in place**
      and returned. Each fault rewrites every instance of one healthy class (every attention, every
      block, every RoPE, ...): an attribute set (``scale``, ``is_causal``, ``eps``), the module turned
      into its faulty subclass with the same parameters (so an optimizer built on it, ``state_dict``
      keys and checkpoints keep working), or the weights scaled (``init_x100``);
    * an ``AdamW`` (turned into :class:`~tensorlite.faults.loop.AdamWDecayOnMoment` in place) or a
      ``WarmupCosine`` scheduler (warmup set to 0 in place);
    * a batcher or a loss function: a faulty wrapper is returned, the original is untouched.

    A fault that ``target`` cannot take raises ValueError naming what it needs.
    """
    for name in as_names(names):
        target = _inject_one(target, name)
    return target


def _inject_one(target, name: str):
    fault, kind = get(name), target_kind(target)
    if fault.target != kind:
        raise ValueError(
            f"inject: {name!r} goes into the {fault.target}, got the {kind} {type(target).__name__}"
        )
    if name == "init_x100":
        layers.init_x100(target)
    elif name in _MODULE_FAULTS:
        cls, transform = _MODULE_FAULTS[name]
        found = [m for m in target.modules() if isinstance(m, cls)]
        if not found:
            needs = "".join(f", {k}={v!r}" for k, v in fault.requires)
            raise ValueError(
                f"inject: {name!r} rewrites every {cls.__name__}, and this {type(target).__name__} has none"
                + (f" (a GPT needs GPTConfig(...{needs}))" if needs else "")
            )
        for m in found:
            transform(m)
    elif name in _IN_PLACE_LOOP:
        _IN_PLACE_LOOP[name](target)
    else:
        return _INJECT_LOOP[name](target)
    return target
