"""Raw input files: identified by their content, checked byte for byte, parsed exactly, landed as
typed Parquet before dbt reads anything.

Every file a build reads (the raw export and each incoming daily file) goes through `land_file`:

1. **Identity.** The SHA-256 of the file's bytes (with its size and modification time).
2. **Container.** The first bytes decide what the file is (zstd, gzip, zip, plain text); the
   name's extension must say the same (``.csv.zst``, ``.csv.gz``, ``.csv``, ``.zip``, ``.xlsx``).
3. **Whole bytes.** A compressed file is decompressed to its very end: a truncated stream, a
   failed checksum (zstd's XXH64 when the frame has one, gzip's and zip's CRC-32) or trailing
   bytes that are not a frame stop here. The same pass decides the text's **encoding**: valid
   UTF-8 (with or without a byte-order mark) is read as UTF-8; otherwise the file must be latin-1
   (ISO-8859-1, as the UCI CSV is), and bytes 0x80-0x9F (control characters in latin-1, letters
   in Windows-1252) are refused rather than guessed. A file that holds UTF-8 characters and also
   bytes that are not UTF-8 (two encodings mixed) is refused: read as latin-1, its UTF-8
   characters would load as mojibake. UTF-16/32, NUL bytes and lines ended by CR alone are
   refused, and so is a quoted field with text outside its quotes (`_TextOutsideQuotes`), which
   CSV readers read differently.
4. **Columns by name.** The header is parsed and matched by name, in any order, to the Online
   Retail layout (`RAW_COLUMNS`) or to the Online Retail II layout (`ONLINE_RETAIL_II_COLUMNS`,
   mapped to the same names). Missing, unexpected or repeated names stop with the expected header.
5. **Exact values.** DuckDB reads every field as text (no sniffing, strict CSV), then one scan
   checks each column against its declared type (`VALUE_CHECKS`): integers are whole numbers in
   the INTEGER range (``1.5`` is refused, never rounded), prices are finite decimals with at most
   15 significant digits (so a double holds them exactly as written), dates are ``M/D/YYYY H:MM``
   or ISO ``YYYY-MM-DD HH:MM[:SS]`` with a four-digit year, customer ids are whole numbers
   (``17850`` or ``17850.0``) or empty, and invoice, stock code and country are not empty.
6. **Landing.** The typed rows, with their position in the file (``file_row_number``), the file's
   path and its SHA-256, are written to ``<landing>/cache/<key>.parquet`` (written under a
   temporary name, renamed when complete). The file is keyed by content, path, the engine and
   the landing rules (`landing_rules`: a hash of the code that checks and lands it), so an
   unchanged file is landed once and reused by later builds of the same code, and checked again
   by every version whose checks differ.

Steps 1-4 read bytes in Python, whatever the engine. Steps 5-6 are a `Lander`: `DuckDBLander`
(here) for the DuckDB build, ``retail_segments.spark.inputs.SparkLander`` for the Spark build (the
same checks in Spark SQL, the same messages, a Parquet file Spark reads as ``timestamp``).

Excel workbooks (the UCI download: ``online+retail.zip`` holding ``Online Retail.xlsx``, or the
``.xlsx`` itself; also Online Retail II's two sheets) are first converted to a UTF-8 CSV in the
cache (openpyxl, read-only, every sheet in order) and then go through the same checks. A formula
loads the value Excel stored beside it; a formula without one (a workbook written by a script and
never saved by Excel or LibreOffice) is refused, naming its cell, since openpyxl would read it as
an empty cell. A hidden (or very hidden) sheet that holds data is refused: its rows are not seen in
Excel, and loading them or leaving them out would both be silent. Empty sheets are skipped.

Any failure raises `InputError`, whose message names the file, the problem, the line and value
where there is one, and the fix.
"""

from __future__ import annotations

import codecs
import csv
import functools
import gzip
import hashlib
import io
import json
import os
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any, BinaryIO, Protocol

import duckdb
import zstandard

RAW_COLUMNS: tuple[str, ...] = (
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
)
# Online Retail II (UCI id 502): its header name -> ours.
ONLINE_RETAIL_II_COLUMNS: dict[str, str] = {
    "Invoice": "InvoiceNo",
    "StockCode": "StockCode",
    "Description": "Description",
    "Quantity": "Quantity",
    "InvoiceDate": "InvoiceDate",
    "Price": "UnitPrice",
    "Customer ID": "CustomerID",
    "Country": "Country",
}
LAYOUTS: dict[str, dict[str, str]] = {
    "online_retail": {name: name for name in RAW_COLUMNS},
    "online_retail_ii": ONLINE_RETAIL_II_COLUMNS,
}
CHUNK_BYTES = 1 << 20
MAX_HEADER_BYTES = 64 * 1024
MAX_SIGNIFICANT_DIGITS = 15
_C1_BYTES = bytes(range(0x80, 0xA0))
# a UTF-8 lead byte followed by a continuation byte: where a UTF-8 character may start
_UTF8_PAIR = re.compile(rb"[\xC2-\xF4][\x80-\xBF]")


def _first_utf8_character(chunk: bytes) -> tuple[int, str] | None:
    """The offset and text of the first multi-byte UTF-8 character in ``chunk``, or None."""
    for match in _UTF8_PAIR.finditer(chunk):
        start = match.start()
        for length in (2, 3, 4):
            try:
                return start, chunk[start : start + length].decode("utf-8")
            except UnicodeDecodeError:
                continue
    return None


def _check_line_ends(path: Path, header: bytes) -> None:
    """Refuse a file whose lines end with CR alone (classic Mac OS, Excel's "CSV (Macintosh)"):
    a CR inside the first line, before its end."""
    if b"\r" in header.rstrip(b"\r"):
        raise InputError(
            path,
            "ends its lines with a carriage return alone (CR, as classic Mac OS and Excel's"
            " 'CSV (Macintosh)' write)",
            ["the first line runs on past its first CR"],
            "save it as CSV with LF or CRLF line ends (Excel: 'CSV UTF-8' or 'CSV (Comma"
            " delimited)'), then build again",
        )


_QUOTE, _COMMA, _LF = ord('"'), ord(","), ord("\n")
_BLANK_BYTES = (ord(" "), ord("\t"))
_FIELD_ENDS = (_COMMA, _LF, ord("\r"))


class _TextOutsideQuotes:
    """Finds the first quoted field with text outside its quotes: a blank (space or tab) between
    the comma or line start and the opening quote (``1, "a b",2``), or anything but a comma or a
    line end after the closing quote (``1,"a b" ,2``, ``1,"a"b,2``). Readers disagree on such a
    field: DuckDB's drops one space before an opening quote and blanks after a closing one (so
    the value loses its quotes and blanks), Python's csv module and Spark keep them. Fed the text
    chunk by chunk, it follows the quoting as a CSV reader does: a quote opens a field only at
    the field's start, inside a quoted field ``""`` is a quote and any other quote closes it, and
    commas and line breaks inside quotes are text; a quote inside an unquoted field (``12" TAPE``)
    is a character of it, as every reader takes it."""

    def __init__(self) -> None:
        self.in_quotes = False
        self.quote_ends_chunk: int | None = None  # the line of a quote in quotes ending a chunk
        self.last_nonblank = _LF  # the text starts as a line does
        self.ends_blank = False
        self.found: tuple[int, str, bytes] | None = None  # line, what, excerpt

    def feed(self, chunk: bytes, newlines: int) -> None:
        if self.found is not None or not chunk:
            return
        quote = chunk.find(b'"', self._carry(chunk))
        while quote >= 0 and self.found is None:
            # the line is counted only for a finding: counting it per quote is quadratic
            line = functools.partial(_line_of, newlines, chunk, quote)
            if not self.in_quotes:
                self._at_opening(chunk, quote, line)
            elif quote + 1 == len(chunk):
                self.quote_ends_chunk = line()  # the next chunk's first byte tells
            elif chunk[quote + 1] == _QUOTE:  # a quote inside the field
                quote += 1
            else:
                self._after_closing(chunk, quote + 1, line)
            quote = chunk.find(b'"', quote + 1)
        end = len(chunk)
        while end > 0 and chunk[end - 1] in _BLANK_BYTES:
            end -= 1
        self.ends_blank = end < len(chunk)
        if end > 0:
            self.last_nonblank = chunk[end - 1]

    def _carry(self, chunk: bytes) -> int:
        """Settle a quote that ended the chunk before; return where this chunk's quotes start."""
        if self.quote_ends_chunk is None:
            return 0
        line, self.quote_ends_chunk = self.quote_ends_chunk, None
        if chunk[0] == _QUOTE:
            return 1  # the two quotes are a quote inside the field
        self._after_closing(chunk, 0, lambda: line)
        return 0

    def _after_closing(self, chunk: bytes, index: int, line: Callable[[], int]) -> None:
        self.in_quotes = False
        if chunk[index] not in _FIELD_ENDS:
            # the line up to the closing quote, and what follows it on that line
            head = chunk[max(0, index - 40) : index].rsplit(b"\n", 1)[-1]
            tail = chunk[index : index + 10].split(b"\n", 1)[0].rstrip(b"\r")
            self.found = (line(), "text after the closing quote", head + tail)

    def _at_opening(self, chunk: bytes, quote: int, line: Callable[[], int]) -> None:
        start = quote
        while start > 0 and chunk[start - 1] in _BLANK_BYTES:
            start -= 1
        before = chunk[start - 1] if start > 0 else self.last_nonblank
        if before not in (_COMMA, _LF):
            return  # a quote inside an unquoted field is a character of it
        if start < quote or (start == 0 and self.ends_blank):
            excerpt = chunk[start : quote + 40].split(b"\n", 1)[0].rstrip(b"\r")
            self.found = (line(), "a space or tab before the opening quote", excerpt)
        else:
            self.in_quotes = True


# A raw file without data lines (both engines say the same). A daily file with only its header
# is a day without sales and is accepted (land_file's allow_empty).
EMPTY_FILE_PROBLEM = "holds no data lines (only a header)"
EMPTY_FILE_FIX = (
    "export the file again with its lines (the raw file must hold the sales to build on)"
)
SUFFIX_CONTAINERS: dict[str, str] = {
    ".csv.zst": "zstd",
    ".csv.zstd": "zstd",
    ".csv.gz": "gzip",
    ".csv": "plain",
    ".zip": "zip",
    ".xlsx": "xlsx",
}
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x1f\x8b", "gzip"),
    (b"PK\x03\x04", "zip"),
)
_CONTAINER_WORDS = {
    "zstd": "zstd-compressed",
    "gzip": "gzip-compressed",
    "zip": "a zip archive (or an Excel workbook)",
    "plain": "plain text",
    "xlsx": "an Excel workbook",
}
_FORMAT_FIX = (
    "give the file the name its contents have (.csv.zst for zstd, .csv.gz for gzip, .csv for"
    " plain text, .zip or .xlsx for the UCI download), or export it again"
)


class InputError(ValueError):
    """An input file that cannot be loaded exactly as written. ``role`` names the file in the
    message: the raw data file, or a daily file (`as_daily_file`)."""

    def __init__(
        self,
        path: Path | str,
        problem: str,
        details: Sequence[str] = (),
        fix: str = "",
        role: str = "Raw data file",
    ):
        self.path = str(path)
        self.problem = problem
        self.details = tuple(details)
        self.fix = fix
        self.role = role
        lines = [f"{role} '{self.path}' {problem}; nothing was built or replaced."]
        lines += [f"  {detail}" for detail in self.details]
        if fix:
            lines.append(f"  Fix: {fix}.")
        super().__init__("\n".join(lines))

    def as_daily_file(self) -> InputError:
        """The same error, naming the file as a daily file."""
        return InputError(self.path, self.problem, self.details, self.fix, role="Daily file")


@dataclass(frozen=True)
class LandedFile:
    """One input file as checked and landed.

    ``path`` is the file as the user named it (absolute); ``parquet`` the typed rows in the landing
    cache; ``container`` zstd, gzip, plain, zip or xlsx; ``encoding`` utf-8 or latin-1 (of the text
    that was parsed); ``layout`` online_retail or online_retail_ii; ``first_invoice_at`` and
    ``last_invoice_at`` the range of InvoiceDate (None for a daily file with only its header).
    """

    path: Path
    sha256: str
    size_bytes: int
    mtime_ns: int
    container: str
    encoding: str
    layout: str
    n_rows: int
    first_invoice_at: datetime | None
    last_invoice_at: datetime | None
    parquet: Path
    reused: bool = False

    @property
    def read_as(self) -> str:
        """What the summary says was read: "Excel workbook" for a workbook, alone or in a zip
        (converted here to UTF-8 text, whose encoding says nothing of the user's file), else
        the text's encoding."""
        if self.container == "xlsx" or _rows_file(self.parquet.with_suffix(".csv")).exists():
            return "Excel workbook"
        return self.encoding


@dataclass(frozen=True)
class TextSource:
    """The text a lander parses: ``path`` (the file itself, or the CSV an Excel download was
    converted to), its ``encoding`` (utf-8 or latin-1) and ``compression`` (zstd, gzip or none)."""

    path: Path
    encoding: str
    compression: str


class Lander(Protocol):
    """Steps 5 and 6 of `land_file` on one engine: check every value of a file whose header
    was matched (``names``: our column name of each column, in file order), then write its typed
    rows to ``target``. ``engine`` is part of the landed file's cache key."""

    engine: str

    def land(
        self, path: Path, source: TextSource, names: list[str], sha256: str, target: Path
    ) -> tuple[int, datetime | None, datetime | None]:
        """Check and land; return the number of data rows and the first and last InvoiceDate
        (None when the file has only its header). Raises `InputError` naming the file
        (``path``, as the user named it)."""
        ...


@dataclass(frozen=True)
class _TextFacts:
    encoding: str
    header: bytes
    n_bytes: int
    # a quoted field with text outside its quotes (`_TextOutsideQuotes.found`): refused once the
    # lander has read the file, so that a malformed CSV gets its reader's message instead
    outside_quotes: tuple[int, str, bytes] | None = None


# ---------------------------------------------------------------------------------------------
# 1-2. identity and container
# ---------------------------------------------------------------------------------------------


def file_sha256(path: Path) -> str:
    """Return the hex SHA-256 of the file's bytes (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def declared_container(path: Path) -> str:
    """Return the container the file's name declares (see `SUFFIX_CONTAINERS`); raise
    `InputError` for a name with none of those endings."""
    name = path.name.lower()
    for suffix, container in SUFFIX_CONTAINERS.items():
        if name.endswith(suffix):
            return container
    raise InputError(
        path,
        "has a name ending this product does not read",
        [f"supported endings: {', '.join(SUFFIX_CONTAINERS)}"],
        "rename the file to one of these endings (the one its contents have)",
    )


def sniff_container(path: Path) -> str:
    """Return what the file's first bytes say it is: zstd, gzip, zip, or plain (anything else)."""
    with path.open("rb") as handle:
        head = handle.read(4)
    for magic, container in _MAGIC:
        if head.startswith(magic):
            return container
    return "plain"


def check_container(path: Path) -> str:
    """Return the file's container when its name and contents agree; raise `InputError`
    otherwise (e.g. a gzip file named ``.csv.zst``)."""
    declared = declared_container(path)
    found = sniff_container(path)
    expected = "zip" if declared == "xlsx" else declared
    if found != expected:
        raise InputError(
            path,
            f"is {_CONTAINER_WORDS[found]} but its name says {_CONTAINER_WORDS[declared]}",
            fix=_FORMAT_FIX,
        )
    return declared


# ---------------------------------------------------------------------------------------------
# 3. whole bytes and encoding
# ---------------------------------------------------------------------------------------------


def _zstd_chunks(path: Path) -> Iterator[bytes]:
    """Decompress every zstd frame of the file to its end; raise `InputError` when a frame is
    truncated, fails its checksum, or bytes after the last frame are not a frame."""
    decompressor = zstandard.ZstdDecompressor()
    with path.open("rb") as handle:
        frame = decompressor.decompressobj()
        pending = b""
        while True:
            data = pending or handle.read(CHUNK_BYTES)
            pending = b""
            if not data:
                break
            try:
                out = frame.decompress(data)
            except zstandard.ZstdError as error:
                raise InputError(
                    path,
                    "is damaged: its zstd data does not decompress",
                    [f"zstd says: {error}"],
                    "copy or download the file again",
                ) from error
            if out:
                yield out
            if frame.eof:
                pending = frame.unused_data
                frame = decompressor.decompressobj()
                if pending and not pending.startswith(b"\x28\xb5\x2f\xfd"):
                    raise InputError(
                        path,
                        "is damaged: bytes follow the end of its zstd data",
                        fix="copy or download the file again",
                    )
                if not pending:
                    pending = handle.read(CHUNK_BYTES)
                    if not pending:
                        return
        if not frame.eof:
            raise InputError(
                path,
                "is truncated: its zstd data ends in the middle of a frame",
                fix="copy or download the whole file again",
            )


def _gzip_chunks(path: Path) -> Iterator[bytes]:
    try:
        with gzip.open(path, "rb") as handle:
            while chunk := handle.read(CHUNK_BYTES):
                yield chunk
    except EOFError as error:
        raise InputError(
            path,
            "is truncated: its gzip data ends before the end-of-stream marker",
            fix="copy or download the whole file again",
        ) from error
    except (OSError, zlib.error) as error:
        raise InputError(
            path,
            "is damaged: its gzip data does not decompress",
            [f"gzip says: {error}"],
            "copy or download the file again",
        ) from error


def _plain_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            yield chunk


def text_chunks(path: Path, container: str) -> Iterator[bytes]:
    """The file's decompressed bytes, in chunks, checked to the end (zstd, gzip or plain)."""
    if container == "zstd":
        return _zstd_chunks(path)
    if container == "gzip":
        return _gzip_chunks(path)
    return _plain_chunks(path)


def _line_of(prefix_newlines: int, chunk: bytes, offset: int) -> int:
    return prefix_newlines + chunk.count(b"\n", 0, offset) + 1


def scan_text(path: Path, chunks: Iterator[bytes]) -> _TextFacts:
    """Read the whole text once: decide its encoding (see the module docstring) and keep its
    header line. Raises `InputError` for UTF-16/32, NUL bytes and latin-1 control bytes."""
    utf8 = codecs.getincrementaldecoder("utf-8")()
    is_utf8 = True
    first_invalid: tuple[int, int] | None = None  # line, byte
    first_utf8: tuple[int, str] | None = None  # line, character
    first_c1: tuple[int, int] | None = None
    header = b""
    header_done = False
    outside_quotes = _TextOutsideQuotes()
    newlines = 0
    n_bytes = 0
    first = True
    for chunk in chunks:
        if first:
            first = False
            for bom, name in (
                (codecs.BOM_UTF32_LE, "UTF-32"),
                (codecs.BOM_UTF32_BE, "UTF-32"),
                (codecs.BOM_UTF16_LE, "UTF-16"),
                (codecs.BOM_UTF16_BE, "UTF-16"),
            ):
                if chunk.startswith(bom):
                    raise InputError(
                        path,
                        f"is {name} text, which this product does not read",
                        fix="save it as UTF-8 or latin-1 (ISO-8859-1) CSV",
                    )
        nul = chunk.find(b"\x00")
        if nul >= 0:
            raise InputError(
                path,
                "is not a text CSV: it holds NUL bytes",
                [f"first on line {_line_of(newlines, chunk, nul)}"],
                "export it again as a UTF-8 or latin-1 CSV (not UTF-16, not a binary format)",
            )
        if not header_done:
            end = chunk.find(b"\n")
            header += chunk if end < 0 else chunk[:end]
            header_done = end >= 0
            if len(header) > MAX_HEADER_BYTES:
                _check_line_ends(path, header)
                raise InputError(
                    path,
                    "does not start with a header line",
                    [f"no line break in its first {MAX_HEADER_BYTES} bytes"],
                    f"the first line must be the header {','.join(RAW_COLUMNS)}",
                )
        if is_utf8:
            try:
                utf8.decode(chunk)
            except UnicodeDecodeError as error:
                is_utf8 = False
                index = min(error.start, len(chunk) - 1)
                first_invalid = (_line_of(newlines, chunk, index), error.object[error.start])
        if first_utf8 is None:
            found = _first_utf8_character(chunk)
            if found is not None:
                first_utf8 = (_line_of(newlines, chunk, found[0]), found[1])
        if first_c1 is None and len(chunk.translate(None, _C1_BYTES)) < len(chunk):
            index = min(i for i in (chunk.find(bytes([c])) for c in _C1_BYTES) if i >= 0)
            first_c1 = (_line_of(newlines, chunk, index), chunk[index])
        outside_quotes.feed(chunk, newlines)
        newlines += chunk.count(b"\n")
        n_bytes += len(chunk)
    if is_utf8:
        try:
            utf8.decode(b"", final=True)
        except UnicodeDecodeError as error:
            is_utf8 = False
            first_invalid = (newlines + 1, error.object[error.start])
    if n_bytes == 0:
        raise InputError(
            path,
            "is empty: no header line and no data lines",
            fix="export or copy it again (an empty file is most often an export or copy that"
            " failed); a daily file for a day without sales holds the header line alone",
        )
    _check_line_ends(path, header)
    if not is_utf8 and first_utf8 is not None and first_invalid is not None:
        (utf8_line, character), (invalid_line, byte) = first_utf8, first_invalid
        raise InputError(
            path,
            "mixes two encodings: it holds UTF-8 characters and bytes that are not UTF-8",
            [
                f"line {utf8_line}: {character!r} is written in UTF-8",
                f"line {invalid_line}: byte 0x{byte:02X} is not UTF-8 (in latin-1 it is"
                f" {chr(byte)!r})",
                "read as latin-1, the UTF-8 characters would load as wrong letters",
            ],
            "save the whole file in one encoding (UTF-8), then build again",
        )
    if not is_utf8 and first_c1 is not None:
        line, byte = first_c1
        raise InputError(
            path,
            "is neither UTF-8 nor latin-1 text",
            [
                f"byte 0x{byte:02X} on line {line} is a control character in latin-1; the file "
                "is probably Windows-1252 or another code page, which would load as wrong letters"
            ],
            "save it as UTF-8 (or latin-1) CSV",
        )
    return _TextFacts("utf-8" if is_utf8 else "latin-1", header, n_bytes, outside_quotes.found)


def _outside_quotes_error(path: Path, line: int, what: str, excerpt: bytes) -> InputError:
    return InputError(
        path,
        "has a quoted field with text outside its quotes",
        [
            f"line {line}: {what}: {excerpt.decode('utf-8', 'replace')!r}",
            "CSV readers disagree on such a field (DuckDB's drops blanks and the quotes around"
            " the value, Python's csv module and Spark keep them), so its value as read would"
            " not be as written",
        ],
        "write each quoted field as the whole field, from the comma before it to the comma after"
        " it (remove the blanks outside the quotes, or move them inside if they belong to the"
        " value), or export the file again",
    )


# ---------------------------------------------------------------------------------------------
# 4. columns by name
# ---------------------------------------------------------------------------------------------


def parse_header(path: Path, facts: _TextFacts) -> list[str]:
    """Return the header's column names, decoded with the file's encoding (byte-order mark and
    line end removed)."""
    text = facts.header.decode(facts.encoding).removeprefix("\ufeff").rstrip("\r")
    return next(csv.reader([text]), [])


def map_header(path: Path, names: Sequence[str]) -> tuple[str, list[str]]:
    """Match the header by name to one of `LAYOUTS`; return the layout and our column name for
    each column in file order. Raises `InputError` with the expected header otherwise."""
    repeated = sorted({name for name in names if names.count(name) > 1})
    for layout, mapping in LAYOUTS.items():
        if not repeated and len(names) == len(mapping) and set(names) == set(mapping):
            return layout, [mapping[name] for name in names]
    # compared with the layout the header is closest to (Online Retail II's when it shares more
    # of its names), so its "missing" names what that layout lacks
    closest = max(LAYOUTS.values(), key=lambda mapping: len(set(names) & set(mapping)))
    expected = list(closest)
    missing = [name for name in expected if name not in names]
    # a column without a name (a spreadsheet's empty columns after the last) is named by place
    unexpected = [
        name if name.strip() else f"(no name, column {number})"
        for number, name in enumerate(names, start=1)
        if name not in expected
    ]
    details = [
        f"missing: {', '.join(missing) or 'none'}",
        f"unexpected: {', '.join(unexpected) or 'none'}",
    ]
    # columns without a name are listed by place above, not as one repeated name
    named_repeats = [name for name in repeated if name.strip()]
    if named_repeats:
        details.append(f"repeated: {', '.join(named_repeats)}")
    details += [
        f"found header: {','.join(names)}",
        f"expected header (any order): {','.join(RAW_COLUMNS)}",
        f"or the Online Retail II header: {','.join(ONLINE_RETAIL_II_COLUMNS)}",
    ]
    unnamed = any(not name.strip() for name in names)
    raise InputError(
        path,
        "does not have the expected columns",
        details,
        "export the file with exactly these column names in its first line"
        + (" (delete the columns without a name)" if unnamed else ""),
    )


# ---------------------------------------------------------------------------------------------
# 5. exact values
# ---------------------------------------------------------------------------------------------

_MDY = r"[0-9]{1,2}/[0-9]{1,2}/[0-9]{4} [0-9]{1,2}:[0-9]{2}"
_ISO = r"[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}(:[0-9]{2})?"
_DECIMAL = r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?"
# below it a double loses digits (subnormal) or becomes 0
SMALLEST_NORMAL_DOUBLE = 2.2250738585072014e-308


def _trimmed(column: str) -> str:
    """A value as the checks and casts read it: trimmed of ' ' only, as Spark's trim() does
    (DuckDB's trim() alone also removes Unicode spaces: '6<no-break space>' landed as 6 here and
    was refused on Spark)."""
    return f"trim({column}, ' ')"


_SIGNIFICANT = (
    f"length(rtrim(ltrim(regexp_replace(regexp_replace(lower({_trimmed('UnitPrice')}), 'e.*$', ''),"
    " '[^0-9]', '', 'g'), '0'), '0'))"
)

# The typed value of each column, as landed. Only applied after VALUE_CHECKS passed, so every
# cast is exact.
TYPED_COLUMNS: dict[str, str] = {
    "InvoiceNo": "InvoiceNo",
    "StockCode": "StockCode",
    "Description": "Description",
    "Quantity": f"cast({_trimmed('Quantity')} as integer)",
    "InvoiceDate": (
        f"case when regexp_full_match({_trimmed('InvoiceDate')}, '{_MDY}')"
        f" then strptime({_trimmed('InvoiceDate')}, '%m/%d/%Y %H:%M')"
        f" else cast(replace({_trimmed('InvoiceDate')}, 'T', ' ') as timestamp) end"
    ),
    "UnitPrice": f"cast({_trimmed('UnitPrice')} as double)",
    "CustomerID": f"cast(split_part({_trimmed('CustomerID')}, '.', 1) as integer)",
    "Country": "Country",
}

# (column, what is wrong, SQL condition that flags a bad value). Checked in this order; a value
# is reported by its first failing check only.
VALUE_CHECKS: tuple[tuple[str, str, str], ...] = (
    ("InvoiceNo", "are empty (or blanks only)", f"coalesce({_trimmed('InvoiceNo')}, '') = ''"),
    ("StockCode", "are empty (or blanks only)", f"coalesce({_trimmed('StockCode')}, '') = ''"),
    ("Country", "are empty (or blanks only)", f"coalesce({_trimmed('Country')}, '') = ''"),
    (
        "Quantity",
        "are empty or not an integer (a whole number)",
        f"not coalesce(regexp_full_match({_trimmed('Quantity')}, '[+-]?[0-9]+'), false)",
    ),
    (
        "Quantity",
        "are outside the INTEGER range -2147483648..2147483647",
        f"regexp_full_match({_trimmed('Quantity')}, '[+-]?[0-9]+')"
        f" and try_cast({_trimmed('Quantity')} as integer) is null",
    ),
    (
        "UnitPrice",
        "are empty or not a number (a finite decimal such as 2.55)",
        f"not coalesce(regexp_full_match({_trimmed('UnitPrice')}, '{_DECIMAL}'), false)",
    ),
    (
        "UnitPrice",
        f"have more than {MAX_SIGNIFICANT_DIGITS} significant digits, which a double would round",
        f"regexp_full_match({_trimmed('UnitPrice')}, '{_DECIMAL}')"
        f" and {_SIGNIFICANT} > {MAX_SIGNIFICANT_DIGITS}",
    ),
    (
        "UnitPrice",
        "are too large for a double",
        f"regexp_full_match({_trimmed('UnitPrice')}, '{_DECIMAL}')"
        f" and not isfinite(try_cast({_trimmed('UnitPrice')} as double))",
    ),
    (
        "UnitPrice",
        "are too small for a double (they would load as 0 or rounded)",
        f"regexp_full_match({_trimmed('UnitPrice')}, '{_DECIMAL}') and {_SIGNIFICANT} > 0"
        f" and abs(try_cast({_trimmed('UnitPrice')} as double)) < {SMALLEST_NORMAL_DOUBLE!r}",
    ),
    (
        "InvoiceDate",
        "are empty or do not parse as M/D/YYYY H:MM (or YYYY-MM-DD HH:MM[:SS])",
        f"not coalesce((regexp_full_match({_trimmed('InvoiceDate')}, '{_MDY}')"
        f" and try_strptime({_trimmed('InvoiceDate')}, '%m/%d/%Y %H:%M') is not null)"
        f" or (regexp_full_match({_trimmed('InvoiceDate')}, '{_ISO}')"
        f" and try_cast(replace({_trimmed('InvoiceDate')}, 'T', ' ') as timestamp) is not null),"
        " false)",
    ),
    (
        "InvoiceDate",
        "have the hour 24 (write 00:00 of the next day)",
        f"regexp_full_match({_trimmed('InvoiceDate')}, '{_ISO}')"
        f" and substr({_trimmed('InvoiceDate')}, 12, 2) = '24'",
    ),
    (
        "InvoiceDate",
        "are before the year 1 (year 0000 is not a year of the calendar the product uses)",
        f"coalesce(try_strptime({_trimmed('InvoiceDate')}, '%m/%d/%Y %H:%M'),"
        f" try_cast(replace({_trimmed('InvoiceDate')}, 'T', ' ') as timestamp))"
        " < timestamp '0001-01-01'",
    ),
    (
        "CustomerID",
        "are not an integer (a whole number, or empty for no customer)",
        "CustomerID is not null"
        f" and not regexp_full_match({_trimmed('CustomerID')}, '[+-]?[0-9]+(\\.0*)?')",
    ),
    (
        "CustomerID",
        "are outside the INTEGER range -2147483648..2147483647",
        f"regexp_full_match({_trimmed('CustomerID')}, '[+-]?[0-9]+(\\.0*)?')"
        f" and try_cast(split_part({_trimmed('CustomerID')}, '.', 1) as integer) is null",
    ),
)

_VALUE_FIX = (
    "correct these values in the file (or export it again) so that every field is written as its"
    " column declares; the README's 'Pointing it at the data' shows the format"
)

# A date written day first, as Excel saves a CSV where the locale writes dates D/M/YYYY (the UK)
_DAY_FIRST = re.compile(r"([0-9]{1,2})/([0-9]{1,2})/([0-9]{4}) ([0-9]{1,2}):([0-9]{2})")


def day_first_reading(value: str) -> datetime | None:
    """``value`` read as a day-first date (``D/M/YYYY H:MM``, trimmed of ' '), or None when it is
    not one."""
    match = _DAY_FIRST.fullmatch(value.strip(" "))
    if match is None:
        return None
    day, month, year, hour, minute = (int(part) for part in match.groups())
    try:
        return datetime(year, month, day, hour, minute)
    except ValueError:
        return None


def bad_values_detail(column: str, problem: str, n_bad: int, place: str, value: str | None) -> str:
    """One line of a "values that would not load" message: the column, how many values, the
    problem, the first value and where it is. A date that only reads day first (``13/12/2011``)
    says so, since that is how a spreadsheet in a day-first locale re-saves the file."""
    shown = "empty" if value is None else f"'{value}'"
    detail = f"column {column}: {n_bad} value(s) {problem} (first on {place} of the file: {shown})"
    day_first = None if column != "InvoiceDate" or value is None else day_first_reading(value)
    if day_first is not None:
        detail += (
            f"; read day first it would be {day_first:%Y-%m-%d %H:%M}: the dates look written"
            " D/M/YYYY, as a spreadsheet set to a day-first locale (the UK's) saves them; export"
            " them as M/D/YYYY H:MM or YYYY-MM-DD HH:MM"
        )
    return detail


def _csv_relation_sql(names: Sequence[str]) -> str:
    """A read_csv call with every column read as text under our names, in file order. The path,
    encoding and compression are bound parameters ($path, $encoding, $compression)."""
    columns = ", ".join(f"'{name}': 'VARCHAR'" for name in names)
    return (
        "read_csv($path, header = true, auto_detect = false, delim = ',', quote = '\"',"
        " escape = '\"', strict_mode = true, encoding = $encoding,"
        f" compression = $compression, columns = {{{columns}}})"
    )


def _numbered_sql(names: Sequence[str]) -> str:
    # DuckDB keeps a file's order in a scan (insertion order is preserved), so the row number is
    # the line's position among the data lines.
    return f"select row_number() over () as file_row_number, * from {_csv_relation_sql(names)}"


def check_values(
    connection: duckdb.DuckDBPyConnection, path: Path, parameters: dict[str, str], names: list[str]
) -> int:
    """Run every `VALUE_CHECKS` over the file in one scan; return the number of data rows (0 for a
    file with only its header) or raise `InputError` listing, per failing check, how many values,
    the first line and its value."""
    flags = ", ".join(
        f"coalesce({condition}, false) as bad_{index}"
        for index, (_column, _problem, condition) in enumerate(VALUE_CHECKS)
    )
    aggregates = ["count(*) as n_rows"]
    for index, (column, _problem, _condition) in enumerate(VALUE_CHECKS):
        aggregates += [
            f"count(*) filter (where bad_{index}) as bad_{index}",
            f"min(file_row_number) filter (where bad_{index}) as line_{index}",
            f"arg_min({column}, file_row_number) filter (where bad_{index}) as value_{index}",
        ]
    sql = (
        f"with flagged as (select *, {flags} from ({_numbered_sql(names)}))"
        f" select {', '.join(aggregates)} from flagged"
    )
    row = _fetch_one(connection, path, sql, parameters)
    n_rows = int(row[0])
    failing = [
        (column, problem, *row[1 + 3 * index : 4 + 3 * index])
        for index, (column, problem, _condition) in enumerate(VALUE_CHECKS)
        if row[1 + 3 * index]
    ]
    # the line each first bad row starts on (a quoted field with line breaks spans lines, and the
    # reader skips empty lines): read again only for a refusal
    places = places_of_rows(_source_of(parameters), {int(first) for *_, first, _value in failing})
    problems = [
        bad_values_detail(column, problem, n_bad, places[int(first_row)], value)
        for column, problem, n_bad, first_row, value in failing
    ]
    if problems:
        raise InputError(
            path, "has values that would not load exactly as written", problems, _VALUE_FIX
        )
    return n_rows


def ambiguous_dates(
    path: Path, source: TextSource, before: datetime
) -> tuple[int, str, datetime, datetime] | None:
    """When every InvoiceDate of the text is ``M/D/YYYY H:MM`` with a day of 12 or less (so it
    also reads day first, ``D/M/YYYY``), some read month first (as the file is landed) lie before
    ``before`` and none does read day first: the first such data row (1 = the first data row), its
    text and its two readings, month first and day first. Else None (also for a file whose dates
    read one way only: ISO, or a day above 12)."""
    header = next(text_lines(source), b"").decode(source.encoding)
    names = next(csv.reader([header.removeprefix("\ufeff").rstrip("\r")]), [])
    _layout, columns = map_header(path, names)
    date = _trimmed("InvoiceDate")
    sql = f"""
        with readings as (
            select file_row_number, {date} as written,
                regexp_full_match({date}, '{_MDY}') as slashed,
                try_strptime({date}, '%m/%d/%Y %H:%M') as month_first,
                try_strptime({date}, '%d/%m/%Y %H:%M') as day_first
            from ({_numbered_sql(columns)})
        )
        select
            count(*) filter (
                where not coalesce(slashed and month_first is not null and day_first is not null,
                false)
            ),
            min(day_first),
            arg_min([cast(file_row_number as varchar), written], file_row_number)
                filter (where month_first < cast($before as timestamp))
        from readings
    """
    parameters = {
        "path": str(source.path),
        "encoding": source.encoding,
        "compression": source.compression,
    }
    with scratch_connection() as connection:
        unambiguous, earliest_day_first, early = _fetch_one(
            connection, path, sql, {**parameters, "before": before.isoformat(" ")}
        )
    if unambiguous or early is None or earliest_day_first < before:
        return None
    row, written = early
    day_first = day_first_reading(written)
    assert day_first is not None  # every date of the file reads day first
    return int(row), written, datetime.strptime(written.strip(" "), "%m/%d/%Y %H:%M"), day_first


def _fetch_one(
    connection: duckdb.DuckDBPyConnection, path: Path, sql: str, parameters: dict[str, str]
) -> tuple:
    try:
        rows = connection.execute(sql, parameters).fetchall()
    except duckdb.Error as error:
        raise _csv_error(path, error, _source_of(parameters)) from error
    return rows[0]


def _source_of(parameters: dict[str, str]) -> TextSource:
    """The text a `_csv_relation_sql` call with these parameters reads."""
    return TextSource(Path(parameters["path"]), parameters["encoding"], parameters["compression"])


_DUCKDB_LINE = re.compile(r"CSV Error on Line: (\d+)")


def _csv_error(path: Path, error: duckdb.Error, source: TextSource) -> InputError:
    """Turn DuckDB's CSV reader error into an `InputError` keeping DuckDB's own first lines
    (they name the line and show it), without its generic advice. DuckDB numbers records (an
    empty line counts as one, a record spanning lines as one): the number shown is the line in
    the file the record starts on (`duckdb_error_line`)."""
    kept = []
    for line in str(error).splitlines():
        if line.startswith(("Possible fixes", "* ", "  file=", "Possible Solution")):
            break
        if line.strip():
            numbered = _DUCKDB_LINE.search(line)
            if numbered:
                record = int(numbered.group(1))
                line = line.replace(
                    numbered.group(0), f"CSV Error on Line: {duckdb_error_line(source, record)}"
                )
            kept.append(line.strip())
    kept = kept[:4]
    if "state machine reached an invalid state" in str(error):
        kept.append(_line_ends_hint(path))
    return InputError(
        path,
        "is not a well-formed CSV",
        kept,
        "every line must have the header's columns, separated by commas, with text that holds"
        " commas or quotes in double quotes (a quote inside doubled)",
    )


def duckdb_error_line(source: TextSource, record: int) -> int:
    """The line (1 = the header) the record DuckDB's reader error numbers ``record`` starts on:
    DuckDB counts the header, every record and every empty line as one line each."""
    for number, (line, _bad) in enumerate(records(source, empty_lines=True), start=1):
        if number == record:
            return line
    return record


def _line_ends_hint(path: Path) -> str:
    """What DuckDB's "invalid state" most often means, with the file's line ends counted (a line
    break inside a quoted field counts too, so the counts are a hint)."""
    crlf = newlines = 0
    try:
        for chunk in text_chunks(path, sniff_container(path)):
            crlf += chunk.count(b"\r\n")
            newlines += chunk.count(b"\n")
    except (InputError, OSError, ValueError):
        pass  # not counted: the hint alone
    if 0 < crlf < newlines:
        return (
            f"the file's lines end in both CRLF ({crlf}) and LF alone ({newlines - crlf}), which"
            " DuckDB's reader does not take: save it again with one kind of line end"
        )
    return "DuckDB says this of a file whose lines end in both CRLF and LF"


# ---------------------------------------------------------------------------------------------
# 6. landing
# ---------------------------------------------------------------------------------------------


@functools.cache
def landing_rules(engine: str = "duckdb") -> str:
    """A hash of the code that checks and lands a file on engine: this module and, for Spark,
    its lander. A cached file landed by other code (a check added, a message or a type changed)
    is not reused, so no file escapes a check the running version makes."""
    modules = [Path(__file__)]
    if engine != "duckdb":
        modules.append(Path(__file__).parents[1] / engine / "inputs.py")
    digest = hashlib.sha256()
    for module in modules:
        digest.update(module.read_bytes())
    return digest.hexdigest()[:12]


def landing_key(sha256: str, path: Path, engine: str = "duckdb") -> str:
    """The cache name of a file's landed Parquet: its content hash, a hash of its path (the path
    is a column of the landed rows), the landing rules and, for another engine than DuckDB, the
    engine (each engine lands its own file)."""
    return f"{_file_key(sha256, path)}-r{landing_rules(engine)}{_engine_suffix(engine)}"


def _file_key(sha256: str, path: Path) -> str:
    return f"{sha256}-{hashlib.sha256(str(path).encode('utf-8')).hexdigest()[:12]}"


def _engine_suffix(engine: str) -> str:
    return "" if engine == "duckdb" else f"-{engine}"


def _remove_other_rules(cache_dir: Path, sha256: str, path: Path, engine: str) -> None:
    """Remove what other landing rules (or the numbered versions before them) landed of this
    file on this engine: this code never reads it (a prepared set holds its own hard links to
    what it read, so none of them breaks)."""
    file_key = _file_key(sha256, path)
    other = re.compile(rf"{file_key}-[rv][0-9a-f]+{re.escape(_engine_suffix(engine))}")
    current = landing_key(sha256, path, engine)
    for old in cache_dir.glob(f"{file_key}-*"):
        key, suffix = os.path.splitext(old.name)
        if suffix in (".parquet", ".facts") and key != current and other.fullmatch(key):
            old.unlink(missing_ok=True)


def _write_parquet(
    connection: duckdb.DuckDBPyConnection,
    path: Path,
    parameters: dict[str, str],
    names: list[str],
    sha256: str,
    target: Path,
) -> tuple[datetime | None, datetime | None]:
    typed = ", ".join(f"{expression} as {column}" for column, expression in TYPED_COLUMNS.items())
    staged = target.with_name(f".{target.name}.tmp")
    sql = (
        f"copy (select file_row_number, {typed},"
        " cast($source_file as varchar) as source_file,"
        " cast($source_sha256 as varchar) as source_sha256"
        f" from ({_numbered_sql(names)}))"
        " to $target (format parquet, compression zstd)"
    )
    try:
        connection.execute(
            sql,
            {
                **parameters,
                "source_file": str(path),
                "source_sha256": sha256,
                "target": str(staged),
            },
        )
        first, last = connection.execute(
            "select min(InvoiceDate), max(InvoiceDate) from read_parquet($target)",
            {"target": str(staged)},
        ).fetchall()[0]
    except duckdb.Error as error:
        staged.unlink(missing_ok=True)
        raise _csv_error(path, error, _source_of(parameters)) from error
    os.replace(staged, target)
    return first, last


def scratch_connection() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection for reading files, without a progress bar, in UTC (a
    timestamp Spark landed is UTC-adjusted; cast to TIMESTAMP it reads as written)."""
    connection = duckdb.connect()
    connection.execute("set enable_progress_bar = false")
    connection.execute("set TimeZone = 'UTC'")
    return connection


class DuckDBLander:
    """Steps 5 and 6 in an in-memory DuckDB (`check_values`, then the typed Parquet)."""

    engine = "duckdb"

    def land(
        self, path: Path, source: TextSource, names: list[str], sha256: str, target: Path
    ) -> tuple[int, datetime | None, datetime | None]:
        parameters = {
            "path": str(source.path),
            "encoding": source.encoding,
            "compression": source.compression,
        }
        with scratch_connection() as connection:
            n_rows = check_values(connection, path, parameters, names)
            first, last = _write_parquet(connection, path, parameters, names, sha256, target)
        return n_rows, first, last


def _cached_facts(parquet: Path, facts_file: Path) -> tuple[str, str] | None:
    """The encoding and layout of a file the cache holds intact, else None: its Parquet must have
    the SHA-256 recorded when it was landed, so a cache edited or truncated by hand (or written
    by an earlier version, which recorded none) is landed again rather than trusted."""
    if not (parquet.is_file() and facts_file.is_file()):
        return None
    fields = facts_file.read_text().split()
    if len(fields) != 3 or file_sha256(parquet) != fields[2]:
        return None
    return fields[0], fields[1]


def _read_landed(parquet: Path) -> tuple[int, datetime | None, datetime | None]:
    with scratch_connection() as connection:
        return connection.execute(
            "select count(*), cast(min(InvoiceDate) as timestamp),"
            " cast(max(InvoiceDate) as timestamp) from read_parquet($p)",
            {"p": str(parquet)},
        ).fetchall()[0]


def land_file(
    path: Path, cache_dir: Path, lander: Lander | None = None, *, allow_empty: bool = False
) -> LandedFile:
    """Check one input file completely and land it as typed Parquet in cache_dir (reused while
    its content and path are unchanged) with lander (`DuckDBLander` when None). Raises
    `InputError` when it cannot be read exactly, or when it holds only its header and not
    ``allow_empty`` (a daily file may: a day without sales; the raw file may not)."""
    landed = _land_file(path, cache_dir, lander or DuckDBLander())
    if landed.n_rows == 0 and not allow_empty:
        raise InputError(landed.path, EMPTY_FILE_PROBLEM, fix=EMPTY_FILE_FIX)
    return landed


def _land_file(path: Path, cache_dir: Path, lander: Lander) -> LandedFile:
    path = path.resolve()
    if not path.is_file():
        raise InputError(path, "does not exist (or is not a file)", fix="check the path")
    stat = path.stat()
    container = check_container(path)
    sha256 = file_sha256(path)
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = landing_key(sha256, path, lander.engine)
    parquet = cache_dir / f"{key}.parquet"
    facts_file = cache_dir / f"{key}.facts"
    cached = _cached_facts(parquet, facts_file)
    if cached is not None:
        encoding, layout = cached
        try:
            n_rows, first, last = _read_landed(parquet)
        except duckdb.Error:
            pass  # landed again below
        else:
            return LandedFile(
                path, sha256, stat.st_size, stat.st_mtime_ns, container, encoding, layout,
                n_rows, first, last, parquet, reused=True,
            )  # fmt: skip
    facts_file.unlink(missing_ok=True)
    parquet.unlink(missing_ok=True)
    text_path, text_container = path, container
    if container in ("zip", "xlsx"):
        text_path = convert_download(path, container, cache_dir / f"{key}.csv")
        text_container = "plain"
    facts = scan_text(path, text_chunks(text_path, text_container))
    layout, names = map_header(path, parse_header(path, facts))
    source = TextSource(
        text_path, facts.encoding, {"zstd": "zstd", "gzip": "gzip"}.get(text_container, "none")
    )
    n_rows, first, last = lander.land(path, source, names, sha256, parquet)
    if facts.outside_quotes is not None:
        parquet.unlink(missing_ok=True)
        raise _outside_quotes_error(path, *facts.outside_quotes)
    facts_file.write_text(f"{facts.encoding} {layout} {file_sha256(parquet)}\n")
    _remove_other_rules(cache_dir, sha256, path, lander.engine)
    return LandedFile(
        path, sha256, stat.st_size, stat.st_mtime_ns, container, facts.encoding, layout,
        n_rows, first, last, parquet,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Excel downloads
# ---------------------------------------------------------------------------------------------


def convert_download(path: Path, container: str, target: Path) -> Path:
    """Convert the UCI download (a zip holding one .xlsx or .csv, or the .xlsx itself) to a UTF-8
    CSV at target, once: an existing target (same content key) is reused. Returns target."""
    if target.is_file():
        return target
    staged = target.with_name(f".{target.name}.tmp")
    try:
        if container == "zip":
            with zipfile.ZipFile(path) as archive:
                member = _zip_member(path, archive)
                with archive.open(member) as handle:
                    if member.lower().endswith(".csv"):
                        _copy_csv_member(path, handle, staged)
                    else:
                        _workbook_to_csv(path, io.BytesIO(handle.read()), staged)
        else:
            with path.open("rb") as handle:
                _workbook_to_csv(path, handle, staged)
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        staged.unlink(missing_ok=True)
        raise InputError(
            path,
            "is damaged: the zip archive does not read",
            [f"zip says: {error}"],
            "download the file again",
        ) from error
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    staged_rows = _rows_file(staged)
    if staged_rows.exists():
        os.replace(staged_rows, _rows_file(target))
    os.replace(staged, target)
    return target


def _rows_file(converted: Path) -> Path:
    """Where the rows of the CSV a workbook was converted to are mapped to the workbook's."""
    return converted.with_name(converted.name + ".rows.json")


def place_of_line(text: Path, line: int) -> str:
    """Where line ``line`` (header = 1) of the text a lander parsed lies in the user's file:
    ``line N`` of a CSV; ``row R of sheet 'S'`` of an Excel workbook (the CSV it was converted
    to holds every sheet's rows after one header, blank rows left out). ``text`` is that CSV,
    or the landed Parquet of the same file (the CSV lies beside it)."""
    converted = text.with_suffix(".csv") if text.suffix == ".parquet" else text
    try:
        runs = json.loads(_rows_file(converted).read_text())
    except (OSError, json.JSONDecodeError):
        return f"line {line}"
    for first_line, sheet, first_row in reversed(runs):
        if line >= first_line:
            return f"row {first_row + line - first_line} of sheet '{sheet}'"
    return f"line {line}"


def source_chunks(source: TextSource) -> Iterator[bytes]:
    """The text a lander parsed, decompressed, in chunks (`text_chunks`)."""
    return text_chunks(source.path, "plain" if source.compression == "none" else source.compression)


def text_lines(source: TextSource) -> Iterator[bytes]:
    """The text's lines (split at LF, the LF left off), as written."""
    pending = b""
    for chunk in source_chunks(source):
        pending += chunk
        parts = pending.split(b"\n")
        pending = parts.pop()
        yield from parts
    if pending:
        yield pending


def records(source: TextSource, empty_lines: bool = False) -> Iterator[tuple[int, bool]]:
    """For each record of the text (the header first), the line it starts on (1 = the header)
    and whether its quoting is malformed as DuckDB's strict reader judges it: a quote that opens
    a field must close it, followed by a comma or the line's end, and a quote inside it must be
    doubled; a quote inside an unquoted field is text. A quoted field holds line breaks, so a
    record spans lines; an unclosed quote runs to the end of the text (one malformed record).
    An empty line is no record (the readers skip it), unless ``empty_lines``: DuckDB's reader
    errors count it as one. Read only to name the line of a refused record, on either engine."""
    in_quote = False
    start, bad = 0, False
    for number, line in enumerate(text_lines(source), start=1):
        if not in_quote:
            start, bad = number, False
            if line in (b"", b"\r"):
                if empty_lines:
                    yield start, bad
                continue  # Spark's and DuckDB's readers skip an empty line (no row)
            if b'"' not in line:
                yield start, bad
                continue
        at_field_start = not in_quote
        index, length = 0, len(line)
        while index < length:
            char = line[index : index + 1]
            if in_quote:
                if char != b'"':
                    index += 1
                    continue
                after = line[index + 1 : index + 2]
                if after == b'"':
                    index += 2
                    continue
                in_quote = False
                if after == b",":
                    at_field_start = True
                    index += 2
                    continue
                if not (after == b"" or (after == b"\r" and index + 2 == length)):
                    bad = True
                index += 1
            elif char == b'"' and at_field_start:
                in_quote, at_field_start = True, False
                index += 1
            else:
                at_field_start = char == b","
                index += 1
        if not in_quote:
            yield start, bad
    if in_quote:
        yield start, True


def lines_of_rows(source: TextSource, rows: set[int]) -> dict[int, int]:
    """The line (1 = the header) each data row starts on (1 = the first data row): a quoted
    field with line breaks makes a row span lines, and the readers skip an empty line."""
    if not rows:
        return {}
    found: dict[int, int] = {}
    for row, (line, _bad) in enumerate(records(source)):
        if row in rows:
            found[row] = line
            if len(found) == len(rows):
                break
    return {row: found.get(row, row + 1) for row in rows}


def text_source(landed: LandedFile) -> TextSource:
    """The text that was parsed to land ``landed``: the file itself, or for an Excel download
    the CSV it was converted to (beside its Parquet in the landing cache)."""
    if landed.container in ("zip", "xlsx"):
        return TextSource(landed.parquet.with_suffix(".csv"), landed.encoding, "none")
    compression = {"zstd": "zstd", "gzip": "gzip"}.get(landed.container, "none")
    return TextSource(landed.path, landed.encoding, compression)


def places_of_rows(source: TextSource, rows: set[int]) -> dict[int, str]:
    """Where each data row (1 = the first) lies in the user's file, as messages name it: the line
    of a CSV its record starts on (`lines_of_rows`: the text is read once, as far as the last
    row), the sheet and row of a workbook (whose converted CSV `place_of_line` maps by row)."""
    places = {}
    for row, line in lines_of_rows(source, rows).items():
        place = place_of_line(source.path, row + 1)
        places[row] = f"line {line}" if place.startswith("line ") else place
    return places


def _zip_member(path: Path, archive: zipfile.ZipFile) -> str:
    damaged = archive.testzip()
    if damaged is not None:
        raise InputError(
            path,
            f"is damaged: member '{damaged}' fails its CRC check",
            fix="download the file again",
        )
    members = [
        info.filename
        for info in archive.infolist()
        if not info.is_dir()
        and info.filename.lower().endswith((".xlsx", ".csv"))
        and not info.filename.startswith("__MACOSX/")
    ]
    if len(members) != 1:
        raise InputError(
            path,
            "must hold exactly one .xlsx or .csv file",
            [f"found: {', '.join(members) or 'none'}"],
            "point RETAIL_RAW_PATH at the workbook or CSV itself",
        )
    return members[0]


def _copy_csv_member(path: Path, handle: IO[bytes], staged: Path) -> None:
    with staged.open("wb") as out:
        while chunk := handle.read(CHUNK_BYTES):
            out.write(chunk)


def _cell_text(value: object, column: str) -> str:
    """One workbook cell as CSV text, exactly: whole floats in integer columns without '.0',
    prices to Excel's own 15 significant digits, dates in ISO form (to the second)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        # Excel stores a time as a fraction of a day; openpyxl's conversion can land a
        # microsecond off a whole second, so round to the second.
        rounded = value.replace(microsecond=0)
        if value.microsecond >= 500_000:
            rounded += timedelta(seconds=1)
        return rounded.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if column == "UnitPrice":
            return format(value, ".15g")
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


# an element named f (a cell's formula), with or without a namespace prefix
_FORMULA_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?f[\s/>]")


def _local_name(tag: str) -> str:
    return tag.rpartition("}")[2]


def _may_hold_formulas(sheet: Any) -> bool:
    """Whether the sheet's XML holds an element named f: a byte search, as cheap as reading the
    sheet once more; a sheet without one (the UCI workbooks) needs no check of its cells."""
    carried = b""
    with sheet._get_source() as source:  # openpyxl 3.1 (pinned): the sheet's XML, unzipped
        while chunk := source.read(CHUNK_BYTES):
            text = carried + chunk
            # two plain searches first: the pattern is slower, and needed only where they hit
            if (b"<f" in text or b":f" in text) and _FORMULA_TAG.search(text):
                return True
            start = text.rfind(b"<")
            carried = text[start:] if start >= 0 else b""
    return False


def _formulas_without_values(sheet: Any) -> Iterator[tuple[str, str, str]]:
    """The cells of the sheet (``F17``) whose formula has no value stored beside it, each with
    its formula's text and the cell that text is written for (itself, or the first cell of a
    shared formula: a formula filled down is written once). Excel stores every formula's
    value; a script (openpyxl) stores none, and openpyxl reads such a cell as empty."""
    from xml.etree.ElementTree import iterparse

    from openpyxl.utils import get_column_letter

    shared: dict[str, tuple[str, str]] = {}  # a shared formula's text and its first cell
    row = 0
    with sheet._get_source() as source:
        for _event, element in iterparse(source):
            if _local_name(element.tag) != "row":
                continue
            row = int(element.get("r") or row + 1)
            column = 0
            for cell in element:
                if _local_name(cell.tag) != "c":
                    continue
                ref = cell.get("r") or f"{get_column_letter(column + 1)}{row}"
                column = _column_number(ref)
                found = _formula_without_value(cell, ref, shared)
                if found is not None:
                    yield ref, *found
            element.clear()


def _formula_without_value(
    cell: Any, ref: str, shared: dict[str, tuple[str, str]]
) -> tuple[str, str] | None:
    """A cell's formula text and the cell it is written for, if it has a formula but no
    value; the first cell of each shared formula is kept in ``shared``."""
    parts = {_local_name(child.tag): child for child in cell}
    formula = parts.get("f")
    if formula is None:
        return None
    text, origin, key = formula.text or "", ref, formula.get("si")
    if formula.get("t") == "shared" and key is not None:
        if text:
            shared[key] = (text, ref)
        else:
            text, origin = shared.get(key, (text, ref))
    return None if _holds_value(cell.get("t"), parts) else (text, origin)


def _holds_value(kind: str | None, parts: dict[str, Any]) -> bool:
    """Whether a cell (its type ``t`` and its child elements by name) holds a value as openpyxl
    reads it: a non-empty ``v``, an empty one for a string (a formula's ``""``), or an inline
    string."""
    value = parts.get("v")
    if value is not None and (value.text or kind == "str"):
        return True
    return kind == "inlineStr" and "is" in parts


def _formula_at(text: str, origin: str, ref: str) -> str:
    """The formula as Excel shows it in cell ``ref``, from its text written for ``origin``."""
    from openpyxl.formula.tokenizer import TokenizerError
    from openpyxl.formula.translate import Translator, TranslatorError

    if origin == ref:
        return f"={text}"
    try:
        return str(Translator(f"={text}", origin).translate_formula(ref))
    except (TranslatorError, TokenizerError):
        return f"={text} (written for {origin}, filled to {ref})"


def _column_number(ref: str) -> int:
    from openpyxl.utils import column_index_from_string

    return column_index_from_string(ref.rstrip("0123456789"))


def _refuse_formulas_without_values(path: Path, sheet: Any, header: Sequence[str]) -> None:
    from xml.etree.ElementTree import ParseError

    if not _may_hold_formulas(sheet):
        return
    try:
        cells = list(_formulas_without_values(sheet))
    except ParseError as error:
        raise InputError(
            path,
            "is not an Excel workbook that can be read",
            [f"sheet '{sheet.title}': {error}"],
            "download the file again, or export it as CSV",
        ) from error
    if not cells:
        return
    ref, text, origin = cells[0]
    formula = _formula_at(text, origin, ref)
    letters = ref.rstrip("0123456789")
    row, number = ref[len(letters) :], _column_number(ref)
    name = f", {header[number - 1]}" if number <= len(header) and header[number - 1] else ""
    raise InputError(
        path,
        f"has formulas whose values were never stored (sheet '{sheet.title}')",
        [
            f"{len(cells)} formula cell(s) of sheet '{sheet.title}' hold no value, so each"
            " would load as an empty cell; the first:",
            f"{sheet.title}!{ref} (row {row}, column {letters}{name}): {formula}",
        ],
        "open the workbook in Excel or LibreOffice and save it (that computes and stores each"
        " formula's value), or export the data as CSV, then build again",
    )


def _refuse_hidden_data(path: Path, sheet: Any) -> None:
    """A hidden sheet is skipped when empty and refused when it holds a value: its rows are not
    seen in Excel, and loading or leaving them out would both be silent."""
    from openpyxl.utils import get_column_letter

    for number, row in enumerate(sheet.iter_rows(values_only=True), start=1):
        index, value = next(
            ((index, cell) for index, cell in enumerate(row) if cell is not None), (0, None)
        )
        if value is None:
            continue
        state = "very hidden" if sheet.sheet_state == "veryHidden" else "hidden"
        raise InputError(
            path,
            f"has a hidden sheet that holds data (sheet '{sheet.title}')",
            [
                f"sheet '{sheet.title}' is {state}; row {number} of sheet '{sheet.title}' holds"
                f" {_cell_text(value, '')!r} (column {get_column_letter(index + 1)})"
            ],
            "unhide the sheet to load its rows, or delete it (a very hidden sheet is unhidden"
            " in the VBA editor: its Visible property), then build again",
        )


# what Excel shows in a cell whose formula failed; openpyxl reads such a cell as this text
_EXCEL_ERRORS = frozenset(
    (
        "#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A", "#GETTING_DATA",
        "#SPILL!", "#CALC!", "#FIELD!", "#BLOCKED!", "#CONNECT!", "#BUSY!", "#UNKNOWN!",
        "#PYTHON!",
    )
)  # fmt: skip


def _error_texts(cells: Sequence[object]) -> list[int]:
    """The positions of the cells whose value is the text of an Excel error (`_EXCEL_ERRORS`)."""
    return [
        index for index, cell in enumerate(cells) if isinstance(cell, str) and cell in _EXCEL_ERRORS
    ]


def _refuse_error_values(
    path: Path, sheet: Any, suspects: dict[int, list[int]], header: Sequence[str]
) -> None:
    """Refuse the sheet if a cell holds an Excel error (``#N/A`` from a lookup that found
    nothing, ...): it would load as that text, a country or description no one wrote.
    ``suspects`` maps a row number to the cells holding an error's text; their types are read in
    one more pass over those rows (a read-only sheet is parsed from its top at every pass), and
    a cell holding such text typed as text is kept."""
    from openpyxl.utils import get_column_letter

    if not suspects:
        return
    typed_rows = sheet.iter_rows(min_row=min(suspects), max_row=max(suspects))
    for number, typed in enumerate(typed_rows, start=min(suspects)):
        for index in suspects.get(number, ()):
            if index < len(typed) and getattr(typed[index], "data_type", None) == "e":
                raise InputError(
                    path,
                    f"has a cell holding an Excel error (sheet '{sheet.title}')",
                    [
                        f"row {number} of sheet '{sheet.title}', column"
                        f" {get_column_letter(index + 1)} ({header[index]}): {typed[index].value},"
                        " the error of a formula, not a value"
                    ],
                    "correct the formula (or replace the error by the value it should have, or"
                    " leave the cell empty), then build again",
                )


def _workbook_to_csv(path: Path, handle: BinaryIO, staged: Path) -> None:
    from openpyxl import load_workbook
    from openpyxl.utils import get_column_letter
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = load_workbook(handle, read_only=True, data_only=True)
    except (InvalidFileException, KeyError, zipfile.BadZipFile, OSError) as error:
        raise InputError(
            path,
            "is not an Excel workbook that can be read",
            [f"openpyxl says: {error}"],
            "download the file again, or export it as CSV",
        ) from error
    header: list[str] | None = None
    names: list[str] = []
    # where each CSV line comes from (`place_of_line`): runs of (first CSV line, sheet, its row)
    runs: list[tuple[int, str, int]] = []
    line = 1
    with staged.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        for sheet in workbook.worksheets:
            rows = sheet.iter_rows(values_only=True)
            sheet_header = [str(cell) if cell is not None else "" for cell in next(rows, ())]
            while sheet_header and sheet_header[-1] == "":
                sheet_header.pop()
            _refuse_formulas_without_values(path, sheet, sheet_header)
            if sheet.sheet_state != "visible":
                _refuse_hidden_data(path, sheet)
                continue
            if not sheet_header:
                # an empty sheet is skipped; one with rows below an empty row 1 is not
                for number, row in enumerate(rows, start=2):
                    if any(cell is not None for cell in row):
                        raise InputError(
                            path,
                            f"has a sheet whose row 1 is empty (sheet '{sheet.title}')",
                            [
                                f"row {number} of sheet '{sheet.title}' is the first that holds"
                                " values; the header must be on row 1 of every sheet with data"
                            ],
                            "put the header on row 1 of the sheet (delete the empty rows above"
                            " it), or export the data as CSV",
                        )
                continue
            if header is None:
                header = sheet_header
                _layout, names = map_header(path, header)
                writer.writerow(header)
            elif sheet_header != header:
                raise InputError(
                    path,
                    f"has sheets with different headers (sheet '{sheet.title}')",
                    [
                        f"first sheet: {','.join(header)}",
                        f"'{sheet.title}': {','.join(sheet_header)}",
                    ],
                    "give every sheet the same header, or export one CSV",
                )
            suspects: dict[int, list[int]] = {}  # rows with an Excel error's text
            for number, row in enumerate(rows, start=2):
                beyond = next(
                    (
                        (index, cell)
                        for index, cell in enumerate(row[len(names) :], start=len(names))
                        if cell is not None
                    ),
                    None,
                )
                if beyond is not None:
                    index, cell = beyond
                    raise InputError(
                        path,
                        "has values in columns the header does not name",
                        [
                            f"row {number} of sheet '{sheet.title}': column"
                            f" {get_column_letter(index + 1)} holds {_cell_text(cell, '')!r},"
                            f" but the header names {len(names)} columns (A to"
                            f" {get_column_letter(len(names))})"
                        ],
                        "delete the values right of the header's columns (or give them a"
                        " column the product reads), then build again",
                    )
                cells = list(row[: len(names)]) + [None] * (len(names) - len(row))
                if all(cell is None for cell in cells):
                    continue
                if errors := _error_texts(cells):
                    suspects[number] = errors
                writer.writerow(
                    _cell_text(cell, name) for cell, name in zip(cells, names, strict=True)
                )
                line += 1
                last = runs[-1] if runs else None
                if last is None or last[1] != sheet.title or last[2] + line - last[0] != number:
                    runs.append((line, sheet.title, number))
            _refuse_error_values(path, sheet, suspects, header)
    workbook.close()
    _rows_file(staged).write_text(json.dumps(runs) + "\n")
    if header is None:
        raise InputError(path, "is empty: no sheet holds a header line")
