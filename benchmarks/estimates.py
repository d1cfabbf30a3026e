"""Study duration estimates against the studies themselves, on this machine.

    python benchmarks/estimates.py [--data SOURCE] [--keep DIR]

In a fresh runs folder, creates and runs three studies of different sizes one after another, each estimated
first as the Experiments page would estimate it: the first from a speed probe alone (nothing has run here yet),
the others from the runs before them. Prints each estimate, the actual duration (launch to the study's end) and
the error, with the CPU. Figures printed, never asserted; a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cifar_core import data, hardware
from cifar_core.model import specs
from cifar_core.model.config import TrainConfig
from cifar_core.store import rundir
from cifar_core.studies import estimates, plans, records

SHARED_JPEG = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg"
# (label, kind, seeds, config, on the image folder rather than synthetic data)
STUDIES = [
    ("small", "seeds", [0, 1], TrainConfig(epochs=2, subset=600), False),
    ("medium", "dropout", None, TrainConfig(epochs=2), False),
    ("large", "batchnorm", None, TrainConfig(epochs=2, subset=3000), True),
]


def run_to_end(study_dir: Path) -> float:
    """Launch the study's driver as the dashboard does; seconds until the study has ended."""
    start = time.monotonic()
    records.launch(study_dir)
    while records.status(records.read(study_dir)) in rundir.ACTIVE:
        time.sleep(0.2)
    return time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(SHARED_JPEG) if SHARED_JPEG.is_dir() else "synthetic",
                        help="the image folder the large study samples (default ../shared/data/cifar10-jpeg)")
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it (default: a temp folder)")
    args = parser.parse_args()
    print(hardware.describe_machine(), flush=True)
    root = args.keep or Path(tempfile.mkdtemp(prefix="cifar-lab-estimates-"))
    runs_dir, studies_dir = root / "runs", root / "studies"
    rows = []
    for label, kind, seeds, cfg, on_folder in STUDIES:
        summary = data.summary(args.data if on_folder else "synthetic")
        planned = plans.with_seeds(plans.plan(kind, cfg, spec=specs.PRESETS["baseline"]), seeds)
        costs = estimates.measure(runs_dir)
        source = f"earlier runs ({costs.runs_measured})"
        if not costs.speeds:
            archs = sorted({p.spec.name for p in planned})
            costs = replace(costs, speeds=estimates.probe_speeds(planned, archs))
            source = "probe"
        found = estimates.estimate(planned, summary, costs)
        study_dir = records.create(studies_dir, runs_dir, kind, cfg, summary, seeds=seeds,
                                   spec=specs.PRESETS["baseline"])
        print(f"{label}: {kind} study, {len(planned)} runs, {cfg.epochs} epochs on "
              f"{cfg.subset or summary['train_images']:,} {summary['kind']} images; estimated from {source}: "
              f"{found.seconds:.0f} s ({found.run_s:.1f} s fixed a run, inferred speeds: "
              f"{', '.join(found.inferred) or 'none'})", flush=True)
        actual = run_to_end(study_dir)
        state = records.status(records.read(study_dir))
        rows.append((label, kind, len(planned), source, found.seconds, actual, state))
        print(f"  actual {actual:.0f} s ({state})", flush=True)
    print(f"\n{'study':8} {'kind':10} {'runs':>4} {'estimated from':18} {'estimate s':>10} {'actual s':>9} "
          f"{'error':>7}")
    for label, kind, n, source, estimate, actual, state in rows:
        print(f"{label:8} {kind:10} {n:>4} {source:18} {estimate:>10.0f} {actual:>9.0f} "
              f"{(estimate - actual) / actual:>+7.0%}" + ("" if state == "completed" else f"  ({state})"))
    print(f"runs folder: {runs_dir}" if args.keep else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
