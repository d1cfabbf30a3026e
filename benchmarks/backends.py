"""Training images/s of each installed Keras backend on this machine: the fast net (the recipe's batch, its
augmentation) and the seed baseline (batch 32), each through the run's own input pipeline (tf.data on TensorFlow,
NumPy batches elsewhere). A backend is fixed per process, so each measurement is a process of its own, the
backends taking turns for --rounds rounds (A B C A B C ...): a slow minute of a shared machine lands on one round,
not on one backend. Prints every round, then the median and spread of each, and each backend's ratio to
TensorFlow's per round. --save keeps each backend's median fast-net speed for this machine, and `--backend auto`
then takes the fastest (cifar_core/backends.py).

    python benchmarks/backends.py [--rounds 3] [--precision auto|float32] [--backends tensorflow,jax,torch] [--save]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from cifar_core import backends, hardware
from cifar_core.model import recipes, specs
from cifar_core.model.config import TrainConfig

NETWORKS = ("fast", "baseline")


def measure(precision: str, timed: int) -> dict[str, float]:
    """This process's backend: images/s of each of NETWORKS on random images through the run's pipeline."""
    import numpy as np

    from cifar_core.engine import probe, runtime

    runtime.configure(0, precision)
    fast = recipes.fast_config(TrainConfig(precision=precision), on_gpu=bool(runtime.gpu_names()))
    plans = {"fast": (specs.FAST, fast), "baseline": (specs.PRESETS["baseline"], TrainConfig(precision=precision))}
    rng = np.random.default_rng(0)
    images = (rng.integers(0, 256, (4096, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 4096))
    return {name: probe.measure(spec, cfg, images, timed=timed, per_call=8) for name, (spec, cfg) in plans.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--precision", default="auto", choices=("auto", "float32", "bfloat16"))
    parser.add_argument("--backends", default=",".join(backends.installed()))
    parser.add_argument("--timed", type=int, default=12, help="calls of 8 batches timed per measurement")
    parser.add_argument("--save", action="store_true", help="keep the medians for --backend auto on this machine")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.precision, args.timed)))
        return 0
    names = args.backends.split(",")
    print(hardware.describe_machine())
    print(f"precision {args.precision}; each figure: training images/s over {args.timed} calls of 8 batches (PyTorch: "
          "of 1, as Keras runs it)")
    found: dict[str, list[dict]] = {n: [] for n in names}
    for round_ in range(1, args.rounds + 1):
        for name in names:
            env = {**os.environ, **backends.environment(backends.Backend(name, "benchmarks/backends.py"))}
            done = subprocess.run([sys.executable, __file__, "--child", "--precision", args.precision,
                                   "--timed", str(args.timed)], env=env, capture_output=True, text=True,
                                  cwd=Path(__file__).resolve().parents[1])
            if done.returncode != 0:
                print(done.stderr[-2000:])
                return 1
            found[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
            row = found[name][-1]
            print(f"round {round_}  {name:<11}" + "".join(f"{net} {row[net]:8,.0f}   " for net in NETWORKS),
                  flush=True)
    print(f"\n{'backend':<12}" + "".join(f"{net + ' median (min-max)':>28}" for net in NETWORKS)
          + "".join(f"{'/ tensorflow, ' + net:>24}" for net in NETWORKS))
    for name in names:
        cells = []
        for net in NETWORKS:
            values = [r[net] for r in found[name]]
            cells.append(f"{statistics.median(values):>12,.0f} ({min(values):,.0f}-{max(values):,.0f})".rjust(28))
        if "tensorflow" in found:
            for net in NETWORKS:
                ratios = [r[net] / t[net] for r, t in zip(found[name], found["tensorflow"], strict=True)]
                cells.append(f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})".rjust(24))
        print(f"{name:<12}" + "".join(cells))
    if args.save:
        backends.save_speeds({n: statistics.median(r["fast"] for r in rows) for n, rows in found.items()})
        print(f"\nsaved: --backend auto now picks {backends.for_run('auto').name} here")
    return 0


if __name__ == "__main__":
    sys.exit(main())
