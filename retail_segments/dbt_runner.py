"""Run dbt for this project as a child process, with the raw file resolved first."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from retail_segments.paths import (
    PROJECT_ROOT,
    RAW_PATH_ENV,
    WAREHOUSE_PATH_ENV,
    resolve_raw_path,
    warehouse_path,
)


def dbt_executable() -> str:
    """Return the dbt launcher installed beside this Python interpreter."""
    candidate = Path(sys.executable).parent / "dbt"
    return str(candidate) if candidate.exists() else "dbt"


def dbt_environment(
    environ: Mapping[str, str] | None = None, project_root: Path = PROJECT_ROOT
) -> dict[str, str]:
    """Return the environment for a dbt child: the raw file resolved to an absolute path and the
    warehouse directory created. Raises `RawDataNotFoundError` when there is no raw file."""
    env = dict(os.environ if environ is None else environ)
    env[RAW_PATH_ENV] = str(resolve_raw_path(project_root, env))
    warehouse = warehouse_path(project_root, env)
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    env[WAREHOUSE_PATH_ENV] = str(warehouse)
    return env


def run_dbt(
    args: Sequence[str],
    env: Mapping[str, str],
    project_root: Path = PROJECT_ROOT,
    capture: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run ``dbt <args>`` on the project and return the finished process (never raises on a
    non-zero exit; the caller decides)."""
    command = [
        dbt_executable(),
        *args,
        "--project-dir",
        str(project_root),
        "--profiles-dir",
        str(project_root),
    ]
    return subprocess.run(
        command,
        cwd=project_root,
        env=dict(env),
        text=True,
        capture_output=capture,
        check=False,
    )
