"""What this machine is: CPU model, the instruction-set flags that decide speed, cores, memory, GPUs.

Read from /proc and os, never assumed: the same code runs on an AMD EPYC with native bfloat16, an Intel Xeon
without it (where emulated bf16 is twice as slow as float32), a laptop, or a GPU node. No TensorFlow here.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

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
