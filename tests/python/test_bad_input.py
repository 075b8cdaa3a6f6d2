"""Bad raw input fails loudly before anything is replaced, and the last good build survives."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard
from dbt_helpers import Workspace, assert_built

pytestmark = pytest.mark.dbt

CHECKSUM_SQL = """
    select
        (select count(*) from marts.fct_sales_lines),
        (select sum(hash(source_row_number, total_price)) from marts.fct_sales_lines),
        (select count(*) from marts.customer_rfm),
        (select sum(hash(customer_id, recency_days, frequency, monetary)) from marts.customer_rfm)
"""


def _text(path: Path) -> str:
    return zstandard.ZstdDecompressor().stream_reader(path.open("rb")).read().decode("latin-1")


def _write(path: Path, text: str) -> Path:
    path.write_bytes(zstandard.ZstdCompressor().compress(text.encode("latin-1")))
    return path


def _replace_field(text: str, column: str, line_index: int, value: str) -> str:
    """Set one field (by header name) on the line_index-th data line of a simple CSV text."""
    lines = text.splitlines()
    header = lines[0].split(",")
    position = header.index(column)
    for offset, line in enumerate(lines[1:], start=1):
        if '"' in line or offset < line_index:
            continue
        fields = line.split(",")
        fields[position] = value
        lines[offset] = ",".join(fields)
        break
    return "\n".join(lines) + "\n"


def _drop_column(text: str, column: str) -> str:
    rows = text.splitlines()
    position = rows[0].split(",").index(column)
    kept = [rows[0]] + [row for row in rows[1:] if '"' not in row]
    out = []
    for row in kept:
        fields = row.split(",")
        del fields[position]
        out.append(",".join(fields))
    return "\n".join(out) + "\n"


Mutation = Callable[[str], str | None]

CASES: dict[str, tuple[Mutation, list[str]]] = {
    "missing_file": (lambda text: None, ["Raw data file not found", "(id 352)", "RETAIL_RAW_PATH"]),
    "missing_column": (
        lambda text: _drop_column(text, "Country"),
        ["does not have the expected columns", "missing: Country"],
    ),
    "renamed_column": (
        lambda text: text.replace("CustomerID", "Customer ID", 1),
        ["missing: CustomerID", "unexpected: Customer ID"],
    ),
    "unparseable_date": (
        lambda text: _replace_field(text, "InvoiceDate", 5, "31/12/2011 10:00"),
        ["column InvoiceDate: 1 value(s)", "do not parse as M/D/YYYY H:MM", "'31/12/2011 10:00'"],
    ),
    "non_numeric_quantity": (
        lambda text: _replace_field(text, "Quantity", 9, "six"),
        ["column Quantity: 1 value(s)", "not an integer", "'six'"],
    ),
    "non_numeric_price": (
        lambda text: _replace_field(text, "UnitPrice", 3, "n/a"),
        ["column UnitPrice: 1 value(s)", "not a number", "'n/a'"],
    ),
    "empty_quantity": (
        lambda text: _replace_field(text, "Quantity", 4, ""),
        ["column Quantity: 1 value(s) are empty or not an integer"],
    ),
    "empty_file": (lambda text: "", ["is empty: no header line and no data lines"]),
    "header_only": (lambda text: text.splitlines()[0] + "\n", ["holds no data lines"]),
}


@pytest.fixture(scope="module")
def good_build(tmp_path_factory: pytest.TempPathFactory, synthetic_raw: Path) -> Workspace:
    workspace = Workspace(tmp_path_factory.mktemp("bad_input"))
    assert_built(workspace.build(synthetic_raw, "--exclude", "resource_type:test"))
    return workspace


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_raw_file_fails_clearly_and_keeps_last_good_marts(
    case: str, good_build: Workspace, synthetic_raw: Path, tmp_path: Path
) -> None:
    mutate, expected_phrases = CASES[case]
    before = good_build.query(CHECKSUM_SQL)
    mutated = mutate(_text(synthetic_raw))
    bad_path = tmp_path / f"{case}.csv.zst"
    if mutated is not None:
        _write(bad_path, mutated)

    result = good_build.build(bad_path)

    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert str(bad_path) in output, output[-3000:]
    for phrase in expected_phrases:
        assert phrase in output, f"{phrase!r} not in:\n{output[-3000:]}"
    assert good_build.query(CHECKSUM_SQL) == before


def test_validated_files_are_skipped_until_they_change(tmp_path: Path, synthetic_raw: Path) -> None:
    """The hook records a file that passed; an unchanged file is not scanned again, but a file
    rewritten in place (new size and modification time) is, and its problem still stops the run;
    --full-refresh validates again."""
    workspace = Workspace(tmp_path / "cache")
    raw = _write(tmp_path / "raw.csv.zst", _text(synthetic_raw))
    n_lines = len(_text(synthetic_raw).splitlines()) - 1
    select = ("run", "--select", "stg_online_retail__lines")

    first = workspace.dbt(raw, *select)
    assert_built(first)
    assert f"{n_lines} lines validated" in first.stdout
    assert workspace.query("select file, n_lines from ops.raw_file_validations") == [
        (str(raw), n_lines)
    ]
    second = workspace.dbt(raw, *select)
    assert_built(second)
    assert "unchanged since it was validated" in second.stdout
    assert "lines validated" not in second.stdout

    _write(raw, _replace_field(_text(synthetic_raw), "Quantity", 9, "six"))
    changed = workspace.dbt(raw, *select)
    assert changed.returncode != 0
    assert f"Raw data file '{raw}'" in changed.stdout and "'six'" in changed.stdout

    _write(raw, _text(synthetic_raw))
    refreshed = workspace.dbt(raw, *select, "--full-refresh")
    assert_built(refreshed)
    assert f"{n_lines} lines validated" in refreshed.stdout
