"""Runs: every run with its status and results; open, rename, delete or resume one."""

from functools import partial

import numpy as np
import streamlit as st

from cifar_core.analysis import calibration, caveats, charts, figures, labelissues, scores
from cifar_core.analysis import layers as layer_stats
from cifar_core.dashboard import cache, links, model_or_label, navigation, sidebar
from cifar_core.engine import importing
from cifar_core.store import rundir, runs

st.title("Runs")


def import_ui() -> None:
    """A model trained elsewhere becomes a run; the import runs in its own process (TensorFlow, untrusted file)."""
    with st.expander("Import a model trained elsewhere"):
        st.caption(f"A Keras model file (.keras or .h5, up to {importing.MAX_BYTES // 2**20} MB) with 32x32x3 input "
                   "and one output per CIFAR-10 class, in the usual class order. It is loaded in safe mode (Lambda "
                   "layers and custom code are refused), copied into a new run and evaluated on the test set of the "
                   "data shown in the sidebar.")
        upload = st.file_uploader("Model file", type=["keras", "h5"], key="import_file")
        c1, c2 = st.columns(2)
        scale = c1.radio("Input scale", importing.SCALES, horizontal=True, help=importing.SCALE_HELP)
        name = c2.text_input("Run name (optional)", help=f"{runs.NAME_RULE}.")
        if st.button("Import", disabled=upload is None):
            try:
                with st.spinner("Loading the model safely and evaluating it on the test set ..."):
                    run_dir = importing.import_in_subprocess(cache.runs_dir(), upload.getvalue(), upload.name,
                                                             sidebar.current_source(), name.strip() or None, scale)
            except runs.RunError as exc:
                st.error(str(exc))
                return
            st.session_state[sidebar.RUN_KEY] = run_dir.name
            st.rerun()


if not cache.read_only():
    import_ui()
all_runs = runs.list_runs(cache.runs_dir())
if not all_runs:
    st.info(f"No runs in `{cache.runs_dir()}` yet. Start one on the Train page or with "
            "`cifar-lab train --arch baseline`.")
    st.stop()

def filters_ui(infos: list[runs.RunInfo]) -> list[runs.RunInfo]:
    """Narrow the table by tag, architecture, status and data (a lab notebook with many runs)."""
    def options(values) -> list[str]:
        return sorted({v for v in values if v})

    f1, f2, f3, f4 = st.columns(4)
    tags = f1.multiselect("Tags (all of)", options(t for r in infos for t in r.meta.get("tags", [])), key="f_tags")
    archs = f2.multiselect("Architecture", options(runs.arch_name(r) for r in infos), key="f_arch")
    statuses = f3.multiselect("Status", options(r.status for r in infos), key="f_status")
    kinds = f4.multiselect("Data", options(r.data.get("kind") for r in infos), key="f_data")
    return runs.filter_runs(infos, tags, archs, statuses, kinds)


shown = filters_ui(all_runs)
if not shown:
    st.info("No run matches these filters.")
    st.stop()
table = runs.runs_table(shown)
damaged = table[table["status"] == rundir.DAMAGED]
if not damaged.empty:
    st.warning(f"{len(damaged)} damaged run director{'y' if len(damaged) == 1 else 'ies'}: "
               + "; ".join(f"`{r.id}`: {r.problem}" for r in damaged.itertuples()))
picked = st.dataframe(
    table.drop(columns=["problem"]), hide_index=True, width="stretch", on_select="rerun",
    selection_mode="single-row", key="runs_table",
    column_config={"id": None,  # the name, unless renamed: then the run's header gives it
                   "test acc": st.column_config.NumberColumn(format="%.4f"),
                   "wall s": st.column_config.NumberColumn(format="%.0f"),
                   "params": st.column_config.NumberColumn(format="%d")})
rows = picked.selection.rows
ids = list(table["id"])
default = ids.index(st.session_state[sidebar.RUN_KEY]) if st.session_state.get(sidebar.RUN_KEY) in ids else 0
run_id = ids[rows[0]] if rows else st.selectbox("Open run", ids, index=default, key="open_run")
st.session_state[sidebar.RUN_KEY] = run_id
info = next(r for r in shown if r.run_id == run_id)
m = info.meta


def summary_ui() -> None:
    st.subheader(info.name)
    sizes = m.get("sizes") or {}
    context = [f"{sizes['train']:,} train · {sizes['validation']:,} validation · {sizes['test']:,} test images"
               if {"train", "validation", "test"} <= set(sizes) else "",
               f"part of study `{m['study']}`" if m.get("study") else "", f"data: `{info.data.get('source', '?')}`",
               f"id `{info.run_id}`" if info.name != info.run_id else ""]
    st.caption(" · ".join(c for c in context if c))
    if info.damaged:
        st.error(f"Damaged: {info.damaged}. What can still be read is shown below; delete the run when you no "
                 "longer need it.")
    if m.get("tags") or m.get("pinned"):
        st.markdown(" ".join(f"`{t}`" for t in m.get("tags", [])) + (" · **Compare's baseline**" if m.get("pinned")
                                                                      else ""))
    if m.get("note"):
        st.info(m["note"])
    for note in caveats.for_run(m):
        st.warning(note)
    cols = st.columns(5)
    cols[0].metric("Status", info.status)
    cols[1].metric("Test accuracy", f"{m['test_accuracy']:.4f}" if m.get("test_accuracy") is not None else "-")
    cols[2].metric("Best epoch", m.get("best_epoch") or "-")
    cols[3].metric("Parameters", f"{m['params']:,}" if m.get("params") else "-")
    cols[4].metric("Wall time", f"{m['wall_time']:.0f} s" if m.get("wall_time") else "-")
    if info.has_results and not info.damaged:
        label_issues_ui()


def label_issues_ui() -> None:
    """How many test images this run flags as likely mislabeled, and its accuracy with them set aside."""
    try:
        found, _ = cache.label_issues([info.path])
    except (labelissues.LabelIssuesError, rundir.DamagedRun) as exc:
        st.caption(f"No label check: {exc}")
        return
    test = found[found["split"] == "test"]
    model_or_label.label_summary_ui(test, 1, " See them on Misclassified.")


def results_ui() -> None:
    metrics = cache.metrics(info.path)
    if not metrics.empty:
        st.vega_lite_chart(cache.chart(charts.curves_panel, charts.curves_frame({info.name: metrics})))
        for note in caveats.for_curves([info.meta]):
            st.caption(note)
    report = cache.report(info.path)
    if report:
        view = st.radio("Results", list(RESULT_VIEWS), horizontal=True, key="run_view", label_visibility="collapsed")
        RESULT_VIEWS[view](report)
    with st.expander("Settings (run.json)"):
        shown = {**m, "config": figures.shown_config(m)}
        keys = ("spec", "config", "data", "sizes", "libraries", "devices", "error")
        st.json({k: shown[k] for k in keys if k in m})
    with st.expander("Log"):
        log = info.path / rundir.LOG
        st.code(log.read_text(errors="replace")[-6000:] if log.exists() else "(no log)")


def test_set_ui(report: dict) -> None:
    """The test set's confusion matrix (click a cell for its images on Misclassified) and per-class scores."""
    c1, c2 = st.columns([3, 2])
    key = f"run_cm_{run_id}"
    c1.vega_lite_chart(cache.chart(charts.confusion_heatmap, scores.confusion_frame(report), title="confusion matrix",
                                   selectable=True),
                       on_select=partial(links.open_cell, key, {"": run_id}), selection_mode=charts.CELL_SELECTION,
                       key=key, width="content")
    c1.caption("Click a cell to see its test images on Misclassified.")
    c2.dataframe(scores.per_class_frame(report), hide_index=True,
                 column_config={"support": st.column_config.NumberColumn(format="%d"),
                                **{k: st.column_config.NumberColumn(format="%.3f")
                                   for k in ("precision", "recall", "f1-score")}})
    links.follow()


def epochs_ui(report: dict) -> None:
    """The validation confusion matrix and per-class recall at any epoch: which confusions training fixed when."""
    class_names = report["class_names"]
    epochs = rundir.epoch_prediction_epochs(info.path)
    if not epochs:
        st.caption("This run kept no per-epoch predictions (it was imported, or trained before the lab kept them).")
        return
    best = m.get("best_epoch") if m.get("best_epoch") in epochs else epochs[-1]
    epoch = st.select_slider("Epoch", epochs, value=best, key=f"epoch_{run_id}") if len(epochs) > 1 else epochs[0]
    try:
        at = cache.epoch_report(info.path, epoch, class_names)
    except rundir.DamagedRun as exc:
        st.error(f"Epoch {epoch}'s predictions cannot be read: {exc}.")
        return
    st.caption(f"Validation images at epoch {epoch}: accuracy {at['accuracy']:.4f}"
               + (" (the best epoch, whose weights the run kept)" if epoch == m.get("best_epoch") else ""))
    c1, c2 = st.columns([3, 2])
    c1.vega_lite_chart(cache.chart(charts.confusion_heatmap, scores.confusion_frame(at), title=f"epoch {epoch}"),
                       width="content")
    recall = scores.per_class_frame(at).assign(run=f"epoch {epoch}")
    c2.vega_lite_chart(cache.chart(charts.per_class_chart, recall, "recall"), width="stretch")


def calibration_ui(report: dict) -> None:
    """How far to trust the run's confidence: reliability diagram, ECE overall and per class, and how sure it is
    when right and when wrong."""
    class_names = report["class_names"]
    try:
        calib = cache.calibration(info.path, class_names)
    except rundir.DamagedRun as exc:
        st.info(f"No calibration: {exc}.")
        return
    st.metric("Expected calibration error (ECE)", f"{calib.ece:.4f}",
              help=f"Mean gap between confidence and accuracy over {calibration.BINS} confidence bins, weighted by "
                   "their images; 0 is perfect.")
    for note in caveats.for_calibration(m):
        st.info(note)
    c1, c2 = st.columns(2)
    c1.vega_lite_chart(cache.chart(charts.reliability_chart, {info.name: calib.reliability}), width="content")
    c2.vega_lite_chart(cache.chart(charts.confidence_histogram_chart, calib.histogram))
    st.dataframe(calib.per_class.rename(columns={"ece": "classwise ECE"}), hide_index=True,
                 column_config={c: st.column_config.NumberColumn(format="%.4f")
                                for c in ("classwise ECE", "mean probability", "share")})
    st.caption(caveats.CLASSWISE_ECE)


def inside_ui(report: dict) -> None:
    """What each layer did while the run learned: a measure per layer and record as a heat map, each layer's
    activations and the first layer's filters at any record, and what the numbers plainly show."""
    try:
        records = cache.layer_records(info.path)
    except rundir.DamagedRun as exc:
        st.warning(f"The layer records cannot be read: {exc}. Everything else about the run is unaffected.")
        return
    if not records:
        st.caption(caveats.NO_LAYER_RECORDS)
        return
    if m.get("imported"):
        st.caption(caveats.IMPORTED_LAYER_RECORD)
    for sentence in layer_stats.sentences(records):
        st.info(sentence)
    frame = layer_stats.frame(records)
    measure = st.radio("Measure", list(layer_stats.MEASURES), horizontal=True, key=f"layer_measure_{run_id}",
                       format_func=lambda k: layer_stats.MEASURES[k][0])
    title, log = layer_stats.MEASURES[measure]
    st.vega_lite_chart(cache.chart(charts.layer_heatmap, frame, measure, title, log), width="content")
    st.caption(caveats.LAYER_MEASURES)
    epochs = [r["epoch"] for r in records]
    epoch = st.select_slider("Record", epochs, value=epochs[-1], key=f"layer_epoch_{run_id}",
                             format_func=lambda e: "at import" if m.get("imported") else
                             "before training" if e == 0 else f"epoch {e:g}")
    record = layer_stats.at_epoch(records, epoch)
    c1, c2 = st.columns([3, 2])
    dist = layer_stats.distribution_frame(record)
    if not dist.empty:
        c1.vega_lite_chart(cache.chart(charts.activation_boxes, dist, f"activations at {epoch:g} epochs"),
                           width="content")
    if record.get("filters"):
        filters = np.asarray(record["filters"]["values"], np.float32).reshape(record["filters"]["shape"])
        c2.image(layer_stats.filter_grid(filters), caption=f"first conv layer's {filters.shape[-1]} filters "
                 f"({filters.shape[0]}x{filters.shape[1]}), each scaled to its own range", width=260)
    st.dataframe(layer_stats.text_table(record), hide_index=True)  # as text: Streamlit draws a missing number "None"
    st.caption(caveats.LAYER_TABLE_GAPS)


def notebook_ui() -> None:
    """Tags, a note and the pinned baseline: what the run was for, kept beside its results."""
    n1, n2 = st.columns([2, 3])
    with n1:
        text = st.text_input("Tags (space-separated)", value=" ".join(m.get("tags", [])), key=f"tags_{run_id}",
                             help=f"Each {runs.TAG_RULE}.")
        if st.button("Save tags", disabled=bool(info.damaged)):
            wanted = text.split()
            try:
                runs.set_tags(info, wanted, [t for t in m.get("tags", []) if t not in wanted])
                st.rerun()
            except runs.RunError as exc:
                st.error(str(exc))
        if m.get("pinned"):
            if st.button("Unpin as Compare's baseline"):
                runs.pin_baseline(cache.runs_dir(), None)
                st.rerun()
        elif info.has_results and st.button("Pin as Compare's baseline", help="Compare shows it first."):
            runs.pin_baseline(cache.runs_dir(), info)
            st.rerun()
    with n2:
        note = st.text_area("Note", value=m.get("note", ""), key=f"note_{run_id}", max_chars=runs.NOTE_MAX,
                            height=100)
        if st.button("Save note", disabled=note == m.get("note", "") or bool(info.damaged)):
            runs.set_note(info, note)
            st.rerun()


def actions_ui() -> None:
    """Rename, resume or stop, delete: only for the person at the machine (never in a shared view)."""
    a1, a2, a3 = st.columns(3)
    with a1:
        new_name = st.text_input("Rename", value=info.name, key=f"rename_{run_id}", help=f"{runs.NAME_RULE}.")
        if st.button("Save name", disabled=new_name == info.name or bool(info.damaged)):
            try:
                runs.rename(info, new_name)
                st.rerun()
            except runs.RunError as exc:
                st.error(str(exc))
    with a2:
        if info.status in rundir.RESUMABLE:
            st.caption("This run ended before finishing; it continues from its last completed epoch.")
            if st.button("Resume", type="primary"):
                try:
                    runs.resume(info)
                    navigation.go(navigation.TRAIN)
                except runs.RunError as exc:
                    st.error(str(exc))
        elif info.is_training and st.button("Stop"):
            runs.stop(info)
            st.rerun()
    with a3:
        sure = st.checkbox(f"Yes, delete {run_id}", key=f"confirm_{run_id}",
                           help="The run folder and all its files: weights, metrics, predictions. It cannot be undone.")
        if st.button("Delete run", disabled=not sure):
            try:
                runs.delete(info)
                st.rerun()
            except runs.RunError as exc:
                st.error(str(exc))


RESULT_VIEWS = {"Test set": test_set_ui, "Epoch by epoch": epochs_ui, "Calibration": calibration_ui,
                "Inside the network": inside_ui}
summary_ui()
results_ui()
if not cache.read_only():
    st.divider()
    notebook_ui()
    actions_ui()
