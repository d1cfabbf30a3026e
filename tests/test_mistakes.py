"""Model or label: embeddings, nearest neighbours, the map and likely label errors, on real tiny runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import cli

from cifar_core.analysis import labelissues, mistakes_map, neighbours, projection
from cifar_core.dashboard import model_or_label
from cifar_core.store import embeddings, rundir


def test_embeddings_are_the_final_layers_input_for_test_and_held_out_images(finished_run):
    from cifar_core import data
    from cifar_core.engine import pipeline, trainer
    from cifar_core.model.config import TrainConfig

    test, val = embeddings.read(finished_run)
    meta = rundir.read_run_json(finished_run)
    arrays = pipeline.prepare_data(data.load_dataset("synthetic"), TrainConfig.from_dict(meta["config"]))
    model = trainer.load_model(finished_run)
    direct = arrays["x_test"]
    for layer in model.layers[:-1]:  # everything before the final Dense layer, run by hand
        direct = layer(direct, training=False)
    # bfloat16 layers (mixed precision where the CPU has native bf16) round to about 3 digits
    np.testing.assert_allclose(test.vectors.astype(np.float32), np.asarray(direct, np.float32), rtol=2e-2, atol=3e-2)
    np.testing.assert_array_equal(test.index, rundir.read_predictions(finished_run)["index"])
    # the validation images are training-set images the run never trained on, with their labels and probabilities
    assert val is not None and not set(val.index) & set(arrays["train_index"])
    np.testing.assert_array_equal(val.labels, data.load_dataset("synthetic").y_train[val.index])
    np.testing.assert_allclose(val.probs.astype(np.float32).sum(1), 1, atol=1e-2)


def test_nearest_neighbours_equal_a_brute_force_search():
    rng = np.random.default_rng(1)
    vectors, query = rng.normal(size=(300, 12)).astype(np.float16), rng.normal(size=12)
    found = neighbours.Index(vectors, np.arange(1000, 1300), rng.integers(0, 10, 300)).nearest(query, 8)
    brute = np.argsort(np.linalg.norm(vectors.astype(np.float32) - query.astype(np.float32), axis=1))[:8]
    np.testing.assert_array_equal(found["position"], brute + 1000)
    assert found["distance"].is_monotonic_increasing
    assert neighbours.summary(found.assign(label=[5, 5, 3, 5, 3, 5, 5, 5]), list("abcdefghij")) == "6 f, 2 d"


def test_label_issues_find_the_labels_that_were_flipped():
    from sklearn.datasets import make_blobs
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    x, y = make_blobs(2000, n_features=8, centers=10, cluster_std=1.0, random_state=0)
    rng = np.random.default_rng(0)
    flipped = rng.choice(len(y), 60, replace=False)
    noisy = y.copy()
    noisy[flipped] = (y[flipped] + rng.integers(1, 10, len(flipped))) % 10
    probs = cross_val_predict(LogisticRegression(max_iter=500), x, noisy, cv=5, method="predict_proba")
    # two "runs" that judged the images in a different order average to the same judgement
    order = rng.permutation(len(y))
    judged = labelissues.average("test", ["a", "b"], [np.arange(len(y)), order], [noisy, noisy[order]],
                                 [probs, probs[order]])
    found = labelissues.find(judged)
    caught = set(found.loc[found["flagged"], "position"])
    recall, precision = len(caught & set(flipped)) / len(flipped), len(caught & set(flipped)) / len(caught)
    assert recall >= 0.9 and precision >= 0.8, (recall, precision)
    suggested = found.set_index("position").loc[list(caught & set(flipped)), "suggested"]
    assert (suggested.to_numpy() == y[suggested.index]).mean() >= 0.9  # and the suggested label is the true one
    s = labelissues.summarize(found, 2)
    assert s.flagged == len(caught) and s.accuracy_set_aside > s.accuracy
    with pytest.raises(labelissues.LabelIssuesError, match="different labels"):
        labelissues.average("test", ["a", "b"], [np.arange(10), np.arange(10)], [np.zeros(10, int), np.ones(10, int)],
                            [np.full((10, 2), 0.5)] * 2)
    # one run judges with its own predictions: its float16 probabilities tie where its float32 ones did not
    tied = np.tile(np.float16([0.5, 0.5]), (2000, 1))
    alone = labelissues.find(labelissues.average("test", ["a"], [np.arange(2000)], [y % 2], [tied], [y % 2]))
    assert labelissues.summarize(alone, 1).accuracy == 1.0


def test_the_map_keeps_classes_together_and_selects_a_region():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 60)
    vectors = rng.normal(size=(240, 16)) + 6 * np.eye(16)[labels]
    xy = projection.project(vectors, "tsne")
    assert xy.shape == (240, 2) and projection.neighbour_agreement(xy, labels) > 0.9
    preds = {"index": np.arange(240), "y_true": labels, "y_pred": labels, "probs": np.eye(4)[labels]}
    points = mistakes_map.frame(preds, embeddings.Embeddings(vectors, np.arange(240)), xy, list("abcd"))
    region = {"x": [float(xy[:, 0].min()), float(np.median(xy[:, 0]))], "y": [-1e9, 1e9]}
    assert 0 < len(mistakes_map.in_region(points, region)) < 240 and mistakes_map.in_region(points, None).empty


def test_cli_embeds_an_older_run_then_maps_finds_neighbours_and_label_issues(finished_run, tmp_path):
    runs_dir = tmp_path / "runs"
    run = runs_dir / finished_run.name
    shutil.copytree(finished_run, run)
    for name in (rundir.EMBEDDINGS, rundir.TRAIN_EMBEDDINGS, rundir.MAP):
        (run / name).unlink(missing_ok=True)  # as a run from before embeddings has it
    out = cli("embed", run.name, "--train", "--map", runs_dir=runs_dir)
    assert "test embeddings" in out.stdout and embeddings.read_map(run)[1] == projection.CHOSEN
    image = int(embeddings.read(run)[0].index[3])
    out = cli("neighbours", run.name, str(image), "--out", str(tmp_path / "nb.png"), runs_dir=runs_dir)
    assert f"test #{image}: labelled" in out.stdout and out.stdout.count("  train #") == 8
    assert (tmp_path / "nb.png").stat().st_size > 1000
    out = cli("map", run.name, "--out", str(tmp_path / "map.png"), runs_dir=runs_dir)
    assert (tmp_path / "map.png").read_bytes()[:4] == b"\x89PNG" and "test images" in out.stdout
    out = cli("label-issues", run.name, run.name, "--out", str(tmp_path / "issues.csv"), runs_dir=runs_dir)
    assert "test:" in out.stdout and "validation:" in out.stdout and (tmp_path / "issues.csv").exists()
    bad = cli("neighbours", run.name, "999999", runs_dir=runs_dir, check=False)
    assert bad.returncode == 2 and "has no test image #999999" in bad.stderr
    assert json.loads((run / rundir.RUN_JSON).read_text())["status"] == "completed"


@pytest.fixture(scope="module")
def ten_thousand(tmp_path_factory) -> tuple[Path, Path]:
    """(runs folder, data folder): a real tiny run evaluated on 10,000 test images (CIFAR-10's test-set size)."""
    from test_data import write_batches

    from cifar_core import data

    root = tmp_path_factory.mktemp("ten-thousand")
    source = write_batches(root / "batches", data.synthetic_dataset(n_train=500, n_test=10_000, seed=5))
    cli("train", "--arch", "baseline", "--data", str(source), "--epochs", "1", "--subset", "400",
        "--name", "big-test", runs_dir=root / "runs")
    return root / "runs", source


def test_the_map_view_draws_10000_points_and_shows_a_region(ten_thousand, monkeypatch):
    from conftest import APP, ROOT
    from streamlit.testing.v1 import AppTest

    runs_dir, source = ten_thousand
    monkeypatch.setenv("CIFAR_LAB_RUNS", str(runs_dir))
    monkeypatch.setenv("CIFAR_LAB_DATA", str(source))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    at.switch_page("views/misclassified.py")
    at.session_state["mis_view"] = "map"
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    points = [_rows(c.proto) for c in at.get("vega_lite_chart")]
    assert 10_000 in points, f"the map's 10,000 points (the charts' data sets: {points})"
    assert any("quick PCA placement" in c.value for c in at.caption)  # until the t-SNE map is made
    assert any(b.label == "Make the t-SNE map" for b in at.button)
    run_id = next(p.name for p in runs_dir.iterdir() if p.is_dir())
    at.session_state[f"map_{run_id}"] = {"selection": {"region": {"x": [-1e9, 1e9], "y": [-1e9, 1e9]}}}
    at.run()
    assert any("**10,000** images in the region" in m.value for m in at.markdown)
    assert len(at.get("image")) == model_or_label.MAX_SHOWN, "the region's first images, with their probabilities"



def _rows(chart) -> int:
    """How many rows a chart's data carries (Streamlit sends a spec's inline values as an Arrow table)."""
    import pyarrow as pa

    if chart.data.data:
        return pa.ipc.open_stream(chart.data.data).read_all().num_rows
    return len(json.loads(chart.spec).get("data", {}).get("values", []))


def test_the_embeddings_benchmark_runs_on_a_run(finished_run):
    import subprocess
    import sys

    from conftest import ROOT

    out = subprocess.run([sys.executable, "benchmarks/embeddings.py", str(finished_run), "--methods", "pca"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "CPU: " in out.stdout and "project pca" in out.stdout and "one 8-nearest query" in out.stdout
    assert embeddings.read_map(finished_run) is None, "it works on a copy: the run itself is left as it was"
