"""Real tiny training runs as separate processes: the run-directory contract, kill -9 + resume, STOP, CLI."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import SYNTHETIC, cli, wait_for_epochs

from cifar_core.analysis import calibration
from cifar_core.cli.options import config_from_args
from cifar_core.cli.parser import build_parser
from cifar_core.model import recipes
from cifar_core.model.config import TrainConfig
from cifar_core.model.specs import PRESETS
from cifar_core.store import rundir, runs

METRIC_KEYS = {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds", "images_per_s"}


def assert_run_contract(run_dir: Path, epochs_max: int, test_images: int) -> dict:
    meta = json.loads((run_dir / "run.json").read_text())
    for key in ("id", "name", "created", "status", "spec", "config", "data", "libraries", "pid", "best_epoch",
                "test_loss", "test_accuracy", "wall_time", "params", "sizes"):
        assert key in meta, f"run.json lacks {key}"
    assert meta["status"] == "completed" and meta["id"] == run_dir.name
    assert meta["data"]["fingerprint"] and {"tensorflow", "keras"} <= set(meta["libraries"])
    lines = rundir.read_metric_lines(run_dir)
    assert [m["epoch"] for m in lines] == list(range(1, len(lines) + 1)) and 1 <= len(lines) <= epochs_max
    assert all(set(m) == METRIC_KEYS for m in lines)
    assert meta["best_epoch"] == max(lines, key=lambda m: m["val_accuracy"])["epoch"]
    assert rundir.epoch_prediction_epochs(run_dir) == [m["epoch"] for m in lines], "each epoch's predictions once"
    for m in lines:  # the kept predictions are the ones the epoch's validation accuracy came from
        y_val, y_pred = rundir.read_epoch_predictions(run_dir, m["epoch"])
        assert len(y_val) == meta["sizes"]["validation"] and (y_pred == y_val).mean() == pytest.approx(
            m["val_accuracy"], abs=1e-6)
    progress = json.loads((run_dir / "progress.json").read_text())
    assert {"epoch", "batch", "batches", "eta_s", "images_per_s"} <= set(progress)
    with np.load(run_dir / "predictions.npz") as z:
        assert z["probs"].shape == (test_images, 10) and z["probs"].dtype == np.float16
        assert (z["probs"].astype(np.float32).argmax(1) == z["y_pred"]).mean() > 0.99
        assert np.isclose((z["y_pred"] == z["y_true"]).mean(), meta["test_accuracy"], atol=1e-6)
    report = json.loads((run_dir / "report.json").read_text())
    assert np.asarray(report["confusion_matrix"]).sum() == test_images
    assert {"precision", "recall", "f1-score", "support"} <= set(report["per_class"][0])
    assert (run_dir / "model.keras").stat().st_size > 0 and (run_dir / "log.txt").read_text()
    assert not (run_dir / "backup").exists(), "a finished run keeps no resume state"
    return meta


def test_tiny_synthetic_run_honours_the_contract(finished_run):
    meta = assert_run_contract(finished_run, epochs_max=3, test_images=500)
    assert meta["data"]["kind"] == "synthetic" and meta["params"] == 358_346
    assert meta["sizes"] == {"train": 720, "validation": 80, "test": 500}
    assert meta["test_accuracy"] > 0.5, "synthetic classes are easy: a working trainer learns them"


def test_tiny_run_on_real_jpegs(jpeg_sample, tmp_path):
    out = cli("train", "--arch", "batchnorm", "--data", str(jpeg_sample), "--epochs", "2",
              "--validation", "test", runs_dir=tmp_path)
    meta = assert_run_contract(Path(out.stdout.splitlines()[0]), epochs_max=2, test_images=100)
    assert meta["data"]["kind"] == "image-folder" and meta["config"]["validation"] == "test"
    assert meta["sizes"] == {"train": 300, "validation": 100, "test": 100}


def test_same_seed_same_run(tmp_path, finished_run):
    out = cli("train", "--arch", "baseline", "--data", "synthetic", "--epochs", "3", "--subset", "800",
              runs_dir=tmp_path)
    again = rundir.read_metric_lines(Path(out.stdout.splitlines()[0]))
    first = rundir.read_metric_lines(finished_run)
    assert [round(m["val_loss"], 4) for m in again] == [round(m["val_loss"], 4) for m in first]


@pytest.fixture
def start(launch):
    def _start(runs_dir: Path, epochs: int, patience: int = 0) -> Path:
        return launch(runs_dir, TrainConfig(epochs=epochs, patience=patience, seed=1, subset=400))

    return _start


def test_kill_9_then_resume_continues_without_losing_or_doubling_epochs(tmp_path, start):
    run_dir = start(tmp_path, epochs=6)
    wait_for_epochs(run_dir, 2)
    os.kill(rundir.read_json(run_dir / "run.json")["pid"], signal.SIGKILL)
    time.sleep(0.5)
    info = runs.load_run(run_dir)
    assert info.status == "interrupted"
    done_before = len(rundir.read_metric_lines(run_dir))
    assert 2 <= done_before < 6
    out = cli("resume", info.run_id, runs_dir=tmp_path)
    assert "completed" in out.stdout
    lines = rundir.read_metric_lines(run_dir)
    assert [m["epoch"] for m in lines] == list(range(1, 7))
    recorded = [r["epoch"] for r in rundir.read_layer_records(run_dir)]
    assert recorded[0] == 0 and recorded[4:] == [1, 2, 3, 4, 5, 6] and recorded == sorted(set(recorded)), \
        ("each layer record once, none lost to the kill", recorded)
    assert "from epoch" in (run_dir / "log.txt").read_text().split("[cifar-lab] training")[-1]
    assert_run_contract(run_dir, epochs_max=6, test_images=500)


def test_a_second_run_is_refused_while_one_trains_and_stop_keeps_the_best_weights(tmp_path, start):
    run_dir = start(tmp_path, epochs=200)
    wait_for_epochs(run_dir, 1)
    out = cli("train", "--arch", "baseline", "--data", "synthetic", runs_dir=tmp_path, check=False)
    assert out.returncode == 2 and "still training; stop it or wait" in out.stderr
    assert len(runs.list_runs(tmp_path)) == 1, "the refused run leaves nothing behind"
    wait_for_epochs(run_dir, 2)
    out = cli("stop", run_dir.name, runs_dir=tmp_path)
    assert "asked" in out.stdout
    assert runs.wait(run_dir, timeout=120) == "stopped"
    meta = rundir.read_json(run_dir / "run.json")
    lines = rundir.read_metric_lines(run_dir)
    assert meta["epochs_run"] == len(lines) < 200
    assert meta["best_epoch"] == max(lines, key=lambda m: m["val_accuracy"])["epoch"]
    assert (run_dir / "model.keras").exists() and (run_dir / "report.json").exists()
    with pytest.raises(runs.RunError, match="is stopped, not training"):
        runs.stop(runs.load_run(run_dir))


@pytest.mark.parametrize("args, message", [
    (["train", "--arch", "resnet"], "Unknown architecture 'resnet'"),
    (["train", "--arch", "baseline", "--data", "/no/such/folder"], "does not exist"),
    (["train", "--arch", "baseline", "--data", "synthetic", "--epochs", "0"], "epochs must be 1 to 10,000 (got 0)"),
    (["train", "--recipe", "fast", "--time-budget", "60", "--epochs", "3", "--data", "synthetic"],
     "--epochs and --time-budget both set how long the run trains"),
    (["train", "--recipe", "fast", "--time-budget", "10", "--data", "synthetic"],
     "time budget must be 30 seconds to a week (got 10 s)"),
    (["show", "nothing-here"], "No run 'nothing-here'"),
    (["resume", "nothing-here"], "No run 'nothing-here'"),
])
def test_cli_bad_input_exits_2_with_one_line(tmp_path, args, message):
    out = cli(*args, runs_dir=tmp_path, check=False)
    assert out.returncode == 2 and message in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_the_fast_recipe_keeps_the_training_plan_options_given():
    """--recipe fast sets its own plan; an option given on the command line still wins (no silent 10 epochs)."""
    parse = build_parser().parse_args
    fast = config_from_args(parse(["train", "--recipe", "fast"]))
    assert (fast.epochs, fast.optimizer, fast.schedule) == (recipes.FAST_EPOCHS, "nesterov", "onecycle")
    given = config_from_args(parse(["train", "--recipe", "fast", "--epochs", "2", "--batch-size", "64"]))
    assert (given.epochs, given.batch_size) == (2, 64)
    assert given.learning_rate == pytest.approx(recipes.FAST_PEAK_LR_PER_256 * 64 / 256)
    assert config_from_args(parse(["train", "--recipe", "fast", "--lr", "0.05"])).learning_rate == 0.05
    plan = ("epochs", "batch_size", "learning_rate", "optimizer", "patience", "recipe")
    seed, default = config_from_args(parse(["train"])), TrainConfig()
    assert [getattr(seed, f) for f in plan] == [getattr(default, f) for f in plan]


def test_cli_runs_show_evaluate(finished_run, runs_root):
    table = cli("runs", runs_dir=runs_root).stdout
    assert finished_run.name in table and "completed" in table and "358346" in table
    shown = cli("show", finished_run.name, runs_dir=runs_root).stdout
    assert "confusion matrix" in shown and "top confusions" in shown
    ece = calibration.run_ece(rundir.read_predictions(finished_run))
    assert f"calibration: ECE {ece:.4f}" in shown
    as_json = json.loads(cli("show", finished_run.name, "--json", runs_dir=runs_root).stdout)
    assert as_json["status"] == "completed" and len(as_json["metrics"]) == 3 and as_json["ece"] == pytest.approx(ece)
    before = rundir.read_json(finished_run / "run.json")["test_accuracy"]
    assert "test accuracy" in cli("evaluate", finished_run.name, runs_dir=runs_root).stdout
    assert rundir.read_json(finished_run / "run.json")["test_accuracy"] == pytest.approx(before, abs=1e-6)


def test_cli_arch():
    out = cli("arch", "baseline", runs_dir=Path("/tmp")).stdout
    assert "Total parameters: 358,346" in out and "block1_conv" in out


def test_kill_during_final_evaluation_resumes_by_evaluating_only(tmp_path, finished_run):
    """Keras deletes backup/ when fit returns; a crash after that must not retrain from epoch 1."""
    run_dir = tmp_path / finished_run.name
    shutil.copytree(finished_run, run_dir)
    for name in ("report.json", "predictions.npz", "model.keras"):
        (run_dir / name).unlink()
    runs.update_run(run_dir, status="running", pid=999_999_999)
    before = rundir.read_metric_lines(run_dir)
    assert runs.load_run(run_dir).status == "interrupted"
    cli("resume", run_dir.name, runs_dir=tmp_path)
    assert rundir.read_metric_lines(run_dir) == before
    assert_run_contract(run_dir, epochs_max=3, test_images=500)


def test_resume_drops_a_half_written_metrics_line(tmp_path, finished_run):
    """A kill mid-write leaves a line without its newline; the next epoch must not be glued onto it."""
    run_dir = tmp_path / finished_run.name
    shutil.copytree(finished_run, run_dir)
    with open(run_dir / "metrics.jsonl", "a") as fh:
        fh.write('{"epoch": 4, "loss": 0.')
    kept = rundir.truncate_metrics(run_dir, before_epoch=4)
    rundir.append_metrics_line(run_dir, {**kept[-1], "epoch": 4})
    assert [m["epoch"] for m in rundir.read_metric_lines(run_dir)] == [1, 2, 3, 4]


def test_a_trainer_that_died_before_starting_reads_interrupted(tmp_path):
    cfg = TrainConfig(epochs=1)
    run_dir = runs.create_run(tmp_path, PRESETS["baseline"], cfg, SYNTHETIC)
    assert runs.load_run(run_dir).status == "queued", "created, not launched yet"
    runs.update_run(run_dir, pid=999_999_999)
    assert runs.load_run(run_dir).status == "interrupted" and runs.active_runs(tmp_path) == []
    runs.ensure_idle(tmp_path)


def test_a_dead_pid_is_judged_on_its_own_machine_only():
    dead = {"status": "running", "pid": 999_999_999}
    assert runs.effective_status(dead) == "interrupted"
    assert runs.effective_status({**dead, "host": "elsewhere"}) == "interrupted", "a copied runs folder heals"
    assert runs.effective_status({**dead, "host": runs.HOST, "node": "n1"}) == "interrupted"
    assert runs.effective_status({**dead, "host": "elsewhere", "node": "n1"}, silent_s=5) == "running", (
        "a Ray node's trainer on another machine: its study records its loss")
    assert runs.effective_status({**dead, "host": "elsewhere", "node": "n1"}, silent_s=3600) == "interrupted", (
        "... or its silence does, when the study is gone too")


def test_a_run_of_another_machine_reads_interrupted_once_it_has_been_silent(tmp_path):
    run_dir = runs.create_run(tmp_path, PRESETS["baseline"], TrainConfig(epochs=1), SYNTHETIC)
    runs.update_run(run_dir, status="running", pid=999_999_999, host="elsewhere", node="n1")
    rundir.write_json_atomic(run_dir / rundir.PROGRESS, {"epoch": 1})
    assert runs.load_run(run_dir).status == "running"
    old = time.time() - runs.REMOTE_SILENCE_S - 60
    for name in (rundir.PROGRESS, rundir.RUN_JSON):
        os.utime(run_dir / name, (old, old))
    assert runs.load_run(run_dir).status == "interrupted"


def test_reproduce_checks_its_settings(tmp_path):
    out = cli("reproduce", "--data", "synthetic", "--subset", "5", runs_dir=tmp_path, check=False)
    assert out.returncode == 2 and "subset must be at least 20 images" in out.stderr


TF_NOISE = re.compile(r"^(I0000|W0000|E0000|WARNING: All log messages|.*cuda|.*oneDNN|.*cpu_feature_guard)", re.M)


def test_no_tensorflow_log_lines_anywhere(finished_run, runs_root, monkeypatch):
    """TensorFlow's start-up logging never reaches a user: not the CLI's output, not a run's log.txt."""
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    for command in (["arch", "baseline"], ["runs"], ["show", finished_run.name], ["evaluate", finished_run.name]):
        out = cli(*command, runs_dir=runs_root)
        assert not TF_NOISE.search(out.stdout + out.stderr), (command, out.stderr[:500])
    assert not TF_NOISE.search((finished_run / "log.txt").read_text())


def test_a_batch_norm_run_records_whether_its_statistics_settled(app_runs):
    """tiny-bn trained 2 epochs of 17 batches at momentum 0.99: its moving statistics still hold most of their
    starting values, and every view of the run says its test figures understate it."""
    from cifar_core.analysis import caveats

    by_name = {r.name: r for r in runs.list_runs(app_runs)}
    check = by_name["tiny-bn"].meta["bn_check"]
    assert set(check["gaps"]) == {"block1_bn", "block2_bn", "block3_bn"} and check["images"] == 512
    assert check["settled"] is False and check["worst_gap"] > check["limit"]
    assert by_name["tiny-baseline"].meta.get("bn_check") is None, "no batch norm, nothing to check"
    shown = cli("show", by_name["tiny-bn"].run_id, runs_dir=app_runs).stdout
    assert f"caveat: {caveats.BN_UNSETTLED}" in shown
