"""Shared fixtures: a small synthetic raw file, a dbt build on it, and the real file if present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from dbt_helpers import PROJECT_ROOT, Workspace, assert_built

from retail_segments.ops.paths import RawDataNotFoundError, resolve_raw_path
from retail_segments_dev.synthetic import generate_raw_lines, write_raw_file

SYNTHETIC_CUSTOMERS = 150
SYNTHETIC_SEED = 7


@pytest.fixture(scope="session")
def synthetic_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small raw file in the exact raw format, with every quirk of the real one."""
    lines = generate_raw_lines(n_customers=SYNTHETIC_CUSTOMERS, seed=SYNTHETIC_SEED)
    return write_raw_file(lines, tmp_path_factory.mktemp("raw") / "synthetic.csv.zst")


@pytest.fixture(scope="session")
def synthetic_build(tmp_path_factory: pytest.TempPathFactory, synthetic_raw: Path) -> Workspace:
    """The whole project built and tested by ``dbt build`` on the synthetic file."""
    workspace = Workspace(tmp_path_factory.mktemp("synthetic_build"))
    assert_built(workspace.build(synthetic_raw))
    return workspace


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
