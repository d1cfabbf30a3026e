"""Watching is free? Images/s of one training run alone against the same run while the Train page is open in
headless Chromium for its whole length, in one process run, on this machine.

The run is the same each time (the baseline, a stratified subset of the data, a few epochs, seed 0), started
with `cifar-lab train`. "Watched" starts the dashboard (`streamlit run app.py`, as `make run` does) and opens the
Train page once the run has started, so the page is attached to it from its first epoch to its end. Alone and
watched alternate --repeats times; each figure is training images over training seconds of the whole run
(metrics.jsonl), so the first epoch's tracing counts the same in both.

    python benchmarks/watch_cost.py [--data ../shared/data/cifar10-jpeg] [--subset 10000] [--epochs 3]
                                    [--repeats 2] [--root DIR]   # DIR: another checkout to measure (before/after)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cifar_core.hardware import describe_machine  # noqa: E402
from tests.browser import free_port, launch_browser, wait_for_app  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cifar10-jpeg"


def train(root: Path, runs_dir: Path, args, env: dict) -> subprocess.Popen:
    command = [sys.executable, "-m", "cifar_core.cli", "--runs-dir", str(runs_dir), "train", "--arch", "baseline",
               "--data", args.data, "--subset", str(args.subset), "--epochs", str(args.epochs), "--patience", "0",
               "--seed", "0"]
    return subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def images_per_s(run_dir: Path) -> tuple[float, list[float]]:
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    seconds = sum(m["seconds"] for m in lines)
    per_epoch = [m["images_per_s"] for m in lines]
    images = sum(m["images_per_s"] * m["seconds"] for m in lines)  # train images over the epoch's training time
    return images / seconds, per_epoch


def alone(root: Path, args, env: dict) -> tuple[float, list[float]]:
    runs_dir = Path(tempfile.mkdtemp(prefix="watch-alone-")) / "runs"
    proc = train(root, runs_dir, args, env)
    run_dir = Path(proc.stdout.readline().strip())
    proc.wait()
    return images_per_s(run_dir)


def cpu_seconds(match) -> float:
    """User + system CPU seconds so far of every process whose command line satisfies `match` (from /proc)."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if proc.name.isdigit() and match(cmdline):
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            continue
    return total


def dashboard_cpu() -> tuple[float, float]:
    """CPU seconds used so far by Streamlit servers and by Chromium."""
    return (cpu_seconds(lambda c: "streamlit run" in c),
            cpu_seconds(lambda c: "chrom" in c and "python" not in c))


def watched(root: Path, args, env: dict, browser, shot: Path | None) -> tuple[float, list[float]]:
    runs_dir = Path(tempfile.mkdtemp(prefix="watch-page-")) / "runs"
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                               "--server.port", str(port)], cwd=root, env={**env, "CIFAR_LAB_RUNS": str(runs_dir)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_app(port)
        proc = train(root, runs_dir, args, env)
        run_dir = Path(proc.stdout.readline().strip())
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"http://127.0.0.1:{port}/train")
        name = json.loads((run_dir / "run.json").read_text())["name"]
        page.wait_for_function("name => document.body.innerText.includes(name)", arg=name, timeout=120_000)
        (server0, browser0), t0 = dashboard_cpu(), time.monotonic()
        while proc.poll() is None:
            time.sleep(0.5)
        (server1, browser1), seconds = dashboard_cpu(), time.monotonic() - t0
        print(f"  while watching ({seconds:.0f} s): Streamlit server {server1 - server0:.1f} CPU s "
              f"({(server1 - server0) / seconds:.1%} of a core), Chromium {browser1 - browser0:.1f} CPU s "
              f"({(browser1 - browser0) / seconds:.1%} of a core)", flush=True)
        if shot:
            page.screenshot(path=str(shot))
        page.close()
        return images_per_s(run_dir)
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA) if DEFAULT_DATA.exists() else "synthetic")
    parser.add_argument("--subset", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout whose app and trainer are measured")
    parser.add_argument("--shot", type=Path, default=None, help="save a screenshot of the page at the run's end")
    args = parser.parse_args()
    root = args.root.resolve()
    env = {**os.environ, "PYTHONPATH": str(root), "CIFAR_LAB_DATA": args.data}
    print(describe_machine())
    print(f"checkout: {root}; baseline, {args.subset:,} images of {args.data}, {args.epochs} epochs, seed 0")
    results: dict[str, list[float]] = {"alone": [], "Train page open": []}
    with launch_browser() as browser:
        for i in range(args.repeats):
            for name in results:
                rate, per_epoch = alone(root, args, env) if name == "alone" else watched(
                    root, args, env, browser, args.shot if i == args.repeats - 1 else None)
                results[name].append(rate)
                print(f"  {name:16s} {rate:7.0f} images/s   per epoch: "
                      + " / ".join(f"{r:.0f}" for r in per_epoch), flush=True)
    base, seen = (statistics.median(results[k]) for k in results)
    print(f"median: alone {base:.0f} images/s, Train page open {seen:.0f} images/s, ratio {seen / base:.2f}")


if __name__ == "__main__":
    main()
