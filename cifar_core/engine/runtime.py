"""Keras on the backend this process trains with, imported quietly and set up for the hardware it finds.

The backend comes from $KERAS_BACKEND (the lab sets it for each trainer from run.json; cifar_core/backends.py), or
is chosen here for the machine before Keras is first imported. TensorFlow's C++ side logs CUDA probes and absl
notices straight to file descriptor 2 while it loads, before any Python setting can reach it; those lines mean
nothing to a user of this lab, so the import runs with descriptor 2 pointed at /dev/null. Whatever matters (no
GPU, say) the lab says in its own words.
"""

from __future__ import annotations

import contextlib
import os
import sys

from cifar_core import backends, hardware, settings


@contextlib.contextmanager
def stderr_to_devnull():
    """Point file descriptor 2 at /dev/null for the block (C++ logging bypasses sys.stderr)."""
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def keras():
    """The keras module on this process's backend ($KERAS_BACKEND, else the one backends.choose picks for this
    machine); TensorFlow's devices are probed here too when it is the backend, as the first probe logs."""
    if "keras" not in sys.modules:
        if not backends.current():
            os.environ.update(backends.environment(backends.for_run("auto")))
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        with stderr_to_devnull():
            import keras

            if keras.backend.backend() == "tensorflow":
                import tensorflow as tf

                tf.config.list_physical_devices()
                tf.get_logger().setLevel("ERROR")
    import keras

    return keras


def backend() -> str:
    """The backend Keras runs on in this process: tensorflow, jax or torch."""
    return keras().backend.backend()


def backend_reason() -> str:
    """Why this process runs on its backend (the lab's choice, or the environment's)."""
    return os.environ.get(backends.REASON_ENV) or f"set by ${backends.ENV}"


def tensorflow():
    """The tensorflow module (for what only TensorFlow does: tf.data, tf.distribute), imported quietly."""
    keras()
    if "tensorflow" not in sys.modules:
        with stderr_to_devnull():
            import tensorflow  # noqa: F401
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    return tf


def gpu_names() -> list[str]:
    """The GPUs this process's backend can use, by name (empty on a CPU-only machine or build)."""
    name = backend()
    if name == "tensorflow":
        tf = tensorflow()
        return [tf.config.experimental.get_device_details(g).get("device_name", g.name)
                for g in tf.config.list_physical_devices("GPU")]
    if name == "jax":
        import jax

        return [d.device_kind for d in jax.devices() if d.platform == "gpu"]
    import torch

    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def devices() -> list[str]:
    """Every device the backend sees, for run.json."""
    name = backend()
    if name == "tensorflow":
        return [d.name for d in tensorflow().config.list_logical_devices()]
    if name == "jax":
        import jax

        return [f"{d.platform}:{d.id} {d.device_kind}" for d in jax.devices()]
    return ["cpu", *(f"cuda:{i} {n}" for i, n in enumerate(gpu_names()))]


def versions() -> dict[str, str]:
    """The backend's version, and Keras's, for run.json."""
    name = backend()
    return {name: __import__(name).__version__, "keras": keras().__version__}


def configure(seed: int, precision: str = "float32") -> hardware.Precision:
    """Threads from the cores this process may use (or $CIFAR_LAB_THREADS); GPU memory growth when a GPU is
    present; seeds; the dtype policy for `precision` (auto|float32|bfloat16|float16) on this hardware. Returns the
    policy chosen."""
    k = keras()
    cores = settings.threads() or hardware.usable_cores()
    if backend() == "tensorflow":
        tf = tensorflow()
        with contextlib.suppress(RuntimeError):  # already set once in this process
            tf.config.threading.set_intra_op_parallelism_threads(cores)
            tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, cores)))
        for gpu in tf.config.list_physical_devices("GPU"):
            with contextlib.suppress(RuntimeError):
                tf.config.experimental.set_memory_growth(gpu, True)
    elif backend() == "torch":
        import torch

        torch.set_num_threads(cores)
    with stderr_to_devnull():  # Keras seeds TensorFlow too where it is installed, importing it (and its logs)
        k.utils.set_random_seed(seed)
    chosen = hardware.choose_precision(precision, hardware.cpu(), gpu_names())
    k.mixed_precision.set_global_policy(chosen.policy)
    return chosen


def clear_session() -> None:
    """keras.utils.clear_session (the models built so far freed), keeping the dtype policy it resets to float32: a
    sized run's network trained in float32 after the probe did, at 0.5-0.7x the speed of its mixed bfloat16."""
    k = keras()
    policy = k.config.dtype_policy()
    k.utils.clear_session()
    k.config.set_dtype_policy(policy)


class OneDevice:
    """The one-device 'strategy' of a backend without tf.distribute: a scope that does nothing, one replica."""

    num_replicas_in_sync = 1

    def scope(self):
        return contextlib.nullcontext()


def distribution(gpus: int):
    """The strategy a run builds its model under: TensorFlow's MirroredStrategy over the first `gpus` GPUs it sees
    (each batch split among them, gradients summed), or one device."""
    if gpus < 2:
        return tensorflow().distribute.get_strategy() if backend() == "tensorflow" else OneDevice()
    if backend() != backends.MULTI_GPU:
        raise backends.BackendError(f"Training one run on {gpus} GPUs needs the {backends.MULTI_GPU} backend "
                                    f"(this run's is {backend()}): train it again with --backend {backends.MULTI_GPU}, "
                                    "or train it on one GPU.")
    tf = tensorflow()
    found = tf.config.list_logical_devices("GPU")
    if len(found) < gpus:
        raise RuntimeError(f"this run asks for {gpus} GPUs but TensorFlow sees {len(found)} here; train it with "
                           f"--gpus {len(found) if len(found) > 1 else 0}, or on a machine with {gpus}.")
    return tf.distribute.MirroredStrategy([d.name for d in found[:gpus]])
