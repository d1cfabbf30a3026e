"""Runs as a lab notebook: tags, notes, filters and the pinned baseline, in the core, the CLI and the dashboard."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import APP, ROOT, cli
from streamlit.testing.v1 import AppTest

from cifar_core.store import rundir, runs


@pytest.fixture
def two_runs(tmp_path, finished_run):
    """Two copies of a finished run (ids a-run and b-run) in a fresh runs folder."""
    root = tmp_path / "runs"
    for name in ("a-run", "b-run"):
        shutil.copytree(finished_run, root / name)
        rundir.update_json(root / name, rundir.RUN_JSON, id=name, name=name)
    return root


def test_tags_notes_and_one_pinned_baseline(two_runs):
    a, b = (runs.find_run(two_runs, n) for n in ("a-run", "b-run"))
    assert runs.set_tags(a, ["augment", "for-class"]) == ["augment", "for-class"]
    assert runs.set_tags(runs.load_run(a.path), ["v2"], remove=["augment"]) == ["for-class", "v2"]
    with pytest.raises(runs.RunError, match="must be 1-32 characters"):
        runs.set_tags(a, ["Bad Tag"])
    with pytest.raises(runs.RunError, match="at most 4,000 characters"):
        runs.set_note(a, "x" * 4001)
    runs.set_note(a, "  first try with flips  ")
    assert runs.load_run(a.path).meta["note"] == "first try with flips"
    runs.pin_baseline(two_runs, a)
    runs.pin_baseline(two_runs, runs.load_run(b.path))
    infos = runs.list_runs(two_runs)
    assert [r.run_id for r in runs.pinned_first(infos)][0] == "b-run"
    assert [r.run_id for r in infos if r.meta.get("pinned")] == ["b-run"]
    assert [r.run_id for r in runs.filter_runs(infos, tags=["v2"])] == ["a-run"]
    assert runs.filter_runs(infos, tags=["v2", "nope"]) == []
    assert len(runs.filter_runs(infos, statuses=["completed"], data_kinds=["synthetic"])) == 2


def test_a_bad_tag_written_by_hand_makes_the_run_damaged(two_runs):
    meta = json.loads((two_runs / "a-run" / "run.json").read_text())
    (two_runs / "a-run" / "run.json").write_text(json.dumps({**meta, "tags": ["<b>x</b>"]}))
    assert "tags" in runs.load_run(two_runs / "a-run").damaged


def test_cli_tag_note_pin_and_filter(two_runs):
    assert cli("tag", "a-run", "augment", "v1", runs_dir=two_runs).stdout.strip() == "a-run: augment v1"
    cli("note", "a-run", "flips help cats", runs_dir=two_runs)
    assert cli("pin", "b-run", runs_dir=two_runs).stdout.strip() == "baseline: b-run"
    listed = cli("runs", "--tag", "augment", runs_dir=two_runs).stdout
    assert "a-run" in listed and "b-run" not in listed and "augment v1" in listed
    shown = cli("show", "a-run", runs_dir=two_runs).stdout
    assert "tags: augment v1" in shown and "lab note: flips help cats" in shown
    bad = cli("tag", "a-run", "UPPER", runs_dir=two_runs, check=False)
    assert bad.returncode == 2 and "must be 1-32 characters" in bad.stderr
    assert cli("pin", runs_dir=two_runs, check=False).returncode == 2


def test_runs_page_filters_and_compare_puts_the_baseline_first(two_runs, monkeypatch):
    runs.set_tags(runs.find_run(two_runs, "a-run"), ["augment"])
    runs.pin_baseline(two_runs, runs.find_run(two_runs, "b-run"))
    monkeypatch.setenv("CIFAR_LAB_RUNS", str(two_runs))
    monkeypatch.setenv("CIFAR_LAB_DATA", "synthetic")
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT))
    at = AppTest.from_file(str(APP), default_timeout=60).run().switch_page("views/runs.py").run()
    assert len(at.dataframe[0].value) == 2
    at.multiselect(key="f_tags").set_value(["augment"]).run()
    assert list(at.dataframe[0].value["id"]) == ["a-run"] and not at.exception
    at.switch_page("views/compare.py").run()
    assert at.multiselect(key="compare_runs").value[0] == "b-run"
    assert list(at.dataframe[0].value["run"])[0] == "b-run"
