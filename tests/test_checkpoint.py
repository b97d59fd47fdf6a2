"""Checkpoint I/O: round trips, atomicity under kills, clear errors on corrupt files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import tensorlite as tl
from tensorlite import checkpoint as ckpt_mod
from tensorlite import optim
from tensorlite.checkpoint import CheckpointError, atomic_write_text, load_checkpoint, save_checkpoint


def _weights(seed=0, n=8):
    rng = np.random.default_rng(seed)
    return {"a.weight": rng.standard_normal((n, 3)).astype(np.float32),
            "a.bias": rng.standard_normal(n).astype(np.float32),
            "emb.weight": rng.standard_normal((5, n)).astype(np.float32)}


def _adamw_after_steps(steps=2):
    tl.manual_seed(0)
    w = tl.randn(4, 3, requires_grad=True)
    b = tl.zeros(3, requires_grad=True)
    opt = optim.AdamW(optim.param_groups_for_decay([w, b], 0.1), lr=1e-2, betas=(0.9, 0.95))
    for _ in range(steps):
        opt.zero_grad()
        ((w.sum(0) + b) ** 2).sum().backward()
        opt.step()
    return opt


def test_round_trip_weights_optimizer_and_state(tmp_path):
    tl.manual_seed(123)
    tl.randn(3)  # move the generator off its seed position
    rng_state = tl.get_rng_state()
    opt = _adamw_after_steps()
    state = {"rng": rng_state, "batcher": {"pos": np.arange(5), "epoch": 2, "pair": (1, 2.5)},
             "by_index": {0: "zero", 7: [1, 2]}}
    path = save_checkpoint(tmp_path / "checkpoint", model=_weights(), optimizer=opt, step=17, state=state,
                           attachments={"config.json": b'{"x": 1}'})
    assert sorted(os.listdir(path)) == ["config.json", "model.safetensors", "optimizer.safetensors",
                                        "state.json", "state.safetensors"]
    ck = load_checkpoint(tmp_path)  # the run directory works as well as the folder
    assert ck.step == 17 and ck.path == path
    for k, v in _weights().items():
        np.testing.assert_array_equal(ck.model_state[k], v)
    assert ck.state["rng"] == rng_state
    np.testing.assert_array_equal(ck.state["batcher"]["pos"], np.arange(5))
    assert ck.state["batcher"]["pair"] == (1, 2.5) and ck.state["by_index"] == {0: "zero", 7: [1, 2]}
    assert ck.json_attachment("config.json") == {"x": 1}

    # the optimizer state loads into a fresh optimizer and continues identically
    fresh = _adamw_after_steps(steps=0)
    fresh.load_state_dict(ck.optimizer_state)
    ref = opt.state_dict()
    got = fresh.state_dict()
    assert got["param_groups"] == ref["param_groups"]
    for i in ref["state"]:
        assert got["state"][i]["step"] == ref["state"][i]["step"] == 2
        np.testing.assert_array_equal(got["state"][i]["exp_avg"], ref["state"][i]["exp_avg"])
        np.testing.assert_array_equal(got["state"][i]["exp_avg_sq"], ref["state"][i]["exp_avg_sq"])
    tl.set_rng_state(ck.state["rng"])
    a = tl.randn(4).numpy()
    tl.set_rng_state(rng_state)
    np.testing.assert_array_equal(a, tl.randn(4).numpy())


def test_overwrite_replaces_and_leaves_no_litter(tmp_path):
    for step in (1, 2, 3):
        save_checkpoint(tmp_path / "checkpoint", model=_weights(step), step=step)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint"]
    ck = load_checkpoint(tmp_path)
    assert ck.step == 3
    np.testing.assert_array_equal(ck.model_state["a.bias"], _weights(3)["a.bias"])


def test_crash_while_writing_files_keeps_previous(tmp_path, monkeypatch):
    save_checkpoint(tmp_path / "checkpoint", model=_weights(1), step=10)
    real = ckpt_mod._write_file
    calls = []

    def dying_write(path, data):
        calls.append(path.name)
        if len(calls) == 2:  # model.safetensors written, then the process "dies"
            raise OSError("simulated crash mid-write")
        real(path, data)

    monkeypatch.setattr(ckpt_mod, "_write_file", dying_write)
    with pytest.raises(OSError, match="simulated"):
        save_checkpoint(tmp_path / "checkpoint", model=_weights(2), optimizer=_adamw_after_steps(), step=20)
    monkeypatch.undo()
    ck = load_checkpoint(tmp_path)
    assert ck.step == 10
    np.testing.assert_array_equal(ck.model_state["a.weight"], _weights(1)["a.weight"])
    # the next save clears the half-written temp folder
    save_checkpoint(tmp_path / "checkpoint", model=_weights(3), step=30)
    assert load_checkpoint(tmp_path).step == 30
    assert sorted(os.listdir(tmp_path)) == ["checkpoint"]


def test_crash_between_the_two_renames_falls_back_to_old(tmp_path, monkeypatch):
    save_checkpoint(tmp_path / "checkpoint", model=_weights(1), step=10)
    real = ckpt_mod._rename
    calls = []

    def dying_rename(src, dst):
        calls.append((src.name, dst.name))
        if len(calls) == 2:  # checkpoint -> checkpoint.old done; the new one never moved in
            raise OSError("simulated kill")
        real(src, dst)

    monkeypatch.setattr(ckpt_mod, "_rename", dying_rename)
    with pytest.raises(OSError, match="simulated"):
        save_checkpoint(tmp_path / "checkpoint", model=_weights(2), step=20)
    monkeypatch.undo()
    assert calls[0] == ("checkpoint", "checkpoint.old")
    assert not (tmp_path / "checkpoint").exists()
    ck = load_checkpoint(tmp_path)
    assert ck.step == 10 and ck.path.name == "checkpoint.old"
    # saving again must not delete checkpoint.old before the new one is in place
    save_checkpoint(tmp_path / "checkpoint", model=_weights(3), step=30)
    assert load_checkpoint(tmp_path).step == 30
    assert sorted(os.listdir(tmp_path)) == ["checkpoint"]


_WRITER = textwrap.dedent("""
    import sys, numpy as np
    from tensorlite.checkpoint import save_checkpoint
    out = sys.argv[1]
    rng = np.random.default_rng(0)
    w = {"w": rng.standard_normal((512, 512)).astype(np.float32)}
    step = 0
    while True:
        step += 1
        w["w"][0, 0] = step
        save_checkpoint(out, model=w, optimizer={"state": {0: {"m": w["w"]}}}, step=step)
        if step == 2:
            print("ready", flush=True)
""")


def test_sigkill_during_writes_leaves_a_loadable_checkpoint(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    rng = np.random.default_rng(1)
    for trial in range(4):
        out = tmp_path / f"run{trial}" / "checkpoint"
        proc = subprocess.Popen([sys.executable, str(script), str(out)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(float(rng.uniform(0.0, 0.3)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        ck = load_checkpoint(out.parent)
        assert ck.step >= 2
        assert ck.model_state["w"][0, 0] == ck.step  # weights and step come from the same save
        np.testing.assert_array_equal(ck.optimizer_state["state"][0]["m"], ck.model_state["w"])


def test_corrupt_files_raise_checkpoint_error_naming_the_file(tmp_path):
    save_checkpoint(tmp_path / "checkpoint", model=_weights(), optimizer=_adamw_after_steps(), step=5)
    model_file = tmp_path / "checkpoint" / "model.safetensors"
    data = model_file.read_bytes()
    model_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"model\.safetensors: corrupt"):
        load_checkpoint(tmp_path)

    model_file.write_bytes(data)
    state_file = tmp_path / "checkpoint" / "state.json"
    state_file.write_text("{not json")
    with pytest.raises(CheckpointError, match=r"state\.json: corrupt"):
        load_checkpoint(tmp_path)

    state_file.unlink()
    with pytest.raises(CheckpointError, match=r"state\.json: missing"):
        load_checkpoint(tmp_path)


def test_files_from_another_checkpoint_are_detected(tmp_path):
    save_checkpoint(tmp_path / "a", model=_weights(1), step=1)
    save_checkpoint(tmp_path / "b", model=_weights(2), step=2)
    os.replace(tmp_path / "a" / "model.safetensors", tmp_path / "b" / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"b/model\.safetensors: corrupt"):
        load_checkpoint(tmp_path / "b")


def test_missing_paths(tmp_path):
    with pytest.raises(CheckpointError, match="no such file or directory"):
        load_checkpoint(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="no checkpoint here"):
        load_checkpoint(tmp_path)
    (tmp_path / "checkpoint").mkdir()
    with pytest.raises(CheckpointError, match=r"state\.json: missing"):
        load_checkpoint(tmp_path)


def test_newer_format_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "checkpoint", model=_weights(), step=1)
    header = json.loads((path / "state.json").read_text())
    header["format"] = 99
    (path / "state.json").write_text(json.dumps(header))
    with pytest.raises(CheckpointError, match="format 99 is newer"):
        load_checkpoint(path)


def test_unstorable_state_is_a_type_error(tmp_path):
    with pytest.raises(TypeError, match=r"cannot store a object \(at state/x\)"):
        save_checkpoint(tmp_path / "checkpoint", model=_weights(), state={"x": object()})
    assert os.listdir(tmp_path) == []


def test_atomic_write_text(tmp_path):
    f = tmp_path / "config.json"
    atomic_write_text(f, "one")
    atomic_write_text(f, "two")
    assert f.read_text() == "two"
    assert os.listdir(tmp_path) == ["config.json"]
