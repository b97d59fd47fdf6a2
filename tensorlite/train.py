"""The training loop: accumulation, clipping, schedule, evaluation, metrics, checkpoints, resume.

``train(TrainConfig(...))`` trains a GPT on a text corpus and writes a run directory::

    runs/<name>/
      config.json       the TrainConfig (what ``--resume`` rebuilds the run from)
      tokenizer.json
      metrics.jsonl     one JSON object per step (see ``interfaces.md``)
      checkpoint/       weights, optimizer, RNG and batcher state (:mod:`tensorlite.checkpoint`)
      dashboard.html    written at the end when :mod:`tensorlite.debug` is available

The loop is the textbook one, spelled out in ``docs/training.md``. What it adds: a checkpoint on
Ctrl-C, a stop with :class:`NonFiniteLossError` (and the last good checkpoint left alone) when the
loss stops being finite, and resume that continues as if the run had never stopped.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import hashlib
import importlib
import json
import math
import signal
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import data as _data
from . import functional as F
from . import nn, optim
from .autograd import no_grad
from .backend import get_device, tune_allocator
from .checkpoint import CHECKPOINT_DIR, atomic_write_text, load_checkpoint, save_checkpoint
from .random import get_rng_state, manual_seed, set_rng_state

__all__ = [
    "NonFiniteLossError",
    "RunResult",
    "TRAIN_FAULTS",
    "TrainConfig",
    "Trainer",
    "TrainingInterrupted",
    "load_run",
    "train",
]

# Faults that live in the loop rather than in the model (the model's own go to GPTConfig.faults).
TRAIN_FAULTS = {
    "adamw_decay_on_moment": "AdamW applies weight decay to the first moment instead of the weights",
    "ce_sign_flip": "the loss is minus the cross-entropy (training maximises it)",
    "bos_pad_misalignment": "inputs get a BOS prepended and labels a pad appended (off by one)",
    "no_warmup": "the LR schedule has no warmup: the first step runs at lr_max",
}

# Fields that shape the model or the token stream: a resumed run must keep them.
_FIXED_ON_RESUME = (
    "seq_len", "d_model", "n_layers", "n_heads", "d_ff", "norm", "ffn", "pos", "bias",
    "tie_weights", "linear", "norm_eps", "faults", "corpus", "corpus_max_chars", "tokenizer",
    "vocab_size", "val_fraction",
)
# Every GPTConfig field but the two a run sets itself; TrainConfig declares each (a test checks).
_GPT_FIELDS = tuple(f.name for f in dataclasses.fields(nn.GPTConfig) if f.name not in ("vocab_size", "faults"))


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
class TrainConfig:
    """Everything a training run depends on. ``tensorlite train`` has one flag per field.

    The model fields are :class:`tensorlite.nn.GPTConfig`'s (its ``vocab_size`` comes from the
    tokenizer). ``faults`` holds model faults (``GPTConfig.faults``) and the loop's own
    (:data:`TRAIN_FAULTS`).
    """

    # model
    seq_len: int = 64
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 2
    d_ff: int | None = None
    dropout: float = 0.0
    norm: str = "layernorm"
    ffn: str = "gelu"
    pos: str = "learned"
    bias: bool = True
    tie_weights: bool = False
    linear: str = "dense"
    norm_eps: float | None = None
    gradient_checkpointing: bool = False
    faults: tuple = ()
    # data
    corpus: str | None = None  # a file or folder; None = data.default_corpus()
    corpus_max_chars: int | None = None
    tokenizer: str = "char"  # "char" | "bpe"
    vocab_size: int = 512  # for the BPE tokenizer
    val_fraction: float = 0.1
    # optimisation
    steps: int = 1000
    batch_size: int = 32
    grad_accum: int = 1
    lr: float = 3e-3
    lr_min: float = 3e-4
    warmup: int = 50
    weight_decay: float = 0.1
    betas: tuple = (0.9, 0.95)
    clip: float = 1.0  # 0 = no clipping (the norm is still recorded)
    # bookkeeping
    eval_interval: int = 100
    eval_batches: int = 10
    ckpt_interval: int = 250
    log_interval: int = 1
    probe_interval: int = 25  # debug probes (activations, attention, spectral norms); 0 = none
    seed: int = 0
    device: str = "cpu"
    out_dir: str = "runs"
    name: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        self.faults = tuple(self.faults or ())
        self.betas = tuple(self.betas)
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the field for values no run can use."""
        positive = ("steps", "batch_size", "grad_accum", "seq_len", "eval_batches", "log_interval")
        for name in positive:
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        for name in ("warmup", "eval_interval", "ckpt_interval", "probe_interval"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {v!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.lr_min <= self.lr:
            raise ValueError(f"lr_min ({self.lr_min}) must be between 0 and lr ({self.lr})")
        if self.clip < 0:
            raise ValueError(f"clip must be >= 0 (0 = no clipping), got {self.clip}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.tokenizer not in ("char", "bpe"):
            raise ValueError(f"tokenizer must be 'char' or 'bpe', got {self.tokenizer!r}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be between 0 and 1, got {self.val_fraction}")

    # ---- (de)serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["faults"] = list(self.faults)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"TrainConfig: unknown field(s) {', '.join(unknown)}")
        return cls(**d)

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    # ---- derived ----------------------------------------------------------------------------
    @property
    def model_faults(self) -> tuple:
        return tuple(f for f in self.faults if f not in TRAIN_FAULTS)

    @property
    def train_faults(self) -> tuple:
        return tuple(f for f in self.faults if f in TRAIN_FAULTS)

    def gpt_config(self, vocab_size: int):
        """The :class:`tensorlite.nn.GPTConfig` of this run (ValueError naming a bad field)."""
        kw = {k: getattr(self, k) for k in _GPT_FIELDS}
        return nn.GPTConfig(vocab_size=vocab_size, faults=self.model_faults, **kw)

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.grad_accum * self.seq_len


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


class MetricsLog:
    """``metrics.jsonl``: one JSON object per line, flushed as it is written."""

    def __init__(self, path) -> None:
        self.path = Path(path)
        self._f = open(self.path, "a", encoding="utf-8")

    def write(self, record: dict) -> None:
        self._f.write(json.dumps(_jsonable(record)) + "\n")
        self._f.flush()

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if hasattr(x, "tolist"):  # CuPy arrays, Tensors
        return x.tolist()
    return x


def read_metrics(path) -> list[dict]:
    """The records of a ``metrics.jsonl`` (a torn last line, from a kill, is skipped)."""
    out = []
    p = Path(path)
    if not p.exists():
        return out
    for line in p.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop the records of steps >= ``step`` (done after the checkpoint a resume starts from)."""
    kept = []
    for rec in read_metrics(path):
        s = rec.get("step")
        if s is not None and s >= step and rec.get("event") != "start":
            continue
        kept.append(json.dumps(rec))
    atomic_write_text(path, "".join(line + "\n" for line in kept))


def _unigram_entropy(tokens: np.ndarray) -> float:
    """Entropy (nats) of the token frequencies: the loss of a model that ignores context."""
    counts = np.bincount(tokens)
    p = counts[counts > 0] / tokens.size
    return float(-(p * np.log(p)).sum())


def _optional(module: str, attr: str):
    """``module.attr`` when it exists (the debug tools are optional for training)."""
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return None


def _default_run_name(out_dir: Path) -> str:
    base = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    name, i = base, 1
    while (out_dir / name).exists():
        i += 1
        name = f"{base}-{i}"
    return name


def _to_device_tree(obj, device):
    """Arrays in a nested state (loaded as NumPy) moved to ``device``."""
    if device.type == "cpu":
        return obj
    if isinstance(obj, np.ndarray):
        return device.xp.asarray(obj)
    if isinstance(obj, dict):
        return {k: _to_device_tree(v, device) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_device_tree(v, device) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_to_device_tree(v, device) for v in obj)
    return obj


def build_tokenizer(config: TrainConfig, text: str):
    if config.tokenizer == "char":
        return _data.CharTokenizer.from_text(text)
    return _data.BPETokenizer.train(text, config.vocab_size)


def load_text(config: TrainConfig) -> str:
    """The corpus of a run: a file or folder, or the default corpus."""
    if config.corpus is None:
        if config.corpus_max_chars is not None:
            return _data.default_corpus(max_chars=config.corpus_max_chars)
        return _data.default_corpus()
    text = _data.load_corpus(config.corpus)
    if config.corpus_max_chars is not None:
        text = text[: config.corpus_max_chars]
    return text


# ------------------------------------------------------------------------------------------------
# the trainer
# ------------------------------------------------------------------------------------------------
class Trainer:
    """One training run. Callbacks see it: ``model``, ``optimizer``, ``scheduler``, ``step``,
    ``config``, ``run_dir``, ``tokenizer``, ``batcher``.

    ``step`` is the index of the optimizer update in progress (equal to the number of updates
    done before it); ``metrics["step"]`` in :meth:`on_step_end` is the same number.

    Callback hooks (all optional): ``on_train_start(trainer)``, ``on_before_optimizer_step(
    trainer)`` (gradients final and clipped, weights not yet updated), ``on_step_end(trainer,
    metrics)`` (may add keys before the line is written), ``on_train_end(trainer)``.
    """

    def __init__(self, config: TrainConfig | None = None, callbacks=(), resume=None,
                 batcher=None) -> None:
        ckpt = None
        if resume is not None:
            run_dir = Path(resume)
            if not run_dir.is_dir():
                raise FileNotFoundError(f"run directory '{run_dir}' does not exist")
            saved_file = run_dir / "config.json"
            if not saved_file.is_file():
                raise FileNotFoundError(f"{saved_file}: missing; is '{run_dir}' a tensorlite run directory?")
            try:
                saved = TrainConfig.from_dict(json.loads(saved_file.read_text(encoding="utf-8")))
            except (json.JSONDecodeError, TypeError) as e:
                raise ValueError(f"{saved_file}: not a valid run config ({e})") from None
            ckpt = load_checkpoint(run_dir)
            if config is None:
                config = saved
            else:
                for name in _FIXED_ON_RESUME:
                    if getattr(config, name) != getattr(saved, name):
                        raise ValueError(
                            f"resume: {name} is {getattr(saved, name)!r} in {run_dir} and cannot "
                            f"change (got {getattr(config, name)!r})"
                        )
            config = config.replace(out_dir=str(run_dir.parent), name=run_dir.name)
        elif config is None:
            config = TrainConfig()
        self.config = config
        self.callbacks = list(callbacks)
        self.device = get_device(config.device)
        config.gpt_config(vocab_size=256)  # check the model fields before reading any data

        # data
        if ckpt is not None:
            tok_file = run_dir / "tokenizer.json"
            if not tok_file.is_file():
                raise FileNotFoundError(f"{tok_file}: missing; cannot resume without the run's tokenizer")
            self.tokenizer = _data.load_tokenizer(tok_file)
            text = load_text(config)
        else:
            text = load_text(config)
            if not text:
                raise ValueError("the corpus is empty")
            self.tokenizer = build_tokenizer(config, text)
        encode_array = getattr(self.tokenizer, "encode_array", None)
        tokens = np.asarray(encode_array(text) if encode_array else self.tokenizer.encode(text), dtype=np.int64)
        self.data_entropy = _unigram_entropy(tokens)
        self.data_sha256 = hashlib.sha256(tokens.tobytes()).hexdigest()
        self.gpt_config = config.gpt_config(vocab_size=self.tokenizer.vocab_size)

        # model, optimizer, schedule
        manual_seed(config.seed)
        self.model = nn.GPT(self.gpt_config)
        if self.device.type != "cpu":
            self.model.to(self.device)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        groups = optim.param_groups_for_decay(self.model, config.weight_decay)
        opt_kw = {"lr": config.lr, "betas": tuple(config.betas), "weight_decay": config.weight_decay}
        if "adamw_decay_on_moment" in config.faults:
            opt_kw["decay_on_moment"] = True
        self.optimizer = optim.AdamW(groups, **opt_kw)
        self.scheduler = optim.lr_scheduler.WarmupCosine(
            # a warmup longer than the run is cut to the run (`--steps 20` with the default warmup)
            self.optimizer, warmup_steps=0 if "no_warmup" in config.faults else min(config.warmup, config.steps),
            total_steps=config.steps,
            lr_min=config.lr_min,
        )
        if batcher is None:
            bkw = {}
            if "bos_pad_misalignment" in config.faults:
                # a char vocabulary has no special tokens: token 0 stands in for both
                bkw = {"bos_pad_misalignment": True, "bos_id": 0, "pad_id": 0}
            batcher = _data.TokenBatcher(tokens, config.seq_len, config.batch_size,
                                         val_fraction=config.val_fraction, seed=config.seed,
                                         device=self.device, **bkw)
        self.batcher = batcher

        self.step = 0
        self._done = 0  # optimizer updates applied (== step, or step + 1 inside on_step_end)
        self.last_checkpoint: Path | None = None
        self.last_checkpoint_step: int | None = None
        if ckpt is not None:
            self._restore(ckpt)
            self.run_dir = run_dir
        else:
            out = Path(config.out_dir)
            name = config.name or _default_run_name(out)
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
        """Cross-entropy of the model's next-token predictions (the run's training objective)."""
        logits = self.model(x)
        V = logits.shape[-1]
        loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        if "ce_sign_flip" in self.config.faults:
            loss = -loss
        return loss

    def _batch(self, split: str):
        x, y = self.batcher.get_batch(split)
        if self.device.type != "cpu":
            x, y = x.to(self.device), y.to(self.device)
        return x, y

    @no_grad()
    def evaluate(self, batches: int | None = None) -> float:
        """Mean loss over ``eval_batches`` validation batches (dropout off, no graph)."""
        n = batches or self.config.eval_batches
        was_training = self.model.training
        self.model.eval()
        try:
            total = 0.0
            for _ in range(n):
                total += float(self.loss(*self._batch("val")).item())
        finally:
            self.model.train(was_training)
        return total / n

    def train_step(self) -> dict:
        """One optimizer update (``grad_accum`` micro-batches) and its metrics record."""
        cfg, s = self.config, self.step
        metrics: dict = {"step": s}
        if cfg.eval_interval and (s % cfg.eval_interval == 0 or s == cfg.steps - 1):
            self.val_loss = metrics["val_loss"] = self.evaluate()

        t0 = time.perf_counter()
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        k = cfg.grad_accum
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
        pre = optim.clip_grad_norm_(self.params, cfg.clip if cfg.clip > 0 else math.inf)
        pre = float(pre)
        if not math.isfinite(pre):
            self._stop_nonfinite(s, f"gradient norm is {pre} (loss {loss_value:.4g})")
        clipped = bool(cfg.clip > 0 and pre > cfg.clip)
        post = pre * min(1.0, cfg.clip / (pre + 1e-6)) if clipped else pre
        lr = float(self.optimizer.param_groups[0]["lr"])
        for cb in self.callbacks:
            hook = getattr(cb, "on_before_optimizer_step", None)
            if hook is not None:
                hook(self)
        with _DeferInterrupt():
            self.optimizer.step()
            self.scheduler.step()
            self._done = s + 1
        dt = time.perf_counter() - t0
        metrics.update(loss=loss_value, lr=lr, grad_norm=pre, grad_norm_clipped=post, clipped=clipped,
                       tokens_per_s=cfg.tokens_per_step / dt if dt > 0 else float("inf"))
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
                            "data_entropy": self.data_entropy})
        else:
            _truncate_metrics(self.metrics_path, self._resumed_from)
            self.log = MetricsLog(self.metrics_path)
            self.log.write({"event": "resume", "step": self._resumed_from})

    def fit(self) -> RunResult:
        """Train from ``step`` to ``config.steps``; see :func:`train`."""
        cfg = self.config
        tune_allocator()  # a training process reuses its step buffers: no page fault per activation
        self._prepare_run_dir()
        if cfg.probe_interval:
            self._add_probes()
        bar = self._progress_bar()
        t_start = time.perf_counter()
        tok_rates: list[float] = []
        ok = False
        self._pending = None
        try:
            for cb in self.callbacks:
                hook = getattr(cb, "on_train_start", None)
                if hook is not None:
                    hook(self)
            while self.step < cfg.steps:
                self._start_state = self._snapshot()
                metrics = self._pending = self.train_step()
                for cb in self.callbacks:
                    hook = getattr(cb, "on_step_end", None)
                    if hook is not None:
                        hook(self, metrics)
                s = metrics["step"]
                self.losses.append(metrics["loss"])
                tok_rates.append(metrics["tokens_per_s"])
                if s % cfg.log_interval == 0 or set(metrics) - _BASE_KEYS or s == cfg.steps - 1:
                    self.log.write(metrics)
                self._pending = None
                self.step = s + 1
                if bar is not None:
                    self._update_bar(bar, metrics)
                if cfg.ckpt_interval and self.step % cfg.ckpt_interval == 0 and self.step < cfg.steps:
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
            for cb in self.callbacks:
                hook = getattr(cb, "on_train_end", None)
                if hook is not None:
                    try:
                        hook(self)
                    except Exception:
                        if ok:
                            raise
            self.log.close()
            self.write_dashboard()
        wall = time.perf_counter() - t_start
        return RunResult(
            run_dir=self.run_dir, steps=self.step,
            final_loss=self.losses[-1] if self.losses else None, final_val_loss=self.val_loss,
            metrics_path=self.metrics_path, checkpoint=self.last_checkpoint,
            tokens_per_s=float(np.median(tok_rates)) if tok_rates else None, wall_time=wall,
            losses=list(self.losses),
        )

    def _add_probes(self) -> None:
        probes_cls = _optional("tensorlite.debug.probes", "Probes")
        if probes_cls is None:
            warnings.warn("probe_interval is set but tensorlite.debug.probes is not available; no probes",
                          stacklevel=3)
            return
        if not any(isinstance(cb, probes_cls) for cb in self.callbacks):
            self.callbacks.append(probes_cls(interval=self.config.probe_interval))

    def write_dashboard(self) -> Path | None:
        """``run_dir/dashboard.html`` from the metrics, when tensorlite.debug is installed."""
        dashboard = _optional("tensorlite.debug", "dashboard")
        if dashboard is None:
            return None
        out = self.run_dir / "dashboard.html"
        try:
            dashboard(self.run_dir, out=out)
        except Exception as e:  # the run itself must not fail over its report
            warnings.warn(f"could not write {out}: {e}", stacklevel=2)
            return None
        return out

    # ---- progress ---------------------------------------------------------------------------
    def _progress_bar(self):
        if not self.config.progress:
            return None
        return tqdm(total=self.config.steps, initial=self.step, unit="step", dynamic_ncols=True,
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


def _safe_state(obj):
    try:
        return obj.state_dict()
    except Exception:
        return None


def sample_text(model, tokenizer, prompt: str, max_new_tokens: int, **kw) -> str:
    """Encode ``prompt``, generate, decode (the prompt is part of the result)."""
    gen = importlib.import_module("tensorlite.generate").generate
    ids = tokenizer.encode(prompt)
    out = gen(model, ids, max_new_tokens, **kw)
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


def load_run(run_dir, device: str = "cpu"):
    """``(model, tokenizer, config)`` of a trained run, weights from its checkpoint (model in eval mode)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory '{run_dir}' does not exist")
    ckpt = load_checkpoint(run_dir)
    cfg_dict = ckpt.json_attachment("config.json")
    if cfg_dict is None:
        cfg_file = run_dir / "config.json"
        if not cfg_file.is_file():
            raise FileNotFoundError(f"{cfg_file}: missing")
        cfg_dict = json.loads(cfg_file.read_text(encoding="utf-8"))
    config = TrainConfig.from_dict(cfg_dict)
    tok_file = ckpt.path / "tokenizer.json" if "tokenizer.json" in ckpt.files else run_dir / "tokenizer.json"
    tokenizer = _data.load_tokenizer(tok_file)
    model = nn.GPT(config.gpt_config(vocab_size=tokenizer.vocab_size))
    model.load_state_dict(ckpt.model_state)
    if device != "cpu":
        model.to(get_device(device))
    model.eval()
    return model, tokenizer, config

