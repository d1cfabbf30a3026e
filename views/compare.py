"""Compare: two to four runs side by side: metrics, curves, confusion matrices, per-class scores, differences."""

import streamlit as st

from cifar_core import caveats, charts, compare, evaluate, rundir, runs, stats
from ui import cache

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


def significance_ui() -> None:
    """Is B really better than A? McNemar's exact test on the test images one gets right and the other wrong."""
    st.subheader("Is the difference real?")
    if a_id == b_id:
        st.caption("Pick two different runs as A and B.")
        return
    try:
        result = compare.significance(a, b, cache.predictions(a.path), cache.predictions(b.path))
    except (ValueError, rundir.DamagedRun) as exc:
        st.info(f"No image-by-image test: {exc}")
        return
    c1, c2, c3, c4 = st.columns(4)
    c1.metric(f"Only {a.name} right", f"{result.only_a:,}")
    c2.metric(f"Only {b.name} right", f"{result.only_b:,}")
    c3.metric("Both right", f"{result.both:,}")
    c4.metric("p-value", f"{result.p_value:.2g}")
    (st.success if result.p_value < stats.ALPHA else st.info)(result.verdict(a.name, b.name))


significance_ui()
