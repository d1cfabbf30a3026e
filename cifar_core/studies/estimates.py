"""How long a study will take here: every planned run's training at the speed earlier runs here measured, plus
the fixed seconds each run pays whatever its size (its process and TensorFlow starting, the data loading, the
first epoch's graph tracing, saving and the final evaluation), which dominate small studies.

An inference pass over an image is taken to cost a third of a training image (as FitToBudget takes it).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cifar_core.model import budgetplan, shapes, specs
from cifar_core.store import rundir, runs
from cifar_core.store.rundir import DamagedRun

if TYPE_CHECKING:
    from cifar_core.model.specs import ArchitectureSpec
    from cifar_core.studies.plans import PlannedRun

INFERENCE_SHARE = 1 / 3
RECENT_RUNS = 20  # the fixed costs are the median of this many of the latest completed runs
# Used only before any run finished here: the median of 24 runs of benchmarks/estimates.py on a 2-core AMD EPYC
# (5-20 s, with other work on the machine).
DEFAULT_RUN_S = 9.0
DEFAULT_BETWEEN_S = 1.0  # a study's driver polls its run's status once a second
# What one batch-norm output costs in training, in multiply-adds: measured here, the batchnorm preset trains at about
# half the baseline's speed with the same convolutions (969 against 1,554 images/s, and 720 against 920 for deeper).
BATCH_NORM_COST = 200


@dataclass(frozen=True)
class Costs:
    """What this machine has shown: training images/s per architecture (and the multiply-adds of those
    architectures' `work`), the fixed seconds of one run, the seconds between one run of a study ending and the next
    starting, and how many runs the fixed costs come from (0: the defaults)."""

    speeds: dict[str, float]
    work: dict[str, int] = field(default_factory=dict)
    run_s: float = DEFAULT_RUN_S
    between_s: float = DEFAULT_BETWEEN_S
    runs_measured: int = 0


@dataclass(frozen=True)
class Estimate:
    """A study's duration with every run to its maximum epochs: the total, the runs counted (all of them), the
    fixed seconds per run included, and the architectures whose speed was inferred from their size."""

    seconds: float
    runs: int
    run_s: float
    inferred: list[str]


def work(spec: ArchitectureSpec) -> int:
    """What training one image costs, in multiply-adds: those of the convolutions and dense layers, and
    BATCH_NORM_COST for each batch-norm output."""
    total = 0
    for layer in shapes.layers(spec):
        if layer.type == "Conv2D":
            total += (layer.params - layer.shape[-1]) * layer.shape[0] * layer.shape[1]
        elif layer.type == "Dense":
            total += layer.params
        elif layer.type == "BatchNormalization":
            total += BATCH_NORM_COST * layer.outputs
    return total


def epoch_work(sizes: dict[str, int]) -> float:
    """One epoch in training-image equivalents: the training images and the validation pass."""
    return sizes["train"] + sizes["validation"] * INFERENCE_SHARE


def evaluation_work(test_images: int, tta: bool) -> float:
    """The final test pass in training-image equivalents (two passes with test-time flips)."""
    return test_images * INFERENCE_SHARE * (2 if tta else 1)


def run_overhead(meta: dict, lines: list[dict]) -> float | None:
    """The seconds of a completed run that its training and evaluation at its steady speed do not explain: from
    its launch to its end, less its epochs and the test pass (None where the run cannot tell: one epoch, a resume,
    a stopped epoch)."""
    speed = budgetplan.steady_speed(lines)
    sizes = meta.get("sizes") or {}
    if (speed is None or not {"train", "validation", "test"} <= set(sizes) or not meta.get("launched")
            or not meta.get("finished") or any(m.get(rundir.PARTIAL) for m in lines)):
        return None
    total = meta["finished"] - meta["launched"]
    if total < sum(m["seconds"] for m in lines):  # launched again by a resume
        return None
    tta = bool((meta.get("config") or {}).get("tta"))
    return total - (len(lines) * epoch_work(sizes) + evaluation_work(sizes["test"], tta)) / speed


def study_gaps(metas: list[dict]) -> list[float]:
    """Seconds from one run of a study ending to the next one's launch, over every study the runs belong to."""
    by_study: dict[str, dict[int, dict]] = {}
    for m in metas:
        if m.get("study") and isinstance(m.get("study_index"), int):
            by_study.setdefault(m["study"], {})[m["study_index"]] = m
    gaps = []
    for entries in by_study.values():
        for index, m in entries.items():
            following = entries.get(index + 1)
            if following and m.get("finished") and following.get("launched"):
                gaps.append(following["launched"] - m["finished"])
    return [g for g in gaps if g >= 0]


def measure(runs_dir: Path) -> Costs:
    """Speeds per architecture (the median over finished runs of each run's steady speed) and fixed costs (the
    median over the latest completed runs) from the run directories here."""
    speeds: dict[str, list[float]] = {}
    costs: dict[str, int] = {}
    overheads: list[tuple[float, float]] = []
    metas = []
    for info in runs.list_runs(runs_dir):
        if not info.has_results or info.meta.get("imported"):
            continue
        try:
            lines = rundir.read_metric_lines(info.path)
            spec = specs.from_dict(info.meta["spec"])
        except (OSError, DamagedRun, KeyError, TypeError, ValueError):
            continue
        metas.append(info.meta)
        speed = budgetplan.steady_speed(lines)
        if speed:
            speeds.setdefault(spec.name, []).append(speed)
            costs[spec.name] = work(spec)
        overhead = run_overhead(info.meta, lines) if info.status == "completed" else None
        if overhead is not None:
            overheads.append((info.meta["finished"], overhead))
    recent = [o for _, o in sorted(overheads, reverse=True)[:RECENT_RUNS]]
    gaps = study_gaps(metas)
    return Costs({arch: statistics.median(rates) for arch, rates in speeds.items()}, costs,
                 statistics.median(recent) if recent else DEFAULT_RUN_S,
                 statistics.median(gaps) if gaps else DEFAULT_BETWEEN_S, len(recent))


def speed_of(spec: ArchitectureSpec, costs: Costs, planned_work: dict[str, int]) -> float:
    """The measured speed of `spec`, else one inferred from its `work`: the median over the measured
    architectures of images/s times work (this machine's rate), divided by its own."""
    if spec.name in costs.speeds:
        return costs.speeds[spec.name]
    known = {**costs.work, **planned_work}
    rates = [speed * known[name] for name, speed in costs.speeds.items() if name in known]
    return statistics.median(rates) / work(spec)


def run_seconds(planned: PlannedRun, data: dict, speed: float, run_s: float) -> float:
    """One run to its maximum epochs: its fixed costs, its epochs, and the test pass."""
    cfg = planned.config
    sizes = cfg.sizes(data["train_images"], data["test_images"])
    return run_s + (cfg.epochs * epoch_work(sizes) + evaluation_work(sizes["test"], cfg.tta)) / speed


def estimate(planned: list[PlannedRun], data: dict, costs: Costs) -> Estimate | None:
    """Every planned run's `run_seconds` and the waits between them (`data`: a data summary); None when no
    architecture's speed is known here."""
    if not costs.speeds:
        return None
    planned_work = {p.spec.name: work(p.spec) for p in planned}
    total = sum(run_seconds(p, data, speed_of(p.spec, costs, planned_work), costs.run_s) + costs.between_s
                for p in planned)
    inferred = sorted({p.spec.name for p in planned} - set(costs.speeds))
    return Estimate(total, len(planned), costs.run_s, inferred)


def unmeasured_text(archs: list[str], inferred: bool) -> str:
    """What the estimate knows of architectures no run here measured."""
    if not inferred:
        return (f"No earlier run of {', '.join(archs)} on this machine to estimate the duration from (a run's "
                "speed is measured from its second epoch on).")
    return (f"No earlier run of {', '.join(archs)} on this machine measured its speed (that takes 2 epochs or more): "
            "inferred from the size of each (its multiply-adds) against those measured here (measure it for a "
            "closer figure).")


def estimate_text(found: Estimate, costs: Costs, probed: bool = False) -> str:
    """The estimate in a sentence: the total, what it counts, and where its figures come from."""
    fixed = (f"about {found.run_s:.0f} s a run (measured over {costs.runs_measured} runs)" if costs.runs_measured
             else f"about {found.run_s:.0f} s a run (a typical figure: no run here has measured it yet, which "
                  "takes a completed run of 2 epochs or more, never resumed or cut short)")
    where = "a short probe and earlier runs" if probed else "the speed of earlier runs"
    counted = f"the {found.runs} runs" if found.runs > 1 else "its one run"
    return (f"About {runs.format_duration(found.seconds)} for {counted} if each trains to its maximum epochs (early "
            f"stopping usually ends them sooner), with {fixed} to start TensorFlow, load the data, trace the model "
            f"and evaluate it; from {where} here.")


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
