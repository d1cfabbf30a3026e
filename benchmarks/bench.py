"""`make bench`: the engine's speed and the recipes' time to accuracy, in one process, on this machine.

1. Throughput of the seed baseline at batch 32: plain Keras `fit` on float arrays (as the seed notebook does)
   against cifar-lab's engine, both in this process on the same images, with the test accuracy each reaches
   after the same epochs, and the achieved GFLOP/s as a share of a float32 matmul peak measured here too.
2. Time to accuracy on the full data: seconds from the start of a recipe (model built, data in memory) until
   its test accuracy first reaches 0.72, 0.80, 0.85 and 0.90, for the seed recipe (baseline, Adam, batch 32,
   early stopping) and the fast recipe at each time budget of --budgets (its one-cycle schedule is fitted to the
   budget, so each budget is its own run). Test accuracy is measured after every epoch with the clock stopped
   (the budget is moved by the same time), so the figures are training time only; the data load is printed
   apart, and `cifar-lab train --recipe fast --time-budget S` is the end-to-end figure.

    python benchmarks/bench.py [--data ../shared/data/cifar10-jpeg] [--budgets 120,600,1800] [--quick]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

PROCESS_START = time.monotonic()

from cifar_core import data, hardware  # noqa: E402  (after the clock starts)
from cifar_core.engine import runtime  # noqa: E402
from cifar_core.model import recipes, shapes, specs  # noqa: E402
from cifar_core.model.config import TrainConfig  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg"
THRESHOLDS = (0.72, 0.80, 0.85, 0.90)
QUICK_IMAGES = 20_000


def training_gflop(spec: specs.ArchitectureSpec) -> float:
    """GFLOP to train on one image: the forward pass's multiply-adds, times two, times three (forward, and the
    backward pass's two products)."""
    macs = sum(layer.params * layer.shape[0] * layer.shape[1] for layer in shapes.layers(spec)
               if layer.type == "Conv2D") + sum(layer.params for layer in shapes.layers(spec) if layer.type == "Dense")
    return 3 * 2 * macs / 1e9


def matmul_peak_gflops(tf) -> float:
    """Best float32 GFLOP/s of a 2048x2048 matmul on this device, over a few tries."""
    a = tf.random.normal((2048, 2048))
    best = 0.0
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(4):
            c = tf.linalg.matmul(a, a)
        float(tf.reduce_sum(c))
        best = max(best, 4 * 2 * 2048**3 / (time.perf_counter() - t0) / 1e9)
    return best


def plain_keras_model():
    """The baseline as a reader of the seed notebook writes it: float input already in [0, 1]."""
    import keras
    from keras import layers

    model = keras.Sequential([
        keras.Input((32, 32, 3)),
        layers.Conv2D(32, 5, padding="same", activation="relu"), layers.MaxPooling2D(),
        layers.Conv2D(64, 3, padding="same", activation="relu"), layers.MaxPooling2D(),
        layers.Conv2D(128, 3, padding="same", activation="relu"), layers.MaxPooling2D(),
        layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dense(10, activation="softmax"),
    ])
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    return model


def quick_arrays(arrays: dict, n: int = QUICK_IMAGES) -> dict:
    """`arrays` with a stratified `n` of its training images: an image folder lists its images class by class,
    so the first `n` would hold only some of the classes."""
    x, y = data.stratified_subset(arrays["x_train"], arrays["y_train"], n, seed=0)
    return {**arrays, "x_train": x, "y_train": y}


def throughput(tf, arrays: dict, epochs: int) -> None:
    import keras
    import numpy as np

    from cifar_core.engine import pipeline, trainer
    from cifar_core.engine.models import build_model, compile_model

    x, y, x_test, y_test = arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"]
    peak = matmul_peak_gflops(tf)
    per_image = training_gflop(specs.PRESETS["baseline"])
    print(f"\n1. Seed baseline, batch 32, {len(y):,} training images, {epochs} timed epochs after one warm-up "
          f"epoch; float32 matmul peak here: {peak:.0f} GFLOP/s")
    results = {}

    keras.utils.set_random_seed(0)
    plain = plain_keras_model()
    x_float, y_hot = x.astype("float32") / 255.0, np.eye(10, dtype="float32")[y]
    seconds = timed_fit(lambda n: plain.fit(x_float, y_hot, batch_size=32, epochs=n, verbose=2), epochs)
    results["plain Keras fit, float arrays"] = (seconds, (plain.predict(x_test / 255.0, verbose=0).argmax(1) ==
                                                          y_test).mean())
    keras.utils.set_random_seed(0)
    cfg = TrainConfig(epochs=epochs + 1)
    steps = -(-len(y) // cfg.batch_size)
    ours = compile_model(build_model(specs.PRESETS["baseline"]), cfg, steps)
    ds = pipeline.make_dataset(x, y, cfg.batch_size, seed=0)
    seconds = timed_fit(lambda n: ours.fit(ds, epochs=n, verbose=0, shuffle=False), epochs)
    results[f"cifar-lab engine ({ours.steps_per_execution} batches per step, uint8)"] = (
        seconds, (trainer.predict(ours, x_test).argmax(1) == y_test).mean())
    base = None
    for name, (secs, acc) in results.items():
        rate = len(y) * epochs / secs
        base = base or rate
        print(f"  {name:46s} {rate:6.0f} images/s  x{rate / base:.2f}  {rate * per_image:5.1f} GFLOP/s "
              f"({rate * per_image / peak:4.0%} of peak)  test acc after {epochs + 1} epochs {acc:.4f}")


def timed_fit(fit, epochs: int) -> float:
    fit(1)
    t0 = time.perf_counter()
    fit(epochs)
    return time.perf_counter() - t0


def time_to_accuracy(tf, arrays: dict, name: str, spec: specs.ArchitectureSpec, cfg: TrainConfig) -> dict:
    """Train one recipe in this process; test accuracy after each epoch with the clock stopped."""
    import keras

    from cifar_core.engine import callbacks, pipeline, trainer
    from cifar_core.engine.models import build_model, compile_model, learning_rate

    keras.utils.set_random_seed(cfg.seed)
    started = time.monotonic()
    paused = 0.0
    sizes = {"train": len(arrays["y_train"]), "validation": len(arrays["y_val"]), "test": len(arrays["y_test"])}
    steps = -(-sizes["train"] // cfg.batch_size)
    plan = callbacks.Plan(cfg.epochs, steps)
    lr = learning_rate(cfg, steps)
    model = compile_model(build_model(spec, bn_momentum=cfg.bn_momentum), cfg, steps, lr,
                          bool(runtime.gpu_names(tf)))
    reached, curve = {}, []

    budget = None
    if cfg.time_budget:
        budget = callbacks.FitToBudget(plan, cfg.time_budget, time.time(), cfg.batch_size, sizes, 2 if cfg.tta else 1,
                                   lr if cfg.schedule == "onecycle" else None)

    class TestEachEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            nonlocal paused
            t0 = time.monotonic()
            acc = float((trainer.predict(self.model, arrays["x_test"], cfg.tta).argmax(1) == arrays["y_test"]).mean())
            paused += time.monotonic() - t0
            if budget:
                budget.deadline += time.monotonic() - t0
            elapsed = t0 - started - paused
            curve.append((epoch + 1, elapsed, acc))
            for threshold in THRESHOLDS:
                if acc >= threshold and threshold not in reached:
                    reached[threshold] = elapsed
            print(f"    {name}: epoch {epoch + 1}/{plan.epochs}  {elapsed:6.0f} s  test acc {acc:.4f}", flush=True)

    callbacks = [budget, TestEachEpoch()] if budget else [TestEachEpoch()]  # the budget measures the epoch first
    if cfg.patience and not budget:
        callbacks.append(keras.callbacks.EarlyStopping("val_accuracy", patience=cfg.patience, mode="max"))
    model.fit(pipeline.make_dataset(arrays["x_train"], arrays["y_train"], cfg.batch_size, cfg.seed, cfg.augment,
                                 cfg.translate),
              validation_data=pipeline.make_dataset(arrays["x_val"], arrays["y_val"], pipeline.EVAL_BATCH),
              epochs=cfg.epochs, verbose=0, shuffle=False, callbacks=callbacks)
    return {"reached": reached, "curve": curve}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA) if DEFAULT_DATA.exists() else "synthetic")
    parser.add_argument("--budgets", default="120,600,1800",
                        help="the fast recipe's time budgets in seconds, one run each (comma-separated)")
    parser.add_argument("--seed-epochs", type=int, default=30, help="the seed recipe's epochs at most")
    parser.add_argument("--quick", action="store_true", help="20,000 images (stratified) and 2 timed epochs for the "
                        "throughput, the seed recipe for 5 epochs and one fast run of 120 s")
    args = parser.parse_args()

    tf = runtime.tensorflow()
    precision = runtime.configure(0, "auto")
    print(hardware.describe_machine())
    print(f"precision: {precision.policy} ({precision.reason}); TensorFlow {tf.__version__}")
    t0 = time.monotonic()
    from cifar_core.engine.pipeline import prepare_data

    dataset = data.load_dataset(args.data)
    arrays = prepare_data(dataset, TrainConfig())
    print(f"data: {dataset.source} ({dataset.kind}): {len(arrays['y_train']):,} train, {len(arrays['y_val']):,} "
          f"validation, {len(arrays['y_test']):,} test; loaded in {time.monotonic() - t0:.1f} s "
          f"({time.monotonic() - PROCESS_START:.1f} s since the process started)")
    throughput(tf, quick_arrays(arrays) if args.quick else arrays, epochs=2 if args.quick else 3)

    budgets = [120.0] if args.quick else [float(b) for b in args.budgets.split(",")]
    seed_cfg = TrainConfig(epochs=5 if args.quick else args.seed_epochs)
    print("\n2. Time to test accuracy (training seconds, data already in memory)")
    rows = {"seed recipe (baseline)": time_to_accuracy(tf, arrays, "seed", specs.PRESETS["baseline"], seed_cfg)}
    for budget in budgets:
        fast_cfg = recipes.fast_config(TrainConfig(), bool(runtime.gpu_names(tf)), time_budget=budget)
        rows[f"fast recipe, {budget:.0f} s"] = time_to_accuracy(tf, arrays, f"fast {budget:.0f} s",
                                                               specs.PRESETS["fast"], fast_cfg)
    print(f"\n  {'recipe':24s}" + "".join(f"  >= {t:.2f}" for t in THRESHOLDS) + "   final acc  epochs  seconds")
    for name, result in rows.items():
        cells = "".join(f"  {result['reached'].get(t) or float('nan'):7.0f}" for t in THRESHOLDS)
        last = result["curve"][-1]
        print(f"  {name:24s}{cells}   {last[2]:.4f}    {last[0]:5d}  {last[1]:7.0f}")
    print("  (nan: not reached)")


if __name__ == "__main__":
    main()
