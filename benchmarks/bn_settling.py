"""Why small batch-norm runs score at chance: their moving statistics have not settled.

    python benchmarks/bn_settling.py [--data SOURCE] [--subset 2000] [--epochs 2] [--momentum 0.99 0.9 ...]

Trains the batchnorm preset on a stratified subset once per batch-norm momentum and prints, per momentum: the last
epoch's training accuracy, validation accuracy as the model is used at test time (moving statistics), validation
accuracy with each batch normalized by its own statistics (what the weights learned, without the moving
averages), and the worst layer's gap from `cifar_core.engine.bncheck.check`. Figures printed, never asserted.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cifar_core import data as data_mod
from cifar_core import hardware
from cifar_core.engine import bncheck, runtime
from cifar_core.model import specs
from cifar_core.model.config import TrainConfig


def batch_statistics_accuracy(model, x: np.ndarray, y: np.ndarray, batch: int = 250) -> float:
    """Accuracy with batch norm in training mode: each batch normalized with its own statistics."""
    right = 0
    for i in range(0, len(y), batch):
        probs = np.asarray(model(x[i:i + batch], training=True))
        right += int((probs.argmax(1) == y[i:i + batch]).sum())
    return right / len(y)


def run(arrays: dict, cfg: TrainConfig) -> dict:
    from cifar_core.engine.models import build_model, compile_model
    from cifar_core.engine.pipeline import make_dataset

    runtime.configure(cfg.seed, "float32")
    steps = -(-len(arrays["y_train"]) // cfg.batch_size)
    model = compile_model(build_model(specs.PRESETS["batchnorm"], bn_momentum=cfg.bn_momentum), cfg, steps)
    start = time.perf_counter()
    history = model.fit(make_dataset(arrays["x_train"], arrays["y_train"], cfg.batch_size, cfg.seed),
                        epochs=cfg.epochs, verbose=0, shuffle=False)
    probs = model.predict(arrays["x_val"], batch_size=256, verbose=0)
    check = bncheck.check(model, arrays["x_train"])
    return {"steps": steps * cfg.epochs, "train_acc": history.history["accuracy"][-1],
            "val_acc": float((probs.argmax(1) == arrays["y_val"]).mean()),
            "val_acc_batch_stats": batch_statistics_accuracy(model, arrays["x_val"], arrays["y_val"]),
            "worst_gap": check["worst_gap"], "settled": check["settled"], "seconds": time.perf_counter() - start}


def main() -> int:
    from cifar_core.engine.pipeline import prepare_data

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/cifar10-jpeg"))
    parser.add_argument("--subset", type=int, nargs="+", default=[2000])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--momentum", type=float, nargs="+", default=[0.99, 0.9, 0.75, 0.5])
    args = parser.parse_args()
    print(hardware.describe_machine())
    dataset = data_mod.load_dataset(args.data)
    print(f"{'images':>7} {'epochs':>6} {'steps':>6} {'momentum':>8} {'train acc':>9} {'val acc':>8} "
          f"{'val acc (batch stats)':>21} {'worst gap':>9} {'settled':>7} {'s':>5}")
    for subset in args.subset:
        for momentum in args.momentum:
            cfg = TrainConfig(epochs=args.epochs, subset=subset, bn_momentum=momentum, patience=0)
            r = run(prepare_data(dataset, cfg), cfg)
            print(f"{subset:>7} {args.epochs:>6} {r['steps']:>6} {momentum:>8} {r['train_acc']:>9.3f} "
                  f"{r['val_acc']:>8.3f} {r['val_acc_batch_stats']:>21.3f} {r['worst_gap']:>9.3f} "
                  f"{r['settled']!s:>7} {r['seconds']:>5.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
