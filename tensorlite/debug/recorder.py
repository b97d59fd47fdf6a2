"""The run folder of a hand-written training loop (PyTorch or tensorlite): ``metrics.jsonl`` in the
schema ``tensorlite train`` writes, with the probes, so ``tensorlite dashboard RUN_DIR`` and
:func:`~tensorlite.debug.diagnose` read a torch run unchanged.

::

    rec = tl.debug.RunRecorder("runs/mine", model, optimizer, probe_interval=10, grad_clip=1.0,
                               config=config_dict, data=train_tokens)
    for step in range(max_iters):
        logits, loss = model(x, y)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()                 # the recorder's step pre-hook reads gradients and weights here
        optimizer.zero_grad(set_to_none=True)
        rec.step(step, loss, grad_norm=norm)
    rec.close()                          # the last rows, then dashboard.html
"""

from __future__ import annotations

import dataclasses
import math
import types
import warnings
from pathlib import Path

import numpy as np

from ..data.entropy import unigram_entropy as _unigram_entropy
from ..runlog import MetricsLog, jsonable
from .dashboard import dashboard
from .native import is_torch, native_for, to_numpy
from .probes import Probes, _ops_for
from .view import model_view

__all__ = ["RunRecorder"]


def _config_dict(config) -> dict:
    """A run's config as a JSON-able dict: a dict, a dataclass, an argparse Namespace or any
    object's attributes; values JSON cannot hold are written as their ``str``."""
    if config is None:
        return {}
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        d = dataclasses.asdict(config)
    elif isinstance(config, dict):
        d = dict(config)
    elif hasattr(config, "__dict__"):
        d = {k: v for k, v in vars(config).items() if not k.startswith("_")}
    else:
        raise TypeError(f"RunRecorder: config must be a dict, a dataclass or a Namespace, got {type(config).__name__}")

    def clean(v):
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        if isinstance(v, np.generic):
            return v.item()
        return str(v)

    return clean(d)


def _scalar_tensors(rows):
    """Every tensor-valued metric of ``rows`` replaced by its float; the torch ones fetched in one
    host copy per device (a loop that passes ``loss`` and ``grad_norm`` as tensors syncs here, on
    probe steps, and not on every step)."""
    by_device: dict = {}
    for r in rows:
        for k, v in r.items():
            if is_torch(v):
                by_device.setdefault(v.device, []).append((r, k, v))
            elif hasattr(v, "item") and not isinstance(v, (list, dict)):
                r[k] = float(v.item())
    for items in by_device.values():
        torch = native_for(items[0][2]).torch
        host = torch.stack([v.detach().float().reshape(-1)[0] for _, _, v in items]).cpu().tolist()
        for (r, k, _), f in zip(items, host):
            r[k] = float(f)


class RunRecorder:
    """Records a hand-written training loop into ``run_dir/metrics.jsonl`` (and ``dashboard.html``
    at :meth:`close`), with the probes of ``tensorlite train``.

    Args:
        run_dir: the run folder (created; it must not hold a ``metrics.jsonl`` unless
            ``overwrite=True``).
        model: the model being trained, a ``torch.nn.Module`` or a tensorlite module.
        optimizer: its optimizer. The recorder hooks ``optimizer.step()`` (torch's
            ``register_step_pre_hook``; any other optimizer's ``step`` wrapped until :meth:`close`) to
            read gradients, learning rate and the weights before each update. Without it, call
            :meth:`before_optimizer_step` just before ``optimizer.step()``.
        probe_interval: steps between probes (0, ``k``, ``2k`` ... and the last step); 0: none.
        config: the run's settings (dict, dataclass or Namespace), written to the ``start`` header.
        vocab_size: default: the model's (found by the model view).
        unigram_entropy: the data's unigram entropy in nats (the dashboard and the diagnosis compare
            the loss with it); ``data=`` (the training token ids) computes it.
        grad_clip: the ``max_norm`` the loop clips to (None or 0: no clipping), so each row gets
            ``grad_norm_clipped`` and ``clipped`` from the ``grad_norm`` passed to :meth:`step`.
        max_steps: the run's length, so that its last step is probed too.
        probe_batch: token ids ``(B, T)`` to probe on (default: the first batch the model sees,
            cropped to ``probe_batch_size`` rows).
        dashboard: write ``dashboard.html`` at :meth:`close`.
        view: the model view's overrides (``{"blocks": "transformer.h"}``), or a ModelView.

    Rows are written on probe steps and at :meth:`close` (the metrics of the steps in between wait
    in memory, so that tensors passed in are fetched together). Also a context manager.
    """

    def __init__(self, run_dir, model, optimizer=None, *, probe_interval: int = 10, config=None,
                 vocab_size: int | None = None, unigram_entropy: float | None = None, data=None,
                 grad_clip: float | None = None, max_steps: int | None = None, probe_batch=None,
                 probe_batch_size: int = 8, spectral_iters: int = 2, dashboard: bool = True,
                 overwrite: bool = False, view=None) -> None:
        if probe_interval < 0:
            raise ValueError(f"RunRecorder: probe_interval must be >= 0 (0 = no probes), got {probe_interval}")
        if grad_clip is not None and grad_clip < 0:
            raise ValueError(f"RunRecorder: grad_clip must be >= 0 (0 or None = no clipping), got {grad_clip}")
        self.run_dir = Path(run_dir)
        self.metrics_path = self.run_dir / "metrics.jsonl"
        if self.metrics_path.exists() and self.metrics_path.stat().st_size and not overwrite:
            raise FileExistsError(f"RunRecorder: {self.metrics_path} already holds a run; choose another "
                                  "run_dir or pass overwrite=True")
        self.model, self.optimizer = model, optimizer
        self.grad_clip = float(grad_clip) if grad_clip else None
        self.write_dashboard = dashboard
        self.step_index = 0  # the update in progress
        self._ops = _ops_for(model)
        # what the probes read of a trainer: the model and the step in progress
        self._face = types.SimpleNamespace(model=model, step=0, config=None)
        self.probes = None
        if probe_interval:
            self.probes = Probes(interval=probe_interval, batch=probe_batch, batch_size=probe_batch_size,
                                 spectral_iters=spectral_iters, view=view,
                                 last_step=None if max_steps is None else int(max_steps) - 1)
            self.probes.attach(model)
        self._rows: list = []
        self._pre: dict = {}  # step -> (lr, measured grad norm) read in the step pre-hook
        self._measure_norm = True  # until a grad_norm is passed in
        self._warned_clip = False
        self._hook = self._wrapped = None
        if optimizer is not None:
            self._hook_optimizer(optimizer)
        # a forgotten zero_grad(): the first backward after an optimizer step meets last step's
        # gradient still in .grad (seen on one small parameter, by a hook that runs before the
        # new gradient is added); later backwards of an accumulation window are not looked at
        self._after_step = False
        self._stale: dict = {}  # step -> True when its first backward found a gradient left over
        self._sentinel = self._watch_gradients(optimizer)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path.write_text("", encoding="utf-8")
        self.log = MetricsLog(self.metrics_path)
        self.log.write(self._header(config, vocab_size, unigram_entropy, data))
        self.closed = False

    # ---- the header ---------------------------------------------------------------------------
    def _header(self, config, vocab_size, entropy, data) -> dict:
        view = self.probes.view if self.probes is not None else None
        if view is None and vocab_size is None:
            try:  # no probes: the view is still where the vocabulary comes from
                view = model_view(self.model)
            except (TypeError, ValueError):
                view = None
        if vocab_size is None and view is not None:
            vocab_size = view.vocab_size
        if entropy is None and data is not None:
            entropy = _unigram_entropy(to_numpy(data, dtype=None) if hasattr(data, "shape") else data)
        head = {"event": "start", "config": _config_dict(config), "vocab_size": vocab_size,
                "n_params": int(sum(int(np.prod(p.shape)) for p in self.model.parameters())),
                "unigram_entropy": entropy,
                "framework": "torch" if is_torch(self.model) else "tensorlite"}
        if view is not None:
            head["model"] = view.describe()
        return jsonable(head)

    # ---- the optimizer hook -------------------------------------------------------------------
    def _hook_optimizer(self, optimizer) -> None:
        if hasattr(optimizer, "register_step_pre_hook"):  # torch >= 2.0
            self._hook = optimizer.register_step_pre_hook(lambda opt, args, kwargs: self.before_optimizer_step())
            return
        step = optimizer.step

        def stepped(*args, **kwargs):
            self.before_optimizer_step()
            return step(*args, **kwargs)

        had = "step" in vars(optimizer)
        object.__setattr__(optimizer, "step", stepped)
        self._wrapped = (optimizer, had, step)

    def _watch_gradients(self, optimizer):
        if optimizer is None:
            return None
        params = [p for g in getattr(optimizer, "param_groups", []) for p in g.get("params", [])
                  if getattr(p, "requires_grad", False)]
        if not params:
            return None
        p = min(params, key=lambda t: int(np.prod(t.shape)))
        native = native_for(self.model)

        def check(grad):
            if self._after_step:
                self._after_step = False
                old = p.grad
                if old is not None:  # kept on the device: read with the step's other tensors
                    with native.no_grad():
                        self._stale[self.step_index] = (old != 0).any()
            return None

        return p.register_hook(check)

    def _unhook(self) -> None:
        if self._sentinel is not None:
            self._sentinel.remove()
            self._sentinel = None
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        if self._wrapped is not None:
            opt, had, step = self._wrapped
            if had:
                object.__setattr__(opt, "step", step)
            else:
                vars(opt).pop("step", None)
            self._wrapped = None

    def before_optimizer_step(self, step: int | None = None) -> None:
        """Read what the update is about to use: the learning rate, the gradient norm and, on probe
        steps, the gradients, the pre-update weights and the probe forward. Called by the hook on
        ``optimizer.step()``; call it yourself when the recorder has no optimizer (``step``: the
        step about to be recorded, by default the one after the last recorded)."""
        if step is not None:
            self.step_index = int(step)
        s = self.step_index
        if s in self._pre:  # already read for this step (the hook and an explicit call)
            return
        lr = None
        if self.optimizer is not None and getattr(self.optimizer, "param_groups", None):
            lr = self.optimizer.param_groups[0].get("lr")
        norm = None
        if self._measure_norm:
            native = native_for(self.model)
            grads = [p.grad for p in self.model.parameters() if p.grad is not None]
            if grads:
                with native.no_grad():
                    norm = _total_norm(grads, self._ops)
        self._pre[s] = (lr, norm)
        if self.probes is not None:
            self._face.step = s
            self.probes.on_before_optimizer_step(self._face)
        self._after_step = True  # the next backward should start from zeroed gradients

    # ---- recording ----------------------------------------------------------------------------
    def step(self, step: int, loss, *, grad_norm=None, lr: float | None = None, val_loss=None, **metrics) -> None:
        """Record update ``step``: its ``loss`` (a float or a 0-d tensor), ``grad_norm`` (the norm
        before clipping: what ``clip_grad_norm_`` returns), ``lr`` (default: the optimizer's when
        ``step()`` was called), ``val_loss`` when evaluated, and any other scalar ``metrics``.
        Call it after ``optimizer.step()``; on probe steps the probe metrics join the row."""
        if self.closed:
            raise ValueError("RunRecorder.step: the recorder is closed")
        s = int(step)
        pre_lr, measured = self._pre.pop(s, (None, None))
        self._pre = {k: v for k, v in self._pre.items() if k > s}
        row: dict = {"step": s, "loss": loss}
        if val_loss is not None:
            row["val_loss"] = val_loss
        if lr is None:
            lr = pre_lr
        if lr is None and self.optimizer is not None and getattr(self.optimizer, "param_groups", None):
            lr = self.optimizer.param_groups[0].get("lr")
        if lr is not None:
            row["lr"] = lr
        if grad_norm is not None:
            self._measure_norm = False
            row["grad_norm"] = grad_norm
        elif measured is not None:
            if self.grad_clip is None:
                row["grad_norm"] = measured
            else:  # read at optimizer.step(), after the loop's clipping
                row["grad_norm_clipped"] = measured
                if not self._warned_clip:
                    self._warned_clip = True
                    warnings.warn("RunRecorder.step: with grad_clip set, pass grad_norm= (what "
                                  "clip_grad_norm_ returns) to record the norm before clipping", stacklevel=2)
        stale = self._stale.pop(s, None)
        if stale is not None:
            row["stale_grads"] = stale
        self._stale = {k: v for k, v in self._stale.items() if k > s}
        row.update(metrics)
        self._rows.append(row)
        self.step_index = s + 1
        if self.probes is not None and self.probes.is_probe_step(s):
            self._flush()

    def _flush(self, final: bool = False) -> None:
        rows, self._rows = self._rows, []
        if not rows:
            return
        _scalar_tensors(rows)
        if final and self.probes is not None and "act_rms" not in rows[-1] and not self.probes.is_probe_step(rows[-1]["step"]):
            self.probes.last_step = rows[-1]["step"]  # the state the run ends in: probed after its update
        for r in rows:
            if "stale_grads" in r:  # written only where it is true
                if r["stale_grads"]:
                    r["stale_grads"] = True
                else:
                    del r["stale_grads"]
            pre = r.get("grad_norm")
            if pre is not None and "grad_norm_clipped" not in r:
                clipped = self.grad_clip is not None and math.isfinite(pre) and pre > self.grad_clip
                r["grad_norm_clipped"] = pre * min(1.0, self.grad_clip / (pre + 1e-6)) if clipped else pre
                r["clipped"] = bool(clipped)
            if self.probes is not None:
                self._face.step = r["step"]
                self.probes.on_step_end(self._face, r)
            self.log.write(r)

    def flush(self) -> None:
        """Write the rows recorded so far (without waiting for the next probe step)."""
        self._flush()

    def close(self) -> Path | None:
        """Write the remaining rows (the last one probed), release the hooks, close the log and
        write ``dashboard.html`` (when asked); return the dashboard's path."""
        if self.closed:
            return None
        try:
            self._flush(final=True)
        finally:
            self.closed = True
            self._unhook()
            if self.probes is not None:
                self.probes.detach()
            self.log.close()
        if not self.write_dashboard:
            return None
        try:
            return dashboard(self.run_dir)
        except Exception as e:  # the run's own record matters more than its report
            warnings.warn(f"RunRecorder: could not write {self.run_dir / 'dashboard.html'}: {e}", stacklevel=2)
            return None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self) -> str:
        return f"RunRecorder({str(self.run_dir)!r}, steps recorded up to {self.step_index})"


def _total_norm(grads, ops):
    """The L2 norm of all gradients together, a device scalar of their framework."""
    l2 = ops.norms(grads)[0]
    return ops.sqrt((l2 * l2).sum())
