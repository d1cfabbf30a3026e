"""Commands that train: train, stop, resume, import; and following a run in the terminal."""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

from cifar_core import data
from cifar_core.cli.options import config_from_args, load_data, runs_dir
from cifar_core.cli.output import epoch_line, print_outcome
from cifar_core.cli.studies import follow_study, start_study
from cifar_core.engine import importing
from cifar_core.model import preflight, sizing, specs
from cifar_core.store import rundir, runs
from cifar_core.studies import plans


def cmd_train(args) -> int:
    arch = args.arch or ("fast" if args.recipe == "fast" else "baseline")
    spec = specs.resolve(arch, specs.specs_dir(runs_dir(args)))
    cfg = config_from_args(args)
    if cfg.recipe == "fast" and cfg.time_budget and not args.arch and not args.seeds:
        cfg = replace(cfg, size_network=True)  # the run measures and picks its network (seeds share the preset's)
    if args.name:
        runs.check_name(args.name)
    if plans.parse_seeds(args.seeds, cfg.seed):
        study_dir = start_study(args, "seeds", cfg, spec)
        return 0 if args.detach else follow_study(study_dir)
    info = load_data(args.data).describe()
    preflight.check(spec, cfg, info)
    preflight.check_gpus(cfg)
    run_dir = runs.start(runs_dir(args), spec, cfg, info, args.name)
    print(run_dir, flush=True)
    return 0 if args.detach else follow(run_dir)


def follow(run_dir: Path) -> int:
    """Print each epoch as it lands, with a bar for the epoch in flight on a terminal; Ctrl-C asks the run
    to stop and waits for its best weights."""
    from cifar_core.cli import progress

    printed, epoch, engine_said = 0, None, False
    try:
        with progress.bars() as bars:
            task = bars.add_task("starting", total=None, note="")
            while True:
                info = runs.load_run(run_dir)
                if info.meta.get("engine") and not engine_said:
                    if isinstance(info.meta.get("budget_choice"), dict):
                        progress.say(bars, f"{info.meta['spec']['name']}, sized to the budget: "
                                     + sizing.prediction_text(info.meta["budget_choice"]))
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
