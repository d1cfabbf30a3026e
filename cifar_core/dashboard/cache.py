"""Cached readers of run files and data, invalidated when the files on disk change (keyed by mtime)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

from cifar_core import data, serving, settings
from cifar_core.model import shapes, specs
from cifar_core.store import rundir, runs
from cifar_core.studies import estimates

if TYPE_CHECKING:
    import pandas as pd


def _stamp(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def runs_dir() -> Path:
    return runs.default_runs_dir()


def specs_folder() -> Path:
    return specs.specs_dir(runs_dir())


def read_only() -> bool:
    """Whether this server is shared (not on loopback): then no page offers an action that writes."""
    return serving.read_only(st.get_option("server.address"), settings.environment())


@st.cache_data(show_spinner=False, max_entries=64)
def _metrics(run_dir: str, stamp: int) -> pd.DataFrame:
    try:
        return runs.read_metrics(Path(run_dir))
    except rundir.DamagedRun:
        import pandas as pd

        return pd.DataFrame()


def metrics(run_dir: Path) -> pd.DataFrame:
    """A run's epochs (empty when it has none, or its metrics.jsonl is damaged: the run says why)."""
    return _metrics(str(run_dir), _stamp(run_dir / rundir.METRICS))


@st.cache_data(show_spinner=False, max_entries=64)
def _report(run_dir: str, stamp: int) -> dict | None:
    try:
        return rundir.read_report(Path(run_dir))
    except rundir.DamagedRun:
        return None


def report(run_dir: Path) -> dict | None:
    return _report(str(run_dir), _stamp(run_dir / rundir.REPORT))


@st.cache_data(show_spinner=False, max_entries=16)
def _layer_records(run_dir: str, stamp: int) -> list[dict] | str:
    try:
        return rundir.read_layer_records(Path(run_dir))
    except rundir.DamagedRun as exc:
        return str(exc)


def layer_records(run_dir: Path) -> list[dict]:
    """The run's layer records ([] when it kept none); raises DamagedRun (with the reason) when layers.jsonl is
    damaged."""
    found = _layer_records(str(run_dir), _stamp(run_dir / rundir.LAYERS))
    if isinstance(found, str):
        raise rundir.DamagedRun(found)
    return found


@st.cache_data(show_spinner=False, max_entries=16)
def _predictions(run_dir: str, stamp: int) -> dict | str:
    try:
        return rundir.read_predictions(Path(run_dir))
    except rundir.DamagedRun as exc:
        return str(exc)


def predictions(run_dir: Path) -> dict:
    """A run's predictions; raises DamagedRun (with the reason) when predictions.npz cannot be used."""
    found = _predictions(str(run_dir), _stamp(run_dir / rundir.PREDICTIONS))
    if isinstance(found, str):
        raise rundir.DamagedRun(found)
    return found


@st.cache_resource(show_spinner="Loading CIFAR-10 ...", max_entries=4)
def _dataset(source: str, fingerprint_hint: int) -> data.Dataset:
    return data.load_dataset(source)


def dataset(source: str) -> data.Dataset:
    """The decoded data set (images included), held once per server process; reloaded if the source folder
    changes on disk. Only pages that show images need it. A shared view opens only the server's own data."""
    if read_only() and not data.is_server_source(source):
        raise data.DataError(serving.OTHER_DATA)
    if source in ("keras", data.SYNTHETIC):
        return _dataset(source, 0)
    path = Path(source).expanduser().resolve()
    return _dataset(str(path), _stamp(path))


@st.cache_data(show_spinner="Reading the data set ...", max_entries=8)
def _summary(source: str, stamp: int) -> dict:
    return data.summary(source)


def data_summary(source: str) -> dict:
    """Source, kind, sizes and classes of a data set without holding its images (see `data.summary`)."""
    if source in ("keras", data.SYNTHETIC):
        return _summary(source, 0)
    path = Path(source).expanduser().resolve()
    return _summary(str(path), _stamp(path))


@st.cache_data(show_spinner=False, max_entries=256)
def layer_table(spec_json: str) -> tuple[pd.DataFrame, int]:
    """Layer table and parameter count, computed from the spec in pure Python (no TensorFlow)."""
    import pandas as pd

    spec = specs.from_json(spec_json)
    return pd.DataFrame(shapes.layer_rows(spec)), shapes.param_count(spec)


def finished_runs() -> list[runs.RunInfo]:
    return [r for r in runs.list_runs(runs_dir()) if r.has_results]


@st.cache_data(show_spinner=False, ttl=60)
def measured_costs(runs_folder: str) -> estimates.Costs:
    """Images/s per architecture and the fixed seconds of a run, from earlier runs here; read at most once a
    minute (it opens every run's metrics file)."""
    return estimates.measure(Path(runs_folder))


@st.cache_data(show_spinner=False, max_entries=16)
def _study_results(study_dir: str, stamps: tuple) -> pd.DataFrame:
    from cifar_core.studies import records

    return records.results(Path(study_dir))


def study_results(study_dir: Path) -> pd.DataFrame:
    """A study's finished runs and their figures (`records.results`), read again only when the study or one of
    its runs changes on disk (it opens every run's report and predictions)."""
    from cifar_core.studies import records

    stamps = (_stamp(study_dir / records.STUDY_JSON), _run_stamps(study_dir, rundir.RUN_JSON))
    return _study_results(str(study_dir), stamps)


@st.cache_data(show_spinner=False, max_entries=16)
def _study_layer_charts(study_dir: str, kind: str, stamps: tuple) -> dict[str, dict]:
    from cifar_core.studies import records, report

    return {name: c.to_dict() for name, c in report.layer_charts(kind, records.layer_profiles(Path(study_dir))).items()}


def study_layer_charts(study_dir: Path, kind: str) -> dict[str, dict]:
    """A study's charts of its runs' layers (`report.layer_charts`), read again when a run's layer records change."""
    return _study_layer_charts(str(study_dir), kind, _run_stamps(study_dir, rundir.LAYERS))


def _run_stamps(study_dir: Path, file_name: str) -> tuple:
    """The change stamps of one file of each of a study's runs: a cached study figure is read again when one moves."""
    from cifar_core.studies import records

    study = records.read(study_dir)
    run_dirs = [records.run_dir_of(study, entry) for entry in study["runs"]]
    return tuple(_stamp(d / file_name) for d in run_dirs if d)


def group_summary(study_dir: Path, results: pd.DataFrame) -> pd.DataFrame:
    """A study's groups (runs differing only in seed): mean, spread and interval of their figures."""
    from cifar_core.analysis import stats
    from cifar_core.studies import plans, records

    return stats.group_summary(results, plans.group_labels(records.read(study_dir)))


def run_label(info: runs.RunInfo) -> str:
    acc = info.meta.get("test_accuracy")
    tag = (" [synthetic]" if info.is_synthetic else "") + (" ★ baseline" if info.meta.get("pinned") else "")
    arch = (info.meta.get("spec") or {}).get("name")
    return f"{info.name} ({arch}, {acc:.3f}){tag}" if acc is not None else info.name + tag


def chart(builder: Callable, *args, **kwargs) -> dict:
    """`builder(...)`, one of cifar_core.analysis.charts' functions, as a Vega-Lite spec built once per distinct
    input. Altair validates every chart it serializes, which costs a page more than all its other work; cached, a
    revisit pays nothing."""
    return _chart(builder.__name__, *args, **kwargs)


@st.cache_data(show_spinner=False, max_entries=256)
def _chart(builder: str, *args, **kwargs) -> dict:
    from cifar_core.analysis import charts

    return getattr(charts, builder)(*args, **kwargs).to_dict()


@st.cache_data(show_spinner=False, max_entries=32)
def study_charts(kind: str, results: pd.DataFrame) -> dict[str, dict]:
    """A study's charts as Vega-Lite specs, keyed by name (see `chart`)."""
    from cifar_core.studies import report

    return {name: c.to_dict() for name, c in report.study_charts(kind, results).items()}


@st.cache_resource(show_spinner="Loading the model (TensorFlow starts the first time) ...", max_entries=4)
def _model(run_dir: str, stamp: int):
    from cifar_core.engine import trainer

    return trainer.load_model(Path(run_dir))


def model(run_dir: Path):
    """A run's model.keras, loaded once per server process (reloaded if the file changes). Only the views
    that explain a model call this, so only they import TensorFlow."""
    return _model(str(run_dir), _stamp(run_dir / rundir.MODEL))


@st.cache_resource(show_spinner=False, max_entries=8)
def _gradcam(run_dir: str, stamp: int, layer: str):
    from cifar_core.engine import explain

    return explain.GradCam(_model(run_dir, stamp), layer)


@st.cache_data(show_spinner="Computing Grad-CAM ...", max_entries=64)
def _gradcam_maps(run_dir: str, stamp: int, layer: str, indices: tuple[int, ...], classes: tuple[int, ...],
                  _images):
    import numpy as np

    return _gradcam(run_dir, stamp, layer)(_images, np.asarray(classes))


def gradcam_maps(run_dir: Path, layer: str, indices: tuple[int, ...], classes: tuple[int, ...], images):
    """Grad-CAM maps of the test images `indices` (given as `images`) for `classes`, computed once."""
    return _gradcam_maps(str(run_dir), _stamp(run_dir / rundir.MODEL), layer, indices, classes, images)


@st.cache_data(show_spinner=False, max_entries=64)
def _epoch_report(run_dir: str, epoch: int, class_names: tuple[str, ...], stamp: int) -> dict:
    from cifar_core.analysis import scores

    y_val, y_pred = rundir.read_epoch_predictions(Path(run_dir), epoch)
    return scores.build_report(y_val, y_pred, class_names)


def epoch_report(run_dir: Path, epoch: int, class_names: list[str]) -> dict:
    """The confusion matrix and per-class scores of a run's validation predictions at one epoch."""
    path = run_dir / rundir.EPOCHS / rundir.EPOCH_PREDICTIONS.format(epoch=epoch)
    return _epoch_report(str(run_dir), epoch, tuple(class_names), _stamp(path))


@st.cache_data(show_spinner=False, max_entries=32)
def _calibration(run_dir: str, stamp: int, class_names: tuple[str, ...]):
    from cifar_core.analysis import calibration

    return calibration.summarize(rundir.read_predictions(Path(run_dir)), list(class_names))


def calibration(run_dir: Path, class_names: list[str]):
    """A run's calibration summary (`calibration.summarize`), read again when its predictions change."""
    return _calibration(str(run_dir), _stamp(run_dir / rundir.PREDICTIONS), tuple(class_names))


# --- model or label: embeddings, the map, neighbours, likely label errors ----------------------------------

def _embedding_stamps(run_dir: Path) -> tuple[int, int, int]:
    return tuple(_stamp(run_dir / name) for name in (rundir.EMBEDDINGS, rundir.MAP, rundir.PREDICTIONS))


@st.cache_data(show_spinner="Placing the test images on the map ...", max_entries=8)
def _map_points(run_dir: str, stamps: tuple, class_names: tuple[str, ...]) -> tuple[pd.DataFrame, str] | None:
    from cifar_core.analysis import mistakes_map, projection
    from cifar_core.store import embeddings

    path = Path(run_dir)
    held = embeddings.read(path)
    if held is None:
        return None
    made = embeddings.read_map(path)
    xy, method = made if made else (projection.project(held[0].vectors, "pca"), "pca")
    return mistakes_map.frame(rundir.read_predictions(path), held[0], xy, list(class_names)), method


def map_points(run_dir: Path, class_names: list[str]) -> tuple[pd.DataFrame, str] | None:
    """(one row per test image: x, y, position, true, predicted, confidence, wrong; the projection it used), PCA
    until the job has made the better map; None while the run has no embeddings. Raises DamagedRun."""
    return _map_points(str(run_dir), _embedding_stamps(run_dir), tuple(class_names))


@st.cache_resource(show_spinner="Indexing the training images ...", max_entries=4)
def _neighbour_index(run_dir: str, stamp: int):
    from cifar_core.analysis import neighbours
    from cifar_core.store import embeddings

    path = Path(run_dir)
    train, held = embeddings.read_train(path), embeddings.read(path)
    if train is None or held is None:
        return None
    return neighbours.Index(train.vectors, train.index, train.labels), held[0]


def neighbour_index(run_dir: Path):
    """(the training images' index, the test embeddings), or None until the job has made the training embeddings."""
    return _neighbour_index(str(run_dir), _stamp(run_dir / rundir.TRAIN_EMBEDDINGS))


@st.cache_data(show_spinner="Looking for likely label errors ...", max_entries=16)
def _label_issues(run_dirs: tuple[str, ...], stamps: tuple) -> tuple[pd.DataFrame, str]:
    import pandas as pd

    from cifar_core.analysis import labelissues

    infos = [runs.load_run(Path(p)) for p in run_dirs]
    test, val, why = labelissues.judge(infos)
    found = [labelissues.find(j) for j in (test, val) if j is not None]
    return pd.concat(found, ignore_index=True), why


def label_issues(run_dirs: list[Path]) -> tuple[pd.DataFrame, str]:
    """Every test (and shared validation) image judged by the runs' averaged probabilities (labelissues.find), and
    why validation was left out. Raises LabelIssuesError or DamagedRun."""
    stamps = tuple(_embedding_stamps(p) for p in run_dirs)
    return _label_issues(tuple(str(p) for p in run_dirs), stamps)
