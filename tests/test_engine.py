"""The engine: precision chosen from the hardware found, several batches per execution with STOP and resume
still working, and the fast recipe fitting its time budget."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import SYNTHETIC, cli, wait_for_epochs

from cifar_core import hardware
from cifar_core.model import recipes, sizing
from cifar_core.model.config import TrainConfig
from cifar_core.model.specs import PRESETS
from cifar_core.store import rundir, runs

EPYC = "model name\t: AMD EPYC 9R14 96-Core Processor\nflags\t\t: fpu sse2 avx2 fma avx512f avx512_bf16\n"
XEON = "model name\t: Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz\nflags\t\t: fpu sse2 avx2 fma avx512f\n"
SAPPHIRE = "model name\t: Intel(R) Xeon(R) Platinum 8488C\nflags\t\t: avx2 avx512f amx_bf16 amx_tile\n"
LAPTOP = "model name\t: AMD EPYC\nflags\t\t: fpu sse2 avx2 fma\n"


@pytest.mark.parametrize("cpuinfo, gpus, policy", [
    (EPYC, [], "mixed_bfloat16"),
    (SAPPHIRE, [], "mixed_bfloat16"),
    (XEON, [], "float32"),
    (LAPTOP, [], "float32"),
    (XEON, ["NVIDIA H100 80GB HBM3"], "mixed_float16"),
    (EPYC, ["NVIDIA A100-SXM4-40GB"], "mixed_float16"),
])
def test_auto_precision_follows_the_hardware(cpuinfo, gpus, policy):
    chosen = hardware.choose_precision("auto", hardware.cpu(cpuinfo), gpus)
    assert chosen.policy == policy and chosen.reason.startswith("auto:")


def test_explicit_precisions():
    xeon = hardware.cpu(XEON)
    assert hardware.choose_precision("float32", xeon, []).policy == "float32"
    slow = hardware.choose_precision("bfloat16", xeon, [])
    assert slow.policy == "mixed_bfloat16" and "emulates bfloat16" in slow.reason
    with pytest.raises(hardware.PrecisionError, match="float16 needs a GPU"):
        hardware.choose_precision("float16", xeon, [])
    assert hardware.choose_precision("float16", xeon, ["NVIDIA L4"]).policy == "mixed_float16"


def test_cpu_flags_and_model_are_read():
    epyc = hardware.cpu(EPYC)
    assert epyc.model.startswith("AMD EPYC 9R14") and epyc.native_bf16 and "avx512_bf16" in epyc.describe()
    assert not hardware.cpu(XEON).native_bf16


def test_float16_on_a_cpu_is_refused_before_a_run_exists(tmp_path):
    if hardware.nvidia_gpus():
        pytest.skip("this machine has a GPU")
    out = cli("train", "--arch", "baseline", "--data", "synthetic", "--precision", "float16",
              runs_dir=tmp_path / "runs", check=False)
    assert out.returncode == 2 and "float16 needs a GPU" in out.stderr and not (tmp_path / "runs").exists()


def test_fast_recipe_settings():
    cpu_cfg = recipes.fast_config(TrainConfig(seed=3), on_gpu=False, time_budget=300)
    assert (cpu_cfg.recipe, cpu_cfg.batch_size, cpu_cfg.optimizer, cpu_cfg.schedule) == ("fast", 128, "nesterov",
                                                                                        "onecycle")
    assert cpu_cfg.tta and cpu_cfg.augment and cpu_cfg.label_smoothing == 0.2 and cpu_cfg.seed == 3
    assert cpu_cfg.time_budget == 300 and cpu_cfg.patience == 0 and not cpu_cfg.problems()
    gpu_cfg = recipes.fast_config(TrainConfig(), on_gpu=True)
    assert gpu_cfg.learning_rate == pytest.approx(cpu_cfg.learning_rate * 1024 / 128)  # scaled with the batch
    assert gpu_cfg.batch_size == 1024
    assert gpu_cfg.epochs == recipes.FAST_EPOCHS and gpu_cfg.time_budget is None


def test_a_fast_run_with_a_budget_ends_inside_it(tmp_path):
    budget = 45
    out = cli("train", "--recipe", "fast", "--time-budget", str(budget), "--data", "synthetic", "--subset", "600",
              runs_dir=tmp_path)
    run_dir = Path(out.stdout.splitlines()[0])
    meta = runs.load_run(run_dir).meta
    assert meta["status"] == "completed" and meta["config"]["recipe"] == "fast"
    assert meta["spec"]["name"] == meta["budget_choice"]["network"] in sizing.FAMILY, "its network sized to the budget"
    first = meta["budget_choice"]["candidates"][0]
    assert first["measured"] and first["probe_s"] > 0, "the smallest network's speed measured at launch, and timed"
    assert f"{meta['spec']['name']}, sized to the budget: predicted: " in out.stdout, "the CLI says the prediction"
    assert meta["finished"] - meta["launched"] <= budget, "from launch to the last file written"
    lines = rundir.read_metric_lines(run_dir)
    assert len(lines) == meta["planned_epochs"] >= 1, "it trains the epochs it planned, however few fit"
    assert (0 < meta.get("sustained_share", 0) < 5) == (len(lines) > 1), "the share of its probed speed it sustained"
    assert meta["engine"]["precision"] == hardware.choose_precision("auto", hardware.cpu(), []).policy, \
        "the model trained at the run's precision, also after the probe's models were cleared away"
    assert (run_dir / rundir.MODEL).exists() and (run_dir / rundir.REPORT).exists()
    from cifar_core.engine import trainer, whitening

    model = trainer.load_model(run_dir)
    stem = model.get_layer(whitening.WHITEN)
    assert not np.allclose(stem.get_weights()[0], whitening.patch_identity()[0]), "the stem was set from the data"
    assert meta["best_epoch"] == len(lines), "a one-cycle schedule that ran to its end: its last epoch is kept"
    from cifar_core import data
    from cifar_core.engine import pipeline

    x_val = pipeline.prepare_data(data.load_dataset("synthetic"), TrainConfig.from_dict(meta["config"]))["x_val"]
    _, last = rundir.read_epoch_predictions(run_dir, len(lines))
    assert (pipeline.predict(model, x_val).argmax(1) == last).mean() > 0.98, "the kept weights are the last epoch's"
    if len(lines) >= 2:  # how many fit depends on the load: one did beside a full-data trainer and the suite
        assert lines[-1]["loss"] < lines[0]["loss"], "it learnt"
        lrs = [m["lr"] for m in lines]
        assert lrs[-1] < max(lrs), "one cycle: it ends below its peak"


def test_a_finished_one_cycle_run_keeps_its_last_epoch_and_a_stopped_one_its_best():
    from cifar_core.engine.trainer import keeps_last_epoch, kept_epoch

    lines = [{"epoch": e, "val_accuracy": a} for e, a in ((1, 0.8), (2, 0.8918), (3, 0.8914))]
    onecycle = TrainConfig(schedule="onecycle")
    assert kept_epoch(lines, keeps_last_epoch(onecycle, False, 3, 3))["epoch"] == 3
    assert kept_epoch(lines, keeps_last_epoch(onecycle, True, 3, 3))["epoch"] == 2, "STOP: the best by validation"
    assert kept_epoch(lines, keeps_last_epoch(onecycle, False, 3, 15))["epoch"] == 2, "early stopping: the best"
    assert kept_epoch(lines, keeps_last_epoch(TrainConfig(), False, 3, 3))["epoch"] == 2, "the seed's plan"
    assert kept_epoch([], True) == {}


def test_the_backup_files_are_named_as_keras_writes_them(tmp_path):
    """The trainer reads and moves the backup by rundir's names; Keras's BackupAndRestore chooses them."""
    from cifar_core.engine.callbacks import EpochBackup

    backup = EpochBackup(tmp_path)
    assert Path(backup._weights_path) == tmp_path / rundir.BACKUP / rundir.BACKUP_WEIGHTS
    assert Path(backup._training_metadata_path) == tmp_path / rundir.BACKUP / rundir.BACKUP_STATE


def test_a_trainer_that_fails_after_its_last_epoch_is_resumed_to_evaluate_not_to_train_again(tmp_path, monkeypatch):
    """Between the end of training and run.json's record of it (where a full disk or a kill -9 cost the whole run:
    Keras had deleted the backup), the backup is kept; the resume trains nothing and keeps the last epoch's weights.
    In this process (float32, Keras's default policy), to spare the test a trainer's start."""
    import errno

    from cifar_core.engine import trainer

    cfg = TrainConfig(epochs=2, subset=200, test_subset=100, batch_size=32, patience=0, optimizer="nesterov",
                      schedule="onecycle", learning_rate=0.05, precision="float32", layer_records=False)
    run_dir = runs.create_run(tmp_path, PRESETS["baseline"], cfg, SYNTHETIC)
    record = runs.update_run

    def full_disk(path, **fields):
        if fields.get("training_done"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return record(path, **fields)

    monkeypatch.setattr(runs, "update_run", full_disk)
    assert trainer.main([str(run_dir)]) == 1
    monkeypatch.undo()
    trained = rundir.read_metric_lines(run_dir)
    last = (run_dir / rundir.BACKUP / rundir.BACKUP_WEIGHTS).read_bytes()
    assert "continues from its last finished epoch" in runs.load_run(run_dir).meta["error"] and len(trained) == 2
    assert trainer.main([str(run_dir)]) == 0
    meta = runs.load_run(run_dir).meta
    assert rundir.read_metric_lines(run_dir) == trained, "no epoch trained again"
    assert meta["status"] == "completed" and meta["best_epoch"] == 2 and "test_accuracy" in meta
    assert (run_dir / rundir.BEST_WEIGHTS).read_bytes() == last and not (run_dir / rundir.BACKUP).exists()


def test_clearing_the_session_keeps_the_precision():
    """keras.utils.clear_session alone resets the dtype policy to float32 (the sizer's probe then slowed the run)."""
    from cifar_core.engine import runtime

    k = runtime.keras()
    before = k.config.dtype_policy()
    try:
        k.config.set_dtype_policy("mixed_bfloat16")
        runtime.clear_session()
        assert k.config.dtype_policy().name == "mixed_bfloat16"
    finally:
        k.config.set_dtype_policy(before)


def test_stop_and_resume_with_several_batches_per_execution(tmp_path, launch):
    """Progress, STOP and kill -9 + resume work the same when Keras runs 4 batches per call."""
    cfg = TrainConfig(epochs=6, patience=0, subset=400, steps_per_execution=4, batch_size=16)
    run_dir = launch(tmp_path, cfg)
    wait_for_epochs(run_dir, 2)
    os.kill(runs.load_run(run_dir).meta["pid"], signal.SIGKILL)
    time.sleep(0.3)
    assert runs.load_run(run_dir).status == "interrupted"
    runs.resume(runs.load_run(run_dir))
    wait_for_epochs(run_dir, len(rundir.read_metric_lines(run_dir)) + 1)
    progress = rundir.read_progress(run_dir)
    assert progress and progress["batches"] == 23 and progress["batch"] % 4 in (0, 3)
    runs.stop(runs.load_run(run_dir))
    assert runs.wait(run_dir, timeout=120) == "stopped"
    lines = rundir.read_metric_lines(run_dir)
    assert [m["epoch"] for m in lines] == list(range(1, len(lines) + 1)) and len(lines) < 6
    meta = runs.load_run(run_dir).meta
    assert meta["engine"]["steps_per_execution"] == 4 and (run_dir / rundir.MODEL).exists()


def test_training_config_round_trips_the_engine_fields():
    cfg = replace(recipes.fast_config(TrainConfig(), on_gpu=False, time_budget=120), precision="bfloat16",
                  steps_per_execution=8)
    from dataclasses import asdict

    assert TrainConfig.from_dict(asdict(cfg)) == cfg


def test_a_budget_plan_is_kept_in_run_json_for_a_resume(tmp_path):
    """A budget run killed mid-way resumes to the epochs its budget fitted, not to the config's maximum."""
    from cifar_core.engine import callbacks

    run_dir = runs.create_run(tmp_path, PRESETS["fast"], recipes.fast_config(TrainConfig(), False, 60), SYNTHETIC)
    plan = callbacks.Plan(1000, steps_per_epoch=10)
    budget = callbacks.FitToBudget(plan, 60, time.time(), 128, {"train": 1280, "validation": 500, "test": 500},
                                   run_dir=run_dir)
    budget.planner.calibrate(0.5)  # 5.65 s an epoch with its validation: 9.8 fit in the 55.4 s left
    budget._apply(budget.planner.total_steps(time.time(), 0))
    assert plan.epochs == 10 and runs.load_run(run_dir).meta["planned_epochs"] == plan.epochs


def test_one_cycle_rises_to_its_peak_then_falls_to_zero():
    from cifar_core.engine.models import OneCycle

    schedule = OneCycle(peak=0.2, total_steps=100)
    lrs = [float(schedule(step)) for step in (0, 10, 20, 60, 100, 120)]
    assert lrs == pytest.approx([0.02, 0.11, 0.2, 0.1, 0.0, 0.0], abs=1e-6)
    schedule.total_steps.assign(50.0)  # a time budget re-plans: the same shape over fewer steps
    assert float(schedule(10)) == pytest.approx(0.2) and float(schedule(50)) == pytest.approx(0.0)


def test_gpus_asks_for_gpus_this_machine_has(tmp_path):
    found = hardware.nvidia_gpus()
    if len(found) >= 2:
        pytest.skip(f"this machine has {len(found)} GPUs: --gpus 2 would train")
    out = cli("train", "--gpus", "2", "--data", "synthetic", "--subset", "100", runs_dir=tmp_path, check=False)
    assert out.returncode == 2 and f"--gpus 2: this machine has {len(found)} NVIDIA GPU(s)" in out.stderr
    assert not list(tmp_path.iterdir()), "nothing was created"


def test_progress_never_counts_past_the_epochs_batches(tmp_path):
    """With 64 batches per execution Keras reports the end of an epoch's last, shorter chunk as batch 1,600 of
    1,563; the progress line says 1,563."""
    from cifar_core.engine import callbacks

    writer = callbacks.RunDirWriter(tmp_path, batch_size=32, n_train=50_000, plan=callbacks.Plan(30, 1563))
    writer.set_params({"steps": 1563})
    writer.on_epoch_begin(0)
    writer.on_train_batch_end(1599)
    progress = rundir.read_json(tmp_path / rundir.PROGRESS)
    assert (progress["batch"], progress["batches"]) == (1563, 1563) and writer.batches == 1563
