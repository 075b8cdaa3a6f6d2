"""dbt's console output as the build shows it: a Python model stopped by one of the package's
errors shows the error's message, not its stack trace; Ctrl-C shows no stack trace; everything
else passes unchanged and in order (`retail_segments.ops.dbt_console`, `dbt_runner`); the same
when the Spark build runs dbt in its own process (`retail_segments.spark.session`)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from retail_segments.ops import dbt_runner
from retail_segments.ops.dbt_console import MAX_HELD_LINES, ConsoleFilter, filter_console
from retail_segments.spark import session as spark_session

# the end of a build whose ml_customer_value_fit raised CustomerValueError, as dbt-duckdb 1.11
# prints it (a message of two lines)
PYTHON_FAILURE = [
    "\x1b[0m14:56:10  \x1b[31mFailure in model ml_customer_value_fit (models/ml/value/x.py)\x1b[0m",
    "\x1b[0m14:56:10    Runtime Error in model ml_customer_value_fit (models/ml/value/x.py)",
    "  Python model failed:",
    "  Traceback (most recent call last):",
    '    File "/venv/dbt/adapters/duckdb/environments/__init__.py", line 286, in run_python_job',
    "      df = module.model(dbt, con)",
    "           ^^^^^^^^^^^^^^^^^^^^^^",
    '    File "/work/retail_segments/ml/value.py", line 1826, in customer_value_record',
    "      raise CustomerValueError(message)",
    "  retail_segments.ml.value.CustomerValueError: the spend model has q = 0.68 <= 1.",
    "  Fix: build on a file with more repeat customers",
    "  ",
    "\x1b[0m14:56:10  ",
    "\x1b[0m14:56:10    compiled code at target/compiled/x.py",
    "\x1b[0m14:56:10  Done. PASS=451 WARN=0 ERROR=1 SKIP=47 NO-OP=3 TOTAL=502",
]
# dbt's main thread stopped by Ctrl-C (dbt.cli.requires.postflight)
INTERRUPTED = [
    "\x1b[0m14:58:50  Finished running  in 0 hours 0 minutes and 0.76 seconds (0.76s).",
    "\x1b[0m14:58:50  Encountered an error:",
    "",
    "\x1b[0m14:58:50  Traceback (most recent call last):",
    '  File "/venv/dbt/cli/requires.py", line 187, in wrapper',
    "    result, success = func(*args, **kwargs)",
    '  File "/lib/python3.11/threading.py", line 327, in wait',
    "    waiter.acquire()",
    "KeyboardInterrupt",
]


def _filtered(lines: list[str]) -> list[str]:
    raw = [f"{line}\n".encode() for line in lines]
    return [line.decode().rstrip("\n") for line in filter_console(raw, "/w/logs/dbt.log")]


def test_a_package_error_in_a_python_model_shows_its_message_without_the_stack_trace() -> None:
    shown = _filtered(PYTHON_FAILURE)
    assert shown == [
        *PYTHON_FAILURE[:2],
        "  Python model failed: the spend model has q = 0.68 <= 1.",
        "  Fix: build on a file with more repeat customers",
        "  (its stack trace is in dbt's log, /w/logs/dbt.log)",
        *PYTHON_FAILURE[-3:],
    ]


def test_the_log_named_is_the_one_dbt_writes(tmp_path: Path) -> None:
    log_file = dbt_runner.log_file
    assert log_file([], {}, tmp_path) == str(tmp_path / "logs" / "dbt.log")
    assert log_file([], {"DBT_LOG_PATH": "/x/l"}, tmp_path) == "/x/l/dbt.log"
    given = ["build", "--log-path", "a/b"]
    assert log_file(given, {"DBT_LOG_PATH": "/x/l"}, tmp_path) == str(tmp_path / "a/b/dbt.log")
    assert log_file(["--log-path=/c"], {}, tmp_path) == "/c/dbt.log"
    # as dbt's parser reads them: its other variable, and a command before the options
    assert log_file([], {"DBT_ENGINE_LOG_PATH": "/e"}, tmp_path) == "/e/dbt.log"
    assert log_file(["parse", "--log-path", "/p"], {}, tmp_path) == "/p/dbt.log"
    # dbt run in this process (the Spark build) takes a relative folder given from its own
    # working directory; its default stays in the project
    elsewhere = tmp_path / "cwd"
    assert log_file(given, {}, tmp_path, given_from=elsewhere) == str(elsewhere / "a/b/dbt.log")
    relative = {"DBT_LOG_PATH": "l"}
    assert log_file([], relative, tmp_path, given_from=elsewhere) == str(elsewhere / "l/dbt.log")
    assert log_file([], {}, tmp_path, given_from=elsewhere) == str(tmp_path / "logs/dbt.log")


def test_other_stack_traces_pass_unchanged() -> None:
    # a bug: an error that is not the package's
    bug = [
        line.replace("retail_segments.ml.value.CustomerValueError", "KeyError")
        for line in PYTHON_FAILURE
    ]
    assert _filtered(bug) == bug
    # the package's error was handled, and another one ended the model
    chained = [
        *PYTHON_FAILURE[:10],
        "  ",
        "  During handling of the above exception, another exception occurred:",
        "  ",
        "  Traceback (most recent call last):",
        '    File "/work/x.py", line 3, in model',
        "  TypeError: boom",
        *PYTHON_FAILURE[-3:],
    ]
    assert _filtered(chained) == chained
    # dbt's own error at the end of a run, and one that is not Ctrl-C
    crashed = [*INTERRUPTED[:-1], "ValueError: bad"]
    assert _filtered(crashed) == crashed
    # a block cut off by the end of the output
    assert _filtered(PYTHON_FAILURE[:5]) == PYTHON_FAILURE[:5]
    plain = ["\x1b[0m14:56:10  1 of 4 OK hook", "no time stamp", "", "Python model failed: x"]
    assert _filtered(plain) == plain
    # dbt's debug log format ends a block too (microseconds, one space); a block that runs on
    # past MAX_HELD_LINES is passed on as it is, and then no more held
    console = ConsoleFilter()
    assert console.feed(b"  Python model failed:\n") == []  # held: a trace may follow
    assert console.feed(b"  no trace\n") == []
    debug_event = b"14:56:10.123456 [info ] [MainThread]: Done.\n"
    shown = console.feed(debug_event)  # shown at once, not at the end of the run
    assert shown == [b"  Python model failed:\n", b"  no trace\n", debug_event]
    endless = ["  Python model failed:", *(f"  {n}" for n in range(MAX_HELD_LINES + 5))]
    assert _filtered(endless) == endless


def test_ctrl_c_shows_no_stack_trace() -> None:
    assert _filtered(INTERRUPTED) == INTERRUPTED[:1]


# a stand-in for dbt: prints one event, then on Ctrl-C its last words, as dbt does
STAND_IN = """\
    import signal, sys, time
    try:
        print("\\x1b[0m10:00:00  1 of 9 START sql table model marts.x", flush=True)
        time.sleep(60)
    except KeyboardInterrupt:
        print("\\x1b[0m10:00:01  CANCEL query model.retail_segments.x", flush=True)
        print("\\x1b[0m10:00:01  Encountered an error:\\n", flush=True)
        print("\\x1b[0m10:00:01  Traceback (most recent call last):", flush=True)
        print('  File "x.py", line 1, in wrapper\\nKeyboardInterrupt', flush=True)
        time.sleep(0.5)
        print("\\x1b[0m10:00:02  last words", flush=True)
        sys.exit(2)
"""

# a command that runs the stand-in through run_dbt and says when the interrupt reached it
RUNNER = """\
    import sys
    from pathlib import Path
    from retail_segments.ops import dbt_runner
    dbt_runner.dbt_executable = lambda: sys.argv[1]
    try:
        dbt_runner.run_dbt(["build"], {"PATH": "/usr/bin:/bin"}, Path(sys.argv[2]))
    except KeyboardInterrupt:
        print("command: interrupted", flush=True)
        sys.exit(130)
    except BrokenPipeError:
        print("command: output closed", file=sys.stderr, flush=True)
        sys.exit(141)
"""


# what the stand-in prints as it stops
LAST_WORDS = [
    "\x1b[0m10:00:01  CANCEL query model.retail_segments.x",
    "\x1b[0m10:00:02  last words",
]


# a stand-in for dbt that, once stopped, goes on cancelling and printing for 20 s whatever
# further stops come (dbt stopped twice prints its stack traces and goes on logging)
SLOW_STAND_IN = """\
    import os, signal, time
    with open("dbt.pid", "w") as pid:
        pid.write(str(os.getpid()))
    try:
        print("\\x1b[0m10:00:00  1 of 9 START sql table model marts.x", flush=True)
        time.sleep(60)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for n in range(200):
            print(f"\\x1b[0m10:00:01  CANCEL query {n}", flush=True)
            time.sleep(0.1)
"""


# a stand-in for dbt that prints a line every 50 ms for 40 s and, as dbt's logger does, goes on
# when its output is a closed pipe; on Ctrl-C it notes that it stopped
CHATTY_STAND_IN = """\
    import time
    try:
        print("\\x1b[0m10:00:00  1 of 9 START sql table model marts.x", flush=True)
        for n in range(800):
            time.sleep(0.05)
            try:
                print(f"\\x1b[0m10:00:01  {n} of 9 OK", flush=True)
            except BrokenPipeError:
                pass  # dbt: "--- Logging error ---", and on to the end of the build
    except KeyboardInterrupt:
        open("stopped", "w").close()
"""


def _command_running_the_stand_in(
    tmp_path: Path,
    ctrl_c: signal.Handlers = signal.SIG_DFL,
    stand_in_code: str = STAND_IN,
    stderr: int | None = None,
) -> subprocess.Popen[str]:
    """The command (`RUNNER`) running a stand-in for dbt in a process group of its own, as a
    shell starts a job (the group is not orphaned, so Ctrl-Z stops it), with Ctrl-C handled as
    ``ctrl_c`` (a shell may start background commands with it ignored), once the stand-in has
    printed its first line."""
    stand_in = tmp_path / "dbt"
    stand_in.write_text(f"#!{sys.executable}\n{textwrap.dedent(stand_in_code)}")
    stand_in.chmod(0o755)
    runner = tmp_path / "runner.py"
    runner.write_text(textwrap.dedent(RUNNER))
    env = {**os.environ, "PYTHONPATH": str(Path(dbt_runner.__file__).parents[2])}
    process = subprocess.Popen(
        [sys.executable, str(runner), str(stand_in), str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env=env,
        process_group=0,
        preexec_fn=lambda: signal.signal(signal.SIGINT, ctrl_c),
    )
    assert process.stdout is not None
    assert "START sql table model marts.x" in process.stdout.readline()
    return process


def test_ctrl_c_passes_on_dbts_last_words_before_the_command_answers(tmp_path: Path) -> None:
    process = _command_running_the_stand_in(tmp_path)
    # a terminal's Ctrl-C reaches the command's process group; dbt, in a group of its own, gets
    # it from the command (once)
    os.killpg(process.pid, signal.SIGINT)
    assert process.stdout is not None
    rest = process.stdout.read().splitlines()
    assert process.wait(timeout=30) == 130
    assert rest == [*LAST_WORDS, "command: interrupted"]


@pytest.mark.parametrize(
    ("stop", "ctrl_c"),
    [
        (signal.SIGINT, signal.SIG_DFL),
        (signal.SIGTERM, signal.SIG_DFL),
        (signal.SIGHUP, signal.SIG_DFL),
        (signal.SIGTERM, signal.SIG_IGN),
    ],
    ids=["SIGINT", "SIGTERM", "SIGHUP", "SIGTERM-ctrl-c-ignored"],
)
def test_a_stop_sent_to_the_command_alone_stops_dbt(
    stop: signal.Signals, ctrl_c: signal.Handlers, tmp_path: Path
) -> None:
    """A scheduler's or `timeout`'s SIGTERM reaches the command's process alone: before, the
    command ended at once and dbt built on to the end unseen (the stand-in sleeps a minute). Now
    dbt gets Ctrl-C, its last words are shown, and the command says it was interrupted. Where
    Ctrl-C is ignored (a script's background command, and so dbt too), dbt gets SIGTERM. A
    `kill -INT` to the command alone used to leave dbt building on too (only the terminal's
    Ctrl-C, sent to the whole group, reached it)."""
    process = _command_running_the_stand_in(tmp_path, ctrl_c)
    process.send_signal(stop)  # to the command's process, not its group
    assert process.stdout is not None
    rest = process.stdout.read().splitlines()
    assert process.wait(timeout=30) == 130
    assert rest == [*(LAST_WORDS if ctrl_c == signal.SIG_DFL else []), "command: interrupted"]


def _state(pid: int) -> str:
    """The process's state letter in /proc ('T': stopped)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _until(condition: Callable[[], bool], seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_ctrl_z_stops_dbt_with_the_command_and_fg_continues_both(tmp_path: Path) -> None:
    """dbt runs in a process group of its own (so that it gets each stop once, from the
    command): a terminal's Ctrl-Z, sent to the command's group, stops dbt too, and `fg`, which
    continues the command's group, continues dbt; Ctrl-C then stops it as usual."""
    process = _command_running_the_stand_in(tmp_path, stand_in_code=SLOW_STAND_IN)
    assert process.stdout is not None
    dbt_pid = int((tmp_path / "dbt.pid").read_text())
    assert os.getpgid(dbt_pid) != os.getpgid(process.pid)
    try:
        os.killpg(process.pid, signal.SIGTSTP)  # Ctrl-Z
        assert _until(lambda: _state(process.pid) == "T" and _state(dbt_pid) == "T")
        os.killpg(process.pid, signal.SIGCONT)  # fg
        assert _until(lambda: _state(process.pid) != "T" and _state(dbt_pid) != "T")
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C
        assert "CANCEL query 0" in process.stdout.readline()  # dbt got it, once
    finally:
        for kill, pid in ((os.killpg, process.pid), (os.kill, dbt_pid)):
            with contextlib.suppress(ProcessLookupError):
                kill(pid, signal.SIGKILL)
        process.wait(timeout=30)


@pytest.mark.parametrize("to_group", [True, False], ids=["Ctrl-C twice", "SIGTERM twice"])
def test_a_second_stop_ends_dbt_at_once_without_a_word_from_it(
    to_group: bool, tmp_path: Path
) -> None:
    """A second stop while dbt is stopping: the command used to stop reading at once and leave
    dbt writing on into a closed pipe (on a real build, hundreds of lines of "Logging error"
    and broken pipes on the terminal). Now dbt is ended at once and nothing more of it shows."""
    process = _command_running_the_stand_in(
        tmp_path, stand_in_code=SLOW_STAND_IN, stderr=subprocess.PIPE
    )
    assert process.stdout is not None

    def stop() -> None:
        if to_group:
            os.killpg(process.pid, signal.SIGINT)  # a terminal's Ctrl-C
        else:
            process.send_signal(signal.SIGTERM)  # a scheduler's stop, to the command alone

    stop()
    assert "CANCEL query 0" in process.stdout.readline()  # dbt is stopping
    stop()
    out, err = process.communicate(timeout=15)
    assert process.returncode == 130
    assert out.splitlines()[-1:] == ["command: interrupted"]
    assert err == ""
    with pytest.raises(ProcessLookupError):  # the stand-in was ended, not left cancelling
        os.kill(int((tmp_path / "dbt.pid").read_text()), 0)


def test_a_closed_output_stops_dbt(tmp_path: Path) -> None:
    """The command's output piped into `head`, which stops reading: the command failed on its
    next write with a traceback, and dbt, writing on into the closed pipe, built to the end (a
    "Logging error" for each line, nothing published). Now dbt is stopped as on Ctrl-C, the rest
    of its output is dropped, and the command ends on BrokenPipeError (the command line's
    message, exit 141)."""
    process = _command_running_the_stand_in(
        tmp_path, stand_in_code=CHATTY_STAND_IN, stderr=subprocess.PIPE
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # head has read its lines
    assert process.wait(timeout=20) == 141  # the stand-in, not stopped, chats on for 40 s
    assert process.stderr.read() == "command: output closed\n"
    assert (tmp_path / "stopped").exists()


# a command running a stand-in for dbt in its own process, as the Spark build runs dbt
# (`spark.session.run_dbt_in_process`): the stand-in logs a line every 50 ms for 40 s through a
# logging handler bound to the stdout of the moment it starts, as dbt's logger does (a closed
# pipe then gives a "Logging error" on stderr for each line); on Ctrl-C it notes that it stopped
IN_PROCESS_RUNNER = """\
    import logging, sys, time
    from pathlib import Path
    import dbt.cli.main
    from retail_segments.ops.dbt_runner import ctrl_c_noted
    from retail_segments.spark.session import run_dbt_in_process

    folder = Path(sys.argv[1])

    class Result:
        def __init__(self, exception):
            self.exception, self.success = exception, exception is None

    class StandIn:
        def invoke(self, args):
            logger = logging.getLogger("stand-in")
            logger.addHandler(logging.StreamHandler(sys.stdout))
            logger.setLevel(logging.INFO)
            logger.propagate = False  # as dbt's
            try:
                logger.info("\\x1b[0m10:00:00  1 of 9 START sql table model marts.x")
                for n in range(800):
                    time.sleep(0.05)
                    logger.info(f"\\x1b[0m10:00:01  {n} of 9 OK")
            except KeyboardInterrupt as stop:
                (folder / "stopped").touch()
                return Result(stop)
            return Result(None)

    dbt.cli.main.dbtRunner = StandIn
    try:
        with ctrl_c_noted():
            run_dbt_in_process(["build", "--log-path", str(folder)], {}, folder)
    except KeyboardInterrupt:
        print("command: interrupted", file=sys.stderr, flush=True)
        sys.exit(130)
    except BrokenPipeError:
        print("command: output closed", file=sys.stderr, flush=True)
        sys.exit(141)
"""


def test_a_closed_output_stops_dbt_run_in_the_process(tmp_path: Path) -> None:
    """The same for dbt run in the command's own process (the Spark build): dbt's logger wrote
    on into the closed pipe, with a "Logging error" and its stack on stderr for each line, to the
    end of the build. Now dbt is stopped as on Ctrl-C, the rest of its output is dropped, and the
    command ends on BrokenPipeError, not as interrupted."""
    runner = tmp_path / "runner.py"
    runner.write_text(textwrap.dedent(IN_PROCESS_RUNNER))
    env = {**os.environ, "PYTHONPATH": str(Path(dbt_runner.__file__).parents[2])}
    process = subprocess.Popen(
        [sys.executable, str(runner), str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    assert process.stdout is not None and process.stderr is not None
    assert "START sql table model marts.x" in process.stdout.readline()
    process.stdout.close()  # head has read its lines
    assert process.wait(timeout=20) == 141  # the stand-in, not stopped, logs on for 40 s
    assert process.stderr.read() == "command: output closed\n"
    assert (tmp_path / "stopped").exists()


def test_the_stand_in_shows_what_dbt_printed_without_the_filter(tmp_path: Path) -> None:
    """The stand-in's Ctrl-C output holds the stack trace the filter leaves out (so the test above
    could fail)."""
    stand_in = tmp_path / "dbt"
    stand_in.write_text(f"#!{sys.executable}\n{textwrap.dedent(STAND_IN)}")
    stand_in.chmod(0o755)
    process = subprocess.Popen(
        [str(stand_in)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert process.stdout is not None
    process.stdout.readline()
    os.killpg(process.pid, signal.SIGINT)
    assert "KeyboardInterrupt" in process.stdout.read().splitlines()
    assert process.wait(timeout=30) == 2


# the end of a Spark build whose Python model stopped on CustomerValueError raised in a Python
# worker (dbt-spark 1.11, pyspark 4, `retail_segments.spark.python_models` failing it as dbt-duckdb
# does): the driver's stack trace, then the worker's
SPARK_PYTHON_FAILURE = [
    "\x1b[0m17:56:04  \x1b[31mFailure in model boom (models/boom.py)\x1b[0m",
    "\x1b[0m17:56:04    Runtime Error in model boom (models/boom.py)",
    "  Python model failed:",
    "  Traceback (most recent call last):",
    '    File "/work/retail_segments/spark/python_models.py", line 50, in submit',
    '      exec(compile(compiled_code.lstrip(), name, "exec"), scope)',
    '    File "models/boom.py", line 14, in model',
    "      out.collect()",
    '    File "/venv/pyspark/errors/exceptions/captured.py", line 262, in deco',
    "      raise converted from None",
    "  pyspark.errors.exceptions.captured.PythonException: An exception was thrown from the"
    " Python worker:",
    "  Traceback (most recent call last):",
    '    File "models/boom.py", line 6, in score',
    '      raise CustomerValueError("the spend model has q = 0.68 <= 1.")',
    "  retail_segments.ml.value.CustomerValueError: the spend model has q = 0.68 <= 1.",
    "  Fix: build on a file with more repeat customers",
    "  ",
    "\x1b[0m17:56:04  ",
    "\x1b[0m17:56:04    compiled code at target/compiled/mini/models/boom.py",
    "\x1b[0m17:56:04  Done. PASS=1 WARN=0 ERROR=1 SKIP=0 NO-OP=0 TOTAL=2",
]
# dbt in process stopped by Ctrl-C (pyspark's SIGINT handler cancels the Spark jobs and raises)
SPARK_INTERRUPTED = [
    "\x1b[0m17:57:38  CANCEL query model.mini.boom ...................... [\x1b[31mCANCEL\x1b[0m]",
    "\x1b[0m17:57:39  \x1b[33mExited because of keyboard interrupt\x1b[0m",
    "\x1b[0m17:57:39  Finished running 1 view model in 0 hours 0 minutes and 10.30 seconds.",
    "\x1b[0m17:57:39  Encountered an error:",
    "",
    "\x1b[0m17:57:39  Traceback (most recent call last):",
    '  File "/venv/dbt/cli/requires.py", line 187, in wrapper',
    "    result, success = func(*args, **kwargs)",
    '  File "/venv/pyspark/core/context.py", line 409, in signal_handler',
    "    raise KeyboardInterrupt()",
    "KeyboardInterrupt",
    "",
]


def _stand_in_dbt(
    monkeypatch: pytest.MonkeyPatch,
    lines: list[str],
    exception: BaseException | None,
    also: Callable[[], None],
) -> None:
    """dbtRunner replaced by one that logs lines as dbt's console logger does (a handler on the
    sys.stdout of the moment it starts), calling also() after the first, and ends with
    exception (a node failed when None)."""
    import logging

    import dbt.cli.main

    class Runner:
        def invoke(self, args: list[str]) -> Any:
            logger = logging.getLogger("stand-in dbt")
            logger.propagate = False
            handler = logging.StreamHandler(sys.stdout)
            logger.addHandler(handler)
            try:
                for index, line in enumerate(lines):
                    logger.warning(line)
                    if index == 0:
                        also()
            finally:
                logger.removeHandler(handler)
            return type("Result", (), {"success": False, "exception": exception})()

    monkeypatch.setattr(dbt.cli.main, "dbtRunner", Runner)


def _no_more() -> None:
    pass


def test_spark_dbt_in_process_shows_a_package_error_as_on_duckdb(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.delenv("DBT_LOG_PATH", raising=False)
    monkeypatch.delenv("DBT_ENGINE_LOG_PATH", raising=False)
    _stand_in_dbt(monkeypatch, SPARK_PYTHON_FAILURE, None, _no_more)
    assert spark_session.run_dbt_in_process(["build"], {}, tmp_path) == 1
    assert capsys.readouterr().out.splitlines() == [
        *SPARK_PYTHON_FAILURE[:2],
        "  Python model failed: the spend model has q = 0.68 <= 1.",
        "  Fix: build on a file with more repeat customers",
        f"  (its stack trace is in dbt's log, {tmp_path / 'logs' / 'dbt.log'})",
        *SPARK_PYTHON_FAILURE[-3:],
    ]


def test_spark_dbt_in_process_stopped_by_ctrl_c_shows_no_stack_trace(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """dbt's last words pass; KeyboardInterrupt goes on to the command, which says what stopped
    and exits 130 (`retail_segments.ops.cli.main`), as when dbt runs as a child process."""
    _stand_in_dbt(monkeypatch, SPARK_INTERRUPTED, KeyboardInterrupt(), _no_more)
    with pytest.raises(KeyboardInterrupt):
        spark_session.run_dbt_in_process(["build"], {}, tmp_path)
    assert capsys.readouterr().out.splitlines() == [*SPARK_INTERRUPTED[:3], ""]


def test_spark_dbt_in_process_leaves_what_the_jvm_writes_in_its_place(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The JVM writes to file descriptor 1 itself: not filtered, and in order with dbt's lines."""

    def jvm() -> None:
        os.write(1, b"26/11/30 17:51:13 WARN a JVM line\n")

    lines = ["\x1b[0m17:51:02  Running with dbt=1.11.16", "\x1b[0m17:51:35  Done. PASS=2"]
    _stand_in_dbt(monkeypatch, lines, None, jvm)
    assert spark_session.run_dbt_in_process(["build"], {}, tmp_path) == 1
    assert capfd.readouterr().out.splitlines() == [
        lines[0],
        "26/11/30 17:51:13 WARN a JVM line",
        lines[1],
    ]


def test_spark_dbt_in_process_stops_on_sigterm_as_on_ctrl_c(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A Spark build runs dbt in the command's process: a SIGTERM (a scheduler's stop) ended it
    at once, without dbt's cancelling. The command stops on it as on Ctrl-C
    (`dbt_runner.stops_as_ctrl_c`, around every command in `cli.main`): inside dbt that is a
    KeyboardInterrupt, which goes on to the command; the process's own handler comes back
    after."""
    import dbt.cli.main

    seen: list[str] = []

    class Runner:
        def invoke(self, args: list[str]) -> Any:
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(2)
                seen.append("built on")
            except KeyboardInterrupt as error:  # dbtRunner returns what stopped it
                return type("Result", (), {"success": False, "exception": error})()
            return type("Result", (), {"success": True, "exception": None})()

    def terminated(signum: int, frame: object) -> None:  # instead of ending pytest
        seen.append("terminated")

    monkeypatch.setattr(dbt.cli.main, "dbtRunner", Runner)
    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        with pytest.raises(KeyboardInterrupt), dbt_runner.stops_as_ctrl_c():
            spark_session.run_dbt_in_process(["build"], {}, tmp_path)
        assert seen == []
        assert signal.getsignal(signal.SIGTERM) is terminated
    finally:
        signal.signal(signal.SIGTERM, previous)
