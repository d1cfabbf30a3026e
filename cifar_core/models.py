"""Build a Keras model from an ArchitectureSpec (`shapes` describes the same model without building it)."""

from __future__ import annotations

from cifar_core import runtime
from cifar_core.shapes import INPUT_SIZE, NUM_CLASSES
from cifar_core.specs import ArchitectureSpec, check

runtime.tensorflow()
import keras  # noqa: E402  (after runtime has imported TensorFlow quietly)
from keras import layers  # noqa: E402


def build_model(spec: ArchitectureSpec, num_classes: int = NUM_CLASSES):
    """A keras.Sequential for 32x32x3 uint8-range input; rescaling to [0, 1] is the first layer."""
    check(spec)
    model = keras.Sequential(name=spec.name.replace(".", "_"))
    model.add(keras.Input((INPUT_SIZE, INPUT_SIZE, 3), name="image"))
    model.add(layers.Rescaling(1 / 255, name="rescale"))
    for b, block in enumerate(spec.blocks, start=1):
        for c in range(1, block.convs + 1):
            tag = f"block{b}_{c}" if block.convs > 1 else f"block{b}"
            model.add(layers.Conv2D(block.filters, block.kernel_size, padding="same",
                                    use_bias=True, name=f"{tag}_conv"))
            if block.batch_norm:
                model.add(layers.BatchNormalization(name=f"{tag}_bn"))
            model.add(layers.ReLU(name=f"{tag}_relu"))
        if block.pool == "max":
            model.add(layers.MaxPooling2D(2, name=f"block{b}_maxpool"))
        elif block.pool == "avg":
            model.add(layers.AveragePooling2D(2, name=f"block{b}_avgpool"))
        if block.dropout:
            model.add(layers.Dropout(block.dropout, name=f"block{b}_dropout"))
    head = spec.head
    model.add(layers.Flatten(name="flatten") if head.pooling == "flatten"
              else layers.GlobalAveragePooling2D(name="global_avg_pool"))
    for d, units in enumerate(head.dense, start=1):
        model.add(layers.Dense(units, activation="relu", name=f"dense{d}"))
        if head.dropout:
            model.add(layers.Dropout(head.dropout, name=f"dense{d}_dropout"))
    model.add(layers.Dense(num_classes, activation="softmax", name="predictions"))
    return model


def compile_model(model, learning_rate: float = 1e-3, optimizer: str = "adam"):
    """Seed settings: Adam, cross-entropy on integer labels (same loss as one-hot categorical)."""
    optimizers = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD,
                  "rmsprop": keras.optimizers.RMSprop}
    model.compile(optimizer=optimizers[optimizer](learning_rate=learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
