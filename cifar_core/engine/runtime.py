"""TensorFlow, imported quietly and set up for the hardware this process finds.

TensorFlow's C++ side logs CUDA probes and absl notices straight to file descriptor 2 while it loads, before
any Python setting can reach it; those lines mean nothing to a user of this lab, so the import runs with
descriptor 2 pointed at /dev/null. Whatever matters (no GPU, say) the lab says in its own words.
"""

from __future__ import annotations

import contextlib
import os
import sys

from cifar_core import hardware, settings


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


def tensorflow():
    """The tensorflow module, imported without its start-up log lines; devices are probed here too,
    because the first probe is what logs the CUDA messages."""
    if "tensorflow" not in sys.modules:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        with stderr_to_devnull():
            import keras  # noqa: F401  (keras logs on import too)
            import tensorflow as tf

            tf.config.list_physical_devices()
        tf.get_logger().setLevel("ERROR")
    import tensorflow as tf

    return tf


def gpu_names(tf) -> list[str]:
    """The GPUs TensorFlow can use, by name (empty on a CPU-only machine or build)."""
    names = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        names.append(details.get("device_name", gpu.name))
    return names


def configure(seed: int, precision: str = "float32") -> hardware.Precision:
    """Threads from the cores this process may use (or $CIFAR_LAB_THREADS); GPU memory growth when a GPU is
    present; seeds; the dtype policy for `precision` (auto|float32|bfloat16|float16) on this hardware. Returns the
    policy chosen."""
    tf = tensorflow()
    import keras

    cores = settings.threads() or hardware.usable_cores()
    with contextlib.suppress(RuntimeError):  # already set once in this process
        tf.config.threading.set_intra_op_parallelism_threads(cores)
        tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, cores)))
    for gpu in tf.config.list_physical_devices("GPU"):
        with contextlib.suppress(RuntimeError):
            tf.config.experimental.set_memory_growth(gpu, True)
    keras.utils.set_random_seed(seed)
    chosen = hardware.choose_precision(precision, hardware.cpu(), gpu_names(tf))
    keras.mixed_precision.set_global_policy(chosen.policy)
    return chosen


def distribution(gpus: int):
    """The tf.distribute strategy a run builds its model under: MirroredStrategy over the first `gpus` GPUs
    TensorFlow sees (each batch split among them, gradients summed), or the default one-device strategy."""
    tf = tensorflow()
    if gpus < 2:
        return tf.distribute.get_strategy()
    found = tf.config.list_logical_devices("GPU")
    if len(found) < gpus:
        raise RuntimeError(f"this run asks for {gpus} GPUs but TensorFlow sees {len(found)} here; train it with "
                           f"--gpus {len(found) if len(found) > 1 else 0}, or on a machine with {gpus}.")
    return tf.distribute.MirroredStrategy([d.name for d in found[:gpus]])
