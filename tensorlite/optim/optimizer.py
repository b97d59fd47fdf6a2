"""The :class:`Optimizer` base: parameter groups, per-parameter state, ``zero_grad`` and a
``state_dict`` that round-trips, shaped like ``torch.optim.Optimizer``."""

from __future__ import annotations

from collections import defaultdict

from ..autograd import enable_grad, no_grad
from ..backend import to_device
from ..tensor import Tensor, clear_grads


class Optimizer:
    """Base of every optimizer.

    ``params`` is an iterable of Tensors, or of dicts (*parameter groups*) that each hold a
    ``"params"`` list plus any hyperparameters that override ``defaults`` for that group::

        opt = optim.AdamW([
            {"params": weights, "weight_decay": 0.1},
            {"params": norms_and_biases, "weight_decay": 0.0},
        ], lr=3e-4)

    Subclasses implement :meth:`step`. ``state`` maps each parameter to a dict of its buffers
    (arrays on the parameter's device; ``"step"`` is a Python int).
    """

    def __init__(self, params, defaults: dict) -> None:
        if isinstance(params, Tensor):
            raise TypeError(
                f"{type(self).__name__}: params must be an iterable of Tensors or dicts, got a single "
                "Tensor; wrap it in a list: [param]"
            )
        self.defaults = dict(defaults)
        self.state: defaultdict = defaultdict(dict)
        self.param_groups: list[dict] = []
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group: dict) -> None:
        """Add a group of parameters (a dict with ``"params"`` and, optionally, a ``"name"``);
        missing hyperparameters take the optimizer's defaults, unknown ones raise ValueError."""
        if not isinstance(group, dict):
            raise TypeError(f"add_param_group: a parameter group must be a dict, got {type(group).__name__}")
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(
                    f"{type(self).__name__} can only optimize Tensors, but one of the params is "
                    f"{type(p).__name__}"
                )
            if not p.is_leaf:
                raise ValueError(f"{type(self).__name__}: can't optimize a non-leaf Tensor")
        if len({id(p) for p in params}) != len(params):
            raise ValueError(f"{type(self).__name__}: a parameter group contains the same parameter twice")
        unknown = set(group) - set(self.defaults) - {"params", "initial_lr", "name"}
        if unknown:
            raise ValueError(
                f"{type(self).__name__}: unknown hyperparameter(s) {sorted(unknown)} in a parameter "
                f"group; known: {sorted(self.defaults)}"
            )
        new = dict(self.defaults)
        new.update(group)
        new["params"] = params
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(new)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's gradient: drop it (``set_to_none=True``, the default and the
        cheaper choice) or fill it with zeros in place."""
        clear_grads((p for group in self.param_groups for p in group["params"]), set_to_none)

    def step(self, closure=None):
        """Update every parameter that has a gradient. ``closure`` (optional) re-evaluates the
        model and returns the loss; it runs with grad enabled, as in torch."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        self._update(p, p.grad.data, group, self.state[p])
        return loss

    def _update(self, p: Tensor, grad, group: dict, state: dict) -> None:  # pragma: no cover
        raise NotImplementedError

    # ---- checkpointing -----------------------------------------------------------------------
    def _indexed_params(self) -> list:
        return [p for g in self.param_groups for p in g["params"]]

    def state_dict(self) -> dict:
        """``{"state": {index: {name: array | int}}, "param_groups": [{hyperparameters...,
        "params": [index, ...]}]}``, as torch: parameters are numbered in group order, so the
        dict holds no Tensors and loads into a fresh optimizer built over the same parameters.
        Arrays are copies, so later steps do not change a saved dict."""
        index = {id(p): i for i, p in enumerate(self._indexed_params())}
        groups = []
        for g in self.param_groups:
            saved = {k: v for k, v in g.items() if k != "params"}
            saved["params"] = [index[id(p)] for p in g["params"]]
            groups.append(saved)
        state = {}
        for p, s in self.state.items():
            if id(p) in index and s:
                state[index[id(p)]] = {k: (v.copy() if hasattr(v, "copy") and hasattr(v, "shape") else v)
                                       for k, v in s.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore what :meth:`state_dict` returned. Hyperparameters come from the saved groups;
        arrays (NumPy or CuPy) are copied onto each parameter's device in its dtype. Keys may be
        strings (after a JSON round trip)."""
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"load_state_dict: the saved state has {len(saved_groups)} parameter group(s), this "
                f"optimizer has {len(self.param_groups)}"
            )
        for i, (g, s) in enumerate(zip(self.param_groups, saved_groups)):
            if len(g["params"]) != len(s["params"]):
                raise ValueError(
                    f"load_state_dict: parameter group {i} has {len(g['params'])} parameters but the "
                    f"saved group has {len(s['params'])}; was the optimizer built over the same model?"
                )
        id_map = {}
        for g, s in zip(self.param_groups, saved_groups):
            for p, saved_index in zip(g["params"], s["params"]):
                id_map[int(saved_index)] = p
        self.state = defaultdict(dict)
        for key, buffers in state_dict["state"].items():
            p = id_map.get(int(key))
            if p is None:
                raise ValueError(f"load_state_dict: saved state for parameter {key}, which no group lists")
            restored = {}
            for name, value in buffers.items():
                if hasattr(value, "shape") and getattr(value, "ndim", 0) > 0:
                    if tuple(value.shape) != tuple(p.shape):
                        raise ValueError(
                            f"load_state_dict: state {name!r} of parameter {key} has shape "
                            f"{tuple(value.shape)} but the parameter has shape {tuple(p.shape)}"
                        )
                    arr = p.device.xp.array(to_device(value, p.device), dtype=p.dtype, copy=True)
                    restored[name] = arr
                elif name == "step":
                    restored[name] = int(value)
                else:
                    restored[name] = value
            self.state[p] = restored
        for g, s in zip(self.param_groups, saved_groups):
            for k, v in s.items():
                if k != "params":
                    g[k] = v

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(g):
                if k != "params":
                    lines.append(f"    {k}: {g[k]}")
        lines.append(")")
        return "\n".join(lines)


def param_groups_for_decay(model, weight_decay: float) -> list[dict]:
    """Split ``model``'s trainable parameters into two groups: matrices (ndim >= 2: linear and
    embedding weights) decay with ``weight_decay``; vectors (ndim < 2: biases, norm gains) get 0.

    ``model`` is a Module (``named_parameters()``/``parameters()``) or an iterable of Tensors.
    Shared (tied) parameters appear once. Both groups are always returned, in this order, so a
    saved optimizer state loads into an optimizer built the same way.
    """
    if hasattr(model, "parameters"):
        params = list(model.parameters())
    else:
        params = list(model)
    decay, no_decay, seen = [], [], set()
    for p in params:
        if id(p) in seen or not p.requires_grad:
            continue
        seen.add(id(p))
        (decay if p.ndim >= 2 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": float(weight_decay)},
        {"params": no_decay, "weight_decay": 0.0},
    ]
