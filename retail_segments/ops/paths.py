"""Where the project, the raw file and the warehouse live.

The project is the directory holding this dbt project's ``dbt_project.yml`` (``name:
retail_segments``): `find_project_root` takes ``--project-dir`` / ``RETAIL_PROJECT_DIR`` when given,
else the working directory or the nearest parent that is one, so the command works from anywhere
inside a checkout and from an installed package alike.

The raw UCI file is never part of the repository. `resolve_raw_path` looks for it, in order:

1. the path in the environment variable ``RETAIL_RAW_PATH``, when set;
2. ``data/raw/online_retail.csv.zst`` inside the project (gitignored);
3. ``../shared/data/online_retail.csv.zst`` beside the project.

When none exists it raises `RawDataNotFoundError`, whose message names the variable, the paths
tried and where to get the data.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from pathlib import Path

PROJECT_DIR_ENV = "RETAIL_PROJECT_DIR"
PROJECT_NAME = "retail_segments"
RAW_PATH_ENV = "RETAIL_RAW_PATH"
WAREHOUSE_PATH_ENV = "RETAIL_DUCKDB_PATH"
RAW_FILE_NAME = "online_retail.csv.zst"
DEFAULT_WAREHOUSE = Path("warehouse") / "retail_segments.duckdb"
UCI_DATASET_URL = "https://archive.ics.uci.edu/dataset/352/online+retail"
INCOMING_GLOB_ENV = "RETAIL_INCOMING_GLOB"
LANDING_DIR_ENV = "RETAIL_LANDING_DIR"
SERVING_DIR_ENV = "RETAIL_SERVING_DIR"
SPARK_DIR_ENV = "RETAIL_SPARK_DIR"
# The settings that name a file, a folder or a pattern of files (docs/configuration.md).
PATH_SETTINGS = (
    RAW_PATH_ENV,
    WAREHOUSE_PATH_ENV,
    INCOMING_GLOB_ENV,
    LANDING_DIR_ENV,
    SERVING_DIR_ENV,
    SPARK_DIR_ENV,
)


class RawDataNotFoundError(FileNotFoundError):
    """No raw data file at any of the places it is looked for."""


class ProjectNotFoundError(FileNotFoundError):
    """No retail-segments dbt project where it was looked for."""


def is_project_root(path: Path) -> bool:
    """Whether path holds this project's ``dbt_project.yml``."""
    project_file = path / "dbt_project.yml"
    if not project_file.is_file():
        return False
    with project_file.open() as handle:
        return any(line.strip() == f"name: {PROJECT_NAME}" for line in handle)


def find_project_root(start: Path | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """Return the project directory: ``RETAIL_PROJECT_DIR`` when set (it must be the project),
    else start (default: the working directory) or its nearest parent that is the project.
    Raises `ProjectNotFoundError` with what was tried."""
    environ = os.environ if environ is None else environ
    configured = environ.get(PROJECT_DIR_ENV)
    if configured:
        path = Path(configured).expanduser().resolve()
        if is_project_root(path):
            return path
        raise ProjectNotFoundError(
            f"{PROJECT_DIR_ENV} (or --project-dir) = {configured!r} is not the retail-segments"
            " project: no dbt_project.yml with 'name: retail_segments' there"
        )
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if is_project_root(candidate):
            return candidate
    raise ProjectNotFoundError(
        f"{here} is not inside the retail-segments project (no dbt_project.yml with"
        f" 'name: retail_segments' here or above); run from the project directory or pass"
        f" --project-dir (or set {PROJECT_DIR_ENV})"
    )


def raw_path_candidates(
    project_root: Path, environ: Mapping[str, str] | None = None
) -> list[tuple[str, Path]]:
    """Return the places the raw file is looked for, in order, each with where it came from."""
    environ = os.environ if environ is None else environ
    candidates: list[tuple[str, Path]] = []
    if environ.get(RAW_PATH_ENV):
        candidates.append((f"${RAW_PATH_ENV}", Path(environ[RAW_PATH_ENV]).expanduser()))
    candidates.append(("project data/raw/", project_root / "data" / "raw" / RAW_FILE_NAME))
    candidates.append(("../shared/data/", project_root.parent / "shared" / "data" / RAW_FILE_NAME))
    return candidates


def resolve_raw_path(project_root: Path, environ: Mapping[str, str] | None = None) -> Path:
    """Return the absolute path of the raw file to build from.

    An explicitly set ``RETAIL_RAW_PATH`` that points at nothing is an error, not a reason to fall
    back silently to another file.
    """
    environ = os.environ if environ is None else environ
    candidates = raw_path_candidates(project_root, environ)
    if environ.get(RAW_PATH_ENV):
        label, path = candidates[0]
        if path.is_file():
            return path.resolve()
        if path.is_dir():
            raise RawDataNotFoundError(
                f"{RAW_PATH_ENV} points at a folder, not a file: {path}; nothing was built.\n"
                f"  Fix: set {RAW_PATH_ENV} to the raw file itself (the zip, the .xlsx or the"
                " CSV), not the folder that holds it."
            )
        if path.is_symlink():  # a link to nothing, or a loop of links
            raise RawDataNotFoundError(
                f"{RAW_PATH_ENV} points at the symbolic link {path}, which leads to"
                f" {os.readlink(path)}: not a file (its target is missing, or the links loop);"
                f" nothing was built.\n  Fix: set {RAW_PATH_ENV} to the raw file itself, or make"
                " the link point at it."
            )
        raise RawDataNotFoundError(_not_found_message([(label, path)], explicit=True))
    for _label, path in candidates:
        if path.is_file():
            return path.resolve()
    raise RawDataNotFoundError(_not_found_message(candidates, explicit=False))


def _not_found_message(tried: list[tuple[str, Path]], explicit: bool) -> str:
    lines = [
        f"{RAW_PATH_ENV} points at a file that does not exist; nothing was built."
        if explicit
        else "The raw data file (online_retail.csv.zst) was not found; nothing was built.",
        "Paths tried, in order:",
        *(f"  - {path} ({label})" for label, path in tried),
        "Get the data: UCI Machine Learning Repository, 'Online Retail' (id 352),",
        f"  {UCI_DATASET_URL}",
        f"and set {RAW_PATH_ENV} to the downloaded zip (or the .xlsx inside it), or to a CSV with",
        "the header",
        "  InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country",
        "(plain, .gz or .zst; latin-1 or UTF-8), or put it at data/raw/online_retail.csv.zst.",
    ]
    return "\n".join(lines)


def warehouse_path(project_root: Path, environ: Mapping[str, str] | None = None) -> Path:
    """Return the DuckDB file dbt builds into (``RETAIL_DUCKDB_PATH`` or the default), as DuckDB
    names it: its folders' symbolic links followed and ``..`` resolved. (The prepared inputs
    record the warehouse they were prepared for, and dbt's input check compares that with the
    path DuckDB reports; a warehouse folder reached through a link, such as a ``warehouse/``
    linked to a larger disk, was refused on every build.)"""
    environ = os.environ if environ is None else environ
    configured = environ.get(WAREHOUSE_PATH_ENV)
    path = Path(configured).expanduser() if configured else project_root / DEFAULT_WAREHOUSE
    return (path if path.is_absolute() else project_root / path).resolve()


def names_no_duckdb_file(value: str) -> bool:
    """Whether DuckDB reads ``value`` as no file on this machine: an in-memory database
    (``:memory:``) or a MotherDuck one (``md:``, ``motherduck:``)."""
    return value.strip() == ":memory:" or value.strip().startswith(("md:", "motherduck:"))


def absolute_path_settings(environ: MutableMapping[str, str], working_dir: Path) -> None:
    """Make every relative `PATH_SETTINGS` value absolute against ``working_dir``, in place: the
    command line does so with the folder it was started in, before anything reads them, so each
    one names what it names in that folder's shell. (dbt runs in the project's folder: before,
    a relative ``RETAIL_DUCKDB_PATH`` or ``RETAIL_INCOMING_GLOB`` named a place in the project,
    while a relative ``RETAIL_RAW_PATH`` or serving, landing or Spark folder named one in the
    working folder.) ``~`` is left for the readers to expand; an empty value, and a warehouse
    that is no file (``:memory:``, ``md:...``), are left for the settings check to refuse."""
    for name in PATH_SETTINGS:
        value = environ.get(name)
        if name == WAREHOUSE_PATH_ENV and value and names_no_duckdb_file(value):
            continue
        if value and not Path(value).expanduser().is_absolute():
            environ[name] = str(working_dir / value)


def nearest_existing(path: Path) -> Path:
    """path, or its nearest ancestor that exists (what a folder to be made would be made in)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
