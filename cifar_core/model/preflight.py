"""What is checked before a run directory is created: settings, spec, the data's sizes, and memory.

Every start (CLI, dashboard, study) goes through `check`, so a run that cannot work is refused with its
reasons before anything is written, instead of failing inside the trainer.
"""

from __future__ import annotations

import os
from pathlib import Path

from cifar_core import hardware
from cifar_core.model import shapes, specs
from cifar_core.model.config import ConfigError, TrainConfig

GIB = 2**30
CGROUP_LIMIT = Path("/sys/fs/cgroup/memory.max")


def memory_bytes() -> int:
    """This machine's memory as this process may use it: physical memory, or a lower cgroup limit."""
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    try:
        limit = CGROUP_LIMIT.read_text().strip()
        if limit.isdigit():
            total = min(total, int(limit))
    except OSError:
        pass
    return total


def problems(spec: specs.ArchitectureSpec, cfg: TrainConfig, sizes: dict[str, int],
             memory: int | None = None) -> list[str]:
    """Every reason this spec, config and data (`sizes` holds train_images and test_images) cannot make a run."""
    out = specs.validate(spec) + cfg.problems()
    if cfg.subset and cfg.subset > sizes["train_images"]:
        out.append(f"subset {cfg.subset:,} is more than the {sizes['train_images']:,} training images of this "
                   "data set: lower it, or leave it out to use them all.")
    if cfg.test_subset and cfg.test_subset > sizes["test_images"]:
        out.append(f"test-subset {cfg.test_subset:,} is more than the {sizes['test_images']:,} test images.")
    try:
        hardware.choose_precision(cfg.precision, hardware.cpu(), hardware.nvidia_gpus())
    except hardware.PrecisionError as exc:
        out.append(str(exc))
    if not out:
        memory = memory or memory_bytes()
        need = shapes.training_bytes(spec, cfg.batch_size)
        if need > memory // 2:
            out.append(f"One training step of {spec.name} at batch {cfg.batch_size} needs about {need / GIB:.1f} GiB; "
                       f"this machine has {memory / GIB:.1f} GiB. Lower the batch size or the network's size.")
    return out


def check(spec: specs.ArchitectureSpec, cfg: TrainConfig, data: dict) -> None:
    """Raise ConfigError listing every problem, or return when a run of `spec` can start on the data that
    `data` describes (`Dataset.describe()` or `data.summary()`)."""
    found = problems(spec, cfg, data)
    if found:
        raise ConfigError(" ".join(found))


def check_gpus(cfg: TrainConfig, found: list[str] | None = None) -> None:
    """Refuse one run on more GPUs than this machine has (`found`: the NVIDIA GPUs here, detected when None)."""
    found = hardware.nvidia_gpus() if found is None else found
    if cfg.gpus > 1 and len(found) < cfg.gpus:
        raise ConfigError(f"--gpus {cfg.gpus}: this machine has {len(found)} NVIDIA GPU(s); give --gpus "
                          f"{len(found) if len(found) > 1 else 0}, or train on a machine with {cfg.gpus}.")
