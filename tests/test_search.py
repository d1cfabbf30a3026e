"""Search: the space parser, the refusals before anything exists, and a real tiny search (trials pruned, its driver
killed and resumed, the best retrained over seeds, the report)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

import pytest
from conftest import APP, ROOT, cli

from cifar_core import data
from cifar_core.model import shapes, space, specs
from cifar_core.model.config import TrainConfig
from cifar_core.store import rundir, runs
from cifar_core.studies import records, search, search_results


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


TINY_SEARCH_GROUP = pytest.mark.xdist_group("tiny_search")
TRIALS = 4


@pytest.fixture(scope="session")  # not module: xdist interleaves modules on a worker, and would build it twice
def tiny_search(tmp_path_factory) -> tuple[Path, Path, str]:
    """A real search on synthetic data: four trials of two epochs, its driver killed while the second trial trains
    and the study resumed from the command line, then the best and the preset over 2 seeds."""
    runs_dir = tmp_path_factory.mktemp("search") / "runs"
    out = cli("study", "search", "--data", "synthetic", "--space", "lr=1e-4..1:log, width=0.5..1, batch_size=16|32",
              "--trials", str(TRIALS), "--epochs", "2", "--patience", "0", "--seeds-for-best", "2", "--detach",
              runs_dir=runs_dir)
    study_dir = Path(out.stdout.strip().splitlines()[0])
    try:
        _second_trial_training(study_dir)
        _kill(records.read(study_dir)["pid"])
        time.sleep(0.5)
        assert records.status(records.read(study_dir)) == "interrupted"
        out = cli("study-resume", study_dir.name, runs_dir=runs_dir, timeout=600)
    finally:
        _kill(records.read(study_dir).get("pid"))
    return study_dir, runs_dir, out.stdout


@TINY_SEARCH_GROUP
def test_tiny_search_prunes_resumes_and_retrains_the_best(tiny_search):
    """A weak trial is pruned (its epochs kept); the resumed driver continued the same Optuna study (every trial
    once, none lost or doubled); the best and the preset were retrained over 2 fresh seeds; the report has it all."""
    import optuna

    study_dir, runs_dir, stdout = tiny_search
    assert f"study {study_dir.name}: completed" in stdout and "Best settings (trial" in stdout
    study = records.read(study_dir)
    opt = search.optuna_study(study_dir)
    assert [t.number for t in opt.trials] == list(range(TRIALS))
    assert not [t for t in opt.trials if t.state == optuna.trial.TrialState.RUNNING]
    trials = search_results.trials_table(study)
    assert list(trials["trial"]) == list(range(TRIALS)) and trials["run_id"].is_unique
    assert len({tuple(sorted(t.params.items())) for t in opt.trials}) == TRIALS, "the resumed sampler drew anew"
    assert len(runs.list_runs(runs_dir)) == TRIALS + 4, "each trial trained once, then 2 seeds of best and preset"
    pruned = trials[trials["status"] == rundir.PRUNED]
    assert len(pruned), f"no trial pruned: {trials.to_dict('records')}"
    for row in pruned.itertuples():
        assert opt.trials[row.trial].state == optuna.trial.TrialState.PRUNED
        lines = rundir.read_metric_lines(runs_dir / row.run_id)
        assert lines[0]["epoch"] == 1 and not lines[0].get(rundir.PARTIAL), "its whole epoch is kept"
        assert (runs_dir / row.run_id / rundir.MODEL).exists(), "a pruned trial is a run like any other"
        assert runs.load_run(runs_dir / row.run_id).meta["tags"] == [study_dir.name, "trial"]
    best = study["search"]["best"]
    done = trials[trials["status"] == "completed"]
    assert best["val_accuracy"] == pytest.approx(done["val acc"].max())
    seeds = search_results.seeds_table(study)
    assert list(seeds["settings"]) == ["preset", "best"] * 2 and list(seeds["seed"]) == [1, 1, 2, 2]
    assert (seeds["status"] == "completed").all() and seeds["test acc"].notna().all()
    for run_id in seeds[seeds["settings"] == "best"]["run_id"]:
        cfg = runs.load_run(runs_dir / run_id).meta["config"]
        assert cfg["learning_rate"] == pytest.approx(best["params"]["lr"]) and cfg["validation"] == "split"
    assert "test acc" not in trials.columns, "a search never reads a trial's test accuracy"
    summary = search_results.seeds_summary(seeds)
    assert list(summary["seeds"]) == [2, 2] and search_results.gain_text(seeds).startswith("The best settings minus")
    cli("study-report", study_dir.name, runs_dir=runs_dir)
    text = (study_dir / "report" / "report.md").read_text()
    assert "## Trials" in text and "## Seeds: the preset against the best settings" in text
    assert "| preset | 2 |" in text and (study_dir / "report" / "parallel.png").exists()


@TINY_SEARCH_GROUP
def test_experiments_page_shows_a_search(tiny_search, monkeypatch):
    from streamlit.testing.v1 import AppTest

    study_dir, runs_dir, _ = tiny_search
    monkeypatch.setenv("CIFAR_LAB_RUNS", str(runs_dir))
    monkeypatch.setenv("CIFAR_LAB_DATA", "synthetic")
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    at.switch_page("views/experiments.py").run()
    assert not at.exception, [e.message for e in at.exception]
    assert [s.value for s in at.subheader] == ["Trials", "Seeds: the preset against the best settings"]
    tables = {tuple(d.value.columns)[:2]: d.value for d in at.dataframe}
    trials = tables[("trial", "status")]
    assert len(trials) == TRIALS and "test acc" not in trials.columns and "val acc" in trials.columns
    assert list(tables[("settings", "seeds")]["seeds"]) == [2, 2]
    shown = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
    titles = [json.dumps(c.get("title")) for c in shown]
    assert any("so far" in t for t in titles) and any("coloured by validation accuracy" in t for t in titles)
    assert any("Importance" in t for t in titles)
    assert any("The best settings minus the preset" in m.value for m in at.markdown)
    at.radio(key="study_kind").set_value("search").run()
    at.text_input(key="search_space").input("lr=0..1e-1:log, width=0.5..2").run()
    assert "a log scale needs a low above 0" in at.error[0].value and at.button(key="start_search").disabled
    at.text_input(key="search_space").input("width=0.5..2").run()
    assert not at.error and "x2 899,594 parameters" in "\n".join(c.value for c in at.caption)
