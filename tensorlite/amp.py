"""Mixed precision shaped like ``torch.amp``: :class:`autocast` runs the matmuls in float16 while
the parameters stay float32, and :class:`GradScaler` scales the loss so that small float16
gradients do not underflow, skipping the steps whose gradients overflowed.

Under ``autocast`` the ops a GPT uses follow torch's CUDA lists:

* float16: ``matmul`` (and ``@``), ``linear``, ``scaled_dot_product_attention``;
* float32: ``softmax``, ``log_softmax``, ``layer_norm``, ``rms_norm`` (torch has no rule for
  it; tensorlite treats it as ``layer_norm``), ``cross_entropy``, ``nll_loss``, ``mse_loss``;
* every other op runs in the dtype of its inputs, the widest one when they differ (outside
  autocast tensorlite refuses to mix float dtypes; inside it, float16 + float32 is float32 as in
  torch). torch's CUDA list also sends ``exp``, ``log``, ``pow``, ``rsqrt``, ``sum`` and a few
  more to float32; tensorlite does not, so a hand-written norm or loss under autocast computes in
  the dtype it is given.

The casts are ordinary differentiable ops, so the gradients of float32 parameters come back
float32: the parameters are the fp32 *master weights*, and only activations and their gradients
are float16. NumPy has no bfloat16, so ``dtype`` must be float16.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np

from .backend import device_of

__all__ = ["GradScaler", "autocast", "get_autocast_dtype", "is_autocast_enabled"]


class _State:
    """The autocast dtype in force (None outside autocast). One attribute read per op."""

    __slots__ = ("dtype",)

    def __init__(self) -> None:
        self.dtype = None


state = _State()


def is_autocast_enabled() -> bool:
    """True inside an enabled :class:`autocast` region."""
    return state.dtype is not None


def get_autocast_dtype():
    """The lower-precision dtype autocast uses (float16)."""
    return np.dtype(np.float16)


class autocast(contextlib.ContextDecorator):
    """Run the matmuls of the region in float16 and the softmax, norms and losses in float32.

    As ``torch.autocast(device_type, dtype=None, enabled=True)``, used as a context manager or a
    decorator; ``enabled=False`` inside an enabled region switches it off (to run a part in
    float32). Differences from torch: ``device_type`` defaults to ``"cpu"`` and the policy is the
    same on every device (torch's CPU lists keep softmax and layer_norm in float16; tensorlite
    follows torch's CUDA lists everywhere, since the point of running it on a CPU is to reproduce
    what happens on a GPU), and ``dtype`` defaults to float16, the only one NumPy has (torch's CPU
    default is bfloat16). Run the backward pass outside the region, as in torch.
    """

    def __init__(self, device_type: str = "cpu", dtype=None, enabled: bool = True, cache_enabled=None) -> None:
        if device_type not in ("cpu", "cuda"):
            raise ValueError(f"autocast: device_type must be 'cpu' or 'cuda', got {device_type!r}")
        if dtype is None:
            dtype = np.float16
        name = getattr(dtype, "__name__", None) or str(dtype)
        if "bfloat16" in str(name) or "bfloat16" in repr(dtype):
            raise TypeError(
                "autocast: tensorlite has no bfloat16 (NumPy has none); use dtype=tl.float16, or torch "
                "for bfloat16 autocast"
            )
        try:
            dt = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"autocast: dtype must be tl.float16, got {dtype!r}") from None
        if dt != np.float16:
            raise TypeError(f"autocast: dtype must be tl.float16 (the lower precision), got {dt}")
        if not isinstance(enabled, bool):
            raise TypeError(f"autocast: enabled must be a bool, got {enabled!r}")
        self.device_type, self.fast_dtype, self.enabled = device_type, dt, enabled
        self._saved: list = []

    def __enter__(self):
        self._saved.append(state.dtype)
        state.dtype = self.fast_dtype if self.enabled else None
        return self

    def __exit__(self, *exc):
        state.dtype = self._saved.pop()
        return False


# ------------------------------------------------------------------------------------------------
# GradScaler
# ------------------------------------------------------------------------------------------------
_READY, _UNSCALED, _STEPPED = "ready", "unscaled", "stepped"


class GradScaler:
    """Dynamic loss scaling, with the API and the semantics of ``torch.amp.GradScaler``.

    Each iteration::

        with tl.autocast():
            loss = model.loss(x, y)
        scaler.scale(loss).backward()     # gradients of loss * scale
        scaler.unscale_(optimizer)        # divide them by the scale (then clip, if you clip)
        scaler.step(optimizer)            # optimizer.step(), skipped if any gradient is inf/NaN
        scaler.update()                   # scale *= backoff_factor after a skipped step, or
                                          # *= growth_factor after growth_interval good ones

    The scale is a float32, updated as torch's ``_amp_update_scale_`` does. ``enabled=False``
    makes every method a no-op except ``step``, which then calls ``optimizer.step()``. The
    gradients must be float32 (or float64): like torch, unscaling float16 gradients is refused,
    since the optimizer should update float32 master weights.
    """

    def __init__(self, device: str = "cpu", init_scale: float = 2.0**16, growth_factor: float = 2.0,
                 backoff_factor: float = 0.5, growth_interval: int = 2000, enabled: bool = True) -> None:
        if not isinstance(device, str):
            raise TypeError(
                f"GradScaler: device must be a string ('cpu' or 'cuda'), got {device!r}; the first "
                "argument is the device, as in torch.amp.GradScaler: pass the scale as init_scale=..."
            )
        self._device = device
        self._enabled = bool(enabled)
        if self._enabled:
            if not growth_factor > 1.0:
                raise ValueError(f"GradScaler: growth_factor must be > 1.0, got {growth_factor}")
            if not 0.0 < backoff_factor < 1.0:
                raise ValueError(f"GradScaler: backoff_factor must be in (0, 1), got {backoff_factor}")
            if not (isinstance(growth_interval, int) and growth_interval > 0):
                raise ValueError(f"GradScaler: growth_interval must be a positive int, got {growth_interval!r}")
        self._init_scale = float(init_scale)
        self._scale: np.float32 | None = None  # set by the first scale(), as torch does it lazily
        self._growth_factor = float(growth_factor)
        self._backoff_factor = float(backoff_factor)
        self._growth_interval = int(growth_interval)
        self._init_growth_tracker = 0
        self._growth_tracker = 0
        self._per_optimizer: dict = {}

    # ---- the four calls of an iteration -------------------------------------------------------
    def scale(self, outputs):
        """``outputs * scale`` (a Tensor, or a list/tuple of them).

        Type promotion as in torch, where the scale is a float32 0-d tensor: a 0-d float16 loss
        gives a float32 product, a float16 tensor with dimensions stays float16 (and overflows
        above 65504: compute losses in float32).
        """
        if not self._enabled:
            return outputs
        if self._scale is None:
            self._scale = np.float32(self._init_scale)
            self._growth_tracker = self._init_growth_tracker
        s = self._scale
        if isinstance(outputs, (list, tuple)):
            return type(outputs)(self.scale(o) for o in outputs)
        if not hasattr(outputs, "data") or not hasattr(outputs, "backward"):
            raise ValueError("GradScaler.scale: outputs must be a Tensor or an iterable of Tensors")
        if outputs.ndim == 0 and outputs.dtype == np.float16:
            outputs = outputs.float()
        return outputs * s

    def unscale_(self, optimizer) -> None:
        """Divide the gradients of ``optimizer``'s parameters by the scale, in place, and record
        whether any of them is inf or NaN. Once per optimizer per iteration, before ``step``."""
        if not self._enabled:
            return
        self._check_scaled("unscale_")
        st = self._per_optimizer.setdefault(id(optimizer), {"stage": _READY, "found_inf": None})
        if st["stage"] == _UNSCALED:
            raise RuntimeError("unscale_() has already been called on this optimizer since the last update().")
        if st["stage"] == _STEPPED:
            raise RuntimeError("unscale_() is being called after step().")
        inv_scale = np.float32(1.0 / float(self._scale))  # torch: the reciprocal in double, then float
        found = False
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.data
                if g.dtype == np.float16:
                    raise ValueError(
                        "Attempting to unscale FP16 gradients. (GradScaler: keep the parameters float32 "
                        "and run the forward under tl.autocast(), so the optimizer updates float32 "
                        "master weights)"
                    )
                xp = device_of(g).xp
                if not found and not bool(xp.isfinite(g).all()):
                    found = True
                with np.errstate(invalid="ignore", over="ignore"):
                    g *= inv_scale
        st["found_inf"], st["stage"] = found, _UNSCALED

    def step(self, optimizer, *args, **kwargs):
        """``optimizer.step()`` unless a gradient is inf/NaN (then the step is skipped and None
        returned). Unscales first if :meth:`unscale_` was not called."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("Closure use is not currently supported if GradScaler is enabled.")
        self._check_scaled("step")
        st = self._per_optimizer.setdefault(id(optimizer), {"stage": _READY, "found_inf": None})
        if st["stage"] == _STEPPED:
            raise RuntimeError("step() has already been called since the last update().")
        if st["stage"] == _READY:
            self.unscale_(optimizer)
        out = None if st["found_inf"] else optimizer.step(*args, **kwargs)
        st["stage"] = _STEPPED
        return out

    def update(self, new_scale=None) -> None:
        """Back off after a skipped step, grow after ``growth_interval`` good ones (or set
        ``new_scale``); call once per iteration, after every ``step``."""
        if not self._enabled:
            return
        self._check_scaled("update")
        if new_scale is not None:
            self._scale = np.float32(float(new_scale))
        else:
            found = [st["found_inf"] for st in self._per_optimizer.values() if st["found_inf"] is not None]
            if not found:
                raise RuntimeError(
                    "No inf checks were recorded prior to update(): call scaler.step(optimizer) (or "
                    "unscale_) before scaler.update()"
                )
            # torch's _amp_update_scale_: products in double, stored as float32
            if any(found):
                self._scale = np.float32(float(self._scale) * self._backoff_factor)
                self._growth_tracker = 0
            else:
                successful = self._growth_tracker + 1
                if successful == self._growth_interval:
                    with np.errstate(over="ignore"):
                        grown = np.float32(float(self._scale) * self._growth_factor)
                    if math.isfinite(grown):
                        self._scale = grown
                    self._growth_tracker = 0
                else:
                    self._growth_tracker = successful
        self._per_optimizer = {}

    def _check_scaled(self, funcname: str) -> None:
        if self._scale is None:
            raise RuntimeError(
                f"Attempted {funcname} but the scale is not set: call scaler.scale(loss) earlier in "
                "the iteration"
            )

    # ---- the state ----------------------------------------------------------------------------
    def get_scale(self) -> float:
        """The current scale as a Python float (``init_scale`` before the first ``scale()``;
        1.0 when disabled)."""
        if not self._enabled:
            return 1.0
        return self._init_scale if self._scale is None else float(self._scale)

    def get_growth_factor(self) -> float:
        return self._growth_factor

    def set_growth_factor(self, new_factor: float) -> None:
        self._growth_factor = float(new_factor)

    def get_backoff_factor(self) -> float:
        return self._backoff_factor

    def set_backoff_factor(self, new_factor: float) -> None:
        self._backoff_factor = float(new_factor)

    def get_growth_interval(self) -> int:
        return self._growth_interval

    def set_growth_interval(self, new_interval: int) -> None:
        self._growth_interval = int(new_interval)

    def is_enabled(self) -> bool:
        return self._enabled

    def state_dict(self) -> dict:
        """``scale``, ``growth_factor``, ``backoff_factor``, ``growth_interval`` and
        ``_growth_tracker`` (torch's keys); empty when disabled. Save it after ``update()``."""
        if not self._enabled:
            return {}
        return {
            "scale": self.get_scale(),
            "growth_factor": self._growth_factor,
            "backoff_factor": self._backoff_factor,
            "growth_interval": self._growth_interval,
            "_growth_tracker": self._growth_tracker if self._scale is not None else self._init_growth_tracker,
        }

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore what :meth:`state_dict` returned (a no-op when disabled)."""
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise RuntimeError(
                "The source state dict is empty, possibly because it was saved from a disabled instance "
                "of GradScaler."
            )
        self._init_scale = float(state_dict["scale"])
        if self._scale is not None:
            self._scale = np.float32(self._init_scale)
        self._growth_factor = float(state_dict["growth_factor"])
        self._backoff_factor = float(state_dict["backoff_factor"])
        self._growth_interval = int(state_dict["growth_interval"])
        self._init_growth_tracker = int(state_dict["_growth_tracker"])
        self._growth_tracker = self._init_growth_tracker

    def __repr__(self) -> str:
        if not self._enabled:
            return "GradScaler(enabled=False)"
        return (f"GradScaler(scale={self.get_scale():g}, growth_factor={self._growth_factor:g}, "
                f"backoff_factor={self._backoff_factor:g}, growth_interval={self._growth_interval})")
