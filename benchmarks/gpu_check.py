"""The GPU check: on a machine with a GPU and PyTorch or JAX (TensorFlow not needed), each installed backend's
training speed, then the fast recipe's and the seed baseline's time-to-accuracy on the fastest, with the card's name.
Run by benchmarks/gpu_check.sh, which first installs Keras from the wheels carried beside it.

    python benchmarks/gpu_check.py --data PATH [--fast-epochs 10] [--baseline-epochs 30] [--quick]

PATH is CIFAR-10 in any form the lab reads (the python batches folder torchvision downloads, its tarball, or the
JPEG folder). Imports only the engine's model, input pipeline and speed probe: no pandas, scikit-learn or Streamlit.
Figures are wall seconds of training (the first epoch includes compiling), test accuracy after each epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cifar_core import backends, hardware  # noqa: E402
from cifar_core.model import recipes, specs  # noqa: E402
from cifar_core.model.config import TrainConfig  # noqa: E402

FAST_TARGET = (0.90, 60.0)  # issue 26: the fast recipe to 0.90 in 60 s ...
BASELINE_TARGET_S = 180.0  # ... and the seed baseline's 30 epochs in 3 minutes, on one H100/H200


def speeds(quick: bool) -> dict[str, float]:
    """This process's backend: training images/s of the fast net (its GPU batch) and the seed baseline (batch 32)."""
    from cifar_core.engine import probe, runtime

    runtime.configure(0, "auto")
    fast = recipes.fast_config(TrainConfig(), on_gpu=bool(runtime.gpu_names()))
    timed = 5 if quick else 30
    return {"fast": probe.measure(specs.FAST, fast, timed=timed, per_call=4),
            "baseline": probe.measure(specs.PRESETS["baseline"], TrainConfig(), timed=timed, per_call=16)}


def time_to_accuracy(data_path: str, which: str, epochs: int, subset: int | None) -> list[dict]:
    """Train `which` (fast or baseline) on this process's backend, the test accuracy after each epoch. No
    validation split: nothing is chosen by it here, and splitting would need scikit-learn."""
    import keras

    from cifar_core import data
    from cifar_core.engine import pipeline, runtime
    from cifar_core.engine.models import build_model, compile_model, learning_rate

    on_gpu = bool(runtime.gpu_names())
    base = TrainConfig(seed=0)
    cfg = replace(recipes.fast_config(base, on_gpu), epochs=epochs) if which == "fast" else replace(base,
                                                                                                    epochs=epochs)
    runtime.configure(cfg.seed, cfg.precision)
    dataset = data.load_dataset(data_path)
    train, test = (slice(subset), slice(subset // 2)) if subset else (slice(None), slice(None))  # all 50,000 / 10,000
    arrays = {"x_train": dataset.x_train[train], "y_train": dataset.y_train[train],
              "x_test": dataset.x_test[test], "y_test": dataset.y_test[test]}
    steps = -(-len(arrays["y_train"]) // cfg.batch_size)
    spec = specs.FAST if which == "fast" else specs.PRESETS["baseline"]
    model = compile_model(build_model(spec, bn_momentum=cfg.bn_momentum), cfg, steps, learning_rate(cfg, steps),
                          on_gpu)
    rows: list[dict] = []

    class Clock(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.start, self.evaluating = time.perf_counter(), 0.0

        def on_epoch_end(self, epoch, logs=None):
            now = time.perf_counter()
            accuracy = float((pipeline.predict(self.model, arrays["x_test"], cfg.tta).argmax(1)
                              == arrays["y_test"]).mean())
            self.evaluating += time.perf_counter() - now
            rows.append({"epoch": epoch + 1, "seconds": round(now - self.start - self.evaluating, 2),
                         "test_accuracy": round(accuracy, 4)})
            print(f"  {which} epoch {epoch + 1:3d}  {rows[-1]['seconds']:8.1f} s  test accuracy {accuracy:.4f}",
                  flush=True)

    train = pipeline.make_dataset(arrays["x_train"], arrays["y_train"], cfg.batch_size, cfg.seed, cfg.augment,
                                  cfg.translate)
    model.fit(train, epochs=cfg.epochs, verbose=0, shuffle=False, callbacks=[Clock()])
    return rows


def child(backend: str, *args: str) -> dict | list:
    """This script's own `--child` mode under `backend`: its progress lines shown as they come, its JSON answer
    (the last line) returned."""
    env = {**os.environ, **backends.environment(backends.Backend(backend, "gpu_check"))}
    lines = []
    with subprocess.Popen([sys.executable, __file__, "--child", *args], env=env, cwd=ROOT, text=True,
                          stdout=subprocess.PIPE) as proc:
        for line in proc.stdout:
            if lines:
                print(lines[-1], end="", flush=True)
            lines.append(line)
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"the {backend} check failed (exit {proc.returncode}); its error is above")
    return json.loads(lines[-1])


def first_reaching(rows: list[dict], accuracy: float) -> dict | None:
    return next((r for r in rows if r["test_accuracy"] >= accuracy), None)


def report(found: dict[str, dict], chosen: str, fast: list[dict], baseline: list[dict]) -> None:
    print(f"\n{hardware.describe_machine()}")
    print("\ntraining images/s per backend (random images; the fast net at the recipe's batch for this device, the "
          "baseline at 32)")
    print(f"  {'backend':<12}{'fast net':>12}{'baseline':>12}")
    for name, s in found.items():
        print(f"  {name:<12}{s['fast']:>12,.0f}{s['baseline']:>12,.0f}{'   <- used below' if name == chosen else ''}")
    goal, hit = FAST_TARGET[0], first_reaching(fast, FAST_TARGET[0])
    reached = (f"{goal:.2f} reached at epoch {hit['epoch']}, {hit['seconds']:.1f} s" if hit else
               f"best {max(r['test_accuracy'] for r in fast):.4f}, {goal:.2f} not reached")
    print(f"\nfast recipe on {chosen}: {reached} (target: {goal:.2f} in {FAST_TARGET[1]:.0f} s)")
    last = baseline[-1]
    print(f"seed baseline on {chosen}: {last['epoch']} epochs in {last['seconds']:.1f} s, test accuracy "
          f"{last['test_accuracy']:.4f} (target: 30 epochs in {BASELINE_TARGET_S:.0f} s)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="CIFAR-10 (batches folder, tarball or JPEG folder), or "
                                                      "'synthetic' to check the script itself")
    parser.add_argument("--fast-epochs", type=int, default=recipes.FAST_EPOCHS)
    parser.add_argument("--baseline-epochs", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="a 2,000-image subset: checks the script, not the GPU")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    subset = 2000 if args.quick else None
    if args.child:
        what = args.child[0]
        answer = speeds(args.quick) if what == "speeds" else time_to_accuracy(args.data, what, int(args.child[1]),
                                                                              subset)
        print(json.dumps(answer))
        return 0
    if not args.data:
        parser.error("--data PATH is needed: CIFAR-10 as the python batches folder (cifar-10-batches-py), its "
                     "tarball or the JPEG folder; or --data synthetic to check the script")
    installed = backends.installed()
    print(f"GPUs: {', '.join(hardware.nvidia_gpus()) or 'none found by the NVIDIA driver'}; "
          f"Keras backends installed: {', '.join(installed) or 'none'}", flush=True)
    found = {name: child(name, "speeds", *(["--quick"] if args.quick else [])) for name in installed}
    chosen = max(found, key=lambda name: found[name]["fast"])
    if not args.quick:  # --backend auto takes `chosen` here from now on (a quick check measures too little)
        backends.save_speeds({name: s["fast"] for name, s in found.items()})
    extra = ["--data", args.data, *(["--quick"] if args.quick else [])]
    fast = child(chosen, "fast", str(args.fast_epochs), *extra)
    baseline = child(chosen, "baseline", str(args.baseline_epochs), *extra)
    report(found, chosen, fast, baseline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
