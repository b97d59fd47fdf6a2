"""The run folder a training run writes, and the one reader of each of its files::

    runs/<name>/
      config.json       the TrainConfig (what ``--resume`` rebuilds the run from)
      tokenizer.json
      metrics.jsonl     one JSON object per step (:mod:`tensorlite.runlog`)
      checkpoint/       weights, optimizer, RNG and batcher state (:mod:`tensorlite.checkpoint`)
      dashboard.html    written at the end
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

from .. import data as _data
from .. import faults as _faults
from .. import nn
from ..backend import get_device
from ..checkpoint import load_checkpoint
from .config import TrainConfig

__all__ = ["default_run_name", "load_run", "read_config", "read_tokenizer"]


def read_config(run_dir) -> TrainConfig:
    """The :class:`TrainConfig` in ``run_dir/config.json`` (a flat config of tensorlite 0.1 too).

    FileNotFoundError when the folder or the file is missing, ValueError when it is not a config.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory '{run_dir}' does not exist")
    f = run_dir / "config.json"
    if not f.is_file():
        raise FileNotFoundError(f"{f}: missing; is '{run_dir}' a tensorlite run directory?")
    return config_from_json(f)


def config_from_json(path) -> TrainConfig:
    """A :class:`TrainConfig` from a JSON file of its fields (nested sections or flat names)."""
    path = Path(path)
    try:
        return TrainConfig.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: not a valid run config ({e})") from None


def read_tokenizer(run_dir, checkpoint=None):
    """The run's tokenizer: the checkpoint's copy when there is one, else ``run_dir/tokenizer.json``."""
    run_dir = Path(run_dir)
    if checkpoint is not None and "tokenizer.json" in checkpoint.files:
        return _data.load_tokenizer(checkpoint.path / "tokenizer.json")
    f = run_dir / "tokenizer.json"
    if not f.is_file():
        raise FileNotFoundError(f"{f}: missing; the run's tokenizer is needed to rebuild its model")
    return _data.load_tokenizer(f)


def default_run_name(out_dir: Path) -> str:
    """The date and time, with a counter when that folder exists already."""
    base = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    name, i = base, 1
    while (Path(out_dir) / name).exists():
        i += 1
        name = f"{base}-{i}"
    return name


def load_run(run_dir, device: str = "cpu", *, faults: bool = True):
    """``(model, tokenizer, config)`` of a trained run, weights from its checkpoint (model in eval
    mode). The run's model faults are injected again (``faults=False``: the healthy model with the
    same weights)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory '{run_dir}' does not exist")
    ckpt = load_checkpoint(run_dir)
    saved = ckpt.json_attachment("config.json")
    config = TrainConfig.from_dict(saved) if saved is not None else read_config(run_dir)
    tokenizer = read_tokenizer(run_dir, ckpt)
    model = nn.GPT(config.gpt_config(vocab_size=tokenizer.vocab_size))
    if faults:  # before the weights: a checkpoint holds the faulty model's parameters
        _faults.inject(model, *[f for f in config.faults if _faults.get(f).target == "model"])
    model.load_state_dict(ckpt.model_state)
    if device != "cpu":
        model.to(get_device(device))
    model.eval()
    return model, tokenizer, config
