"""Stacking several result tables into one frame, so one dbt Python model can land them all.

A dbt Python model returns a single DataFrame, but one fit (the clustering stages, the classifier
search) produces several tables. ``stack_tables`` concatenates them with a ``result_table``
column saying which table each row belongs to; thin contracted SQL models in ``models/ml/`` then
select their rows and columns back out. Columns are turned into nullable dtypes so that a column
missing from one table is null there, never a float NaN standing in for an integer or a boolean.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

RESULT_TABLE_COLUMN = "result_table"


def _nullable(column: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(column):
        return column.astype("boolean")
    if pd.api.types.is_integer_dtype(column):
        return column.astype("Int64")
    if pd.api.types.is_float_dtype(column):
        return column.astype("Float64")
    return column


def stack_tables(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Concatenate named tables into one frame with a leading ``result_table`` column.

    Parameters
    ----------
    tables : ``{table name: frame}``; a column that appears in several tables must have the same
        meaning and a compatible dtype in each.

    Returns
    -------
    One frame: ``result_table`` then the union of all columns in first-seen order; rows keep their
    table's order, tables follow the mapping's order.
    """
    if not tables:
        raise ValueError("stack_tables needs at least one table")
    parts = []
    for name, frame in tables.items():
        part = frame.apply(_nullable).reset_index(drop=True)
        part.insert(0, RESULT_TABLE_COLUMN, name)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)
