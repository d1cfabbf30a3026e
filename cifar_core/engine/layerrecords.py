"""Recording what each layer does while it learns (layers.jsonl; the measures are in analysis/layers.py).

One forward and one backward pass over a fixed probe batch per record, with the model in inference mode (batch norm
uses its moving statistics and is not updated, dropout is off), so a record changes nothing in training.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from cifar_core.analysis import layers as layer_stats
from cifar_core.engine import autodiff, runtime
from cifar_core.store import rundir

runtime.keras()
import keras  # noqa: E402  (after runtime has imported it quietly, on this process's backend)

PROBE_IMAGES = 256
FIRST_EPOCH_AT = (0.1, 0.25, 0.5)  # shares of the first epoch with a record: most change happens there
WEIGHTED = ("Conv2D", "Dense", "DepthwiseConv2D", "SeparableConv2D", "BatchNormalization")
ACTIVATIONS = ("ReLU", "Activation", "LeakyReLU", "ELU")


def flat_layers(model) -> list:
    """The model's layers in order, nested Sequential models opened up (an imported model is wrapped in one)."""
    out = []
    for layer in model.layers:
        out += flat_layers(layer) if isinstance(layer, keras.Sequential) else [layer]
    return out


def _watched(layers: list) -> list[tuple[object, object | None]]:
    """(layer with weights, the layer whose output shows its activations): a conv's or dense layer's own output when
    it applies its activation itself, else the next ReLU before another conv or dense layer (past its batch norm:
    conv -> BN -> ReLU shows the ReLU's output); batch norm has none."""
    out = []
    for i, layer in enumerate(layers):
        kind = type(layer).__name__
        if kind not in WEIGHTED:
            continue
        shown = None
        if kind != "BatchNormalization":
            shown = layer
            if getattr(layer, "activation", None) in (None, keras.activations.linear):
                nxt = next((x for x in layers[i + 1:] if type(x).__name__ in ACTIVATIONS + WEIGHTED
                            and type(x).__name__ != "BatchNormalization"), None)
                shown = nxt if nxt is not None and type(nxt).__name__ in ACTIVATIONS else layer
        out.append((layer, shown))
    return out


def _is_sequential(model) -> bool:
    return isinstance(model, keras.Sequential) and all(
        isinstance(x, keras.Sequential) or not isinstance(x, keras.Model) for x in model.layers)


def take(model, x: np.ndarray, y: np.ndarray, previous: dict | None, epoch: float, step: int) -> tuple[dict, dict]:
    """One record of `model` on the probe images `x` (uint8) with labels `y`, and the weights it saw (the next
    record's `previous`, for the relative update)."""
    layers = flat_layers(model) if _is_sequential(model) else model.layers
    watched = _watched(layers)
    variables = [v for layer, _ in watched for v in layer.trainable_weights]
    outputs, probs, loss, grads = _pass(model, layers, watched, variables)(x, y)
    grads = dict(zip([id(v) for v in variables], grads, strict=True))
    now = {layer.name: [np.array(w) for w in layer.get_weights()] for layer, _ in watched}
    entries = [_entry(order, layer, shown, outputs, grads, now, previous)
               for order, (layer, shown) in enumerate(watched)]
    first = next((layer for layer, _ in watched if type(layer).__name__ == "Conv2D"), None)
    filters = np.asarray(first.get_weights()[0], np.float32) if first is not None else None
    record = {"epoch": round(float(epoch), 4), "step": int(step), "probe_loss": float(_numpy(loss)),
              "probe_accuracy": float(np.mean(np.argmax(_numpy(probs), 1) == y)), "layers": entries,
              "filters": {"shape": list(filters.shape), "values": np.round(filters.ravel(), 5).tolist()}
              if filters is not None else None}
    return record, now


_PASSES: dict[int, object] = {}  # one compiled probe pass per model: traced at its first record, then reused


def _pass(model, layers: list, watched: list, variables: list):
    """The forward and backward pass over the probe batch (one graph on TensorFlow: autodiff.compiled): the
    shown layers' outputs, the probabilities, the loss and its gradient for every watched weight."""
    if id(model) not in _PASSES:
        shown = [s for _, s in watched if s is not None]

        def run(x, y):
            def loss_fn():
                outputs, probs = _forward(model, layers, shown, x)
                one_hot = keras.ops.one_hot(y, probs.shape[-1])
                loss = keras.ops.mean(keras.losses.categorical_crossentropy(one_hot, keras.ops.cast(probs, "float32")))
                return loss, ({s.name: outputs[s.name] for s in shown}, probs)

            loss, (kept, probs), grads = autodiff.weight_gradients(loss_fn, variables)
            return kept, probs, loss, grads

        _PASSES.clear()  # a process records one model at a time: the trainer's, or one at import
        _PASSES[id(model)] = autodiff.compiled(run)
    return _PASSES[id(model)]


def _forward(model, layers: list, shown: list, x):
    """The probe batch through the model (inference mode), keeping the outputs of the `shown` layers."""
    x = keras.ops.cast(x, "float32")  # a lab model rescales 0-255 itself; others take floats too
    if _is_sequential(model):
        outputs, h = {}, x
        for layer in layers:
            if type(layer).__name__ == "InputLayer":
                continue
            h = layer(h, training=False)
            outputs[layer.name] = h
        return outputs, h
    extractor = keras.Model(model.inputs, [s.output for s in shown] + [model.outputs[0]])
    *found, probs = extractor(x, training=False)
    return {s.name: o for s, o in zip(shown, found, strict=True)}, probs


def _entry(order: int, layer, shown, outputs: dict, grads: dict, now: dict, previous: dict | None) -> dict:
    kind = type(layer).__name__
    weights = now[layer.name]
    trainable = [g for g in (grads.get(id(v)) for v in layer.trainable_weights) if g is not None]
    entry = {"name": layer.name, "kind": kind, "order": order,
             "act": layer_stats.activation_stats(_numpy(outputs[shown.name])) if shown is not None else None,
             "grad_norm": layer_stats.norm([_numpy(g) for g in trainable]) if trainable else None,
             "weight_norm": layer_stats.norm([_numpy(w) for w in layer.trainable_weights or layer.weights]),
             "update": layer_stats.relative_change(weights, (previous or {}).get(layer.name))}
    if kind == "BatchNormalization":
        entry["bn"] = _bn_drift(layer, weights, (previous or {}).get(layer.name))
    return entry


def _numpy(x) -> np.ndarray:
    return keras.ops.convert_to_numpy(x)


def _bn_drift(layer, now: list[np.ndarray], before: list[np.ndarray] | None) -> dict:
    """How far the moving mean and variance moved since the last record, relative to their size."""
    names = [w.path.split("/")[-1] for w in layer.weights]
    index = {n: i for i, n in enumerate(names)}
    out = {"mean_drift": None, "var_drift": None}
    for key, name in (("mean_drift", "moving_mean"), ("var_drift", "moving_variance")):
        if before is not None and name in index:
            out[key] = layer_stats.relative_change([now[index[name]]], [before[index[name]]])
    return out


def probe_indices(y: np.ndarray, seed: int, size: int = PROBE_IMAGES) -> np.ndarray:
    """A fixed, class-balanced choice of probe images among `y` (all of them when there are fewer)."""
    from cifar_core import data

    return np.arange(len(y)) if len(y) <= size else data.stratified_indices(y, size, seed)[0]


class LayerRecorder(keras.callbacks.Callback):
    """Takes a record before training, at FIRST_EPOCH_AT of the first epoch and after every epoch. Placed before
    the backup callback, so that a run killed mid-epoch and resumed keeps each record once (the trainer truncates
    layers.jsonl to the epochs it keeps)."""

    def __init__(self, run_dir: Path, x: np.ndarray, y: np.ndarray, epochs_done: int, steps_per_epoch: int):
        super().__init__()
        self.run_dir, self.x, self.y = run_dir, x, y
        self.epochs_done, self.steps = epochs_done, steps_per_epoch
        self.previous: dict | None = None
        self.due = list(FIRST_EPOCH_AT) if epochs_done == 0 else []
        self.seconds = 0.0  # spent taking records: what recording costs this run

    def on_train_begin(self, logs=None):
        if self.epochs_done == 0:
            self._record(0.0, 0)
        else:
            self.previous = {layer.name: [np.array(w) for w in layer.get_weights()]
                             for layer, _ in _watched(flat_layers(self.model))}

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.batches = epoch, 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches = min(batch + 1, self.steps)
        if self.due and self.epoch == 0 and self.batches >= self.due[0] * self.steps and self.batches < self.steps:
            while self.due and self.batches >= self.due[0] * self.steps:
                self.due.pop(0)
            self._record(self.batches / self.steps, self.batches)

    def on_epoch_end(self, epoch, logs=None):
        self.due = []
        self._record(epoch + self.batches / self.steps, epoch * self.steps + self.batches)

    def _record(self, epoch: float, step: int) -> None:
        start = time.perf_counter()
        record, self.previous = take(self.model, self.x, self.y, self.previous, epoch, step)
        rundir.append_layer_record(self.run_dir, record)
        self.seconds += time.perf_counter() - start
