"""Search: the space parser, the refusals before anything exists, and a real tiny search (trials pruned, its driver
killed and resumed, the best retrained over seeds, the report)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import pytest
from conftest import cli

from cifar_core import data
from cifar_core.model import shapes, space, specs
from cifar_core.model.config import TrainConfig
from cifar_core.store import rundir, runs
from cifar_core.studies import records, search


def test_space_parser_reads_ranges_log_scales_and_choices():
    found = space.parse(" lr=1e-4..1e-1:log, dropout=0..0.5 ,batch_size=32|64|128, width=0.5..2, optimizer=adam|sgd")
    assert found.keys == ["lr", "dropout", "batch_size", "width", "optimizer"]
    lr = found.param("lr")
    assert (lr.low, lr.high, lr.log) == (1e-4, 1e-1, True) and lr.position(10 ** -2.5) == pytest.approx(0.5)
    assert found.param("batch_size").choices == (32, 64, 128) and found.param("batch_size").position(64) == 0.5
    assert space.parse(found.text()) == found, "the canonical text reads back to the same space"
    spec, cfg = space.apply(specs.PRESETS["baseline"], TrainConfig(),
                            {"lr": 0.01, "dropout": 0.2, "batch_size": 64, "width": 2.0, "optimizer": "sgd"})
    assert (cfg.learning_rate, cfg.batch_size, cfg.optimizer) == (0.01, 64, "sgd")
    assert [b.filters for b in spec.blocks] == [64, 128, 256] and spec.head.dropout == 0.2
    assert [r["width"] for r in space.width_preview(specs.PRESETS["baseline"], found)] == [0.5, 1.0, 2.0]
    assert space.width_preview(specs.PRESETS["baseline"], found)[1]["params"] == 358_346
    assert shapes.param_count(spec) == space.width_preview(specs.PRESETS["baseline"], found)[2]["params"]


@pytest.mark.parametrize("text, says", [
    ("lrate=1e-4..1e-1", "unknown key 'lrate'"),
    ("dropout=0.5..0.1", "is an empty range"),
    ("dropout=0.3..0.3", "is an empty range"),
    ("lr=0..0.1:log", "a log scale needs a low above 0"),
    ("width=-1..2:log", "a log scale needs a low above 0"),
    ("dropout=0..1", "must lie in [0, 1)"),
    ("batch_size=16..32.5", "is not a number"),
    ("lr=0.01", "give a range low..high or choices"),
    ("lr=1e-3..1e-1, lr=1e-4..1e-2", "names 'lr' twice"),
    ("optimizer=adam|lion", "'lion' is not a optimizer"),
    ("lr=1e-3..1e-1:sqrt", "the only scale is ':log'"),
    ("", "--space is empty"),
])
def test_bad_spaces_are_refused_in_one_line(text, says):
    with pytest.raises(space.SpaceError) as caught:
        space.parse(text)
    assert says in str(caught.value) and "\n" not in str(caught.value)


def test_bad_space_and_test_protocol_are_refused_before_anything_is_created(tmp_path):
    runs_dir = tmp_path / "runs"
    out = cli("study", "search", "--data", "synthetic", "--space", "lr=1e-3..1e-4:log", runs_dir=runs_dir,
              check=False)
    assert out.returncode == 2 and "empty range" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    out = cli("study", "search", "--data", "synthetic", "--space", "lr=1e-4..1e-1:log", "--validation", "test",
              runs_dir=runs_dir, check=False)
    assert out.returncode == 2 and "selects settings by validation accuracy" in out.stderr
    with pytest.raises(search.SearchError, match="--validation split"):
        search.create(tmp_path / "studies", runs_dir, specs.PRESETS["baseline"], TrainConfig(validation="test"),
                      data.summary("synthetic"), search.Settings("lr=1e-4..1e-1:log"))
    assert not (tmp_path / "studies").exists() and not runs_dir.exists()


def _kill(pid: int | None) -> None:
    with contextlib.suppress(ProcessLookupError, TypeError):
        os.kill(pid, signal.SIGKILL)


def _second_trial_training(study_dir: Path) -> None:
    deadline = time.monotonic() + 240
    while True:
        queue = records.queue(study_dir)
        if len(queue) >= 2 and queue["status"].iloc[1] == "running":
            return
        assert time.monotonic() < deadline, (study_dir / rundir.LOG).read_text()
        time.sleep(0.05)


def test_tiny_search_prunes_resumes_and_retrains_the_best(tmp_path):
    """Five trials of two epochs: a weak one is pruned (its epochs kept), the driver killed mid-trial and the study
    resumed (same Optuna study: five trials, none lost or doubled), then the best and the preset over 2 seeds."""
    import optuna

    runs_dir = tmp_path / "runs"
    out = cli("study", "search", "--data", "synthetic", "--space", "lr=1e-5..1e-1:log, width=0.5..1, "
              "batch_size=16|32", "--trials", "5", "--epochs", "2", "--patience", "0", "--seeds-for-best", "2",
              "--detach", runs_dir=runs_dir)
    study_dir = Path(out.stdout.strip().splitlines()[0])
    try:
        _second_trial_training(study_dir)
        _kill(records.read(study_dir)["pid"])
        time.sleep(0.5)
        assert records.status(records.read(study_dir)) == "interrupted"
        out = cli("study-resume", study_dir.name, runs_dir=runs_dir, timeout=600)
    finally:
        _kill(records.read(study_dir).get("pid"))
    assert f"study {study_dir.name}: completed" in out.stdout and "Best settings (trial" in out.stdout
    study = records.read(study_dir)
    opt = search.optuna_study(study_dir)
    assert [t.number for t in opt.trials] == [0, 1, 2, 3, 4]
    assert not [t for t in opt.trials if t.state == optuna.trial.TrialState.RUNNING]
    trials = search.trials_table(study)
    assert list(trials["trial"]) == [0, 1, 2, 3, 4] and trials["run_id"].is_unique
    assert len(runs.list_runs(runs_dir)) == 5 + 4, "each trial trained once, then 2 seeds of best and preset"
    pruned = trials[trials["status"] == rundir.PRUNED]
    assert len(pruned), f"no trial pruned: {trials.to_dict('records')}"
    for row in pruned.itertuples():
        assert opt.trials[row.trial].state == optuna.trial.TrialState.PRUNED
        lines = rundir.read_metric_lines(runs_dir / row.run_id)
        assert lines[0]["epoch"] == 1 and not lines[0].get(rundir.PARTIAL), "its whole epoch is kept"
        assert (runs_dir / row.run_id / rundir.MODEL).exists(), "a pruned trial is a run like any other"
    best = study["search"]["best"]
    done = trials[trials["status"] == "completed"]
    assert best["val_accuracy"] == pytest.approx(done["val acc"].max())
    seeds = search.seeds_table(study)
    assert list(seeds["settings"]) == ["preset", "best"] * 2 and list(seeds["seed"]) == [1, 1, 2, 2]
    assert (seeds["status"] == "completed").all() and seeds["test acc"].notna().all()
    for run_id in seeds[seeds["settings"] == "best"]["run_id"]:
        cfg = runs.load_run(runs_dir / run_id).meta["config"]
        assert cfg["learning_rate"] == pytest.approx(best["params"]["lr"]) and cfg["validation"] == "split"
    assert "test acc" not in trials.columns, "a search never reads a trial's test accuracy"
    summary = search.seeds_summary(seeds)
    assert list(summary["seeds"]) == [2, 2] and search.gain_text(seeds).startswith("The best settings minus")
    out = cli("study-report", study_dir.name, runs_dir=runs_dir)
    text = (study_dir / "report" / "report.md").read_text()
    assert "## Trials" in text and "## Seeds: the preset against the best settings" in text
    assert "| preset | 2 |" in text and "parallel" in text and (study_dir / "report" / "parallel.png").exists()
