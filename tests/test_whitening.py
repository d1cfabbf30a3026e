"""The data-aware first layer (engine/whitening.py): a frozen 2x2 patch-whitening convolution set from the training
images. Tiny: a few hundred synthetic images, a network of a few layers."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from cifar_core.engine import whitening


def correlated_images(n: int = 200, seed: int = 0) -> np.ndarray:
    """Smooth, colour-correlated uint8 images (neighbouring pixels and channels alike, as in photographs)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, 17, 17, 1)).repeat(2, 1).repeat(2, 2)[:, :32, :32]
    colour = base * np.array([1.0, 0.8, 0.6]) + 0.3 * rng.normal(size=(n, 32, 32, 3))
    return np.clip(128 + 40 * colour, 0, 255).astype(np.uint8)


def patches_through(kernel: np.ndarray, bias: np.ndarray, images: np.ndarray) -> np.ndarray:
    """The valid 2x2 convolution's outputs, one row per position (numpy, no backend)."""
    windows = np.lib.stride_tricks.sliding_window_view(images, (2, 2), axis=(1, 2))
    rows = windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, 12)
    return rows @ kernel.reshape(12, -1) + bias


def test_whitening_gives_uncorrelated_unit_outputs_and_their_negatives():
    x = correlated_images().astype(np.float32) / 255
    kernel, bias = whitening.whitening(x)
    assert kernel.shape == (2, 2, 3, whitening.filters()) and bias.shape == (24,)
    out = patches_through(kernel, bias, x)
    first = out[:, :12]
    assert np.allclose(first.mean(0), 0, atol=1e-3)
    cov = np.cov(first, rowvar=False)
    assert np.allclose(cov, np.diag(np.diag(cov)), atol=1e-3)  # uncorrelated
    assert np.all(np.diag(cov) <= 1 + 1e-3) and np.diag(cov).max() > 0.99  # unit variance, eps only damps the least
    assert np.allclose(out[:, 12:], -first, atol=1e-5)


def test_patch_identity_copies_each_pixel_and_its_negative():
    kernel, bias = whitening.patch_identity()
    x = correlated_images(3).astype(np.float32)
    out = patches_through(kernel, bias, x)
    windows = np.lib.stride_tricks.sliding_window_view(x, (2, 2), axis=(1, 2)).transpose(0, 1, 2, 4, 5, 3)
    assert np.array_equal(out[:, :12], windows.reshape(-1, 12)) and np.array_equal(out[:, 12:], -out[:, :12])


def test_fit_to_data_sets_the_whitening_layer_from_what_it_receives_and_leaves_other_models_alone():
    from cifar_core.engine import models

    keras = models.keras

    x = correlated_images(120)
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Rescaling(1 / 255, name="rescale"),
                              keras.layers.Conv2D(24, 2, name=whitening.WHITEN, trainable=False),
                              keras.layers.ReLU(), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)])
    before = [w.copy() for w in model.get_weights()]
    whitening.fit_to_data(model, x, seed=0)
    kernel, bias = whitening.whitening(x.astype(np.float32) / 255)  # 120 images: all of them are the sample
    got = model.get_layer(whitening.WHITEN).get_weights()
    assert np.allclose(got[0], kernel, atol=1e-2) and np.allclose(got[1], bias, atol=1e-2)  # rescaling round-off
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights()[2:], before[2:], strict=True))
    plain = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(4, 3), keras.layers.Flatten()])
    weights = [w.copy() for w in plain.get_weights()]
    whitening.fit_to_data(plain, x)
    assert all(np.array_equal(a, b) for a, b in zip(plain.get_weights(), weights, strict=True))


def test_a_whitening_stem_is_built_as_shapes_describes_it_and_its_model_file_reopens(tmp_path):
    from cifar_core.engine import modelfiles
    from cifar_core.engine.models import build_model
    from cifar_core.model import shapes, specs

    spec = replace(specs.FAST.with_width(0.25), stem="whiten")
    assert not specs.validate(spec) and specs.from_dict(json.loads(spec.to_json())) == spec
    model = build_model(spec)
    keras_rows = [(layer.name, type(layer).__name__, tuple(layer.output.shape[1:]), layer.count_params())
                  for layer in model.layers]
    assert [(x.name, x.type, x.shape, x.params) for x in shapes.layers(spec)] == keras_rows
    assert keras_rows[1] == ("whiten", "Conv2D", (31, 31, 24), 2 * 2 * 3 * 24 + 24)
    stem = model.get_layer(whitening.WHITEN)
    assert not stem.trainable and not stem.trainable_weights
    assert np.array_equal(stem.get_weights()[0], whitening.patch_identity()[0])  # before any data: lossless
    x = correlated_images(60)
    whitening.fit_to_data(model, x)
    model.save(str(tmp_path / "model.keras"))
    loaded = modelfiles.load(tmp_path / "model.keras")  # safe mode, no custom class
    assert np.allclose(loaded.predict(x[:4], verbose=0), model.predict(x[:4], verbose=0), atol=1e-5)


def test_a_spec_without_a_stem_reads_and_writes_as_before_and_a_bad_stem_is_named():
    from cifar_core.model import specs

    assert "stem" not in specs.BASELINE.to_dict()
    assert specs.from_json(specs.BASELINE.to_json()) == specs.BASELINE
    assert any("Stem must be one of" in p for p in specs.validate(replace(specs.BASELINE, stem="pca")))
    with pytest.raises(specs.SpecError, match="'stem' must be"):
        specs.from_dict({**json.loads(specs.BASELINE.to_json()), "stem": 1})
