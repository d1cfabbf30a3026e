"""The run directory: the names of its files, its status groups, and one schema per file.

This is the contract between the trainer, which writes a run directory, and everything that reads one
(CLI, dashboard, studies). Readers here validate what they read: a file that does not fit its schema
raises `DamagedRun` naming the file and what is wrong, so a caller can list the run as damaged and go on.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from cifar_core.errors import LabError

RUN_JSON = "run.json"
METRICS = "metrics.jsonl"
PROGRESS = "progress.json"
LAYERS = "layers.jsonl"  # what each layer does while it learns: one record per epoch (and a few in the first)
STEPS = "steps.jsonl"  # the training loss within epochs: one line every few seconds, a hint for the live curves
STOP = "STOP"
REPORT = "report.json"
PREDICTIONS = "predictions.npz"
EMBEDDINGS = "embeddings.npz"  # the final layer's input for the test (and validation) images, float16
TRAIN_EMBEDDINGS = "embeddings-train.npz"  # the same for the training images, made on demand (neighbours)
MAP = "map.npz"  # the 2-D projection of the test embeddings, made on demand
EMBEDDING_JOB = "embeddings-job.json"  # the job making the above for an older run: its process, and its log
EMBEDDING_LOG = "embeddings-log.txt"
MODEL = "model.keras"
BEST_WEIGHTS = "best.weights.h5"
BACKUP = "backup"  # folder: the training state after the last finished epoch (Keras's BackupAndRestore), until
# run.json records training as done
BACKUP_WEIGHTS = "latest.weights.h5"  # in BACKUP: that epoch's weights (Keras's names, both)
BACKUP_STATE = "training_metadata.json"  # in BACKUP: {"epoch": epochs finished, ...}
UNCLOCKED_FROM = "budget_unclocked_from"  # run.json: the epoch from which a resumed budgeted run trained to its plan
# without the budget's clock
LOG = "log.txt"
EPOCHS = "epochs"  # folder: the validation labels once, then each epoch's predicted validation labels
VAL_LABELS = "val-labels.npy"
EPOCH_PREDICTIONS = "val-pred-{epoch:04d}.npy"
PARTIAL = "partial"  # a metrics line of an epoch stopped before its last batch (with the "images" it saw)
IMPORTED_ORIGINAL = "original"  # + the imported file's suffix: the model file as it was given, kept unchanged
LOCK = ".lock"
RESERVE = ".reserve"

STATUSES = ("queued", "running", "completed", "stopped", "pruned", "failed", "interrupted", "imported")
ACTIVE = ("queued", "running")
HAS_RESULTS = ("completed", "stopped", "pruned", "imported")
RESUMABLE = ("interrupted", "failed")
FINISHED = ("completed", "stopped", "pruned", "failed", "imported")
CUT_SHORT = ("stopped", "pruned")  # ended before their plan: stopped by a user, or pruned by a search (weak trial)
PRUNED = "pruned"
PRUNED_AT = "pruned_after_epoch"  # run.json of a pruned run: the epoch after which its search asked it to stop
IMPORTED = "imported"
EXTERNAL_SPEC = {"name": "external"}  # the spec of an imported model whose layers no lab spec can describe
DAMAGED = "damaged"
RUN_ID_PATTERN = r"[a-z0-9][a-z0-9._-]{0,79}"
TAG_PATTERN = r"[a-z0-9][a-z0-9._-]{0,31}"


class DamagedRun(LabError):
    """A run file that is missing, unreadable or does not fit its schema; the message says which and why."""


# --- writing ---------------------------------------------------------------------------------------

def temp_path(path: Path, suffix: str = "") -> Path:
    """A hidden temp name beside `path`, unique to this writer: two processes (or threads) writing the same file
    at once never share one. It matches the trainer's clean-up pattern `.*.tmp*`."""
    import uuid

    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{suffix}")


def write_json_atomic(path: Path, data: dict, durable: bool = True) -> None:
    """Write temp file, fsync, rename: readers see the old file or the new one, never half of one.
    On any failure (a full disk, say) the temp file is removed and the old file stays as it was.
    `durable=False` skips the fsync, for files rewritten every second that a crash may lose (progress.json)."""
    tmp = temp_path(path)
    try:
        with open(tmp, "w") as fh:
            json.dump(data, fh, indent=2, default=str)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def locked(folder: Path):
    """An exclusive lock on `folder` (its .lock file), held by one process at a time."""
    with open(folder / LOCK, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def update_json(folder: Path, file_name: str, /, **changes) -> dict:
    """Read-modify-write a JSON file under the folder's lock, so two writers never lose each other's fields."""
    with locked(folder):
        meta = read_json(folder / file_name)
        meta.update(changes)
        write_json_atomic(folder / file_name, meta)
    return meta


def _append_line(path: Path, value: dict, durable: bool = True) -> None:
    """Append one JSON line; `durable` fsyncs it, so a kill right after loses nothing."""
    with open(path, "a") as fh:
        fh.write(json.dumps(value) + "\n")
        if durable:
            fh.flush()
            os.fsync(fh.fileno())


def _rewrite_lines(path: Path, values: list[dict]) -> None:
    """Replace a JSON-lines file with `values`, whole or not at all (temp file, then rename)."""
    tmp = temp_path(path)
    try:
        tmp.write_text("".join(json.dumps(v) + "\n" for v in values))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def append_metrics_line(run_dir: Path, line: dict) -> None:
    """Append one epoch's line and fsync it, so a kill right after loses nothing."""
    _append_line(run_dir / METRICS, line)


def truncate_metrics(run_dir: Path, before_epoch: int) -> list[dict]:
    """Rewrite metrics.jsonl with only the epochs before `before_epoch` (the rest will be trained again).

    Rewriting always also drops a half-written last line, which the next append would otherwise extend.
    """
    kept = [m for m in read_metric_lines(run_dir) if m["epoch"] < before_epoch]
    _rewrite_lines(run_dir / METRICS, kept)
    return kept


def append_step_line(run_dir: Path, line: dict) -> None:
    """Append one within-epoch point of the training loss (no fsync: a crash may lose a hint, nothing more)."""
    _append_line(run_dir / STEPS, line, durable=False)


def read_step_lines(run_dir: Path) -> list[dict]:
    """steps.jsonl's points, skipping any line that is not one (it is only ever a hint for a chart)."""
    try:
        raw = (run_dir / STEPS).read_text(errors="replace").split("\n")[:-1]
    except OSError:
        return []
    lines = []
    for text in raw:
        with contextlib.suppress(ValueError):
            line = json.loads(text)
            if isinstance(line, dict) and all(isinstance(line.get(k), int | float) for k in STEP_KEYS):
                lines.append(line)
    return lines


STEP_KEYS = ("epoch", "batch", "batches", "loss")


def truncate_steps(run_dir: Path, before_epoch: int) -> None:
    """Keep the within-epoch points of the epochs before `before_epoch` (a resume trains the rest again)."""
    if not (run_dir / STEPS).exists():
        return
    _rewrite_lines(run_dir / STEPS, [m for m in read_step_lines(run_dir) if m["epoch"] < before_epoch])


def append_layer_record(run_dir: Path, record: dict) -> None:
    """Append one layer record (LAYER_RECORD_SCHEMA), fsynced like an epoch's metrics line."""
    _append_line(run_dir / LAYERS, record)


def truncate_layer_records(run_dir: Path, epochs_done: int) -> None:
    """Keep the records taken up to `epochs_done` epochs of training (a resume trains the rest again; with none
    done, it starts over and records the start again); a last line cut by a kill goes too."""
    if not (run_dir / LAYERS).exists():
        return
    kept = [r for r in read_layer_records(run_dir) if r["epoch"] <= epochs_done] if epochs_done else []
    _rewrite_lines(run_dir / LAYERS, kept)


def _save_npy_atomic(path: Path, array: np.ndarray) -> None:
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_epoch_predictions(run_dir: Path, epoch: int, y_pred: np.ndarray, y_val: np.ndarray) -> None:
    """Keep one epoch's predicted validation labels (uint8, a few KB); an epoch trained again after a resume
    replaces its file, so each epoch is there once."""
    folder = run_dir / EPOCHS
    folder.mkdir(exist_ok=True)
    if not (folder / VAL_LABELS).exists():
        _save_npy_atomic(folder / VAL_LABELS, y_val.astype(np.uint8))
    _save_npy_atomic(folder / EPOCH_PREDICTIONS.format(epoch=epoch), y_pred.astype(np.uint8))


def truncate_epoch_predictions(run_dir: Path, before_epoch: int) -> None:
    """Drop the predictions of epochs from `before_epoch` on (a resume trains them again)."""
    for epoch in epoch_prediction_epochs(run_dir):
        if epoch >= before_epoch:
            (run_dir / EPOCHS / EPOCH_PREDICTIONS.format(epoch=epoch)).unlink(missing_ok=True)


def epoch_prediction_epochs(run_dir: Path) -> list[int]:
    """The epochs whose validation predictions the run kept, in order."""
    prefix, suffix = EPOCH_PREDICTIONS.split("{")[0], ".npy"
    found = []
    for path in (run_dir / EPOCHS).glob(prefix + "*" + suffix):
        number = path.name[len(prefix):-len(suffix)]
        if number.isdigit():
            found.append(int(number))
    return sorted(found)


# --- reading and validating ------------------------------------------------------------------------

def read_json(path: Path) -> dict:
    with open(path) as fh:
        return json.load(fh)


def _number(low=None, high=None, integer=False, null=True) -> dict:
    schema = {"type": ["integer" if integer else "number", *(["null"] if null else [])]}
    if low is not None:
        schema["minimum"] = low
    if high is not None:
        schema["maximum"] = high
    return schema


RUN_SCHEMA = {
    "type": "object",
    "required": ["id", "status", "spec", "config", "created"],
    "properties": {
        "id": {"type": "string", "pattern": f"^{RUN_ID_PATTERN}$"},
        "name": {"type": "string", "pattern": f"^{RUN_ID_PATTERN}$"},
        "created": {"type": "string"},
        "status": {"enum": list(STATUSES)},
        "spec": {"type": "object"},
        "config": {"type": "object"},
        "data": {"type": "object", "properties": {"source": {"type": "string"}, "kind": {"type": "string"},
                                                  "fingerprint": {"type": "string"}}},
        "pid": _number(1, integer=True),
        "host": {"type": ["string", "null"]},
        "node": {"type": ["string", "null"]},
        "params": _number(0, integer=True),
        "best_epoch": _number(1, integer=True),
        "epochs_run": _number(0, integer=True),
        "test_accuracy": _number(0, 1),
        "best_val_accuracy": _number(0, 1),
        "test_loss": _number(),
        "wall_time": _number(0),
        "sustained_share": _number(0),  # a sized run's median epoch images/s over its launch probe's (model/sizing.py)
        "sizes": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
        "study": {"type": ["string", "null"]},
        "labels": {"type": "object"},
        "error": {"type": ["string", "null"]},
        "tags": {"type": "array", "items": {"type": "string", "pattern": f"^{TAG_PATTERN}$"}},
        "note": {"type": "string"},
        "pinned": {"type": "boolean"},
    },
}
_SCORES = {"type": "object", "required": ["precision", "recall", "f1-score", "support"],
           "properties": {k: _number(0, null=False) for k in ("precision", "recall", "f1-score", "support")}}
REPORT_SCHEMA = {
    "type": "object",
    "required": ["class_names", "accuracy", "confusion_matrix", "per_class", "macro avg", "weighted avg"],
    "properties": {
        "class_names": {"type": "array", "minItems": 2, "items": {"type": "string"}},
        "accuracy": _number(0, 1, null=False),
        "confusion_matrix": {"type": "array", "items": {"type": "array",
                                                        "items": {"type": "integer", "minimum": 0}}},
        "per_class": {"type": "array", "items": {**_SCORES, "required": ["class", *_SCORES["required"]]}},
        "macro avg": _SCORES,
        "weighted avg": _SCORES,
    },
}
METRICS_LINE_SCHEMA = {
    "type": "object",
    "required": ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"],
    "properties": {"epoch": {"type": "integer", "minimum": 1}, "seconds": _number(0, null=False),
                   PARTIAL: {"type": "boolean"}, "images": {"type": "integer", "minimum": 0},
                   **{k: _number(null=False) for k in ("loss", "accuracy", "val_loss", "val_accuracy", "lr",
                                                        "images_per_s")}},
}


_ACTIVATIONS = {"type": ["object", "null"], "required": ["mean", "std", "quantiles", "dead"],
                "properties": {"mean": _number(null=False), "std": _number(0, null=False),
                               "quantiles": {"type": "array", "items": {"type": "number"}},
                               "dead": _number(0, 1, null=False)}}
LAYER_RECORD_SCHEMA = {
    "type": "object",
    "required": ["epoch", "step", "layers"],
    "properties": {
        "epoch": _number(0, null=False),  # epochs of training done: 0 before training, 0.25 a quarter into it
        "step": _number(0, integer=True, null=False),
        "probe_loss": _number(), "probe_accuracy": _number(0, 1),
        "layers": {"type": "array", "items": {
            "type": "object", "required": ["name", "kind", "order"],
            "properties": {"name": {"type": "string"}, "kind": {"type": "string"}, "order": {"type": "integer"},
                           "act": _ACTIVATIONS, "grad_norm": _number(0), "weight_norm": _number(0),
                           "update": _number(0), "bn": {"type": ["object", "null"]}}}},
        "filters": {"type": ["object", "null"], "required": ["shape", "values"],
                    "properties": {"shape": {"type": "array", "items": {"type": "integer"}},
                                   "values": {"type": "array", "items": {"type": "number"}}}},
    },
}


_COMPILED: dict[int, object] = {}


def _validator(schema: dict):
    """The schema compiled to a Python function, once per schema object."""
    if id(schema) not in _COMPILED:
        import fastjsonschema

        _COMPILED[id(schema)] = fastjsonschema.compile(schema)
    return _COMPILED[id(schema)]


def check_schema(value, schema: dict, where: str) -> None:
    """Raise DamagedRun naming the first place where `value` does not fit `schema`, and the value found there.
    (fastjsonschema compiles each schema to Python once: listing 200 runs stays well under a second.)"""
    import fastjsonschema

    try:
        _validator(schema)(value)
    except fastjsonschema.JsonSchemaValueException as exc:
        place = "".join(f"{p} " for p in [".".join(str(p) for p in exc.path[1:])] if p)
        rule = exc.message.split(" ", 1)[-1]
        found = json.dumps(exc.value, default=str)
        found = found if len(found) <= 60 else found[:57] + "..."
        raise DamagedRun(f"{where}: {place}{rule} (found {found})") from None


def read_checked_json(path: Path, schema: dict) -> dict:
    """A JSON file that must exist, parse and fit `schema`."""
    try:
        value = read_json(path)
    except FileNotFoundError:
        raise DamagedRun(f"{path.name} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise DamagedRun(f"{path.name} is unreadable ({exc})") from None
    check_schema(value, schema, path.name)
    return value


def read_run_json(run_dir: Path) -> dict:
    """run.json, checked: its own schema, then a spec and training config that can be used as they are."""
    from cifar_core.model import config, specs

    meta = read_checked_json(run_dir / RUN_JSON, RUN_SCHEMA)
    try:
        if meta["spec"] != EXTERNAL_SPEC:
            specs.from_dict(meta["spec"])
        config.TrainConfig.from_dict(meta["config"])
    except ValueError as exc:
        raise DamagedRun(f"{RUN_JSON}: {exc}") from None
    return meta


def read_report(run_dir: Path) -> dict:
    """report.json, checked: its schema, and a square confusion matrix with one row per class."""
    report = read_checked_json(run_dir / REPORT, REPORT_SCHEMA)
    n = len(report["class_names"])
    rows = report["confusion_matrix"]
    if len(rows) != n or any(len(row) != n for row in rows) or len(report["per_class"]) != n:
        raise DamagedRun(f"{REPORT}: the confusion matrix and per-class rows must be {n}x{n} and {n} "
                         f"(one per class)")
    return report


def _checked_lines(path: Path, schema: dict) -> list[tuple[int, dict]]:
    """(line number, value) of a JSON-lines file, each checked against `schema` ([] when it is missing). The part
    after the last newline is a write not finished (a crash, or a read mid-write) and is skipped; any other line
    that is not JSON or does not fit makes the file damaged."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise DamagedRun(f"{path.name} is unreadable ({exc})") from None
    found = []
    for number, raw in enumerate(text.split("\n")[:-1], start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            raise DamagedRun(f"{path.name} line {number} is not JSON") from None
        check_schema(value, schema, f"{path.name} line {number}")
        found.append((number, value))
    return found


def read_metric_lines(run_dir: Path) -> list[dict]:
    """metrics.jsonl, checked line by line. A last line without its newline is a write the trainer had not
    finished (a crash, or a read mid-write) and is skipped; any other line that is not an epoch record, or an
    epoch out of order, makes the run damaged."""
    lines = []
    for number, line in _checked_lines(run_dir / METRICS, METRICS_LINE_SCHEMA):
        if line["epoch"] != len(lines) + 1:
            raise DamagedRun(f"{METRICS} line {number}: epoch {line['epoch']} where {len(lines) + 1} belongs")
        lines.append(line)
    return lines


def read_layer_records(run_dir: Path) -> list[dict]:
    """layers.jsonl, checked line by line ([] when the run has none: older runs, or recording turned off). A last
    line without its newline is a write the trainer had not finished and is skipped; any other line that is not a
    record, or records out of order, make the file damaged (DamagedRun says where)."""
    records = []
    for number, record in _checked_lines(run_dir / LAYERS, LAYER_RECORD_SCHEMA):
        if records and record["epoch"] < records[-1]["epoch"]:
            raise DamagedRun(f"{LAYERS} line {number}: epoch {record['epoch']} after {records[-1]['epoch']}")
        records.append(record)
    return records


def read_epoch_predictions(run_dir: Path, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """The validation labels and one epoch's predicted labels, checked to fit each other."""
    try:
        y_val = np.load(run_dir / EPOCHS / VAL_LABELS, allow_pickle=False)
        y_pred = np.load(run_dir / EPOCHS / EPOCH_PREDICTIONS.format(epoch=epoch), allow_pickle=False)
    except FileNotFoundError as exc:
        raise DamagedRun(f"{EPOCHS}/{Path(exc.filename).name} is missing") from None
    except (OSError, ValueError, EOFError) as exc:
        raise DamagedRun(f"{EPOCHS}/ of epoch {epoch} is unreadable ({exc})") from None
    if y_val.ndim != 1 or y_pred.shape != y_val.shape:
        raise DamagedRun(f"{EPOCHS}/: epoch {epoch} has {y_pred.shape} predictions for {y_val.shape} labels")
    return y_val.astype(np.int64), y_pred.astype(np.int64)


def read_progress(run_dir: Path) -> dict | None:
    """progress.json, or None: it is replaced every half second and only ever a hint, so a bad one is ignored."""
    try:
        progress = read_json(run_dir / PROGRESS)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    keys = ("epoch", "epochs", "batch", "batches", "images_per_s", "eta_s")
    if not isinstance(progress, dict) or not all(isinstance(progress.get(k), int | float) for k in keys):
        return None
    return progress


def check_zip(run_dir: Path, name: str) -> None:
    """A cheap integrity check of a zip-based file (predictions.npz, model.keras): its directory is readable."""
    path = run_dir / name
    if not path.exists():
        raise DamagedRun(f"{name} is missing")
    try:
        with zipfile.ZipFile(path) as zf:
            zf.namelist()
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        raise DamagedRun(f"{name} is truncated or corrupt ({exc})") from None


def read_predictions(run_dir: Path) -> dict[str, np.ndarray]:
    """predictions.npz, checked: labels, predicted labels, probabilities and test indices of one length."""
    path = run_dir / PREDICTIONS
    try:
        with np.load(path, allow_pickle=False) as z:
            preds = {k: z[k] for k in ("y_true", "y_pred", "probs", "index")}
    except FileNotFoundError:
        raise DamagedRun(f"{PREDICTIONS} is missing") from None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise DamagedRun(f"{PREDICTIONS} is unreadable ({exc})") from None
    n = len(preds["y_true"])
    probs = preds["probs"]
    if probs.ndim != 2 or probs.shape[0] != n or any(len(preds[k]) != n for k in ("y_pred", "index")):
        raise DamagedRun(f"{PREDICTIONS}: arrays of different lengths ({ {k: v.shape for k, v in preds.items()} })")
    if n and (preds["y_true"].min() < 0 or preds["y_true"].max() >= probs.shape[1]):
        raise DamagedRun(f"{PREDICTIONS}: labels outside 0..{probs.shape[1] - 1}")
    return preds
