"""Plain-pandas reference implementation of the study's cleaning and RFM.

This module is written the way a careful notebook user would do the study, without DuckDB or dbt.
It is the test oracle for the SQL models and the "notebook baseline" that benchmarks compare
against, so it favours plain, readable pandas over cleverness.

Grains:

* ``read_raw``: one row per line of the raw file, in file order.
* ``clean``: one row per surviving purchase line (customer known, not a duplicate, not a return,
  not a service line, not free), in file order.
* ``rfm``: one row per customer with at least one clean line before ``as_of``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from retail_segments.ops import inputs

RAW_COLUMNS: list[str] = list(inputs.RAW_COLUMNS)  # the raw file's layout, as the product reads it
DATE_FORMAT = "%m/%d/%Y %H:%M"
DEFAULT_AS_OF = pd.Timestamp("2011-12-10")

CLEAN_COLUMNS: list[str] = [
    "source_row_number",
    "invoice_no",
    "stock_code",
    "description",
    "quantity",
    "quantity_canceled",
    "unit_price",
    "total_price",
    "invoice_at",
    "customer_id",
    "country",
]
RFM_COLUMNS: list[str] = [
    "customer_id",
    "recency_days",
    "frequency",
    "monetary",
    "is_outlier",
    "r_score",
    "f_score",
    "m_score",
]
STEP_NAMES: list[str] = [
    "drop_missing_customer_id",
    "drop_exact_duplicates",
    "match_cancellations",
    "drop_returns",
    "drop_service_stock_codes",
    "drop_zero_unit_price",
]


def read_raw(path: str | Path) -> pd.DataFrame:
    """Read the raw zstd-compressed, latin-1 CSV into a frame: one row per file line.

    Only empty fields are missing values (a description such as "NA" stays text). Adds
    ``source_row_number``: the 1-based position of the line in the file, header excluded.
    """
    raw = pd.read_csv(
        path,
        encoding="latin-1",
        compression="zstd",
        dtype={
            "InvoiceNo": "str",
            "StockCode": "str",
            "Description": "str",
            "Quantity": "int64",
            "InvoiceDate": "str",
            "UnitPrice": "float64",
            "CustomerID": "Int64",
            "Country": "str",
        },
        keep_default_na=False,
        na_values={"Description": [""], "CustomerID": [""]},
    )
    if list(raw.columns) != RAW_COLUMNS:
        raise ValueError(f"unexpected header: {list(raw.columns)}")
    raw["InvoiceDate"] = pd.to_datetime(raw["InvoiceDate"], format=DATE_FORMAT)
    raw.insert(0, "source_row_number", np.arange(1, len(raw) + 1, dtype="int64"))
    return raw


def match_returns(lines: pd.DataFrame) -> pd.DataFrame:
    """Which purchase line each return lands on (step 3's matching rule).

    ``lines`` are de-duplicated customer lines with the raw columns and ``source_row_number``.
    Grain: one row per return line (negative quantity), in file order, with
    ``source_row_number``, ``returned_quantity`` (positive), ``candidates`` (how many purchase
    lines qualify as candidates), ``latest_candidate_row`` and ``target_row`` (source row numbers,
    <NA> when there is none).

    A return's candidates are the purchase lines (positive quantity) of the same customer and
    stock code with a strictly earlier invoice time. No candidate: no target. Exactly one: that
    line, whatever its quantity. Several: walking back from the candidate latest in file order,
    the first whose quantity is at least the returned quantity; none qualifying: no target.
    """
    lines = lines.sort_values("source_row_number")
    returns = lines[lines["Quantity"] < 0]
    # only (customer, stock code) pairs that have a return can be candidates
    returned_keys = pd.MultiIndex.from_frame(returns[["CustomerID", "StockCode"]])
    line_keys = pd.MultiIndex.from_frame(lines[["CustomerID", "StockCode"]])
    purchases = lines[(lines["Quantity"] > 0) & line_keys.isin(returned_keys)]
    by_key = {
        key: (
            group["source_row_number"].to_numpy(),
            group["InvoiceDate"].to_numpy(),
            group["Quantity"].to_numpy(),
        )
        for key, group in purchases.groupby(["CustomerID", "StockCode"], sort=False)
    }
    no_purchase = (
        np.array([], dtype="int64"),
        np.array([], dtype="datetime64[us]"),
        np.array([], dtype="int64"),
    )
    candidates, latest, target = [], [], []
    for customer, stock_code, returned_at, quantity in zip(
        returns["CustomerID"],
        returns["StockCode"],
        returns["InvoiceDate"].to_numpy(),
        returns["Quantity"],
        strict=True,
    ):
        rows, purchased_at, purchased_qty = by_key.get((customer, stock_code), no_purchase)
        earlier = purchased_at < returned_at
        rows, purchased_qty = rows[earlier], purchased_qty[earlier]
        chosen = None
        if len(rows) == 1:
            chosen = rows[0]
        else:
            # rows are in file order, so walking them backwards is latest-first
            for row, qty in zip(rows[::-1], purchased_qty[::-1], strict=True):
                if qty >= -quantity:
                    chosen = row
                    break
        candidates.append(len(rows))
        latest.append(rows[-1] if len(rows) else None)
        target.append(chosen)
    return pd.DataFrame(
        {
            "source_row_number": returns["source_row_number"].to_numpy(),
            "returned_quantity": -returns["Quantity"].to_numpy(),
            "candidates": np.array(candidates, dtype="int64"),
            "latest_candidate_row": pd.array(latest, dtype="Int64"),
            "target_row": pd.array(target, dtype="Int64"),
        }
    )


def _standing_returns(lines: pd.DataFrame) -> pd.DataFrame:
    """The return whose value stands on each canceled purchase line: the latest in file order.
    Columns ``target_row``, ``returned_quantity`` and ``source_row_number`` (the return's)."""
    matches = match_returns(lines).dropna(subset=["target_row"])
    return matches.drop_duplicates("target_row", keep="last")


def _canceled_quantities(lines: pd.DataFrame) -> pd.Series:
    """Step 3: ``quantity_canceled`` of each line (0 unless a return lands on it).

    Returns are applied in file order, so when several land on the same purchase line the
    latest return's quantity is kept: it overwrites, it does not add up."""
    last = _standing_returns(lines)
    by_row = pd.Series(last["returned_quantity"].to_numpy(), index=last["target_row"].to_numpy())
    canceled = lines["source_row_number"].map(by_row).fillna(0).astype("int64")
    return canceled.rename("quantity_canceled")


def _apply(frame: pd.DataFrame, mask: pd.Series) -> pd.DataFrame:
    return frame[mask]


def _matching_lines(
    raw: pd.DataFrame,
    keep: Callable[[pd.DataFrame, pd.Series], pd.DataFrame] = _apply,
) -> pd.DataFrame:
    """Steps 1-2 in file order: the lines that take part in step 3's matching. ``keep`` applies
    each step's mask (``clean_with_audit`` also counts what it removes)."""
    lines = raw.sort_values("source_row_number").reset_index(drop=True)
    lines = keep(lines, lines["CustomerID"].notna())
    return keep(lines, ~lines.duplicated(subset=RAW_COLUMNS, keep="first"))


def clean_with_audit(raw: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Apply the six cleaning steps in order; return the clean lines and the per-step audit.

    1. drop lines without a customer id;
    2. drop exact duplicates (all eight source columns equal), keeping the first in file order;
    3. compute ``quantity_canceled`` for purchase lines (see ``match_returns``);
    4. drop the return lines (negative quantity);
    5. drop service lines (stock code starting with a Latin letter);
    6. drop lines with a zero unit price.

    The clean lines have ``CLEAN_COLUMNS`` with
    ``total_price = unit_price * (quantity - quantity_canceled)``. The audit has one row per step:
    ``step_number``, ``step_name``, ``rows_in``, ``rows_removed``, ``rows_out``.
    """
    counts: list[tuple[int, int]] = []

    def keep(frame: pd.DataFrame, mask: pd.Series) -> pd.DataFrame:
        counts.append((len(frame), len(frame) - int(mask.sum())))
        return frame[mask]

    lines = _matching_lines(raw, keep)
    lines = lines.assign(quantity_canceled=_canceled_quantities(lines))
    counts.append((len(lines), 0))
    lines = keep(lines, lines["Quantity"] >= 0)
    lines = keep(lines, ~lines["StockCode"].str.match(r"[A-Za-z]"))
    lines = keep(lines, lines["UnitPrice"] != 0)

    clean = clean_columns(lines)

    audit = pd.DataFrame(
        {
            "step_number": range(1, len(STEP_NAMES) + 1),
            "step_name": STEP_NAMES,
            "rows_in": [rows_in for rows_in, _ in counts],
            "rows_removed": [removed for _, removed in counts],
        }
    )
    audit["rows_out"] = audit["rows_in"] - audit["rows_removed"]
    return clean, audit


def clean_columns(lines: pd.DataFrame) -> pd.DataFrame:
    """The surviving raw ``lines`` (with ``quantity_canceled``) under ``CLEAN_COLUMNS``, with
    ``total_price = unit_price * (quantity - quantity_canceled)``; index reset."""
    return pd.DataFrame(
        {
            "source_row_number": lines["source_row_number"],
            "invoice_no": lines["InvoiceNo"],
            "stock_code": lines["StockCode"],
            "description": lines["Description"],
            "quantity": lines["Quantity"].astype("int64"),
            "quantity_canceled": lines["quantity_canceled"],
            "unit_price": lines["UnitPrice"],
            "total_price": lines["UnitPrice"] * (lines["Quantity"] - lines["quantity_canceled"]),
            "invoice_at": lines["InvoiceDate"],
            "customer_id": lines["CustomerID"].astype("int64"),
            "country": lines["Country"],
        },
        columns=CLEAN_COLUMNS,
    ).reset_index(drop=True)


def canceled_at(raw: pd.DataFrame) -> pd.Series:
    """When each canceled purchase line was canceled: the invoice time of the return whose value
    stands on it (``_standing_returns``), indexed by the purchase's ``source_row_number``."""
    lines = _matching_lines(raw)
    standing = _standing_returns(lines)
    returned_at = lines.set_index("source_row_number")["InvoiceDate"]
    return pd.Series(
        returned_at.loc[standing["source_row_number"].to_numpy()].to_numpy(),
        index=standing["target_row"].to_numpy(dtype="int64"),
        name="canceled_at",
    )


def clean(raw: pd.DataFrame) -> pd.DataFrame:
    """The clean purchase lines of ``raw`` (one row per surviving line, file order)."""
    return clean_with_audit(raw)[0]


def cleaning_audit(raw: pd.DataFrame) -> pd.DataFrame:
    """Rows received and removed by each of the six cleaning steps (step 3 removes none)."""
    return clean_with_audit(raw)[1]


def ntile(order: pd.DataFrame, buckets: int) -> pd.Series:
    """SQL ``ntile(buckets) over (order by <columns of order>)`` for the rows of ``order``.

    The rows, sorted by all columns of ``order`` in the given direction (ascending), are split
    into ``buckets`` groups numbered from 1; with ``n`` rows the first ``n % buckets`` groups get
    ``n // buckets + 1`` rows and the others ``n // buckets``.
    """
    n = len(order)
    base, extra = divmod(n, buckets)
    position = np.arange(n)
    big_rows = extra * (base + 1)
    tiles = np.where(
        position < big_rows,
        position // (base + 1) + 1,
        extra + (position - big_rows) // max(base, 1) + 1,
    )
    ranked = order.sort_values(list(order.columns), kind="stable").index
    return pd.Series(tiles, index=ranked, dtype="int64").reindex(order.index)


def rfm(
    clean_lines: pd.DataFrame,
    as_of: pd.Timestamp = DEFAULT_AS_OF,
    canceled: pd.Series | None = None,
) -> pd.DataFrame:
    """Recency, frequency and monetary value per customer as of ``as_of``.

    Grain: one row per customer with at least one clean line with ``invoice_at < as_of``; only
    those lines count.

    * ``recency_days``: whole days (floor) from the customer's last ``invoice_at`` to ``as_of``;
    * ``frequency``: number of distinct invoices;
    * ``monetary``: sum of ``total_price``; with ``canceled`` (``canceled_at`` of the raw file),
      the value known at ``as_of``: a line canceled at or after ``as_of`` counts
      ``unit_price * quantity`` (its return was not made yet);
    * ``is_outlier``: frequency above its 95th percentile or monetary above its 95th percentile
      (linear interpolation over all customers);
    * ``r_score`` = ntile(5) by recency_days descending then customer_id; ``f_score`` and
      ``m_score`` = ntile(5) by frequency / monetary ascending then customer_id.
    """
    lines = clean_lines[clean_lines["invoice_at"] < as_of]
    if canceled is not None:
        when = lines["source_row_number"].map(canceled)
        returned_later = when.notna() & ~(when < as_of)
        gross = lines["unit_price"] * lines["quantity"]
        lines = lines.assign(total_price=lines["total_price"].where(~returned_later, gross))
    per_customer = lines.groupby("customer_id").agg(
        last_at=("invoice_at", "max"),
        frequency=("invoice_no", "nunique"),
        monetary=("total_price", "sum"),
    )
    out = per_customer.reset_index()
    out["recency_days"] = (as_of - out["last_at"]).dt.days.astype("int64")
    out["frequency"] = out["frequency"].astype("int64")
    out["is_outlier"] = (out["frequency"] > out["frequency"].quantile(0.95)) | (
        out["monetary"] > out["monetary"].quantile(0.95)
    )
    out["r_score"] = ntile(
        pd.DataFrame({"r": -out["recency_days"], "c": out["customer_id"]}), buckets=5
    )
    out["f_score"] = ntile(out[["frequency", "customer_id"]], buckets=5)
    out["m_score"] = ntile(out[["monetary", "customer_id"]], buckets=5)
    return out[RFM_COLUMNS]
