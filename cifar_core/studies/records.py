"""Studies: a named group of runs answering one question (depth, batch norm, dropout, architectures, seed).

A study is `artifacts/studies/<id>/study.json` listing its planned runs; this module creates, reads, lists,
launches, stops and resumes them, and reads their runs' results. What each run is and how it went lives only in its
run directory."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path

from cifar_core.analysis import stats
from cifar_core.model import preflight
from cifar_core.model.config import TrainConfig
from cifar_core.model.specs import ArchitectureSpec
from cifar_core.store import rundir, runs
from cifar_core.store.rundir import ACTIVE, HAS_RESULTS, DamagedRun
from cifar_core.studies.executors import EXECUTORS, Executor, executor_of, node_text
from cifar_core.studies.plans import KINDS, bn_momentum_choice, plan, with_seeds

STUDY_JSON = "study.json"


STUDY_SCHEMA = {
    "type": "object",
    "required": ["id", "kind", "status", "data", "config", "runs_dir", "runs"],
    "properties": {
        "id": {"type": "string", "pattern": f"^{rundir.RUN_ID_PATTERN}$"},
        "kind": {"enum": list(KINDS)},
        "status": {"enum": list(rundir.STATUSES)},
        "pid": {"type": ["integer", "null"]},
        "data": {"type": "object", "required": ["source"], "properties": {"source": {"type": "string"}}},
        "config": {"type": "object"},
        "runs_dir": {"type": "string"},
        "seeds": {"type": ["array", "null"], "items": {"type": "integer", "minimum": 0}},
        "executor": {"type": "object", "properties": {"kind": {"enum": list(EXECUTORS)}}},
        "cluster": {"type": "object"},
        "runs": {"type": "array", "items": {
            "type": "object", "required": ["name", "spec", "config", "labels"],
            "properties": {"name": {"type": "string"}, "spec": {"type": "object"}, "config": {"type": "object"},
                           "labels": {"type": "object"},
                           "run_id": {"type": ["string", "null"], "pattern": f"^{rundir.RUN_ID_PATTERN}$"}}}},
    },
}


def default_studies_dir(runs_dir: Path) -> Path:
    return runs_dir.parent / "studies"


def create(studies_dir: Path, runs_dir: Path, kind: str, config: TrainConfig, data: dict,
           custom: dict[str, ArchitectureSpec] | None = None, seeds: list[int] | None = None,
           spec: ArchitectureSpec | None = None, executor: Executor | None = None) -> Path:
    """A study directory with its plan, after every planned run has passed the same checks a single run does
    (`data` describes the data set, as `data.summary()` does); no run directory exists until the study
    process reaches it. With `seeds`, every planned run is trained once per seed."""
    planned = with_seeds(plan(kind, config, custom, spec), seeds)
    executor = (executor or Executor()).check()
    for p in planned:
        preflight.check(p.spec, p.config, data)
    choices = [bn_momentum_choice(p, data) for p in planned]
    studies_dir.mkdir(parents=True, exist_ok=True)
    study_id = runs.new_run_id(studies_dir, kind)
    study_dir = studies_dir / study_id
    study_dir.mkdir()
    rundir.write_json_atomic(study_dir / STUDY_JSON, {
        "id": study_id, "kind": kind, "created": datetime.now(UTC).isoformat(), "status": "queued",
        "data": data, "config": asdict(config), "runs_dir": str(runs_dir.resolve()), "seeds": seeds,
        "executor": asdict(executor),
        "runs": [{"name": p.name, "spec": p.spec.to_dict(),
                  "config": asdict(replace(p.config, bn_momentum=choice["chosen"]) if choice else p.config),
                  "labels": p.labels, "run_id": None, **({"bn_momentum": choice} if choice else {})}
                 for p, choice in zip(planned, choices, strict=True)],
    })
    return study_dir


def read(study_dir: Path) -> dict:
    """study.json, checked against its schema (DamagedRun says what does not fit), with its runs folder where the
    lab puts it: beside the studies folder. Its run ids then name run directories inside that folder only."""
    study = rundir.read_checked_json(study_dir / STUDY_JSON, STUDY_SCHEMA)
    runs_dir = Path(study["runs_dir"])
    if not runs_dir.is_absolute() or runs_dir.resolve().parent != study_dir.resolve().parent.parent:
        raise DamagedRun(f"{STUDY_JSON}: runs_dir {study['runs_dir']} is not the runs folder beside "
                         f"{study_dir.resolve().parent} (a study trains only there)")
    return study


def status(study: dict) -> str:
    """study.json's status, with the same rule as runs: active but its process gone = 'interrupted'."""
    return runs.effective_status({"status": "queued", **study})


def list_studies(studies_dir: Path) -> list[dict]:
    """Every study, newest first; a damaged study.json is listed with status 'damaged' and its reason."""
    found = []
    for d in sorted(studies_dir.iterdir(), reverse=True) if studies_dir.is_dir() else []:
        if not d.is_dir() or d.name.startswith("."):
            continue
        try:
            found.append({**read(d), "path": str(d)})
        except DamagedRun as exc:
            found.append({"id": d.name, "kind": "?", "status": rundir.DAMAGED, "error": str(exc), "path": str(d)})
    return found


def find_study(studies_dir: Path, ref: str) -> Path:
    """A study by id or unique id prefix, always inside `studies_dir`."""
    if not runs.RUN_ID.fullmatch(ref):
        raise runs.RunError(f"{ref!r} is not a study id; `cifar-lab studies` lists them.")
    matches = [p for p in studies_dir.glob(f"{ref}*") if (p / STUDY_JSON).exists()] if studies_dir.is_dir() else []
    exact = [p for p in matches if p.name == ref]
    if len(exact) == 1 or len(matches) == 1:
        return (exact or matches)[0]
    raise runs.RunError(f"No study matches {ref!r} in {studies_dir}; `cifar-lab studies` lists them."
                        if not matches else f"{ref!r} matches {len(matches)} studies; give more of the id.")


def launch(study_dir: Path) -> int:
    """Start the study's background process (new session); output to the study's log.txt."""
    (study_dir / rundir.STOP).unlink(missing_ok=True)
    with open(study_dir / rundir.LOG, "a") as log:
        proc = subprocess.Popen([sys.executable, "-m", "cifar_core.studies.driver", str(study_dir)], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    update(study_dir, status="running", **runs.process_record(proc.pid))
    return proc.pid


def stop(study_dir: Path) -> None:
    """Stop the run in progress (keeping its best weights) and start no further run."""
    (study_dir / rundir.STOP).write_text(datetime.now(UTC).isoformat())
    study = read(study_dir)
    for entry in study["runs"]:
        run_dir = run_dir_of(study, entry)
        if run_state(run_dir) in ACTIVE:
            runs.stop(runs.load_run(run_dir))


def resume(study_dir: Path) -> int:
    """Start the study's driver again, unless one lives: the studies folder's lock is held from that check to the
    recorded pid, so resumes at the same instant start one driver."""
    with rundir.locked(study_dir.parent):
        study = read(study_dir)
        if status(study) in ACTIVE:
            raise runs.RunError(f"Study {study['id']} is still running; `cifar-lab study-stop {study['id']}` stops it.")
        return launch(study_dir)


def update(study_dir: Path, **changes) -> dict:
    return rundir.update_json(study_dir, STUDY_JSON, **changes)


def run_dir_of(study: dict, entry: dict) -> Path | None:
    """The run directory of one planned run, once the study has created it."""
    return Path(study["runs_dir"]) / entry["run_id"] if entry.get("run_id") else None


def run_state(run_dir: Path | None) -> str | None:
    return runs.load_run(run_dir).status if run_dir and run_dir.exists() else None


def set_run_id(study_dir: Path, index: int, run_id: str) -> None:
    with rundir.locked(study_dir):
        study = read(study_dir)
        study["runs"][index]["run_id"] = run_id
        rundir.write_json_atomic(study_dir / STUDY_JSON, study)


def queue(study_dir: Path):
    """The study's runs in order with their live status: what has run, what runs now, what is left."""
    import pandas as pd

    rows, study = [], read(study_dir)
    on_ray = executor_of(study).kind == "ray"
    for entry in study["runs"]:
        run_dir = run_dir_of(study, entry)
        info = runs.load_run(run_dir) if run_dir and run_dir.exists() else None
        rows.append({"name": entry["name"], **entry["labels"], "status": info.status if info else "waiting",
                     **({"node": node_text(info.meta) if info else ""} if on_ray else {}),
                     "run_id": entry.get("run_id")})
    # a search lists no run before its first trial
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=["name", "status", "run_id"])


def finished_count(queue_table) -> int:
    """How many of a study's runs have results (completed, stopped or pruned)."""
    return int(queue_table["status"].isin(HAS_RESULTS).sum())


CUT_SHORT = stats.CUT_SHORT  # a run stopped before its plan ended: shown, but kept out of its group's statistics


def results(study_dir: Path):
    """One row per finished run: its labels and what it achieved (accuracy, overfitting gap, calibration, speed,
    size), and whether it was cut short (stopped, or pruned by a search)."""
    import pandas as pd

    from cifar_core.analysis.calibration import run_ece
    from cifar_core.analysis.scores import cell

    rows, study = [], read(study_dir)
    for entry in study["runs"]:
        run_dir = run_dir_of(study, entry)
        if run_state(run_dir) not in HAS_RESULTS:
            continue
        info = runs.load_run(run_dir)
        m, metrics = info.meta, runs.read_metrics(run_dir)
        last = metrics.iloc[-1]
        report = rundir.read_report(run_dir)
        pets = {"cat", "dog"} <= set(report["class_names"])
        rows.append({
            "run": entry["name"], "run_id": info.run_id, "seed": entry["config"].get("seed"), **entry["labels"],
            "params": m.get("params"), "cat_dog": cell(report, "cat", "dog") if pets else None,
            "dog_cat": cell(report, "dog", "cat") if pets else None,
            "test_accuracy": m.get("test_accuracy"), "best_val_accuracy": m.get("best_val_accuracy"),
            "best_epoch": m.get("best_epoch"), "epochs": len(metrics), CUT_SHORT: info.status in rundir.CUT_SHORT,
            "gap": float(last["accuracy"] - last["val_accuracy"]),
            "seconds_per_epoch": runs.seconds_per_epoch(metrics), "wall_time": m.get("wall_time"),
            "ece": run_ece(rundir.read_predictions(run_dir)), "bn_settled": (m.get("bn_check") or {}).get("settled"),
        })
    return pd.DataFrame(rows)


def layer_profiles(study_dir: Path):
    """Every layer of every finished run at its last layer record, with the run's labels (analysis.layers.frame
    rows): the study's gradient flow and activations by depth. Runs without records are left out."""
    import pandas as pd

    from cifar_core.analysis import layers as layer_stats

    parts, study = [], read(study_dir)
    for entry in study["runs"]:
        run_dir = run_dir_of(study, entry)
        if run_state(run_dir) not in HAS_RESULTS:
            continue
        try:
            found = rundir.read_layer_records(run_dir)
        except DamagedRun:
            continue
        if found:
            labels = {k: str(v) for k, v in entry["labels"].items()}
            parts.append(layer_stats.frame(found[-1:]).assign(run=entry["name"], **labels))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def finished_metas(study: dict) -> list[dict]:
    """run.json of each of the study's runs that has results (for the caveats of its figures)."""
    metas = []
    for entry in study["runs"]:
        run_dir = run_dir_of(study, entry)
        info = runs.load_run(run_dir) if run_dir and run_dir.exists() else None
        if info and info.has_results:
            metas.append(info.meta)
    return metas
