"""What an epoch's first call into the backend costs beyond its others: the fast recipe's fast-w0.5 on the engine's
dataset (shuffled, augmented) and model, with a validation pass between epochs as a run has; then the same with
the earlier prefetch of tf.data's autotuning (pipeline.PREFETCH_BATCHES says why it went). FitToBudget times an
epoch's pace from the end of its first call; this says how much that leaves out.

    python benchmarks/epoch_start.py [--data ../shared/data/cifar10-jpeg] [--images 20000] [--epochs 8]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace
from pathlib import Path

from cifar_core import data, hardware
from cifar_core.engine import runtime

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA) if DEFAULT_DATA.exists() else "synthetic")
    parser.add_argument("--images", type=int, default=20_000, help="training images (the first N)")
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()

    precision = runtime.configure(0, "auto")
    import keras

    from cifar_core.engine import pipeline
    from cifar_core.engine.models import build_model, compile_model
    from cifar_core.model import specs
    from cifar_core.model.config import TrainConfig
    from cifar_core.model.recipes import fast_config

    print(hardware.describe_machine(), f"precision {precision.policy}", flush=True)
    cfg = replace(fast_config(TrainConfig(), on_gpu=False), epochs=args.epochs)
    arrays = pipeline.prepare_data(data.load_dataset(args.data), cfg)
    x, y = arrays["x_train"][:args.images], arrays["y_train"][:args.images]

    class CallTimes(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.last, self.calls = time.perf_counter(), []

        def on_train_batch_end(self, batch, logs=None):
            now = time.perf_counter()
            self.calls.append(now - self.last)
            self.last = now

        def on_epoch_end(self, epoch, logs=None):
            other = statistics.median(self.calls[1:])
            print(f"  epoch {epoch + 1}: first call {self.calls[0]:.3f} s, the others' median {other:.3f} s "
                  f"(first - other {self.calls[0] - other:+.3f} s, {len(self.calls)} calls)", flush=True)
            pipeline.predict(self.model, arrays["x_val"])  # the validation pass, as a run's Validate runs it

    tf = runtime.tensorflow()
    fixed = pipeline.PREFETCH_BATCHES
    for autotune in (False, True):
        print("the pipeline as it is: prefetch 2, autotuning off" if not autotune else
              "the earlier pipeline: prefetch and tf.data's autotuning", flush=True)
        options = tf.data.Options()
        options.autotune.enabled = autotune
        pipeline.PREFETCH_BATCHES = tf.data.AUTOTUNE if autotune else fixed  # the validation pass's dataset too
        dataset = pipeline.make_dataset(x, y, cfg.batch_size, cfg.seed, cfg.augment, cfg.translate)
        model = compile_model(build_model(specs.FAST.with_width(0.5)), cfg, -(-len(y) // cfg.batch_size))
        model.fit(dataset.with_options(options), epochs=args.epochs, verbose=0, callbacks=[CallTimes()])


if __name__ == "__main__":
    main()
