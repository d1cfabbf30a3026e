"""Bring your own model: Keras models saved by plain Keras code become runs that every page shows."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import APP, ROOT, cli
from streamlit.testing.v1 import AppTest

from cifar_core import data
from cifar_core.analysis import compare
from cifar_core.engine import importing
from cifar_core.model import shapes, specs
from cifar_core.store import embeddings, rundir, runs

DATA = data.synthetic_dataset()


@pytest.fixture(scope="module")
def keras():
    from cifar_core.engine import runtime

    runtime.tensorflow()
    import keras

    return keras


def seed_style_model(keras, rescaling: bool):
    """A small CNN written as the seed notebook writes one: one-hot labels, categorical cross-entropy, and
    inputs scaled to [0, 1] by the caller, or (with `rescaling`) 0-255 inputs and a Rescaling layer inside."""
    from keras import layers

    keras.utils.set_random_seed(0)
    front = [layers.Rescaling(1 / 255)] if rescaling else []
    model = keras.Sequential([keras.Input((32, 32, 3)), *front,
                              layers.Conv2D(8, (3, 3), activation="relu", padding="same"), layers.MaxPooling2D((2, 2)),
                              layers.Flatten(), layers.Dense(16, activation="relu"), layers.Dropout(0.2),
                              layers.Dense(10, activation="softmax")])
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    scale = 1.0 if rescaling else 255.0
    model.fit(DATA.x_train / scale, keras.utils.to_categorical(DATA.y_train, 10), epochs=2, batch_size=64, verbose=0)
    return model, scale


@pytest.fixture(scope="module")
def seed_model(keras, tmp_path_factory) -> tuple[object, float, Path]:
    """The seed-style model (inputs in [0, 1]), trained once and saved for the tests that import it."""
    model, scale = seed_style_model(keras, rescaling=False)
    path = tmp_path_factory.mktemp("models") / "seed.keras"
    model.save(path)
    return model, scale, path


def direct_accuracy(keras, model, scale: float) -> float:
    return model.evaluate(DATA.x_test / scale, keras.utils.to_categorical(DATA.y_test, 10), verbose=0)[1]


def test_a_seed_style_model_imports_with_the_accuracy_keras_gives(keras, seed_model, tmp_path):
    model, scale, path = seed_model
    out = cli("import", str(path), "--data", "synthetic", runs_dir=tmp_path / "runs")
    run_dir = Path(out.stdout.splitlines()[0])
    meta = runs.load_run(run_dir).meta
    assert meta["status"] == "imported" and "input scale 1 " in out.stdout
    assert meta["test_accuracy"] == pytest.approx(direct_accuracy(keras, model, scale), abs=1e-6)
    assert meta["imported"]["architecture"] == "read from the model"
    assert shapes.param_count(specs.from_dict(meta["spec"])) == model.count_params() == meta["params"]
    assert meta["spec"]["name"] == "imported-seed", "not a preset: named after the run"
    assert (run_dir / "original.keras").read_bytes() == path.read_bytes()
    for name in (rundir.MODEL, rundir.PREDICTIONS, rundir.REPORT):
        assert (run_dir / name).exists()
    assert rundir.read_predictions(run_dir)["y_pred"].shape == DATA.y_test.shape


@pytest.mark.parametrize("order", ["conv-relu-bn-pool", "conv-bn-relu-pool", "conv-pool-bn-relu"])
def test_a_batch_norm_model_reads_as_the_preset_with_its_batch_norm_and_pooling_where_they_are(keras, order):
    from keras import layers

    def block(filters, kernel):
        if order == "conv-relu-bn-pool":  # Conv2D(activation='relu'), then BatchNormalization()
            return [layers.Conv2D(filters, kernel, activation="relu", padding="same"), layers.BatchNormalization(),
                    layers.MaxPooling2D((2, 2))]
        conv, bn_relu = layers.Conv2D(filters, kernel, padding="same"), [layers.BatchNormalization(), layers.ReLU()]
        if order == "conv-pool-bn-relu":
            return [conv, layers.MaxPooling2D((2, 2)), *bn_relu]
        return [conv, *bn_relu, layers.MaxPooling2D((2, 2))]

    model = keras.Sequential([keras.Input((32, 32, 3)),
                              *[layer for f, k in ((32, 5), (64, 3), (128, 3)) for layer in block(f, k)],
                              layers.Flatten(), layers.Dense(128, activation="relu"),
                              layers.Dense(10, activation="softmax")])
    spec = importing.read_spec(model, "mine")
    if order == "conv-pool-bn-relu":
        assert spec.name == "mine" and all(b.pool_first for b in spec.blocks)
        assert spec.blocks == tuple(replace(b, pool_first=True) for b in specs.PRESETS["batchnorm"].blocks)
    else:
        assert spec.name == {"conv-relu-bn-pool": "batchnorm-after-relu", "conv-bn-relu-pool": "batchnorm"}[order]


def test_a_model_with_a_rescaling_layer_takes_0_to_255(keras, tmp_path):
    model, scale = seed_style_model(keras, rescaling=True)
    model.save(tmp_path / "rescaled.h5")
    run_dir = importing.import_model(tmp_path / "runs", tmp_path / "rescaled.h5", "synthetic")
    meta = runs.load_run(run_dir).meta
    assert meta["imported"]["input_scale"] == "255" and meta["imported"]["scale_probe"]["255"] > 0.5
    assert meta["test_accuracy"] == pytest.approx(direct_accuracy(keras, model, scale), abs=1e-6)
    assert (run_dir / "original.h5").exists() and meta["name"] == "imported-rescaled"


def test_forcing_the_scale_and_the_saved_model_takes_0_to_255_like_every_run(seed_model, tmp_path):
    from cifar_core.engine.pipeline import predict
    from cifar_core.engine.trainer import load_model

    model, _, path = seed_model
    run_dir = importing.import_model(tmp_path / "runs", path, "synthetic", name="forced", scale="1")
    assert runs.load_run(run_dir).meta["imported"]["scale_probe"] == {}
    probs = predict(load_model(run_dir), DATA.x_test)
    assert np.allclose(probs, model.predict(DATA.x_test / 255.0, verbose=0), atol=1e-5)
    # its embeddings are the input of the final Dense layer of the model inside the lab's rescaling
    import keras

    test, val = embeddings.read(run_dir)
    inner = keras.Model(model.inputs, model.layers[-1].input)
    expected = inner.predict(DATA.x_test / 255.0, verbose=0)
    assert val is None and np.allclose(test.vectors.astype(np.float32), expected, rtol=1e-2, atol=1e-2)


def test_auto_scale_probes_every_class_even_when_the_test_set_is_sorted_by_class():
    """An image folder lists its test images class by class; the probe must not be 500 airplanes."""
    seen = []

    class Recorder:
        def predict(self, x, batch_size=None, verbose=0):
            seen.append(np.rint(x[:, 0, 0, 0] * (255 if x.max() <= 1 else 1)).astype(int))
            return np.eye(10)[seen[-1] % 10]

    y = np.repeat(np.arange(10), 300)  # sorted, as an image folder gives them
    x = np.zeros((len(y), 32, 32, 3), np.uint8)
    x[:, 0, 0, 0] = y
    scale, probe = importing.choose_scale(Recorder(), x, y, "auto")
    assert len(seen) == 2 and all(np.bincount(s, minlength=10).tolist() == [50] * 10 for s in seen)
    assert probe == {"1": 1.0, "255": 1.0} and scale == "1"


def test_a_lambda_model_is_refused_and_its_code_never_runs(keras, tmp_path):
    marker = tmp_path / "lambda-ran"
    payload = keras.layers.Lambda(lambda x, path=str(marker): x * float(open(path, "w").close() is None))
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(), payload,
                              keras.layers.Dense(10, activation="softmax")])
    marker.unlink()  # building the model ran it once; loading must not
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(importing.ModelRefused, match="Lambda layers or custom classes"):
        importing.import_model(tmp_path / "runs", tmp_path / "lambda.keras", "synthetic")
    assert not marker.exists() and not (tmp_path / "runs").exists()


@pytest.mark.parametrize(("shape", "units", "message"), [((28, 28, 1), 10, r"input of shape \(28, 28, 1\)"),
                                                          ((32, 32, 3), 7, "has 7 outputs")])
def test_wrong_input_or_output_is_refused(keras, tmp_path, shape, units, message):
    model = keras.Sequential([keras.Input(shape), keras.layers.Flatten(), keras.layers.Dense(units)])
    model.save(tmp_path / "wrong.keras")
    with pytest.raises(importing.ModelRefused, match=message):
        importing.import_model(tmp_path / "runs", tmp_path / "wrong.keras", "synthetic")
    assert not (tmp_path / "runs").exists()


def test_files_that_are_not_models_are_refused_before_loading(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    out = cli("import", str(tmp_path / "notes.txt"), "--data", "synthetic", runs_dir=tmp_path / "runs", check=False)
    assert out.returncode == 2 and "only Keras model files" in out.stderr
    out = cli("import", str(tmp_path / "missing.keras"), "--data", "synthetic", runs_dir=tmp_path / "runs",
              check=False)
    assert out.returncode == 2 and "is not a file" in out.stderr


def test_an_imported_run_shows_on_every_page_and_in_compare(seed_model, tmp_path, finished_run, monkeypatch):
    runs_dir = tmp_path / "runs"
    shutil.copytree(finished_run, runs_dir / finished_run.name)
    imported = importing.import_model(runs_dir, seed_model[2], "synthetic", name="from-jupyter")
    diff = compare.settings_diff(runs.load_run(runs_dir / finished_run.name).meta, runs.load_run(imported).meta)
    configs = [s for s in diff["setting"] if s.startswith("config.")]
    assert configs == ["config.trained"] and "elsewhere (seed.keras)" in set(diff["B"])
    monkeypatch.setenv("CIFAR_LAB_RUNS", str(runs_dir))
    monkeypatch.setenv("CIFAR_LAB_DATA", "synthetic")
    monkeypatch.chdir(ROOT)
    for page in ("runs", "compare", "misclassified", "experiments", "architectures", "train"):
        at = AppTest.from_file(str(APP), default_timeout=60)
        at.session_state["run_id"] = imported.name
        at.run().switch_page(f"views/{page}.py").run()
        assert not at.exception, (page, [e.message for e in at.exception])
        text = " ".join(str(e.value) for e in (*at.markdown, *at.caption, *at.warning, *at.info, *at.subheader))
        if page == "runs":
            assert "from-jupyter" in text and "Trained elsewhere" in text
        if page == "compare":
            assert "Trained elsewhere" in text
            table = at.dataframe[0].value
            assert {"from-jupyter", "tiny-baseline"} <= set(table["run"])
