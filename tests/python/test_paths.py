import json
import os
import shutil
import signal
import time
from pathlib import Path

import duckdb
import pytest
from dbt_helpers import PROJECT_ROOT, interrupted_query

from retail_segments.ops import cli
from retail_segments.ops.cli import main
from retail_segments.ops.paths import RawDataNotFoundError, raw_path_candidates, resolve_raw_path


def _project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "data" / "raw").mkdir(parents=True)
    (tmp_path / "shared" / "data").mkdir(parents=True)
    return root


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_environment_variable_wins_over_the_other_places(tmp_path: Path) -> None:
    root = _project(tmp_path)
    _touch(root / "data" / "raw" / "online_retail.csv.zst")
    chosen = _touch(tmp_path / "elsewhere" / "mine.csv.zst")
    assert resolve_raw_path(root, {"RETAIL_RAW_PATH": str(chosen)}) == chosen.resolve()


def test_project_copy_is_preferred_over_shared(tmp_path: Path) -> None:
    root = _project(tmp_path)
    in_repo = _touch(root / "data" / "raw" / "online_retail.csv.zst")
    _touch(tmp_path / "shared" / "data" / "online_retail.csv.zst")
    assert resolve_raw_path(root, {}) == in_repo.resolve()


def test_shared_copy_is_the_last_resort(tmp_path: Path) -> None:
    root = _project(tmp_path)
    shared = _touch(tmp_path / "shared" / "data" / "online_retail.csv.zst")
    assert resolve_raw_path(root, {}) == shared.resolve()


def test_missing_everywhere_names_variable_paths_and_uci(tmp_path: Path) -> None:
    root = _project(tmp_path)
    with pytest.raises(RawDataNotFoundError) as caught:
        resolve_raw_path(root, {})
    message = str(caught.value)
    assert "RETAIL_RAW_PATH" in message
    assert "(id 352)" in message and "archive.ics.uci.edu" in message
    for _label, path in raw_path_candidates(root, {}):
        assert str(path) in message


def test_explicit_variable_pointing_nowhere_does_not_fall_back(tmp_path: Path) -> None:
    root = _project(tmp_path)
    _touch(root / "data" / "raw" / "online_retail.csv.zst")
    missing = tmp_path / "typo.csv.zst"
    with pytest.raises(RawDataNotFoundError, match="points at a file that does not exist"):
        resolve_raw_path(root, {"RETAIL_RAW_PATH": str(missing)})
    # a folder exists, but is not the file: said so, not "does not exist"
    with pytest.raises(RawDataNotFoundError, match="points at a folder, not a file"):
        resolve_raw_path(root, {"RETAIL_RAW_PATH": str(tmp_path)})
    # a symbolic link that leads nowhere: named as the link, with where it leads
    dangling = tmp_path / "link.csv.zst"
    dangling.symlink_to(missing)
    with pytest.raises(RawDataNotFoundError) as caught:
        resolve_raw_path(root, {"RETAIL_RAW_PATH": str(dangling)})
    assert f"the symbolic link {dangling}, which leads to {missing}: not a file" in str(
        caught.value
    )
    looped = tmp_path / "loop.csv.zst"
    looped.symlink_to(looped)
    with pytest.raises(RawDataNotFoundError, match="its target is missing, or the links loop"):
        resolve_raw_path(root, {"RETAIL_RAW_PATH": str(looped)})


def test_build_command_reports_missing_data_and_exits_nonzero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nothing-here.csv.zst"
    monkeypatch.setenv("RETAIL_RAW_PATH", str(missing))
    assert main(["build"]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "UCI" in err


@pytest.mark.parametrize(
    ("command", "dbt_command", "dbt_option"),
    [
        ("build", "build", "--full-refresh"),
        ("prepare", "build", "--full-refresh"),
        ("clean-warehouse", "parse", "Usage: dbt parse"),
    ],
)
def test_help_prepares_nothing(
    command: str,
    dbt_command: str,
    dbt_option: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """`build --help` says what the command does and shows the options of the dbt command its
    arguments go to; it neither needs the raw file nor touches the warehouse's directory."""
    monkeypatch.setenv("RETAIL_RAW_PATH", str(tmp_path / "nothing-here.csv.zst"))
    monkeypatch.setenv("RETAIL_DUCKDB_PATH", str(tmp_path / "warehouse" / "w.duckdb"))
    assert main([command, "--select", "customer_rfm", "--help"]) == 0
    out = capfd.readouterr().out
    assert f"usage: retail-segments {command} [dbt {dbt_command} arguments]" in out
    assert dbt_option in out  # the dbt command's own help
    assert not (tmp_path / "warehouse").exists()


def test_backfill_help_and_unknown_arguments_check_and_lock_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`backfill --help` prints its usage (exit 0) and an argument it does not take its usage and
    the error (exit 2), before the raw file is looked for or the warehouse's folder is locked."""
    monkeypatch.setenv("RETAIL_RAW_PATH", str(tmp_path / "nothing-here.csv.zst"))
    monkeypatch.setenv("RETAIL_DUCKDB_PATH", str(tmp_path / "warehouse" / "w.duckdb"))
    with pytest.raises(SystemExit) as exited:
        main(["backfill", "--help"])
    assert exited.value.code == 0
    assert "usage: retail-segments backfill [-h] [--start START] [--end END]" in (
        capsys.readouterr().out
    )
    with pytest.raises(SystemExit) as exited:
        main(["backfill", "--bogus"])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert "unrecognized arguments: --bogus" in error and "nothing-here" not in error
    # an option given twice (argparse would take the last silently), or abbreviated
    for argv in (["--start=2011-11", "--start", "2011-10"], ["--sta", "2011-10"]):
        with pytest.raises(SystemExit) as exited:
            main(["backfill", *argv])
        assert exited.value.code == 2
    error = capsys.readouterr().err
    assert "--start is given 2 times; give it once" in error
    assert "unrecognized arguments: --sta 2011-10" in error
    assert not (tmp_path / "warehouse").exists()


@pytest.mark.parametrize("argv", [[], ["--project-dir", "."]], ids=["nothing", "a folder only"])
def test_no_command_names_only_what_is_missing(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Without a command the error names it alone, not the optional arguments after it."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert error.rstrip().endswith("error: the following arguments are required: command")


def test_ctrl_c_ends_a_command_with_a_message_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(_args: list[str]) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_report", interrupted)
    assert main(["report"]) == 130
    err = capsys.readouterr().err
    assert "interrupted: `report` stopped before it finished" in err
    assert "Traceback" not in err


def test_a_closed_output_ends_a_command_with_a_message_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`retail-segments build | head -2`: the command's next line, or dbt's (which
    `dbt_runner.run_on_console` then stops), met a closed pipe and it ended on a traceback."""

    def closed(_args: list[str]) -> int:
        print("Raw data: ...")
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(cli, "_report", closed)
    assert main(["report"]) == 141
    err = capsys.readouterr().err
    assert "error: the output of `report` was closed (piped into a command" in err
    assert "Fix: send the output to a file and read that" in err
    assert "Traceback" not in err


def test_ctrl_c_during_a_duckdb_query_is_a_stop(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C while the command's own DuckDB queries run (checking the inputs before a build)
    showed DuckDB's "Query interrupted" with a stack trace and exit code 1."""

    def checking(_args: list[str]) -> int:
        interrupted_query()
        return 0

    monkeypatch.setattr(cli, "_report", checking)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    try:
        assert main(["report"]) == 130
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)
    assert "interrupted: `report` stopped before it finished" in capsys.readouterr().err


def test_a_kill_ends_a_command_as_ctrl_c_does(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGTERM (`kill`, a scheduler's stop) while the command prepares or publishes ended it at
    once, with exit code 143 and no word; it stops as on Ctrl-C, with its message and 130."""
    seen: list[str] = []

    def killed(_args: list[str]) -> int:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(2)
        seen.append("went on")
        return 0

    def terminated(signum: int, frame: object) -> None:  # instead of ending pytest
        seen.append("terminated")

    monkeypatch.setattr(cli, "_report", killed)
    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        assert main(["report"]) == 130
        assert signal.getsignal(signal.SIGTERM) is terminated
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert seen == []
    assert "interrupted: `report` stopped before it finished" in capsys.readouterr().err


def test_project_dir_is_taken_after_the_command_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`build --project-dir DIR` names the project, as `--project-dir DIR build` does (dbt is
    always given the project found); two different ones are refused; nothing is looked for."""
    monkeypatch.setenv("RETAIL_PROJECT_DIR", "")  # main sets it: restored after the test
    monkeypatch.setenv("RETAIL_RAW_PATH", str(tmp_path / "nothing-here.csv.zst"))
    assert main(["build", "--select", "customer_rfm", f"--project-dir={tmp_path}"]) == 2
    error = capsys.readouterr().err
    assert f"(or --project-dir) = '{tmp_path}' is not the retail-segments project" in error
    assert "nothing-here" not in error
    assert main(["--project-dir", str(tmp_path), "prepare", "--project-dir", "elsewhere"]) == 2
    assert f"--project-dir is given 2 times ({tmp_path}, elsewhere)" in capsys.readouterr().err


def test_the_report_runs_outside_the_project_given_both_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The project gives the report only its default paths: outside it, the report says to give
    --warehouse and --out, and with them goes on to read the file."""
    monkeypatch.setenv("RETAIL_PROJECT_DIR", "")
    monkeypatch.chdir(tmp_path)
    assert main(["report", "--out", str(tmp_path / "r.html")]) == 2
    error = capsys.readouterr().err
    assert f"{tmp_path} is not inside the retail-segments project" in error
    assert "give both --warehouse (the serving copy) and --out" in error
    notes = tmp_path / "notes.json"
    notes.write_text("{}")
    assert main(["report", "--warehouse", str(notes), "--out", str(tmp_path / "r.html")]) == 2
    error = capsys.readouterr().err
    assert f"{notes} is not a DuckDB file" in error
    # outside the project there is no default to name (it is not the value given)
    assert "default" not in error and "Fix: pass --warehouse the serving copy or a build" in error
    assert main(["report", "--warehouse", str(tmp_path), "--out", str(tmp_path / "r.html")]) == 2
    error = capsys.readouterr().err
    assert f"--warehouse {tmp_path} is a folder; nothing was written" in error
    assert f"such as {tmp_path / 'retail_segments_serving.duckdb'}" in error


def test_relative_path_settings_name_places_in_the_working_folder(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    synthetic_raw: Path,
) -> None:
    """dbt runs in the project's folder, so a relative RETAIL_DUCKDB_PATH or RETAIL_INCOMING_GLOB
    named a place in the project, while a relative RETAIL_RAW_PATH named one in the working
    folder. Each now names the place in the folder the command was started in, as the shell
    there would. The warehouse is recorded as DuckDB names it: through a linked folder, every
    build was refused ("prepared for the warehouse .../wh/w.duckdb, not .../disk/w.duckdb")."""
    work = tmp_path / "work"
    (work / "exports").mkdir(parents=True)
    (work / "disk").mkdir()
    (work / "wh").symlink_to(work / "disk")  # a warehouse folder linked to a larger disk
    shutil.copyfile(synthetic_raw, work / "exports" / "raw.csv.zst")
    monkeypatch.chdir(work)
    monkeypatch.setenv("RETAIL_PROJECT_DIR", str(PROJECT_ROOT))
    monkeypatch.setenv("RETAIL_RAW_PATH", "exports/raw.csv.zst")
    monkeypatch.setenv("RETAIL_DUCKDB_PATH", "wh/w.duckdb")
    monkeypatch.setenv("RETAIL_INCOMING_GLOB", "feed/*.csv")
    monkeypatch.setenv("DBT_TARGET_PATH", str(tmp_path / "target"))
    monkeypatch.setenv("DBT_LOG_PATH", str(tmp_path / "logs"))
    assert main(["prepare"]) == 2
    assert f"folder '{work / 'feed'}' does not exist" in capsys.readouterr().err
    (work / "feed").mkdir()
    assert main(["prepare"]) == 0, capsys.readouterr().err
    stamp = json.loads((work / "wh" / "landing" / "current" / "prepared.json").read_text())
    # as dbt's input check reads it: the path DuckDB reports for the file it opened
    with duckdb.connect("wh/w.duckdb") as connection:
        opened = connection.sql(
            "select path from duckdb_databases() where database_name = current_database()"
        ).fetchall()[0][0]
    assert stamp["warehouse"] == opened == str(work / "disk" / "w.duckdb")
    assert stamp["raw_path"] == str(work / "exports" / "raw.csv.zst")
    assert stamp["incoming_glob"] == str(work / "feed" / "*.csv")


@pytest.mark.parametrize("value", [":memory:", "md:retail", "motherduck:retail"])
def test_a_warehouse_that_is_no_file_is_refused_from_the_command_line(
    value: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    synthetic_raw: Path,
) -> None:
    """The command line made these absolute (<working folder>/:memory:) before the settings check
    saw them, so the check never matched: a full build ran and published into a file named
    ':memory:' in the working folder (and motherduck:... left a lock file in the project). They
    are refused as written, and nothing is made."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("RETAIL_PROJECT_DIR", str(PROJECT_ROOT))
    monkeypatch.setenv("RETAIL_RAW_PATH", str(synthetic_raw))
    monkeypatch.setenv("RETAIL_DUCKDB_PATH", value)
    monkeypatch.setenv("DBT_TARGET_PATH", str(tmp_path / "target"))
    monkeypatch.setenv("DBT_LOG_PATH", str(tmp_path / "logs"))
    assert main(["build"]) == 2
    error = capsys.readouterr().err
    assert f"RETAIL_DUCKDB_PATH = '{value}' is not a file path" in error
    assert "Traceback" not in error
    assert list(work.iterdir()) == []
    # nor a lock file beside where the project would have put it (.motherduck:retail.lock)
    assert not (PROJECT_ROOT / f".{value}.lock").exists()


def test_docs_before_a_build_is_refused_and_makes_no_warehouse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`make docs` on a fresh clone ran dbt docs generate, which created an empty warehouse and
    a site without a single column type, and said nothing."""
    warehouse = tmp_path / "wh" / "w.duckdb"
    monkeypatch.setenv("RETAIL_DUCKDB_PATH", str(warehouse))
    monkeypatch.setenv("DBT_TARGET_PATH", str(tmp_path / "target"))
    monkeypatch.setenv("DBT_LOG_PATH", str(tmp_path / "logs"))
    assert main(["docs", "--project-dir", str(PROJECT_ROOT)]) == 2
    error = capsys.readouterr().err
    assert f"error: no warehouse at {warehouse}: the documentation site reads" in error
    assert "Fix: run `make build` first" in error
    assert not warehouse.exists()
    assert not (tmp_path / "target" / "catalog.json").exists()
