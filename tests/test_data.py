"""Corpora (files, folders, the stdlib default) and the TokenBatcher."""

import json

import numpy as np
import pytest

import tensorlite as tl
from tensorlite import data
from tensorlite.data import TokenBatcher


# ---- corpora ------------------------------------------------------------------------------------
def test_load_corpus_file_and_folder(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "z.txt").write_text("zzz", encoding="utf-8")
    (tmp_path / "a.md").write_text("# ä\n", encoding="utf-8")
    (tmp_path / "b" / "c.py").write_text("x = 1\n", encoding="utf-8")
    (tmp_path / "skip.bin").write_bytes(b"\xff\xfe")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD.txt").write_text("hidden", encoding="utf-8")
    assert data.load_corpus(tmp_path / "a.md") == "# ä\n"
    assert [f.name for f in data.corpus_files(tmp_path)] == ["a.md", "c.py", "z.txt"]
    assert data.load_corpus(tmp_path) == "# ä\nx = 1\nzzz\n"
    assert data.load_corpus(tmp_path, extensions=(".txt",)) == "zzz"


def test_load_corpus_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="corpus path not found: .*missing.txt"):
        data.load_corpus(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(ValueError, match="the file .*empty.txt' is empty"):
        data.load_corpus(tmp_path / "empty.txt")
    (tmp_path / "sub").mkdir()
    with pytest.raises(ValueError, match=r"no non-empty \*.txt/\*.py/\*.md files under"):
        data.load_corpus(tmp_path / "sub")
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("café".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1.txt' is not valid UTF-8 \(byte 0xe9 at offset 3\).*errors='replace'"):
        data.load_corpus(bad)
    assert data.load_corpus(bad, errors="replace") == "caf\ufffd"


def test_default_corpus_is_deterministic_and_capped():
    a = data.default_corpus(50_000)
    assert len(a) == 50_000 and a == data.default_corpus(50_000)
    assert "def " in a and "import" in a
    big = data.default_corpus(200_000)
    assert big.startswith(a[:40_000])
    info = data.describe_default_corpus(50_000)
    assert info["chars"] == 50_000 and info["files"] >= 1
    assert info["first_file"] == "__future__.py"
    assert "test/" not in info["last_file"] and "site-packages" not in info["stdlib"]
    assert info["summary"].startswith("50,000 characters of Python")
    with pytest.raises(ValueError, match="max_chars must be > 0"):
        data.default_corpus(0)


def test_default_corpus_excludes_tests_and_site_packages():
    from tensorlite.data import corpus

    files = corpus._stdlib_files()
    parts = {part for f in files for part in f.parts}
    assert "test" not in parts and "tests" not in parts and "site-packages" not in parts
    assert len(files) > 100


# ---- batching -----------------------------------------------------------------------------------
def test_batches_shift_by_exactly_one():
    tokens = np.arange(1000) * 7 % 997  # distinct values, so positions are recoverable
    b = TokenBatcher(tokens, seq_len=16, batch_size=8, val_fraction=0.1, seed=0)
    assert (b.n_train, b.n_val) == (900, 100)
    for split, lo, hi in (("train", 0, 900), ("val", 900, 1000)):
        x, y = b.get_batch(split)
        assert x.shape == y.shape == (8, 16) and x.dtype == y.dtype == np.int64
        xs, ys = x.numpy(), y.numpy()
        np.testing.assert_array_equal(ys[:, :-1], xs[:, 1:])
        starts = np.array([np.flatnonzero(tokens == v)[0] for v in xs[:, 0]])
        assert np.all((starts >= lo) & (starts + 17 <= hi))  # windows never cross the split
        for row, s in zip(range(8), starts):
            np.testing.assert_array_equal(xs[row], tokens[s:s + 16])
            np.testing.assert_array_equal(ys[row], tokens[s + 1:s + 17])


def test_batches_cover_the_whole_split():
    tokens = np.arange(40)
    b = TokenBatcher(tokens, seq_len=4, batch_size=64, val_fraction=0.0)
    firsts, lasts = set(), set()
    for _ in range(20):
        x, y = b.get_batch()
        firsts.update(x.numpy()[:, 0].tolist())
        lasts.update(y.numpy()[:, -1].tolist())
    assert firsts == set(range(36)) and max(lasts) == 39
    with pytest.raises(ValueError, match="no 'val' split"):
        b.get_batch("val")


def test_seeds_reproduce_and_differ():
    tokens = np.arange(5000)
    a, b, c = (TokenBatcher(tokens, 8, 4, seed=s) for s in (1, 1, 2))
    for _ in range(3):
        xa, xb, xc = a.get_batch()[0].numpy(), b.get_batch()[0].numpy(), c.get_batch()[0].numpy()
        np.testing.assert_array_equal(xa, xb)
    assert not np.array_equal(xa, xc)


def test_eval_does_not_perturb_training_batches():
    tokens = np.arange(5000)
    a, b = TokenBatcher(tokens, 8, 4), TokenBatcher(tokens, 8, 4)
    for i in range(5):
        if i % 2:
            a.get_batch("val")
        np.testing.assert_array_equal(a.get_batch("train")[0].numpy(), b.get_batch("train")[0].numpy())


def test_state_dict_resume_reproduces_the_sequence():
    tokens = np.random.default_rng(0).integers(0, 50, 3000)
    a = TokenBatcher(tokens, 12, 5, seed=3)
    for _ in range(4):
        a.get_batch()
        a.get_batch("val")
    state = json.loads(json.dumps(a.state_dict()))  # survives JSON
    expected = [a.get_batch(s)[1].numpy() for s in ("train", "val", "train")]
    b = TokenBatcher(tokens, 12, 5, seed=3)
    b.load_state_dict(state)
    got = [b.get_batch(s)[1].numpy() for s in ("train", "val", "train")]
    for e, g in zip(expected, got):
        np.testing.assert_array_equal(e, g)
    assert b.batches_drawn == {"train": 6, "val": 5}
    with pytest.raises(ValueError, match="n_tokens=3000, this one has 2999"):
        TokenBatcher(tokens[:-1], 12, 5).load_state_dict(state)


def test_too_short_corpus_says_how_many_tokens_are_needed():
    with pytest.raises(ValueError, match=r"each split needs at least seq_len \+ 1 = 65 tokens, i.e. at least 646 tokens"):
        TokenBatcher(np.arange(300), seq_len=64, batch_size=2, val_fraction=0.1)
    with pytest.raises(ValueError, match="at least 65 tokens in all"):
        TokenBatcher(np.arange(64), seq_len=64, batch_size=2, val_fraction=0.0)
    TokenBatcher(np.arange(65), seq_len=64, batch_size=2, val_fraction=0.0)  # exactly enough
    TokenBatcher(np.arange(646), seq_len=64, batch_size=2, val_fraction=0.1)  # as the message says
    with pytest.raises(ValueError, match="too short"):
        TokenBatcher(np.arange(645), seq_len=64, batch_size=2, val_fraction=0.1)


def test_input_validation():
    with pytest.raises(ValueError, match="1-D"):
        TokenBatcher(np.zeros((4, 4), dtype=int), 2, 2)
    with pytest.raises(TypeError, match="integers"):
        TokenBatcher(np.zeros(100), 2, 2)
    with pytest.raises(ValueError, match="split must be 'train' or 'val'"):
        TokenBatcher(np.arange(100), 2, 2).get_batch("test")
    x, _ = TokenBatcher(tl.arange(100), 2, 2).get_batch()  # a Tensor or a list works too
    assert x.shape == (2, 2)
    assert TokenBatcher(list(range(100)), 2, 3).get_batch()[0].shape == (3, 2)


def test_tokenizer_to_batches_end_to_end():
    text = data.default_corpus(20_000)
    tok = data.CharTokenizer.from_text(text)
    b = TokenBatcher(tok.encode(text), seq_len=32, batch_size=2)
    x, y = b.get_batch()
    assert tok.decode(x.numpy()[0])[1:] == tok.decode(y.numpy()[0])[:-1]


@pytest.mark.gpu
@pytest.mark.skipif(not tl.cuda_available(), reason="needs CuPy and a CUDA device")
def test_batches_on_gpu():
    b = TokenBatcher(np.arange(1000), 16, 4, device="cuda")
    c = TokenBatcher(np.arange(1000), 16, 4)
    x, y = b.get_batch()
    assert x.device.type == "cuda" and y.device.type == "cuda"
    np.testing.assert_array_equal(x.numpy(), c.get_batch()[0].numpy())
