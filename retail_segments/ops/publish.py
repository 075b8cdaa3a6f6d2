"""Publish a read-only serving copy of what BI tools read, after a build whose tests all passed.

DuckDB lets one process write a database file, and a reader of the file ``dbt build`` writes
could see a half-built warehouse (or block the build by holding the file open). So BI tools read a
separate serving copy, published in the serving directory (``RETAIL_SERVING_DIR``, default
``serving/`` beside the warehouse) only after ``dbt build`` exits 0.

What is published is declared in dbt: every model with ``access: public`` that is materialized as
a table (or incremental table), read from the ``manifest.json`` of the build (`published_relations`,
`manifest_path`). Staging, intermediate, seeds, ops, the model registry's blobs, the Python fit
models and every view stay in the build warehouse.

* ``retail_segments_serving.duckdb``: a new DuckDB file written in storage version
  `STORAGE_VERSION`, which DuckDB `OLDEST_DUCKDB_READER` and every later 1.x and 2.x release
  open. Each published table is copied with its column types, NOT NULL, PRIMARY KEY and UNIQUE
  constraints, and its table and column comments; nothing else (no view, no macro, nothing that
  reads a file), so the copy answers every query on a machine that has never seen the raw data.
  A ``TIMESTAMP WITH TIME ZONE`` column is stored as a plain ``TIMESTAMP`` holding UTC time, and
  its comment says so (`UTC_NOTE`): the same in every client, whatever its time zone. It is
  stamped with ``serving.build_info`` (build id, time, git commit, raw file) and
  ``serving.published_tables`` (every published table's row count), written to a temporary file
  in the serving directory, checked by reopening it read-only, then swapped in with one
  ``os.replace``. A reader that already has the old file open keeps reading the old file; the next
  one to open it gets the new one. Never a mix.
* ``parquet/<build_id>/<mart>.parquet``: one Parquet file per published table of schema
  ``marts``, streamed from the serving copy in record batches (never a whole table in memory),
  with the build id (and the table's description) in the file's key-value metadata and each
  column's description as Arrow field metadata (key ``description``), plus ``manifest.json``
  (build id, tables, row counts). The directory is written under a temporary name and renamed when
  complete; then the symlink ``parquet/current`` is replaced by rename to point at it. Version
  directories are never changed after that; the newest `KEEP_VERSIONS` are kept.

Anything that fails before the swaps removes its temporary files and leaves the previous serving
copy as it was.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from retail_segments.ops.dbt_args import DbtArgsError, DbtBuildArgs
from retail_segments.ops.paths import SERVING_DIR_ENV, find_project_root
from retail_segments.sql import quote_identifier, string_literal

SERVING_DB_NAME = "retail_segments_serving.duckdb"
PARQUET_DIR_NAME = "parquet"
CURRENT_LINK_NAME = "current"
MANIFEST_NAME = "manifest.json"
PARQUET_SCHEMA = "marts"
SERVING_SCHEMA = "serving"
KEEP_VERSIONS = 3
READ_ONLY_MODE = 0o444

# The oldest storage format DuckDB 2.0 writes that keeps everything the published tables use
# (their types, comments and constraints) and that a DuckDB 1.x release reads: files written by
# DuckDB 2.0 in any older storage version with a PRIMARY KEY fail to open in DuckDB 1.0
# ("Failed to deserialize"), and open in 1.1.0 and later. The Makefile installs that reader.
STORAGE_VERSION = "v1.1.0"
OLDEST_DUCKDB_READER = "1.1.0"

# dbt's target directory when neither ``--target-path`` nor DBT_TARGET_PATH is given
# (``target-path`` in dbt_project.yml).
DBT_TARGET_PATH_ENV = "DBT_TARGET_PATH"
DEFAULT_TARGET_DIR = "target"
DBT_MANIFEST_NAME = "manifest.json"
PUBLISHED_MATERIALIZATIONS = ("table", "incremental")

UTC_NOTE = "UTC, stored without a time zone."
PARQUET_ROW_GROUP_ROWS = 1_000_000
DESCRIPTION_KEY = b"description"
BUILD_ID_KEY = b"build_id"


@dataclass(frozen=True)
class BuildInfo:
    """What identifies one published build."""

    build_id: str
    built_at: datetime
    git_sha: str | None
    raw_path: str
    # what the build reflects, from its prepared stamp (None without one): its vars as a JSON
    # object, and every input file (role, path, SHA-256, lines) as a JSON list
    vars_json: str | None = None
    input_files_json: str | None = None


@dataclass(frozen=True, order=True)
class Relation:
    """One table of the published set: its schema and name (dbt's schema and alias)."""

    schema: str
    name: str

    @property
    def qualified(self) -> str:
        """``schema.name``, as in ``serving.published_tables``."""
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class Published:
    """Where one publish put its files, the row count of every table it published, and the
    published tables that were not in the warehouse (so not published)."""

    build_id: str
    database: Path
    parquet_dir: Path
    row_counts: dict[str, int]
    missing: tuple[str, ...] = ()

    def summary(self) -> str:
        """What a build prints after publishing: the build id and the two outputs."""
        n_parquet = len(list(self.parquet_dir.glob("*.parquet")))
        return (
            f"Published build {self.build_id}:\n"
            f"  {self.database} ({len(self.row_counts)} tables; open read-only)\n"
            f"  {self.parquet_dir}/ ({n_parquet} Parquet files)"
        )


def serving_dir(warehouse: Path, environ: Mapping[str, str] | None = None) -> Path:
    """Return the serving directory: ``RETAIL_SERVING_DIR`` when set, else ``serving/`` in the
    warehouse's directory."""
    environ = os.environ if environ is None else environ
    configured = environ.get(SERVING_DIR_ENV)
    return Path(configured).expanduser().resolve() if configured else warehouse.parent / "serving"


def manifest_path(
    dbt_args: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    project_root: Path | None = None,
) -> Path:
    """Return the ``manifest.json`` a dbt run with dbt_args and environ wrote: in the directory of
    ``--target-path`` when given, else of ``DBT_ENGINE_TARGET_PATH`` or ``DBT_TARGET_PATH``, else
    ``target/`` (as dbt's parser reads them: `retail_segments.ops.dbt_args`); a relative
    directory is taken from project_root (dbt runs there)."""
    environ = os.environ if environ is None else environ
    try:
        target = DbtBuildArgs.parse(dbt_args, environ).value("target_path") or DEFAULT_TARGET_DIR
    except DbtArgsError:
        target = DEFAULT_TARGET_DIR  # dbt refused them: it wrote no manifest
    return (project_root or find_project_root()) / Path(target).expanduser() / DBT_MANIFEST_NAME


def published_relations(manifest: Path) -> list[Relation]:
    """Return the published set declared in the dbt manifest at manifest: every model with
    ``access: public`` materialized as a table or incremental table, as (schema, alias), sorted.
    Raises RuntimeError when the manifest is missing, unreadable or declares no such model."""
    try:
        nodes = json.loads(manifest.read_text())["nodes"]
    except FileNotFoundError:
        raise RuntimeError(
            f"no dbt manifest at {manifest}; the published set is read from it: run `dbt build`"
            f" (make build) first, or set {DBT_TARGET_PATH_ENV} to that build's target directory"
        ) from None
    except (OSError, ValueError, KeyError) as error:
        raise RuntimeError(f"cannot read the dbt manifest {manifest}: {error}") from None
    relations = sorted(
        Relation(node["schema"], node["alias"])
        for node in nodes.values()
        if node.get("resource_type") == "model"
        and node.get("access") == "public"
        and node.get("config", {}).get("materialized") in PUBLISHED_MATERIALIZATIONS
    )
    if not relations:
        raise RuntimeError(
            f"the dbt manifest {manifest} declares no model with access: public to publish"
        )
    return relations


@dataclass(frozen=True)
class PreparedInputs:
    """What a prepared build's stamp records for `BuildInfo`: its vars and every input file."""

    vars_json: str
    input_files_json: str


def read_prepared(stamp: Path | None) -> PreparedInputs | None:
    """The vars and input files the prepared ``stamp`` records (None without a stamp). Read it
    while the stamp exists: later preparations prune older prepared sets."""
    if stamp is None:
        return None
    prepared = json.loads(stamp.read_text())
    return PreparedInputs(
        json.dumps({str(item["name"]): str(item["value"]) for item in prepared["vars"]}),
        json.dumps(
            [
                {key: item[key] for key in ("role", "path", "sha256", "n_rows")}
                for item in prepared["files"]
            ]
        ),
    )


def new_build_info(
    raw_path: str,
    project_root: Path,
    now: datetime | None = None,
    prepared: PreparedInputs | None = None,
) -> BuildInfo:
    """Return a fresh build identity: a sortable UTC timestamp plus a random suffix, the time, the
    git commit of project_root (None outside a git checkout), the raw file built from and, when
    given, the prepared build's vars and every input file (`read_prepared`)."""
    built_at = now or datetime.now(UTC)
    build_id = f"{built_at:%Y%m%dT%H%M%S%f}Z-{uuid.uuid4().hex[:6]}"
    return BuildInfo(
        build_id,
        built_at,
        _git_sha(project_root),
        raw_path,
        None if prepared is None else prepared.vars_json,
        None if prepared is None else prepared.input_files_json,
    )


def _git_sha(project_root: Path) -> str | None:
    """The git commit of project_root, with ``+dirty`` when a tracked file (a model, a macro, the
    package, a seed) differs from it, so the build ran code the commit does not hold; None
    outside a git checkout."""

    def git(*args: str) -> subprocess.CompletedProcess[str] | None:
        try:
            return subprocess.run(
                ["git", *args], cwd=project_root, capture_output=True, text=True, check=False
            )
        except OSError:
            return None

    found = git("rev-parse", "HEAD")
    sha = found.stdout.strip() if found is not None and found.returncode == 0 else ""
    if not sha:
        return None
    changed = git("status", "--porcelain", "--untracked-files=no")
    dirty = changed is None or changed.returncode != 0 or bool(changed.stdout.strip())
    return f"{sha}+dirty" if dirty else sha


def publish(
    warehouse: Path, destination: Path, info: BuildInfo, relations: Sequence[Relation]
) -> Published:
    """Publish the tables relations of warehouse into the serving directory destination as build
    info.build_id and return what was published. Raises (leaving the previous serving copy
    untouched) if the warehouse cannot be read or the copy does not verify."""
    destination.mkdir(parents=True, exist_ok=True)
    # one publish at a time per serving folder (two warehouses may share one): the DuckDB file and
    # the Parquet link are replaced in two steps, which must not interleave with another's. The
    # lock is the folder's own (flock on it), released when the process ends or is killed.
    folder = os.open(destination, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        return _publish_locked(warehouse, destination, info, relations)
    finally:
        os.close(folder)


def _sweep_staged(destination: Path, parquet_root: Path) -> None:
    """Remove what a publish that was killed left staged (under the publish lock, so no other
    publish is staging now)."""
    for leftover in destination.glob(f".{SERVING_DB_NAME}.*.tmp*"):
        leftover.unlink(missing_ok=True)
    for leftover in parquet_root.glob(".*.tmp"):
        if leftover.is_symlink():  # a staged `current` link
            leftover.unlink(missing_ok=True)
        else:
            shutil.rmtree(leftover, ignore_errors=True)


def _check_current_link(parquet_root: Path) -> None:
    """Refuse, before anything is replaced, a ``current`` that is not the link a publish replaces
    (a folder, as a copy of the serving folder made with ``cp -L`` or ``rsync -L`` leaves): the
    DuckDB file would be replaced and the Parquet readers left on the old build."""
    link = parquet_root / CURRENT_LINK_NAME
    if link.exists() and not link.is_symlink():
        raise RuntimeError(
            f"{link} is not a symbolic link to a build's folder (a copy made with cp -L or"
            " rsync -L?), so Parquet readers could not be moved to the new build with the DuckDB"
            " file; remove it (the builds' folders beside it stay), then build again"
        )


def _publish_locked(
    warehouse: Path, destination: Path, info: BuildInfo, relations: Sequence[Relation]
) -> Published:
    staged_db = destination / f".{SERVING_DB_NAME}.{info.build_id}.tmp"
    parquet_root = destination / PARQUET_DIR_NAME
    parquet_root.mkdir(exist_ok=True)
    _sweep_staged(destination, parquet_root)
    _check_current_link(parquet_root)
    staged_parquet = parquet_root / f".{info.build_id}.tmp"
    try:
        row_counts, missing = write_serving_copy(warehouse, staged_db, relations, info)
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
    return Published(
        info.build_id, destination / SERVING_DB_NAME, final_parquet, row_counts, tuple(missing)
    )


def write_serving_copy(
    warehouse: Path, target: Path, relations: Sequence[Relation], info: BuildInfo
) -> tuple[dict[str, int], list[str]]:
    """Write a new DuckDB file target (storage version `STORAGE_VERSION`) holding a copy of every
    table of relations found in warehouse (see `copy_table`), plus ``serving.build_info`` and
    ``serving.published_tables``. The warehouse is attached read-only, which keeps any writer out
    while it is copied. Return the row count of every copied table keyed by ``schema.table``,
    and the ``schema.table`` of every relation the warehouse does not hold (not copied)."""
    with duckdb.connect() as connection:
        connection.execute("set enable_progress_bar = false")
        connection.execute(f"attach {string_literal(str(warehouse))} as source_db (read_only)")
        connection.execute(
            f"attach {string_literal(str(target))} as serving_db"
            f" (storage_version {string_literal(STORAGE_VERSION)})"
        )
        present = set(
            connection.sql(
                "select schema_name, table_name from duckdb_tables()"
                " where database_name = 'source_db'"
            ).fetchall()
        )
        counts: dict[str, int] = {}
        missing: list[str] = []
        for relation in relations:
            if (relation.schema, relation.name) in present:
                counts[relation.qualified] = copy_table(connection, relation)
            else:
                missing.append(relation.qualified)
        _stamp_build(connection, info, counts)
        connection.execute("detach serving_db")
    return counts, missing


def copy_table(connection: duckdb.DuckDBPyConnection, relation: Relation) -> int:
    """Create relation in database ``serving_db`` like it is in ``source_db`` (column types,
    NOT NULL, PRIMARY KEY and UNIQUE constraints, table and column comments), fill it in the same
    row order and return its row count. A ``TIMESTAMP WITH TIME ZONE`` column becomes a
    ``TIMESTAMP`` holding the UTC time, its comment ending in `UTC_NOTE`."""
    columns, keys, table_comment = _table_metadata(connection, "source_db", relation)
    definitions, selected, comments = [], [], {}
    for name, data_type, is_nullable, comment in columns:
        column = quote_identifier(name)
        if data_type == "TIMESTAMP WITH TIME ZONE":
            data_type = "TIMESTAMP"
            selected.append(f"timezone('UTC', {column})")
            comment = f"{comment.rstrip()} {UTC_NOTE}" if comment else UTC_NOTE
        else:
            selected.append(column)
        definitions.append(f"{column} {data_type}{'' if is_nullable else ' not null'}")
        if comment:
            comments[column] = comment
    definitions += [
        f"{kind.lower()} ({', '.join(quote_identifier(name) for name in names)})"
        for kind, names in keys
    ]
    schema, table = quote_identifier(relation.schema), quote_identifier(relation.name)
    target, source = f"serving_db.{schema}.{table}", f"source_db.{schema}.{table}"
    connection.execute(f"create schema if not exists serving_db.{schema}")
    connection.execute(f"create table {target} ({', '.join(definitions)})")
    (n_rows,) = connection.execute(
        f"insert into {target} select {', '.join(selected)} from {source}"
    ).fetchall()[0]
    if table_comment:
        connection.execute(f"comment on table {target} is {string_literal(table_comment)}")
    for column, comment in comments.items():
        connection.execute(f"comment on column {target}.{column} is {string_literal(comment)}")
    return n_rows


def _stamp_build(
    connection: duckdb.DuckDBPyConnection, info: BuildInfo, counts: Mapping[str, int]
) -> None:
    """Create ``serving.build_info`` (one row) and ``serving.published_tables`` (one row per
    copied table with its row count) in database ``serving_db``."""
    schema = f"serving_db.{SERVING_SCHEMA}"
    connection.execute(f"create schema {schema}")
    connection.execute(
        f"create table {schema}.build_info (build_id varchar not null, built_at timestamp not null,"
        " git_sha varchar, raw_path varchar not null, vars_json varchar, input_files_json varchar)"
    )
    built_at = info.built_at.astimezone(UTC).replace(tzinfo=None)
    connection.execute(
        f"insert into {schema}.build_info values (?, ?, ?, ?, ?, ?)",
        [
            info.build_id,
            built_at,
            info.git_sha,
            info.raw_path,
            info.vars_json,
            info.input_files_json,
        ],
    )
    connection.execute(
        f"create table {schema}.published_tables"
        " (table_name varchar primary key, n_rows bigint not null)"
    )
    connection.executemany(
        f"insert into {schema}.published_tables values (?, ?)", list(counts.items())
    )
    comments = {
        "table build_info": "One row: the build this serving copy was published from.",
        "column build_info.build_id": "Build id: UTC time of the publish and a random suffix.",
        "column build_info.built_at": f"When the build was published; {UTC_NOTE}",
        "column build_info.git_sha": (
            "Git commit of the project that built it, with +dirty when tracked files differed"
            " from it (null outside git)."
        ),
        "column build_info.raw_path": "The raw file it was built from.",
        "column build_info.vars_json": (
            "The dbt vars it was built with (rfm_as_of, ...), a JSON object of name to value."
        ),
        "column build_info.input_files_json": (
            "Every input file it reflects (the raw file, then each daily file), a JSON list of"
            " role, path, sha256 and n_rows (data lines)."
        ),
        "table published_tables": (
            "One row per published table (schema.table) with its row count at publish time."
        ),
        "column published_tables.table_name": "schema.table of a published table.",
        "column published_tables.n_rows": "Its row count at publish time.",
    }
    for target, comment in comments.items():
        kind, name = target.split(" ")
        connection.execute(f"comment on {kind} {schema}.{name} is {string_literal(comment)}")


def verify_serving_copy(database: Path, build_id: str) -> None:
    """Reopen database read-only and check it carries build_id, holds exactly the tables
    ``serving.published_tables`` lists (plus the serving tables) and no view, and that every table
    still has its recorded row count. Raises RuntimeError otherwise."""
    with duckdb.connect(str(database), read_only=True) as connection:
        found = connection.sql(f"select build_id from {SERVING_SCHEMA}.build_info").fetchall()
        if found != [(build_id,)]:
            raise RuntimeError(f"serving copy carries build {found}, expected {build_id}")
        recorded = dict(
            connection.sql(
                f"select table_name, n_rows from {SERVING_SCHEMA}.published_tables"
            ).fetchall()
        )
        tables = {
            name
            for (name,) in connection.sql(
                "select schema_name || '.' || table_name from duckdb_tables()"
                f" where schema_name <> '{SERVING_SCHEMA}'"
            ).fetchall()
        }
        if tables != set(recorded):
            raise RuntimeError(
                f"serving copy holds tables {sorted(tables ^ set(recorded))} unlike its record"
            )
        views = connection.sql("select view_name from duckdb_views() where not internal")
        if found_views := views.fetchall():
            raise RuntimeError(f"serving copy holds views {found_views}")
        for table_name, n_rows in recorded.items():
            actual = connection.sql(f"select count(*) from {table_name}").fetchall()[0][0]
            if actual != n_rows:
                raise RuntimeError(f"{table_name}: {actual} rows in the copy, {n_rows} recorded")


def export_marts_to_parquet(database: Path, target_dir: Path, build_id: str) -> dict[str, int]:
    """Write every table of schema marts in database to ``target_dir/<table>.parquet`` (see
    `write_parquet`) plus ``manifest.json`` (the build id, its vars and input files as
    ``serving.build_info`` holds them, and each table's file and rows); return the row counts by
    table name."""
    target_dir.mkdir(parents=True)
    counts: dict[str, int] = {}
    with duckdb.connect(str(database), read_only=True) as connection:
        connection.execute("set enable_progress_bar = false")
        tables = connection.execute(
            "select table_name from duckdb_tables() where schema_name = ? order by 1",
            [PARQUET_SCHEMA],
        ).fetchall()
        for (table,) in tables:
            counts[table] = write_parquet(
                connection,
                Relation(PARQUET_SCHEMA, table),
                target_dir / f"{table}.parquet",
                build_id,
            )
        vars_json, files_json = connection.execute(
            f"select vars_json, input_files_json from {SERVING_SCHEMA}.build_info"
        ).fetchall()[0]
    manifest = {
        "build_id": build_id,
        # what the build reflects, as serving.build_info holds it (null without a prepared stamp)
        "vars": None if vars_json is None else json.loads(vars_json),
        "input_files": None if files_json is None else json.loads(files_json),
        "tables": {table: {"file": f"{table}.parquet", "n_rows": n} for table, n in counts.items()},
    }
    (target_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    for path in target_dir.iterdir():
        path.chmod(READ_ONLY_MODE)
        _fsync(path)
    _fsync(target_dir)
    return counts


def write_parquet(
    connection: duckdb.DuckDBPyConnection, relation: Relation, path: Path, build_id: str
) -> int:
    """Stream the table relation of connection's database into the Parquet file path, in row
    groups of `PARQUET_ROW_GROUP_ROWS` rows, holding at most one row group in memory. Each column's
    comment becomes its Arrow field metadata ``description`` and a NOT NULL column a required
    (non-nullable) field; the file's key-value metadata holds
    ``build_id`` and the table comment as ``description``. Return the number of rows written."""
    (database,) = connection.execute("select current_database()").fetchall()[0]
    columns, _keys, table_comment = _table_metadata(connection, database, relation)
    descriptions = {name: comment for name, _type, _nullable, comment in columns}
    required = {name for name, _type, nullable, _comment in columns if not nullable}
    query = f"select * from {quote_identifier(relation.schema)}.{quote_identifier(relation.name)}"
    reader = connection.sql(query).to_arrow_reader(PARQUET_ROW_GROUP_ROWS)
    fields = []
    for field in reader.schema:
        # a NOT NULL column is a required field, as readers of the DuckDB copy see it
        field = field.with_nullable(field.name not in required)
        if description := descriptions.get(field.name):
            field = field.with_metadata({DESCRIPTION_KEY: description.encode()})
        fields.append(field)
    file_metadata = {BUILD_ID_KEY: build_id.encode()}
    if table_comment:
        file_metadata[DESCRIPTION_KEY] = table_comment.encode()
    schema = pa.schema(fields, metadata=file_metadata)
    n_rows, pending, pending_rows = 0, [], 0
    with pq.ParquetWriter(path, schema) as writer:
        for batch in reader:
            pending.append(pa.RecordBatch.from_arrays(batch.columns, schema=schema))
            pending_rows += batch.num_rows
            if pending_rows >= PARQUET_ROW_GROUP_ROWS:
                writer.write_table(pa.Table.from_batches(pending, schema), PARQUET_ROW_GROUP_ROWS)
                n_rows, pending, pending_rows = n_rows + pending_rows, [], 0
        if pending:
            writer.write_table(pa.Table.from_batches(pending, schema), PARQUET_ROW_GROUP_ROWS)
            n_rows += pending_rows
    return n_rows


def replace_symlink(link: Path, target_name: str) -> None:
    """Point link at target_name (relative, in the same directory) atomically: a new symlink is
    made under a temporary name and renamed over the old one."""
    staged = link.with_name(f".{link.name}.{uuid.uuid4().hex[:8]}.tmp")
    staged.symlink_to(target_name)
    os.replace(staged, link)


# The name of a version directory a publish makes (`new_build_info`'s build id): the prune removes
# nothing else, so a folder someone keeps beside them is left alone.
BUILD_ID_PATTERN = re.compile(r"^\d{8}T\d{12}Z-[0-9a-f]{6}$")


def prune_parquet_versions(parquet_root: Path, keep: int) -> list[Path]:
    """Remove all but the newest keep version directories (build ids sort by time), never the
    one ``current`` points at nor anything not named as a build id; return the removed
    directories. One that cannot be removed is left (the publish has happened already)."""
    current = (parquet_root / CURRENT_LINK_NAME).resolve()
    versions = sorted(
        path
        for path in parquet_root.iterdir()
        if BUILD_ID_PATTERN.match(path.name) and path.is_dir() and not path.is_symlink()
    )
    removed = []
    for path in versions[:-keep]:
        if path.resolve() == current:
            continue
        try:
            shutil.rmtree(path)
        except OSError:
            continue
        removed.append(path)
    return removed


def read_current_parquet_dir(serving: Path) -> Path:
    """Resolve ``parquet/current`` once and return the version directory it names. Read every file
    of one consistent build from there (not through ``current``, which may move meanwhile)."""
    return (serving / PARQUET_DIR_NAME / CURRENT_LINK_NAME).resolve(strict=True)


def _table_metadata(
    connection: duckdb.DuckDBPyConnection, database: str, relation: Relation
) -> tuple[list[tuple[str, str, bool, str | None]], list[tuple[str, list[str]]], str | None]:
    """The columns (name, type, nullable, comment) in order, the PRIMARY KEY and UNIQUE
    constraints (type, column names) and the comment of table relation in database."""
    where = "database_name = ? and schema_name = ? and table_name = ?"
    parameters = [database, relation.schema, relation.name]
    columns = connection.execute(
        "select column_name, data_type, is_nullable, comment from duckdb_columns()"
        f" where {where} order by column_index",
        parameters,
    ).fetchall()
    keys = connection.execute(
        "select constraint_type, constraint_column_names from duckdb_constraints()"
        f" where {where} and constraint_type in ('PRIMARY KEY', 'UNIQUE') order by all",
        parameters,
    ).fetchall()
    (comment,) = connection.execute(
        f"select comment from duckdb_tables() where {where}", parameters
    ).fetchall()[0]
    return columns, keys, comment


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
