"""`cifar-lab`: everything the dashboard shows, headless."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

import pandas as pd

from cifar_core import data, evaluate, report, runs, specs, studies
from cifar_core.config import TrainConfig

USER_ERRORS = (data.DataError, specs.SpecError, runs.RunError)


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `cifar-lab runs | head` ends quietly
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except USER_ERRORS as exc:
        print(f"cifar-lab: {exc}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cifar-lab", description=__doc__)
    parser.add_argument("--runs-dir", type=Path, default=None,
                        help="where runs live (default: $CIFAR_LAB_RUNS or artifacts/runs)")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--runs-dir", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("arch", parents=[common], help="layer table and parameter count of an architecture")
    p.add_argument("arch", help="preset name, saved spec name, or path to a .json spec")
    p.add_argument("--json", action="store_true", help="print the spec as JSON instead")
    p.set_defaults(func=cmd_arch)

    p = sub.add_parser("train", parents=[common], help="train one architecture; prints the run directory")
    p.add_argument("--arch", required=True)
    p.add_argument("--name", help="run name (default: the architecture's)")
    p.add_argument("--detach", action="store_true", help="return at once; training goes on in the background")
    add_train_options(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("runs", parents=[common], help="table of runs")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("study", parents=[common], help="train a study's runs one by one in the background")
    p.add_argument("kind", choices=studies.KINDS)
    p.add_argument("--detach", action="store_true", help="return at once; the study goes on in the background")
    add_train_options(p)
    p.set_defaults(func=cmd_study)

    p = sub.add_parser("studies", parents=[common], help="table of studies")
    p.set_defaults(func=cmd_studies)
    # Commands that act on one run or one study, named by id or unique prefix.
    for name, func, ref, help_ in (
        ("show", cmd_show, "run", "a run's settings, curves and results"),
        ("evaluate", cmd_evaluate, "run", "evaluate a run's saved model on the test set again"),
        ("stop", cmd_stop, "run", "stop a training run, keeping its best weights"),
        ("resume", cmd_resume, "run", "resume an interrupted run from its last epoch"),
        ("study-resume", cmd_study_resume, "study", "continue a study with its unfinished runs"),
        ("study-stop", cmd_study_stop, "study", "stop a study (the current run keeps its best weights)"),
        ("study-report", cmd_study_report, "study", "write a study's report.md and charts"),
    ):
        p = sub.add_parser(name, parents=[common], help=help_)
        p.add_argument(ref, help=f"{ref} id (or a unique prefix of it)" + (" or run directory" if ref == "run" else ""))
        if name == "show":
            p.add_argument("--json", action="store_true")
        if name in ("resume", "study-resume"):
            p.add_argument("--detach", action="store_true")
        p.set_defaults(func=func)

    p = sub.add_parser("reproduce", parents=[common], help="run the seed study and compare with its published figures")
    p.add_argument("--data", default=None, help="data source (default: $CIFAR_LAB_DATA or the Keras cache)")
    p.add_argument("--subset", type=int, default=None, help="train on N stratified training images (quick check)")
    p.add_argument("--study", default=None, help="report on this existing seed study instead of training anew")
    p.set_defaults(func=cmd_reproduce)
    return parser


def add_train_options(p: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    p.add_argument("--data", default=None, help="data source (default: $CIFAR_LAB_DATA or the Keras cache)")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.learning_rate)
    p.add_argument("--optimizer", default=d.optimizer, choices=("adam", "sgd", "rmsprop"))
    p.add_argument("--patience", type=int, default=d.patience, help="early-stopping patience; 0 turns it off")
    p.add_argument("--subset", type=int, default=None, help="train on N stratified training images")
    p.add_argument("--test-subset", type=int, default=None, help="evaluate on N stratified test images")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--validation", choices=("split", "test"), default=d.validation,
                   help="'split': hold out 5,000 training images; 'test': the seed notebook's protocol")
    p.add_argument("--augment", action="store_true", help="random flips and 4-pixel shifts")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return checked(TrainConfig(epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer,
                               learning_rate=args.lr, patience=args.patience, seed=args.seed,
                               validation=args.validation, subset=args.subset, test_subset=args.test_subset,
                               augment=args.augment))


def checked(cfg: TrainConfig) -> TrainConfig:
    problems = cfg.problems()
    if problems:
        raise runs.RunError(" ".join(problems))
    return cfg


def runs_dir(args: argparse.Namespace) -> Path:
    return args.runs_dir or runs.default_runs_dir()


def checked_source(source: str | None) -> str:
    """The data source, resolved to an absolute path and checked for layout before any process starts."""
    source = source or data.default_source()
    kind = data.detect_kind(source)
    return source if kind in ("keras", data.SYNTHETIC) else str(Path(source).expanduser().resolve())


# --- commands ------------------------------------------------------------------------------------

def cmd_arch(args) -> int:
    spec = specs.resolve(args.arch, specs.specs_dir(runs_dir(args)))
    if args.json:
        print(spec.to_json())
        return 0
    from cifar_core.models import describe

    table, total = describe(spec)
    print(f"{spec.name}: {spec.description}")
    print(table.to_string(index=False))
    print(f"Total parameters: {total:,}")
    return 0


def cmd_train(args) -> int:
    spec = specs.resolve(args.arch, specs.specs_dir(runs_dir(args)))
    cfg = config_from_args(args)
    run_dir = runs.start(runs_dir(args), spec, cfg, checked_source(args.data), args.name)
    print(run_dir, flush=True)
    return 0 if args.detach else follow(run_dir)


def follow(run_dir: Path) -> int:
    """Print each epoch as it lands; Ctrl-C asks the run to stop and waits for its best weights."""
    printed = 0
    try:
        while True:
            info = runs.load_run(run_dir)
            lines = runs.read_metric_lines(run_dir)
            for m in lines[printed:]:
                print(f"epoch {m['epoch']:>3}  loss {m['loss']:.4f}  acc {m['accuracy']:.4f}  "
                      f"val_loss {m['val_loss']:.4f}  val_acc {m['val_accuracy']:.4f}  "
                      f"{m['seconds']:.1f}s  {m['images_per_s']:.0f} img/s", flush=True)
            printed = len(lines)
            if info.status not in runs.ACTIVE:
                break
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("stopping: keeping the best weights and evaluating them...", file=sys.stderr, flush=True)
        (run_dir / runs.STOP).write_text("ctrl-c")
        runs.wait(run_dir, timeout=3600)
        info = runs.load_run(run_dir)
    return print_outcome(info)


def print_outcome(info: runs.RunInfo) -> int:
    m = info.meta
    if info.status in ("completed", "stopped"):
        print(f"{info.status}: test accuracy {m['test_accuracy']:.4f}, best epoch {m['best_epoch']}, "
              f"wall time {m['wall_time']:.0f} s")
        return 0
    print(f"run {info.status}: {m.get('error') or info.damaged or 'see ' + str(info.path / 'log.txt')}",
          file=sys.stderr)
    return 1


def cmd_runs(args) -> int:
    table = runs.runs_table(runs.list_runs(runs_dir(args)))
    if table.empty:
        print(f"No runs in {runs_dir(args)}. Start one with `cifar-lab train --arch baseline`.")
        return 0
    cols = ["id", "arch", "status", "params", "best epoch", "test acc", "wall s", "data", "problem"]
    formats = {"test acc": "{:.4f}", "wall s": "{:.0f}"}
    shown = pd.DataFrame({c: ["-" if pd.isna(v) else formats.get(c, "{}").format(v) for v in table[c]] for c in cols})
    print(shown.to_string(index=False))
    return 0


def cmd_show(args) -> int:
    info = runs.find_run(runs_dir(args), args.run)
    report = _report(info)
    if args.json:
        print(json.dumps({"run": info.meta, "status": info.status, "damaged": info.damaged,
                          "metrics": runs.read_metric_lines(info.path), "report": report}, indent=2))
        return 0
    m = info.meta
    print(f"{info.run_id}  [{info.status}]  {m.get('spec', {}).get('name')}  {m.get('params') or '?'} params")
    if info.damaged:
        print(f"damaged: {info.damaged}")
    print(f"data: {m.get('data', {}).get('source')} ({m.get('data', {}).get('kind', '?')})")
    print("config: " + ", ".join(f"{k}={v}" for k, v in m.get("config", {}).items()))
    if m.get("config", {}).get("validation") == "test":
        print("note: validated on the test set (seed protocol): test accuracy is optimistic.")
    metrics = runs.read_metrics(info.path)
    if not metrics.empty:
        print(metrics.drop(columns=["elapsed"]).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    progress = runs.read_progress(info.path)
    if info.status == "running" and progress:
        print(f"now: epoch {progress['epoch']}/{progress['epochs']}, batch {progress['batch']}/"
              f"{progress['batches']}, ETA {progress['eta_s']:.0f} s")
    if report:
        print_report(report)
    return 0


def _report(info: runs.RunInfo) -> dict | None:
    try:
        return runs.read_json(info.path / "report.json")
    except (OSError, json.JSONDecodeError):
        return None


def print_report(report: dict) -> None:
    names = report["class_names"]
    print(f"\ntest accuracy {report['accuracy']:.4f}")
    print(evaluate.per_class_frame(report).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print("\nconfusion matrix (rows: true, columns: predicted)")
    print(pd.DataFrame(report["confusion_matrix"], index=names, columns=[n[:5] for n in names]).to_string())
    print("\ntop confusions")
    print(evaluate.top_confusions(report, 5)[["true", "predicted", "count"]].to_string(index=False))


def cmd_evaluate(args) -> int:
    info = runs.find_run(runs_dir(args), args.run)
    if not (info.path / "model.keras").exists():
        raise runs.RunError(f"Run {info.run_id} has no model.keras yet ({info.status}); train or resume it first.")
    from cifar_core.train import evaluate_run

    print_report(evaluate_run(info.path))
    return 0


def cmd_stop(args) -> int:
    info = runs.find_run(runs_dir(args), args.run)
    runs.stop(info)
    print(f"asked {info.run_id} to stop; it keeps its best weights and evaluates them")
    return 0


def cmd_resume(args) -> int:
    info = runs.find_run(runs_dir(args), args.run)
    runs.resume(info)
    print(info.path, flush=True)
    return 0 if args.detach else follow(info.path)


def studies_dir(args) -> Path:
    return studies.default_studies_dir(runs_dir(args))


def find_study(args, ref: str) -> Path:
    folder = studies_dir(args)
    matches = [p for p in folder.glob(f"{ref}*") if (p / studies.STUDY_JSON).exists()] if folder.is_dir() else []
    exact = [p for p in matches if p.name == ref]
    if len(exact) == 1 or len(matches) == 1:
        return (exact or matches)[0]
    raise runs.RunError(f"No single study matches {ref!r} in {folder}; `cifar-lab studies` lists them."
                        if not matches else f"{ref!r} matches {len(matches)} studies; give more of the id.")


def start_study(args, kind: str, cfg: TrainConfig) -> Path:
    study_dir = studies.create(studies_dir(args), runs_dir(args), kind, cfg, checked_source(args.data),
                               specs.saved_specs(specs.specs_dir(runs_dir(args))))
    studies.launch(study_dir)
    print(study_dir, flush=True)
    return study_dir


def cmd_study(args) -> int:
    study_dir = start_study(args, args.kind, config_from_args(args))
    return 0 if args.detach else follow_study(study_dir)


def follow_study(study_dir: Path) -> int:
    """Print each run as it finishes; Ctrl-C stops the study (the run in progress keeps its best weights)."""
    seen: set[str] = set()
    try:
        while True:
            study = studies.read(study_dir)
            for entry, row in zip(study["runs"], studies.queue(study_dir).itertuples(), strict=True):
                if row.status in runs.FINISHED and row.name not in seen:
                    seen.add(row.name)
                    meta = runs.read_json(studies.run_dir_of(study, entry) / runs.RUN_JSON)
                    acc = meta.get("test_accuracy")
                    print(f"{row.name:24s} {row.status:10s} test acc {acc if acc is None else f'{acc:.4f}'}  "
                          f"best epoch {meta.get('best_epoch')}  {meta.get('wall_time') or 0:.0f} s", flush=True)
            if studies.status(studies.read(study_dir)) not in runs.ACTIVE:
                break
            time.sleep(1)
    except KeyboardInterrupt:
        print("stopping the study ...", file=sys.stderr, flush=True)
        studies.stop(study_dir)
    status = studies.status(studies.read(study_dir))
    print(f"study {study_dir.name}: {status}")
    return 0 if status == "completed" else 1


def cmd_studies(args) -> int:
    found = studies.list_studies(studies_dir(args))
    if not found:
        print(f"No studies in {studies_dir(args)}. Start one with `cifar-lab study depth --subset 10000`.")
        return 0
    for s in found:
        table = studies.queue(Path(s["path"]))
        done = int(table["status"].isin(["completed", "stopped"]).sum())
        print(f"{s['id']:36s} {s['kind']:13s} {studies.status(s):11s} {done}/{len(table)} runs done")
    return 0


def cmd_study_resume(args) -> int:
    study_dir = find_study(args, args.study)
    studies.resume(study_dir)
    print(study_dir, flush=True)
    return 0 if args.detach else follow_study(study_dir)


def cmd_study_stop(args) -> int:
    studies.stop(find_study(args, args.study))
    print("asked the study to stop")
    return 0


def cmd_study_report(args) -> int:
    study_dir = find_study(args, args.study)
    path = report.write_markdown(study_dir, study_dir / "report")
    print(path.read_text())
    print(f"written: {path}")
    return 0


def cmd_reproduce(args) -> int:
    if args.study:
        study_dir = find_study(args, args.study)
    else:
        study_dir = start_study(args, "seed", checked(TrainConfig(subset=args.subset)))
        follow_study(study_dir)
    table = report.seed_comparison(study_dir)
    out = report.write_markdown(study_dir, study_dir / "report")
    print(report.markdown_table(table))
    print(f"report: {out} (charts beside it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
