"""Prepare a build: check the settings and every input file, land the inputs, decide whether the
warehouse must be rebuilt from scratch, and write the stamp that dbt's ``on-run-start`` hook checks.

`prepare` runs before any dbt command of ``python -m retail_segments build`` (``make build``),
``backfill`` and ``prepare``. Nothing in the warehouse is replaced (only a pending-rebuild record
of an earlier version is moved into it once, `_move_legacy_pending_record`): a problem raises
`PreflightError` (an `InputError`, `SettingsError` or `RawDataNotFoundError` inside), so the
last good marts and serving copy stay as they were.

The landing directory (``RETAIL_LANDING_DIR``, default ``landing/`` beside the warehouse) holds:

* ``cache/``: each input file's typed Parquet, keyed by content (see `retail_segments.ops.inputs`);
* ``inputs-<id>/``: one prepared set of inputs, hard links ``raw/<key>.parquet`` and
  ``incoming/<key>.parquet`` into the cache, and ``prepared.json`` (the stamp: every input file
  with its path and SHA-256, the checked vars, the warehouse, whether a full refresh is needed);
* ``current``: a symlink to the prepared set of the last `prepare`, or of the last build that
  passed every check before dbt (`PreparedBuild.activate`), replaced atomically; a refused build
  leaves it. dbt's sources read ``current/raw/*.parquet`` and ``current/incoming/*.parquet``.

**Input identity.** The warehouse records, on every line of ``int_sales_lines__screened``, the
file it came from and that file's SHA-256. The build is incremental only when the raw file is the
one the warehouse was built from (same path, same bytes), every incoming file loaded so far is
still there with the same bytes, and every new incoming file with lines sorts after the loaded
ones (a file with only its header, a day without sales, adds no line and may sort anywhere) and
holds no purchase dated before a loaded return of the same customer and product (which a full
build could match to it). Otherwise the whole build runs with ``--full-refresh``
(`Identity.full_refresh`), which makes the warehouse equal to a fresh build of the current input.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import duckdb

from retail_segments.ops.dbt_args import (
    DbtArgsError,
    DbtBuildArgs,
    default_selector,
    has_selection,
)
from retail_segments.ops.inputs import (
    SUFFIX_CONTAINERS,
    InputError,
    LandedFile,
    Lander,
    ambiguous_dates,
    land_file,
    places_of_rows,
    scratch_connection,
    text_source,
)
from retail_segments.ops.paths import (
    INCOMING_GLOB_ENV,
    LANDING_DIR_ENV,
    RAW_PATH_ENV,
    SERVING_DIR_ENV,
    WAREHOUSE_PATH_ENV,
    RawDataNotFoundError,
    nearest_existing,
    raw_path_candidates,
    resolve_raw_path,
    warehouse_path,
)
from retail_segments.ops.publish import SERVING_SCHEMA, serving_dir
from retail_segments.ops.settings import (
    CheckedMeta,
    DataFacts,
    ProjectVars,
    SettingsError,
    check_environment,
    check_model_meta,
    check_vars,
    check_vars_against_data,
    parse_cli_vars,
    project_var_defaults,
    var_text,
)

PREPARED_STAMP_ENV = "RETAIL_PREPARED_STAMP"
# Every file of data/incoming/ is a daily file (hidden ones, such as .gitkeep, excepted): one the
# product cannot read stops the run rather than being left out.
DEFAULT_INCOMING_GLOB = "data/incoming/*"
CURRENT_LINK = "current"
STAMP_NAME = "prepared.json"
# Whether a rebuild from scratch that the inputs require has not finished (`PendingRefresh`): a
# table of the DuckDB warehouse, a file in the Spark build's folder.
REFRESH_PENDING_TABLE = ("landing", "refresh_pending")
REFRESH_PENDING_NAME = "refresh-pending.json"
# Where the vars of the warehouse's last whole build that succeeded are recorded (`BuiltVars`): a
# table of the DuckDB warehouse, a file in the Spark build's folder.
BUILT_VARS_TABLE = ("landing", "built_vars")
BUILT_VARS_NAME = "built-vars.json"
KEEP_PREPARED_SETS = 3
SCREENED_TABLE = ("intermediate", "int_sales_lines__screened")
INCOMING_ROW_BASE = 1_000_000_000


class PreflightError(Exception):
    """A problem found before anything was built; its message says what and how to fix it."""


@dataclass(frozen=True)
class Identity:
    """Whether the warehouse can load the inputs incrementally, and if not, why."""

    full_refresh: bool
    reasons: tuple[str, ...] = ()

    def summary(self) -> str:
        return "; ".join(self.reasons)

    def announce(self) -> None:
        """Say in one line that the build rebuilds from scratch, and why (nothing otherwise)."""
        if self.full_refresh:
            print(
                f"Input changed: {self.summary()}; rebuilding from scratch"
                " (dbt build --full-refresh).\n  The segment history and the model registry"
                " start afresh with it: run the backfill again for earlier month ends.",
                flush=True,
            )


@dataclass(frozen=True)
class SparkTables:
    """A Spark build's side of `prepare`: the lander that checks and lands the inputs in Spark,
    and the directory of the Spark tables (``<schema>/<table>/`` Parquet directories), whose
    ``int_sales_lines__screened`` records what the build has loaded."""

    lander: Lander
    root: Path

    def screened_dir(self) -> Path:
        return self.root / SCREENED_TABLE[0] / SCREENED_TABLE[1]


@dataclass(frozen=True)
class PreparedBuild:
    """A prepared build: the environment for dbt and the arguments to add."""

    env: dict[str, str]
    raw: LandedFile
    incoming: tuple[LandedFile, ...]
    identity: Identity
    settings: ProjectVars
    stamp: Path
    dbt_args: tuple[str, ...] = field(default=())
    # what the user should know about the settings before reading the marts (`as_of_notes`)
    notes: tuple[str, ...] = field(default=())
    # the daily files with lines that the warehouse has not loaded yet
    unloaded: tuple[Path, ...] = field(default=())

    def activate(self) -> None:
        """Point the landing folder's ``current`` at this prepared set: what dbt's sources read
        (`prepare` with ``activate=False`` leaves it for the caller, until its checks pass)."""
        _switch_current(Path(self.env[LANDING_DIR_ENV]), self.stamp.parent)

    def _without_sales(self) -> str:
        empty = sum(1 for item in self.incoming if item.n_rows == 0)
        return f" ({empty} with no lines: a day without sales)" if empty else ""

    def vars_summary(self) -> str:
        """Every var as this build uses it (defaults and --vars), e.g. ``rfm_as_of 2011-12-10``:
        the values dbt will read, so that none is taken otherwise than the user meant unseen."""
        shown = []
        for name, value in self.settings:
            if isinstance(value, datetime):
                value = f"{value:%Y-%m-%d %H:%M}".removesuffix(" 00:00")
            shown.append(f"{name} {value}")
        return ", ".join(shown)

    def inputs_summary(self, where: str = "") -> str:
        """Two lines for the user: the raw file (lines, encoding or workbook, checked now or
        before; where the check ran, e.g. " in Spark") and the number of incoming files; then
        one line per note."""
        reused = "checked before, unchanged" if self.raw.reused else "checked"
        return "\n".join(
            [
                f"Raw data: {self.raw.path} ({self.raw.n_rows:,} lines, {self.raw.read_as},"
                f" {reused}{where})",
                f"Incoming files: {len(self.incoming)}{self._without_sales()}",
                f"Vars: {self.vars_summary()}",
                *(f"Note: {note}" for note in self.notes),
            ]
        )


def as_of_notes(settings: ProjectVars, facts: DataFacts, holdout_days: int) -> tuple[str, ...]:
    """What is not as of ``rfm_as_of`` in a build whose ``rfm_as_of`` is before the data ends:
    the interest categories read every line, and the fits' windows may lie after it."""
    as_of = settings.rfm_as_of
    if as_of >= facts.end_of_data:
        return ()
    later = []
    if settings.new_customer_cutoff > as_of:
        later.append("the interest fit trains on orders up to new_customer_cutoff")
    holdout_end = settings.clv_calibration_end + timedelta(days=holdout_days)
    if holdout_end > as_of:
        later.append(f"ml.clv_evaluation scores a holdout that ends {holdout_end:%Y-%m-%d}")
    after = f"; after it, {' and '.join(later)}" if later else ""
    return (
        f"rfm_as_of {as_of:%Y-%m-%d %H:%M} is before the data ends"
        f" ({facts.last_invoice_at:%Y-%m-%d %H:%M}): RFM, segments, customer value and the"
        f" segment summary count only purchases before it, but customer_interests (the interest"
        f" in customer_segments) reads every line of the input{after}",
    )


def landing_dir(warehouse: Path, environ: Mapping[str, str]) -> Path:
    """``RETAIL_LANDING_DIR`` when set, else ``landing/`` beside the warehouse (absolute)."""
    configured = environ.get(LANDING_DIR_ENV)
    if configured:
        return Path(configured).expanduser().resolve()
    return warehouse.parent.resolve() / "landing"


def daily_file_order(path: Path) -> tuple[str, str]:
    """Where a daily file sorts among the others: by file name, then (for equal names in other
    folders of the pattern) by full path. The staging model ``stg_online_retail__incoming_lines``
    numbers the files' lines in the same order, so a file that sorts after every loaded one gets
    line numbers after theirs and loads incrementally; one that sorts before them forces a
    rebuild (`decide_identity`)."""
    return path.name, str(path)


def _static_prefix(parts: Sequence[str]) -> list[str]:
    """The leading parts of a path pattern without glob characters (its fixed folder)."""
    prefix: list[str] = []
    for part in parts[:-1]:
        if glob.has_magic(part):
            break
        prefix.append(part)
    return prefix


def _check_no_pattern_characters(path: Path, role: str, fix: str) -> None:
    """Raise `InputError` when path holds a character DuckDB's file functions (glob, read_blob,
    read_parquet: the dbt hook and the models read the inputs with them) take as a pattern, or
    bytes that are not UTF-8 (the landing records every path as text)."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError as error:
        byte = ord(error.object[error.start]) - 0xDC00  # the byte os.fsdecode kept as is
        raise InputError(
            path,
            f"has a name that is not UTF-8 text (byte 0x{byte:02X}), which the warehouse cannot"
            " record as the file's name",
            fix="rename it (or its folder) with UTF-8 characters only, then build again",
            role=role,
        ) from None
    if glob.has_magic(str(path)):
        raise InputError(
            path,
            "has *, ? or [ in its path, which DuckDB (it reads the inputs) takes as a pattern:"
            " it would read other files than this one",
            fix=fix,
            role=role,
        )


def _check_literal_folders(anchored: Path, pattern: str) -> None:
    """Raise `InputError` when a folder of the pattern holds [ in its name and exists as written:
    the pattern reads it as a set of characters, so its daily files would silently not load."""
    parts = anchored.parts
    for index, part in enumerate(parts[:-1]):
        folder = Path(*parts[: index + 1])
        if "[" in part and folder.is_dir():
            raise InputError(
                folder,
                f"holds [ in its name, which {INCOMING_GLOB_ENV} ({pattern}) reads as a set of"
                " characters, not as the folder",
                fix="rename the folder without [ and ] (a pattern cannot name it: DuckDB, which"
                " reads the daily files, would take [ as a pattern too)",
                role="Daily files' folder",
            )


class IncomingFiles(NamedTuple):
    """The daily files one glob of ``RETAIL_INCOMING_GLOB`` found."""

    pattern: str
    # each file once (a symlink and its target are one file), resolved, in `daily_file_order`
    files: list[Path]
    # every match as the glob wrote it, with '.' and '..' removed lexically and symlinks kept:
    # what the on-run-start hook's glob() of the same pattern gives when nothing has arrived since
    matches: list[str]


def incoming_files(project_root: Path, environ: Mapping[str, str]) -> IncomingFiles:
    """The incoming daily files (``RETAIL_INCOMING_GLOB``; a relative pattern is read from the
    project, but the command line has made it absolute from its working folder; default every
    file of ``data/incoming/``) in `daily_file_order`, with the pattern used. Hidden files (names
    starting with a dot) are not matched, as in the shell. Raises `InputError` for a match the
    product cannot read (a name ending it does not know, or a folder), so nothing the user put
    there is silently left out."""
    pattern = environ.get(INCOMING_GLOB_ENV) or DEFAULT_INCOMING_GLOB
    anchored = Path(pattern).expanduser()
    if not anchored.is_absolute():
        anchored = project_root / anchored
    if environ.get(INCOMING_GLOB_ENV) and anchored != project_root / DEFAULT_INCOMING_GLOB:
        # a mistyped folder would match nothing, and the daily files would never load (the
        # default folder may be missing: no daily files yet)
        static = Path(*_static_prefix(anchored.parts))
        if not static.is_dir():
            raise InputError(
                static,
                f"does not exist (the folder of {INCOMING_GLOB_ENV} = {pattern})",
                fix=f"create the folder, or correct {INCOMING_GLOB_ENV}",
                role="Daily files' folder",
            )
    _check_literal_folders(anchored, pattern)
    # ** is recursive, as in the dbt hook's DuckDB glob of the same pattern
    matches = glob.glob(str(anchored), recursive=True)
    fix = (
        "move it out of the folder, or set "
        f"{INCOMING_GLOB_ENV} to a pattern of the daily files only, e.g. data/incoming/*.csv.zst"
    )
    for match in map(Path, matches):
        if match.is_symlink() and not match.is_file():  # a missing target, a loop, a folder
            raise InputError(
                match,
                f"matches {INCOMING_GLOB_ENV} ({pattern}) but is a symbolic link to"
                f" {os.readlink(match)}, which does not lead to a file",
                fix="point the link at the daily file, or remove it",
                role="Daily file",
            )
        if match.is_dir():
            raise InputError(
                match,
                f"matches {INCOMING_GLOB_ENV} ({pattern}) but is not a file (a folder?); the"
                " daily files must lie directly in the folder",
                fix=fix,
                role="Daily file",
            )
    files = sorted({Path(match).resolve() for match in matches}, key=daily_file_order)
    for path in files:
        if not path.is_file():
            raise InputError(
                path,
                f"matches {INCOMING_GLOB_ENV} ({pattern}) but is not a file (a folder?); the"
                " daily files must lie directly in the folder",
                fix=fix,
                role="Daily file",
            )
        _check_no_pattern_characters(
            path, "Daily file", "rename it (or its folder) without *, ? and ["
        )
        if path.name.startswith("~$"):
            # its workbook, open in Excel, may differ from what Excel shows until it is saved
            raise InputError(
                path,
                f"matches {INCOMING_GLOB_ENV} ({pattern}) but is the lock file Excel keeps"
                " beside a workbook open in it, not a daily file",
                fix="save and close the workbook in Excel (the lock file goes with it), then"
                " build again",
                role="Daily file",
            )
        if not path.name.lower().endswith(tuple(SUFFIX_CONTAINERS)):
            raise InputError(
                path,
                f"matches {INCOMING_GLOB_ENV} ({pattern}) but has a name ending this product"
                " does not read",
                [f"supported endings: {', '.join(SUFFIX_CONTAINERS)}"],
                fix,
                role="Daily file",
            )
    return IncomingFiles(str(anchored), files, sorted(os.path.normpath(m) for m in matches))


# A goods stock code in the landed lines (macros/is_service_stock_code.sql: service codes start
# with a letter).
_GOODS_STOCK_CODE = "not (upper(substr(StockCode, 1, 1)) between 'A' and 'Z')"
# The landed lines the cleaning keeps in fct_sales_lines (duplicates aside): a customer, no
# return (negative quantity), a goods stock code, a price.
_SALES_LINE_WHERE = (
    f"CustomerID is not null and Quantity >= 0 and UnitPrice <> 0 and {_GOODS_STOCK_CODE}"
)


def data_facts(landed: Sequence[LandedFile]) -> DataFacts:
    """The inputs' time range, each customer's first purchase and each repeat customer's first
    purchase on their second purchase day (lines with a customer, a positive quantity and price,
    no cancellation invoice, a goods stock code: the lines the cleaning keeps), read from the
    landed Parquet."""
    files = [str(item.parquet) for item in landed]
    with scratch_connection() as connection:
        day_starts = connection.execute(
            "with kept as ("
            "  select CustomerID, cast(InvoiceDate as timestamp) as invoice_at"
            "  from read_parquet($files)"
            "  where CustomerID is not null and Quantity > 0 and UnitPrice > 0"
            "  and InvoiceNo not like 'C%'"
            f"  and {_GOODS_STOCK_CODE}"
            "), days as ("
            "  select CustomerID, min(invoice_at) as started_at from kept"
            "  group by CustomerID, cast(invoice_at as date)"
            "), numbered as ("
            "  select started_at,"
            "  row_number() over (partition by CustomerID order by started_at) as day_number"
            "  from days"
            ") select started_at, day_number from numbered where day_number <= 2",
            {"files": files},
        ).fetchall()
    # a daily file with only its header has no range (the raw file always has one)
    return DataFacts(
        first_invoice_at=min(item.first_invoice_at for item in landed if item.first_invoice_at),
        last_invoice_at=max(item.last_invoice_at for item in landed if item.last_invoice_at),
        customer_first_purchases=[at for at, number in day_starts if number == 1],
        customer_second_purchase_days=[at for at, number in day_starts if number == 2],
    )


# Sales lines of one invoice lie this close together in time (the real file: at most 60 s);
# fct_orders dates an order by its first line, so an invoice number used again on another day
# would merge the new lines into the old order.
INVOICE_SPAN_LIMIT = timedelta(hours=1)

# What `check_sales_lines` flags on a sales line (compared with its invoice's first line in file
# order): (SQL condition, what is counted, the values its message shows).
_SALES_LINE_PROBLEMS: dict[str, tuple[str, str, str]] = {
    # fct_orders takes one customer and one country per invoice
    "owner": (
        "CustomerID <> first_customer or Country <> first_country",
        "distinct InvoiceNo",
        "cast(CustomerID as varchar), Country, cast(first_customer as varchar), first_country",
    ),
    # an invoice number used again: fct_orders would date the lines by the earliest
    "moment": (
        "abs(date_diff('second', first_at, invoice_at)) > $limit",
        "distinct InvoiceNo",
        "cast(invoice_at as varchar), cast(first_at as varchar)",
    ),
    # kept by the cleaning, but the tests of fct_sales_lines (run after tables are replaced)
    # would fail on it
    "unholdable": (
        "Quantity = 0 or UnitPrice < 0",
        "*",
        "cast(Quantity as varchar), cast(UnitPrice as varchar), StockCode",
    ),
}


def _line_and_first(
    landed: Sequence[LandedFile], path: str, row: str, first_path: str, first_row: str
) -> tuple[str, str]:
    """A line that differs from its invoice's first line, and that first line (with its file
    when it is another), as the messages name them (rows: the landed file_row_number, 1 = the
    first data row, as text)."""
    rows: dict[str, set[int]] = {path: {int(row)}}
    rows.setdefault(first_path, set()).add(int(first_row))
    # each file's text read once (a quoted field with line breaks spans lines, and an empty
    # line holds no row)
    places = {
        str(item.path): places_of_rows(text_source(item), rows[str(item.path)])
        for item in landed
        if str(item.path) in rows
    }
    line = places[path][int(row)]
    first_line = places[first_path][int(first_row)]
    where = "" if first_path == path else f" of '{first_path}'"
    return line, f"{first_line}{where}"


def check_sales_lines(landed: Sequence[LandedFile]) -> None:
    """Raise `InputError` for the first problem found, in this order, among the sales lines (the
    lines `_SALES_LINE_WHERE` keeps) of all the input files, each compared with its invoice's
    first line in file order (the raw file, then the daily files in arrival order; ``landed`` is
    in that order):

    - an invoice whose lines name more than one customer or country;
    - an invoice whose lines lie more than `INVOICE_SPAN_LIMIT` from its first line;
    - a line with a quantity of 0 or a negative price.

    The warehouse tests that would catch them run only after tables are replaced. The error names
    the first such line, the invoice's first line where it matters, and how many more there are.
    One scan of the landed Parquet finds all three."""
    files = [str(item.parquet) for item in landed]
    sources = [str(item.path) for item in landed]
    found = ",\n".join(
        f"count({counted}) filter (where {condition}),"
        " arg_min([InvoiceNo, source_file, cast(file_row_number as varchar), first_file,"
        f" cast(first_row as varchar), {shown}], [file_index, file_row_number])"
        f" filter (where {condition})"
        for condition, counted, shown in _SALES_LINE_PROBLEMS.values()
    )
    sql = f"""
        with lines as (
            select InvoiceNo, StockCode, Quantity, UnitPrice, CustomerID, Country,
                cast(InvoiceDate as timestamp) as invoice_at, file_row_number, source_file,
                list_position($sources, source_file) as file_index
            from read_parquet($files)
            where {_SALES_LINE_WHERE}
        ),
        with_first as (
            select *,
                first_value(CustomerID) over invoice as first_customer,
                first_value(Country) over invoice as first_country,
                first_value(invoice_at) over invoice as first_at,
                first_value(file_row_number) over invoice as first_row,
                first_value(source_file) over invoice as first_file
            from lines
            window invoice as (partition by InvoiceNo order by file_index, file_row_number)
        )
        select {found}
        from with_first
    """
    limit = int(INVOICE_SPAN_LIMIT.total_seconds())
    with scratch_connection() as connection:
        row = connection.execute(
            sql, {"files": files, "sources": sources, "limit": limit}
        ).fetchall()[0]
    for problem, count, first in zip(_SALES_LINE_PROBLEMS, row[0::2], row[1::2], strict=True):
        if not count:
            continue
        invoice, path, file_row, first_path, first_row, *shown = first
        line, first_line = _line_and_first(landed, path, file_row, first_path, first_row)
        role = "Raw data file" if path == sources[0] else "Daily file"
        if problem == "owner":
            customer, country, first_customer, first_country = shown
            details = [
                f"invoice {invoice}: {line} names customer {customer} in '{country}', but"
                f" {first_line} names customer {first_customer} in '{first_country}'"
            ]
            more = f"{count - 1} more invoice(s) name more than one customer or country"
            what = "has an invoice whose lines name more than one customer or country"
            fix = (
                "an invoice belongs to one customer in one country: correct CustomerID or"
                " Country on the lines that differ (or give them their own invoice number) in"
                " the file named, then build again"
            )
        elif problem == "moment":
            moment, first_moment = shown
            details = [
                f"invoice {invoice}: {line} is dated {moment}, but {first_line} is dated"
                f" {first_moment}"
            ]
            more = f"{count - 1} more invoice(s) have lines more than an hour apart"
            what = (
                "has an invoice whose sales lines lie more than an hour apart (an invoice"
                " number used again)"
            )
            fix = (
                "give the later lines their own invoice number (or correct their dates) in the"
                " file named, then build again"
            )
        else:
            quantity, price, stock_code = shown
            amiss = "a quantity of 0" if quantity == "0" else f"a negative price ({price})"
            details = [
                f"{line}: invoice {invoice}, stock code {stock_code} has {amiss}, on a goods"
                " line with a customer that is no return"
            ]
            more = f"{count - 1} more such line(s) in the input files"
            what = "has sales lines that no order can hold (a quantity of 0 or a negative price)"
            fix = (
                "correct the quantity or the price on these lines (a return has a negative"
                " quantity; an adjustment of a price has a service stock code such as B or M),"
                " then build again"
            )
        raise InputError(path, what, [*details, *([more] if count > 1 else [])], fix, role=role)


def check_day_first_dates(landed: Sequence[LandedFile]) -> None:
    """Raise `InputError` for a daily file that a spreadsheet set to a day-first locale (the UK's)
    has re-saved: every date in it is ``M/D/YYYY`` with a day of 12 or less, so it also reads
    ``D/M/YYYY``; read month first (the documented form, as it was landed) some of its lines lie
    before the last line of the files before it, read day first none does. ``10/12/2011`` in a
    file after the raw file is then 12 October as loaded, a month or more off, when it was
    written for 10 December (``13/12/2011`` is refused as a value already). ``landed`` is in
    arrival order, the raw file first. A file whose dates read one way only (ISO, or a day
    above 12 anywhere) loads as written, old lines included."""
    end: LandedFile | None = None
    for item in landed:
        if (
            end is not None
            and end.last_invoice_at is not None
            and item.first_invoice_at is not None
            and item.first_invoice_at < end.last_invoice_at
        ):
            found = ambiguous_dates(item.path, text_source(item), end.last_invoice_at)
            if found is not None:
                row, written, month_first, day_first = found
                place = places_of_rows(text_source(item), {row})[row]
                raise InputError(
                    item.path,
                    "has dates that look written day first (D/M/YYYY), as a spreadsheet set to"
                    " a day-first locale such as the UK's saves them",
                    [
                        f"{place}: '{written}' loads as {month_first:%Y-%m-%d %H:%M} (month"
                        " first, the documented M/D/YYYY), before the last line of the files"
                        f" before it ({end.last_invoice_at:%Y-%m-%d %H:%M} in '{end.path}'); read"
                        f" day first it is {day_first:%Y-%m-%d %H:%M}, after it",
                        "every date in the file has a day and a month of 12 or less, so both"
                        " readings are possible, and only the day-first one keeps the files in"
                        " order",
                    ],
                    "export the file again with its dates as M/D/YYYY H:MM or YYYY-MM-DD HH:MM"
                    " (set the spreadsheet's date format, or save from the system that wrote"
                    " it); if the lines really are that old, write their dates as YYYY-MM-DD"
                    " HH:MM, which reads one way only",
                    role="Daily file",
                )
        if item.last_invoice_at is not None and (
            end is None or end.last_invoice_at is None or item.last_invoice_at > end.last_invoice_at
        ):
            end = item


@dataclass(frozen=True)
class LoadedFile:
    """One file the warehouse has loaded, as recorded on its lines."""

    path: str
    sha256: str
    is_raw: bool
    last_invoice_at: datetime | None


_LOADED_FILES_SQL = (
    "select source_file, source_sha256, max(source_row_number) < {base},"
    " cast(max(invoice_at) as timestamp) from {relation} group by all"
)


def _spark_screened(tables: SparkTables) -> str | None:
    """The glob of the Spark build's ``int_sales_lines__screened`` Parquet files, or None when
    the Spark tables hold none (no Spark build yet)."""
    directory = tables.screened_dir()
    if not any(directory.glob("*.parquet")):
        return None
    return str(directory / "*.parquet")


def loaded_spark_files(tables: SparkTables) -> list[LoadedFile] | None:
    """`loaded_files` of a Spark build: read from its tables' Parquet files."""
    screened = _spark_screened(tables)
    if screened is None:
        return None
    sql = _LOADED_FILES_SQL.format(base=INCOMING_ROW_BASE, relation="read_parquet($screened)")
    with scratch_connection() as connection:
        rows = connection.execute(sql, {"screened": screened}).fetchall()
    return [LoadedFile(path, sha, bool(is_raw), last) for path, sha, is_raw, last in rows]


def loaded_files(warehouse: Path) -> list[LoadedFile] | None:
    """The files the warehouse's cleaning chain was built from, or None when it records none
    (no warehouse yet, or one built before fingerprints were recorded: see `decide_identity`)."""
    if not warehouse.exists():
        return None
    try:
        connection = duckdb.connect(str(warehouse), read_only=True)
    except duckdb.Error as error:
        # held by another process (the message names its PID), or not a DuckDB file at all
        held = isinstance(error, duckdb.IOException) and "lock" in str(error).lower()
        fix = (
            "close any program that holds it open (BI tools read the serving copy instead)"
            " and run the build again"
            if held
            else f"point {WAREHOUSE_PATH_ENV} at the warehouse this product built, or at a path"
            " where none exists yet (it is created)"
        )
        raise PreflightError(
            f"The warehouse {warehouse} cannot be opened to read what it was built from: {error}"
            f"; nothing was built.\n  Fix: {fix}."
        ) from error
    with connection:
        published = connection.execute(
            "select count(*) from information_schema.tables"
            " where table_schema = ? and table_name = 'build_info'",
            [SERVING_SCHEMA],
        ).fetchall()[0][0]
        if published:
            raise PreflightError(
                f"The warehouse {warehouse} is a serving copy (it holds"
                f" {SERVING_SCHEMA}.build_info): BI tools read it, and each build replaces it"
                " whole; nothing was built.\n"
                f"  Fix: point {WAREHOUSE_PATH_ENV} at the warehouse the build writes (by"
                " default warehouse/retail_segments.duckdb), not at a published copy."
            )
        columns = {
            row[0]
            for row in connection.execute(
                "select column_name from information_schema.columns"
                " where table_schema = ? and table_name = ?",
                list(SCREENED_TABLE),
            ).fetchall()
        }
        if not {"source_file", "source_sha256"} <= columns:
            return [] if columns or _has_project_tables(connection) else None
        rows = connection.execute(
            _LOADED_FILES_SQL.format(
                base=INCOMING_ROW_BASE, relation=f"{SCREENED_TABLE[0]}.{SCREENED_TABLE[1]}"
            )
        ).fetchall()
    return [LoadedFile(path, sha, bool(is_raw), last) for path, sha, is_raw, last in rows]


def _has_project_tables(connection: duckdb.DuckDBPyConnection) -> bool:
    count = connection.execute(
        "select count(*) from information_schema.tables"
        " where table_schema in ('intermediate', 'marts', 'ml')"
    ).fetchall()[0][0]
    return count > 0


def purchases_before_loaded_returns(
    warehouse: Path | SparkTables, new_files: Sequence[LandedFile]
) -> dict[str, tuple[int, str]]:
    """For each new incoming file, its purchase lines (customer, positive quantity, not an exact
    copy of a loaded line) dated before a loaded return of the same customer and stock code: the
    count and the first one. A full build could match such a return to the new purchase (the
    latest candidate in file order), which an incremental run cannot redo, so these force a
    rebuild. warehouse is the DuckDB file, or the Spark build's tables (read from Parquet)."""
    if not new_files:
        return {}
    parameters: dict[str, object] = {"files": [str(item.parquet) for item in new_files]}
    if isinstance(warehouse, SparkTables):
        screened = _spark_screened(warehouse)
        if screened is None:
            return {}
        relation = "read_parquet($screened)"
        parameters["screened"] = screened
    else:
        relation = f"{SCREENED_TABLE[0]}.{SCREENED_TABLE[1]}"
    sql = f"""
        with new_purchases as (
            select * from read_parquet($files)
            where CustomerID is not null and Quantity > 0
        ),
        fresh as (
            select * from new_purchases as new
            where not exists (
                select 1 from {relation} as loaded
                where loaded.invoice_at = new.InvoiceDate
                  and loaded.invoice_no = new.InvoiceNo
                  and loaded.stock_code = new.StockCode
                  and loaded.description is not distinct from new.Description
                  and loaded.quantity = new.Quantity
                  and loaded.unit_price = new.UnitPrice
                  and loaded.customer_id = new.CustomerID
                  and loaded.country = new.Country
            )
        ),
        backdated as (
            select distinct fresh.source_file, fresh.file_row_number, fresh.CustomerID,
                fresh.StockCode, fresh.InvoiceDate
            from fresh
            inner join {relation} as loaded_return
                on loaded_return.customer_id = fresh.CustomerID
                and loaded_return.stock_code = fresh.StockCode
                and loaded_return.quantity < 0
                and (loaded_return.removal_step is null or loaded_return.removal_step > 2)
                and loaded_return.invoice_at > fresh.InvoiceDate
        )
        select source_file, count(*),
            arg_min('customer ' || CustomerID || ', stock code ' || StockCode || ' at '
                || strftime(InvoiceDate, '%Y-%m-%d %H:%M'), file_row_number)
        from backdated group by source_file
    """
    if isinstance(warehouse, SparkTables):
        connection = scratch_connection()
    else:
        connection = duckdb.connect(str(warehouse), read_only=True)
    with connection:
        rows = connection.execute(sql, parameters)
        return {path: (int(count), first) for path, count, first in rows.fetchall()}


def check_loaded_still_matched(
    loaded: list[LoadedFile] | None,
    raw: LandedFile,
    incoming: Sequence[LandedFile],
    pattern: str,
) -> None:
    """Refuse a daily-files pattern that no longer matches a loaded daily file which still
    exists (a typo, or a setting left from another shell): the build would rebuild from scratch
    without that file's lines, as if it had been removed. With another raw file (another data
    set) the build rebuilds from scratch anyway, and the old daily files may stay behind."""
    loaded = loaded or []
    if not _raw_is_loaded(loaded, raw):
        return
    matched = {str(item.path) for item in incoming}
    unmatched = [
        item.path
        for item in loaded
        if not item.is_raw and item.path not in matched and Path(item.path).is_file()
    ]
    if unmatched:
        shown = ", ".join(unmatched[:3]) + (
            f" and {len(unmatched) - 3} more" if len(unmatched) > 3 else ""
        )
        raise PreflightError(
            f"{INCOMING_GLOB_ENV} ({pattern}) no longer matches {len(unmatched)} daily file(s)"
            f" the warehouse loaded, which still exist ({shown}); a build would rebuild from"
            " scratch without their lines; nothing was built.\n"
            f"  Fix: set {INCOMING_GLOB_ENV} to a pattern that matches them again (unset it for"
            " data/incoming/*); to drop a file's lines, move it out of the daily files' folder"
            f" or delete it; for another data set, build another warehouse ({WAREHOUSE_PATH_ENV})."
        )


def _raw_is_loaded(loaded: Sequence[LoadedFile], raw: LandedFile) -> bool:
    """Whether the warehouse was built from this raw file (same path, same bytes)."""
    return any(
        item.is_raw and item.path == str(raw.path) and item.sha256 == raw.sha256 for item in loaded
    )


def decide_identity(
    loaded: list[LoadedFile] | None,
    raw: LandedFile,
    incoming: Sequence[LandedFile],
    backdated: Mapping[str, tuple[int, str]] | None = None,
) -> Identity:
    """Whether the warehouse can take the inputs incrementally (see the module docstring).
    ``backdated`` is `purchases_before_loaded_returns` of the new incoming files."""
    if loaded is None:
        return Identity(False)
    if not loaded:
        return Identity(
            True,
            ("the warehouse does not record which files it was built from (an earlier version)",),
        )
    reasons: list[str] = []
    loaded_raw = [item for item in loaded if item.is_raw]
    if not _raw_is_loaded(loaded, raw):
        before = ", ".join(f"{item.path} (sha256 {item.sha256[:12]})" for item in loaded_raw)
        reasons.append(
            f"the raw file is not the one the warehouse was built from: now {raw.path}"
            f" (sha256 {raw.sha256[:12]}), before {before or 'none'}"
        )
    current = {str(item.path): item for item in incoming}
    loaded_incoming = [item for item in loaded if not item.is_raw]
    for item in loaded_incoming:
        now = current.get(item.path)
        if now is None:
            reasons.append(f"the loaded incoming file {item.path} is gone")
        elif now.sha256 != item.sha256:
            reasons.append(f"the loaded incoming file {item.path} has changed")
    loaded_paths = {item.path for item in loaded_incoming}
    last = max((Path(item.path) for item in loaded_incoming), key=daily_file_order, default=None)
    for new in incoming:
        # a file with only its header adds no line, so where it sorts does not matter (and,
        # recording no line, it never counts as loaded)
        if str(new.path) in loaded_paths or new.n_rows == 0:
            continue
        if last is not None and daily_file_order(new.path) < daily_file_order(last):
            # by name; by path only when the names are the same
            shown = last if last.name == new.path.name else last.name
            reasons.append(f"the new incoming file {new.path} sorts before the loaded {shown}")
        count, first = (backdated or {}).get(str(new.path), (0, ""))
        if count:
            reasons.append(
                f"the new incoming file {new.path} holds {count} purchase line(s) dated before a"
                f" loaded return of the same customer and product (first: {first})"
            )
    return Identity(bool(reasons), tuple(reasons))


def _record_rows(warehouse: Path, table: tuple[str, str]) -> list[dict[str, Any]] | None:
    """The rows of a record table of the DuckDB warehouse (read only), each keyed by column name,
    or None when the warehouse or the table does not exist; raises duckdb.Error when the file
    cannot be read."""
    if not warehouse.exists():
        return None
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        found = connection.execute(
            "select count(*) from information_schema.tables"
            " where table_catalog = current_database() and table_schema = ? and table_name = ?",
            list(table),
        ).fetchall()[0][0]
        if not found:
            return None
        cursor = connection.execute(f"select * from {'.'.join(table)}")
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@dataclass(frozen=True)
class PendingRefresh:
    """Whether a rebuild from scratch that the inputs required has not finished, and why.

    The dbt run that starts the rebuild the inputs force records it, before it replaces any
    relation: the DuckDB build's on-run-start hook (macros/refresh_state.sql, from the prepared
    stamp), the Spark launcher (`write`). dbt's full refresh replaces one relation after the
    other, so a rebuild that fails or is killed half-way leaves the cleaning chain's first table
    on the new inputs and the later ones on the old: the input identity, read from the first,
    would then take the inputs as loaded. The record makes the next build rebuild again. A whole
    build that succeeded marks it done: the on-run-end hook, the Spark launcher.

    It lives with the warehouse, so that another landing folder cannot hide it: in the DuckDB file
    (``REFRESH_PENDING_TABLE``, while the rebuild is pending: pending, and the reasons as JSON;
    dropped when it finished, so a rebuilt warehouse equals a fresh build), or as
    ``REFRESH_PENDING_NAME`` in the Spark build's folder."""

    engine: str
    warehouse: Path

    def read(self) -> tuple[str, ...] | None:
        """Why the rebuild was needed, while it has not finished; None when none is pending. An
        unreadable record counts as pending (a rebuild too many, never too few)."""
        unreadable = ("an unreadable record of an earlier rebuild",)
        try:
            if self.engine == "spark":
                try:
                    text = (self.warehouse / REFRESH_PENDING_NAME).read_text()
                except FileNotFoundError:
                    return None
                state = json.loads(text)
                pending, reasons = state.get("pending"), state.get("reasons") or []
            else:
                rows = _record_rows(self.warehouse, REFRESH_PENDING_TABLE)
                if rows is None:
                    return None
                if len(rows) != 1:
                    return unreadable
                pending, reasons = rows[0]["pending"], json.loads(rows[0]["reasons_json"] or "[]")
        except (OSError, ValueError, AttributeError, KeyError, duckdb.Error):
            return unreadable
        if not pending:
            return None
        return tuple(str(reason) for reason in reasons)

    def write(self, reasons: Sequence[str] | None) -> None:
        """Record that a rebuild is needed for these reasons; None records that it finished."""
        pending, text = reasons is not None, json.dumps(list(reasons or []))
        if self.engine == "spark":
            state = {"pending": pending, "reasons": list(reasons or [])}
            (self.warehouse / REFRESH_PENDING_NAME).write_text(json.dumps(state) + "\n")
            return
        if not pending and _record_rows(self.warehouse, REFRESH_PENDING_TABLE) is None:
            return  # nothing was pending
        schema, table = REFRESH_PENDING_TABLE
        try:
            with duckdb.connect(str(self.warehouse)) as connection:
                if not pending:  # as the hook does: a finished rebuild leaves no trace
                    connection.execute(f"drop table if exists {schema}.{table}")
                    return
                connection.execute(f"create schema if not exists {schema}")
                connection.execute(
                    f"create or replace table {schema}.{table} as"
                    " select true as pending, $reasons as reasons_json",
                    {"reasons": text},
                )
        except duckdb.Error as error:
            raise PreflightError(
                f"The warehouse {self.warehouse} cannot be written ({error}); nothing was built.\n"
                "  Fix: wait for the build or program using it to finish, or point"
                " RETAIL_DUCKDB_PATH at a warehouse file this user can write."
            ) from error


def inputs_key(raw: LandedFile, incoming: Sequence[LandedFile], project_root: Path) -> str:
    """One value for what a build reads besides its vars: the input files' roles, paths and
    SHA-256, in order, and the bytes of the project's seeds (a seed edited since the last whole
    build changes the tables built from it)."""
    parts = [("raw", str(raw.path), raw.sha256)]
    parts += [("incoming", str(item.path), item.sha256) for item in incoming]
    for seed in sorted((project_root / "seeds").glob("*.csv")):
        parts.append(("seed", seed.name, hashlib.sha256(seed.read_bytes()).hexdigest()))
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def _move_legacy_pending_record(landing: Path, record: PendingRefresh, built: bool) -> None:
    """Versions before the record moved into the warehouse kept it as ``REFRESH_PENDING_NAME`` in
    the DuckDB build's landing folder: a rebuild it says is pending is recorded in the warehouse
    (when one exists), and the file removed."""
    legacy = landing / REFRESH_PENDING_NAME
    if not legacy.is_file():
        return
    try:
        state = json.loads(legacy.read_text().strip().splitlines()[0])
        pending, reasons = bool(state.get("pending")), list(state.get("reasons") or [])
    except (OSError, IndexError, ValueError, AttributeError):
        pending, reasons = True, ["an unreadable record of an earlier rebuild"]
    if pending and built and record.read() is None:
        record.write([str(reason) for reason in reasons])
    legacy.unlink()


@dataclass(frozen=True)
class BuiltVars:
    """The record of the vars (name and value as dbt renders it) of the warehouse's last whole
    build that succeeded, and whether a build or run started since has not finished: a build
    limited by --select with other vars, or after a run that stopped half-way, would build the
    selected models beside tables built from other vars or inputs, and the publish would serve
    that mix.

    It lives with the warehouse, so it goes where the warehouse goes: in the DuckDB file
    (``BUILT_VARS_TABLE``: one row: the vars as JSON, whether the record still holds, the key of
    the inputs it was built from, whether a run is unfinished), or as ``BUILT_VARS_NAME`` in the
    Spark build's folder. dbt's hooks keep the DuckDB one (macros/built_vars.sql): written after a
    whole build that succeeded; when any build or run starts, marked unfinished, and as no longer
    holding if its vars or inputs differ (it may replace tables before it ends); marked finished
    when every node of a run succeeded. The Spark launcher keeps its own the same way."""

    engine: str
    warehouse: Path

    @classmethod
    def of_stamp(cls, stamp: Path) -> BuiltVars:
        """The record of the warehouse a prepared stamp is for."""
        info = json.loads(stamp.read_text())
        return cls(str(info.get("engine", "duckdb")), Path(info["warehouse"]))

    def _state(self) -> _RecordState | None:
        """The record as it is, or None without a readable one."""
        if self.engine == "spark":
            try:
                record = json.loads((self.warehouse / BUILT_VARS_NAME).read_text())
                return _RecordState(
                    list(record.get("vars") or []),
                    record.get("valid") is True,
                    record.get("unfinished") is True,
                    None,
                )
            except (OSError, ValueError, AttributeError):
                return None
        try:
            rows = _record_rows(self.warehouse, BUILT_VARS_TABLE)
            if rows is None or len(rows) != 1:
                return None
            row = rows[0]
            # a record of an earlier version (no inputs key, no unfinished mark) cannot say that
            # no run stopped half-way since: it holds again after a whole build
            current = "inputs_key" in row and "unfinished" in row
            return _RecordState(
                json.loads(row["vars_json"]),
                row["valid"] is True and current,
                row.get("unfinished") is True,
                None if row.get("inputs_key") is None else str(row["inputs_key"]),
            )
        except (duckdb.Error, KeyError, ValueError):
            return None  # unreadable counts as no record: a selected build is refused

    def read(self) -> dict[str, str] | None:
        """The recorded vars, or None when no record holds (none, marked as no longer holding, or
        a build or run started since has not finished)."""
        state = self._state()
        if state is None or not state.valid or state.unfinished:
            return None
        return {str(item["name"]): str(item["value"]) for item in state.vars}

    def inputs_key(self) -> str | None:
        """The key of the inputs (files and seeds) of the last whole build that succeeded, as the
        DuckDB record holds it; None when unknown (no record, the Spark build's, an old one)."""
        state = self._state()
        return None if state is None else state.inputs_key

    def unfinished(self) -> bool:
        """Whether a build or run started on the warehouse has not finished: it stopped, or a
        model or test failed, so its tables may come from two runs."""
        state = self._state()
        return state is not None and state.unfinished

    def write(self, items: Sequence[Mapping[str, str]] | None) -> None:
        """Record these vars (``{"name", "value"}`` items, as in a stamp) as those of the last
        whole build that succeeded (finished, with the inputs key recorded before); None marks
        the record as no longer holding."""
        if self.engine == "spark":
            state = self._state()
            if items is not None:
                self._write_spark(items, valid=True, unfinished=False)
            elif state is not None:
                self._write_spark(state.vars, valid=False, unfinished=state.unfinished)
            return
        table = ".".join(BUILT_VARS_TABLE)
        with duckdb.connect(str(self.warehouse)) as connection:
            if items is None:
                connection.execute(f"update {table} set valid = false")
                return
            # as the hooks write it: DuckDB's own JSON text of the same list
            vars_json = (
                "cast(to_json(cast($items as struct(name varchar, value varchar)[])) as varchar)"
            )
            parameters = {"items": [{"name": i["name"], "value": i["value"]} for i in items]}
            exists = connection.execute(
                "select count(*) from information_schema.tables where table_schema = ?"
                " and table_name = ?",
                list(BUILT_VARS_TABLE),
            ).fetchall()[0][0]
            if exists:
                connection.execute(
                    f"alter table {table} add column if not exists unfinished boolean default false"
                )
                connection.execute(
                    f"update {table} set vars_json = {vars_json}, valid = true, unfinished = false",
                    parameters,
                )
                return
            connection.execute(f"create schema if not exists {BUILT_VARS_TABLE[0]}")
            connection.execute(
                f"create table {table} as select {vars_json} as vars_json, true as valid,"
                " cast(null as varchar) as inputs_key, false as unfinished",
                parameters,
            )

    def start(self, vars_differ: bool) -> None:
        """Spark launcher, before its dbt run (the DuckDB hooks do this): a run has started, and
        the record stops holding if its vars differ."""
        state = self._state()
        if state is not None:
            self._write_spark(state.vars, state.valid and not vars_differ, unfinished=True)

    def finish(self) -> None:
        """Spark launcher, after a run in which every node succeeded: it finished."""
        state = self._state()
        if state is not None:
            self._write_spark(state.vars, state.valid, unfinished=False)

    def _write_spark(
        self, items: Sequence[Mapping[str, str]], valid: bool, unfinished: bool
    ) -> None:
        record = {"vars": list(items), "valid": valid, "unfinished": unfinished}
        (self.warehouse / BUILT_VARS_NAME).write_text(json.dumps(record) + "\n")


class _RecordState(NamedTuple):
    """A `BuiltVars` record as read: its vars items, whether it holds, whether a run is
    unfinished, and its inputs key (None when unknown)."""

    vars: list[dict[str, str]]
    valid: bool
    unfinished: bool
    inputs_key: str | None


# Why a build limited to some models, or a backfill, must not follow a run that did not finish.
UNFINISHED_RUN = (
    "the last build or run on this warehouse did not finish (it was stopped, or a model or test"
    " failed), so its tables may come from different inputs or vars"
)


def vars_since_built(stamp: Path) -> tuple[str, ...] | None:
    """How the vars of the prepared ``stamp`` differ from those its warehouse records for its last
    whole build that succeeded (``name: 'then' -> 'now'`` each; empty when equal), or None when no
    record holds (`BuiltVars`)."""
    then = BuiltVars.of_stamp(stamp).read()
    if then is None:
        return None
    now = {item["name"]: item["value"] for item in stamp_vars(stamp)}
    return tuple(
        f"{name}: {then[name]!r} -> {value!r}" if name in then else f"{name}: new, {value!r}"
        for name, value in now.items()
        if then.get(name) != value
    )


def prepared_stamp(env: Mapping[str, str]) -> Path | None:
    """The stamp of the build prepared in env (`prepare` sets it), or None."""
    value = env.get(PREPARED_STAMP_ENV)
    return Path(value) if value else None


def stamp_vars(stamp: Path) -> list[dict[str, str]]:
    """The vars a prepared stamp records, as ``{"name", "value"}`` items."""
    return list(json.loads(stamp.read_text())["vars"])


def _selection_wording(
    dbt_args: Sequence[str], environ: Mapping[str, str], project_root: Path
) -> tuple[str, str] | None:
    """How a build is limited to part of the project, and the start of the fix ("  Fix: ... (make
    build", for the caller to close), for messages; None when it is not limited."""
    if has_selection(dbt_args, environ):
        return (
            "limited by --select/--exclude",
            "  Fix: run the build without --select/--exclude (make build",
        )
    selector = default_selector(project_root)
    if selector is None:
        return None
    return (
        f"limited by the default selector '{selector}' of selectors.yml",
        "  Fix: remove `default: true` from selectors.yml, then run the build (make build",
    )


def inputs_since_built(stamp: Path) -> bool:
    """Whether the inputs (files and seeds) of the prepared ``stamp`` differ from those its
    warehouse records for its last whole build that succeeded (False when none is recorded)."""
    recorded = BuiltVars.of_stamp(stamp).inputs_key()
    return recorded is not None and recorded != json.loads(stamp.read_text()).get("inputs_key")


def selected_build_problem(
    prepared: PreparedBuild, dbt_args: Sequence[str], project_root: Path
) -> str | None:
    """Why a build limited by --select/--exclude (dbt_args) must not run, or None: the selected
    models would load new daily files, or use other vars, than the rest of the warehouse, and the
    publish would serve that mix. The message names what differs and the fix."""
    wording = _selection_wording(dbt_args, prepared.env, project_root)
    if wording is None:
        return None
    limited, fix = wording
    if prepared.unloaded:
        return (
            f"new daily files arrived ({', '.join(map(str, prepared.unloaded))}); a build"
            f" {limited} would bring their lines into the selected models"
            f" only, and publish that mix; nothing was built.\n{fix})."
        )
    built = BuiltVars.of_stamp(prepared.stamp)
    if built.unfinished():
        return (
            f"{UNFINISHED_RUN}; a build {limited} would build the selected models beside them,"
            f" and publish that mix; nothing was built.\n{fix})."
        )
    if inputs_since_built(prepared.stamp):
        return (
            "the input files or the seeds differ from those of the last whole build (a daily"
            f" file, or an edited seed); a build {limited} would build the selected models from"
            f" them beside tables built from the others, and publish that mix; nothing was built."
            f"\n{fix})."
        )
    changed = vars_since_built(prepared.stamp)
    if changed == ():
        return None
    why = (
        f"the vars differ from the last whole build's ({'; '.join(changed)})"
        if changed
        else "no whole build that succeeded is recorded with the vars it used (a warehouse of"
        " an earlier version, or a build with other vars or inputs started since)"
    )
    return (
        f"{why}; a build {limited} would build the selected models with"
        " these vars beside tables built with others, and publish that mix; nothing was built.\n"
        f"{fix}, with --vars if you want other values)"
        + (", or select with the vars of the last whole build." if changed else ".")
    )


def new_incoming(
    loaded: list[LoadedFile] | None, incoming: Sequence[LandedFile]
) -> list[LandedFile]:
    """The incoming files the warehouse has not loaded yet."""
    known = {item.path for item in loaded or []}
    return [item for item in incoming if str(item.path) not in known]


def _link_set(landing: Path, raw: LandedFile, incoming: Sequence[LandedFile]) -> Path:
    prepared = landing / f"inputs-{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:6]}"
    (prepared / "raw").mkdir(parents=True)
    (prepared / "incoming").mkdir()
    os.link(raw.parquet, prepared / "raw" / raw.parquet.name)
    for item in incoming:
        os.link(item.parquet, prepared / "incoming" / item.parquet.name)
    return prepared


def _file_entry(role: str, item: LandedFile, prepared: Path) -> dict[str, Any]:
    return {
        "role": role,
        "path": str(item.path),
        "sha256": item.sha256,
        "size_bytes": item.size_bytes,
        "container": item.container,
        "encoding": item.encoding,
        "layout": item.layout,
        "n_rows": item.n_rows,
        "landed": str(prepared / role / item.parquet.name),
    }


def _switch_current(landing: Path, prepared: Path) -> None:
    staged = landing / f".{CURRENT_LINK}.{uuid.uuid4().hex[:8]}.tmp"
    staged.symlink_to(prepared.name)
    os.replace(staged, landing / CURRENT_LINK)
    sets = sorted(path for path in landing.glob("inputs-*") if path.is_dir())
    for old in sets[:-KEEP_PREPARED_SETS]:
        if old != prepared:
            shutil.rmtree(old, ignore_errors=True)


# dbt's folders for its artifacts and logs: (parameter, default, what)
_DBT_FOLDERS = (
    ("target_path", "target", "dbt's artifacts folder"),
    ("log_path", "logs", "dbt's log folder"),
)


def check_dbt_args(project_root: Path, dbt_args: Sequence[str], environ: Mapping[str, str]) -> None:
    """Raise `PreflightError` for what dbt's arguments and variables (as dbt's own parser reads
    them, `retail_segments.ops.dbt_args.DbtBuildArgs`) ask that would make the build not reflect
    the input, make the publish read another build's manifest, or fail in dbt with a traceback:
    arguments dbt refuses; ``--empty`` or ``--sample`` (part of the input); no manifest written
    (``--no-write-json``); warn-error options (they would override the project's, which make a
    selection that matches nothing an error); threads below 1; an artifacts or log folder that
    cannot be written (relative ones are dbt's, from the project)."""
    try:
        parsed = DbtBuildArgs.parse(dbt_args, environ)
    except DbtArgsError as error:
        raise PreflightError(
            f"dbt does not take these arguments: {error}; nothing was built.\n"
            "  Fix: correct them (`dbt build --help` lists what dbt takes)."
        ) from error
    partial = [name for name in ("empty", "sample") if parsed.value(name)]
    if partial:
        ways = "; ".join(parsed.given_as(name) for name in partial)
        raise PreflightError(
            f"dbt's {' and '.join('--' + name for name in partial)} ({ways}) builds the models on"
            " part of the input (--empty: no rows; --sample: a time window), so the warehouse"
            " would not reflect every line of the file; nothing was built.\n"
            "  Fix: run the build without it (drop the option, unset the variable)."
        )
    threads = parsed.value("threads")
    refused = [
        (
            "write_json",
            not parsed.value("write_json"),
            "keeps dbt from writing its manifest, from which the publish reads what to serve"
            " (an older one would be read instead)",
        ),
        (
            "warn_error_options",
            "warn_error_options" in parsed.given,
            "would replace the project's (dbt_project.yml flags), which make a selection that"
            " matches nothing an error",
        ),
        (
            "threads",
            threads is not None and threads < 1,
            f"= {threads} is not a number of threads (a whole number from 1)",
        ),
    ]
    for name, found, why in refused:
        if found:
            raise PreflightError(
                f"dbt's {name} setting ({parsed.given_as(name)}) {why}; nothing was built.\n"
                "  Fix: drop the option, or unset the variable."
            )
    for name, default, what in _DBT_FOLDERS:
        folder = parsed.value(name) or default
        _check_writable(project_root / Path(folder).expanduser(), what, parsed.spelled(name))


def prepare(
    project_root: Path,
    environ: Mapping[str, str],
    dbt_args: Sequence[str] = (),
    *,
    fits: bool = True,
    read_warehouse: bool = True,
    spark: SparkTables | None = None,
    activate: bool = True,
) -> PreparedBuild:
    """Check and land everything a dbt run will read; return the dbt environment and arguments.

    ``dbt_args`` are the arguments the user gives dbt (``--vars`` is checked; a full refresh is
    refused together with a selection). ``fits=False`` for runs that fit no model (a backfill
    month): the date vars must then only lie inside the data. ``read_warehouse=False`` skips the
    input-identity check, for a caller that made it already and holds the warehouse open itself
    (the backfill's months). ``spark`` prepares a Spark build instead: the inputs are checked and
    landed by its lander (in ``<spark root>/landing`` unless ``RETAIL_LANDING_DIR`` is set),
    what was loaded is read from its tables, and the stamp says ``engine: spark``.
    ``activate=False`` leaves the landing folder's ``current`` (what dbt's sources and a hand-run
    dbt read) on the set it named: the caller makes its own checks and calls
    `PreparedBuild.activate` only when the build goes ahead, so a refused build changes nothing
    the warehouse reads. Raises `PreflightError`.
    """
    try:
        return _prepare(project_root, environ, dbt_args, fits, read_warehouse, spark, activate)
    except (InputError, SettingsError, RawDataNotFoundError) as error:
        raise PreflightError(str(error)) from error


def _land_daily_file(path: Path, cache: Path, lander: Lander | None) -> LandedFile:
    """`land_file` for a daily file: its errors name it as one. A daily file with only its
    header is a day without sales: landed with no rows."""
    try:
        return land_file(path, cache, lander, allow_empty=True)
    except InputError as error:
        raise error.as_daily_file() from error


def _check_not_served(warehouse: Path, environ: Mapping[str, str]) -> None:
    """Raise `PreflightError` when the warehouse lies in the serving folder, which each publish
    replaces (checked by path: the serving copy need not exist yet)."""
    served = serving_dir(warehouse, environ).resolve()
    if warehouse.resolve().is_relative_to(served):
        raise PreflightError(
            f"The warehouse {warehouse} lies in the serving folder {served}, which BI tools read"
            " and each build replaces; nothing was built.\n"
            f"  Fix: point {WAREHOUSE_PATH_ENV} at the warehouse the build writes (by default"
            " warehouse/retail_segments.duckdb), outside RETAIL_SERVING_DIR."
        )


def _check_apart_from_serving(landing: Path, warehouse: Path, environ: Mapping[str, str]) -> None:
    """Raise `PreflightError` when the landing folder and the serving folder are one folder or
    one lies in the other: BI would read the landed inputs, and the publish, which locks the
    serving folder, would wait for ever on the build's own lock of the landing folder."""
    served = serving_dir(warehouse, environ).resolve()
    landed = landing.resolve()
    if landed.is_relative_to(served) or served.is_relative_to(landed):
        raise PreflightError(
            f"The landing folder {landed} (the checked inputs) and the serving folder {served}"
            " (what BI tools read) overlap; nothing was built.\n"
            f"  Fix: set {LANDING_DIR_ENV} and {SERVING_DIR_ENV} to two separate folders (by"
            " default landing/ and serving/ beside the warehouse)."
        )


def _check_writable(directory: Path, what: str, variable: str) -> None:
    """Raise `PreflightError` naming ``directory`` unless a file can be written in it (created
    first when missing), before anything is landed or built."""
    existing = nearest_existing(directory)
    reason = f"{existing} is a file" if not existing.is_dir() else ""
    if not reason:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=directory, prefix=".write-check-"):
                pass
        except OSError as error:
            reason = str(error.strerror)
    if reason:
        raise PreflightError(
            f"{what} {directory} cannot be written ({reason}); nothing was built.\n"
            f"  Fix: make it writable, or set {variable} to a place that is."
        )


def _check_settings(
    project_root: Path, environ: Mapping[str, str], dbt_args: Sequence[str]
) -> tuple[CheckedMeta, ProjectVars, dict[str, Any]]:
    """The environment, the models' meta blocks and the vars, checked; one `SettingsError` with
    the problems of all three (a user fixes them in one go, not one per run)."""
    problems: list[str] = []
    meta = settings = None
    raw_values: dict[str, Any] = {}
    try:
        check_environment(environ)
    except SettingsError as error:
        problems.extend(error.problems)
    try:
        meta = check_model_meta(project_root)
    except SettingsError as error:
        problems.extend(error.problems)
    try:
        cli_vars, _rest = parse_cli_vars(dbt_args)
        raw_values = {**project_var_defaults(project_root), **cli_vars}
        settings = check_vars(raw_values)
    except SettingsError as error:
        problems.extend(error.problems)
    if problems or meta is None or settings is None:
        raise SettingsError(problems)
    return meta, settings, raw_values


def _prepare(
    project_root: Path,
    environ: Mapping[str, str],
    dbt_args: Sequence[str],
    fits: bool,
    read_warehouse: bool,
    spark: SparkTables | None = None,
    activate: bool = True,
) -> PreparedBuild:
    meta, settings, raw_values = _check_settings(project_root, environ, dbt_args)
    holdout_days = meta.settings["ml_customer_value_fit"]["value"].holdout_days
    # after the vars (their messages are ours): everything else as dbt's parser reads it
    check_dbt_args(project_root, dbt_args, environ)

    raw_path = resolve_raw_path(project_root, environ)
    warehouse = warehouse_path(project_root, environ)
    # a Spark build keeps its inputs beside its tables directory: <spark dir>/landing
    built_at = warehouse if spark is None else spark.root
    landing = landing_dir(built_at, environ)
    if spark is None:
        _check_not_served(warehouse, environ)
        _check_writable(warehouse.parent, "The warehouse's folder", WAREHOUSE_PATH_ENV)
    _check_no_pattern_characters(
        raw_path,
        "Raw data file",
        "rename it (or its folder) without *, ? and [, or copy it elsewhere",
    )
    _check_no_pattern_characters(
        landing,
        "Landing folder",
        f"set {LANDING_DIR_ENV} (or {WAREHOUSE_PATH_ENV}) to a folder without *, ? and [",
    )
    _check_apart_from_serving(landing, warehouse, environ)
    _check_writable(landing, "The landing folder (checked inputs)", LANDING_DIR_ENV)
    cache = landing / "cache"
    pattern, incoming_paths, incoming_matches = incoming_files(project_root, environ)
    incoming_paths = [path for path in incoming_paths if path != raw_path]
    lander = None if spark is None else spark.lander
    raw = land_file(raw_path, cache, lander)
    incoming = tuple(_land_daily_file(path, cache, lander) for path in incoming_paths)
    check_sales_lines([raw, *incoming])
    check_day_first_dates([raw, *incoming])
    facts = data_facts([raw, *incoming])
    check_vars_against_data(settings, raw_values, facts, fits=fits, holdout_days=holdout_days)
    notes = as_of_notes(settings, facts, holdout_days) if fits else ()

    if not read_warehouse:
        loaded = None
    elif spark is None:
        loaded = loaded_files(warehouse)
    else:
        loaded = loaded_spark_files(spark)
    # refused before the warehouse is scanned for backdated purchases
    check_loaded_still_matched(loaded, raw, incoming, pattern)
    built: Path | SparkTables = warehouse if spark is None else spark
    arriving = new_incoming(loaded, incoming) if loaded else []
    backdated = purchases_before_loaded_returns(built, arriving)
    identity = decide_identity(loaded, raw, incoming, backdated)
    # why the rebuild is needed, recorded while it runs: an unfinished rebuild's own causes
    # when nothing else asks for one (its first table already holds the new inputs)
    causes = identity.reasons
    record = PendingRefresh(
        "duckdb" if spark is None else "spark", warehouse if spark is None else spark.root
    )
    if spark is None:
        _move_legacy_pending_record(landing, record, loaded is not None)
    pending = record.read() if loaded else None
    if pending is not None and not identity.full_refresh:
        unfinished = f"the last rebuild from scratch ({'; '.join(pending)}) did not finish"
        identity = Identity(True, (unfinished,))
        causes = pending
    wording = _selection_wording(dbt_args, environ, project_root) if identity.full_refresh else None
    if wording is not None:
        limited, fix = wording
        raise PreflightError(
            f"The inputs changed ({identity.summary()}), so the warehouse must be rebuilt from"
            f" scratch, which a build {limited} cannot do; nothing was built.\n{fix})."
        )
    args = list(dbt_args)
    if identity.full_refresh and "--full-refresh" not in args:
        args.append("--full-refresh")

    # the rebuild is recorded as pending by the dbt run that starts it (macros/refresh_state.sql;
    # the Spark launcher), not here: a prepare alone, or a build refused after it, starts none
    prepared = _link_set(landing, raw, incoming)
    stamp = {
        "prepared_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "engine": "duckdb" if spark is None else "spark",
        "warehouse": str(warehouse if spark is None else spark.root),
        "raw_path": str(raw.path),
        # where a dbt run without RETAIL_RAW_PATH looks, in order (the hook takes the first that
        # exists, as resolve_raw_path does), so plain `dbt build` after `prepare` agrees with it
        "default_raw_paths": [
            str(path.resolve()) for _label, path in raw_path_candidates(project_root, {})
        ],
        "incoming_glob": pattern,
        "incoming_matches": incoming_matches,
        "meta": meta.fingerprints,
        "full_refresh": identity.full_refresh,
        "reasons": list(identity.reasons),
        # what the run that starts the rebuild records as pending (`PendingRefresh`)
        "refresh_causes": list(causes) if identity.full_refresh else [],
        "vars": [
            {"name": name, "value": var_text(raw_values[name])} for name in ProjectVars.model_fields
        ],
        "files": [
            _file_entry("raw", raw, prepared),
            *(_file_entry("incoming", item, prepared) for item in incoming),
        ],
        # the inputs in one value, for the record of the last whole build (`BuiltVars`)
        "inputs_key": inputs_key(raw, incoming, project_root),
    }
    (prepared / STAMP_NAME).write_text(json.dumps(stamp, indent=2) + "\n")
    if activate:
        _switch_current(landing, prepared)

    env = dict(environ)
    env[RAW_PATH_ENV] = str(raw.path)
    env[WAREHOUSE_PATH_ENV] = str(warehouse)
    env[LANDING_DIR_ENV] = str(landing)
    env[INCOMING_GLOB_ENV] = pattern
    env[PREPARED_STAMP_ENV] = str(prepared / STAMP_NAME)
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    unloaded = tuple(item.path for item in arriving if item.n_rows > 0)
    return PreparedBuild(
        env, raw, incoming, identity, settings, prepared / STAMP_NAME, tuple(args), notes, unloaded
    )
