"""``tensorlite bench``: the benchmarks print their tables, refuse wrong kernels and bad input."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tensorlite as tl
from tensorlite.benchmarks import matmul as matmul_bench
from tensorlite.cli import main

ROOT = Path(__file__).resolve().parents[1]
ROW = re.compile(r"^\s*(\d+)  (\S+(?: \S+)?)\s+([\d.e+-]+)\s+([\d.e+-]+)\s+([\d.e+-]+)\s+([\d.e+-]+)$")


def _rows(text):
    """(N, kernel, median GFLOP/s, median ratio) for each table row."""
    return [(int(m[1]), m[2], float(m[3]), float(m[4]))
            for m in map(ROW.match, text.splitlines()) if m]


def test_matmul_table_has_every_kernel_at_every_size(capsys):
    assert main(["bench", "matmul", "--sizes", "40", "130", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    rows = _rows(out)
    assert [(n, k) for n, k, _, _ in rows] == [
        (40, "numpy BLAS"), (40, "blocked_parallel"), (40, "blocked"), (40, "naive"),
        (130, "numpy BLAS"), (130, "blocked_parallel"), (130, "blocked")]  # naive only up to 128
    assert all(gflops > 0 for _, _, gflops, _ in rows)
    assert [ratio for _, k, _, ratio in rows if k == "numpy BLAS"] == [1.0, 1.0]
    advice = out.strip().splitlines()[-1]
    kernel = re.search(r"tl\.kernels\.use\('(\w+)'\)", advice)[1]
    assert advice.startswith("fastest at N=130:") and kernel in tl.kernels.available()


def test_matmul_bench_refuses_a_wrong_kernel(monkeypatch, capsys):
    monkeypatch.setattr(matmul_bench, "matmul_blocked", lambda a, b: (a @ b) * 1.001)
    assert main(["bench", "matmul", "--sizes", "32", "--rounds", "1"]) == 2
    assert "blocked at N=32: relative error 1.00e-03 against BLAS" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["matmul", "--sizes", "64", "0"], "--sizes must all be positive, got [64, 0]"),
    (["matmul", "--rounds", "0"], "--rounds must be at least 1, got 0"),
    (["autograd", "--chain", "mul,cube"], "--chain: unknown op kind(s) ['cube']"),
    (["autograd", "--ops", "2"], "--ops must be at least the chain's length 3, got 2"),
    (["autograd", "--repeats", "0"], "--size and --repeats must be positive, got 64 and 0"),
])
def test_bad_input_is_one_line_and_exit_code_2(args, message, capsys):
    assert main(["bench", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tensorlite bench: error: ") and message in err
    assert err.count("\n") == 1


@pytest.mark.skipif(tl.cuda_available(), reason="checks the error shown when there is no GPU")
def test_matmul_on_cuda_without_a_gpu_says_why(capsys):
    assert main(["bench", "matmul", "--device", "cuda", "--sizes", "16"]) == 2
    assert "device 'cuda' requested but" in capsys.readouterr().err


@pytest.mark.gpu
def test_matmul_on_cuda_compares_the_tiled_kernel_with_cublas(capsys):
    assert main(["bench", "matmul", "--device", "cuda", "--sizes", "256", "--rounds", "1"]) == 0
    kernels = [k for _, k, _, _ in _rows(capsys.readouterr().out)]
    assert kernels == ["cuBLAS", "tiled RawKernel"]


def test_autograd_compares_with_pytorch_on_the_same_chain(capsys):
    assert main(["bench", "autograd", "--ops", "30", "--repeats", "3"]) == 0
    out = capsys.readouterr().out
    assert "chain: 30 ops (mul, add, tanh) + sum on 64x64 float32" in out
    rows = {line.split()[0]: [float(v) for v in line.split()[1:]]
            for line in out.splitlines() if line.startswith(("tensorlite ", "pytorch "))}
    assert set(rows) == {"tensorlite", "pytorch"}
    assert all(median >= best > 0 for median, best in rows.values())
    ratio = float(re.search(r"ratio tensorlite/pytorch: ([\d.]+)x \(median\)", out)[1])
    assert ratio == pytest.approx(rows["tensorlite"][0] / rows["pytorch"][0], abs=0.01)


def test_autograd_without_pytorch_prints_tensorlite_alone(monkeypatch, capsys):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else real_find_spec(name, *a))
    assert main(["bench", "autograd", "--ops", "9", "--repeats", "2", "--chain", "mul,tanh,sub"]) == 0
    out = capsys.readouterr().out
    assert "PyTorch not installed" in out and "ratio" not in out
    assert [line.split()[0] for line in out.splitlines()[2:]] == ["tensorlite"]


def test_the_bench_scripts_run_the_same_code():
    for script, args in (("matmul.py", ["--sizes", "24", "--rounds", "1"]),
                         ("autograd_overhead.py", ["--ops", "6", "--repeats", "2"])):
        done = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "load average before" in done.stdout
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "matmul.py"), "--rounds", "0"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--rounds must be at least 1" in done.stderr


@pytest.mark.parametrize("entry", ["tensorlite", "tensorlite.cli"])
def test_bad_input_through_python_dash_m_is_one_line(entry):
    # `python -m tensorlite.cli` runs cli.py as __main__: its error must still be caught
    done = subprocess.run([sys.executable, "-m", entry, "bench", "matmul", "--rounds", "0"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr == "tensorlite bench: error: --rounds must be at least 1, got 0\n"


def test_results_are_returned_for_callers(capsys):
    class Args:
        sizes, rounds, device = [16], 1, "cpu"

    results = matmul_bench.run(Args)
    assert list(results) == [16]
    assert list(results[16]) == ["numpy BLAS", "blocked_parallel", "blocked", "naive"]
    assert np.isfinite(list(results[16].values())).all()
