"""`cifar-lab`: everything the dashboard shows, headless."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from cifar_core import (
    caveats,
    data,
    figures,
    hardware,
    importing,
    preflight,
    recipes,
    rundir,
    runs,
    serving,
    shapes,
    specs,
    studies,
)
from cifar_core.config import OPTIMIZERS, PRECISIONS, RECIPES, VALIDATIONS, ConfigError, TrainConfig
from cifar_core.jsonfields import FieldError

USER_ERRORS = (data.DataError, specs.SpecError, runs.RunError, ConfigError, FieldError, rundir.DamagedRun)


WRITING_COMMANDS = ("train", "study", "import", "reproduce", "resume", "study-resume")


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `cifar-lab runs | head` ends quietly
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `timeout`, `kill`: stop a run as Ctrl-C does
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command in WRITING_COMMANDS:
            check_writable(runs_dir(args))
        return args.func(args) or 0
    except USER_ERRORS as exc:
        print(f"cifar-lab: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cifar-lab: interrupted. A run or study asked to stop goes on stopping in the background "
              "(`cifar-lab runs` and `cifar-lab studies` show it).", file=sys.stderr)
        return 130


def check_writable(folder: Path) -> None:
    """Refuse, before anything is loaded or created, a runs folder that cannot be written: a file, or a folder on a
    read-only mount or without permission (it, or the nearest folder above it that exists)."""
    if folder.exists() and not folder.is_dir():
        raise runs.RunError(f"--runs-dir {folder} is a file; give a folder (it is created if missing).")
    existing = next((p for p in (folder, *folder.absolute().parents) if p.exists()), None)
    if existing is None:
        return
    if _read_only_mount(existing) or not os.access(existing, os.W_OK):
        why = "is on a read-only file system" if _read_only_mount(existing) else "cannot be written by this user"
        raise runs.RunError(f"The runs folder {folder} {why}; give another with --runs-dir or $CIFAR_LAB_RUNS.")


def _read_only_mount(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


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
    p.add_argument("--arch", default=None, help="preset, saved spec or .json file (default: baseline; fast with "
                                                 "--recipe fast)")
    p.add_argument("--name", help="run name (default: the architecture's)")
    p.add_argument("--detach", action="store_true", help="return at once; training goes on in the background")
    add_train_options(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("serve", parents=[common], help="start the dashboard (localhost only unless --host)")
    p.add_argument("--host", default="localhost", help="address to listen on; anything but localhost shares the "
                   "dashboard read-only")
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--allow-writes", action="store_true", help="let a shared dashboard train, stop, rename and delete")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("runs", parents=[common], help="table of runs (filters combine)")
    p.add_argument("--tag", action="append", default=[], help="only runs with this tag (repeat for several)")
    p.add_argument("--arch", action="append", default=[], help="only runs of this architecture")
    p.add_argument("--status", action="append", default=[], help="only runs in this status")
    p.add_argument("--data", action="append", default=[], help="only runs on this kind of data (image-folder, ...)")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("tag", parents=[common], help="add (or --remove) tags on a run: a lab notebook's labels")
    p.add_argument("run", help="run id (or a unique prefix of it)")
    p.add_argument("tags", nargs="*", help=f"tags to add ({runs.TAG_RULE})")
    p.add_argument("--remove", action="append", default=[], metavar="TAG", help="a tag to take off")
    p.set_defaults(func=cmd_tag)

    p = sub.add_parser("note", parents=[common], help="set a run's free-text note ('' clears it)")
    p.add_argument("run", help="run id (or a unique prefix of it)")
    p.add_argument("text")
    p.set_defaults(func=cmd_note)

    p = sub.add_parser("pin", parents=[common], help="pin a run as the baseline Compare shows first")
    p.add_argument("run", nargs="?", help="run id (or a unique prefix of it); leave out with --none")
    p.add_argument("--none", action="store_true", help="unpin the baseline")
    p.set_defaults(func=cmd_pin)

    p = sub.add_parser("study", parents=[common], help="train a study's runs one by one in the background")
    p.add_argument("kind", choices=studies.KINDS)
    p.add_argument("--arch", default="baseline", help="the architecture a `seeds` study repeats")
    p.add_argument("--detach", action="store_true", help="return at once; the study goes on in the background")
    add_train_options(p)
    add_executor_options(p)
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
        p.add_argument(ref, help=f"{ref} id (or a unique prefix of it)")
        if name == "show":
            p.add_argument("--json", action="store_true")
        if name in ("resume", "study-resume"):
            p.add_argument("--detach", action="store_true")
        p.set_defaults(func=func)

    p = sub.add_parser("compare", parents=[common], help="two runs: test accuracy with its 95%% interval, and "
                       "McNemar's exact test of whether one is really better")
    p.add_argument("run_a", help="run id (or a unique prefix of it)")
    p.add_argument("run_b", help="run id (or a unique prefix of it)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("explain", parents=[common], help="Grad-CAM of the test images a run takes for another "
                       "class (cat taken for dog by default), as a PNG sheet")
    p.add_argument("run", help="run id (or a unique prefix of it)")
    p.add_argument("--true", default="cat", help="the images' true class (default: cat)")
    p.add_argument("--pred", default="dog", help="the class the run predicted for them (default: dog)")
    p.add_argument("--out", type=Path, default=Path("."), help="folder for the PNG (default: here)")
    p.add_argument("--layer", help="conv layer to explain (default: the last one's output)")
    p.add_argument("--count", type=int, default=24, help="images, the surest mistakes first (default: 24)")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("import", parents=[common], help="a Keras model trained elsewhere (.keras, .h5) as a run, "
                       "evaluated on the test set; prints the run directory")
    p.add_argument("model", type=Path, help="the model file (copied into the run; never changed)")
    p.add_argument("--name", help="run name (default: imported-<file name>)")
    p.add_argument("--data", default=None, help="data source whose test set it is evaluated on "
                                               "(default: $CIFAR_LAB_DATA or the Keras cache)")
    p.add_argument("--input-scale", default="auto", choices=importing.SCALES, help=importing.SCALE_HELP)
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("reproduce", parents=[common], help="run the seed study and compare with its published figures")
    p.add_argument("--data", default=None, help="data source (default: $CIFAR_LAB_DATA or the Keras cache)")
    p.add_argument("--subset", type=int, default=None, help="train on N stratified training images (quick check)")
    p.add_argument("--test-subset", type=int, default=None,
                   help="evaluate (and, by the seed protocol, validate) on N stratified test images (quick check)")
    p.add_argument("--seeds", default=str(studies.REPRODUCE_SEEDS), metavar="N|LIST",
                   help=f"seeds per model (default {studies.REPRODUCE_SEEDS}: mean ± std against the published figure)")
    p.add_argument("--study", default=None, help="report on this existing seed study instead of training anew")
    add_executor_options(p)
    p.set_defaults(func=cmd_reproduce)
    return parser


def add_executor_options(p: argparse.ArgumentParser) -> None:
    """Where a study's runs train: here, one after another, or as tasks on a Ray cluster."""
    d = studies.Executor()
    g = p.add_argument_group("executor", "where a study's runs train")
    g.add_argument("--executor", choices=studies.EXECUTORS, default=d.kind,
                   help="local: one run after another on this machine; ray: every run a Ray task, as many at once "
                        "as the cluster allows (needs pip install 'cifar-lab[cluster]')")
    g.add_argument("--address", default=None, help="with --executor ray: HOST:PORT of the head, 'auto' or "
                   "ray://HOST:10001 (default: $RAY_ADDRESS, else a Ray started on this machine)")
    g.add_argument("--cpus-per-run", type=float, default=d.cpus_per_run, metavar="N",
                   help="with --executor ray: CPUs each run takes (and TensorFlow's threads)")
    g.add_argument("--gpus-per-run", type=float, default=d.gpus_per_run, metavar="N",
                   help="with --executor ray: GPUs each run takes (1: one run per GPU)")


def executor_from_args(args: argparse.Namespace) -> studies.Executor:
    ex = studies.Executor(args.executor, args.address, args.cpus_per_run, args.gpus_per_run)
    if ex.kind == "local" and (args.address or ex != studies.Executor()):
        raise runs.RunError("--address, --cpus-per-run and --gpus-per-run need --executor ray.")
    return ex.check()


def add_train_options(p: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    p.add_argument("--data", default=None, help="data source (default: $CIFAR_LAB_DATA or the Keras cache)")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.learning_rate)
    p.add_argument("--optimizer", default=d.optimizer, choices=OPTIMIZERS)
    p.add_argument("--patience", type=int, default=d.patience, help="early-stopping patience; 0 turns it off")
    p.add_argument("--subset", type=int, default=None, help="train on N stratified training images")
    p.add_argument("--test-subset", type=int, default=None, help="evaluate on N stratified test images")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--validation", choices=VALIDATIONS, default=d.validation,
                   help=f"'split': hold out {d.validation_size:,} training images; "
                        "'test': the seed notebook's protocol")
    p.add_argument("--augment", action="store_true", help=f"random flips and {d.translate}-pixel shifts")
    p.add_argument("--seeds", default=None, metavar="N|LIST", help="train once per seed: a count (3: seeds "
                   "--seed .. --seed+2) or a list (0,1,2); runs that differ only in seed form a group")
    p.add_argument("--precision", choices=PRECISIONS, default=d.precision,
                   help="auto: mixed float16 on a GPU, mixed bfloat16 on a CPU with native bf16, else float32")
    p.add_argument("--gpus", type=int, default=d.gpus, metavar="N",
                   help="train one run on N GPUs of this machine (tf.distribute.MirroredStrategy; N >= 2)")
    p.add_argument("--recipe", choices=RECIPES, default=d.recipe,
                   help="seed: the settings above; fast: the fast recipe's network and training plan")
    p.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                   help="with --recipe fast: fit the number of epochs so the whole run ends within this time")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer,
                      learning_rate=args.lr, patience=args.patience, seed=args.seed, validation=args.validation,
                      subset=args.subset, test_subset=args.test_subset, augment=args.augment,
                      precision=args.precision, gpus=args.gpus)
    if args.recipe == "fast":
        cfg = recipes.fast_config(cfg, on_gpu=bool(hardware.nvidia_gpus()), time_budget=args.time_budget)
    elif args.time_budget:
        raise ConfigError("--time-budget needs --recipe fast (the seed recipe's length is its epochs and patience).")
    return cfg.check()


def runs_dir(args: argparse.Namespace) -> Path:
    return args.runs_dir or runs.default_runs_dir()


def studies_dir(args) -> Path:
    return studies.default_studies_dir(runs_dir(args))


def load_data(source: str | None) -> data.Dataset:
    """The data set a run will use, decoded now (with a progress bar the first time), so that bad data is
    reported before any run directory exists."""
    from cifar_core import progress

    source = source or data.default_source()
    data.detect_kind(source)
    with progress.counting(f"decoding {source}") as update:
        return data.load_dataset(source, progress=update)


# --- commands ------------------------------------------------------------------------------------

def cmd_arch(args) -> int:
    spec = specs.resolve(args.arch, specs.specs_dir(runs_dir(args)))
    if args.json:
        print(spec.to_json())
        return 0
    rows = shapes.layer_rows(spec)
    print(f"{spec.name}: {spec.description}")
    print_columns([list(rows[0])] + [[f"{v:,}" if k == "params" else str(v) for k, v in r.items()] for r in rows],
                  right={"params"})
    print(f"Total parameters: {shapes.param_count(spec):,}")
    return 0


def cmd_serve(args) -> int:
    """Exec `streamlit run app.py` on the chosen address; sharing beyond this machine is said out loud."""
    import os

    app = Path(__file__).resolve().parents[1] / "app.py"
    env = {**os.environ, serving.ALLOW_WRITES: "1" if args.allow_writes else "0"}
    if args.runs_dir:
        env["CIFAR_LAB_RUNS"] = str(args.runs_dir.resolve())
    if not serving.is_loopback(args.host):
        mode = "it can train, stop, rename and delete runs" if args.allow_writes else \
            "it is read-only (browse, compare, inspect); --allow-writes allows changes"
        print(f"WARNING: serving on {args.host}: anyone who can reach this machine can open the dashboard, and "
              f"{mode}. For a login, use an SSH tunnel or an authenticating reverse proxy (README: Sharing).",
              file=sys.stderr)
    command = [sys.executable, "-m", "streamlit", "run", str(app), "--server.address", args.host]
    if args.port:
        command += ["--server.port", str(args.port)]
    os.chdir(app.parent)
    os.execve(sys.executable, command, env)


def cmd_train(args) -> int:
    arch = args.arch or ("fast" if args.recipe == "fast" else "baseline")
    spec = specs.resolve(arch, specs.specs_dir(runs_dir(args)))
    cfg = config_from_args(args)
    if args.name:
        runs.check_name(args.name)
    if studies.parse_seeds(args.seeds, cfg.seed):
        study_dir = start_study(args, "seeds", cfg, spec)
        return 0 if args.detach else follow_study(study_dir)
    info = load_data(args.data).describe()
    preflight.check(spec, cfg, info)
    found = hardware.nvidia_gpus()
    if cfg.gpus > 1 and len(found) < cfg.gpus:
        raise ConfigError(f"--gpus {cfg.gpus}: this machine has {len(found)} NVIDIA GPU(s); give --gpus "
                          f"{len(found) if len(found) > 1 else 0}, or train on a machine with {cfg.gpus}.")
    run_dir = runs.start(runs_dir(args), spec, cfg, info, args.name)
    print(run_dir, flush=True)
    return 0 if args.detach else follow(run_dir)


def epoch_line(m: dict) -> str:
    partial = f"  (partial: stopped after {m.get('images', 0):,} images)" if m.get(rundir.PARTIAL) else ""
    return (f"epoch {m['epoch']:>3}  loss {m['loss']:.4f}  acc {m['accuracy']:.4f}  val_loss {m['val_loss']:.4f}  "
            f"val_acc {m['val_accuracy']:.4f}  {m['seconds']:.1f}s  {m.get('images_per_s', 0):,.0f} img/s{partial}")


def follow(run_dir: Path) -> int:
    """Print each epoch as it lands, with a bar for the epoch in flight on a terminal; Ctrl-C asks the run
    to stop and waits for its best weights."""
    from cifar_core import progress

    printed, epoch, engine_said = 0, None, False
    try:
        with progress.bars() as bars:
            task = bars.add_task("starting", total=None, note="")
            while True:
                info = runs.load_run(run_dir)
                if info.meta.get("engine") and not engine_said:
                    progress.say(bars, runs.engine_text(info.meta["engine"]))
                    engine_said = True
                lines = rundir.read_metric_lines(run_dir) if not info.damaged else []
                for m in lines[printed:]:
                    progress.say(bars, epoch_line(m))
                printed = len(lines)
                now = rundir.read_progress(run_dir)
                if now and now["epoch"] != epoch:  # a new epoch: a fresh bar, so elapsed and rate start again
                    epoch = now["epoch"]
                    bars.reset(task, total=now["batches"], description=f"epoch {epoch}/{now['epochs']}")
                if now:
                    bars.update(task, completed=now["batch"], total=now["batches"],
                                note=f"{now['images_per_s']:,.0f} img/s · run ETA {runs.format_duration(now['eta_s'])}")
                else:
                    bars.update(task, description=runs.starting_text(info.meta).removesuffix(" ..."))
                if info.status not in rundir.ACTIVE:
                    break
                time.sleep(0.5)
    except KeyboardInterrupt:
        (run_dir / rundir.STOP).write_text("ctrl-c")  # first: a second interrupt must find the run already asked
        print("stopping: keeping the best weights and evaluating them...", file=sys.stderr, flush=True)
        runs.wait(run_dir, timeout=3600)
        info = runs.load_run(run_dir)
    return print_outcome(info)


def print_outcome(info: runs.RunInfo) -> int:
    m = info.meta
    if info.has_results:
        print(f"{info.status}: test accuracy {m['test_accuracy']:.4f}, best epoch {m.get('best_epoch')}, "
              f"wall time {m.get('wall_time') or 0:.0f} s")
        return 0
    reason = info.damaged or m.get("error") or f"see {info.path / rundir.LOG}"
    print(f"run {info.status}: {reason}", file=sys.stderr)
    return 1


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


def print_columns(cells: list[list[str]], right: set[str] = frozenset()) -> None:
    """Rows of strings as aligned columns; the first row is the header, `right` names right-aligned columns."""
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    for row in cells:
        line = "  ".join(v.rjust(w) if cells[0][i] in right else v.ljust(w)
                         for i, (v, w) in enumerate(zip(row, widths, strict=True)))
        print(line.rstrip())


def cmd_show(args) -> int:
    info = runs.find_run(runs_dir(args), args.run)
    report = _report(info)
    metrics = _metric_lines(info)
    if args.json:
        print(json.dumps({"run": info.meta, "status": info.status, "damaged": info.damaged,
                          "metrics": metrics, "report": report, "ece": _ece(info)}, indent=2))
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


def _ece(info: runs.RunInfo) -> float | None:
    from cifar_core import calibration

    try:
        return calibration.run_ece(rundir.read_predictions(info.path))
    except rundir.DamagedRun:
        return None


def print_calibration(info: runs.RunInfo, class_names: list[str]) -> None:
    from cifar_core import calibration

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


def _report(info: runs.RunInfo) -> dict | None:
    try:
        return rundir.read_report(info.path)
    except rundir.DamagedRun:
        return None


def _metric_lines(info: runs.RunInfo) -> list[dict]:
    try:
        return rundir.read_metric_lines(info.path)
    except rundir.DamagedRun:
        return []


def print_report(report: dict) -> None:
    import pandas as pd

    from cifar_core import evaluate

    names = report["class_names"]
    print(f"\ntest accuracy {report['accuracy']:.4f}")
    print(evaluate.per_class_frame(report).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print("\nconfusion matrix (rows: true, columns: predicted)")
    print(pd.DataFrame(report["confusion_matrix"], index=names, columns=[n[:5] for n in names]).to_string())
    print("\ntop confusions")
    print(evaluate.top_confusions(report, 5)[["true", "predicted", "count"]].to_string(index=False))


def cmd_evaluate(args) -> int:
    info = runs.find_run(runs_dir(args), args.run)
    if info.is_training:
        raise runs.RunError(f"Run {info.run_id} is still training; evaluate it once it has finished.")
    if not (info.path / rundir.MODEL).exists():
        raise runs.RunError(f"Run {info.run_id} has no {rundir.MODEL} yet ({info.status}); train or resume it first.")
    if not info.meta:
        raise runs.RunError(f"Run {info.run_id} is damaged ({info.damaged}); it cannot be evaluated.")
    try:
        rundir.check_zip(info.path, rundir.MODEL)
    except rundir.DamagedRun as exc:
        raise runs.RunError(f"Run {info.run_id} cannot be evaluated: {exc}. Delete the run, or retrain it.") from None
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


def start_study(args, kind: str, cfg: TrainConfig, spec: specs.ArchitectureSpec | None = None) -> Path:
    seeds = studies.parse_seeds(args.seeds, cfg.seed)
    if kind == "seeds" and spec is None:
        spec = specs.resolve(args.arch, specs.specs_dir(runs_dir(args)))
    executor = executor_from_args(args) if hasattr(args, "executor") else studies.Executor()
    data = load_data(args.data).describe()
    if executor.kind == "ray" and (executor.address or os.environ.get("RAY_ADDRESS")):
        check_cluster(executor, runs_dir(args), data)  # a Ray of this machine alone sees what it sees
    study_dir = studies.create(studies_dir(args), runs_dir(args), kind, cfg, data,
                               specs.saved_specs(specs.specs_dir(runs_dir(args))), seeds, spec, executor)
    studies.launch(study_dir)
    print(study_dir, flush=True)
    return study_dir


def check_cluster(executor: studies.Executor, runs_dir: Path, data: dict) -> None:
    """Before a Ray study is created: the cluster answers, and every node sees the runs and the data."""
    from cifar_core import cluster

    cluster.connect(executor.address)
    found = cluster.check_storage(runs_dir, data.get("source"))
    print(f"Ray cluster: {len(found['nodes'])} nodes, {found['cpus']:g} CPUs, {found['gpus']:g} GPUs; every node "
          f"sees {runs_dir.resolve()}", file=sys.stderr, flush=True)


def cmd_study(args) -> int:
    study_dir = start_study(args, args.kind, config_from_args(args))
    return 0 if args.detach else follow_study(study_dir)


def follow_study(study_dir: Path) -> int:
    """Print each run as it finishes, with a bar over the study's runs on a terminal; Ctrl-C stops the study
    (the run in progress keeps its best weights)."""
    from cifar_core import progress

    seen: set[str] = set()
    try:
        with progress.bars() as bars:
            task = bars.add_task(f"study {study_dir.name}", total=None, note="")
            while True:
                study = studies.read(study_dir)
                table = studies.queue(study_dir)
                for entry, row in zip(study["runs"], table.itertuples(), strict=True):
                    if row.status in rundir.FINISHED and row.name not in seen:
                        seen.add(row.name)
                        line = _study_run_line(study, entry, row)
                        progress.say(bars, line)
                running = table[table["status"] == "running"]["name"].tolist()
                bars.update(task, completed=studies.finished_count(table), total=len(table),
                            note=f"now: {running[0]}" if running else "")
                if studies.status(study) not in rundir.ACTIVE:
                    break
                time.sleep(1)
    except KeyboardInterrupt:
        studies.stop(study_dir)
        print("stopping the study ...", file=sys.stderr, flush=True)
    study = studies.read(study_dir)
    state = studies.status(study)
    print(f"study {study_dir.name}: {state}")
    if study.get("seeds"):
        from cifar_core import report, stats

        groups = stats.group_summary(studies.results(study_dir), studies.group_labels(study))
        if not groups.empty:
            print(report.markdown_table(groups))
    return 0 if state == "completed" else 1


def _study_run_line(study: dict, entry: dict, row) -> str:
    meta = runs.load_run(studies.run_dir_of(study, entry)).meta
    acc = meta.get("test_accuracy")
    return (f"{row.name:24s} {row.status:10s} test acc {'-' if acc is None else f'{acc:.4f}'}  "
            f"best epoch {meta.get('best_epoch')}  {meta.get('wall_time') or 0:.0f} s")


def cmd_studies(args) -> int:
    found = studies.list_studies(studies_dir(args))
    if not found:
        print(f"No studies in {studies_dir(args)}. Start one with `cifar-lab study depth --subset 10000`.")
        return 0
    for s in found:
        if s["status"] == rundir.DAMAGED:
            print(f"{s['id']:36s} damaged: {s['error']}")
            continue
        table = studies.queue(Path(s["path"]))
        print(f"{s['id']:36s} {s['kind']:13s} {studies.status(s):11s} "
              f"{studies.finished_count(table)}/{len(table)} runs done")
    return 0


def cmd_study_resume(args) -> int:
    study_dir = studies.find_study(studies_dir(args), args.study)
    studies.resume(study_dir)
    print(study_dir, flush=True)
    return 0 if args.detach else follow_study(study_dir)


def cmd_study_stop(args) -> int:
    studies.stop(studies.find_study(studies_dir(args), args.study))
    print("asked the study to stop")
    return 0


def cmd_study_report(args) -> int:
    from cifar_core import report

    study_dir = studies.find_study(studies_dir(args), args.study)
    path = report.write_markdown(study_dir, study_dir / "report")
    print(path.read_text())
    print(f"written: {path}")
    return 0


def cmd_compare(args) -> int:
    from cifar_core import compare

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
    return 0


def cmd_explain(args) -> int:
    from cifar_core import explain

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


def cmd_import(args) -> int:
    source = args.data or data.default_source()
    load_data(source)  # decoded now, with progress; a bad source is refused before a run directory exists
    run_dir = importing.import_model(runs_dir(args), args.model, source, args.name, args.input_scale)
    meta = runs.load_run(run_dir).meta
    imported = meta["imported"]
    probe = ", ".join(f"{scale}: {acc:.3f}" for scale, acc in imported["scale_probe"].items())
    print(run_dir)
    print(f"imported {args.model.name}: test accuracy {meta['test_accuracy']:.4f} on {meta['sizes']['test']:,} "
          f"images; input scale {imported['input_scale']}{f' (probe accuracy {probe})' if probe else ''}; "
          f"architecture {imported['architecture']}; {meta['params']:,} parameters")
    return 0


def cmd_reproduce(args) -> int:
    from cifar_core import report

    if args.study:
        study_dir = studies.find_study(studies_dir(args), args.study)
    else:
        study_dir = start_study(args, "seed", TrainConfig(subset=args.subset, test_subset=args.test_subset).check())
        follow_study(study_dir)
    table = report.seed_comparison(study_dir)
    out = report.write_markdown(study_dir, study_dir / "report")
    print(report.markdown_table(table))
    study = studies.read(study_dir)
    for note in caveats.for_study(study, studies.finished_metas(study)):
        print(f"note: {note}")
    print(f"report: {out} (charts beside it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
