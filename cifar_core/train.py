"""One training run as one process: `python -m cifar_core.train RUN_DIR`.

It reads run.json, trains with Keras callbacks that stream every epoch and batch to the run directory,
honours RUN_DIR/STOP, resumes from backup/ after a crash, restores the best weights, evaluates on the
test set and writes model.keras, predictions.npz and report.json.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from cifar_core import data as data_mod
from cifar_core import evaluate, runs, specs
from cifar_core.config import TrainConfig

PROGRESS_EVERY_S = 0.5
BEST_WEIGHTS = "best.weights.h5"


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def configure_tensorflow(seed: int):
    """Threads from the cores this process may use; GPU memory growth when a GPU is present; seeds."""
    import keras
    import tensorflow as tf

    cores = available_cores()
    tf.config.threading.set_intra_op_parallelism_threads(cores)
    tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, cores)))
    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)
    keras.utils.set_random_seed(seed)
    return tf


def prepare_data(dataset: data_mod.Dataset, cfg: TrainConfig) -> dict[str, np.ndarray]:
    """Train / validation / test arrays as the config asks: subset, then split or the seed's test protocol."""
    x, y = data_mod.stratified_subset(dataset.x_train, dataset.y_train, cfg.subset or len(dataset.y_train),
                                      cfg.seed)
    x_test, y_test = dataset.x_test, dataset.y_test
    test_index = np.arange(len(y_test))
    if cfg.test_subset and cfg.test_subset < len(y_test):
        keep, _ = data_mod.stratified_indices(y_test, cfg.test_subset, cfg.seed)
        x_test, y_test, test_index = x_test[keep], y_test[keep], keep
    if cfg.validation == "test":
        x_val, y_val = x_test, y_test
    else:
        size = min(cfg.validation_size, len(y) // 10)
        x, y, x_val, y_val = data_mod.split_validation(x, y, size, cfg.seed)
    return {"x_train": x, "y_train": y, "x_val": x_val, "y_val": y_val,
            "x_test": x_test, "y_test": y_test, "test_index": test_index}


def make_dataset(tf, x: np.ndarray, y: np.ndarray, batch_size: int, seed: int | None, augment: bool = False):
    """uint8 images in shuffled batches; the model's Rescaling layer casts and scales them itself."""
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if seed is not None:
        ds = ds.shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if augment:
        def flip_and_shift(images, labels):
            images = tf.image.random_flip_left_right(tf.cast(images, tf.float32))
            padded = tf.pad(images, [[0, 0], [4, 4], [4, 4], [0, 0]], mode="REFLECT")
            return tf.image.random_crop(padded, tf.shape(images)), labels

        ds = ds.map(flip_and_shift, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def library_versions() -> dict[str, str]:
    import keras
    import sklearn
    import tensorflow as tf

    return {"python": sys.version.split()[0], "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "scikit-learn": sklearn.__version__}


def make_callbacks(run_dir: Path, cfg: TrainConfig, n_train: int, history: list[dict]):
    """The callbacks, in the order that keeps a crash from losing or doubling an epoch.
    `history` holds the epochs finished before a resume.

    Metrics and best weights are written before BackupAndRestore records the epoch as done.
    """
    import keras

    class RunDirWriter(keras.callbacks.Callback):
        """Streams one metrics.jsonl line per epoch and progress.json every half second."""

        def on_train_begin(self, logs=None):
            self.last_write = 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch, self.epoch_start = epoch, time.monotonic()
            self.train_end = None

        def on_test_begin(self, logs=None):
            self.train_end = self.train_end or time.monotonic()

        def on_train_batch_end(self, batch, logs=None):
            now = time.monotonic()
            if now - self.last_write >= PROGRESS_EVERY_S:
                self.last_write = now
                self._progress(batch + 1, now)

        def _progress(self, batch: int, now: float):
            steps = self.params.get("steps") or 1
            done = self.epoch + batch / steps
            seconds = now - self.epoch_start
            per_epoch = seconds * steps / max(batch, 1)
            eta = per_epoch * (self.params["epochs"] - done)
            runs.write_json_atomic(run_dir / runs.PROGRESS, {
                "epoch": self.epoch + 1, "epochs": self.params["epochs"], "batch": batch,
                "batches": steps, "images_per_s": batch * cfg.batch_size / max(seconds, 1e-9),
                "eta_s": eta, "updated": time.time(),
            })

        def on_epoch_end(self, epoch, logs=None):
            now = time.monotonic()
            train_s = (self.train_end or now) - self.epoch_start
            logs = logs or {}
            line = {"epoch": epoch + 1, **{k: float(logs[k]) for k in
                                           ("loss", "accuracy", "val_loss", "val_accuracy") if k in logs},
                    "lr": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
                    "seconds": now - self.epoch_start, "images_per_s": n_train / max(train_s, 1e-9)}
            runs.append_metrics_line(run_dir, line)
            self._progress(self.params.get("steps") or 1, now)

    class StopFile(keras.callbacks.Callback):
        """Stops at the next batch once RUN_DIR/STOP exists."""

        def on_train_batch_end(self, batch, logs=None):
            if (run_dir / runs.STOP).exists():
                self.model.stop_training = True

    class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
        """EarlyStopping whose best and wait survive a resume: they are recomputed from earlier epochs."""

        def on_train_begin(self, logs=None):
            super().on_train_begin(logs)
            if self.monitor_op is None:
                self._set_monitor_op()
            for line in history:
                self.wait += 1
                if self._is_improvement(line["val_accuracy"], self.best):
                    self.best, self.best_epoch, self.wait = line["val_accuracy"], line["epoch"] - 1, 0

    best_so_far = max((m["val_accuracy"] for m in history), default=None)
    checkpoint = keras.callbacks.ModelCheckpoint(
        str(run_dir / BEST_WEIGHTS), monitor="val_accuracy", mode="max", save_best_only=True,
        save_weights_only=True, initial_value_threshold=best_so_far)
    callbacks = [RunDirWriter(), checkpoint, StopFile()]
    if cfg.patience > 0:
        callbacks.append(ResumableEarlyStopping(monitor="val_accuracy", mode="max", patience=cfg.patience))
    callbacks.append(keras.callbacks.BackupAndRestore(str(run_dir / "backup"), double_checkpoint=True))
    return callbacks


def resume_epoch(run_dir: Path) -> int:
    """The first epoch (0-based) still to train, from BackupAndRestore's metadata."""
    meta = run_dir / "backup" / "training_metadata.json"
    try:
        return int(runs.read_json(meta)["epoch"])
    except (OSError, ValueError, KeyError):
        return 0


def train_run(run_dir: Path) -> dict:
    """Train the run described by run_dir/run.json to completion (or STOP); return its final run.json."""
    from cifar_core.models import build_model, compile_model

    meta = runs.read_json(run_dir / runs.RUN_JSON)
    cfg = TrainConfig.from_dict(meta["config"])
    spec = specs.check(specs.from_dict(meta["spec"]))
    tf = configure_tensorflow(cfg.seed)
    started = time.monotonic()
    dataset = data_mod.load_dataset(meta["data"]["source"])
    arrays = prepare_data(dataset, cfg)
    n_train = len(arrays["y_train"])
    model = compile_model(build_model(spec, len(dataset.class_names)), cfg.learning_rate, cfg.optimizer)
    runs.update_run(run_dir, params=int(model.count_params()),
                    data={**meta["data"], **dataset.describe()}, libraries=library_versions(),
                    sizes={"train": n_train, "validation": len(arrays["y_val"]),
                           "test": len(arrays["y_test"])},
                    devices=[d.name for d in tf.config.list_logical_devices()])
    if meta.get("training_done"):
        print("[cifar-lab] training had finished; evaluating the best weights again", flush=True)
        earlier_s = sum(m["seconds"] for m in runs.read_metric_lines(run_dir))
    else:
        history = runs.truncate_metrics(run_dir, resume_epoch(run_dir) + 1)
        earlier_s = sum(m["seconds"] for m in history)
        print(f"[cifar-lab] training {spec.name} on {n_train} images "
              f"(from epoch {len(history) + 1}, {cfg.epochs} max)", flush=True)
        train_ds = make_dataset(tf, arrays["x_train"], arrays["y_train"], cfg.batch_size, cfg.seed, cfg.augment)
        val_ds = make_dataset(tf, arrays["x_val"], arrays["y_val"], 256, None)
        model.fit(train_ds, validation_data=val_ds, epochs=cfg.epochs, verbose=2,
                  callbacks=make_callbacks(run_dir, cfg, n_train, history))
        # BackupAndRestore has deleted backup/: from here on a resume only evaluates.
        meta = runs.update_run(run_dir, training_done=True, stop_requested=(run_dir / runs.STOP).exists())
    lines = runs.read_metric_lines(run_dir)
    stopped = meta["stop_requested"]
    if (run_dir / BEST_WEIGHTS).exists():
        model.load_weights(str(run_dir / BEST_WEIGHTS))
    model.save(str(run_dir / "model.keras"))
    best = max(lines, key=lambda m: m["val_accuracy"]) if lines else {}
    results = evaluate_and_save(model, tf, arrays, dataset.class_names, run_dir)
    final = runs.update_run(run_dir, status="stopped" if stopped else "completed",
                            best_epoch=best.get("epoch"), best_val_accuracy=best.get("val_accuracy"),
                            epochs_run=len(lines), wall_time=earlier_s + time.monotonic() - started,
                            finished=time.time(), **results)
    print(f"[cifar-lab] {final['status']}: test accuracy {results['test_accuracy']:.4f}, "
          f"best epoch {best.get('epoch')}", flush=True)
    return final


def evaluate_and_save(model, tf, arrays: dict, class_names, run_dir: Path) -> dict:
    """Test-set loss/accuracy, predictions.npz and report.json for the model as it is now."""
    test_ds = make_dataset(tf, arrays["x_test"], arrays["y_test"], 256, None)
    test_loss, test_acc = model.evaluate(test_ds, verbose=0)
    probs = model.predict(test_ds, verbose=0)
    evaluate.save_predictions(run_dir / "predictions.npz", arrays["y_test"], probs, arrays["test_index"])
    report = evaluate.build_report(arrays["y_test"], probs.argmax(1), class_names)
    runs.write_json_atomic(run_dir / "report.json", report)
    return {"test_loss": float(test_loss), "test_accuracy": float(test_acc)}


def evaluate_run(run_dir: Path) -> dict:
    """Evaluate a run's saved model on its test set again; rewrites predictions.npz and report.json."""
    import keras

    meta = runs.read_json(run_dir / runs.RUN_JSON)
    tf = configure_tensorflow(0)
    dataset = data_mod.load_dataset(meta["data"]["source"])
    arrays = prepare_data(dataset, TrainConfig.from_dict(meta["config"]))
    model = keras.models.load_model(run_dir / "model.keras")
    runs.update_run(run_dir, **evaluate_and_save(model, tf, arrays, dataset.class_names, run_dir))
    return runs.read_json(run_dir / "report.json")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m cifar_core.train RUN_DIR", file=sys.stderr)
        return 2
    run_dir = Path(argv[0])
    runs.update_run(run_dir, status="running", pid=os.getpid(), started=time.time())
    try:
        train_run(run_dir)
    except Exception as exc:
        traceback.print_exc()
        runs.update_run(run_dir, status="failed", error=f"{type(exc).__name__}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
