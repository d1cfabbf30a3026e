"""Model or label: time to embed, project and index a full run on this machine, and the quality of each projection.

    python benchmarks/embeddings.py RUN_DIR [--methods pca,tsne,umap]

Embeds the run's test and training images (in its own process, as the dashboard's job does), projects the
10,000 test embeddings with each method (quality: the share of each point's 10 nearest map neighbours of its own
class, and scikit-learn's trustworthiness on 2,000 points), and times building the training-set index and one
8-nearest-neighbours query. Prints the CPU model and flags beside the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from cifar_core import hardware
from cifar_core.analysis import neighbours, projection


def quiet(_description: str):
    """No progress lines: the steps are timed here."""
    return contextlib.nullcontext(lambda done, total: None)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--methods", default="pca,tsne,umap", help="umap where umap-learn is installed")
    args = parser.parse_args()
    cpu = hardware.cpu()
    print(f"CPU: {cpu.describe()}")
    from cifar_core.engine import embeddings as engine_embeddings
    from cifar_core.store import embeddings as store

    with tempfile.TemporaryDirectory() as tmp:  # the run's own files stay as they are
        run = Path(tmp) / args.run_dir.name
        shutil.copytree(args.run_dir, run, ignore=shutil.ignore_patterns("embeddings*.npz", "map.npz", "backup"))
        t0 = time.perf_counter()
        engine_embeddings.make(run, train=False, counting=quiet)
        t1 = time.perf_counter()
        engine_embeddings.make(run, train=True, counting=quiet)
        t2 = time.perf_counter()
        test, _ = store.read(run)
        train = store.read_train(run)
    print(f"embed: {len(test.index)} test (+ validation) images {t1 - t0:.1f} s (model and data load included); "
          f"{len(train.index)} training images {t2 - t1:.1f} s")
    labels = np.asarray(_test_labels(args.run_dir))[test.index]
    rng = np.random.default_rng(0)
    sample = rng.choice(len(test.index), min(2000, len(test.index)), replace=False)
    from sklearn.manifold import trustworthiness

    for method in args.methods.split(","):
        t0 = time.perf_counter()
        xy = projection.project(test.vectors, method)
        seconds = time.perf_counter() - t0
        agree = projection.neighbour_agreement(xy, labels)
        trust = trustworthiness(test.vectors[sample].astype(np.float32), xy[sample], n_neighbors=10)
        print(f"project {method:5s}: {seconds:6.1f} s   same-class 10-NN in 2-D {agree:.3f}   "
              f"trustworthiness {trust:.3f}")
    t0 = time.perf_counter()
    index = neighbours.Index(train.vectors, train.index, train.labels)
    t1 = time.perf_counter()
    for row in range(100):
        index.nearest(test.vectors[row], 8)
    t2 = time.perf_counter()
    print(f"index: built in {(t1 - t0) * 1000:.0f} ms; one 8-nearest query over {len(train.index)} images "
          f"{(t2 - t1) * 10:.1f} ms (mean of 100)")


def _test_labels(run_dir: Path) -> np.ndarray:
    from cifar_core.store import rundir

    preds = rundir.read_predictions(run_dir)
    out = np.zeros(int(preds["index"].max()) + 1, np.int16)
    out[preds["index"]] = preds["y_true"]
    return out


if __name__ == "__main__":
    main()
