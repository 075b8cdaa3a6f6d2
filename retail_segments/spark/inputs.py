"""The value checks and typed landing of a raw file (steps 5 and 6 of
`retail_segments.ops.inputs`) in Spark, with the same faults found and the same messages as on
DuckDB.

Steps 1-4 (fingerprint, container, whole stream, encoding, header by name) read bytes and stay in
Python for both engines. Here Spark reads the file's text (zstd, gzip or plain, through Hadoop's
codecs) with every column as a string, plus a sentinel column that catches a record with more
fields than the header, in PERMISSIVE mode (a record with a missing field then reads as a NULL in
its last column, an empty field as ``''``). A record is a line, or several when a quoted field
holds line breaks (``multiLine``), as on DuckDB; quoting DuckDB's strict reader refuses (a quote
not closed, or not doubled inside a quoted field) stops Spark's reader, and is reported with the
line of the record it starts in. Each record gets its position in the file without a sort:
``monotonically_increasing_id()`` numbers rows within a partition in order, and partitions are the
file's splits in order. Then one aggregation checks

* the CSV structure (every record has the header's fields): `InputError` "is not a well-formed
  CSV" with the first line of the first bad record as written;
* every `SPARK_VALUE_CHECKS` condition, the same (column, problem) pairs as
  `retail_segments.ops.inputs.VALUE_CHECKS` in Spark SQL: per failing check, how many values, the
  first line and its value.

Messages name the line in the file where the record starts (`retail_segments.ops.inputs.records`
finds it again in Python, only when a file is refused, as on DuckDB), which differs from the
record's number plus one after a quoted field with line breaks or an empty line.

A file that passes is written as one Parquet file with the DuckDB landing's columns and types
(``InvoiceDate`` a Spark ``timestamp``, UTC), read by the Spark build's ``landing`` sources.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retail_segments.ops.inputs import (
    _VALUE_FIX,
    MAX_SIGNIFICANT_DIGITS,
    SMALLEST_NORMAL_DOUBLE,
    InputError,
    TextSource,
    bad_values_detail,
    lines_of_rows,
    place_of_line,
    places_of_rows,
    records,
    source_chunks,
    text_lines,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# Java regular expressions, anchored at both ends of the value. The end is Java's \z, not $,
# which also matches before a final line break: a quoted "5<newline>" matched, and Spark's cast
# (which trims it) landed 5 where DuckDB refuses the value. The backslash is doubled for the
# Spark SQL literal, which reads \\ as one.
_END = "\\\\z"
_MDY = "^[0-9]{1,2}/[0-9]{1,2}/[0-9]{4} [0-9]{1,2}:[0-9]{2}" + _END
_ISO = "^[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}(:[0-9]{2})?" + _END
_INTEGER = "^[+-]?[0-9]+" + _END
_DECIMAL = "^[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][+-]?[0-9]+)?" + _END
_WHOLE = "^[+-]?[0-9]+([.]0*)?" + _END
_SIGNIFICANT = (
    "length(trim(both '0' from regexp_replace(regexp_replace(lower(trim(UnitPrice)), 'e.*$', ''),"
    " '[^0-9]', '')))"
)
_MDY_FORMAT = "M/d/yyyy H:mm"


def _double(column: str) -> str:
    return f"try_cast(trim({column}) as double)"


# The typed value of each column, as landed (applied only after every check passed).
TYPED_COLUMNS: dict[str, str] = {
    "InvoiceNo": "InvoiceNo",
    "StockCode": "StockCode",
    "Description": "Description",
    "Quantity": "cast(trim(Quantity) as int)",
    "InvoiceDate": (
        f"case when trim(InvoiceDate) rlike '{_MDY}'"
        f" then to_timestamp(trim(InvoiceDate), '{_MDY_FORMAT}')"
        " else cast(replace(trim(InvoiceDate), 'T', ' ') as timestamp) end"
    ),
    "UnitPrice": "cast(trim(UnitPrice) as double)",
    "CustomerID": "cast(split_part(trim(CustomerID), '.', 1) as int)",
    "Country": "Country",
}

# (column, what is wrong, Spark SQL condition that flags a bad value): the same pairs, in the same
# order, as retail_segments.ops.inputs.VALUE_CHECKS (a test holds them together). Empty fields
# are NULL here, as in DuckDB's reader.
SPARK_VALUE_CHECKS: tuple[tuple[str, str, str], ...] = (
    ("InvoiceNo", "are empty (or blanks only)", "coalesce(trim(InvoiceNo), '') = ''"),
    ("StockCode", "are empty (or blanks only)", "coalesce(trim(StockCode), '') = ''"),
    ("Country", "are empty (or blanks only)", "coalesce(trim(Country), '') = ''"),
    (
        "Quantity",
        "are empty or not an integer (a whole number)",
        f"not coalesce(trim(Quantity) rlike '{_INTEGER}', false)",
    ),
    (
        "Quantity",
        "are outside the INTEGER range -2147483648..2147483647",
        f"trim(Quantity) rlike '{_INTEGER}' and try_cast(trim(Quantity) as int) is null",
    ),
    (
        "UnitPrice",
        "are empty or not a number (a finite decimal such as 2.55)",
        f"not coalesce(trim(UnitPrice) rlike '{_DECIMAL}', false)",
    ),
    (
        "UnitPrice",
        f"have more than {MAX_SIGNIFICANT_DIGITS} significant digits, which a double would round",
        f"trim(UnitPrice) rlike '{_DECIMAL}' and {_SIGNIFICANT} > {MAX_SIGNIFICANT_DIGITS}",
    ),
    (
        "UnitPrice",
        "are too large for a double",
        f"trim(UnitPrice) rlike '{_DECIMAL}' and abs({_double('UnitPrice')}) = double('infinity')",
    ),
    (
        "UnitPrice",
        "are too small for a double (they would load as 0 or rounded)",
        f"trim(UnitPrice) rlike '{_DECIMAL}' and {_SIGNIFICANT} > 0"
        f" and abs({_double('UnitPrice')}) < {SMALLEST_NORMAL_DOUBLE!r}",
    ),
    (
        "InvoiceDate",
        "are empty or do not parse as M/D/YYYY H:MM (or YYYY-MM-DD HH:MM[:SS])",
        f"not coalesce((trim(InvoiceDate) rlike '{_MDY}'"
        f" and try_to_timestamp(trim(InvoiceDate), '{_MDY_FORMAT}') is not null)"
        f" or (trim(InvoiceDate) rlike '{_ISO}'"
        " and try_cast(replace(trim(InvoiceDate), 'T', ' ') as timestamp) is not null), false)",
    ),
    (
        "InvoiceDate",
        "have the hour 24 (write 00:00 of the next day)",
        # Spark's parse refuses it already (the check above); kept for the same list as DuckDB's
        f"trim(InvoiceDate) rlike '{_ISO}' and substr(trim(InvoiceDate), 12, 2) = '24'",
    ),
    (
        "InvoiceDate",
        "are before the year 1 (year 0000 is not a year of the calendar the product uses)",
        # Spark parses the year 0000 (no Python datetime holds it)
        f"coalesce(year({TYPED_COLUMNS['InvoiceDate']}) < 1, false)",
    ),
    (
        "CustomerID",
        "are not an integer (a whole number, or empty for no customer)",
        f"CustomerID is not null and not trim(CustomerID) rlike '{_WHOLE}'",
    ),
    (
        "CustomerID",
        "are outside the INTEGER range -2147483648..2147483647",
        f"trim(CustomerID) rlike '{_WHOLE}'"
        " and try_cast(split_part(trim(CustomerID), '.', 1) as int) is null",
    ),
)
# the typed InvoiceDate of a line whose fields and date passed every check, else NULL: the first
# and last date are collected from these only (a date that fails its check, e.g. '20111', can be
# a Spark timestamp that Python cannot hold)
_CHECKED_DATE = (
    "case when not _bad_fields"
    + "".join(
        f" and not coalesce({condition}, false)"
        for column, _problem, condition in SPARK_VALUE_CHECKS
        if column == "InvoiceDate"
    )
    + f" then {TYPED_COLUMNS['InvoiceDate']} end"
)
_EXTRA = "_extra_field"
_ROW = "file_row_number"
_CODEC_SUFFIX = {"zstd": ".csv.zst", "gzip": ".csv.gz", "none": ".csv"}
# what Spark's error says when its reader stops at malformed quoting (univocity's
# TextParsingException for unescapedQuoteHandling=RAISE_ERROR)
_QUOTE_ERROR = "TextParsingException"
# the loggers that log a failed task's stack trace at ERROR (quiet while a file is read: a
# malformed file is reported as an InputError)
_TASK_LOGGERS = ("org.apache.spark.executor.Executor", "org.apache.spark.scheduler.TaskSetManager")
_CSV_FIX = (
    "every line must have the header's columns, separated by commas, with text that holds"
    " commas or quotes in double quotes (a quote inside doubled)"
)


class SparkLander:
    """Steps 5 and 6 of `retail_segments.ops.inputs.land_file` on a SparkSession (see the module
    docstring); `retail_segments.ops.inputs.Lander`."""

    engine = "spark"

    def __init__(self, session: SparkSession) -> None:
        self.session = session

    def land(
        self, path: Path, source: TextSource, names: list[str], sha256: str, target: Path
    ) -> tuple[int, datetime | None, datetime | None]:
        _refuse_a_last_field_ending_in_cr(path, source)
        readable = _codec_named(source, target)
        try:
            with _quiet_task_failures(self.session):
                try:
                    lines = _read_lines(self.session, readable, source.encoding, names)
                    lines = lines.persist()
                except Exception as error:
                    if _QUOTE_ERROR in str(error):
                        raise _quote_error(path, source, error) from None
                    raise
            try:
                n_rows, first, last = check_values(lines, path, source, names)
                _write_typed(lines, path, sha256, target)
            finally:
                lines.unpersist()
        finally:
            if readable != source.path:
                readable.unlink(missing_ok=True)
        return n_rows, first, last


# a carriage return, a quote, then the line's end: a quoted last field whose text ends in CR
# (inside quotes, a quote before a line end closes the field; it cannot open one after a CR)
_CR_ENDING_LAST_FIELD = re.compile(rb'\r"\r?\n')
_CR_ENDING_LAST_LINE = re.compile(rb'\r"\r?\Z')


def _cr_ending_error(path: Path, source: TextSource, line: int) -> InputError:
    return InputError(
        path,
        "has a quoted last field whose text ends in a carriage return (CR)",
        [
            f"first on {place_of_line(source.path, line)}: Spark's reader cannot tell it from"
            " the CR of a CRLF line end, and the value would lose it"
        ],
        "remove the CR at the end of the field (most editors do not show it), or build on"
        " DuckDB, which keeps it",
    )


def _refuse_a_last_field_ending_in_cr(path: Path, source: TextSource) -> None:
    """Refuse a file with a quoted last field whose text ends in a carriage return: Spark reads
    records to LF and takes the CR of a CRLF line end off the last column after parsing, where a
    CR inside its quotes looks the same, so the value would lose it (DuckDB keeps it). One pass
    over the text, as read; the line named is where the field ends."""
    newlines, carry = 0, b""
    for chunk in source_chunks(source):
        text = carry + chunk
        found = _CR_ENDING_LAST_FIELD.search(text)
        if found:
            line = newlines - carry.count(b"\n") + text.count(b"\n", 0, found.start()) + 1
            raise _cr_ending_error(path, source, line)
        newlines += chunk.count(b"\n")
        carry = text[-3:]
    if _CR_ENDING_LAST_LINE.search(carry):  # the last line, without a line break after it
        raise _cr_ending_error(path, source, newlines + 1)


@contextmanager
def _quiet_task_failures(session: SparkSession) -> Iterator[None]:
    """Keep Spark from logging the stack trace of the task that stops at malformed quoting
    (reported as an `InputError` instead); the loggers' levels are restored after."""
    jvm: Any = getattr(session.sparkContext, "_jvm", None)
    if jvm is None:  # pragma: no cover - a session always has its JVM in local mode
        yield
        return
    log4j = jvm.org.apache.logging.log4j
    levels = {name: log4j.LogManager.getLogger(name).getLevel() for name in _TASK_LOGGERS}
    try:
        for name in _TASK_LOGGERS:
            log4j.core.config.Configurator.setLevel(name, log4j.Level.OFF)
        yield
    finally:
        for name, level in levels.items():
            log4j.core.config.Configurator.setLevel(name, level)


def _codec_named(source: TextSource, target: Path) -> Path:
    """The text under a name whose ending selects Hadoop's codec (a symlink beside target when
    the file's own name does not, e.g. ``.csv.zstd``)."""
    suffix = _CODEC_SUFFIX[source.compression]
    if source.path.name.lower().endswith(suffix):
        return source.path
    link = target.with_name(f".{target.stem}.{uuid.uuid4().hex[:8]}{suffix}")
    link.symlink_to(source.path)
    return link


def _read_lines(session: SparkSession, path: Path, encoding: str, names: list[str]) -> DataFrame:
    """The file's data lines, every column a string (empty: NULL) under our names in file order,
    with ``file_row_number`` (1 = the first data line) and ``_bad_fields`` (the line has more
    or fewer fields than the header)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    schema = StructType([StructField(name, StringType()) for name in [*names, _EXTRA]])
    raw = (
        session.read.schema(schema)
        .options(
            header=True,
            encoding="UTF-8" if encoding == "utf-8" else "ISO-8859-1",
            quote='"',
            escape='"',
            mode="PERMISSIVE",
            # a quoted field may hold line breaks, as on DuckDB (a record is not a line). The
            # file is then read by one task: a compressed file is anyway, and a plain one up to
            # 128 MB too (a larger plain file loses its splits). Measured on 551,680 lines
            # (42.6 MB, local[2]): zstd 11.4 s before, 11.6 s with it; plain 10.7 s, 9.2 s.
            multiLine=True,
            # records end at LF only, so CR and CRLF inside a quoted field stay as written
            # (with the separator detected, a CRLF file's CRLF inside quotes would read as LF);
            # the CR of a CRLF line end is taken off the last column below
            lineSep="\n",
            # a quote inside a quoted field that is not doubled, or text after a closing quote,
            # stops the read (`_QUOTE_ERROR`), as DuckDB's strict reader refuses it, instead of
            # reading the field unquoted (which could swallow the lines up to the next quote)
            unescapedQuoteHandling="RAISE_ERROR",
            # a missing trailing field reads as NULL, an empty one as '' (told apart here)
            nullValue="\u0001",
            emptyValue="",
            ignoreLeadingWhiteSpace=False,
            ignoreTrailingWhiteSpace=False,
        )
        .csv(str(path))
    )
    # position in the file: the row's index inside its partition plus the rows of the earlier
    # partitions (the partition id is in the id's upper bits)
    numbered = raw.withColumn("_id", F.monotonically_increasing_id()).withColumn(
        "_part", F.spark_partition_id()
    )
    counts = numbered.groupBy("_part").count().collect()
    offsets, total = {}, 0
    for row in sorted(counts, key=lambda row: row["_part"]):
        offsets[row["_part"]] = total
        total += row["count"]
    offset = F.lit(0)
    for part, start in offsets.items():
        offset = F.when(F.col("_part") == part, F.lit(start)).otherwise(offset)
    in_part = F.col("_id").bitwiseAND(F.lit((1 << 33) - 1))
    bad_fields = F.col(_EXTRA).isNotNull() | F.col(names[-1]).isNull()
    columns = {name: F.col(name) for name in names}
    # a CRLF line end leaves its CR on the last column (a quoted last field ending in CR would
    # lose it too: the two cannot be told apart after parsing, so such a file was refused)
    last = columns[names[-1]]
    columns[names[-1]] = F.when(
        last.endswith("\r"), last.substr(F.lit(1), F.length(last) - 1)
    ).otherwise(last)
    cleaned = [
        F.when(column == "", None).otherwise(column).alias(name) for name, column in columns.items()
    ]
    return numbered.select(
        (offset + in_part + 1).cast("bigint").alias(_ROW),
        bad_fields.alias("_bad_fields"),
        *cleaned,
    )


def _line_text(source: TextSource, line: int) -> str:
    """Line ``line`` (1 = the header) of the text, as written."""
    for number, text in enumerate(text_lines(source), start=1):
        if number == line:
            return text.rstrip(b"\r").decode(source.encoding, errors="replace")
    return ""


def _quote_error(path: Path, source: TextSource, error: Exception) -> InputError:
    """The `InputError` for a file whose quoting Spark's reader refused (`_QUOTE_ERROR`): the
    first malformed record's line, found again in Python."""
    line = next((line for line, bad in records(source) if bad), None)
    details = ["a quoted field is not closed, or a quote inside it is not doubled"]
    if line is not None:
        details.append(f"Line {line}: {_line_text(source, line)!r}")
    else:
        said = str(error).split(_QUOTE_ERROR, 1)[1].split("Cannot parse", 1)[0]
        details.append(f"Spark's CSV reader says:{said.rstrip()}")
    return InputError(path, "is not a well-formed CSV", details, _CSV_FIX)


def check_values(
    lines: DataFrame, path: Path, source: TextSource, names: list[str]
) -> tuple[int, datetime | None, datetime | None]:
    """Check the CSV structure and every `SPARK_VALUE_CHECKS` in one aggregation; return the
    number of data rows and the first and last InvoiceDate, or raise `InputError` like
    `retail_segments.ops.inputs.check_values`."""
    lines.createOrReplaceTempView("retail_raw_text_lines")
    aggregates = [
        "count(*) as n_rows",
        "count(*) filter (where _bad_fields) as bad_fields",
        f"min({_ROW}) filter (where _bad_fields) as bad_fields_row",
        f"min({_CHECKED_DATE}) as first_invoice_at",
        f"max({_CHECKED_DATE}) as last_invoice_at",
    ]
    for index, (column, _problem, condition) in enumerate(SPARK_VALUE_CHECKS):
        flag = f"not _bad_fields and coalesce({condition}, false)"
        aggregates += [
            f"count(*) filter (where {flag}) as bad_{index}",
            f"min({_ROW}) filter (where {flag}) as line_{index}",
            f"min_by({column}, {_ROW}) filter (where {flag}) as value_{index}",
        ]
    session = lines.sparkSession
    row = session.sql(f"select {', '.join(aggregates)} from retail_raw_text_lines").collect()[0]
    n_rows = int(row["n_rows"])
    if row["bad_fields"]:
        bad_row = int(row["bad_fields_row"])
        line = lines_of_rows(source, {bad_row})[bad_row]
        raise InputError(
            path,
            "is not a well-formed CSV",
            [
                f"{row['bad_fields']} line(s) do not have the header's {len(names)} fields",
                f"Line {line}: {_line_text(source, line)!r}",
            ],
            _CSV_FIX,
        )
    firsts = {
        index: int(row[f"line_{index}"])
        for index in range(len(SPARK_VALUE_CHECKS))
        if row[f"bad_{index}"]
    }
    places = places_of_rows(source, set(firsts.values()))
    problems = [
        bad_values_detail(
            column, problem, row[f"bad_{index}"], places[firsts[index]], row[f"value_{index}"]
        )
        for index, (column, problem, _condition) in enumerate(SPARK_VALUE_CHECKS)
        if row[f"bad_{index}"]
    ]
    if problems:
        raise InputError(
            path, "has values that would not load exactly as written", problems, _VALUE_FIX
        )
    return n_rows, _naive(row["first_invoice_at"]), _naive(row["last_invoice_at"])


def _naive(value: datetime | None) -> datetime | None:
    """A timestamp collected from Spark (local time of this process) as naive UTC; None (a file
    with only its header) stays None."""
    from datetime import UTC

    if value is None:
        return None
    if value.tzinfo is None:
        value = value.astimezone()
    return value.astimezone(UTC).replace(tzinfo=None)


def _write_typed(lines: DataFrame, path: Path, sha256: str, target: Path) -> None:
    """Write the typed rows (the DuckDB landing's columns) as the one Parquet file target."""
    from pyspark.sql import functions as F

    typed = [F.expr(expression).alias(column) for column, expression in TYPED_COLUMNS.items()]
    staged = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.dir")
    try:
        (
            lines.select(
                F.col(_ROW),
                *typed,
                F.lit(str(path)).alias("source_file"),
                F.lit(sha256).alias("source_sha256"),
            )
            .coalesce(1)
            .write.option("compression", "zstd")
            .parquet(str(staged))
        )
        parts = sorted(staged.glob("part-*.parquet"))
        if len(parts) != 1:
            raise RuntimeError(f"Spark wrote {len(parts)} Parquet files for {path}, not one")
        os.replace(parts[0], target)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
