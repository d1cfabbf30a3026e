"""The map of a run's test images: where each sits in 2-D by what the network sees, with its label, prediction and
whether it is a mistake, a highlighted class pair, or flagged as likely mislabeled."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cifar_core.store.embeddings import Embeddings


def frame(preds: dict[str, np.ndarray], test: Embeddings, xy: np.ndarray, names: list[str]) -> pd.DataFrame:
    """One row per test image the run has both a prediction and a map position for: x, y, position (test #),
    true, predicted, confidence, wrong."""
    at = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "position": test.index.astype(int)})
    probs = np.asarray(preds["probs"], np.float32)
    said = pd.DataFrame({"position": preds["index"].astype(int), "row": np.arange(len(probs)),
                         "true": np.asarray(names)[preds["y_true"]], "predicted": np.asarray(names)[preds["y_pred"]],
                         "confidence": probs.max(1).round(3)})
    out = at.merge(said, on="position", how="inner")
    out["wrong"] = out["true"] != out["predicted"]
    return out


def mark(points: pd.DataFrame, pair: tuple[str, str], flagged: set[int] | None = None) -> pd.DataFrame:
    """`points` with `in_pair` (true = pair[0], predicted = pair[1]) and `flagged` (likely mislabeled) columns."""
    out = points.copy()
    out["in_pair"] = (out["true"] == pair[0]) & (out["predicted"] == pair[1])
    out["flagged"] = out["position"].isin(flagged or set())
    return out


def in_region(points: pd.DataFrame, region: dict | None) -> pd.DataFrame:
    """The points inside a brushed region {'x': [lo, hi], 'y': [lo, hi]} (none while no region is drawn)."""
    if not region or "x" not in region or "y" not in region:
        return points.iloc[0:0]
    (x0, x1), (y0, y1) = sorted(region["x"]), sorted(region["y"])
    return points[points["x"].between(x0, x1) & points["y"].between(y0, y1)]
