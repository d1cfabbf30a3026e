"""A finished run's test accuracy with more test-time views than the recipe's flips: the images as they are, with
their mirror (the recipe), and airbench's second level (both flips of the images shifted S pixels diagonally each
way, reflect-padded), weighted as airbench weighs them and all views equal. For recipes.py's note on `tta`.

    python benchmarks/tta_views.py RUN_DIR [--data ../shared/data/cifar10-jpeg] [--shifts 1 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from cifar_core import data, hardware
from cifar_core.engine import runtime

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg"


def shifted(x: np.ndarray, d: int) -> np.ndarray:
    """The images moved by `d` pixels down and right (negative: up and left), reflect-padded."""
    pad = abs(d)
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
    return padded[:, pad + d:pad + d + x.shape[1], pad + d:pad + d + x.shape[2]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--shifts", type=int, nargs="*", default=[1, 2])
    args = parser.parse_args()
    runtime.tensorflow()
    runtime.configure(0, "auto")
    from cifar_core.engine.pipeline import predict
    from cifar_core.engine.trainer import load_model

    print(hardware.describe_machine(), flush=True)
    model = load_model(args.run_dir)
    dataset = data.load_dataset(args.data)
    x, y = dataset.x_test, dataset.y_test

    def accuracy(probs: np.ndarray) -> float:
        return float((probs.argmax(1) == y).mean())

    start = time.perf_counter()
    plain = predict(model, x).astype(np.float64)
    one_pass = time.perf_counter() - start
    flips = (plain + predict(model, x[:, :, ::-1])) / 2
    print(f"as is {accuracy(plain):.4f}; with flips (the recipe) {accuracy(flips):.4f}; one pass {one_pass:.1f} s")
    for d in args.shifts:
        moved = [predict(model, shifted(x, s), tta=True).astype(np.float64) for s in (-d, d)]
        airbench = 0.5 * flips + 0.25 * (moved[0] + moved[1])
        equal = (2 * flips + 2 * moved[0] + 2 * moved[1]) / 6
        print(f"shift {d}: airbench's weights {accuracy(airbench):.4f}; 6 views equal {accuracy(equal):.4f}",
              flush=True)


if __name__ == "__main__":
    main()
