"""``tensorlite generate --interactive``: the slash commands, the loop over stdin (a pipe and a
pseudo-terminal), and what reaches the sampler."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys
import time

import pytest
from runs import train_tiny

from tensorlite.cli.interactive import CommandError, InteractiveSession, Settings, apply_command

CORPUS = "".join(f"def f{i}(x):\n    return x * {i} + {i % 7}\n\n" for i in range(300))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("interactive"), CORPUS)


@pytest.mark.parametrize("line,field,value", [
    ("/temp 0.5", "temperature", 0.5), ("/temp 0", "temperature", 0.0), ("/topk 7", "top_k", 7),
    ("/topk off", "top_k", None), ("/topp 0.9", "top_p", 0.9), ("/topp none", "top_p", None),
    ("/tokens 12", "max_new_tokens", 12), ("/penalty 1.3", "repetition_penalty", 1.3), ("/seed 4", "seed", 4),
    ("/seed off", "seed", None), ("/TEMP 1.5", "temperature", 1.5),
])
def test_each_command_sets_its_field(line, field, value):
    s = Settings(top_k=3, top_p=0.5, seed=1)
    reply = apply_command(s, line)
    assert getattr(s, field) == value
    assert reply == f"{field} = {'off' if value is None else value}"


@pytest.mark.parametrize("line,message", [
    ("/temp -1", "/temp must be >= 0 (0 = greedy), got -1"), ("/temp hot", "/temp needs a number, got 'hot'"),
    ("/topk 0", "/topk must be >= 1 (or off), got 0"), ("/topk 2.5", "/topk needs an integer, got '2.5'"),
    ("/topp 0", "/topp must be in (0, 1] (or off), got 0"), ("/topp 1.5", "/topp must be in (0, 1] (or off), got 1.5"),
    ("/tokens 0", "/tokens must be >= 1, got 0"), ("/penalty 0", "/penalty must be > 0 (1 = none), got 0"),
    ("/nope", "unknown command /nope; /help lists the commands"),
])
def test_bad_commands_say_why_and_change_nothing(line, message):
    s = Settings()
    with pytest.raises(CommandError) as info:
        apply_command(s, line)
    assert str(info.value) == message
    assert s == Settings()


def test_config_help_and_quit():
    s = Settings(temperature=0.3, top_k=5)
    assert apply_command(s, "/config").splitlines() == [
        "temperature         0.3", "top_k               5", "top_p               off", "max_new_tokens      200",
        "repetition_penalty  1.0", "seed                off"]
    assert "/topp P" in apply_command(s, "/help") and "/quit" in apply_command(s, "/help")
    assert apply_command(s, "/quit") is None and apply_command(s, "/exit") is None
    assert apply_command(s, "/temp") == "temperature = 0.3"  # no value: show it


def session(lines, generate_text=None):
    out, err = io.StringIO(), io.StringIO()
    seen = []

    def fake(prompt, s):
        seen.append((prompt, dataclasses_dict(s)))
        return prompt + "<continued>"

    sess = InteractiveSession(generate_text or fake, Settings(), io.StringIO("".join(lines)), out, err)
    rc = sess.run()
    return rc, out.getvalue().splitlines(), err.getvalue().splitlines(), seen


def dataclasses_dict(s):
    import dataclasses

    return dataclasses.asdict(s)


def test_prompts_get_the_settings_in_force():
    rc, out, err, seen = session(["abc\n", "/temp 0\n", "\n", "/topk 3\n", "xyz\n", "/quit\n", "never read\n"])
    assert rc == 0 and err == []
    assert out[1:] == ["abc<continued>", "temperature = 0.0", "top_k = 3", "xyz<continued>"]
    assert [p for p, _ in seen] == ["abc", "xyz"]
    assert seen[0][1]["temperature"] == 0.8 and seen[1][1] == {**seen[0][1], "temperature": 0.0, "top_k": 3}


def test_end_of_input_quits_and_errors_go_to_stderr():
    def failing(prompt, s):
        if prompt == "bad":
            raise ValueError("CharTokenizer.encode: unknown character\n'€'")
        if prompt == "stop":
            raise KeyboardInterrupt
        return "ok"

    rc, out, err, _ = session(["/temp x\n", "bad\n", "stop\n", "fine"], failing)  # no newline at the end
    assert rc == 0
    assert err == ["error: /temp needs a number, got 'x'", "error: CharTokenizer.encode: unknown character '€'"]
    assert out[1:] == ["(generation interrupted)", "ok"]


def run_interactive(run_dir, stdin_text, *flags):
    return subprocess.run([sys.executable, "-m", "tensorlite", "generate", str(run_dir), "--interactive", *flags],
                          input=stdin_text, capture_output=True, text=True, timeout=120)


def test_the_command_through_a_pipe_samples_like_the_flags_do(run_dir):
    once = subprocess.run([sys.executable, "-m", "tensorlite", "generate", str(run_dir), "--prompt", "def f",
                           "--max-new-tokens", "15", "--temperature", "0"], capture_output=True, text=True, timeout=120)
    r = run_interactive(run_dir, "/temp 0\n/tokens 15\ndef f\n/temp 1\n/seed 3\n/tokens 20\nreturn\nreturn\n")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("interactive: type a prompt") and "> " not in r.stdout  # no prompt on a pipe
    greedy = "\n".join(lines[3:3 + once.stdout.count("\n")])
    assert greedy == once.stdout.rstrip("\n")
    seeded = [line for line in lines if line.startswith("return")]
    assert len(seeded) >= 2 and r.stdout.count(seeded[0]) >= 2  # same seed, same sample


def test_bad_flags_and_run_dir_are_one_line_exit_2(run_dir, tmp_path):
    for flags, needle in [(["--temperature", "-1"], "--temperature must be >= 0"), (["--top-k", "0"], "--top-k must be >= 1")]:
        r = run_interactive(run_dir, "", *flags)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and needle in r.stderr
    r = subprocess.run([sys.executable, "-m", "tensorlite", "generate", str(tmp_path / "nope"), "-i"],
                       input="", capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr


def _read_until(fd, needle: bytes, timeout=60.0) -> bytes:
    buf, end = b"", time.monotonic() + timeout
    while needle not in buf:
        left = end - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out waiting for {needle!r}; got {buf!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the other side closed
                break
            if not chunk:
                break
            buf += chunk
    return buf


def test_the_command_in_a_pseudo_terminal_shows_a_prompt_and_quits_on_ctrl_d(run_dir):
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "tensorlite", "generate", str(run_dir), "--interactive",
                             "--max-new-tokens", "5"], stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    try:
        assert b"/help lists the commands" in _read_until(master, b"> ")
        os.write(master, b"/topk 2\n")
        assert b"top_k = 2" in _read_until(master, b"> ")
        os.write(master, b"/config\n")
        assert b"top_k               2" in _read_until(master, b"> ")
        os.write(master, b"def \n")
        assert b"def " in _read_until(master, b"> ")
        os.write(master, b"\x04")  # Ctrl-D: end of input
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
