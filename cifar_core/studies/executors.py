"""Where a study's runs train: here one after another, or as Ray tasks (the ray_executor module)."""

from __future__ import annotations

import socket
from dataclasses import dataclass

from cifar_core.store import runs

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


def executor_of(study: dict) -> Executor:
    return Executor(**study.get("executor") or {})


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
