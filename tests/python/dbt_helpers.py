"""Helpers for tests that run the real dbt project into a scratch warehouse."""

from __future__ import annotations

import contextlib
import contextvars
import os
import pprint
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import duckdb
import pytest

from retail_segments.ops.dbt_runner import dbt_executable, run_dbt
from retail_segments.ops.paths import PROJECT_DIR_ENV
from retail_segments.ops.preflight import prepare
from retail_segments.sql import quote_identifier

# The checkout under test (tests/python/ is two levels below it).
PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Workspace:
    """A scratch warehouse with its own dbt target and log directories."""

    root: Path

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    def dbt(
        self, raw_path: Path, *args: str, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run dbt on the project against raw_path into this workspace's warehouse, as a user runs
        it by hand: `python -m retail_segments prepare` with the same arguments first (for build
        and run), then dbt with the arguments unchanged."""
        environ = {
            **os.environ,
            **(env or {}),
            "RETAIL_RAW_PATH": str(raw_path),
            "RETAIL_DUCKDB_PATH": str(self.warehouse),
        }
        dirs = ["--target-path", str(self.root / "target"), "--log-path", str(self.root / "logs")]
        SESSION_PARSE.give(self.root, environ)
        result = run_prepared_dbt([*args, *dirs], environ)
        # A selector naming a model that no longer exists selects nothing and dbt still exits 0:
        # a test would then check tables that were never rebuilt.
        assert "does not match any enabled nodes" not in result.stdout, result.stdout[-3000:]
        return result

    def build(self, raw_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``dbt build`` (plus args)."""
        return self.dbt(raw_path, "build", *args)

    def query(self, sql: str) -> list[tuple]:
        """Run sql read-only against the warehouse and return all rows."""
        with duckdb.connect(str(self.warehouse), read_only=True) as connection:
            return connection.sql(sql).fetchall()

    def frame(self, sql: str):
        """Run sql read-only against the warehouse and return a pandas DataFrame."""
        with duckdb.connect(str(self.warehouse), read_only=True) as connection:
            return connection.sql(sql).df()


def _connection_info(env: Mapping[str, str]) -> tuple[tuple[str, Any], ...]:
    """The connection info of the project's profile (its default target) as dbt renders it with
    env: what dbt hashes into the profile check of its saved parse (dbt-core 1.11,
    `ManifestLoader.build_manifest_state_check`). Computed in a copy of this thread's context
    (dbt keeps its invocation environment in a context variable), and dbt's global flags are put
    back afterwards, so nothing of it stays in the test process."""
    from argparse import Namespace

    from dbt.config.runtime import load_profile
    from dbt.flags import get_flags, set_flags, set_from_args
    from dbt_common.context import set_invocation_context

    def render() -> tuple[tuple[str, Any], ...]:
        previous = get_flags()
        try:
            set_invocation_context(dict(env))
            set_from_args(Namespace(profiles_dir=str(PROJECT_ROOT)), {})
            profile = load_profile(str(PROJECT_ROOT), {})
            return tuple(sorted(profile.credentials.connection_info()))
        finally:
            set_flags(previous)

    return contextvars.copy_context().run(render)


@dataclass
class SavedParse:
    """dbt's saved parse of the project (``partial_parse.msgpack``), made by the session's first
    build, and the connection info it was made with, for the test warehouses dbt has not parsed
    the project for yet.

    dbt parses the whole project again (10 to 30 s of CPU) whenever its profile's connection info
    differs from the saved parse's, and a warehouse's path is part of it: every new test
    warehouse was parsed from scratch, 29 times a session. The project and its parse are the same
    for all of them (the database name, the file name without `.duckdb`, is the same too), so
    `give` writes the saved parse into a workspace's dbt target with the profile check dbt
    computes for that workspace's path. Only the path may differ: with any other difference
    (another database name, memory limit or target) nothing is written and dbt parses as before.
    dbt still checks everything else itself (the project's files, vars, the environment variables
    the models read), as on a user's second build; `test_warehouse.py` checks that a copied
    warehouse's build starts from the saved parse."""

    saved: bytes | None = None
    connection: tuple[tuple[str, Any], ...] = ()

    def keep(self, root: Path, env: Mapping[str, str]) -> None:
        """Keep the parse dbt saved in root's target, made for the warehouse of env."""
        path = root / "target" / "partial_parse.msgpack"
        if self.saved is None and path.exists():
            self.connection = _connection_info(env)
            self.saved = path.read_bytes()

    def give(self, root: Path, env: Mapping[str, str]) -> bool:
        """Write the kept parse into root's target for the warehouse of env, unless root's target
        holds a parse already or the connection info differs in more than the path; whether it
        was written."""
        path = root / "target" / "partial_parse.msgpack"
        if self.saved is None or path.exists():
            return False
        connection = _connection_info(env)
        if [item for item in connection if item[0] != "path"] != [
            item for item in self.connection if item[0] != "path"
        ]:
            return False
        import msgpack
        from dbt.contracts.files import FileHash

        parse = msgpack.unpackb(self.saved, raw=False, strict_map_key=False)
        profile_hash = FileHash.from_contents(pprint.pformat(list(connection)))
        parse["state_check"]["profile_hash"] = profile_hash.to_dict()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(msgpack.packb(parse, use_bin_type=True))
        return True


# The session's saved parse (kept by conftest's synthetic_build); empty until it is made.
SESSION_PARSE = SavedParse()


def run_prepared_dbt(
    args: Sequence[str], env: Mapping[str, str], capture: bool = True
) -> subprocess.CompletedProcess[str]:
    """``prepare`` (for build and run), then ``dbt <args>`` with the prepared environment; the
    arguments are passed unchanged (a needed --full-refresh is not added: plain dbt semantics)."""
    if args and args[0] in ("build", "run"):
        env = prepare(PROJECT_ROOT, env, args).env
    return run_dbt(args, env, capture=capture)


def assert_built(result: subprocess.CompletedProcess[str]) -> None:
    """Fail the test with dbt's own output when a dbt command did not succeed."""
    assert result.returncode == 0, f"dbt failed:\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}"


def kill_build_once_started(workspace: Workspace, raw_path: Path, node: str) -> None:
    """``prepare``, then start ``dbt build`` (with the arguments prepare gives: --full-refresh when
    the inputs changed) in its own process group, and SIGKILL the group once dbt reports that node
    as started: a build that ends without its on-run-end hook."""
    env = {
        **os.environ,
        "RETAIL_RAW_PATH": str(raw_path),
        "RETAIL_DUCKDB_PATH": str(workspace.warehouse),
    }
    SESSION_PARSE.give(workspace.root, env)
    prepared = prepare(PROJECT_ROOT, env, ["build"])
    command = [
        dbt_executable(),
        *prepared.dbt_args,
        "--project-dir",
        str(PROJECT_ROOT),
        "--profiles-dir",
        str(PROJECT_ROOT),
        "--target-path",
        str(workspace.root / "target"),
        "--log-path",
        str(workspace.root / "logs"),
    ]
    with subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        env=prepared.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    ) as process:
        seen = []
        assert process.stdout is not None
        for line in process.stdout:
            seen.append(line)
            if "START" in line and node in line:
                os.killpg(process.pid, signal.SIGKILL)
                break
        process.wait()
    assert process.returncode == -signal.SIGKILL, "".join(seen[-40:])


def copy_workspace(source: Workspace, root: Path) -> Workspace:
    """A new workspace at root whose warehouse is a copy of source's, with its dbt manifest (which
    declares what a publish copies), no dbt run needed."""
    root.mkdir(parents=True, exist_ok=True)
    workspace = Workspace(root)
    shutil.copyfile(source.warehouse, workspace.warehouse)
    manifest = source.root / "target" / "manifest.json"
    if manifest.exists():
        (root / "target").mkdir(exist_ok=True)
        shutil.copyfile(manifest, root / "target" / "manifest.json")
    wal = source.warehouse.with_name(source.warehouse.name + ".wal")
    if wal.exists():
        shutil.copyfile(wal, workspace.warehouse.with_name(workspace.warehouse.name + ".wal"))
    return workspace


def _cli_env(workspace: Workspace, raw_path: Path, env: Mapping[str, str] | None) -> dict[str, str]:
    """env with the command line pointed at raw_path and this workspace (its warehouse, and
    dbt's target and log directories inside it)."""
    return {
        **(env or {}),
        "RETAIL_RAW_PATH": str(raw_path),
        "RETAIL_DUCKDB_PATH": str(workspace.warehouse),
        "DBT_TARGET_PATH": str(workspace.root / "target"),
        "DBT_LOG_PATH": str(workspace.root / "logs"),
    }


def run_cli(
    workspace: Workspace, raw_path: Path, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m retail_segments <args>`` against raw_path into this workspace (dbt's target
    and log directories inside it), with env added to the environment; never raises on a
    non-zero exit."""
    environ = {**os.environ, **_cli_env(workspace, raw_path, env)}
    SESSION_PARSE.give(workspace.root, environ)
    return subprocess.run(
        [sys.executable, "-m", "retail_segments", *args],
        cwd=PROJECT_ROOT,
        env=environ,
        text=True,
        capture_output=True,
        check=False,
    )


class CliInProcess:
    """`dbt_helpers.run_cli` in the test process, for commands that stop before dbt runs (a
    refusal, or `prepare`): the same entry point (`cli.main`), environment and working folder,
    without a Python start and imports per call (about 2.5 s each). The environment, working
    folder and what the command sets in the environment are restored after the test."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
        self._monkeypatch = monkeypatch
        self._capsys = capsys

    def __call__(
        self,
        workspace: Workspace,
        raw_path: Path,
        *args: str,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        from retail_segments.ops import cli

        patch = self._monkeypatch
        patch.chdir(PROJECT_ROOT)
        patch.delenv(PROJECT_DIR_ENV, raising=False)  # cli.main sets it; undone after the test
        for name, value in _cli_env(workspace, raw_path, env).items():
            patch.setenv(name, value)
        self._capsys.readouterr()
        try:
            returncode = cli.main(list(args))
        except SystemExit as exit_:  # argparse's own usage errors
            returncode = int(exit_.code or 0)
        captured = self._capsys.readouterr()
        return subprocess.CompletedProcess(list(args), returncode, captured.out, captured.err)


def _checksum_expression(column: str, data_type: str, significant_digits: int | None) -> str:
    quoted = quote_identifier(column)
    if significant_digits is None or data_type not in {"DOUBLE", "FLOAT", "REAL"}:
        return quoted
    digits = f"{significant_digits} - cast(ceil(log10(abs({quoted}))) as integer)"
    return (
        f"case when {quoted} = 0 or not isfinite({quoted}) then {quoted}"
        f" else round({quoted}, {digits}) end as {quoted}"
    )


def table_checksums(
    workspace: Workspace,
    ignore: Mapping[str, Sequence[str]] = MappingProxyType({}),
    significant_digits: int | None = None,
    schema: str | None = None,
) -> dict[str, tuple[int, int | None]]:
    """Row count and an order-independent hash of all rows of every table and view (of
    ``schema`` only, when given), keyed by 'schema.name'. ``ignore`` maps a relation to columns
    left out of its hash. With ``significant_digits``, floating-point values are hashed rounded to
    that many significant digits (DuckDB adds doubles up in parallel, in no fixed order, so the
    last bits of a float sum may differ between two runs on the same data)."""
    with duckdb.connect(str(workspace.warehouse), read_only=True) as connection:
        columns = connection.execute(
            "select table_schema, table_name, column_name, data_type"
            " from information_schema.columns where coalesce(table_schema = ?, true)"
            " order by table_schema, table_name, ordinal_position",
            [schema],
        ).fetchall()
        selected: dict[str, tuple[str, list[str]]] = {}
        for table_schema, name, column, data_type in columns:
            key = f"{table_schema}.{name}"
            relation = f"{quote_identifier(table_schema)}.{quote_identifier(name)}"
            selected.setdefault(key, (relation, []))
            if column not in ignore.get(key, ()):
                selected[key][1].append(_checksum_expression(column, data_type, significant_digits))
        return {
            key: connection.sql(
                f"select count(*), sum(hash(t)) from"
                f" (select {', '.join(expressions)} from {relation}) t"
            ).fetchall()[0]
            for key, (relation, expressions) in selected.items()
        }


def interrupted_query() -> None:
    """A DuckDB query stopped by Ctrl-C (sent by a timer): DuckDB raises its own error for it,
    ``RuntimeError: Query interrupted``, not ``KeyboardInterrupt``."""
    with duckdb.connect() as connection:

        def ctrl_c() -> None:
            os.kill(os.getpid(), signal.SIGINT)
            # in a pytest-xdist worker DuckDB does not see the signal and the query ran to its
            # end (40 to 50 s on both cores); interrupted as DuckDB's own check of it would be
            time.sleep(0.5)
            with contextlib.suppress(duckdb.Error):  # closed: the signal stopped it
                connection.interrupt()

        threading.Timer(0.3, ctrl_c).start()
        connection.execute("select count(*) from range(10000000000) where range % 7 = 3").fetchall()
