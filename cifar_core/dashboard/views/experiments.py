"""Experiments: the classic studies (depth, batch norm, dropout, architectures, seed) as one action each, each
run once or once per seed (then as group means with their spread); and searches (search_view)."""

from dataclasses import replace
from pathlib import Path

import streamlit as st

from cifar_core.analysis import caveats, charts, stats
from cifar_core.dashboard import cache, launch, navigation, search_view, sidebar
from cifar_core.model import specs
from cifar_core.model.config import TrainConfig
from cifar_core.store import rundir, runs
from cifar_core.studies import estimates, executors, plans, records, report

st.title("Experiments")
st.caption("Each study queues its runs and trains them in one background process: one after another here, or as "
           "tasks on a Ray cluster. Leave or reload the page: the study goes on, and its runs appear on every other "
           "page too.")

folder = records.default_studies_dir(cache.runs_dir())
POLL_S = 3.0  # the study's progress line; its table and charts are redrawn only when a run's status changes
RESULT_FORMATS = {"test_accuracy": "%.4f", "best_val_accuracy": "%.4f", "gap": "%.4f", "seconds_per_epoch": "%.1f",
                  "wall_time": "%.0f"}


def start_panel(first_study: bool) -> None:
    with st.expander("Start a study", expanded=first_study):
        kind = st.radio("Study", plans.KINDS, horizontal=True, key="study_kind", format_func=plans.LABELS.get)
        st.caption(plans.DESCRIPTIONS[kind])
        choices = {**specs.PRESETS, **specs.saved_specs(cache.specs_folder())}
        if kind == "search":
            search_view.form(folder, choices, executor_ui)
            return
        arch = st.selectbox("Architecture to repeat", list(choices), key="study_arch") if kind == "seeds" else None
        with st.container(border=True):
            c1, c2, c3, c4 = st.columns(4)
            epochs = c1.number_input("Epochs (max)", 1, 500, 30, disabled=kind == "seed")
            subset = c2.number_input("Training subset (0 = all)", 0, 50000, 0, step=1000)
            seed = c3.number_input("First seed", 0, 2**31 - 1, 0)
            n_seeds = c4.number_input("Seeds per run", 1, plans.MAX_SEEDS,
                                      plans.REPRODUCE_SEEDS if kind in ("seed", "seeds") else 1,
                                      help="Each run is trained once per seed; results show the mean ± std.")
            cfg = TrainConfig(epochs=int(epochs), subset=int(subset) or None, seed=int(seed))
            seeds = plans.parse_seeds(int(n_seeds), int(seed))
            planned = plans.with_seeds(plans.plan(kind, cfg, choices, choices.get(arch)), seeds)
            executor = executor_ui()
            estimate_ui(planned)
            momentum_ui(planned)
            go = st.button(f"Start the study: {plans.LABELS[kind]} ({len(planned)} runs)", type="primary",
                           key="start_study")
        if go:
            start(kind, cfg, seeds, choices.get(arch), executor)


def executor_ui() -> executors.Executor:
    """Where the runs train: here, one after another, or as tasks on a Ray cluster (offered when Ray is installed)."""
    if not executors.ray_installed():
        return executors.Executor()
    here = st.radio("Where the runs train", ["Here, one after another", "On a Ray cluster"], horizontal=True,
                    key="study_executor") == "Here, one after another"
    if here:
        return executors.Executor()
    c1, c2, c3 = st.columns([2, 1, 1])
    address = c1.text_input("Ray address", key="ray_address", placeholder="HOST:6379, auto or ray://HOST:10001",
                            help="Empty: $RAY_ADDRESS, else a Ray started on this machine. Every node must see the "
                                 "runs folder at the same path; the study checks it before any run starts.")
    cpus = c2.number_input("CPUs per run", 0.5, 256.0, 1.0, step=0.5, key="ray_cpus")
    gpus = c3.number_input("GPUs per run", 0.0, 16.0, 0.0, step=1.0, key="ray_gpus")
    st.caption("As many runs train at once as the cluster's CPUs and GPUs allow; any duration estimated here counts "
               "one run after another.")
    return executors.Executor("ray", address.strip() or None, float(cpus), float(gpus))


def estimate_ui(planned: list) -> None:
    """How long the study may take, every run counted, from earlier runs on this machine or a short probe."""
    source = sidebar.current_source()
    if sidebar.data_problem(source):
        return
    probed = st.session_state.setdefault("probed_speeds", {})
    costs = cache.measured_costs(str(cache.runs_dir()))
    costs = replace(costs, speeds={**costs.speeds, **probed})
    found = estimates.estimate(planned, cache.data_summary(source), costs)
    unmeasured = found.inferred if found else sorted({p.spec.name for p in planned})
    if unmeasured:
        c1, c2 = st.columns([3, 1], vertical_alignment="center")
        c1.caption(estimates.unmeasured_text(unmeasured, inferred=found is not None))
        if c2.button("Measure their speed", key="probe_speeds", help="Trains each for a few batches of random "
                     "images (a few seconds each) to measure its images/s here."):
            try:
                with st.spinner(f"Measuring {', '.join(unmeasured)} ..."):
                    probed.update(estimates.probe_speeds(planned, unmeasured))
                st.rerun()
            except runs.RunError as exc:
                st.error(str(exc))  # shown until the next action: a rerun would wipe it
    if found:
        st.caption(estimates.estimate_text(found, costs, probed=bool(probed)))


def momentum_ui(planned: list) -> None:
    """Why the study's batch-norm runs get a lower momentum, when their epochs are short."""
    source = sidebar.current_source()
    note = None if sidebar.data_problem(source) else plans.lowered_momentum_note(planned,
                                                                                     cache.data_summary(source))
    if note:
        st.caption(note)


def start(kind: str, cfg: TrainConfig, seeds: list[int] | None, spec: specs.ArchitectureSpec | None,
          executor: executors.Executor) -> None:
    """Check the data and every planned run, then launch the study; a problem is shown, nothing written."""
    launch.launch_study(lambda summary: records.create(folder, cache.runs_dir(), kind, cfg, summary,
                                                       specs.saved_specs(cache.specs_folder()), seeds, spec, executor))


def queue_panel(study_dir) -> None:
    """The study's runs in order with their status, drawn when one changes; the progress line refreshes itself."""
    study = records.read(study_dir)
    state = records.status(study)
    table = records.queue(study_dir)
    done = records.finished_count(table)
    st.caption(executors.cluster_text(study))
    if state == "failed" and study.get("error"):
        st.error(study["error"])
    if study["kind"] == "search":  # its trials table below says more; the queue stays one click away
        with st.expander(f"Every run of the search ({len(table)}: trials, then the retraining)"):
            st.dataframe(table.drop(columns=["run_id"]), hide_index=True, width="stretch")
    else:
        st.dataframe(table.drop(columns=["run_id"]), hide_index=True, width="stretch")
    if state in rundir.ACTIVE:
        queue_progress(study_dir, (state, tuple(table["status"])))
    else:
        st.progress(done / len(table), text=f"study **{state}** · {done}/{len(table)} runs finished")
    if cache.read_only():
        return
    c1, c2 = st.columns(2)
    if state in rundir.ACTIVE:
        if c1.button("Stop study", help="The run in progress stops at its next batch and keeps its best weights."):
            records.stop(study_dir)
            st.rerun()
    elif state in ("interrupted", "stopped", "failed") and (done < len(table) or study["kind"] == "search") and \
            c1.button("Resume study", type="primary"):  # a search may have trials still to draw
        try:
            records.resume(study_dir)
        except runs.RunError as exc:
            st.error(str(exc))
        st.rerun()


@st.fragment(run_every=POLL_S)
def queue_progress(study_dir, shown: tuple) -> None:
    """Every few seconds: the study's state and the running run's progress. When a run's status changes, the
    whole page reruns once (queue, results and charts); nothing heavy is redrawn in between."""
    study = records.read(study_dir)
    table = records.queue(study_dir)
    if (records.status(study), tuple(table["status"])) != shown:
        st.rerun()
    done = records.finished_count(table)
    text = f"study **{shown[0]}** · {done}/{len(table)} runs finished"
    training = table[table["status"].eq("running") & table["run_id"].notna()]
    progress = rundir.read_progress(Path(study["runs_dir"]) / training["run_id"].iloc[0]) if len(training) else None
    if progress:
        text += f" · {training['name'].iloc[0]}: {runs.progress_text(progress)}"
        text += f" (and {len(training) - 1} more training)" if len(training) > 1 else ""
    st.progress(done / len(table), text=text)


def seed_table_formats(table) -> dict:
    """Accuracies to 4 places, our means of epochs and image counts to 1 (the published ones are whole),
    differences signed."""
    formats = {}
    for column in table.select_dtypes("number").columns:
        sign = "+" if "diff" in column else ""
        digits = 4 if "acc" in column else 0 if "(seed)" in column or column == "seeds" else 1
        formats[column] = st.column_config.NumberColumn(format=f"%{sign}.{digits}f")
    formats[report.DISTANCE_IN_STD] = st.column_config.NumberColumn(format="%+.2f")
    return formats


def group_difference_ui(study: dict, results) -> None:
    """Is one group really better than another? The difference of their means over seeds, with its interval."""
    groups = {k: v for k, v in stats.group_accuracies(results, plans.group_labels(study)).items() if len(v) > 1}
    if len(groups) < 2:
        return
    names = list(groups)
    g1, g2 = st.columns(2)
    a = g1.selectbox("Group A", names, index=0, key=f"group_a_{study['id']}")
    b = g2.selectbox("Group B", names, index=1, key=f"group_b_{study['id']}")
    if a != b:
        st.markdown(stats.difference_text(a, b, stats.mean_difference(groups[a], groups[b])))


def result_columns() -> dict:
    """The results table's number formats, and what its less obvious columns mean."""
    columns = {c: st.column_config.NumberColumn(format=f) for c, f in RESULT_FORMATS.items()}
    columns["gap"] = st.column_config.NumberColumn(format=RESULT_FORMATS["gap"], help=caveats.ACCURACY_GAP)
    columns["bn_settled"] = st.column_config.Column(help=caveats.BN_SETTLED)
    return columns


def results_panel(study_dir) -> None:
    study = records.read(study_dir)
    results = cache.study_results(study_dir)
    if results.empty:
        st.info("Results appear here as the study's runs finish.")
        return
    for note in caveats.for_study(study, records.finished_metas(study)):
        st.warning(note)
    if study.get("seeds"):
        st.subheader(f"Groups: mean over {len(study['seeds'])} seeds")
        st.dataframe(cache.group_summary(study_dir, results), hide_index=True, width="stretch",
                     column_config={c: st.column_config.NumberColumn(format="%.4f")
                                    for c in ("test acc mean", "test acc std", "test acc min", "test acc max")})
        group_difference_ui(study, results)
    if study["kind"] == "seed":
        st.subheader("Ours against the published seed study")
        seed_table = report.seed_comparison(study_dir)
        st.dataframe(seed_table, hide_index=True, width="stretch", column_config=seed_table_formats(seed_table))
    chart_map = cache.study_charts(study["kind"], results)
    st.caption("Click a point or bar, or select a row of the table, to open its run. " + caveats.ACCURACY_GAP)
    clicked = None
    for i, (name, chart) in enumerate(chart_map.items()):
        if i % 2 == 0:
            columns = st.columns(2)
        event = columns[i % 2].vega_lite_chart(chart, width="stretch", on_select="rerun",
                                               selection_mode=charts.POINT_SELECTION, key=f"{study_dir.name}_{name}")
        points = event.selection.get(charts.POINT_SELECTION) if event and event.selection else None
        clicked = clicked or (points[0].get("run_id") if points else None)
    for spec in cache.study_layer_charts(study_dir, study["kind"]).values():
        st.vega_lite_chart(spec, width="content")
        st.caption(caveats.LAYER_MEASURES)
    st.subheader("Results")
    picked = st.dataframe(results.drop(columns=["run_id"]), hide_index=True, width="stretch", on_select="rerun",
                          selection_mode="single-row", key=f"results_{study_dir.name}",
                          column_config=result_columns())
    run_id = results.iloc[picked.selection.rows[0]]["run_id"] if picked.selection.rows else clicked
    if run_id:
        c1, c2 = st.columns(2)
        if c1.button(f"Open {run_id} in Runs"):
            st.session_state[sidebar.RUN_KEY] = run_id
            navigation.go(navigation.RUNS)
        if c2.button("See its mistakes"):
            st.session_state[sidebar.RUN_KEY] = run_id
            navigation.go(navigation.MISCLASSIFIED)
    st.download_button("Download report (HTML, charts embedded)", lambda: report.html_report(study_dir),
                       file_name=f"{study_dir.name}.html", mime="text/html", on_click="ignore")


all_studies = records.list_studies(folder)
if not cache.read_only():
    start_panel(first_study=not all_studies)
if not all_studies:
    st.info("No studies yet: start one above, or from a terminal with `cifar-lab study depth --subset 10000`.")
    st.stop()
by_id = {s["id"]: s for s in all_studies}
ids = list(by_id)
chosen = st.session_state.get(launch.STUDY_KEY)
study_id = st.selectbox("Study", ids, index=ids.index(chosen) if chosen in ids else 0,
                        format_func=lambda i: f"{i} ({records.status(by_id[i])})")
study_dir = folder / study_id
if by_id[study_id]["status"] == rundir.DAMAGED:
    st.error(f"Study {study_id} is damaged: {by_id[study_id]['error']}. Its runs are still on the Runs page.")
    st.stop()
queue_panel(study_dir)
if search_view.is_search(by_id[study_id]):
    search_view.panel(study_dir)
else:
    results_panel(study_dir)
