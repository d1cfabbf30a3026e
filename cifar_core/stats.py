"""How sure an answer is: the interval of one run's test accuracy, and whether two runs on the same test images
really differ (McNemar's exact test on the images one gets right and the other wrong)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LEVEL = 0.95
ALPHA = 1 - LEVEL


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
                 f"(McNemar's exact test, p = {self.p_value:.2g})")
        if self.p_value < alpha:
            better = a if self.only_a > self.only_b else b
            return (f"{better} is really better: {split}. A split this uneven would happen by chance less than "
                    f"{alpha:.0%} of the time if the two were equally accurate.")
        return (f"No real difference shown: {split}. A split like this happens by chance often enough "
                f"(p ≥ {alpha:g}) that these runs cannot tell the two models apart.")


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> McNemar:
    """McNemar's exact test: under 'equally accurate', each discordant image is A's or B's with probability 1/2."""
    from scipy.stats import binomtest

    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    if a.shape != b.shape:
        raise ValueError(f"McNemar needs the same test images for both runs ({a.size:,} against {b.size:,}).")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    p = binomtest(min(only_a, only_b), only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    return McNemar(only_a, only_b, int((a & b).sum()), int((~a & ~b).sum()), float(min(p, 1.0)))


def paired_correct(preds_a: dict, preds_b: dict) -> tuple[np.ndarray, np.ndarray]:
    """Right/wrong per test image for two runs' predictions, on the test images both were evaluated on
    (matched by their index in the data set's test split)."""
    _, ia, ib = np.intersect1d(preds_a["index"], preds_b["index"], return_indices=True)
    if not len(ia):
        raise ValueError("the two runs share no test image: McNemar needs runs evaluated on the same test set.")
    correct_a = preds_a["y_pred"][ia] == preds_a["y_true"][ia]
    correct_b = preds_b["y_pred"][ib] == preds_b["y_true"][ib]
    return correct_a, correct_b


def same_test_set(meta_a: dict, meta_b: dict) -> str | None:
    """Why two runs cannot be paired image by image, or None when they were tested on the same data."""
    fa, fb = ((m.get("data") or {}).get("fingerprint") for m in (meta_a, meta_b))
    if fa and fb and fa != fb:
        return "the two runs were tested on different data sets, so their images cannot be paired."
    return None
