"""One training run as one process: `python -m cifar_core.train RUN_DIR`.

It reads run.json, trains with Keras callbacks that stream every epoch and batch to the run directory,
honours RUN_DIR/STOP, resumes from backup/ after a crash, restores the best weights, evaluates on the
test set and writes model.keras, predictions.npz and report.json.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import time
import traceback
from dataclasses import replace
from pathlib import Path

import numpy as np

from cifar_core import batchnorm, evaluate, hardware, rundir, runs, runtime, specs
from cifar_core import data as data_mod
from cifar_core.config import TrainConfig

tf = runtime.tensorflow()
import keras  # noqa: E402  (after runtime has imported TensorFlow quietly)

PROGRESS_EVERY_S = 0.5
STEP_EVERY_S = 2.0  # a point of the within-epoch training loss (steps.jsonl)
EVAL_BATCH = 256
RESERVE_BYTES = 1 << 20
STOPPED_BEFORE_AN_EPOCH = ("Stopped before its first epoch ended: no trained weights to keep. Resume the run to "
                           "train it, or delete it.")
VALIDATION_SECONDS = "validation_seconds"  # the log key Validate leaves for RunDirWriter's training speed


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


def make_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int | None = None, augment: bool = False,
                 translate: int = 4, num_classes: int = 10):
    """Batches of uint8 images (the model's Rescaling layer casts them) and one-hot labels, shuffled when a seed
    is given. Augmentation runs on whole batches in the pipeline's one thread, so it never takes the cores
    from the convolutions: it costs a fraction of a millisecond per batch."""
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if seed is not None:
        ds = ds.shuffle(len(y), seed=seed, reshuffle_each_iteration=True)

    def prepare(images, labels):
        if augment:
            images = flip_and_shift(images, translate)
        return images, tf.one_hot(labels, num_classes)

    return ds.batch(batch_size).map(prepare).prefetch(tf.data.AUTOTUNE)


def flip_and_shift(images, pad: int):
    """Each image flipped left-right with probability 1/2 and shifted by up to `pad` pixels each way
    (reflect padding); the crops are exact (crop_and_resize samples whole pixels)."""
    images = tf.image.random_flip_left_right(images)
    if not pad:
        return images
    n, size = tf.shape(images)[0], images.shape[1]
    padded = tf.cast(tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT"), tf.float32)
    corner = tf.cast(tf.random.uniform((n, 2), 0, 2 * pad + 1, dtype=tf.int32), tf.float32)
    boxes = tf.concat([corner, corner + size - 1], axis=1) / (size + 2 * pad - 1)
    return tf.image.crop_and_resize(padded, boxes, tf.range(n), (size, size))


def library_versions() -> dict[str, str]:
    import sklearn

    return {"python": sys.version.split()[0], "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "scikit-learn": sklearn.__version__}


class Plan:
    """How many epochs this run will train: the config's, or as many as fit its time budget (FitToBudget)."""

    def __init__(self, epochs: int, steps_per_epoch: int):
        self.epochs, self.steps_per_epoch = epochs, steps_per_epoch


class Validate(keras.callbacks.Callback):
    """Validates at the end of each epoch with one prediction pass over the validation images: their accuracy
    and loss go into the epoch's logs for the callbacks after this one (as Keras's own validation would put
    them), and the predicted labels into epochs/, so any epoch's confusion matrix can be drawn later."""

    def __init__(self, run_dir: Path, x_val: np.ndarray, y_val: np.ndarray):
        super().__init__()
        self.run_dir, self.y_val = run_dir, y_val
        self.dataset = make_dataset(x_val, y_val, EVAL_BATCH)

    def on_epoch_end(self, epoch, logs=None):
        start = time.monotonic()
        probs = self.model.predict(self.dataset, verbose=0)
        y_pred = probs.argmax(1)
        rundir.write_epoch_predictions(self.run_dir, epoch + 1, y_pred, self.y_val)
        if logs is not None:
            one_hot = keras.ops.one_hot(self.y_val, probs.shape[1])
            logs["val_loss"] = float(keras.ops.convert_to_numpy(self.model.loss(one_hot, probs)))
            logs["val_accuracy"] = float(np.mean(y_pred == self.y_val))
            logs[VALIDATION_SECONDS] = time.monotonic() - start


class RunDirWriter(keras.callbacks.Callback):
    """Streams one metrics.jsonl line per epoch and progress.json every half second. Batch-level work touches
    no tensor, so Keras runs it beside training without waiting for the device (async_safe)."""

    async_safe = True

    def __init__(self, run_dir: Path, batch_size: int, n_train: int, plan: Plan):
        super().__init__()
        self.run_dir, self.batch_size, self.n_train, self.plan = run_dir, batch_size, n_train, plan
        self.last_write = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.epoch_start, self.batches = epoch, time.monotonic(), 0
        self.last_step, self.step_sums = 0.0, (0, 0.0, 0.0)

    def on_train_batch_end(self, batch, logs=None):
        # With steps_per_execution, Keras reports the nominal end of each chunk of batches, which for an epoch's
        # last, shorter chunk lies past the epoch's end (1,600 of 1,563 with chunks of 64).
        self.batches = min(batch + 1, self.params.get("steps") or batch + 1)
        now = time.monotonic()
        if now - self.last_write >= PROGRESS_EVERY_S:
            self.last_write = now
            self._progress(self.batches, now)
        if now - self.last_step >= STEP_EVERY_S and logs and "loss" in logs:
            self.last_step = now
            self._step(logs)

    def _step(self, logs: dict) -> None:
        """One point of the training loss within the epoch: the mean over the batches since the last point, from
        Keras's running means of the epoch so far (n2*m2 - n1*m1) / (n2 - n1)."""
        n, loss, acc = self.batches, float(logs["loss"]), float(logs.get("accuracy", 0.0))
        n0, loss0, acc0 = self.step_sums
        if n <= n0:
            return
        rundir.append_step_line(self.run_dir, {
            "epoch": self.epoch + 1, "batch": n, "batches": self.params.get("steps") or n,
            "loss": (n * loss - n0 * loss0) / (n - n0), "accuracy": (n * acc - n0 * acc0) / (n - n0)})
        self.step_sums = (n, loss, acc)

    def _progress(self, batch: int, now: float) -> None:
        steps = self.params.get("steps") or 1
        seconds = now - self.epoch_start
        per_epoch = seconds * steps / max(batch, 1)
        rundir.write_json_atomic(self.run_dir / rundir.PROGRESS, {
            "epoch": self.epoch + 1, "epochs": self.plan.epochs, "batch": batch, "batches": steps,
            "images_per_s": batch * self.batch_size / max(seconds, 1e-9),
            "eta_s": per_epoch * max(self.plan.epochs - self.epoch - batch / steps, 0), "updated": time.time(),
        }, durable=False)

    def on_epoch_end(self, epoch, logs=None):
        now = time.monotonic()
        logs = logs or {}
        train_s = now - self.epoch_start - logs.get(VALIDATION_SECONDS, 0.0)
        images = min(self.n_train, self.batches * self.batch_size)
        line = {"epoch": epoch + 1, **{k: float(logs[k]) for k in ("loss", "accuracy", "val_loss", "val_accuracy")
                                       if k in logs},
                "lr": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
                "seconds": now - self.epoch_start, "images_per_s": images / max(train_s, 1e-9)}
        if self.batches < (self.params.get("steps") or self.batches):
            line.update({rundir.PARTIAL: True, "images": images})  # stopped (or cut to a budget) within the epoch
        if "loss" in logs:
            self._step(logs)  # the epoch's last point: its running means are the epoch's means
        rundir.append_metrics_line(self.run_dir, line)
        self._progress(self.batches, now)
        print(f"[cifar-lab] epoch {epoch + 1}/{self.plan.epochs}  loss {line.get('loss', 0):.4f}  "
              f"accuracy {line.get('accuracy', 0):.4f}  val_accuracy {line.get('val_accuracy', 0):.4f}  "
              f"{line['seconds']:.1f} s", flush=True)


class BestWeights(keras.callbacks.Callback):
    """Keeps the weights of the best epoch by validation accuracy. They are written to a temp file and
    renamed, so a crash or a full disk mid-write leaves the previous best intact."""

    def __init__(self, path: Path, best: float | None = None):
        super().__init__()
        self.path, self.best = path, best

    def on_epoch_end(self, epoch, logs=None):
        accuracy = (logs or {}).get("val_accuracy")
        if accuracy is None or (self.best is not None and accuracy <= self.best):
            return
        tmp = self.path.with_name(f".{self.path.stem}.tmp.weights.h5")
        try:
            self.model.save_weights(tmp)
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self.best = float(accuracy)


class StopFile(keras.callbacks.Callback):
    """Stops at the next batch once RUN_DIR/STOP exists; `stopped` says whether it did (a STOP written after the
    last batch, during the final evaluation, stops nothing)."""

    async_safe = True

    def __init__(self, run_dir: Path):
        super().__init__()
        self.stop_file = run_dir / rundir.STOP
        self.stopped = False

    def on_train_batch_end(self, batch, logs=None):
        if self.stop_file.exists():
            self.model.stop_training = self.stopped = True


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping whose best and wait survive a resume: they are recomputed from the epochs before it."""

    def __init__(self, history: list[dict], **kwargs):
        super().__init__(**kwargs)
        self.history_before = history

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.monitor_op is None:
            self._set_monitor_op()
        for line in self.history_before:
            self.wait += 1
            if self._is_improvement(line["val_accuracy"], self.best):
                self.best, self.best_epoch, self.wait = line["val_accuracy"], line["epoch"] - 1, 0


class EpochBackup(keras.callbacks.BackupAndRestore):
    """BackupAndRestore saving at epoch ends only (its batch hook then does nothing, so it is async-safe), each
    file written whole or not at all: Keras writes the backup in place, so a trainer killed mid-write (a lost
    node, kill -9) left weights no resume could open."""

    async_safe = True

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        tmp = Path(self.backup_dir) / ".latest.tmp.weights.h5"
        try:
            self.model.save_weights(tmp, overwrite=True)
            os.replace(tmp, self._weights_path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        rundir.write_json_atomic(Path(self._training_metadata_path),
                                 {"epoch": self._current_epoch, "batch": self._last_batch_seen})


class FitToBudget(keras.callbacks.Callback):
    """Fits the number of epochs to the time budget: a first estimate from the speed of the first batches, then
    one from each epoch's measured time. Past the third epoch the plan can only shrink, so the run ends inside
    its budget; the one-cycle schedule is stretched or shrunk with the plan. When not even one epoch fits, the
    run trains the part of an epoch that does (its schedule fitted to those steps) and then validates. An
    inference pass over an image is taken to cost a third of a training step's share, and a few percent of the
    budget is kept for saving and for epochs slower than the last (other programs on the machine)."""

    async_safe = True
    CALIBRATION_CALLS = 3  # batch-end calls (executions) timed before the first estimate

    MARGIN = 0.04  # share of the budget kept in reserve

    def __init__(self, plan: Plan, budget_s: float, launched: float, batch_size: int, images: dict[str, int],
                 test_passes: int = 1, schedule=None, run_dir: Path | None = None):
        super().__init__()
        self.plan, self.batch_size, self.schedule, self.run_dir = plan, batch_size, schedule, run_dir
        self.deadline = launched + budget_s * (1 - self.MARGIN)
        self.epoch_work = images["train"] + images["validation"] / 3  # in training-image equivalents
        self.validation_work = images["validation"] / 3
        self.final_work = images["test"] * test_passes / 3
        self.calls = 0
        self.epoch_times: list[float] = []  # seconds per training-image equivalent, per epoch
        self.max_steps: int | None = None  # steps of a first epoch that is cut short to fit the budget

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.time()

    def on_train_batch_end(self, batch, logs=None):
        self.calls += 1
        if self.calls == 1:
            self.first = (time.time(), batch)
        elif self.calls == self.CALIBRATION_CALLS + 1:
            per_image = (time.time() - self.first[0]) / max((batch - self.first[1]) * self.batch_size, 1)
            self._replan(per_image, epochs_done=0, may_grow=True)
        if self.max_steps is not None and batch + 1 >= self.max_steps:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_times.append((time.time() - self.epoch_start) / self.epoch_work)
        # The slower of the last two epochs: a plan that must shrink late leaves the schedule unfinished.
        per_image = max(self.epoch_times[-2:])
        self._replan(per_image, epochs_done=epoch + 1, may_grow=epoch <= 2)  # the first epochs carry tracing
        if epoch + 1 >= self.plan.epochs:
            self.model.stop_training = True

    def _replan(self, per_image: float, epochs_done: int, may_grow: bool) -> None:
        left = self.deadline - time.time() - per_image * self.final_work - 2.0
        if epochs_done == 0 and left < per_image * self.epoch_work:
            self._cut_first_epoch(per_image, left)
            return
        fits = max(epochs_done + int(left // max(per_image * self.epoch_work, 1e-9)), epochs_done, 1)
        if fits < self.plan.epochs or may_grow:
            self.plan.epochs = fits
            if self.schedule is not None:
                self.schedule.total_steps.assign(float(fits * self.plan.steps_per_epoch))
            if self.run_dir:  # a resumed run keeps to this plan (the budget is not measured again)
                runs.update_run(self.run_dir, planned_epochs=fits)

    def _cut_first_epoch(self, per_image: float, left: float) -> None:
        """Not one epoch fits: train the steps that do, with the schedule fitted to them, then validate."""
        steps = int((left - per_image * self.validation_work) / (per_image * self.batch_size))
        self.max_steps = max(steps, 1)
        self.plan.epochs = 1
        if self.schedule is not None:
            self.schedule.total_steps.assign(float(self.max_steps))
        if self.run_dir:
            runs.update_run(self.run_dir, planned_epochs=1)


def make_callbacks(run_dir: Path, cfg: TrainConfig, arrays: dict, history: list[dict], plan: Plan,
                   budget: FitToBudget | None) -> list:
    """The callbacks, in the order that keeps a crash from losing or doubling an epoch: validation first (the
    others read its results), then metrics and best weights, written before BackupAndRestore records the epoch
    as done. `history` holds the epochs finished before a resume."""
    best_so_far = max((m["val_accuracy"] for m in history), default=None)
    callbacks = [Validate(run_dir, arrays["x_val"], arrays["y_val"]),
                 RunDirWriter(run_dir, cfg.batch_size, len(arrays["y_train"]), plan),
                 BestWeights(run_dir / rundir.BEST_WEIGHTS, best_so_far), StopFile(run_dir)]
    if budget:
        callbacks.append(budget)
    if cfg.patience > 0:
        callbacks.append(ResumableEarlyStopping(history, monitor="val_accuracy", mode="max", patience=cfg.patience))
    callbacks.append(EpochBackup(str(run_dir / rundir.BACKUP)))
    return callbacks


def resume_epoch(run_dir: Path) -> int:
    """The first epoch (0-based) still to train, from BackupAndRestore's metadata."""
    try:
        return int(rundir.read_json(run_dir / rundir.BACKUP / "training_metadata.json")["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def train_run(run_dir: Path) -> dict:
    """Train the run described by run_dir/run.json to completion (or STOP); return its final run.json."""
    from cifar_core.models import build_model, compile_model, learning_rate

    meta = rundir.read_run_json(run_dir)
    cfg = TrainConfig.from_dict(meta["config"])
    spec = specs.check(specs.from_dict(meta["spec"]))
    precision = runtime.configure(cfg.seed, cfg.precision)
    started = time.monotonic()
    dataset = data_mod.load_dataset(meta["data"]["source"])
    arrays = prepare_data(dataset, cfg)
    sizes = {"train": len(arrays["y_train"]), "validation": len(arrays["y_val"]), "test": len(arrays["y_test"])}
    steps_per_epoch = -(-sizes["train"] // cfg.batch_size)
    plan = Plan(meta.get("planned_epochs") or cfg.epochs, steps_per_epoch)
    on_gpu = bool(runtime.gpu_names(tf))
    lr = learning_rate(replace(cfg, epochs=plan.epochs), steps_per_epoch)
    strategy = runtime.distribution(cfg.gpus)
    with strategy.scope():
        model = compile_model(build_model(spec, len(dataset.class_names), cfg.bn_momentum), cfg, steps_per_epoch,
                              lr, on_gpu)
    runs.update_run(run_dir, params=int(model.count_params()), data={**meta["data"], **dataset.describe()},
                    libraries=library_versions(), sizes=sizes,
                    devices=[d.name for d in tf.config.list_logical_devices()],
                    engine={"precision": precision.policy, "precision_reason": precision.reason,
                            "steps_per_execution": model.steps_per_execution, "xla": on_gpu,
                            "replicas": strategy.num_replicas_in_sync, "machine": hardware.describe_machine()})
    if meta.get("training_done"):
        print("[cifar-lab] training had finished; evaluating the best weights again", flush=True)
        earlier_s = sum(m["seconds"] for m in rundir.read_metric_lines(run_dir))
    else:
        history = rundir.truncate_metrics(run_dir, resume_epoch(run_dir) + 1)
        rundir.truncate_epoch_predictions(run_dir, len(history) + 1)
        rundir.truncate_steps(run_dir, len(history) + 1)
        earlier_s = sum(m["seconds"] for m in history)
        print(f"[cifar-lab] training {spec.name} on {sizes['train']} images (from epoch {len(history) + 1}, "
              f"{plan.epochs if not cfg.time_budget else 'as many as fit ' + str(cfg.time_budget) + ' s'}; "
              f"{precision.policy}, {model.steps_per_execution} batches per step)", flush=True)
        budget = None
        if cfg.time_budget and not history:
            budget = FitToBudget(plan, cfg.time_budget, float(meta.get("launched") or time.time()), cfg.batch_size,
                                 sizes, 2 if cfg.tta else 1, lr if cfg.schedule == "onecycle" else None, run_dir)
        train_ds = make_dataset(arrays["x_train"], arrays["y_train"], cfg.batch_size, cfg.seed, cfg.augment,
                                cfg.translate)
        callbacks = make_callbacks(run_dir, cfg, arrays, history, plan, budget)
        model.fit(train_ds, epochs=plan.epochs if not budget else cfg.epochs, verbose=0, shuffle=False,
                  callbacks=callbacks)
        stopped = next(c for c in callbacks if isinstance(c, StopFile)).stopped
        if stopped and not [m for m in rundir.read_metric_lines(run_dir) if not m.get(rundir.PARTIAL)]:
            return _nothing_trained(run_dir)
        # BackupAndRestore has deleted backup/: from here on a resume only evaluates.
        meta = runs.update_run(run_dir, training_done=True, stop_requested=stopped, planned_epochs=plan.epochs)
    lines = rundir.read_metric_lines(run_dir)
    if (run_dir / rundir.BEST_WEIGHTS).exists():
        model.load_weights(str(run_dir / rundir.BEST_WEIGHTS))
    runs.update_run(run_dir, bn_check=batchnorm.check(model, arrays["x_train"], cfg.seed))
    model.save(str(run_dir / rundir.MODEL))
    best = max(lines, key=lambda m: m["val_accuracy"]) if lines else {}
    results = evaluate_and_save(model, arrays, dataset.class_names, run_dir, cfg.tta)
    final = runs.update_run(run_dir, status="stopped" if meta["stop_requested"] else "completed",
                            best_epoch=best.get("epoch"), best_val_accuracy=best.get("val_accuracy"),
                            epochs_run=len(lines), wall_time=earlier_s + time.monotonic() - started,
                            finished=time.time(), **results)
    print(f"[cifar-lab] {final['status']}: test accuracy {results['test_accuracy']:.4f}, "
          f"best epoch {best.get('epoch')}", flush=True)
    return final


def _nothing_trained(run_dir: Path) -> dict:
    """A run stopped before one whole epoch: nothing worth keeping, so it is set back to train from the start on
    resume (status failed, with the reason), not recorded as a result."""
    rundir.truncate_metrics(run_dir, 1)
    rundir.truncate_epoch_predictions(run_dir, 1)
    rundir.truncate_steps(run_dir, 1)
    (run_dir / rundir.BEST_WEIGHTS).unlink(missing_ok=True)
    (run_dir / rundir.PROGRESS).unlink(missing_ok=True)
    print(f"[cifar-lab] {STOPPED_BEFORE_AN_EPOCH}", flush=True)
    return runs.update_run(run_dir, status="failed", error=STOPPED_BEFORE_AN_EPOCH)


def predict(model, x: np.ndarray, tta: bool = False) -> np.ndarray:
    """Class probabilities for uint8 images; with `tta`, averaged with those of the mirrored images."""
    probs = model.predict(make_dataset(x, np.zeros(len(x), np.int64), EVAL_BATCH), verbose=0)
    if tta:
        probs = (probs + model.predict(make_dataset(x[:, :, ::-1], np.zeros(len(x), np.int64), EVAL_BATCH),
                                       verbose=0)) / 2
    return probs.astype(np.float32)


def evaluate_and_save(model, arrays: dict, class_names, run_dir: Path, tta: bool = False) -> dict:
    """Test-set loss/accuracy, predictions.npz and report.json for the model as it is now (loss: mean
    cross-entropy of the true class, the same however the run was trained)."""
    y = arrays["y_test"]
    probs = predict(model, arrays["x_test"], tta)
    evaluate.save_predictions(run_dir / rundir.PREDICTIONS, y, probs, arrays["test_index"])
    report = evaluate.build_report(y, probs.argmax(1), class_names)
    rundir.write_json_atomic(run_dir / rundir.REPORT, report)
    loss = float(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0)).mean())
    return {"test_loss": loss, "test_accuracy": float((probs.argmax(1) == y).mean())}


def load_model(run_dir: Path):
    """The run's model.keras for inference, loaded in Keras safe mode (a Lambda layer's code is refused, never
    run) and without its optimizer (whose learning-rate schedule may be one only the trainer knows)."""
    from cifar_core import modelfiles

    try:
        return modelfiles.load(run_dir / rundir.MODEL)
    except Exception as exc:  # corrupt zip, unknown layer, refused Lambda: all end in the same advice
        reason = " ".join(str(exc).split())[:300]
        raise runs.RunError(f"Cannot load {rundir.MODEL} of run {run_dir.name}: {reason}. "
                            "Delete the run, or retrain it.") from None


def evaluate_run(run_dir: Path) -> dict:
    """Evaluate a run's saved model on its test set again; rewrites predictions.npz and report.json."""
    meta = rundir.read_run_json(run_dir)
    cfg = TrainConfig.from_dict(meta["config"])
    runtime.configure(0)
    model = load_model(run_dir)
    dataset = data_mod.load_dataset(meta["data"]["source"])
    arrays = prepare_data(dataset, cfg)
    runs.update_run(run_dir, **evaluate_and_save(model, arrays, dataset.class_names, run_dir, cfg.tta))
    return rundir.read_report(run_dir)


def failure_reason(exc: BaseException) -> str:
    """The one line run.json keeps about why a run failed; a full disk says so and what to do."""
    if isinstance(exc, OSError) and (exc.errno == errno.ENOSPC or "No space left on device" in str(exc)):
        return (f"No space left on device ({exc.filename or 'while writing'}). Free some space, then resume "
                "the run: it continues from its last finished epoch.")
    return f"{type(exc).__name__}: {exc}"


def reserve_space(run_dir: Path) -> None:
    """Hold a little disk space back, so that a run that fills the disk can still record why it failed."""
    with open(run_dir / rundir.RESERVE, "wb") as fh:
        fh.write(b"\0" * RESERVE_BYTES)
        fh.flush()
        os.fsync(fh.fileno())


def clean_temp_files(run_dir: Path) -> None:
    for tmp in run_dir.glob(".*.tmp*"):
        tmp.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m cifar_core.train RUN_DIR", file=sys.stderr)
        return 2
    run_dir = Path(argv[0])
    try:
        reserve_space(run_dir)
        runs.update_run(run_dir, status="running", **runs.process_record(os.getpid()), host=runs.HOST,
                        started=time.time())
        train_run(run_dir)
    except Exception as exc:
        record_failure(run_dir, exc)
        return 1
    finally:
        (run_dir / rundir.RESERVE).unlink(missing_ok=True)
    return 0


def record_failure(run_dir: Path, exc: Exception) -> None:
    """Mark the run failed with its reason, using the reserved space if the disk is full; the traceback
    goes to log.txt where that is still possible."""
    (run_dir / rundir.RESERVE).unlink(missing_ok=True)
    clean_temp_files(run_dir)
    try:
        runs.update_run(run_dir, status="failed", error=failure_reason(exc))
    finally:
        with contextlib.suppress(OSError):
            traceback.print_exc()


if __name__ == "__main__":
    sys.exit(main())
