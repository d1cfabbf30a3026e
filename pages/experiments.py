"""Experiments: the classic studies (depth, batch norm, dropout, architectures, seed) as one action each."""

import streamlit as st

from cifar_core import charts, report, runs, specs, studies
from cifar_core.config import TrainConfig
from ui import cache, sidebar

st.title("Experiments")
st.caption("Each study queues its runs and trains them one after another in one background process. "
           "Leave or reload the page: the study goes on, and its runs appear on every other page too.")

DESCRIPTIONS = {
    "depth": "1 to 5 conv blocks of the baseline family (channels doubling from 32), with and without batch norm.",
    "batchnorm": "Each preset with and without batch normalization.",
    "dropout": "The batchnorm preset with dropout 0, 0.1, 0.25 and 0.4 after every block and in the head.",
    "architectures": "Every preset and every saved custom architecture.",
    "seed": "baseline, deeper and batchnorm under the seed notebook's protocol (Adam, batch 32, up to 30 epochs, "
            "early stopping with patience 5, validation on the test set), compared with its published figures.",
}
folder = studies.default_studies_dir(cache.runs_dir())
RESULT_FORMATS = {"test_accuracy": "%.4f", "best_val_accuracy": "%.4f", "gap": "%.4f", "seconds_per_epoch": "%.1f",
                  "wall_time": "%.0f"}


def start_panel(first_study: bool) -> None:
    with st.expander("Start a study", expanded=first_study):
        kind = st.radio("Study", studies.KINDS, horizontal=True, key="study_kind")
        st.caption(DESCRIPTIONS[kind])
        planned = studies.plan(kind, TrainConfig(), specs.saved_specs(cache.specs_folder()))
        with st.form("study"):
            c1, c2, c3 = st.columns(3)
            epochs = c1.number_input("Epochs (max)", 1, 500, 30, disabled=kind == "seed")
            subset = c2.number_input("Training subset (0 = all)", 0, 50000, 0, step=1000)
            seed = c3.number_input("Seed", 0, 2**31 - 1, 0)
            go = st.form_submit_button(f"Start the {kind} study ({len(planned)} runs)", type="primary")
        if go:
            source = sidebar.current_source()
            problem = sidebar.data_problem(source)
            if problem:
                st.error(problem)
                return
            cfg = TrainConfig(epochs=int(epochs), subset=int(subset) or None, seed=int(seed))
            study_dir = studies.create(folder, cache.runs_dir(), kind, cfg, source,
                                       specs.saved_specs(cache.specs_folder()))
            studies.launch(study_dir)
            st.session_state["study_id"] = study_dir.name
            st.rerun()


@st.fragment(run_every=3.0)
def queue_panel(study_dir) -> None:
    """The study's runs in order, with their live status."""
    study = studies.read(study_dir)
    state = studies.status(study)
    table = studies.queue(study_dir)
    done = int(table["status"].isin(["completed", "stopped"]).sum())
    st.progress(done / len(table), text=f"study **{state}** · {done}/{len(table)} runs finished")
    st.dataframe(table.drop(columns=["run_id"]), hide_index=True, width="stretch")
    c1, c2 = st.columns(2)
    if state in ("running", "queued"):
        if c1.button("Stop study", help="The run in progress stops at its next batch and keeps its best weights."):
            studies.stop(study_dir)
            st.rerun(scope="fragment")
    elif state in ("interrupted", "stopped", "failed") and done < len(table) and c1.button("Resume study",
                                                                                          type="primary"):
        try:
            studies.resume(study_dir)
        except runs.RunError as exc:
            st.error(str(exc))
        st.rerun(scope="fragment")


def results_panel(study_dir) -> None:
    study = studies.read(study_dir)
    results = studies.results(study_dir)
    if results.empty:
        st.info("Results appear here as the study's runs finish.")
        return
    for note in report.caveats(study):
        st.warning(note)
    if study["kind"] == "seed":
        st.subheader("Ours against the published seed study")
        st.dataframe(report.seed_comparison(study_dir), hide_index=True, width="stretch")
    chart_map = report.study_charts(study["kind"], results)
    st.caption("Click a point or bar, or select a row of the table, to open its run.")
    clicked = None
    for i, (name, chart) in enumerate(chart_map.items()):
        if i % 2 == 0:
            columns = st.columns(2)
        event = columns[i % 2].altair_chart(chart, width="stretch", on_select="rerun",
                                            selection_mode=charts.POINT_SELECTION, key=f"{study_dir.name}_{name}")
        points = event.selection.get(charts.POINT_SELECTION) if event and event.selection else None
        clicked = clicked or (points[0].get("run_id") if points else None)
    st.subheader("Results")
    picked = st.dataframe(results.drop(columns=["run_id"]), hide_index=True, width="stretch", on_select="rerun",
                          selection_mode="single-row", key=f"results_{study_dir.name}",
                          column_config={c: st.column_config.NumberColumn(format=f) for c, f in RESULT_FORMATS.items()})
    run_id = results.iloc[picked.selection.rows[0]]["run_id"] if picked.selection.rows else clicked
    if run_id:
        c1, c2 = st.columns(2)
        if c1.button(f"Open {run_id} in Runs"):
            st.session_state[sidebar.RUN_KEY] = run_id
            st.switch_page("pages/runs.py")
        if c2.button("See its mistakes"):
            st.session_state[sidebar.RUN_KEY] = run_id
            st.switch_page("pages/misclassified.py")
    st.download_button("Download report (HTML, charts embedded)", lambda: report.html_report(study_dir),
                       file_name=f"{study_dir.name}.html", mime="text/html", on_click="ignore")


all_studies = studies.list_studies(folder)
start_panel(first_study=not all_studies)
if not all_studies:
    st.info("No studies yet: start one above, or from a terminal with `cifar-lab study depth --subset 10000`.")
    st.stop()
ids = [s["id"] for s in all_studies]
chosen = st.session_state.get("study_id")
study_id = st.selectbox("Study", ids, index=ids.index(chosen) if chosen in ids else 0,
                        format_func=lambda i: f"{i} ({studies.status(next(s for s in all_studies if s['id'] == i))})")
study_dir = folder / study_id
queue_panel(study_dir)
results_panel(study_dir)
