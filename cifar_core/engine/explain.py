"""Why a model decides as it does: Grad-CAM heat maps and the activations of its conv layers.

Only the functions that run a model import Keras (through the model they are given); the image helpers
(colour map, overlay, tiles) are plain numpy, so pages that show results stay light.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# An "inferno"-like colour map: dark for no evidence, yellow for the most.
_ANCHORS = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], dtype=np.float32)
OVERLAY_ALPHA = 0.5  # share of the heat map in an overlay
TILE_CHANNELS = 16  # channels shown per layer in the feature-map view: the most active for the image


def colorize(heat: np.ndarray) -> np.ndarray:
    """Heat values in [0, 1] (any shape) as uint8 RGB of the colour map (shape + (3,))."""
    position = np.clip(heat, 0, 1) * (len(_ANCHORS) - 1)
    low = np.minimum(position.astype(int), len(_ANCHORS) - 2)
    frac = (position - low)[..., None]
    return (_ANCHORS[low] * (1 - frac) + _ANCHORS[low + 1] * frac).round().astype(np.uint8)


def colour_bar(steps: int = 32) -> list[str]:
    """The colour map as `steps` hex colours from no evidence to the strongest, for a legend beside the maps."""
    return [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in colorize(np.linspace(0, 1, steps))]


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """A uint8 image with a heat map of the same height and width blended over it."""
    return (image.astype(np.float32) * (1 - alpha) + colorize(heat).astype(np.float32) * alpha).round().astype(
        np.uint8)


def tile(maps: np.ndarray, columns: int = 8, gap: int = 1) -> np.ndarray:
    """Channels of one activation (H, W, C) as a grid of grey tiles, each scaled to its own range."""
    h, w, c = maps.shape
    rows = -(-c // columns)
    grid = np.full((rows * (h + gap) - gap, min(c, columns) * (w + gap) - gap), 255, dtype=np.uint8)
    for i in range(c):
        m = maps[:, :, i]
        span = float(m.max() - m.min())
        scaled = (m - m.min()) / span if span > 0 else np.zeros_like(m)
        r, col = divmod(i, columns)
        grid[r * (h + gap): r * (h + gap) + h, col * (w + gap): col * (w + gap) + w] = (scaled * 255).astype(np.uint8)
    return grid


def _is_conv(layer) -> bool:
    return type(layer).__name__ in ("Conv2D", "SeparableConv2D", "DepthwiseConv2D")


def _out_shape(layer) -> tuple | None:
    try:
        return tuple(layer.output.shape)
    except (AttributeError, ValueError):
        return None


def conv_outputs(model) -> list[str]:
    """For each conv layer of the model, the last layer after it that keeps its output shape (its batch norm
    and activation, before pooling): what the conv layer's filters respond to, as the next layer sees it."""
    names, layers = [], model.layers
    for i, layer in enumerate(layers):
        if not _is_conv(layer):
            continue
        shape, last = _out_shape(layer), layer
        for nxt in layers[i + 1:]:
            if _is_conv(nxt) or _out_shape(nxt) != shape:
                break
            last = nxt
        names.append(last.name)
    return names


@dataclass
class GradCam:
    """Grad-CAM (Selvaraju et al., 2017) for one model and one layer: the layer's channels weighted by the mean
    gradient of a class's score (its logit, before the softmax, when the model lets us reach it).

    The model runs layer by layer so the gradient can be taken at the chosen layer (a sub-model built with
    keras.Model(inputs, [layer.output, ...]) gives no gradient there with Keras 3); that needs a model whose
    layers form a chain, which every lab model and every keras.Sequential is."""

    model: object
    layer: str

    def __post_init__(self):
        import keras

        if not isinstance(self.model, keras.Sequential):
            raise ValueError("Grad-CAM here needs a model whose layers run one after another (keras.Sequential); "
                             f"{self.model.name} is a functional graph.")
        names = [layer.name for layer in self.model.layers]
        if self.layer not in names:
            raise ValueError(f"The model has no layer {self.layer!r}; its conv layers: "
                             f"{', '.join(conv_outputs(self.model))}.")
        cut = names.index(self.layer) + 1
        last = self.model.layers[-1]
        self._dense_softmax = isinstance(last, keras.layers.Dense) and _is_softmax(last)
        self._softmax_layer = type(last).__name__ == "Softmax" or (type(last).__name__ == "Activation"
                                                                   and _is_softmax(last))
        self._before = self.model.layers[:cut]
        self._after = self.model.layers[cut:-1] if (self._dense_softmax or self._softmax_layer) \
            else self.model.layers[cut:]

    def __call__(self, images: np.ndarray, classes: np.ndarray) -> np.ndarray:
        """Heat maps in [0, 1] with the images' height and width, one per (image, class) pair."""
        import keras

        from cifar_core.engine import autodiff

        if not len(images):
            return np.zeros((0, *images.shape[1:3]), dtype=np.float32)
        x = keras.ops.convert_to_tensor(images)
        for layer in self._before:
            x = layer(x, training=False)
        chosen = keras.ops.convert_to_tensor(np.asarray(classes, np.int32)[:, None])

        def class_scores(features):
            for layer in self._after:
                features = layer(features, training=False)
            scores = self._logits(keras.ops.cast(features, "float32"))
            return keras.ops.take_along_axis(scores, chosen, axis=1)[:, 0]

        _, grads = autodiff.input_gradient(class_scores, x)
        features = keras.ops.cast(x, "float32")
        weights = keras.ops.mean(keras.ops.cast(grads, "float32"), axis=(1, 2), keepdims=True)
        cam = keras.ops.relu(keras.ops.sum(weights * features, axis=-1, keepdims=True))
        cam = keras.ops.convert_to_numpy(keras.ops.image.resize(cam, images.shape[1:3], interpolation="bilinear"))
        cam = cam[..., 0]
        peak = cam.reshape(len(cam), -1).max(axis=1)[:, None, None]
        return np.where(peak > 0, cam / np.where(peak > 0, peak, 1), 0).astype(np.float32)

    def _logits(self, head):
        if self._dense_softmax:
            last = self.model.layers[-1]
            return head @ last.kernel + last.bias
        return head


def _is_softmax(layer) -> bool:
    return getattr(getattr(layer, "activation", None), "__name__", "") == "softmax"


def default_layer(model) -> str:
    """The layer Grad-CAM uses unless told otherwise: the output of the last conv layer."""
    names = conv_outputs(model)
    if not names:
        raise ValueError("This model has no convolution layer at its top level, so Grad-CAM has nothing to weigh.")
    return names[-1]


def activations(model, image: np.ndarray, layers: list[str]) -> dict[str, np.ndarray]:
    """The outputs (H, W, C) of the named layers for one uint8 image (a keras.Sequential model)."""
    import keras

    if not isinstance(model, keras.Sequential):
        raise ValueError(f"The feature-map view needs a keras.Sequential model; {model.name} is a functional graph.")
    found, x = {}, image[None]
    for layer in model.layers:
        x = layer(x, training=False)
        if layer.name in layers:
            found[layer.name] = keras.ops.convert_to_numpy(x[0]).astype(np.float32)
        if len(found) == len(layers):
            break
    return found


def strongest_channels(maps: np.ndarray, count: int = TILE_CHANNELS) -> np.ndarray:
    """The `count` channels of an activation (H, W, C) with the highest mean response, strongest first."""
    order = np.argsort(maps.mean(axis=(0, 1)))[::-1][:count]
    return maps[:, :, order]


def evidence_strips(images: np.ndarray, maps: np.ndarray) -> list[np.ndarray]:
    """Per image: the image, then overlays of maps[i] and maps[n + i] (the evidence for the predicted class and
    for the true class, as computed for the images twice over)."""
    n = len(images)
    return [np.concatenate([img, overlay(img, maps[i]), overlay(img, maps[n + i])], axis=1)
            for i, img in enumerate(images)]


def sheet(strips: list[np.ndarray], captions: list[str], title: str, columns: int = 4, zoom: int = 3):
    """A PNG-ready PIL image: the strips (image, evidence for the prediction, evidence for the truth) in a grid,
    each with its caption under it and a title on top."""
    from PIL import Image, ImageDraw

    cell_w, cell_h, text_h, pad, top = strips[0].shape[1] * zoom, strips[0].shape[0] * zoom, 16, 8, 40
    rows = -(-len(strips) // columns)
    width = columns * (cell_w + pad) + pad
    sheet_image = Image.new("RGB", (width, top + rows * (cell_h + text_h + pad)), "white")
    draw = ImageDraw.Draw(sheet_image)
    draw.multiline_text((pad, 8), title, fill="black", spacing=4)
    for i, (strip, caption) in enumerate(zip(strips, captions, strict=True)):
        r, c = divmod(i, columns)
        x, y = pad + c * (cell_w + pad), top + r * (cell_h + text_h + pad)
        sheet_image.paste(Image.fromarray(strip).resize((cell_w, cell_h), Image.NEAREST), (x, y))
        draw.multiline_text((x, y + cell_h + 2), caption, fill="black", spacing=2)
    return sheet_image


def misclassified_sheet(run_dir, dataset, true: str, predicted: str, layer: str | None = None, count: int = 24):
    """Grad-CAM of a run's surest `true`-taken-for-`predicted` test images (from `dataset`, the run's data) as one
    sheet (a PIL image, or None when there is no such image), and how many such images the run has. Raises
    runs.RunError with the fix when the run or the classes do not fit."""
    from cifar_core.analysis import scores
    from cifar_core.engine import trainer
    from cifar_core.store import rundir, runs

    preds = rundir.read_predictions(run_dir)
    names = rundir.read_report(run_dir)["class_names"]
    for label in (true, predicted):
        if label not in names:
            raise runs.RunError(f"No class {label!r}; the classes are {', '.join(names)}.")
    wrong = scores.misclassified(preds, names.index(true), names.index(predicted))
    if wrong.empty:
        return None, 0
    model = trainer.load_model(run_dir)
    try:
        cam = GradCam(model, layer or default_layer(model))
    except ValueError as exc:
        raise runs.RunError(f"Grad-CAM is not available for run {run_dir.name}: {exc}") from None
    shown = wrong.head(count)
    images = dataset.x_test[shown["index"].to_numpy()]
    n = len(images)
    classes = np.r_[np.full(n, names.index(predicted)), np.full(n, names.index(true))]
    strips = evidence_strips(images, cam(np.concatenate([images, images]), classes))
    captions = [f"test #{int(r.index)}: {predicted} {r.confidence:.0%}, {true} {r.true_prob:.0%}"
                for r in shown.itertuples()]
    what = f"{true} taken for {predicted}" if true != predicted else f"{true} predicted right"
    title = (f"{run_dir.name}: {what}, {len(wrong)} test images, surest first\n"
             f"each: the image | evidence for {predicted} | evidence for {true}  (Grad-CAM on {cam.layer})")
    return sheet(strips, captions, title), len(wrong)
