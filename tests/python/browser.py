"""Headless Chromium (Debian's ``chromium`` package, installed by ``make test``) for browser tests:
the DOM after the page's scripts ran, and screenshots."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_executable() -> str:
    """Return the chromium binary, or fail with how to install it."""
    found = shutil.which("chromium")
    assert found, "chromium is not installed: `make test` installs it (apt-get install chromium)"
    return found


def _run_chromium(url: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        return subprocess.run(
            [chromium_executable(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, url],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def dump_dom(url: str, virtual_time_ms: int = 10_000) -> str:
    """Return the page's DOM once its scripts ran (virtual_time_ms of virtual time)."""
    finished = _run_chromium(url, f"--virtual-time-budget={virtual_time_ms}", "--dump-dom")
    assert finished.returncode == 0, finished.stderr[-2000:]
    return finished.stdout


def screenshot(url: str, out: Path, window: tuple[int, int], virtual_time_ms: int = 10_000) -> Path:
    """Save a PNG screenshot of url at the given window size to out."""
    out.parent.mkdir(parents=True, exist_ok=True)
    finished = _run_chromium(
        url,
        f"--virtual-time-budget={virtual_time_ms}",
        f"--window-size={window[0]},{window[1]}",
        f"--screenshot={out}",
    )
    assert finished.returncode == 0 and out.is_file(), finished.stderr[-2000:]
    return out
