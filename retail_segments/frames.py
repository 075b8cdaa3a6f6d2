"""What the dbt Python models read and how they score, on either engine.

The shells in ``models/ml/`` get from ``dbt.ref()`` a DuckDB relation (dbt-duckdb) or a Spark
DataFrame (dbt-spark, `retail_segments.spark.python_models`). These functions take either, so a
shell runs unchanged on both and ``retail_segments.ml`` only ever sees pandas:

* `frame`: a relation's columns as a pandas frame in a stated row order, with the dtypes DuckDB's
  ``.df()`` gives (a Spark frame is converted to the same: nullable integers and booleans,
  floats for decimals, naive UTC timestamps), so the ML code sees the same input on both.
* `select`, `where` and `join`: a relation's columns, its rows that meet a SQL condition, two
  relations joined on key columns (in the engine).
* `collect`: what `map_frames` or `map_groups` returned, as a pandas frame (a no-op on DuckDB).
* `map_frames`: apply a pandas-to-pandas function to every row of a relation. On DuckDB the
  function gets the whole relation as one frame and its result is the model's table. On Spark it
  runs distributed, ``mapInPandas`` over the relation's partitions in Python workers, and the
  result is a Spark DataFrame with the declared schema. Use it for row-wise scoring only (each
  output row depends on its input row): then the two give the same rows.
* `map_groups`: the same for a function whose output rows depend on every input row of a group
  (e.g. a customer's purchase days): on Spark the groups are spread over buckets by a hash of the
  group key and each bucket's rows reach the function together (``applyInPandas``), so no group
  is split; on DuckDB the function gets the whole relation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pandas as pd

from retail_segments.sql import quote_identifier

# SQL type name (as the contracts write them) -> the DuckDB .df() dtype of a column without NULLs
# and with NULLs.
_INTEGER_DTYPES: Mapping[str, tuple[str, str]] = {
    "tinyint": ("int8", "Int8"),
    "smallint": ("int16", "Int16"),
    "int": ("int32", "Int32"),
    "integer": ("int32", "Int32"),
    "bigint": ("int64", "Int64"),
}


def is_spark(relation: Any) -> bool:
    """Whether relation is a Spark DataFrame (else a DuckDB relation is assumed)."""
    return hasattr(relation, "mapInPandas") and hasattr(relation, "sparkSession")


def _spark_type_name(data_type: Any) -> str:
    return str(data_type.simpleString()).lower()


def normalise_spark_frame(frame: pd.DataFrame, types: Mapping[str, str]) -> pd.DataFrame:
    """A pandas frame made from Spark rows, with DuckDB's ``.df()`` dtypes. ``types`` maps each
    column to its Spark type name (``int``, ``bigint``, ``boolean``, ``decimal(18,3)``,
    ``timestamp``, ``date``, ...)."""
    out: dict[str, pd.Series] = {}
    for name in frame.columns:
        column: Any = frame[name]
        kind = types.get(name, "")
        if kind in _INTEGER_DTYPES:
            plain, nullable = _INTEGER_DTYPES[kind]
            out[name] = column.astype(nullable if column.isna().any() else plain)
        elif kind == "boolean":
            out[name] = column.astype("boolean" if column.isna().any() else "bool")
        elif kind.startswith("decimal") or kind in ("double", "float"):
            out[name] = pd.to_numeric(column, errors="raise").astype("float64")
        elif kind in ("timestamp", "timestamp_ntz", "date"):
            values = pd.to_datetime(column)
            if getattr(values.dt, "tz", None) is not None:
                values = values.dt.tz_convert("UTC").dt.tz_localize(None)
            out[name] = values.astype("datetime64[us]")
        elif kind == "string":
            out[name] = column.astype("str")
        else:
            out[name] = column
    return pd.DataFrame(out, columns=list(frame.columns), index=frame.index)


def frame(
    relation: Any, columns: Sequence[str] | None = None, order_by: Sequence[str] = ()
) -> pd.DataFrame:
    """The relation's columns (all when None) as a pandas frame sorted by order_by (ascending,
    NULLs last), with DuckDB's ``.df()`` dtypes on both engines."""
    if is_spark(relation):
        selected = relation.select(*columns) if columns is not None else relation
        if order_by:
            selected = selected.orderBy(*[selected[key].asc_nulls_last() for key in order_by])
        types = {field.name: _spark_type_name(field.dataType) for field in selected.schema}
        return normalise_spark_frame(selected.toPandas(), types).reset_index(drop=True)
    selected = (
        relation.project(", ".join(quote_identifier(name) for name in columns))
        if columns is not None
        else relation
    )
    if order_by:
        selected = selected.order(
            ", ".join(f"{quote_identifier(key)} asc nulls last" for key in order_by)
        )
    return selected.df()


def select(relation: Any, columns: Sequence[str]) -> Any:
    """The relation with only columns, in the engine (still a relation)."""
    if is_spark(relation):
        return relation.select(*columns)
    return relation.project(", ".join(quote_identifier(name) for name in columns))


def where(relation: Any, condition: str) -> Any:
    """The rows of relation that meet condition, a SQL expression over its columns (a constant
    written by the model, never user text), in the engine."""
    return relation.filter(condition)


def collect(result: Any, order_by: Sequence[str] = ()) -> pd.DataFrame:
    """A `map_frames` or `map_groups` result as a pandas frame sorted by order_by: on DuckDB the
    frame itself, on Spark the scored rows brought to the driver (the scoring runs now)."""
    if isinstance(result, pd.DataFrame):
        if not order_by:
            return result
        return result.sort_values(list(order_by), kind="stable").reset_index(drop=True)
    return frame(result, None, order_by)


def join(left: Any, right: Any, on: Sequence[str], how: str = "left") -> Any:
    """left joined to right on the equal key columns on (kept once), in the engine."""
    if is_spark(left):
        return left.join(right, on=list(on), how=how)
    return left.join(right, ", ".join(quote_identifier(key) for key in on), how=how)


def _ddl(schema: Mapping[str, str]) -> str:
    return ", ".join(f"`{name}` {data_type}" for name, data_type in schema.items())


def _in_one_batch(
    relation: Any,
    function: Callable[[pd.DataFrame], pd.DataFrame],
    schema: Mapping[str, str],
    columns: Sequence[str] | None,
    order_by: Sequence[str],
) -> pd.DataFrame:
    """function of the whole `frame` of a DuckDB relation, its columns checked against schema."""
    result = function(frame(relation, columns, order_by))
    if list(result.columns) != list(schema):
        raise ValueError(
            f"the scoring returned columns {list(result.columns)}, declared {list(schema)}"
        )
    return result


def _spark_columns(relation: Any, columns: Sequence[str] | None) -> tuple[Any, dict[str, str]]:
    """The columns of a Spark DataFrame (or all) and each one's Spark type name."""
    selected = relation.select(*columns) if columns is not None else relation
    return selected, {field.name: _spark_type_name(field.dataType) for field in selected.schema}


def map_frames(
    relation: Any,
    function: Callable[[pd.DataFrame], pd.DataFrame],
    schema: Mapping[str, str],
    columns: Sequence[str] | None = None,
    order_by: Sequence[str] = (),
) -> Any:
    """Apply function to the rows of relation (its columns, or all) in batches; the result has
    exactly the columns and SQL types of schema (``{column: type}``, in order).

    DuckDB: one batch, the whole `frame` (sorted by order_by); returns the pandas result after
    checking its columns are schema's. Spark: ``mapInPandas`` over the partitions, each batch
    normalised like `frame`; returns the lazy Spark DataFrame (the table write runs it).
    Raises ValueError when a DuckDB result's columns differ from schema's.
    """
    if not is_spark(relation):
        return _in_one_batch(relation, function, schema, columns, order_by)
    selected, types = _spark_columns(relation, columns)
    names = list(schema)

    def apply(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            if len(batch):
                yield function(normalise_spark_frame(batch, types)).loc[:, names]

    return selected.mapInPandas(apply, _ddl(schema))


def map_groups(
    relation: Any,
    function: Callable[[pd.DataFrame], pd.DataFrame],
    schema: Mapping[str, str],
    by: Sequence[str],
    columns: Sequence[str] | None = None,
    order_by: Sequence[str] = (),
    buckets: int | None = None,
) -> Any:
    """Apply function to whole groups of rows of relation: every row with the same values of
    ``by`` reaches the function in the same call (several groups per call), sorted by order_by.
    The result has exactly the columns and SQL types of schema (``{column: type}``, in order).

    DuckDB: one call with the whole `frame`. Spark: the rows are spread over ``buckets`` (default:
    four per core of the session) by a hash of ``by`` and each bucket is one ``applyInPandas``
    call in a Python worker; returns the lazy Spark DataFrame. Use it for functions whose output
    rows for a group depend on that group's rows only: then the two give the same rows.
    Raises ValueError when a DuckDB result's columns differ from schema's.
    """
    if not is_spark(relation):
        return _in_one_batch(relation, function, schema, columns, order_by)
    from pyspark.sql import functions

    selected, types = _spark_columns(relation, columns)
    names = list(schema)
    sort = list(order_by)
    count = buckets or 4 * selected.sparkSession.sparkContext.defaultParallelism
    bucket = "__retail_segments_bucket"
    keyed = selected.withColumn(
        bucket,
        functions.pmod(functions.hash(*[functions.col(key) for key in by]), functions.lit(count)),
    )

    def apply(rows: pd.DataFrame) -> pd.DataFrame:
        batch = normalise_spark_frame(rows.drop(columns=[bucket]), types)
        if sort:
            batch = batch.sort_values(sort, kind="stable").reset_index(drop=True)
        return function(batch).loc[:, names]

    return keyed.groupBy(bucket).applyInPandas(apply, _ddl(schema))
