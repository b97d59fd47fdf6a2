"""Attention maps: one offline HTML page of heatmaps per layer and head, through the capture; a
leaking causal mask fills the upper triangle, a healthy model leaves it empty."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from browser import chromium, console_errors
from user_models import tl_lm, torch_lm

import tensorlite as tl
from tensorlite import faults, nn
from tensorlite.cli import main as cli_main
from tensorlite.debug.attention_maps import attention_maps, head_maps, render_attention_maps
from tensorlite.debug.view import model_view
from tensorlite.train import TrainConfig, train

CFG = dict(vocab_size=40, seq_len=16, d_model=32, n_layers=2, n_heads=4)
IDS = list(range(3, 15))


def _gpt(*names):
    tl.manual_seed(0)
    return faults.inject(nn.GPT(nn.GPTConfig(**CFG)), *names)


def _future_cells(page: str) -> int:
    return page.count('<rect class="f"')


@pytest.mark.parametrize("make", [
    lambda: _gpt(),
    lambda: tl_lm.build()["model"],
    lambda: torch_lm.build()["model"],
    lambda: torch_lm.build(attn="manual")["model"],
], ids=["nn.GPT", "tl_lm", "torch_lm-sdpa", "torch_lm-softmax"])
def test_a_healthy_model_leaves_the_upper_triangle_empty(make):
    page = render_attention_maps(make(), IDS)
    assert _future_cells(page) == 0
    assert 'data-ahead="0"' in page and "No head puts weight on a later token" in page
    assert page.count('<figure class="head"') == 2 * 4  # 2 layers x 4 heads, each its own map


@pytest.mark.parametrize("make", [
    lambda: _gpt("causal_mask_open"),
    lambda: tl_lm.build("causal_mask_open")["model"],
    lambda: torch_lm.build("causal_mask_open")["model"],
    lambda: tl_lm.build("mask_fill_zero")["model"],
], ids=["nn.GPT", "tl_lm", "torch_lm", "tl_lm-fill-zero"])
def test_a_leaking_mask_fills_the_upper_triangle(make):
    page = render_attention_maps(make(), IDS)
    T = len(IDS)
    assert _future_cells(page) > T  # red cells above the diagonal, in every map
    assert 'data-ahead="8"' in page and "8 of 8 heads put weight on later tokens" in page
    assert page.count('<figure class="head leak"') == 8
    # an encoder may attend ahead: said so, not called a leak
    calm = render_attention_maps(make(), IDS, causal=False)
    assert "leaking mask" not in calm and "not causal" in calm


def test_cells_carry_the_captured_weight_and_labels_are_escaped():
    model = _gpt()
    labels = ["<script>", "&", '"q"', " ", "\n"] + [f"t{i}" for i in IDS[5:]]
    page = render_attention_maps(model, IDS, labels)
    assert "<script" not in page  # no script of ours, and the label's is escaped
    assert "&lt;script&gt;" in page and "&amp;" in page and "\u2423" in page and "\u23ce" in page
    (layer, w), *_ = head_maps(model, IDS)
    assert layer == "blocks.0" and w.shape == (4, len(IDS), len(IDS))
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-5)
    tips = re.findall(r"query (\d+) .*? key (\d+) .*?: ([0-9.]+)</title>", page)
    assert tips, "no hover values"
    q, k, v = tips[0]
    assert float(v) == pytest.approx(w[0, int(q), int(k)], abs=5e-4)


def test_errors_say_what_is_wrong(tmp_path):
    with pytest.raises(ValueError, match="at least 2 tokens"):
        render_attention_maps(_gpt(), [3])
    with pytest.raises(ValueError, match="3 labels for 12 tokens"):
        render_attention_maps(_gpt(), IDS, ["a", "b", "c"])
    out = attention_maps(model_view(_gpt()), IDS, tmp_path / "sub" / "a.html")
    assert out.is_file() and out.read_text().startswith("<!DOCTYPE html>")


# ------------------------------------------------------------------------------------------------
# the command
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def leaky_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("attn")
    cfg = TrainConfig().replace(seq_len=16, d_model=32, n_layers=2, n_heads=4, steps=3, batch_size=4, warmup=1,
                                eval_interval=0, ckpt_interval=0, corpus_max_chars=20_000, progress=False,
                                out_dir=str(out), name="leaky", faults=("causal_mask_open",))
    from tensorlite.debug import WriteDashboard

    return train(cfg, callbacks=[WriteDashboard()]).run_dir


def test_the_command_on_a_run_dir_and_the_dashboard_link(leaky_run, capsys):
    assert 'href="attention.html"' not in (leaky_run / "dashboard.html").read_text()
    assert cli_main(["attention", str(leaky_run), "--prompt", "def f(x):"]) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and "updated" in out
    page = (leaky_run / "attention.html").read_text()
    assert _future_cells(page) > 0 and "def" not in page.split('class="prompt">')[0]
    assert 'class="prompt">def f(x):' in page
    assert 'href="attention.html"' in (leaky_run / "dashboard.html").read_text()


def test_the_command_with_a_torch_factory(tmp_path, capsys):
    factory = tmp_path / "mymodel.py"
    factory.write_text("from user_models import torch_lm\n\n\ndef make():\n"
                       "    parts = torch_lm.build('causal_mask_open')\n"
                       "    return parts['model'], parts['optimizer']\n")
    out = tmp_path / "maps.html"
    assert cli_main(["attention", "--model", f"{factory}:make", "--tokens", "3 4 5 6 7 8", "--out", str(out)]) == 0
    assert _future_cells(out.read_text()) > 0


@pytest.mark.parametrize("argv, message", [
    ([], "give a run directory or --model"),
    (["runs/x", "--model", "m.py:f"], "give a run directory or --model"),
    (["--model", "nope.py:f", "--tokens", "1 2"], "no such file nope.py"),
    (["--model", "m:f", "--prompt", "hi"], "cannot import m"),
    (["--model", "tensorlite.nn:GPT", "--prompt", "hi"], "the factory raised"),
    (["--model", "tensorlite:__version__", "--tokens", "1 2"], "is not callable"),
    (["--model", "x", "--tokens", "1 2"], "expected MODULE:FACTORY"),
    (["--model", "m.py:f"], "give --prompt TEXT or --tokens IDS"),
    (["--model", "m.py:f", "--tokens", "1 two"], "expected integers"),
    (["--model", "m.py:f", "--tokens", "1 2", "--max-tokens", "1"], "--max-tokens must be >= 2"),
    (["no/such/run", "--prompt", "hi"], "does not exist"),
])
def test_command_errors_are_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli_main(["attention", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_prompt_needs_a_tokenizer_with_model(tmp_path, capsys, leaky_run):
    factory = tmp_path / "m.py"
    factory.write_text("from user_models import tl_lm\n\n\ndef make():\n    return tl_lm.build()['model']\n")
    assert cli_main(["attention", "--model", f"{factory}:make", "--prompt", "hi", "--out", str(tmp_path / "a.html")]) == 2
    assert "pass --tokenizer PATH or give --tokens IDS" in capsys.readouterr().err
    assert cli_main(["attention", "--model", f"{factory}:make", "--tokens", "3 99", "--out", str(tmp_path / "a.html")]) == 2
    assert "token id 99 is outside the model's vocabulary (0..47)" in capsys.readouterr().err
    # a run's tokenizer for a model made by a factory: the labels are its tokens
    factory.write_text(f"from tensorlite.train import load_run\n\n\ndef make():\n    return load_run({str(leaky_run)!r})[0]\n")
    out = tmp_path / "b.html"
    assert cli_main(["attention", "--model", f"{factory}:make", "--prompt", "abc", "--tokenizer", str(leaky_run),
                     "--out", str(out)]) == 0
    assert '>a</text>' in out.read_text() and _future_cells(out.read_text()) > 0


# ------------------------------------------------------------------------------------------------
# a real browser
# ------------------------------------------------------------------------------------------------
@pytest.mark.browser
def test_the_page_renders_in_headless_chromium(tmp_path):
    path = attention_maps(_gpt("causal_mask_open"), IDS, tmp_path / "a.html", labels=list("hello world!"))
    with chromium() as drv:
        drv.get(Path(path).as_uri())
        figs = drv.find_elements("css selector", "figure.head")
        assert len(figs) == 8
        svg = figs[0].find_element("css selector", "svg.map")
        assert svg.rect["width"] > 150 and svg.rect["height"] > 150
        # a red cell lies right of the diagonal: its key column is after its query row
        cells = svg.find_elements("css selector", "rect.f")
        box, origin = cells[0].rect, svg.find_element("css selector", "polygon.ahead").rect
        assert box["x"] - origin["x"] > box["y"] - origin["y"] - 1
        assert drv.find_element("id", "verdict").get_attribute("data-ahead") == "8"
        assert console_errors(drv) == []
