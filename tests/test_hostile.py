"""Fault injection, round 2: hostile files and races the first round did not try (issue 21), one test per case.

Each asserts the outcome a user sees (exit code and one line) and that nothing ran, was written or doubled where it
should not be.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import APP, ROOT, SYNTHETIC, cli, tmpfs, write_image_folder
from streamlit.testing.v1 import AppTest
from test_faults import _kill, _simultaneous, assert_one_line_error

from cifar_core import data, serving
from cifar_core.analysis import scores, stats
from cifar_core.engine import importing, modelfiles
from cifar_core.model.config import TrainConfig
from cifar_core.model.specs import PRESETS
from cifar_core.store import rundir, runs
from cifar_core.studies import records

# --- 1. no code from data files -------------------------------------------------------------------------------


class _Payload:
    """Unpickling this runs `touch MARKER` with the full unpickler."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def crafted_tarball(folder: Path, marker: Path) -> Path:
    """A cifar-10-python.tar.gz whose batches are pickles that run a shell command when unpickled."""
    path = folder / "cifar-10-python.tar.gz"
    blob = pickle.dumps({b"data": _Payload(marker), b"labels": [0]}, protocol=2)
    with tarfile.open(path, "w:gz") as tar:
        for name in data.BATCH_FILES:
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


@pytest.fixture
def crafted(tmp_path) -> tuple[Path, Path]:
    marker = tmp_path / "payload-ran"
    return crafted_tarball(tmp_path, marker), marker


def test_a_crafted_batch_is_refused_without_running(crafted, tmp_path):
    tarball, marker = crafted
    with pytest.raises(data.DataError, match=r"refused: it asks to run (posix|os)\.system"):
        data.load_dataset(str(tarball), use_cache=False)
    out = cli("train", "--data", str(tarball), runs_dir=tmp_path / "runs", check=False)
    assert_one_line_error(out, "which no CIFAR-10 batch holds")
    assert not marker.exists() and not (tmp_path / "runs").exists()


def test_real_batches_still_load(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in data.BATCH_FILES:
        batch = {b"batch_label": b"x", b"labels": list(range(10)), b"data": np.arange(30720).astype(np.uint8)
                 .reshape(10, 3072), b"filenames": [b"a.png"] * 10}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    loaded = data.load_dataset(str(folder), use_cache=False)
    assert loaded.x_train.shape == (50, 32, 32, 3) and list(loaded.y_test) == list(range(10))


def _run_on(source: Path, finished_run: Path, runs_dir: Path) -> Path:
    run_dir = Path(shutil.copytree(finished_run, runs_dir / finished_run.name))
    meta = json.loads((run_dir / rundir.RUN_JSON).read_text())
    meta["data"]["source"] = str(source)
    (run_dir / rundir.RUN_JSON).write_text(json.dumps(meta))
    return run_dir


def test_evaluate_of_a_run_naming_a_crafted_source_runs_nothing(crafted, finished_run, tmp_path):
    tarball, marker = crafted
    run_dir = _run_on(tarball, finished_run, tmp_path / "runs")
    out = cli("evaluate", run_dir.name, runs_dir=tmp_path / "runs", check=False)
    assert_one_line_error(out, "which no CIFAR-10 batch holds")
    assert not marker.exists()


@pytest.mark.parametrize("shared", [True, False])
def test_misclassified_never_runs_a_crafted_source(crafted, finished_run, tmp_path, monkeypatch, shared):
    """Shared: the view opens only the server's own data; local: the restricted unpickler refuses the file."""
    tarball, marker = crafted
    _run_on(tarball, finished_run, tmp_path / "runs")
    monkeypatch.setenv("CIFAR_LAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("CIFAR_LAB_DATA", "synthetic")
    monkeypatch.setenv(serving.READ_ONLY, "1" if shared else "0")
    monkeypatch.setenv(serving.ALLOW_WRITES, "0" if shared else "1")
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    at.session_state["mis_true"] = at.session_state["mis_pred"] = "airplane"
    at.switch_page("views/misclassified.py").run()
    assert not at.exception, [e.message for e in at.exception]
    errors = " ".join(e.value for e in at.error)
    assert ("data set the server was started with" if shared else "which no CIFAR-10 batch holds") in errors
    assert not marker.exists()


def test_the_server_source_is_the_only_one_shared(monkeypatch, tmp_path):
    monkeypatch.setenv("CIFAR_LAB_DATA", str(tmp_path))
    assert data.is_server_source(str(tmp_path)) and data.is_server_source(f"{tmp_path}/.")
    assert data.is_server_source("synthetic") and not data.is_server_source("/elsewhere")
    assert not data.is_server_source("keras")


# --- 2. and 3. nothing outside the runs folder --------------------------------------------------------------------

@pytest.mark.parametrize("run_id", ["../../outside/victim", "/tmp/victim"])
def test_a_study_cannot_name_runs_outside_its_runs_folder(tmp_path, run_id):
    study_dir = records.create(tmp_path / "studies", tmp_path / "runs", "dropout", TrainConfig(epochs=1),
                               data.summary("synthetic"))
    study = json.loads((study_dir / records.STUDY_JSON).read_text())
    study["runs"][0]["run_id"] = run_id
    study["status"] = "stopped"
    (study_dir / records.STUDY_JSON).write_text(json.dumps(study))
    with pytest.raises(rundir.DamagedRun, match=r"runs\.0\.run_id must match pattern"):
        records.read(study_dir)
    out = cli("study-resume", study_dir.name, runs_dir=tmp_path / "runs", check=False)
    assert_one_line_error(out, "must match pattern")
    assert not (tmp_path / "outside").exists()


def test_a_study_cannot_move_its_runs_folder(tmp_path):
    study_dir = records.create(tmp_path / "studies", tmp_path / "runs", "dropout", TrainConfig(epochs=1),
                               data.summary("synthetic"))
    study = json.loads((study_dir / records.STUDY_JSON).read_text())
    (study_dir / records.STUDY_JSON).write_text(json.dumps({**study, "runs_dir": "/tmp/elsewhere/runs"}))
    with pytest.raises(rundir.DamagedRun, match="is not the runs folder beside"):
        records.read(study_dir)


def test_a_symlinked_run_directory_is_damaged_and_nothing_writes_through_it(finished_run, tmp_path):
    outside = Path(shutil.copytree(finished_run, tmp_path / "outside" / finished_run.name))
    before = (outside / rundir.RUN_JSON).read_text()
    (tmp_path / "runs").mkdir()
    link = tmp_path / "runs" / "linked"
    link.symlink_to(outside, target_is_directory=True)
    info = runs.find_run(tmp_path / "runs", "linked")
    assert info.status == rundir.DAMAGED and "outside the runs folder" in info.damaged
    for command in (["tag", "linked", "x"], ["note", "linked", "hello"]):
        assert_one_line_error(cli(*command, runs_dir=tmp_path / "runs", check=False), "damaged")
    runs.delete(info)
    assert not link.exists() and (outside / rundir.RUN_JSON).read_text() == before


# --- 4. model files that are small on disk and huge in memory ---------------------------------------------------

def _keras_archive(path: Path, config: dict, extra: dict[str, bytes] = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        for name, content in (extra or {}).items():
            zf.writestr(name, content)
    return path


def _sequential(*layers: dict) -> dict:
    return {"module": "keras", "class_name": "Sequential", "config": {"name": "m", "layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, 32, 32, 3], "name": "in"}}, *layers]}}


DENSE_HUGE = _sequential({"class_name": "Flatten", "config": {"name": "f"}},
                         {"class_name": "Dense", "config": {"name": "d", "units": 250_000}})


def test_a_model_declaring_a_huge_layer_is_refused_before_loading(tmp_path):
    path = _keras_archive(tmp_path / "huge.keras", DENSE_HUGE)
    assert path.stat().st_size < 2000
    out = cli("import", str(path), "--data", "synthetic", runs_dir=tmp_path / "runs", check=False)
    assert_one_line_error(out, "declares 768,250,000 parameters; models up to 50,000,000")
    assert not (tmp_path / "runs").exists()


def test_unpacked_sizes_are_checked_not_only_the_file_size(tmp_path, monkeypatch):
    monkeypatch.setattr(modelfiles, "MAX_UNPACKED_BYTES", 2**20)
    small = _sequential({"class_name": "Flatten", "config": {}}, {"class_name": "Dense", "config": {"units": 10}})
    path = _keras_archive(tmp_path / "assets.keras", small, {"assets/a.bin": bytes(3 * 2**20)})
    assert path.stat().st_size < 50_000
    with pytest.raises(modelfiles.ModelFileError, match="unpacks to 3 MiB"):
        modelfiles.check(path)
    monkeypatch.setattr(modelfiles, "MAX_CONFIG_BYTES", 1000)
    bloated = _keras_archive(tmp_path / "bloated.keras", {**small, "padding": " " * 5000})
    with pytest.raises(modelfiles.ModelFileError, match="config.json unpacks to"):
        modelfiles.check(bloated)


def test_keras_temp_files_go_with_the_load_even_when_it_fails(tmp_path):
    before = set(Path(__import__("tempfile").gettempdir()).glob("cifar-lab-model-*"))
    with pytest.raises(RuntimeError), modelfiles.private_tempdir() as folder:
        (folder / "asset").write_bytes(b"x" * 1000)
        raise RuntimeError("disk full")
    assert not folder.exists()
    assert set(Path(__import__("tempfile").gettempdir()).glob("cifar-lab-model-*")) == before


@pytest.mark.parametrize("content, fragment", [
    (b"", "is not a Keras model file"), (b"just some text\n", "is not a Keras model file"),
    (b"\x89HDF\r\n\x1a\n" + bytes(100), "is an HDF5 (.h5) file named .keras; rename it"),
])
def test_a_file_named_keras_that_is_not_one_gets_the_right_message(tmp_path, content, fragment):
    path = tmp_path / "model.keras"
    path.write_bytes(content)
    with pytest.raises(importing.ModelRefused, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        importing.check_file(path)


def test_an_unknown_layer_kind_cannot_be_sized_and_is_refused(tmp_path):
    path = _keras_archive(tmp_path / "lstm.keras", _sequential({"class_name": "LSTM", "config": {"units": 10**6}}))
    with pytest.raises(modelfiles.ModelFileError, match="layer kind LSTM is not one the lab can size"):
        modelfiles.check(path)


# --- 5. one driver per study --------------------------------------------------------------------------------------

def test_six_study_resumes_at_the_same_instant_start_one_driver(tmp_path):
    runs_dir = tmp_path / "runs"
    study_dir = records.create(tmp_path / "studies", runs_dir, "dropout", TrainConfig(epochs=50, subset=300),
                               data.summary("synthetic"))
    rundir.update_json(study_dir, records.STUDY_JSON, status="stopped")
    results = _simultaneous(runs_dir, *[["study-resume", study_dir.name, "--detach"]] * 6)
    try:
        assert sorted(r.returncode for r in results) == [0] + [2] * 5, [(r.returncode, r.stderr) for r in results]
        for loser in (r for r in results if r.returncode == 2):
            assert_one_line_error(loser, "is still running")
    finally:
        records.stop(study_dir)
        _kill(records.read(study_dir).get("pid"))
        for info in runs.list_runs(runs_dir):
            _kill(info.meta.get("pid"))


# --- 6. a run cut short stays out of its group's figures ----------------------------------------------------------

def test_a_stopped_run_is_shown_but_left_out_of_its_group():
    import pandas as pd

    results = pd.DataFrame({"arch": ["a", "a", "a"], "test_accuracy": [0.80, 0.82, 0.30],
                            records.CUT_SHORT: [False, False, True]})
    row = stats.group_summary(results, ["arch"]).iloc[0]
    assert row["seeds"] == 2 and row["test acc mean"] == pytest.approx(0.81)
    assert row[stats.CUT_SHORT_COLUMN] == 1


def test_study_results_mark_a_stopped_run(tmp_path, finished_run):
    study_dir = records.create(tmp_path / "studies", tmp_path / "runs", "seeds", TrainConfig(), SYNTHETIC,
                               spec=PRESETS["baseline"], seeds=[0, 1])
    for i, status in enumerate(("completed", "stopped")):
        run_dir = Path(shutil.copytree(finished_run, tmp_path / "runs" / f"r{i}"))
        runs.update_run(run_dir, id=f"r{i}", status=status)
        study = records.read(study_dir)
        study["runs"][i]["run_id"] = f"r{i}"
        rundir.write_json_atomic(study_dir / records.STUDY_JSON, study)
    assert records.results(study_dir)[records.CUT_SHORT].tolist() == [False, True]


# --- 7. a pid that another process got ----------------------------------------------------------------------------

def test_a_reused_pid_does_not_hold_the_lab(tmp_path):
    run_dir = runs.create_run(tmp_path, PRESETS["baseline"], TrainConfig(), SYNTHETIC)
    mine = runs.process_record(os.getpid())
    assert mine[runs.PID_START]
    runs.update_run(run_dir, status="running", **mine)
    assert runs.load_run(run_dir).status == "running"
    runs.update_run(run_dir, **{runs.PID_START: mine[runs.PID_START] + "0"})  # same pid, another process
    info = runs.load_run(run_dir)
    assert info.status == "interrupted" and not info.is_training
    runs.ensure_idle(tmp_path)
    with pytest.raises(runs.RunError, match="not training"):
        runs.stop(info)


# --- 8. an import cut short ---------------------------------------------------------------------------------------

def test_an_import_whose_process_died_ends_failed_with_the_reason(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    record = runs.process_record(dead.pid)
    dead.wait()
    run_dir = runs.create_run(tmp_path, PRESETS["baseline"], TrainConfig(), SYNTHETIC,
                              extra={"imported": {"file": "m.keras"}, **record, "error": importing.IMPORT_CUT_SHORT})
    info = runs.load_run(run_dir)
    assert info.status == "failed" and "import the file again" in info.meta["error"]
    with pytest.raises(runs.RunError, match="delete it and import the file again"):
        runs.resume(info)
    runs.delete(info)


# --- 9. SIGTERM, Ctrl-C twice, and STOP before the trainer starts -------------------------------------------------

def test_sigterm_stops_a_foreground_train_like_ctrl_c_and_a_second_interrupt_is_one_line(tmp_path):
    runs_dir = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "cifar_core.cli", "--runs-dir", str(runs_dir), "train", "--data",
                             "synthetic", "--epochs", "1000", "--patience", "0"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    run_dir = Path(proc.stdout.readline().strip())
    try:
        deadline = time.monotonic() + 120
        while not rundir.read_metric_lines(run_dir):
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
            time.sleep(0.1)
        trainer = runs.load_run(run_dir).meta["pid"]
        os.kill(trainer, signal.SIGSTOP)  # the run cannot finish stopping before the second interrupt arrives
        proc.send_signal(signal.SIGTERM)
        assert "stopping" in proc.stderr.readline()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 130, proc.stderr.read()
        os.kill(trainer, signal.SIGCONT)
        stderr = proc.stderr.read()
        assert stderr.strip().startswith("cifar-lab: interrupted") and "Traceback" not in stderr, stderr
        assert runs.wait(run_dir, timeout=120) == "stopped"
        assert (run_dir / rundir.STOP).exists(), "the run was asked to stop, not left training"
    finally:
        proc.kill()
        _kill(runs.load_run(run_dir).meta.get("pid"))


def test_a_stop_before_the_first_epoch_ends_leaves_a_resumable_run(tmp_path):
    run_dir = runs.create_run(tmp_path, PRESETS["baseline"], TrainConfig(epochs=3, subset=300), SYNTHETIC)
    (run_dir / rundir.STOP).write_text("before the trainer started")
    done = subprocess.run([sys.executable, "-m", "cifar_core.engine.trainer", str(run_dir)], cwd=ROOT,
                          capture_output=True, text=True, timeout=180)
    info = runs.load_run(run_dir)
    assert info.status == "failed" and "Resume the run" in info.meta["error"], done.stdout + done.stderr
    assert rundir.read_metric_lines(run_dir) == [] and not info.meta.get("training_done")


# --- 10. writers of one file at once ------------------------------------------------------------------------------

def test_four_writers_of_one_predictions_file_never_collide(tmp_path):
    errors = []
    probs = np.full((100, 10), 0.1, np.float32)

    def write():
        try:
            for _ in range(20):
                scores.save_predictions(tmp_path / rundir.PREDICTIONS, np.zeros(100, int), probs)
        except Exception as exc:  # noqa: BLE001 - any failure of a writer is what this test looks for
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and rundir.read_predictions(tmp_path)["probs"].shape == (100, 10)
    assert not list(tmp_path.glob(".*tmp*"))


# --- 11. one-line messages, nothing created ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    ds = data.synthetic_dataset(n_train=40, n_test=20, seed=3)
    return write_image_folder(tmp_path_factory.mktemp("tiny") / "cifar", ds.x_train, ds.y_train, ds.x_test,
                              ds.y_test, data.CLASS_NAMES)


def _eleventh_class(root: Path) -> str:
    for split in ("train", "test"):
        shutil.copytree(root / split / "cat", root / split / "lynx")
    return "has 11 class folders; CIFAR-10 needs exactly its ten"


def _nine_classes(root: Path) -> str:
    for split in ("train", "test"):
        shutil.rmtree(root / split / "truck")
    return "has 9 class folders"


def _symlink_loop(root: Path) -> str:
    (root / "train" / "cat" / "loop.png").symlink_to(root / "train" / "cat" / "loop.png")
    return "Cannot read"


@pytest.mark.parametrize("damage", [_eleventh_class, _nine_classes, _symlink_loop])
def test_bad_class_folders_are_one_line_before_a_run_exists(tiny_folder, tmp_path, damage):
    root = Path(shutil.copytree(tiny_folder, tmp_path / "data"))
    fragment = damage(root)
    out = cli("train", "--data", str(root), runs_dir=tmp_path / "runs", check=False)
    assert_one_line_error(out, fragment)
    assert not (tmp_path / "runs").exists()


def test_capitalised_class_folders_keep_cifar_labels(tiny_folder, tmp_path):
    root = Path(shutil.copytree(tiny_folder, tmp_path / "data"))
    for split in ("train", "test"):
        (root / split / "cat").rename(root / split / "Cat")
    loaded = data.load_dataset(str(root), use_cache=False)
    original = data.load_dataset(str(tiny_folder), use_cache=False)
    assert loaded.class_names == data.CLASS_NAMES and (loaded.y_train == original.y_train).all()


def test_a_runs_dir_that_is_a_file_is_one_line(tmp_path):
    file = tmp_path / "runs"
    file.write_text("not a folder")
    for command in (["train", "--data", "synthetic"], ["import", str(tmp_path / "m.keras")],
                    ["study", "dropout", "--data", "synthetic"]):
        assert_one_line_error(cli(*command, runs_dir=file, check=False), "is a file; give a folder")


def test_a_read_only_runs_dir_is_one_line(tmp_path):
    with tmpfs(tmp_path / "ro", "ro,size=1m") as mount:
        for command in (["train", "--data", "synthetic"], ["study", "dropout", "--data", "synthetic"]):
            out = cli(*command, runs_dir=mount / "runs", check=False)
            assert_one_line_error(out, "is on a read-only file system")
