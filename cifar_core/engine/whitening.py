"""A data-aware first layer, after KellerJordan/cifar10-airbench: a frozen 2x2 convolution that whitens the image's
patches, its filters set from the training images' patch covariance by `fit_to_data` before training.

It is a plain Keras Conv2D (trainable=False) named WHITEN, so a model.keras that holds one opens like any other
(modelfiles.py refuses custom layer classes). Until `fit_to_data` sets it, it holds `patch_identity`: each pixel of
the patch and its negative, a fixed, lossless start that needs no data.
"""

from __future__ import annotations

import numpy as np

WHITEN = "whiten"  # the layer's name in a built model (models.build_model with a spec's stem "whiten")
PATCH = 2  # airbench's patch: 2x2 pixels, valid padding (32x32 images become 31x31)
EPS = 5e-4  # added to each eigenvalue, as a share of the mean variance (airbench's 5e-4 on unit-variance inputs)
SAMPLE = 5000  # training images whose patches set the whitening (airbench's figure)


def filters(channels: int = 3, patch: int = PATCH) -> int:
    """The layer's outputs: each of the patch's patch*patch*channels directions and its negative (a ReLU after
    it then keeps both signs)."""
    return 2 * patch * patch * channels


def patch_identity(channels: int = 3, patch: int = PATCH) -> tuple[np.ndarray, np.ndarray]:
    """(kernel, bias) before any data: output i is the patch's i-th value, output dims + i its negative."""
    dims = patch * patch * channels
    eye = np.eye(dims, dtype=np.float32)
    return np.concatenate([eye, -eye], axis=1).reshape(patch, patch, channels, 2 * dims), np.zeros(2 * dims, np.float32)


def whitening(images: np.ndarray, patch: int = PATCH, eps: float = EPS) -> tuple[np.ndarray, np.ndarray]:
    """(kernel, bias) of a `patch`x`patch` valid convolution that whitens the patches of `images` (NHWC floats,
    as the layer receives them): the eigenvectors of their covariance, each divided by the square root of its
    eigenvalue (plus `eps` times the mean variance), then their negatives; the bias centres each output on them.
    Each of the first half of the outputs then has zero mean and unit variance on these images, uncorrelated."""
    c = images.shape[-1]
    windows = np.lib.stride_tricks.sliding_window_view(images.astype(np.float32), (patch, patch), axis=(1, 2))
    rows = windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, patch * patch * c)  # (p, p, c): the kernel's layout
    mean = rows.mean(0, dtype=np.float64)
    centred = rows - mean.astype(np.float32)
    cov = (centred.T @ centred).astype(np.float64) / max(len(rows) - 1, 1)
    values, vectors = np.linalg.eigh(cov)
    columns = vectors / np.sqrt(np.maximum(values, 0) + eps * np.trace(cov) / len(cov))
    columns = np.concatenate([columns, -columns], axis=1)
    return columns.reshape(patch, patch, c, -1).astype(np.float32), (-mean @ columns).astype(np.float32)


def fit_to_data(model, x_train: np.ndarray, seed: int = 0) -> None:
    """Set the model's whitening layer (named WHITEN) from the training images, before training: from the
    patches of up to SAMPLE of them (drawn with `seed`) as the layer receives them (through the layers before it:
    the rescaling). Does nothing to a model without one, so it can be called on every model."""
    names = [layer.name for layer in model.layers]
    if WHITEN not in names:
        return
    import keras

    rng = np.random.default_rng(seed)
    x = x_train[np.sort(rng.choice(len(x_train), min(SAMPLE, len(x_train)), replace=False))].astype(np.float32)
    for layer in model.layers[:names.index(WHITEN)]:
        x = keras.ops.convert_to_numpy(keras.ops.cast(layer(x), "float32"))
    layer = model.layers[names.index(WHITEN)]
    kernel, bias = whitening(x, layer.kernel.shape[0])
    n = layer.kernel.shape[-1]  # all 2 x patch*patch*channels; a linear stem takes the first half (no negatives)
    layer.set_weights([kernel[..., :n], bias[:n]])
