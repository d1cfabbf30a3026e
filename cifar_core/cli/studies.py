"""Commands for studies: study, studies, study-resume, study-stop, study-report, reproduce."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from cifar_core import settings
from cifar_core.analysis import caveats
from cifar_core.cli.options import config_from_args, executor_from_args, load_data, runs_dir, studies_dir
from cifar_core.model import specs
from cifar_core.model.config import TrainConfig
from cifar_core.store import rundir, runs
from cifar_core.studies import estimates, executors, plans, records


def start_study(args, kind: str, cfg: TrainConfig, spec: specs.ArchitectureSpec | None = None) -> Path:
    seeds = plans.parse_seeds(args.seeds, cfg.seed)
    if kind == "seeds" and spec is None:
        spec = specs.resolve(args.arch, specs.specs_dir(runs_dir(args)))
    executor = executor_from_args(args) if hasattr(args, "executor") else executors.Executor()
    data = load_data(args.data).describe()
    if executor.kind == "ray" and (executor.address or settings.ray_address()):
        check_cluster(executor, runs_dir(args), data)  # a Ray of this machine alone sees what it sees
    custom = specs.saved_specs(specs.specs_dir(runs_dir(args)))
    study_dir = records.create(studies_dir(args), runs_dir(args), kind, cfg, data, custom, seeds, spec, executor)
    records.launch(study_dir)
    print(study_dir, flush=True)
    print_estimate(plans.with_seeds(plans.plan(kind, cfg, custom, spec), seeds), data, runs_dir(args))
    return study_dir


def print_estimate(planned: list, data: dict, runs_folder: Path) -> None:
    """How long the study may take, as the Experiments page says it (on stderr: stdout is the study's folder)."""
    costs = estimates.measure(runs_folder)
    found = estimates.estimate(planned, data, costs)
    text = (estimates.estimate_text(found, costs) if found else
            estimates.unmeasured_text(sorted({p.spec.name for p in planned}), inferred=False))
    print(text, file=sys.stderr, flush=True)


def check_cluster(executor: executors.Executor, runs_dir: Path, data: dict) -> None:
    """Before a Ray study is created: the cluster answers, and every node sees the runs and the data."""
    from cifar_core.studies import ray_executor

    ray_executor.connect(executor.address)
    found = ray_executor.check_storage(runs_dir, data.get("source"))
    print(f"Ray cluster: {len(found['nodes'])} nodes, {found['cpus']:g} CPUs, {found['gpus']:g} GPUs; every node "
          f"sees {runs_dir.resolve()}", file=sys.stderr, flush=True)


def cmd_study(args) -> int:
    if args.kind == "search":
        return cmd_search(args)
    if args.space:
        raise runs.RunError("--space is for `cifar-lab study search`; this study's runs are planned by its kind.")
    study_dir = start_study(args, args.kind, config_from_args(args))
    return 0 if args.detach else follow_study(study_dir)


def cmd_search(args) -> int:
    """`study search`: checks the space and the settings before anything is created, then starts the search."""
    from cifar_core.model import space
    from cifar_core.studies import search

    if args.seeds:
        raise runs.RunError("--seeds: a search trains each trial once; --seeds-for-best K retrains the best settings "
                            "(and the preset) with K seeds.")
    chosen = search.Settings(args.space or "", args.trials, args.time_budget, args.seeds_for_best,
                             args.pruner).check()
    args.time_budget = None  # the search's budget, not one run's
    cfg = config_from_args(args)
    search.refuse_test_protocol(cfg)
    spec = specs.resolve(args.arch, specs.specs_dir(runs_dir(args)))
    executor = executor_from_args(args)
    data = load_data(args.data).describe()
    if executor.kind == "ray" and (executor.address or settings.ray_address()):
        check_cluster(executor, runs_dir(args), data)
    study_dir = search.create(studies_dir(args), runs_dir(args), spec, cfg, data, chosen, executor)
    records.launch(study_dir)
    print(study_dir, flush=True)
    preview = space.preview_text(spec, space.parse(chosen.space))
    if preview:
        print(preview, file=sys.stderr, flush=True)
    upper = [plans.PlannedRun(spec.name, spec, cfg)] * (chosen.trials + 2 * chosen.seeds_for_best)
    print_estimate(upper, data, runs_dir(args))
    within = f", and no trial starts that would end past {chosen.time_budget:g} s" if chosen.time_budget else ""
    print(f"(that is every trial to its last epoch: pruned trials end sooner{within}; then "
          f"{2 * chosen.seeds_for_best} runs retrain the best settings and the preset)", file=sys.stderr, flush=True)
    return 0 if args.detach else follow_study(study_dir)


def follow_study(study_dir: Path) -> int:
    """Print each run as it finishes, with a bar over the study's runs on a terminal; Ctrl-C stops the study
    (the run in progress keeps its best weights)."""
    from cifar_core.cli import progress

    seen: set[str] = set()
    try:
        with progress.bars() as bars:
            task = bars.add_task(f"study {study_dir.name}", total=None, note="")
            while True:
                study = records.read(study_dir)
                table = records.queue(study_dir)
                for entry, row in zip(study["runs"], table.itertuples(), strict=True):
                    if row.status in rundir.FINISHED and row.name not in seen:
                        seen.add(row.name)
                        line = _study_run_line(study, entry, row)
                        progress.say(bars, line)
                running = table[table["status"] == "running"]["name"].tolist()
                bars.update(task, completed=records.finished_count(table), total=len(table),
                            note=f"now: {running[0]}" if running else "")
                if records.status(study) not in rundir.ACTIVE:
                    break
                time.sleep(1)
    except KeyboardInterrupt:
        records.stop(study_dir)
        print("stopping the study ...", file=sys.stderr, flush=True)
    study = records.read(study_dir)
    state = records.status(study)
    print(f"study {study_dir.name}: {state}")
    if study["kind"] == "search":
        print_search(study)
    if study.get("seeds"):
        from cifar_core.analysis import stats
        from cifar_core.studies import report

        groups = stats.group_summary(records.results(study_dir), plans.group_labels(study))
        if not groups.empty:
            print(report.markdown_table(groups))
    return 0 if state == "completed" else 1


def _study_run_line(study: dict, entry: dict, row) -> str:
    """One finished run; a search's trial shows its validation accuracy only (a search never reads the test set)."""
    meta = runs.load_run(records.run_dir_of(study, entry)).meta
    trial = entry["labels"].get("role") == "trial"
    acc = meta.get("best_val_accuracy" if trial else "test_accuracy")
    return (f"{row.name:24s} {row.status:10s} {'val' if trial else 'test'} acc {'-' if acc is None else f'{acc:.4f}'}  "
            f"best epoch {meta.get('best_epoch')}  {meta.get('wall_time') or 0:.0f} s")


def print_search(study: dict) -> None:
    """What a search found: its best settings, and the seeds table (preset against best, mean ± std on the test
    set) with whether the gain is real."""
    from cifar_core.studies import report, search_results

    print(search_results.best_text(study) or "No trial completed: nothing to retrain.")
    seeds = search_results.seeds_table(study)
    if not seeds.empty:
        print(report.markdown_table(seeds.drop(columns=["run_id"])))
        print(report.markdown_table(search_results.seeds_summary(seeds)))
        print(search_results.gain_text(seeds) or "The gain needs two finished seeds of each.")


def cmd_studies(args) -> int:
    found = records.list_studies(studies_dir(args))
    if not found:
        print(f"No studies in {studies_dir(args)}. Start one with `cifar-lab study depth --subset 10000`.")
        return 0
    for s in found:
        if s["status"] == rundir.DAMAGED:
            print(f"{s['id']:36s} damaged: {s['error']}")
            continue
        table = records.queue(Path(s["path"]))
        done = f"{records.finished_count(table)}/{len(table)} runs done"
        if s["kind"] == "search":
            from cifar_core.studies import search_results

            done += f" ({search_results.progress_text(s)})"
        print(f"{s['id']:36s} {s['kind']:13s} {records.status(s):11s} {done}")
    return 0


def cmd_study_resume(args) -> int:
    study_dir = records.find_study(studies_dir(args), args.study)
    records.resume(study_dir)
    print(study_dir, flush=True)
    return 0 if args.detach else follow_study(study_dir)


def cmd_study_stop(args) -> int:
    records.stop(records.find_study(studies_dir(args), args.study))
    print("asked the study to stop")
    return 0


def cmd_study_report(args) -> int:
    from cifar_core.studies import report

    study_dir = records.find_study(studies_dir(args), args.study)
    path = report.write_markdown(study_dir, study_dir / "report")
    print(path.read_text())
    print(f"written: {path}")
    return 0


def cmd_reproduce(args) -> int:
    from cifar_core.studies import report

    if args.study:
        study_dir = records.find_study(studies_dir(args), args.study)
    else:
        study_dir = start_study(args, "seed", TrainConfig(subset=args.subset, test_subset=args.test_subset).check())
        follow_study(study_dir)
    table = report.seed_comparison(study_dir)
    out = report.write_markdown(study_dir, study_dir / "report")
    print(report.markdown_table(table))
    study = records.read(study_dir)
    for note in caveats.for_study(study, records.finished_metas(study)):
        print(f"note: {note}")
    print(f"report: {out} (charts beside it)")
    return 0
