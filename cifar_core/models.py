"""Build a Keras model from an ArchitectureSpec, and describe it as a layer table."""

from __future__ import annotations

import pandas as pd

from cifar_core.specs import ArchitectureSpec, check

NUM_CLASSES = 10


def build_model(spec: ArchitectureSpec, num_classes: int = NUM_CLASSES):
    """A keras.Sequential for 32x32x3 uint8-range input; rescaling to [0, 1] is the first layer."""
    import keras
    from keras import layers

    check(spec)
    model = keras.Sequential(name=spec.name.replace(".", "_"))
    model.add(keras.Input((32, 32, 3), name="image"))
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
    import keras

    optimizers = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD,
                  "rmsprop": keras.optimizers.RMSprop}
    model.compile(optimizer=optimizers[optimizer](learning_rate=learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def layer_table(model) -> pd.DataFrame:
    """One row per layer: name, type, output shape (without batch), parameters."""
    rows = []
    for layer in model.layers:
        shape = tuple(layer.output.shape[1:])
        rows.append({"layer": layer.name, "type": type(layer).__name__,
                     "output shape": " x ".join(str(d) for d in shape), "params": layer.count_params()})
    return pd.DataFrame(rows)


def describe(spec: ArchitectureSpec) -> tuple[pd.DataFrame, int]:
    """Layer table and total parameter count of the model the spec builds."""
    model = build_model(spec)
    return layer_table(model), int(model.count_params())
