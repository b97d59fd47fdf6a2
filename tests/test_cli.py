"""``tensorlite train`` and ``tensorlite generate``: a smoke run, Ctrl-C, and every bad input as one
line on stderr with exit code 2 and nothing overwritten."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from runs import TINY

from tensorlite.cli import main

CORPUS = "".join(f"def f{i}(x):\n    return x * {i} + {i % 7}\n\n" for i in range(400))


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(CORPUS)
    return str(path)


def run_cli(*args):
    """The CLI in a subprocess, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "tensorlite", *args], capture_output=True, text=True,
                          timeout=120)


def tree_digest(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def assert_user_error(rc, err, *needles):
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.fixture
def trained(tmp_path, corpus):
    """A finished tiny run (made in-process: faster than a subprocess)."""
    rc = main(["train", *TINY, "--steps", "12", "--corpus", corpus, "--out", str(tmp_path / "runs"),
               "--name", "tiny", "--quiet"])
    assert rc == 0
    return tmp_path / "runs" / "tiny"


# ------------------------------------------------------------------------------------------------
# the happy path
# ------------------------------------------------------------------------------------------------
def test_train_then_generate_smoke(tmp_path, corpus):
    out = tmp_path / "runs"
    r = run_cli("train", *TINY, "--steps", "20", "--corpus", corpus, "--out", str(out), "--name", "smoke",
                "--sample-tokens", "30", "--probe-interval", "10")
    assert r.returncode == 0, r.stderr
    run = out / "smoke"
    assert {"config.json", "tokenizer.json", "metrics.jsonl", "checkpoint"} <= {p.name for p in run.iterdir()}
    assert "done: 20 steps" in r.stdout and f"run directory: {run}" in r.stdout
    assert (run / "dashboard.html").exists() and f"dashboard: {run / 'dashboard.html'}" in r.stdout
    assert "sample (prompt 'def '" in r.stdout
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [rec["step"] for rec in records if "event" not in rec] == list(range(20))

    g1 = run_cli("generate", str(run), "--prompt", "def ", "--max-new-tokens", "25", "--seed", "3")
    assert g1.returncode == 0, g1.stderr
    assert g1.stdout.startswith("def ") and len(g1.stdout.rstrip("\n")) >= 4
    g2 = run_cli("generate", str(run), "--prompt", "def ", "--max-new-tokens", "25", "--seed", "3",
                 "--no-cache")
    assert g2.stdout == g1.stdout  # same seed, same text, with or without the KV cache


def test_generate_greedy_in_process(trained, capsys):
    assert main(["generate", str(trained), "--prompt", "return", "--max-new-tokens", "10",
                 "--temperature", "0"]) == 0
    a = capsys.readouterr().out
    assert main(["generate", str(trained), "--prompt", "return", "--max-new-tokens", "10",
                 "--temperature", "0", "--seed", "99"]) == 0
    assert capsys.readouterr().out == a and a.startswith("return")


def test_help_lists_the_commands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "train" in out and "generate" in out
    assert main(["train", "--help"]) == 0
    helptext = capsys.readouterr().out
    for flag in ("--d-model", "--n-layers", "--n-heads", "--seq-len", "--norm", "--ffn", "--pos", "--dropout",
                 "--bias", "--no-bias", "--tie-weights", "--linear", "--faults", "--corpus", "--tokenizer",
                 "--vocab-size", "--bpe-vocab-size", "--norm-eps", "--val-fraction", "--betas", "--steps", "--batch-size", "--lr", "--lr-min", "--warmup", "--weight-decay",
                 "--grad-accum", "--clip", "--eval-interval", "--ckpt-interval", "--probe-interval",
                 "--resume", "--device", "--seed", "--out", "--name", "--quiet"):
        assert flag in helptext, flag


def test_resume_from_the_cli_extends_a_run(trained, capsys):
    assert main(["train", "--resume", str(trained), "--steps", "15", "--quiet"]) == 0
    steps = [json.loads(line).get("step") for line in (trained / "metrics.jsonl").read_text().splitlines()
             if "event" not in json.loads(line)]
    assert steps == list(range(15))


def test_ctrl_c_writes_a_checkpoint_and_exits_130(tmp_path, corpus):
    out = tmp_path / "runs"
    cmd = [sys.executable, "-m", "tensorlite", "train", *TINY, "--steps", "100000", "--corpus", corpus,
           "--out", str(out), "--name", "ctrlc", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = out / "ctrlc" / "metrics.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline:
        if metrics.exists() and metrics.read_text().count("\n") >= 4:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "checkpoint saved in" in stderr and f"--resume {out / 'ctrlc'}" in stderr
    from tensorlite.checkpoint import load_checkpoint

    step = load_checkpoint(out / "ctrlc").step
    assert step >= 3
    r = run_cli("train", "--resume", str(out / "ctrlc"), "--steps", str(step + 2), "--quiet")
    assert r.returncode == 0, r.stderr
    assert load_checkpoint(out / "ctrlc").step == step + 2


# ------------------------------------------------------------------------------------------------
# bad input: one line, exit 2, nothing written or overwritten
# ------------------------------------------------------------------------------------------------
def test_missing_corpus(tmp_path, capsys):
    rc = main(["train", "--corpus", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "runs"), "--quiet"])
    assert_user_error(rc, capsys.readouterr().err, "tensorlite train: error:", "nope.txt")
    assert not (tmp_path / "runs").exists()


def test_empty_corpus(tmp_path, capsys):
    (tmp_path / "empty.txt").write_text("")
    rc = main(["train", "--corpus", str(tmp_path / "empty.txt"), "--out", str(tmp_path / "runs"), "--quiet"])
    assert_user_error(rc, capsys.readouterr().err, "empty")
    assert not (tmp_path / "runs").exists()


def test_n_heads_must_divide_d_model(tmp_path, corpus, capsys):
    rc = main(["train", "--n-heads", "3", "--d-model", "64", "--corpus", corpus, "--out", str(tmp_path / "runs")])
    assert_user_error(rc, capsys.readouterr().err, "n_heads (3) must divide d_model (64)")
    assert not (tmp_path / "runs").exists()


def test_bad_flag_values(tmp_path, corpus, capsys):
    for args, needle in ((["--steps", "0"], "steps must be a positive integer"),
                         (["--norm", "batchnorm"], "invalid choice: 'batchnorm'"),
                         (["--faults", "no_such_fault"], "no_such_fault"),
                         (["--device", "tpu"], "invalid choice: 'tpu'")):
        rc = main(["train", *args, "--corpus", corpus, "--out", str(tmp_path / "runs"), "--quiet"])
        assert_user_error(rc, capsys.readouterr().err, needle)
    assert not (tmp_path / "runs").exists()


def test_existing_run_is_not_overwritten(trained, corpus, capsys):
    before = tree_digest(trained)
    rc = main(["train", *TINY, "--corpus", corpus, "--out", str(trained.parent), "--name", "tiny", "--quiet"])
    assert_user_error(rc, capsys.readouterr().err, "already holds a run", "--resume")
    assert tree_digest(trained) == before


def test_prompt_with_unknown_characters(trained, capsys):
    rc = main(["generate", str(trained), "--prompt", "déf €"])
    assert_user_error(rc, capsys.readouterr().err, "tensorlite generate: error: --prompt")


def test_corrupt_checkpoint(trained, capsys):
    model_file = trained / "checkpoint" / "model.safetensors"
    model_file.write_bytes(model_file.read_bytes()[:100])
    before = tree_digest(trained)
    rc = main(["generate", str(trained)])
    assert_user_error(rc, capsys.readouterr().err, "model.safetensors", "corrupt")
    rc = main(["train", "--resume", str(trained), "--steps", "20", "--quiet"])
    assert_user_error(rc, capsys.readouterr().err, "model.safetensors", "corrupt")
    assert tree_digest(trained) == before


def test_run_dir_that_does_not_exist(tmp_path, capsys):
    rc = main(["generate", str(tmp_path / "nope")])
    assert_user_error(rc, capsys.readouterr().err, "does not exist", "nope")
    rc = main(["train", "--resume", str(tmp_path / "nope")])
    assert_user_error(rc, capsys.readouterr().err, "does not exist", "nope")
    assert os.listdir(tmp_path) == []


def test_errors_from_a_real_process_have_no_traceback(tmp_path):
    r = run_cli("train", "--corpus", str(tmp_path / "missing"), "--out", str(tmp_path / "runs"))
    assert_user_error(r.returncode, r.stderr, "missing")
    r = run_cli("generate", str(tmp_path / "nope"))
    assert_user_error(r.returncode, r.stderr, "does not exist")
