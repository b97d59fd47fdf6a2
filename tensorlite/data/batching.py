"""Random (input, target) windows over a token stream, with a held-out validation tail."""

from __future__ import annotations

import numpy as np

from ..backend import get_device, to_numpy
from ..tensor import Tensor

SPLITS = ("train", "val")


class TokenBatcher:
    """Samples language-model batches from a 1-D token stream.

    The stream is split contiguously: the first ``1 - val_fraction`` of the tokens train, the
    tail validates (so no validation window overlaps the training text). ``get_batch(split)``
    draws ``batch_size`` random start offsets ``o`` and returns ``x = tokens[o : o + seq_len]``
    and ``y = tokens[o + 1 : o + seq_len + 1]``: ``y[:, t] == x[:, t + 1]``, the target of each
    position is the token that follows it.

    Each split draws from its own seeded NumPy generator, so evaluating more or less often does
    not change the training batches, and :meth:`state_dict` / :meth:`load_state_dict` resume the
    exact same sequence.
    """

    def __init__(self, tokens, seq_len: int, batch_size: int, val_fraction: float = 0.1, seed: int = 0,
                 device="cpu") -> None:
        arr = to_numpy(tokens.data) if isinstance(tokens, Tensor) else np.asarray(
            to_numpy(tokens) if hasattr(tokens, "shape") else tokens)
        if arr.ndim != 1:
            raise ValueError(f"TokenBatcher: tokens must be a 1-D sequence, got shape {arr.shape}")
        if arr.size and arr.dtype.kind not in "iu":
            raise TypeError(f"TokenBatcher: tokens must be integers, got dtype {arr.dtype}")
        if seq_len < 1 or batch_size < 1:
            raise ValueError(f"TokenBatcher: seq_len ({seq_len}) and batch_size ({batch_size}) must be >= 1")
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"TokenBatcher: val_fraction must be in [0, 1), got {val_fraction}")
        self.tokens = arr.astype(np.int64, copy=False)
        self.seq_len, self.batch_size = int(seq_len), int(batch_size)
        self.val_fraction, self.seed = float(val_fraction), int(seed)
        self.device = get_device(device)
        n = len(self.tokens)
        n_val = int(round(n * self.val_fraction))
        need = self.seq_len + 1
        if n - n_val < need or (n_val and n_val < need):
            raise ValueError(
                f"TokenBatcher: the corpus is too short: {n} tokens give a train split of {n - n_val} "
                f"and a val split of {n_val} (val_fraction={self.val_fraction}), but each split needs at "
                f"least seq_len + 1 = {need} tokens, i.e. at least "
                f"{_needed_total(need, self.val_fraction)} tokens in all; use a longer corpus, a smaller seq_len "
                "or a smaller val_fraction"
            )
        self.data = {"train": self.tokens[: n - n_val], "val": self.tokens[n - n_val:]}
        self._positions = np.arange(self.seq_len, dtype=np.int64)
        train_seq, val_seq = np.random.SeedSequence(self.seed).spawn(2)
        self._rngs = {"train": np.random.Generator(np.random.PCG64(train_seq)),
                      "val": np.random.Generator(np.random.PCG64(val_seq))}
        self.batches_drawn = {"train": 0, "val": 0}

    @property
    def n_train(self) -> int:
        return len(self.data["train"])

    @property
    def n_val(self) -> int:
        return len(self.data["val"])

    def get_batch(self, split: str = "train", batch_size: int | None = None):
        """``(x, y)``: int64 Tensors of shape ``(batch_size, seq_len)`` on the batcher's device."""
        if split not in SPLITS:
            raise ValueError(f"TokenBatcher.get_batch: split must be 'train' or 'val', got {split!r}")
        data = self.data[split]
        if not len(data):
            raise ValueError("TokenBatcher.get_batch: there is no 'val' split (val_fraction=0)")
        b = self.batch_size if batch_size is None else int(batch_size)
        # Offsets 0 .. len - seq_len - 1, so that the target window (one further) stays inside.
        offsets = self._rngs[split].integers(0, len(data) - self.seq_len, size=b)
        self.batches_drawn[split] += 1
        idx = offsets[:, None] + self._positions[None, :]
        x, y = data[idx], data[idx + 1]
        dev = self.device
        return Tensor(dev.xp.asarray(x), device=dev), Tensor(dev.xp.asarray(y), device=dev)

    def state_dict(self) -> dict:
        """The generators' states and the batch counts (JSON-serialisable)."""
        return {
            "seed": self.seed,
            "n_tokens": len(self.tokens),
            "seq_len": self.seq_len,
            "batch_size": self.batch_size,
            "val_fraction": self.val_fraction,
            "rng": {s: _jsonable(self._rngs[s].bit_generator.state) for s in SPLITS},
            "batches_drawn": dict(self.batches_drawn),
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue the batch sequence saved by :meth:`state_dict`."""
        for key, mine in (("n_tokens", len(self.tokens)), ("val_fraction", self.val_fraction)):
            if key in state and state[key] != mine:
                raise ValueError(
                    f"TokenBatcher.load_state_dict: the saved batcher had {key}={state[key]}, this one "
                    f"has {mine}; resume with the same corpus, tokenizer and val_fraction"
                )
        for s in SPLITS:
            self._rngs[s].bit_generator.state = _from_jsonable(state["rng"][s])
        self.batches_drawn = {s: int(v) for s, v in state.get("batches_drawn", {}).items()} or \
            {"train": 0, "val": 0}

    def __repr__(self) -> str:
        return (f"TokenBatcher(train={self.n_train} tokens, val={self.n_val} tokens, "
                f"seq_len={self.seq_len}, batch_size={self.batch_size})")


def _needed_total(need: int, val_fraction: float) -> int:
    n = need
    while True:
        n_val = int(round(n * val_fraction))
        if n - n_val >= need and (n_val == 0 or n_val >= need):
            return n
        n += 1


def _jsonable(state):
    # PCG64's state holds 128-bit ints; strings keep them exact in any JSON reader.
    if isinstance(state, dict):
        return {k: _jsonable(v) for k, v in state.items()}
    if isinstance(state, int) and not isinstance(state, bool) and abs(state) >= 2**53:
        return {"__int__": str(state)}
    return state


def _from_jsonable(state):
    if isinstance(state, dict):
        if set(state) == {"__int__"}:
            return int(state["__int__"])
        return {k: _from_jsonable(v) for k, v in state.items()}
    return state
