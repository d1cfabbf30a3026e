"""What changed between two models, and the speed figure every view shares."""

from __future__ import annotations

import json

from cifar_core import compare, rundir, runs, specs


def meta(spec) -> dict:
    """A run.json's settings as read back from the file (JSON lists, not the spec's tuples)."""
    return {"spec": json.loads(spec.to_json()), "config": {"epochs": 30}, "data": {"source": "synthetic"}}


def test_settings_diff_names_each_difference_and_marks_missing_ones():
    diff = compare.settings_diff(meta(specs.depth_family(3)), meta(specs.depth_family(4, batch_norm=True)))
    rows = diff.set_index("setting")
    assert rows.loc["spec.name"].tolist() == ["depth3", "depth4-bn"]
    assert rows.loc["spec.blocks[1].batch_norm"].tolist() == ["False", "True"]
    assert rows.loc["spec.blocks[4].filters"].tolist() == [compare.NONE, "256"]
    assert "config.epochs" not in rows.index


def test_a_setting_added_after_a_run_was_made_reads_as_its_default_there():
    """A run from before `bn_after_relu` and `gpus` existed, beside one after: only the real changes show."""
    old = meta(specs.PRESETS["batchnorm"])
    for block in old["spec"]["blocks"]:
        del block["bn_after_relu"]
    new = {**meta(specs.PRESETS["batchnorm-after-relu"]), "config": {"epochs": 30, "gpus": 0}}
    rows = compare.settings_diff(old, new).set_index("setting")
    assert list(rows.index) == ["spec.name", *(f"spec.blocks[{i}].bn_after_relu" for i in (1, 2, 3))]
    assert rows.loc["spec.blocks[1].bn_after_relu"].tolist() == ["False", "True"]


def test_compare_uses_the_same_seconds_per_epoch_as_studies(finished_run):
    info = runs.load_run(finished_run)
    table = compare.metrics_table([info], {info.run_id: rundir.read_json(finished_run / "report.json")})
    assert table.loc[0, "s/epoch"] == runs.read_metrics(finished_run)["seconds"].mean()
    assert table.loc[0, "cat→dog"] is not None
