"""What recording the layers costs: the same training with and without the LayerRecorder, in one process.

    python benchmarks/layer_records.py [--data SOURCE] [--arch baseline] [--subset 20000] [--epochs 3] [--rounds 2]

Each round trains the architecture twice from the same seed, once with layer records and once without, alternating
which goes first (so a slow minute of a shared machine falls on both), and prints the seconds of each, the ratio,
and their spread over the rounds. The seed protocol's batch of 32 is used. Figures printed, never asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cifar_core import data as data_mod
from cifar_core import hardware
from cifar_core.model import specs
from cifar_core.model.config import TrainConfig


def train_seconds(arrays: dict, spec, cfg: TrainConfig, record: bool) -> tuple[float, float]:
    """Seconds of model.fit, and of them the seconds the recorder spent taking records (0 without it)."""
    from cifar_core.engine import layerrecords, runtime
    from cifar_core.engine.models import build_model, compile_model
    from cifar_core.engine.pipeline import make_dataset

    runtime.configure(cfg.seed, cfg.precision)
    steps = -(-len(arrays["y_train"]) // cfg.batch_size)
    model = compile_model(build_model(spec), cfg, steps)
    callbacks = []
    with tempfile.TemporaryDirectory() as folder:
        if record:
            keep = layerrecords.probe_indices(arrays["y_val"], cfg.seed)
            callbacks.append(layerrecords.LayerRecorder(Path(folder), arrays["x_val"][keep], arrays["y_val"][keep],
                                                        0, steps))
        start = time.perf_counter()
        model.fit(make_dataset(arrays["x_train"], arrays["y_train"], cfg.batch_size, cfg.seed), epochs=cfg.epochs,
                  verbose=0, shuffle=False, callbacks=callbacks)
        return time.perf_counter() - start, sum(c.seconds for c in callbacks)


def main() -> int:
    from cifar_core.engine.pipeline import prepare_data

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/cifar10-jpeg"))
    parser.add_argument("--arch", default="baseline")
    parser.add_argument("--subset", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(hardware.describe_machine(), flush=True)
    cfg = TrainConfig(epochs=args.epochs, subset=args.subset, precision="auto")
    arrays = prepare_data(data_mod.load_dataset(args.data), cfg)
    spec = specs.PRESETS[args.arch]
    ratios, shares = [], []
    for r in range(args.rounds):
        order = (True, False) if r % 2 == 0 else (False, True)
        seconds = {record: train_seconds(arrays, spec, cfg, record) for record in order}
        (with_s, inside), (without_s, _) = seconds[True], seconds[False]
        ratios.append(with_s / without_s)
        shares.append(inside / with_s)
        print(f"round {r + 1}: with records {with_s:.1f} s (of which taking records {inside:.2f} s, "
              f"{shares[-1]:.1%}), without {without_s:.1f} s, ratio {ratios[-1]:.3f}", flush=True)
    spread = f" (min {min(ratios):.3f}, max {max(ratios):.3f})" if len(ratios) > 1 else ""
    print(f"{args.arch}, {len(arrays['y_train']):,} images x {args.epochs} epochs: taking records is "
          f"{statistics.median(shares):.1%} of training time (median of {len(shares)} runs, measured inside the "
          f"run); with/without ratio {statistics.median(ratios):.3f}{spread}, which also holds the machine's noise")
    return 0


if __name__ == "__main__":
    sys.exit(main())
