"""The run registry: create, list, read, launch, stop, resume, rename and delete run directories.

A run directory (see `rundir`) is the only contract between the trainer process and everything that shows
a run. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cifar_core import backends, settings
from cifar_core.errors import LabError
from cifar_core.model.config import TrainConfig
from cifar_core.model.specs import ArchitectureSpec
from cifar_core.store import rundir
from cifar_core.store.rundir import ACTIVE, DAMAGED, HAS_RESULTS, RESUMABLE, DamagedRun

RUN_ID = re.compile(rundir.RUN_ID_PATTERN)
HOST = socket.gethostname()  # the pid of a Ray run on another machine is not checked here
REMOTE_SILENCE_S = 600  # a trainer writes progress.json twice a second; ten quiet minutes mean it is gone
PID_START = "pid_start"
NAME_RULE = "1-80 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit"


class RunError(LabError):
    """An action on a run that cannot be done; the message says why and what to do instead."""


class Busy(RunError):
    """Another run is training on this machine now."""


def default_runs_dir() -> Path:
    return settings.runs_dir()


def update_run(run_dir: Path, **changes) -> dict:
    """Read-modify-write run.json under the run's lock (the trainer and the dashboard both write it)."""
    return rundir.update_json(run_dir, rundir.RUN_JSON, **changes)


# --- runs ----------------------------------------------------------------------------------------

@dataclass
class RunInfo:
    """A run as the registry sees it: its run.json, the status in effect, or why it is damaged."""

    run_id: str
    path: Path
    meta: dict = field(default_factory=dict)
    status: str = DAMAGED
    damaged: str = ""

    @property
    def name(self) -> str:
        return self.meta.get("name", self.run_id)

    @property
    def data(self) -> dict:
        return self.meta.get("data") or {}

    @property
    def is_synthetic(self) -> bool:
        return self.data.get("kind") == "synthetic"

    @property
    def has_results(self) -> bool:
        return self.status in HAS_RESULTS

    @property
    def is_training(self) -> bool:
        """Its training process is alive (a queued run not launched yet holds no CPU)."""
        return self.status in ACTIVE and recorded_process_alive(self.meta)


def process_start(pid: int) -> str | None:
    """When process `pid` started (this boot's id and its start in clock ticks), or None where /proc cannot tell.
    With the pid it names one process: after a reboot or a container restart, another process may get the pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    return f"{boot}:{stat.rsplit(')', 1)[1].split()[19]}"


def process_record(pid: int) -> dict:
    """The run.json (or study.json) fields that name a process: its pid and its start."""
    return {"pid": pid, PID_START: process_start(pid)}


def recorded_process_alive(meta: dict) -> bool:
    """Whether the process a run.json or study.json names still lives: same pid and, where recorded, same start."""
    return process_alive(meta.get("pid"), meta.get(PID_START))


def process_alive(pid: int | None, started: str | None = None) -> bool:
    """True while `pid` is a live process (zombies count as gone) and, given `started`, the one that started then."""
    if not pid:
        return False
    if started and process_start(pid) not in (None, started):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def effective_status(meta: dict, silent_s: float = 0.0) -> str:
    """run.json's (or study.json's) status, except that a queued or running one whose recorded process is gone
    is 'interrupted'. Queued with no pid yet means not launched. The process of a run a Ray node trains on
    another machine cannot be checked from here: its study records its loss, and a run of another machine
    silent for `silent_s` seconds (since its last progress line) counts as lost too, study or no study."""
    status = meta.get("status", DAMAGED)
    if status not in ACTIVE or not meta.get("pid"):
        return status
    if trains_elsewhere(meta):
        return "interrupted" if silent_s > REMOTE_SILENCE_S else status
    if recorded_process_alive(meta):
        return status
    return "failed" if meta.get("imported") else "interrupted"  # an import cut short has nothing to resume


def trains_elsewhere(meta: dict) -> bool:
    """A Ray run whose trainer lives on another machine: its pid means nothing here."""
    return bool(meta.get("node")) and meta.get("host") not in (None, HOST)


def silence(run_dir: Path) -> float:
    """Seconds since the run last wrote progress.json (or run.json): how long a trainer elsewhere has been quiet."""
    times = [_stamp(run_dir / name)[0] for name in (rundir.PROGRESS, rundir.RUN_JSON)]
    return time.time() - max(times) / 1e9


CHECKED_FILES = (rundir.RUN_JSON, rundir.METRICS, rundir.REPORT, rundir.PREDICTIONS, rundir.MODEL)


def load_run(path: Path) -> RunInfo:
    """The run at `path`, with every file it should have checked; a file that does not fit marks it damaged
    with the reason, and whatever could be read stays in `meta`. Files are checked again only when they change."""
    if path.is_symlink():
        return RunInfo(path.name, path, damaged=f"{path.name} is a link to {os.path.realpath(path)}, outside the runs "
                       "folder; the lab reads and writes run directories only inside it (Delete removes the link)")
    meta, damaged = _checked_files(path, tuple(_stamp(path / name) for name in CHECKED_FILES))
    info = RunInfo(path.name, path, dict(meta), damaged=damaged)
    if not damaged:
        info.status = effective_status(meta, silence(path) if trains_elsewhere(meta) else 0.0)
    return info


def _stamp(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
        return st.st_mtime_ns, st.st_size
    except OSError:
        return 0, -1


@functools.lru_cache(maxsize=4096)
def _checked_files(path: Path, stamps: tuple) -> tuple[dict, str]:
    """(run.json as read, '' or why the run is damaged), for the files as they are at `stamps`."""
    meta = {}
    try:
        meta = rundir.read_run_json(path)
        rundir.read_metric_lines(path)
        if meta["status"] in HAS_RESULTS:
            rundir.read_report(path)
            rundir.check_zip(path, rundir.PREDICTIONS)
            rundir.check_zip(path, rundir.MODEL)
    except DamagedRun as exc:
        return meta, str(exc)
    return meta, ""


def list_runs(runs_dir: Path) -> list[RunInfo]:
    """Every run directory, newest first; damaged ones included with their reason."""
    if not runs_dir.is_dir():
        return []
    found = [load_run(p) for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return sorted(found, key=lambda r: str(r.meta.get("created", "")), reverse=True)


def find_run(runs_dir: Path, ref: str) -> RunInfo:
    """A run by id, unique id prefix, or its directory, always inside `runs_dir` (never a path outside it)."""
    ref = ref.rstrip("/")
    if "/" in ref:
        path = Path(ref).resolve()
        if path.parent != runs_dir.resolve() or not path.is_dir():
            raise RunError(f"{ref} is not a run directory in {runs_dir}; name runs by their id "
                           "(`cifar-lab runs` lists them) or pass --runs-dir.")
        return load_run(runs_dir / path.name)
    if not RUN_ID.fullmatch(ref):
        raise RunError(f"{ref!r} is not a run id: ids are {NAME_RULE}. `cifar-lab runs` lists them.")
    exact = runs_dir / ref
    if exact.is_dir():
        return load_run(exact)
    matches = [p for p in runs_dir.glob(f"{ref}*") if p.is_dir()] if runs_dir.is_dir() else []
    if len(matches) == 1:
        return load_run(matches[0])
    if not matches:
        raise RunError(f"No run {ref!r} in {runs_dir}; `cifar-lab runs` lists them.")
    raise RunError(f"{ref!r} matches {len(matches)} runs; give more of the id.")


def new_run_id(runs_dir: Path, name: str) -> str:
    stem = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-._")[:50] or "run"
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_id, n = f"{stem}-{stamp}", 1
    while (runs_dir / run_id).exists():
        n += 1
        run_id = f"{stem}-{stamp}-{n}"
    return run_id


def check_name(name: str) -> str:
    """A run name as given, if it follows the id rule (no markup, no whitespace, no newline)."""
    if not RUN_ID.fullmatch(name):
        raise RunError(f"Run name {name!r} must be {NAME_RULE}.")
    return name


def create_run(runs_dir: Path, spec: ArchitectureSpec, config: TrainConfig, data: dict,
               name: str | None = None, extra: dict | None = None) -> Path:
    """A new run directory with run.json in status 'queued'. `data` describes the data source (at least
    its 'source'; `Dataset.describe()` gives all a user needs to trust a result)."""
    if name:
        check_name(name)
    runs_dir.mkdir(parents=True, exist_ok=True)
    run_id = new_run_id(runs_dir, name or spec.name)
    run_dir = runs_dir / run_id
    run_dir.mkdir()
    meta = {
        "id": run_id, "name": name or run_id, "created": datetime.now(UTC).isoformat(),
        "status": "queued", "spec": spec.to_dict(), "config": asdict(config), "data": data, **(extra or {}),
    }
    try:
        rundir.write_json_atomic(run_dir / rundir.RUN_JSON, meta)
    except OSError:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return run_dir


def active_runs(runs_dir: Path) -> list[RunInfo]:
    """Runs whose training process is alive."""
    return [r for r in list_runs(runs_dir) if r.is_training]


def ensure_idle(runs_dir: Path, except_run: Path | None = None) -> None:
    """Refuse, with the reason, to start training while another run trains (damaged runs included)."""
    busy = [r for r in list_runs(runs_dir)
            if r.path != except_run and (r.is_training or _damaged_but_training(r))]
    if busy:
        raise Busy(f"Run {busy[0].run_id} is still training; stop it or wait for it to finish "
                       "(on one machine two runs at once only slow each other down).")


def _damaged_but_training(run: RunInfo) -> bool:
    """A damaged run whose run.json still names a live trainer on this machine: one this version cannot read
    (written by a newer version, with a spec field it does not know) still takes the machine's cores."""
    if run.status != DAMAGED:
        return False
    try:
        raw = rundir.read_json(run.path / rundir.RUN_JSON)
    except (OSError, ValueError):
        return False
    return (isinstance(raw, dict) and raw.get("status") in ACTIVE and not trains_elsewhere(raw)
            and isinstance(raw.get("pid"), int) and recorded_process_alive(raw))


def spawn_trainer(run_dir: Path, threads: int | None = None, preexec_fn=None) -> subprocess.Popen:
    """Start the trainer as its own process in a new session, its output to log.txt, and record its pid.
    `threads` caps TensorFlow's threads (runs sharing a machine); `preexec_fn` runs in the child before exec."""
    (run_dir / rundir.STOP).unlink(missing_ok=True)
    config = rundir.read_run_json(run_dir).get("config") or {}
    try:
        choice = backends.for_run(config.get("backend", "auto"), int(config.get("gpus") or 0))
    except backends.BackendError as exc:  # e.g. resumed on a machine without its backend: say so on the run
        update_run(run_dir, status="failed", error=str(exc))
        raise
    env = {**settings.environment(), **backends.environment(choice),
           **({settings.THREADS: str(threads)} if threads else {})}
    with open(run_dir / rundir.LOG, "a") as log:
        proc = subprocess.Popen([sys.executable, "-m", "cifar_core.engine.trainer", str(run_dir)],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=Path.cwd(), env=env, preexec_fn=preexec_fn)
    update_run(run_dir, **process_record(proc.pid), host=HOST, launched=time.time())
    return proc


def _spawn(run_dir: Path) -> int:
    return spawn_trainer(run_dir).pid


def start(runs_dir: Path, spec: ArchitectureSpec, config: TrainConfig, data: dict,
          name: str | None = None, extra: dict | None = None) -> Path:
    """Create and launch a run as one step: the runs-dir lock is held from the idle check to the recorded pid,
    so two starts at the same instant cannot both train, and a refused start writes nothing."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    with rundir.locked(runs_dir):
        ensure_idle(runs_dir)
        run_dir = create_run(runs_dir, spec, config, data, name, extra)
        _spawn(run_dir)
    return run_dir


def launch(run_dir: Path) -> int:
    """Launch an existing queued run, under the same lock and idle check as `start`."""
    with rundir.locked(run_dir.parent):
        ensure_idle(run_dir.parent, except_run=run_dir)
        return _spawn(run_dir)


def stop(run: RunInfo) -> None:
    """Ask a training process to stop at its next batch; it keeps the best weights and evaluates them."""
    if run.status not in ACTIVE:
        raise RunError(f"Run {run.run_id} is {run.status}, not training: nothing to stop.")
    (run.path / rundir.STOP).write_text(datetime.now(UTC).isoformat())


def resume(run: RunInfo) -> int:
    """Relaunch an interrupted (or failed) run; it continues from its last completed epoch. The status is
    read again under the lock, so two resumes of one run cannot start two trainers."""
    with rundir.locked(run.path.parent):
        now = load_run(run.path)
        if now.meta.get("imported"):
            raise RunError(f"Run {run.run_id} is an import that did not finish ({now.meta.get('error')}); delete it "
                           "and import the file again.")
        if now.status not in RESUMABLE:
            raise RunError(f"Run {run.run_id} is {now.status}; only interrupted or failed runs can be resumed.")
        ensure_idle(run.path.parent, except_run=run.path)
        update_run(run.path, status="queued", error=None)
        return _spawn(run.path)


def wait(run_dir: Path, timeout: float = 600, poll: float = 0.5) -> str:
    """Block until the run leaves queued/running; return its final status."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = load_run(run_dir).status
        if status not in ACTIVE:
            return status
        time.sleep(poll)
    raise TimeoutError(f"Run {run_dir.name} still training after {timeout:.0f} s.")


def rename(run: RunInfo, new_name: str) -> None:
    """Give a run a new display name, under the same rule as ids."""
    if run.damaged:
        raise RunError(f"Run {run.run_id} is damaged ({run.damaged}); delete it instead.")
    update_run(run.path, name=check_name(new_name))


TAG_RULE = "1-32 characters: lowercase letters, digits, '.', '_' or '-', starting with a letter or digit"
TAG_PATTERN = re.compile(rundir.TAG_PATTERN)
NOTE_MAX = 4000


def set_tags(run: RunInfo, add: list[str] = (), remove: list[str] = ()) -> list[str]:
    """Add and remove tags (lab-notebook labels such as 'augment' or 'for-the-class'); returns the new tags."""
    if run.damaged:
        raise RunError(f"Run {run.run_id} is damaged ({run.damaged}); delete it instead.")
    bad = [t for t in add if not TAG_PATTERN.fullmatch(t)]
    if bad:
        raise RunError(f"Tag {bad[0]!r} must be {TAG_RULE}.")
    tags = [t for t in dict.fromkeys([*run.meta.get("tags", []), *add]) if t not in remove]
    update_run(run.path, tags=tags)
    return tags


def set_note(run: RunInfo, text: str) -> None:
    """A free-text note on the run: what it was for, what was learnt."""
    if run.damaged:
        raise RunError(f"Run {run.run_id} is damaged ({run.damaged}); delete it instead.")
    if len(text) > NOTE_MAX:
        raise RunError(f"A note holds at most {NOTE_MAX:,} characters (this one has {len(text):,}).")
    update_run(run.path, note=text.strip())


def pin_baseline(runs_dir: Path, run: RunInfo | None) -> None:
    """Make `run` the baseline that Compare puts first (None: no baseline); at most one run is pinned."""
    with rundir.locked(runs_dir):
        for other in list_runs(runs_dir):
            if other.meta.get("pinned") and (run is None or other.path != run.path):
                update_run(other.path, pinned=False)
        if run is not None:
            update_run(run.path, pinned=True)


def pinned_first(infos: list[RunInfo]) -> list[RunInfo]:
    """The pinned baseline first, then the others in their order."""
    return sorted(infos, key=lambda r: not r.meta.get("pinned"))


def filter_runs(infos: list[RunInfo], tags: list[str] = (), archs: list[str] = (), statuses: list[str] = (),
                data_kinds: list[str] = ()) -> list[RunInfo]:
    """Runs having every tag asked for, and one of the architectures, statuses and data kinds asked for (an
    empty choice filters nothing)."""
    def keep(r: RunInfo) -> bool:
        return (set(tags) <= set(r.meta.get("tags", [])) and (not archs or arch_name(r) in archs)
                and (not statuses or r.status in statuses) and (not data_kinds or r.data.get("kind") in data_kinds))
    return [r for r in infos if keep(r)]


def arch_name(run: RunInfo) -> str:
    return (run.meta.get("spec") or {}).get("name", "?")


def delete(run: RunInfo) -> None:
    """Remove a run directory; refused while its training process is alive."""
    if run.is_training:
        raise RunError(f"Run {run.run_id} is {run.status}; stop it before deleting it.")
    if run.path.is_symlink():
        run.path.unlink()
        return
    shutil.rmtree(run.path)


def seconds_per_epoch(metrics) -> float | None:
    """Mean wall time of a training epoch (with its validation), the one speed figure every view shows."""
    return float(metrics["seconds"].mean()) if len(metrics) else None


def read_metrics(run_dir: Path):
    """metrics.jsonl as a DataFrame (one row per epoch), with cumulative wall-clock seconds."""
    import pandas as pd

    df = pd.DataFrame(rundir.read_metric_lines(run_dir))
    if not df.empty:
        df["elapsed"] = df["seconds"].cumsum()
    return df


TABLE_COLUMNS = ("id", "name", "arch", "status", "params", "best epoch", "test acc", "wall s", "data", "tags",
                 "created", "problem")


def table_rows(runs: list[RunInfo]) -> list[dict]:
    """One row per run with the columns both `cifar-lab runs` and the dashboard show."""
    return [{"id": r.run_id, "name": r.name + (" (baseline)" if r.meta.get("pinned") else ""), "arch": arch_name(r),
             "status": r.status,
             "params": r.meta.get("params"), "best epoch": r.meta.get("best_epoch"),
             "test acc": r.meta.get("test_accuracy"), "wall s": r.meta.get("wall_time"),
             "data": r.data.get("kind", "?"), "tags": " ".join(r.meta.get("tags", [])),
             "created": str(r.meta.get("created", "")), "problem": r.damaged}
            for r in runs]


def runs_table(runs: list[RunInfo]):
    """The runs table as a DataFrame with nullable number columns (for the dashboard)."""
    import pandas as pd

    table = pd.DataFrame(table_rows(runs), columns=list(TABLE_COLUMNS))
    return table.astype({"params": "Int64", "best epoch": "Int64", "test acc": "Float64", "wall s": "Float64"})


def format_duration(seconds: float) -> str:
    """Seconds as a person reads them: '45 s', '4 min 05 s', '2 h 03 min'."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def progress_fraction(progress: dict) -> float:
    """How much of the planned training progress.json says is done, 0..1."""
    done = progress["epoch"] - 1 + progress["batch"] / max(progress["batches"], 1)
    return min(max(done / max(progress["epochs"], 1), 0.0), 1.0)


def starting_text(meta: dict) -> str:
    """What a run does before its first batch, and for how long so far (starting TensorFlow and decoding the data
    take a few seconds, tens of seconds the first time a data folder is decoded)."""
    since = meta.get("started") or meta.get("launched")
    waited = f" ({format_duration(time.time() - since)} so far)" if since else ""
    if meta.get("engine"):
        return f"building the model and tracing its first batch{waited} ..."
    return f"starting: TensorFlow, then the data (decoded once, then cached) and the model{waited} ..."


def stopping_text(meta: dict) -> str:
    """What a run asked to stop still does before it ends, so that the seconds it takes are not a surprise."""
    group = (meta.get("engine") or {}).get("steps_per_execution") or 1
    chunk = f"its current group of {group} batches" if group > 1 else "its current batch"
    return (f"Stopping: the run finishes {chunk}, validates that part of the epoch (recorded as partial), restores "
            "its best weights and evaluates them on the test set ...")


def engine_text(engine: dict) -> str:
    """What the engine chose for a run, in one line: backend, precision, batches per step, devices."""
    xla = ", XLA" if engine.get("xla") else ""
    backend = f"{engine['backend']} ({engine.get('backend_reason')}), " if engine.get("backend") else ""
    return (f"engine: {backend}{engine.get('precision')} ({engine.get('precision_reason')}), "
            f"{engine.get('steps_per_execution')} batches per step, {engine.get('replicas', 1)} replica(s){xla}; "
            f"{engine.get('machine', '')}")


def progress_text(progress: dict) -> str:
    """One line about a training run in flight: epoch, batch, speed and time left (early stopping may
    end it sooner, so the ETA is an upper bound)."""
    return (f"epoch {progress['epoch']}/{progress['epochs']} · batch {progress['batch']}/{progress['batches']} · "
            f"{progress['images_per_s']:,.0f} images/s · ETA {format_duration(progress['eta_s'])} at most")


def check_evaluable(run: RunInfo) -> None:
    """Refuse, with the reason, to evaluate a run again that trains, is damaged or has no readable model.keras."""
    if run.is_training:
        raise RunError(f"Run {run.run_id} is still training; evaluate it once it has finished.")
    if not (run.path / rundir.MODEL).exists():
        raise RunError(f"Run {run.run_id} has no {rundir.MODEL} yet ({run.status}); train or resume it first.")
    if not run.meta:
        raise RunError(f"Run {run.run_id} is damaged ({run.damaged}); it cannot be evaluated.")
    try:
        rundir.check_zip(run.path, rundir.MODEL)
    except DamagedRun as exc:
        raise RunError(f"Run {run.run_id} cannot be evaluated: {exc}. Delete the run, or retrain it.") from None
