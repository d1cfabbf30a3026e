"""Grad-CAM time for one page of the Misclassified gallery (24 images, predicted and true class), per run.

    python benchmarks/explain_times.py RUN [RUN ...] [--runs-dir DIR] [--repeats 5]

Prints the machine, then per run: model load time, the first call (tracing) and the median of the next ones.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from cifar_core import data, hardware
from cifar_core.analysis import scores
from cifar_core.engine import explain, runtime
from cifar_core.store import rundir, runs

PAGE = 24


def time_run(info: runs.RunInfo, repeats: int) -> str:
    from cifar_core.engine import trainer

    t0 = time.perf_counter()
    model = trainer.load_model(info.path)
    load_s = time.perf_counter() - t0
    preds = rundir.read_predictions(info.path)
    names = rundir.read_report(info.path)["class_names"]
    top = scores.top_confusions(rundir.read_report(info.path), 1).iloc[0]
    wrong = scores.misclassified(preds, names.index(top["true"]), names.index(top["predicted"])).head(PAGE)
    images = data.load_dataset(info.data["source"]).x_test[wrong["index"].to_numpy()]
    n = len(images)
    classes = np.r_[np.full(n, names.index(top["predicted"])), np.full(n, names.index(top["true"]))]
    cam = explain.GradCam(model, explain.default_layer(model))
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        cam(np.concatenate([images, images]), classes)
        times.append(time.perf_counter() - t0)
    return (f"{info.run_id}: {n} images x 2 classes on {cam.layer}: load {load_s:.2f} s, first call {times[0]:.2f} s, "
            f"then median {statistics.median(times[1:]):.3f} s ({info.meta.get('params', 0):,} parameters)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run ids (or unique prefixes)")
    parser.add_argument("--runs-dir", type=Path, default=runs.default_runs_dir())
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    tf = runtime.tensorflow()
    print(hardware.describe_machine())
    print(f"TensorFlow {tf.__version__}, intra-op threads: {tf.config.threading.get_intra_op_parallelism_threads()} "
          "(0 = all cores)")
    for ref in args.runs:
        print(time_run(runs.find_run(args.runs_dir, ref), args.repeats), flush=True)


if __name__ == "__main__":
    main()
