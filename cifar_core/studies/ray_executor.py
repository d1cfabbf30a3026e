"""Studies on a Ray cluster: each planned run is one Ray task that runs the ordinary trainer process.

The run directory stays the only contract, so the runs directory must be the same path on every node (a
shared file system). The study process is the Ray driver: it checks that every node sees the runs directory,
submits one task per unfinished run and lets Ray's scheduler decide how many train at once. Only this module
imports Ray, and only a study with the `ray` executor imports this module.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import ray
from ray.exceptions import RayError, TaskCancelledError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from cifar_core import settings
from cifar_core.store import rundir, runs
from cifar_core.studies import executors

PROBE_TIMEOUT_S = 60
NEEDS_INSTALL = "install cifar-lab (`pip install 'cifar-lab[cluster]'`) in the same Python on every node"


def connect(address: str | None) -> None:
    """Join the Ray cluster at `address` (or $RAY_ADDRESS); without either, start a Ray on this machine."""
    if ray.is_initialized():
        return
    address = address or settings.ray_address() or "local"  # Ray's default joins whatever cluster
    if address not in ("auto", "local"):                              # last ran here, alive or not
        executors.check_reachable(address)
    try:
        ray.init(address=address, logging_level="WARNING", log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise runs.RunError(f"Cannot reach a Ray cluster at {address}: {exc}. Start one with `ray start --head` "
                            "(or give --address / RAY_ADDRESS).") from None


def describe() -> dict:
    """The cluster as a study records it: its nodes with their resources, and the totals."""
    nodes = [{"node": n["NodeID"], "host": n.get("NodeManagerHostname") or n.get("NodeManagerAddress"),
              "address": n.get("NodeManagerAddress"), "cpus": n["Resources"].get("CPU", 0),
              "gpus": n["Resources"].get("GPU", 0)}
             for n in ray.nodes() if n.get("Alive")]
    return {"nodes": nodes, "cpus": sum(n["cpus"] for n in nodes), "gpus": sum(n["gpus"] for n in nodes)}


@ray.remote(num_cpus=0, max_retries=0)
def _probe(folder: str, token: str, data_source: str | None) -> dict:
    """On one node: read the driver's token file, write one back, and say whether the data source is there."""
    here = Path(folder)
    seen = (here / f".probe-{token}").read_text() if (here / f".probe-{token}").exists() else None
    node = ray.get_runtime_context().get_node_id()
    with contextlib.suppress(OSError):
        (here / f".probe-{token}-{node}").write_text(token)
    data_ok = data_source is None or Path(data_source).exists()
    return {"node": node, "host": socket.gethostname(), "saw_token": seen == token, "data_ok": data_ok}


def check_storage(runs_dir: Path, data_source: str | None = None) -> dict:
    """Refuse, before any run starts, a runs directory (or data folder) some node does not see at the same
    path: a task on every node must read the driver's probe file and write one the driver reads back."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(8)
    (runs_dir / f".probe-{token}").write_text(token)
    cluster = describe()
    source = data_source if data_source and os.path.isabs(data_source) else None
    try:
        refs = [_probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["node"], soft=False))
                .remote(str(runs_dir.resolve()), token, source) for n in cluster["nodes"]]
        try:
            answers = ray.get(refs, timeout=PROBE_TIMEOUT_S)
        except RayError as exc:
            raise runs.RunError(f"A node did not answer cifar-lab's check within {PROBE_TIMEOUT_S} s, or could not "
                                f"run it ({type(exc).__name__}): {NEEDS_INSTALL}.") from None
        blind = [a["host"] for a in answers
                 if not (a["saw_token"] and (runs_dir / f".probe-{token}-{a['node']}").exists())]
        if blind:
            raise runs.RunError(
                f"The runs directory {runs_dir.resolve()} is not the same folder on node(s) {', '.join(blind)}: "
                "every node must see it at the same path (a shared file system such as NFS), or runs and their "
                "results would be lost there. Mount it on every node, or pass --runs-dir on shared storage.")
        no_data = [a["host"] for a in answers if not a["data_ok"]]
        if no_data:
            raise runs.RunError(f"The data {data_source} is not there on node(s) {', '.join(no_data)}: put it "
                                "at the same path on every node (shared storage), or pass --data.")
    finally:
        for probe in runs_dir.glob(f".probe-{token}*"):
            probe.unlink(missing_ok=True)
    return cluster


def _die_with_parent() -> None:
    """In the trainer, before exec: be killed when the Ray worker that started it dies (its node lost)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@ray.remote(max_retries=0)
def train_task(run_dir: str, threads: int) -> dict:
    """On a worker: train one run with the ordinary trainer process, bound to this task's life (a lost node
    takes its trainer with it, so the run is left interrupted). A run stopped before it began is skipped."""
    path = Path(run_dir)
    if (path / rundir.STOP).exists():
        return {"skipped": True}
    node = ray.get_runtime_context().get_node_id()
    runs.update_run(path, node=node)  # the host is recorded with the trainer's pid
    proc = runs.spawn_trainer(path, threads=threads, preexec_fn=_die_with_parent if sys.platform == "linux" else None)
    while True:
        try:
            return {"returncode": proc.wait(), "node": node}
        except KeyboardInterrupt:  # cancelled as it started: the trainer has its STOP file and ends soon
            continue


def run_study(executor: executors.Executor, pending: list[Path], stop_requested: Callable[[], bool]) -> str:
    """Submit a study's unfinished runs as Ray tasks and wait for them all. Once `stop_requested()` (the study's
    STOP, which also STOPs each run), tasks whose trainer has not started are cancelled, and the others are
    waited for as their trainers stop, keeping their best weights. Returns 'stopped' or 'completed'."""
    refs = {submit(executor, path): path for path in pending}
    print(f"[study] {len(refs)} runs submitted to Ray", flush=True)
    stopping = False
    while refs:
        done, _ = ray.wait(list(refs), num_returns=1, timeout=1.0)
        if not stopping and stop_requested():
            stopping = True
            for ref, path in refs.items():
                if not runs.load_run(path).meta.get("pid"):  # not launched: never will be
                    ray.cancel(ref)
        for ref in done:
            settle(refs.pop(ref), ref)
    return "stopped" if stopping else "completed"


def submit(executor: executors.Executor, path: Path):
    """One run as a Ray task with the executor's CPUs and GPUs; returns the task's reference."""
    task = train_task.options(num_cpus=executor.cpus_per_run, num_gpus=executor.gpus_per_run)
    return task.remote(str(path), max(1, int(executor.cpus_per_run)))


def finished(ref) -> bool:
    """Whether a task has ended (returned, failed or been cancelled), without waiting."""
    ready, _ = ray.wait([ref], num_returns=1, timeout=0)
    return bool(ready)


def capacity(executor: executors.Executor, cluster: dict) -> int:
    """How many runs the cluster trains at once with the executor's CPUs and GPUs per run (at least one)."""
    fits = [cluster["cpus"] // executor.cpus_per_run]
    if executor.gpus_per_run:
        fits.append(cluster["gpus"] // executor.gpus_per_run)
    return max(1, int(min(fits)))


def settle(path: Path, ref) -> None:
    """Record how one task ended: a task lost with its node leaves its run interrupted (resumable)."""
    try:
        outcome = ray.get(ref)
        print(f"[study] {path.name}: {outcome}", flush=True)
        return
    except TaskCancelledError:
        reason = None
    except RayError as exc:
        reason = f"lost with its Ray worker ({type(exc).__name__}); resume the study to continue it"
    info = runs.load_run(path)
    if info.meta.get("status") in rundir.ACTIVE:
        runs.update_run(path, status="interrupted", error=reason)
    print(f"[study] {path.name}: {reason or 'cancelled'}", flush=True)
