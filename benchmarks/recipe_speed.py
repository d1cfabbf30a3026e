"""Training images/s of the fast recipe's trial changes against the recipe itself, in one process: every variant
is built and traced first, then timed in turn, round after round (A, B, C, A, B, C, ...), so that a slow minute
of a shared machine falls on all of them; prints each round, then each variant's median and its ratio to the
baseline's (the median of the per-round ratios, and their range).

    python benchmarks/recipe_speed.py [--network fast-w0.5] [--variants base whiten-frozen resize-24 ...]
                                      [--rounds 5] [--calls 6] [--data ../shared/data/cifar10-jpeg]

Variants: base, whiten-frozen, whiten-linear, channels-first, resize-N (N x N images), no-bn-scale, widths-A,B,C
(each stage's filters), activation-NAME (e.g. activation-gelu: every ReLU replaced),
pool-after (each pooling after its block's batch norm and ReLU, the order before pooling first), xla (the recipe
compiled by XLA, as on a GPU), augment-crop-resize (the flips and shifts as the pipeline made them before
2026-12-01).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import recipe_trials  # benchmarks/recipe_trials.py, beside this script

from cifar_core import data, hardware
from cifar_core.engine import runtime
from cifar_core.model import recipes, sizing
from cifar_core.model.config import TrainConfig

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg"
PER_CALL = 10  # batches per call into the backend (the recipe's figure for 13,000-45,000 training images: 10-35)


def trial_of(variant: str) -> recipe_trials.Trial:
    if variant in ("base", "xla", "augment-crop-resize"):
        return recipe_trials.Trial()
    if variant.startswith("whiten-"):
        return recipe_trials.Trial(whiten=variant.split("-", 1)[1])
    if variant == "channels-first":
        return recipe_trials.Trial(channels_first=True)
    if variant == "no-bn-scale":
        return recipe_trials.Trial(bn_scale=False)
    if variant.startswith("widths-"):
        return recipe_trials.Trial(widths=tuple(int(w) for w in variant.split("-")[1].split(",")))
    if variant == "pool-after":
        return recipe_trials.Trial(pool_after=True)
    if variant.startswith("activation-"):
        return recipe_trials.Trial(activation=variant.split("-", 1)[1])
    if variant.startswith("resize-"):
        return recipe_trials.Trial(resize=(int(variant.split("-")[1]), 1))
    raise SystemExit(f"unknown variant {variant!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA) if DEFAULT_DATA.exists() else "synthetic")
    parser.add_argument("--network", default="fast-w0.5", choices=list(sizing.FAMILY))
    parser.add_argument("--variants", nargs="+", default=["base", "whiten-frozen", "channels-first", "resize-24"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=6, help=f"timed calls of {PER_CALL} batches per round")
    args = parser.parse_args()
    runtime.tensorflow()
    precision = runtime.configure(0, "auto")
    import keras

    from cifar_core.engine.models import compile_model
    from cifar_core.engine.pipeline import make_dataset

    machine = f"{hardware.describe_machine()}; precision {precision.policy}"
    print(machine, f"load average {os.getloadavg()[0]:.2f}", flush=True)
    cfg = recipes.fast_config(TrainConfig(layer_records=False, steps_per_execution=PER_CALL), on_gpu=False)
    steps = (args.calls + 1) * PER_CALL
    dataset = data.load_dataset(args.data)
    n = steps * cfg.batch_size
    x, y = dataset.x_train[np.arange(n) % len(dataset.y_train)], dataset.y_train[np.arange(n) % len(dataset.y_train)]
    models, feeds = {}, {}
    for variant in args.variants:
        trial = trial_of(variant)
        keras.utils.set_random_seed(0)
        models[variant] = compile_model(recipe_trials.build(sizing.spec(args.network), cfg.bn_momentum, trial),
                                        cfg, steps)
        models[variant].jit_compile = variant == "xla"
        if variant == "augment-crop-resize":
            feed = recipe_trials.crop_and_resize_augmented(make_dataset(x, y, cfg.batch_size), cfg.translate)
        else:
            feed = make_dataset(x, y, cfg.batch_size, None, cfg.augment, cfg.translate)
        feeds[variant] = recipe_trials.resized(feed, trial.resize[0]) if trial.resize[0] else feed
        models[variant].fit(feeds[variant], epochs=1, verbose=0)  # traced here, not in the timed rounds
    marks: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            marks.append(time.perf_counter())

    speeds: dict[str, list[float]] = {v: [] for v in args.variants}
    for r in range(1, args.rounds + 1):
        for variant in args.variants:
            marks.clear()
            models[variant].fit(feeds[variant], epochs=1, verbose=0, callbacks=[Timer()])
            speeds[variant].append(args.calls * PER_CALL * cfg.batch_size / (marks[-1] - marks[0]))
        print(f"round {r}: " + ", ".join(f"{v} {s[-1]:,.0f}" for v, s in speeds.items()), flush=True)
    base = args.variants[0]
    for variant in args.variants:
        ratios = [a / b for a, b in zip(speeds[variant], speeds[base], strict=True)]
        print(json.dumps({"network": args.network, "variant": variant,
                          "median_images_per_s": round(statistics.median(speeds[variant])),
                          f"ratio_to_{base}": round(statistics.median(ratios), 3),
                          "ratio_range": [round(min(ratios), 3), round(max(ratios), 3)],
                          "rounds": args.rounds, "batch": cfg.batch_size, "machine": machine}), flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} (a shared machine: other work may have run alongside)", flush=True)


if __name__ == "__main__":
    main()
