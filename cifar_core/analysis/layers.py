"""What each layer does while it learns, from the records a run keeps in layers.jsonl (numpy and pandas only).

A record is taken on one fixed probe batch of validation images: before training, a few times within the first
epoch, and after each epoch. Per layer with weights it holds the activation distribution (mean, standard deviation,
quantiles) and the share of dead channels after its ReLU, the gradient norm of the loss on the probe batch, the
weight norm and the relative update since the previous record; batch-norm layers add how far their moving mean and
variance moved. These are the mechanisms behind the original study's findings: gradients that vanish in the early
layers of a deep plain network, activations that shrink or explode with depth, ReLUs that die, weights that stop
moving.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)
QUANTILE_SAMPLE = 2**18  # values the quantiles are taken from (a conv layer's output on the probe batch has millions)
DEAD_SHARE = 0.10  # a sentence names a layer once this share of its channels is dead
VANISHING_RATIO = 0.01  # first layer's gradient below this share of the last's: said in a sentence
MEASURES = {  # column -> (what a chart calls it, log scale)
    "grad_norm": ("gradient norm", True),
    "act_std": ("activation std", True),
    "dead": ("dead channels", False),
    "update": ("relative update", True),
    "weight_norm": ("weight norm", False),
}


def activation_stats(values: np.ndarray) -> dict:
    """Mean, std and QUANTILES of a layer's outputs on the probe batch (the quantiles from at most QUANTILE_SAMPLE
    evenly strided values), and the share of channels (last axis) that are zero or below for every image and position:
    dead after a ReLU, since no gradient flows through them."""
    values = np.asarray(values, dtype=np.float32)
    flat = values.reshape(-1, values.shape[-1])
    sample = flat.ravel()[::max(1, flat.size // QUANTILE_SAMPLE)]  # evenly spread: every image, channel, place
    return {"mean": float(flat.mean()), "std": float(flat.std()),
            "quantiles": [float(q) for q in np.quantile(sample, QUANTILES)],
            "dead": float(np.all(flat <= 0, axis=0).mean())}


def norm(arrays: list[np.ndarray]) -> float:
    """The L2 norm of several arrays taken as one vector."""
    return float(np.sqrt(sum(float(np.sum(np.square(np.asarray(a, dtype=np.float64)))) for a in arrays)))


def relative_change(now: list[np.ndarray], before: list[np.ndarray] | None) -> float | None:
    """|now - before| / |before| over a layer's weights; None without an earlier record."""
    if before is None:
        return None
    size = norm(before)
    return norm([a - b for a, b in zip(now, before, strict=True)]) / size if size else None


MAIN_KINDS = ("Conv2D", "Dense", "DepthwiseConv2D", "SeparableConv2D")  # the layers a network's depth counts


def frame(records: list[dict]) -> pd.DataFrame:
    """One row per record and layer: epoch, layer, its place among all layers with weights (order) and among the
    conv and dense layers (depth: 1 is the first; batch norm has none), kind and every measure (long form)."""
    rows = []
    for r in records:
        depth = 0
        for layer in r["layers"]:
            act = layer.get("act") or {}
            depth += layer["kind"] in MAIN_KINDS
            rows.append({"epoch": r["epoch"], "layer": layer["name"], "order": layer["order"], "kind": layer["kind"],
                         "depth": depth if layer["kind"] in MAIN_KINDS else None,
                         "grad_norm": layer.get("grad_norm"), "weight_norm": layer.get("weight_norm"),
                         "update": layer.get("update"), "act_mean": act.get("mean"), "act_std": act.get("std"),
                         "dead": act.get("dead"), "bn_mean_drift": (layer.get("bn") or {}).get("mean_drift"),
                         "bn_var_drift": (layer.get("bn") or {}).get("var_drift")})
    columns = ["epoch", "layer", "order", "depth", "kind", "grad_norm", "weight_norm", "update", "act_mean", "act_std",
               "dead", "bn_mean_drift", "bn_var_drift"]
    return pd.DataFrame(rows, columns=columns)


def profile(records_by_run: dict[str, list[dict]], epoch: float | None = None) -> pd.DataFrame:
    """Every layer of several runs at one record each (the nearest to `epoch`, or the last), with the run's name:
    the rows of a by-depth comparison (runs without records are left out)."""
    parts = []
    for run, records in records_by_run.items():
        record = at_epoch(records, epoch)
        if record is not None:
            parts.append(frame([record]).assign(run=run))
    return pd.concat(parts, ignore_index=True) if parts else frame([]).assign(run=[])


def at_epoch(records: list[dict], epoch: float | None = None) -> dict | None:
    """The record at `epoch` (the nearest one), or the last one; None without records."""
    if not records:
        return None
    if epoch is None:
        return records[-1]
    return min(records, key=lambda r: abs(r["epoch"] - epoch))


def table(record: dict) -> pd.DataFrame:
    """One record as the per-layer table `cifar-lab layers` prints and the Runs page shows."""
    rows = []
    for layer in record["layers"]:
        act = layer.get("act") or {}
        bn = layer.get("bn") or {}
        rows.append({"layer": layer["name"], "kind": layer["kind"], "act mean": act.get("mean"),
                     "act std": act.get("std"), "dead": act.get("dead"), "grad norm": layer.get("grad_norm"),
                     "weight norm": layer.get("weight_norm"), "update": layer.get("update"),
                     "bn mean drift": bn.get("mean_drift"), "bn var drift": bn.get("var_drift")})
    out = pd.DataFrame(rows)
    numbers = [c for c in out.columns if c not in ("layer", "kind")]
    return out.astype({c: "float64" for c in numbers})


NOT_APPLICABLE = "–"  # a cell of the text table whose measure does not apply there (caveats.LAYER_TABLE_GAPS)


def text_table(record: dict) -> pd.DataFrame:
    """table() as the text the CLI prints and the Runs page draws: the dead share as a percentage, other measures to
    4 significant digits, NOT_APPLICABLE where a measure does not apply."""
    out = table(record)
    for column in out.columns[2:]:
        form = "{:.0%}" if column == "dead" else "{:.4g}"
        out[column] = out[column].map(lambda v, form=form: NOT_APPLICABLE if np.isnan(v) else form.format(v))
    return out


def distribution_frame(record: dict) -> pd.DataFrame:
    """Each layer's activation quantiles in one record, for a box-and-whisker view (whiskers at 1% and 99%)."""
    rows = []
    for layer in record["layers"]:
        act = layer.get("act")
        if act:
            q = dict(zip(QUANTILES, act["quantiles"], strict=True))
            rows.append({"layer": layer["name"], "order": layer["order"], "min": q[0.0], "p01": q[0.01],
                         "p25": q[0.25], "median": q[0.5], "p75": q[0.75], "p99": q[0.99], "max": q[1.0],
                         "mean": act["mean"]})
    return pd.DataFrame(rows)


def sentences(records: list[dict]) -> list[str]:
    """What the records plainly show, in sentences, and nothing the numbers do not support."""
    last = at_epoch(records)
    if last is None:
        return []
    epoch = _epoch_text(last["epoch"])
    out = []
    for layer in last["layers"]:
        dead = (layer.get("act") or {}).get("dead")
        if dead is not None and dead >= DEAD_SHARE and layer["kind"] != "BatchNormalization":
            out.append(f"{layer['name']}: {dead:.0%} of its channels dead at {epoch} (zero for every probe image: "
                       "no gradient reaches their weights).")
    grads = [(layer["name"], layer["grad_norm"]) for layer in last["layers"]
             if layer["kind"] in ("Conv2D", "Dense") and layer.get("grad_norm")]
    if len(grads) >= 2 and grads[0][1] < VANISHING_RATIO * grads[-1][1]:
        out.append(f"The gradient reaching {grads[0][0]} is {grads[0][1] / grads[-1][1]:.1e} of the one at "
                   f"{grads[-1][0]} at {epoch}: the first layers barely learn.")
    stds = [(layer["name"], (layer.get("act") or {}).get("std")) for layer in last["layers"]
            if layer["kind"] in ("Conv2D", "Dense") and (layer.get("act") or {}).get("std")]
    if len(stds) >= 3:
        ratio = stds[-2][1] / stds[0][1]
        if ratio < 0.1 or ratio > 10:
            trend = "shrinks" if ratio < 1 else "grows"
            out.append(f"The activations' spread {trend} {max(ratio, 1 / ratio):.0f}-fold from {stds[0][0]} to "
                       f"{stds[-2][0]} at {epoch}.")
    return out


def _epoch_text(epoch: float) -> str:
    return "the start" if epoch == 0 else f"epoch {epoch:g}"


def filter_grid(filters: np.ndarray, zoom: int = 6, gap: int = 2) -> np.ndarray:
    """First-layer conv filters (kh, kw, 3, n) as one RGB uint8 image, each filter scaled to 0-255 on its own (the
    classic picture of what a CNN learns first: edges and colour blobs)."""
    kh, kw, channels, n = filters.shape
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    cell_h, cell_w = kh * zoom + gap, kw * zoom + gap
    grid = np.full((rows * cell_h + gap, cols * cell_w + gap, 3), 255, np.uint8)
    for i in range(n):
        f = filters[..., i].astype(np.float32)
        f = f[..., :3] if channels >= 3 else np.repeat(f[..., :1], 3, axis=-1)
        f = (f - f.min()) / max(float(f.max() - f.min()), 1e-12)
        tile = np.kron((f * 255).astype(np.uint8), np.ones((zoom, zoom, 1), np.uint8))
        r, c = divmod(i, cols)
        grid[gap + r * cell_h:gap + r * cell_h + kh * zoom, gap + c * cell_w:gap + c * cell_w + kw * zoom] = tile
    return grid
