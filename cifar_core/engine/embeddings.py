"""Embeddings: what the network's last layer sees (the input of its final classification layer) for each image.

Every run writes them for its test (and validation) images at its final evaluation, in the same forward pass as
its probabilities; `python -m cifar_core.engine.embeddings RUN_DIR [--train] [--map]` makes them for an older run,
the training images' embeddings (for nearest neighbours) and the 2-D map, as a job beside the dashboard.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import numpy as np

from cifar_core import data as data_mod
from cifar_core.analysis import projection
from cifar_core.engine import runtime
from cifar_core.engine.pipeline import EVAL_BATCH, make_dataset, predict, prepare_data
from cifar_core.model.config import TrainConfig
from cifar_core.store import embeddings as store
from cifar_core.store import rundir
from cifar_core.store.embeddings import Embeddings

runtime.keras()
import keras  # noqa: E402  (after runtime has imported it quietly, on this process's backend)


class NoFeatureLayer(ValueError):
    """A model whose class scores come from no Dense layer at its top level: it has no embedding to show."""


def _final_dense(layers: list) -> int | None:
    for i in range(len(layers) - 1, -1, -1):
        if isinstance(layers[i], keras.layers.Dense):
            return i
    return None


def feature_model(model) -> keras.Model:
    """A model with two outputs: the input of `model`'s final Dense layer, and `model`'s own output. A Sequential
    whose last layer is a nested model (an imported one behind the lab's rescaling) is looked into."""
    layers = list(model.layers)
    last = _final_dense(layers)
    if last is not None:
        return keras.Model(model.inputs, [layers[last].input, model.outputs[0]])
    if layers and isinstance(layers[-1], keras.Model) and isinstance(model, keras.Sequential):
        inner = feature_model(layers[-1])
        x = inputs = keras.Input(model.inputs[0].shape[1:])
        for layer in layers[:-1]:
            x = layer(x)
        return keras.Model(inputs, inner(x))
    raise NoFeatureLayer(f"model {model.name} has no Dense layer at its top level, so it has no embedding to show")


class _Batches(keras.callbacks.Callback):
    """Reports predict's progress as (done, total) batches."""

    def __init__(self, update, total: int):
        super().__init__()
        self.update, self.total = update, total

    def on_predict_batch_end(self, batch, logs=None):
        self.update(batch + 1, self.total)


def outputs(model, x: np.ndarray, tta: bool = False, features=None, update=None) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings float32, class probabilities float32) of uint8 images in one pass; with `tta` the probabilities
    are averaged with the mirrored images' (the embeddings stay those of the images as they are). `update(done,
    total)` hears of each batch."""
    features = features or feature_model(model)
    batches = -(-len(x) // EVAL_BATCH)
    callbacks = [_Batches(update, batches)] if update else []
    emb, probs = features.predict(make_dataset(x, np.zeros(len(x), np.int64), EVAL_BATCH), verbose=0,
                                  callbacks=callbacks)
    if tta:
        mirrored = make_dataset(x[:, :, ::-1], np.zeros(len(x), np.int64), EVAL_BATCH)
        probs = (probs + features.predict(mirrored, verbose=0)[1]) / 2
    return np.asarray(emb, np.float32).reshape(len(x), -1), np.asarray(probs, np.float32)


def record(run_dir: Path, model, arrays: dict, tta: bool) -> np.ndarray:
    """The test probabilities, with embeddings.npz written beside them (test, and validation where the run held
    out a split); a model without a final Dense layer gets its probabilities only."""
    try:
        features = feature_model(model)
    except NoFeatureLayer:
        return predict(model, arrays["x_test"], tta)
    test, probs = outputs(model, arrays["x_test"], tta, features)
    val = None
    if arrays.get("val_index") is not None:
        val_vectors, val_probs = outputs(model, arrays["x_val"], tta, features)
        val = Embeddings(val_vectors, arrays["val_index"], arrays["y_val"], val_probs)
    store.write(run_dir, Embeddings(test, arrays["test_index"]), val)
    return probs


def _run_arrays(run_dir: Path) -> tuple[dict, dict]:
    """(run.json, the run's arrays as it trained on them); an imported run has no split of its own."""
    meta = rundir.read_run_json(run_dir)
    dataset = data_mod.load_dataset(meta["data"]["source"])
    cfg = TrainConfig.from_dict(meta["config"])
    arrays = prepare_data(dataset, cfg)
    if meta.get("imported"):
        arrays.update(x_train=dataset.x_train, y_train=dataset.y_train, val_index=None,
                      train_index=np.arange(len(dataset.y_train)))
    return meta, arrays


@contextlib.contextmanager
def _lines(description: str):
    """The plain stand-in for a progress bar: a line when a step starts and when it ends, with its time."""
    started = time.monotonic()
    print(f"[cifar-lab] {description} ...", flush=True)
    yield lambda done, total: None
    print(f"[cifar-lab] {description}: done in {time.monotonic() - started:.1f} s", flush=True)


def make(run_dir: Path, train: bool = False, map_: bool = False, counting=_lines) -> None:
    """What an older run lacks: its test (and validation) embeddings, then on request its training images'
    embeddings and its map. Each is written when done, so a stopped job keeps what it finished. `counting(what)`
    is a context giving update(done, total): a progress bar in the CLI, plain lines in a job."""
    from cifar_core.engine.trainer import load_model

    runtime.configure(0)
    meta, arrays = _run_arrays(run_dir)
    model = load_model(run_dir)
    if store.read(run_dir) is None:
        with counting(f"embedding {len(arrays['y_test']):,} test images"):
            record(run_dir, model, arrays, bool(meta["config"].get("tta")))
    if train and store.read_train(run_dir) is None:
        with counting(f"embedding {len(arrays['y_train']):,} training images") as update:
            vectors, _ = outputs(model, arrays["x_train"], update=update)
        store.write_train(run_dir, Embeddings(vectors, arrays["train_index"], arrays["y_train"]))
    if map_ and store.read_map(run_dir) is None:
        test, _ = store.read(run_dir)
        method = projection.CHOSEN
        started = time.monotonic()
        with counting(f"mapping {len(test.index):,} test images to 2-D ({method})") as update:
            xy = projection.project(test.vectors, method, update)
        store.write_map(run_dir, xy, method, time.monotonic() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cifar_core.engine.embeddings")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--train", action="store_true", help="also the training images' embeddings")
    parser.add_argument("--map", action="store_true", help="also the 2-D map of the test embeddings")
    args = parser.parse_args(argv)
    make(args.run_dir, args.train, args.map)
    return 0


if __name__ == "__main__":
    sys.exit(main())
