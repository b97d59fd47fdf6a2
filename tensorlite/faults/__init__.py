"""The bug zoo: every bug of the seed documents, by name, as a transform of a healthy object.

``faults.inject(model, "causal_mask_open")`` opens the causal mask of a healthy GPT;
``TrainConfig(faults=("no_warmup",))`` builds a run with the fault in its part
(:func:`tensorlite.train.build` calls :func:`inject` on each part). The healthy library
(``nn``, ``optim``, ``data``, ``functional``, the training loop) contains no trace of any of
them: each faulty line stands here, in the module of its component, beside the healthy line it
replaces. ``tensorlite doctor --list-faults`` prints :func:`table`.
"""

from . import attention, block, layers, loop, rope
from .catalogue import FAULTS, SEEDS, SWEEP_ISSUE, TARGETS, Fault, as_names, get, names, requirements, table
from .injection import inject, target_kind
from .loop import go_guide_lr

__all__ = [
    "FAULTS",
    "SEEDS",
    "SWEEP_ISSUE",
    "TARGETS",
    "Fault",
    "as_names",
    "attention",
    "block",
    "get",
    "go_guide_lr",
    "inject",
    "layers",
    "loop",
    "names",
    "requirements",
    "rope",
    "table",
    "target_kind",
]
