"""Bring your own model: a Keras model trained elsewhere becomes an ordinary run directory (status 'imported').

The file is loaded in Keras safe mode (a Lambda layer or custom object is refused, never run), checked for
32x32x3 input and one output per class, copied into the run directory, evaluated on the chosen data's test set,
and saved as the run's model.keras taking 0-255 images like every lab model. Its architecture is read back as a
spec where it is a plain CNN of the lab's layer kinds (checked by the parameter count), else marked external.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from cifar_core import data as data_mod
from cifar_core import settings
from cifar_core.engine import modelfiles, runtime
from cifar_core.model import shapes, specs
from cifar_core.model.config import TrainConfig
from cifar_core.store import rundir, runs

SUFFIXES = (".keras", ".h5")
MAX_BYTES = modelfiles.MAX_FILE_BYTES
SCALES = ("auto", "1", "255")
SCALE_PROBE = 500  # test images tried with each input scale when `auto` decides
IMPORT_CUT_SHORT = ("the import ended before its evaluation finished (its process was killed, or ran out of time); "
                    "delete this run and import the file again")
SCALE_HELP = "'1': the model expects floats in [0, 1]; '255': pixel values 0-255; 'auto': whichever scores higher"


class ModelRefused(runs.RunError):
    """A model file that cannot become a run, with what to do about it."""


def check_file(path: Path) -> None:
    """Refuse, before anything is loaded, what cannot be a Keras model file of a sane size."""
    if not path.is_file():
        raise ModelRefused(f"{path} is not a file: give the path of a .keras or .h5 model.")
    if path.suffix.lower() not in SUFFIXES:
        raise ModelRefused(f"{path.name}: only Keras model files (.keras, .h5) can be imported; save the model "
                           "with model.save('model.keras').")
    try:
        modelfiles.check(path)
    except modelfiles.ModelFileError as exc:
        raise ModelRefused(str(exc)) from None


def load_foreign(path: Path, num_classes: int):
    """The model, loaded in safe mode without its training state, with its input and output checked."""
    try:
        model = modelfiles.load(path)
    except modelfiles.ModelFileError as exc:
        raise ModelRefused(str(exc)) from None
    except Exception as exc:  # a refused Lambda, a custom class, a corrupt file: one message each
        reason = " ".join(str(exc).split())[:300]
        raise ModelRefused(f"Cannot load {path.name} safely: {reason}. Models with Lambda layers or custom "
                           "classes cannot be imported (their code would have to run).") from None
    shape = tuple(model.inputs[0].shape[1:]) if getattr(model, "inputs", None) else None
    if len(getattr(model, "inputs", [])) != 1 or shape != data_mod.IMAGE_SHAPE:
        raise ModelRefused(f"{path.name} takes input of shape {shape}; CIFAR-10 models take one 32x32x3 image.")
    units = model.outputs[0].shape[-1] if len(model.outputs) == 1 else None
    if units != num_classes:
        raise ModelRefused(f"{path.name} has {units} outputs; a CIFAR-10 model has one per class ({num_classes}).")
    return model


def probabilities(model, x: np.ndarray, scale: str) -> np.ndarray:
    """Class probabilities for uint8 images fed as the model expects (softmax applied if it outputs logits)."""
    x = x.astype("float32") / (255.0 if scale == "1" else 1.0)
    out = np.asarray(model.predict(x, batch_size=256, verbose=0), dtype="float64")
    if out.min() < 0 or not np.allclose(out.sum(1), 1, atol=1e-3):
        out = np.exp(out - out.max(1, keepdims=True))
        out /= out.sum(1, keepdims=True)
    return out


def choose_scale(model, x: np.ndarray, y: np.ndarray, requested: str) -> tuple[str, dict[str, float]]:
    """The input scale to use and, for `auto`, the probe accuracy of each on SCALE_PROBE test images drawn
    evenly from every class (an image folder lists its test images class by class, so the first ones would all
    be airplanes, and a wrongly scaled model that calls everything an airplane would win). `requested` is one
    of SCALES (import_model checks it before loading anything)."""
    if requested != "auto":
        return requested, {}
    keep = np.arange(len(y)) if len(y) <= SCALE_PROBE else data_mod.stratified_indices(y, SCALE_PROBE, seed=0)[0]
    probe = {s: float((probabilities(model, x[keep], s).argmax(1) == y[keep]).mean()) for s in ("1", "255")}
    return max(probe, key=probe.get), probe


def read_spec(model, name: str) -> specs.ArchitectureSpec | None:
    """The model as a lab spec where it is a plain stack of the lab's layers, else None. The spec is trusted
    only when its parameter count equals the model's."""
    try:
        spec = specs.check(_spec_from_layers(model, name))
    except (ValueError, KeyError, TypeError):
        return None
    if shapes.param_count(spec) != model.count_params():
        return None
    same = [p for p in specs.PRESETS.values() if (p.blocks, p.head) == (spec.blocks, spec.head)]
    return same[0] if same else spec  # a preset by its own name: Compare then shows "baseline"


def _spec_from_layers(model, name: str) -> specs.ArchitectureSpec:
    blocks, block, head, dense, head_dropout, relu_done = [], None, None, [], 0.0, False
    layers = [layer for layer in model.layers if type(layer).__name__ not in ("InputLayer", "Rescaling")]
    for i, layer in enumerate(layers):
        kind, cfg = type(layer).__name__, layer.get_config()
        if kind == "Conv2D" and head is None:
            if cfg["padding"] != "same" or tuple(cfg["strides"]) != (1, 1) or cfg["activation"] not in ("relu",
                                                                                                      "linear"):
                raise ValueError("not a plain conv")
            kernel = cfg["kernel_size"][0]
            if block and block["pool"] is None and (block["filters"], block["kernel_size"]) == (cfg["filters"],
                                                                                               kernel):
                block["convs"] += 1
            else:
                block = {"filters": cfg["filters"], "kernel_size": kernel, "convs": 1, "batch_norm": False,
                         "pool": None, "dropout": 0.0, "bn_after_relu": False, "pool_first": False}
                blocks.append(block)
            relu_done = cfg["activation"] == "relu"
        elif kind == "BatchNormalization" and block and head is None:
            block["batch_norm"], block["bn_after_relu"] = True, relu_done
        elif kind in ("ReLU", "Activation") and cfg.get("activation", "relu") == "relu":
            relu_done = True
        elif kind in ("MaxPooling2D", "AveragePooling2D") and block and tuple(cfg["pool_size"]) == (2, 2):
            block["pool"] = "max" if kind == "MaxPooling2D" else "avg"
            block["pool_first"] = type(layers[i - 1]).__name__ == "Conv2D" and not relu_done
        elif kind == "Dropout" and head is None and block:
            block["dropout"] = cfg["rate"]
        elif kind in ("Flatten", "GlobalAveragePooling2D") and head is None:
            head = "flatten" if kind == "Flatten" else "global_avg"
        elif kind == "Dense" and head and i < len(layers) - 1:
            dense.append(cfg["units"])
        elif kind == "Dropout" and head:
            head_dropout = cfg["rate"]
        elif not (kind == "Dense" and i == len(layers) - 1):
            raise ValueError(f"layer {kind} has no place in a lab spec")
    raw_blocks = [{**b, "pool": b["pool"] or "none"} for b in blocks]
    return specs.from_dict({"name": name, "blocks": raw_blocks,
                            "head": {"pooling": head, "dense": dense, "dropout": head_dropout}})


def as_lab_model(model, scale: str):
    """The model taking 0-255 images, as every lab model does (a Rescaling layer in front where it needs it)."""
    if scale == "255":
        return model
    import keras

    return keras.Sequential([keras.Input(data_mod.IMAGE_SHAPE, name="image"),
                             keras.layers.Rescaling(1 / 255, name="rescale"), model], name="imported")


def import_model(runs_dir: Path, path: Path, source: str, name: str | None = None, scale: str = "auto") -> Path:
    """Create an 'imported' run from a model file: copy, check, evaluate on the test set, write the run files."""
    check_file(path)
    if name:
        runs.check_name(name)
    if scale not in SCALES:
        raise ModelRefused(f"input scale {scale!r}: choose one of {', '.join(SCALES)} ({SCALE_HELP}).")
    dataset = data_mod.load_dataset(source)
    runtime.configure(0)
    model = load_foreign(path, len(dataset.class_names))
    chosen, probe = choose_scale(model, dataset.x_test, dataset.y_test, scale)
    name = name or _default_name(path)
    spec = read_spec(model, name)
    imported = {"file": path.name, "input_scale": chosen, "scale_probe": probe,
                "architecture": "read from the model" if spec else "external"}
    run_dir = runs.create_run(runs_dir, spec or specs.PRESETS["baseline"], TrainConfig(), dataset.describe(), name,
                              extra={"imported": imported, **({} if spec else {"spec": rundir.EXTERNAL_SPEC}),
                                     **runs.process_record(os.getpid()), "error": IMPORT_CUT_SHORT})
    try:
        shutil.copyfile(path, run_dir / (rundir.IMPORTED_ORIGINAL + path.suffix.lower()))
        return _evaluate(run_dir, model, chosen, dataset)
    except BaseException as exc:
        runs.update_run(run_dir, status="failed", error=f"import failed: {exc}")
        raise


def _evaluate(run_dir: Path, model, scale: str, dataset: data_mod.Dataset) -> Path:
    from cifar_core.analysis import scores

    probs = probabilities(model, dataset.x_test, scale)
    y = dataset.y_test
    scores.save_predictions(run_dir / rundir.PREDICTIONS, y, probs, np.arange(len(y)))
    rundir.write_json_atomic(run_dir / rundir.REPORT, scores.build_report(y, probs.argmax(1), dataset.class_names))
    lab_model = as_lab_model(model, scale)
    lab_model.save(run_dir / rundir.MODEL)
    _record_layers(run_dir, lab_model, dataset)
    _record_embeddings(run_dir, lab_model, dataset)
    loss = float(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0)).mean())
    runs.update_run(run_dir, status=rundir.IMPORTED, error=None, params=int(model.count_params()), test_loss=loss,
                    test_accuracy=float((probs.argmax(1) == y).mean()), libraries=_versions(),
                    sizes={"train": 0, "validation": 0, "test": len(y)})
    return run_dir


def _record_layers(run_dir: Path, model, dataset: data_mod.Dataset) -> None:
    """One layer record, taken now on probe test images (the model was trained elsewhere: no history)."""
    from cifar_core.engine import layerrecords

    keep = layerrecords.probe_indices(dataset.y_test, seed=0)
    record, _ = layerrecords.take(model, dataset.x_test[keep], dataset.y_test[keep], None, 0.0, 0)
    rundir.append_layer_record(run_dir, record)


def _record_embeddings(run_dir: Path, model, dataset: data_mod.Dataset) -> None:
    """The test images' embeddings (no validation split: the model may have trained on any training image)."""
    from cifar_core.engine import embeddings
    from cifar_core.store import embeddings as store

    try:
        vectors, _ = embeddings.outputs(model, dataset.x_test)
    except embeddings.NoFeatureLayer:
        return
    store.write(run_dir, store.Embeddings(vectors, np.arange(len(dataset.y_test))))


def import_in_subprocess(runs_dir: Path, content: bytes, file_name: str, source: str, name: str | None = None,
                         scale: str = "auto", timeout: float = 600) -> Path:
    """`cifar-lab import` on uploaded bytes in its own process, so that the dashboard's server never loads
    TensorFlow or an untrusted file itself. Returns the new run directory; raises ModelRefused with the reason."""
    suffix = Path(file_name).suffix.lower()
    if suffix not in SUFFIXES:
        raise ModelRefused(f"{file_name}: only Keras model files (.keras, .h5) can be imported.")
    with tempfile.TemporaryDirectory(prefix="cifar-lab-import-") as folder:
        path = Path(folder) / (_safe_stem(Path(file_name)) + suffix)
        path.write_bytes(content)
        command = [sys.executable, "-m", "cifar_core.cli", "--runs-dir", str(runs_dir), "import", str(path),
                   "--data", source, "--input-scale", scale, *(["--name", name] if name else [])]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              env={**settings.environment(), "TERM": "dumb"})
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or ["the import process ended without a message"]
        raise ModelRefused(lines[-1].removeprefix("cifar-lab: "))
    return Path(proc.stdout.splitlines()[0])


def _safe_stem(path: Path) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in path.stem.lower()).strip("-._")[:50] or "model"


def _default_name(path: Path) -> str:
    return f"imported-{_safe_stem(path)}"


def _versions() -> dict:
    from cifar_core.engine.trainer import library_versions

    return library_versions()
