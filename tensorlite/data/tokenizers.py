"""Tokenizers: characters, and byte-level BPE. Both save to and load from one JSON file whose
``"type"`` field says which class reads it (:func:`load_tokenizer`)."""

from __future__ import annotations

import heapq
import json
import os
import re
from collections import Counter

import numpy as np

from ..backend import to_numpy
from ..tensor import Tensor

_FORMAT_VERSION = 1


class Tokenizer:
    """Common interface: ``encode(str) -> list[int]``, ``decode(ids) -> str``, ``vocab_size``,
    ``save(path)`` / ``load(path)`` and ``to_dict()`` / ``from_dict()``."""

    type: str = ""

    @property
    def vocab_size(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def __len__(self) -> int:
        return self.vocab_size

    def encode(self, text: str) -> list[int]:  # pragma: no cover - abstract
        raise NotImplementedError

    def decode(self, ids) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_dict(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def from_dict(cls, d: dict) -> Tokenizer:
        """Rebuild a tokenizer from :meth:`to_dict`; on the base class, dispatch on ``"type"``."""
        kind = d.get("type") if isinstance(d, dict) else None
        if cls is Tokenizer:
            if kind not in _REGISTRY:
                raise ValueError(
                    f"unknown tokenizer type {kind!r}; known types: {sorted(_REGISTRY)}"
                )
            return _REGISTRY[kind]._from_dict(d)
        if kind != cls.type:
            raise ValueError(
                f"{cls.__name__}: this data describes a {kind!r} tokenizer, not {cls.type!r}; use "
                "tensorlite.data.load_tokenizer, which picks the class from the 'type' field"
            )
        return cls._from_dict(d)

    @classmethod
    def _from_dict(cls, d: dict) -> Tokenizer:  # pragma: no cover - abstract
        raise NotImplementedError

    def save(self, path) -> None:
        """Write the tokenizer as JSON (ASCII-only, so any string in the vocabulary survives)."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, ensure_ascii=True)
            f.write("\n")

    @classmethod
    def load(cls, path) -> Tokenizer:
        """Read a file written by :meth:`save` (on the base class: whichever type it holds)."""
        return cls.from_dict(_read_json(path))

    def _check_ids(self, ids) -> np.ndarray:
        arr = to_numpy(ids.data) if isinstance(ids, Tensor) else np.asarray(to_numpy(ids) if hasattr(ids, "shape") else ids)
        if arr.size == 0:
            return arr.reshape(0).astype(np.int64)
        if arr.dtype.kind not in "iu":
            raise TypeError(f"{type(self).__name__}.decode: ids must be integers, got dtype {arr.dtype}")
        arr = arr.reshape(-1)
        bad = (arr < 0) | (arr >= self.vocab_size)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(
                f"{type(self).__name__}.decode: id {int(arr[i])} at position {i} is out of range for "
                f"a vocabulary of {self.vocab_size}"
            )
        return arr


def _read_json(path) -> dict:
    if not os.path.exists(path):
        raise FileNotFoundError(f"tokenizer file not found: {os.fspath(path)!r}")
    with open(path, encoding="utf-8") as f:
        try:
            d = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{os.fspath(path)!r} is not a tokenizer file (invalid JSON: {e})") from None
    if not isinstance(d, dict) or "type" not in d:
        raise ValueError(f"{os.fspath(path)!r} is not a tokenizer file (no 'type' field)")
    return d


def load_tokenizer(path) -> Tokenizer:
    """Load any tokenizer saved with ``save(path)``; the file's ``"type"`` picks the class."""
    return Tokenizer.load(path)


def tokenizer_from_dict(d: dict) -> Tokenizer:
    """Rebuild any tokenizer from its ``to_dict()``."""
    return Tokenizer.from_dict(d)


# ---- characters ----------------------------------------------------------------------------------
class CharTokenizer(Tokenizer):
    """One token per character (Unicode code point); the vocabulary is the sorted set of the
    characters of the text it was built from."""

    type = "char"

    def __init__(self, chars) -> None:
        chars = list(chars)
        if not chars:
            raise ValueError("CharTokenizer: the vocabulary is empty (built from an empty text?)")
        if any(not isinstance(c, str) or len(c) != 1 for c in chars):
            raise ValueError("CharTokenizer: every vocabulary entry must be a single character")
        if len(set(chars)) != len(chars):
            raise ValueError("CharTokenizer: the vocabulary has repeated characters")
        self.chars = sorted(chars)
        self.stoi = {c: i for i, c in enumerate(self.chars)}
        # Sorted code points let encode map a whole text with one searchsorted.
        self._codes = np.array([ord(c) for c in self.chars], dtype=np.uint32)

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        """The tokenizer whose vocabulary is every distinct character of ``text``, sorted."""
        if not text:
            raise ValueError("CharTokenizer.from_text: the text is empty")
        return cls(set(text))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        """Map each character to its id; raise ValueError naming unknown characters and where."""
        return self.encode_array(text).tolist()

    def encode_array(self, text: str) -> np.ndarray:
        """:meth:`encode` as an int64 NumPy array (fast for a whole corpus)."""
        if not text:
            return np.zeros(0, dtype=np.int64)
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        ids = np.searchsorted(self._codes, codes)
        ids_clipped = np.minimum(ids, len(self._codes) - 1)
        unknown = self._codes[ids_clipped] != codes
        if unknown.any():
            positions = np.flatnonzero(unknown)
            first = {}
            for pos in positions.tolist():
                first.setdefault(text[pos], pos)
                if len(first) == 5:
                    break
            listed = ", ".join(f"{c!r} (U+{ord(c):04X}) at position {p}" for c, p in first.items())
            more = len(set(codes[positions].tolist())) - len(first)
            raise ValueError(
                f"CharTokenizer.encode: unknown character {listed}"
                + (f" and {more} more" if more > 0 else "")
                + f"; the vocabulary has {self.vocab_size} characters from the text it was built "
                "from (build it from a text that contains these, or use a BPETokenizer, which "
                "encodes any string)"
            )
        return ids.astype(np.int64)

    def decode(self, ids) -> str:
        arr = self._check_ids(ids)
        return "".join([self.chars[i] for i in arr.tolist()])

    def to_dict(self) -> dict:
        return {"type": self.type, "version": _FORMAT_VERSION, "vocab": "".join(self.chars)}

    @classmethod
    def _from_dict(cls, d: dict) -> CharTokenizer:
        return cls(d["vocab"])

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"


# ---- byte-level BPE ------------------------------------------------------------------------------
# GPT-2's pre-tokenizer, written for the standard ``re`` module: contractions, runs of letters
# (with an optional leading space), runs of digits, runs of punctuation, whitespace. Merges never
# cross these chunk boundaries, and every character falls into exactly one chunk, so encoding
# chunk by chunk and concatenating loses nothing.
SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?[^\W\d]+| ?\d+| ?[^\s\w]+|\s+(?!\S)|\s+"""


def _utf8(text: str, where: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:
        ch = text[e.start]
        raise ValueError(
            f"{where}: the text holds an unpaired surrogate U+{ord(ch):04X} at position {e.start}, "
            "which has no UTF-8 encoding (it is half of a UTF-16 pair, usually from text decoded "
            "with errors='surrogateescape' or a broken JSON escape); clean the text first, e.g. "
            "text.encode('utf-8', 'replace').decode('utf-8')"
        ) from None


class BPETokenizer(Tokenizer):
    """Byte-level byte-pair encoding (as GPT-2): the base vocabulary is the 256 byte values, so
    any string encodes; :meth:`train` learns ``vocab_size - 256`` merges of frequent adjacent
    pairs within pre-tokenized chunks (:data:`SPLIT_PATTERN`).

    ``decode(encode(s)) == s`` for every string that UTF-8 can encode (every string without
    unpaired surrogates; those raise ValueError). ``decode`` of an arbitrary id sequence, e.g.
    a model's sample cut mid-character, replaces invalid UTF-8 with U+FFFD.
    """

    type = "bpe"

    def __init__(self, merges=(), pattern: str = SPLIT_PATTERN) -> None:
        self.merges: list[tuple[int, int]] = []
        self.pattern = pattern
        self._re = re.compile(pattern)
        self.vocab: list[bytes] = [bytes([i]) for i in range(256)]
        self.ranks: dict[tuple[int, int], int] = {}
        for a, b in merges:
            a, b = int(a), int(b)
            n = len(self.vocab)
            if not (0 <= a < n and 0 <= b < n):
                raise ValueError(f"BPETokenizer: merge {len(self.merges)} ({a}, {b}) refers to an id >= {n}")
            self.ranks[(a, b)] = n
            self.merges.append((a, b))
            self.vocab.append(self.vocab[a] + self.vocab[b])
        self._cache: dict[str, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @classmethod
    def train(cls, text: str, vocab_size: int, min_frequency: int = 2, pattern: str = SPLIT_PATTERN,
              verbose: bool = False) -> BPETokenizer:
        """Learn merges from ``text`` until the vocabulary has ``vocab_size`` tokens (256 bytes +
        merges), or until no adjacent pair occurs ``min_frequency`` times (then the vocabulary
        is smaller; ``vocab_size`` on the result says how big).

        Each merge picks the most frequent pair (ties: the smallest pair of ids, so training is
        deterministic). Chunks are counted once per distinct string, and pair counts are updated
        incrementally for only the chunks that contain the merged pair, so ~1 MB of text trains
        in seconds.
        """
        if vocab_size < 256:
            raise ValueError(f"BPETokenizer.train: vocab_size must be >= 256 (the byte alphabet), got {vocab_size}")
        if not text:
            raise ValueError("BPETokenizer.train: the text is empty")
        _utf8(text, "BPETokenizer.train")
        chunk_counts = Counter(re.findall(pattern, text))
        words: list[list[int]] = []
        freqs: list[int] = []
        for chunk, n in chunk_counts.items():
            words.append(list(chunk.encode("utf-8")))
            freqs.append(n)
        pair_counts: dict[tuple[int, int], int] = {}
        where: dict[tuple[int, int], set[int]] = {}
        for wi, w in enumerate(words):
            n = freqs[wi]
            for pair in zip(w, w[1:]):
                pair_counts[pair] = pair_counts.get(pair, 0) + n
                s = where.get(pair)
                if s is None:
                    where[pair] = {wi}
                else:
                    s.add(wi)
        # Max-heap of (-count, pair) with lazy deletion: an entry is current only if its count
        # still equals pair_counts[pair]; stale ones are skipped when popped.
        heap = [(-c, p) for p, c in pair_counts.items()]
        heapq.heapify(heap)
        merges: list[tuple[int, int]] = []
        next_id = 256
        while next_id < vocab_size and heap:
            neg, pair = heapq.heappop(heap)
            if pair_counts.get(pair, 0) != -neg:
                continue
            if -neg < min_frequency:
                break
            merges.append(pair)
            new_id = next_id
            next_id += 1
            a, b = pair
            touched: dict[tuple[int, int], int] = {}
            for wi in where.pop(pair, ()):
                w = words[wi]
                n = freqs[wi]
                # Merge every occurrence, left to right, and record the pair-count changes.
                out = []
                i = 0
                L = len(w)
                changed = False
                while i < L:
                    if i + 1 < L and w[i] == a and w[i + 1] == b:
                        out.append(new_id)
                        i += 2
                        changed = True
                    else:
                        out.append(w[i])
                        i += 1
                if not changed:
                    continue
                for p in zip(w, w[1:]):
                    touched[p] = touched.get(p, 0) - n
                for p in zip(out, out[1:]):
                    touched[p] = touched.get(p, 0) + n
                    if new_id in p:
                        s = where.get(p)
                        if s is None:
                            where[p] = {wi}
                        else:
                            s.add(wi)
                words[wi] = out
            for p, delta in touched.items():
                if delta == 0:
                    continue
                c = pair_counts.get(p, 0) + delta
                if c > 0:
                    pair_counts[p] = c
                    heapq.heappush(heap, (-c, p))
                else:
                    pair_counts.pop(p, None)
                    where.pop(p, None)
            pair_counts.pop(pair, None)
            if verbose and len(merges) % 100 == 0:
                print(f"merge {len(merges)}: {pair} -> {new_id} (count {-neg})")
        return cls(merges, pattern)

    def _encode_chunk(self, chunk: bytes) -> list[int]:
        ids = list(chunk)
        ranks = self.ranks
        while len(ids) >= 2:
            # The pair that was merged earliest in training is applied first, as in training.
            best = None
            best_rank = None
            for pair in zip(ids, ids[1:]):
                r = ranks.get(pair)
                if r is not None and (best_rank is None or r < best_rank):
                    best, best_rank = pair, r
            if best is None:
                break
            a, b = best
            out = []
            i = 0
            L = len(ids)
            while i < L:
                if i + 1 < L and ids[i] == a and ids[i + 1] == b:
                    out.append(best_rank)
                    i += 2
                else:
                    out.append(ids[i])
                    i += 1
            ids = out
        return ids

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (any string UTF-8 can encode)."""
        _utf8(text, "BPETokenizer.encode")
        cache = self._cache
        out: list[int] = []
        for chunk in self._re.findall(text):
            ids = cache.get(chunk)
            if ids is None:
                ids = self._encode_chunk(chunk.encode("utf-8"))
                if len(cache) < 200_000:
                    cache[chunk] = ids
            out.extend(ids)
        return out

    def encode_array(self, text: str) -> np.ndarray:
        """:meth:`encode` as an int64 NumPy array."""
        return np.asarray(self.encode(text), dtype=np.int64)

    def decode(self, ids) -> str:
        """The text of ``ids``; byte sequences that are not valid UTF-8 become U+FFFD."""
        arr = self._check_ids(ids)
        vocab = self.vocab
        return b"".join([vocab[i] for i in arr.tolist()]).decode("utf-8", errors="replace")

    def token_bytes(self, i: int) -> bytes:
        """The bytes token ``i`` stands for."""
        return self.vocab[i]

    def to_dict(self) -> dict:
        return {
            "type": self.type,
            "version": _FORMAT_VERSION,
            "pattern": self.pattern,
            "merges": [list(m) for m in self.merges],
        }

    @classmethod
    def _from_dict(cls, d: dict) -> BPETokenizer:
        return cls([tuple(m) for m in d["merges"]], d.get("pattern", SPLIT_PATTERN))

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)})"


_REGISTRY = {CharTokenizer.type: CharTokenizer, BPETokenizer.type: BPETokenizer}
