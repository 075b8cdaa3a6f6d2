"""Headless Chromium (Debian's ``chromium`` package, installed by ``make test``) for browser tests.

`dump_dom` returns the DOM after the page's scripts ran (Chromium's ``--dump-dom``). `open_page`
drives a page through the DevTools protocol over a pipe (``--remote-debugging-pipe``: no port, no
extra package): it records every request the page sends, evaluates JavaScript, moves and clicks
the mouse as a user would, and saves full-page screenshots.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--no-default-browser-check",
    "--metrics-recording-only",
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


class _DevTools:
    """A minimal DevTools protocol client over Chromium's debugging pipe (NUL-framed JSON)."""

    def __init__(self, process: subprocess.Popen[bytes], to_browser: int, from_browser: int):
        self.process = process
        self.to_browser = to_browser
        self.from_browser = from_browser
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            remaining = deadline - time.monotonic()
            assert remaining > 0, "Chromium did not answer over the DevTools pipe in time"
            ready, _, _ = select.select([self.from_browser], [], [], remaining)
            if ready:
                chunk = os.read(self.from_browser, 1 << 20)
                assert chunk, f"Chromium closed the DevTools pipe (exit {self.process.poll()})"
                self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, params: dict[str, Any] | None = None) -> None:
        """Send one browser-level command without waiting for its answer."""
        self.next_id += 1
        command = {"id": self.next_id, "method": method, "params": params or {}}
        os.write(self.to_browser, json.dumps(command).encode() + b"\0")

    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session: str | None = None,
        timeout: float = 60,
    ) -> dict[str, Any]:
        """Send one command and return its result (events read meanwhile are kept)."""
        self.next_id += 1
        command: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            command["sessionId"] = session
        os.write(self.to_browser, json.dumps(command).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            message = self._read_message(deadline)
            if message.get("id") == self.next_id:
                assert "error" not in message, f"{method}: {message['error']}"
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def wait_for_event(self, method: str, timeout: float = 60) -> dict[str, Any]:
        """Return the first event named method (read so far or arriving before timeout)."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for event in self.events[seen:]:
                if event["method"] == method:
                    return event
            seen = len(self.events)
            message = self._read_message(deadline)
            if "method" in message:
                self.events.append(message)


class Page:
    """A page open in headless Chromium, driven over the DevTools protocol (see `open_page`)."""

    def __init__(self, devtools: _DevTools, session: str, width: int):
        self._devtools = devtools
        self._session = session
        self.width = width

    def _call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._devtools.call(method, params, self._session)

    @property
    def requests(self) -> list[str]:
        """The URL of every request the page sent so far (the document first), in order."""
        return [
            event["params"]["request"]["url"]
            for event in self._devtools.events
            if event["method"] == "Network.requestWillBeSent"
        ] + [
            event["params"]["url"]
            for event in self._devtools.events
            if event["method"] == "Network.webSocketCreated"
        ]

    def evaluate(self, expression: str) -> Any:
        """Return the JSON value of a JavaScript expression evaluated in the page."""
        result = self._call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def wait_until(self, expression: str, timeout: float = 60) -> None:
        """Poll a JavaScript expression until it is true (fail after timeout seconds)."""
        deadline = time.monotonic() + timeout
        while not self.evaluate(expression):
            assert time.monotonic() < deadline, f"the page never satisfied: {expression}"
            time.sleep(0.2)

    def _mouse(self, kind: str, x: float, y: float, buttons: int = 0) -> None:
        button = "left" if kind != "mouseMoved" or buttons else "none"
        self._call(
            "Input.dispatchMouseEvent",
            {
                "type": kind,
                "x": x,
                "y": y,
                "button": button,
                "buttons": buttons,
                "clickCount": 1 if kind != "mouseMoved" else 0,
            },
        )

    def hover(self, x: float, y: float) -> None:
        """Move the mouse to (x, y) in CSS pixels of the viewport."""
        self._mouse("mouseMoved", x, y)

    def click(self, x: float, y: float) -> None:
        """Press and release the left button at (x, y)."""
        self._mouse("mouseMoved", x, y)
        self._mouse("mousePressed", x, y, buttons=1)
        self._mouse("mouseReleased", x, y)

    def drag(self, start: tuple[float, float], end: tuple[float, float], steps: int = 8) -> None:
        """Drag with the left button from start to end."""
        self._mouse("mouseMoved", *start)
        self._mouse("mousePressed", *start, buttons=1)
        for step in range(1, steps + 1):
            x = start[0] + (end[0] - start[0]) * step / steps
            y = start[1] + (end[1] - start[1]) * step / steps
            self._mouse("mouseMoved", x, y, buttons=1)
        self._mouse("mouseReleased", *end)

    def screenshot(self, out: Path) -> Path:
        """Save a PNG of the whole page (the viewport grows to the page's height) to out."""
        height = self.evaluate("document.documentElement.scrollHeight")
        self._call(
            "Emulation.setDeviceMetricsOverride",
            {"width": self.width, "height": int(height), "deviceScaleFactor": 1, "mobile": False},
        )
        shot = self._call("Page.captureScreenshot", {"format": "png"})
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(base64.b64decode(shot["data"]))
        return out


@contextmanager
def open_page(url: str, width: int = 1400, timeout: float = 90) -> Iterator[Page]:
    """Open url in headless Chromium, recording every request the page sends.

    Parameters
    ----------
    url : str
        The page (e.g. a ``file://`` URL).
    width : int
        Viewport width in CSS pixels (height 900 until `Page.screenshot` grows it).
    timeout : float
        Seconds to wait for the load event.

    Yields
    ------
    Page
        The page after its load event; Chromium is closed on exit.
    """
    to_browser_read, to_browser = os.pipe()
    from_browser, from_browser_write = os.pipe()

    def _pipes_as_fds_3_and_4() -> None:
        # In the child: Chromium reads commands on fd 3 and writes on fd 4. Copy both ends
        # above 10 first, so that neither is overwritten by the other's dup2.
        reading = fcntl.fcntl(to_browser_read, fcntl.F_DUPFD, 10)
        writing = fcntl.fcntl(from_browser_write, fcntl.F_DUPFD, 10)
        os.dup2(reading, 3)
        os.dup2(writing, 4)

    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        process = subprocess.Popen(
            [
                chromium_executable(),
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                "--remote-debugging-pipe",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_pipes_as_fds_3_and_4,  # the test process starts no threads here
            pass_fds=(3, 4),
        )
        os.close(to_browser_read)
        os.close(from_browser_write)
        devtools = _DevTools(process, to_browser, from_browser)
        try:
            target = devtools.call("Target.createTarget", {"url": "about:blank"})
            session = devtools.call(
                "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
            )["sessionId"]
            page = Page(devtools, session, width)
            page._call("Network.enable")
            page._call("Page.enable")
            page._call(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False},
            )
            page._call("Page.navigate", {"url": url})
            devtools.wait_for_event("Page.loadEventFired", timeout)
            yield page
        finally:
            with suppress(OSError):  # Chromium may be gone already
                devtools.send("Browser.close")
            os.close(to_browser)
            os.close(from_browser)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
