"""Shared fixtures: a small synthetic raw file, a dbt build on it, and the real file if present.

The synthetic file and its build are made once per test session, not once per pytest-xdist
worker: the first worker that needs one makes it in the session's shared directory (under a lock)
and every worker uses it from there (the raw file, read only) or works on a copy of it (the build,
which tests also run dbt on)."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from dbt_helpers import PROJECT_ROOT, SESSION_PARSE, CliInProcess, Workspace, assert_built

from retail_segments.ops.paths import RawDataNotFoundError, resolve_raw_path
from retail_segments_dev.synthetic import generate_raw_lines, write_raw_file

SYNTHETIC_CUSTOMERS = 150
SYNTHETIC_SEED = 7

# Two pytest workers keep both cores busy, and OpenMP (scikit-learn's t-SNE and KMeans) spins its
# idle threads by default: on the synthetic file's 150 customers a two-thread t-SNE then took 28 s
# instead of 0.9 s with threads that sleep while they wait. Every dbt run the tests start inherits
# this. (`make build` keeps OpenMP's default: on the real file, idle, spinning is faster.)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Spark's JVM (the Spark build's, and test_spark's own session) compiles hot code with both JIT
# tiers and collects garbage on parallel threads by default: for the tests' small files, hundreds
# of short queries and then the end, that costs more CPU than it saves, CPU the other worker
# needs. The first tier alone, one compiler thread and one GC thread are JVM options only (no
# result changes). The synthetic file's Spark build alone, on an idle machine: 551 s of CPU in
# 310 s without them, 424 s in 265 s with them (2026-12-02). spark-submit reads this variable;
# `make build TARGET=spark` keeps the JVM's defaults.
os.environ.setdefault(
    "SPARK_SUBMIT_OPTS", "-XX:TieredStopAtLevel=1 -XX:CICompilerCount=1 -XX:+UseSerialGC"
)


def _made_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], None]
) -> Path:
    """The directory ``name`` in the directory shared by every worker of this session, made by
    ``make`` in the first worker that asks for it while the others wait. A failure is recorded,
    so the other workers fail with the same message instead of making it again."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    directory, done, failed = shared / name, shared / f"{name}.done", shared / f"{name}.failed"
    with (shared / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if failed.exists():
            pytest.fail(failed.read_text(), pytrace=False)
        if not done.exists():
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir()
            try:
                make(directory)
            except BaseException as error:
                failed.write_text(f"making the shared {name} failed: {error}")
                raise
            done.touch()
    return directory


@pytest.fixture(scope="session")
def synthetic_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small raw file in the exact raw format, with every quirk of the real one (read only)."""

    def make(directory: Path) -> None:
        lines = generate_raw_lines(n_customers=SYNTHETIC_CUSTOMERS, seed=SYNTHETIC_SEED)
        write_raw_file(lines, directory / "synthetic.csv.zst")

    return _made_once(tmp_path_factory, "raw", make) / "synthetic.csv.zst"


@pytest.fixture(scope="session")
def synthetic_build(tmp_path_factory: pytest.TempPathFactory, synthetic_raw: Path) -> Workspace:
    """The whole project built and tested by ``dbt build`` on the synthetic file: this worker's
    copy of the session's one build (warehouse, dbt target and landing folder)."""

    def make(directory: Path) -> None:
        assert_built(Workspace(directory).build(synthetic_raw))

    built = _made_once(tmp_path_factory, "synthetic_build", make)
    # its parse of the project, for the test warehouses dbt has not parsed it for yet
    SESSION_PARSE.keep(built, {**os.environ, "RETAIL_DUCKDB_PATH": str(Workspace(built).warehouse)})
    copy = tmp_path_factory.mktemp("synthetic_build")
    shutil.copytree(built, copy, symlinks=True, dirs_exist_ok=True)
    # made for the shared build's path: given again for the copy's at its first dbt run
    (copy / "target" / "partial_parse.msgpack").unlink(missing_ok=True)
    return Workspace(copy)


@pytest.fixture(scope="session")
def real_raw() -> Path:
    """The real UCI file, or a skip when this machine does not have it."""
    try:
        return resolve_raw_path(PROJECT_ROOT, os.environ)
    except RawDataNotFoundError as error:
        pytest.skip(f"real data not available: {error}")


@pytest.fixture(scope="session")
def real_build(tmp_path_factory: pytest.TempPathFactory, real_raw: Path) -> Workspace:
    """The whole project built by ``dbt build`` on the real file."""
    workspace = Workspace(tmp_path_factory.mktemp("real_build"))
    assert_built(workspace.build(real_raw))
    return workspace


@pytest.fixture
def cli_in_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> CliInProcess:
    """Run the command line in this process, as `run_cli` runs it in a child (see CliInProcess)."""
    return CliInProcess(monkeypatch, capsys)


# The test files that take longest, longest first. `make test` runs pytest in workers that each
# take whole files (pytest-xdist, --dist loadfile) in collection order: starting the long files
# first lets the workers finish together instead of one running a long file at the end alone.
SLOWEST_FILES = (
    "test_real_data.py",
    "test_spark.py",
    "test_bad_input.py",
    "test_input_identity.py",
    "test_history_dbt.py",
    "test_incremental.py",
    "test_report.py",
    "test_segments_dbt.py",
    "test_serving_dbt.py",
    "test_interests_dbt.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the files of `SLOWEST_FILES` first, in that order; a file's tests keep their order."""
    rank = {name: position for position, name in enumerate(SLOWEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
