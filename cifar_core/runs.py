"""The run registry: create, list, read, launch, stop, resume, rename and delete run directories.

A run directory is the only contract between the trainer process and everything that shows a run
(see DESIGN.md). Nothing here imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from cifar_core.config import TrainConfig
from cifar_core.specs import ArchitectureSpec

RUN_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,79}$")
ACTIVE = ("queued", "running")
FINISHED = ("completed", "stopped", "failed")
RUN_JSON, METRICS, PROGRESS, STOP = "run.json", "metrics.jsonl", "progress.json", "STOP"


class RunError(ValueError):
    """An action on a run that cannot be done; the message says why and what to do instead."""


def default_runs_dir() -> Path:
    return Path(os.environ.get("CIFAR_LAB_RUNS") or "artifacts/runs")


# --- atomic files -------------------------------------------------------------------------------

def write_json_atomic(path: Path, data: dict) -> None:
    """Write temp file, fsync, rename: readers see the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=2, default=str)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> dict:
    with open(path) as fh:
        return json.load(fh)


@contextlib.contextmanager
def locked(run_dir: Path):
    with open(run_dir / ".lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def update_run(run_dir: Path, **changes) -> dict:
    """Read-modify-write run.json under a lock, so the trainer and the dashboard never lose each other's fields."""
    with locked(run_dir):
        meta = read_json(run_dir / RUN_JSON)
        meta.update(changes)
        write_json_atomic(run_dir / RUN_JSON, meta)
    return meta


def append_metrics_line(run_dir: Path, line: dict) -> None:
    """Append one epoch's line and fsync it, so a kill right after loses nothing."""
    with open(run_dir / METRICS, "a") as fh:
        fh.write(json.dumps(line) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def truncate_metrics(run_dir: Path, before_epoch: int) -> list[dict]:
    """Rewrite metrics.jsonl with only the epochs before `before_epoch` (the rest will be trained again).

    Rewriting always also drops a half-written last line, which the next append would otherwise extend.
    """
    kept = [m for m in read_metric_lines(run_dir) if m["epoch"] < before_epoch]
    tmp = run_dir / f".{METRICS}.tmp"
    tmp.write_text("".join(json.dumps(m) + "\n" for m in kept))
    os.replace(tmp, run_dir / METRICS)
    return kept


def read_metric_lines(run_dir: Path) -> list[dict]:
    """Parsed metrics.jsonl; a half-written last line (crash mid-write) is skipped, not fatal."""
    path = run_dir / METRICS
    if not path.exists():
        return []
    lines = []
    for raw in path.read_text().splitlines():
        try:
            lines.append(json.loads(raw))
        except json.JSONDecodeError:
            continue
    return lines


def read_metrics(run_dir: Path) -> pd.DataFrame:
    """metrics.jsonl as a DataFrame (one row per epoch), with cumulative wall-clock seconds."""
    df = pd.DataFrame(read_metric_lines(run_dir))
    if not df.empty:
        df["elapsed"] = df["seconds"].cumsum()
    return df


def seconds_per_epoch(metrics: pd.DataFrame) -> float | None:
    """Mean wall time of a training epoch (with its validation), the one speed figure every view shows."""
    return float(metrics["seconds"].mean()) if not metrics.empty else None


def read_progress(run_dir: Path) -> dict | None:
    try:
        return read_json(run_dir / PROGRESS)
    except (OSError, json.JSONDecodeError):
        return None


# --- runs ----------------------------------------------------------------------------------------

@dataclass
class RunInfo:
    """A run as the registry sees it: its run.json, the status in effect, or why it is damaged."""

    run_id: str
    path: Path
    meta: dict = field(default_factory=dict)
    status: str = "damaged"
    damaged: str = ""

    @property
    def name(self) -> str:
        return self.meta.get("name", self.run_id)

    @property
    def is_synthetic(self) -> bool:
        return self.meta.get("data", {}).get("kind") == "synthetic"


def process_alive(pid: int | None) -> bool:
    """True while `pid` is a live process (zombies count as gone)."""
    if not pid:
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


def effective_status(meta: dict) -> str:
    """run.json's (or study.json's) status, except that a queued or running one whose recorded
    process is gone is 'interrupted'. Queued with no pid yet means not launched."""
    status = meta.get("status", "damaged")
    if status in ACTIVE and meta.get("pid") and not process_alive(meta["pid"]):
        return "interrupted"
    return status


def load_run(path: Path) -> RunInfo:
    info = RunInfo(path.name, path)
    try:
        info.meta = read_json(path / RUN_JSON)
    except FileNotFoundError:
        info.damaged = "run.json is missing"
        return info
    except (OSError, json.JSONDecodeError) as exc:
        info.damaged = f"run.json is unreadable ({exc})"
        return info
    missing = [k for k in ("status", "spec", "config") if k not in info.meta]
    if missing:
        info.damaged = f"run.json lacks {', '.join(missing)}"
        return info
    info.status = effective_status(info.meta)
    if info.status in ("completed", "stopped") and not (path / "report.json").exists():
        info.damaged = "report.json is missing"
        info.status = "damaged"
    return info


def list_runs(runs_dir: Path) -> list[RunInfo]:
    """Every run directory, newest first; damaged ones included with their reason."""
    if not runs_dir.is_dir():
        return []
    found = [load_run(p) for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return sorted(found, key=lambda r: r.meta.get("created", ""), reverse=True)


def find_run(runs_dir: Path, ref: str) -> RunInfo:
    """A run by id, unique id prefix, or path."""
    if "/" in ref and (Path(ref) / RUN_JSON).exists():
        return load_run(Path(ref))
    exact = runs_dir / ref
    if exact.is_dir():
        return load_run(exact)
    matches = [p for p in runs_dir.glob(f"{ref}*") if p.is_dir()] if runs_dir.is_dir() else []
    if len(matches) == 1:
        return load_run(matches[0])
    if not matches:
        raise RunError(f"No run {ref!r} in {runs_dir}; `cifar-lab runs` lists them.")
    raise RunError(f"{ref!r} matches {len(matches)} runs; give more of the id.")


def runs_table(runs: list[RunInfo]) -> pd.DataFrame:
    """The runs as the table both `cifar-lab runs` and the dashboard show."""
    rows = []
    for r in runs:
        m = r.meta
        rows.append({
            "id": r.run_id, "name": r.name, "arch": m.get("spec", {}).get("name", "?"),
            "status": r.status, "params": m.get("params"), "best epoch": m.get("best_epoch"),
            "test acc": m.get("test_accuracy"), "wall s": m.get("wall_time"),
            "data": m.get("data", {}).get("kind", "?"), "created": m.get("created", ""),
            "problem": r.damaged,
        })
    table = pd.DataFrame(rows, columns=["id", "name", "arch", "status", "params", "best epoch", "test acc",
                                        "wall s", "data", "created", "problem"])
    return table.astype({"params": "Int64", "best epoch": "Int64", "test acc": "Float64", "wall s": "Float64"})


def new_run_id(runs_dir: Path, name: str) -> str:
    stem = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-._")[:50] or "run"
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_id, n = f"{stem}-{stamp}", 1
    while (runs_dir / run_id).exists():
        n += 1
        run_id = f"{stem}-{stamp}-{n}"
    return run_id


def create_run(runs_dir: Path, spec: ArchitectureSpec, config: TrainConfig, data_source: str,
               name: str | None = None, extra: dict | None = None) -> Path:
    """A new run directory with run.json in status 'queued'."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    if name and not RUN_ID.match(name):
        raise RunError(f"Run name {name!r} must be 1-80 lowercase letters, digits, '.', '_' or '-'.")
    run_id = new_run_id(runs_dir, name or spec.name)
    run_dir = runs_dir / run_id
    run_dir.mkdir()
    meta = {
        "id": run_id, "name": name or run_id, "created": datetime.now(UTC).isoformat(),
        "status": "queued", "spec": spec.to_dict(), "config": asdict(config),
        "data": {"source": data_source}, **(extra or {}),
    }
    write_json_atomic(run_dir / RUN_JSON, meta)
    return run_dir


def active_runs(runs_dir: Path) -> list[RunInfo]:
    """Runs whose training process is alive (a queued run not launched yet holds no CPU)."""
    return [r for r in list_runs(runs_dir) if r.status in ACTIVE and process_alive(r.meta.get("pid"))]


def ensure_idle(runs_dir: Path, except_run: Path | None = None) -> None:
    """Refuse, with the reason, to start training while another run trains."""
    busy = [r for r in active_runs(runs_dir) if r.path != except_run]
    if busy:
        raise RunError(f"Run {busy[0].run_id} is still training; stop it or wait for it to finish "
                       "(on a CPU two runs at once only slow each other down).")


def launch(run_dir: Path) -> int:
    """Start the trainer as its own process in a new session; its output goes to log.txt. Returns its pid."""
    ensure_idle(run_dir.parent, except_run=run_dir)
    (run_dir / STOP).unlink(missing_ok=True)
    with open(run_dir / "log.txt", "a") as log:
        proc = subprocess.Popen([sys.executable, "-m", "cifar_core.train", str(run_dir)],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=Path.cwd())
    update_run(run_dir, pid=proc.pid)
    return proc.pid


def start(runs_dir: Path, spec: ArchitectureSpec, config: TrainConfig, data_source: str,
          name: str | None = None) -> Path:
    """Create and launch a run, refusing before anything is written while another run trains."""
    ensure_idle(runs_dir)
    run_dir = create_run(runs_dir, spec, config, data_source, name)
    launch(run_dir)
    return run_dir


def stop(run: RunInfo) -> None:
    """Ask a training process to stop at its next batch; it keeps the best weights and evaluates them."""
    if run.status not in ACTIVE:
        raise RunError(f"Run {run.run_id} is {run.status}, not training: nothing to stop.")
    (run.path / STOP).write_text(datetime.now(UTC).isoformat())


def resume(run: RunInfo) -> int:
    """Relaunch an interrupted (or failed) run; it continues from its last completed epoch."""
    if run.status not in ("interrupted", "failed"):
        raise RunError(f"Run {run.run_id} is {run.status}; only interrupted or failed runs can be resumed.")
    update_run(run.path, status="queued", error=None)
    return launch(run.path)


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
    new_name = new_name.strip()
    if not new_name:
        raise RunError("A run name cannot be empty.")
    update_run(run.path, name=new_name)


def delete(run: RunInfo) -> None:
    if run.status in ACTIVE:
        raise RunError(f"Run {run.run_id} is {run.status}; stop it before deleting it.")
    shutil.rmtree(run.path)
