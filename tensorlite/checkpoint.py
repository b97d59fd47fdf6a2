"""Checkpoints that survive a crash: weights in safetensors, everything else in JSON.

A checkpoint is a folder::

    checkpoint/
      model.safetensors      the model's state_dict
      optimizer.safetensors  the optimizer's arrays (AdamW moments ...); its scalars are in state.json
      state.safetensors      any other arrays (only when there are some)
      config.json, tokenizer.json   copies, so the folder alone can rebuild the model
      state.json             step, optimizer scalars, RNG + batcher + scheduler state, and the size
                             and SHA-256 of every file above: written last, checked on load

Writing never touches the previous checkpoint until the new one is complete on disk: the files go
to ``checkpoint.tmp/`` (each fsynced), then two renames swap the folders (``checkpoint`` ->
``checkpoint.old``, ``checkpoint.tmp`` -> ``checkpoint``) and the old one is removed. A kill at any
moment leaves either the old or the new checkpoint whole; :func:`find_checkpoint` falls back to
``checkpoint.old`` when the kill landed between the two renames.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.numpy as st

from .backend import to_numpy

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "atomic_write_bytes",
    "atomic_write_text",
    "find_checkpoint",
    "load_checkpoint",
    "save_checkpoint",
]

FORMAT_VERSION = 1
CHECKPOINT_DIR = "checkpoint"
_TMP_SUFFIX = ".tmp"
_OLD_SUFFIX = ".old"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete or corrupt; the message names the file."""


# ------------------------------------------------------------------------------------------------
# atomic file writes
# ------------------------------------------------------------------------------------------------
def _fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` and fsync it (the file is new: its folder is a temp folder)."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_bytes(path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file, never a part."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{_TMP_SUFFIX}")
    try:
        _write_file(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


# ------------------------------------------------------------------------------------------------
# nested state <-> JSON + arrays
# ------------------------------------------------------------------------------------------------
def _is_array(x) -> bool:
    if isinstance(x, np.ndarray):
        return True
    # CuPy arrays and Tensors, without importing either here
    return hasattr(x, "__cuda_array_interface__") or (hasattr(x, "data") and hasattr(x, "grad_fn"))


def _as_numpy(x) -> np.ndarray:
    if hasattr(x, "grad_fn"):  # a Tensor
        x = x.data
    return np.ascontiguousarray(to_numpy(x))


def _encode(obj, arrays: dict, key: str):
    """``obj`` as JSON with each array replaced by ``{"__array__": name}`` and put in ``arrays``.

    Dicts with non-string keys (optimizer state is keyed by parameter index) and tuples are tagged
    so that they come back as they went in.
    """
    if _is_array(obj):
        arrays[key] = _as_numpy(obj)
        return {"__array__": key}
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _encode(v, arrays, f"{key}/{k}") for k, v in obj.items()}
        return {"__dict__": [[_encode(k, arrays, f"{key}/k{i}"), _encode(v, arrays, f"{key}/{k}")]
                             for i, (k, v) in enumerate(obj.items())]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, arrays, f"{key}/{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, arrays, f"{key}/{i}") for i, v in enumerate(obj)]
    raise TypeError(f"checkpoint: cannot store a {type(obj).__name__} (at {key})")


def _decode(obj, arrays: dict, where: str):
    if isinstance(obj, list):
        return [_decode(v, arrays, where) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__array__" in obj:
        name = obj["__array__"]
        if name not in arrays:
            raise CheckpointError(f"{where}: array {name!r} is missing (the checkpoint is incomplete)")
        return arrays[name]
    if "__tuple__" in obj:
        return tuple(_decode(v, arrays, where) for v in obj["__tuple__"])
    if "__dict__" in obj:
        return {_decode(k, arrays, where): _decode(v, arrays, where) for k, v in obj["__dict__"]}
    return {k: _decode(v, arrays, where) for k, v in obj.items()}


def _model_arrays(model) -> dict:
    """A Module's ``state_dict()`` (or a dict of arrays) as contiguous NumPy arrays."""
    sd = model.state_dict() if hasattr(model, "state_dict") else model
    return {k: _as_numpy(v) for k, v in sd.items()}


# ------------------------------------------------------------------------------------------------
# save
# ------------------------------------------------------------------------------------------------
def save_checkpoint(path, *, model, optimizer=None, step: int = 0, state: dict | None = None,
                    attachments: dict | None = None) -> Path:
    """Write a checkpoint folder at ``path`` atomically and return its path.

    ``model`` is a Module or a ``{name: array}`` dict; ``optimizer`` an Optimizer (its
    ``state_dict()`` is stored) or an already-made state dict; ``state`` any JSON-able dict that
    may hold arrays (RNG, batcher, scheduler state); ``attachments`` maps file names to ``bytes``
    or to a path whose content is copied (``config.json``, ``tokenizer.json``).
    """
    path = Path(path)
    parent = path.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + _TMP_SUFFIX)
    old = path.with_name(path.name + _OLD_SUFFIX)
    files: dict[str, bytes] = {"model.safetensors": st.save(_model_arrays(model))}
    opt_json = None
    if optimizer is not None:
        opt_state = optimizer.state_dict() if hasattr(optimizer, "state_dict") else optimizer
        opt_arrays: dict = {}
        opt_json = _encode(opt_state, opt_arrays, "optimizer")
        files["optimizer.safetensors"] = st.save(opt_arrays)
    other_arrays: dict = {}
    state_json = _encode(dict(state or {}), other_arrays, "state")
    if other_arrays:
        files["state.safetensors"] = st.save(other_arrays)
    for name, content in (attachments or {}).items():
        files[name] = content if isinstance(content, bytes) else Path(content).read_bytes()

    if tmp.exists():  # left by a run killed mid-write
        shutil.rmtree(tmp)
    tmp.mkdir()
    manifest = {}
    for name, data in files.items():
        _write_file(tmp / name, data)
        manifest[name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    header = {
        "format": FORMAT_VERSION,
        "step": int(step),
        "optimizer": opt_json,
        "state": state_json,
        "files": manifest,
    }
    # state.json last: its presence (with matching checksums) is what makes a folder a checkpoint.
    _write_file(tmp / "state.json", json.dumps(header, indent=1).encode("utf-8"))
    _fsync_dir(tmp)

    _swap_in(tmp, path, old)
    return path


def _rename(src: Path, dst: Path) -> None:
    os.replace(src, dst)  # a seam for the kill-during-write tests


def _swap_in(tmp: Path, path: Path, old: Path) -> None:
    if path.exists():
        if old.exists():  # a stale one from an interrupted swap; ``path`` is whole, so it can go
            shutil.rmtree(old)
        _rename(path, old)
    # (if ``path`` is missing, ``old`` is the last good checkpoint: keep it until the new one is in)
    _rename(tmp, path)
    _fsync_dir(path.parent)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)


# ------------------------------------------------------------------------------------------------
# load
# ------------------------------------------------------------------------------------------------
@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` read: arrays as NumPy, state decoded."""

    path: Path
    step: int
    model_state: dict
    optimizer_state: Any = None
    state: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)

    def read_attachment(self, name: str) -> bytes:
        return (self.path / name).read_bytes()

    def json_attachment(self, name: str):
        """A JSON attachment (``config.json``), or None when the checkpoint has none."""
        if name not in self.files:
            return None
        return json.loads(self.read_attachment(name))


def _check_folder(path: Path) -> dict:
    """``state.json`` of the checkpoint folder ``path`` after checking every file it lists."""
    state_file = path / "state.json"
    if not state_file.is_file():
        raise CheckpointError(f"{state_file}: missing (the checkpoint was never completed)")
    try:
        header = json.loads(state_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{state_file}: corrupt ({e})") from None
    if not isinstance(header, dict) or "files" not in header or "step" not in header:
        raise CheckpointError(f"{state_file}: not a tensorlite checkpoint (no 'step' or 'files')")
    if header.get("format", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{state_file}: format {header['format']} is newer than this tensorlite understands "
            f"({FORMAT_VERSION}); upgrade tensorlite"
        )
    for name, info in header["files"].items():
        f = path / name
        if not f.is_file():
            raise CheckpointError(f"{f}: missing (the checkpoint is incomplete)")
        data = f.read_bytes()
        if len(data) != info["bytes"] or hashlib.sha256(data).hexdigest() != info["sha256"]:
            raise CheckpointError(
                f"{f}: corrupt (size or SHA-256 differs from what state.json recorded; "
                f"{len(data)} bytes, expected {info['bytes']})"
            )
    return header


def find_checkpoint(path) -> Path:
    """The checkpoint folder for ``path`` (a run directory or a checkpoint folder).

    Falls back to ``checkpoint.old`` when the newest one was left half-swapped by a kill.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file or directory")
    if (path / "state.json").exists() or path.name in (CHECKPOINT_DIR,):
        candidates = [path, path.with_name(path.name + _OLD_SUFFIX)]
    else:
        candidates = [path / CHECKPOINT_DIR, path / (CHECKPOINT_DIR + _OLD_SUFFIX)]
    first_error = None
    for c in candidates:
        if not c.exists():
            continue
        try:
            _check_folder(c)
            return c
        except CheckpointError as e:
            first_error = first_error or e
    if first_error is not None:
        raise first_error
    raise CheckpointError(f"{candidates[0]}: no checkpoint here (has the run saved one yet?)")


def _load_arrays(f: Path) -> dict:
    try:
        return st.load_file(str(f))
    except Exception as e:  # safetensors raises its own error type
        raise CheckpointError(f"{f}: corrupt safetensors file ({e})") from None


def load_checkpoint(path) -> Checkpoint:
    """Read and verify the checkpoint at ``path`` (a run directory or a checkpoint folder).

    Raises :class:`CheckpointError` naming the file when anything is missing or corrupt.
    """
    folder = find_checkpoint(path)
    header = _check_folder(folder)
    model_state = _load_arrays(folder / "model.safetensors")
    opt = None
    if header.get("optimizer") is not None:
        opt_arrays = _load_arrays(folder / "optimizer.safetensors")
        opt = _decode(header["optimizer"], opt_arrays, str(folder / "optimizer.safetensors"))
    other = _load_arrays(folder / "state.safetensors") if (folder / "state.safetensors").exists() else {}
    state = _decode(header.get("state") or {}, other, str(folder / "state.safetensors"))
    return Checkpoint(path=folder, step=int(header["step"]), model_state=model_state,
                      optimizer_state=opt, state=state, files=header["files"])
