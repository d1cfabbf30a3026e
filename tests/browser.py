"""Helpers to drive the real app in headless Debian Chromium through Playwright (no browser download)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PAGES = [("Architectures", "Architectures"), ("Train", "Train"), ("Runs", "Runs"), ("Compare", "Compare runs"),
         ("Misclassified", "Misclassified images"), ("Experiments", "Experiments")]


def chromium_missing() -> str | None:
    """Why the browser test cannot run here, or None."""
    if not shutil.which("chromium") and not shutil.os.path.exists(CHROMIUM):
        return "Debian's chromium is not installed (apt-get install chromium); `make test` installs it where it can"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is missing (pip install -e '.[dev]')"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_app(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).status == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"streamlit did not answer on port {port} within {timeout:.0f} s")


@contextlib.contextmanager
def serve_app(env: dict[str, str] | None = None):
    """`streamlit run app.py` on a free localhost port, as `make run` starts it; yields its URL."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                             "--server.port", str(port)], cwd=ROOT, env={**os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_app(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@contextlib.contextmanager
def launch_browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def visible_box(locator, timeout_s: float = 60) -> dict:
    """The element's box once it is on screen: a chart redrawn by a late rerun is replaced, and between the two
    there is none (bounding_box() answers None)."""
    deadline = time.monotonic() + timeout_s
    while (box := locator.bounding_box()) is None:
        assert time.monotonic() < deadline, f"{locator} never stayed on screen"
        locator.wait_for(state="visible", timeout=timeout_s * 1000)
    return box


def wait_rendered(page, heading: str, timeout: float = 60_000, settle_ms: int = 1500) -> None:
    """Wait for the page's title, for Streamlit to finish running the script and for its images;
    then `settle_ms` more for charts to finish drawing (screenshots need it, timings pass 0)."""
    page.get_by_role("heading", name=heading, exact=True).first.wait_for(timeout=timeout)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"], "
                           "[data-testid=\"stSpinner\"]')", timeout=timeout)
    page.wait_for_function("() => [...document.images].every(img => img.complete)", timeout=timeout)
    page.wait_for_timeout(settle_ms)
