"""The fast recipe's trial changes, for benchmarks/family_curves.py (accuracy at equal epochs) and
benchmarks/recipe_speed.py (images/s, A against B in one process): each a switch of `Trial`, applied to the
family network as it is built, trained and fed. What a trial gave is noted in cifar_core/model/recipes.py."""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, replace
from functools import partial

from cifar_core.model import sizing


@dataclass(frozen=True)
class Trial:
    whiten: str = ""  # airbench's 2x2 patch whitening, 24 outputs (+/-) then ReLU: "frozen" (its weights fixed),
    # "trainable" (only its start set from the data); "linear": 12 outputs (no negatives), no ReLU, frozen
    dirac: bool = False  # each conv's first in-channels filters start as the identity (airbench)
    bn_scale: bool = True  # False: batch norm without its trained scale (airbench's: weight frozen at 1)
    lookahead: float = 0.0  # airbench's lookahead: slow weights pulled toward the fast ones, decay base**k * t**3
    resize: tuple[int, int] = (0, 0)  # (size, epochs): the first `epochs` epochs at size x size (bilinear)
    channels_first: bool = False  # the network in NCHW (the images transposed by its first layer)
    alternate_flip: bool = False  # airbench's derandomized flip: each image flipped in every other epoch, a random
    # half of them in the first (in place of a fresh coin each epoch)
    widths: tuple[int, ...] = ()  # each stage's filters (two blocks a stage), e.g. airbench's 64,256,256
    pool_after: bool = False  # each block's pooling after its batch norm and ReLU, the fast preset's order before it
    # pooled first (specs.FAST)
    activation: str = "relu"  # every ReLU of the network (stem's too) replaced by this Keras activation, e.g. "gelu"
    head_pool: str = "avg"  # "max": the head's global pooling takes each channel's maximum (airbench's head)
    logit_scale: float = 1.0  # the logits times this before the softmax (airbench's 1/9)
    momentum: float = 0.0  # another SGD momentum than the recipe's 0.9 (airbench: 0.85)
    bn_bias_lr: float = 1.0  # batch norm's biases (betas) learn this many times faster (airbench: 64)

    def changed(self) -> dict:
        """The switches that differ from the recipe (empty for the baseline)."""
        base = asdict(Trial())
        return {k: v for k, v in asdict(self).items() if v != base[k]}


@contextlib.contextmanager
def _patched(module, **values):
    saved = {k: getattr(module, k) for k in values}
    for k, v in values.items():
        setattr(module, k, v)
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(module, k, v)


def build(spec, bn_momentum: float, trial: Trial):
    """The family network `spec` as models.build_model builds it, with the trial's changes."""
    import keras

    from cifar_core.engine import models, whitening

    if trial.widths:
        spec = sizing.staged(spec, trial.widths)
    if trial.pool_after:
        spec = replace(spec, blocks=tuple(replace(b, pool_first=False) for b in spec.blocks))
    bn = partial(keras.layers.BatchNormalization, scale=trial.bn_scale, axis=1 if trial.channels_first else -1)
    act = keras.layers.ReLU if trial.activation == "relu" else partial(keras.layers.Activation, trial.activation)
    pool = keras.layers.GlobalMaxPooling2D if trial.head_pool == "max" else keras.layers.GlobalAveragePooling2D
    with _patched(models.layers, BatchNormalization=bn, ReLU=act, GlobalAveragePooling2D=pool):
        model = models.build_model(spec, bn_momentum=bn_momentum)
    if not (trial.channels_first or trial.whiten or trial.resize[0] or trial.logit_scale != 1.0):
        built = model
    else:  # fresh layers from the same configs around the change, the built ones' weights where shapes allow
        fresh = []
        for layer in model.layers:
            config = layer.get_config()
            if trial.channels_first and "data_format" in config:
                config["data_format"] = "channels_first"
            if layer.name == "predictions" and trial.logit_scale != 1.0:
                config["activation"] = "linear"
            fresh.append(type(layer).from_config(config))
        stem = []
        if trial.channels_first:
            stem.append(keras.layers.Permute((3, 1, 2), name="to_nchw"))
        if trial.whiten:  # a 2x2 valid conv, set by whitening.fit_to_data; "linear": 12 outputs, no ReLU
            width = whitening.filters() // (2 if trial.whiten == "linear" else 1)
            stem.append(keras.layers.Conv2D(width, whitening.PATCH, name=whitening.WHITEN,
                                            trainable=trial.whiten == "trainable"))
            if trial.whiten != "linear":
                stem.append(keras.layers.ReLU(name="whiten_relu"))
        size = None if trial.resize[0] else 32
        tail = [keras.layers.Rescaling(trial.logit_scale, name="logit_scale"),
                keras.layers.Activation("softmax", dtype="float32", name="softmax")] if trial.logit_scale != 1.0 else []
        built = keras.Sequential([keras.Input((size, size, 3), name="image"), fresh[0], *stem, *fresh[1:], *tail],
                                 name=model.name)
        for old, new in zip(model.layers, fresh, strict=True):
            weights = old.get_weights()
            if [w.shape for w in weights] == [w.shape for w in new.get_weights()]:
                new.set_weights(weights)
    model = built
    if trial.dirac:
        for layer in model.layers:
            if isinstance(layer, keras.layers.Conv2D):
                kernel = keras.ops.convert_to_numpy(layer.kernel)
                kh, kw, cin, cout = kernel.shape
                for o in range(min(cin, cout)):
                    kernel[..., o] = 0
                    kernel[kh // 2, kw // 2, o, o] = 1
                layer.kernel.assign(kernel)
    return model


def tune_optimizer(model, trial: Trial) -> None:
    """The trial's changes to the compiled model's optimizer: its momentum, and a learning rate `bn_bias_lr` times
    the others' for batch norm's betas (which weight decay already spares)."""
    optimizer = model.optimizer
    if trial.momentum:
        optimizer.momentum = trial.momentum
    if trial.bn_bias_lr != 1.0:
        update_step = optimizer.update_step

        def scaled_update_step(gradient, variable, learning_rate):
            if variable.name.split("/")[-1].split(":")[0] == "beta":  # a tf.Variable here, named as its layer's
                learning_rate = learning_rate * trial.bn_bias_lr
            return update_step(gradient, variable, learning_rate)

        optimizer.update_step = scaled_update_step


def resized(dataset, size: int):
    """The training batches at size x size (bilinear, antialiased), for progressive resizing."""
    import tensorflow as tf

    return dataset.map(lambda x, y: (tf.image.resize(tf.cast(x, tf.float32), (size, size), antialias=True), y))


def crop_and_resize_augmented(dataset, pad: int):
    """The training batches (made unaugmented) flipped and shifted as the pipeline did before 2026-12-01: TensorFlow's
    flip op, its reflect pad, then crop_and_resize at whole-pixel boxes (the same images as pipeline.flip_and_shift)."""
    import tensorflow as tf

    def augment(images):
        images = tf.image.random_flip_left_right(images)
        n, size = tf.shape(images)[0], images.shape[1]
        padded = tf.cast(tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT"), tf.float32)
        corner = tf.cast(tf.random.uniform((n, 2), 0, 2 * pad + 1, dtype=tf.int32), tf.float32)
        boxes = tf.concat([corner, corner + size - 1], axis=1) / (size + 2 * pad - 1)
        return tf.image.crop_and_resize(padded, boxes, tf.range(n), (size, size))

    return dataset.map(lambda x, y: (augment(x), y))


def alternating_flip_dataset(x, y, batch_size: int, seed: int, translate: int, num_classes: int = 10):
    """Training batches as pipeline.make_dataset makes them, but flipped as airbench flips them: image i is mirrored
    in epoch e when first[i] + e is odd (first: a coin per image, drawn once), then shifted as the recipe shifts. An
    epoch counter the pipeline itself steps each time Keras starts a pass over it tells the epochs apart."""
    import numpy as np
    import tensorflow as tf

    from cifar_core.engine.pipeline import shift

    n = len(y)
    first = tf.constant(np.random.default_rng(seed).integers(0, 2, n), tf.int64)
    images_t, labels_t = tf.constant(x), tf.constant(y)
    counter = tf.Variable(-1, dtype=tf.int64, trainable=False)

    def one_epoch(epoch):
        def prepare(index):
            mirror = tf.equal((tf.gather(first, index) + epoch) % 2, 1)[:, None, None, None]
            images = tf.gather(images_t, index)
            images = shift(tf.where(mirror, tf.reverse(images, axis=[2]), images), translate)
            return images, tf.one_hot(tf.gather(labels_t, index), num_classes)

        order = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64),
                                                         seed=tf.stack([tf.constant(seed, tf.int64), epoch]))
        return tf.data.Dataset.from_tensor_slices(order).batch(batch_size).map(prepare)

    epochs = tf.data.Dataset.from_tensors(np.int64(0)).map(lambda _: counter.assign_add(1))
    batches = -(-n // batch_size)  # told to Keras, which cannot count a flat_map's batches
    return epochs.flat_map(one_epoch).apply(tf.data.experimental.assert_cardinality(batches)).prefetch(tf.data.AUTOTUNE)


def lookahead_callback(base: float, total_steps: int):
    """airbench's lookahead: at each call into the backend (every `steps_per_execution` batches, k of them) the
    slow weights move toward the fast ones by 1 - base**k * (step / total)**3 and the fast ones are set to them;
    at the end the model keeps the slow weights."""
    import keras

    class Lookahead(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.slow = [keras.ops.convert_to_numpy(v) for v in self.model.weights]
            self.last = 0

        def on_train_batch_end(self, batch, logs=None):
            step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
            decay = base ** (step - self.last) * min(step / total_steps, 1.0) ** 3
            self.last = step
            for v, slow in zip(self.model.weights, self.slow, strict=True):
                slow += (1 - decay) * (keras.ops.convert_to_numpy(v) - slow)
                v.assign(slow)

        def on_train_end(self, logs=None):
            for v, slow in zip(self.model.weights, self.slow, strict=True):
                v.assign(slow)

    return Lookahead()

