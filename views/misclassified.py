"""Misclassified: which test images a run gets wrong for a (true, predicted) pair, with its probabilities."""

import numpy as np
import streamlit as st
from PIL import Image

from cifar_core import caveats, charts, data, evaluate, rundir
from ui import cache, sidebar

PER_PAGE, COLUMNS, ZOOM = 24, 6, 4
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


def choose_pair(true: str, predicted: str) -> None:
    st.session_state["mis_true"], st.session_state["mis_pred"] = true, predicted
    st.session_state["mis_page"] = 1


st.session_state.setdefault("mis_true", "cat" if "cat" in names else names[0])
st.session_state.setdefault("mis_pred", "dog" if "dog" in names else names[1])

left, right = st.columns([3, 2], gap="large")
with left:
    st.caption("Click a cell to see those images.")
    spec = cache.chart("confusion_heatmap", evaluate.confusion_frame(report), selectable=True, size=380)
    event = st.vega_lite_chart(spec, on_select="rerun", selection_mode=charts.CELL_SELECTION, key=f"cm_{run_id}")
    cells = event.selection.get(charts.CELL_SELECTION) if event and event.selection else None
    if cells:
        pair = (cells[0]["true"], cells[0]["predicted"])
        if pair != st.session_state.get("mis_last_click"):
            st.session_state["mis_last_click"] = pair
            choose_pair(*pair)
with right:
    st.markdown("**Top confusions**")
    for row in evaluate.top_confusions(report, 8).itertuples():
        st.button(f"{row.true} → {row.predicted}: {row.count}", key=f"top_{row.true}_{row.predicted}",
                  on_click=choose_pair, args=(row.true, row.predicted), width="stretch")

c1, c2, c3 = st.columns([2, 2, 2])
true = c1.selectbox("True class", names, key="mis_true")
predicted = c2.selectbox("Predicted as", names, key="mis_pred")
order = c3.radio("Sort", ["confident", "unsure"], horizontal=True,
                 format_func={"confident": "surest mistakes first", "unsure": "closest calls first"}.get)
wrong = evaluate.misclassified(preds, names.index(true), names.index(predicted), order)
if true == predicted:
    st.info("Those are the correct predictions of the class; showing them sorted by confidence.")
if wrong.empty:
    st.success(f"No {true} image was predicted as {predicted}.")
    st.stop()

source = info.data.get("source", "")
try:
    ds = cache.dataset(source)
except data.DataError as exc:
    st.error(f"The test images of this run are not available: {exc}")
    st.stop()
if ds.fingerprint != info.data.get("fingerprint"):
    st.warning("The data at this run's source changed since it trained; images may not match its predictions.")

pages = (len(wrong) - 1) // PER_PAGE + 1
p1, p2 = st.columns([1, 4], vertical_alignment="bottom")
page = p1.number_input(f"Page (of {pages})", 1, pages, key="mis_page") if pages > 1 else 1
p2.markdown(f"**{len(wrong)}** {true} test images predicted as **{predicted}** "
            f"(of {int((preds['y_true'] == names.index(true)).sum())} {true} images).")
shown = wrong.iloc[(page - 1) * PER_PAGE: page * PER_PAGE]
for start in range(0, len(shown), COLUMNS):
    for col, row in zip(st.columns(COLUMNS), shown.iloc[start:start + COLUMNS].itertuples(), strict=False):
        if int(row.index) >= len(ds.x_test):
            col.caption(f"test #{int(row.index)} is not in the data set any more")
            continue
        image = Image.fromarray(ds.x_test[int(row.index)]).resize((32 * ZOOM, 32 * ZOOM), Image.NEAREST)
        top = evaluate.top_k(np.asarray(preds["probs"][int(row.row)], dtype=np.float32), names, 3)
        col.image(image, width="stretch")
        col.caption(f"test #{int(row.index)}  \n" + "  \n".join(f"{n}: {p:.1%}" for n, p in top))
