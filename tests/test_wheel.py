"""The dashboard ships in the package: the built wheel, installed (not editable) in a fresh environment, serves it
with `cifar-lab serve` from an empty folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from browser import free_port, wait_for_app
from conftest import ROOT

pytestmark = pytest.mark.xdist_group("wheel")  # one build, on one worker


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without PYTHONPATH, which would put a checkout's cifar_core before the installed one."""
    return {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, **extra}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv with the wheel built from this checkout; its dependencies are this environment's (a .pth file
    adds our site-packages after its own: the wheel's cifar_core comes first, and nothing is downloaded)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"  # a copy: a build writes build/ and *.egg-info beside the sources
    shutil.copytree(ROOT / "cifar_core", source / "cifar_core", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(root / "dist"), str(source)], check=True, capture_output=True, timeout=300)
    wheel = next((root / "dist").glob("cifar_lab-*.whl"))
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True, timeout=120)
    python = root / "venv" / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True, env=clean_env()).stdout.strip())
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
                   check=True, capture_output=True, timeout=300, env=clean_env())
    # after the install: pip would otherwise find our editable cifar-lab there and install nothing
    (site / "zz-lab-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return root / "venv"


def test_the_wheel_holds_the_dashboard_and_runs_it(installed, tmp_path):
    code = ("import pathlib, cifar_core, cifar_core.serving as s; from streamlit.testing.v1 import AppTest; "
            "assert 'site-packages' in cifar_core.__file__, cifar_core.__file__; "
            "assert s.STREAMLIT_CONFIG.is_file() and (s.DASHBOARD_APP.parent / 'views' / 'runs.py').is_file(); "
            "at = AppTest.from_file(str(s.DASHBOARD_APP), default_timeout=60).run(); "
            "assert not at.exception, [e.message for e in at.exception]; print(at.title[0].value)")
    env = clean_env(CIFAR_LAB_DATA="synthetic", CIFAR_LAB_RUNS=str(tmp_path / "runs"))
    out = subprocess.run([installed / "bin" / "python", "-c", code], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "Architectures", out.stdout + out.stderr


def test_cifar_lab_serve_from_an_empty_folder(installed, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    port = free_port()
    env = clean_env(CIFAR_LAB_DATA="synthetic")
    proc = subprocess.Popen([installed / "bin" / "cifar-lab", "serve", "--port", str(port)], cwd=empty, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_app(port)
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=10)
    assert "Traceback" not in stderr, stderr
