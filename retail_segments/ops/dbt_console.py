"""dbt's console output as `run_dbt` passes it on (and `console_filtered`, for dbt run in this
process by the Spark build): line by line, unchanged, except two stack traces that say nothing
to the person who ran the build (dbt's log file keeps both):

- a Python model that stopped on one of this package's errors (a ``retail_segments...Error``:
  data too thin for a fit, a setting the model refuses). dbt-duckdb prints the model's whole
  stack trace; the console gets the error's message instead.
- Ctrl-C: dbt prints "Encountered an error:" and the ``KeyboardInterrupt`` stack trace of its
  main thread; the command then says itself what was stopped.

Any other stack trace (a bug, an error of dbt or a library) is passed on whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

# the start of an event's first line in dbt's text log formats on the console: a colour reset,
# then HH:MM:SS (``--log-format debug`` adds microseconds); a held block ends at the next one
_EVENT_START = re.compile(r"^(?:\x1b\[[0-9;]*m)?\d{2}:\d{2}:\d{2}(?:\.\d+)?\s")
# a held block longer than this is no stack trace of ours: passed on as it is, and no more held
MAX_HELD_LINES = 400
_TRACEBACK = "Traceback (most recent call last):"
# the last line of a stack trace that ends in one of this package's errors
_PACKAGE_ERROR = re.compile(r"^(?P<indent>\s*)retail_segments(?:\.\w+)+\.(?P<name>\w*Error): ")


def _text(line: bytes) -> str:
    return line.decode("utf-8", errors="replace").rstrip("\r\n")


def _body(line: bytes) -> str:
    """The line without dbt's timestamp prefix and surrounding blanks."""
    text = _text(line)
    match = _EVENT_START.match(text)
    return (text[match.end() :] if match else text).strip()


def _condensed_python_failure(block: list[bytes], log_file: str) -> list[bytes]:
    """``block`` (from "Python model failed:" to the end of the event) with the stack trace
    replaced by the message of the package error it ends in, or unchanged."""
    texts = [_text(line) for line in block]
    if len(texts) < 3 or texts[1].strip() != _TRACEBACK:
        return block
    for index in range(len(texts) - 1, 1, -1):
        match = _PACKAGE_ERROR.match(texts[index])
        if match:
            break
    else:
        return block
    rest = texts[index + 1 :]
    if any(_TRACEBACK in text for text in rest):  # the error was handled; a later one ended it
        return block
    indent = match.group("indent")
    first = texts[index][match.end() :]
    message = [f"{indent}Python model failed: {first}"]
    message += [text for text in rest if text.strip()]
    message.append(f"{indent}(its stack trace is in dbt's log, {log_file})")
    ending = b"\r\n" if block[0].endswith(b"\r\n") else b"\n"
    return [text.encode("utf-8") + ending for text in message]


class ConsoleFilter:
    """dbt's console lines (bytes, each with its newline) in, the lines to show out, leaving out
    the stack traces named in the module docstring. A block that could be one is held until it
    ends (the next dbt event, or the end of the output) and then passed on or condensed."""

    def __init__(self, log_file: str = "dbt.log") -> None:
        self._log_file = log_file
        self._held: list[bytes] = []
        self._holding: str | None = None  # "python" or "interrupt"

    def feed(self, line: bytes) -> list[bytes]:
        """The lines to show now that ``line`` came."""
        shown: list[bytes] = []
        if self._holding and len(self._held) >= MAX_HELD_LINES:
            shown += self._held
            self._held, self._holding = [], None
        if self._holding == "python":
            if not _EVENT_START.match(_text(line)):
                self._held.append(line)
                return shown
            shown += _condensed_python_failure(self._held, self._log_file)
            self._held, self._holding = [], None
        elif self._holding == "interrupt":
            self._held.append(line)
            if _text(line) == "KeyboardInterrupt":
                self._held, self._holding = [], None
            return shown
        body = _body(line)
        if body == "Python model failed:":
            self._held, self._holding = [line], "python"
        elif body == "Encountered an error:":
            self._held, self._holding = [line], "interrupt"
        else:
            shown.append(line)
        return shown

    def finish(self) -> list[bytes]:
        """The lines still held when the output ends."""
        held, holding = self._held, self._holding
        self._held, self._holding = [], None
        return _condensed_python_failure(held, self._log_file) if holding == "python" else held


def filter_console(lines: Iterable[bytes], log_file: str = "dbt.log") -> Iterator[bytes]:
    """`ConsoleFilter` over a whole output."""
    console = ConsoleFilter(log_file)
    for line in lines:
        yield from console.feed(line)
    yield from console.finish()
