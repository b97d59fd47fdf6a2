"""``tensorlite generate RUN_DIR --interactive``: a prompt loop whose sampling settings change with
slash commands (``/temp 0.5``, ``/topk 20``, ``/topp 0.9``, ``/tokens 100``, ``/config``, ...).

The session reads lines from any text stream, so the tests drive it through stdin and through a
pseudo-terminal alike. A line that starts with ``/`` is a command; any other non-empty line is a
prompt, continued with the current settings and printed with its continuation. ``/quit`` or
end of input (Ctrl-D) ends the session; Ctrl-C stops a generation and returns to the prompt.
A bad command or prompt prints one ``error:`` line and the session goes on.
"""

from __future__ import annotations

import dataclasses
import sys

HELP = """\
commands (the sampling settings apply to every prompt after them):
  /temp X      temperature, >= 0 (0 = greedy)
  /topk N      keep the N most likely tokens (off: no limit)
  /topp P      nucleus: the smallest set holding P of the probability, 0 < P <= 1 (off: no limit)
  /tokens N    how many tokens to generate, >= 1
  /penalty X   repetition penalty, > 0 (1 = none)
  /seed N      a seed for reproducible samples (off: a fresh draw each time)
  /config      show the settings
  /help        this list
  /quit        leave (Ctrl-D too)
anything else is a prompt to continue"""


@dataclasses.dataclass
class Settings:
    """The sampling settings of a session (``tensorlite.generate.generate``'s arguments)."""

    temperature: float = 0.8
    top_k: int | None = None
    top_p: float | None = None
    max_new_tokens: int = 200
    repetition_penalty: float = 1.0
    seed: int | None = None

    def describe(self) -> str:
        rows = [(f.name, getattr(self, f.name)) for f in dataclasses.fields(self)]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {'off' if value is None else value}" for name, value in rows)


class CommandError(ValueError):
    """A slash command with a bad value: reported on one line, the session goes on."""


def _number(name: str, text: str, kind):
    try:
        return kind(text)
    except ValueError:
        raise CommandError(f"/{name} needs {'an integer' if kind is int else 'a number'}, got {text!r}") from None


def _off(text: str) -> bool:
    return text.lower() in ("off", "none")


def apply_command(settings: Settings, line: str) -> str | None:
    """Run the slash command ``line`` on ``settings``; returns the text to print, or None for
    ``/quit``. Raises :class:`CommandError` for an unknown command or a bad value."""
    name, _, arg = line[1:].strip().partition(" ")
    name, arg = name.lower(), arg.strip()
    if name in ("quit", "exit", "q"):
        return None
    if name in ("help", "h", "?"):
        return HELP
    if name == "config":
        return settings.describe()
    setters = {"temp": "temperature", "temperature": "temperature", "topk": "top_k", "topp": "top_p",
               "tokens": "max_new_tokens", "penalty": "repetition_penalty", "seed": "seed"}
    if name not in setters:
        raise CommandError(f"unknown command /{name}; /help lists the commands")
    field = setters[name]
    if not arg:
        return f"{field} = {getattr(settings, field) if getattr(settings, field) is not None else 'off'}"
    if field == "temperature":
        value = _number(name, arg, float)
        if not value >= 0:
            raise CommandError(f"/temp must be >= 0 (0 = greedy), got {arg}")
    elif field == "top_k":
        value = None if _off(arg) else _number(name, arg, int)
        if value is not None and value < 1:
            raise CommandError(f"/topk must be >= 1 (or off), got {arg}")
    elif field == "top_p":
        value = None if _off(arg) else _number(name, arg, float)
        if value is not None and not 0 < value <= 1:
            raise CommandError(f"/topp must be in (0, 1] (or off), got {arg}")
    elif field == "max_new_tokens":
        value = _number(name, arg, int)
        if value < 1:
            raise CommandError(f"/tokens must be >= 1, got {arg}")
    elif field == "repetition_penalty":
        value = _number(name, arg, float)
        if not value > 0:
            raise CommandError(f"/penalty must be > 0 (1 = none), got {arg}")
    else:
        value = None if _off(arg) else _number(name, arg, int)
    setattr(settings, field, value)
    return f"{field} = {'off' if value is None else value}"


class InteractiveSession:
    """The prompt loop over ``model`` and ``tokenizer``, reading ``stdin`` and writing ``stdout``
    (errors to ``stderr``). ``generate_text(prompt, settings) -> str`` does the sampling."""

    def __init__(self, generate_text, settings: Settings | None = None, stdin=None, stdout=None, stderr=None,
                 prompt: str = "> ") -> None:
        self.generate_text = generate_text
        self.settings = settings or Settings()
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.interactive = bool(getattr(self.stdin, "isatty", lambda: False)())
        self.prompt = prompt

    def _say(self, text: str, stream=None) -> None:
        stream = stream or self.stdout
        stream.write(text + "\n")
        stream.flush()

    def _read(self) -> str | None:
        if self.interactive:
            self.stdout.write(self.prompt)
            self.stdout.flush()
        line = self.stdin.readline()
        return None if line == "" else line.rstrip("\r\n")

    def run(self) -> int:
        """Loop until ``/quit`` or end of input; returns the exit code (0)."""
        self._say("interactive: type a prompt to continue it; /help lists the commands, /quit or Ctrl-D leaves")
        while True:
            try:
                line = self._read()
            except KeyboardInterrupt:  # Ctrl-C at the prompt: leave, as Ctrl-D does
                self._say("")
                return 0
            if line is None:
                if self.interactive:
                    self._say("")
                return 0
            if not line.strip():
                continue
            if line.lstrip().startswith("/"):
                try:
                    reply = apply_command(self.settings, line.strip())
                except CommandError as e:
                    self._say(f"error: {e}", self.stderr)
                    continue
                if reply is None:
                    return 0
                self._say(reply)
                continue
            try:
                self._say(self.generate_text(line, self.settings))
            except KeyboardInterrupt:
                self._say("(generation interrupted)")
            except ValueError as e:  # a prompt the tokenizer cannot encode, ...
                self._say(f"error: {' '.join(str(e).split())}", self.stderr)
