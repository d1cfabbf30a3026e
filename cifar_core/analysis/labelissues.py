"""Likely label errors: confident learning (cleanlab) on out-of-sample probabilities.

Only images no model saw in training are judged: a run's test images, and its validation split. Several runs'
probabilities are averaged first (a seed group, or runs picked together), which judges better than any one.
Confident learning trusts the models: what it flags is "the given label disagrees with what the models are sure
of", so a weak model's own confident mistakes are flagged too (caveats.LABEL_ISSUES_TRUST says so beside every
figure).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cifar_core.analysis import stats
from cifar_core.errors import LabError
from cifar_core.store import embeddings, rundir
from cifar_core.store.runs import RunInfo


class LabelIssuesError(LabError):
    """Runs whose probabilities cannot be judged together (different data, or too few images of a class)."""


@dataclass(frozen=True)
class Judged:
    """Out-of-sample probabilities of one split, averaged over `runs`, with the given labels."""

    split: str  # "test" or "validation"
    positions: np.ndarray  # (n,) positions in the data set's test or training arrays
    labels: np.ndarray  # (n,) the given labels
    probs: np.ndarray  # (n, classes) averaged probabilities
    runs: tuple[str, ...]
    predicted: np.ndarray | None = None  # one run's own predicted labels, where it kept them: its float16
    # probabilities can tie where the float32 ones it predicted with did not (a weak run's accuracy then read 0.1311
    # here against its 0.1316)


def average(split: str, runs: list[str], positions: list[np.ndarray], labels: list[np.ndarray],
            probs: list[np.ndarray], predicted: list[np.ndarray] | None = None) -> Judged:
    """Average several runs' probabilities over the images they all judged (matched by position); `predicted`:
    each run's predicted labels, kept where there is one run."""
    common = positions[0]
    for p in positions[1:]:
        common = np.intersect1d(common, p)
    if not len(common):
        raise LabelIssuesError(f"runs {', '.join(runs)} judged no {split} image in common: pick runs of one data "
                               "set and test subset")
    total, given = None, None
    for p, y, pr in zip(positions, labels, probs, strict=True):
        rows = np.searchsorted(p, common) if np.all(np.diff(p) >= 0) else _rows(p, common)
        if given is not None and not np.array_equal(y[rows], given):
            raise LabelIssuesError(f"runs {', '.join(runs)} give different labels to the same {split} images: "
                                   "they come from different data; pick runs of one data set")
        given = y[rows]
        part = np.asarray(pr[rows], np.float64)
        total = part if total is None else total + part
    probs_mean = total / len(runs)
    probs_mean /= probs_mean.sum(1, keepdims=True)
    own = predicted[0][rows] if predicted and len(runs) == 1 else None
    return Judged(split, common, given.astype(int), probs_mean, tuple(runs), own)


def judge(infos: list[RunInfo]) -> tuple[Judged, Judged | None, str]:
    """(the test images judged by every run's averaged probabilities, the validation images where the runs hold
    out one and the same split (else None), and why validation was left out ('' where it was not))."""
    if any(stats.same_test_set(infos[0].meta, info.meta) for info in infos[1:]):
        raise LabelIssuesError("these runs were evaluated on different data; pick runs of one data set")
    ids = [info.run_id for info in infos]
    preds = [rundir.read_predictions(info.path) for info in infos]
    test = average("test", ids, [p["index"] for p in preds], [p["y_true"] for p in preds],
                   [p["probs"] for p in preds], [p["y_pred"] for p in preds])
    held = [embeddings.read(info.path) for info in infos]
    vals = [h[1] if h else None for h in held]
    if any(v is None or v.probs is None for v in vals):
        return test, None, ("validation left out: not every run kept its validation probabilities (runs that "
                            "validate on the test set, imported runs, and runs older than embeddings)")
    if any(not np.array_equal(v.index, vals[0].index) for v in vals[1:]):
        return test, None, "validation left out: these runs held out different validation images"
    val = average("validation", ids, [v.index for v in vals], [v.labels for v in vals], [v.probs for v in vals])
    return test, val, ""


def _rows(positions: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    where = {int(p): i for i, p in enumerate(positions)}
    return np.array([where[int(p)] for p in wanted])


def find(judged: Judged) -> pd.DataFrame:
    """Every image of `judged` with its label quality (cleanlab's normalized margin: the given label's probability
    against the likeliest other class, 0..1, low = suspicious),
    the suggested label (the most probable class) and whether confident learning flags it; flagged first, worst
    first."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    y, probs = judged.labels, judged.probs
    counts = np.bincount(y, minlength=probs.shape[1])
    if counts.min() < 2:
        raise LabelIssuesError(f"confident learning needs at least 2 {judged.split} images of every class (found "
                               f"{counts.min()} of class {int(counts.argmin())}); judge a larger split")
    flagged = find_label_issues(y, probs, n_jobs=1)
    quality = get_label_quality_scores(y, probs, method="normalized_margin")
    frame = pd.DataFrame({"split": judged.split, "position": judged.positions.astype(int), "given": y,
                          "suggested": probs.argmax(1) if judged.predicted is None else judged.predicted,
                          "quality": quality,
                          "p_given": probs[np.arange(len(y)), y], "p_suggested": probs.max(1), "flagged": flagged})
    return frame.sort_values(["flagged", "quality"], ascending=[False, True]).reset_index(drop=True)


@dataclass(frozen=True)
class Summary:
    """What the Runs page and the CLI say about one judged split."""

    images: int
    flagged: int
    accuracy: float  # of the (averaged) probabilities on every image
    accuracy_set_aside: float  # on the images not flagged: optimistic by construction (caveats.SET_ASIDE)
    runs: int


def summarize(found: pd.DataFrame, runs: int) -> Summary:
    right = found["given"] == found["suggested"]
    kept = ~found["flagged"]
    return Summary(len(found), int(found["flagged"].sum()), float(right.mean()),
                   float(right[kept].mean()) if kept.any() else float("nan"), runs)


def pair(found: pd.DataFrame, true: int, predicted: int) -> tuple[int, int]:
    """(mistakes of `true` taken for `predicted`, how many of them are flagged as likely mislabeled)."""
    mistakes = found[(found["given"] == true) & (found["suggested"] == predicted)]
    return len(mistakes), int(mistakes["flagged"].sum())
