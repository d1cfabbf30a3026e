"""Shared fixtures: data sources built in tmp folders, and real tiny training runs on synthetic data."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Decode caches go to a throwaway folder, never the user's ~/.cache.
os.environ["CIFAR_LAB_CACHE"] = tempfile.mkdtemp(prefix="cifar-lab-cache-")

ROOT = Path(__file__).resolve().parents[1]
SHARED_JPEG = ROOT.parent / "shared" / "data" / "cifar10-jpeg"
SYNTHETIC = {"source": "synthetic", "kind": "synthetic"}


def cli(*args: str, runs_dir: Path, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `cifar-lab` as a user would, in a subprocess."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-m", "cifar_core.cli", "--runs-dir", str(runs_dir), *args],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"cifar-lab {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def write_image_folder(root: Path, x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                       names: tuple[str, ...]) -> Path:
    for split, xs, ys in (("train", x, y), ("test", x_test, y_test)):
        for name in names:
            (root / split / name).mkdir(parents=True, exist_ok=True)
        for i, (img, label) in enumerate(zip(xs, ys, strict=True)):
            Image.fromarray(img).save(root / split / names[label] / f"{i:05d}.png")
    return root


@pytest.fixture(scope="session")
def jpeg_sample(tmp_path_factory) -> Path:
    """A few hundred real CIFAR-10 JPEGs (30 train + 10 test per class) copied from ../shared."""
    if not SHARED_JPEG.is_dir():
        pytest.skip(f"real CIFAR-10 JPEGs not found at {SHARED_JPEG} (../shared/data/cifar10-jpeg)")
    root = tmp_path_factory.mktemp("jpeg-sample")
    for split, per_class in (("train", 30), ("test", 10)):
        for class_dir in sorted((SHARED_JPEG / split).iterdir()):
            target = root / split / class_dir.name
            target.mkdir(parents=True)
            for file in sorted(class_dir.iterdir())[:per_class]:
                shutil.copy(file, target / file.name)
    return root


@pytest.fixture(scope="session")
def runs_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="session")
def finished_run(runs_root) -> Path:
    """One real, completed tiny baseline run on synthetic data."""
    out = cli("train", "--arch", "baseline", "--data", "synthetic", "--epochs", "3", "--subset", "800",
              "--name", "tiny-baseline", runs_dir=runs_root)
    return Path(out.stdout.splitlines()[0])
