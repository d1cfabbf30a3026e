"""Training throughput of the baseline: cifar-lab's pipeline against plain Keras model.fit on float arrays.

Both train the same 358,346-parameter network at batch 32 on the same images, with the same thread
settings, in one process; each is timed over full epochs after a warm-up epoch. Prints images/s and the ratio.

    python benchmarks/throughput.py [--data ../shared/data/cifar10-jpeg] [--images 20000] [--epochs 2]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from cifar_core import data, hardware, runtime, specs, train  # noqa: E402
from cifar_core.models import build_model, compile_model  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg"


class EpochTimer:
    """Wall time of each epoch, as a Keras callback."""

    def __init__(self):
        import keras

        timer = self

        class _Cb(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.t0 = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                timer.seconds.append(time.perf_counter() - self.t0)

        self.seconds: list[float] = []
        self.callback = _Cb()


def plain_keras_model():
    """The baseline written as a reader of the seed notebook would: float input already in [0, 1]."""
    import keras
    from keras import layers

    model = keras.Sequential([
        keras.Input((32, 32, 3)),
        layers.Conv2D(32, 5, padding="same", activation="relu"), layers.MaxPooling2D(),
        layers.Conv2D(64, 3, padding="same", activation="relu"), layers.MaxPooling2D(),
        layers.Conv2D(128, 3, padding="same", activation="relu"), layers.MaxPooling2D(),
        layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dense(10, activation="softmax"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA) if DEFAULT_DATA.exists() else "synthetic")
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs, after one warm-up epoch")
    args = parser.parse_args()

    tf = runtime.configure(0)
    ds = data.load_dataset(args.data)
    x, y = data.stratified_subset(ds.x_train, ds.y_train, args.images, 0)
    print(f"data: {ds.source} ({ds.kind}), {len(y)} images, {hardware.usable_cores()} cores, "
          f"devices: {[d.name for d in tf.config.list_logical_devices()]}")

    results = {}
    plain = plain_keras_model()
    assert plain.count_params() == 358_346
    timer = EpochTimer()
    x_float = x.astype("float32") / 255.0
    plain.fit(x_float, y, batch_size=32, epochs=1 + args.epochs, verbose=0, callbacks=[timer.callback])
    results["plain keras fit(float arrays)"] = timer.seconds[1:]

    ours = compile_model(build_model(specs.PRESETS["baseline"]))
    timer = EpochTimer()
    ours.fit(train.make_dataset(x, y, 32, seed=0), epochs=1 + args.epochs, verbose=0,
             callbacks=[timer.callback])
    results["cifar-lab pipeline (uint8 tf.data)"] = timer.seconds[1:]

    base = None
    for name, seconds in results.items():
        rate = len(y) * len(seconds) / sum(seconds)
        base = base or rate
        print(f"{name:38s} {rate:8.0f} images/s  ({', '.join(f'{s:.1f}' for s in seconds)} s/epoch)"
              f"  ratio {rate / base:.2f}")


if __name__ == "__main__":
    main()
