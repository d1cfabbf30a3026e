"""What changed between two models, and the speed figure every view shares."""

from __future__ import annotations

import json

from cifar_core.analysis import compare
from cifar_core.model import specs
from cifar_core.store import rundir, runs


def meta(spec) -> dict:
    """A run.json's settings as read back from the file (JSON lists, not the spec's tuples)."""
    return {"spec": json.loads(spec.to_json()), "config": {"epochs": 30}, "data": {"source": "synthetic"}}


def test_settings_diff_names_each_difference_and_marks_missing_ones():
    diff = compare.settings_diff(meta(specs.depth_family(3)), meta(specs.depth_family(4, batch_norm=True)))
    rows = diff.set_index("setting")
    assert rows.loc["spec.name"].tolist() == ["depth3", "depth4-bn"]
    assert rows.loc["spec.blocks[1].batch_norm"].tolist() == ["False", "True"]
    assert rows.loc["spec.blocks[4]", "A"] == compare.NONE, "a block only B has is one row"
    assert rows.loc["spec.blocks[4]", "B"].startswith("filters=256, kernel_size=3")
    assert not rows.index.str.startswith("spec.blocks[4].").any()
    assert "config.epochs" not in rows.index
    said = [compare.setting_label(k) for k in ("spec.name", "spec.blocks[1].batch_norm", "spec.blocks[4]",
                                               "config.learning_rate", "data.source")]
    assert said == ["architecture", "block 1 · batch norm", "block 4", "learning rate", "data source"]


def test_beside_an_external_model_the_architecture_it_lacks_is_one_row_per_part():
    """An imported model no lab spec describes has only a name: its blocks and head are not 24 '(none)' rows."""
    external = {**meta(specs.PRESETS["baseline"]), "spec": rundir.EXTERNAL_SPEC,
                "imported": {"file": "model.keras"}}
    rows = compare.settings_diff(meta(specs.PRESETS["baseline"]), external).set_index("setting")
    assert list(rows.index) == ["spec.name", "spec.blocks", "spec.head", "config.trained"]
    assert (rows["B"] == compare.NONE).sum() == 2


def test_a_budgeted_run_differs_by_the_epochs_it_planned_not_its_ceiling():
    seed = meta(specs.PRESETS["fast"])
    fast = {**seed, "config": {"epochs": 1000, "time_budget": 600.0}, "planned_epochs": 4, "epochs_run": 4}
    rows = compare.settings_diff(seed, fast).set_index("setting")
    assert rows.loc["config.epochs"].tolist() == ["30", "4 trained of 4 planned for a 600 s budget"]


def test_a_setting_added_after_a_run_was_made_reads_as_its_default_there():
    """A run from before `bn_after_relu`, `pool_first` and `gpus` existed, beside one after: only the real changes
    show."""
    old = meta(specs.PRESETS["batchnorm"])
    for block in old["spec"]["blocks"]:
        del block["bn_after_relu"], block["pool_first"]
    new = {**meta(specs.PRESETS["batchnorm-after-relu"]), "config": {"epochs": 30, "gpus": 0}}
    rows = compare.settings_diff(old, new).set_index("setting")
    assert list(rows.index) == ["spec.name", *(f"spec.blocks[{i}].bn_after_relu" for i in (1, 2, 3))]
    assert rows.loc["spec.blocks[1].bn_after_relu"].tolist() == ["False", "True"]


def test_compare_uses_the_same_seconds_per_epoch_as_studies(finished_run):
    info = runs.load_run(finished_run)
    table = compare.metrics_table([info], {info.run_id: rundir.read_json(finished_run / "report.json")})
    assert table.loc[0, "s/epoch"] == runs.read_metrics(finished_run)["seconds"].mean()
    assert table.loc[0, "cat→dog"] is not None


def test_runs_that_differ_only_in_seed_are_told_apart_from_runs_that_differ_in_a_setting():
    """McNemar then separates two draws of the same settings, and the caveats say so."""
    from cifar_core.analysis import caveats

    a = meta(specs.PRESETS["baseline"])
    b = {**a, "config": {"epochs": 30, "seed": 1}}
    assert compare.only_seed_differs(a, b) and not compare.only_seed_differs(a, a)
    assert not compare.only_seed_differs(a, {**b, "spec": meta(specs.PRESETS["batchnorm"])["spec"]})
    timed = {**a, "config": {"time_budget": 600.0}, "planned_epochs": 4, "epochs_run": 4, "epochs_of_images": 3.6}
    again = {**timed, "config": {"time_budget": 600.0, "seed": 1}, "epochs_of_images": 3.4}
    assert compare.only_seed_differs(timed, again), "the epochs a budget fitted differ with the seed too"
    assert not compare.only_seed_differs(timed, {**again, "config": {"time_budget": 900.0, "seed": 1}})
    notes = caveats.for_pair(a, {**b, "config": {"epochs": 30, "seed": 1, "validation": "test"}}, True)
    assert notes == [f"1 of these 2 runs: {caveats.SEED_PROTOCOL}", caveats.SEED_ONLY, caveats.MODELS_NOT_SETTINGS]


def test_the_change_between_two_confusion_matrices_is_said_with_the_diagonal_and_the_right_direction():
    """A fall in a mistake is a gain; the diagonal (images right) was left out before."""
    from cifar_core.analysis import scores

    names = ["cat", "dog"]
    a = {"class_names": names, "confusion_matrix": [[60, 40], [10, 90]]}
    b = {"class_names": names, "confusion_matrix": [[75, 25], [13, 87]]}
    said = compare.change_summary(scores.confusion_difference(a, b), "B")
    assert said == ("B gets 12 test images more right, most gained in cat (+15), most lost in dog (-3). "
                    "Of its mistakes, cat taken for dog fell most (-15) and dog taken for cat rose most (+3).")
    same = compare.change_summary(scores.confusion_difference(a, a), "B")
    assert same == "B gets 0 test images more right."
