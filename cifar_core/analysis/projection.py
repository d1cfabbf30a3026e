"""The 2-D map of a run's embeddings: a projection chosen by measuring speed and quality (benchmarks/embeddings.py).

On 10,000 test embeddings of the full-data baseline, 2 idle AMD EPYC cores: PCA under 0.1 s (same-class share
of the 10 nearest map neighbours 0.31, trustworthiness 0.80), openTSNE 25 s (0.55, 0.92), UMAP 38 s with its JIT
(0.53, 0.88). openTSNE keeps images among their neighbours best, so the map uses it; PCA is instant and is
what the map shows until the t-SNE map is made. UMAP (not a dependency) is measured where it is installed.
"""

from __future__ import annotations

import numpy as np

METHODS = ("pca", "tsne", "umap")  # umap only where umap-learn is installed
LABELS = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}
CHOSEN = "tsne"  # measured on 10,000 test embeddings on 2 cores: see benchmarks/embeddings.py and the README
SEED = 0


TSNE_ITERATIONS = (250, 500)  # openTSNE's defaults: early exaggeration, then the main optimization
PROGRESS_EVERY = 25
FFT_FROM = 5_000  # openTSNE's FFT gradients pay a fixed grid cost: Barnes-Hut is faster below this many points


def project(vectors: np.ndarray, method: str = CHOSEN, update=None) -> np.ndarray:
    """(n, 2) float32 positions of `vectors` (n, d); deterministic for a given method and input. `update(done,
    total)` hears of t-SNE's iterations."""
    x = np.asarray(vectors, np.float32)
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(2, random_state=SEED).fit_transform(x).astype(np.float32)
    if method == "tsne":
        from openTSNE import TSNE

        total, done = sum(TSNE_ITERATIONS), [0]

        def tick(*_):
            done[0] += PROGRESS_EVERY
            if update:
                update(min(done[0], total), total)

        gradient = "fft" if len(x) >= FFT_FROM else "bh"
        tsne = TSNE(n_jobs=-1, random_state=SEED, verbose=False, negative_gradient_method=gradient,
                    early_exaggeration_iter=TSNE_ITERATIONS[0],
                    n_iter=TSNE_ITERATIONS[1], callbacks=tick, callbacks_every_iters=PROGRESS_EVERY)
        return np.asarray(tsne.fit(x), np.float32)
    if method == "umap":
        import umap

        return umap.UMAP(random_state=SEED, n_jobs=1).fit_transform(x).astype(np.float32)
    raise ValueError(f"unknown projection {method!r}: choose one of {', '.join(METHODS)}")


def neighbour_agreement(xy: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    """Share of each point's `k` nearest neighbours in the map that share its label (how well classes keep
    together)."""
    from sklearn.neighbors import NearestNeighbors

    _, idx = NearestNeighbors(n_neighbors=k + 1).fit(xy).kneighbors(xy)
    return float((labels[idx[:, 1:]] == labels[:, None]).mean())
