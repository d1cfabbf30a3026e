"""Page-open times of the dashboard in headless Chromium, with a screenshot of each page.

Starts `streamlit run app.py` on a free localhost port, measures cold start (process start to the first
page rendered) and then each page (navigation click to its title and content rendered).

    python benchmarks/page_times.py [--out artifacts/screenshots]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser import PAGES, free_port, launch_browser, wait_for_app  # noqa: E402

# Text that appears only once each page has rendered to its end (with the runs a user has).
LAST_ELEMENT = {"Architectures": "Train this architecture", "Train": "Start training", "Runs": "Delete run",
                "Compare": "What changed between two models", "Misclassified": "test #",
                "Experiments": "Download report"}


def rendered(page, title: str) -> None:
    """Poll every 50 ms (Playwright's own waits back off to 1 s, which would blur the timings)."""
    script = "text => document.body.innerText.includes(text)"
    page.wait_for_function(script, arg=LAST_ELEMENT[title], polling=50, timeout=60_000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "artifacts" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    started = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                               "--server.port", str(port)], cwd=ROOT, env=os.environ.copy(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_app(port)
        print(f"server up (health check answers): {time.perf_counter() - started:.2f} s")
        with launch_browser() as browser:
            page = browser.new_page(viewport={"width": 1500, "height": 2400})
            page.goto(f"http://127.0.0.1:{port}/")
            rendered(page, "Architectures")
            print(f"cold start (server start to first page rendered): {time.perf_counter() - started:.2f} s")
            page.wait_for_timeout(1500)
            page.screenshot(path=str(args.out / "architectures.png"), full_page=True)
            for title, _ in PAGES[1:]:
                t0 = time.perf_counter()
                page.get_by_role("link", name=title).first.click()
                rendered(page, title)
                print(f"{title:14s} {time.perf_counter() - t0:.2f} s")
                page.wait_for_timeout(1500)
                page.screenshot(path=str(args.out / f"{title.lower()}.png"), full_page=True)
    finally:
        server.terminate()
        server.wait(10)
    print(f"screenshots in {args.out}")


if __name__ == "__main__":
    main()
