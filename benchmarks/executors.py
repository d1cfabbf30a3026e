"""The same tiny study with the `local` executor (one run after another) and the `ray` executor (one Ray task per
run on a Ray started on this machine, one CPU per run), end to end through `cifar-lab study`: wall time of each
and the speed-up. Both use every core: a local run takes all of them, each Ray run one.

    python benchmarks/executors.py [--seeds 4] [--epochs 3] [--subset 2000] [--data synthetic]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cifar_core import hardware
from cifar_core.studies import executors, records


def run_study(executor: str, args: argparse.Namespace, root: Path) -> tuple[float, str]:
    """Wall seconds of `cifar-lab study seeds ...` from the command to the study's end, and its status."""
    cmd = [sys.executable, "-m", "cifar_core.cli", "--runs-dir", str(root / executor / "runs"), "study", "seeds",
           "--arch", args.arch, "--seeds", str(args.seeds), "--epochs", str(args.epochs), "--patience", "0",
           "--subset", str(args.subset), "--data", args.data, "--executor", executor]
    if executor == "ray":
        cmd += ["--cpus-per-run", "1"]
    start = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - start
    study = records.list_studies(root / executor / "studies")[0]
    if done.returncode:
        print(done.stdout[-2000:], done.stderr[-2000:], file=sys.stderr)
    return seconds, records.status(study)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="baseline")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--subset", type=int, default=2000)
    parser.add_argument("--data", default="synthetic")
    args = parser.parse_args()
    print(hardware.describe_machine(), flush=True)
    print(f"study: {args.seeds} runs of {args.arch}, {args.epochs} epochs on {args.subset} images of {args.data}",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="cifar-lab-executors-") as tmp:
        times = {}
        for executor in executors.EXECUTORS:
            seconds, status = run_study(executor, args, Path(tmp))
            times[executor] = seconds
            print(f"{executor:6s} {seconds:7.1f} s  ({status})", flush=True)
    print(f"speed-up of ray over local: {times['local'] / times['ray']:.2f}x on {hardware.usable_cores()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
