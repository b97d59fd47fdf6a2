"""The training loop: accumulation, clipping, schedule, evaluation, metrics, checkpoints, resume.

``train(TrainConfig(...))`` trains the parts :func:`~tensorlite.train.build` makes and writes a
run folder (:mod:`tensorlite.train.run_dir`). The loop is the textbook one, spelled out in
``docs/training.md``. What it adds: a checkpoint on Ctrl-C, a stop with
:class:`NonFiniteLossError` (and the last good checkpoint left alone) when the loss stops being
finite, and resume that continues as if the run had never stopped. Everything else (probes, the
dashboard) attaches as a callback: the loop calls each callback's ``on_train_start(trainer)``,
``on_before_optimizer_step(trainer)``, ``on_step_end(trainer, metrics)`` and
``on_train_end(trainer)`` when it has them.
"""

from __future__ import annotations

import copy
import json
import math
import signal
import threading
import time
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .. import optim
from ..autograd import no_grad
from ..backend import tune_allocator
from ..checkpoint import CHECKPOINT_DIR, atomic_write_text, load_checkpoint, save_checkpoint
from ..generate import generate
from ..nn.utils import eval_mode
from ..random import get_rng_state, set_rng_state
from ..runlog import MetricsLog, truncate
from .build import Parts, build
from .config import TrainConfig
from .run_dir import default_run_name, read_config, read_tokenizer

__all__ = ["NonFiniteLossError", "RunResult", "Trainer", "TrainingInterrupted", "sample_text", "train"]

# Keys of every metrics record; a record with more (val_loss, probes) is always written.
_BASE_KEYS = {"step", "loss", "lr", "grad_norm", "grad_norm_clipped", "clipped", "tokens_per_s"}


class NonFiniteLossError(RuntimeError):
    """The loss (or the gradient norm) became NaN or infinite; training stopped at ``step``."""

    def __init__(self, message: str, step: int, checkpoint=None) -> None:
        super().__init__(message)
        self.step = step
        self.checkpoint = checkpoint


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`train`: a checkpoint was written at ``step`` in ``checkpoint``."""

    def __init__(self, step: int, checkpoint, run_dir) -> None:
        super().__init__(f"interrupted after step {step}; checkpoint in {checkpoint}")
        self.step = step
        self.checkpoint = checkpoint
        self.run_dir = run_dir


@dataclass
class RunResult:
    """What :func:`train` returns."""

    run_dir: Path
    steps: int
    final_loss: float | None
    final_val_loss: float | None
    metrics_path: Path
    checkpoint: Path | None
    tokens_per_s: float | None = None
    wall_time: float = 0.0
    losses: list = field(default_factory=list, repr=False)


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
class _DeferInterrupt:
    """Hold Ctrl-C back while the block runs (an optimizer step, a checkpoint swap), then raise it.

    A KeyboardInterrupt between two parameter updates of one optimizer step would leave a model
    that no checkpoint describes; this makes those sections indivisible. Only the main thread can
    install signal handlers; elsewhere it does nothing.
    """

    def __enter__(self):
        self._pending = False
        self._old = None
        if threading.current_thread() is threading.main_thread():
            try:
                self._old = signal.signal(signal.SIGINT, self._handler)
            except (ValueError, OSError):
                self._old = None
        return self

    def _handler(self, signum, frame):
        self._pending = True

    def __exit__(self, exc_type, exc, tb):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
            if self._pending and exc_type is None:
                if callable(self._old) and self._old is not signal.default_int_handler:
                    self._old(signal.SIGINT, None)
                else:
                    raise KeyboardInterrupt
        return False


# ------------------------------------------------------------------------------------------------
# the trainer
# ------------------------------------------------------------------------------------------------
class Trainer:
    """One training run over the parts of :func:`~tensorlite.train.build`. Callbacks see it:
    ``model``, ``optimizer``, ``scheduler``, ``batcher``, ``tokenizer``, ``loss_fn``, ``step``,
    ``config``, ``run_dir``, ``metrics_path``, ``val_loss``.

    ``step`` is the index of the optimizer update in progress (equal to the number of updates
    done before it); ``metrics["step"]`` in ``on_step_end`` is the same number.

    Callback hooks (all optional): ``on_train_start(trainer)``, ``on_before_optimizer_step(
    trainer)`` (gradients final and clipped, weights not yet updated), ``on_step_end(trainer,
    metrics)`` (may add keys before the line is written), ``on_train_end(trainer)``.

    ``parts`` (from ``build(config)``, perhaps edited) trains those parts instead of building them.
    """

    def __init__(self, config: TrainConfig | None = None, callbacks=(), resume=None, parts: Parts | None = None) -> None:
        ckpt = None
        if resume is not None:
            run_dir = Path(resume)
            saved = read_config(run_dir)
            ckpt = load_checkpoint(run_dir)
            if config is None:
                config = saved
            else:
                for section, value in saved.fixed_on_resume().items():
                    given = config.fixed_on_resume()[section]
                    if given != value:
                        name, was, now = _first_difference(value, given, section)
                        raise ValueError(f"resume: {name} is {was!r} in {run_dir} and cannot change (got {now!r})")
            config = config.replace(out_dir=str(run_dir.parent), name=run_dir.name)
        elif config is None:
            config = parts.config if parts is not None else TrainConfig()
        self.config = config
        self.callbacks = list(callbacks)
        if parts is None:
            tokenizer = read_tokenizer(run_dir, ckpt) if ckpt is not None else None
            parts = build(config, tokenizer=tokenizer)
        self.parts = parts
        self.device, self.tokenizer = parts.device, parts.tokenizer
        self.model, self.optimizer, self.scheduler = parts.model, parts.optimizer, parts.scheduler
        self.batcher, self.loss_fn = parts.batcher, parts.loss_fn
        self.unigram_entropy, self.data_sha256 = parts.unigram_entropy, parts.data_sha256
        self.bigram_entropy = parts.bigram_entropy
        self.params = [p for g in self.optimizer.param_groups for p in g["params"]]

        self.step = 0
        self._done = 0  # optimizer updates applied (== step, or step + 1 inside on_step_end)
        self.last_checkpoint: Path | None = None
        self.last_checkpoint_step: int | None = None
        if ckpt is not None:
            self._restore(ckpt)
            self.run_dir = run_dir
        else:
            out = Path(config.run.out_dir)
            name = config.run.name or default_run_name(out)
            self.run_dir = out / name
            if (self.run_dir / "metrics.jsonl").exists() or (self.run_dir / CHECKPOINT_DIR).exists():
                raise FileExistsError(
                    f"run directory '{self.run_dir}' already holds a run; continue it with "
                    f"--resume {self.run_dir} or choose another --name"
                )
            self.config = config = config.replace(name=name)
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self.log: MetricsLog | None = None
        self.losses: list[float] = []
        self.val_loss: float | None = None
        self._start_state = self._snapshot()
        self._resumed_from = ckpt.step if ckpt is not None else None

    def emit(self, event: str, *args) -> None:
        """Call ``event(self, *args)`` on every callback that has it."""
        for cb in self.callbacks:
            hook = getattr(cb, event, None)
            if hook is not None:
                hook(self, *args)

    # ---- state ------------------------------------------------------------------------------
    def _snapshot(self) -> dict:
        """RNG and batcher state now (taken at the start of each step, for Ctrl-C checkpoints)."""
        return {"rng": copy.deepcopy(get_rng_state()), "batcher": copy.deepcopy(self.batcher.state_dict())}

    def _restore(self, ckpt) -> None:
        self.model.load_state_dict(ckpt.model_state)
        if ckpt.optimizer_state is not None:
            self.optimizer.load_state_dict(_to_device_tree(ckpt.optimizer_state, self.device))
        # The schedule is a function of the step: replaying it works even when --steps changed.
        for _ in range(ckpt.step):
            self.scheduler.step()
        st = ckpt.state
        if st.get("data_sha256") not in (None, self.data_sha256):
            warnings.warn("the corpus differs from the one this run was trained on: the resumed run "
                          "will not see the batches the original would have", stacklevel=3)
        if st.get("batcher") is not None:
            self.batcher.load_state_dict(st["batcher"])
        if st.get("rng") is not None:
            set_rng_state(st["rng"])
        self.step = self._done = ckpt.step
        self.last_checkpoint, self.last_checkpoint_step = ckpt.path, ckpt.step

    def save_checkpoint(self, snapshot: dict | None = None) -> Path:
        """Write ``run_dir/checkpoint`` atomically for the updates done so far."""
        snap = snapshot if snapshot is not None else self._snapshot()
        state = {
            "rng": snap["rng"],
            "batcher": snap["batcher"],
            "scheduler": _safe_state(self.scheduler),
            "tokens_seen": self._done * self.config.tokens_per_step,
            "data_sha256": self.data_sha256,
        }
        attachments = {"config.json": self.run_dir / "config.json",
                       "tokenizer.json": self.run_dir / "tokenizer.json"}
        with _DeferInterrupt():
            path = save_checkpoint(self.run_dir / CHECKPOINT_DIR, model=self.model, optimizer=self.optimizer,
                                   step=self._done, state=state, attachments=attachments)
        self.last_checkpoint, self.last_checkpoint_step = path, self._done
        return path

    # ---- one step ---------------------------------------------------------------------------
    def loss(self, x, y):
        """The run's loss of the model's next-token predictions (``loss_fn`` over all positions)."""
        logits = self.model(x)
        return self.loss_fn(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))

    def _batch(self, split: str):
        x, y = self.batcher.get_batch(split)
        if self.device.type != "cpu":
            x, y = x.to(self.device), y.to(self.device)
        return x, y

    @no_grad()
    def evaluate(self, batches: int | None = None) -> float:
        """Mean loss over ``eval_batches`` validation batches (dropout off, no graph)."""
        n = batches or self.config.run.eval_batches
        with eval_mode(self.model):
            total = sum(float(self.loss(*self._batch("val")).item()) for _ in range(n))
        return total / n

    def train_step(self) -> dict:
        """One optimizer update (``grad_accum`` micro-batches) and its metrics record."""
        run, o, s = self.config.run, self.config.optim, self.step
        metrics: dict = {"step": s}
        if run.eval_interval and (s % run.eval_interval == 0 or s == o.steps - 1):
            self.val_loss = metrics["val_loss"] = self.evaluate()

        t0 = time.perf_counter()
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        k = o.grad_accum
        total = 0.0
        for _ in range(k):
            loss = self.loss(*self._batch("train"))
            # loss/k per micro-batch: the accumulated gradient is the big batch's mean gradient
            if k > 1:
                (loss * (1.0 / k)).backward()
            else:
                loss.backward()
            total += float(loss.item())
        loss_value = total / k
        if not math.isfinite(loss_value):
            self._stop_nonfinite(s, f"loss is {loss_value}")
        # max_norm inf: the norm is measured and nothing is scaled
        pre = optim.clip_grad_norm_(self.params, o.clip if o.clip > 0 else math.inf)
        pre = float(pre)
        if not math.isfinite(pre):
            self._stop_nonfinite(s, f"gradient norm is {pre} (loss {loss_value:.4g})")
        clipped = bool(o.clip > 0 and pre > o.clip)
        post = pre * min(1.0, o.clip / (pre + 1e-6)) if clipped else pre
        lr = float(self.optimizer.param_groups[0]["lr"])
        self.emit("on_before_optimizer_step")
        with _DeferInterrupt():
            self.optimizer.step()
            self.scheduler.step()
            self._done = s + 1
        dt = time.perf_counter() - t0
        metrics.update(loss=loss_value, lr=lr, grad_norm=pre, grad_norm_clipped=post, clipped=clipped,
                       tokens_per_s=self.config.tokens_per_step / dt if dt > 0 else float("inf"))
        return metrics

    def _stop_nonfinite(self, s: int, what: str) -> None:
        if self.log is not None:
            self.log.write({"event": "nan", "step": s})
        if self.last_checkpoint is not None:
            where = f"the last good checkpoint (step {self.last_checkpoint_step}) is {self.last_checkpoint}"
        else:
            where = "no checkpoint had been written yet"
        raise NonFiniteLossError(
            f"training stopped at step {s}: {what}; {where}. Lower --lr, raise --warmup, keep --clip on, "
            f"or run `tensorlite doctor` on the model",
            step=s, checkpoint=self.last_checkpoint,
        )

    # ---- the loop ---------------------------------------------------------------------------
    def _prepare_run_dir(self) -> None:
        cfg = self.config
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.run_dir / "config.json", json.dumps(cfg.to_dict(), indent=2) + "\n")
        if self._resumed_from is None:
            self.tokenizer.save(str(self.run_dir / "tokenizer.json"))
            self.metrics_path.write_text("", encoding="utf-8")
            self.log = MetricsLog(self.metrics_path)
            self.log.write({"event": "start", "config": cfg.to_dict(), "vocab_size": self.tokenizer.vocab_size,
                            "n_params": int(sum(p.data.size for p in self.model.parameters())),
                            "unigram_entropy": self.unigram_entropy, "bigram_entropy": self.bigram_entropy})
        else:
            truncate(self.metrics_path, self._resumed_from)
            self.log = MetricsLog(self.metrics_path)
            self.log.write({"event": "resume", "step": self._resumed_from})

    def fit(self) -> RunResult:
        """Train from ``step`` to ``config.optim.steps``; see :func:`train`."""
        steps, run = self.config.optim.steps, self.config.run
        tune_allocator()  # a training process reuses its step buffers: no page fault per activation
        self._prepare_run_dir()
        bar = self._progress_bar()
        t_start = time.perf_counter()
        tok_rates: list[float] = []
        ok = False
        self._pending = None
        try:
            self.emit("on_train_start")
            while self.step < steps:
                self._start_state = self._snapshot()
                metrics = self._pending = self.train_step()
                self.emit("on_step_end", metrics)
                s = metrics["step"]
                self.losses.append(metrics["loss"])
                tok_rates.append(metrics["tokens_per_s"])
                if s % run.log_interval == 0 or set(metrics) - _BASE_KEYS or s == steps - 1:
                    self.log.write(metrics)
                self._pending = None
                self.step = s + 1
                if bar is not None:
                    self._update_bar(bar, metrics)
                if run.ckpt_interval and self.step % run.ckpt_interval == 0 and self.step < steps:
                    self.save_checkpoint()
            if self.last_checkpoint_step != self.step:
                self.save_checkpoint()
            ok = True
        except KeyboardInterrupt:
            # Updates done == step (interrupted mid-step: use the state from the step's start) or
            # step + 1 (interrupted after the update: the live state is the next step's start).
            snap = self._start_state if self._done == self.step else None
            if self._pending is not None and self._done > self._pending["step"]:
                self.log.write(self._pending)  # the update happened: its record must too
            path = self.save_checkpoint(snapshot=snap)
            self.log.write({"event": "interrupt", "step": self._done})
            raise TrainingInterrupted(self._done, path, self.run_dir) from None
        finally:
            if bar is not None:
                bar.close()
            self.log.close()
            try:
                self.emit("on_train_end")
            except Exception:
                if ok:  # a failing report must not hide the error that stopped the run
                    raise
        wall = time.perf_counter() - t_start
        return RunResult(
            run_dir=self.run_dir, steps=self.step,
            final_loss=self.losses[-1] if self.losses else None, final_val_loss=self.val_loss,
            metrics_path=self.metrics_path, checkpoint=self.last_checkpoint,
            tokens_per_s=float(np.median(tok_rates)) if tok_rates else None, wall_time=wall,
            losses=list(self.losses),
        )

    # ---- progress ---------------------------------------------------------------------------
    def _progress_bar(self):
        if not self.config.run.progress:
            return None
        return tqdm(total=self.config.optim.steps, initial=self.step, unit="step", dynamic_ncols=True,
                    desc=self.run_dir.name, smoothing=0.1)

    def _update_bar(self, bar, m: dict) -> None:
        post = {"loss": f"{m['loss']:.3f}", "lr": f"{m['lr']:.2e}", "tok/s": f"{m['tokens_per_s']:.0f}"}
        if self.val_loss is not None:
            post["val"] = f"{self.val_loss:.3f}"
        bar.set_postfix(post, refresh=False)
        bar.update(1)

    # ---- sampling ---------------------------------------------------------------------------
    def sample(self, prompt: str = "def ", max_new_tokens: int = 200, temperature: float = 0.8,
               top_k: int | None = None, top_p: float | None = None, seed: int | None = 0) -> str:
        """Text generated by the current model from ``prompt``."""
        return sample_text(self.model, self.tokenizer, prompt, max_new_tokens, temperature=temperature,
                           top_k=top_k, top_p=top_p, seed=seed)


def _to_device_tree(obj, device):
    """Arrays in a nested state (loaded as NumPy) moved to ``device``."""
    if device.type == "cpu":
        return obj
    if isinstance(obj, np.ndarray):
        return device.xp.asarray(obj)
    if isinstance(obj, dict):
        return {k: _to_device_tree(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_device_tree(v, device) for v in obj)
    return obj


def _first_difference(saved, given, section: str) -> tuple:
    """``(field, saved value, given value)`` of the first field where two config sections differ."""
    if section == "faults":
        return "faults", saved, given
    for f in fields(saved):
        a, b = getattr(saved, f.name), getattr(given, f.name)
        if a != b:
            return f.name, a, b
    return section, saved, given


def _safe_state(obj):
    try:
        return obj.state_dict()
    except Exception:
        return None


def sample_text(model, tokenizer, prompt: str, max_new_tokens: int, **kw) -> str:
    """Encode ``prompt``, generate, decode (the prompt is part of the result)."""
    ids = tokenizer.encode(prompt)
    out = generate(model, ids, max_new_tokens, **kw)
    return tokenizer.decode(list(out))


def train(config: TrainConfig | None = None, callbacks=(), resume=None) -> RunResult:
    """Train a GPT as ``config`` says and return a :class:`RunResult`.

    ``resume=RUN_DIR`` continues a run from its checkpoint, exactly as if it had never stopped
    (same batches, same dropout masks); ``config`` may then be None (the run's own is used) or
    change only what does not shape the model or the data (``steps``, intervals, ``lr``...).
    Raises :class:`NonFiniteLossError` when the loss stops being finite and
    :class:`TrainingInterrupted` (a KeyboardInterrupt) after saving a checkpoint on Ctrl-C.
    """
    return Trainer(config, callbacks=callbacks, resume=resume).fit()

