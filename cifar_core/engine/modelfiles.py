"""Model files checked before Keras opens them: sizes on disk and unpacked, and the parameters their config declares.

A .keras file is a zip whose config.json decides how much memory Keras allocates while it builds the model, before
any weight is read; a 150 KB file can declare a layer of billions of parameters, and a 1 MB zip can unpack to
gigabytes. So the archive's listed sizes and the parameter count implied by its config are read here first, in
pure Python (no TensorFlow), and anything over a stated limit is refused. Keras then unpacks into a private temp
folder that is removed on every path.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path

from cifar_core.data import IMAGE_SHAPE
from cifar_core.errors import LabError

MAX_FILE_BYTES = 200 * 2**20  # a CIFAR-10 CNN is a few MB; this is Streamlit's upload limit too
MAX_UNPACKED_BYTES = 512 * 2**20  # all entries of a .keras archive, as listed in its directory
MAX_CONFIG_BYTES = 16 * 2**20
MAX_ENTRIES = 256
MAX_PARAMS = 50_000_000  # 200 MB of float32 weights: the file limit's worth
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class ModelFileError(LabError):
    """A model file refused before loading; the message names the file, the limit and what to do."""


def check(path: Path) -> int:
    """Refuse a model file whose size, unpacked size or declared parameters pass the limits; return the
    parameter count its config declares."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ModelFileError(f"{path.name} is {size / 2**20:.0f} MiB; model files up to "
                             f"{MAX_FILE_BYTES / 2**20:.0f} MiB can be opened.")
    zipped = zipfile.is_zipfile(path)
    if path.suffix.lower() == ".keras" and not zipped:
        raise ModelFileError(_not_a_keras_archive(path))
    config = _keras_config(path) if zipped else _h5_config(path)
    params = declared_params(config, path.name)
    if params > MAX_PARAMS:
        raise ModelFileError(f"{path.name} declares {params:,} parameters; models up to {MAX_PARAMS:,} can be "
                             "opened (a CIFAR-10 CNN has well under that).")
    return params


def _not_a_keras_archive(path: Path) -> str:
    """Why a file named .keras that is no zip archive cannot be one: an HDF5 file misnamed, or something else."""
    with open(path, "rb") as fh:
        if fh.read(8) == HDF5_SIGNATURE:
            return f"{path.name} is an HDF5 (.h5) file named .keras; rename it to {path.stem}.h5 and import that."
    return (f"{path.name} is not a Keras model file (a .keras file is a zip archive; this one is empty or something "
            "else); save the model with model.save('model.keras').")


def _keras_config(path: Path) -> dict:
    try:
        with zipfile.ZipFile(path) as zf:
            entries = zf.infolist()
            if len(entries) > MAX_ENTRIES:
                raise ModelFileError(f"{path.name} holds {len(entries):,} files; a Keras model file holds a few.")
            unpacked = sum(e.file_size for e in entries)
            if unpacked > MAX_UNPACKED_BYTES:
                raise ModelFileError(f"{path.name} unpacks to {unpacked / 2**20:,.0f} MiB; model files that unpack "
                                     f"to at most {MAX_UNPACKED_BYTES / 2**20:.0f} MiB can be opened.")
            info = next((e for e in entries if e.filename == "config.json"), None)
            if info is None:
                raise ModelFileError(f"{path.name} is a zip without config.json, not a Keras model file; save the "
                                     "model with model.save('model.keras').")
            if info.file_size > MAX_CONFIG_BYTES:
                raise ModelFileError(f"{path.name}: its config.json unpacks to {info.file_size / 2**20:,.0f} MiB; "
                                     "a model's config is a few KB.")
            raw = zf.read(info)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ModelFileError(f"{path.name} is truncated or corrupt ({exc}); save the model again.") from None
    return _parse(raw, path.name)


def _h5_config(path: Path) -> dict:
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            raw = h5.attrs.get("model_config")
    except OSError:
        raise ModelFileError(f"{path.name} is neither a .keras archive nor an HDF5 model file; save the model with "
                             "model.save('model.keras').") from None
    if raw is None:
        raise ModelFileError(f"{path.name} is an HDF5 file without a model config (weights only?); save the whole "
                             "model with model.save('model.keras').")
    if len(raw) > MAX_CONFIG_BYTES:
        raise ModelFileError(f"{path.name}: its model config is {len(raw) / 2**20:,.0f} MiB; a model's is a few KB.")
    return _parse(raw, path.name)


def _parse(raw: bytes | str, name: str) -> dict:
    try:
        config = json.loads(raw)
    except (ValueError, RecursionError):
        raise ModelFileError(f"{name}: its model config is not JSON; save the model again.") from None
    if not isinstance(config, dict):
        raise ModelFileError(f"{name}: its model config is not a Keras model config; save the model again.")
    return config


# --- parameters from a config, without building anything ----------------------------------------------------

Shape = tuple  # a layer's output shape without the batch axis


def declared_params(config: dict, name: str) -> int:
    """The number of weights a model config declares, from each layer's settings and the shapes flowing into it.
    The input is the lab's 32x32x3 wherever the config leaves a size open."""
    try:
        params, _ = _model(config, None)
    except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError, RecursionError) as exc:
        raise ModelFileError(f"{name}: its config cannot be sized before loading ({_reason(exc)}); the lab opens "
                             "CNNs built from Keras's standard layers.") from None
    return params


def _reason(exc: Exception) -> str:
    return str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"


def _model(config: dict, shape: Shape | None) -> tuple[int, Shape]:
    inner = config.get("config", {})
    layers = inner.get("layers")
    if not isinstance(layers, list):
        raise ValueError(f"{config.get('class_name')} lists no layers")
    if config.get("class_name") == "Sequential":
        shape = _input_shape(inner, layers, config.get("build_config")) if shape is None else shape
        total = 0
        for layer in layers:
            params, shape = _layer(layer, shape)
            total += params
        return total, shape
    return _functional(inner, layers, shape)


def _input_shape(inner: dict, layers: list, build: dict | None) -> Shape:
    first = layers[0].get("config", {}) if layers else {}
    declared = (first.get("batch_shape") or first.get("batch_input_shape") or inner.get("build_input_shape")
                or (build or {}).get("input_shape"))
    return _lab_sized(declared)


def _lab_sized(batch_shape) -> Shape:
    dims = list(batch_shape or [None, *IMAGE_SHAPE])[1:]
    if len(dims) == len(IMAGE_SHAPE):
        return tuple(d if d is not None else lab for d, lab in zip(dims, IMAGE_SHAPE, strict=True))
    if any(d is None for d in dims):
        raise ValueError(f"input shape {dims} has open sizes")
    return tuple(dims)


def _functional(inner: dict, layers: list, shape: Shape | None) -> tuple[int, Shape]:
    outputs: dict[str, Shape] = {}
    total = 0
    for layer in layers:
        name = layer["config"].get("name") or layer.get("name")
        inputs = [outputs[source] for source in _inbound(layer)]
        if layer["class_name"] == "InputLayer":
            given = shape if shape is not None else _lab_sized(layer["config"].get("batch_shape")
                                                              or layer["config"].get("batch_input_shape"))
            outputs[name] = given
            continue
        if not inputs:
            raise ValueError(f"layer {name} has no inputs")
        params, outputs[name] = _layer(layer, inputs[0], inputs)
        total += params
    last = _inbound_names(inner.get("output_layers"))
    return total, outputs[last[-1]] if last else list(outputs.values())[-1]


def _inbound(layer: dict) -> list[str]:
    """Names of the layers feeding `layer`, in Keras 3's and Keras 2's config formats."""
    return _inbound_names(layer.get("inbound_nodes") or [])


def _inbound_names(value) -> list[str]:
    if isinstance(value, dict):
        history = value.get("config", {}).get("keras_history") if value.get("class_name") == "__keras_tensor__" \
            else None
        return [history[0]] if history else [n for v in value.values() for n in _inbound_names(v)]
    if isinstance(value, list):
        if len(value) >= 3 and isinstance(value[0], str) and isinstance(value[1], int):
            return [value[0]]
        return [n for v in value for n in _inbound_names(v)]
    return []


SHAPE_KEEPING = {
    "Activation", "ReLU", "LeakyReLU", "ELU", "Softmax", "Dropout", "SpatialDropout2D", "GaussianNoise",
    "GaussianDropout", "AlphaDropout", "Rescaling", "RandomFlip", "RandomTranslation", "RandomRotation",
    "RandomZoom", "RandomContrast", "RandomBrightness", "Identity", "ActivityRegularization", "Masking",
}
MERGES = {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"}
KNOWN = ("Conv2D, DepthwiseConv2D, SeparableConv2D, Conv2DTranspose, Dense, BatchNormalization, LayerNormalization, "
         "pooling, Flatten, Reshape, ZeroPadding2D, Cropping2D, UpSampling2D, Resizing, merges and activations")


def _layer(layer: dict, shape: Shape, inputs: list[Shape] | None = None) -> tuple[int, Shape]:
    """(parameters, output shape) of one layer config fed `shape`."""
    kind, cfg = layer["class_name"], layer.get("config", {})
    if kind in ("Sequential", "Functional", "Model"):
        return _model(layer, shape)
    if kind == "InputLayer" or kind in SHAPE_KEEPING:
        return 0, shape
    if kind in MERGES:
        return 0, shape
    if kind == "Concatenate":
        return 0, (*shape[:-1], sum(s[-1] for s in inputs or [shape]))
    if kind in ("BatchNormalization", "LayerNormalization", "Normalization", "PReLU"):
        per = {"BatchNormalization": 4, "LayerNormalization": 2, "Normalization": 2}.get(kind)
        return (per * shape[-1] if per else math.prod(shape)), shape
    if kind == "Dense":
        units = _int(cfg["units"])
        return shape[-1] * units + (units if cfg.get("use_bias", True) else 0), (*shape[:-1], units)
    if kind in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose"):
        return _conv(kind, cfg, shape)
    if kind in ("MaxPooling2D", "AveragePooling2D"):
        size = _pair(cfg.get("pool_size", 2))
        return 0, (*_spatial(shape, size, _pair(cfg.get("strides") or size), cfg.get("padding", "valid")), shape[-1])
    if kind in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
        return 0, ((1, 1, shape[-1]) if cfg.get("keepdims") else (shape[-1],))
    if kind == "Flatten":
        return 0, (math.prod(shape),)
    if kind == "Reshape":
        return 0, _reshape(shape, cfg["target_shape"])
    if kind == "ZeroPadding2D":
        (top, bottom), (left, right) = _padding(cfg.get("padding", 1))
        return 0, (shape[0] + top + bottom, shape[1] + left + right, shape[2])
    if kind == "Cropping2D":
        (top, bottom), (left, right) = _padding(cfg.get("cropping", 0))
        return 0, (shape[0] - top - bottom, shape[1] - left - right, shape[2])
    if kind == "UpSampling2D":
        h, w = _pair(cfg.get("size", 2))
        return 0, (shape[0] * h, shape[1] * w, shape[2])
    if kind in ("Resizing", "RandomCrop", "CenterCrop"):
        return 0, (_int(cfg["height"]), _int(cfg["width"]), shape[-1])
    if kind == "Lambda" or not str(layer.get("module", "keras")).startswith("keras"):
        raise ValueError(f"layer {kind} is a Lambda layer or custom class; models with Lambda layers or custom "
                         "classes cannot be opened, since their code would have to run")
    raise ValueError(f"layer kind {kind} is not one the lab can size ({KNOWN})")


def _conv(kind: str, cfg: dict, shape: Shape) -> tuple[int, Shape]:
    kh, kw = _pair(cfg["kernel_size"])
    channels = shape[-1]
    bias = cfg.get("use_bias", True)
    if kind == "DepthwiseConv2D":
        out = channels * _int(cfg.get("depth_multiplier", 1))
        params = kh * kw * out + (out if bias else 0)
    else:
        filters = _int(cfg["filters"])
        if kind == "SeparableConv2D":
            depth = channels * _int(cfg.get("depth_multiplier", 1))
            params = kh * kw * depth + depth * filters
        else:
            params = kh * kw * channels // _int(cfg.get("groups", 1)) * filters
        out = filters
        params += filters if bias else 0
    strides = _pair(cfg.get("strides", 1))
    if kind == "Conv2DTranspose":
        return params, (shape[0] * strides[0], shape[1] * strides[1], out)
    return params, (*_spatial(shape, (kh, kw), strides, cfg.get("padding", "valid")), out)


def _spatial(shape: Shape, size: tuple[int, int], strides: tuple[int, int], padding: str) -> tuple[int, int]:
    if padding == "same":
        return tuple(-(-shape[i] // strides[i]) for i in range(2))
    return tuple(max((shape[i] - size[i]) // strides[i] + 1, 0) for i in range(2))


def _reshape(shape: Shape, target) -> Shape:
    target = [_int(d) for d in target]
    if target.count(-1) == 1:
        known = math.prod(d for d in target if d != -1)
        target[target.index(-1)] = math.prod(shape) // max(known, 1)
    return tuple(target)


def _int(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < -1:
        raise ValueError(f"size {value!r} is not a whole number")
    return value


def _pair(value) -> tuple[int, int]:
    return (_int(value), _int(value)) if isinstance(value, int) else (_int(value[0]), _int(value[1]))


def _padding(value) -> tuple[tuple[int, int], tuple[int, int]]:
    if isinstance(value, int):
        return (value, value), (value, value)
    return tuple((p, p) if isinstance(p, int) else (_int(p[0]), _int(p[1])) for p in value)


# --- loading ---------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def private_tempdir() -> Iterator[Path]:
    """Point Python's temp folder at a fresh one for the block and remove it afterwards, whatever happens: Keras
    unpacks a .keras file's assets there and leaves them behind when a write fails."""
    folder = Path(tempfile.mkdtemp(prefix="cifar-lab-model-"))
    saved = tempfile.tempdir
    tempfile.tempdir = str(folder)
    try:
        yield folder
    finally:
        tempfile.tempdir = saved
        shutil.rmtree(folder, ignore_errors=True)


def load(path: Path):
    """The model at `path`, checked first, then loaded by Keras in safe mode (no Lambda code runs) without its
    training state."""
    import keras

    check(path)
    with private_tempdir(), warnings.catch_warnings():
        # Keras 2 files put input_shape on their first layer; Keras 3 warns about that style while loading one.
        warnings.filterwarnings("ignore", message="Do not pass an `input_shape`", category=UserWarning)
        return keras.models.load_model(path, safe_mode=True, compile=False)
