"""``Module`` and ``Parameter``: the bookkeeping every layer shares, shaped like ``torch.nn``.

A module registers what is assigned to it: a :class:`Parameter` goes to ``_parameters``, a
``Module`` to ``_modules``, and :meth:`Module.register_buffer` adds arrays that are state but not
trained. The values also stay ordinary attributes, so ``self.weight`` in a ``forward`` is a plain
attribute read with no lookup machinery on the hot path.
"""

from __future__ import annotations

from collections import OrderedDict, namedtuple

import numpy as np

from ..autograd import RemovableHandle, no_grad
from ..backend import device_of, to_device
from ..tensor import Tensor, clear_grads, parse_to_args
from .backward_hooks import call_with_backward_hooks


class Parameter(Tensor):
    """A tensor that a :class:`Module` registers as trainable (``requires_grad=True``).

    ``Parameter(t)`` shares memory with the tensor ``t``; NumPy/CuPy arrays are wrapped as they are.
    """

    __slots__ = ()

    def __init__(self, data=None, requires_grad: bool = True) -> None:
        if data is None:
            data = np.empty((0,), dtype=np.float32)
        if isinstance(data, Tensor):
            super().__init__(data.data, requires_grad, data.device)
        else:  # a CuPy array stays on its device
            super().__init__(data, requires_grad, device_of(data))

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


_IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Module:
    """Base class of every layer and model.

    Subclasses call ``super().__init__()`` first, assign parameters and submodules as attributes,
    and define ``forward``. Calling the module runs ``forward`` and then any forward hooks.
    """

    training: bool
    _backward_hooks = None  # a dict once register_full_backward_hook is called

    def __init__(self) -> None:
        d = self.__dict__
        d["training"] = True
        d["_parameters"] = OrderedDict()
        d["_modules"] = OrderedDict()
        d["_buffers"] = OrderedDict()
        d["_non_persistent"] = set()
        d["_forward_hooks"] = OrderedDict()
        d["_forward_pre_hooks"] = OrderedDict()

    # ---- registration -------------------------------------------------------------------------
    def __setattr__(self, name: str, value) -> None:
        d = self.__dict__
        params = d.get("_parameters")
        if isinstance(value, (Parameter, Module)) and params is None:
            raise AttributeError(
                f"cannot assign {type(value).__name__} '{name}' before Module.__init__() was called; "
                "call super().__init__() first in your module's __init__"
            )
        if params is not None:
            modules, buffers = d["_modules"], d["_buffers"]
            if isinstance(value, Parameter):
                modules.pop(name, None)
                buffers.pop(name, None)
                params[name] = value
            elif isinstance(value, Module):
                params.pop(name, None)
                buffers.pop(name, None)
                modules[name] = value
            elif name in params:
                if value is not None:
                    raise TypeError(
                        f"cannot assign {type(value).__name__} to parameter '{name}' "
                        "(nn.Parameter or None expected); wrap it: nn.Parameter(value)"
                    )
                params[name] = None
            elif name in modules:
                if value is not None:
                    raise TypeError(
                        f"cannot assign {type(value).__name__} to submodule '{name}' (nn.Module or None expected)"
                    )
                modules[name] = None
            elif name in buffers:
                if value is not None and not isinstance(value, Tensor):
                    raise TypeError(
                        f"cannot assign {type(value).__name__} to buffer '{name}' (Tensor or None expected)"
                    )
                buffers[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        for reg in ("_parameters", "_modules", "_buffers"):
            self.__dict__[reg].pop(name, None)
        self.__dict__["_non_persistent"].discard(name)
        object.__delattr__(self, name)

    def register_buffer(self, name: str, tensor, persistent: bool = True) -> None:
        """Register state that is not trained (e.g. RoPE tables). ``persistent=False`` keeps it out
        of :meth:`state_dict`."""
        if "_buffers" not in self.__dict__:
            raise AttributeError("cannot register a buffer before Module.__init__() was called")
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"register_buffer: buffer name must be a non-empty string without '.', got {name!r}")
        if name in self._parameters or name in self._modules:
            raise KeyError(f"register_buffer: attribute '{name}' is already a parameter or submodule")
        if tensor is not None and not isinstance(tensor, Tensor):
            tensor = Tensor(tensor)
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)
        object.__setattr__(self, name, tensor)

    def register_parameter(self, name: str, param) -> None:
        """Register ``param`` (a :class:`Parameter` or None) under ``name``."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: '{name}' must be an nn.Parameter or None, got {type(param).__name__}")
        self._parameters[name] = param
        object.__setattr__(self, name, param)

    def get_submodule(self, target: str) -> Module:
        """The submodule at dotted path ``target`` (``"transformer.h.0.attn"``); ``""`` is self."""
        mod = self
        for part in target.split(".") if target else ():
            child = mod._modules.get(part)
            if child is None:
                raise AttributeError(f"get_submodule: {type(mod).__name__} has no submodule {part!r} (in {target!r})")
            mod = child
        return mod

    def get_parameter(self, target: str):
        """The parameter at dotted path ``target`` (``"lm_head.weight"``)."""
        mod_path, _, name = target.rpartition(".")
        mod = self.get_submodule(mod_path)
        if mod._parameters.get(name) is None:
            raise AttributeError(f"get_parameter: {type(mod).__name__} has no parameter {name!r}")
        return mod._parameters[name]

    def register_module(self, name: str, module) -> None:
        self.add_module(name, module)

    def add_module(self, name: str, module) -> None:
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: '{name}' must be an nn.Module or None, got {type(module).__name__}")
        self._modules[name] = module
        object.__setattr__(self, name, module)

    # ---- calling ------------------------------------------------------------------------------
    def forward(self, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args, **kwargs):
        if self._forward_pre_hooks:
            for hook in list(self._forward_pre_hooks.values()):
                new = hook(self, args)
                if new is not None:
                    args = new if isinstance(new, tuple) else (new,)
        if self._backward_hooks:
            out = call_with_backward_hooks(self, self._backward_hooks, args, kwargs)
        else:
            out = self.forward(*args, **kwargs)
        if self._forward_hooks:
            for hook in list(self._forward_hooks.values()):
                new = hook(self, args, out)
                if new is not None:
                    out = new
        return out

    def register_forward_hook(self, hook) -> RemovableHandle:
        """Call ``hook(module, inputs, output)`` after every forward; a non-None return replaces
        the output. Returns a handle whose ``remove()`` unregisters it."""
        handle = RemovableHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    def register_full_backward_hook(self, hook) -> RemovableHandle:
        """Call ``hook(module, grad_input, grad_output)`` in backward, once the gradients of this
        module's tensor inputs are known (tuples of tensors, None where an input needs no grad). A
        returned tuple replaces ``grad_input`` (for a module with one input that requires grad).
        The module's inputs and outputs must be passed positionally as tensors (or a tuple of them)."""
        if self.__dict__.get("_backward_hooks") is None:
            self.__dict__["_backward_hooks"] = OrderedDict()
        handle = RemovableHandle(self._backward_hooks)
        self._backward_hooks[handle.id] = hook
        return handle

    def register_backward_hook(self, hook):
        raise RuntimeError(
            "register_backward_hook is deprecated in torch (its grad_input was often wrong); "
            "use register_full_backward_hook, which tensorlite supports"
        )

    def register_forward_pre_hook(self, hook) -> RemovableHandle:
        """Call ``hook(module, inputs)`` before every forward; a non-None return replaces the inputs."""
        handle = RemovableHandle(self._forward_pre_hooks)
        self._forward_pre_hooks[handle.id] = hook
        return handle

    # ---- traversal ----------------------------------------------------------------------------
    def named_modules(self, memo=None, prefix: str = "", remove_duplicate: bool = True):
        """``(dotted_name, module)`` for this module and every descendant, each module once."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is None:
                continue
            yield from child.named_modules(memo, f"{prefix}.{name}" if prefix else name, remove_duplicate)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        seen = set()
        for name, child in self._modules.items():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self):
        for _, c in self.named_children():
            yield c

    def _named_members(self, registry: str, prefix: str, recurse: bool, remove_duplicate: bool = True):
        seen = set()
        mods = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        for mod_prefix, mod in mods:
            for name, value in mod.__dict__[registry].items():
                if value is None:
                    continue
                if remove_duplicate:
                    if id(value) in seen:
                        continue
                    seen.add(id(value))
                yield (f"{mod_prefix}.{name}" if mod_prefix else name), value

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        """``(dotted_name, Parameter)`` pairs; a parameter shared by two modules (tied weights)
        appears once, under the first name."""
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def num_parameters(self, trainable_only: bool = False) -> int:
        """The number of scalars in the (unique) parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def apply(self, fn) -> Module:
        """Call ``fn(module)`` on every submodule (children first) and on this module."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ---- modes and gradients ------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Set training mode (dropout active) on this module and every descendant."""
        if not isinstance(mode, bool):
            raise ValueError(f"train: mode must be a bool, got {mode!r}")
        for m in self.modules():
            m.__dict__["training"] = mode
        return self

    def eval(self) -> Module:
        """Evaluation mode: ``train(False)``."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's ``.grad`` (to None by default, as torch)."""
        clear_grads(self.parameters(), set_to_none)

    # ---- devices and dtypes -------------------------------------------------------------------
    def _apply_arrays(self, fn) -> Module:
        """Replace every parameter's and buffer's array by ``fn(array)``, in place, so the
        Parameter objects (which optimizers hold) stay the same."""
        seen = set()
        for m in self.modules():
            for registry in (m._parameters, m._buffers):
                for t in registry.values():
                    if t is None or id(t) in seen:
                        continue
                    seen.add(id(t))
                    t.data = fn(t.data)
                    t.device = device_of(t.data)
                    if t.grad is not None:
                        t.grad.data = fn(t.grad.data)
                        t.grad.device = t.device
        return self

    def to(self, *args, **kwargs) -> Module:
        """Move parameters and buffers to a device and/or cast the floating ones to a dtype, in
        place; the forms are torch's: ``to(device)``, ``to(dtype)``, ``to(device, dtype)``,
        ``to(tensor)``, or keywords."""
        dev, dt = parse_to_args(f"{type(self).__name__}.to", args, kwargs)
        if dev is not None:
            self._apply_arrays(lambda a: to_device(a, dev))
        if dt is not None:
            if dt.kind != "f":
                raise TypeError(f"{type(self).__name__}.to: only floating-point dtypes are accepted, got {dt}")
            self._apply_arrays(lambda a: a.astype(dt) if a.dtype.kind == "f" and a.dtype != dt else a)
        return self

    def cpu(self) -> Module:
        return self.to("cpu")

    def cuda(self) -> Module:
        return self.to("cuda")

    def float(self) -> Module:
        return self.to(dtype=np.float32)

    def double(self) -> Module:
        return self.to(dtype=np.float64)

    def half(self) -> Module:
        """Cast floating parameters and buffers to float16, in place (for mixed precision keep
        them float32 and use :class:`tensorlite.autocast` instead)."""
        return self.to(dtype=np.float16)

    # ---- state --------------------------------------------------------------------------------
    def state_dict(self, prefix: str = "", keep_vars: bool = False) -> OrderedDict:
        """Dotted name -> Tensor for every parameter and persistent buffer.

        The tensors share memory with the module (detached unless ``keep_vars``). Tied parameters
        appear under each of their names, as in torch.
        """
        out = OrderedDict()
        for mod_prefix, m in self.named_modules(prefix=prefix, remove_duplicate=True):
            for name, p in m._parameters.items():
                if p is not None:
                    out[_join(mod_prefix, name)] = p if keep_vars else p.detach()
            for name, b in m._buffers.items():
                if b is not None and name not in m._non_persistent:
                    out[_join(mod_prefix, name)] = b if keep_vars else b.detach()
        return out

    def load_state_dict(self, state_dict, strict: bool = True):
        """Copy values (Tensors or NumPy arrays) into the parameters and persistent buffers.

        Values are written in place, so optimizers keep pointing at the same Parameters. With
        ``strict`` any missing or unexpected key is an error; a shape mismatch always is. All
        problems are listed in one RuntimeError. Returns ``(missing_keys, unexpected_keys)``.
        """
        if not hasattr(state_dict, "items"):
            raise TypeError(f"load_state_dict: expected a dict of name -> tensor, got {type(state_dict).__name__}")
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        mismatched = []
        converted = {}
        for key, target in own.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            if isinstance(value, Tensor):
                arr = value.data
            elif isinstance(value, np.ndarray) or type(value).__module__.startswith("cupy"):
                arr = value
            else:  # lists, torch CPU tensors, anything with __array__
                arr = np.asarray(value)
            if tuple(arr.shape) != tuple(target.shape):
                mismatched.append(
                    f"size mismatch for '{key}': checkpoint has shape {tuple(arr.shape)}, "
                    f"the model has {tuple(target.shape)}"
                )
                continue
            converted[key] = arr
        errors = []
        if strict and missing:
            errors.append(f"missing key(s) ({len(missing)}): " + ", ".join(repr(k) for k in missing))
        if strict and unexpected:
            errors.append(f"unexpected key(s) ({len(unexpected)}): " + ", ".join(repr(k) for k in unexpected))
        errors.extend(mismatched)
        if errors:
            raise RuntimeError(
                f"load_state_dict: error(s) loading state_dict into {type(self).__name__}:\n  "
                + "\n  ".join(errors)
            )
        with no_grad():
            for key, arr in converted.items():
                target = own[key]
                arr = to_device(arr, target.device)
                target.data[...] = arr.astype(target.data.dtype, copy=False)
        return _IncompatibleKeys(missing, unexpected)

    # ---- repr ---------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = []
        extra = self.extra_repr()
        for name, child in self._modules.items():
            child_repr = repr(child).replace("\n", "\n  ")
            lines.append(f"({name}): {child_repr}")
        if not lines:
            return f"{type(self).__name__}({extra})"
        if extra:
            lines.insert(0, extra)
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"

    def __dir__(self):
        return sorted(set(super().__dir__()))


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


class Identity(Module):
    """Returns its input."""

    def forward(self, x):
        return x


class Sequential(Module):
    """Modules called in order: ``Sequential(Linear(4, 8), GELU(), Linear(8, 2))``."""

    def __init__(self, *modules) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, m in modules[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(modules):
                self.add_module(str(i), m)

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x

    def __getitem__(self, idx):
        mods = list(self._modules.values())
        if isinstance(idx, slice):
            return Sequential(*mods[idx])
        return mods[idx]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module: Module) -> Sequential:
        self.add_module(str(len(self._modules)), module)
        return self


class ModuleList(Module):
    """A list of modules whose parameters are registered (``blocks.0.attn.qkv.weight``...)."""

    def __init__(self, modules=()) -> None:
        super().__init__()
        for m in modules:
            self.append(m)

    def __getitem__(self, idx):
        mods = list(self._modules.values())
        if isinstance(idx, slice):
            return ModuleList(mods[idx])
        return mods[idx]

    def __setitem__(self, idx: int, module: Module) -> None:
        idx = range(len(self))[idx]
        self.add_module(str(idx), module)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module: Module) -> ModuleList:
        if not isinstance(module, Module):
            raise TypeError(f"ModuleList.append: expected an nn.Module, got {type(module).__name__}")
        self.add_module(str(len(self._modules)), module)
        return self

    def extend(self, modules) -> ModuleList:
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> None:
        mods = list(self._modules.values())
        mods.insert(index, module)
        self._modules.clear()
        for i, m in enumerate(mods):
            self.add_module(str(i), m)


class ModuleDict(Module):
    """Modules by name, registered like attributes: ``ModuleDict(dict(wte=..., h=ModuleList(...)))``
    gives ``self.transformer.wte`` and parameter names ``transformer.wte.weight`` (as torch)."""

    def __init__(self, modules=None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        if not isinstance(module, Module):
            raise TypeError(f"ModuleDict: '{key}' must be an nn.Module, got {type(module).__name__}")
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        del self._modules[key]
        object.__delattr__(self, key)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, key) -> bool:
        return key in self._modules

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()

    def pop(self, key: str) -> Module:
        module = self[key]
        del self[key]
        return module

    def clear(self) -> None:
        for key in list(self._modules):
            del self[key]

    def update(self, modules) -> None:
        """Add ``modules``: a dict, a ModuleDict, or ``(name, module)`` pairs."""
        items = modules.items() if hasattr(modules, "items") else modules
        for key, module in items:
            self[key] = module


class ParameterList(Module):
    """A list of parameters, registered as ``"0"``, ``"1"``, ... (as torch)."""

    def __init__(self, values=None) -> None:
        super().__init__()
        for v in values or ():
            self.append(v)

    def __getitem__(self, idx: int):
        return list(self._parameters.values())[idx]

    def __setitem__(self, idx: int, param) -> None:
        idx = range(len(self))[idx]
        self.register_parameter(str(idx), param if isinstance(param, Parameter) else Parameter(param))

    def __len__(self) -> int:
        return len(self._parameters)

    def __iter__(self):
        return iter(self._parameters.values())

    def append(self, value) -> ParameterList:
        self.register_parameter(str(len(self)), value if isinstance(value, Parameter) else Parameter(value))
        return self

    def extend(self, values) -> ParameterList:
        for v in values:
            self.append(v)
        return self


class ParameterDict(Module):
    """Parameters by name (as torch)."""

    def __init__(self, parameters=None) -> None:
        super().__init__()
        if parameters is not None:
            self.update(parameters)

    def __getitem__(self, key: str):
        return self._parameters[key]

    def __setitem__(self, key: str, value) -> None:
        self.register_parameter(key, value if isinstance(value, Parameter) else Parameter(value))

    def __delitem__(self, key: str) -> None:
        del self._parameters[key]
        object.__delattr__(self, key)

    def __len__(self) -> int:
        return len(self._parameters)

    def __iter__(self):
        return iter(self._parameters)

    def __contains__(self, key) -> bool:
        return key in self._parameters

    def keys(self):
        return self._parameters.keys()

    def values(self):
        return self._parameters.values()

    def items(self):
        return self._parameters.items()

    def update(self, parameters) -> None:
        items = parameters.items() if hasattr(parameters, "items") else parameters
        for key, value in items:
            self[key] = value
