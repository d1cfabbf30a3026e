"""How long a study will take: speeds measured on earlier runs here, or by a short probe."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from cifar_core.store import rundir, runs
from cifar_core.studies.plans import PlannedRun


def measured_speeds(runs_dir: Path) -> dict[str, float]:
    """Images/s per architecture on this machine: the median over finished runs of each run's median epoch
    (epoch 1 left out: it carries the graph tracing)."""
    import statistics

    speed: dict[str, list[float]] = {}
    for info in runs.list_runs(runs_dir):
        if info.has_results and (info.path / rundir.METRICS).exists():
            rates = [m["images_per_s"] for m in rundir.read_metric_lines(info.path)[1:] if m.get("images_per_s")]
            if rates:
                speed.setdefault((info.meta.get("spec") or {}).get("name"), []).append(statistics.median(rates))
    return {arch: statistics.median(rates) for arch, rates in speed.items()}


def estimate_seconds(planned: list[PlannedRun], data: dict, speeds: dict[str, float]) -> tuple[float, list[str]]:
    """An upper bound on a study's training time (every run to its maximum epochs) from `measured_speeds`, and
    the architectures with no measured speed (left out of the sum). `data` is a data summary. A validation
    image is taken to cost a third of a training image."""
    total, missing = 0.0, []
    for p in planned:
        if p.spec.name not in speeds:
            missing.append(p.spec.name)
            continue
        n = min(p.config.subset or data["train_images"], data["train_images"])
        if p.config.validation == "split":
            val = min(p.config.validation_size, n // 10)
            n -= val
        else:
            val = min(p.config.test_subset or data["test_images"], data["test_images"])
        total += p.config.epochs * (n + val / 3) / speeds[p.spec.name]
    return total, sorted(set(missing))


def probe_speeds(planned: list[PlannedRun], archs: list[str], timeout: float = 600) -> dict[str, float]:
    """Images/s of the named architectures of a plan, measured now by a short probe in its own process
    (`cifar_core.engine.probe`: a few seconds each, most of it TensorFlow starting)."""
    chosen = {p.spec.name: p for p in planned if p.spec.name in archs}
    if not chosen:
        return {}
    request = {"config": asdict(next(iter(chosen.values())).config),
               "specs": [p.spec.to_dict() for p in chosen.values()]}
    try:
        done = subprocess.run([sys.executable, "-m", "cifar_core.engine.probe"], input=json.dumps(request), text=True,
                              capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise runs.RunError(f"The speed probe took more than {timeout:.0f} s; is the machine busy?") from None
    if done.returncode:
        raise runs.RunError("The speed probe failed: " + (done.stderr.strip().splitlines() or ["no output"])[-1])
    return json.loads(done.stdout)
