"""The input pipeline: train / validation / test arrays as a config asks, and tf.data batches of uint8 images
(scaling, flips and shifts run in the graph)."""

from __future__ import annotations

import numpy as np

from cifar_core import data as data_mod
from cifar_core.engine import runtime
from cifar_core.model.config import TrainConfig

tf = runtime.tensorflow()

EVAL_BATCH = 256


def prepare_data(dataset: data_mod.Dataset, cfg: TrainConfig) -> dict[str, np.ndarray]:
    """Train / validation / test arrays as the config asks: subset, then split or the seed's test protocol; with
    each split's positions in the data set (`*_index`; `val_index` None where the test set validates)."""
    size = cfg.subset or len(dataset.y_train)
    x, y = data_mod.stratified_subset(dataset.x_train, dataset.y_train, size, cfg.seed)
    train_index, _ = data_mod.stratified_subset(np.arange(len(dataset.y_train)), dataset.y_train, size, cfg.seed)
    x_test, y_test = dataset.x_test, dataset.y_test
    test_index = np.arange(len(y_test))
    if cfg.test_subset and cfg.test_subset < len(y_test):
        keep, _ = data_mod.stratified_indices(y_test, cfg.test_subset, cfg.seed)
        x_test, y_test, test_index = x_test[keep], y_test[keep], keep
    val_index = None
    if cfg.validation == "test":
        x_val, y_val = x_test, y_test
    else:
        held = min(cfg.validation_size, len(y) // 10)
        train_index, _, val_index, _ = data_mod.split_validation(train_index, y, held, cfg.seed)
        x, y, x_val, y_val = data_mod.split_validation(x, y, held, cfg.seed)
    return {"x_train": x, "y_train": y, "x_val": x_val, "y_val": y_val, "x_test": x_test, "y_test": y_test,
            "train_index": train_index, "val_index": val_index, "test_index": test_index}


def make_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int | None = None, augment: bool = False,
                 translate: int = 4, num_classes: int = 10):
    """Batches of uint8 images (the model's Rescaling layer casts them) and one-hot labels, shuffled when a seed
    is given. Augmentation runs on whole batches in the pipeline's one thread, so it never takes the cores
    from the convolutions: it costs a fraction of a millisecond per batch."""
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if seed is not None:
        ds = ds.shuffle(len(y), seed=seed, reshuffle_each_iteration=True)

    def prepare(images, labels):
        if augment:
            images = flip_and_shift(images, translate)
        return images, tf.one_hot(labels, num_classes)

    return ds.batch(batch_size).map(prepare).prefetch(tf.data.AUTOTUNE)


def flip_and_shift(images, pad: int):
    """Each image flipped left-right with probability 1/2 and shifted by up to `pad` pixels each way
    (reflect padding); the crops are exact (crop_and_resize samples whole pixels)."""
    images = tf.image.random_flip_left_right(images)
    if not pad:
        return images
    n, size = tf.shape(images)[0], images.shape[1]
    padded = tf.cast(tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT"), tf.float32)
    corner = tf.cast(tf.random.uniform((n, 2), 0, 2 * pad + 1, dtype=tf.int32), tf.float32)
    boxes = tf.concat([corner, corner + size - 1], axis=1) / (size + 2 * pad - 1)
    return tf.image.crop_and_resize(padded, boxes, tf.range(n), (size, size))
