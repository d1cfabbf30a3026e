"""Studies on a real Ray cluster of several nodes started by the test (`ray.cluster_utils.Cluster`), no mocks:
runs spread over the nodes, a lost node leaves its run resumable, and a runs folder a node cannot see is refused."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import APP, ROOT, cli
from streamlit.testing.v1 import AppTest

from cifar_core import data
from cifar_core.model.config import TrainConfig
from cifar_core.model.specs import PRESETS
from cifar_core.store import rundir, runs
from cifar_core.studies import executors, records

ray_cluster_utils = pytest.importorskip("ray.cluster_utils", reason="Ray is not installed (pip install -e '.[dev]')")

# One Ray cluster at a time on this machine (each starts several processes): these tests share one xdist worker.
pytestmark = pytest.mark.xdist_group("ray")

TINY = ("--data", "synthetic", "--subset", "100", "--arch", "baseline")


@pytest.fixture
def cluster():
    """Two nodes of one CPU each: the head, and a worker node the test can lose."""
    c = ray_cluster_utils.Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    c.add_node(num_cpus=1)
    c.wait_for_nodes()
    yield c
    c.shutdown()


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"waited {timeout:.0f} s for {what}"
        time.sleep(0.2)


def study_runs(study_dir: Path) -> list[runs.RunInfo]:
    study = records.read(study_dir)
    return [runs.load_run(records.run_dir_of(study, e)) for e in study["runs"] if e.get("run_id")]


def epochs_of(run: runs.RunInfo) -> list[int]:
    return [m["epoch"] for m in rundir.read_metric_lines(run.path)]


def study_ended(study_dir: Path) -> bool:
    return records.status(records.read(study_dir)) not in rundir.ACTIVE


def test_a_study_spreads_over_the_nodes_and_resumes_the_run_of_a_lost_one(cluster, tmp_path, monkeypatch):
    """Four runs on two one-CPU nodes train two at a time; the worker node is lost mid-run (its trainer frozen
    first, as a dead machine writes nothing more): that run is left interrupted with the epochs it finished, the
    others complete on the head, and resuming the study completes it from its last epoch."""
    cfg = TrainConfig(epochs=4, patience=0, subset=100)
    study_dir = records.create(tmp_path / "studies", tmp_path / "runs", "seeds", cfg, data.summary("synthetic"),
                               seeds=[0, 1, 2, 3], spec=PRESETS["baseline"],
                               executor=executors.Executor("ray", cluster.address))
    records.launch(study_dir)
    (worker,) = cluster.worker_nodes  # the head is not among them

    def training_on_worker() -> runs.RunInfo | None:
        return next((r for r in study_runs(study_dir)
                     if r.meta.get("node") == worker.node_id and r.status == "running" and epochs_of(r)), None)

    wait_until(training_on_worker, 120, "a run on the worker node to finish an epoch")
    lost = training_on_worker()
    os.kill(lost.meta["pid"], signal.SIGSTOP)
    frozen = time.time()
    assert any(r.meta.get("launched", frozen) < frozen for r in study_runs(study_dir) if r.path != lost.path), (
        "a run on the head trains at the same time")
    cluster.remove_node(worker, allow_graceful=False)
    wait_until(lambda: not runs.process_alive(lost.meta["pid"]), 60, "the lost node's trainer to die with it")
    wait_until(lambda: study_ended(study_dir), 240, "the study to end")

    study = records.read(study_dir)
    assert study["status"] == "interrupted", (study_dir / rundir.LOG).read_text()
    assert study["executor"]["kind"] == "ray" and study["cluster"]["cpus"] == 2
    after = runs.load_run(lost.path)
    assert after.status == "interrupted" and "lost with its Ray worker" in after.meta["error"]
    assert 1 <= len(epochs_of(after)) < 4
    assert sum(r.status == "completed" for r in study_runs(study_dir)) == 3
    assert {r.meta["node"] for r in study_runs(study_dir)} == {worker.node_id, cluster.head_node.node_id}

    records.resume(study_dir)
    wait_until(lambda: study_ended(study_dir), 240, "the resumed study to end")
    assert records.read(study_dir)["status"] == "completed", (study_dir / rundir.LOG).read_text()
    done = study_runs(study_dir)
    assert all(r.status == "completed" for r in done)
    assert all(epochs_of(r) == [1, 2, 3, 4] for r in done), "each epoch exactly once in every metrics.jsonl"
    experiments_page_shows_the_nodes(study_dir, done, monkeypatch)


def experiments_page_shows_the_nodes(study_dir: Path, done: list[runs.RunInfo], monkeypatch) -> None:
    monkeypatch.setenv("CIFAR_LAB_RUNS", records.read(study_dir)["runs_dir"])
    monkeypatch.setenv("CIFAR_LAB_DATA", "synthetic")
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    at.switch_page("views/experiments.py").run()
    assert not at.exception
    assert any(c.value.startswith(f"Ray at {records.read(study_dir)['executor']['address']}") for c in at.caption)
    assert list(at.dataframe[0].value["node"]) == [executors.node_text(r.meta) for r in done]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def blind_head(tmp_path):
    """A one-node Ray cluster whose node has its own empty folder mounted over `tmp_path/shared`: a node that
    does not share our file system. Needs Linux mount namespaces (root)."""
    if not shutil.which("unshare") or os.geteuid() != 0:
        pytest.skip("needs `unshare` and root, to give one Ray node its own view of the runs folder")
    shared, port = tmp_path / "shared", free_port()
    (shared / "runs").mkdir(parents=True)
    ray_bin = Path(sys.executable).parent / "ray"
    proc = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         f"mount -t tmpfs tmpfs {shared} && exec {ray_bin} start --head --port {port} --num-cpus 1 "
         "--include-dashboard false --block"],
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    def listening() -> bool:
        if proc.poll() is not None:
            pytest.skip(f"cannot start a Ray node in its own mount namespace: {proc.stderr.read().decode()[-300:]}")
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    wait_until(listening, 60, "the Ray head to listen")
    yield f"127.0.0.1:{port}", shared / "runs"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_a_runs_folder_a_node_cannot_see_is_refused_before_any_run(blind_head):
    address, runs_dir = blind_head
    out = cli("study", "seeds", *TINY, "--seeds", "2", "--epochs", "1", "--executor", "ray", "--address", address,
              runs_dir=runs_dir, check=False, timeout=120)
    assert out.returncode == 2, out.stdout + out.stderr
    assert f"The runs directory {runs_dir} is not the same folder on node(s)" in out.stderr
    assert "shared file system" in out.stderr
    assert not (runs_dir.parent / "studies").exists() and not list(runs_dir.iterdir()), "nothing was created"


def test_ray_options_are_checked_before_anything_starts(tmp_path):
    out = cli("study", "depth", "--data", "synthetic", "--cpus-per-run", "2", runs_dir=tmp_path / "runs", check=False)
    assert out.returncode == 2 and "need --executor ray" in out.stderr
    out = cli("study", "depth", "--data", "synthetic", "--executor", "ray", "--address", "nohost", "--cpus-per-run",
              "0", runs_dir=tmp_path / "runs", check=False)
    assert out.returncode == 2 and "cpus per run 0: give a number above 0" in out.stderr
    out = cli("study", "depth", "--data", "synthetic", "--executor", "ray", "--address", "nohost",
              runs_dir=tmp_path / "runs", check=False)
    assert out.returncode == 2 and "Ray address 'nohost': give HOST:PORT" in out.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "studies").exists()
