"""Tests of the synthetic raw-file generator: format, determinism and guaranteed quirks."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest
import zstandard

from retail_segments_dev import reference as ref
from retail_segments_dev import synthetic as syn

N_CUSTOMERS = 150
HEADER = b"InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"


@pytest.fixture(scope="module")
def lines() -> pd.DataFrame:
    return syn.generate_raw_lines(N_CUSTOMERS, seed=0)


@pytest.fixture(scope="module")
def raw_path(lines: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return syn.write_raw_file(lines, tmp_path_factory.mktemp("raw") / "fixture.csv.zst")


@pytest.fixture(scope="module")
def customer_lines(lines: pd.DataFrame) -> pd.DataFrame:
    """Customer lines without exact duplicates, as cleaning steps 1-2 leave them."""
    with_rows = lines.assign(source_row_number=range(1, len(lines) + 1))
    known = with_rows[with_rows["CustomerID"].notna()]
    return known[~known.duplicated(subset=syn.RAW_COLUMNS)]


def decompressed(path: Path) -> bytes:
    with path.open("rb") as handle:
        return zstandard.ZstdDecompressor().stream_reader(handle).read()


def test_same_seed_gives_identical_bytes_and_other_seeds_differ(
    raw_path: Path, tmp_path: Path
) -> None:
    again = syn.write_raw_file(syn.generate_raw_lines(N_CUSTOMERS, seed=0), tmp_path / "a.csv.zst")
    other = syn.write_raw_file(syn.generate_raw_lines(N_CUSTOMERS, seed=1), tmp_path / "b.csv.zst")
    assert again.read_bytes() == raw_path.read_bytes()
    assert other.read_bytes() != raw_path.read_bytes()


def test_chunked_generation_and_writing_give_the_same_lines_and_bytes(
    lines: pd.DataFrame, raw_path: Path, tmp_path: Path
) -> None:
    chunks = list(syn.iter_raw_chunks(N_CUSTOMERS, seed=0, chunk_lines=3_000))
    assert len(chunks) > 3
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), lines)
    streamed = syn.write_raw_file(iter(chunks), tmp_path / "streamed.csv.zst")
    assert streamed.read_bytes() == raw_path.read_bytes()


def test_file_format_reads_back_with_duckdb(lines: pd.DataFrame, raw_path: Path) -> None:
    text = decompressed(raw_path)
    assert text.startswith(HEADER)
    assert b"\xa3" in text  # the pound sign in latin-1
    assert b"\r" not in text
    relation = duckdb.sql(
        f"select * from read_csv('{raw_path}', encoding='latin-1', header=true, all_varchar=true)"
    )
    assert relation.columns == syn.RAW_COLUMNS
    rows, bad_dates, no_customer, quantity, padded = duckdb.sql(
        f"""
        select count(*),
               count(*) filter (where try_strptime(InvoiceDate, '%m/%d/%Y %H:%M') is null),
               count(*) filter (where CustomerID is null),
               sum(Quantity::bigint),
               count(*) filter (where regexp_matches(InvoiceDate, '^0|/0|  '))
        from read_csv('{raw_path}', encoding='latin-1', header=true, all_varchar=true)
        """
    ).fetchall()[0]
    assert rows == len(lines)
    assert bad_dates == 0
    assert padded == 0  # month, day and hour are not zero padded
    assert no_customer == lines["CustomerID"].isna().sum()
    assert quantity == lines["Quantity"].sum()
    # the reference reader gives back the frame
    back = ref.read_raw(raw_path)
    assert back["Description"].str.contains("£", regex=False).any()
    assert back["InvoiceDate"].equals(lines["InvoiceDate"].astype(back["InvoiceDate"].dtype))
    assert back["UnitPrice"].equals(lines["UnitPrice"])


def test_dates_trading_hours_and_seasonality(lines: pd.DataFrame) -> None:
    dates = lines["InvoiceDate"]
    assert dates.min() >= pd.Timestamp("2010-12-01")
    assert dates.max() < pd.Timestamp("2011-12-10")
    assert dates.is_monotonic_increasing  # the file is in time order, like the real one
    assert (dates.dt.day_of_week != 5).all()  # no Saturdays
    assert dates.dt.hour.between(7, 20).all()
    invoices_per_month = lines.groupby(dates.dt.to_period("M"))["InvoiceNo"].nunique()
    assert invoices_per_month.idxmax() == pd.Period("2011-11", "M")


def test_customers_products_and_skew(lines: pd.DataFrame) -> None:
    assert lines["CustomerID"].nunique() == N_CUSTOMERS
    assert 200 <= lines["StockCode"].nunique() <= 4_000
    purchases = lines[~lines["InvoiceNo"].str.startswith("C") & lines["CustomerID"].notna()]
    orders = purchases.groupby("CustomerID")["InvoiceNo"].nunique()
    assert orders.max() >= 100  # wholesale customers
    assert (orders == 1).mean() >= 0.2  # many one-time buyers
    invoice_keys = lines.groupby("InvoiceNo")[["InvoiceDate", "CustomerID"]].nunique(dropna=False)
    assert (invoice_keys == 1).all().all()  # an invoice has one time and one customer


def test_rates_of_the_quirks(lines: pd.DataFrame) -> None:
    n = len(lines)
    assert 0.15 <= lines["CustomerID"].isna().mean() <= 0.35
    duplicates = lines.duplicated(subset=syn.RAW_COLUMNS)
    assert 3 <= duplicates.sum() <= 0.03 * n
    assert duplicates[lines["CustomerID"].notna()].sum() >= 3
    is_cancellation = lines["InvoiceNo"].str.startswith("C")
    assert (lines.loc[is_cancellation, "Quantity"] < 0).all()
    assert 0.005 <= is_cancellation.mean() <= 0.04
    zero_price = lines["UnitPrice"] == 0
    assert 0.001 <= zero_price.mean() <= 0.015
    assert (zero_price & lines["CustomerID"].notna()).sum() >= 3


def test_service_codes_and_descriptions(lines: pd.DataFrame) -> None:
    codes = set(lines["StockCode"])
    service = ["POST", "DOT", "M", "C2", "D", "BANK CHARGES", "AMAZONFEE", "CRUK", "PADS", "B", "S"]
    assert set(service) <= codes
    known = lines[lines["CustomerID"].notna()]
    assert {"POST", "DOT", "M", "C2", "D", "BANK CHARGES", "CRUK", "PADS", "S", "m"} <= set(
        known["StockCode"]
    )
    descriptions = lines["Description"].dropna()
    assert descriptions.str.contains("£", regex=False).sum() >= 3
    assert descriptions.str.contains(",", regex=False).sum() >= 3
    assert descriptions.str.contains('"', regex=False).sum() >= 1
    per_code = known.groupby("StockCode")["Description"].nunique()
    assert (per_code > 1).sum() >= 1
    countries = known.groupby("CustomerID")["Country"].nunique()
    assert (countries > 1).sum() >= 3


def test_every_cancellation_branch_appears(customer_lines: pd.DataFrame) -> None:
    matches = ref.match_returns(customer_lines)
    quantity = customer_lines.set_index("source_row_number")["Quantity"]
    one = matches[matches["candidates"] == 1]
    several = matches[matches["candidates"] > 1]
    assert (matches["candidates"] == 0).sum() >= 3
    assert len(one) >= 3
    assert (one["target_row"].map(quantity) < one["returned_quantity"]).sum() >= 3
    walked_back = several["target_row"].notna() & (
        several["target_row"] != several["latest_candidate_row"]
    )
    assert walked_back.sum() >= 3
    assert several["target_row"].isna().sum() >= 3
    assert (matches["target_row"].value_counts() >= 2).sum() >= 3
    keys = ["CustomerID", "StockCode", "InvoiceDate"]
    returns = customer_lines[customer_lines["Quantity"] < 0]
    purchases = customer_lines[customer_lines["Quantity"] > 0]
    assert len(returns[keys].merge(purchases[keys])) >= 3  # return at a purchase's minute


def test_too_few_customers_is_refused() -> None:
    with pytest.raises(ValueError, match="at least"):
        syn.generate_raw_lines(syn.MIN_CUSTOMERS - 1)


def test_cli_writes_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli" / "raw.csv.zst"
    assert syn.main(["--customers", "40", "--seed", "3", "--out", str(out)]) == 0
    assert decompressed(out).startswith(HEADER)
    assert str(out) in capsys.readouterr().out
    expected = syn.write_raw_file(syn.generate_raw_lines(40, seed=3), tmp_path / "same.csv.zst")
    assert out.read_bytes() == expected.read_bytes()
