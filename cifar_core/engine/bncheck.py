"""Have a trained model's batch-norm statistics settled? The Keras half of analysis/batchnorm.py: the
statistics its batch-norm layers really receive, on training images passed through the model as at test time."""

from __future__ import annotations

import numpy as np

from cifar_core.analysis.batchnorm import CHECK_IMAGES, layer_gap, summary
from cifar_core.engine import runtime

runtime.keras()
import keras  # noqa: E402  (after runtime has imported it quietly, on this process's backend)


def check(model, x: np.ndarray, seed: int = 0) -> dict | None:
    """`summary` of the model's batch-norm layers against CHECK_IMAGES random training images passed through the
    model as at test time (None without batch norm)."""
    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not layers:
        return None
    pick = np.random.default_rng(seed).permutation(len(x))[:CHECK_IMAGES]
    probe = keras.Model(model.inputs[0], [layer.input for layer in layers])
    inputs = probe.predict(x[pick], batch_size=128, verbose=0)
    gaps = {}
    for layer, seen in zip(layers, inputs if len(layers) > 1 else [inputs], strict=True):
        seen = np.asarray(seen, np.float64).reshape(-1, seen.shape[-1])
        moving_mean, moving_var = (np.asarray(keras.ops.convert_to_numpy(v), np.float64)
                                   for v in (layer.moving_mean, layer.moving_variance))
        gaps[layer.name] = layer_gap(moving_mean, moving_var, seen.mean(0), seen.var(0))
    return summary(gaps, len(pick))
