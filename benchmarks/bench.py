"""`make bench`: the engine's speed, the seed recipe's time to accuracy, and the fast recipe's budget table.

1. Throughput of the seed baseline at batch 32: plain Keras `fit` on float arrays (as the seed notebook does)
   against cifar-lab's engine, in this process on the same images, one epoch of each in turn (ABBA) for --rounds
   rounds, so that a slow minute of a shared machine cannot decide the ratio: per round and the median with its
   spread, the test accuracy each reaches, and the achieved GFLOP/s as a share of a float32 matmul peak.
2. Time to accuracy of the seed recipe (baseline, Adam, batch 32, early stopping) on the full data: seconds from
   its start (model built, data in memory) until its test accuracy first reaches 0.72, 0.80, 0.85 and 0.90, test
   accuracy measured after every epoch with the clock stopped.
3. The budget table: `cifar-lab train --recipe fast --time-budget B` for each budget of --budgets, end to end (its
   network sized to the budget at launch): the network chosen, predicted and reached test accuracy, epochs, and
   the seconds from launch to its last file; with the load average and other cifar-lab processes around each run.

    python benchmarks/bench.py [--data ../shared/data/cifar10-jpeg] [--budgets 60,120,600,1800] [--rounds 4]
                               [--sections throughput,seed,budgets] [--quick]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

PROCESS_START = time.monotonic()

from cifar_core import data, hardware  # noqa: E402  (after the clock starts)
from cifar_core.engine import runtime  # noqa: E402
from cifar_core.model import shapes, specs  # noqa: E402
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


def throughput(tf, arrays: dict, rounds: int) -> None:
    """Plain Keras `fit` against the engine on the seed baseline, one epoch each in turn (ABBA order), `rounds`
    times after a warm-up epoch of each: a slow minute of a shared machine hits both, and the spread shows it."""
    import statistics

    import keras
    import numpy as np

    from cifar_core.engine import pipeline
    from cifar_core.engine.models import build_model, compile_model

    x, y, x_test, y_test = arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"]
    peak = matmul_peak_gflops(tf)
    per_image = training_gflop(specs.PRESETS["baseline"])
    print(f"\n1. Seed baseline, batch 32, {len(y):,} training images: plain Keras fit and the engine alternated, one "
          f"epoch each, {rounds} rounds after one warm-up epoch each; float32 matmul peak here: {peak:.0f} GFLOP/s")
    keras.utils.set_random_seed(0)
    plain = plain_keras_model()
    x_float, y_hot = x.astype("float32") / 255.0, np.eye(10, dtype="float32")[y]
    keras.utils.set_random_seed(0)
    cfg = TrainConfig()
    ours = compile_model(build_model(specs.PRESETS["baseline"]), cfg, -(-len(y) // cfg.batch_size))
    ds = pipeline.make_dataset(x, y, cfg.batch_size, seed=0)
    fits = {"plain": lambda: plain.fit(x_float, y_hot, batch_size=32, epochs=1, verbose=0),
            "engine": lambda: ours.fit(ds, epochs=1, verbose=0, shuffle=False)}
    for fit in fits.values():
        fit()
    rates: dict[str, list[float]] = {"plain": [], "engine": []}
    for r in range(rounds):
        for name in (("plain", "engine") if r % 2 == 0 else ("engine", "plain")):
            t0 = time.perf_counter()
            fits[name]()
            rates[name].append(len(y) / (time.perf_counter() - t0))
        print(f"  round {r + 1}: plain {rates['plain'][-1]:6.0f} images/s, engine {rates['engine'][-1]:6.0f} images/s,"
              f" engine/plain x{rates['engine'][-1] / rates['plain'][-1]:.2f}  ({other_work()})", flush=True)
    accuracy = {"plain": (plain.predict(x_test / 255.0, verbose=0).argmax(1) == y_test).mean(),
                "engine": (pipeline.predict(ours, x_test).argmax(1) == y_test).mean()}
    for name, label in (("plain", "plain Keras fit, float arrays"),
                        ("engine", f"cifar-lab engine ({ours.steps_per_execution} batches per step, uint8)")):
        rate = statistics.median(rates[name])
        print(f"  {label:46s} median {rate:6.0f} images/s ({min(rates[name]):.0f}-{max(rates[name]):.0f})  "
              f"{rate * per_image:5.1f} GFLOP/s ({rate * per_image / peak:4.0%} of peak)  test acc after "
              f"{rounds + 1} epochs {accuracy[name]:.4f}")
    ratios = [e / p for e, p in zip(rates["engine"], rates["plain"], strict=True)]
    print(f"  engine / plain Keras, per round: median x{statistics.median(ratios):.2f}, spread "
          f"x{min(ratios):.2f}-x{max(ratios):.2f} over {rounds} rounds")


def other_work() -> str:
    """What else the machine was doing: the load average and other cifar-lab processes (trainers, searches)."""
    own = {os.getpid(), os.getppid()}
    others = 0
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) not in own:
            try:
                others += b"cifar_core" in (proc / "cmdline").read_bytes()
            except OSError:
                continue
    return f"load {os.getloadavg()[0]:.1f}, {others} other cifar_core process(es)"


def budget_table(source: str, budgets: list[float], runs_dir: Path) -> None:
    """`cifar-lab train --recipe fast --time-budget B` end to end, one run after another: the network each chose,
    its predicted and reached test accuracy and the seconds from launch to its last file."""
    import json
    import subprocess
    import sys

    print("\n3. Budget table: cifar-lab train --recipe fast --time-budget B (the network sized to the budget), each "
          "its own process, launch to last file")
    print(f"  {'budget':>7}  {'network':11s} {'predicted':>9} {'reached':>8} {'epochs':>7} {'seconds':>8} {'used':>6}"
          "  machine during the run")
    for budget in budgets:
        before = other_work()
        done = subprocess.run([sys.executable, "-m", "cifar_core.cli", "--runs-dir", str(runs_dir), "train",
                               "--recipe", "fast", "--time-budget", f"{budget:g}", "--data", source],
                              capture_output=True, text=True, check=False)
        if done.returncode:
            print(f"  {budget:7.0f}  failed: {(done.stderr.strip().splitlines() or ['no output'])[-1]}")
            continue
        run_dir = Path(done.stdout.splitlines()[0])
        meta = json.loads((run_dir / "run.json").read_text())
        choice = meta.get("budget_choice") or {}
        used = meta["finished"] - meta["launched"]
        print(f"  {budget:7.0f}  {meta['spec']['name']:11s} {choice.get('predicted_accuracy', float('nan')):9.4f} "
              f"{meta['test_accuracy']:8.4f} {meta['epochs_run']:7d} {used:8.1f} {used / budget:6.1%}  before: "
              f"{before}; after: {other_work()}", flush=True)


def time_to_accuracy(arrays: dict, name: str, spec: specs.ArchitectureSpec, cfg: TrainConfig) -> dict:
    """Train one recipe in this process; test accuracy after each epoch with the clock stopped."""
    import keras

    from cifar_core.engine import callbacks, pipeline
    from cifar_core.engine.models import build_model, compile_model, learning_rate

    keras.utils.set_random_seed(cfg.seed)
    started = time.monotonic()
    paused = 0.0
    sizes = {"train": len(arrays["y_train"]), "validation": len(arrays["y_val"]), "test": len(arrays["y_test"])}
    steps = -(-sizes["train"] // cfg.batch_size)
    plan = callbacks.Plan(cfg.epochs, steps)
    lr = learning_rate(cfg, steps)
    model = compile_model(build_model(spec, bn_momentum=cfg.bn_momentum), cfg, steps, lr,
                          bool(runtime.gpu_names()))
    reached, curve = {}, []

    class TestEachEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            nonlocal paused
            t0 = time.monotonic()
            acc = float((pipeline.predict(self.model, arrays["x_test"], cfg.tta).argmax(1) == arrays["y_test"]).mean())
            paused += time.monotonic() - t0
            elapsed = t0 - started - paused
            curve.append((epoch + 1, elapsed, acc))
            for threshold in THRESHOLDS:
                if acc >= threshold and threshold not in reached:
                    reached[threshold] = elapsed
            print(f"    {name}: epoch {epoch + 1}/{plan.epochs}  {elapsed:6.0f} s  test acc {acc:.4f}", flush=True)

    hooks = [TestEachEpoch()]
    if cfg.patience:
        hooks.append(keras.callbacks.EarlyStopping("val_accuracy", patience=cfg.patience, mode="max"))
    model.fit(pipeline.make_dataset(arrays["x_train"], arrays["y_train"], cfg.batch_size, cfg.seed, cfg.augment,
                                 cfg.translate),
              validation_data=pipeline.make_dataset(arrays["x_val"], arrays["y_val"], pipeline.EVAL_BATCH),
              epochs=cfg.epochs, verbose=0, shuffle=False, callbacks=hooks)
    return {"reached": reached, "curve": curve}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA) if DEFAULT_DATA.exists() else "synthetic")
    parser.add_argument("--budgets", default="60,120,600,1800",
                        help="the budget table's time budgets in seconds, one run each (comma-separated)")
    parser.add_argument("--seed-epochs", type=int, default=30, help="the seed recipe's epochs at most")
    parser.add_argument("--rounds", type=int, default=None,
                        help="rounds of plain Keras and engine epochs, alternated (default 4; 2 with --quick)")
    parser.add_argument("--sections", default="throughput,seed,budgets",
                        help="which to run: throughput, seed (time to accuracy), budgets (the budget table)")
    parser.add_argument("--quick", action="store_true", help="20,000 images (stratified) and 2 rounds for the "
                        "throughput, the seed recipe for 5 epochs and the budget table at 60 s")
    args = parser.parse_args()
    sections = set(args.sections.split(","))

    tf = runtime.tensorflow()
    precision = runtime.configure(0, "auto")
    print(hardware.describe_machine())
    print(f"precision: {precision.policy} ({precision.reason}); TensorFlow {tf.__version__}; {other_work()}")
    t0 = time.monotonic()
    from cifar_core.engine.pipeline import prepare_data

    dataset = data.load_dataset(args.data)
    arrays = prepare_data(dataset, TrainConfig())
    print(f"data: {dataset.source} ({dataset.kind}): {len(arrays['y_train']):,} train, {len(arrays['y_val']):,} "
          f"validation, {len(arrays['y_test']):,} test; loaded in {time.monotonic() - t0:.1f} s "
          f"({time.monotonic() - PROCESS_START:.1f} s since the process started)")
    if "throughput" in sections:
        throughput(tf, quick_arrays(arrays) if args.quick else arrays, rounds=args.rounds or (2 if args.quick else 4))
    if "seed" in sections:
        seed_cfg = TrainConfig(epochs=5 if args.quick else args.seed_epochs)
        print("\n2. Time to test accuracy (training seconds, data already in memory)")
        result = time_to_accuracy(arrays, "seed", specs.PRESETS["baseline"], seed_cfg)
        print(f"\n  {'recipe':24s}" + "".join(f"  >= {t:.2f}" for t in THRESHOLDS) + "   final acc  epochs  seconds")
        cells = "".join(f"  {result['reached'].get(t) or float('nan'):7.0f}" for t in THRESHOLDS)
        last = result["curve"][-1]
        print(f"  {'seed recipe (baseline)':24s}{cells}   {last[2]:.4f}    {last[0]:5d}  {last[1]:7.0f}")
        print("  (nan: not reached)")
    if "budgets" in sections:
        budgets = [60.0] if args.quick else [float(b) for b in args.budgets.split(",")]
        with tempfile.TemporaryDirectory(prefix="bench-runs-") as runs_dir:
            budget_table(args.data, budgets, Path(runs_dir))


if __name__ == "__main__":
    main()
