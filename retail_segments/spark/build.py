"""``python -m retail_segments build --target spark`` (``make build TARGET=spark``): the whole build
on one SparkSession, in one Python process.

1. Check the ``RETAIL_SPARK_*`` settings, that pyspark and Java are there and that a standalone
   master answers.
2. Prepare the inputs as the DuckDB build does (`retail_segments.ops.preflight.prepare`), the
   value checks and typed landing running in Spark (`retail_segments.spark.inputs`); a problem
   stops here with exit code 2 and nothing is built. The session
   (`retail_segments.spark.session.create_session`) starts when a file is landed or dbt is to
   run, and registers the tables of the previous Spark build (``RETAIL_SPARK_DIR``, default
   ``spark/`` beside the DuckDB warehouse): inputs landed before need no JVM to be refused.
3. Run ``dbt build`` in this process (dbt-spark's ``session`` method finds the session), the dbt
   Python models included (`retail_segments.spark.python_models`).
4. When dbt succeeded, publish the serving copy from the Spark tables
   (`retail_segments.spark.publish`), as the DuckDB build publishes its warehouse.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from retail_segments.ops.dbt_args import dbt_target, has_selection
from retail_segments.ops.inputs import TextSource
from retail_segments.ops.paths import RAW_PATH_ENV, find_project_root, warehouse_path
from retail_segments.ops.preflight import (
    BuiltVars,
    PendingRefresh,
    PreflightError,
    PreparedBuild,
    SparkTables,
    prepare,
    prepared_stamp,
    selected_build_problem,
    stamp_vars,
    vars_since_built,
)
from retail_segments.ops.publish import (
    manifest_path,
    new_build_info,
    publish,
    published_relations,
    read_prepared,
    serving_dir,
)
from retail_segments.spark.session import (
    SPARK_DIR_ENV,
    check_spark_environment,
    spark_dir,
    tables_dir,
    unanswered_master,
)

INSTALL_FIX = "run `make build TARGET=spark`, which installs them (or `pip install -e '.[spark]'`"
JAVA_FIX = (
    "install Java 17 (Debian/Ubuntu: apt-get install openjdk-17-jre-headless; `make build"
    " TARGET=spark` does it when run as root)"
)


def is_spark_target(
    project_root: Path, dbt_args: Sequence[str], environ: Mapping[str, str]
) -> bool:
    """Whether the dbt target of this run (``--target``, else ``DBT_TARGET``, else the profile's
    default) is of type spark in the project's profiles.yml."""
    try:
        profiles = yaml.safe_load((project_root / "profiles.yml").read_text()) or {}
        profile = profiles["retail_segments"]
        target = dbt_target(dbt_args, environ) or profile.get("target")
        return profile["outputs"][target].get("type") == "spark"
    except (OSError, KeyError, TypeError, AttributeError, yaml.YAMLError):
        return False


def missing_requirements() -> list[str]:
    """What the Spark build needs and this machine lacks, each with the fix."""
    problems = []
    for module in ("pyspark", "dbt.adapters.spark"):
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            problems.append(f"the Python package {module} is not installed; {INSTALL_FIX})")
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        java = Path(java_home).expanduser() / "bin" / "java"
        if not (java.is_file() and os.access(java, os.X_OK)):
            problems.append(
                f"JAVA_HOME = {java_home!r} has no bin/java, which Spark starts; point it at a"
                f" Java 17 installation or unset it to use the java on PATH; {JAVA_FIX}"
            )
    elif shutil.which("java") is None:
        problems.append(f"no Java on PATH (nor JAVA_HOME), which Spark runs on; {JAVA_FIX}")
    return problems


def _announce(prepared: PreparedBuild, root: Path, registered: int, seconds: float) -> None:
    print(
        f"Spark: session started in {seconds:.1f} s; {registered} table(s) of the last build"
        f" registered from {root}\n{prepared.inputs_summary(' in Spark')}",
        flush=True,
    )
    prepared.identity.announce()


class SparkStartError(Exception):
    """Spark did not start: the message names the settings and the Java it used."""


class _SessionOnDemand:
    """The build's SparkSession, started (and the previous build's tables registered) when first
    needed: to land an input, or to run dbt. A build that `prepare` refuses on inputs landed
    before (the landing keeps them) starts no JVM. Calling it returns the session, or raises
    `SparkStartError`."""

    def __init__(self, root: Path, tables: Path, environ: Mapping[str, str]) -> None:
        self._root, self._tables, self._environ = root, tables, environ
        self._session: Any = None
        self.seconds = 0.0
        self.registered = 0

    def __call__(self) -> Any:
        if self._session is None:
            from py4j.protocol import Py4JError
            from pyspark.errors import PySparkRuntimeError

            from retail_segments.spark.session import create_session, register_existing_tables

            started = time.monotonic()
            try:
                session = create_session(self._root, self._environ)
            except (PySparkRuntimeError, Py4JError) as error:
                raise SparkStartError(_start_failure(error, self._environ)) from error
            self.registered = len(register_existing_tables(session, self._tables))
            self.seconds = time.monotonic() - started
            self._session = session
        return self._session


class _LanderOnDemand:
    """`retail_segments.spark.inputs.SparkLander` on the session started when a file is landed."""

    engine = "spark"

    def __init__(self, session: _SessionOnDemand) -> None:
        self._session = session

    def land(
        self, path: Path, source: TextSource, names: list[str], sha256: str, target: Path
    ) -> tuple[int, datetime | None, datetime | None]:
        from retail_segments.spark.inputs import SparkLander

        return SparkLander(self._session()).land(path, source, names, sha256, target)


def _start_failure(error: Exception, environ: Mapping[str, str]) -> str:
    """What to say when Spark did not start. JAVA_GATEWAY_EXITED: the JVM did not start (a Java
    other than 17, a heap too small, a master Spark does not know); a Py4JJavaError: the session
    did not start (a master that does not answer)."""
    from retail_segments.spark.session import (
        DEFAULT_DRIVER_MEMORY,
        DEFAULT_MASTER,
        DRIVER_MEMORY_ENV,
        MASTER_ENV,
    )

    text = str(error).strip()
    first_line = text.splitlines()[0] if text else repr(error)
    master = (environ.get(MASTER_ENV) or DEFAULT_MASTER).strip()
    memory = (environ.get(DRIVER_MEMORY_ENV) or DEFAULT_DRIVER_MEMORY).strip()
    java_home = environ.get("JAVA_HOME")
    java = (
        f"JAVA_HOME = {java_home!r}"
        if java_home
        else f"the java on PATH, {shutil.which('java', path=environ.get('PATH'))}"
    )
    return (
        f"Spark did not start ({first_line}); nothing was built or replaced.\n"
        f"  Fix: check the Spark settings ({MASTER_ENV} = {master!r}: a master that answers;"
        f" {DRIVER_MEMORY_ENV} = {memory!r}: at least 512m) and the Java ({java}: java"
        f" -version must say 17); {JAVA_FIX}."
    )


def build(dbt_args: list[str]) -> int:
    """The Spark build (see the module docstring); the process's exit code."""
    from retail_segments.ops.settings import SettingsError, check_environment

    project_root = find_project_root()
    environ = dict(os.environ)
    try:
        check_environment(environ)
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    problems = check_spark_environment(environ) + missing_requirements()
    if not problems:
        problems = [problem for problem in [unanswered_master(environ)] if problem]
    if problems:
        print(
            "error: the Spark build cannot start; nothing was built or replaced:\n"
            + "\n".join(f"  {problem}" for problem in problems),
            file=sys.stderr,
        )
        return 2

    from retail_segments.spark import python_models
    from retail_segments.spark.session import run_dbt_in_process

    root = spark_dir(project_root, environ)
    tables = tables_dir(root)
    tables.mkdir(parents=True, exist_ok=True)
    session = _SessionOnDemand(root, tables, environ)
    try:
        prepared = prepare(
            project_root,
            environ,
            dbt_args,
            spark=SparkTables(_LanderOnDemand(session), tables),
            activate=False,
        )
        problem = selected_build_problem(prepared, dbt_args, project_root)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 2
        spark = session()
    except (PreflightError, SparkStartError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    prepared.activate()
    _announce(prepared, root, session.registered, session.seconds)
    env = {**prepared.env, SPARK_DIR_ENV: str(root)}
    python_models.install(spark)
    # what the DuckDB build's hooks record (macros/built_vars.sql, macros/refresh_state.sql):
    # a run has started (the vars of the last whole build stop holding if these differ), and the
    # rebuild the inputs need is pending until a whole build succeeds
    built = BuiltVars.of_stamp(prepared.stamp)
    pending = PendingRefresh(built.engine, built.warehouse)
    built.start(vars_differ=bool(vars_since_built(prepared.stamp)))
    if prepared.identity.full_refresh:
        pending.write(json.loads(prepared.stamp.read_text())["refresh_causes"])
    code = run_dbt_in_process(["build", *prepared.dbt_args], env, project_root)
    if code != 0:
        print(
            "dbt build did not succeed: nothing was published; the serving copy is unchanged.",
            file=sys.stderr,
        )
        return code
    if has_selection(dbt_args, environ, project_root):
        built.finish()
    else:
        pending.write(None)
        built.write(stamp_vars(prepared.stamp))
    return publish_spark_build(env, list(prepared.dbt_args), tables)


def publish_spark_build(env: Mapping[str, str], dbt_args: list[str], tables: Path) -> int:
    """Publish the Spark build's public tables (`retail_segments.spark.publish`) into the serving
    directory; 0 on success, 1 (with the reason) when the previous copy was left in place."""
    import duckdb

    from retail_segments.spark.publish import mirror_tables

    project_root = find_project_root()
    mirror = tables.parent / "published.duckdb"
    # the same serving directory as the DuckDB build's (RETAIL_SERVING_DIR, else warehouse/serving)
    destination = serving_dir(warehouse_path(project_root, env), env)
    try:
        # the stamp is read here, as the DuckDB build's publish reads it: an unreadable one is a
        # failed publish with its reason, not a traceback
        info = new_build_info(
            env[RAW_PATH_ENV], project_root, prepared=read_prepared(prepared_stamp(env))
        )
        manifest = manifest_path(dbt_args, env)
        relations = published_relations(manifest)
        missing = mirror_tables(tables, manifest, relations, mirror)
        published = publish(mirror, destination, info, relations)
    except (duckdb.Error, OSError, RuntimeError) as error:
        print(f"error: publishing failed, serving copy unchanged: {error}", file=sys.stderr)
        return 1
    finally:
        mirror.unlink(missing_ok=True)
        Path(f"{mirror}.wal").unlink(missing_ok=True)
    print(published.summary(), flush=True)
    if missing:
        print(f"  not among the Spark tables, so not published: {', '.join(missing)}", flush=True)
    return 0
