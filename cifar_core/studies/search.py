"""Search: the best settings of one architecture, found by Optuna (TPE sampling, weak trials pruned by their
validation accuracy epoch by epoch), each trial an ordinary run trained by the study's executor. The search reads
validation accuracy only; when it ends, the best settings and the preset's own are retrained over fresh seeds, and
only those runs' test accuracy is read: mean ± std of each, and whether the gain is real (Welch's t-test).

Optuna's record lives in the study folder (SQLite, or its journal file when a Ray study shares the runs folder over
NFS, where SQLite's locks cannot be trusted). study.json lists every trial's planned run, as any study lists its
runs, so queues, stop, resume, reports and every page treat trials as the runs they are."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from cifar_core.errors import LabError
from cifar_core.model import preflight, space, specs
from cifar_core.model.config import TrainConfig
from cifar_core.model.specs import ArchitectureSpec
from cifar_core.store import rundir, runs
from cifar_core.studies import plans, records
from cifar_core.studies.executors import Executor

KIND = "search"
SQLITE = "optuna.db"
JOURNAL = "optuna.journal"
PRUNERS = ("median", "halving", "none")
DEFAULT_SEEDS = 3
MAX_TRIALS = 500
POLL_S = 0.5  # how often the driver reads its trials' epochs (a pruned trial stops within this)
ROLE, TRIAL, BEST, PRESET = "role", "trial", "best", "preset"
VAL = "val acc"  # the trials table's figure: the best validation accuracy of the run (never the test set)
PRUNED_AT = rundir.PRUNED_AT


class SearchError(LabError):
    """A search that cannot be started as asked; the message names the setting and the fix."""


@dataclass(frozen=True)
class Settings:
    """What a search does: the space, how many trials, how long they may take in all (seconds; a trial starts only
    while the trials so far say it would end in time), how many seeds retrain the best, and which pruner."""

    space: str
    trials: int = 20
    time_budget: float | None = None
    seeds_for_best: int = DEFAULT_SEEDS
    pruner: str = "median"

    def check(self) -> Settings:
        """The settings themselves, or SearchError naming the first that cannot work."""
        space.parse(self.space)
        if not 1 <= self.trials <= MAX_TRIALS:
            raise SearchError(f"--trials {self.trials}: give 1 to {MAX_TRIALS} trials.")
        if self.time_budget is not None and not 10 <= self.time_budget <= 7 * 24 * 3600:
            raise SearchError(f"--time-budget {self.time_budget:g}: give 10 seconds to a week for the search.")
        if not 2 <= self.seeds_for_best <= plans.MAX_SEEDS:
            raise SearchError(f"--seeds-for-best {self.seeds_for_best}: give 2 to {plans.MAX_SEEDS} (a mean ± std "
                              "and the test of the gain need two seeds or more).")
        if self.pruner not in PRUNERS:
            raise SearchError(f"--pruner {self.pruner!r}: choose one of {', '.join(PRUNERS)}.")
        return self


def refuse_test_protocol(config: TrainConfig) -> None:
    """A search selects settings by validation accuracy: under the test-set protocol that would be the test set."""
    if config.validation == "test":
        raise SearchError("A search selects settings by validation accuracy, and --validation test validates on the "
                          "test set: the winner would be chosen on the figure it is judged by. Use --validation "
                          "split (the default).")


def check_points(spec: ArchitectureSpec, config: TrainConfig, found: space.Space, data: dict) -> None:
    """Every check a run passes, for the preset itself and for the space's widest and narrowest corners."""
    preflight.check(spec, config, data)
    for point in space.corners(found):
        corner_spec, corner_config = space.apply(spec, config, point)
        preflight.check(corner_spec, corner_config, data)


def create(studies_dir: Path, runs_dir: Path, spec: ArchitectureSpec, config: TrainConfig, data: dict,
           settings: Settings, executor: Executor | None = None) -> Path:
    """A search's study folder, after the space, the settings and the runs they make are checked; no trial exists
    until its driver asks Optuna for one."""
    refuse_test_protocol(config)
    settings.check()
    found = space.parse(settings.space)
    executor = (executor or Executor()).check()
    check_points(spec, config, found, data)
    studies_dir.mkdir(parents=True, exist_ok=True)
    study_dir = studies_dir / runs.new_run_id(studies_dir, KIND)
    study_dir.mkdir()
    rundir.write_json_atomic(study_dir / records.STUDY_JSON, {
        "id": study_dir.name, "kind": KIND, "created": datetime.now(UTC).isoformat(), "status": "queued",
        "data": data, "config": asdict(config), "runs_dir": str(runs_dir.resolve()), "seeds": None,
        "executor": asdict(executor), "runs": [],
        "search": {"arch": spec.to_dict(), "space": found.text(), "trials": settings.trials,
                   "time_budget": settings.time_budget, "seeds_for_best": settings.seeds_for_best,
                   "pruner": settings.pruner, "storage": JOURNAL if executor.kind == "ray" else SQLITE,
                   "elapsed_s": 0.0, "best": None},
    })
    return study_dir


# --- Optuna ------------------------------------------------------------------------------------------------

def _storage(study_dir: Path, study: dict):
    import optuna

    name = study["search"]["storage"]
    if name == JOURNAL:
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(study_dir / JOURNAL)))
    return f"sqlite:///{(study_dir / SQLITE).resolve()}"


def optuna_study(study_dir: Path, study: dict | None = None):
    """The search's Optuna study, created on first use and loaded after (a resumed search continues it)."""
    import optuna

    study = study or records.read(study_dir)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    opt = optuna.create_study(study_name=study["id"], storage=_storage(study_dir, study), direction="maximize",
                              pruner=_pruner(study), load_if_exists=True)
    # Seeded by the trials so far: a resumed driver's sampler must not draw its first points again.
    opt.sampler = optuna.samplers.TPESampler(seed=study["config"]["seed"] + len(opt.trials), constant_liar=True,
                                             n_startup_trials=min(10, max(3, study["search"]["trials"] // 3)))
    return opt


def _pruner(study: dict):
    """Median: a trial below the median of earlier trials at the same epoch stops (after two trials and, on long
    runs, two epochs); halving: successive halving from the first epoch; none: every trial trains its course."""
    import optuna

    kind = study["search"]["pruner"]
    if kind == "median":
        warmup = min(2, max(0, study["config"]["epochs"] - 2))
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=warmup)
    if kind == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()


def distributions(found: space.Space) -> dict:
    """Optuna's distribution of each dimension of the space."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out = {}
    for p in found.params:
        if p.choices:
            out[p.key] = CategoricalDistribution(list(p.choices))
        elif p.integer:
            out[p.key] = IntDistribution(int(p.low), int(p.high), log=p.log)
        else:
            out[p.key] = FloatDistribution(p.low, p.high, log=p.log)
    return out


def _live_trial(opt, number: int):
    """A trial Optuna still counts as running, as an object that reports and asks its pruner (after a resume too:
    Optuna has no public lookup by number, so it is rebuilt as Optuna's own tell() finds it)."""
    import optuna

    frozen = opt.trials[number]
    return optuna.trial.Trial(opt, frozen._trial_id)


# --- the driver's loop -----------------------------------------------------------------------------------------

@dataclass
class _Flight:
    """One trial in training: its number, its planned run's index and directory, and (on Ray) its task."""

    number: int
    index: int
    run_dir: Path
    ref: object = None


def run(study_dir: Path, executor: Executor) -> str:
    """The search's driver: its trials (resumed where they stopped), then the best settings and the preset
    retrained over fresh seeds. Returns the study's final status."""
    from cifar_core.studies import driver

    study = records.read(study_dir)
    capacity = 1
    if executor.kind == "ray":
        from cifar_core.studies import ray_executor

        capacity = ray_executor.capacity(executor, driver.connect_ray(study_dir, study, executor))
    opt = optuna_study(study_dir, study)
    outcome = _search(study_dir, opt, executor, capacity)
    if outcome != "completed":
        return outcome
    if not plan_seeds(study_dir, opt):
        return driver.final_status(study_dir, "completed")
    study = records.read(study_dir)
    only = {i for i, e in enumerate(study["runs"]) if e["labels"].get(ROLE) != TRIAL}
    return driver.run_entries(study_dir, study, executor, only)


def _search(study_dir: Path, opt, executor: Executor, capacity: int) -> str:
    """Ask, train, report, prune and tell until the trials are done, the budget is spent or the study is stopped.
    'completed' when the search ended as planned; 'stopped' or 'interrupted' otherwise."""
    import optuna

    study = records.read(study_dir)
    goal, budget = study["search"]["trials"], study["search"]["time_budget"]
    elapsed_before, started = float(study["search"].get("elapsed_s") or 0.0), time.monotonic()
    flights: list[_Flight] = []
    for frozen in opt.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        flight = _launch(study_dir, opt, frozen.number, executor)
        if flight:
            flights.append(flight)
    interrupted = False
    while True:
        stopping = (study_dir / rundir.STOP).exists()
        while (not stopping and not interrupted and len(flights) < capacity and _told(opt) + len(flights) < goal
               and _time_left(study_dir, elapsed_before + time.monotonic() - started, budget)):
            flight = _launch(study_dir, opt, _ask(study_dir, opt), executor)
            if flight is None:
                break
            flights.append(flight)
        if not flights:
            break
        for flight in list(flights):
            _follow(study_dir, opt, flight)
            if _ended(flight, executor):
                _follow(study_dir, opt, flight)  # the lines written after the last look
                interrupted |= not _settle(opt, flight)
                flights.remove(flight)
                _update_search(study_dir, elapsed_s=elapsed_before + time.monotonic() - started)
        time.sleep(POLL_S if flights else 0)
    _update_search(study_dir, elapsed_s=elapsed_before + time.monotonic() - started)
    if (study_dir / rundir.STOP).exists():
        return "stopped"
    return "interrupted" if interrupted else "completed"


def _update_search(study_dir: Path, **changes) -> None:
    """Change fields of study.json's search record under the study's lock."""
    with rundir.locked(study_dir):
        study = records.read(study_dir)
        study["search"].update(changes)
        rundir.write_json_atomic(study_dir / records.STUDY_JSON, study)


def _told(opt) -> int:
    """Trials Optuna has an outcome for (completed, pruned or failed)."""
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    return len(opt.get_trials(deepcopy=False, states=states))


def _time_left(study_dir: Path, elapsed: float, budget: float | None) -> bool:
    """Whether another trial fits the search's budget: time left, and as much of it as a trial has taken here so
    far (the mean over this search's finished trials)."""
    if budget is None:
        return True
    taken = trial_seconds(records.read(study_dir))
    mean = sum(taken) / len(taken) if taken else 0.0
    return elapsed + mean <= budget


def trial_seconds(study: dict) -> list[float]:
    """Seconds each finished trial took, from its launch to its end."""
    out = []
    for entry in entries(study, TRIAL):
        info = run_info(study, entry)
        if info and info.has_results and info.meta.get("finished") and info.meta.get("launched"):
            out.append(info.meta["finished"] - info.meta["launched"])
    return out


def _ask(study_dir: Path, opt) -> int:
    """A new trial from the sampler, written into study.json as a planned run before any run exists."""
    study = records.read(study_dir)
    found = space.parse(study["search"]["space"])
    trial = opt.ask(distributions(found))
    _add_trial_entry(study_dir, trial.number, trial.params)
    return trial.number


def _add_trial_entry(study_dir: Path, number: int, values: dict) -> int:
    """The planned run of trial `number` (its spec and config from the sampled values); returns its index."""
    with rundir.locked(study_dir):
        study = records.read(study_dir)
        for i, entry in enumerate(study["runs"]):
            if entry["labels"].get(ROLE) == TRIAL and entry["labels"].get(TRIAL) == number:
                return i
        spec, config = space.apply(specs.from_dict(study["search"]["arch"]),
                                   TrainConfig.from_dict(study["config"]), values)
        study["runs"].append(_entry(study, f"trial{number:03d}", spec, config,
                                    {ROLE: TRIAL, TRIAL: number, **values}))
        rundir.write_json_atomic(study_dir / records.STUDY_JSON, study)
        return len(study["runs"]) - 1


def _entry(study: dict, name: str, spec: ArchitectureSpec, config: TrainConfig, labels: dict) -> dict:
    """A planned run as study.json lists it, its batch-norm momentum lowered for short epochs as in every study, and
    tagged with the search and its role (trial, best, preset) for the Runs page's tag filter."""
    choice = plans.bn_momentum_choice(plans.PlannedRun(name, spec, config, labels), study["data"])
    if choice:
        config = replace(config, bn_momentum=choice["chosen"])
    return {"name": name, "spec": spec.to_dict(), "config": asdict(config), "labels": labels, "run_id": None,
            "tags": [study["id"], labels[ROLE]], **({"bn_momentum": choice} if choice else {})}


def _launch(study_dir: Path, opt, number: int, executor: Executor) -> _Flight | None:
    """Start (or resume, or pick up) the run of trial `number`; a run that ended while no driver watched is settled
    here. None when the study is stopped before it starts, or the trial needs no training."""
    from cifar_core.studies import driver

    index = _add_trial_entry(study_dir, number, opt.trials[number].params)
    study = records.read(study_dir)
    entry = study["runs"][index]
    run_dir = records.run_dir_of(study, entry)
    if records.run_state(run_dir) in rundir.HAS_RESULTS:
        flight = _Flight(number, index, run_dir)
        _follow(study_dir, opt, flight)
        _settle(opt, flight)
        return None
    if executor.kind == "ray":
        from cifar_core.studies import ray_executor

        run_dir = driver.queued_for_ray(study_dir, study, index, entry)
        return _Flight(number, index, run_dir, ray_executor.submit(executor, run_dir))
    run_dir = driver.start_when_idle(study_dir, study, index, entry)
    if run_dir is None:
        return None
    print(f"[search] trial {number}: {run_dir.name} {opt.trials[number].params}", flush=True)
    return _Flight(number, index, run_dir)


def _ended(flight: _Flight, executor: Executor) -> bool:
    if executor.kind == "ray":
        from cifar_core.studies import ray_executor

        if not ray_executor.finished(flight.ref):
            return False
        ray_executor.settle(flight.run_dir, flight.ref)
        return True
    return records.run_state(flight.run_dir) not in rundir.ACTIVE


def _follow(study_dir: Path, opt, flight: _Flight) -> None:
    """Report each whole epoch's validation accuracy to Optuna once; when its pruner says the trial is weak, ask the
    run to stop (its trainer keeps its epochs and best weights) and note after which epoch."""
    import optuna

    frozen = opt.trials[flight.number]
    if frozen.state != optuna.trial.TrialState.RUNNING:
        return
    try:
        lines = [m for m in rundir.read_metric_lines(flight.run_dir) if not m.get(rundir.PARTIAL)]
    except rundir.DamagedRun:
        return
    fresh = [m for m in lines if m["epoch"] not in frozen.intermediate_values and "val_accuracy" in m]
    if not fresh:
        return
    trial = _live_trial(opt, flight.number)
    meta = rundir.read_run_json(flight.run_dir)
    planned = meta.get("planned_epochs") or meta["config"]["epochs"]
    for m in fresh:
        trial.report(float(m["val_accuracy"]), int(m["epoch"]))
        if PRUNED_AT not in meta and m["epoch"] < planned and trial.should_prune():
            runs.update_run(flight.run_dir, **{PRUNED_AT: int(m["epoch"])})
            (flight.run_dir / rundir.STOP).write_text(f"pruned by search {study_dir.name} after epoch {m['epoch']}")
            print(f"[search] trial {flight.number}: pruned after epoch {m['epoch']} "
                  f"(validation accuracy {m['val_accuracy']:.4f})", flush=True)
            meta[PRUNED_AT] = m["epoch"]


def _settle(opt, flight: _Flight) -> bool:
    """Tell Optuna how a trial's run ended: its best validation accuracy, or pruned (by the search, or cut short by
    a study-stop). False when the run ended without results (its trainer killed): the trial stays open, and
    resuming the study resumes its run."""
    import optuna

    info = runs.load_run(flight.run_dir)
    if info.status == "stopped" and info.meta.get(PRUNED_AT):
        runs.update_run(flight.run_dir, status=rundir.PRUNED)
        info = runs.load_run(flight.run_dir)
    if info.status not in rundir.HAS_RESULTS:
        return False
    if opt.trials[flight.number].state != optuna.trial.TrialState.RUNNING:
        return True
    if info.status == "completed":
        opt.tell(flight.number, float(info.meta["best_val_accuracy"]))
    else:
        opt.tell(flight.number, state=optuna.trial.TrialState.PRUNED)
    return True


def plan_seeds(study_dir: Path, opt) -> bool:
    """Plan the retraining once the trials are done: the best trial's settings and the preset's, each once per seed
    (seeds after the one the search trained with, so the winner's luck on that seed does not carry over). False
    when no trial completed, so there is nothing to retrain."""
    import optuna

    study = records.read(study_dir)
    if entries(study, BEST):
        return True
    done = opt.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not done:
        return False
    best = max(done, key=lambda t: t.value)
    base_spec, base_config = specs.from_dict(study["search"]["arch"]), TrainConfig.from_dict(study["config"])
    best_spec, best_config = space.apply(base_spec, base_config, best.params)
    first = base_config.seed + 1
    with rundir.locked(study_dir):
        study = records.read(study_dir)
        for seed in range(first, first + study["search"]["seeds_for_best"]):
            for role, spec, config in ((PRESET, base_spec, base_config), (BEST, best_spec, best_config)):
                study["runs"].append(_entry(study, f"{role}-seed{seed}", spec, replace(config, seed=seed),
                                            {ROLE: role, "seed": seed}))
        study["search"]["best"] = {"trial": best.number, "params": best.params, "val_accuracy": best.value}
        rundir.write_json_atomic(study_dir / records.STUDY_JSON, study)
    return True


def entries(study: dict, role: str) -> list[dict]:
    """The study's entries of one role (trial, best, preset)."""
    return [e for e in study["runs"] if e["labels"].get(ROLE) == role]


def run_info(study: dict, entry: dict) -> runs.RunInfo | None:
    """The entry's run as it is now, or None before it was created."""
    run_dir = records.run_dir_of(study, entry)
    return runs.load_run(run_dir) if run_dir and run_dir.exists() else None
