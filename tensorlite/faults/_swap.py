"""The one mechanism behind the module faults: turn a healthy object into its faulty subclass."""

from __future__ import annotations


def become(obj, faulty_cls, **switches):
    """Make ``obj`` an instance of ``faulty_cls`` (a subclass of its class) in place, then set
    ``switches`` on it, and return it.

    The object keeps its parameters, buffers, children, hooks and optimizer state, so an
    optimizer built on the healthy model still updates it, ``state_dict`` keys are unchanged and
    checkpoints written by a faulty run load into a faulty rebuild (and into a healthy one).
    """
    if not isinstance(obj, faulty_cls):
        base = faulty_cls.__mro__[1]
        if type(obj) is not base:
            raise TypeError(
                f"inject: {type(obj).__name__} is not a {base.__name__}; this fault rewrites "
                f"tensorlite's own {base.__name__} (write the bug into your class by hand instead)"
            )
        obj.__class__ = faulty_cls
    for name, value in switches.items():
        setattr(obj, name, value)
    return obj
