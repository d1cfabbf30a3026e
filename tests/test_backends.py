"""Keras 3 backends: the choice of backend, the NumPy input path, and for each backend installed beside TensorFlow
(JAX in `make test`; PyTorch where it is installed) a real run trained, killed, resumed and stopped on it, then
evaluated and explained across backends with the same weights."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, SYNTHETIC, wait_for_epochs

from cifar_core import backends
from cifar_core.model.config import TrainConfig
from cifar_core.store import rundir, runs

OTHERS = [b for b in backends.BACKENDS if b != "tensorflow"]


def test_auto_picks_tensorflow_on_a_cpu_and_the_gpu_order_on_a_gpu():
    assert backends.choose("auto", ["tensorflow", "jax"], []).name == "tensorflow"
    assert backends.choose("auto", ["jax", "torch"], []).name == "torch", "no TensorFlow: the next fastest on CPUs"
    assert backends.choose("auto", ["jax"], []).name == "jax"
    on_gpu = backends.choose("auto", ["tensorflow", "jax", "torch"], ["NVIDIA H100"])
    assert on_gpu.name == backends.GPU_ORDER[0] and "H100" in on_gpu.reason
    assert backends.choose("auto", ["tensorflow", "jax"], ["H100"], multi_gpu=True).name == "tensorflow"
    assert backends.choose("jax", ["tensorflow", "jax"], []).reason == "asked for jax"


def test_auto_takes_the_fastest_measured_on_this_machine(tmp_path, monkeypatch):
    monkeypatch.setenv("CIFAR_LAB_CACHE", str(tmp_path))
    assert backends.measured_speeds() == {}
    backends.save_speeds({"tensorflow": 900.0, "jax": 1500.0, "torch": 2000.0})
    measured = backends.measured_speeds()
    chosen = backends.choose("auto", ["tensorflow", "jax"], ["H200"], measured=measured)
    assert chosen.name == "jax", "the fastest of those installed (torch is not)"
    assert "jax 1,500, tensorflow 900" in chosen.reason
    assert backends.choose("tensorflow", ["tensorflow", "jax"], [], measured=measured).name == "tensorflow"
    only_jax = backends.choose("auto", ["tensorflow", "jax"], [], measured={"jax": 321.0})
    assert only_jax.name == "tensorflow", "a measurement without TensorFlow (another venv's) does not rank it"


def test_a_backend_that_cannot_run_is_refused_with_what_to_do():
    with pytest.raises(backends.BackendError, match=r"torch backend is not installed here .*cifar-lab\[torch\]"):
        backends.choose("torch", ["tensorflow"], [])
    with pytest.raises(backends.BackendError, match="needs the tensorflow backend; use --backend tensorflow"):
        backends.choose("jax", ["tensorflow", "jax"], ["H100"], multi_gpu=True)
    with pytest.raises(backends.BackendError, match="backend must be one of auto, tensorflow, jax, torch"):
        backends.choose("mxnet", ["tensorflow"], [])
    assert "backend must be one of" in " ".join(TrainConfig(backend="theano").problems())


def test_a_run_whose_backend_is_missing_here_fails_with_the_reason_and_stays_resumable(tmp_path, monkeypatch):
    from cifar_core.model.specs import PRESETS

    run_dir = runs.create_run(tmp_path, PRESETS["baseline"], TrainConfig(backend="torch"), SYNTHETIC)
    monkeypatch.setattr(backends, "installed", lambda: ["tensorflow"])
    with pytest.raises(backends.BackendError, match="torch backend is not installed here"):
        runs.launch(run_dir)
    run = runs.load_run(run_dir)
    assert run.status == "failed" and "pip install 'cifar-lab[torch]'" in run.meta["error"]
    assert run.status in rundir.RESUMABLE


def test_the_numpy_batches_and_the_graph_flip_and_shift_alike():
    """Every augmented image, on either input path, is the original, maybe mirrored, cut from its reflect-padded copy
    at some shift within the padding; over many draws both flips and every shift occur; labels stay with their
    images; the NumPy path draws a new order each epoch."""
    from cifar_core.engine import pipeline, runtime

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (64, 8, 8, 3), dtype=np.uint8)
    y = np.arange(64) % 10
    batches = pipeline.ArrayBatches(x, y, 16, seed=3, augment=True, translate=2, num_classes=10)
    numpy_pairs = [(batches[i], batches.order[i * 16:(i + 1) * 16]) for i in range(len(batches))]
    runtime.tensorflow()
    graph = pipeline._tf_dataset(x, y, 16, None, True, 2, 10)  # unshuffled: batch i holds images 16i..16i+15
    graph_pairs = [((a.numpy(), b.numpy()), np.arange(i * 16, (i + 1) * 16)) for i, (a, b) in enumerate(graph)]
    for pairs in (numpy_pairs, graph_pairs):
        seen_shifts, seen_flips = set(), set()
        for (images, one_hot), pick in pairs:
            assert (one_hot.argmax(1) == y[pick]).all() and images.dtype == np.uint8
            for out, original in zip(images, x[pick], strict=True):
                found = [(flip, dy, dx) for flip in (0, 1) for dy in range(5) for dx in range(5)
                         if (np.pad(original[:, ::-1] if flip else original, ((2, 2), (2, 2), (0, 0)), "reflect")
                             [dy:dy + 8, dx:dx + 8] == out).all()]
                assert found, "an augmented image is no flip and shift of its original"
                seen_flips.add(found[0][0])
                seen_shifts.add(found[0][1:])
        assert seen_flips == {0, 1} and len(seen_shifts) > 12
    first = batches.order.copy()
    batches.on_epoch_end()
    assert sorted(batches.order) == list(range(64)) and (batches.order != first).any(), "a new order each epoch"


def _probe(backend: str, run_dir: Path, out: Path) -> dict:
    env = {**os.environ, backends.ENV: backend}
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "backend_probe.py"), str(run_dir), str(out)],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(np.load(out))


@pytest.mark.parametrize("backend", OTHERS)
def test_a_run_trains_stops_and_resumes_on_the_backend_and_opens_on_tensorflow(backend, tmp_path, launch,
                                                                               finished_run):
    if backend not in backends.installed():
        pytest.skip(f"{backend} is not installed here ({backends.EXTRAS[backend]} to test it)")
    run_dir = launch(tmp_path / "runs", TrainConfig(epochs=6, patience=0, subset=400, batch_size=16,
                                                    steps_per_execution=4, backend=backend))
    wait_for_epochs(run_dir, 1, timeout=240)
    os.kill(runs.load_run(run_dir).meta["pid"], signal.SIGKILL)
    time.sleep(0.3)
    runs.resume(runs.load_run(run_dir))
    wait_for_epochs(run_dir, len(rundir.read_metric_lines(run_dir)) + 1, timeout=240)
    runs.stop(runs.load_run(run_dir))
    assert runs.wait(run_dir, timeout=240) == "stopped", (run_dir / rundir.LOG).read_text()[-3000:]
    meta = runs.load_run(run_dir).meta
    lines = rundir.read_metric_lines(run_dir)
    assert meta["engine"]["backend"] == backend and backend in meta["libraries"]
    assert [m["epoch"] for m in lines] == list(range(1, len(lines) + 1)) and 2 <= len(lines) < 6
    assert rundir.read_layer_records(run_dir), "layer records are taken on every backend"

    # Trained on `backend`, evaluated on TensorFlow (this process): the same predictions.
    from cifar_core.engine import trainer

    before = np.load(run_dir / rundir.PREDICTIONS)["y_pred"]
    trainer.evaluate_run(run_dir)
    after = np.load(run_dir / rundir.PREDICTIONS)["y_pred"]
    assert (before == after).mean() >= 0.97

    # Trained on TensorFlow, explained on `backend`: Grad-CAM and a layer record's gradients, each backend's own
    # autodiff, the same weights.
    from backend_probe import probe

    theirs, ours = _probe(backend, finished_run, tmp_path / "probe.npz"), probe(finished_run)
    assert str(theirs["backend"]) == backend and str(ours["backend"]) == "tensorflow"
    assert np.abs(theirs["cam"] - ours["cam"]).mean() < 0.03
    np.testing.assert_allclose(theirs["grad_norms"], ours["grad_norms"], rtol=0.05, atol=1e-6)
    assert float(theirs["probe_loss"]) == pytest.approx(float(ours["probe_loss"]), rel=0.02)
    assert float(theirs["refit_gap"]) < 1e-6, "a time budget's refitted schedule reaches the next train step"
