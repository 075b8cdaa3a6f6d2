"""Good variants of the raw file load exactly like the canonical file; the UCI download (zip and
xlsx) and the Online Retail II layout are read by name; the checks of `retail_segments.ops.inputs`
work on their own (no dbt here).

"Exactly like" is checked on the landed rows, which are all that dbt reads: every typed column of
every line, in file order, equal to the canonical file's.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import random
import re
import zipfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
import zstandard

from retail_segments.ops import inputs, preflight
from retail_segments.ops.inputs import (
    ONLINE_RETAIL_II_COLUMNS,
    RAW_COLUMNS,
    InputError,
    LandedFile,
    _TextOutsideQuotes,
    land_file,
    landing_key,
    landing_rules,
    scratch_connection,
)

TYPED = ["file_row_number", *RAW_COLUMNS]


def _text(path: Path) -> str:
    return zstandard.ZstdDecompressor().stream_reader(path.open("rb")).read().decode("latin-1")


def _rows(landed: LandedFile) -> list[tuple]:
    with duckdb.connect() as connection:
        return connection.execute(
            f"select {', '.join(TYPED)} from read_parquet(?) order by file_row_number",
            [str(landed.parquet)],
        ).fetchall()


def _refusal(path: Path, cache: Path) -> str:
    """The message of the `InputError` landing path refuses with."""
    with pytest.raises(InputError) as raised:
        land_file(path, cache)
    return str(raised.value)


@pytest.fixture(scope="module")
def canonical(synthetic_raw: Path, tmp_path_factory: pytest.TempPathFactory) -> list[tuple]:
    landed = land_file(synthetic_raw, tmp_path_factory.mktemp("canonical_cache"))
    assert landed.encoding == "latin-1" and landed.layout == "online_retail"
    assert landed.read_as == "latin-1"
    return _rows(landed)


def _reordered(text: str) -> str:
    rows = list(csv.reader(io.StringIO(text)))
    order = [7, 3, 0, 6, 2, 5, 1, 4]
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([row[i] for i in order] for row in rows)
    return out.getvalue()


def _quote_all(text: str) -> str:
    rows = list(csv.reader(io.StringIO(text)))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(rows[0])
    # csv.QUOTE_ALL would turn an empty field into "" (an empty string); keep empty fields empty
    for row in rows[1:]:
        out.write(
            ",".join("" if value == "" else '"' + value.replace('"', '""') + '"' for value in row)
        )
        out.write("\n")
    return out.getvalue()


def _float_customer_ids(text: str) -> str:
    """CustomerID as pandas writes a column with missing values: 17850.0."""
    rows = list(csv.reader(io.StringIO(text)))
    position = rows[0].index("CustomerID")
    for row in rows[1:]:
        if row[position]:
            row[position] += ".0"
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def _iso_dates(text: str) -> str:
    rows = list(csv.reader(io.StringIO(text)))
    position = rows[0].index("InvoiceDate")
    for row in rows[1:]:
        row[position] = pd.Timestamp(
            pd.to_datetime(row[position], format="%m/%d/%Y %H:%M")
        ).strftime("%Y-%m-%d %H:%M:%S")
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def _online_retail_ii_header(text: str) -> str:
    first, rest = text.split("\n", 1)
    ours_to_theirs = {ours: theirs for theirs, ours in ONLINE_RETAIL_II_COLUMNS.items()}
    return ",".join(ours_to_theirs[name] for name in first.split(",")) + "\n" + rest


Variant = tuple[str, Callable[[str], bytes]]
VARIANTS: list[Variant] = [
    ("crlf.csv.zst", lambda t: zstandard.compress(t.replace("\n", "\r\n").encode("latin-1"))),
    ("plain.csv", lambda t: t.encode("latin-1")),
    ("gzip.csv.gz", lambda t: gzip.compress(t.encode("latin-1"))),
    ("trailing_blank_lines.csv.zst", lambda t: zstandard.compress((t + "\n\n").encode("latin-1"))),
    ("utf8.csv.zst", lambda t: zstandard.compress(t.encode("utf-8"))),
    ("utf8_bom.csv", lambda t: b"\xef\xbb\xbf" + t.encode("utf-8")),
    ("reordered_columns.csv.zst", lambda t: zstandard.compress(_reordered(t).encode("latin-1"))),
    ("every_field_quoted.csv.zst", lambda t: zstandard.compress(_quote_all(t).encode("latin-1"))),
    ("float_customer_ids.csv.gz", lambda t: gzip.compress(_float_customer_ids(t).encode("utf-8"))),
    ("iso_dates.csv", lambda t: _iso_dates(t).encode("latin-1")),
    ("online_retail_ii.csv", lambda t: _online_retail_ii_header(t).encode("utf-8")),
    ("csv_in_a.zip", lambda t: _zipped("Online Retail.csv", t.encode("latin-1"))),
]


def _zipped(member: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member, data)
    return buffer.getvalue()


@pytest.mark.parametrize("name, make", VARIANTS, ids=[name for name, _ in VARIANTS])
def test_a_good_variant_lands_exactly_like_the_canonical_file(
    name: str,
    make: Callable[[str], bytes],
    canonical: list[tuple],
    synthetic_raw: Path,
    tmp_path: Path,
) -> None:
    path = tmp_path / name
    path.write_bytes(make(_text(synthetic_raw)))
    landed = land_file(path, tmp_path / "cache")
    assert landed.n_rows == len(canonical)
    assert _rows(landed) == canonical
    utf8 = {"utf8.csv.zst", "utf8_bom.csv", "float_customer_ids.csv.gz", "online_retail_ii.csv"}
    assert landed.read_as == ("utf-8" if name in utf8 else "latin-1")  # its "£" tells them apart


def test_the_fixture_has_the_quirks_the_variants_rely_on(synthetic_raw: Path) -> None:
    text = _text(synthetic_raw)
    assert "£" in text  # non-ASCII: the UTF-8 variants differ from latin-1 in bytes
    assert any(
        '"' in line and "," in line.split('"')[1] for line in text.splitlines() if '"' in line
    )
    assert ",," in text  # empty fields (no customer id, no description)


def _workbook_rows(text: str) -> list[list[object]]:
    """The synthetic lines as Excel holds them: numbers as numbers, dates as datetimes, customer
    ids as floats (the column has blanks), invoices and stock codes as numbers where numeric."""
    frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    rows = []
    for record in frame.itertuples(index=False):
        invoice, stock, description, quantity, date, price, customer, country = record
        rows.append(
            [
                int(invoice) if invoice.isdigit() else invoice,
                int(stock) if stock.isdigit() else stock,
                description or None,
                int(quantity),
                pd.to_datetime(date, format="%m/%d/%Y %H:%M").to_pydatetime(),
                float(price),
                float(customer) if customer else None,
                country,
            ]
        )
    return rows


def _write_workbook(path: Path, header: list[str], rows: list[list[object]], sheets: int) -> Path:
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    size = -(-len(rows) // sheets)
    for number in range(sheets):
        sheet = workbook.create_sheet(f"Year {2009 + number}-{2010 + number}")
        sheet.append(header)
        for row in rows[number * size : (number + 1) * size]:
            sheet.append(row)
    workbook.save(path)
    return path


@pytest.fixture(scope="module")
def workbook_rows(synthetic_raw: Path) -> list[list[object]]:
    return _workbook_rows(_text(synthetic_raw))


def test_the_uci_download_zip_is_read_through_its_workbook(
    workbook_rows: list[list[object]], canonical: list[tuple], tmp_path: Path
) -> None:
    workbook = _write_workbook(tmp_path / "Online Retail.xlsx", list(RAW_COLUMNS), workbook_rows, 1)
    download = tmp_path / "online+retail.zip"
    with zipfile.ZipFile(download, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(workbook, "Online Retail.xlsx")
    landed = land_file(download, tmp_path / "cache")
    assert landed.container == "zip" and landed.layout == "online_retail"
    assert _rows(landed) == canonical
    converted = list((tmp_path / "cache").glob("*.csv"))
    assert len(converted) == 1  # converted once, kept beside the landed rows (keyed by content)
    again = land_file(download, tmp_path / "cache")
    assert again.reused and _rows(again) == canonical
    # the text read was converted here (UTF-8): "utf-8" would say nothing of the user's file
    assert landed.read_as == again.read_as == "Excel workbook"


def test_online_retail_ii_workbook_with_two_sheets_is_mapped_by_name(
    workbook_rows: list[list[object]], canonical: list[tuple], tmp_path: Path
) -> None:
    header = list(ONLINE_RETAIL_II_COLUMNS)  # Invoice, StockCode, ..., Price, Customer ID, Country
    workbook = _write_workbook(tmp_path / "online_retail_II.xlsx", header, workbook_rows, 2)
    landed = land_file(workbook, tmp_path / "cache")
    assert landed.container == "xlsx" and landed.layout == "online_retail_ii"
    assert landed.read_as == "Excel workbook"
    assert _rows(landed) == canonical


def test_a_workbook_with_a_fractional_quantity_is_refused_naming_the_value(
    workbook_rows: list[list[object]], tmp_path: Path
) -> None:
    rows = [list(row) for row in workbook_rows]
    rows[5][3] = 2.5
    workbook = _write_workbook(tmp_path / "bad.xlsx", list(RAW_COLUMNS), rows, 1)
    message = _refusal(workbook, tmp_path / "cache")
    assert f"Raw data file '{workbook}'" in message
    assert "column Quantity: 1 value(s)" in message and "'2.5'" in message


def test_an_excel_error_in_a_workbook_is_refused_and_the_same_text_typed_as_text_lands(
    workbook_rows: list[list[object]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lookup that found nothing leaves #N/A in a cell: it loaded as the country '#N/A'. The
    error is refused naming its sheet, row and column; '#N/A' typed as text is a value. The cells'
    types are read in one more pass over the sheet, not one per row holding such text (each
    pass of a read-only sheet parses it from its top: 2,000 such rows took 107 s)."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.worksheet._read_only import ReadOnlyWorksheet

    def workbook_with(path: Path, data_type: str) -> Path:
        workbook = Workbook(write_only=True)
        sheet = workbook.create_sheet("Sales")
        sheet.append(list(RAW_COLUMNS))
        for number, row in enumerate(workbook_rows[:40], start=2):
            if number == 9 or (data_type == "s" and number % 3 == 0):
                country = WriteOnlyCell(sheet, value="#N/A")
                country.data_type = data_type
                row = [*row[:7], country]
            sheet.append(row)
        workbook.save(path)
        return path

    passes: list[tuple[object, ...]] = []
    iter_rows = ReadOnlyWorksheet.iter_rows

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        passes.append(args)
        return iter_rows(self, *args, **kwargs)

    monkeypatch.setattr(ReadOnlyWorksheet, "iter_rows", counted)

    error = workbook_with(tmp_path / "lookup.xlsx", "e")
    with pytest.raises(InputError) as raised:
        land_file(error, tmp_path / "cache")
    message = str(raised.value)
    assert message.startswith(f"Raw data file '{error}' has a cell holding an Excel error")
    assert "row 9 of sheet 'Sales', column H (Country): #N/A, the error of a formula" in message
    assert "Fix: correct the formula" in message
    text = workbook_with(tmp_path / "typed.xlsx", "s")
    passes.clear()
    landed = land_file(text, tmp_path / "cache")
    with scratch_connection() as connection:
        countries = connection.execute(
            "select Country from read_parquet($path) where file_row_number = 8",
            {"path": str(landed.parquet)},
        ).fetchall()
    assert countries == [("#N/A",)]
    assert len(passes) == 2  # the values, then the types of the 13 rows holding "#N/A"


def test_a_bad_value_in_a_workbook_is_named_by_its_sheet_and_row(
    workbook_rows: list[list[object]], tmp_path: Path
) -> None:
    """The workbook's sheets follow one another after one header in the CSV it is converted to,
    blank rows left out: the message names the row as Excel shows it, not the CSV's line."""
    from openpyxl import Workbook

    rows = [list(row) for row in workbook_rows[:20]]
    rows[16][3] = 2.5
    workbook = Workbook(write_only=True)
    first = workbook.create_sheet("Mon")
    for row in [list(RAW_COLUMNS), *rows[:10]]:
        first.append(row)
    second = workbook.create_sheet("Tue")
    for row in [list(RAW_COLUMNS), *rows[10:15], [None] * 8, [], *rows[15:]]:
        second.append(row)
    path = tmp_path / "two_days.xlsx"
    workbook.save(path)
    with pytest.raises(InputError) as raised:
        land_file(path, tmp_path / "cache")
    # Tue: header row 1, rows[10:15] rows 2-6, blank rows 7-8, rows[15] row 9, rows[16] row 10
    assert "(first on row 10 of sheet 'Tue' of the file: '2.5')" in str(raised.value)


def test_a_sheet_whose_header_is_not_on_row_1_is_refused_not_left_out(
    workbook_rows: list[list[object]], tmp_path: Path
) -> None:
    """Before, a sheet with an empty row 1 was skipped as empty, with its rows (exit 0)."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    first = workbook.create_sheet("Dec-Feb")
    for row in [[None] * 8, list(RAW_COLUMNS), *workbook_rows[:10]]:
        first.append(row)
    second = workbook.create_sheet("Mar-Dec")
    for row in [list(RAW_COLUMNS), *workbook_rows[10:20]]:
        second.append(row)
    workbook.create_sheet("Notes")  # an empty sheet is still skipped
    path = tmp_path / "two.xlsx"
    workbook.save(path)
    message = _refusal(path, tmp_path / "cache")
    assert "has a sheet whose row 1 is empty (sheet 'Dec-Feb')" in message
    assert "row 2 of sheet 'Dec-Feb' is the first that holds values" in message
    assert "Fix: put the header on row 1" in message


def test_a_value_right_of_the_header_in_a_workbook_is_refused_not_dropped(
    workbook_rows: list[list[object]], tmp_path: Path
) -> None:
    """The same line in a CSV is refused (9 fields against 8); in a workbook the ninth cell was
    dropped and the line loaded (exit 0)."""
    rows = [list(row) for row in workbook_rows[:20]]
    rows[6] = [*rows[6], "VOID - do not count"]
    path = _write_workbook(tmp_path / "note.xlsx", list(RAW_COLUMNS), rows, 1)
    message = _refusal(path, tmp_path / "cache")
    assert "has values in columns the header does not name" in message
    assert "row 8 of sheet 'Year 2009-2010': column I holds 'VOID - do not count'" in message
    # a row whose only value is right of the header is refused too (it was skipped as blank)
    rows = [list(row) for row in workbook_rows[:20]]
    rows[3] = [None] * 10 + [17]
    path = _write_workbook(tmp_path / "far.xlsx", list(RAW_COLUMNS), rows, 1)
    with pytest.raises(InputError, match=r"row 5 of sheet .*: column K holds '17'"):
        land_file(path, tmp_path / "cache")


def _retail_sheet(path: Path, rows: list[list[object]]) -> Path:
    """One sheet named as in the UCI workbook, header on row 1."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Online Retail")
    for row in [list(RAW_COLUMNS), *rows]:
        sheet.append(row)
    workbook.save(path)
    return path


def _replace_cells(path: Path, cells: dict[str, str]) -> None:
    """Write cells of the workbook's first sheet as given XML: a formula with the value Excel
    stores beside it (openpyxl writes formulas without one)."""
    member = "xl/worksheets/sheet1.xml"
    with zipfile.ZipFile(path) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    text = parts[member].decode()
    for ref, xml in cells.items():
        text, count = re.subn(rf'<c r="{ref}"[^>]*>.*?</c>', xml, text)
        assert count == 1, ref
    parts[member] = text.encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)


def test_a_formula_without_a_stored_value_is_refused_naming_its_cell(
    workbook_rows: list[list[object]], tmp_path: Path
) -> None:
    """A workbook written by a script holds formulas without the value Excel would store beside
    them; openpyxl reads such a cell as empty, so the line loaded with no customer (exit 0)."""
    rows = [list(row) for row in workbook_rows[:20]]
    rows[15][6] = "=17000+850"  # CustomerID, row 17 (the header is row 1)
    rows[18][2] = '=UPPER("lantern")'
    path = _retail_sheet(tmp_path / "scripted.xlsx", rows)
    message = _refusal(path, tmp_path / "cache")
    assert f"Raw data file '{path}' has formulas whose values were never stored" in message
    assert "Online Retail!G17 (row 17, column G, CustomerID): =17000+850" in message
    assert "2 formula cell(s) of sheet 'Online Retail' hold no value" in message
    assert "Fix: open the workbook in Excel or LibreOffice and save it" in message


def test_a_formula_with_its_stored_value_loads_that_value(
    workbook_rows: list[list[object]], tmp_path: Path
) -> None:
    """As Excel saves them: the value beside the formula (an empty string as an empty cell)."""
    rows = [list(row) for row in workbook_rows[:20]]
    rows[15][6], rows[18][2] = 17850.0, None
    plain = land_file(_retail_sheet(tmp_path / "plain.xlsx", rows), tmp_path / "cache")
    rows[15][6], rows[18][2] = "=17000+850", '=IF(1,"","x")'
    path = _retail_sheet(tmp_path / "saved.xlsx", rows)
    _replace_cells(
        path,
        {
            "G17": '<c r="G17"><f>17000+850</f><v>17850</v></c>',
            "C20": '<c r="C20" t="str"><f>IF(1,"","x")</f><v></v></c>',
        },
    )
    assert _rows(land_file(path, tmp_path / "cache")) == _rows(plain)


def test_a_shared_formula_without_a_stored_value_is_named_as_excel_shows_it(
    workbook_rows: list[list[object]], tmp_path: Path
) -> None:
    """A formula filled down is stored once (shared); the cells below hold only a reference."""
    rows = [list(row) for row in workbook_rows[:20]]
    path = _retail_sheet(tmp_path / "filled.xlsx", rows)
    _replace_cells(
        path,
        {
            "F4": '<c r="F4"><f t="shared" ref="F4:F5" si="0">ROUND(F3*1.1,2)</f><v>3</v></c>',
            "F5": '<c r="F5"><f t="shared" si="0"/></c>',
        },
    )
    with pytest.raises(
        InputError,
        match=r"Online Retail!F5 \(row 5, column F, UnitPrice\): "
        r"=ROUND\(F4\*1\.1,2\)",
    ):
        land_file(path, tmp_path / "cache")


@pytest.mark.parametrize("state", ["hidden", "veryHidden"])
def test_a_hidden_sheet_with_data_is_refused_not_loaded(
    state: str, workbook_rows: list[list[object]], tmp_path: Path
) -> None:
    """Before, a hidden sheet's rows loaded like a visible sheet's (exit 0): lines nobody sees
    in Excel. An empty hidden sheet is skipped, as an empty visible one is."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    shown = workbook.create_sheet("Online Retail")
    for row in [list(RAW_COLUMNS), *workbook_rows[:10]]:
        shown.append(row)
    workbook.create_sheet("Scratch").sheet_state = state
    path = tmp_path / "empty_hidden.xlsx"
    workbook.save(path)
    assert land_file(path, tmp_path / "cache").n_rows == 10
    workbook = Workbook(write_only=True)
    shown = workbook.create_sheet("Online Retail")
    for row in [list(RAW_COLUMNS), *workbook_rows[:10]]:
        shown.append(row)
    hidden = workbook.create_sheet("Old")
    hidden.sheet_state = state
    for row in [list(RAW_COLUMNS), *workbook_rows[10:20]]:
        hidden.append(row)
    path = tmp_path / "hidden.xlsx"
    workbook.save(path)
    message = _refusal(path, tmp_path / "cache")
    assert "has a hidden sheet that holds data (sheet 'Old')" in message
    assert "row 1 of sheet 'Old' holds 'InvoiceNo' (column A)" in message
    assert "Fix: unhide the sheet to load its rows, or delete it" in message


def test_a_zip_without_a_workbook_is_refused(tmp_path: Path) -> None:
    download = tmp_path / "online+retail.zip"
    with zipfile.ZipFile(download, "w") as archive:
        archive.writestr("readme.txt", "no data here")
    with pytest.raises(InputError, match=r"must hold exactly one \.xlsx or \.csv file"):
        land_file(download, tmp_path / "cache")


def test_a_damaged_zip_is_refused(tmp_path: Path, workbook_rows: list[list[object]]) -> None:
    workbook = _write_workbook(tmp_path / "w.xlsx", list(RAW_COLUMNS), workbook_rows[:50], 1)
    download = tmp_path / "online+retail.zip"
    with zipfile.ZipFile(download, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(workbook, "Online Retail.xlsx")
    data = bytearray(download.read_bytes())
    data[len(data) // 3] ^= 0xFF
    download.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"is damaged|is not an Excel workbook"):
        land_file(download, tmp_path / "cache")


def test_a_landed_file_is_reused_only_while_its_bytes_are_the_same(
    synthetic_raw: Path, tmp_path: Path
) -> None:
    path = tmp_path / "raw.csv"
    text = _text(synthetic_raw)
    path.write_bytes(text.encode("latin-1"))
    first = land_file(path, tmp_path / "cache")
    assert not first.reused
    assert land_file(path, tmp_path / "cache").reused
    lines = text.splitlines()
    fields = lines[1].split(",")
    assert len(fields) == len(RAW_COLUMNS)
    fields[3] = "999"
    lines[1] = ",".join(fields)
    path.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    changed = land_file(path, tmp_path / "cache")
    assert not changed.reused and changed.sha256 != first.sha256


def test_a_file_landed_by_other_landing_code_is_checked_again_and_its_old_copy_removed(
    synthetic_raw: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cache is keyed by the code that checks a file: a file landed before a check was added
    is landed (so checked) again by the code that has it, not reused; the copy the old code
    landed is removed, and so is one of the numbered versions before, but not another engine's."""
    path = tmp_path / "raw.csv"
    path.write_bytes(_text(synthetic_raw).encode("latin-1"))
    cache = tmp_path / "cache"
    first = land_file(path, cache)
    landed_rows = _rows(first)
    assert first.parquet.name == f"{landing_key(first.sha256, path)}.parquet"
    numbered = first.parquet.name.replace(f"-r{landing_rules()}", "-v1")
    spark_copy = first.parquet.name.replace(".parquet", "-spark.parquet")
    for name in (numbered, spark_copy):
        (cache / name).write_bytes(b"landed by other code")
    monkeypatch.setattr(inputs, "landing_rules", lambda engine="duckdb": "0123456789ab")
    again = land_file(path, cache)
    assert not again.reused and again.parquet != first.parquet
    assert _rows(again) == landed_rows
    assert not first.parquet.exists() and not (cache / numbered).exists()
    assert (cache / spark_copy).exists()
    assert land_file(path, cache).reused


def test_a_landed_file_edited_or_truncated_in_the_cache_is_landed_again(
    synthetic_raw: Path, tmp_path: Path
) -> None:
    """The cache is trusted only while its Parquet is what was landed (its SHA-256 is recorded):
    one rewritten without a line, or truncated, is landed again from the input file rather than
    read (a line silently missing) or failing with a traceback."""
    path = tmp_path / "raw.csv"
    path.write_bytes(_text(synthetic_raw).encode("latin-1"))
    cache = tmp_path / "cache"
    first = land_file(path, cache)
    with duckdb.connect() as connection:
        connection.execute(
            "copy (select * from read_parquet($p) where file_row_number <> 5)"
            " to $t (format parquet)",
            {"p": str(first.parquet), "t": str(tmp_path / "edited.parquet")},
        )
    os.replace(tmp_path / "edited.parquet", first.parquet)
    again = land_file(path, cache)
    assert not again.reused and again.n_rows == first.n_rows
    with first.parquet.open("r+b") as handle:
        handle.truncate(1000)
    again = land_file(path, cache)
    assert not again.reused and again.n_rows == first.n_rows
    assert land_file(path, cache).reused


def _outside_quotes(*pieces: bytes) -> tuple[int, str] | None:
    check, newlines = _TextOutsideQuotes(), 0
    for piece in pieces:
        check.feed(piece, newlines)
        newlines += piece.count(b"\n")
    return None if check.found is None else check.found[:2]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b'a,b\n1,"x, ""y"" , z"\n2,12" TAPE\n3,"a\n b ,"\n', None),
        (b'a,b\n1, "x"\n', (2, "a space or tab before the opening quote")),
        (b'a,b\n1,\t"x"\n', (2, "a space or tab before the opening quote")),
        (b'a,b\n "x",1\n', (2, "a space or tab before the opening quote")),
        (b'a,b\n1,"x" \n', (2, "text after the closing quote")),
        (b'a,b\r\n1,"x"\r\n2,"y" \r\n', (3, "text after the closing quote")),
        (b'a,b\n1,"multi\nline" ,2\n', (3, "text after the closing quote")),
        (b'a,b\n1,"x"y\n', (2, "text after the closing quote")),
        (b'a,b\n1,"x" ', (2, "text after the closing quote")),
        (b'a,b\n1,"x"', None),
    ],
)
def test_text_outside_a_fields_quotes_is_found_wherever_the_chunks_split_it(
    text: bytes, expected: tuple[int, str] | None
) -> None:
    """Commas, line breaks, quotes and blanks inside quotes, and a quote inside an unquoted field,
    are the field's text; a blank before an opening quote or anything after a closing one is
    found on its line, however the text is cut into chunks (a quote or a blank on a cut)."""
    assert _outside_quotes(text) == expected
    for cut in range(len(text) + 1):
        assert _outside_quotes(text[:cut], text[cut:]) == expected, cut
        assert _outside_quotes(*(text[i : i + 1] for i in range(len(text)))) == expected


def test_the_text_outside_quotes_is_shown_from_its_own_line() -> None:
    check = _TextOutsideQuotes()
    check.feed(b'a,b\n1,"x" \n2,"y"\n', 0)
    assert check.found == (2, "text after the closing quote", b'1,"x" ')
    check = _TextOutsideQuotes()
    check.feed(b'a,b\n1,"x"\n2, "y",3\r\n4,z\n', 0)
    assert check.found == (3, "a space or tab before the opening quote", b' "y",3')


def test_a_csv_without_text_outside_quotes_reads_the_same_in_duckdb_and_pythons_csv(
    tmp_path: Path,
) -> None:
    """Random lines of quoted, half-quoted and unquoted fields (blanks, commas, quotes, line
    breaks): every one the check lets through and DuckDB's strict reader takes reads as Python's
    csv module reads it, field for field (DuckDB drops an empty field after the last column,
    which holds nothing: compared without it)."""
    rng = random.Random(7)
    atoms = ["a", " ", ",", '"', '""', "\n", "\t", "b c"]

    def field() -> str:
        body = "".join(rng.choice(atoms) for _ in range(rng.randint(0, 4)))
        kind = rng.random()
        if kind < 0.4:
            return f'"{body.replace(chr(34), chr(34) * 2) if rng.random() < 0.7 else body}"'
        if kind < 0.6:
            blanks = rng.choice([" ", "  ", "\t", ""]), rng.choice([" ", "", "  "])
            return f'{blanks[0]}"{body.replace(chr(34), chr(34) * 2)}"{blanks[1]}'
        return "".join(rng.choice(["a", " ", '"', "x"]) for _ in range(rng.randint(0, 3)))

    path = tmp_path / "random.csv"
    compared = 0
    with duckdb.connect() as connection:
        for _ in range(1500):
            lines = ["a,b,c", *(",".join(field() for _ in range(3)) for _ in range(2))]
            text = "\n".join(lines) + "\n"
            if _outside_quotes(text.encode()) is not None:
                continue
            path.write_text(text)
            try:
                read = connection.execute(
                    "select * from read_csv($p, header = true, auto_detect = false, delim = ',',"
                    " quote = '\"', escape = '\"', strict_mode = true,"
                    " columns = {'a': 'VARCHAR', 'b': 'VARCHAR', 'c': 'VARCHAR'})",
                    {"p": str(path)},
                ).fetchall()
            except duckdb.Error:
                continue  # refused as malformed: nothing loads
            rows = list(csv.reader(io.StringIO(text, newline="")))[1:]
            expected = [
                tuple(value or None for value in (row if any(row[3:]) else row[:3])) for row in rows
            ]
            assert read == expected, text
            compared += 1
    assert compared > 150


def test_a_header_with_columns_without_a_name_names_them_by_place(tmp_path: Path) -> None:
    """A spreadsheet's empty columns after the last (``...,Country,,``) are named by their place
    and the fix says to delete them; the message used to list them as blanks."""
    path = tmp_path / "export.csv"
    values = "536365,85123A,WHITE HEART,6,12/1/2010 8:26,2.55,17850,United Kingdom"
    path.write_text(f"{','.join(RAW_COLUMNS)},,\n{values},,\n", encoding="utf-8")
    with pytest.raises(InputError) as raised:
        land_file(path, tmp_path / "cache")
    message = str(raised.value)
    assert "unexpected: (no name, column 9), (no name, column 10)" in message
    assert "missing: none" in message and "repeated" not in message
    assert "(delete the columns without a name)" in message

    # an Online Retail II header is compared with its own layout's names
    path.write_text(f"{','.join(ONLINE_RETAIL_II_COLUMNS)},\n{values},\n", encoding="utf-8")
    with pytest.raises(InputError) as raised:
        land_file(path, tmp_path / "cache")
    message = str(raised.value)
    assert "missing: none" in message and "unexpected: (no name, column 9)" in message


def _daily_files(folder: Path, files: dict[str, list[str]]) -> list[LandedFile]:
    """Land a small raw file (lines up to 2011-12-09 12:50) and then each daily file named in
    ``files`` (its InvoiceDate texts, one line each), in that order."""
    folder.mkdir()
    cache = folder / "cache"

    def write(name: str, dates: list[str]) -> Path:
        path = folder / name
        lines = [
            f"{580000 + number},85123A,WHITE HEART,6,{date},2.55,17850,United Kingdom"
            for number, date in enumerate(dates)
        ]
        path.write_text("\n".join([",".join(RAW_COLUMNS), *lines]) + "\n", encoding="utf-8")
        return path

    raw = write("raw.csv", ["12/1/2010 8:26", "12/9/2011 12:50"])
    return [
        land_file(raw, cache),
        *(land_file(write(name, dates), cache) for name, dates in files.items()),
    ]


def test_a_daily_file_re_saved_with_day_first_dates_is_refused_naming_both_readings(
    tmp_path: Path,
) -> None:
    """A UK spreadsheet re-saves 10 December as 10/12/2011, which the documented M/D/YYYY reads as
    12 October: every date in the file reads both ways and only day first keeps the files in
    order, so the file is refused with both readings, not loaded two months early."""
    landed = _daily_files(
        tmp_path / "first", {"2011-12-10.csv": ["10/12/2011 09:00", "10/12/2011 09:05"]}
    )
    with pytest.raises(InputError) as raised:
        preflight.check_day_first_dates(landed)
    message = str(raised.value)
    assert message.startswith(f"Daily file '{landed[1].path}' has dates that look written day")
    assert (
        "line 2: '10/12/2011 09:00' loads as 2011-10-12 09:00 (month first, the documented"
        f" M/D/YYYY), before the last line of the files before it (2011-12-09 12:50 in"
        f" '{landed[0].path}'); read day first it is 2011-12-10 09:00, after it"
    ) in message
    assert "Fix: export the file again with its dates as M/D/YYYY H:MM" in message

    # after a daily file written in ISO, the next one day first: it is named against that file
    landed = _daily_files(
        tmp_path / "second",
        {"2011-12-10.csv": ["2011-12-10 10:00"], "2011-12-11.csv": ["11/12/2011 8:30"]},
    )
    with pytest.raises(InputError) as raised:
        preflight.check_day_first_dates(landed)
    assert str(raised.value).startswith(f"Daily file '{landed[2].path}'")
    assert f"(2011-12-10 10:00 in '{landed[1].path}')" in str(raised.value)


@pytest.mark.parametrize(
    "dates",
    [
        ["12/10/2011 09:00"],  # 10 December written month first: in order
        ["2011-10-12 09:00"],  # an old line in ISO reads one way only
        ["10/12/2011 09:00", "10/13/2011 09:00"],  # a day above 12: the file is month first
        ["3/5/2011 10:00"],  # before the raw file's end either way: an old line, month first
        # read day first, 5 March would be as early as 3 May: nothing says the file was re-saved
        ["12/10/2011 10:00", "5/3/2011 10:00"],
    ],
)
def test_dates_that_read_one_way_only_or_out_of_order_both_ways_load_as_written(
    dates: list[str], tmp_path: Path
) -> None:
    landed = _daily_files(tmp_path / "daily", {"2011-12-10.csv": dates})
    preflight.check_day_first_dates(landed)
    first = min(
        datetime.strptime(date, "%m/%d/%Y %H:%M") if "/" in date else datetime.fromisoformat(date)
        for date in dates
    )
    assert landed[1].first_invoice_at == first
