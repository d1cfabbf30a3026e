"""The benchmarks' own data choices: a short benchmark must still see every class."""

from __future__ import annotations

import importlib.util

import numpy as np
from conftest import ROOT


def load_bench():
    spec = importlib.util.spec_from_file_location("bench", ROOT / "benchmarks" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_bench_trains_on_every_class_of_a_class_ordered_folder():
    """An image folder lists its training images class by class: the first 20,000 of 45,000 hold 5 classes."""
    bench = load_bench()
    y = np.repeat(np.arange(10), 4500)
    arrays = {"x_train": np.zeros((len(y), 2, 2, 3), np.uint8), "y_train": y, "x_test": np.zeros((5, 2, 2, 3))}
    quick = bench.quick_arrays(arrays)
    assert len(quick["y_train"]) == bench.QUICK_IMAGES == 20_000
    assert np.bincount(quick["y_train"], minlength=10).tolist() == [2000] * 10
    assert quick["x_test"] is arrays["x_test"]
