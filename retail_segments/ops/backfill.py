"""Backfill of the segment history: customer RFM and segments as of every month end in a range.

``python -m retail_segments backfill [--start YYYY-MM] [--end YYYY-MM]`` adds one as-of date per
month to ``marts.customer_segment_history``. A month's end is the as-of moment at midnight after
its last day (December 2010 ends at 2011-01-01 00:00), the same semantics as ``var('rfm_as_of')``:
only purchases strictly before it count. By default the range is every month of the data: from
the month of the first purchase to the last month whose end is at most the day after the last
purchase (the data must cover the whole month).

Nothing runs until the whole range is valid: a malformed month, a month ending before the first
purchase or after the data ends, or a start after the end is a ``BackfillError`` naming the
problem and the valid range, and the warehouse is left untouched.

Each month end then runs ``dbt build --select int_customer_rfm__history --vars '{rfm_as_of: ...}'``
(the other vars those of the last whole build, which the warehouse must record: `month_vars`),
which adds that date's rows to the RFM history and computes every date it already holds again
from the current lines (so running a backfill twice changes nothing);
the last one builds every model of the history (``tag:history``): the history is scored again
with the registry's current classifier and the migration marts are rebuilt. No classifier is
trained and ``marts.customer_rfm`` / ``marts.customer_segments`` are not touched.
dbt parses the project once and the month ends reuse that manifest (dbt renders ``var()`` in model
SQL when it compiles a node, with the invocation's ``--vars``), which saves a full re-parse per
month.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from retail_segments.ops.dbt_runner import ctrl_c_noted, log_file, run_on_console
from retail_segments.ops.paths import WAREHOUSE_PATH_ENV, find_project_root
from retail_segments.ops.preflight import (
    PREPARED_STAMP_ENV,
    UNFINISHED_RUN,
    BuiltVars,
    PreflightError,
    prepare,
)

if TYPE_CHECKING:  # dbt is imported when the backfill runs, not when the command starts
    from dbt.cli.main import dbtRunnerResult

HISTORY_MODEL = "int_customer_rfm__history"
# Every model of the segment history (dbt_project.yml tags the history folders): the last month
# rebuilds them all, and nothing else (marts.customer_rfm and the fits stay at the build's date).
HISTORY_TAG = "history"
REQUIRED_RELATIONS: tuple[str, ...] = (
    "marts.fct_sales_lines",
    "intermediate.int_sales_lines__returns_dated",
    f"intermediate.{HISTORY_MODEL}",
    "ml.ml_segment_classifier_fit",
    "ml.model_registry",
    "ml.model_publications",
)
_MONTH = re.compile(r"(\d{4})-(\d{2})")


class BackfillError(ValueError):
    """The backfill cannot run as asked; nothing was run and nothing written."""


@dataclass(frozen=True)
class DataWindow:
    """First and last purchase of the cleaned sales lines (``marts.fct_sales_lines``)."""

    first_purchase_at: datetime
    last_purchase_at: datetime

    @property
    def first_month(self) -> date:
        """The month of the first purchase: the earliest month that can be backfilled."""
        return self.first_purchase_at.date().replace(day=1)

    @property
    def latest_as_of(self) -> datetime:
        """Midnight after the last purchase day: the latest as-of moment the data covers."""
        return datetime.combine(
            self.last_purchase_at.date() + timedelta(days=1), datetime.min.time()
        )

    @property
    def last_month(self) -> date:
        """The last month whose end is at most ``latest_as_of``."""
        return _previous_month(self.latest_as_of.date().replace(day=1))


def _previous_month(month: date) -> date:
    return (month - timedelta(days=1)).replace(day=1)


def month_end(month: date) -> datetime:
    """The as-of moment of a month's end: midnight of the first day of the next month."""
    following = (month.replace(day=28) + timedelta(days=4)).replace(day=1)
    return datetime.combine(following, datetime.min.time())


def parse_month(text: str, option: str) -> date:
    """Parse ``YYYY-MM`` into the first day of that month.

    Raises ``BackfillError`` naming ``option`` (e.g. '--start') when ``text`` is not a month.
    """
    message = f"{option} {text!r} is not a month: expected YYYY-MM, e.g. 2011-06"
    match = _MONTH.fullmatch(text.strip())
    if match is None:
        raise BackfillError(message)
    try:
        return date(int(match.group(1)), int(match.group(2)), 1)
    except ValueError as error:  # month 00 or 13 and above, year 0000
        raise BackfillError(message) from error


def as_of_dates(
    window: DataWindow, start: str | None = None, end: str | None = None
) -> list[datetime]:
    """The month-end as-of moments from ``start`` to ``end`` (``YYYY-MM``, both inclusive).

    Parameters
    ----------
    window : the data's first and last purchase.
    start, end : first and last month to backfill; ``None`` means the first / last month of the
        data (``DataWindow.first_month`` / ``last_month``).

    Returns
    -------
    One ``datetime`` (midnight) per month, ascending. Raises ``BackfillError`` when a month is
    malformed, ends at or before the first purchase (no customer yet), ends after the data does
    (``window.latest_as_of``), or when start is after end; the message names the valid range.
    """
    valid = f"months with data are {window.first_month:%Y-%m} to {window.last_month:%Y-%m}"
    first = parse_month(start, "--start") if start is not None else window.first_month
    last = parse_month(end, "--end") if end is not None else window.last_month
    for option, month in (("--start", first), ("--end", last)):
        as_of = month_end(month)
        if as_of <= window.first_purchase_at:
            raise BackfillError(
                f"{option} {month:%Y-%m} ends ({as_of:%Y-%m-%d %H:%M}) before the data starts "
                f"(first purchase {window.first_purchase_at:%Y-%m-%d %H:%M}); {valid}"
            )
        if as_of > window.latest_as_of:
            raise BackfillError(
                f"{option} {month:%Y-%m} ends ({as_of:%Y-%m-%d %H:%M}) after the data ends "
                f"(last purchase {window.last_purchase_at:%Y-%m-%d %H:%M}); {valid}"
            )
    if first > last:
        raise BackfillError(f"--start {first:%Y-%m} is after --end {last:%Y-%m}")
    dates = []
    month = first
    while month <= last:
        dates.append(month_end(month))
        month = month_end(month).date()
    return dates


def read_data_window(warehouse: Path) -> DataWindow:
    """Read the data window from a built warehouse (read-only).

    Raises ``BackfillError`` when the file is missing or locked by a writer, lacks a relation
    the backfill needs (``REQUIRED_RELATIONS``: the project must have been built first), or when
    its last build did not succeed: the classifier the history would be scored with (the last
    fit's) is not published in ``ml.model_publications``, and the marts may be half-replaced.
    """
    if not warehouse.is_file():
        raise BackfillError(f"no warehouse at {warehouse}: run `make build` first")
    try:
        with duckdb.connect(str(warehouse), read_only=True) as connection:
            existing = {
                f"{schema}.{name}"
                for schema, name in connection.sql(
                    "select table_schema, table_name from information_schema.tables"
                ).fetchall()
            }
            missing = [name for name in REQUIRED_RELATIONS if name not in existing]
            if missing:
                raise BackfillError(
                    f"warehouse {warehouse} lacks {', '.join(missing)}: run `make build` first"
                )
            unpublished = connection.sql(
                "select model_version from ml.ml_segment_classifier_fit where model_version"
                " not in (select model_version from ml.model_publications)"
            ).fetchall()
            if unpublished:
                raise BackfillError(
                    f"the last build of {warehouse} did not succeed (the classifier it trained,"
                    f" {unpublished[0][0]}, is not published in ml.model_publications), so its"
                    " tables may be half-replaced: run `make build` first"
                )
            first, last = connection.sql(
                "select min(invoice_at), max(invoice_at) from marts.fct_sales_lines"
            ).fetchall()[0]
    except duckdb.IOException as error:
        raise BackfillError(
            f"cannot open {warehouse} ({error}); close any tool holding it open for writing"
        ) from error
    if first is None:
        raise BackfillError(f"marts.fct_sales_lines in {warehouse} is empty: nothing to backfill")
    return DataWindow(first_purchase_at=first, last_purchase_at=last)


def history_dates(warehouse: Path) -> list[datetime]:
    """The as-of dates the segment history holds (``HISTORY_MODEL``), oldest first; empty when
    the warehouse or the history does not exist or cannot be read."""
    if not warehouse.is_file():
        return []
    try:
        with duckdb.connect(str(warehouse), read_only=True) as connection:
            rows = connection.sql(
                f"select distinct rfm_as_of from intermediate.{HISTORY_MODEL} order by 1"
            ).fetchall()
    except duckdb.Error:
        return []
    return [row[0] for row in rows]


def dropped_history_note(before: Sequence[datetime], after: Sequence[datetime]) -> str | None:
    """What a build dropped from the segment history (a rebuild from scratch keeps only its own
    as-of date), with how to add the month ends again; None when it dropped nothing."""
    dropped = sorted(set(before) - set(after))
    if not dropped:
        return None
    months = [date_.date() for date_ in dropped if date_.day == 1]
    shown = ", ".join(f"{date_:%Y-%m-%d}" for date_ in dropped[:6])
    more = f" and {len(dropped) - 6} more" if len(dropped) > 6 else ""
    again = ""
    if months:
        first, last = _previous_month(months[0]), _previous_month(months[-1])
        again = f" `make backfill START={first:%Y-%m} END={last:%Y-%m}` adds the month ends again."
    return (
        f"Note: the segment history no longer holds {len(dropped)} as-of date(s) it held before"
        f" ({shown}{more}): a rebuild from scratch (--full-refresh) keeps only this build's."
        + again
    )


NO_RECORD = (
    "the warehouse records no whole build that succeeded with the vars it used (a warehouse of"
    " an earlier version, a backfill that did not finish, or a run with other vars or inputs"
    " since), and the backfill builds every month with those vars; run `make build` first (with"
    " the --vars you want).\nNothing was backfilled."
)


def month_vars(recorded: Mapping[str, str], as_of: datetime) -> str:
    """The --vars of one month end: the vars of the last whole build (as dbt rendered them,
    `retail_segments.ops.preflight.BuiltVars`), with rfm_as_of the month end; YAML reads each
    value back to what it was (a number, a date or a timestamp)."""
    return vars_arg({**recorded, "rfm_as_of": f"{as_of:%Y-%m-%d}"})


def vars_arg(values: Mapping[str, str]) -> str:
    """The --vars of these values as dbt rendered them; YAML reads each back to what it was (a
    number, a date or a timestamp)."""
    return "{" + ", ".join(f"{name}: {value}" for name, value in values.items()) + "}"


def run_backfill(
    dates: Sequence[datetime], recorded: Mapping[str, str], project_root: Path | None = None
) -> bool:
    """Run dbt in this process for each as-of date in order, with the vars of the last whole
    build (``recorded``: `month_vars`); the environment must already point at the raw file and
    the warehouse. Stops at the first failing date; returns whether every date succeeded.
    ``main`` runs it in a child process (``python -m retail_segments.ops.backfill <vars as JSON>
    <dates>``), so the caller's process holds no connection to the warehouse afterwards."""
    from dbt.cli.main import dbtRunner
    from dbt.contracts.graph.manifest import Manifest

    project_root = project_root or find_project_root()
    project = ["--project-dir", str(project_root), "--profiles-dir", str(project_root)]
    with ctrl_c_noted() as seen:
        parsed = _unless_stopped(dbtRunner().invoke(["parse", *project]), seen)
        if not parsed.success:
            print("error: dbt could not parse the project; nothing was backfilled", file=sys.stderr)
            return False
        manifest = parsed.result if isinstance(parsed.result, Manifest) else None
        runner = dbtRunner(manifest=manifest)
        for number, as_of in enumerate(dates, start=1):
            last = number == len(dates)
            print(f"[{number}/{len(dates)}] as of {as_of:%Y-%m-%d %H:%M}", flush=True)
            args = [
                "build",
                "--select",
                f"tag:{HISTORY_TAG}" if last else HISTORY_MODEL,
                "--vars",
                month_vars(recorded, as_of),
            ]
            try:
                # each month's vars are checked and stamped like any build's (no fit runs here); the
                # inputs were checked against the warehouse before the backfill started
                prepare(project_root, os.environ, args, fits=False, read_warehouse=False)
            except PreflightError as error:
                print(f"error: {error}\nNothing more was backfilled.", file=sys.stderr)
                return False
            result = _unless_stopped(runner.invoke([*args, *project]), seen)
            if not result.success:
                done = ", ".join(f"{d:%Y-%m-%d}" for d in dates[: number - 1]) or "none"
                print(
                    f"error: the backfill failed at {as_of:%Y-%m-%d}; dates completed: {done};"
                    " nothing was published. Fix the cause (dbt names it above), run `make build`,"
                    " then the backfill again (every date replaces its own rows).",
                    file=sys.stderr,
                )
                return False
        return True


def _unless_stopped(result: dbtRunnerResult, seen: Sequence[int]) -> dbtRunnerResult:
    """dbt's result, unless Ctrl-C stopped it: dbt returns the ``KeyboardInterrupt`` as the
    result's exception, which is raised again here, so a stop is not reported as a failure (the
    command that started the backfill says what stopped). A Ctrl-C that dbt did not stop on
    (``seen``: one that came while Python ran a finalizer, which only prints "Exception
    ignored") stops the backfill here too, before the next month."""
    if isinstance(result.exception, KeyboardInterrupt):
        raise result.exception
    if seen:
        raise KeyboardInterrupt
    return result


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The backfill's arguments (argparse: ``--help`` prints the usage and exits 0, an unknown
    argument exits 2 with the usage)."""
    parser = argparse.ArgumentParser(
        prog="retail-segments backfill",
        allow_abbrev=False,
        description="Add customer RFM and segments as of each month end to "
        "marts.customer_segment_history.",
    )
    parser.add_argument("--start", help="first month, YYYY-MM (default: the data's first)")
    parser.add_argument("--end", help="last month, YYYY-MM (default: the data's last full month)")
    for option in ("--start", "--end"):
        given = [arg for arg in argv if arg == option or arg.startswith(f"{option}=")]
        if len(given) > 1:  # argparse would take the last one silently
            parser.error(f"{option} is given {len(given)} times; give it once")
    return parser.parse_args(argv)


def main(argv: Sequence[str], env: Mapping[str, str], project_root: Path | None = None) -> int:
    """``backfill [--start YYYY-MM] [--end YYYY-MM]`` with ``env`` (the environment of a prepared
    build, `retail_segments.ops.preflight.prepare`). Returns the exit code: 0 done, 1 dbt failed,
    2 bad input (nothing run, nothing written)."""
    args = parse_args(argv)
    built = BuiltVars.of_stamp(Path(env[PREPARED_STAMP_ENV]))
    recorded = built.read()
    if recorded is None:
        unfinished = (
            f"{UNFINISHED_RUN}, and the backfill would publish its tables; run `make build` first."
            "\nNothing was backfilled."
        )
        print(f"error: {unfinished if built.unfinished() else NO_RECORD}", file=sys.stderr)
        return 2
    try:
        window = read_data_window(Path(env[WAREHOUSE_PATH_ENV]))
        dates = as_of_dates(window, args.start, args.end)
    except BackfillError as error:
        print(f"error: {error}\nNothing was backfilled.", file=sys.stderr)
        return 2
    print(
        f"Backfilling {len(dates)} month end(s), {dates[0]:%Y-%m-%d} to {dates[-1]:%Y-%m-%d}",
        flush=True,
    )
    project_root = project_root or find_project_root()
    child = [
        sys.executable,
        "-m",
        "retail_segments.ops.backfill",
        json.dumps(recorded),
        *(d.isoformat() for d in dates),
    ]
    # dbt's output through the console filter: a package error's message without its stack trace
    log = log_file([], env, project_root)
    returncode = run_on_console(child, project_root, env, log).returncode
    if returncode == 0:
        # each month's own rfm_as_of marked the record as no longer holding
        # (macros/built_vars.sql); the backfill only adds history rows per as-of date, so it
        # holds again once every month succeeded (written once the child running dbt ended)
        built.write([{"name": name, "value": value} for name, value in recorded.items()])
    return returncode


if __name__ == "__main__":
    try:
        succeeded = run_backfill(
            [datetime.fromisoformat(text) for text in sys.argv[2:]], json.loads(sys.argv[1])
        )
    except KeyboardInterrupt:  # Ctrl-C: the command that started this child says what stopped
        sys.exit(130)
    sys.exit(0 if succeeded else 1)
