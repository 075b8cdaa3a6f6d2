"""The SparkSession of a Spark build, where its tables live, and running dbt on it in process.

**Tables.** Spark's catalog is kept in memory (``spark.sql.catalogImplementation=in-memory``: no
Hive metastore, no Derby files; a metastore costs a second or more per relation), so it is empty
in every new process. Every table the build writes is therefore an *external* Parquet table at a
fixed path, ``<tables>/<schema>/<table>`` (``macros/spark/tables.sql`` sets the location of every
dbt table, seed and Python model), and `register_existing_tables` registers every such directory
again before dbt starts, so incremental models, the model registry and the serving copy see the
previous build. Directories of schemas starting with ``_`` hold scratch tables and are skipped.

**Session.** `create_session` builds the one session of the process: `session_conf` (master and
driver memory from ``RETAIL_SPARK_MASTER`` / ``RETAIL_SPARK_DRIVER_MEMORY``, the in-memory
catalog, UTC, ANSI off as dbt-spark sets it, CTAS into a non-empty location allowed, the Python
workers running this interpreter). dbt-spark's ``session`` method then finds this session with
``getOrCreate()`` for every statement, so dbt, the input checks and the Python models share it.
Anything else Spark reads from ``spark-defaults.conf`` (``SPARK_CONF_DIR``) still applies.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retail_segments.ops.dbt_runner import console_filtered, log_file
from retail_segments.ops.paths import SPARK_DIR_ENV, warehouse_path

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

MASTER_ENV = "RETAIL_SPARK_MASTER"
DRIVER_MEMORY_ENV = "RETAIL_SPARK_DRIVER_MEMORY"
DEFAULT_MASTER = "local[2]"
DEFAULT_DRIVER_MEMORY = "2g"
TABLES_DIR_NAME = "tables"
MANAGED_DIR_NAME = "managed"
SCRATCH_PREFIX = "_"

# Set on the session and (the runtime ones) re-applied by dbt-spark on every statement through the
# spark target's server_side_parameters in profiles.yml; tests check the two agree.
RUNTIME_CONF: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.shuffle.partitions": "2",
    # a table re-built in a new process is created again (CTAS) at its fixed, non-empty location
    "spark.sql.legacy.allowNonEmptyLocationInCTAS": "true",
    # dbt-spark sets ANSI off on its statements; the input checks run with the same semantics
    "spark.sql.ansi.enabled": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # Parquet timestamps as microseconds (Spark's own `timestamp`, UTC), which DuckDB reads too
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    # an impossible date such as 2/30/2011 is NULL (refused), not an "upgrade" error
    "spark.sql.legacy.timeParserPolicy": "CORRECTED",
}
STATIC_CONF: dict[str, str] = {
    "spark.sql.catalogImplementation": "in-memory",
    "spark.ui.enabled": "false",
    # else progress bars go into dbt's output
    "spark.ui.showConsoleProgress": "false",
}
_MEMORY_FORM = re.compile(r"[1-9][0-9]*[kmgt]", re.IGNORECASE)
# the masters pyspark 4 knows (it has no Mesos support)
_MASTER_FORM = re.compile(r"local(\[([1-9][0-9]*|\*)\])?|(spark|k8s)://\S+|yarn")


def spark_dir(project_root: Path, environ: Mapping[str, str] | None = None) -> Path:
    """Where a Spark build keeps its tables: ``RETAIL_SPARK_DIR`` when set, else ``spark/``
    beside the DuckDB warehouse (``RETAIL_DUCKDB_PATH``), absolute."""
    environ = os.environ if environ is None else environ
    configured = environ.get(SPARK_DIR_ENV)
    if configured:
        return Path(configured).expanduser().resolve()
    return warehouse_path(project_root, environ).parent.resolve() / "spark"


def tables_dir(spark_root: Path) -> Path:
    """The directory holding ``<schema>/<table>/`` of every table of a Spark build."""
    return spark_root / TABLES_DIR_NAME


def check_spark_environment(environ: Mapping[str, str]) -> list[str]:
    """The problems with the ``RETAIL_SPARK_*`` variables that are set, each naming the variable,
    its value and the valid form (empty when all is well)."""
    problems = []
    master = environ.get(MASTER_ENV)
    if master is not None and not _MASTER_FORM.fullmatch(master.strip()):
        problems.append(
            f"{MASTER_ENV} = {master!r} is not a Spark master; valid: local[N], local[*],"
            " spark://host:7077, k8s://..., yarn"
        )
    memory = environ.get(DRIVER_MEMORY_ENV)
    if memory is not None and not _MEMORY_FORM.fullmatch(memory.strip()):
        problems.append(
            f"{DRIVER_MEMORY_ENV} = {memory!r} is not a JVM memory size; valid: a whole number"
            " and a unit k, m, g or t, e.g. 2g or 1536m"
        )
    directory = environ.get(SPARK_DIR_ENV)
    if directory is not None and not directory.strip():
        problems.append(f"{SPARK_DIR_ENV} is set but empty; unset it or give a directory")
    elif directory and Path(directory).expanduser().is_file():
        problems.append(f"{SPARK_DIR_ENV} = {directory!r} is a file; give a directory")
    return problems


# a standalone master's port when its URL names none; how long a master may take to answer
STANDALONE_PORT = 7077
CONNECT_SECONDS = 5.0


def unanswered_master(environ: Mapping[str, str], timeout: float = CONNECT_SECONDS) -> str | None:
    """For a standalone master (``spark://host:port``, or ``spark://h1:p1,h2:p2`` with standby
    masters), the problem when none of its addresses accepts a connection within ``timeout``
    seconds: Spark itself would retry for about two minutes before it says so. None when one
    answers, or for another kind of master."""
    master = (environ.get(MASTER_ENV) or DEFAULT_MASTER).strip()
    if not master.startswith("spark://"):
        return None
    tried = []
    for address in master.removeprefix("spark://").rstrip("/").split(","):
        # host:port, a host alone, or an IPv6 address in brackets with or without its port
        bare = ":" not in address or address.endswith("]")
        host, _, port = (address, "", "") if bare else address.rpartition(":")
        number = int(port) if port.isdigit() else STANDALONE_PORT if not port else -1
        if not 0 < number < 65536:
            tried.append(f"{address}: {port!r} is not a port number")
            continue
        try:
            with socket.create_connection((host.strip("[]"), number), timeout=timeout):
                return None
        except OSError as error:
            tried.append(f"{address}: {error.strerror or error or type(error).__name__}")
    return (
        f"{MASTER_ENV} = {master!r}: no master answers ({'; '.join(tried)}); start the master"
        f" there, or point {MASTER_ENV} at one that runs (unset, the build runs Spark in this"
        f" process: {DEFAULT_MASTER})"
    )


def session_conf(spark_root: Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every setting `create_session` gives the session (see the module docstring)."""
    environ = os.environ if environ is None else environ
    return {
        "spark.master": (environ.get(MASTER_ENV) or DEFAULT_MASTER).strip(),
        "spark.driver.memory": (environ.get(DRIVER_MEMORY_ENV) or DEFAULT_DRIVER_MEMORY).strip(),
        "spark.app.name": "retail-segments",
        "spark.sql.warehouse.dir": str(spark_root / MANAGED_DIR_NAME),
        **STATIC_CONF,
        **RUNTIME_CONF,
    }


def create_session(spark_root: Path, environ: Mapping[str, str] | None = None) -> SparkSession:
    """Start (or return) the process's SparkSession with `session_conf`. Python workers (the
    scoring's ``mapInPandas``) run this interpreter, so they import the same packages."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder
    for key, value in session_conf(spark_root, environ).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    for key, value in RUNTIME_CONF.items():
        session.conf.set(key, value)
    return session


def quote_identifier(name: str) -> str:
    """A Spark SQL identifier in backticks (a backtick inside doubled)."""
    return "`" + name.replace("`", "``") + "`"


def path_literal(path: Path | str) -> str:
    """A Spark SQL string literal holding path exactly (backslash and quote escaped)."""
    return "'" + str(path).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _holds_parquet(directory: Path) -> bool:
    return any(not part.name.startswith((".", "_")) for part in directory.rglob("*.parquet"))


def existing_tables(tables_root: Path) -> list[tuple[str, str, Path]]:
    """Every ``(schema, table, directory)`` under tables_root that holds Parquet data, sorted;
    scratch schemas (``_*``) and hidden directories are left out."""
    found: list[tuple[str, str, Path]] = []
    if not tables_root.is_dir():
        return found
    for schema_dir in sorted(path for path in tables_root.iterdir() if path.is_dir()):
        if schema_dir.name.startswith((SCRATCH_PREFIX, ".")):
            continue
        for table_dir in sorted(path for path in schema_dir.iterdir() if path.is_dir()):
            if not table_dir.name.startswith(".") and _holds_parquet(table_dir):
                found.append((schema_dir.name, table_dir.name, table_dir))
    return found


def register_existing_tables(session: SparkSession, tables_root: Path) -> list[str]:
    """Register every table directory of a previous build (`existing_tables`) as an external
    Parquet table of the session's catalog; return their ``schema.table`` names."""
    registered = []
    for schema, table, directory in existing_tables(tables_root):
        name = f"{quote_identifier(schema)}.{quote_identifier(table)}"
        session.sql(f"create schema if not exists {quote_identifier(schema)}")
        location = path_literal(directory)
        session.sql(f"create table if not exists {name} using parquet location {location}")
        registered.append(f"{schema}.{table}")
    return registered


def run_dbt_in_process(args: Sequence[str], env: Mapping[str, str], project_root: Path) -> int:
    """Run ``dbt <args>`` on the project inside this process (so its dbt-spark ``session``
    connection and Python models use this process's SparkSession); dbt's command-line exit code:
    0 when it succeeded, 1 when a node failed, 2 when dbt stopped on an error (e.g. a selection
    that names nothing). dbt's console passes `ConsoleFilter` as the DuckDB build's does
    (`retail_segments.ops.dbt_runner.console_filtered`); when Ctrl-C stopped dbt (which then
    printed what it cancelled), ``KeyboardInterrupt`` goes on to the command, which says so; when
    the command's output was closed (dbt is then stopped as on Ctrl-C), ``BrokenPipeError``."""
    from dbt.cli.exceptions import DbtInternalException, DbtUsageException
    from dbt.cli.main import dbtRunner

    os.environ.update(env)
    # in this process a relative --log-path or DBT_LOG_PATH is taken from its working directory
    log_path = log_file(args, os.environ, project_root, given_from=Path.cwd())
    with console_filtered(log_path) as console:
        result: Any = dbtRunner().invoke(
            [*args, "--project-dir", str(project_root), "--profiles-dir", str(project_root)]
        )
    if console.closed_output:  # dbt was stopped as on Ctrl-C; the command says why
        raise BrokenPipeError(errno.EPIPE, "the command's output was closed while dbt ran")
    if isinstance(result.exception, KeyboardInterrupt):
        raise KeyboardInterrupt
    if result.success:
        return 0
    if result.exception is not None:
        # dbt has logged every error of a command that started ("Encountered an error"); only a
        # wrong option, which stops it before, is left for us to say (as the dbt command does)
        if isinstance(result.exception, DbtUsageException | DbtInternalException):
            print(f"dbt stopped: {result.exception}", file=sys.stderr)
        return 2
    return 1
