"""Which Keras 3 backend (TensorFlow, JAX or PyTorch) a process trains and explains with, and why.

Keras reads its backend once, from $KERAS_BACKEND, when it is first imported, so the choice is made before that:
by the process that starts a trainer (from run.json) or by engine/runtime.py for any other process. Pure
arithmetic on what is installed and which GPUs the driver reports; nothing here imports a backend.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass

from cifar_core import hardware, settings
from cifar_core.errors import LabError

ENV = "KERAS_BACKEND"  # Keras's own variable; the lab sets it for the processes it starts
REASON_ENV = "CIFAR_LAB_BACKEND_REASON"  # why: beside it, for the trainer's run.json
BACKENDS = ("tensorflow", "jax", "torch")
CHOICES = ("auto", *BACKENDS)
EXTRAS = {"tensorflow": "pip install tensorflow", "jax": "pip install 'cifar-lab[jax]'",
          "torch": "pip install 'cifar-lab[torch]'"}
# On a CPU, by benchmarks/backends.py on 2 AMD EPYC cores (avx512_bf16, Keras 3.15, mixed bfloat16, each through
# its own input pipeline, medians of 3 rounds): PyTorch trains the fast net at 0.61x and the seed baseline at 0.52x
# TensorFlow's images/s, JAX at 0.31x and 0.22x (float32: 0.52x/0.45x and 0.37x/0.33x).
CPU_ORDER = ("tensorflow", "torch", "jax")
# On a GPU, until this machine's backends have been measured (SPEEDS_FILE): not yet measured on a card by this lab;
# XLA-compiled JAX first, as Keras's own benchmarks find it fastest.
GPU_ORDER = ("jax", "tensorflow", "torch")
SPEEDS_FILE = "backend-speeds.json"  # in the cache folder: images/s per backend, per machine, as last measured
MULTI_GPU = "tensorflow"  # --gpus N (tf.distribute.MirroredStrategy) exists on this backend only


class BackendError(LabError):
    """A backend that cannot run here; the message says what is installed and how to get the one asked for."""


@dataclass(frozen=True)
class Backend:
    name: str
    reason: str


def installed() -> list[str]:
    """The backends whose package this Python can import, in BACKENDS order."""
    return [name for name in BACKENDS if importlib.util.find_spec(name) is not None]  # each is its module's name


def choose(requested: str, available: list[str], gpus: list[str], multi_gpu: bool = False,
           measured: dict[str, float] | None = None) -> Backend:
    """`auto`: the installed backend measured fastest on this machine (`measured`: images/s, of every installed
    backend; another environment may have measured fewer), else the first
    installed of CPU_ORDER or GPU_ORDER; TensorFlow for a run on several GPUs. An explicit choice is kept where it
    is installed, else refused with what to install."""
    if requested not in CHOICES:
        raise BackendError(f"backend must be one of {', '.join(CHOICES)} (got {requested!r}).")
    if not available:
        raise BackendError("No Keras backend is installed: pip install tensorflow (or jax, or torch).")
    if requested != "auto":
        if requested not in available:
            raise BackendError(f"The {requested} backend is not installed here (installed: {', '.join(available)}): "
                               f"{EXTRAS[requested]}, or use --backend auto.")
        if multi_gpu and requested != MULTI_GPU:
            raise BackendError(f"Training one run on several GPUs (--gpus) needs the {MULTI_GPU} backend; "
                               f"use --backend {MULTI_GPU}, or train on one GPU with {requested}.")
        return Backend(requested, f"asked for {requested}")
    if multi_gpu and MULTI_GPU in available:
        return Backend(MULTI_GPU, f"auto: several GPUs (--gpus) train with {MULTI_GPU}'s MirroredStrategy")
    speeds = {n: v for n, v in (measured or {}).items() if n in available}
    if speeds and len(speeds) == len(available):  # a measurement that left out an installed backend cannot rank it
        name = max(speeds, key=speeds.get)
        shown = ", ".join(f"{n} {v:,.0f}" for n, v in sorted(speeds.items(), key=lambda kv: -kv[1]))
        return Backend(name, f"auto: the fastest measured on this machine (fast net images/s: {shown})")
    order = GPU_ORDER if gpus else CPU_ORDER
    name = next(n for n in order if n in available)
    where = f"GPU ({gpus[0]})" if gpus else "CPU"
    return Backend(name, f"auto: the first installed of {', '.join(order)} on a {where} (not measured here: "
                         "python benchmarks/backends.py --save)")


def measured_speeds() -> dict[str, float]:
    """This machine's images/s per backend as last saved (save_speeds), or none."""
    try:
        found = json.loads((settings.cache_dir() / SPEEDS_FILE).read_text())
        return {str(k): float(v) for k, v in found.get(hardware.describe_machine(), {}).items()}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


def save_speeds(speeds: dict[str, float]) -> None:
    """Keep this machine's measured images/s per backend (the fast net's), for `auto` to choose by."""
    path = settings.cache_dir() / SPEEDS_FILE
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        found = {}
    found[hardware.describe_machine()] = speeds
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(found, indent=1))
    tmp.replace(path)


def current() -> str | None:
    """The backend this process's environment names, if any."""
    return os.environ.get(ENV) or None


def default() -> str:
    """What --backend means when not given: $KERAS_BACKEND where it is set, else auto."""
    return current() or "auto"


def for_run(requested: str, gpus: int = 0) -> Backend:
    """The backend a run of this machine trains with (`gpus`: the run's --gpus)."""
    return choose(requested, installed(), hardware.nvidia_gpus(), multi_gpu=gpus >= 2, measured=measured_speeds())


def environment(choice: Backend) -> dict[str, str]:
    """The variables that make a started process use `choice`."""
    return {ENV: choice.name, REASON_ENV: choice.reason}
