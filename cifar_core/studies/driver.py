"""The study's background process (`python -m cifar_core.studies.driver STUDY_DIR`): trains every unfinished run
through the ordinary trainer process, here or on Ray, and records how the study ended."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from cifar_core.model import specs
from cifar_core.model.config import TrainConfig
from cifar_core.store import rundir, runs
from cifar_core.store.rundir import ACTIVE, HAS_RESULTS
from cifar_core.studies.executors import Executor, executor_of
from cifar_core.studies.records import read, run_dir_of, run_state, set_run_id, update

POLL_S = 1.0


def adopt_created_runs(study_dir: Path) -> dict:
    """Record the run id of any planned run whose directory exists but study.json missed it (the study
    process was killed between starting the run and writing its id): resume must not train it twice."""
    study = read(study_dir)
    missing = {i for i, e in enumerate(study["runs"]) if not e.get("run_id")}
    if missing:
        for info in runs.list_runs(Path(study["runs_dir"])):
            index = info.meta.get("study_index")
            if info.meta.get("study") == study["id"] and index in missing:
                set_run_id(study_dir, index, info.run_id)
    return read(study_dir)


def run_study(study_dir: Path) -> str:
    """Train every unfinished run of the study; interrupted runs are resumed, finished ones kept."""
    update(study_dir, status="running", **runs.process_record(os.getpid()))
    study = adopt_created_runs(study_dir)
    executor = executor_of(study)
    if study["kind"] == "search":
        from cifar_core.studies import search

        final = search.run(study_dir, executor)
    else:
        final = run_entries(study_dir, study, executor)
    update(study_dir, status=final, finished=time.time())
    return final


def run_entries(study_dir: Path, study: dict, executor: Executor, only: set[int] | None = None) -> str:
    """Train the study's unfinished planned runs (those numbered in `only`, if given) with its executor."""
    if executor.kind == "ray":
        return _run_on_ray(study_dir, study, executor, only)
    return _run_here(study_dir, study, only)


def _run_here(study_dir: Path, study: dict, only: set[int] | None = None) -> str:
    """The local executor: one run after another, each through the ordinary trainer process."""
    for i, entry in enumerate(study["runs"]):
        if run_state(run_dir_of(study, entry)) in HAS_RESULTS or (only is not None and i not in only):
            continue
        run_dir = start_when_idle(study_dir, study, i, entry)
        if run_dir is None:
            break
        print(f"[study] {entry['name']}: {run_dir.name}", flush=True)
        runs.wait(run_dir, timeout=7 * 24 * 3600, poll=POLL_S)
    return final_status(study_dir, "stopped" if (study_dir / rundir.STOP).exists() else "completed")


def _run_on_ray(study_dir: Path, study: dict, executor: Executor, only: set[int] | None = None) -> str:
    """The ray executor: every unfinished run queued at once as a Ray task (cifar_core.cluster)."""
    from cifar_core.studies import ray_executor

    pending = [queued_for_ray(study_dir, study, i, entry) for i, entry in enumerate(study["runs"])
               if run_state(run_dir_of(study, entry)) not in HAS_RESULTS and (only is None or i in only)]
    connect_ray(study_dir, study, executor)
    return final_status(study_dir, ray_executor.run_study(executor, pending, (study_dir / rundir.STOP).exists))


def connect_ray(study_dir: Path, study: dict, executor: Executor) -> dict:
    """Join the study's Ray cluster, check that every node sees the runs and the data, and record what it found."""
    from cifar_core.studies import ray_executor

    ray_executor.connect(executor.address)
    found = ray_executor.check_storage(Path(study["runs_dir"]), study["data"].get("source"))
    update(study_dir, cluster={**found, "checked": time.time()})
    print(f"[study] Ray: {found['cpus']:g} CPUs, {found['gpus']:g} GPUs on {len(found['nodes'])} nodes", flush=True)
    return found


def final_status(study_dir: Path, final: str) -> str:
    """`final`, except that a study which went through its runs while one of them ended without results (its
    trainer killed, its Ray node lost) is `interrupted`: study-resume continues that run."""
    study = read(study_dir)
    if final == "completed" and any(run_state(run_dir_of(study, e)) not in HAS_RESULTS for e in study["runs"]):
        return "interrupted"
    return final


def queued_for_ray(study_dir: Path, study: dict, index: int, entry: dict) -> Path:
    """The run directory of one planned run, ready for a Ray task: created, or an unfinished one set back to
    queued (a run that was training when its study's driver ended died with the driver's Ray job)."""
    run_dir = run_dir_of(study, entry)
    if run_dir is None or not run_dir.exists():
        return _new_run(study_dir, study, index, entry, runs.create_run)
    (run_dir / rundir.STOP).unlink(missing_ok=True)
    runs.update_run(run_dir, status="queued", error=None, pid=None, **{runs.PID_START: None})
    return run_dir


def start_when_idle(study_dir: Path, study: dict, index: int, entry: dict) -> Path | None:
    """Start (or resume) one planned run as soon as no other run trains; None once the study is stopped."""
    run_dir = run_dir_of(study, entry)
    while not (study_dir / rundir.STOP).exists():
        try:
            state = run_state(run_dir)
            if state in rundir.RESUMABLE:
                runs.resume(runs.load_run(run_dir))
                return run_dir
            if state in ACTIVE:
                return run_dir
            return _new_run(study_dir, study, index, entry, runs.start)
        except runs.Busy:
            time.sleep(POLL_S)  # another run trains: two at once only slow each other down
    return None


def _new_run(study_dir: Path, study: dict, index: int, entry: dict, make) -> Path:
    """One planned run's directory made by `make` (runs.create_run, or runs.start to launch it too), tagged with
    its study and recorded in study.json."""
    run_dir = make(Path(study["runs_dir"]), specs.from_dict(entry["spec"]), TrainConfig.from_dict(entry["config"]),
                   study["data"], f"{study['id']}-{entry['name']}"[:80],
                   extra={"study": study["id"], "study_index": index, "labels": entry["labels"],
                          **{k: entry[k] for k in ("bn_momentum", "tags") if k in entry}})
    set_run_id(study_dir, index, run_dir.name)
    return run_dir


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    study_dir = Path(argv[0])
    try:
        run_study(study_dir)
    except Exception as exc:
        update(study_dir, status="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
