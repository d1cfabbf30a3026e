"""A run's embeddings (the input of its final classification layer) and their 2-D map, as files of its directory.

embeddings.npz holds the test images' embeddings and, where the run held out a validation split, the validation
images' embeddings, labels and probabilities (out-of-sample, like the test set's, for finding label errors).
embeddings-train.npz and map.npz are made on demand for older runs and for the neighbours and map views.
Indices are positions in the data set's test or training arrays, so a reader can show the images.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cifar_core.store import rundir, runs
from cifar_core.store.rundir import DamagedRun


@dataclass(frozen=True)
class Embeddings:
    """Embeddings of one split: one row per image, `index` its position in the data set's split."""

    vectors: np.ndarray  # (n, d) float16
    index: np.ndarray  # (n,) int32
    labels: np.ndarray | None = None  # (n,) the true labels, where the file keeps them
    probs: np.ndarray | None = None  # (n, classes) the model's probabilities, where the file keeps them


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    """Write an .npz through a temp file, so readers see the old file or the new one, never half of one."""
    tmp = rundir.temp_path(path, ".npz")
    try:
        np.savez_compressed(tmp, **arrays)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write(run_dir: Path, test: Embeddings, val: Embeddings | None = None) -> None:
    """embeddings.npz for the model as it is now; the training embeddings and the map of an earlier model go."""
    for derived in (rundir.TRAIN_EMBEDDINGS, rundir.MAP):
        (run_dir / derived).unlink(missing_ok=True)
    arrays = {"test": test.vectors.astype(np.float16), "test_index": test.index.astype(np.int32)}
    if val is not None:
        arrays.update(val=val.vectors.astype(np.float16), val_index=val.index.astype(np.int32),
                      val_labels=val.labels.astype(np.int16), val_probs=val.probs.astype(np.float16))
    save_npz(run_dir / rundir.EMBEDDINGS, **arrays)


def write_train(run_dir: Path, train: Embeddings) -> None:
    save_npz(run_dir / rundir.TRAIN_EMBEDDINGS, train=train.vectors.astype(np.float16),
             train_index=train.index.astype(np.int32), train_labels=train.labels.astype(np.int16))


def _load(path: Path) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DamagedRun(f"{path.name} is unreadable ({exc}); delete it and the lab makes it again") from None


def _split(arrays: dict, name: str, file: str) -> Embeddings | None:
    if name not in arrays:
        return None
    vectors, index = arrays[name], arrays.get(f"{name}_index")
    labels, probs = arrays.get(f"{name}_labels"), arrays.get(f"{name}_probs")
    n = len(vectors)
    if vectors.ndim != 2 or index is None or len(index) != n or any(a is not None and len(a) != n
                                                                   for a in (labels, probs)):
        raise DamagedRun(f"{file}: the {name} arrays do not fit together; delete it and the lab makes it again")
    return Embeddings(vectors, index, labels, probs)


def read(run_dir: Path) -> tuple[Embeddings, Embeddings | None] | None:
    """(test, validation or None), or None where the run has no embeddings yet."""
    arrays = _load(run_dir / rundir.EMBEDDINGS)
    if arrays is None:
        return None
    test = _split(arrays, "test", rundir.EMBEDDINGS)
    if test is None:
        raise DamagedRun(f"{rundir.EMBEDDINGS} has no test embeddings; delete it and the lab makes it again")
    return test, _split(arrays, "val", rundir.EMBEDDINGS)


def read_train(run_dir: Path) -> Embeddings | None:
    arrays = _load(run_dir / rundir.TRAIN_EMBEDDINGS)
    return None if arrays is None else _split(arrays, "train", rundir.TRAIN_EMBEDDINGS)


def write_map(run_dir: Path, xy: np.ndarray, method: str, seconds: float) -> None:
    save_npz(run_dir / rundir.MAP, xy=xy.astype(np.float32), method=np.array(method), seconds=np.array(seconds))


def read_map(run_dir: Path) -> tuple[np.ndarray, str] | None:
    """(the test images' 2-D positions, the method that made them), or None where no map was made yet."""
    arrays = _load(run_dir / rundir.MAP)
    if arrays is None:
        return None
    if "xy" not in arrays or arrays["xy"].ndim != 2 or arrays["xy"].shape[1] != 2:
        raise DamagedRun(f"{rundir.MAP} holds no 2-D positions; delete it and the lab makes it again")
    return arrays["xy"], str(arrays.get("method", "unknown"))


# --- the job that makes them for an older run ----------------------------------------------------------

def start_job(run_dir: Path, train: bool = True, map_: bool = True) -> None:
    """Make what the run lacks (embeddings, training embeddings, map) in a process of its own, beside the
    dashboard; its pid is recorded so every page sees it running, its output goes to embeddings-log.txt."""
    import subprocess
    import sys

    if job_running(run_dir):
        return
    command = [sys.executable, "-m", "cifar_core.engine.embeddings", str(run_dir)]
    command += ["--train"] * train + ["--map"] * map_
    with open(run_dir / rundir.EMBEDDING_LOG, "w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    rundir.write_json_atomic(run_dir / rundir.EMBEDDING_JOB, runs.process_record(proc.pid))


def job_running(run_dir: Path) -> bool:
    try:
        record = rundir.read_json(run_dir / rundir.EMBEDDING_JOB)
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and runs.recorded_process_alive(record)


def job_failure(run_dir: Path) -> str:
    """The last lines of a job that ended without making what it was asked for ('' when none failed)."""
    try:
        lines = (run_dir / rundir.EMBEDDING_LOG).read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " ".join(lines[-3:]) if lines and "Error" in " ".join(lines[-3:]) else ""
