"""The trainer's Keras callbacks: validation, the run directory's metrics and progress, best weights, STOP,
early stopping and backups that survive a resume, and fitting the epochs to a time budget."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from cifar_core import hardware
from cifar_core.engine import layerrecords, runtime
from cifar_core.engine.pipeline import EVAL_BATCH, make_dataset
from cifar_core.model import budgetplan
from cifar_core.model.config import TrainConfig
from cifar_core.store import rundir, runs

runtime.keras()
import keras  # noqa: E402  (after runtime has imported it quietly, on this process's backend)

PROGRESS_EVERY_S = 0.5


STEP_EVERY_S = 2.0  # a point of the within-epoch training loss (steps.jsonl)


VALIDATION_SECONDS = "validation_seconds"  # the log key Validate leaves for RunDirWriter's training speed


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


def save_weights(model, path: Path) -> None:
    """The model's weights to `path` through a temp file and a rename, so a crash or a full disk mid-write leaves
    the previous file intact."""
    tmp = path.with_name(f".{path.stem}.tmp.weights.h5")
    try:
        model.save_weights(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class BestWeights(keras.callbacks.Callback):
    """Keeps the weights of the best epoch by validation accuracy (save_weights: never half written)."""

    def __init__(self, path: Path, best: float | None = None):
        super().__init__()
        self.path, self.best = path, best

    def on_epoch_end(self, epoch, logs=None):
        accuracy = (logs or {}).get("val_accuracy")
        if accuracy is None or (self.best is not None and accuracy <= self.best):
            return
        save_weights(self.model, self.path)
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
    node, kill -9) left weights no resume could open. The backup outlives `fit`: the trainer removes it once
    run.json records training as done (trainer.finish_training), so a crash in between resumes, not retrains."""

    async_safe = True

    def __init__(self, run_dir: Path):
        super().__init__(str(run_dir / rundir.BACKUP), delete_checkpoint=False)

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        save_weights(self.model, Path(self._weights_path))
        rundir.write_json_atomic(Path(self._training_metadata_path),
                                 {"epoch": self._current_epoch, "batch": self._last_batch_seen})


class FitToBudget(keras.callbacks.Callback):
    """Fits the run's length to its time budget (model/budgetplan.py does the arithmetic): a first plan from the
    speed of the first batches, then one after each epoch from a robust speed (the median of the recent epochs),
    in steps, so the last epoch is cut where the time runs out; the one-cycle schedule is stretched or shrunk with
    the plan. An epoch's speed is timed from the end of its first call into the backend (the first epoch's traces the
    graph) to its last; what lies between one epoch's last batch and the next one's start (validation, layer
    records, backups) is timed as a cost per epoch. Near the end, the plan shrinks within an epoch that runs
    so much slower than planned that the plan would overrun, and grows within one that runs so much faster that
    the run would end early. `clock` is the wall clock and `load` the machine's load per core (a test passes its
    own of each: a simulated run must not read the real machine's load)."""

    async_safe = True
    CALIBRATION_CALLS = 3  # batch-end calls (executions) timed before the first estimate

    def __init__(self, plan: Plan, budget_s: float, launched: float, batch_size: int, images: dict[str, int],
                 test_passes: int = 1, schedule=None, run_dir: Path | None = None, clock=time.time,
                 load=hardware.load_per_core):
        super().__init__()
        self.plan, self.schedule, self.run_dir, self.clock, self.load = plan, schedule, run_dir, clock, load
        self.planner = budgetplan.BudgetPlanner(launched, budget_s, plan.steps_per_epoch, batch_size,
                                                images["validation"], images["test"], test_passes)
        self.calls = 0
        self.epoch = 0
        self.planned_steps: int | None = None
        self.last_batch: float | None = None  # when the latest epoch's last batch ended

    def on_train_begin(self, logs=None):
        self.planner.chunk = int(getattr(self.model, "steps_per_execution", 1) or 1)

    def on_epoch_begin(self, epoch, logs=None):
        now = self.clock()
        if self.last_batch is not None:
            self.planner.between_epochs(now - self.last_batch)
        self.epoch, self.epoch_start, self.epoch_steps, self.first_call = epoch, now, 0, None

    def on_train_batch_end(self, batch, logs=None):
        self.calls += 1
        self.epoch_steps = min(batch + 1, self.plan.steps_per_epoch)
        steps_done = self.epoch * self.plan.steps_per_epoch + self.epoch_steps
        now = self.last_batch = self.clock()
        if self.first_call is None:
            self.first_call = (now, self.epoch_steps)
        if self.calls == self.CALIBRATION_CALLS + 1 and not self.planner.step_seconds:
            step_s = (now - self.first_call[0]) / max(self.epoch_steps - self.first_call[1], 1)
            trace_s = self.first_call[0] - self.epoch_start - self.first_call[1] * step_s
            self.planner.calibrate(step_s, trace_s)
            self._apply(self.planner.total_steps(now, steps_done))
        if self.planned_steps is None:
            return
        # This epoch's pace from the end of its first call, which traced the graph in the first epoch and starts a new
        # pass over the data in every epoch (0.02-0.05 s more than a later call on the AMX Xeon, 2026-12-02; counted
        # from the epoch's start, a 600 s run on the AVX2 EPYC shrank to 85%), the first epoch's too: a 60 s run has
        # only one, and its first batches' pace is otherwise never corrected.
        first_t, first_steps = self.first_call
        if steps_done < self.planned_steps and self.epoch_steps > first_steps:
            pace = (now - first_t) / (self.epoch_steps - first_steps)
            adjusted = self.planner.adjust(now, steps_done, self.planned_steps, pace)
            if adjusted != self.planned_steps:
                self._apply(adjusted)
        if steps_done >= self.planned_steps:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        now = self.clock()
        first_t, first_steps = self.first_call or (self.epoch_start, 0)
        if self.epoch_steps > first_steps:
            self.planner.epoch_done(self.last_batch - first_t, self.epoch_steps - first_steps,
                                    logs.get(VALIDATION_SECONDS))
        steps_done = epoch * self.plan.steps_per_epoch + self.epoch_steps
        self.planner.busy = max(1.0, self.load()) ** 0.5  # see budgetplan.FINISH_S
        if self.model.stop_training or (self.planned_steps is not None and steps_done >= self.planned_steps):
            self.model.stop_training = True  # the plan's last step, a cut epoch, or STOP
            return
        self._apply(self.planner.total_steps(now, steps_done))
        self.model.stop_training = self.planned_steps <= steps_done

    def _apply(self, steps: int) -> None:
        """The plan becomes `steps` steps: the epochs, the schedule's length and run.json's planned epochs."""
        self.planned_steps = steps
        epochs = -(-steps // self.plan.steps_per_epoch)
        if self.schedule is not None:
            self.schedule.total_steps.assign(float(steps))
        if epochs != self.plan.epochs and self.run_dir:  # a resumed run keeps to this plan
            runs.update_run(self.run_dir, planned_epochs=epochs)
        self.plan.epochs = epochs


def make_callbacks(run_dir: Path, cfg: TrainConfig, arrays: dict, history: list[dict], plan: Plan,
                   budget: FitToBudget | None) -> list:
    """The callbacks, in the order that keeps a crash from losing or doubling an epoch: validation first (the
    others read its results), then metrics and best weights, written before BackupAndRestore records the epoch
    as done (the layer records too). `history` holds the epochs finished before a resume."""
    best_so_far = max((m["val_accuracy"] for m in history), default=None)
    callbacks = [Validate(run_dir, arrays["x_val"], arrays["y_val"]),
                 RunDirWriter(run_dir, cfg.batch_size, len(arrays["y_train"]), plan),
                 BestWeights(run_dir / rundir.BEST_WEIGHTS, best_so_far), StopFile(run_dir)]
    if budget:
        callbacks.append(budget)
    if cfg.patience > 0:
        callbacks.append(ResumableEarlyStopping(history, monitor="val_accuracy", mode="max", patience=cfg.patience))
    if cfg.layer_records and cfg.gpus < 2:  # one model on one device: a mirrored model's pass is not this one
        keep = layerrecords.probe_indices(arrays["y_val"], cfg.seed)
        callbacks.append(layerrecords.LayerRecorder(run_dir, arrays["x_val"][keep], arrays["y_val"][keep],
                                                    len(history), plan.steps_per_epoch))
    callbacks.append(EpochBackup(run_dir))
    return callbacks
