"""``tensorlite.debug.embeddings`` and ``tensorlite embeddings RUN_DIR``: the PCA projection against
hand-derived answers, t-SNE's wiring, finding the embedding in user-style models of both
frameworks, the HTML (offline, escaped) in a parser and in headless Chromium, and bad input."""

from __future__ import annotations

import html.parser
import sys
import types
from pathlib import Path

import numpy as np
import port
import pytest
import torch
from browser import chromium, console_errors
from runs import train_tiny

import tensorlite as tl
from tensorlite.cli import main
from tensorlite.debug import embeddings as E
from tensorlite.train import load_run

CORPUS = "".join(f"def f{i}(x):\n    return x < {i} & y > {i % 7}\n\n" for i in range(300))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("embeddings"), CORPUS)


def planar(n=40, dim=8, seed=0):
    """Points on a 2-D plane inside ``dim`` dimensions: PCA must recover their distances."""
    rng = np.random.default_rng(seed)
    plane = np.linalg.qr(rng.standard_normal((dim, 2)))[0]  # orthonormal columns
    flat = rng.standard_normal((n, 2)) * [3.0, 1.0]
    return flat @ plane.T + 5.0, flat


def pairwise(x):
    return np.linalg.norm(x[:, None] - x[None], axis=-1)


def test_pca_recovers_a_plane_and_its_distances():
    x, flat = planar()
    coords, info = E.project(x, "pca")
    assert info["method"] == "pca" and info["explained"] == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(pairwise(coords), pairwise(flat), atol=1e-9)
    # the first axis is the direction of largest spread (std 3 against 1), the signs are fixed
    assert coords[:, 0].std() > 2 * coords[:, 1].std()
    for j in range(2):
        assert coords[np.argmax(np.abs(coords[:, j])), j] > 0
    flipped, _ = E.project(-x, "pca")  # a mirrored cloud maps to the same picture
    np.testing.assert_allclose(flipped, coords, atol=1e-9)


def test_pca_explained_variance_is_the_share_of_the_top_two_singular_values():
    x = np.diag([4.0, 3.0, 2.0, 1.0])
    x = np.vstack([x, -x])  # centred already; singular values 4,3,2,1 (times sqrt 2)
    _, info = E.project(x, "pca")
    assert info["explained"] == pytest.approx((16 + 9) / 30)


def test_project_rejects_what_it_cannot_draw():
    with pytest.raises(ValueError, match="method must be one of pca, tsne, got 'umap'"):
        E.project(np.zeros((5, 3)), "umap")
    with pytest.raises(ValueError, match=r"need a \(vocab >= 3, dim >= 2\) matrix, got shape \(2, 3\)"):
        E.project(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="inf or nan"):
        E.project(np.full((4, 3), np.nan))


def test_tsne_needs_scikit_learn(monkeypatch):
    monkeypatch.setattr(E.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match="t-SNE needs scikit-learn: pip install scikit-learn, or use PCA"):
        E.project(planar()[0], "tsne")


def test_tsne_is_called_with_a_pca_start_the_seed_and_a_perplexity_that_fits(monkeypatch):
    calls = {}

    class FakeTSNE:
        def __init__(self, **kw):
            calls.update(kw)

        def fit_transform(self, x):
            return x[:, :2] * 2

    manifold = types.ModuleType("sklearn.manifold")
    manifold.TSNE = FakeTSNE
    sklearn = types.ModuleType("sklearn")
    sklearn.manifold = manifold
    monkeypatch.setitem(sys.modules, "sklearn", sklearn)
    monkeypatch.setitem(sys.modules, "sklearn.manifold", manifold)
    monkeypatch.setattr(E.importlib.util, "find_spec", lambda name: object())
    x = planar(n=16)[0]
    coords, info = E.project(x, "tsne", seed=5)
    assert calls == {"n_components": 2, "perplexity": 5.0, "init": "pca", "random_state": 5}
    np.testing.assert_allclose(coords, x[:, :2] * 2)
    assert info == {"method": "tsne", "perplexity": 5.0}
    with pytest.raises(ValueError, match=r"perplexity must be in \(0, 16\)"):
        E.project(x, "tsne", perplexity=20)


def test_the_embedding_is_found_in_models_of_both_frameworks():
    tl.manual_seed(0)
    gpt = tl.nn.GPT(tl.nn.GPTConfig(vocab_size=30, seq_len=8, d_model=16, n_layers=1, n_heads=2))
    np.testing.assert_array_equal(E.token_embedding(gpt), gpt.tok_emb.weight.numpy())
    for fw in ("torch", "tensorlite"):
        mod = port.nanogpt_style(fw)
        model = mod.GPT(mod.GPTConfig(vocab_size=30, block_size=8, n_layer=1, n_head=2, n_embd=16))
        w = E.token_embedding(model)  # transformer.wte (tied to lm_head), not wpe
        assert w.shape == (30, 16) and w.dtype == np.float64
        np.testing.assert_allclose(w, np.asarray(model.transformer.wte.weight.detach().numpy(), dtype=np.float64))

    class TwoTables(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Embedding(30, 4), torch.nn.Embedding(30, 4)

    with pytest.raises(ValueError, match="cannot tell which embedding holds the tokens.*a, b"):
        E.token_embedding(TwoTables(), 30)

    class HF(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(7, 3)

        def get_input_embeddings(self):
            return self.emb

    assert E.token_embedding(HF()).shape == (7, 3)


def test_labels_make_whitespace_and_control_characters_visible():
    class Tok:
        vocab_size = 6

        def decode(self, ids):
            return ["a", " ", "\n", "\x07", "", "<&>"][ids[0]]

    assert E.token_labels(Tok()) == ["a", "␣", "⏎", "\\x07", "∅", "<&>"]


class Scan(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.attrs, self.texts = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend(attrs)

    def handle_data(self, data):
        self.texts.append(data)


def test_the_page_is_offline_and_escapes_every_label():
    labels = ["<script>alert(1)</script>", 'say "hi"', "a&b", "x"]
    page = E.embedding_map_html(np.arange(8.0).reshape(4, 2), labels, title="T <1>", subtitle="s & t")
    scan = Scan()
    scan.feed(page)
    assert scan.attrs.count(("class", "pt")) == 4 and scan.tags.count("script") == 1  # ours, inline
    assert not any(name in ("src", "href") for name, _ in scan.attrs)
    assert "http" not in page and "<link" not in page and "@import" not in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    tips = [v for name, v in scan.attrs if name == "data-tip"]
    assert tips == [f"{i}: {label}" for i, label in enumerate(labels)]  # unescaped by the parser: exact text
    assert "T &lt;1&gt;" in page and "s &amp; t" in page
    with pytest.raises(ValueError, match="do not match 3 labels"):
        E.embedding_map_html(np.zeros((4, 2)), labels[:3])


def test_the_command_writes_the_map(run_dir, capsys):
    assert main(["embeddings", str(run_dir)]) == 0
    out = capsys.readouterr().out.strip()
    page = (run_dir / "embeddings.html").read_text()
    vocab = len(set(CORPUS))
    assert out.startswith(f"wrote {run_dir}/embeddings.html ({vocab} tokens, PCA, ") and out.endswith("of the variance)")
    assert page.count('<g class="pt"') == vocab
    assert "&lt;" in page and "&amp;" in page  # the corpus's '<' and '&' tokens, escaped
    target = run_dir / "map.html"
    assert main(["embeddings", str(run_dir), "--out", str(target), "--method", "pca"]) == 0
    assert target.is_file()


def test_bad_input_is_one_line_exit_2(run_dir, tmp_path, capsys, monkeypatch):
    assert main(["embeddings", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0] and err[0].startswith("tensorlite embeddings: error:")
    monkeypatch.setattr(E.importlib.util, "find_spec", lambda name: None)
    assert main(["embeddings", str(run_dir), "--method", "tsne"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["tensorlite embeddings: error: t-SNE needs scikit-learn: pip install scikit-learn, "
                   "or use PCA (method='pca', --method pca)"]
    assert main(["embeddings", str(run_dir), "--out", str(tmp_path / "no" / "dir" / "x.html")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.browser
def test_the_map_renders_and_hovers_in_headless_chromium(run_dir):
    model, tokenizer, _ = load_run(run_dir)
    path = E.embedding_map(model, tokenizer, run_dir / "b.html")["path"]
    with chromium(1100, 900) as drv:
        from selenium.webdriver.common.action_chains import ActionChains

        drv.get(Path(path).as_uri())
        points = drv.find_elements("css selector", "g.pt")
        assert len(points) == len(set(CORPUS))
        box = drv.find_element("css selector", "svg.map").rect
        assert box["width"] > 800 and box["height"] > 600
        target = next(p for p in points if p.get_attribute("data-tip").endswith(": <"))
        ActionChains(drv).move_to_element(target.find_element("css selector", "circle")).perform()
        tip = drv.find_element("id", "tip")
        assert tip.is_displayed() and tip.text == target.get_attribute("data-tip")
        assert console_errors(drv) == []
