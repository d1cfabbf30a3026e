"""Calibration: how far a model's confidence can be trusted.

The reliability diagram and the expected calibration error (ECE) use scikit-learn's `calibration_curve`
on equal-width bins; ECE weights each bin's gap between accuracy and mean confidence by its share of images
(Guo et al., 2017). Per class, the same on that class's one-vs-rest probability (classwise ECE).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

BINS = 15  # equal-width confidence bins, the usual number for ECE on CIFAR-10


def _bin_counts(values: np.ndarray, n_bins: int) -> np.ndarray:
    """Images per bin, binned exactly as `calibration_curve` bins them (its non-empty bins, in order)."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    counts = np.bincount(np.searchsorted(edges[1:-1], values), minlength=n_bins)
    return counts[counts > 0]


def _curve(hit: np.ndarray, prob: np.ndarray, n_bins: int) -> pd.DataFrame:
    from sklearn.calibration import calibration_curve

    accuracy, confidence = calibration_curve(hit.astype(int), prob, n_bins=n_bins, pos_label=1)
    return pd.DataFrame({"confidence": confidence, "accuracy": accuracy, "count": _bin_counts(prob, n_bins)})


def _ece(curve: pd.DataFrame) -> float:
    weights = curve["count"] / curve["count"].sum()
    return float((weights * (curve["accuracy"] - curve["confidence"]).abs()).sum())


def reliability(y_true: np.ndarray, probs: np.ndarray, n_bins: int = BINS) -> pd.DataFrame:
    """Top-label reliability diagram: per non-empty bin of confidence (the top probability), its mean
    confidence, the share of those images predicted right, and how many images it holds."""
    probs = np.asarray(probs, dtype=np.float64)
    return _curve(probs.argmax(1) == y_true, probs.max(1), n_bins)


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, n_bins: int = BINS) -> float:
    """ECE of the top-label confidence: 0 for a model whose confidence equals its accuracy in every bin."""
    return _ece(reliability(y_true, probs, n_bins))


def classwise_ece(y_true: np.ndarray, probs: np.ndarray, class_names: list[str], n_bins: int = BINS) -> pd.DataFrame:
    """Per class, the ECE of its one-vs-rest probability on every test image ('when the model says 70% cat,
    is it a cat 70% of the time?'), with the class's mean probability and its true share."""
    probs = np.asarray(probs, dtype=np.float64)
    rows = []
    for k, name in enumerate(class_names):
        hit = y_true == k
        rows.append({"class": name, "ece": _ece(_curve(hit, probs[:, k], n_bins)),
                     "mean probability": float(probs[:, k].mean()), "share": float(hit.mean())})
    return pd.DataFrame(rows)


def confidence_histogram(y_true: np.ndarray, probs: np.ndarray, n_bins: int = BINS) -> pd.DataFrame:
    """How many right and wrong predictions fall in each bin of confidence (for a stacked histogram)."""
    probs = np.asarray(probs, dtype=np.float64)
    confidence, right = probs.max(1), probs.argmax(1) == y_true
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    rows = []
    for outcome, mask in (("right", right), ("wrong", ~right)):
        counts, _ = np.histogram(confidence[mask], bins=edges)
        rows += [{"from": float(lo), "to": float(hi), "outcome": outcome, "count": int(c)}
                 for lo, hi, c in zip(edges[:-1], edges[1:], counts, strict=True)]
    return pd.DataFrame(rows)


def run_ece(preds: dict[str, np.ndarray]) -> float:
    """The ECE of a run from its predictions.npz."""
    return expected_calibration_error(preds["y_true"], preds["probs"])


@dataclass
class Summary:
    """Everything the lab shows about one run's calibration."""

    ece: float
    reliability: pd.DataFrame
    histogram: pd.DataFrame
    per_class: pd.DataFrame

    @property
    def worst_class(self) -> pd.Series:
        return self.per_class.loc[self.per_class["ece"].idxmax()]


def summarize(preds: dict[str, np.ndarray], class_names: list[str]) -> Summary:
    """A run's ECE, reliability bins, confidence histogram and classwise ECE, from its predictions.npz."""
    y, probs = preds["y_true"], preds["probs"]
    return Summary(expected_calibration_error(y, probs), reliability(y, probs), confidence_histogram(y, probs),
                   classwise_ece(y, probs, class_names))
