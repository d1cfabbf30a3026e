"""Model or label: how long the Misclassified page's Map view takes in headless Chromium, with a full run's
10,000 test images: from the click on "Map of what it sees" until the map is drawn, and from a dragged region
until its images are shown. Each is measured --rounds times in one browser session (first: Streamlit's caches cold).

    python benchmarks/map_page.py RUNS_DIR RUN_NAME_PREFIX [--data ../shared/data/cifar10-jpeg] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cifar_core.hardware import describe_machine  # noqa: E402
from tests.browser import launch_browser, serve_app, wait_rendered  # noqa: E402

CHART = ":is(canvas, svg.marks) >> visible=true"


def one_round(page, url: str, run_prefix: str) -> tuple[float, float]:
    page.goto(url + "/misclassified", timeout=120_000)
    wait_rendered(page, "Misclassified images", timeout=300_000, settle_ms=0)
    page.get_by_role("combobox", name="Run", exact=True).click()
    page.get_by_role("option", name=__import__("re").compile(f"^{run_prefix}")).click()
    wait_rendered(page, "Misclassified images", timeout=300_000, settle_ms=0)
    started = time.perf_counter()
    page.get_by_text("Map of what it sees").click()
    page.get_by_text("Drag a region on the map").wait_for(timeout=300_000)
    page.locator(CHART).first.wait_for(timeout=300_000)
    drawn = time.perf_counter() - started
    box = page.locator(CHART).first.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.1, box["y"] + box["height"] * 0.4)
    page.mouse.down()
    started = time.perf_counter()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.6, steps=4)
    page.mouse.up()
    page.get_by_text("images in the region").wait_for(timeout=300_000)
    wait_rendered(page, "Misclassified images", timeout=300_000, settle_ms=0)
    return drawn, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("runs_dir", type=Path)
    parser.add_argument("run_prefix")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10-jpeg"))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(describe_machine())
    times = []
    with serve_app({"CIFAR_LAB_RUNS": str(args.runs_dir), "CIFAR_LAB_DATA": args.data}) as url, \
            launch_browser() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 2400})
        for _ in range(args.rounds):
            times.append(one_round(page, url, args.run_prefix))
    for name, values in (("map drawn", [t[0] for t in times]), ("region's images", [t[1] for t in times])):
        print(f"{name:16s} first {values[0]:.2f} s; then min {min(values[1:] or values):.2f} s, "
              f"median {statistics.median(values[1:] or values):.2f} s")


if __name__ == "__main__":
    main()
