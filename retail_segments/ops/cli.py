"""Command line: ``python -m retail_segments [--project-dir DIR]
build|prepare|backfill|clean-warehouse|report|docs``.

The project is found from the working directory (or ``--project-dir``, before or after the
command, / ``RETAIL_PROJECT_DIR``;
`retail_segments.ops.paths.find_project_root`), so the installed ``retail-segments`` command
works from anywhere inside a checkout.

``build`` prepares the run (`retail_segments.ops.preflight`: finds the raw file, checks the
settings and every input file, lands them, decides whether the warehouse must be rebuilt from
scratch), then runs ``dbt build``; any further arguments go to dbt (e.g. ``build --select
customer_rfm+``). A problem found while preparing stops with exit code 2 and nothing is built.
When dbt exits 0 (every model built, every test passed) it publishes the read-only serving copy
(`retail_segments.ops.publish`); otherwise nothing is published.

``prepare [dbt args]`` only prepares, for running ``dbt build`` (with the same ``--vars``) yourself.

``backfill [--start YYYY-MM] [--end YYYY-MM]`` adds customer RFM and segments as of each month end
to ``marts.customer_segment_history`` (`retail_segments.ops.backfill`) and, when every month
succeeded, publishes like ``build``.

``clean-warehouse`` drops the relations of the project's schemas that no model defines (left
behind by removed or renamed models; ``build`` lists them).

``docs [dbt args]`` runs ``dbt docs generate`` on the built warehouse (refused before a build, or
while one runs); ``make docs`` serves the site.

``report`` renders the self-contained HTML report (`retail_segments.report`, plotly charts) from
the serving copy (or ``--warehouse PATH``) to ``--out PATH``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import io
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import duckdb

from retail_segments.ops.backfill import dropped_history_note, history_dates, vars_arg
from retail_segments.ops.dbt_args import DbtBuildArgs, dbt_target
from retail_segments.ops.dbt_runner import ctrl_c_noted, run_dbt, stops_as_ctrl_c
from retail_segments.ops.orphans import drop_orphans, orphan_relations
from retail_segments.ops.paths import (
    PROJECT_DIR_ENV,
    RAW_PATH_ENV,
    WAREHOUSE_PATH_ENV,
    ProjectNotFoundError,
    absolute_path_settings,
    find_project_root,
    names_no_duckdb_file,
    nearest_existing,
    warehouse_path,
)
from retail_segments.ops.preflight import (
    BuiltVars,
    PreflightError,
    PreparedBuild,
    inputs_since_built,
    landing_dir,
    loaded_files,
    prepare,
    prepared_stamp,
    selected_build_problem,
)
from retail_segments.ops.publish import (
    SERVING_DB_NAME,
    PreparedInputs,
    manifest_path,
    new_build_info,
    publish,
    published_relations,
    read_prepared,
    serving_dir,
)
from retail_segments.ops.settings import SettingsError, check_environment

# The dbt target (profiles.yml) whose DuckDB file, RETAIL_DUCKDB_PATH, `build` builds and publishes.
WAREHOUSE_TARGET = "dev"


def _prepare(dbt_args: list[str], fits: bool = True, activate: bool = True) -> PreparedBuild | int:
    """Prepare a dbt run; on a problem print it and return exit code 2."""
    try:
        return prepare(find_project_root(), os.environ, dbt_args, fits=fits, activate=activate)
    except PreflightError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _announce(prepared: PreparedBuild) -> None:
    print(
        f"{prepared.inputs_summary()}\nWarehouse: {prepared.env[WAREHOUSE_PATH_ENV]}",
        flush=True,
    )
    prepared.identity.announce()


def _build(dbt_args: list[str]) -> int:
    from retail_segments.spark.build import build as spark_build
    from retail_segments.spark.build import is_spark_target

    if any(arg == "--profiles-dir" or arg.startswith("--profiles-dir=") for arg in dbt_args):
        # the build gives dbt the project's own (its settings come from the environment)
        print(
            "error: `build` does not take dbt's --profiles-dir: it always runs dbt with this"
            " project's profiles.yml, whose settings come from the environment (RETAIL_DUCKDB_PATH"
            " and the others of docs/configuration.md); nothing was built.\n  Fix: drop the"
            " option and set those variables instead.",
            file=sys.stderr,
        )
        return 2
    if is_spark_target(find_project_root(), dbt_args, os.environ):
        return spark_build(dbt_args)
    target = dbt_target(dbt_args, os.environ)
    if target is not None and target != WAREHOUSE_TARGET:
        # dbt would build elsewhere (lint: in memory; serving: the read-only copy) and the
        # publish would then copy the warehouse it never touched as a new build
        print(
            f"error: `build` builds and publishes the warehouse of the dbt target"
            f" {WAREHOUSE_TARGET!r} (RETAIL_DUCKDB_PATH); the target {target!r} (--target,"
            " DBT_ENGINE_TARGET or DBT_TARGET) builds elsewhere; nothing was built.\n"
            "  Fix: drop --target and unset DBT_ENGINE_TARGET and DBT_TARGET, or use --target"
            " spark (docs/spark.md).",
            file=sys.stderr,
        )
        return 2
    # `current` moves to the new inputs only once every check below passed
    prepared = _prepare(dbt_args, activate=False)
    if isinstance(prepared, int):
        return prepared
    problem = selected_build_problem(prepared, dbt_args, find_project_root())
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    serving_problem = _serving_dir_problem(
        serving_dir(Path(prepared.env[WAREHOUSE_PATH_ENV]), prepared.env)
    )
    if serving_problem:
        print(
            f"error: {serving_problem}; nothing was built.\n"
            "  Fix: set RETAIL_SERVING_DIR to a folder you can write (it is created), or unset it"
            " (serving/ beside the warehouse).",
            file=sys.stderr,
        )
        return 2
    prepared.activate()
    _announce(prepared)
    warehouse = Path(prepared.env[WAREHOUSE_PATH_ENV])
    # a rebuild from scratch keeps only this build's date of the segment history: said after it
    full_refresh = DbtBuildArgs.parse(prepared.dbt_args, prepared.env).value("full_refresh")
    history_before = history_dates(warehouse) if full_refresh else []
    returncode = run_dbt(["build", *prepared.dbt_args], prepared.env).returncode
    # said whether or not the build succeeded: a failure after the history model ran has dropped
    # the dates as well
    note = dropped_history_note(history_before, history_dates(warehouse)) if full_refresh else None
    if note:
        print(note, flush=True)
    if returncode != 0:
        print(
            "dbt build did not succeed: nothing was published; the serving copy is unchanged.",
            file=sys.stderr,
        )
        return returncode
    _report_orphans(prepared.env, list(prepared.dbt_args))
    return _publish(prepared.env, list(prepared.dbt_args))


def _is_html_file(path: Path) -> bool:
    """Whether the file is empty or starts as an HTML page does (after blanks and a byte-order
    mark): ``<!doctype html`` or ``<html``."""
    try:
        with path.open("rb") as handle:
            start = handle.read(512)
    except OSError:
        return True  # the write will say what is wrong
    start = start.removeprefix(b"\xef\xbb\xbf").lstrip().lower()
    return not start or start.startswith((b"<!doctype html", b"<html"))


def _serving_dir_problem(directory: Path) -> str | None:
    """Why the publish could not write the serving folder (found before the build, not after
    it), or None. Nothing is created: the publish makes the folder."""
    existing = nearest_existing(directory)
    if not existing.is_dir():
        return f"the serving folder {directory} cannot be made: {existing} is a file"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"the serving folder {directory} cannot be written ({existing} is not writable)"
    return None


def _report_orphans(env: Mapping[str, str], dbt_args: list[str]) -> None:
    """Say which relations of the project's schemas no model defines (left by removed or renamed
    models); they are not published, and `make clean-warehouse` drops them."""
    try:
        orphans = orphan_relations(Path(env[WAREHOUSE_PATH_ENV]), manifest_path(dbt_args, env))
    except (OSError, ValueError, duckdb.Error) as error:
        print(f"warning: could not look for orphaned relations: {error}", file=sys.stderr)
        return
    if orphans:
        names = ", ".join(orphan.qualified for orphan in orphans)
        print(
            f"Orphaned relations (no model defines them; `make clean-warehouse` drops them):"
            f" {names}",
            flush=True,
        )


def _warehouse_refused(environ: Mapping[str, str], warehouse: Path, nothing_was: str) -> bool:
    """Check the settings and open the warehouse, if there is one, read-only (a file that is no
    DuckDB warehouse is named with the fix); print what is wrong and return True when either
    fails. The checks are the build's: their "nothing was built" becomes "nothing was
    ``nothing_was``" (dropped, generated)."""
    try:
        check_environment(environ)
        loaded_files(warehouse)
    except (SettingsError, PreflightError) as error:
        message = str(error).replace("nothing was built", f"nothing was {nothing_was}")
        print(f"error: {message}", file=sys.stderr)
        return True
    return False


def _clean_warehouse(args: list[str]) -> int:
    """Drop the relations no model defines (dbt parse first, for an up-to-date manifest)."""
    environ = dict(os.environ)
    warehouse = warehouse_path(find_project_root(), environ)
    if _warehouse_refused(environ, warehouse, "dropped"):
        return 2
    if not warehouse.exists():
        print(f"No warehouse at {warehouse}: nothing to clean.")
        return 0
    manifest = manifest_path(args, environ)
    before = _file_state(manifest)
    parsed = run_dbt(["parse", *args], environ)
    if parsed.returncode != 0:
        print(
            "error: `dbt parse` failed (above: an argument it does not take, or a project that"
            " does not parse); nothing was dropped.",
            file=sys.stderr,
        )
        return parsed.returncode
    if _file_state(manifest) in (None, before):
        # the models are read from the manifest: one left by an earlier run, or none, would make
        # live tables look orphaned
        print(
            f"error: `dbt parse` wrote no manifest at {manifest} (--no-write-json, DBT_WRITE_JSON"
            " or DBT_ENGINE_WRITE_JSON turned it off); nothing was dropped.\n  Fix: run"
            " `clean-warehouse` without them.",
            file=sys.stderr,
        )
        return 2
    try:
        orphans = orphan_relations(warehouse, manifest)
        drop_orphans(warehouse, orphans)
    except duckdb.Error as error:
        print(f"error: {error}\nClose any program holding {warehouse} open.", file=sys.stderr)
        return 1
    names = ", ".join(orphan.qualified for orphan in orphans) or "none"
    print(f"Dropped from {warehouse}: {names}")
    return 0


def _docs(args: list[str]) -> int:
    """Generate dbt's documentation site (``dbt docs generate``) from the built warehouse, whose
    catalog gives every relation's columns and types: refused, with the fix, where there is no
    warehouse (dbt would create an empty one and a site without a column type) and, by the
    writers' lock, while a build runs (dbt would rewrite the manifest its publish reads, or
    stop on DuckDB's lock with a stack trace). `make docs` then serves the site."""
    environ = dict(os.environ)
    target = dbt_target(args, environ)
    if target is not None and target != WAREHOUSE_TARGET:
        return run_dbt(["docs", "generate", *args], environ).returncode  # its own warehouse
    warehouse = warehouse_path(find_project_root(), environ)
    if _warehouse_refused(environ, warehouse, "generated"):
        return 2
    if not warehouse.exists():
        print(
            f"error: no warehouse at {warehouse}: the documentation site reads every relation's"
            " columns and types from it; nothing was generated.\n  Fix: run `make build` first"
            " (or point RETAIL_DUCKDB_PATH at the warehouse it built).",
            file=sys.stderr,
        )
        return 2
    return run_dbt(["docs", "generate", *args], environ).returncode


def _file_state(path: Path) -> tuple[int, int, int] | None:
    """What tells a rewritten file from the same one (inode, size, modification time in ns), or
    None when there is no file."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


def _prepare_only(dbt_args: list[str]) -> int:
    prepared = _prepare(dbt_args)
    if isinstance(prepared, int):
        return prepared
    _announce(prepared)
    refresh = " --full-refresh" if prepared.identity.full_refresh else ""
    print(f"Prepared: {prepared.stamp}\nNext: dbt build{refresh} with the same --vars.")
    return 0


def _publish(
    env: Mapping[str, str],
    dbt_args: list[str] | None = None,
    prepared: PreparedInputs | None = None,
) -> int:
    """Publish the tables dbt declares public (read from the manifest of the dbt run with
    dbt_args and env) of the freshly built warehouse named in env, recording the vars and inputs
    of ``prepared`` (else of env's prepared stamp); 0 on success, 1 (with the reason on stderr)
    when publishing failed and the previous serving copy was left in place."""
    warehouse = Path(env[WAREHOUSE_PATH_ENV])
    try:
        info = new_build_info(
            env[RAW_PATH_ENV],
            find_project_root(),
            prepared=prepared or read_prepared(prepared_stamp(env)),
        )
        relations = published_relations(manifest_path(dbt_args or [], env))
        published = publish(warehouse, serving_dir(warehouse, env), info, relations)
    except (duckdb.Error, OSError, RuntimeError) as error:
        print(f"error: publishing failed, serving copy unchanged: {error}", file=sys.stderr)
        return 1
    print(published.summary(), flush=True)
    if published.missing:
        print(
            f"  not in the warehouse, so not published: {', '.join(published.missing)}",
            flush=True,
        )
    return 0


def _backfill(backfill_args: list[str]) -> int:
    from retail_segments.ops.backfill import main as backfill_main
    from retail_segments.spark.build import is_spark_target

    if is_spark_target(find_project_root(), [], os.environ):
        print(
            "error: the backfill runs on the DuckDB build only (DBT_TARGET names a Spark target);"
            " nothing was backfilled.\n  Fix: unset DBT_TARGET (docs/spark.md says what the Spark"
            " build does not do).",
            file=sys.stderr,
        )
        return 2
    # checks only: each month's run prepares (and points `current` at) its own inputs. The vars
    # checked are those the months are built with, the last whole build's (the project's
    # defaults may not fit the data); without a record the backfill refuses after the checks
    recorded = BuiltVars("duckdb", warehouse_path(find_project_root(), os.environ)).read()
    checked = [] if recorded is None else ["--vars", vars_arg(recorded)]
    prepared = _prepare(checked, fits=False, activate=False)
    if isinstance(prepared, int):
        return prepared
    parsed = DbtBuildArgs.parse([], os.environ)
    if parsed.value("full_refresh"):
        # each month's build would rebuild the history from scratch, losing every other date
        print(
            f"error: dbt's full_refresh setting ({parsed.given_as('full_refresh')}) is on; the"
            " backfill's months would each rebuild the history from scratch; nothing was"
            " backfilled.\n  Fix: unset the variable.",
            file=sys.stderr,
        )
        return 2
    if prepared.identity.full_refresh:
        print(
            f"error: the inputs changed since the last build ({prepared.identity.summary()});"
            " run `make build` first.\nNothing was backfilled.",
            file=sys.stderr,
        )
        return 2
    if prepared.unloaded:
        print(
            f"error: new daily files arrived ({', '.join(map(str, prepared.unloaded))}); the"
            " backfill does not load them, and would publish the warehouse without them;"
            " nothing was backfilled.\n  Fix: run `make build` first, then the backfill.",
            file=sys.stderr,
        )
        return 2
    if inputs_since_built(prepared.stamp):
        print(
            "error: the input files or the seeds differ from those of the last whole build (an"
            " edited seed); the backfill builds the history only, beside tables built from the"
            " others, and would publish that mix; nothing was backfilled.\n"
            "  Fix: run `make build` first, then the backfill.",
            file=sys.stderr,
        )
        return 2
    # what the serving copy records of this build is read now: each month prepares a set of its
    # own, and pruning the older sets removes the one checked here after the third month
    inputs = read_prepared(prepared.stamp)
    returncode = backfill_main(backfill_args, prepared.env)
    return _publish(prepared.env, prepared=inputs) if returncode == 0 else returncode


def _is_duckdb_file(path: Path) -> bool:
    """Whether path is a DuckDB database file (its header's magic bytes)."""
    try:
        with path.open("rb") as handle:
            return handle.read(12)[8:12] == b"DUCK"
    except OSError:
        return False


def _report(report_args: list[str]) -> int:
    from retail_segments.report import ReportDataError, write_report

    # the project gives only the defaults: with --warehouse and --out the report runs anywhere
    try:
        warehouse: Path | None = warehouse_path(find_project_root())
    except ProjectNotFoundError as error:
        warehouse, outside = None, error
    default_warehouse = warehouse and serving_dir(warehouse) / SERVING_DB_NAME
    default_out = warehouse and warehouse.parent / "retail_segments_report.html"
    parser = argparse.ArgumentParser(prog="retail-segments report")
    parser.add_argument(
        "--warehouse",
        type=Path,
        default=default_warehouse,
        help="DuckDB file to read, opened read-only (default:"
        f" {default_warehouse or 'the serving copy of the project run in'})",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=default_out,
        help=f"HTML file to write (default: {default_out or 'beside the project warehouse'})",
    )
    args = parser.parse_args(report_args)
    if args.warehouse is None or args.out is None:
        print(
            f"error: {outside}.\n  Fix: run it in the project, or give both --warehouse (the"
            " serving copy) and --out (the HTML file to write).",
            file=sys.stderr,
        )
        return 2
    default_out = default_out or args.out
    # the serving copy's place in the project (outside it there is none to name)
    usual = f" (default {default_warehouse})" if default_warehouse else ""
    if args.warehouse.is_dir():
        print(
            f"error: --warehouse {args.warehouse} is a folder; nothing was written.\n  Fix: pass"
            f" the serving copy's file{usual}, such as"
            f" {args.warehouse / SERVING_DB_NAME}.",
            file=sys.stderr,
        )
        return 2
    if not args.warehouse.is_file():
        # the project's own serving copy is missing until a build publishes it; a path the user
        # gave is theirs to correct
        fix = (
            "run `make build` first (it publishes the serving copy), or pass --warehouse"
            if args.warehouse == default_warehouse
            else f"pass --warehouse the serving copy's file{usual}"
        )
        print(
            f"error: no warehouse at {args.warehouse}; nothing was written.\n  Fix: {fix}.",
            file=sys.stderr,
        )
        return 2
    if not _is_duckdb_file(args.warehouse):
        print(
            f"error: {args.warehouse} is not a DuckDB file; nothing was written.\n  Fix: pass"
            f" --warehouse the serving copy{usual} or a build warehouse.",
            file=sys.stderr,
        )
        return 2
    if args.out.resolve() == args.warehouse.resolve() or _is_duckdb_file(args.out):
        print(
            f"error: --out {args.out} is a DuckDB database, which the report would overwrite;"
            f" nothing was written.\n  Fix: give the HTML file's name, such as {default_out}.",
            file=sys.stderr,
        )
        return 2
    served = {serving_dir(warehouse).resolve()} if warehouse is not None else set()
    if args.warehouse.name == SERVING_DB_NAME:
        served.add(args.warehouse.resolve().parent)
    inside = next((folder for folder in served if args.out.resolve().is_relative_to(folder)), None)
    if inside is not None:
        print(
            f"error: --out {args.out} is inside the serving folder {inside}, which BI tools read"
            " and each build's publish replaces; nothing was written.\n  Fix: give a file"
            f" outside it, such as {default_out}.",
            file=sys.stderr,
        )
        return 2
    if args.out.is_dir():
        print(
            f"error: --out {args.out} is a folder; nothing was written.\n"
            f"  Fix: give the HTML file's name, such as {args.out / default_out.name}.",
            file=sys.stderr,
        )
        return 2
    if args.out.is_file() and not _is_html_file(args.out):
        print(
            f"error: --out {args.out} is a file that holds no HTML page (a data file?), which"
            " the report would overwrite; nothing was written.\n  Fix: give a new file's name"
            f" or an earlier report's, such as {default_out}.",
            file=sys.stderr,
        )
        return 2
    try:
        written = write_report(args.warehouse, args.out)
    except ReportDataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(
            f"error: the report cannot be written to {args.out} ({error.strerror}).\n"
            "  Fix: give --out a file in a folder you can write, with room on its disk.",
            file=sys.stderr,
        )
        return 2
    print(f"Report: {written}")
    return 0


# The commands whose arguments go to dbt: what each does and the dbt command that takes them, for
# `<command> --help` (which neither checks nor lands anything).
_ASKS_DBT = {
    "build": (
        "Check the settings and every input file and land them (prepare), run `dbt build`"
        " with these arguments, then publish the serving copy if every model and test passed.",
        "build",
    ),
    "prepare": (
        "Check the settings and every input file and land them for a dbt run by hand;"
        " give the arguments the dbt run will get (its --vars are checked).",
        "build",
    ),
    "clean-warehouse": (
        "Drop the tables and views no model of the project defines any more (after `dbt parse`"
        " with these arguments).",
        "parse",
    ),
    "docs": (
        "Generate dbt's documentation site from the built warehouse (`make docs` serves it).",
        "docs generate",
    ),
}


def _help(command: str) -> int:
    text, dbt_command = _ASKS_DBT[command]
    print(f"usage: retail-segments {command} [dbt {dbt_command} arguments]\n\n{text}")
    print(f"\nThe arguments of `dbt {dbt_command}`:", flush=True)
    return run_dbt([*dbt_command.split(), "--help"], os.environ).returncode


# The commands that write the warehouse, its landing folder or dbt's artifacts (docs rewrites the
# manifest a build's publish reads): one at a time per warehouse.
_WRITERS = frozenset({"build", "prepare", "backfill", "clean-warehouse", "docs"})


@dataclass
class _Locks:
    """What `_one_at_a_time` holds: ``busy``, why the command must stop (another one holds a
    lock), or None; ``made``, the folders it created for its locks (none existed before)."""

    busy: str | None
    made: list[Path]
    lock_file: Path | None

    def remove_unused_folders(self) -> None:
        """Remove the folders made for the locks that the command left empty, with the empty
        folders it made inside them (dbt's logs/, the warehouse's folder holding only its lock
        file), deepest first: a refused command with a mistyped path leaves nothing behind. No
        file is removed but the lock file. Called while the locks are held; a command that
        opened one of these locks meanwhile finds it gone (`_one_at_a_time` checks) and stops."""
        for folder in sorted(self.made, key=lambda path: len(path.parts), reverse=True):
            for inner, _folders, _files in os.walk(folder, topdown=False):
                if inner != str(folder):
                    with contextlib.suppress(OSError):
                        os.rmdir(inner)  # only when empty
            try:
                left = set(os.listdir(folder))
                if self.lock_file is not None and self.lock_file.parent == folder:
                    if left - {self.lock_file.name}:
                        continue
                    self.lock_file.unlink(missing_ok=True)
                folder.rmdir()
            except OSError:
                continue  # not empty, or not ours to remove: left as it is


@contextlib.contextmanager
def _one_at_a_time(command: str, rest: list[str]) -> Iterator[_Locks]:
    """Hold locks on the warehouse (a file beside it), on its landing folder and on dbt's
    artifacts folder while a command that writes them runs, so that a second one started
    meanwhile, on the same warehouse, on another warehouse sharing the landing folder (its
    prepare would switch the landed inputs under the first build) or from the same project with
    the same artifacts folder (dbt would rewrite the manifest the first one's publish reads),
    stops before it changes anything; yields why it must stop, or None, with the folders made
    for the locks. The locks are the operating system's (flock): a command that ends or is
    killed releases them. A lock whose file or folder is no longer at its path once taken (a
    refused command removed the folders it made) counts as held. Without a usable path no lock
    is taken, and the command's own checks say what is wrong."""
    locks, made = _lock_files(command, rest)
    try:
        held = []
        for descriptor, name, path in locks:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                taken, there = os.fstat(descriptor), os.stat(path)
                if (taken.st_dev, taken.st_ino) != (there.st_dev, there.st_ino):
                    held.append(name)
            except OSError:
                held.append(name)
        busy = None
        if held:
            busy = (
                "another build, backfill, prepare or clean-warehouse is running on this"
                " warehouse, its landing folder or dbt's artifacts folder (it holds"
                f" {' and '.join(held)}); nothing was built or changed.\n  Fix: wait for it to"
                " finish, then run the command again (two warehouses built side by side from"
                " one project each need their own DBT_TARGET_PATH)."
            )
        lock_file = next((path for _descriptor, _name, path in locks if path.is_file()), None)
        yield _Locks(busy, [] if held else made, lock_file)
    finally:
        for descriptor, _name, _path in locks:
            os.close(descriptor)


def _open_made(path: Path, made: list[Path], *, folder: bool) -> int:
    """Open path (a folder, made with its parents, or a file created in its folder) for a lock,
    adding each folder it creates to made. Tried again when a folder vanishes between the mkdir
    and the open (a refused command removing the folders it made)."""
    target = path if folder else path.parent
    for attempt in range(3):
        missing = [each for each in (target, *target.parents) if not each.exists()]
        target.mkdir(parents=True, exist_ok=True)
        made.extend(each for each in reversed(missing) if each not in made)
        try:
            if folder:
                return os.open(path, os.O_RDONLY)
            return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _lock_files(command: str, rest: list[str]) -> tuple[list[tuple[int, str, Path]], list[Path]]:
    """Open descriptors (with names and paths) of what a writing command locks:
    ``.<warehouse file>.lock`` beside the warehouse, the landing folder, dbt's artifacts folder
    (``target/``, or as ``rest``, the command's dbt arguments, and the environment set it) and,
    for a Spark build, the Spark folder (``RETAIL_SPARK_DIR``); none for other commands or
    unusable paths. Also the folders created for them."""
    opened: list[tuple[int, str, Path]] = []
    made: list[Path] = []
    if command not in _WRITERS:
        return opened, made
    try:
        warehouse = warehouse_path(find_project_root(), os.environ)
        if names_no_duckdb_file(os.environ.get(WAREHOUSE_PATH_ENV, "")) or (
            warehouse.exists() and not warehouse.is_file()
        ):
            return opened, made  # refused by the checks (in memory, MotherDuck, a folder, a device)
        lock_path = warehouse.with_name(f".{warehouse.name}.lock")
        descriptor = _open_made(lock_path, made, folder=False)
        opened.append((descriptor, str(lock_path), lock_path))
        landing = landing_dir(warehouse, os.environ)
        descriptor = _open_made(landing, made, folder=True)
        opened.append((descriptor, f"the landing folder {landing}", landing))
        # the backfill's own arguments are not dbt's: its dbt runs take the environment's
        dbt_args = [] if command == "backfill" else rest
        artifacts = manifest_path(dbt_args, os.environ, find_project_root()).parent
        descriptor = _open_made(artifacts, made, folder=True)
        opened.append((descriptor, f"dbt's artifacts folder {artifacts}", artifacts))
        if command == "build" and _is_spark_build(dbt_args):
            # its tables and landed inputs: another warehouse's Spark build may name the same
            from retail_segments.spark.session import spark_dir

            tables = spark_dir(find_project_root(), os.environ)
            descriptor = _open_made(tables, made, folder=True)
            opened.append((descriptor, f"the Spark folder {tables}", tables))
    except (OSError, ValueError):
        pass  # what could be opened is locked; the command's checks name the rest
    return opened, made


def _is_spark_build(dbt_args: list[str]) -> bool:
    from retail_segments.spark.build import is_spark_target

    return is_spark_target(find_project_root(), dbt_args, os.environ)


def _own_project_dir(rest: list[str]) -> tuple[list[str], list[Path]]:
    """rest without ``--project-dir DIR`` / ``--project-dir=DIR``, and the folders they give."""
    kept: list[str] = []
    given: list[Path] = []
    words = iter(rest)
    for word in words:
        if word == "--project-dir" and (value := next(words, None)) is not None:
            given.append(Path(value))
        elif word.startswith("--project-dir="):
            given.append(Path(word.split("=", 1)[1]))
        else:
            kept.append(word)
    return kept, given


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="retail-segments", description=__doc__.split("\n\n")[0].replace("\n", " ")
    )
    parser.add_argument(
        "--project-dir",
        type=Path,
        help=f"the project directory (default: ${PROJECT_DIR_ENV}, else the working directory"
        " or its nearest parent holding this dbt project)",
    )
    parser.add_argument(
        "command", choices=["build", "prepare", "report", "backfill", "clean-warehouse", "docs"]
    )
    rest = parser.add_argument(
        "rest", nargs=argparse.REMAINDER, help="passed on (to dbt for build)"
    )
    rest.required = False  # else a missing command's message calls it required too
    args = parser.parse_args(argv)
    # after the command it is ours too (dbt is always given this project; `dbt --project-dir`
    # would make dbt build another project than the one checked)
    args.rest, after = _own_project_dir(args.rest)
    given = {str(folder) for folder in ([args.project_dir] if args.project_dir else []) + after}
    if len(given) > 1:
        print(
            f"error: --project-dir is given {len(given)} times ({', '.join(sorted(given))});"
            " nothing was built or changed.\n  Fix: give it once.",
            file=sys.stderr,
        )
        return 2
    if given:
        os.environ[PROJECT_DIR_ENV] = given.pop()
    # dbt runs in the project's folder: a relative path setting names a place in this one
    absolute_path_settings(os.environ, Path.cwd())
    try:
        # every step below (and dbt, and the backfill's child) reads the project from here
        os.environ[PROJECT_DIR_ENV] = str(find_project_root())
    except ProjectNotFoundError as error:
        if args.command != "report":  # the report needs the project only for its defaults
            print(f"error: {error}", file=sys.stderr)
            return 2
    if args.command in _ASKS_DBT and {"-h", "--help"} & set(args.rest):
        return _help(args.command)
    if args.command == "backfill":
        from retail_segments.ops.backfill import parse_args

        parse_args(args.rest)  # --help, or an argument it does not take: before anything else
    commands = {
        "build": _build,
        "prepare": _prepare_only,
        "report": _report,
        "backfill": _backfill,
        "clean-warehouse": _clean_warehouse,
        "docs": _docs,
    }
    try:
        # a `kill` or hang-up stops the command as Ctrl-C does, with its message (while dbt runs
        # as a child, it is passed on to dbt: `dbt_runner.run_on_console`)
        with stops_as_ctrl_c(), ctrl_c_noted(), _one_at_a_time(args.command, args.rest) as locks:
            if locks.busy:
                print(f"error: {locks.busy}", file=sys.stderr)
                return 2
            code = commands[args.command](args.rest)
            if code != 0:
                locks.remove_unused_folders()
            return code
    except KeyboardInterrupt:
        again = (
            "run `make build`, then the backfill again (a backfill stopped half-way leaves the"
            " warehouse's record of its last whole build void)"
            if args.command == "backfill"
            else "run the command again"
        )
        print(
            f"\ninterrupted: `{args.command}` stopped before it finished. A build publishes the"
            " serving copy only after every model and test passed, so it is as before unless"
            f" that had happened; {again}.",
            file=sys.stderr,
        )
        return 130
    except BrokenPipeError:
        _drop_further_output(sys.stdout)
        try:
            print(
                f"error: the output of `{args.command}` was closed (piped into a command that"
                " stopped reading, such as head), so it stopped before it finished (and dbt, had"
                " it started). A build publishes the serving copy only after every model and"
                " test passed, so it is as before unless that had happened.\n  Fix: send the"
                " output to a file"
                f" and read that, e.g. `retail-segments {args.command} > {args.command}.log 2>&1;"
                f" head {args.command}.log`.",
                file=sys.stderr,
            )
        except BrokenPipeError:  # its errors went into the same pipe
            _drop_further_output(sys.stderr)
        return 141  # as a shell reports a command ended by SIGPIPE


def _drop_further_output(stream: TextIO) -> None:
    """Point ``stream`` (a standard output whose reader has gone) at /dev/null, so that Python's
    flush of it on exit does not fail again ("Exception ignored ... BrokenPipeError")."""
    try:
        descriptor = os.open(os.devnull, os.O_WRONLY)
        os.dup2(descriptor, stream.fileno())
        os.close(descriptor)
    except (OSError, ValueError, io.UnsupportedOperation):
        pass  # no descriptor of its own (a test's captured output): nothing is flushed to it


if __name__ == "__main__":
    sys.exit(main())
