"""What this machine is: CPU model, the instruction-set flags that decide speed, cores, memory, GPUs.

Read from /proc and os, never assumed: the same code runs on an AMD EPYC with native bfloat16, an Intel Xeon
without it (where emulated bf16 is twice as slow as float32), a laptop, or a GPU node. No TensorFlow here.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

from cifar_core.errors import LabError

# Flags that decide which precision and kernels are fast, in the order they are reported.
SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile", "amx_int8")
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class Cpu:
    model: str
    flags: frozenset[str]
    cores: int

    @property
    def native_bf16(self) -> bool:
        """bfloat16 math in hardware (AVX512_BF16 or AMX); without it bf16 is emulated and slower than float32."""
        return any(flag in self.flags for flag in NATIVE_BF16_FLAGS)

    def describe(self) -> str:
        shown = [f for f in SPEED_FLAGS if f in self.flags]
        return f"{self.model}, {self.cores} cores, flags: {' '.join(shown) or 'none of ' + ' '.join(SPEED_FLAGS)}"


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def load_per_core() -> float:
    """The last minute's load average per usable core: 1.0 is a machine whose cores are all busy."""
    return os.getloadavg()[0] / usable_cores()


def cpu(cpuinfo: str | None = None) -> Cpu:
    """This machine's CPU from /proc/cpuinfo (or the text given, for tests)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    model, flags = platform.processor() or platform.machine(), frozenset()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model in ("", platform.machine(), platform.processor()):
            model = value.strip()
        elif key.strip() in ("flags", "Features") and not flags:
            flags = frozenset(value.split())
    return Cpu(model, flags, usable_cores())


def nvidia_gpus() -> list[str]:
    """GPU names from the NVIDIA driver's /proc entries, without loading CUDA; empty where there is none."""
    root = Path("/proc/driver/nvidia/gpus")
    names = []
    for info in sorted(root.glob("*/information")) if root.is_dir() else []:
        for line in info.read_text(errors="replace").splitlines():
            if line.startswith("Model:"):
                names.append(line.split(":", 1)[1].strip())
    return names


def describe_machine() -> str:
    """One line for every benchmark figure: CPU model and speed flags, cores, GPUs."""
    gpus = nvidia_gpus()
    return f"machine: {cpu().describe()}; GPU: {', '.join(gpus) if gpus else 'none'}"


@dataclass(frozen=True)
class Precision:
    """The Keras dtype policy a run trains under, and why it was chosen."""

    policy: str
    reason: str


POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


class PrecisionError(LabError):
    """A precision this machine cannot train in; the message says why and what to use."""


def choose_precision(requested: str, cpu_: Cpu, gpus: list[str]) -> Precision:
    """`auto` picks mixed float16 on a GPU, mixed bfloat16 on a CPU with native bf16, float32 otherwise
    (emulated bf16 is about twice as slow as float32). An explicit choice is kept where it can work."""
    if requested == "auto":
        if gpus:
            return Precision("mixed_float16", f"auto: GPU found ({gpus[0]}), so mixed float16")
        if cpu_.native_bf16:
            flag = next(f for f in NATIVE_BF16_FLAGS if f in cpu_.flags)
            return Precision("mixed_bfloat16", f"auto: this CPU has native bfloat16 ({flag}), so mixed bfloat16")
        return Precision("float32", "auto: no GPU and no native bfloat16 on this CPU (emulated bf16 is slower "
                                    "than float32), so float32")
    if requested == "float16" and not gpus:
        raise PrecisionError("float16 needs a GPU (CPUs have no fast float16 math): use --precision auto, "
                             "float32 or bfloat16.")
    if requested not in POLICIES:
        raise PrecisionError(f"precision must be auto, float32, bfloat16 or float16 (got {requested!r}).")
    reason = f"asked for {requested}"
    if requested == "bfloat16" and not gpus and not cpu_.native_bf16:
        reason += " (this CPU emulates bfloat16: expect it slower than float32)"
    return Precision(POLICIES[requested], reason)
