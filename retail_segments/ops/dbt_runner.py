"""Run dbt for this project as a child process (prepare the inputs first:
`retail_segments.ops.preflight.prepare`)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from retail_segments.ops.paths import find_project_root


def dbt_executable() -> str:
    """Return the dbt launcher installed beside this Python interpreter."""
    candidate = Path(sys.executable).parent / "dbt"
    return str(candidate) if candidate.exists() else "dbt"


def run_dbt(
    args: Sequence[str],
    env: Mapping[str, str],
    project_root: Path | None = None,
    capture: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run ``dbt <args>`` on the project and return the finished process (never raises on a
    non-zero exit; the caller decides)."""
    project_root = project_root or find_project_root()
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
