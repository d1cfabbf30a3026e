"""Shared fixtures: data sources built in tmp folders, and real tiny training runs on synthetic data."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# Decode caches go to a throwaway folder, never the user's ~/.cache.
os.environ["CIFAR_LAB_CACHE"] = tempfile.mkdtemp(prefix="cifar-lab-cache-")
# The test clusters run without Ray's token auth, whatever an earlier Ray left in ~/.ray/auth_token (a Ray started
# by ray.init() writes one, and a client finding it then expects every cluster to want it).
os.environ["RAY_AUTH_MODE"] = "disabled"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Fail a grouped test whose xdist group was lost, before its fixtures are built: its group's tests would spread
    over the workers, and each worker build the group's expensive fixture (the tiny search, 228 s) again, silently."""
    if item.config.getoption("loadgroup", False) and item.get_closest_marker("xdist_group") and "@" not in item.nodeid:
        pytest.fail(f"pytest-xdist's --dist loadgroup did not group {item.nodeid}: this pytest is newer than "
                    "pytest-xdist supports (pytest-xdist issue 1386); install the one pyproject.toml names (make test "
                    "does)", pytrace=False)


ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "cifar_core" / "dashboard" / "app.py"  # the dashboard as it ships (pages are views/ beside it)
SHARED_JPEG = ROOT.parent / "shared" / "data" / "cifar10-jpeg"
SYNTHETIC = {"source": "synthetic", "kind": "synthetic"}
TRAIN_STDOUT = "train-stdout.txt"  # beside finished_run's runs folder: what `cifar-lab train` printed for it


def cli(*args: str, runs_dir: Path, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `cifar-lab` as a user would, in a subprocess."""
    env = {**os.environ}
    proc = subprocess.run([sys.executable, "-m", "cifar_core.cli", "--runs-dir", str(runs_dir), *args],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"cifar-lab {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@contextlib.contextmanager
def tmpfs(mount: Path, options: str):
    """A real small file system mounted at `mount` for the block (`options`: e.g. 'size=3m', 'ro,size=1m'); the test
    skips with the reason where it cannot be mounted (it needs root)."""
    mount.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs ({options}; needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


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


def shared_once(tmp_path_factory, name: str, build: Callable[[Path], object]):
    """Build an expensive fixture once per test session, even across xdist workers: the first worker builds it
    in the session's common temp folder under a lock; the others wait for it and read its JSON result."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    folder, result = root / f"shared-{name}", root / f"shared-{name}.json"
    with open(root / f"shared-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not result.exists():
            folder.mkdir(exist_ok=True)
            result.write_text(json.dumps(build(folder)))
    return json.loads(result.read_text())


@pytest.fixture
def launch():
    """Launch baseline runs in the background on synthetic data; whatever is still alive when the test ends
    (pass or fail) is killed."""
    from cifar_core.model.specs import PRESETS
    from cifar_core.store import runs

    pids = []

    def _launch(runs_dir: Path, cfg) -> Path:
        run_dir = runs.create_run(runs_dir, PRESETS["baseline"], cfg, SYNTHETIC)
        pids.append(runs.launch(run_dir))
        return run_dir

    yield _launch
    for pid in pids:
        if runs.process_alive(pid):
            os.kill(pid, signal.SIGKILL)


def wait_for_epochs(run_dir: Path, n: int, timeout: float = 120) -> None:
    """Wait until the run has `n` metrics lines; fail with its log if it stops training or takes too long."""
    from cifar_core.store import rundir, runs

    deadline = time.monotonic() + timeout
    while len(rundir.read_metric_lines(run_dir)) < n:
        assert time.monotonic() < deadline, (run_dir / "log.txt").read_text()
        assert runs.load_run(run_dir).status in rundir.ACTIVE, (run_dir / "log.txt").read_text()
        time.sleep(0.05)


@pytest.fixture(scope="session")
def runs_root(finished_run) -> Path:
    """The runs folder that holds `finished_run`."""
    return finished_run.parent


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory) -> Path:
    """One real, completed tiny baseline run on synthetic data."""
    def build(folder: Path) -> str:
        out = cli("train", "--arch", "baseline", "--data", "synthetic", "--epochs", "3", "--subset", "800",
                  "--name", "tiny-baseline", runs_dir=folder / "runs")
        (folder / TRAIN_STDOUT).write_text(out.stdout)
        return out.stdout.splitlines()[0]

    return Path(shared_once(tmp_path_factory, "finished-run", build))


@pytest.fixture(scope="session")
def app_runs(tmp_path_factory, finished_run) -> Path:
    """Two finished real runs (baseline, batchnorm) and one damaged run directory, for the dashboard tests."""
    def build(folder: Path) -> str:
        root = folder / "runs"
        root.mkdir()
        shutil.copytree(finished_run, root / finished_run.name)
        cli("train", "--arch", "batchnorm", "--data", "synthetic", "--epochs", "2", "--subset", "600",
            "--name", "tiny-bn", runs_dir=root)
        damaged = root / "broken-run"
        damaged.mkdir()
        (damaged / "run.json").write_text("{not json")
        return str(root)

    return Path(shared_once(tmp_path_factory, "app-runs", build))


# The tests that read the seed study run on one xdist worker: the other worker then never sits waiting for it.
SEED_STUDY_GROUP = pytest.mark.xdist_group("seed_study")


@pytest.fixture(scope="session")
def seed_study(tmp_path_factory) -> tuple[Path, str]:
    """A real tiny seed study (baseline, deeper, batchnorm) through `cifar-lab reproduce` on synthetic data."""
    def build(folder: Path) -> list[str]:
        out = cli("reproduce", "--data", "synthetic", "--subset", "100", "--test-subset", "100", "--seeds", "1",
                  runs_dir=folder / "runs", timeout=600)
        return [out.stdout.splitlines()[0], out.stdout]

    study_dir, stdout = shared_once(tmp_path_factory, "seed-study", build)
    return Path(study_dir), stdout
