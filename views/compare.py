"""Compare: two to four runs side by side: metrics, curves, confusion matrices, per-class scores, differences."""

import streamlit as st

from cifar_core import caveats, charts, compare, evaluate
from ui import cache

st.title("Compare runs")
finished = cache.finished_runs()
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
st.vega_lite_chart(cache.chart("curves_panel", charts.curves_frame({i.name: cache.metrics(i.path) for i in infos}),
                                axis))

st.subheader("Confusion matrices")
normalize = st.toggle("Row-normalised (share of each true class)", value=False)
frames = {i.name: evaluate.confusion_frame(reports[i.run_id], normalize) for i in infos if reports[i.run_id]}
st.vega_lite_chart(cache.chart("confusion_row", frames, normalize, size=560 // len(infos) + 40))

st.subheader("Per-class precision, recall and F1")
per_class = compare.per_class(infos, reports)
metric = st.radio("metric", ["f1-score", "precision", "recall"], horizontal=True)
st.vega_lite_chart(cache.chart("per_class_chart", per_class, metric), width="stretch")
wide = compare.per_class_wide(per_class, metric)
st.dataframe(wide.style.format("{:.3f}").highlight_max(axis=1, color="#d4edda"), width="stretch")

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
        st.table(diff.set_index("setting"))
with c2:
    if reports[a_id] and reports[b_id] and a_id != b_id:
        change = evaluate.confusion_difference(reports[a_id], reports[b_id])
        st.vega_lite_chart(cache.chart("difference_heatmap", change, f"{b.name} minus {a.name}"))
        drop, rise = compare.biggest_changes(change)
        st.caption(f"Biggest drop: {drop['true']} → {drop['predicted']} ({drop['change']:+d}); "
                   f"biggest rise: {rise['true']} → {rise['predicted']} ({rise['change']:+d}).")
