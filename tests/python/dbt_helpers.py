"""Helpers for tests that run the real dbt project into a scratch warehouse."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import duckdb

from retail_segments.dbt_runner import run_dbt


@dataclass(frozen=True)
class Workspace:
    """A scratch warehouse with its own dbt target and log directories."""

    root: Path

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    def dbt(self, raw_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
        """Run dbt on the project against raw_path into this workspace's warehouse."""
        env = {
            **os.environ,
            "RETAIL_RAW_PATH": str(raw_path),
            "RETAIL_DUCKDB_PATH": str(self.warehouse),
        }
        dirs = ["--target-path", str(self.root / "target"), "--log-path", str(self.root / "logs")]
        return run_dbt([*args, *dirs], env, capture=True)

    def build(self, raw_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``dbt build`` (plus args)."""
        return self.dbt(raw_path, "build", *args)

    def query(self, sql: str) -> list[tuple]:
        """Run sql read-only against the warehouse and return all rows."""
        with duckdb.connect(str(self.warehouse), read_only=True) as connection:
            return connection.sql(sql).fetchall()

    def frame(self, sql: str):
        """Run sql read-only against the warehouse and return a pandas DataFrame."""
        with duckdb.connect(str(self.warehouse), read_only=True) as connection:
            return connection.sql(sql).df()


def assert_built(result: subprocess.CompletedProcess[str]) -> None:
    """Fail the test with dbt's own output when a dbt command did not succeed."""
    assert result.returncode == 0, f"dbt failed:\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}"
