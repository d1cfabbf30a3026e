"""Studies: a named group of runs answering one question (depth, batch norm, dropout, architectures, seed).

A study is `artifacts/studies/<id>/study.json` listing its planned runs; one background process
(`python -m cifar_core.studies STUDY_DIR`) trains them through the ordinary trainer process: one after another
on this machine (the `local` executor), or as Ray tasks on a cluster (`ray`, see cifar_core.cluster). What each
run is and how it went lives only in its run directory.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from cifar_core import batchnorm, caveats, preflight, rundir, runs, specs, stats
from cifar_core.config import TrainConfig
from cifar_core.rundir import ACTIVE, HAS_RESULTS, DamagedRun
from cifar_core.specs import ArchitectureSpec

DESCRIPTIONS = {
    "depth": "1 to 5 conv blocks of the baseline family (channels doubling from 32), with and without batch norm.",
    "batchnorm": "Each preset with and without batch normalization.",
    "dropout": "The batchnorm preset with dropout 0, 0.1, 0.25 and 0.4 after every block and in the head.",
    "architectures": "Every preset and every saved custom architecture.",
    "seed": "baseline, deeper and batchnorm under the seed notebook's protocol (Adam, batch 32, up to 30 epochs, "
            "early stopping with patience 5, validation on the test set), compared with its published figures.",
    "seeds": "One architecture and training config, trained once per seed: its spread.",
}
KINDS = tuple(DESCRIPTIONS)
DROPOUT_RATES = (0.0, 0.1, 0.25, 0.4)
SEED_PRESETS = ("baseline", "deeper", "batchnorm")
MAX_SEEDS = 20
REPRODUCE_SEEDS = 3  # `reproduce` averages this many seeds unless told otherwise
STUDY_JSON = "study.json"
POLL_S = 1.0
EXECUTORS = ("local", "ray")  # local: one run after another on this machine; ray: Ray tasks (cifar_core.cluster)


@dataclass(frozen=True)
class Executor:
    """Where a study's runs train. With 'ray', as many runs train at once as the cluster's resources allow, each
    given `cpus_per_run` CPUs (TensorFlow's threads too) and `gpus_per_run` GPUs."""

    kind: str = "local"
    address: str | None = None  # 'auto', 'ray://HOST:10001', or None: $RAY_ADDRESS, else a Ray on this machine
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0

    def check(self) -> Executor:
        problems = []
        if self.kind not in EXECUTORS:
            problems.append(f"executor {self.kind!r}: choose one of {', '.join(EXECUTORS)}")
        if self.kind == "ray" and not ray_installed():
            problems.append("the ray executor needs Ray: pip install 'cifar-lab[cluster]'")
        if not 0 < self.cpus_per_run <= 1024:
            problems.append(f"cpus per run {self.cpus_per_run:g}: give a number above 0 (1 is usual)")
        if not 0 <= self.gpus_per_run <= 64:
            problems.append(f"gpus per run {self.gpus_per_run:g}: give 0 or more")
        if problems:
            raise runs.RunError("; ".join(problems) + ".")
        if self.kind == "ray" and self.address and self.address != "auto":
            check_reachable(self.address)
        return self


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail at once when nothing listens at a Ray address (ray.init itself waits minutes for an answer)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise runs.RunError(f"Ray address {address!r}: give HOST:PORT (the head's GCS port, 6379 by default), "
                            "ray://HOST:10001, or 'auto'.")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise runs.RunError(f"Nothing answers at {address} ({exc.strerror or exc}): is the Ray head started "
                            "(`ray start --head`), and is this its address?") from None


def ray_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray") is not None


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


@dataclass
class PlannedRun:
    """One run of a study: its spec and config, and the setting it varies (labels)."""

    name: str
    spec: ArchitectureSpec
    config: TrainConfig
    labels: dict = field(default_factory=dict)


def default_studies_dir(runs_dir: Path) -> Path:
    return runs_dir.parent / "studies"


def parse_seeds(text: str | int | None, base: int = 0) -> list[int] | None:
    """`--seeds`: a count N (seeds base .. base+N-1) or a comma-separated list; None means one run each."""
    if text is None or str(text).strip() in ("", "1"):
        return None
    try:
        seeds = ([base + i for i in range(int(text))] if "," not in str(text)
                 else [int(s) for s in str(text).split(",") if s.strip()])
    except ValueError:
        raise runs.RunError(f"--seeds {text!r}: give a count (3) or a list of seeds (0,1,2).") from None
    if not 1 <= len(seeds) <= MAX_SEEDS or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise runs.RunError(f"--seeds {text!r}: 1 to {MAX_SEEDS} different seeds, none negative.")
    return seeds


def with_seeds(planned: list[PlannedRun], seeds: list[int] | None) -> list[PlannedRun]:
    """Each planned run once per seed (labelled with it), so runs that differ only in seed form a group."""
    if not seeds:
        return planned
    return [PlannedRun(f"{p.name}-seed{seed}", p.spec, replace(p.config, seed=seed), {**p.labels, "seed": seed})
            for p in planned for seed in seeds]


def group_labels(study: dict) -> list[str]:
    """The labels that tell a study's groups apart: those that vary, but the seed (the first label when
    none varies)."""
    entries = [e["labels"] for e in study["runs"]]
    keys = [k for k in dict.fromkeys(k for labels in entries for k in labels) if k != "seed"]
    varying = [k for k in keys if len({repr(labels.get(k)) for labels in entries}) > 1]
    return varying or keys[:1]


def plan(kind: str, config: TrainConfig, custom: dict[str, ArchitectureSpec] | None = None,
         spec: ArchitectureSpec | None = None) -> list[PlannedRun]:
    """The runs a study of `kind` trains, in order (`spec`: the architecture of a `seeds` study)."""
    if kind == "seeds":
        if spec is None:
            raise runs.RunError("A seeds study needs the architecture to repeat.")
        return [PlannedRun(spec.name, spec, config, {"arch": spec.name})]
    if kind == "depth":
        return [PlannedRun(f"depth{d}{'-bn' if bn else ''}", specs.depth_family(d, bn), config,
                           {"depth": d, "batch_norm": bn}) for bn in (False, True) for d in range(1, 6)]
    if kind == "batchnorm":
        families = {}
        for preset in specs.SEED_PRESETS:
            plain = preset.with_batch_norm(False)
            families.setdefault((plain.blocks, plain.head), preset.name.replace("batchnorm", "baseline"))
        out = []
        for (blocks, head), family in families.items():
            for bn in (False, True):
                spec = ArchitectureSpec(f"{family}{'-bn' if bn else ''}", blocks, head).with_batch_norm(bn)
                out.append(PlannedRun(spec.name, spec, config, {"family": family, "batch_norm": bn}))
        return out
    if kind == "dropout":
        base = specs.PRESETS["batchnorm"]
        return [PlannedRun(f"dropout{rate:g}", replace(base.with_dropout(rate), name=f"batchnorm-dropout{rate:g}"),
                           config, {"dropout": rate}) for rate in DROPOUT_RATES]
    if kind == "architectures":
        every = {**specs.PRESETS, **(custom or {})}
        return [PlannedRun(name, spec, config, {"arch": name}) for name, spec in every.items()]
    if kind == "seed":
        seed_cfg = replace(config, epochs=30, batch_size=32, optimizer="adam", learning_rate=1e-3, patience=5,
                           validation="test")
        return [PlannedRun(f"seed-{n}", specs.PRESETS[n], seed_cfg, {"arch": n, "seed_protocol": True})
                for n in SEED_PRESETS]
    raise runs.RunError(f"Unknown study {kind!r}: choose one of {', '.join(KINDS)}.")


def create(studies_dir: Path, runs_dir: Path, kind: str, config: TrainConfig, data: dict,
           custom: dict[str, ArchitectureSpec] | None = None, seeds: list[int] | None = None,
           spec: ArchitectureSpec | None = None, executor: Executor = Executor()) -> Path:
    """A study directory with its plan, after every planned run has passed the same checks a single run does
    (`data` describes the data set, as `data.summary()` does); no run directory exists until the study
    process reaches it. With `seeds`, every planned run is trained once per seed."""
    planned = with_seeds(plan(kind, config, custom, spec), seeds)
    executor.check()
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


def bn_momentum_choice(planned: PlannedRun, data: dict) -> dict | None:
    """For a planned run with batch norm: its momentum, lowered for short epochs so that the moving statistics
    settle (batchnorm.settling_momentum), with what it was and the epoch's batches; None without batch norm."""
    if not any(block.batch_norm for block in planned.spec.blocks):
        return None
    cfg = planned.config
    steps = -(-cfg.sizes(data["train_images"], data["test_images"])["train"] // cfg.batch_size)
    return {"chosen": batchnorm.settling_momentum(steps, cfg.bn_momentum), "default": cfg.bn_momentum,
            "steps_per_epoch": steps}


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
        proc = subprocess.Popen([sys.executable, "-m", "cifar_core.studies", str(study_dir)], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    _update(study_dir, status="running", **runs.process_record(proc.pid))
    return proc.pid


def stop(study_dir: Path) -> None:
    """Stop the run in progress (keeping its best weights) and start no further run."""
    (study_dir / rundir.STOP).write_text(datetime.now(UTC).isoformat())
    study = read(study_dir)
    for entry in study["runs"]:
        run_dir = run_dir_of(study, entry)
        if _run_state(run_dir) in ACTIVE:
            runs.stop(runs.load_run(run_dir))


def resume(study_dir: Path) -> int:
    """Start the study's driver again, unless one lives: the studies folder's lock is held from that check to the
    recorded pid, so resumes at the same instant start one driver."""
    with rundir.locked(study_dir.parent):
        study = read(study_dir)
        if status(study) in ACTIVE:
            raise runs.RunError(f"Study {study['id']} is still running; `cifar-lab study-stop {study['id']}` stops it.")
        return launch(study_dir)


def _update(study_dir: Path, **changes) -> dict:
    return rundir.update_json(study_dir, STUDY_JSON, **changes)


def run_dir_of(study: dict, entry: dict) -> Path | None:
    """The run directory of one planned run, once the study has created it."""
    return Path(study["runs_dir"]) / entry["run_id"] if entry.get("run_id") else None


def _run_state(run_dir: Path | None) -> str | None:
    return runs.load_run(run_dir).status if run_dir and run_dir.exists() else None


def _adopt_created_runs(study_dir: Path) -> dict:
    """Record the run id of any planned run whose directory exists but study.json missed it (the study
    process was killed between starting the run and writing its id): resume must not train it twice."""
    study = read(study_dir)
    missing = {i for i, e in enumerate(study["runs"]) if not e.get("run_id")}
    if missing:
        for info in runs.list_runs(Path(study["runs_dir"])):
            index = info.meta.get("study_index")
            if info.meta.get("study") == study["id"] and index in missing:
                _set_run_id(study_dir, index, info.run_id)
    return read(study_dir)


def executor_of(study: dict) -> Executor:
    return Executor(**study.get("executor") or {})


def run_study(study_dir: Path) -> str:
    """Train every unfinished run of the study; interrupted runs are resumed, finished ones kept."""
    _update(study_dir, status="running", **runs.process_record(os.getpid()))
    study = _adopt_created_runs(study_dir)
    executor = executor_of(study)
    final = _run_on_ray(study_dir, study, executor) if executor.kind == "ray" else _run_here(study_dir, study)
    _update(study_dir, status=final, finished=time.time())
    return final


def _run_here(study_dir: Path, study: dict) -> str:
    """The local executor: one run after another, each through the ordinary trainer process."""
    for i, entry in enumerate(study["runs"]):
        if _run_state(run_dir_of(study, entry)) in HAS_RESULTS:
            continue
        run_dir = _start_when_idle(study_dir, study, i, entry)
        if run_dir is None:
            break
        print(f"[study] {entry['name']}: {run_dir.name}", flush=True)
        runs.wait(run_dir, timeout=7 * 24 * 3600, poll=POLL_S)
    return _final_status(study_dir, "stopped" if (study_dir / rundir.STOP).exists() else "completed")


def _run_on_ray(study_dir: Path, study: dict, executor: Executor) -> str:
    """The ray executor: every unfinished run queued at once as a Ray task (cifar_core.cluster)."""
    from cifar_core import cluster

    pending = [_queued_for_ray(study_dir, study, i, entry) for i, entry in enumerate(study["runs"])
               if _run_state(run_dir_of(study, entry)) not in HAS_RESULTS]
    cluster.connect(executor.address)
    found = cluster.check_storage(Path(study["runs_dir"]), study["data"].get("source"))
    _update(study_dir, cluster={**found, "checked": time.time()})
    print(f"[study] Ray: {found['cpus']:g} CPUs, {found['gpus']:g} GPUs on {len(found['nodes'])} nodes", flush=True)
    return _final_status(study_dir, cluster.run_study(executor, pending, (study_dir / rundir.STOP).exists))


def _final_status(study_dir: Path, final: str) -> str:
    """`final`, except that a study which went through its runs while one of them ended without results (its
    trainer killed, its Ray node lost) is `interrupted`: study-resume continues that run."""
    study = read(study_dir)
    if final == "completed" and any(_run_state(run_dir_of(study, e)) not in HAS_RESULTS for e in study["runs"]):
        return "interrupted"
    return final


def _queued_for_ray(study_dir: Path, study: dict, index: int, entry: dict) -> Path:
    """The run directory of one planned run, ready for a Ray task: created, or an unfinished one set back to
    queued (a run that was training when its study's driver ended died with the driver's Ray job)."""
    run_dir = run_dir_of(study, entry)
    if run_dir is None or not run_dir.exists():
        return _new_run(study_dir, study, index, entry, runs.create_run)
    (run_dir / rundir.STOP).unlink(missing_ok=True)
    runs.update_run(run_dir, status="queued", error=None, pid=None, **{runs.PID_START: None})
    return run_dir


def _start_when_idle(study_dir: Path, study: dict, index: int, entry: dict) -> Path | None:
    """Start (or resume) one planned run as soon as no other run trains; None once the study is stopped."""
    run_dir = run_dir_of(study, entry)
    while not (study_dir / rundir.STOP).exists():
        try:
            state = _run_state(run_dir)
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
                          **({"bn_momentum": entry["bn_momentum"]} if "bn_momentum" in entry else {})})
    _set_run_id(study_dir, index, run_dir.name)
    return run_dir


def _set_run_id(study_dir: Path, index: int, run_id: str) -> None:
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
    return pd.DataFrame(rows)


def node_text(meta: dict) -> str:
    """Which machine trains (trained) a run: its host and the start of its Ray node id."""
    return f"{meta.get('host', '?')} · {meta['node'][:8]}" if meta.get("node") else ""


def cluster_text(study: dict) -> str:
    """One line about where a study's runs train."""
    executor = executor_of(study)
    if executor.kind != "ray":
        return "Runs train here, one after another."
    found = study.get("cluster")
    where = (f"{len(found['nodes'])} nodes, {found['cpus']:g} CPUs, {found['gpus']:g} GPUs" if found
             else "cluster not reached yet")
    return (f"Ray at {executor.address or 'RAY_ADDRESS or this machine'} ({where}); each run takes "
            f"{count(executor.cpus_per_run, 'CPU')} and {count(executor.gpus_per_run, 'GPU')}.")


def count(n: float, what: str) -> str:
    return f"{n:g} {what}{'' if n == 1 else 's'}"


def finished_count(queue_table) -> int:
    """How many of a study's runs have results (completed or stopped)."""
    return int(queue_table["status"].isin(HAS_RESULTS).sum())


CUT_SHORT = stats.CUT_SHORT  # a run stopped before its plan ended: shown, but kept out of its group's statistics


def results(study_dir: Path):
    """One row per finished run: its labels and what it achieved (accuracy, overfitting gap, calibration, speed,
    size), and whether it was cut short (stopped)."""
    import pandas as pd

    from cifar_core.calibration import run_ece
    from cifar_core.evaluate import cell

    rows, study = [], read(study_dir)
    for entry in study["runs"]:
        run_dir = run_dir_of(study, entry)
        if _run_state(run_dir) not in HAS_RESULTS:
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
            "best_epoch": m.get("best_epoch"), "epochs": len(metrics), CUT_SHORT: info.status == "stopped",
            "gap": float(last["accuracy"] - last["val_accuracy"]),
            "seconds_per_epoch": runs.seconds_per_epoch(metrics), "wall_time": m.get("wall_time"),
            "ece": run_ece(rundir.read_predictions(run_dir)), "bn_settled": (m.get("bn_check") or {}).get("settled"),
        })
    return pd.DataFrame(rows)


def lowered_momentum_note(planned: list[PlannedRun], data: dict) -> str | None:
    """Why the plan's batch-norm runs train with a lower momentum than asked for, when they do."""
    for p in planned:
        choice = bn_momentum_choice(p, data)
        if choice and choice["chosen"] < choice["default"]:
            return caveats.bn_momentum_lowered(choice["chosen"], choice["default"], choice["steps_per_epoch"])
    return None


def finished_metas(study: dict) -> list[dict]:
    """run.json of each of the study's runs that has results (for the caveats of its figures)."""
    metas = []
    for entry in study["runs"]:
        run_dir = run_dir_of(study, entry)
        info = runs.load_run(run_dir) if run_dir and run_dir.exists() else None
        if info and info.has_results:
            metas.append(info.meta)
    return metas


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    study_dir = Path(argv[0])
    try:
        run_study(study_dir)
    except Exception as exc:
        _update(study_dir, status="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
