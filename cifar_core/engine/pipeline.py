"""The input pipeline: train / validation / test arrays as a config asks, and batches of uint8 images with one-hot
labels: tf.data where TensorFlow is the backend (flips and shifts run in its graph), a Keras PyDataset of NumPy
batches on JAX and PyTorch (which need no TensorFlow installed)."""

from __future__ import annotations

import numpy as np

from cifar_core import data as data_mod
from cifar_core.engine import runtime
from cifar_core.model.config import TrainConfig

keras = runtime.keras()

EVAL_BATCH = 256
PREFETCH_BATCHES = 2  # made ahead of the model, a fixed number with tf.data's autotuning off. With it on, an epoch's
# start, deleting the last epoch's iterator, now and then waited 3-10 s with the CPU idle (in 6 of 11 runs of 4-8
# epochs of benchmarks/epoch_start.py, AMX Xeon, 2026-12-02, all six within ten minutes; py-spy: the iterator's
# destructor waiting on a tf.data thread); with it off, in none of 5. Per call, no slower.


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
    """Batches of uint8 images (the model's Rescaling layer casts them) and one-hot labels, shuffled each epoch when
    a seed is given, flipped and shifted when `augment`; on this process's backend's fastest path."""
    if runtime.backend() == "tensorflow":
        return _tf_dataset(x, y, batch_size, seed, augment, translate, num_classes)
    return ArrayBatches(x, y, batch_size, seed, augment, translate, num_classes)


def predict(model, x: np.ndarray, tta: bool = False) -> np.ndarray:
    """Class probabilities for uint8 images; with `tta`, averaged with those of the mirrored images."""
    probs = model.predict(make_dataset(x, np.zeros(len(x), np.int64), EVAL_BATCH), verbose=0)
    if tta:
        probs = (probs + model.predict(make_dataset(x[:, :, ::-1], np.zeros(len(x), np.int64), EVAL_BATCH),
                                       verbose=0)) / 2
    return probs.astype(np.float32)


def _tf_dataset(x, y, batch_size, seed, augment, translate, num_classes):
    """tf.data batches. Augmentation runs on whole batches in the pipeline's one thread, so it never takes the
    cores from the convolutions: it costs a fraction of a millisecond per batch."""
    tf = runtime.tensorflow()
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if seed is not None:
        ds = ds.shuffle(len(y), seed=seed, reshuffle_each_iteration=True)

    def prepare(images, labels):
        if augment:
            images = flip_and_shift(images, translate)
        return images, tf.one_hot(labels, num_classes)

    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.batch(batch_size).map(prepare).prefetch(PREFETCH_BATCHES).with_options(options)


def flip_and_shift(images, pad: int):
    """Each image flipped left-right with probability 1/2 and shifted by up to `pad` pixels each way (reflect
    padding), in TensorFlow's graph."""
    return shift(images, pad, flip=True)


def shift(images, pad: int, flip: bool = False):
    """Each image shifted by up to `pad` pixels each way as if reflect-padded and cropped (and, with `flip`, mirrored
    first with probability 1/2): two gathers of whole pixels. On 2 cores (AVX2, 2026-12-01) an epoch of 45,000 images
    took 3.5 s of CPU as TensorFlow's reflect pad (2.2 s of it), crop_and_resize and flip ops, and 1.0-1.3 s this
    way, for the same images; fast-w0.5's training images/s moved within the machine's noise (benchmarks/recipe_speed.py
    --variants base augment-crop-resize --rounds 16 --calls 12: the old way 0.983x, rounds 0.82-1.21x)."""
    tf = runtime.tensorflow()
    n, size = tf.shape(images)[0], images.shape[1]
    grid = tf.range(size)[None]
    offsets = tf.random.uniform((n, 2), -pad, pad + 1, dtype=tf.int32)
    rows, cols = _reflect(offsets[:, :1] + grid, size), _reflect(offsets[:, 1:] + grid, size)
    if flip:
        cols = tf.where(tf.random.uniform((n, 1)) < 0.5, size - 1 - cols, cols)
    return tf.gather(tf.gather(images, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)


def _reflect(index, size: int):
    """Pixel positions past either edge mirrored back inside, as reflect padding mirrors them (the edge pixel once)."""
    return (size - 1) - abs((size - 1) - abs(index))


def flip_and_shift_arrays(images: np.ndarray, pad: int, rng: np.random.Generator) -> np.ndarray:
    """flip_and_shift in NumPy, for backends without tf.data: the same flips and reflect-padded shifts."""
    n, size = len(images), images.shape[1]
    flip = rng.random(n) < 0.5
    images = np.where(flip[:, None, None, None], images[:, :, ::-1], images)
    if not pad:
        return images
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
    rows = rng.integers(0, 2 * pad + 1, n)[:, None] + np.arange(size)
    cols = rng.integers(0, 2 * pad + 1, n)[:, None] + np.arange(size)
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


class ArrayBatches(keras.utils.PyDataset):
    """The NumPy input path: batches cut from the arrays in an order drawn anew from the seed each epoch,
    augmented by flip_and_shift_arrays."""

    def __init__(self, x, y, batch_size, seed, augment, translate, num_classes):
        super().__init__()
        self.x, self.y, self.batch_size = x, np.asarray(y), batch_size
        self.seed, self.augment, self.translate = seed, augment, translate
        self.eye = np.eye(num_classes, dtype=np.float32)
        self.epoch = 0
        self.order = self._order()

    def _order(self) -> np.ndarray:
        if self.seed is None:
            return np.arange(len(self.y))
        return np.random.default_rng((self.seed, self.epoch)).permutation(len(self.y))

    def __len__(self) -> int:
        return -(-len(self.y) // self.batch_size)

    def __getitem__(self, index: int):
        pick = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        images = self.x[pick]
        if self.augment:
            rng = np.random.default_rng((self.seed or 0, self.epoch, index))
            images = flip_and_shift_arrays(images, self.translate, rng)
        return images, self.eye[self.y[pick]]

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self.order = self._order()
