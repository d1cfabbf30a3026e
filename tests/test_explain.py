"""Why is it wrong: calibration against hand computations, Grad-CAM and feature maps on a real tiny model,
disagreements against two runs' predictions, and the `explain` and `show` commands."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import cli

from cifar_core import data
from cifar_core.analysis import calibration, compare, scores, stats
from cifar_core.engine import explain
from cifar_core.store import rundir

# Six images, three classes; with 5 bins the confidences 0.5/0.45, 0.7/0.75 and 0.9/0.9 share bins.
PROBS = np.array([[0.9, 0.05, 0.05], [0.7, 0.2, 0.1], [0.1, 0.75, 0.15], [0.5, 0.3, 0.2], [0.2, 0.35, 0.45],
                  [0.05, 0.05, 0.9]])
Y = np.array([0, 1, 1, 0, 0, 2])


def test_ece_and_reliability_bins_match_a_hand_computed_example():
    bins = calibration.reliability(Y, PROBS, n_bins=5)
    assert bins["count"].tolist() == [2, 2, 2]
    assert bins["confidence"].tolist() == pytest.approx([0.475, 0.725, 0.9])
    assert bins["accuracy"].tolist() == pytest.approx([0.5, 0.5, 1.0])
    by_hand = (abs(0.5 - 0.475) + abs(0.5 - 0.725) + abs(1.0 - 0.9)) * 2 / 6
    assert calibration.expected_calibration_error(Y, PROBS, n_bins=5) == pytest.approx(by_hand)
    assert calibration.expected_calibration_error(Y, np.eye(3)[Y]) == 0.0, "sure and always right: calibrated"


def independent_ece(hit: np.ndarray, prob: np.ndarray, n_bins: int) -> float:
    """ECE by a plain loop over right-closed equal-width bins (how calibration_curve bins), written apart."""
    total = 0.0
    for b in range(n_bins):
        low, high = b / n_bins, (b + 1) / n_bins
        inside = (prob > low) & (prob <= high) if b else (prob <= high)
        if inside.any():
            total += inside.sum() / len(prob) * abs(hit[inside].mean() - prob[inside].mean())
    return total


def test_ece_and_classwise_ece_equal_an_independent_computation():
    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.full(10, 0.4), size=3000)
    y = np.where(rng.random(3000) < 0.6, probs.argmax(1), rng.integers(0, 10, 3000))
    top = probs.max(1)
    assert calibration.expected_calibration_error(y, probs) == pytest.approx(
        independent_ece(probs.argmax(1) == y, top, calibration.BINS), abs=1e-12)
    per_class = calibration.classwise_ece(y, probs, [str(k) for k in range(10)])
    for k in range(10):
        assert per_class["ece"][k] == pytest.approx(independent_ece(y == k, probs[:, k], calibration.BINS), abs=1e-12)
    hist = calibration.confidence_histogram(y, probs)
    wrong = hist[hist["outcome"] == "wrong"]["count"].sum()
    assert hist["count"].sum() == 3000 and wrong == (probs.argmax(1) != y).sum()


def test_disagreements_count_what_the_two_runs_predicted():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 400)
    pred_a = np.where(rng.random(400) < 0.7, y, rng.integers(0, 10, 400))
    probs_b = rng.dirichlet(np.ones(10), 400)
    preds_a = {"index": np.arange(400), "y_true": y, "y_pred": pred_a, "probs": np.eye(10)[pred_a] * 0.9 + 0.01}
    preds_b = {"index": np.arange(400), "y_true": y, "y_pred": probs_b.argmax(1), "probs": probs_b}
    pair = stats.paired(preds_a, preds_b)
    names = [str(k) for k in range(10)]
    counts = compare.disagreement_counts(pair, names, "A", "B")
    right_a, right_b = pred_a == y, preds_b["y_pred"] == y
    for k in range(10):
        row = counts[counts["class"] == str(k)].set_index("who")["images"]
        assert row["only A right"] == ((y == k) & right_a & ~right_b).sum()
        assert row["only B right"] == ((y == k) & ~right_a & right_b).sum()
    test = stats.mcnemar(right_a, right_b)
    assert counts.groupby("who")["images"].sum().tolist() == [test.only_a, test.only_b]
    only_a = compare.disagreements(pair, "a")
    assert set(only_a) == set(np.flatnonzero(right_a & ~right_b))
    confidence_b = preds_b["probs"][only_a].max(1)
    assert (np.diff(confidence_b) <= 0).all(), "the other run's surest mistakes first"


@pytest.fixture(scope="module")
def tiny_model(finished_run):
    from cifar_core.engine import trainer

    return trainer.load_model(finished_run)


def test_grad_cam_maps_have_the_image_size_are_finite_and_not_constant(tiny_model, finished_run):
    preds = rundir.read_predictions(finished_run)
    images = data.load_dataset("synthetic").x_test[preds["index"][:12]]
    layer = explain.default_layer(tiny_model)
    assert layer == explain.conv_outputs(tiny_model)[-1] == "block3_relu"
    cam = explain.GradCam(tiny_model, layer)
    predicted = preds["y_pred"][:12]
    maps = cam(np.concatenate([images, images]), np.r_[predicted, (predicted + 1) % 10])
    assert maps.shape == (24, 32, 32) and np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
    assert (maps[:12].reshape(12, -1).std(axis=1) > 0).all(), "a trained model finds its class somewhere in particular"
    assert not np.allclose(maps[:12], maps[12:]), "another class draws on other evidence (or none: all zero)"
    strips = explain.evidence_strips(images, maps)
    assert strips[0].shape == (32, 96, 3) and strips[0].dtype == np.uint8
    with pytest.raises(ValueError, match="no layer 'nope'"):
        explain.GradCam(tiny_model, "nope")


def test_feature_maps_of_every_conv_layer(tiny_model):
    image = data.load_dataset("synthetic").x_test[0]
    maps = explain.activations(tiny_model, image, explain.conv_outputs(tiny_model))
    assert {k: v.shape for k, v in maps.items()} == {"block1_relu": (32, 32, 32), "block2_relu": (16, 16, 64),
                                                     "block3_relu": (8, 8, 128)}
    strongest = explain.strongest_channels(maps["block2_relu"])
    assert strongest.shape == (16, 16, explain.TILE_CHANNELS)
    assert (np.diff(strongest.mean(axis=(0, 1))) <= 0).all()
    assert explain.tile(strongest).shape == (2 * 17 - 1, 8 * 17 - 1)


def test_explain_writes_a_png_sheet(finished_run, runs_root, tmp_path):
    from PIL import Image

    from cifar_core.store import runs

    report = rundir.read_report(finished_run)
    top = scores.top_confusions(report, 1)
    true, predicted = (top["true"][0], top["predicted"][0]) if len(top) else ("cat", "cat")
    out = cli("explain", finished_run.name, "--true", true, "--pred", predicted, "--out", str(tmp_path),
              runs_dir=runs_root)
    png = Path(out.stdout.strip().rsplit(": ", 1)[1])
    assert png.parent == tmp_path and Image.open(png).size[0] > 600
    with pytest.raises(runs.RunError, match="No class 'kitten'; the classes are airplane"):
        explain.misclassified_sheet(finished_run, data.load_dataset("synthetic"), "kitten", "dog")
