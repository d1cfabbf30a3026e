"""Evaluation from arrays: report, confusions, misclassified selection."""

from __future__ import annotations

import numpy as np

from cifar_core.analysis import scores
from cifar_core.store import rundir

NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def make_preds():
    y_true = np.array([3, 3, 3, 3, 5, 5, 0, 0])
    y_pred = np.array([3, 5, 5, 0, 3, 5, 0, 0])
    probs = np.full((8, 10), 0.01, dtype=np.float32)
    conf = [0.9, 0.8, 0.55, 0.6, 0.7, 0.9, 0.95, 0.99]
    for i, (p, c) in enumerate(zip(y_pred, conf, strict=True)):
        probs[i, p] = c
    return y_true, y_pred, probs


def test_report_matches_hand_count():
    y_true, y_pred, _ = make_preds()
    report = scores.build_report(y_true, y_pred, NAMES)
    assert report["accuracy"] == 4 / 8
    assert scores.cell(report, "cat", "dog") == 2 and scores.cell(report, "dog", "cat") == 1
    cat = next(r for r in report["per_class"] if r["class"] == "cat")
    assert cat["support"] == 4 and cat["recall"] == 0.25 and cat["precision"] == 0.5
    assert np.asarray(report["confusion_matrix"]).sum() == 8


def test_top_confusions_and_difference():
    y_true, y_pred, _ = make_preds()
    a = scores.build_report(y_true, y_pred, NAMES)
    top = scores.top_confusions(a, 3)
    assert list(top.iloc[0][["true", "predicted", "count"]]) == ["cat", "dog", 2]
    b = scores.build_report(y_true, np.where(y_pred == 5, 3, y_pred), NAMES)
    diff = scores.confusion_difference(a, b).set_index(["true", "predicted"])["change"]
    assert diff[("cat", "dog")] == -2 and diff[("cat", "cat")] == 2


def test_the_page_opens_on_cat_as_dog_where_the_run_makes_that_mistake():
    y_true, y_pred, _ = make_preds()
    assert scores.default_pair(scores.build_report(y_true, y_pred, NAMES)) == ("cat", "dog")
    never = scores.build_report(y_true, np.where(y_pred == NAMES.index("dog"), y_true, y_pred), NAMES)
    top = scores.top_confusions(never, 1).iloc[0]
    assert scores.default_pair(never) == (top["true"], top["predicted"]) != ("cat", "dog")
    perfect = scores.build_report(y_true, y_true, NAMES)
    assert scores.default_pair(perfect) == (NAMES[0], NAMES[1])


def test_confusion_frame_normalises_rows():
    y_true, y_pred, _ = make_preds()
    frame = scores.confusion_frame(scores.build_report(y_true, y_pred, NAMES), normalize=True)
    sums = frame.groupby("true")["value"].sum()
    assert np.isclose(sums["cat"], 1.0) and sums["bird"] == 0


def test_misclassified_sorted_by_confidence(tmp_path):
    y_true, _, probs = make_preds()
    scores.save_predictions(tmp_path / rundir.PREDICTIONS, y_true, probs)
    preds = rundir.read_predictions(tmp_path)
    assert preds["probs"].dtype == np.float16
    sure = scores.misclassified(preds, true=3, predicted=5)
    assert list(sure["index"]) == [1, 2]
    assert list(scores.misclassified(preds, 3, 5, sort="unsure")["index"]) == [2, 1]
    assert scores.top_k(probs[1], list(NAMES), 2)[0] == ("dog", np.float32(0.8).item())
