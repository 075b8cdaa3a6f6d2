"""The Spark build's parts that need no JVM: its settings and their errors, the target's detection,
the profile agreeing with the launcher, the table registry's directory walk, the Spark value checks
mirroring DuckDB's, the serving mirror's DDL, and retail_segments.frames on DuckDB relations."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from dbt_helpers import PROJECT_ROOT, CliInProcess, Workspace, run_cli

from retail_segments import frames
from retail_segments.ops.dbt_console import filter_console
from retail_segments.ops.inputs import VALUE_CHECKS, landing_key, landing_rules
from retail_segments.ops.publish import Relation
from retail_segments.spark import build as spark_build
from retail_segments.spark import publish as spark_publish
from retail_segments.spark import python_models
from retail_segments.spark import session as spark_session
from retail_segments.spark.inputs import SPARK_VALUE_CHECKS
from retail_segments.spark.python_models import _utc_timestamps
from retail_segments.spark.session import (
    RUNTIME_CONF,
    check_spark_environment,
    existing_tables,
    session_conf,
    spark_dir,
)


def test_the_profile_sets_the_runtime_settings_the_launcher_sets() -> None:
    profiles = yaml.safe_load((PROJECT_ROOT / "profiles.yml").read_text())
    spark = profiles["retail_segments"]["outputs"]["spark"]
    assert spark["type"] == "spark" and spark["method"] == "session"
    assert {key: str(value) for key, value in spark["server_side_parameters"].items()} == (
        RUNTIME_CONF
    )


def test_the_session_settings_follow_the_environment(tmp_path: Path) -> None:
    conf = session_conf(tmp_path, {"RETAIL_SPARK_MASTER": "local[4]"})
    assert conf["spark.master"] == "local[4]"
    assert conf["spark.driver.memory"] == "2g"
    assert conf["spark.sql.catalogImplementation"] == "in-memory"
    assert conf["spark.sql.warehouse.dir"] == str(tmp_path / "managed")
    environ = {"RETAIL_DUCKDB_PATH": str(tmp_path / "wh" / "w.duckdb")}
    assert spark_dir(PROJECT_ROOT, environ) == (tmp_path / "wh" / "spark").resolve()
    environ["RETAIL_SPARK_DIR"] = str(tmp_path / "elsewhere")
    assert spark_dir(PROJECT_ROOT, environ) == (tmp_path / "elsewhere").resolve()


@pytest.mark.parametrize(
    ("variable", "value", "phrase"),
    [
        ("RETAIL_SPARK_MASTER", "local[two]", "is not a Spark master; valid: local[N]"),
        # pyspark 4 has no Mesos support: its JVM would stop with a message about Java
        ("RETAIL_SPARK_MASTER", "mesos://host:5050", "is not a Spark master"),
        ("RETAIL_SPARK_DRIVER_MEMORY", "2 gigs", "is not a JVM memory size; valid:"),
        ("RETAIL_SPARK_DRIVER_MEMORY", "0g", "is not a JVM memory size"),
        ("RETAIL_SPARK_DIR", " ", "is set but empty"),
    ],
)
def test_a_bad_spark_setting_is_named_with_its_valid_form(
    variable: str, value: str, phrase: str
) -> None:
    problems = check_spark_environment({variable: value})
    assert len(problems) == 1
    assert problems[0].startswith(variable)
    assert phrase in problems[0]


def test_good_spark_settings_pass() -> None:
    for master in ("local", "local[2]", "local[*]", "spark://host:7077", "yarn"):
        assert check_spark_environment({"RETAIL_SPARK_MASTER": master}) == []
    assert check_spark_environment({"RETAIL_SPARK_DRIVER_MEMORY": "1536m"}) == []


def _refused_spark_build(
    root: Path, raw: Path, run: CliInProcess | Callable[..., Any], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """``build --target spark`` into a warehouse in root with env set, run by ``run``
    (`cli_in_process`, or `run_cli` for a process of its own): refused (exit 2), with no stack
    trace."""
    result = run(Workspace(root), raw, "build", "--target", "spark", env=env)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    return result


@pytest.mark.parametrize(
    ("memory", "phrases"),
    [
        # refused by its form, before Spark starts
        ("2 gigs", ["RETAIL_SPARK_DRIVER_MEMORY = '2 gigs' is not a JVM memory size"]),
        # of the right form, refused by the JVM (too small a heap): named with the Spark
        # settings beside the Java (QA 30 F4: the message said only "Java")
        (
            "1k",
            [
                "error: Spark did not start (",
                "RETAIL_SPARK_DRIVER_MEMORY = '1k': at least 512m",
                "RETAIL_SPARK_MASTER = 'local[2]'",
                ": java -version must say 17)",
            ],
        ),
    ],
    ids=["malformed", "refused-by-the-jvm"],
)
def test_a_bad_driver_memory_stops_the_build_with_the_setting_named(
    memory: str,
    phrases: list[str],
    tmp_path: Path,
    synthetic_raw: Path,
    cli_in_process: CliInProcess,
) -> None:
    # the JVM's refusal in a process of its own: a JVM that another file's test started in this
    # worker keeps its heap, and the build ran on it (when test_spark.py came first)
    run = run_cli if memory == "1k" else cli_in_process
    result = _refused_spark_build(
        tmp_path, synthetic_raw, run, {"RETAIL_SPARK_DRIVER_MEMORY": memory}
    )
    for phrase in phrases:
        assert phrase in result.stderr
    if memory == "1k":  # the Java it started, named
        assert "(JAVA_HOME = '" in result.stderr or "(the java on PATH, /" in result.stderr
    assert "nothing was built" in result.stderr
    assert not (tmp_path / "spark" / "tables" / "marts").exists()


def _closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_standalone_master_that_does_not_answer_is_named_at_once() -> None:
    """Spark retries a standalone master for about two minutes (106 s here) before it stops;
    the build asks each of its addresses first, and needs one to answer."""
    closed = _closed_port()
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        for master in (f"spark://127.0.0.1:{port}", f"spark://127.0.0.1:{closed},127.0.0.1:{port}"):
            assert spark_session.unanswered_master({"RETAIL_SPARK_MASTER": master}) is None
    for master in ("local[2]", "yarn", "k8s://https://127.0.0.1:1"):
        assert spark_session.unanswered_master({"RETAIL_SPARK_MASTER": master}) is None
    master = f"spark://127.0.0.1:{closed},[::1]"
    problem = spark_session.unanswered_master({"RETAIL_SPARK_MASTER": master})
    assert problem is not None
    assert problem.startswith(f"RETAIL_SPARK_MASTER = '{master}': no master answers (")
    assert f"127.0.0.1:{closed}: Connection refused; [::1]: " in problem
    assert "start the master there, or point RETAIL_SPARK_MASTER at one that runs" in problem
    for port in ("99999", "7077/path", "x"):
        problem = spark_session.unanswered_master({"RETAIL_SPARK_MASTER": f"spark://h:{port}"})
        assert problem is not None and f"h:{port}: {port!r} is not a port number" in problem


def test_a_build_on_a_master_that_does_not_answer_stops_before_spark_starts(
    tmp_path: Path, synthetic_raw: Path, cli_in_process: CliInProcess
) -> None:
    master = f"spark://127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    result = _refused_spark_build(
        tmp_path, synthetic_raw, cli_in_process, {"RETAIL_SPARK_MASTER": master}
    )
    assert time.monotonic() - started < 60  # Spark's own retries took 106 s
    assert "error: the Spark build cannot start; nothing was built or replaced" in result.stderr
    assert f"RETAIL_SPARK_MASTER = '{master}': no master answers" in result.stderr
    assert not (tmp_path / "spark" / "tables").exists()


def test_a_machine_without_java_is_told_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spark_build.shutil, "which", lambda name: None)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    problems = spark_build.missing_requirements()
    assert any("no Java on PATH" in problem and "openjdk-17" in problem for problem in problems)


def test_a_java_home_without_java_is_refused_before_spark_starts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Spark starts JAVA_HOME/bin/java; a wrong JAVA_HOME was a Java-gateway traceback."""
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    (problem,) = [p for p in spark_build.missing_requirements() if "JAVA_HOME" in p]
    assert f"JAVA_HOME = '{tmp_path}' has no bin/java" in problem and "openjdk-17" in problem
    java = tmp_path / "bin" / "java"
    java.parent.mkdir()
    java.write_text("#!/bin/sh\n")
    java.chmod(0o755)
    assert not [p for p in spark_build.missing_requirements() if "JAVA_HOME" in p]


@pytest.mark.parametrize(
    ("args", "environ", "expected"),
    [
        (["--target", "spark"], {}, True),
        (["--target=spark", "--select", "x"], {}, True),
        (["-t", "spark"], {}, True),
        ([], {"DBT_TARGET": "spark"}, True),
        ([], {}, False),
        (["--target", "dev"], {"DBT_TARGET": "spark"}, False),
        (["--target", "no_such_target"], {}, False),
        # as dbt reads them: the last one counts, a short option may carry its value
        (["--target", "dev", "--target", "spark"], {}, True),
        (["--target", "spark", "-t", "dev"], {}, False),
        (["-tspark"], {}, True),
    ],
)
def test_the_spark_build_runs_for_a_target_of_type_spark(
    args: list[str], environ: dict[str, str], expected: bool
) -> None:
    assert spark_build.is_spark_target(PROJECT_ROOT, args, environ) is expected


def test_only_table_directories_holding_parquet_are_registered(tmp_path: Path) -> None:
    table = pa.table({"x": [1]})
    for parts in (("ml", "scores"), ("marts", "fct"), ("_work", "ml__scores"), ("ml", ".hidden")):
        (tmp_path.joinpath(*parts)).mkdir(parents=True)
        pq.write_table(table, tmp_path.joinpath(*parts, "part-0.parquet"))
    (tmp_path / "ml" / "empty").mkdir()
    (tmp_path / "ml" / "only_marker").mkdir()
    (tmp_path / "ml" / "only_marker" / "_SUCCESS").touch()
    found = [(schema, name) for schema, name, _ in existing_tables(tmp_path)]
    assert found == [("marts", "fct"), ("ml", "scores")]
    assert existing_tables(tmp_path / "missing") == []


def test_the_spark_value_checks_are_duckdbs_checks() -> None:
    assert [(c, p) for c, p, _ in SPARK_VALUE_CHECKS] == [(c, p) for c, p, _ in VALUE_CHECKS]
    # a Spark SQL literal reads \\ as one backslash and eats a lone one: the only backslashes in
    # the Spark patterns are the doubled ones of Java's end anchor \z
    conditions = [condition for _, _, condition in SPARK_VALUE_CHECKS]
    assert any("\\\\z" in condition for condition in conditions)
    assert not any("\\" in condition.replace("\\\\z", "") for condition in conditions)


def test_each_engine_lands_a_file_under_its_own_key(tmp_path: Path) -> None:
    path = tmp_path / "raw.csv.zst"
    duck, spark = landing_key("ab" * 32, path), landing_key("ab" * 32, path, "spark")
    # the same file, each engine's own landing code
    assert duck.rsplit("-r", 1)[0] == spark.rsplit("-r", 1)[0] and spark.endswith("-spark")
    assert landing_rules("spark") != landing_rules() and landing_rules("spark") in spark


def test_naive_timestamps_become_utc_also_inside_nested_results() -> None:
    moment = pd.Timestamp("2011-12-09 12:50")
    nested = pa.array([[{"at": moment.to_pydatetime(), "n": 1}]])
    table = pa.table({"at": pa.array([moment.to_pydatetime()]), "rows": nested, "x": [1.5]})
    converted = _utc_timestamps(table)
    assert converted.schema.field("at").type == pa.timestamp("us", tz="UTC")
    struct = converted.schema.field("rows").type.value_type
    assert struct.field("at").type == pa.timestamp("us", tz="UTC")
    assert converted.schema.field("x").type == pa.float64()
    assert converted.column("at")[0].as_py().replace(tzinfo=None) == moment.to_pydatetime()


def _node() -> dict:
    return {
        "description": "One row per order.",
        "columns": {
            "id": {
                "name": "id",
                "data_type": "bigint",
                "description": "Order id, it's unique.",
                "constraints": [{"type": "not_null"}, {"type": "primary_key"}],
            },
            "placed_at": {
                "name": "placed_at",
                "data_type": "timestamp",
                "description": "",
                "constraints": [],
            },
            "note": {"name": "note", "data_type": "string", "description": "A note."},
        },
        "constraints": [],
    }


def test_the_serving_mirror_creates_each_table_as_its_contract_declares(tmp_path: Path) -> None:
    tables = tmp_path / "tables"
    (tables / "marts" / "orders").mkdir(parents=True)
    pq.write_table(
        pa.table(
            {
                "note": ["x", None],
                "id": pa.array([2, 1], pa.int64()),
                "placed_at": pa.array(
                    [pd.Timestamp("2011-12-09 11:50"), pd.Timestamp("2011-12-01 08:26")],
                    pa.timestamp("us", tz="UTC"),
                ),
            }
        ),
        tables / "marts" / "orders" / "part-0.parquet",
    )
    manifest = tmp_path / "manifest.json"
    node = {**_node(), "resource_type": "model", "schema": "marts", "alias": "orders"}
    manifest.write_text(json.dumps({"nodes": {"model.p.orders": node}}))
    relations = [Relation("marts", "orders"), Relation("ml", "absent")]
    target = tmp_path / "mirror.duckdb"
    assert spark_publish.mirror_tables(tables, manifest, relations, target) == ["ml.absent"]
    with duckdb.connect(str(target), read_only=True) as connection:
        columns = connection.sql(
            "select column_name, data_type, is_nullable, comment from duckdb_columns()"
            " where table_name = 'orders' order by column_index"
        ).fetchall()
        keys = connection.sql(
            "select constraint_type from duckdb_constraints() where table_name = 'orders'"
            " and constraint_type = 'PRIMARY KEY'"
        ).fetchall()
        table_comment = connection.sql(
            "select comment from duckdb_tables() where table_name = 'orders'"
        ).fetchall()
        rows = connection.sql("select * from marts.orders order by id").fetchall()
    assert columns == [
        ("id", "BIGINT", False, "Order id, it's unique."),
        ("placed_at", "TIMESTAMP", True, None),
        ("note", "VARCHAR", True, "A note."),
    ]
    assert keys == [("PRIMARY KEY",)] and table_comment == [("One row per order.",)]
    assert [row[1] for row in rows] == [
        pd.Timestamp("2011-12-01 08:26").to_pydatetime(),
        pd.Timestamp("2011-12-09 11:50").to_pydatetime(),
    ]


# ---------------------------------------------------------------------------------------------
# retail_segments.frames on DuckDB (the Spark side runs in test_spark.py's build)
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def connection() -> duckdb.DuckDBPyConnection:
    with duckdb.connect() as connection:
        connection.execute(
            "create table rfm as select * from (values (3, 10, 2.5, true), (1, null, 1.0, null),"
            " (2, 4, 9.0, false)) t(customer_id, recency_days, monetary, is_outlier)"
        )
        connection.execute(
            "create table names as select * from (values (1, 'loyal'), (3, 'lost'))"
            " t(customer_id, segment_name)"
        )
        yield connection


def test_frame_reads_the_columns_in_the_stated_order(connection: duckdb.DuckDBPyConnection) -> None:
    read = frames.frame(connection.table("rfm"), ["customer_id", "monetary"], ["customer_id"])
    assert list(read.columns) == ["customer_id", "monetary"]
    assert read["customer_id"].tolist() == [1, 2, 3]
    assert str(read["customer_id"].dtype) == "int32"


def test_join_and_map_frames_score_every_row_once(connection: duckdb.DuckDBPyConnection) -> None:
    joined = frames.join(
        frames.select(connection.table("rfm"), ["customer_id", "monetary"]),
        connection.table("names"),
        on=["customer_id"],
    )

    def score(batch: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "customer_id": batch["customer_id"].astype("int64"),
                "value": batch["monetary"] * 2,
                "name": batch["segment_name"].fillna("unnamed"),
            }
        )

    schema = {"customer_id": "bigint", "value": "double", "name": "string"}
    scored = frames.map_frames(joined, score, schema, order_by=["customer_id"])
    assert scored.to_dict("list") == {
        "customer_id": [1, 2, 3],
        "value": [2.0, 18.0, 5.0],
        "name": ["loyal", "unnamed", "lost"],
    }
    with pytest.raises(ValueError, match="declared"):
        frames.map_frames(joined, score, {"customer_id": "bigint"})


def test_map_groups_gives_the_function_every_row_of_a_group(
    connection: duckdb.DuckDBPyConnection,
) -> None:
    connection.execute(
        "create table days as select * from (values (1, 3.0), (2, 1.0), (1, 2.0), (3, 4.0))"
        " t(customer_id, spend)"
    )

    def total(batch: pd.DataFrame) -> pd.DataFrame:
        return batch.groupby("customer_id", as_index=False).agg(spend=("spend", "sum"))

    schema = {"customer_id": "integer", "spend": "double"}
    summed = frames.map_groups(
        connection.table("days"), total, schema, by=["customer_id"], order_by=["customer_id"]
    )
    assert summed.to_dict("list") == {"customer_id": [1, 2, 3], "spend": [5.0, 1.0, 4.0]}
    kept = frames.where(connection.table("days"), "spend > 1.5")
    assert frames.collect(frames.map_groups(kept, total, schema, by=["customer_id"])).to_dict(
        "list"
    ) == {"customer_id": [1, 3], "spend": [5.0, 4.0]}
    assert frames.collect(summed, order_by=["spend"])["customer_id"].tolist() == [2, 3, 1]
    with pytest.raises(ValueError, match="declared"):
        frames.map_groups(connection.table("days"), total, {"spend": "double"}, by=["customer_id"])


def test_spark_rows_get_duckdbs_dtypes() -> None:
    """What Spark's toPandas gives (nullable integers as floats, booleans as objects, decimals
    as Decimal objects, aware timestamps) is read with DuckDB's .df() dtypes."""
    from decimal import Decimal

    spark_like = pd.DataFrame(
        {
            "n": [1.0, np.nan],
            "m": [1, 2],
            "flag": [True, None],
            "price": [Decimal("1.250"), Decimal("2.000")],
            "at": pd.to_datetime(["2011-12-09 12:50", "2011-12-01 08:26"]).tz_localize("UTC"),
            "name": ["a", None],
        }
    )
    types = {
        "n": "int",
        "m": "bigint",
        "flag": "boolean",
        "price": "decimal(18,3)",
        "at": "timestamp",
        "name": "string",
    }
    read = frames.normalise_spark_frame(spark_like, types)
    assert {name: str(dtype) for name, dtype in read.dtypes.items()} == {
        "n": "Int32",
        "m": "int64",
        "flag": "boolean",
        "price": "float64",
        "at": "datetime64[us]",
        "name": "str",
    }
    assert read["price"].tolist() == [1.25, 2.0]
    assert read["at"].iloc[0] == pd.Timestamp("2011-12-09 12:50")
    assert read["n"].isna().tolist() == [False, True]


def test_the_backfill_refuses_a_spark_target(
    tmp_path: Path, synthetic_raw: Path, cli_in_process: CliInProcess
) -> None:
    result = cli_in_process(
        Workspace(tmp_path), synthetic_raw, "backfill", env={"DBT_TARGET": "spark"}
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "the backfill runs on the DuckDB build only" in result.stderr


@pytest.mark.parametrize(
    ("success", "exception", "code", "said"),
    [
        (True, None, 0, ""),
        (False, None, 1, ""),
        # dbt logged it already ("Encountered an error: ..."): not said twice
        (False, RuntimeError("no node selected"), 2, ""),
        # a wrong option stops dbt before it logs anything: said once, by us
        (False, "usage", 2, "dbt stopped: No such option: --selct\n"),
    ],
)
def test_dbt_in_process_exits_as_the_dbt_command_does(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    success: bool,
    exception: Any,
    code: int,
    said: str,
) -> None:
    """0 success, 1 a node failed, 2 dbt stopped on an error (a selection naming nothing): the
    Spark build exits like the DuckDB build, which runs the dbt command, and says each error
    once."""
    import dbt.cli.main
    from dbt.cli.exceptions import DbtUsageException

    if exception == "usage":
        exception = DbtUsageException("No such option: --selct")

    class Runner:
        def invoke(self, args: list[str]) -> Any:
            return type("Result", (), {"success": success, "exception": exception})()

    monkeypatch.setattr(dbt.cli.main, "dbtRunner", Runner)
    assert spark_session.run_dbt_in_process(["build"], {}, tmp_path) == code
    assert capsys.readouterr().err == said


def test_a_spark_python_model_fails_as_on_duckdb_so_the_console_shows_its_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A model stopped by one of the package's errors fails with dbt-duckdb's "Python model
    failed:" and stack trace, which the console condenses (dbt showed "Unhandled error" and the
    message only, even for a bug); Ctrl-C is not turned into a model's failure."""
    from dbt_common.exceptions import DbtRuntimeError

    monkeypatch.setattr(python_models, "_SESSION", [object()])
    helper = python_models._helper_class()({"original_file_path": "models/x.py"}, None)
    code = (
        "from retail_segments.ml.value import CustomerValueError\n"
        "raise CustomerValueError('q = 0.68 <= 1.\\nFix: more repeat customers')\n"
    )
    with pytest.raises(DbtRuntimeError) as failed:
        helper.submit(code)
    message = failed.value.msg.splitlines()
    assert message[:2] == ["Python model failed:", "Traceback (most recent call last):"]
    assert message[-2:] == [
        "retail_segments.ml.value.CustomerValueError: q = 0.68 <= 1.",
        "Fix: more repeat customers",
    ]
    shown = [  # as dbt's summary of the run shows it
        "\x1b[0m14:56:10    Runtime Error in model x (models/x.py)",
        *(f"  {line}" for line in message),
        "\x1b[0m14:56:10  Done. PASS=1 WARN=0 ERROR=1 SKIP=0 NO-OP=0 TOTAL=2",
    ]
    console = [line.decode() for line in filter_console(f"{x}\n".encode() for x in shown)]
    assert console[1:4] == [
        "  Python model failed: q = 0.68 <= 1.\n",
        "  Fix: more repeat customers\n",
        "  (its stack trace is in dbt's log, dbt.log)\n",
    ]
    with pytest.raises(KeyboardInterrupt):
        helper.submit("raise KeyboardInterrupt\n")
