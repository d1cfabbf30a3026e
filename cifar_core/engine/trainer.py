"""One training run as one process: `python -m cifar_core.engine.trainer RUN_DIR`.

It reads run.json, trains with the callbacks that stream every epoch and batch to the run directory, honours
RUN_DIR/STOP, resumes from backup/ after a crash, restores the best weights, evaluates on the test set and writes
model.keras, predictions.npz and report.json."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sys
import time
import traceback
from dataclasses import replace
from pathlib import Path

import numpy as np

from cifar_core import data as data_mod
from cifar_core import hardware
from cifar_core.analysis import figures, scores
from cifar_core.engine import bncheck, embeddings, runtime, sizer, whitening
from cifar_core.engine.callbacks import FitToBudget, Plan, StopFile, make_callbacks
from cifar_core.engine.pipeline import make_dataset, prepare_data
from cifar_core.model import sizing, specs
from cifar_core.model.config import TrainConfig
from cifar_core.store import rundir, runs

runtime.keras()

RESERVE_BYTES = 1 << 20


STOPPED_BEFORE_AN_EPOCH = ("Stopped before its first epoch ended: no trained weights to keep. Resume the run to "
                           "train it, or delete it.")


def library_versions() -> dict[str, str]:
    import sklearn

    return {"python": sys.version.split()[0], **runtime.versions(), "numpy": np.__version__,
            "scikit-learn": sklearn.__version__}


def resume_epoch(run_dir: Path) -> int:
    """The first epoch (0-based) still to train, from BackupAndRestore's metadata."""
    try:
        return int(rundir.read_json(run_dir / rundir.BACKUP / rundir.BACKUP_STATE)["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def train_run(run_dir: Path) -> dict:
    """Train the run described by run_dir/run.json to completion (or STOP); return its final run.json."""
    from cifar_core.engine.models import build_model, compile_model, learning_rate

    meta = rundir.read_run_json(run_dir)
    cfg = TrainConfig.from_dict(meta["config"])
    spec = specs.check(specs.from_dict(meta["spec"]))
    precision = runtime.configure(cfg.seed, cfg.precision)
    started = time.monotonic()
    dataset = data_mod.load_dataset(meta["data"]["source"])
    arrays = prepare_data(dataset, cfg)
    sizes = {"train": len(arrays["y_train"]), "validation": len(arrays["y_val"]), "test": len(arrays["y_test"])}
    if cfg.size_network and not meta.get("budget_choice"):  # chosen once: a resume keeps the network
        spec = sizer.size_run(run_dir, cfg, arrays, sizes, float(meta.get("launched") or time.time()))
    steps_per_epoch = -(-sizes["train"] // cfg.batch_size)
    plan = Plan(meta.get("planned_epochs") or cfg.epochs, steps_per_epoch)
    on_gpu = bool(runtime.gpu_names())
    lr = learning_rate(replace(cfg, epochs=plan.epochs), steps_per_epoch)
    strategy = runtime.distribution(cfg.gpus)
    with strategy.scope():
        model = compile_model(build_model(spec, len(dataset.class_names), cfg.bn_momentum), cfg, steps_per_epoch,
                              lr, on_gpu)
        whitening.fit_to_data(model, arrays["x_train"], cfg.seed)  # a whitening stem, from these images
    runs.update_run(run_dir, params=int(model.count_params()), data={**meta["data"], **dataset.describe()},
                    libraries=library_versions(), sizes=sizes,
                    devices=runtime.devices(),
                    engine={"backend": runtime.backend(), "backend_reason": runtime.backend_reason(),
                            "precision": model.dtype_policy.name, "precision_reason": precision.reason,
                            "steps_per_execution": model.steps_per_execution, "xla": bool(model.jit_compile),
                            "replicas": strategy.num_replicas_in_sync, "machine": hardware.describe_machine()})
    if meta.get("training_done"):
        print("[cifar-lab] training had finished; evaluating the best weights again", flush=True)
        earlier_s = sum(m["seconds"] for m in rundir.read_metric_lines(run_dir))
    else:
        history = rundir.truncate_metrics(run_dir, resume_epoch(run_dir) + 1)
        rundir.truncate_epoch_predictions(run_dir, len(history) + 1)
        rundir.truncate_steps(run_dir, len(history) + 1)
        rundir.truncate_layer_records(run_dir, len(history))
        earlier_s = sum(m["seconds"] for m in history)
        print(f"[cifar-lab] training {spec.name} on {sizes['train']} images (from epoch {len(history) + 1}, "
              f"{plan.epochs if not cfg.time_budget else 'as many as fit ' + str(cfg.time_budget) + ' s'}; "
              f"{runtime.backend()}, {model.dtype_policy.name}, {model.steps_per_execution} batches per step)",
              flush=True)
        budget = None
        if cfg.time_budget and not history:
            budget = FitToBudget(plan, cfg.time_budget, float(meta.get("launched") or time.time()), cfg.batch_size,
                                 sizes, 2 if cfg.tta else 1, lr if cfg.schedule == "onecycle" else None, run_dir)
        elif cfg.time_budget and len(history) < plan.epochs:  # the plan's clock died with the earlier process
            runs.update_run(run_dir, **{rundir.UNCLOCKED_FROM: len(history) + 1})
        train_ds = make_dataset(arrays["x_train"], arrays["y_train"], cfg.batch_size, cfg.seed, cfg.augment,
                                cfg.translate)
        callbacks = make_callbacks(run_dir, cfg, arrays, history, plan, budget)
        model.fit(train_ds, epochs=plan.epochs if not budget else cfg.epochs, verbose=0, shuffle=False,
                  callbacks=callbacks)
        stopped = next(c for c in callbacks if isinstance(c, StopFile)).stopped
        if stopped and not [m for m in rundir.read_metric_lines(run_dir) if not m.get(rundir.PARTIAL)]:
            return _nothing_trained(run_dir)
        meta = runs.update_run(run_dir, training_done=True, stop_requested=stopped, planned_epochs=plan.epochs)
    lines = rundir.read_metric_lines(run_dir)
    keep_last = keeps_last_epoch(cfg, meta["stop_requested"], len(lines), meta.get("planned_epochs", cfg.epochs))
    finish_training(run_dir, keep_last)
    if (run_dir / rundir.BEST_WEIGHTS).exists():
        model.load_weights(str(run_dir / rundir.BEST_WEIGHTS))
    runs.update_run(run_dir, bn_check=bncheck.check(model, arrays["x_train"], cfg.seed))
    model.save(str(run_dir / rundir.MODEL))
    best = kept_epoch(lines, keep_last)
    results = evaluate_and_save(model, arrays, dataset.class_names, run_dir, cfg.tta)
    share = sizing.sustained_share(meta.get("budget_choice"), lines)
    final = runs.update_run(run_dir, status="stopped" if meta["stop_requested"] else "completed",
                            best_epoch=best.get("epoch"), best_val_accuracy=best.get("val_accuracy"),
                            epochs_run=len(lines), wall_time=earlier_s + time.monotonic() - started,
                            epochs_of_images=round(figures.epochs_of_images(lines, sizes["train"]), 3),
                            finished=time.time(), **results, **({"sustained_share": share} if share else {}))
    print(f"[cifar-lab] {final['status']}: test accuracy {results['test_accuracy']:.4f}, "
          f"best epoch {best.get('epoch')}", flush=True)
    return final


def keeps_last_epoch(cfg: TrainConfig, stopped: bool, epochs_run: int, planned_epochs: int) -> bool:
    """Whether a run keeps its last epoch's weights rather than its best by validation accuracy: one whose one-cycle
    schedule ran to its end (not cut short by STOP or early stopping). That schedule anneals to zero, so its last
    epoch is the one it was planned for; its last epochs differ by a few validation images (0.8918 against 0.8914
    on 5,000 in a 1,800 s run, whose epoch 14 was kept over its 15th), and picking among them picks by noise."""
    return cfg.schedule == "onecycle" and not stopped and epochs_run >= planned_epochs


def finish_training(run_dir: Path, keep_last: bool) -> None:
    """After run.json records training as done: the backup's weights (the last epoch's) become the kept ones where
    the run keeps its last epoch, and the backup goes. A crash in either step leaves a run whose resume redoes it."""
    backup = run_dir / rundir.BACKUP
    if keep_last and (backup / rundir.BACKUP_WEIGHTS).exists():
        os.replace(backup / rundir.BACKUP_WEIGHTS, run_dir / rundir.BEST_WEIGHTS)
    shutil.rmtree(backup, ignore_errors=True)


def kept_epoch(lines: list[dict], keep_last: bool) -> dict:
    """The metric line of the epoch whose weights the run keeps (empty when no epoch ended)."""
    if not lines:
        return {}
    return lines[-1] if keep_last else max(lines, key=lambda m: m["val_accuracy"])


def _nothing_trained(run_dir: Path) -> dict:
    """A run stopped before one whole epoch: nothing worth keeping, so it is set back to train from the start on
    resume (status failed, with the reason), not recorded as a result. The backup goes first: a crash among the
    other steps then still resumes from the start."""
    shutil.rmtree(run_dir / rundir.BACKUP, ignore_errors=True)
    rundir.truncate_metrics(run_dir, 1)
    rundir.truncate_epoch_predictions(run_dir, 1)
    rundir.truncate_steps(run_dir, 1)
    rundir.truncate_layer_records(run_dir, 0)
    (run_dir / rundir.BEST_WEIGHTS).unlink(missing_ok=True)
    (run_dir / rundir.PROGRESS).unlink(missing_ok=True)
    print(f"[cifar-lab] {STOPPED_BEFORE_AN_EPOCH}", flush=True)
    return runs.update_run(run_dir, status="failed", error=STOPPED_BEFORE_AN_EPOCH)


def evaluate_and_save(model, arrays: dict, class_names, run_dir: Path, tta: bool = False) -> dict:
    """Test-set loss/accuracy, predictions.npz, embeddings.npz and report.json for the model as it is now (loss:
    mean cross-entropy of the true class, the same however the run was trained)."""
    y = arrays["y_test"]
    probs = embeddings.record(run_dir, model, arrays, tta)
    scores.save_predictions(run_dir / rundir.PREDICTIONS, y, probs, arrays["test_index"])
    report = scores.build_report(y, probs.argmax(1), class_names)
    rundir.write_json_atomic(run_dir / rundir.REPORT, report)
    loss = float(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0)).mean())
    return {"test_loss": loss, "test_accuracy": float((probs.argmax(1) == y).mean())}


def load_model(run_dir: Path):
    """The run's model.keras for inference, loaded in Keras safe mode (a Lambda layer's code is refused, never
    run) and without its optimizer (whose learning-rate schedule may be one only the trainer knows)."""
    from cifar_core.engine import modelfiles

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
        print("usage: python -m cifar_core.engine.trainer RUN_DIR", file=sys.stderr)
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
