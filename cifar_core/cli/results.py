"""Commands that read runs: runs, show, tag, note, pin, evaluate, compare, explain."""

from __future__ import annotations

import json

from cifar_core.analysis import caveats, figures
from cifar_core.analysis import layers as layer_stats
from cifar_core.cli.options import load_data, runs_dir
from cifar_core.cli.output import (
    epoch_line,
    metric_lines_or_none,
    print_calibration,
    print_columns,
    print_report,
    report_or_none,
    run_ece,
)
from cifar_core.store import rundir, runs


def cmd_runs(args) -> int:
    found = runs.list_runs(runs_dir(args))
    if not found:
        print(f"No runs in {runs_dir(args)}. Start one with `cifar-lab train --arch baseline`.")
        return 0
    found = runs.filter_runs(found, args.tag, args.arch, args.status, args.data)
    if not found:
        print("No run matches these filters.")
        return 0
    cols = ["id", "arch", "status", "params", "best epoch", "test acc", "wall s", "data", "tags", "problem"]
    formats = {"test acc": "{:.4f}", "wall s": "{:.0f}"}
    cells = [cols] + [["-" if row[c] is None else formats.get(c, "{}").format(row[c]) for c in cols]
                      for row in runs.table_rows(found)]
    print_columns(cells, right={"params", "best epoch", "test acc", "wall s"})
    return 0


def cmd_tag(args) -> int:
    info = runs.find_run(runs_dir(args), args.run)
    tags = runs.set_tags(info, args.tags, args.remove)
    print(f"{info.run_id}: {' '.join(tags) or '(no tags)'}")
    return 0


def cmd_note(args) -> int:
    runs.set_note(runs.find_run(runs_dir(args), args.run), args.text)
    return 0


def cmd_pin(args) -> int:
    if args.none == bool(args.run):
        raise runs.RunError("Name the run to pin as the baseline, or pass --none to unpin it.")
    info = None if args.none else runs.find_run(runs_dir(args), args.run)
    runs.pin_baseline(runs_dir(args), info)
    print(f"baseline: {info.run_id if info else '(none)'}")
    return 0


def cmd_show(args) -> int:
    info = runs.find_run(runs_dir(args), args.run)
    report = report_or_none(info)
    metrics = metric_lines_or_none(info)
    if args.json:
        print(json.dumps({"run": info.meta, "status": info.status, "damaged": info.damaged,
                          "metrics": metrics, "report": report, "ece": run_ece(info)}, indent=2))
        return 0
    m = info.meta
    print(f"{info.run_id}  [{info.status}]  {(m.get('spec') or {}).get('name', '?')}  {m.get('params') or '?'} params")
    if info.damaged:
        print(f"damaged: {info.damaged}")
    print(f"data: {info.data.get('source', '?')} ({info.data.get('kind', '?')})")
    print("config: " + ", ".join(f"{k}={v}" for k, v in figures.shown_config(m).items()))
    if m.get("tags") or m.get("pinned"):
        print("tags: " + " ".join(m.get("tags", [])) + ("  (pinned baseline)" if m.get("pinned") else ""))
    if m.get("note"):
        print(f"lab note: {m['note']}")
    for note in caveats.for_run(m):
        print(f"caveat: {note}")
    for line in metrics:
        print(epoch_line(line))
    now = rundir.read_progress(info.path)
    if info.status == "running" and now:
        print(f"now: {runs.progress_text(now)}")
    if report:
        print_report(report)
        print_calibration(info, report["class_names"])
    return 0


def cmd_evaluate(args) -> int:
    info = runs.find_run(runs_dir(args), args.run)
    runs.check_evaluable(info)
    from cifar_core.engine.trainer import evaluate_run

    print_report(evaluate_run(info.path))
    return 0


def cmd_compare(args) -> int:
    from cifar_core.analysis import compare

    a, b = (runs.find_run(runs_dir(args), ref) for ref in (args.run_a, args.run_b))
    for info in (a, b):
        if not info.has_results:
            raise runs.RunError(f"Run {info.run_id} is {info.status}: it has no test results to compare.")
        print(f"{info.name}: test accuracy {info.meta['test_accuracy']:.4f} "
              f"(95% interval {compare.accuracy_interval_text(rundir.read_report(info.path))})")
    try:
        result = compare.significance(compare.paired_predictions(a, b, rundir.read_predictions(a.path),
                                                                 rundir.read_predictions(b.path)))
    except ValueError as exc:
        raise runs.RunError(f"No image-by-image test: {exc}") from None
    print(f"both right {result.both:,}, neither {result.neither:,}, only {a.name} {result.only_a:,}, "
          f"only {b.name} {result.only_b:,}")
    print(result.verdict(a.name, b.name))
    for note in caveats.for_pair(a.meta, b.meta, compare.only_seed_differs(a.meta, b.meta)):
        print(f"caveat: {note}")
    return 0


def cmd_explain(args) -> int:
    from cifar_core.engine import explain

    info = runs.find_run(runs_dir(args), args.run)
    if not info.has_results:
        raise runs.RunError(f"Run {info.run_id} is {info.status}: it has no test predictions to explain yet.")
    if args.count < 1:
        raise runs.RunError(f"--count must be at least 1 (got {args.count}).")
    dataset = load_data(info.data.get("source"))
    sheet, found = explain.misclassified_sheet(info.path, dataset, args.true, args.pred, args.layer, args.count)
    if sheet is None:
        print(f"Run {info.run_id} took no {args.true} test image for {args.pred}: nothing to explain.")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{info.run_id}-{args.true}-as-{args.pred}.png"
    sheet.save(path)
    what = f"taken for {args.pred}" if args.true != args.pred else "predicted right"
    print(f"{min(found, args.count)} of {found} {args.true} images {what}: {path}")
    return 0


def cmd_layers(args) -> int:
    info = runs.find_run(runs_dir(args), args.run)
    records = rundir.read_layer_records(info.path)
    if args.json:
        print(json.dumps(records))
        return 0
    if not records:
        print(f"{info.run_id}: {caveats.NO_LAYER_RECORDS}")
        return 0
    record = layer_stats.at_epoch(records, args.epoch)
    when = ("at import (trained elsewhere: no history)" if info.meta.get("imported") else "before training"
            if record["epoch"] == 0 else f"after {record['epoch']:g} epochs")
    print(f"{info.run_id}: {when} (record {records.index(record) + 1} of {len(records)}; probe loss "
          f"{record.get('probe_loss', float('nan')):.4f}, accuracy {record.get('probe_accuracy', float('nan')):.3f})")
    print(layer_stats.text_table(record).drop(columns=["kind"]).to_string(index=False))
    for sentence in layer_stats.sentences(records[:records.index(record) + 1]):
        print(f"note: {sentence}")
    print(caveats.LAYER_TABLE_GAPS)
    print(caveats.LAYER_MEASURES)
    return 0
