"""Studies: which runs each plans, resuming a half-finished study, and reports from real tiny runs."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import pytest
from conftest import SEED_STUDY_GROUP, cli

from cifar_core import data
from cifar_core.analysis import caveats
from cifar_core.model import specs
from cifar_core.model.config import TrainConfig
from cifar_core.store import rundir, runs
from cifar_core.studies import plans, records, report


def test_depth_plan():
    planned = plans.plan("depth", TrainConfig())
    assert [p.name for p in planned[:5]] == ["depth1", "depth2", "depth3", "depth4", "depth5"]
    assert [(p.labels["depth"], p.labels["batch_norm"]) for p in planned] == \
        [(d, bn) for bn in (False, True) for d in range(1, 6)]
    assert [b.filters for b in planned[4].spec.blocks] == [32, 64, 128, 256, 512]
    assert planned[2].spec.blocks == specs.PRESETS["baseline"].blocks
    assert all(b.batch_norm for b in planned[7].spec.blocks)


def test_batchnorm_plan_pairs_each_preset_family():
    planned = plans.plan("batchnorm", TrainConfig())
    assert [(p.labels["family"], p.labels["batch_norm"]) for p in planned] == [
        ("baseline", False), ("baseline", True), ("deeper", False), ("deeper", True),
        ("baseline-dropout", False), ("baseline-dropout", True)]
    assert planned[1].spec.blocks == specs.PRESETS["batchnorm"].blocks


def test_dropout_plan():
    planned = plans.plan("dropout", TrainConfig())
    assert [p.labels["dropout"] for p in planned] == [0.0, 0.1, 0.25, 0.4]
    assert all(b.dropout == 0.4 and b.batch_norm for b in planned[-1].spec.blocks)
    assert planned[-1].spec.head.dropout == 0.4


def test_architectures_plan_includes_custom_specs():
    custom = {"mine": specs.depth_family(2)}
    assert [p.name for p in plans.plan("architectures", TrainConfig(), custom)] == [*specs.PRESETS, "mine"]


def test_seed_plan_forces_the_seed_protocol():
    planned = plans.plan("seed", TrainConfig(epochs=3, batch_size=128, validation="split", subset=500))
    assert [p.name for p in planned] == ["seed-baseline", "seed-deeper", "seed-batchnorm"]
    cfg = planned[0].config
    assert (cfg.epochs, cfg.batch_size, cfg.patience, cfg.validation, cfg.optimizer) == (30, 32, 5, "test", "adam")
    assert cfg.subset == 500, "a subset stays allowed for quick checks"


def test_unknown_study():
    with pytest.raises(runs.RunError, match="Unknown study 'width'"):
        plans.plan("width", TrainConfig())


def kill(pid: int | None) -> None:
    with contextlib.suppress(ProcessLookupError, TypeError):
        os.kill(pid, signal.SIGKILL)


def _wait_for_second_run_training(study_dir: Path, runs_dir: Path, not_pid: int | None = None) -> int:
    """The pid of the study's second run's trainer, once the first run is completed and the second trains."""
    deadline = time.monotonic() + 180
    while True:
        queue = records.queue(study_dir)
        if list(queue["status"]) == ["completed", "running"]:
            pid = rundir.read_json(runs_dir / queue["run_id"].iloc[1] / "run.json").get("pid")
            if pid and pid != not_pid and runs.process_alive(pid):
                return pid
        assert time.monotonic() < deadline, (study_dir / "log.txt").read_text()
        time.sleep(0.05)


def test_interrupted_study_resumes_with_unfinished_runs(tmp_path):
    """A trainer killed under a live study, then a study killed with its trainer: each leaves the study
    interrupted, and study-resume finishes it with every epoch trained once and the finished run kept."""
    runs_dir = tmp_path / "runs"
    cfg = TrainConfig(epochs=2, subset=300, patience=0)
    study_dir = records.create(tmp_path / "studies", runs_dir, "dropout", cfg, data.summary("synthetic"))
    rundir.update_json(study_dir, records.STUDY_JSON, runs=records.read(study_dir)["runs"][:2])  # 2 runs suffice
    records.launch(study_dir)
    trainer_pid = None
    try:
        trainer_pid = _wait_for_second_run_training(study_dir, runs_dir)
        first_run = records.queue(study_dir)["run_id"].iloc[0]
        kill(trainer_pid)  # the study's own process lives on and must not call itself completed
        deadline = time.monotonic() + 60
        while records.read(study_dir)["status"] == "running":
            assert time.monotonic() < deadline, (study_dir / "log.txt").read_text()
            time.sleep(0.05)
        assert records.read(study_dir)["status"] == "interrupted"

        records.resume(study_dir)
        trainer_pid = _wait_for_second_run_training(study_dir, runs_dir, not_pid=trainer_pid)
        kill(records.read(study_dir)["pid"])
        kill(trainer_pid)
        time.sleep(0.5)
        assert records.status(records.read(study_dir)) == "interrupted"
        out = cli("study-resume", study_dir.name, runs_dir=runs_dir, timeout=300)
        assert "completed" in out.stdout
        queue = records.queue(study_dir)
        assert list(queue["status"]) == ["completed"] * 2 and queue["run_id"].iloc[0] == first_run
        assert len(runs.list_runs(runs_dir)) == 2, "finished runs are kept, not trained again"
        resumed = runs_dir / queue["run_id"].iloc[1]
        assert [m["epoch"] for m in rundir.read_metric_lines(resumed)] == [1, 2]
    finally:
        kill(records.read(study_dir).get("pid"))
        kill(trainer_pid)


@SEED_STUDY_GROUP
def test_reproduce_prints_ours_against_published(seed_study):
    study_dir, stdout = seed_study
    assert "| baseline | 0.7243 |" in stdout and "| deeper | 0.7016 |" in stdout and "cat→dog (diff)" in stdout
    assert f"note: {caveats.SEED_PROTOCOL}" in stdout and f"note: {caveats.SYNTHETIC}" in stdout
    table = report.seed_comparison(study_dir)
    assert list(table["model"]) == ["baseline", "deeper", "batchnorm"]
    assert list(table["best epoch (seed)"]) == [7, 11, 16] and list(table["cat→dog (seed)"]) == [215, 175, 173]
    ours = table["test acc (ours)"]
    assert ours.notna().all()
    assert (table["test acc (diff)"] - (ours - table["test acc (seed)"])).abs().max() < 1e-9
    for run in runs.list_runs(Path(records.read(study_dir)["runs_dir"])):
        assert run.meta["config"]["validation"] == "test" and run.meta["study"] == study_dir.name


@SEED_STUDY_GROUP
def test_early_stopping_ends_runs_patience_epochs_after_their_best(seed_study):
    """The seed protocol's patience of 5: a run that stopped early ran exactly 5 epochs past its best one,
    whose weights it kept (its recorded best epoch has the highest validation accuracy)."""
    study_dir, _ = seed_study
    found = runs.list_runs(Path(records.read(study_dir)["runs_dir"]))
    stopped_early = [r for r in found if r.meta["epochs_run"] < 30]
    assert stopped_early, "synthetic data saturates long before 30 epochs"
    for run in stopped_early:
        lines = rundir.read_metric_lines(run.path)
        assert run.meta["epochs_run"] == run.meta["best_epoch"] + 5 == len(lines)
        assert run.meta["best_epoch"] == max(lines, key=lambda m: m["val_accuracy"])["epoch"]
        assert run.meta["test_accuracy"] == pytest.approx(lines[run.meta["best_epoch"] - 1]["val_accuracy"], abs=1e-6)


@SEED_STUDY_GROUP
def test_markdown_and_html_reports(seed_study):
    study_dir, _ = seed_study
    md = (study_dir / "report" / "report.md").read_text()
    assert caveats.SEED_PROTOCOL in md and caveats.SYNTHETIC in md
    pngs = sorted((study_dir / "report").glob("*.png"))
    assert [p.name for p in pngs] == ["accuracy.png", "gap.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    page = report.html_report(study_dir)
    assert page.count("data:image/png;base64,") == 2 and "<table" in page


@SEED_STUDY_GROUP
def test_study_results_table(seed_study):
    study_dir, _ = seed_study
    results = records.results(study_dir)
    assert len(results) == 3 and {"test_accuracy", "gap", "seconds_per_epoch", "params"} <= set(results.columns)
    assert results.set_index("arch").loc["baseline", "params"] == 358_346


def test_short_studies_lower_the_batch_norm_momentum_and_full_data_keeps_the_seeds(tmp_path):
    """At 0.99 a 2,000-image study's batch-norm models scored at chance: their moving statistics had not settled."""
    small = data.summary("synthetic")  # 2,000 training images: 1,800 train, 57 batches an epoch
    full = {**small, "source": "cifar", "kind": "image-folder", "train_images": 50000, "test_images": 10000}
    study = records.read(records.create(tmp_path / "studies", tmp_path / "runs", "batchnorm", TrainConfig(epochs=2),
                                        small))
    momentum = {e["name"]: e["config"]["bn_momentum"] for e in study["runs"]}
    assert momentum == {"baseline": 0.99, "baseline-bn": 0.75, "deeper": 0.99, "deeper-bn": 0.75,
                        "baseline-dropout": 0.99, "baseline-dropout-bn": 0.75}
    assert study["runs"][1]["bn_momentum"] == {"chosen": 0.75, "default": 0.99, "steps_per_epoch": 57}
    assert "Batch-norm momentum 0.75 instead of 0.99" in plans.lowered_momentum_note(
        plans.plan("batchnorm", TrainConfig()), small)
    seed = records.read(records.create(tmp_path / "studies", tmp_path / "runs", "seed", TrainConfig(), full))
    assert [e["config"]["bn_momentum"] for e in seed["runs"]] == [0.99, 0.99, 0.99], "the seed study reproduced"
    assert plans.lowered_momentum_note(plans.plan("seed", TrainConfig()), full) is None


def test_unsettled_batch_norm_is_said_wherever_the_run_appears():
    unsettled = {"config": {}, "bn_check": {"settled": False, "worst_gap": 7.6}}
    settled = {"config": {}, "bn_check": {"settled": True, "worst_gap": 0.1}}
    assert caveats.BN_UNSETTLED in caveats.for_run(unsettled)
    assert caveats.BN_UNSETTLED not in caveats.for_run(settled) + caveats.for_run({"config": {}})
    notes = caveats.for_study({"kind": "batchnorm", "config": {}, "data": {}}, [unsettled, settled, {}])
    assert caveats.unsettled_runs(1, 3) in notes and "runs: its batch-norm statistics" in notes[-1]


def test_a_small_run_and_one_that_overran_its_budget_say_so():
    """Its figures rest on few images, or do not show what fits in its budget."""
    small = {"config": {"subset": 200}, "sizes": {"train": 180, "validation": 20, "test": 10_000}}
    assert caveats.for_run(small) == ["Trained on a stratified subset of 200 training images (20 held out for "
                                      "validation, 10,000 tested)."]
    budget = {"config": {"time_budget": 60.0}, "launched": 100.0}
    assert caveats.for_run({**budget, "finished": 158.0}) == []
    assert caveats.for_run({**budget, "finished": 172.0}) == [caveats.over_budget(72.0, 60.0)]
    assert "(120%): it overran" in caveats.over_budget(72.0, 60.0)
    resumed = {**budget, "finished": 158.0, rundir.UNCLOCKED_FROM: 3}
    assert caveats.for_run(resumed) == [caveats.resumed_budget(3)] and "from epoch 3 on" in caveats.for_run(resumed)[0]
    on_test = {"config": {"subset": 200, "validation": "test", "test_subset": 100},
               "sizes": {"train": 200, "validation": 100, "test": 100}}
    assert caveats.for_run(on_test)[1:] == ["Trained on a stratified subset of 200 training images (100 tested).",
                                            "Tested on a stratified subset of 100 test images: its test figures are "
                                            "that much less certain."], "validated on the test set: nothing held out"


def test_loss_curves_say_when_label_smoothing_sets_their_floor():
    """A fast run's validation loss never fell below 0.87 where its test loss was 0.23: the two measure different
    things."""
    fast, seed = {"config": {"label_smoothing": 0.2}}, {"config": {}}
    assert caveats.smoothed_loss_floor(0.2) == pytest.approx(0.8669, abs=1e-4)
    assert caveats.for_curves([seed]) == []
    (alone,) = caveats.for_curves([fast])
    assert "0.87 at 0.2" in alone and "accuracy curves" not in alone
    assert caveats.for_curves([fast, seed])[0].endswith("compare their accuracy curves, not their losses.")


def test_batch_norm_gap_is_zero_for_settled_statistics_and_large_for_starting_values():
    import numpy as np

    from cifar_core.analysis import batchnorm

    mean, var = np.array([0.2, -0.1]), np.array([0.01, 0.04])
    assert batchnorm.layer_gap(mean, var, mean, var) == 0
    start = batchnorm.layer_gap(np.zeros(2), np.ones(2), mean, var)  # Keras's initial moving mean and variance
    record = batchnorm.summary({"block1_bn": 0.1, "block2_bn": start}, 512)
    assert record["settled"] is False and record["worst_layer"] == "block2_bn" and record["worst_gap"] > 3
    assert batchnorm.summary({"block1_bn": 0.1}, 512)["settled"] and batchnorm.summary({}, 512) is None
