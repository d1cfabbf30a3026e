"""Fault injection: every way the hardening issue broke the lab, each asserting the exact outcome.

Exit code and the one line a user reads, nothing written where nothing should be, the run listed as damaged
with its reason, and every page opening regardless.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import APP, ROOT, SYNTHETIC, cli, tmpfs, write_image_folder
from PIL import Image
from streamlit.testing.v1 import AppTest

from cifar_core import data, serving
from cifar_core.model.config import TrainConfig
from cifar_core.model.specs import PRESETS
from cifar_core.store import rundir, runs


def assert_one_line_error(out: subprocess.CompletedProcess, fragment: str) -> None:
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert len(lines) == 1 and lines[0].startswith("cifar-lab: ") and fragment in lines[0], out.stderr


# --- 1. serving --------------------------------------------------------------------------------------

def test_default_address_is_localhost():
    import tomllib

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "localhost"
    assert "--server.address" in (ROOT / "cifar_core" / "cli" / "serve.py").read_text()


@pytest.mark.parametrize("address, env, expected", [
    ("localhost", {}, False), ("127.0.0.1", {}, False), ("::1", {}, False),
    ("0.0.0.0", {}, True), ("192.168.1.5", {}, True), ("", {}, True), (None, {}, True),
    ("0.0.0.0", {serving.ALLOW_WRITES: "1"}, False), ("localhost", {serving.READ_ONLY: "1"}, True),
])
def test_read_only_unless_local_or_explicitly_allowed(address, env, expected):
    assert serving.read_only(address, env) is expected


def test_served_on_loopback_only(tmp_path):
    """The real server started the way `make run` starts it listens on loopback addresses only."""
    from browser import free_port, wait_for_app

    port = free_port()
    env = {**os.environ, "CIFAR_LAB_RUNS": str(tmp_path / "runs"), "CIFAR_LAB_DATA": "synthetic"}
    proc = subprocess.Popen([sys.executable, "-m", "cifar_core.cli", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_app(port)
        listening = _listening_addresses(port)
        assert listening and listening <= {"127.0.0.1", "::1"}, listening
    finally:
        proc.terminate()
        proc.wait(10)


def _listening_addresses(port: int) -> set[str]:
    import ipaddress

    found = set()
    for table, size in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                raw = bytes.fromhex(address)
                words = b"".join(raw[i:i + 4][::-1] for i in range(0, size, 4))
                found.add(str(ipaddress.ip_address(words)))
    return found


def test_shared_mode_hides_every_writing_action(app_runs, monkeypatch):
    monkeypatch.setenv("CIFAR_LAB_RUNS", str(app_runs))
    monkeypatch.setenv("CIFAR_LAB_DATA", "synthetic")
    monkeypatch.setenv(serving.READ_ONLY, "1")
    monkeypatch.chdir(ROOT)
    writing = ("Save architecture", "Train this architecture", "Start training", "Stop", "Save name", "Resume",
               "Delete run", "Use synthetic demo data", "Stop study", "Resume study")
    for page in ("architectures", "train", "runs", "compare", "misclassified", "experiments"):
        at = AppTest.from_file(str(APP), default_timeout=60).run()
        at.switch_page(f"views/{page}.py").run()
        assert not at.exception, (page, [e.message for e in at.exception])
        labels = [b.label for b in at.button] + [b.label for b in at.get("form_submit_button")]
        assert not [lbl for lbl in labels if lbl.startswith(writing)], (page, labels)
        assert not [t for t in at.text_input if t.label in ("Data source", "Rename", "Save as")], page
        assert not at.get("form"), page


# --- 2. damaged files ---------------------------------------------------------------------------

def _write(path: Path, content: str | bytes) -> None:
    path.write_bytes(content if isinstance(content, bytes) else content.encode())


def _set(run_dir: Path, **changes) -> None:
    meta = json.loads((run_dir / rundir.RUN_JSON).read_text())
    meta.update(changes)
    _write(run_dir / rundir.RUN_JSON, json.dumps(meta))


DAMAGE = {
    "run-json-list": (lambda d: _write(d / rundir.RUN_JSON, "[1, 2]"), "run.json: must be object (found [1, 2])"),
    "run-json-null": (lambda d: _write(d / rundir.RUN_JSON, "null"), "run.json: must be object (found null)"),
    "spec-string": (lambda d: _set(d, spec="baseline"), "run.json: spec must be object (found \"baseline\")"),
    "created-int": (lambda d: _set(d, created=5), "run.json: created must be string (found 5)"),
    "accuracy-text": (lambda d: _set(d, test_accuracy="abc"),
                      "run.json: test_accuracy must be number or null (found \"abc\")"),
    "bad-spec-value": (lambda d: _set(d, spec={**PRESETS["baseline"].to_dict(), "blocks": [{"filters": 1e400}]}),
                       "is not a valid int"),
    "report-missing-keys": (lambda d: _write(d / rundir.REPORT, '{"accuracy": 0.5}'),
                            "report.json: must contain ['class_names'"),
    "metrics-number-line": (lambda d: _write(d / rundir.METRICS, "42\n"),
                            "metrics.jsonl line 1: must be object (found 42)"),
    "metrics-binary-line": (lambda d: _write(d / rundir.METRICS, b"\xff\xfe\x00garbage\n"),
                            "metrics.jsonl is unreadable"),
    "predictions-truncated": (lambda d: _write(d / rundir.PREDICTIONS, (d / rundir.PREDICTIONS).read_bytes()[:300]),
                              "predictions.npz is truncated or corrupt"),
    "model-corrupt": (lambda d: _write(d / rundir.MODEL, b"PK\x03\x04 not really a zip"),
                      "model.keras is truncated or corrupt"),
}


@pytest.fixture(scope="module")
def damaged_runs(tmp_path_factory, finished_run) -> Path:
    """One good run and one copy of it per kind of damage."""
    root = tmp_path_factory.mktemp("damaged") / "runs"
    root.mkdir()
    shutil.copytree(finished_run, root / finished_run.name)
    for name, (damage, _) in DAMAGE.items():
        shutil.copytree(finished_run, root / name)
        _set(root / name, id=name, name=name)
        damage(root / name)
    return root


def test_each_damage_is_listed_with_its_reason(damaged_runs):
    found = {r.run_id: r for r in runs.list_runs(damaged_runs)}
    for name, (_, reason) in DAMAGE.items():
        assert found[name].status == rundir.DAMAGED and reason in found[name].damaged, (name, found[name].damaged)
    good = [r for r in found.values() if r.run_id not in DAMAGE]
    assert len(good) == 1 and good[0].status == "completed" and not good[0].damaged


def test_cli_goes_on_past_damaged_runs(damaged_runs):
    table = cli("runs", runs_dir=damaged_runs).stdout
    assert table.count("damaged") == len(DAMAGE) and "completed" in table
    for name in ("run-json-null", "report-missing-keys", "metrics-binary-line"):
        shown = cli("show", name, runs_dir=damaged_runs)
        assert "damaged:" in shown.stdout and not shown.stderr
        assert json.loads(cli("show", name, "--json", runs_dir=damaged_runs).stdout)["status"] == "damaged"


def test_every_page_opens_with_damaged_runs(damaged_runs, monkeypatch):
    monkeypatch.setenv("CIFAR_LAB_RUNS", str(damaged_runs))
    monkeypatch.setenv("CIFAR_LAB_DATA", "synthetic")
    monkeypatch.chdir(ROOT)
    for page in ("architectures", "train", "runs", "compare", "misclassified", "experiments"):
        at = AppTest.from_file(str(APP), default_timeout=60).run()
        at.switch_page(f"views/{page}.py").run()
        assert not at.exception, (page, [e.message for e in at.exception])
    at.switch_page("views/runs.py").run()
    for name in ("spec-string", "metrics-binary-line"):
        at.selectbox[0].select(name).run()
        assert not at.exception and any("Damaged:" in e.value for e in at.error)
    at.checkbox(key="confirm_metrics-binary-line").check().run()
    next(b for b in at.button if b.label == "Delete run").click().run()
    assert not (damaged_runs / "metrics-binary-line").exists(), "a damaged run can be deleted"
    shutil.copytree(damaged_runs / "metrics-number-line", damaged_runs / "metrics-binary-line")
    DAMAGE["metrics-binary-line"][0](damaged_runs / "metrics-binary-line")


# --- 3. one run at a time --------------------------------------------------------------------------

def _kill(pid: int | None) -> None:
    with contextlib.suppress(ProcessLookupError, TypeError):
        os.kill(pid, signal.SIGKILL)


def _simultaneous(runs_dir: Path, *commands: list[str]) -> list[subprocess.CompletedProcess]:
    env = {**os.environ}
    procs = [subprocess.Popen([sys.executable, "-m", "cifar_core.cli", "--runs-dir", str(runs_dir), *c], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands]
    return [subprocess.CompletedProcess(p.args, p.wait(60), *p.communicate()) for p in procs]


def test_two_trains_at_the_same_instant_start_one_run(tmp_path):
    for attempt in range(2):
        runs_dir = tmp_path / f"try{attempt}"
        command = ["train", "--arch", "baseline", "--data", "synthetic", "--epochs", "50", "--detach"]
        results = _simultaneous(runs_dir, command, command)
        try:
            assert sorted(r.returncode for r in results) == [0, 2], [(r.returncode, r.stderr) for r in results]
            loser = next(r for r in results if r.returncode == 2)
            assert_one_line_error(loser, "is still training")
            assert len(list(runs_dir.iterdir())) == 2, "one run directory (and the lock file), nothing from the loser"
        finally:
            for info in runs.list_runs(runs_dir):
                _kill(info.meta.get("pid"))


def test_two_resumes_of_one_run_start_one_trainer(tmp_path):
    run_dir = runs.create_run(tmp_path, PRESETS["baseline"], TrainConfig(epochs=50), SYNTHETIC)
    runs.update_run(run_dir, status="running", pid=999_999_999)
    assert runs.load_run(run_dir).status == "interrupted"
    results = _simultaneous(tmp_path, ["resume", run_dir.name, "--detach"], ["resume", run_dir.name, "--detach"])
    try:
        assert sorted(r.returncode for r in results) == [0, 2], [(r.returncode, r.stderr) for r in results]
        assert_one_line_error(next(r for r in results if r.returncode == 2), "only interrupted or failed runs")
    finally:
        _kill(runs.load_run(run_dir).meta.get("pid"))


def test_a_live_trainer_keeps_the_machine_busy_even_when_its_run_json_reads_as_damaged(tmp_path):
    """A run written by a newer version (a spec key this one does not know) is damaged here, yet its trainer
    takes the cores: seen when an older checkout's study started a second trainer beside a newer one's."""
    run_dir = runs.create_run(tmp_path, PRESETS["baseline"], TrainConfig(), SYNTHETIC)
    meta = rundir.read_json(run_dir / rundir.RUN_JSON)
    meta["spec"]["blocks"][0]["from_a_newer_version"] = True
    rundir.write_json_atomic(run_dir / rundir.RUN_JSON, {**meta, "status": "running", "pid": os.getpid()})
    assert runs.load_run(run_dir).status == rundir.DAMAGED
    with pytest.raises(runs.Busy, match=f"Run {run_dir.name} is still training"):
        runs.ensure_idle(tmp_path)
    rundir.write_json_atomic(run_dir / rundir.RUN_JSON, {**meta, "status": "running", "pid": 999_999_999})
    runs.ensure_idle(tmp_path)  # its trainer is gone: the damaged run holds nothing


def test_an_orphan_queued_run_can_be_deleted(tmp_path):
    run_dir = runs.create_run(tmp_path, PRESETS["baseline"], TrainConfig(), SYNTHETIC)
    info = runs.load_run(run_dir)
    assert info.status == "queued" and not info.is_training
    runs.delete(info)
    assert not run_dir.exists()


# --- 4. specs without bounds -----------------------------------------------------------------------

@pytest.mark.parametrize("spec, fragment", [
    ({"blocks": [{"filters": 100000}]}, "filters must be 1 to 2,048 (got 100,000)"),
    ({"blocks": [{"filters": 32}], "head": {"dense": [100000000]}}, "dense layers need 1 to 16,384 units"),
    ({"blocks": [{"filters": 32, "convs": 1000000}]}, "convs must be 1 to 8 (got 1,000,000)"),
    ({"blocks": [{"filters": 1e400}]}, "filters=inf is not a valid int"),
    ({"blocks": [{"filters": 32}], "head": {"dense": [3.7]}}, "dense=[3.7] is not a valid tuple[int, ...]"),
    ({"blocks": [{"filters": 32, "colour": "red"}]}, "Unknown key(s) in block 1: colour"),
    ({"blocks": [{"filters": 2048, "convs": 8}, {"filters": 2048, "convs": 8}]}, "parameters, more than the limit"),
])
def test_oversized_or_mistyped_specs_are_refused_before_anything_runs(tmp_path, spec, fragment):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({"name": "big", **spec}))
    started = time.monotonic()
    for command in (["arch", str(path)], ["train", "--arch", str(path), "--data", "synthetic"]):
        out = cli(*command, runs_dir=tmp_path / "runs", check=False)
        assert_one_line_error(out, fragment)
    assert time.monotonic() - started < 20 and not (tmp_path / "runs").exists()


def test_a_batch_too_big_for_this_machine_is_refused_with_the_numbers(tmp_path):
    """512 filters at full resolution: about 10 MiB of layer outputs per image, 160 GiB at batch 8192."""
    path = tmp_path / "wide.json"
    path.write_text(json.dumps({"name": "wide", "blocks": [{"filters": 512, "convs": 2}]}))
    out = cli("train", "--arch", str(path), "--data", "synthetic", "--batch-size", "8192", runs_dir=tmp_path / "runs",
              check=False)
    assert_one_line_error(out, "One training step of wide at batch 8192 needs about")
    assert "GiB; this machine has" in out.stderr and not (tmp_path / "runs").exists()


# --- 5. bad data and settings before any run directory ----------------------------------------------

@pytest.fixture(scope="module")
def small_images(tmp_path_factory) -> Path:
    ds = data.synthetic_dataset(n_train=60, n_test=20, seed=5)
    return write_image_folder(tmp_path_factory.mktemp("imgs") / "cifar", ds.x_train, ds.y_train, ds.x_test,
                              ds.y_test, data.CLASS_NAMES)


def _copy(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / "data"))


def _truncated_jpeg(root: Path) -> str:
    target = next((root / "train" / "cat").iterdir())
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(target.with_suffix(".jpg"), quality=75)
    target.unlink()
    jpg = target.with_suffix(".jpg")
    jpg.write_bytes(jpg.read_bytes()[:200])
    return jpg.name


def _wrong_size_png(root: Path) -> str:
    target = next((root / "test" / "dog").iterdir())
    Image.fromarray(np.zeros((40, 32, 3), np.uint8)).save(target)
    return "is 32x40"


@pytest.mark.parametrize("damage, fragment", [(_truncated_jpeg, "Cannot read image"), (_wrong_size_png, "is 32x40")])
def test_bad_images_are_found_before_a_run_exists(small_images, tmp_path, damage, fragment):
    root = _copy(small_images, tmp_path)
    damage(root)
    out = cli("train", "--arch", "baseline", "--data", str(root), runs_dir=tmp_path / "runs", check=False)
    assert_one_line_error(out, fragment)
    assert not (tmp_path / "runs").exists()


def test_a_truncated_batch_file_is_found_before_a_run_exists(tmp_path):
    import pickle

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    blob = pickle.dumps({b"data": np.zeros((10, 3072), np.uint8), b"labels": list(range(10))})
    for name in data.BATCH_FILES:
        (folder / name).write_bytes(blob)
    (folder / "data_batch_3").write_bytes(blob[:100])
    out = cli("train", "--arch", "baseline", "--data", str(folder), runs_dir=tmp_path / "runs", check=False)
    assert_one_line_error(out, "data_batch_3 is truncated or not a CIFAR-10 batch")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("args, fragment", [
    (["--seed", "-5"], "seed must be 0 to 4,294,967,295 (got -5)"),
    (["--subset", "5000"], "subset 5,000 is more than the 2,000 training images"),
    (["--test-subset", "900"], "test-subset 900 is more than the 500 test images"),
    (["--name", "bad name\n"], "Run name 'bad name\\n' must be"),
])
def test_bad_settings_are_refused_before_a_run_exists(tmp_path, args, fragment):
    out = cli("train", "--arch", "baseline", "--data", "synthetic", *args, runs_dir=tmp_path / "runs", check=False)
    assert_one_line_error(out, fragment)
    assert not (tmp_path / "runs").exists()


# --- 6. a full disk ----------------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A real 3 MiB file system: enough for a run directory's first files, not for its checkpoints."""
    with tmpfs(tmp_path / "disk", "size=3m") as mount:
        yield mount


def test_a_full_disk_fails_the_run_with_the_reason_and_keeps_what_was_written(small_disk):
    runs_dir = small_disk / "runs"
    out = cli("train", "--arch", "baseline", "--data", "synthetic", "--subset", "300", "--epochs", "3",
              runs_dir=runs_dir, check=False)
    run_dir = Path(out.stdout.splitlines()[0])
    info = runs.load_run(run_dir)
    assert out.returncode == 1 and info.status == "failed", (out.stdout, out.stderr)
    assert info.meta["error"].startswith("No space left on device") and "resume the run" in info.meta["error"]
    assert not list(run_dir.glob(".*tmp*")) and not (run_dir / rundir.RESERVE).exists()
    assert rundir.read_metric_lines(run_dir)[0]["epoch"] == 1, "the epoch written before the disk filled is kept"


# --- 7. run ids stay inside the runs directory -------------------------------------------------------

@pytest.mark.parametrize("ref, fragment", [
    ("..", "'..' is not a run id"), ("/etc", "/etc is not a run directory in"),
    ("../runs/x", "is not a run directory in"), ("Bad Name", "'Bad Name' is not a run id"),
])
def test_run_ids_resolve_only_inside_the_runs_dir(finished_run, runs_root, ref, fragment):
    for command in ("show", "evaluate", "stop", "resume"):
        assert_one_line_error(cli(command, ref, runs_dir=runs_root, check=False), fragment)


def test_evaluate_never_writes_outside_the_runs_dir(finished_run, runs_root, tmp_path):
    outside = Path(shutil.copytree(finished_run, tmp_path / finished_run.name))
    before = {p.name: p.stat().st_mtime_ns for p in outside.iterdir()}
    assert_one_line_error(cli("evaluate", str(outside), runs_dir=runs_root, check=False), "is not a run directory")
    assert {p.name: p.stat().st_mtime_ns for p in outside.iterdir()} == before


@pytest.mark.parametrize("name", ["two words", "trailing-newline\n", "**bold**", "<b>x</b>", "Upper", ""])
def test_rename_follows_the_name_rule(finished_run, tmp_path, name):
    run_dir = Path(shutil.copytree(finished_run, tmp_path / finished_run.name))
    before = (run_dir / rundir.RUN_JSON).read_text()
    with pytest.raises(runs.RunError, match="must be 1-80 lowercase"):
        runs.rename(runs.load_run(run_dir), name)
    assert (run_dir / rundir.RUN_JSON).read_text() == before


# --- 8. models that cannot or must not load ----------------------------------------------------------

def save_lambda_model(path: Path, marker: Path) -> None:
    """A model whose Lambda layer writes `marker` when it runs: the payload a safe loader must refuse."""
    from cifar_core.engine import runtime

    runtime.tensorflow()
    import keras

    target = str(marker)
    payload = keras.layers.Lambda(lambda x: (open(target, "w").write("ran"), x)[1])  # noqa: SIM115
    model = keras.Sequential([keras.Input((32, 32, 3)), payload,
                              keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    model.save(path)
    marker.unlink(missing_ok=True)  # building traced the layer once; what counts is loading


def test_evaluate_refuses_an_unsafe_lambda_model_without_running_it(finished_run, tmp_path):
    runs_dir = tmp_path / "runs"
    run_dir = Path(shutil.copytree(finished_run, runs_dir / finished_run.name))
    marker = tmp_path / "payload-ran"
    save_lambda_model(run_dir / rundir.MODEL, marker)
    out = cli("evaluate", run_dir.name, runs_dir=runs_dir, check=False)
    assert_one_line_error(out, f"Cannot load model.keras of run {run_dir.name}")
    assert "Lambda" in out.stderr and not marker.exists(), "the payload never runs"


def test_evaluate_on_a_corrupt_model_is_one_line(damaged_runs):
    out = cli("evaluate", "model-corrupt", runs_dir=damaged_runs, check=False)
    assert_one_line_error(out, "Run model-corrupt cannot be evaluated: model.keras is truncated or corrupt")


def test_missing_data_is_one_line(tmp_path):
    out = cli("train", "--arch", "baseline", "--data", str(tmp_path / "nowhere"), runs_dir=tmp_path, check=False)
    assert_one_line_error(out, "does not exist")
