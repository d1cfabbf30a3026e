"""A short speed probe: how many training images per second architectures reach on this machine, for a study's
duration estimate when no earlier run here measured them.

    echo '{"config": {...}, "specs": [{...}, ...]}' | python -m cifar_core.engine.probe   # prints {name: images/s}

It runs in its own process (as a trainer does), so the dashboard that asks never imports TensorFlow.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace

import numpy as np

from cifar_core.data import IMAGE_SHAPE
from cifar_core.engine import runtime
from cifar_core.model import specs
from cifar_core.model.config import TrainConfig

WARMUP_BATCHES = 3  # not timed: the first calls trace the graph
TIMED_BATCHES = 12


def measure(spec: specs.ArchitectureSpec, cfg: TrainConfig, images: tuple[np.ndarray, np.ndarray] | None = None,
            warmup: int = WARMUP_BATCHES, timed: int = TIMED_BATCHES, per_call: int = 1) -> float:
    """Training images per second of `spec` with the config's batch size, optimizer and precision, `per_call`
    batches per call into the backend, timed over `timed` calls after `warmup`: on random images (the speed of a
    convolution does not depend on what the pixels show), or on `images` (a run's training images and labels,
    repeated when too few) through the run's input pipeline, its augmentation included."""
    import keras

    from cifar_core.engine.models import build_model, compile_model
    from cifar_core.engine.pipeline import make_dataset

    cfg = replace(cfg, steps_per_execution=per_call)
    model = compile_model(build_model(spec, bn_momentum=cfg.bn_momentum), cfg, (warmup + timed) * per_call)
    per_call = model.steps_per_execution  # 1 on PyTorch, whatever was asked
    n = (warmup + timed) * per_call * cfg.batch_size
    marks: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            marks.append(time.perf_counter())

    if images is None:
        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, (n, *IMAGE_SHAPE), dtype=np.uint8)
        y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, n)]
        model.fit(x, y, batch_size=cfg.batch_size, epochs=1, verbose=0, shuffle=False, callbacks=[Timer()])
    else:
        take = np.arange(n) % len(images[1])
        model.fit(make_dataset(images[0][take], images[1][take], cfg.batch_size, None, cfg.augment, cfg.translate),
                  epochs=1, verbose=0, shuffle=False, callbacks=[Timer()])
    return timed * per_call * cfg.batch_size / (marks[-1] - marks[warmup - 1])


def main() -> int:
    request = json.load(sys.stdin)
    cfg = TrainConfig.from_dict(request["config"])
    runtime.configure(cfg.seed, cfg.precision)
    speeds = {}
    for raw in request["specs"]:
        spec = specs.check(specs.from_dict(raw))
        speeds[spec.name] = measure(spec, cfg)
    print(json.dumps(speeds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
