"""Evaluation from arrays: confusion matrix, per-class report, top confusions, misclassified images.

Pure functions of labels and probabilities (scikit-learn does the metrics), so they test without a model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cifar_core.store import rundir


def build_report(y_true: np.ndarray, y_pred: np.ndarray, class_names: tuple[str, ...] | list[str]) -> dict:
    """report.json's content: accuracy, confusion matrix (rows true, columns predicted), per-class metrics."""
    from sklearn.metrics import classification_report, confusion_matrix

    labels = list(range(len(class_names)))
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    rep = classification_report(y_true, y_pred, labels=labels, target_names=list(class_names),
                                output_dict=True, zero_division=0)
    per_class = [{"class": name, **{k: float(v) for k, v in rep[name].items()}} for name in class_names]
    return {
        "class_names": list(class_names),
        "accuracy": float(np.mean(y_true == y_pred)),
        "confusion_matrix": cm.tolist(),
        "per_class": per_class,
        "macro avg": {k: float(v) for k, v in rep["macro avg"].items()},
        "weighted avg": {k: float(v) for k, v in rep["weighted avg"].items()},
    }


def per_class_frame(report: dict) -> pd.DataFrame:
    """Per-class precision, recall, F1 and support, support as the image count it is (report.json keeps
    scikit-learn's float, which a table prints as 1000.000)."""
    table = pd.DataFrame(report["per_class"])
    return table.astype({"support": int}) if "support" in table else table


def confusion_frame(report: dict, normalize: bool = False) -> pd.DataFrame:
    """Long-form confusion matrix (true, predicted, count, rate) for charts and tables."""
    names = report["class_names"]
    cm = np.asarray(report["confusion_matrix"], dtype=float)
    rates = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    rows = [{"true": names[i], "predicted": names[j], "count": int(cm[i, j]), "rate": float(rates[i, j]),
             "value": float(rates[i, j] if normalize else cm[i, j])}
            for i in range(len(names)) for j in range(len(names))]
    return pd.DataFrame(rows)


def top_confusions(report: dict, k: int = 10) -> pd.DataFrame:
    """The k largest non-empty off-diagonal cells: which true class is most often taken for which."""
    df = confusion_frame(report)
    off = df[(df["true"] != df["predicted"]) & (df["count"] > 0)]
    return off.sort_values(["count", "true"], ascending=[False, True]).head(k).reset_index(drop=True)


def confusion_difference(report_a: dict, report_b: dict) -> pd.DataFrame:
    """Long-form B - A confusion counts: positive cells are confusions that grew from A to B."""
    a, b = confusion_frame(report_a), confusion_frame(report_b)
    out = a[["true", "predicted"]].copy()
    out["a"], out["b"] = a["count"], b["count"]
    out["change"] = out["b"] - out["a"]
    return out


def default_pair(report: dict) -> tuple[str, str]:
    """The mistake a page opens on: cat taken for dog (CIFAR-10's classic) where the run makes it, else its most
    frequent confusion (a weak run may never predict dog), else the first two classes."""
    names = report["class_names"]
    if {"cat", "dog"} <= set(names) and cell(report, "cat", "dog"):
        return "cat", "dog"
    top = top_confusions(report, 1)
    return (str(top["true"].iloc[0]), str(top["predicted"].iloc[0])) if len(top) else (names[0], names[1])


def cell(report: dict, true: str, predicted: str) -> int:
    names = report["class_names"]
    return int(report["confusion_matrix"][names.index(true)][names.index(predicted)])


def save_predictions(path: Path, y_true: np.ndarray, probs: np.ndarray, indices: np.ndarray | None = None) -> None:
    """predictions.npz: labels, predicted labels, float16 probabilities, and which test images they are."""
    indices = np.arange(len(y_true)) if indices is None else indices
    tmp = rundir.temp_path(path, ".npz")
    try:
        np.savez_compressed(tmp, y_true=y_true.astype(np.int16), y_pred=probs.argmax(1).astype(np.int16),
                            probs=probs.astype(np.float16), index=indices.astype(np.int32))
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def misclassified(preds: dict[str, np.ndarray], true: int, predicted: int, sort: str = "confident") -> pd.DataFrame:
    """Test images of class `true` predicted as `predicted`, with the model's confidence in its mistake.

    sort='confident' puts the surest mistakes first; 'unsure' the closest calls first.
    """
    mask = (preds["y_true"] == true) & (preds["y_pred"] == predicted)
    rows = np.flatnonzero(mask)
    probs = preds["probs"][rows].astype(np.float32)
    df = pd.DataFrame({"row": rows, "index": preds["index"][rows], "confidence": probs[:, predicted],
                       "true_prob": probs[:, true]})
    return df.sort_values("confidence", ascending=(sort != "confident")).reset_index(drop=True)


def top_k(probs: np.ndarray, class_names: list[str], k: int = 3) -> list[tuple[str, float]]:
    """The k most probable classes of one image, best first."""
    order = np.argsort(probs)[::-1][:k]
    return [(class_names[i], float(probs[i])) for i in order]
