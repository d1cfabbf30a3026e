"""How runs print in a terminal: aligned tables, epoch lines, reports, calibration, a run's outcome."""

from __future__ import annotations

import sys

from cifar_core.analysis import caveats
from cifar_core.store import rundir, runs


def epoch_line(m: dict) -> str:
    partial = f"  (partial: stopped after {m.get('images', 0):,} images)" if m.get(rundir.PARTIAL) else ""
    return (f"epoch {m['epoch']:>3}  loss {m['loss']:.4f}  acc {m['accuracy']:.4f}  val_loss {m['val_loss']:.4f}  "
            f"val_acc {m['val_accuracy']:.4f}  {m['seconds']:.1f}s  {m.get('images_per_s', 0):,.0f} img/s{partial}")


def print_outcome(info: runs.RunInfo) -> int:
    m = info.meta
    if info.has_results:
        print(f"{info.status}: test accuracy {m['test_accuracy']:.4f}, best epoch {m.get('best_epoch')}, "
              f"wall time {m.get('wall_time') or 0:.0f} s")
        return 0
    reason = info.damaged or m.get("error") or f"see {info.path / rundir.LOG}"
    print(f"run {info.status}: {reason}", file=sys.stderr)
    return 1


def print_columns(cells: list[list[str]], right: set[str] = frozenset()) -> None:
    """Rows of strings as aligned columns; the first row is the header, `right` names right-aligned columns."""
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    for row in cells:
        line = "  ".join(v.rjust(w) if cells[0][i] in right else v.ljust(w)
                         for i, (v, w) in enumerate(zip(row, widths, strict=True)))
        print(line.rstrip())


def run_ece(info: runs.RunInfo) -> float | None:
    from cifar_core.analysis import calibration

    try:
        return calibration.run_ece(rundir.read_predictions(info.path))
    except rundir.DamagedRun:
        return None


def print_calibration(info: runs.RunInfo, class_names: list[str]) -> None:
    from cifar_core.analysis import calibration

    try:
        preds = rundir.read_predictions(info.path)
    except rundir.DamagedRun as exc:
        print(f"\ncalibration: not available ({exc})")
        return
    summary = calibration.summarize(preds, class_names)
    print(f"\ncalibration: ECE {summary.ece:.4f} ({calibration.BINS} confidence bins; 0 means confidence matches "
          f"accuracy); least calibrated class: {summary.worst_class['class']} (classwise ECE "
          f"{summary.worst_class['ece']:.4f})")
    print(caveats.CLASSWISE_ECE)
    for note in caveats.for_calibration(info.meta):
        print(f"caveat: {note}")


def report_or_none(info: runs.RunInfo) -> dict | None:
    try:
        return rundir.read_report(info.path)
    except rundir.DamagedRun:
        return None


def metric_lines_or_none(info: runs.RunInfo) -> list[dict]:
    try:
        return rundir.read_metric_lines(info.path)
    except rundir.DamagedRun:
        return []


def print_report(report: dict) -> None:
    import pandas as pd

    from cifar_core.analysis import scores

    names = report["class_names"]
    print(f"\ntest accuracy {report['accuracy']:.4f}")
    print(scores.per_class_frame(report).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print("\nconfusion matrix (rows: true, columns: predicted)")
    print(pd.DataFrame(report["confusion_matrix"], index=names, columns=[n[:5] for n in names]).to_string())
    print("\ntop confusions")
    print(scores.top_confusions(report, 5)[["true", "predicted", "count"]].to_string(index=False))
