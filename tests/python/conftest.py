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
