"""The lab's settings from the environment, read here and nowhere else: each variable's name, its default, and the
function that reads it (a process started by the lab passes them on through its environment)."""

from __future__ import annotations

import os
from pathlib import Path

DATA = "CIFAR_LAB_DATA"  # the data source when --data is not given
RUNS = "CIFAR_LAB_RUNS"  # the runs folder when --runs-dir is not given
CACHE = "CIFAR_LAB_CACHE"  # where decoded data sets are cached
THREADS = "CIFAR_LAB_THREADS"  # TensorFlow's threads for a trainer that shares its machine (Ray runs)
ALLOW_WRITES = "CIFAR_LAB_ALLOW_WRITES"  # "1": a dashboard shared beyond this machine may still change things
READ_ONLY = "CIFAR_LAB_READ_ONLY"  # "1": the dashboard is read-only even on localhost
RAY_ADDRESS = "RAY_ADDRESS"  # Ray's own: the cluster a Ray study joins when no --address is given

DEFAULT_RUNS = "artifacts/runs"


def data_source() -> str:
    """$CIFAR_LAB_DATA if set, else the Keras cache/download."""
    return os.environ.get(DATA) or "keras"


def runs_dir() -> Path:
    return Path(os.environ.get(RUNS) or DEFAULT_RUNS)


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE) or Path.home() / ".cache" / "cifar-lab")


def threads() -> int:
    """TensorFlow threads asked for by $CIFAR_LAB_THREADS; 0 when not set (then the cores decide)."""
    return int(os.environ.get(THREADS) or 0)


def ray_address() -> str | None:
    return os.environ.get(RAY_ADDRESS) or None


def environment() -> dict[str, str]:
    """This process's environment, to hand on to a process it starts (with changes on top)."""
    return dict(os.environ)
