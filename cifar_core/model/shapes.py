"""Layer table, output shapes, parameter count and memory estimate of a spec, in pure Python.

This mirrors `models.build_model` layer for layer (tests check it against Keras), so the dashboard can
show a network and the size limits can refuse one before TensorFlow is imported or any memory allocated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cifar_core.model.specs import ArchitectureSpec

INPUT_SIZE = 32
NUM_CLASSES = 10
FLOAT_BYTES = 4
# Weights, their gradients and Adam's two moment estimates: four floats per parameter while training.
TRAINING_COPIES_PER_PARAM = 4
WHITEN_PATCH = 2  # engine/whitening.PATCH


@dataclass(frozen=True)
class Layer:
    """One layer as Keras reports it: name, class name, output shape without the batch axis, parameters."""

    name: str
    type: str
    shape: tuple[int, ...]
    params: int

    @property
    def outputs(self) -> int:
        size = 1
        for d in self.shape:
            size *= d
        return size


def _pool(b: int, pool: str, size: int, channels: int) -> Layer:
    kind = {"max": "MaxPooling2D", "avg": "AveragePooling2D"}[pool]
    return Layer(f"block{b}_{pool}pool", kind, (size, size, channels), 0)


def layers(spec: ArchitectureSpec, num_classes: int = NUM_CLASSES) -> list[Layer]:
    """The layers `models.build_model(spec)` creates, in order, with shapes and parameter counts."""
    out = [Layer("rescale", "Rescaling", (INPUT_SIZE, INPUT_SIZE, 3), 0)]
    size, channels = stem_size(spec), 3
    if spec.stem == "whiten":  # engine/whitening.py: 2x2 valid conv, each patch direction and its negative
        channels = 2 * WHITEN_PATCH * WHITEN_PATCH * channels
        out.append(Layer("whiten", "Conv2D", (size, size, channels), WHITEN_PATCH ** 2 * 3 * channels + channels))
        out.append(Layer("whiten_relu", "ReLU", (size, size, channels), 0))
    for b, block in enumerate(spec.blocks, start=1):
        for c in range(1, block.convs + 1):
            tag = f"block{b}_{c}" if block.convs > 1 else f"block{b}"
            params = block.kernel_size ** 2 * channels * block.filters + block.filters
            channels = block.filters
            out.append(Layer(f"{tag}_conv", "Conv2D", (size, size, channels), params))
            if block.pool != "none" and block.pool_first and c == block.convs:
                size //= 2
                out.append(_pool(b, block.pool, size, channels))
            relu = Layer(f"{tag}_relu", "ReLU", (size, size, channels), 0)
            bn = [Layer(f"{tag}_bn", "BatchNormalization", (size, size, channels), 4 * channels)] * block.batch_norm
            out += [relu, *bn] if block.bn_after_relu else [*bn, relu]
        if block.pool != "none" and not block.pool_first:
            size //= 2
            out.append(_pool(b, block.pool, size, channels))
        if block.dropout:
            out.append(Layer(f"block{b}_dropout", "Dropout", (size, size, channels), 0))
    if spec.head.pooling == "flatten":
        features = size * size * channels
        out.append(Layer("flatten", "Flatten", (features,), 0))
    else:
        features = channels
        out.append(Layer("global_avg_pool", "GlobalAveragePooling2D", (features,), 0))
    for d, units in enumerate(spec.head.dense, start=1):
        out.append(Layer(f"dense{d}", "Dense", (units,), features * units + units))
        features = units
        if spec.head.dropout:
            out.append(Layer(f"dense{d}_dropout", "Dropout", (units,), 0))
    out.append(Layer("predictions", "Dense", (num_classes,), features * num_classes + num_classes))
    return out


def stem_size(spec: ArchitectureSpec) -> int:
    """The feature maps' side after the spec's stem (a whitening stem's valid 2x2 conv takes one pixel)."""
    return INPUT_SIZE - (WHITEN_PATCH - 1 if getattr(spec, "stem", "") == "whiten" else 0)


def param_count(spec: ArchitectureSpec, num_classes: int = NUM_CLASSES) -> int:
    return sum(layer.params for layer in layers(spec, num_classes))


def activation_bytes(spec: ArchitectureSpec) -> int:
    """Float32 bytes of every layer's output for one image: what training keeps for the backward pass."""
    return FLOAT_BYTES * sum(layer.outputs for layer in layers(spec))


def training_bytes(spec: ArchitectureSpec, batch_size: int) -> int:
    """A rough upper estimate of the memory one training step needs: activations and their gradients
    for the batch, plus weights, gradients and optimizer state."""
    return 2 * batch_size * activation_bytes(spec) + TRAINING_COPIES_PER_PARAM * FLOAT_BYTES * param_count(spec)


def layer_rows(spec: ArchitectureSpec) -> list[dict]:
    """The layer table as rows (layer, type, output shape, params), as the dashboard and CLI show it."""
    return [{"layer": layer.name, "type": layer.type, "output shape": " x ".join(map(str, layer.shape)),
             "params": layer.params} for layer in layers(spec)]
