"""Publish a read-only serving copy of the warehouse after a build whose tests all passed.

DuckDB lets one process write a database file, and a reader of the file ``dbt build`` writes
could see a half-built warehouse (or block the build by holding the file open). So BI tools read a
separate serving copy, published in the serving directory (``RETAIL_SERVING_DIR``, default
``serving/`` beside the warehouse) only after ``dbt build`` exits 0:

* ``retail_segments_serving.duckdb``: the whole warehouse, copied to a temporary file in the
  serving directory, stamped with ``serving.build_info`` (build id, time, git commit) and
  ``serving.published_tables`` (every table's row count), checked by reopening it read-only,
  then swapped in with one ``os.replace``. A reader that already has the old file open keeps
  reading the old file; the next one to open it gets the new one. Never a mix.
* ``parquet/<build_id>/<mart>.parquet``: one Parquet file per table of schema ``marts`` with the
  build id in its key-value metadata, and ``manifest.json`` (build id, tables, row counts). The
  directory is written under a temporary name and renamed when complete; then the symlink
  ``parquet/current`` is replaced by rename to point at it. Version directories are never
  changed after that; the newest `KEEP_VERSIONS` are kept.

Anything that fails before the swaps removes its temporary files and leaves the previous serving
copy as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

SERVING_DIR_ENV = "RETAIL_SERVING_DIR"
SERVING_DB_NAME = "retail_segments_serving.duckdb"
PARQUET_DIR_NAME = "parquet"
CURRENT_LINK_NAME = "current"
MANIFEST_NAME = "manifest.json"
PARQUET_SCHEMA = "marts"
SERVING_SCHEMA = "serving"
KEEP_VERSIONS = 3
READ_ONLY_MODE = 0o444


@dataclass(frozen=True)
class BuildInfo:
    """What identifies one published build."""

    build_id: str
    built_at: datetime
    git_sha: str | None
    raw_path: str


@dataclass(frozen=True)
class Published:
    """Where one publish put its files, and the row count of every table it published."""

    build_id: str
    database: Path
    parquet_dir: Path
    row_counts: dict[str, int]


def serving_dir(warehouse: Path, environ: Mapping[str, str] | None = None) -> Path:
    """Return the serving directory: ``RETAIL_SERVING_DIR`` when set, else ``serving/`` in the
    warehouse's directory."""
    environ = os.environ if environ is None else environ
    configured = environ.get(SERVING_DIR_ENV)
    return Path(configured).expanduser().resolve() if configured else warehouse.parent / "serving"


def new_build_info(raw_path: str, project_root: Path, now: datetime | None = None) -> BuildInfo:
    """Return a fresh build identity: a sortable UTC timestamp plus a random suffix, the time, the
    git commit of project_root (None outside a git checkout) and the raw file built from."""
    built_at = now or datetime.now(UTC)
    build_id = f"{built_at:%Y%m%dT%H%M%S%f}Z-{uuid.uuid4().hex[:6]}"
    return BuildInfo(build_id, built_at, _git_sha(project_root), raw_path)


def _git_sha(project_root: Path) -> str | None:
    try:
        found = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=project_root,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return None
    sha = found.stdout.strip()
    return sha if found.returncode == 0 and sha else None


def publish(warehouse: Path, destination: Path, info: BuildInfo) -> Published:
    """Publish warehouse into the serving directory destination as build info.build_id and
    return what was published. Raises (leaving the previous serving copy untouched) if the
    warehouse cannot be snapshotted or the copy does not verify."""
    destination.mkdir(parents=True, exist_ok=True)
    staged_db = destination / f".{SERVING_DB_NAME}.{info.build_id}.tmp"
    parquet_root = destination / PARQUET_DIR_NAME
    parquet_root.mkdir(exist_ok=True)
    staged_parquet = parquet_root / f".{info.build_id}.tmp"
    try:
        snapshot_warehouse(warehouse, staged_db)
        row_counts = stamp_build(staged_db, info)
        verify_serving_copy(staged_db, info.build_id)
        export_marts_to_parquet(staged_db, staged_parquet, info.build_id)
        staged_db.chmod(READ_ONLY_MODE)
        _fsync(staged_db)
        final_parquet = parquet_root / info.build_id
        staged_parquet.rename(final_parquet)
        os.replace(staged_db, destination / SERVING_DB_NAME)
        replace_symlink(parquet_root / CURRENT_LINK_NAME, info.build_id)
        _fsync(destination)
        _fsync(parquet_root)
    finally:
        staged_db.unlink(missing_ok=True)
        Path(f"{staged_db}.wal").unlink(missing_ok=True)
        shutil.rmtree(staged_parquet, ignore_errors=True)
    prune_parquet_versions(parquet_root, KEEP_VERSIONS)
    return Published(info.build_id, destination / SERVING_DB_NAME, final_parquet, row_counts)


def snapshot_warehouse(warehouse: Path, target: Path) -> None:
    """Copy the complete warehouse file to target. The warehouse is checkpointed first (so the
    file holds everything, with no write-ahead log), and the copy is taken while this process
    holds DuckDB's write lock, so no other writer can change it meanwhile."""
    with duckdb.connect(str(warehouse)) as connection:
        connection.execute("checkpoint")
        shutil.copyfile(warehouse, target)


def stamp_build(database: Path, info: BuildInfo) -> dict[str, int]:
    """Write ``serving.build_info`` (one row) and ``serving.published_tables`` (one row per table
    outside schema serving, with its row count) into database; return those row counts keyed by
    ``schema.table``."""
    with duckdb.connect(str(database)) as connection:
        tables = _base_tables(connection)
        counts = {
            name: connection.sql(f"select count(*) from {name}").fetchall()[0][0] for name in tables
        }
        connection.execute(f"create schema {SERVING_SCHEMA}")
        connection.execute(
            f"create table {SERVING_SCHEMA}.build_info as select ?::varchar as build_id,"
            " ?::timestamptz as built_at, ?::varchar as git_sha, ?::varchar as raw_path",
            [info.build_id, info.built_at, info.git_sha, info.raw_path],
        )
        connection.execute(
            f"create table {SERVING_SCHEMA}.published_tables"
            " (table_name varchar primary key, n_rows bigint not null)"
        )
        connection.executemany(
            f"insert into {SERVING_SCHEMA}.published_tables values (?, ?)", list(counts.items())
        )
        connection.execute(
            f"comment on table {SERVING_SCHEMA}.build_info is"
            " 'One row: the build this serving copy was published from.'"
        )
        connection.execute(
            f"comment on table {SERVING_SCHEMA}.published_tables is"
            " 'One row per published table (schema.table) with its row count at publish time.'"
        )
        connection.execute("checkpoint")
    return counts


def verify_serving_copy(database: Path, build_id: str) -> None:
    """Reopen database read-only and check it carries build_id and every table still has its
    recorded row count. Raises RuntimeError otherwise."""
    with duckdb.connect(str(database), read_only=True) as connection:
        found = connection.sql(f"select build_id from {SERVING_SCHEMA}.build_info").fetchall()
        if found != [(build_id,)]:
            raise RuntimeError(f"serving copy carries build {found}, expected {build_id}")
        recorded = connection.sql(
            f"select table_name, n_rows from {SERVING_SCHEMA}.published_tables"
        ).fetchall()
        for table_name, n_rows in recorded:
            actual = connection.sql(f"select count(*) from {table_name}").fetchall()[0][0]
            if actual != n_rows:
                raise RuntimeError(f"{table_name}: {actual} rows in the copy, {n_rows} recorded")


def export_marts_to_parquet(database: Path, target_dir: Path, build_id: str) -> dict[str, int]:
    """Write every table of schema marts in database to ``target_dir/<table>.parquet`` (build id
    in the key-value metadata) plus ``manifest.json``; return the row counts by table name."""
    target_dir.mkdir(parents=True)
    counts: dict[str, int] = {}
    with duckdb.connect(str(database), read_only=True) as connection:
        tables = [
            name for name in _base_tables(connection) if name.startswith(f"{PARQUET_SCHEMA}.")
        ]
        for qualified in tables:
            table = qualified.split(".", 1)[1]
            path = str(target_dir / f"{table}.parquet").replace("'", "''")
            connection.execute(
                f"copy (select * from {qualified}) to '{path}'"
                f" (format parquet, kv_metadata {{build_id: '{build_id}'}})"
            )
            counts[table] = connection.sql(f"select count(*) from {qualified}").fetchall()[0][0]
    manifest = {
        "build_id": build_id,
        "tables": {table: {"file": f"{table}.parquet", "n_rows": n} for table, n in counts.items()},
    }
    (target_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    for path in target_dir.iterdir():
        path.chmod(READ_ONLY_MODE)
        _fsync(path)
    _fsync(target_dir)
    return counts


def replace_symlink(link: Path, target_name: str) -> None:
    """Point link at target_name (relative, in the same directory) atomically: a new symlink is
    made under a temporary name and renamed over the old one."""
    staged = link.with_name(f".{link.name}.{uuid.uuid4().hex[:8]}.tmp")
    staged.symlink_to(target_name)
    os.replace(staged, link)


def prune_parquet_versions(parquet_root: Path, keep: int) -> list[Path]:
    """Remove all but the newest keep version directories (build ids sort by time), never the
    one ``current`` points at; return the removed directories."""
    current = (parquet_root / CURRENT_LINK_NAME).resolve()
    versions = sorted(
        path
        for path in parquet_root.iterdir()
        if path.is_dir() and not path.is_symlink() and not path.name.startswith(".")
    )
    removed = [path for path in versions[:-keep] if path.resolve() != current]
    for path in removed:
        for child in path.iterdir():
            child.unlink()
        path.rmdir()
    return removed


def read_current_parquet_dir(serving: Path) -> Path:
    """Resolve ``parquet/current`` once and return the version directory it names. Read every file
    of one consistent build from there (not through ``current``, which may move meanwhile)."""
    return (serving / PARQUET_DIR_NAME / CURRENT_LINK_NAME).resolve(strict=True)


def _base_tables(connection: duckdb.DuckDBPyConnection) -> list[str]:
    rows = connection.sql(
        "select table_schema || '.' || table_name from information_schema.tables"
        f" where table_type = 'BASE TABLE' and table_schema <> '{SERVING_SCHEMA}'"
        " order by 1"
    ).fetchall()
    return [row[0] for row in rows]


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
