"""The synthetic generator against the real file: the same statistics, within stated tolerances.

The benchmark builds 10x and 100x files from the generator; this test is what makes their work
realistic. One scale-1 file (the real file's 4,372 customers, a couple of seconds to generate) is
compared with the real one on the rate of every quirk and on the order-count distribution.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retail_segments_dev import reference
from retail_segments_dev import synthetic as syn

pytestmark = pytest.mark.real_data

# statistic -> ("rel", r): |synthetic / real - 1| <= r;  ("abs", a): |synthetic - real| <= a
TOLERANCES: dict[str, tuple[str, float]] = {
    "share of lines without customer id": ("abs", 0.03),
    "share of exact duplicate lines": ("rel", 0.3),
    "share of cancellation lines": ("rel", 0.3),
    "share of service stock code lines": ("rel", 0.3),
    "share of zero-price lines": ("rel", 0.3),
    # 8 customers in the real file: a rare event, so a factor of two
    "share of customers in several countries": ("rel", 0.5),
    "share of customer lines that are returns": ("rel", 0.3),
    "share of returns with an earlier purchase": ("abs", 0.06),
    "share of returns matched to a purchase line": ("abs", 0.06),
    "share of one-order customers": ("abs", 0.03),
    "share of customers with >= 10 orders": ("abs", 0.02),
    "median orders per customer": ("abs", 0),
    "lines per customer": ("rel", 0.15),
    "mean lines per purchase invoice": ("rel", 0.15),
    "median lines per purchase invoice": ("rel", 0.25),
    "share of invoices in November 2011": ("abs", 0.01),
}


def raw_statistics(lines: pd.DataFrame) -> dict[str, float]:
    """The compared statistics of a raw-lines frame (the eight raw columns, in file order)."""
    known = lines.loc[lines["CustomerID"].notna()]
    deduplicated = known.loc[~known.duplicated(subset=syn.RAW_COLUMNS)].assign(
        source_row_number=lambda frame: np.arange(1, len(frame) + 1)
    )
    purchases = deduplicated.loc[deduplicated["Quantity"] > 0]
    orders = purchases.groupby("CustomerID")["InvoiceNo"].nunique()
    lines_per_invoice = purchases.groupby("InvoiceNo").size()
    matches = reference.match_returns(deduplicated)
    invoices = lines.drop_duplicates("InvoiceNo")["InvoiceDate"]
    return {
        "share of lines without customer id": lines["CustomerID"].isna().mean(),
        "share of exact duplicate lines": lines.duplicated(subset=syn.RAW_COLUMNS).mean(),
        "share of cancellation lines": lines["InvoiceNo"].str.startswith("C").mean(),
        "share of service stock code lines": lines["StockCode"].str.match(r"[A-Za-z]").mean(),
        "share of zero-price lines": (lines["UnitPrice"] == 0).mean(),
        "share of customers in several countries": (
            known.groupby("CustomerID")["Country"].nunique() > 1
        ).mean(),
        "share of customer lines that are returns": (deduplicated["Quantity"] < 0).mean(),
        "share of returns with an earlier purchase": (matches["candidates"] > 0).mean(),
        "share of returns matched to a purchase line": matches["target_row"].notna().mean(),
        "share of one-order customers": (orders == 1).mean(),
        "share of customers with >= 10 orders": (orders >= 10).mean(),
        "median orders per customer": orders.median(),
        "lines per customer": len(known) / known["CustomerID"].nunique(),
        "mean lines per purchase invoice": lines_per_invoice.mean(),
        "median lines per purchase invoice": lines_per_invoice.median(),
        "share of invoices in November 2011": (
            invoices.dt.to_period("M") == pd.Period("2011-11", "M")
        ).mean(),
    }


def within(kind: str, tolerance: float, synthetic: float, real: float) -> bool:
    """Whether a synthetic statistic is within its tolerance of the real one."""
    if kind == "rel":
        return abs(synthetic / real - 1) <= tolerance
    return abs(synthetic - real) <= tolerance


@pytest.fixture(scope="module")
def real_lines(real_raw: Path) -> pd.DataFrame:
    return reference.read_raw(real_raw).drop(columns="source_row_number")


@pytest.fixture(scope="module")
def synthetic_lines() -> pd.DataFrame:
    return syn.generate_raw_lines(syn.scaled_customers(1), seed=0)


def test_quirk_rates_and_order_counts_match_the_real_file(
    real_lines: pd.DataFrame, synthetic_lines: pd.DataFrame
) -> None:
    real = raw_statistics(real_lines)
    synthetic = raw_statistics(synthetic_lines)
    assert set(real) == set(TOLERANCES)
    report = [
        f"{name}: real {real[name]:.4f}, synthetic {synthetic[name]:.4f}, "
        f"tolerance {kind} {tolerance}"
        for name, (kind, tolerance) in TOLERANCES.items()
        if not within(kind, tolerance, synthetic[name], real[name])
    ]
    assert not report, "\n".join(report)


def test_skew_and_seasonality_match_the_real_file(
    real_lines: pd.DataFrame, synthetic_lines: pd.DataFrame
) -> None:
    for lines in (real_lines, synthetic_lines):
        purchases = lines.loc[lines["CustomerID"].notna() & (lines["Quantity"] > 0)]
        orders = purchases.groupby("CustomerID")["InvoiceNo"].nunique()
        assert 1 <= (orders >= 100).sum() <= 10  # a few wholesale customers
        assert 150 <= orders.max() <= 260
        invoices = lines.drop_duplicates("InvoiceNo")["InvoiceDate"]
        assert invoices.dt.to_period("M").value_counts().idxmax() == pd.Period("2011-11", "M")


def test_scale_factor_counts_real_customers() -> None:
    assert syn.scaled_customers(1) == 4_372
    assert syn.scaled_customers(100) == 437_200
    with pytest.raises(ValueError, match="at least"):
        syn.scaled_customers(0.001)
