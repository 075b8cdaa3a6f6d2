"""Run the project's dbt Python models on dbt-spark's ``session`` method, in this process.

dbt-spark submits Python models only to Databricks (its ``job_cluster`` and
``all_purpose_cluster`` helpers call the Databricks REST API); on ``method: session`` a Python
model fails with "Databricks cluster_id is required". `install` adds a ``session`` submission
helper that executes the compiled model in this process, with ``spark`` bound to the process's
SparkSession, and makes it the default. The models' ``dbt.ref()`` then returns Spark DataFrames
(`retail_segments.frames` reads them), and ``macros/spark/tables.sql`` ends the compiled code with
`write_model_result`, which writes the model's result as the Parquet table at its fixed path. A
model that raises fails as on dbt-duckdb: a ``DbtRuntimeError`` "Python model failed:" with the
stack trace, which dbt logs and the console shows as on DuckDB (`retail_segments.ops.dbt_console`).

This replaces two properties of ``SparkAdapter`` (dbt-spark internals), which is why
pyproject.toml pins dbt-spark exactly. It works only while dbt runs inside this process
(`retail_segments.spark.session.run_dbt_in_process`); the ``dbt`` command line on the spark target
still stops at the first Python model.
"""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

_SESSION: list[Any] = []


def _helper_class() -> type:
    from dbt.adapters.base.impl import PythonJobHelper
    from dbt_common.exceptions import DbtRuntimeError

    class SessionPythonJobHelper(PythonJobHelper):
        """Executes a compiled dbt Python model on the process's SparkSession."""

        def __init__(self, parsed_model: dict[str, Any], credentials: Any) -> None:
            self.parsed_model = parsed_model

        def submit(self, compiled_code: str) -> None:
            if not _SESSION:
                raise RuntimeError(
                    "dbt Python models on Spark run only inside `python -m retail_segments build"
                    " --target spark` (no SparkSession was installed)"
                )
            scope: dict[str, Any] = {"spark": _SESSION[0], "__name__": "dbt_python_model"}
            name = self.parsed_model.get("original_file_path", "<dbt python model>")
            # dbt's create_table_as macro indents the first line of the code it renders
            try:
                exec(compile(compiled_code.lstrip(), name, "exec"), scope)
            except Exception as error:
                # as dbt-duckdb words it (else dbt shows "Unhandled error" and the message only,
                # even for a bug)
                trace = "".join(traceback.format_exception(error))
                raise DbtRuntimeError(f"Python model failed:\n{trace}") from error

    return SessionPythonJobHelper


def install(session: SparkSession) -> None:
    """Make dbt-spark run Python models in this process on session (see the module docstring)."""
    from dbt.adapters.spark.impl import SparkAdapter

    _SESSION[:] = [session]
    helpers = dict(SparkAdapter.python_submission_helpers.fget(None))  # type: ignore[attr-defined]
    helpers["session"] = _helper_class()
    SparkAdapter.python_submission_helpers = property(lambda self: helpers)  # type: ignore[assignment,method-assign]
    SparkAdapter.default_python_submission_method = property(lambda self: "session")  # type: ignore[assignment,method-assign]


def as_spark_frame(session: SparkSession, result: Any) -> DataFrame:
    """A dbt Python model's result as a Spark DataFrame: a Spark DataFrame as it is, a pyarrow
    table or a pandas frame through Arrow (naive timestamps become Spark ``timestamp``s of the
    same UTC time, as DuckDB's would be read). Raises TypeError for anything else."""
    import pandas as pd
    import pyarrow as pa
    from pyspark.sql import DataFrame as SparkDataFrame

    if isinstance(result, SparkDataFrame):
        return result
    if isinstance(result, pd.DataFrame):
        result = pa.Table.from_pandas(result, preserve_index=False)
    if not isinstance(result, pa.Table):
        raise TypeError(f"a dbt Python model returned {type(result).__name__}, not a frame")
    return session.createDataFrame(_utc_timestamps(result))


def _utc_type(data_type: Any) -> Any:
    import pyarrow as pa

    if pa.types.is_timestamp(data_type) and data_type.tz is None:
        return pa.timestamp(data_type.unit, tz="UTC")
    if pa.types.is_list(data_type):
        return pa.list_(_utc_type(data_type.value_type))
    if pa.types.is_struct(data_type):
        return pa.struct(
            [pa.field(field.name, _utc_type(field.type), field.nullable) for field in data_type]
        )
    return data_type


def _utc_timestamps(table: Any) -> Any:
    """table with every naive timestamp (also inside lists and structs) marked UTC: Spark reads
    a naive one as ``timestamp_ntz``."""
    import pyarrow as pa

    schema = pa.schema([pa.field(f.name, _utc_type(f.type), f.nullable) for f in table.schema])
    return table.cast(schema) if schema != table.schema else table


def write_model_result(session: SparkSession, result: Any, relation: str, location: str) -> None:
    """Write a dbt Python model's result (`as_spark_frame`) as the external Parquet table
    relation at location, replacing its files."""
    frame = as_spark_frame(session, result)
    schema = relation.split(".")[0]
    session.sql(f"create schema if not exists {schema}")
    session.sql(f"drop table if exists {relation}")
    (frame.write.mode("overwrite").format("parquet").option("path", location).saveAsTable(relation))
