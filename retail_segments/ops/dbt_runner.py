"""Run dbt for this project as a child process (prepare the inputs first:
`retail_segments.ops.preflight.prepare`)."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from retail_segments.ops.dbt_console import ConsoleFilter
from retail_segments.ops.paths import find_project_root

# what stops a command besides Ctrl-C (SIGINT): `kill`, a scheduler's stop, the terminal closing
_OTHER_STOPS = (signal.SIGTERM, signal.SIGHUP)


def dbt_executable() -> str:
    """Return the dbt launcher installed beside this Python interpreter."""
    candidate = Path(sys.executable).parent / "dbt"
    return str(candidate) if candidate.exists() else "dbt"


def run_dbt(
    args: Sequence[str],
    env: Mapping[str, str],
    project_root: Path | None = None,
    capture: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run ``dbt <args>`` on the project and return the finished process (never raises on a
    non-zero exit; the caller decides)."""
    project_root = project_root or find_project_root()
    command = [
        dbt_executable(),
        *args,
        "--project-dir",
        str(project_root),
        "--profiles-dir",
        str(project_root),
    ]
    if capture:
        return subprocess.run(
            command, cwd=project_root, env=dict(env), text=True, capture_output=True, check=False
        )
    return run_on_console(command, project_root, env, log_file(args, env, project_root))


def log_file(
    args: Sequence[str], env: Mapping[str, str], project_root: Path, given_from: Path | None = None
) -> str:
    """Where dbt writes its log: ``--log-path``, else ``DBT_ENGINE_LOG_PATH`` or ``DBT_LOG_PATH``
    (dbt reads them in this order), else ``logs/`` in project_root. A relative folder given is
    taken from given_from, dbt's working directory: project_root (where `run_dbt` runs dbt) when
    None. (Not through `retail_segments.ops.dbt_args`: dbt's parser resolves the folder against
    this process's working directory, not dbt's.)"""
    folder = env.get("DBT_ENGINE_LOG_PATH") or env.get("DBT_LOG_PATH")
    for index, arg in enumerate(args):
        if arg == "--log-path" and index + 1 < len(args):
            folder = args[index + 1]
        elif arg.startswith("--log-path="):
            folder = arg.split("=", 1)[1]
    if folder is None:
        return str(project_root / "logs" / "dbt.log")
    return str((given_from or project_root) / folder / "dbt.log")


@contextlib.contextmanager
def stops_as_ctrl_c() -> Iterator[None]:
    """While open (a command; dbt running in this process, as a Spark build runs it): SIGTERM and
    SIGHUP, which would end the process at once, stop it as Ctrl-C does (through whatever
    handles Ctrl-C then: Python's ``KeyboardInterrupt``, pyspark's cancelling of its jobs). A
    signal ignored stays ignored; off the main thread nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def as_ctrl_c(signum: int, frame: Any) -> None:
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):
            handler(signal.SIGINT, frame)
        else:
            raise KeyboardInterrupt

    previous = {signum: signal.getsignal(signum) for signum in _OTHER_STOPS}
    for signum, handler in previous.items():
        if handler is not signal.SIG_IGN:
            signal.signal(signum, as_ctrl_c)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def ctrl_c_noted() -> Iterator[list[int]]:
    """While open, each Ctrl-C is recorded (in the list yielded) before it raises
    ``KeyboardInterrupt`` as Python's own handler does, and an exception that leaves after one
    leaves as ``KeyboardInterrupt``: DuckDB turns Ctrl-C during a query into an error of its own
    ("Query interrupted"), which was shown with its stack trace and exit code 1. Off the main
    thread, or where Ctrl-C is not Python's default (ignored, or another's handler), nothing
    changes."""
    seen: list[int] = []
    installed = (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    )

    def note(signum: int, frame: object) -> None:
        seen.append(signum)
        raise KeyboardInterrupt

    if installed:
        signal.signal(signal.SIGINT, note)
    try:
        yield seen
    except Exception as error:
        # a closed output stops dbt as Ctrl-C does (`console_filtered`): its own error stands
        if seen and not isinstance(error, BrokenPipeError):
            raise KeyboardInterrupt from error
        raise
    finally:
        if installed:
            signal.signal(signal.SIGINT, signal.default_int_handler)


@contextlib.contextmanager
def console_filtered(log_path: str) -> Iterator[_FilteredStdout]:
    """While open, what is written to ``sys.stdout`` (dbt's console, when dbt runs in this
    process: its logger writes to the ``sys.stdout`` of the moment it starts) passes through
    `ConsoleFilter` to the real stdout, line by line as it comes. What is written to the file
    descriptors themselves (the JVM of a Spark build) is not touched. On leaving, the lines still
    held are passed on (also when an exception, e.g. a second Ctrl-C, leaves). When the real
    stdout's reader has gone (piped into `head`), dbt is stopped as on Ctrl-C and what it writes
    from then on is dropped (it would print a "Logging error" for each line and build on for
    nothing); the stream yielded says so (``closed_output``)."""
    real = sys.stdout
    real.flush()  # what this command printed before dbt comes first
    filtered = _FilteredStdout(ConsoleFilter(log_path), real, on_closed=_stop_main_thread)
    sys.stdout = filtered
    try:
        yield filtered
    finally:
        sys.stdout = real
        filtered.finish()


def _stop_main_thread() -> None:
    """Ctrl-C for the main thread alone (dbt run in this process stops as on Ctrl-C; a Spark
    JVM, which ignores Ctrl-C, is not sent it)."""
    with contextlib.suppress(OSError, ValueError):
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)


def run_on_console(
    command: Sequence[str], project_root: Path, env: Mapping[str, str], log_path: str
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` (dbt, or a process that runs dbt in it) with its stdout passed on to
    this process's through `ConsoleFilter` (its stderr goes straight through). On Ctrl-C or
    another stop (passed on to dbt as Ctrl-C), dbt's last words are still read and passed on
    before ``KeyboardInterrupt`` goes on to the caller (`_stops_noted`)."""
    child_env = dict(env)
    # joblib's worker pools, stopped by Ctrl-C, leave semaphores that Python's resource tracker
    # reports on exit: nothing for the user to act on
    child_env["PYTHONWARNINGS"] = ",".join(
        filter(None, [env.get("PYTHONWARNINGS"), "ignore:resource_tracker:UserWarning"])
    )
    console = ConsoleFilter(log_path)
    sys.stdout.flush()  # what this command printed before dbt comes first
    out = getattr(sys.stdout, "buffer", None) or _TextOut(sys.stdout)
    with (
        _stops_noted() as stops,
        # in a process group of its own: a terminal's Ctrl-C reaches this process alone, which
        # passes it on, so dbt gets exactly one whether it was sent to the group or to us alone
        subprocess.Popen(
            command, cwd=project_root, env=child_env, stdout=subprocess.PIPE, process_group=0
        ) as process,
    ):
        stops.started(process)
        assert process.stdout is not None
        closed = False
        for line in iter(process.stdout.readline, b""):
            if not closed:
                closed = not _passed_on(out, console.feed(line))
                if closed:
                    stops.output_closed()
        if not closed:
            closed = not _passed_on(out, console.finish())
        returncode = process.wait()
    if stops.noted:
        raise KeyboardInterrupt
    if closed:
        raise BrokenPipeError(errno.EPIPE, "the command's output was closed while dbt ran")
    return subprocess.CompletedProcess(list(command), returncode)


def _passed_on(out: _TextOut | BinaryIO, lines: Iterable[bytes]) -> bool:
    """Write ``lines`` to ``out``; False when its reader has gone (the command's output piped
    into `head`, which has stopped reading)."""
    try:
        out.writelines(lines)
        out.flush()
    except BrokenPipeError:
        return False
    return True


class _Stops:
    """The stops this process received while its dbt child ran (`_stops_noted`)."""

    def __init__(self, ctrl_c_ignored: bool = False) -> None:
        self.noted: list[int] = []
        self.child: subprocess.Popen[bytes] | None = None
        # the child inherits an ignored Ctrl-C (a script's background command): it is then told
        # to stop by SIGTERM, which ends it without a word but does end it
        self._stop_child = signal.SIGTERM if ctrl_c_ignored else signal.SIGINT

    def started(self, child: subprocess.Popen[bytes]) -> None:
        self.child = child
        if self.noted:
            self._pass_on()  # a stop came while the child was being started

    def note(self, signum: int, frame: object) -> None:
        if self.noted:
            # a second stop: dbt is ended at once, before this process stops reading its output
            # (dbt, stopped twice, prints its stack traces, and its logger a "Logging error" for
            # every line written to a closed pipe, hundreds of lines)
            self.noted.append(signum)
            self._end_child()
            raise KeyboardInterrupt
        # dbt, in a process group of its own, gets no signal but the ones passed on: Ctrl-C
        # (from the terminal or a `kill -INT` to this process alone), a scheduler's or
        # `timeout`'s SIGTERM, a hang-up; it would build on to the end unseen
        self._pass_on()
        self.noted.append(signum)

    def suspend(self, signum: int, frame: object) -> None:
        """Ctrl-Z (SIGTSTP): dbt, in a process group of its own, is stopped too, then this
        process; when it is continued (`fg`, `bg`), so is dbt."""
        self._signal_child_group(signal.SIGSTOP)
        signal.signal(signal.SIGTSTP, signal.SIG_DFL)
        try:
            os.kill(os.getpid(), signal.SIGTSTP)  # this process stops here until continued
        finally:
            signal.signal(signal.SIGTSTP, self.suspend)
            self._signal_child_group(signal.SIGCONT)

    def _signal_child_group(self, signum: int) -> None:
        if self.child is not None and self.child.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.child.pid, signum)

    def output_closed(self) -> None:
        """The command's output was closed (piped into `head`, which stopped reading): dbt,
        writing on into the pipe, would build to the end with a "Logging error" for each line
        it prints and nothing published; it is stopped as on Ctrl-C, and its output from here
        on is read and dropped."""
        self._pass_on()

    def _end_child(self) -> None:
        # nothing dbt has started is published before every model and test passed; its
        # warehouse stays as a killed build leaves it, which the next build starts from
        if self.child is not None and self.child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.child.kill()  # reaped as the Popen block is left (no wait in a handler)

    def _pass_on(self) -> None:
        # dbt stops cleanly on Ctrl-C (it cancels its queries and says so); SIGTERM would end it
        # without a word
        if self.child is not None and self.child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.child.send_signal(self._stop_child)


@contextlib.contextmanager
def _stops_noted() -> Iterator[_Stops]:
    """While dbt runs (in a process group of its own, so that no stop reaches it but through
    this process): the first stop, Ctrl-C (from the terminal, or sent to this process alone),
    SIGTERM or SIGHUP, is passed on to dbt as Ctrl-C (as SIGTERM where Ctrl-C is ignored, which
    the child inherits) and noted, so that every line dbt prints as it stops is still read and
    shown; a second stop of any kind ends dbt at once (SIGKILL) and raises ``KeyboardInterrupt``.
    Ctrl-Z stops dbt with this process, and continuing this process continues dbt. A signal
    ignored stays ignored; off the main thread nothing changes (Python handles signals there)."""
    if threading.current_thread() is not threading.main_thread():
        yield _Stops()
        return
    previous = {
        signum: signal.getsignal(signum)
        for signum in (signal.SIGINT, signal.SIGTSTP, *_OTHER_STOPS)
    }
    stops = _Stops(ctrl_c_ignored=previous[signal.SIGINT] is signal.SIG_IGN)
    for signum, handler in previous.items():
        if handler is not signal.SIG_IGN:
            signal.signal(signum, stops.suspend if signum == signal.SIGTSTP else stops.note)
    try:
        yield stops
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class _FilteredStdout(io.TextIOBase):
    """A text stream whose lines go through console to ``real`` (`console_filtered`). When
    ``real``'s reader has gone, ``closed_output`` turns true, ``on_closed`` is called once and
    what comes after is dropped."""

    def __init__(
        self, console: ConsoleFilter, real: TextIO, on_closed: Callable[[], None] | None = None
    ) -> None:
        self._console = console
        self._real = real
        self._out = getattr(real, "buffer", None) or _TextOut(real)
        self._partial = ""
        self._lock = threading.Lock()  # dbt logs from its worker threads too
        self._on_closed = on_closed
        self.closed_output = False

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self._real.isatty()

    def write(self, text: str) -> int:
        with self._lock:
            *lines, self._partial = (self._partial + text).split("\n")
            self._pass_on(
                self._console.feed(f"{line}\n".encode(errors="replace")) for line in lines
            )
        return len(text)

    def finish(self) -> None:
        with self._lock:
            if self._partial:
                self._pass_on([self._console.feed(self._partial.encode(errors="replace"))])
                self._partial = ""
            self._pass_on([self._console.finish()])

    def _pass_on(self, batches: Iterable[Iterable[bytes]]) -> None:
        for batch in batches:
            lines = list(batch)  # fed to the filter whether or not the output is still read
            if not self.closed_output and not _passed_on(self._out, lines):
                self.closed_output = True
                if self._on_closed is not None:
                    self._on_closed()


class _TextOut:
    """A text stream written as bytes (a stdout replaced by one without ``buffer``)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def writelines(self, lines: Iterable[bytes]) -> None:
        self._stream.writelines(line.decode("utf-8", errors="replace") for line in lines)

    def flush(self) -> None:
        self._stream.flush()
