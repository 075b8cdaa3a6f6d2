"""One row per fit, with the fit's result tables as typed nested columns.

A dbt Python model returns one table, but one fit produces results at several grains: per
customer, per candidate model, per cluster. `fit_record` returns the fit as one keyed row: the key
columns (which fit this is), then each result table as a list of structs, typed from the frame's
dtypes. Contracted SQL models unpack one result each with the macro ``fit_result``, which casts
every column to the type the model's contract declares (``macros/ml/fit_result.sql``).
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import pyarrow as pa


def _struct_list(frame: pd.DataFrame) -> pa.Array:
    """The frame's rows as one list of structs (its columns and dtypes)."""
    table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    fields = [
        pa.field(name, column.type)
        for name, column in zip(table.column_names, table.columns, strict=True)
    ]
    structs = pa.StructArray.from_arrays(
        [column.combine_chunks() for column in table.columns], fields=fields
    )
    return pa.ListArray.from_arrays(pa.array([0, len(structs)], pa.int32()), structs)


def fit_record(keys: Mapping[str, object], results: Mapping[str, pd.DataFrame]) -> pa.Table:
    """The fit as one row: keys first (scalars: which fit, when, on what), then one list-of-structs
    column per result table, in the order given."""
    overlap = set(keys) & set(results)
    if overlap:
        raise ValueError(f"a key and a result share a name: {sorted(overlap)}")
    columns = {name: pa.array([value]) for name, value in keys.items()}
    columns.update({name: _struct_list(frame) for name, frame in results.items()})
    return pa.table(columns)


def result_frame(record: pa.Table, result: str) -> pd.DataFrame:
    """A result table of a fit record as a frame (tests, notebooks)."""
    if record.num_rows != 1:
        raise ValueError(f"a fit record has one row, this one has {record.num_rows}")
    values = record.column(result).combine_chunks().flatten()
    return pa.Table.from_struct_array(values).to_pandas()
