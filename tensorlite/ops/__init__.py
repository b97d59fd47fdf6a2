"""Ops added for code written against torch, split by family; :mod:`tensorlite.functional`
re-exports every public name, so ``F.topk`` and ``tl.topk`` are the same function."""

from .inplace import (
    add_,
    addcdiv_,
    addcmul_,
    clamp_,
    copy_,
    div_,
    fill_,
    lerp_,
    masked_fill_,
    mul_,
    normal_,
    sub_,
    uniform_,
    zero_,
)
from .sampling import argsort, multinomial, sort, topk
from .scan import cumsum
from .shape import contiguous, is_contiguous, repeat, repeat_interleave, unbind, view

__all__ = [
    "add_", "addcdiv_", "addcmul_", "argsort", "clamp_", "contiguous", "copy_", "cumsum", "div_",
    "fill_", "is_contiguous", "lerp_", "masked_fill_", "mul_", "multinomial", "normal_", "repeat",
    "repeat_interleave", "sort", "sub_", "topk", "unbind", "uniform_", "view", "zero_",
]
