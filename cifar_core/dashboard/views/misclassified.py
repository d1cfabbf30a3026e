"""Misclassified: which test images a run gets wrong for a (true, predicted) pair, with its probabilities."""

from functools import partial

import numpy as np
import streamlit as st
from PIL import Image

from cifar_core import data
from cifar_core.analysis import caveats, charts, scores
from cifar_core.dashboard import cache, links, model_or_label, sidebar
from cifar_core.engine import explain
from cifar_core.store import rundir, runs

PER_PAGE, COLUMNS, CAM_COLUMNS, ZOOM = 24, 6, 3, 4
st.title("Misclassified images")

finished = cache.finished_runs()
if not finished:
    st.info("No finished runs yet. Train one on the Train page.")
    st.stop()
by_id = {r.run_id: r for r in finished}
ids = list(by_id)
chosen = st.session_state.get(sidebar.RUN_KEY)
run_id = st.selectbox("Run", ids, index=ids.index(chosen) if chosen in ids else 0,
                      format_func=lambda i: cache.run_label(by_id[i]), key="mis_run")
st.session_state[sidebar.RUN_KEY] = run_id
info = by_id[run_id]
report = cache.report(info.path)
try:
    preds = cache.predictions(info.path)
except rundir.DamagedRun as exc:
    st.error(f"Run {run_id}'s predictions cannot be used: {exc}. `cifar-lab evaluate {run_id}` writes them again.")
    st.stop()
if not report:
    st.error(f"Run {run_id} has no usable {rundir.REPORT}; `cifar-lab evaluate {run_id}` writes it again.")
    st.stop()
names = report["class_names"]
for note in caveats.for_run(info.meta):
    st.warning(note)
view = st.segmented_control("View", ["pairs", "map"], default="pairs", key="mis_view",
                            format_func={"pairs": "By class pair", "map": "Map of what it sees"}.get)
found = model_or_label.label_issues_ui(info, finished)
flags = model_or_label.flag_notes(found, names)
if found is not None:
    model_or_label.label_summary_ui(found, 1 + len(st.session_state.get(f"mis_judges_{run_id}", [])))


def images() -> data.Dataset:
    source = info.data.get("source", "")
    try:
        ds = cache.dataset(source)
    except data.DataError as exc:
        st.error(f"The test images of this run are not available: {exc}")
        st.stop()
    if not ds.same_test_images(info.data):
        st.warning("The data at this run's source changed since it trained; images may not match its predictions.")
    return ds


def pick_clicked_cell(chart_key: str) -> None:
    cell = links.clicked_cell(chart_key)
    if cell:
        links.choose_pair(cell["true"], cell["predicted"])


default_pair = scores.default_pair(report)
st.session_state.setdefault(links.TRUE_KEY, default_pair[0])
st.session_state.setdefault(links.PREDICTED_KEY, default_pair[1])
if view == "map":
    ds = images()
    pair = (st.session_state[links.TRUE_KEY], st.session_state[links.PREDICTED_KEY])
    shown_positions = model_or_label.map_ui(info, names, preds, ds, pair, found)
    model_or_label.neighbours_ui(info, ds, names, shown_positions, preds)
    st.stop()

left, right = st.columns([3, 2], gap="large")
with left:
    st.caption("Click a cell to see those images; the outlined cell is the one shown below.")
    shown_pair = (st.session_state[links.TRUE_KEY], st.session_state[links.PREDICTED_KEY])
    spec = cache.chart(charts.confusion_heatmap, scores.confusion_frame(report), selectable=True, size=380,
                       highlight=shown_pair)
    cm_key = f"cm_{run_id}_{'_'.join(shown_pair)}"  # a fresh selection per shown pair: any later click is new
    st.vega_lite_chart(spec, on_select=partial(pick_clicked_cell, cm_key), selection_mode=charts.CELL_SELECTION,
                       key=cm_key, width="content")
with right:
    st.markdown("**Top confusions**")
    for row in scores.top_confusions(report, 8).itertuples():
        st.button(f"{row.true} → {row.predicted}: {row.count}", key=f"top_{row.true}_{row.predicted}",
                  on_click=links.choose_pair, args=(row.true, row.predicted), width="stretch")

c1, c2, c3, c4 = st.columns([2, 2, 2, 2])
true = c1.selectbox("True class", names, key=links.TRUE_KEY)
predicted = c2.selectbox("Predicted as", names, key=links.PREDICTED_KEY)
order = c3.radio("Sort", ["confident", "unsure"], horizontal=True,
                 format_func={"confident": "surest mistakes first", "unsure": "closest calls first"}.get)
only_flagged = c4.checkbox("Only likely mislabeled", key="mis_only_flagged", disabled=found is None,
                           help="Only the images the label check flags: their given label may be the mistake.")
wrong = scores.misclassified(preds, names.index(true), names.index(predicted), order)
mistakes = len(wrong)
if only_flagged and found is not None:
    wrong = wrong[wrong["index"].isin(flags)].reset_index(drop=True)
if true == predicted:
    st.info("Those are the correct predictions of the class; showing them sorted by confidence.")
if wrong.empty:
    st.success(f"No {true} image was predicted as {predicted}" + (" and flagged." if only_flagged else "."))
    st.stop()
ds = images()


def explain_ui() -> str | None:
    """The Grad-CAM switch and its layer; None while it is off. The model (and TensorFlow) loads only once on."""
    c1, c2 = st.columns([1, 2], vertical_alignment="bottom")
    on = c1.toggle("Why? Show Grad-CAM", key="mis_cam",
                   help="Overlays where the model found evidence for the class it predicted, and for the true "
                        "class (Grad-CAM on the chosen conv layer; bright = strong evidence).")
    if not on:
        return None
    try:
        layers = explain.conv_outputs(cache.model(info.path))
        if not layers:
            raise ValueError("this model has no convolution layer at its top level")
    except (runs.RunError, ValueError) as exc:
        st.error(f"Grad-CAM is not available for this run: {exc}")
        return None
    return c2.selectbox("Layer", layers, index=len(layers) - 1, key=f"mis_layer_{run_id}",
                        help="The last conv layer sees whole objects; earlier ones see edges and textures.")


def cam_strips(shown, layer: str) -> list[np.ndarray]:
    """Per shown image: the image, the evidence for the predicted class, and for the true class, side by side."""
    indices = tuple(int(i) for i in shown["index"])
    images = ds.x_test[list(indices)]
    classes = (names.index(predicted),) * len(indices) + (names.index(true),) * len(indices)
    try:
        maps = cache.gradcam_maps(info.path, layer, indices, classes, np.concatenate([images, images]))
    except ValueError as exc:
        st.error(f"Grad-CAM failed: {exc}")
        st.stop()
    return explain.evidence_strips(images, maps)


def gallery_ui(shown, layer: str | None) -> None:
    columns = CAM_COLUMNS if layer else COLUMNS
    if layer:
        c1, c2 = st.columns([3, 2], vertical_alignment="center")
        c1.caption(f"Each image, then where **{layer}** saw evidence for *{predicted}* (the prediction), then for "
                   f"*{true}* (the truth), overlaid on the image. {caveats.GRAD_CAM_SCALE}")
        c2.vega_lite_chart(cache.chart(charts.heat_scale_chart, explain.colour_bar()), width="content")
    present = shown[shown["index"] < len(ds.x_test)]
    strips = dict(zip(present["index"], cam_strips(present, layer), strict=True)) if layer else {}
    for start in range(0, len(shown), columns):
        for col, row in zip(st.columns(columns), shown.iloc[start:start + columns].itertuples(), strict=False):
            if int(row.index) >= len(ds.x_test):
                col.caption(f"test #{int(row.index)} is not in the data set any more")
                continue
            picture = strips.get(row.index, ds.x_test[int(row.index)])
            image = Image.fromarray(picture).resize((picture.shape[1] * ZOOM, picture.shape[0] * ZOOM), Image.NEAREST)
            top = scores.top_k(np.asarray(preds["probs"][int(row.row)], dtype=np.float32), names, 3)
            col.image(image, width="stretch")
            badge = flags.get(int(row.index))
            col.caption(f"test #{int(row.index)}  \n" + "  \n".join(f"{n}: {p:.1%}" for n, p in top)
                        + (f"  \n:orange[{badge}]" if badge else ""))


def feature_maps_ui(shown) -> None:
    """For one image of the page, what each conv layer responds to: its most active channels as a grid."""
    st.subheader("What each layer responds to")
    present = [int(i) for i in shown["index"] if i < len(ds.x_test)]
    if not present:
        return
    index = st.selectbox("Image", present, format_func=lambda i: f"test #{i}", key="mis_fmap_image")
    model = cache.model(info.path)
    layers = explain.conv_outputs(model)
    try:
        maps = explain.activations(model, ds.x_test[index], layers)
    except ValueError as exc:
        st.info(str(exc))
        return
    c1, c2 = st.columns([1, 6])
    c1.image(Image.fromarray(ds.x_test[index]).resize((128, 128), Image.NEAREST), caption=f"test #{index}")
    with c2:
        for name, activation in maps.items():
            strongest = explain.strongest_channels(activation)
            grid = explain.tile(strongest)
            zoom = max(1, 96 // activation.shape[0])
            st.image(Image.fromarray(grid).resize((grid.shape[1] * zoom, grid.shape[0] * zoom), Image.NEAREST),
                     caption=f"{name}: the {strongest.shape[2]} most active of {activation.shape[2]} channels, "
                             f"{activation.shape[0]}×{activation.shape[1]} each")


pages = (len(wrong) - 1) // PER_PAGE + 1
p1, p2 = st.columns([1, 4], vertical_alignment="bottom")
page = p1.number_input(f"Page (of {pages})", 1, pages, key="mis_page") if pages > 1 else 1
flagged_part = f" flagged as likely mislabeled, of {mistakes}" if len(wrong) != mistakes else ""
p2.markdown(f"**{len(wrong)}**{flagged_part} {true} test images predicted as **{predicted}** "
            f"(of {int((preds['y_true'] == names.index(true)).sum())} {true} images).")
shown = wrong.iloc[(page - 1) * PER_PAGE: page * PER_PAGE]
cam_layer = explain_ui()
gallery_ui(shown, cam_layer)
if cam_layer:
    feature_maps_ui(shown)
model_or_label.neighbours_ui(info, ds, names, [int(i) for i in shown["index"]], preds)
