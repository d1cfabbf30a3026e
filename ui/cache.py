"""Cached readers of run files and data, invalidated when the files on disk change (keyed by mtime)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from cifar_core import data, evaluate, runs, specs


def _stamp(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def runs_dir() -> Path:
    return runs.default_runs_dir()


def specs_folder() -> Path:
    return specs.specs_dir(runs_dir())


@st.cache_data(show_spinner=False, max_entries=64)
def _metrics(run_dir: str, stamp: int) -> pd.DataFrame:
    return runs.read_metrics(Path(run_dir))


def metrics(run_dir: Path) -> pd.DataFrame:
    return _metrics(str(run_dir), _stamp(run_dir / runs.METRICS))


@st.cache_data(show_spinner=False, max_entries=64)
def _report(run_dir: str, stamp: int) -> dict | None:
    try:
        return runs.read_json(Path(run_dir) / "report.json")
    except (OSError, json.JSONDecodeError):
        return None


def report(run_dir: Path) -> dict | None:
    return _report(str(run_dir), _stamp(run_dir / "report.json"))


@st.cache_data(show_spinner=False, max_entries=16)
def _predictions(run_dir: str, stamp: int) -> dict | None:
    path = Path(run_dir) / "predictions.npz"
    return evaluate.load_predictions(path) if path.exists() else None


def predictions(run_dir: Path) -> dict | None:
    return _predictions(str(run_dir), _stamp(run_dir / "predictions.npz"))


@st.cache_resource(show_spinner="Loading CIFAR-10 ...", max_entries=4)
def _dataset(source: str, fingerprint_hint: int) -> data.Dataset:
    return data.load_dataset(source)


def dataset(source: str) -> data.Dataset:
    """The decoded data set, held once per server process; reloaded if the source path changes on disk."""
    if source in ("keras", data.SYNTHETIC):
        return _dataset(source, 0)
    path = Path(source).expanduser().resolve()
    return _dataset(str(path), _stamp(path))


@st.cache_data(show_spinner="Building the model ...", max_entries=128)
def layer_table(spec_json: str) -> tuple[pd.DataFrame, int]:
    """Layer table and parameter count; the only place a page needs TensorFlow, imported here on demand."""
    from cifar_core.models import describe

    return describe(specs.from_json(spec_json))


def finished_runs() -> list[runs.RunInfo]:
    return [r for r in runs.list_runs(runs_dir()) if r.status in ("completed", "stopped")]


def run_label(info: runs.RunInfo) -> str:
    acc = info.meta.get("test_accuracy")
    tag = " [synthetic]" if info.is_synthetic else ""
    return f"{info.name} ({info.meta.get('spec', {}).get('name')}, {acc:.3f}){tag}" if acc else info.name + tag
