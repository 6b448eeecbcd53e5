"""Debian's chromium for real-browser tests, driven by Playwright (whose own browser download
cannot work offline). Tests mark themselves with ``BROWSER_MARKS`` and open a browser with
``launch_chromium``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason="needs Debian's chromium (.ci/bootstrap test installs it)"),
]
# Without the background-networking switches chromium keeps dialling out on a closed network.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def launch_chromium(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                      args=CHROMIUM_ARGS)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ReviewServer:
    """A real ``tuneloop review`` server on loopback for one test (``with ReviewServer(db) as
    url:``), stopped with its whole process group afterwards."""

    def __init__(self, database: Path, env: dict[str, str] | None = None):
        self.database, self.env = database, env or {}

    def __enter__(self) -> str:
        import os
        import subprocess
        import sys
        import time
        import urllib.request

        port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tuneloop.cli", "review", "--db", str(self.database),
             "--port", str(port)], env={**os.environ, "TUNELOOP_DEBUG": "1", **self.env},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        return url
            except OSError:
                time.sleep(0.3)
        self.process.kill()
        pytest.fail("the review server did not start: " + (self.process.stdout.read() or ""))

    def __exit__(self, *exc: Any) -> None:
        import os

        os.killpg(self.process.pid, 15)
        self.process.wait(timeout=10)


def log_in(page: Any, url: str, name: str, password: str) -> None:
    """Open the app and log in with the password form."""
    page.goto(url)
    page.get_by_role("textbox", name="Name").fill(name)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("textbox", name="Password").press("Enter")
    page.get_by_text(f"Logged in as {name}").wait_for(timeout=30_000)
    for _ in range(150):  # the page trades its one-time grant for the session cookie
        if any(cookie["name"] == "tuneloop_session" for cookie in page.context.cookies()):
            return
        page.wait_for_timeout(100)
    pytest.fail("the session cookie was never set")


def press(page: Any, key: str, button_key: str) -> None:
    """Press a shortcut key once the button it should trigger (by its widget key) is on screen,
    with the focus on the page, not in a text field."""
    page.locator(f".st-key-{button_key} button").wait_for(timeout=30_000)
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.keyboard.press(key)
