"""Character and byte-level BPE tokenizers: round trips (hypothesis), errors, training, files."""

import json
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tensorlite as tl
from tensorlite import data
from tensorlite.data import BPETokenizer, CharTokenizer, load_tokenizer


@pytest.fixture(scope="module")
def bpe():
    text = data.default_corpus(60_000) + "héllo wörld ünïcode ✓ 日本語のテキスト 🙂🙂 naïve café\n" * 20
    return BPETokenizer.train(text, 600)


# ---- characters -----------------------------------------------------------------------------------
def test_char_vocab_is_sorted_and_round_trips():
    tok = CharTokenizer.from_text("hello world")
    assert tok.chars == [" ", "d", "e", "h", "l", "o", "r", "w"] and tok.vocab_size == 8 == len(tok)
    assert tok.encode("hello") == [3, 2, 4, 4, 5]
    assert tok.decode(tok.encode("world hello")) == "world hello"
    assert tok.encode("") == [] and tok.decode([]) == ""
    assert tok.decode(tl.tensor([3, 2])) == "he" and tok.decode(np.array([5])) == "o"


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=1))
def test_char_round_trip_any_text(s):
    tok = CharTokenizer.from_text(s)
    assert tok.decode(tok.encode(s)) == s
    ids = tok.encode(s)
    assert all(0 <= i < tok.vocab_size for i in ids)


def test_char_unknown_character_names_it_and_its_position():
    tok = CharTokenizer.from_text("abc")
    with pytest.raises(ValueError, match=r"unknown character 'z' \(U\+007A\) at position 2"):
        tok.encode("abzab")
    with pytest.raises(ValueError, match=r"'x' .* at position 0, '🙂' \(U\+1F642\) at position 2"):
        tok.encode("xa🙂x")


def test_char_decode_out_of_range():
    tok = CharTokenizer.from_text("ab")
    with pytest.raises(ValueError, match="id 7 at position 1 is out of range for a vocabulary of 2"):
        tok.decode([0, 7])
    with pytest.raises(ValueError, match="empty"):
        CharTokenizer.from_text("")


def test_char_save_load(tmp_path):
    tok = CharTokenizer.from_text("zebra\ud800 🙂\n\t")  # even a lone surrogate survives the file
    path = tmp_path / "tok.json"
    tok.save(path)
    assert json.loads(path.read_text())["type"] == "char"
    for loaded in (CharTokenizer.load(path), load_tokenizer(path), data.Tokenizer.load(path)):
        assert isinstance(loaded, CharTokenizer) and loaded.chars == tok.chars


# ---- BPE --------------------------------------------------------------------------------------------
def test_bpe_learns_merges_that_shorten_text(bpe):
    text = data.default_corpus(200_000)[100_000:130_000]  # text the tokenizer did not train on
    n_bytes = len(text.encode("utf-8"))
    ids = bpe.encode(text)
    assert bpe.vocab_size == 600 and len(bpe.merges) == 344
    assert len(ids) < 0.6 * n_bytes
    assert bpe.decode(ids) == text
    # Merged tokens are the concatenation of their parts; the first merges are frequent pairs.
    for k, (a, b) in enumerate(bpe.merges[:50]):
        assert bpe.token_bytes(256 + k) == bpe.token_bytes(a) + bpe.token_bytes(b)
    assert b"    " in {bpe.token_bytes(256 + k) for k in range(30)}  # Python's indentation


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_bpe_round_trip_any_unicode(bpe, s):
    ids = bpe.encode(s)
    assert bpe.decode(ids) == s
    assert all(0 <= i < bpe.vocab_size for i in ids)


@pytest.mark.parametrize("s", ["", "🙂", "👩‍👩‍👧‍👦 family", "e\u0301", "\x00\r\n\t", "日本語", "a" * 1000, "'ll've 1234567"])
def test_bpe_round_trip_examples(bpe, s):
    assert bpe.decode(bpe.encode(s)) == s


def test_bpe_unpaired_surrogate_is_a_clear_error(bpe):
    with pytest.raises(ValueError, match=r"unpaired surrogate U\+D83D at position 2.*no UTF-8 encoding"):
        bpe.encode("ab\ud83d")
    with pytest.raises(ValueError, match="unpaired surrogate"):
        BPETokenizer.train("x\udc80y", 300)


def test_bpe_decode_partial_utf8_replaces(bpe):
    ids = bpe.encode("🙂")
    partial = [i for i in ids if i < 256][:1] or [0xF0]
    assert bpe.decode([0xF0]) == "\ufffd"
    assert isinstance(bpe.decode(partial), str)
    with pytest.raises(ValueError, match="out of range for a vocabulary of 600"):
        bpe.decode([600])


def test_bpe_training_is_deterministic_and_matches_encoding():
    text = "low lower lowest newer wider low low " * 30
    a, b = BPETokenizer.train(text, 280), BPETokenizer.train(text, 280)
    assert a.merges == b.merges
    assert a.token_bytes(256) in (b" l", b"lo", b"ow", b"er", b"we")
    # The encoding of the training text uses the learned tokens: " low" is one token.
    assert len(a.encode(" low")) == 1


def test_bpe_stops_when_no_pair_repeats():
    tok = BPETokenizer.train("abcabc", 1000)
    assert tok.vocab_size < 1000 and tok.decode(tok.encode("abcabc")) == "abcabc"
    assert len(tok.encode("abc")) == 1
    with pytest.raises(ValueError, match="vocab_size must be >= 256"):
        BPETokenizer.train("abc", 100)


def test_bpe_save_load(bpe, tmp_path):
    path = tmp_path / "bpe.json"
    bpe.save(path)
    loaded = load_tokenizer(path)
    assert isinstance(loaded, BPETokenizer) and loaded.merges == bpe.merges
    s = "def f(x):\n    return x  # ✓\n"
    assert loaded.encode(s) == bpe.encode(s)
    with pytest.raises(ValueError, match="describes a 'bpe' tokenizer, not 'char'.*load_tokenizer"):
        CharTokenizer.load(path)


def test_load_tokenizer_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_tokenizer(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"type": "wordpiece"}')
    with pytest.raises(ValueError, match=r"unknown tokenizer type 'wordpiece'; known types: \['bpe', 'char'\]"):
        load_tokenizer(bad)
    bad.write_text("not json")
    with pytest.raises(ValueError, match="not a tokenizer file"):
        load_tokenizer(bad)


def test_bpe_trains_fast_on_a_megabyte():
    text = data.default_corpus(1_000_000)
    t0 = time.perf_counter()
    tok = BPETokenizer.train(text, 1024)
    elapsed = time.perf_counter() - t0
    assert tok.vocab_size == 1024
    assert elapsed < 20.0, f"training took {elapsed:.1f} s"


def test_bpe_applies_merges_in_the_order_they_were_learned():
    # "abc" can merge a+b or b+c first; the earlier-learned merge must win, wherever it sits
    a, b, c = (ord(ch) for ch in "abc")
    ab_first = data.BPETokenizer(merges=[(a, b), (b, c)])
    bc_first = data.BPETokenizer(merges=[(b, c), (a, b)])
    assert ab_first.encode("abc") == [256, c]
    assert bc_first.encode("abc") == [a, 256]
    # the priority is the rank, not the position: in "bcab" the earlier merge (a, b) applies at
    # position 2 while (b, c) at position 0 waits for it, and both end merged
    assert ab_first.encode("bcab") == [257, 256]
    # a merge of merges applies only once its parts exist: (a, b) -> 256, then (256, c) -> 257
    nested = data.BPETokenizer(merges=[(a, b), (256, c)])
    assert nested.encode("abcab") == [257, 256]
    with pytest.raises(ValueError, match=r"merge 0 \(256, 99\) refers to an id >= 256"):
        data.BPETokenizer(merges=[(256, c), (a, b)])  # a merge may only use ids learned before it
    for tok in (ab_first, bc_first, nested):
        assert tok.decode(tok.encode("abcabc")) == "abcabc"
