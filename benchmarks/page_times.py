"""Dashboard speed in headless Chromium: first render against a bare one-title Streamlit page, page switches
with many runs, and `cifar-lab runs`; a screenshot of each page.

Both apps are started the same way (`python -m streamlit run FILE`, headless, a free localhost port) and timed
from process start to their last element rendered. The runs folder holds --runs copies of the finished runs
found in --source (round-robin), so page times are measured at a realistic scale.

    python benchmarks/page_times.py [--source artifacts/runs] [--runs 200] [--out artifacts/screenshots]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cifar_core.hardware import describe_machine  # noqa: E402
from tests.browser import PAGES, free_port, launch_browser, wait_for_app  # noqa: E402

# Text that appears only once each page has rendered to its end (with the runs a user has).
LAST_ELEMENT = {"Architectures": "Spec as JSON", "Train": "Start training", "Runs": "Delete run",
                "Compare": "What changed between two models", "Misclassified": "test #",
                "Experiments": "No studies yet"}
BARE_APP = 'import streamlit as st\nst.title("Bare page")\n'


def rendered(page, text: str) -> None:
    """Poll every 50 ms (Playwright's own waits back off to 1 s, which would blur the timings)."""
    page.wait_for_function("text => document.body.innerText.includes(text)", arg=text, polling=50, timeout=120_000)


def cold_start(browser, app: Path, text: str, env: dict) -> float:
    """Seconds from starting `streamlit run app` to `text` rendered in a fresh browser page."""
    port = free_port()
    started = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(app), "--server.headless", "true",
                               "--server.port", str(port)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_app(port)
        page = browser.new_page(viewport={"width": 1500, "height": 2400})
        page.goto(f"http://127.0.0.1:{port}/")
        rendered(page, text)
        return time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(10)


def copy_runs(source: Path, target: Path, n: int) -> int:
    """`n` run directories in `target`, copied round-robin from the finished runs in `source`."""
    finished = [p for p in sorted(source.iterdir()) if (p / "report.json").exists()] if source.is_dir() else []
    if not finished:
        raise SystemExit(f"No finished runs in {source}: train one first (cifar-lab train --arch baseline).")
    for i in range(n):
        run_dir = target / f"copy-{i:03d}"
        shutil.copytree(finished[i % len(finished)], run_dir)
        meta = json.loads((run_dir / "run.json").read_text())
        meta.update(id=run_dir.name, name=run_dir.name)
        (run_dir / "run.json").write_text(json.dumps(meta))
    return len(finished)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=ROOT / "artifacts" / "runs")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--out", type=Path, default=ROOT / "artifacts" / "screenshots")
    parser.add_argument("--repeat", type=int, default=3, help="cold starts and rounds of page switches")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print(describe_machine())
    with tempfile.TemporaryDirectory() as tmp:
        runs_dir = Path(tmp) / "runs"
        distinct = copy_runs(args.source, runs_dir, args.runs)
        print(f"runs: {args.runs} copies of {distinct} finished runs from {args.source}")
        env = {**os.environ, "CIFAR_LAB_RUNS": str(runs_dir)}
        bare = Path(tmp) / "bare.py"
        bare.write_text(BARE_APP)
        cli_times = []
        for _ in range(3):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "cifar_core.cli", "runs"], env=env, check=True,
                           stdout=subprocess.DEVNULL)
            cli_times.append(time.perf_counter() - t0)
        print(f"cifar-lab runs ({args.runs} runs): {min(cli_times):.2f} s best of 3 "
              f"({', '.join(f'{t:.2f}' for t in cli_times)})")
        with launch_browser() as browser:
            bare_s, app_s = [], []
            for _ in range(args.repeat):  # alternated, so drift on a shared machine hits both alike
                bare_s.append(cold_start(browser, bare, "Bare page", env))
                app_s.append(cold_start(browser, ROOT / "app.py", LAST_ELEMENT["Architectures"], env))
            print(f"first render, bare one-title page: {statistics.median(bare_s):.2f} s median of {args.repeat} "
                  f"({', '.join(f'{t:.2f}' for t in bare_s)})")
            print(f"first render, dashboard (Architectures): {statistics.median(app_s):.2f} s "
                  f"({', '.join(f'{t:.2f}' for t in app_s)})  ratio "
                  f"{statistics.median(app_s) / statistics.median(bare_s):.2f}")
            page_switches(browser, env, args.out, args.repeat)
    print(f"screenshots in {args.out}")


def page_switches(browser, env: dict, out: Path, rounds: int) -> None:
    """Each page opened from the navigation, timed from the click to its last element: the first visit
    (which may import what the page needs) and the median of the later ones."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                               "--server.port", str(port)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    times: dict[str, list[float]] = {title: [] for title, _ in PAGES}
    try:
        wait_for_app(port)
        page = browser.new_page(viewport={"width": 1500, "height": 2400})
        page.goto(f"http://127.0.0.1:{port}/")
        rendered(page, LAST_ELEMENT["Architectures"])
        for round_ in range(rounds):
            for title, _ in [*PAGES[1:], PAGES[0]]:
                t0 = time.perf_counter()
                page.get_by_role("link", name=title).first.click()
                rendered(page, LAST_ELEMENT[title])
                times[title].append(time.perf_counter() - t0)
                page.wait_for_timeout(500)
                if round_ == 0:
                    page.screenshot(path=str(out / f"{title.lower()}.png"), full_page=True)
    finally:
        server.terminate()
        server.wait(10)
    for title, seconds in times.items():
        print(f"page switch to {title:14s} first visit {seconds[0]:.2f} s, later {statistics.median(seconds[1:]):.2f} s"
              f" ({', '.join(f'{t:.2f}' for t in seconds[1:])})")


if __name__ == "__main__":
    main()
