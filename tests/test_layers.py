"""Inside the network (issue 23): layer records equal direct computations, and every view of them opens."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import APP, ROOT, cli
from streamlit.testing.v1 import AppTest

from cifar_core.analysis import layers as layer_stats
from cifar_core.model.specs import PRESETS
from cifar_core.store import rundir


@pytest.fixture(scope="module")
def keras_parts():
    from cifar_core.engine import layerrecords, runtime

    tf = runtime.tensorflow()
    import keras

    return tf, keras, layerrecords


def test_gradient_norms_equal_a_direct_gradient_tape(keras_parts):
    tf, keras, layerrecords = keras_parts
    from cifar_core.engine.models import build_model

    keras.utils.set_random_seed(1)
    model = build_model(PRESETS["batchnorm"], 10)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (32, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 32)
    record, _ = layerrecords.take(model, x, y, None, 0.0, 0)
    with tf.GradientTape() as tape:
        probs = model(tf.constant(x), training=False)
        loss = tf.reduce_mean(keras.losses.categorical_crossentropy(tf.one_hot(y, 10), probs))
    by_name = {e["name"]: e for e in record["layers"]}
    grads = tape.gradient(loss, model.trainable_weights)
    for layer in model.layers:
        own = [g for v, g in zip(model.trainable_weights, grads, strict=True) if v.path.startswith(layer.name + "/")]
        if own:
            expected = float(np.sqrt(sum(np.sum(np.square(np.asarray(g, np.float64))) for g in own)))
            assert by_name[layer.name]["grad_norm"] == pytest.approx(expected, rel=1e-4), layer.name
    assert record["probe_loss"] == pytest.approx(float(loss), rel=1e-5)
    assert [e["kind"] for e in record["layers"]][:2] == ["Conv2D", "BatchNormalization"]
    assert by_name["block1_conv"]["act"]["quantiles"][0] >= 0, "conv -> BN -> ReLU shows the ReLU's output"


def test_dead_channels_and_quantiles_of_a_model_built_to_have_them(keras_parts):
    _, keras, layerrecords = keras_parts
    conv = keras.layers.Conv2D(4, 1, name="conv")
    model = keras.Sequential([keras.Input((4, 4, 3)), conv, keras.layers.ReLU(name="relu"),
                              keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax", name="out")])
    kernel = np.zeros((1, 1, 3, 4), np.float32)
    kernel[0, 0, 0, :] = 1.0
    conv.set_weights([kernel, np.array([-1000.0, -1000.0, 0.5, 1.0], np.float32)])  # two channels always off
    x = np.full((8, 4, 4, 3), 2, np.uint8)
    record, _ = layerrecords.take(model, x, np.zeros(8, int), None, 0.0, 0)
    act = record["layers"][0]["act"]
    assert act["dead"] == 0.5
    values = np.concatenate([np.zeros((128, 2)), np.full((128, 1), 2.5), np.full((128, 1), 3.0)], axis=1)
    assert act["quantiles"] == pytest.approx(list(np.quantile(values, layer_stats.QUANTILES)))
    assert act["mean"] == pytest.approx(values.mean()) and act["std"] == pytest.approx(values.std())


def test_relative_update_and_sentences():
    before, now = [np.ones(4)], [np.ones(4) * 1.5]
    assert layer_stats.relative_change(now, before) == pytest.approx(0.5)
    assert layer_stats.relative_change(now, None) is None
    act = {"mean": 1, "std": 1, "quantiles": []}
    record = {"epoch": 10.0, "step": 1, "layers": [
        {"name": "block1_conv", "kind": "Conv2D", "order": 0, "act": {**act, "dead": 0.38}, "grad_norm": 1e-4},
        {"name": "dense1", "kind": "Dense", "order": 1, "act": {**act, "dead": 0.0}, "grad_norm": 1.0}]}
    said = layer_stats.sentences([record])
    assert "block1_conv: 38% of its channels dead at epoch 10" in said[0]
    assert "1.0e-04 of the one at dense1" in said[1]
    text = layer_stats.text_table(record).set_index("layer")
    assert text.loc["block1_conv", "dead"] == "38%" and text.loc["dense1", "grad norm"] == "1"
    assert text.loc["block1_conv", "bn mean drift"] == layer_stats.NOT_APPLICABLE, "no batch norm: no drift"


def test_the_cli_prints_the_per_layer_table(finished_run, runs_root):
    out = cli("layers", finished_run.name, runs_dir=runs_root).stdout
    assert "after 3 epochs (record 7 of 7" in out and "block1_conv" in out and "grad norm" in out
    start = cli("layers", finished_run.name, "--epoch", "0", runs_dir=runs_root).stdout
    assert "before training" in start
    records = json.loads(cli("layers", finished_run.name, "--json", runs_dir=runs_root).stdout)
    epochs = [r["epoch"] for r in records]
    assert epochs[0] == 0 and epochs[-3:] == [1, 2, 3] and len(epochs) == 7, epochs
    assert all(0 < e < 1 for e in epochs[1:4]) and epochs == sorted(epochs), "three within the first epoch"


@pytest.fixture
def layer_runs(finished_run, tmp_path) -> Path:
    """The finished run, a copy without layer records (an older run) and one with a damaged file."""
    root = tmp_path / "runs"
    for name, damage in (("with-records", None), ("older-run", "missing"), ("damaged-records", "garbage")):
        run_dir = Path(shutil.copytree(finished_run, root / name))
        meta = json.loads((run_dir / rundir.RUN_JSON).read_text())
        (run_dir / rundir.RUN_JSON).write_text(json.dumps({**meta, "id": name, "name": name}))
        if damage == "missing":
            (run_dir / rundir.LAYERS).unlink()
        elif damage == "garbage":
            (run_dir / rundir.LAYERS).write_text("not json\n")
    return root


def _open(runs_dir: Path, monkeypatch, page: str) -> AppTest:
    monkeypatch.setenv("CIFAR_LAB_RUNS", str(runs_dir))
    monkeypatch.setenv("CIFAR_LAB_DATA", "synthetic")
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_inside_the_network_on_runs_with_old_and_damaged_records(layer_runs, monkeypatch):
    at = _open(layer_runs, monkeypatch, "runs")
    for name, expected in (("with-records", "first conv layer's 32 filters"), ("older-run", "kept no layer records"),
                           ("damaged-records", "cannot be read")):
        at.selectbox(key="open_run").select(name).run()
        at.radio(key="run_view").set_value("Inside the network").run()
        assert not at.exception, [e.message for e in at.exception]
        shown = " ".join(str(e.value) for e in [*at.caption, *at.warning, *at.info, *at.markdown])
        shown += " ".join(c for e in at.main if type(e).__name__ == "Image" for c in e.captions)
        assert expected in shown, (name, shown[:500])
    at.selectbox(key="open_run").select("with-records").run()
    at.radio(key="run_view").set_value("Inside the network").run()
    specs = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
    shown = " ".join(json.dumps(s) for s in specs)
    assert "gradient norm, layer by layer" in shown and "activations at 3" in shown
    at.select_slider(key="layer_epoch_with-records").set_value(0.0).run()
    assert not at.exception and any("activations at 0" in c.proto.spec for c in at.get("vega_lite_chart"))


def test_compare_shows_the_layers_side_by_side(layer_runs, monkeypatch):
    at = _open(layer_runs, monkeypatch, "compare")
    assert any("Inside the network" in s.value for s in at.subheader)
    specs = [c.proto.spec for c in at.get("vega_lite_chart")]
    assert any("at each run's last record" in s for s in specs), "gradient norm by depth, a line per run"
