"""Tests of the plain-pandas reference cleaning and RFM on hand-made frames (and the real file)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retail_segments_dev import reference as ref

REAL_PATH = Path(os.environ.get("RETAIL_RAW_PATH", "/work/shared/data/online_retail.csv.zst"))

# (InvoiceNo, StockCode, Quantity, InvoiceDate, UnitPrice, CustomerID)
Line = tuple[str, str, int, str, float, int | None]


def raw_frame(
    lines: list[Line], description: str = "ITEM", country: str = "France"
) -> pd.DataFrame:
    """A raw frame as read_raw returns it; source_row_number follows the list order."""
    frame = pd.DataFrame(
        lines,
        columns=["InvoiceNo", "StockCode", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID"],
    )
    frame["InvoiceDate"] = pd.to_datetime(frame["InvoiceDate"])
    frame["CustomerID"] = frame["CustomerID"].astype("Int64")
    frame["Description"] = description
    frame["Country"] = country
    frame.insert(0, "source_row_number", np.arange(1, len(frame) + 1))
    return frame[["source_row_number", *ref.RAW_COLUMNS]]


def canceled_by_row(raw: pd.DataFrame) -> dict[int, int]:
    lines = ref.clean(raw)
    return dict(zip(lines["source_row_number"], lines["quantity_canceled"], strict=True))


def test_return_without_candidate_cancels_nothing() -> None:
    raw = raw_frame(
        [
            ("C1", "111", -3, "2011-01-05 10:00", 1.0, 1),  # nothing bought before
            ("2", "111", 12, "2011-01-07 10:00", 1.0, 1),  # bought later: not a candidate
            ("3", "222", 5, "2011-01-01 10:00", 1.0, 1),  # other stock code
            ("4", "111", 5, "2011-01-01 10:00", 1.0, 2),  # other customer
        ]
    )
    assert canceled_by_row(raw) == {2: 0, 3: 0, 4: 0}


def test_single_candidate_takes_the_return_whatever_its_quantity() -> None:
    raw = raw_frame(
        [
            ("1", "111", 12, "2011-01-01 10:00", 2.0, 1),
            ("1", "222", 2, "2011-01-01 10:00", 3.0, 1),
            ("C2", "111", -6, "2011-01-03 10:00", 2.0, 1),
            ("C2", "222", -5, "2011-01-03 10:00", 3.0, 1),  # more than was bought
        ]
    )
    lines = ref.clean(raw).set_index("source_row_number")
    assert lines["quantity_canceled"].to_dict() == {1: 6, 2: 5}
    assert lines["total_price"].to_dict() == {1: 2.0 * 6, 2: 3.0 * -3}


def test_several_candidates_walk_back_from_the_latest() -> None:
    raw = raw_frame(
        [
            ("1", "111", 24, "2011-01-01 10:00", 1.0, 1),
            ("2", "111", 12, "2011-01-02 10:00", 1.0, 1),
            ("3", "111", 2, "2011-01-03 10:00", 1.0, 1),  # latest, too small
            ("C4", "111", -10, "2011-01-04 10:00", 1.0, 1),  # lands on row 2, not row 1
            ("5", "222", 5, "2011-01-01 10:00", 1.0, 1),
            ("6", "222", 8, "2011-01-02 10:00", 1.0, 1),
            ("C7", "222", -4, "2011-01-04 10:00", 1.0, 1),  # the latest qualifies: row 6
        ]
    )
    assert canceled_by_row(raw) == {1: 0, 2: 10, 3: 0, 5: 0, 6: 4}


def test_latest_means_latest_in_file_order_not_in_time() -> None:
    raw = raw_frame(
        [
            ("1", "111", 10, "2011-01-02 10:00", 1.0, 1),  # later in time, earlier in file
            ("2", "111", 10, "2011-01-01 10:00", 1.0, 1),  # latest in file order
            ("C3", "111", -5, "2011-01-04 10:00", 1.0, 1),
        ]
    )
    assert canceled_by_row(raw) == {1: 0, 2: 5}


def test_several_candidates_none_large_enough_cancels_nothing() -> None:
    raw = raw_frame(
        [
            ("1", "111", 3, "2011-01-01 10:00", 1.0, 1),
            ("2", "111", 4, "2011-01-02 10:00", 1.0, 1),
            ("C3", "111", -8, "2011-01-03 10:00", 1.0, 1),
        ]
    )
    assert canceled_by_row(raw) == {1: 0, 2: 0}


def test_a_later_return_on_the_same_line_overwrites() -> None:
    raw = raw_frame(
        [
            ("1", "111", 10, "2011-01-01 09:00", 1.0, 1),
            ("1", "222", 10, "2011-01-01 09:00", 1.0, 1),
            ("2", "222", 2, "2011-01-02 09:00", 1.0, 1),
            ("C3", "111", -3, "2011-01-02 16:00", 1.0, 1),
            ("C4", "111", -4, "2011-01-03 16:00", 1.0, 1),  # 4, not 3 + 4
            ("C4", "222", -5, "2011-01-03 16:00", 1.0, 1),  # row 3 too small: row 2
            ("C5", "222", -6, "2011-01-04 16:00", 1.0, 1),  # row 2 again: 6
        ]
    )
    assert canceled_by_row(raw) == {1: 4, 2: 6, 3: 0}


def test_a_purchase_at_the_same_minute_is_not_a_candidate() -> None:
    raw = raw_frame(
        [
            ("1", "111", 6, "2011-01-01 12:00", 1.0, 1),
            ("C2", "111", -2, "2011-01-01 12:00", 1.0, 1),  # same minute: no candidate
            ("3", "222", 6, "2011-01-02 09:00", 1.0, 1),
            ("4", "222", 1, "2011-01-03 12:30", 1.0, 1),
            ("C5", "222", -2, "2011-01-03 12:30", 1.0, 1),  # only row 3 is earlier
        ]
    )
    assert canceled_by_row(raw) == {1: 0, 3: 2, 4: 0}


def test_duplicates_are_removed_before_matching() -> None:
    raw = raw_frame(
        [
            ("1", "111", 2, "2011-01-01 10:00", 1.0, 1),
            ("1", "111", 2, "2011-01-01 10:00", 1.0, 1),  # exact duplicate of row 1
            ("C2", "111", -5, "2011-01-02 10:00", 1.0, 1),
            ("C2", "111", -5, "2011-01-02 10:00", 1.0, 1),  # exact duplicate of row 3
        ]
    )
    # one candidate after de-duplication (two, none large enough, without it)
    assert canceled_by_row(raw) == {1: 5}


def test_match_returns_reports_candidates_and_targets() -> None:
    raw = raw_frame(
        [
            ("1", "111", 24, "2011-01-01 10:00", 1.0, 1),
            ("2", "111", 2, "2011-01-02 10:00", 1.0, 1),
            ("C3", "111", -10, "2011-01-03 10:00", 1.0, 1),
            ("C4", "999", -1, "2011-01-03 10:00", 1.0, 1),
        ]
    )
    matches = ref.match_returns(raw)
    assert matches["source_row_number"].tolist() == [3, 4]
    assert matches["returned_quantity"].tolist() == [10, 1]
    assert matches["candidates"].tolist() == [2, 0]
    assert matches["latest_candidate_row"].tolist() == [2, pd.NA]
    assert matches["target_row"].tolist() == [1, pd.NA]


def test_cleaning_steps_and_audit() -> None:
    raw = raw_frame(
        [
            ("1", "85123A", 6, "2011-01-01 10:00", 2.55, 1),  # kept
            ("1", "85123A", 6, "2011-01-01 10:00", 2.55, 1),  # duplicate
            ("1", "22000", 1, "2011-01-01 10:00", 1.0, None),  # no customer
            ("1", "POST", 1, "2011-01-01 10:00", 18.0, 1),  # service
            ("1", "BANK CHARGES", 1, "2011-01-01 10:00", 15.0, 1),  # service
            ("1", "m", 1, "2011-01-01 10:00", 2.55, 1),  # service, lower case
            ("1", "gift_0001_20", 1, "2011-01-01 10:00", 17.02, 1),  # service, lower case
            ("1", "22001", 4, "2011-01-01 10:00", 0.0, 1),  # zero price
            ("C2", "85123A", -2, "2011-01-02 10:00", 2.55, 1),  # return
            ("C2", "22002", -1, "2011-01-02 10:00", 1.0, None),  # return without customer
        ]
    )
    lines, audit = ref.clean_with_audit(raw)
    assert lines.columns.tolist() == ref.CLEAN_COLUMNS
    assert lines["source_row_number"].tolist() == [1]
    row = lines.iloc[0]
    assert (row["invoice_no"], row["stock_code"], row["quantity"]) == ("1", "85123A", 6)
    assert row["quantity_canceled"] == 2
    assert row["total_price"] == pytest.approx(2.55 * 4)
    assert row["customer_id"] == 1
    assert row["invoice_at"] == pd.Timestamp("2011-01-01 10:00")

    assert audit.columns.tolist() == [
        "step_number",
        "step_name",
        "rows_in",
        "rows_removed",
        "rows_out",
    ]
    assert audit["step_number"].tolist() == [1, 2, 3, 4, 5, 6]
    assert audit["rows_in"].tolist() == [10, 8, 7, 7, 6, 2]
    assert audit["rows_removed"].tolist() == [2, 1, 0, 1, 4, 1]
    assert audit["rows_out"].tolist() == [8, 7, 7, 6, 2, 1]
    assert ref.cleaning_audit(raw).equals(audit)


@pytest.mark.parametrize(
    ("n", "sizes"),
    [
        (1, [1]),
        (3, [1, 1, 1]),
        (5, [1, 1, 1, 1, 1]),
        (7, [2, 2, 1, 1, 1]),
        (10, [2, 2, 2, 2, 2]),
        (14, [3, 3, 3, 3, 2]),
    ],
)
def test_ntile_bucket_sizes_follow_sql(n: int, sizes: list[int]) -> None:
    order = pd.DataFrame({"key": np.arange(n)[::-1]}, index=np.arange(100, 100 + n))
    tiles = ref.ntile(order, buckets=5)
    assert tiles.index.tolist() == order.index.tolist()
    assert tiles.value_counts().sort_index().tolist() == sizes
    # the smallest key gets bucket 1
    assert tiles.loc[order["key"].idxmin()] == 1
    assert tiles.is_monotonic_decreasing


def clean_frame(rows: list[tuple[int, str, str, float]]) -> pd.DataFrame:
    """Clean lines (customer_id, invoice_no, invoice_at, total_price)."""
    frame = pd.DataFrame(rows, columns=["customer_id", "invoice_no", "invoice_at", "total_price"])
    frame["invoice_at"] = pd.to_datetime(frame["invoice_at"])
    return frame


def test_rfm_recency_frequency_monetary_and_as_of() -> None:
    lines = clean_frame(
        [
            (1, "A", "2011-12-08 23:59", 10.0),  # 1 day 0:01 before as_of: 1
            (1, "A", "2011-12-08 23:59", 5.0),  # same invoice: frequency stays 1
            (2, "B", "2011-12-09 00:01", 7.5),  # 23:59 before: 0
            (2, "C", "2011-11-01 10:00", -2.5),
            (3, "D", "2011-12-10 00:00", 100.0),  # at as_of: does not count
            (4, "E", "2011-12-10 00:00", 1.0),  # only at as_of: no row
            (3, "F", "2011-12-01 00:00", 3.0),
        ]
    )
    out = ref.rfm(lines, as_of=pd.Timestamp("2011-12-10"))
    assert out.columns.tolist() == ref.RFM_COLUMNS
    out = out.set_index("customer_id")
    assert out.index.tolist() == [1, 2, 3]
    assert out["recency_days"].to_dict() == {1: 1, 2: 0, 3: 9}
    assert out["frequency"].to_dict() == {1: 1, 2: 2, 3: 1}
    assert out["monetary"].to_dict() == {1: 15.0, 2: 5.0, 3: 3.0}


def test_rfm_scores_and_outliers() -> None:
    # seven customers: ntile(5) gives buckets of 2, 2, 1, 1, 1
    invoices = {11: 1, 12: 1, 13: 10, 14: 1, 15: 2, 16: 3, 17: 1}
    spend = {11: 5.0, 12: 5.0, 13: 50.0, 14: 20.0, 15: 30.0, 16: 40.0, 17: 1000.0}
    recency = {11: 1, 12: 2, 13: 2, 14: 30, 15: 5, 16: 6, 17: 7}
    as_of = pd.Timestamp("2011-12-10")
    rows = []
    for customer, count in invoices.items():
        last = as_of - pd.Timedelta(days=recency[customer], hours=12)
        for k in range(count):
            at = last if k == 0 else pd.Timestamp("2011-11-01")
            rows.append((customer, f"{customer}-{k}", str(at), spend[customer] / count))
    out = ref.rfm(clean_frame(rows), as_of=as_of).set_index("customer_id")
    assert out["recency_days"].to_dict() == recency
    # recency descending, then customer id: 14, 17, 16, 15, 12, 13, 11
    assert out["r_score"].to_dict() == {14: 1, 17: 1, 16: 2, 15: 2, 12: 3, 13: 4, 11: 5}
    # frequency ascending, then customer id: 11, 12, 14, 17, 15, 16, 13
    assert out["f_score"].to_dict() == {11: 1, 12: 1, 14: 2, 17: 2, 15: 3, 16: 4, 13: 5}
    # monetary ascending, then customer id: 11, 12, 14, 15, 16, 13, 17
    assert out["m_score"].to_dict() == {11: 1, 12: 1, 14: 2, 15: 2, 16: 3, 13: 4, 17: 5}
    # 95th percentiles (linear): frequency 3 + 0.7 * 7 = 7.9; monetary 50 + 0.7 * 950 = 715
    assert out.index[out["is_outlier"]].tolist() == [13, 17]


@pytest.mark.real_data
@pytest.mark.skipif(not REAL_PATH.exists(), reason=f"real UCI file not found at {REAL_PATH}")
def test_real_file_known_figures() -> None:
    raw = ref.read_raw(REAL_PATH)
    assert raw.columns.tolist() == ["source_row_number", *ref.RAW_COLUMNS]
    assert len(raw) == 541_909
    assert raw["source_row_number"].tolist()[:3] == [1, 2, 3]
    assert raw["CustomerID"].nunique() == 4_372
    assert raw["CustomerID"].isna().sum() == 135_080
    assert raw["InvoiceNo"].nunique() == 25_900
    assert raw["InvoiceNo"].str.startswith("C").sum() == 9_288
    assert raw["Country"].nunique() == 38
    # duplicated rows: every row beyond the first occurrence of its eight values
    assert raw.duplicated(subset=ref.RAW_COLUMNS, keep="first").sum() == 5_268
    assert raw["InvoiceDate"].min() == pd.Timestamp("2010-12-01 08:26")
    assert raw["Description"].str.contains("£", regex=False).any()

    lines, audit = ref.clean_with_audit(raw)
    assert audit["rows_out"].tolist() == [406_829, 401_604, 401_604, 392_732, 391_183, 391_150]
    assert len(lines) == 391_150
    assert (lines["quantity_canceled"] > 0).sum() == 7_138
    scores = ref.rfm(lines)
    assert len(scores) == 4_334
    assert scores["is_outlier"].sum() == 290
