"""Fault injection: every kind of bad input or setting stops `make build` before anything is
replaced, with a message naming the file or setting, the line or value, and the fix; the build
warehouse's marts and the published serving copy stay exactly as they were.

Each case runs ``python -m retail_segments build`` (what ``make build`` runs) against a warehouse
copied from the session's synthetic build, whose serving copy was published first. The checks run
before dbt starts, so each case takes about a second.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import zstandard
from dbt_helpers import (
    PROJECT_ROOT,
    CliInProcess,
    Workspace,
    copy_workspace,
    table_checksums,
)

from retail_segments.ops import preflight, publish
from retail_segments.ops.inputs import InputError
from retail_segments_dev.synthetic import generate_raw_lines, write_raw_file

pytestmark = pytest.mark.dbt

# ---------------------------------------------------------------------------------------------
# how a case's file is written
# ---------------------------------------------------------------------------------------------


def zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(write_checksum=True).compress(data)


def text_of(path: Path) -> str:
    """The synthetic raw file's text (latin-1, as the UCI file)."""
    return zstandard.ZstdDecompressor().stream_reader(path.open("rb")).read().decode("latin-1")


def replace_field(text: str, column: str, line_index: int, value: str) -> str:
    """Set one field (by header name) on the first unquoted data line at or after line_index."""
    lines = text.splitlines()
    position = lines[0].split(",").index(column)
    for offset in range(line_index, len(lines)):
        if '"' in lines[offset]:
            continue
        fields = lines[offset].split(",")
        fields[position] = value
        lines[offset] = ",".join(fields)
        return "\n".join(lines) + "\n"
    raise AssertionError("no unquoted line to change")


def unquoted_line_number(text: str, line_index: int) -> int:
    """The 1-based file line that replace_field changes for line_index."""
    lines = text.splitlines()
    return next(i for i in range(line_index, len(lines)) if '"' not in lines[i]) + 1


def drop_column(text: str, column: str) -> str:
    rows = text.splitlines()
    position = rows[0].split(",").index(column)
    kept = [rows[0]] + [row for row in rows[1:] if '"' not in row]
    out = []
    for row in kept:
        fields = row.split(",")
        del fields[position]
        out.append(",".join(fields))
    return "\n".join(out) + "\n"


def add_column(text: str, name: str, header: str | None = None) -> str:
    rows = text.splitlines()
    rows[0] = f"{rows[0]},{header or name}"
    return "\n".join([rows[0]] + [f"{row},x" for row in rows[1:]]) + "\n"


@dataclass(frozen=True)
class Case:
    """A bad input: the file's name and bytes (from the good text), extra environment and dbt
    arguments, and the phrases the error must contain ({path} is the file's path)."""

    name: str
    content: Callable[[str], bytes | None]
    phrases: list[str]
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)


def latin1(text: str) -> bytes:
    return text.encode("latin-1")


def _truncated_zstd(text: str) -> bytes:
    data = zstd(latin1(text))
    return data[: len(data) // 2]


def _truncated_between_frames(text: str) -> bytes:
    """Two frames; the second cut short: the first frame ends exactly at a line end."""
    raw = latin1(text)
    cut = raw.index(b"\n", len(raw) // 2) + 1
    second = zstd(raw[cut:])
    return zstd(raw[:cut]) + second[: len(second) // 3]


def _corrupt_zstd(text: str) -> bytes:
    data = bytearray(zstd(latin1(text)))
    data[len(data) // 2] ^= 0xFF
    return bytes(data)


def _trailing_garbage(text: str) -> bytes:
    return zstd(latin1(text)) + b"garbage after the frame"


def _with_cp1252(text: str) -> bytes:
    return zstd(latin1(replace_field(text, "Description", 7, "EURO \x80 SIGN")))


def _mixed_encodings(text: str) -> bytes:
    """The latin-1 file (its pound signs are byte 0xA3) with one description in UTF-8."""
    marked = replace_field(text, "Description", 9, "CAF\u00c9 MUG MIXED")
    return zstd(
        latin1(marked).replace("CAF\u00c9 MUG MIXED".encode("latin-1"), "CAF\u00c9 MUG".encode())
    )


def _utf16(text: str) -> bytes:
    return zstd(codecs.BOM_UTF16_LE + text.encode("utf-16-le"))


def _nul_byte(text: str) -> bytes:
    raw = bytearray(latin1(text))
    raw[raw.index(b"\n", 500) + 3] = 0
    return zstd(bytes(raw))


def _short_line(text: str) -> bytes:
    lines = text.splitlines()
    index = next(i for i in range(12, len(lines)) if '"' not in lines[i])
    lines[index] = lines[index].rsplit(",", 1)[0]
    return zstd(latin1("\n".join(lines) + "\n"))


def _unterminated_quote(text: str) -> bytes:
    lines = text.splitlines()
    index = next(i for i in range(15, len(lines)) if '"' not in lines[i])
    fields = lines[index].split(",")
    fields[2] = '"OPEN QUOTE'
    lines[index] = ",".join(fields)
    return zstd(latin1("\n".join(lines) + "\n"))


def _bad(column: str, index: int, value: str) -> Callable[[str], bytes]:
    return lambda text: zstd(latin1(replace_field(text, column, index, value)))


def _bad_fields(*changes: tuple[str, int, str]) -> Callable[[str], bytes]:
    """Several fields replaced (column, line index, value), each as `_bad` does one."""

    def content(text: str) -> bytes:
        for column, index, value in changes:
            text = replace_field(text, column, index, value)
        return zstd(latin1(text))

    return content


FILE = "Raw data file '{path}'"
VALUES = "has values that would not load exactly as written"

CASES: list[Case] = [
    # the original bad-input cases (missing file, header, unparseable values, empty files)
    Case(
        "missing_file",
        lambda text: None,
        ["does not exist", "(id 352)", "RETAIL_RAW_PATH", "{path}"],
    ),
    Case(
        "missing_column",
        lambda text: zstd(latin1(drop_column(text, "Country"))),
        [FILE, "does not have the expected columns", "missing: Country", "expected header"],
    ),
    Case(
        "renamed_column",
        lambda text: zstd(latin1(text.replace("CustomerID", "Customer ID", 1))),
        [FILE, "missing: CustomerID", "unexpected: Customer ID"],
    ),
    Case(
        "unparseable_date",
        _bad("InvoiceDate", 5, "31/12/2011 10:00"),
        [
            FILE,
            "column InvoiceDate: 1 value(s)",
            "do not parse as M/D/YYYY H:MM",
            "'31/12/2011 10:00'); read day first it would be 2011-12-31 10:00: the dates look"
            " written D/M/YYYY",
        ],
    ),
    Case(
        "non_numeric_quantity",
        _bad("Quantity", 9, "six"),
        [FILE, VALUES, "column Quantity: 1 value(s)", "not an integer", "'six'", "Fix:"],
    ),
    Case(
        "non_numeric_price",
        _bad("UnitPrice", 3, "n/a"),
        [FILE, "column UnitPrice: 1 value(s)", "not a number", "'n/a'"],
    ),
    Case(
        "empty_quantity",
        _bad("Quantity", 4, ""),
        [FILE, "column Quantity: 1 value(s) are empty or not an integer", "empty)"],
    ),
    Case(
        "empty_file",
        lambda text: zstd(b""),
        [FILE, "is empty: no header line and no data", "Fix: export or copy it again"],
    ),
    Case(
        "header_only",
        lambda text: zstd(latin1(text.splitlines()[0] + "\n")),
        [FILE, "holds no data lines"],
    ),
    # 2. whole bytes
    Case("truncated_zstd", _truncated_zstd, [FILE, "is truncated", "zstd"]),
    Case("truncated_at_a_line_end", _truncated_between_frames, [FILE, "is truncated"]),
    Case("corrupt_zstd", _corrupt_zstd, [FILE, "is damaged", "copy or download the file again"]),
    Case("bytes_after_the_zstd_data", _trailing_garbage, [FILE, "bytes follow the end"]),
    Case(
        "gzip_named_zst",
        lambda text: gzip.compress(latin1(text)),
        [FILE, "is gzip-compressed but its name says zstd-compressed"],
    ),
    Case(
        "plain_text_named_zst",
        lambda text: latin1(text),
        [FILE, "is plain text but its name says zstd-compressed"],
    ),
    # 3. exact parsing
    Case(
        "fractional_quantity",
        _bad("Quantity", 10, "1.5"),
        [FILE, "column Quantity: 1 value(s) are empty or not an integer", "'1.5'", "on line"],
    ),
    Case(
        "quantity_overflow",
        _bad("Quantity", 11, "3000000000"),
        [FILE, "column Quantity", "outside the INTEGER range", "'3000000000'"],
    ),
    Case("price_nan", _bad("UnitPrice", 12, "nan"), [FILE, "column UnitPrice", "'nan'"]),
    Case(
        "price_with_too_many_digits",
        _bad("UnitPrice", 13, "0.12345678901234567"),
        [FILE, "more than 15 significant digits", "'0.12345678901234567'"],
    ),
    Case(
        "price_out_of_double_range",
        _bad("UnitPrice", 14, "1e400"),
        [FILE, "too large for a double", "'1e400'"],
    ),
    Case(
        # each its own check, listed together: a price that underflows, the year 0000
        "price_too_small_and_year_0",
        _bad_fields(("UnitPrice", 14, "1e-400"), ("InvoiceDate", 21, "0000-12-09 10:00")),
        [
            FILE,
            "too small for a double (they would load as 0 or rounded)",
            "'1e-400'",
            "are before the year 1",
            "'0000-12-09 10:00'",
        ],
    ),
    Case(
        "hour_24",
        _bad("InvoiceDate", 20, "2010-12-01 24:00"),
        [FILE, "have the hour 24", "'2010-12-01 24:00'"],
    ),
    Case(
        "blank_invoice_and_country",
        _bad_fields(("InvoiceNo", 22, "   "), ("Country", 23, " ")),
        [FILE, "column InvoiceNo: 1 value(s) are empty (or blanks only)", "column Country"],
    ),
    Case(
        "two_digit_year",
        _bad("InvoiceDate", 15, "12/1/10 8:26"),
        [FILE, "column InvoiceDate", "'12/1/10 8:26'"],
    ),
    Case(
        "impossible_date",
        _bad("InvoiceDate", 16, "2/30/2011 10:00"),
        [FILE, "column InvoiceDate", "'2/30/2011 10:00'"],
    ),
    Case(
        "fractional_customer_id",
        _bad("CustomerID", 17, "17850.5"),
        [FILE, "column CustomerID", "not an integer", "'17850.5'"],
    ),
    Case(
        "customer_id_overflow",
        _bad("CustomerID", 18, "99999999999"),
        [FILE, "column CustomerID", "outside the INTEGER range", "'99999999999'"],
    ),
    Case(
        "windows_1252_byte",
        _with_cp1252,
        [FILE, "is neither UTF-8 nor latin-1", "byte 0x80 on line", "Windows-1252"],
    ),
    Case(
        "mixed_encodings",
        _mixed_encodings,
        [
            FILE,
            "mixes two encodings",
            "'\u00c9' is written in UTF-8",
            "byte 0xA3",
            "in one encoding",
        ],
    ),
    Case(
        # the first half of the lines end in CRLF, the rest in LF: DuckDB's reader stops
        "mixed_line_ends",
        lambda text: zstd(
            latin1(text[: len(text) // 2].replace("\n", "\r\n") + text[len(text) // 2 :])
        ),
        [FILE, "is not a well-formed CSV", "lines end in both CRLF (", "one kind of line end"],
    ),
    Case(
        "cr_line_ends",
        lambda text: zstd(latin1(text).replace(b"\n", b"\r")),
        [FILE, "ends its lines with a carriage return alone", "LF or CRLF"],
    ),
    Case("utf16_text", _utf16, [FILE, "is UTF-16 text", "save it as UTF-8"]),
    Case("nul_byte", _nul_byte, [FILE, "holds NUL bytes", "first on line"]),
    Case("line_with_a_missing_field", _short_line, [FILE, "is not a well-formed CSV", "Line"]),
    Case("unterminated_quote", _unterminated_quote, [FILE, "is not a well-formed CSV"]),
    Case(
        # DuckDB's reader would load ' "PAPER, CHAIN"' as 'PAPER, CHAIN', Python's csv as written
        "blank_before_an_opening_quote",
        _bad("Description", 24, ' "PAPER, CHAIN"'),
        [FILE, "text outside its quotes", "before the opening quote", '\' "PAPER, CHAIN",'],
    ),
    Case(
        "blank_after_a_closing_quote",
        _bad("Description", 25, '"PAPER CHAIN" '),
        [FILE, "text outside its quotes", "text after the closing quote", "blanks outside"],
    ),
    # 4. columns by name
    Case(
        "extra_column",
        lambda text: zstd(latin1(add_column(text, "Discount"))),
        [FILE, "unexpected: Discount", "expected header (any order): InvoiceNo,StockCode"],
    ),
    Case(
        "repeated_column",
        lambda text: zstd(latin1(add_column(text, "Country"))),
        [FILE, "repeated: Country"],
    ),
    Case(
        "lower_case_header",
        lambda text: zstd(latin1(text.replace("InvoiceNo", "invoiceno", 1))),
        [FILE, "missing: InvoiceNo", "unexpected: invoiceno"],
    ),
]

GOOD = "good"  # a case whose file is the good synthetic file: only its settings are wrong
SETTINGS_CASES: list[Case] = [
    Case(
        "rfm_as_of_before_the_data",
        GOOD,
        ["var rfm_as_of = '2009-01-01'", "not after the data starts", "valid: after"],
        args=["--vars", "{rfm_as_of: '2009-01-01'}"],
    ),
    Case(
        "rfm_as_of_after_the_data",
        GOOD,
        ["var rfm_as_of = '2012-06-01'", "after the data ends", "2011-12-10 00:00"],
        args=["--vars", "{rfm_as_of: '2012-06-01'}"],
    ),
    Case(
        "rfm_as_of_malformed",
        GOOD,
        ["var rfm_as_of = '2011-13-01'", "not a date YYYY-MM-DD"],
        args=["--vars", "{rfm_as_of: '2011-13-01'}"],
    ),
    Case(
        "rfm_as_of_with_too_few_customers",
        GOOD,
        ["var rfm_as_of = '2010-12-03'", "customers with a purchase before it", "valid: from"],
        args=["--vars", "{rfm_as_of: '2010-12-03'}"],
    ),
    Case(
        "cutoff_after_every_first_purchase",
        GOOD,
        ["var new_customer_cutoff = '2011-12-09 23:00'", "no customer who first bought"],
        args=["--vars", "{new_customer_cutoff: '2011-12-09 23:00'}"],
    ),
    Case(
        "misspelt_var",
        GOOD,
        ["var rfm_asof is not a setting of this project", "known vars: rfm_as_of"],
        args=["--vars", "{rfm_asof: '2011-06-01'}"],
    ),
    Case(
        "integer_var_as_text",
        GOOD,
        ["var top_products_n = '50'", "integer"],
        args=["--vars", "{top_products_n: '50'}"],
    ),
    Case(
        "share_above_one",
        GOOD,
        ["var retraining_max_changed_share = 1.5", "less than or equal to 1"],
        args=["--vars", "{retraining_max_changed_share: 1.5}"],
    ),
    Case(
        "zero_churn_days",
        GOOD,
        ["var history_churn_days = 0", "greater than or equal to 1"],
        args=["--vars", "{history_churn_days: 0}"],
    ),
    Case(
        # YAML reads it as a date and raises inside dbt's --vars parser (a traceback before)
        "vars_date_that_does_not_exist",
        GOOD,
        ["--vars '{rfm_as_of: 2011-02-30}' holds a date that does not exist", "YYYY-MM-DD"],
        args=["--vars", "{rfm_as_of: 2011-02-30}"],
    ),
    Case(
        "vars_not_yaml",
        GOOD,
        ["--vars '{rfm_as_of: [' does not parse", "write it as YAML"],
        args=["--vars", "{rfm_as_of: ["],
    ),
    Case(
        "memory_limit_malformed",
        GOOD,
        ["RETAIL_DUCKDB_MEMORY_LIMIT = '6 gigs' is not a memory size", "GB"],
        env={"RETAIL_DUCKDB_MEMORY_LIMIT": "6 gigs"},
    ),
    Case(
        "incoming_glob_is_a_directory",
        GOOD,
        ["RETAIL_INCOMING_GLOB", "is a directory", "*.csv.zst"],
        env={"RETAIL_INCOMING_GLOB": str(PROJECT_ROOT / "seeds")},
    ),
    # dbt flags that would build on part of the input, or into another database than the one
    # published
    Case(
        "empty_flag",
        GOOD,
        ["dbt's --empty (--empty/--no-empty on the command line) builds the models"],
        args=["--empty", "--select", "fct_orders"],
    ),
    Case(
        "sample_flag",
        GOOD,
        ["dbt's --sample (--sample on the command line) builds", "run the build without it"],
        args=["--sample=3 days"],
    ),
    Case(
        "target_other_than_the_warehouse",
        GOOD,
        ["the target 'lint' (--target, DBT_ENGINE_TARGET or DBT_TARGET) builds elsewhere"],
        args=["--target", "lint"],
    ),
    Case(
        # dbt 1.11 reads DBT_ENGINE_<name> before DBT_<name>
        "target_other_than_the_warehouse_in_the_environment",
        GOOD,
        ["the target 'lint' (--target, DBT_ENGINE_TARGET", "unset DBT_ENGINE_TARGET"],
        env={"DBT_TARGET": "dev", "DBT_ENGINE_TARGET": "lint"},
    ),
    Case(
        "empty_in_the_environment",
        GOOD,
        ["dbt's --empty (DBT_ENGINE_EMPTY='true') builds the models on part of the input", "unset"],
        env={"DBT_ENGINE_EMPTY": "true"},
    ),
    Case(
        # a mistyped folder would match nothing, and the daily files would never load
        "incoming_glob_folder_missing",
        GOOD,
        ["Daily files' folder '/nonexistent/dir' does not exist", "correct RETAIL_INCOMING_GLOB"],
        env={"RETAIL_INCOMING_GLOB": "/nonexistent/dir/*.csv"},
    ),
    # dbt options dbt itself fails on with a traceback
    Case(
        "threads_zero",
        GOOD,
        ["dbt's threads setting (--threads on the command line) = 0 is not a number", "Fix: drop"],
        args=["--threads", "0"],
    ),
    Case(
        "threads_not_a_number",
        GOOD,
        ["dbt does not take these arguments: Invalid value for '--threads': 'two'"],
        args=["--threads", "two"],
    ),
    Case(
        # they would replace the project's flags, which make a selection matching nothing an error
        "warn_error_options",
        GOOD,
        ["dbt's warn_error_options setting (DBT_ENGINE_WARN_ERROR_OPTIONS='{\"error\": []}')"],
        env={"DBT_ENGINE_WARN_ERROR_OPTIONS": '{"error": []}'},
    ),
    Case(
        "dbt_artifacts_folder_not_writable",
        GOOD,
        ["dbt's artifacts folder /proc/x cannot be written", "--target-path, DBT_ENGINE_TARGET"],
        args=["--target-path", "/proc/x"],
    ),
    Case(
        "no_write_json",
        GOOD,
        ["dbt's write_json setting (--write-json/--no-write-json on the command line) keeps"],
        args=["--no-write-json"],
    ),
    Case(
        # dbt would get two: the project's, given last, would win unseen
        "profiles_dir",
        GOOD,
        ["`build` does not take dbt's --profiles-dir", "RETAIL_DUCKDB_PATH", "Fix: drop the"],
        args=["--profiles-dir=/tmp"],
    ),
    Case(
        "write_json_off_in_the_environment",
        GOOD,
        ["dbt's write_json setting (DBT_ENGINE_WRITE_JSON=' ') keeps dbt from writing"],
        # whitespace counts as false for dbt's parser
        env={"DBT_ENGINE_WRITE_JSON": " "},
    ),
    Case(
        # found before the build, not by the publish after it
        "serving_dir_under_a_file",
        GOOD,
        ["the serving folder", "cannot be made: ", "README.md is a file", "RETAIL_SERVING_DIR"],
        env={"RETAIL_SERVING_DIR": str(PROJECT_ROOT / "README.md" / "serving")},
    ),
    Case(
        # a folder that cannot be written (under a file here: root may write anywhere else)
        "landing_dir_not_writable",
        GOOD,
        ["The landing folder (checked inputs)", "cannot be written (", "README.md is a file)"],
        env={"RETAIL_LANDING_DIR": str(PROJECT_ROOT / "README.md" / "landing")},
    ),
]


@dataclass(frozen=True)
class Guarded:
    """A built warehouse with a published serving copy: what every case must leave untouched."""

    workspace: Workspace
    serving: Path
    # every table and view as the module found it: a refused build changes none, so each case
    # compares with these (computed once, not before every case)
    tables_at_start: dict[str, tuple[int, int | None]]

    def tables(self) -> dict[str, tuple[int, int | None]]:
        return table_checksums(self.workspace)

    def marts(self) -> dict[str, tuple[int, int | None]]:
        return table_checksums(self.workspace, schema="marts")

    def inputs(self) -> str | None:
        """The prepared set the landing folder's ``current`` names (what the warehouse's input
        views and a hand-run dbt read)."""
        link = self.workspace.warehouse.parent / "landing" / "current"
        return str(link.readlink()) if link.is_symlink() else None

    def serving_state(self) -> dict[str, str]:
        return {
            str(path.relative_to(self.serving)): (
                f"-> {path.readlink()}"
                if path.is_symlink()
                else hashlib.sha256(path.read_bytes()).hexdigest()
            )
            for path in sorted(self.serving.rglob("*"))
            if path.is_symlink() or path.is_file()
        }


@pytest.fixture(scope="module")
def guarded(synthetic_build: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Guarded:
    workspace = copy_workspace(synthetic_build, tmp_path_factory.mktemp("guarded"))
    serving = workspace.root / "serving"
    info = publish.new_build_info("synthetic", PROJECT_ROOT)
    relations = publish.published_relations(workspace.root / "target" / "manifest.json")
    publish.publish(workspace.warehouse, serving, info, relations)
    return Guarded(workspace, serving, table_checksums(workspace))


def _run_case(
    case: Case,
    guarded: Guarded,
    synthetic_raw: Path,
    tmp_path: Path,
    cli_in_process: CliInProcess,
) -> None:
    serving_before = guarded.serving_state()
    inputs_before = guarded.inputs()
    if case.content == GOOD:
        path = synthetic_raw
    else:
        path = tmp_path / "export" / f"{case.name}.csv.zst"
        path.parent.mkdir()
        content = case.content(text_of(synthetic_raw))
        if content is not None:
            path.write_bytes(content)

    result = cli_in_process(
        guarded.workspace,
        path,
        "build",
        *case.args,
        env={"RETAIL_SERVING_DIR": str(guarded.serving), **case.env},
    )

    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    for phrase in case.phrases:
        expected = phrase.replace("{path}", str(path))
        assert expected in result.stderr, f"{expected!r} not in:\n{output[-3000:]}"
    assert "nothing was built" in result.stderr or "Nothing was built" in result.stderr
    assert guarded.tables() == guarded.tables_at_start
    assert guarded.serving_state() == serving_before
    # a refusal after the inputs were prepared (the serving folder) left `current` as it was
    assert guarded.inputs() == inputs_before


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_raw_file_is_refused_and_nothing_is_replaced(
    case: Case,
    guarded: Guarded,
    synthetic_raw: Path,
    tmp_path: Path,
    cli_in_process: CliInProcess,
) -> None:
    _run_case(case, guarded, synthetic_raw, tmp_path, cli_in_process)


@pytest.mark.parametrize("case", SETTINGS_CASES, ids=[case.name for case in SETTINGS_CASES])
def test_bad_setting_is_refused_and_nothing_is_replaced(
    case: Case,
    guarded: Guarded,
    synthetic_raw: Path,
    tmp_path: Path,
    cli_in_process: CliInProcess,
) -> None:
    _run_case(case, guarded, synthetic_raw, tmp_path, cli_in_process)


def test_a_line_number_in_the_message_is_the_line_in_the_file(
    guarded: Guarded, synthetic_raw: Path, tmp_path: Path, cli_in_process: CliInProcess
) -> None:
    text = text_of(synthetic_raw)
    path = tmp_path / "raw.csv.zst"
    path.write_bytes(zstd(latin1(replace_field(text, "Quantity", 40, "2.5"))))
    result = cli_in_process(guarded.workspace, path, "prepare")
    line = unquoted_line_number(text, 40)
    assert result.returncode == 2
    assert f"(first on line {line} of the file: '2.5')" in result.stderr
    assert text.splitlines()[line - 1].split(",")[0] in text.splitlines()[line - 1]


@pytest.mark.parametrize(
    ("command", "refusal"),
    [
        (["build", "--select", "customer_rfm"], "a build limited by --select/--exclude would"),
        (["backfill", "--start", "2011-10", "--end", "2011-10"], "the backfill does not load"),
    ],
)
def test_a_selected_build_or_a_backfill_refuses_new_daily_files(
    command: list[str],
    refusal: str,
    guarded: Guarded,
    synthetic_raw: Path,
    tmp_path: Path,
    cli_in_process: CliInProcess,
) -> None:
    """A build limited by --select would load a new daily file into the selected models only, a
    backfill into none, and publish that mix: refused, nothing replaced or published."""
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    lines = (
        generate_raw_lines(n_customers=40, seed=5)
        .head(10)
        .assign(InvoiceDate=pd.Timestamp("2011-12-20 10:00"))
    )
    # invoices of their own (another file's numbers name other customers, which is refused)
    lines["InvoiceNo"] = "9" + lines["InvoiceNo"].astype(str)
    daily = write_raw_file(lines, incoming / "2011-12-20.csv.zst")
    marts_before, serving_before = guarded.marts(), guarded.serving_state()
    env = {"RETAIL_INCOMING_GLOB": str(incoming / "*"), "RETAIL_SERVING_DIR": str(guarded.serving)}
    result = cli_in_process(guarded.workspace, synthetic_raw, *command, env=env)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert f"new daily files arrived ({daily}); {refusal}" in result.stderr
    assert "nothing was" in result.stderr and "Traceback" not in result.stderr
    assert guarded.marts() == marts_before
    assert guarded.serving_state() == serving_before


def test_a_selected_build_is_refused_when_the_inputs_need_a_rebuild_from_scratch(
    guarded: Guarded, synthetic_raw: Path, tmp_path: Path, cli_in_process: CliInProcess
) -> None:
    """Another raw file makes the warehouse rebuild from scratch, which a selection cannot do."""
    moved = tmp_path / "moved" / "raw.csv.zst"
    moved.parent.mkdir()
    shutil.copyfile(synthetic_raw, moved)
    marts_before, serving_before = guarded.marts(), guarded.serving_state()
    env = {"RETAIL_SERVING_DIR": str(guarded.serving)}
    result = cli_in_process(guarded.workspace, moved, "build", "-s", "customer_rfm", env=env)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "The inputs changed (the raw file is not the one the warehouse was built from" in (
        result.stderr
    )
    assert (
        "must be rebuilt from scratch, which a build limited by --select/--exclude cannot do;"
        " nothing was built.\n  Fix: run the build without --select/--exclude (make build)."
    ) in result.stderr
    assert guarded.marts() == marts_before
    assert guarded.serving_state() == serving_before


def test_a_second_command_on_a_warehouse_in_use_is_refused(
    guarded: Guarded, synthetic_raw: Path, tmp_path: Path, cli_in_process: CliInProcess
) -> None:
    """While a build (or backfill, prepare, clean-warehouse) runs, a second one on the same
    warehouse would switch the landed inputs under it: refused before it changes anything."""
    import fcntl

    warehouse = guarded.workspace.warehouse
    lock = warehouse.with_name(f".{warehouse.name}.lock")
    marts_before, serving_before = guarded.marts(), guarded.serving_state()
    env = {"RETAIL_SERVING_DIR": str(guarded.serving)}
    with lock.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        # docs too: dbt docs generate would meet DuckDB's lock (a stack trace) and rewrite the
        # manifest the build's publish reads
        for command in ("build", "prepare", "backfill", "docs"):
            result = cli_in_process(guarded.workspace, synthetic_raw, command, env=env)
            assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
            assert "another build, backfill, prepare or clean-warehouse is running" in (
                result.stderr
            )
            assert "wait for it to finish" in result.stderr
    # another warehouse sharing the landing folder would switch the landed inputs as well
    landing = warehouse.parent / "landing"
    other = Workspace(tmp_path / "other")
    folder = os.open(landing, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        shared = {**env, "RETAIL_LANDING_DIR": str(landing)}
        result = cli_in_process(other, synthetic_raw, "prepare", env=shared)
        assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
        assert f"it holds the landing folder {landing}" in result.stderr
    finally:
        os.close(folder)
    # so would another warehouse built from the same project into the same dbt artifacts folder
    # (here the other workspace's, DBT_TARGET_PATH): its dbt would rewrite the manifest the first
    # build's publish reads
    artifacts = other.root / "target"
    artifacts.mkdir(parents=True, exist_ok=True)
    folder = os.open(artifacts, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        for command in ("build", "backfill"):
            result = cli_in_process(other, synthetic_raw, command, env=env)
            assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
            assert f"it holds dbt's artifacts folder {artifacts})" in result.stderr
            assert "each need their own DBT_TARGET_PATH" in result.stderr
    finally:
        os.close(folder)
    # and a Spark build of another warehouse naming the same Spark folder (its tables and landed
    # inputs; QA 30 F6): refused before Spark starts
    spark = tmp_path / "shared-spark"
    spark.mkdir()
    folder = os.open(spark, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        elsewhere = Workspace(tmp_path / "elsewhere")
        spark_env = {**env, "RETAIL_SPARK_DIR": str(spark)}
        result = cli_in_process(
            elsewhere, synthetic_raw, "build", "--target", "spark", env=spark_env
        )
        assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
        assert f"it holds the Spark folder {spark})" in result.stderr
    finally:
        os.close(folder)
    assert guarded.marts() == marts_before
    assert guarded.serving_state() == serving_before
    released = cli_in_process(guarded.workspace, synthetic_raw, "prepare", env=env)
    assert released.returncode == 0, released.stderr[-2000:]


def test_a_refused_command_leaves_no_folder_it_made_for_its_locks(
    synthetic_raw: Path, tmp_path: Path, cli_in_process: CliInProcess
) -> None:
    """A mistyped warehouse path, then a refusal (no raw file there; a bad var; a Spark build):
    the folders the command made for its locks (the warehouse's, landing/, dbt's target/, the
    Spark folder) are gone again. A folder that was there keeps what it holds."""
    typo = Workspace(tmp_path / "typo" / "warehuose")
    spark = {"RETAIL_SPARK_DIR": str(tmp_path / "typo" / "spark")}
    for raw, args, env in (
        (tmp_path / "nowhere.csv.zst", ["build"], None),
        (synthetic_raw, ["build", "--vars", "{top_products_n: 0}"], None),
        (synthetic_raw, ["prepare", "--vars", "{top_products_n: 0}"], None),
        (tmp_path / "nowhere.csv.zst", ["build", "--target", "spark"], spark),
    ):
        result = cli_in_process(typo, raw, *args, env=env)
        assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
        assert "nothing was built" in result.stderr
        assert not (tmp_path / "typo").exists(), sorted((tmp_path / "typo").rglob("*"))
    there = Workspace(tmp_path / "there")
    there.root.mkdir()
    (there.root / "notes.txt").write_text("mine")
    result = cli_in_process(there, tmp_path / "nowhere.csv.zst", "build")
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert (there.root / "notes.txt").read_text() == "mine"


def test_a_lock_removed_by_a_refused_command_counts_as_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second command that opened the lock file of a first one just before the first, refused,
    removed it (and its folder) must not take that lock as its own: the file it holds is no
    longer the one at the path, which a third command would create and lock afresh."""
    from retail_segments.ops import cli

    monkeypatch.chdir(PROJECT_ROOT)
    monkeypatch.setenv("RETAIL_DUCKDB_PATH", str(tmp_path / "new" / "warehouse.duckdb"))
    monkeypatch.setenv("DBT_TARGET_PATH", str(tmp_path / "new" / "target"))
    opened = cli._lock_files("build", [])
    locks, made = opened
    assert [path.name for path in made] == ["new", "landing", "target"]
    lock_file = locks[0][2]
    lock_file.unlink()  # what the refused first command does while it still holds the lock
    monkeypatch.setattr(cli, "_lock_files", lambda command, rest: opened)
    with cli._one_at_a_time("build", []) as held:
        assert held.busy is not None and f"it holds {lock_file})" in held.busy
        assert held.made == []


def _sales_lines(text: str) -> list[tuple[int, list[str]]]:
    """The unquoted lines the cleaning keeps (a customer, a positive quantity, a goods stock code
    and a price), with their 1-based line numbers in the file."""
    lines = text.splitlines()
    header = lines[0].split(",")
    kept = []
    for number, line in enumerate(lines[1:], start=2):
        if '"' in line:
            continue
        row = dict(zip(header, line.split(","), strict=True))
        if (
            row["CustomerID"]
            and int(row["Quantity"]) > 0
            and row["StockCode"][0].isdigit()
            and float(row["UnitPrice"]) != 0
        ):
            kept.append((number, line.split(",")))
    return kept


def test_an_invoice_with_two_customers_is_refused_before_anything_is_replaced(
    guarded: Guarded, synthetic_raw: Path, tmp_path: Path, cli_in_process: CliInProcess
) -> None:
    """fct_orders takes one customer and one country per invoice; an invoice whose lines name
    two, within a file or across files, is refused by the checks before dbt (the warehouse test
    that also catches it runs after tables are replaced), naming both lines."""
    text = text_of(synthetic_raw)
    header = text.splitlines()[0].split(",")
    customer, country = header.index("CustomerID"), header.index("Country")
    kept = _sales_lines(text)
    (first_number, first), (second_number, second) = kept[0], kept[1]
    assert first[0] == second[0]  # two lines of one invoice
    marts_before, serving_before = guarded.marts(), guarded.serving_state()
    env = {"RETAIL_SERVING_DIR": str(guarded.serving)}

    # within the raw file: the invoice's second line names another country
    raw = tmp_path / "raw.csv.zst"
    raw.write_bytes(zstd(latin1(replace_field(text, "Country", second_number - 1, "Atlantis"))))
    result = cli_in_process(guarded.workspace, raw, "build", env=env)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert f"Raw data file '{raw}' has an invoice whose lines name more than one" in result.stderr
    assert (
        f"invoice {first[0]}: line {second_number} names customer {second[customer]} in"
        f" 'Atlantis', but line {first_number} names customer {first[customer]} in"
        f" '{first[country]}'"
    ) in result.stderr

    # across files: a daily file adds a line to a loaded invoice under another customer
    incoming = tmp_path / "incoming"
    daily = incoming / "2011-12-10.csv.zst"
    incoming.mkdir()
    moved = [*first[:customer], "99999", first[country]]
    # after a line of another invoice whose description spans two lines, and an empty line: the
    # message names the line in the file (5), not the record's number plus one (3)
    spanning = [*first[:2], '"TWO\nLINES"', *first[3:]]
    spanning[0] = "999998"
    lines = [",".join(header), ",".join(spanning), "", ",".join(moved)]
    daily.write_bytes(zstd(latin1("\n".join(lines) + "\n")))
    env["RETAIL_INCOMING_GLOB"] = str(incoming / "*")
    result = cli_in_process(guarded.workspace, synthetic_raw, "build", env=env)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert f"Daily file '{daily}' has an invoice whose lines name" in result.stderr
    assert (
        f"invoice {first[0]}: line 5 names customer 99999 in '{first[country]}', but line"
        f" {first_number} of '{synthetic_raw}' names customer {first[customer]}"
    ) in result.stderr
    assert "Fix: an invoice belongs to one customer in one country" in result.stderr
    assert "Traceback" not in result.stderr
    assert guarded.marts() == marts_before
    assert guarded.serving_state() == serving_before


def test_a_reused_invoice_or_a_line_no_order_can_hold_is_refused_before_anything_is_replaced(
    guarded: Guarded, synthetic_raw: Path, tmp_path: Path, cli_in_process: CliInProcess
) -> None:
    """A daily file's line with a loaded invoice's number a year later (fct_orders would date it
    by the old order), or a kept sales line with a quantity of 0 or a negative price (the tests
    of fct_sales_lines would fail after tables were replaced): refused by the checks before dbt,
    naming the line."""
    text = text_of(synthetic_raw)
    header = text.splitlines()[0].split(",")
    date, quantity, price = (
        header.index(name) for name in ("InvoiceDate", "Quantity", "UnitPrice")
    )
    (first_number, first), *_ = _sales_lines(text)
    marts_before, serving_before = guarded.marts(), guarded.serving_state()
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    env = {"RETAIL_SERVING_DIR": str(guarded.serving), "RETAIL_INCOMING_GLOB": str(incoming / "*")}

    def refused(lines: list[list[str]]) -> str:
        daily = incoming / "2011-12-10.csv"
        daily.write_bytes(latin1("\n".join(",".join(line) for line in [header, *lines]) + "\n"))
        result = cli_in_process(guarded.workspace, synthetic_raw, "build", env=env)
        assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
        assert "Traceback" not in result.stderr
        assert f"Daily file '{daily}'" in result.stderr
        return result.stderr

    reused = list(first)
    reused[date] = "12/9/2011 19:30"
    message = refused([reused])
    assert "has an invoice whose sales lines lie more than an hour apart" in message
    assert (
        f"invoice {first[0]}: line 2 is dated 2011-12-09 19:30:00, but line {first_number} of"
        f" '{synthetic_raw}' is dated"
    ) in message
    assert "Fix: give the later lines their own invoice number" in message

    zero, negative = list(first), list(first)
    zero[0] = negative[0] = "990001"
    zero[quantity] = "0"
    negative[price] = "-2.55"
    message = refused([zero, negative])
    assert "has sales lines that no order can hold" in message
    assert "line 2: invoice 990001, stock code" in message and "has a quantity of 0" in message
    assert "1 more such line(s)" in message
    message = refused([negative])
    assert "has a negative price (-2.55)" in message
    assert guarded.marts() == marts_before
    assert guarded.serving_state() == serving_before


def test_a_daily_file_re_saved_day_first_is_refused_before_anything_is_replaced(
    guarded: Guarded, synthetic_raw: Path, tmp_path: Path, cli_in_process: CliInProcess
) -> None:
    """A daily file for 10 December re-saved by a UK spreadsheet (10/12/2011) read as the
    documented M/D/YYYY would load two months early; the build refuses it with both readings."""
    text = text_of(synthetic_raw)
    header = text.splitlines()[0].split(",")
    (_number, first), *_ = _sales_lines(text)
    line = list(first)
    line[0] = "990002"
    line[header.index("InvoiceDate")] = "10/12/2011 09:00"
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    daily = incoming / "2011-12-10.csv"
    daily.write_bytes(latin1("\n".join([",".join(header), ",".join(line)]) + "\n"))
    marts_before, serving_before = guarded.marts(), guarded.serving_state()
    env = {"RETAIL_SERVING_DIR": str(guarded.serving), "RETAIL_INCOMING_GLOB": str(incoming / "*")}
    result = cli_in_process(guarded.workspace, synthetic_raw, "build", env=env)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert f"Daily file '{daily}' has dates that look written day first" in result.stderr
    assert "line 2: '10/12/2011 09:00' loads as 2011-10-12 09:00" in result.stderr
    assert "read day first it is 2011-12-10 09:00, after it" in result.stderr
    assert guarded.marts() == marts_before
    assert guarded.serving_state() == serving_before


def test_a_selected_build_needs_the_vars_of_the_last_whole_build(
    guarded: Guarded, synthetic_raw: Path, tmp_path: Path, cli_in_process: CliInProcess
) -> None:
    """customer_rfm selected alone with another rfm_as_of would be built on the history of the
    old one (empty) and published: refused. The record of the last whole build's vars is kept by
    dbt's hooks: a whole build that succeeded writes it (the session's build here), and a run
    with other vars marks it as no longer holding, before it replaces anything."""
    marts_before, serving_before = guarded.marts(), guarded.serving_state()
    env = {"RETAIL_SERVING_DIR": str(guarded.serving)}
    other = ["--vars", "{rfm_as_of: '2011-06-01', top_products_n: 20}"]
    result = cli_in_process(
        guarded.workspace, synthetic_raw, "build", "--select", "customer_rfm", *other, env=env
    )
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert (
        "the vars differ from the last whole build's (rfm_as_of: '2011-12-10' -> '2011-06-01';"
        " top_products_n: '50' -> '20')"
    ) in result.stderr
    assert "Fix: run the build without --select/--exclude" in result.stderr
    assert "Traceback" not in result.stderr
    assert guarded.marts() == marts_before
    assert guarded.serving_state() == serving_before

    # inputs other than the last whole build's (here: its recorded key of the files and seeds
    # made another, as an edited seed makes it) are refused too
    edited = copy_workspace(guarded.workspace, tmp_path / "edited")
    with duckdb.connect(str(edited.warehouse)) as connection:
        connection.execute("update landing.built_vars set inputs_key = 'another'")
    result = cli_in_process(edited, synthetic_raw, "build", "-s", "customer_rfm", env=env)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "the input files or the seeds differ from those of the last whole build" in (
        result.stderr
    )
    # so is a backfill: it builds the history only, beside tables built from the other inputs
    result = cli_in_process(edited, synthetic_raw, "backfill", "--start", "2011-10", env=env)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "the input files or the seeds differ from those of the last whole build" in (
        result.stderr
    )
    assert "nothing was backfilled" in result.stderr
    # the backfill checks the vars it builds every month with, the last whole build's, not the
    # project's defaults (which may not fit the data): here a recorded value that does not fit
    with duckdb.connect(str(edited.warehouse)) as connection:
        connection.execute(
            "update landing.built_vars"
            " set vars_json = replace(vars_json, '2011-12-10', '2030-01-01')"
        )
    result = cli_in_process(edited, synthetic_raw, "backfill", "--start", "2011-10", env=env)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "rfm_as_of = '2030-01-01'" in result.stderr, result.stderr

    # a run by hand with other vars (here of a view, on a copy) marks the record stale; the
    # record is in the warehouse, so the copy has it
    workspace = copy_workspace(guarded.workspace, tmp_path / "copy")
    record = "select valid, vars_json like '%\"2011-12-10\"%' from landing.built_vars"
    assert workspace.query(record) == [(True, True)]
    ran = workspace.dbt(synthetic_raw, "run", "--select", "metricflow_time_spine", *other)
    assert ran.returncode == 0, ran.stdout[-3000:]
    assert workspace.query(record) == [(False, True)]
    result = cli_in_process(workspace, synthetic_raw, "build", "--select", "customer_rfm", env=env)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "no whole build that succeeded is recorded with the vars it used" in result.stderr


def test_an_incoming_file_is_checked_like_the_raw_file(
    guarded: Guarded, synthetic_raw: Path, tmp_path: Path, cli_in_process: CliInProcess
) -> None:
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    bad = incoming / "2011-12-10.csv.zst"
    bad.write_bytes(zstd(latin1(replace_field(text_of(synthetic_raw), "UnitPrice", 3, "£2"))))
    marts_before = guarded.marts()
    result = cli_in_process(
        guarded.workspace,
        synthetic_raw,
        "build",
        env={"RETAIL_INCOMING_GLOB": str(incoming / "*.csv.zst")},
    )
    assert result.returncode == 2
    assert f"Daily file '{bad}'" in result.stderr and "'£2'" in result.stderr
    assert guarded.marts() == marts_before


def test_a_path_duckdb_would_read_as_a_pattern_is_refused(
    guarded: Guarded, synthetic_raw: Path, tmp_path: Path, cli_in_process: CliInProcess
) -> None:
    """DuckDB's file functions take [ as a pattern: a raw file named online_retail[2011].csv.zst
    beside an online_retail2.csv.zst would be checked by the dbt hook against the other file.
    Refused before anything is landed, naming the file; the marts stay as they were."""
    exports = tmp_path / "exports"
    exports.mkdir()
    raw = exports / "online_retail[2011].csv.zst"
    shutil.copyfile(synthetic_raw, raw)
    shutil.copyfile(synthetic_raw, exports / "online_retail2.csv.zst")
    marts_before = guarded.marts()
    result = cli_in_process(guarded.workspace, raw, "build")
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert f"Raw data file '{raw}' has *, ? or [ in its path" in result.stderr
    assert "Fix: rename it (or its folder)" in result.stderr
    assert guarded.marts() == marts_before


def test_daily_files_in_a_folder_or_under_a_name_with_brackets_are_refused(tmp_path: Path) -> None:
    """A folder named 'daily [copy]' is read by the pattern as a set of characters: its files
    would silently not load (0 daily files, exit 0). A daily file named day[1].csv would be
    checked by the dbt hook against day1.csv. Both are refused, naming the folder or file."""
    folder = tmp_path / "daily [copy]"
    folder.mkdir()
    (folder / "2011-12-10.csv").write_bytes(b"")
    environ = {"RETAIL_INCOMING_GLOB": str(folder / "*")}
    with pytest.raises(InputError) as error:
        preflight.incoming_files(tmp_path, environ)
    assert f"Daily files' folder '{folder}' holds [ in its name" in str(error.value)
    plain = tmp_path / "incoming"
    plain.mkdir()
    (plain / "day[1].csv").write_bytes(b"")
    (plain / "day1.csv").write_bytes(b"")
    with pytest.raises(InputError) as error:
        preflight.incoming_files(tmp_path, {"RETAIL_INCOMING_GLOB": str(plain / "*")})
    assert f"Daily file '{plain / 'day[1].csv'}' has *, ? or [ in its path" in str(error.value)
    # a name in latin-1 bytes (not UTF-8): refused, naming the byte (before, a traceback)
    (plain / "day[1].csv").unlink()
    (plain / os.fsdecode(b"2011-12-10 caf\xe9.csv")).write_bytes(b"")
    with pytest.raises(InputError) as error:
        preflight.incoming_files(tmp_path, {"RETAIL_INCOMING_GLOB": str(plain / "*")})
    assert "has a name that is not UTF-8 text (byte 0xE9)" in str(error.value)
    assert "Fix: rename it (or its folder) with UTF-8 characters only" in str(error.value)


def test_every_file_of_the_incoming_folder_is_read_or_refused(tmp_path: Path) -> None:
    """By default every file of data/incoming/ is a daily file, whatever form it takes; hidden
    files are not; a file or folder the product cannot read stops the run instead of being left
    out of a build that says it succeeded."""
    incoming = tmp_path / "data" / "incoming"
    incoming.mkdir(parents=True)
    for name in ("2011-12-12.csv", "2011-12-10.csv.zst", "2011-12-11.csv.gz", ".gitkeep"):
        (incoming / name).write_bytes(b"")
    pattern, files, matches = preflight.incoming_files(tmp_path, {})
    assert pattern == str(incoming / "*")
    assert matches == [str(path) for path in sorted(files)]
    assert [path.name for path in files] == [
        "2011-12-10.csv.zst",
        "2011-12-11.csv.gz",
        "2011-12-12.csv",
    ]
    (incoming / "notes.txt").write_text("not data")
    with pytest.raises(InputError, match=r"notes\.txt' matches RETAIL_INCOMING_GLOB") as error:
        preflight.incoming_files(tmp_path, {})
    assert "move it out of the folder" in str(error.value)
    (incoming / "notes.txt").unlink()
    # Excel's lock file beside a workbook open in it: named as such, not as a workbook that is
    # plain text
    lock = incoming / "~$2011-12-13.xlsx"
    lock.write_bytes(b"\x0bJane Smith" + b" " * 40)
    with pytest.raises(InputError, match=r"is the lock file Excel keeps") as error:
        preflight.incoming_files(tmp_path, {})
    assert "Fix: save and close the workbook in Excel" in str(error.value)
    lock.unlink()
    (incoming / "2011-12").mkdir()
    with pytest.raises(InputError, match=r"2011-12' matches .* not a file"):
        preflight.incoming_files(tmp_path, {})
    # a link that leads nowhere (its target missing, or a loop) is named as the link
    (incoming / "2011-12").rmdir()
    for target in ("../elsewhere/missing.csv", "2011-12-13.csv", str(tmp_path)):
        link = incoming / "2011-12-13.csv"
        link.symlink_to(target)
        with pytest.raises(InputError) as error:
            preflight.incoming_files(tmp_path, {})
        assert f"Daily file '{link}' matches RETAIL_INCOMING_GLOB" in str(error.value)
        assert f"symbolic link to {target}, which does not lead to a file" in str(error.value)
        link.unlink()
    (incoming / "2011-12").mkdir()
    # an explicit pattern is the user's choice: only what it matches is read
    narrowed = {"RETAIL_INCOMING_GLOB": str(incoming / "*.csv.zst")}
    assert [path.name for path in preflight.incoming_files(tmp_path, narrowed)[1]] == [
        "2011-12-10.csv.zst"
    ]
    # a pattern over several folders: in file-name order whatever the folder, equal names by path
    # (the order the staging model numbers their lines in)
    (incoming / "2011-12").rmdir()
    for name in ("b/2011-12-01.csv", "a/2011-12-02.csv", "b/day.csv", "a/day.csv"):
        (tmp_path / "feed" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "feed" / name).write_bytes(b"")
    folders = {"RETAIL_INCOMING_GLOB": str(tmp_path / "feed" / "*" / "*")}
    assert [
        str(path.relative_to(tmp_path / "feed"))
        for path in preflight.incoming_files(tmp_path, folders)[1]
    ] == ["b/2011-12-01.csv", "a/2011-12-02.csv", "a/day.csv", "b/day.csv"]
    # a symlinked folder: its files once, resolved; the matches as the glob wrote them (the
    # on-run-start hook compares its own glob with those)
    (tmp_path / "feed" / "c").symlink_to(tmp_path / "feed" / "a")
    found = preflight.incoming_files(tmp_path, folders)
    assert len(found.files) == 4 and all(path.parent.name != "c" for path in found.files)
    assert str(tmp_path / "feed" / "c" / "day.csv") in found.matches
    assert len(found.matches) == 6


def test_validated_files_are_landed_once_until_they_change(
    tmp_path: Path, synthetic_raw: Path, cli_in_process: CliInProcess
) -> None:
    """A file is checked and landed once per content: an unchanged file is reused, a file
    rewritten in place with a bad value is checked again and stops the run."""
    workspace = Workspace(tmp_path / "cache")
    raw = tmp_path / "raw.csv.zst"
    shutil.copyfile(synthetic_raw, raw)
    first = cli_in_process(workspace, raw, "prepare")
    assert first.returncode == 0, first.stderr
    assert ", checked)" in first.stdout
    second = cli_in_process(workspace, raw, "prepare")
    assert second.returncode == 0, second.stderr
    assert "checked before, unchanged" in second.stdout

    raw.write_bytes(zstd(latin1(replace_field(text_of(synthetic_raw), "Quantity", 9, "six"))))
    changed = cli_in_process(workspace, raw, "prepare")
    assert changed.returncode == 2
    assert f"Raw data file '{raw}'" in changed.stderr and "'six'" in changed.stderr


def test_a_warehouse_path_that_is_no_duckdb_file_is_refused_with_the_fix(tmp_path: Path) -> None:
    """RETAIL_DUCKDB_PATH pointing at a CSV (or /dev/null) names the path and the variable to
    change, not a traceback or a lock to release."""
    for name, content in [("export.csv", b"InvoiceNo,StockCode\n1,2\n"), ("blank.duckdb", b"x")]:
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(preflight.PreflightError) as raised:
            preflight.loaded_files(path)
        message = str(raised.value)
        assert f"The warehouse {path} cannot be opened" in message, message
        assert "point RETAIL_DUCKDB_PATH at the warehouse this product built" in message
        assert "nothing was built" in message


@pytest.mark.parametrize("layout", ["one folder", "landing in serving", "serving in landing"])
def test_landing_and_serving_folders_that_overlap_are_refused(
    layout: str, synthetic_raw: Path, tmp_path: Path
) -> None:
    """The checked inputs and what BI reads are kept apart: in one folder, the publish waited
    for ever on the build's own lock of the landing folder. Refused before either is made."""
    shared = tmp_path / "shared"
    landing, serving = {
        "one folder": (shared, shared),
        "landing in serving": (shared / "landing", shared),
        "serving in landing": (shared, shared / "serving"),
    }[layout]
    env = {
        "RETAIL_RAW_PATH": str(synthetic_raw),
        "RETAIL_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"),
        "RETAIL_LANDING_DIR": str(landing),
        "RETAIL_SERVING_DIR": str(serving),
    }
    with pytest.raises(preflight.PreflightError) as raised:
        preflight.prepare(PROJECT_ROOT, env)
    message = str(raised.value)
    assert f"The landing folder {landing} (the checked inputs) and the serving folder" in message
    assert "overlap; nothing was built" in message
    assert "Fix: set RETAIL_LANDING_DIR and RETAIL_SERVING_DIR to two separate folders" in message
    assert not shared.exists()


def test_a_warehouse_path_naming_the_serving_copy_is_refused(
    guarded: Guarded, synthetic_raw: Path, tmp_path: Path
) -> None:
    """The serving copy is BI's read-only file, replaced whole by each publish: building into it
    is refused with the fix, by its content (a serving copy elsewhere) and by its place (in the
    serving folder, before the first publish made it)."""
    with pytest.raises(preflight.PreflightError) as raised:
        preflight.loaded_files(guarded.serving / publish.SERVING_DB_NAME)
    message = str(raised.value)
    assert "is a serving copy (it holds serving.build_info)" in message, message
    assert "Fix: point RETAIL_DUCKDB_PATH at the warehouse the build writes" in message
    serving = tmp_path / "serving"
    env = {
        "RETAIL_RAW_PATH": str(synthetic_raw),
        "RETAIL_DUCKDB_PATH": str(serving / publish.SERVING_DB_NAME),
        "RETAIL_SERVING_DIR": str(serving),
    }
    with pytest.raises(preflight.PreflightError, match="lies in the serving folder"):
        preflight.prepare(PROJECT_ROOT, env)
    assert not serving.exists()
