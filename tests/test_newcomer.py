"""A newcomer's first hour (issue 27): what a run says while it starts, trains and stops, and no noise."""

from __future__ import annotations

import time

import pytest
from conftest import TRAIN_STDOUT, cli

from cifar_core.analysis import charts
from cifar_core.store import rundir, runs


@pytest.fixture
def writer(tmp_path, monkeypatch):
    """The trainer's RunDirWriter on a 100-batch epoch, writing a within-epoch point at every call."""
    from cifar_core.engine import callbacks, runtime

    runtime.tensorflow()
    import keras

    monkeypatch.setattr(callbacks, "STEP_EVERY_S", 0.0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    w = callbacks.RunDirWriter(tmp_path, batch_size=10, n_train=1000, plan=callbacks.Plan(3, 100))
    w.set_model(model)
    w.set_params({"steps": 100})
    w.on_epoch_begin(0)
    return w


def test_the_training_loss_is_recorded_within_the_epoch_as_interval_means(writer, tmp_path):
    writer.on_train_batch_end(9, {"loss": 2.0, "accuracy": 0.1})
    writer.on_train_batch_end(19, {"loss": 1.5, "accuracy": 0.2})  # running means: batches 11-20 averaged 1.0
    steps = rundir.read_step_lines(tmp_path)
    assert [(s["batch"], s["loss"]) for s in steps] == [(10, 2.0), (20, pytest.approx(1.0))]
    assert steps[1]["accuracy"] == pytest.approx(0.3)
    frame = charts.steps_frame(steps)
    assert frame["position"].tolist() == [0.1, 0.2]
    assert charts.step_loss_chart(frame).to_dict()["encoding"]["x"]["field"] == "position"


def test_an_epoch_stopped_within_is_recorded_as_partial(writer, tmp_path):
    writer.on_train_batch_end(39, {"loss": 1.0, "accuracy": 0.5})
    writer.on_epoch_end(0, {"loss": 1.0, "accuracy": 0.5, "val_loss": 1.0, "val_accuracy": 0.5})
    line = rundir.read_metric_lines(tmp_path)[0]
    assert line[rundir.PARTIAL] is True and line["images"] == 400
    progress = rundir.read_progress(tmp_path)
    assert (progress["batch"], progress["batches"]) == (40, 100), "not 'batch 100/100' for a stopped epoch"


def test_a_resume_keeps_each_within_epoch_point_once(tmp_path):
    for epoch in (1, 2, 3):
        rundir.append_step_line(tmp_path, {"epoch": epoch, "batch": 5, "batches": 10, "loss": 1.0})
    (tmp_path / rundir.STEPS).open("a").write('{"epoch": 3, "batch"')  # a line cut by a kill
    rundir.truncate_steps(tmp_path, 3)
    assert [s["epoch"] for s in rundir.read_step_lines(tmp_path)] == [1, 2]


def test_starting_says_what_it_waits_for():
    launched = {"launched": time.time() - 12}
    assert "TensorFlow, then the data" in runs.starting_text(launched) and "12 s so far" in runs.starting_text(launched)
    assert "tracing its first batch" in runs.starting_text({**launched, "engine": {"precision": "float32"}})


def test_the_cli_prints_the_engine_it_chose(finished_run):
    printed = (finished_run.parent.parent / TRAIN_STDOUT).read_text()
    assert "engine: " in printed and "batches per step" in printed and "machine: " in printed


def test_importing_a_keras_2_h5_prints_no_keras_warning(tmp_path):
    from cifar_core.engine import runtime

    runtime.tensorflow()
    import keras

    model = keras.Sequential([keras.layers.Conv2D(4, 3, input_shape=(32, 32, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])
    model.save(tmp_path / "old.h5")
    out = cli("import", str(tmp_path / "old.h5"), "--data", "synthetic", runs_dir=tmp_path / "runs")
    assert "Warning" not in out.stderr and "input_shape" not in out.stderr, out.stderr
