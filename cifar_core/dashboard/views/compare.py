"""Compare: two to four runs side by side: metrics, curves, confusion matrices, per-class scores, differences."""

from functools import partial

import numpy as np
import streamlit as st
from PIL import Image

from cifar_core import data
from cifar_core.analysis import calibration, caveats, charts, compare, figures, scores, stats
from cifar_core.analysis import layers as layer_stats
from cifar_core.dashboard import cache, links
from cifar_core.store import rundir, runs

GALLERY, COLUMNS, ZOOM = 18, 6, 3

st.title("Compare runs")
finished = runs.pinned_first(cache.finished_runs())
if len(finished) < 2:
    st.info("Compare needs at least two finished runs. Train some on the Train page, or run a study on Experiments.")
    st.stop()

by_id = {r.run_id: r for r in finished}
picked = st.multiselect("Runs (2 to 4)", list(by_id), default=list(by_id)[:2], max_selections=4,
                        format_func=lambda i: cache.run_label(by_id[i]), key="compare_runs")
if len(picked) < 2:
    st.info("Pick at least two runs.")
    st.stop()
infos = [by_id[i] for i in picked]
reports = {i.run_id: cache.report(i.path) for i in infos}
for note in caveats.for_runs([i.meta for i in infos]):
    st.warning(note)

st.subheader("Metrics")
FORMATS = {"val acc": "%.4f", "test acc": "%.4f", "macro F1": "%.4f", "s/epoch": "%.1f"}
st.dataframe(compare.metrics_table(infos, reports), hide_index=True, width="stretch",
             column_config={c: st.column_config.NumberColumn(format=f) for c, f in FORMATS.items()})

st.subheader("Curves")
axis = st.radio("x axis", ["epoch", "elapsed"], horizontal=True,
                format_func={"epoch": "epoch", "elapsed": "wall-clock seconds"}.get)
st.vega_lite_chart(cache.chart(charts.curves_panel, charts.curves_frame({i.name: cache.metrics(i.path) for i in infos}),
                                axis))
for note in caveats.for_curves([i.meta for i in infos]):
    st.caption(note)

st.subheader("Confusion matrices")
normalize = st.toggle("Row-normalised (share of each true class)", value=False)


def epoch_frames(normalize: bool) -> dict | None:
    """The runs' validation confusion matrices at one epoch they all reached, or None to show the test set's."""
    kept = {i.run_id: rundir.epoch_prediction_epochs(i.path) for i in infos}
    common = sorted(set.intersection(*(set(e) for e in kept.values())))
    if not common or not st.toggle("At one epoch (validation images)", key="compare_at_epoch",
                                   help="Align the runs at the same epoch, from the validation predictions "
                                        "each run kept per epoch."):
        return None
    epoch = st.select_slider("Epoch", common, value=common[-1], key="compare_epoch") if len(common) > 1 else common[0]
    return {f"{i.name} @ {epoch}": scores.confusion_frame(
        cache.epoch_report(i.path, epoch, reports[i.run_id]["class_names"]), normalize) for i in infos}


def test_set_matrices(frames: dict) -> None:
    """The runs' test-set confusion matrices; a click on a cell opens its images on Misclassified."""
    key = f"compare_cm_{'_'.join(picked)}"
    spec = cache.chart(charts.confusion_row, frames, normalize, size=560 // len(infos) + 40, selectable=True)
    st.vega_lite_chart(spec, on_select=partial(links.open_cell, key, {i.name: i.run_id for i in infos}),
                       selection_mode=charts.CELL_SELECTION, key=key)
    st.caption("Click a cell to see those test images on Misclassified.")
    links.follow()


frames = {i.name: scores.confusion_frame(reports[i.run_id], normalize) for i in infos if reports[i.run_id]}
at_epoch = epoch_frames(normalize) if len(frames) == len(infos) else None
if at_epoch:
    st.vega_lite_chart(cache.chart(charts.confusion_row, at_epoch, normalize, size=560 // len(infos) + 40))
elif frames:
    test_set_matrices(frames)

st.subheader("Per-class precision, recall and F1")
per_class = compare.per_class(infos, reports)
metric = st.radio("metric", ["f1-score", "precision", "recall"], horizontal=True)
st.vega_lite_chart(cache.chart(charts.per_class_chart, per_class, metric), width="stretch")
wide = compare.per_class_wide(per_class, metric)
st.dataframe(wide.style.format("{:.3f}").highlight_max(axis=1, color="#d4edda"), width="stretch")


def calibration_ui() -> None:
    """The runs' reliability diagrams overlaid, with each run's ECE."""
    st.subheader("Calibration")
    curves, eces = {}, []
    for i in infos:
        try:
            calib = cache.calibration(i.path, reports[i.run_id]["class_names"])
        except (rundir.DamagedRun, TypeError):
            continue
        curves[i.name] = calib.reliability
        eces.append({"run": i.name, "ECE": calib.ece})
    if not curves:
        st.caption("No run here has usable predictions.")
        return
    c1, c2 = st.columns([3, 2])
    c1.vega_lite_chart(cache.chart(charts.reliability_chart, curves), width="content")
    c2.dataframe(eces, hide_index=True, column_config={"ECE": st.column_config.NumberColumn(format="%.4f")})
    c2.caption(f"ECE: the mean gap between confidence and accuracy over {calibration.BINS} confidence bins, weighted "
               "by their images (0 is perfect). Below the diagonal, a run is over-confident; above, under-confident.")
    for note, names in calibration_notes().items():
        c2.caption(f"{', '.join(names)}: {note}")


def calibration_notes() -> dict[str, list[str]]:
    """Each calibration caveat of the runs shown, with the runs it holds for."""
    notes: dict[str, list[str]] = {}
    for i in infos:
        for note in caveats.for_calibration(i.meta):
            notes.setdefault(note, []).append(i.name)
    return notes


def inside_ui() -> None:
    """The runs' layers side by side at their last record: one measure against depth, a line per run (baseline
    against batchnorm shows how gradients reach the first layers with and without batch norm)."""
    st.subheader("Inside the network")
    found = {}
    for i in infos:
        try:
            found[i.name] = cache.layer_records(i.path)
        except rundir.DamagedRun as exc:
            st.caption(f"{i.name}: its layer records cannot be read ({exc}).")
    profile = layer_stats.profile(found)
    if profile.empty:
        st.caption(caveats.NO_LAYER_RECORDS)
        return
    missing = [name for name, records in found.items() if not records]
    if missing:
        st.caption(f"No layer records: {', '.join(missing)}.")
    measure = st.radio("Measure", list(layer_stats.MEASURES), horizontal=True, key="compare_layer_measure",
                       format_func=lambda k: layer_stats.MEASURES[k][0])
    title, log = layer_stats.MEASURES[measure]
    st.vega_lite_chart(cache.chart(charts.layer_profile_chart, profile, measure, f"{title}, at each run's last record",
                                   log), width="content")
    st.caption(caveats.LAYER_MEASURES)


calibration_ui()
inside_ui()

st.subheader("What changed between two models")
d1, d2 = st.columns(2)
a_id = d1.selectbox("A", picked, index=0, format_func=lambda i: by_id[i].name)
b_id = d2.selectbox("B", picked, index=1, format_func=lambda i: by_id[i].name)
a, b = by_id[a_id], by_id[b_id]
c1, c2 = st.columns([2, 3])
with c1:
    diff = compare.settings_diff(a.meta, b.meta)
    if diff.empty:
        st.caption("Same architecture, training settings and data.")
    else:
        st.table(diff.assign(setting=diff["setting"].map(compare.setting_label)).set_index("setting"))
        st.caption("No other differences: every other architecture, training and data setting is the same.")
with c2:
    elsewhere = stats.same_test_set(a.meta, b.meta)
    if elsewhere:
        st.info(f"No confusion difference: {elsewhere}")
    elif reports[a_id] and reports[b_id] and a_id != b_id:
        change = scores.confusion_difference(reports[a_id], reports[b_id])
        st.vega_lite_chart(cache.chart(charts.difference_heatmap, change, f"{b.name} minus {a.name}"),
                           width="content")
        st.caption("Numbers: B's images minus A's in each cell. Colour: blue where B does better (more images right "
                   "on the diagonal, fewer mistakes off it), red where B does worse.")
        st.caption(compare.change_summary(change, b.name))


def paired_ui() -> dict | None:
    """Both runs' predictions on the test images they share, or None (saying why) when they cannot be paired."""
    if a_id == b_id:
        st.caption("Pick two different runs as A and B.")
        return None
    try:
        return compare.paired_predictions(a, b, cache.predictions(a.path), cache.predictions(b.path))
    except (ValueError, rundir.DamagedRun) as exc:
        st.info(f"No image-by-image comparison: {exc}")
        return None


def significance_ui(pair: dict) -> None:
    """Is one model more accurate than the other? McNemar's exact test on the images one gets right, the other wrong."""
    result = compare.significance(pair)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric(f"Only {a.name} right", f"{result.only_a:,}")
    c2.metric(f"Only {b.name} right", f"{result.only_b:,}")
    c3.metric("Both right", f"{result.both:,}")
    c4.metric("p-value", stats.p_value_text(result.p_value))
    (st.success if result.p_value < stats.ALPHA else st.info)(result.verdict(a.name, b.name))
    seed_only = compare.only_seed_differs(a.meta, b.meta)
    st.caption(" ".join([caveats.SEED_ONLY] * seed_only + [caveats.MODELS_NOT_SETTINGS]))


def disagreements_ui(pair: dict) -> None:
    """The test images one run gets right and the other wrong, by class; click a bar to see them."""
    st.subheader("Where they disagree")
    names = reports[a_id]["class_names"]
    counts = compare.disagreement_counts(pair, names, a.name, b.name)
    event = st.vega_lite_chart(cache.chart(charts.disagreement_chart, counts), on_select="rerun",
                               selection_mode=charts.BAR_SELECTION, key=f"dis_{a_id}_{b_id}", width="stretch")
    bars = event.selection.get(charts.BAR_SELECTION) if event and event.selection else None
    labels = {"a": f"only {a.name} right", "b": f"only {b.name} right"}
    who_key, class_key = f"dis_who_{a_id}_{b_id}", f"dis_class_{a_id}_{b_id}"
    clicked = (bars[0]["who"], bars[0]["class"]) if bars else None
    if clicked and clicked != st.session_state.get(f"{who_key}_click"):  # a new click, not the one kept from before
        st.session_state[f"{who_key}_click"] = clicked
        st.session_state[who_key] = "a" if clicked[0] == labels["a"] else "b"
        st.session_state[class_key] = clicked[1]
    c1, c2 = st.columns(2)
    who = c1.radio("Images", ["a", "b"], format_func=labels.get, horizontal=True, key=who_key)
    label = c2.selectbox("True class", ["all classes", *names], key=class_key)
    rows = compare.disagreements(pair, who, None if label == "all classes" else names.index(label))
    if not len(rows):
        st.caption("No such image.")
        return
    st.caption(f"{len(rows):,} images; the {min(len(rows), GALLERY)} where the other run was surest of its mistake.")
    try:
        ds = cache.dataset(a.data.get("source", ""))
    except data.DataError as exc:
        st.info(f"The test images are not available: {exc}")
        return
    gallery(pair, rows[:GALLERY], ds, names)


def gallery(pair: dict, rows, ds, names: list[str]) -> None:
    for start in range(0, len(rows), COLUMNS):
        for col, r in zip(st.columns(COLUMNS), rows[start:start + COLUMNS], strict=False):
            index = int(pair["index"][r])
            if index >= len(ds.x_test):
                col.caption(f"test #{index} is not in the data set any more")
                continue
            col.image(Image.fromarray(ds.x_test[index]).resize((32 * ZOOM, 32 * ZOOM), Image.NEAREST),
                      width="stretch")
            lines = [f"test #{index}, {figures.with_article(names[int(pair['y_true'][r])])}"]
            for run, key in ((a.name, "probs_a"), (b.name, "probs_b")):
                top = scores.top_k(np.asarray(pair[key][r], dtype=np.float32), names, 3)
                lines.append(f"**{run}**: " + ", ".join(f"{n} {p:.0%}" for n, p in top))
            col.caption("  \n".join(lines))


st.subheader("Is the difference real?")
paired = paired_ui()
if paired:
    significance_ui(paired)
    disagreements_ui(paired)
