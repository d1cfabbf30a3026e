"""How sure an answer is: the interval of one run's test accuracy, and whether two runs on the same test images
really differ (McNemar's exact test on the images one gets right and the other wrong)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LEVEL = 0.95
ALPHA = 1 - LEVEL
TINY_P = 1e-300  # below this a p-value is printed as a bound: 0.0 means it underflowed, never that it is 0


def p_value_text(p: float) -> str:
    """A p-value as '0.032', or '< 1e-300' where it is too small for a float (it is never exactly 0)."""
    return f"< {TINY_P:g}" if p < TINY_P else f"{p:.2g}"


def p_text(p: float) -> str:
    """'p = 0.032' or 'p < 1e-300', for a sentence."""
    text = p_value_text(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def accuracy_interval(correct: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Exact (Clopper-Pearson) binomial interval of an accuracy measured on `n` images: what the same model
    could have scored on another test set of that size."""
    from scipy.stats import binomtest

    ci = binomtest(int(correct), int(n)).proportion_ci(level, method="exact")
    return float(ci.low), float(ci.high)


@dataclass(frozen=True)
class McNemar:
    """Two models on the same test images: how many each gets right where the other is wrong, and the
    two-sided exact p-value of that split if both were equally accurate."""

    only_a: int
    only_b: int
    both: int
    neither: int
    p_value: float

    @property
    def n(self) -> int:
        return self.only_a + self.only_b + self.both + self.neither

    def verdict(self, a: str, b: str, alpha: float = ALPHA) -> str:
        """One plain-language sentence for a reader who has never heard of McNemar."""
        split = (f"{a} alone gets {self.only_a:,} test images right, {b} alone {self.only_b:,} "
                 f"(McNemar's exact test, {p_text(self.p_value)})")
        if self.p_value < alpha:
            better = a if self.only_a > self.only_b else b
            return (f"{better}'s model is more accurate on these test images: {split}. A split this uneven would "
                    f"happen by chance less than {alpha:.0%} of the time between two equally accurate models.")
        return (f"No difference shown: {split}. A split like this happens by chance often enough "
                f"(p ≥ {alpha:g}) that these test images cannot tell the two models apart.")


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> McNemar:
    """McNemar's exact test: under 'equally accurate', each discordant image is A's or B's with probability 1/2."""
    from scipy.stats import binomtest

    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    if a.shape != b.shape:
        raise ValueError(f"McNemar needs the same test images for both runs ({a.size:,} against {b.size:,}).")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    p = binomtest(min(only_a, only_b), only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    return McNemar(only_a, only_b, int((a & b).sum()), int((~a & ~b).sum()), float(min(p, 1.0)))


def paired(preds_a: dict, preds_b: dict) -> dict[str, np.ndarray]:
    """Two runs' predictions on the test images both were evaluated on, matched by their index in the data set's
    test split: index, y_true, and y_pred_a/b, probs_a/b."""
    index, ia, ib = np.intersect1d(preds_a["index"], preds_b["index"], return_indices=True)
    if not len(ia):
        raise ValueError("the two runs share no test image: they must be evaluated on the same test set.")
    if not np.array_equal(preds_a["y_true"][ia], preds_b["y_true"][ib]):
        raise ValueError("the two runs' test images carry different labels at the same positions: they were not "
                         "tested on the same test set, so their images cannot be paired.")
    return {"index": index, "y_true": preds_a["y_true"][ia],
            "y_pred_a": preds_a["y_pred"][ia], "y_pred_b": preds_b["y_pred"][ib],
            "probs_a": preds_a["probs"][ia], "probs_b": preds_b["probs"][ib]}


def paired_correct(preds_a: dict, preds_b: dict) -> tuple[np.ndarray, np.ndarray]:
    """Right/wrong per test image for two runs, on the test images both were evaluated on."""
    pair = paired(preds_a, preds_b)
    return pair["y_pred_a"] == pair["y_true"], pair["y_pred_b"] == pair["y_true"]


def same_test_set(meta_a: dict, meta_b: dict) -> str | None:
    """Why two runs cannot be paired image by image, or None when they were tested on the same data: the same
    test-set digest where both runs have one (the same images, wherever copied). A run from before digests is
    matched by fingerprint, or else by the same source and test-set size: a folder copied anew (a fresh
    ../shared each session) has new file times, hence a new fingerprint; `paired` then checks the labels."""
    da, db = (m.get("data") or {} for m in (meta_a, meta_b))
    if da.get("test_digest") and db.get("test_digest"):
        same = da["test_digest"] == db["test_digest"]
    elif not (da.get("fingerprint") and db.get("fingerprint")) or da["fingerprint"] == db["fingerprint"]:
        same = True
    else:
        where = [(d.get("source"), d.get("test_images")) for d in (da, db)]
        same = bool(da.get("source")) and where[0] == where[1]
    return None if same else "the two runs were tested on different data sets, so their images cannot be paired."


def mean_interval(values, level: float = LEVEL) -> tuple[float, float, float]:
    """Mean of a few runs' figures and the t-interval of that mean (nan bounds for a single run)."""
    from scipy import stats as sps

    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) < 2:
        return (float(x[0]) if len(x) else float("nan")), float("nan"), float("nan")
    low, high = sps.t.interval(level, len(x) - 1, loc=x.mean(), scale=sps.sem(x))
    return float(x.mean()), float(low), float(high)


def accuracy_interval_text(low: float, high: float) -> str:
    """An interval of mean accuracy as 'low–high', clipped to the 0 to 1 an accuracy can take and saying so
    (over two or three seeds the t-interval of the mean often runs past 1)."""
    text = f"{max(low, 0.0):.4f}–{min(high, 1.0):.4f}"
    return f"{text} (clipped to 0–1)" if low < 0 or high > 1 else text


@dataclass(frozen=True)
class Difference:
    """B's mean minus A's over their seeds, with Welch's t-interval and p-value."""

    diff: float
    low: float
    high: float
    p_value: float


def mean_difference(a, b, level: float = LEVEL) -> Difference:
    """Welch's t-test of two groups of runs (different seeds): is B's mean really different from A's?"""
    from scipy import stats as sps

    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or len(b) < 2:
        raise ValueError("a difference of means needs at least two seeds in each group.")
    test = sps.ttest_ind(b, a, equal_var=False)
    ci = test.confidence_interval(level)
    return Difference(float(b.mean() - a.mean()), float(ci.low), float(ci.high), float(test.pvalue))


def group_accuracies(results, by: list[str]) -> dict[str, list[float]]:
    """Test accuracies per group of runs that differ only in seed, keyed by a readable group name."""
    out: dict[str, list[float]] = {}
    for key, group in results.groupby(by, sort=False, dropna=False) if by else [((), results)]:
        key = key if isinstance(key, tuple) else (key,)
        name = ", ".join(f"{k}={v}" for k, v in zip(by, key, strict=True)) or "all runs"
        out[name] = group["test_accuracy"].astype(float).tolist()
    return out


def difference_text(a: str, b: str, d: Difference) -> str:
    """The difference of two groups' mean accuracies in one sentence."""
    verdict = "a real difference" if d.p_value < ALPHA else "not a difference these seeds can show"
    return (f"{b} minus {a}: {d.diff:+.4f} test accuracy (95% interval {d.low:+.4f} to {d.high:+.4f}; "
            f"Welch's t-test {p_text(d.p_value)}): {verdict}.")


# Figures a group table shows as mean ± std beside test accuracy: column -> (label, number format).
GROUP_FIGURES = {"best_epoch": ("best epoch", ".1f"), "cat_dog": ("cat→dog", ".1f"), "dog_cat": ("dog→cat", ".1f"),
                 "ece": ("ECE", ".3f")}


CUT_SHORT = "cut_short"  # the results column that marks a stopped run (studies.CUT_SHORT)
CUT_SHORT_COLUMN = "stopped early, left out"


def group_summary(results, by: list[str]):
    """One row per group of runs that differ only in their seed: how many, and mean, std, min, max and the 95%
    interval of test accuracy, with the mean ± std of the other GROUP_FIGURES. A run stopped before its plan ended
    is left out of its group's figures (it trained less) and counted in CUT_SHORT_COLUMN."""
    import pandas as pd

    if results.empty:
        return pd.DataFrame()
    rows = []
    for key, every in results.groupby(by, sort=False, dropna=False) if by else [((), results)]:
        key = key if isinstance(key, tuple) else (key,)
        cut = every[CUT_SHORT].astype(bool) if CUT_SHORT in every else pd.Series(False, index=every.index)
        group = every[~cut]
        if group.empty:
            rows.append({**dict(zip(by, key, strict=True)), "seeds": 0, CUT_SHORT_COLUMN: int(cut.sum())})
            continue
        acc = group["test_accuracy"].astype(float)
        mean, low, high = mean_interval(acc)
        row = {**dict(zip(by, key, strict=True)), "seeds": len(group), "test acc mean": mean,
               "test acc std": float(acc.std(ddof=1)) if len(acc) > 1 else float("nan"),
               "test acc min": float(acc.min()), "test acc max": float(acc.max()),
               "test acc 95% CI": accuracy_interval_text(low, high) if len(acc) > 1 else "-"}
        for column, (label, fmt) in GROUP_FIGURES.items():
            if column in group:
                values = group[column].astype(float)
                row[f"{label} mean ± std"] = (f"{values.mean():{fmt}} ± {values.std(ddof=1):{fmt}}" if len(values) > 1
                                              else f"{values.mean():{fmt}}")
        rows.append({**row, CUT_SHORT_COLUMN: int(cut.sum())})
    return pd.DataFrame(rows)
