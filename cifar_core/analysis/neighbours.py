"""Nearest neighbours in a run's embedding space: which training images the network sees as most like a test image
("this cat sits among dogs"). Euclidean distance between embeddings, searched exactly."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class Index:
    """The training images' embeddings, ready for exact nearest-neighbour queries."""

    vectors: np.ndarray  # (n, d)
    positions: np.ndarray  # (n,) each row's position in the data set's training split
    labels: np.ndarray  # (n,)

    def __post_init__(self):
        self.vectors = np.asarray(self.vectors, np.float32)
        self._norms = np.einsum("ij,ij->i", self.vectors, self.vectors)

    def nearest(self, query: np.ndarray, k: int = 8) -> pd.DataFrame:
        """The `k` training images nearest to `query` (d,), nearest first: position, label, distance."""
        q = np.asarray(query, np.float32).ravel()
        squared = np.maximum(self._norms - 2 * self.vectors @ q + q @ q, 0)
        k = min(k, len(squared))
        rows = np.argpartition(squared, k - 1)[:k] if k < len(squared) else np.arange(len(squared))
        rows = rows[np.argsort(squared[rows], kind="stable")]
        return pd.DataFrame({"position": self.positions[rows].astype(int), "label": self.labels[rows].astype(int),
                             "distance": np.sqrt(squared[rows])})


def summary(found: pd.DataFrame, class_names: list[str]) -> str:
    """How the neighbours' labels fall, most frequent first: '6 dog, 2 cat'."""
    counts = found["label"].map(lambda i: class_names[i]).value_counts()
    return ", ".join(f"{n} {name}" for name, n in counts.items())
