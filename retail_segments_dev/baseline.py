"""The study's cleaning and RFM as a notebook user would write them in pandas: the benchmark's
baseline.

Same rules and same results as the SQL models and `retail_segments_dev.reference` (the tests check
it), but written the way the original study's notebook does the work: step 3 loops over the return
lines one by one and, for each, filters the whole table for its candidate purchases, then walks
them latest first. That is quadratic in practice (returns x lines): about a minute at the real
file's size (52.6 s measured), hours at 10x, which is why the benchmark runs it at 1x only by
default.
`retail_segments_dev.reference` is the fast, grouped version of the same rules, used as test oracle.

Reading the file and the RFM step reuse `reference.read_raw` and `reference.rfm` (plain pandas
already).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from retail_segments_dev import reference


def _cancel_returns(lines: pd.DataFrame) -> pd.Series:
    """Step 3, notebook style: the quantity each return cancels on the purchase line it lands on.

    ``lines`` are de-duplicated customer lines in file order (index = file order). For every
    return line, in file order, the candidates are the purchase lines of the same customer and
    stock code strictly earlier in time. One candidate: it takes the returned quantity. Several:
    the latest in file order with at least the returned quantity takes it. A later return on the
    same purchase line overwrites the value.
    """
    canceled = pd.Series(0, index=lines.index, dtype="int64", name="quantity_canceled")
    for _, line in lines.loc[lines["Quantity"] < 0].iterrows():
        candidates = lines.loc[
            (lines["CustomerID"] == line["CustomerID"])
            & (lines["StockCode"] == line["StockCode"])
            & (lines["InvoiceDate"] < line["InvoiceDate"])
            & (lines["Quantity"] > 0)
        ]
        if len(candidates) == 1:
            canceled.loc[candidates.index[0]] = -line["Quantity"]
        elif len(candidates) > 1:
            for index, candidate in candidates.sort_index(ascending=False).iterrows():
                if candidate["Quantity"] >= -line["Quantity"]:
                    canceled.loc[index] = -line["Quantity"]
                    break
    return canceled


def clean(raw: pd.DataFrame) -> pd.DataFrame:
    """The six cleaning steps on ``reference.read_raw`` output; returns the clean lines with
    ``reference.CLEAN_COLUMNS`` in file order, equal to ``reference.clean``."""
    lines = raw.sort_values("source_row_number").reset_index(drop=True)
    lines = lines.dropna(subset=["CustomerID"])
    lines = lines.drop_duplicates(subset=reference.RAW_COLUMNS, keep="first")
    lines["quantity_canceled"] = _cancel_returns(lines)
    lines = lines.loc[lines["Quantity"] >= 0]
    lines = lines.loc[~lines["StockCode"].str.match(r"[A-Za-z]")]
    lines = lines.loc[lines["UnitPrice"] != 0]
    return reference.clean_columns(lines)


def clean_and_rfm(
    path: str | Path, as_of: pd.Timestamp = reference.DEFAULT_AS_OF
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The whole baseline on a raw file: read, clean, RFM. Returns ``(clean lines, rfm)``."""
    clean_lines = clean(reference.read_raw(path))
    return clean_lines, reference.rfm(clean_lines, as_of=as_of)
