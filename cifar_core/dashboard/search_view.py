"""The Experiments page's search: a small form for the space, and a search's trials (sortable), best-so-far curve,
parallel coordinates, importance of each setting, and the seeds table (preset against best on the test set)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import streamlit as st

from cifar_core.analysis import caveats, charts
from cifar_core.dashboard import cache, launch, navigation, sidebar
from cifar_core.model import space, specs
from cifar_core.model.config import TrainConfig
from cifar_core.store import rundir, runs
from cifar_core.studies import executors, records, report, search, search_results

TRIAL_FORMATS = {search.VAL: st.column_config.NumberColumn(search.VAL, format="%.4f", help="best validation accuracy "
                                                           "of the trial (the search never reads the test set)"),
                 "lr": st.column_config.NumberColumn(format="%.3g"),
                 "width": st.column_config.NumberColumn(format="%.3g"),
                 "dropout": st.column_config.NumberColumn(format="%.3f"),
                 "weight_decay": st.column_config.NumberColumn(format="%.3g"),
                 "label_smoothing": st.column_config.NumberColumn(format="%.3f")}


def form(folder: Path, choices: dict[str, specs.ArchitectureSpec],
         executor_ui: Callable[[], executors.Executor]) -> None:
    """The settings of a new search, checked as they are typed; Start creates and launches it."""
    arch = st.selectbox("Architecture to search", list(choices), key="search_arch")
    text = st.text_input("Space", space.EXAMPLE, key="search_space",
                         help="key=low..high, key=low..high:log or key=a|b|c, separated by commas. Keys: "
                              + "; ".join(f"{k.name} ({k.help})" for k in space.KEYS.values()))
    found = None
    try:
        found = space.parse(text)
        preview = space.preview_text(choices[arch], found)
        if preview:
            st.caption(preview)
    except space.SpaceError as exc:
        st.error(str(exc))
    with st.container(border=True):
        c1, c2, c3, c4 = st.columns(4)
        trials = c1.number_input("Trials", 1, search.MAX_TRIALS, 20, key="search_trials")
        minutes = c2.number_input("Time budget (min, 0 = none)", 0, 7 * 24 * 60, 0, key="search_minutes",
                                  help="No trial starts that the trials so far say would end past it.")
        seeds = c3.number_input("Seeds for the best", 2, 20, search.DEFAULT_SEEDS, key="search_seeds",
                                help="The best settings and the preset are retrained with this many fresh seeds, "
                                     "and only then tested.")
        pruner = c4.selectbox("Pruner", search.PRUNERS, key="search_pruner",
                              help="median: a trial below the median of earlier trials at the same epoch stops; "
                                   "halving: successive halving; none: every trial trains its course.")
        d1, d2, d3 = st.columns(3)
        epochs = d1.number_input("Epochs per trial (max)", 1, 500, 30, key="search_epochs")
        subset = d2.number_input("Training subset (0 = all)", 0, 50000, 0, step=1000, key="search_subset")
        seed = d3.number_input("Seed of the trials", 0, 2**31 - 1, 0, key="search_seed")
        executor = executor_ui()
        go = st.button(f"Start the search ({int(trials)} trials, then {2 * int(seeds)} runs)", type="primary",
                       key="start_search", disabled=found is None)
    if go and found is not None:
        settings = search.Settings(found.text(), int(trials), float(minutes) * 60 or None, int(seeds), pruner)
        config = TrainConfig(epochs=int(epochs), subset=int(subset) or None, seed=int(seed))
        start(folder, choices[arch], config, settings, executor)


def start(folder: Path, spec: specs.ArchitectureSpec, config: TrainConfig, settings: search.Settings,
          executor: executors.Executor) -> None:
    """Check everything, create and launch the search; a problem is shown and nothing is written."""
    launch.launch_study(lambda summary: search.create(folder, cache.runs_dir(), spec, config, summary, settings,
                                                      executor))


@st.cache_data(show_spinner=False, max_entries=8)
def _importances(study_dir: str, stamp: int):
    return search_results.importances(Path(study_dir))


def importances(study_dir: Path):
    """Optuna's importance estimate, computed again only when its record changes."""
    stamps = [p.stat().st_mtime_ns for p in study_dir.glob("optuna.*")]
    return _importances(str(study_dir), max(stamps, default=0))


def panel(study_dir: Path) -> None:
    """What a search has found so far, and what its retraining says on the test set."""
    study = records.read(study_dir)
    info = study["search"]
    budget = f", time budget {runs.format_duration(info['time_budget'])}" if info.get("time_budget") else ""
    st.caption(f"Space: `{info['space']}` · {info['trials']} trials of {study['search']['arch']['name']}{budget} · "
               f"pruner: {info['pruner']} · {runs.format_duration(info.get('elapsed_s') or 0)} searched · "
               f"{search_results.progress_text(study)}")
    for note in caveats.for_study(study, records.finished_metas(study)):
        st.warning(note)
    trials = search_results.trials_table(study)
    if trials.empty:
        st.info("Trials appear here as the search samples them.")
        return
    st.markdown(search_results.best_text(study) or "No trial has completed yet.")
    st.subheader("Trials")
    st.caption("Each trial is an ordinary run (open it below). Sorted by any column: click its header. The search "
               "reads validation accuracy only; a pruned trial stopped after the epoch shown, its epochs kept.")
    picked = st.dataframe(trials.drop(columns=["run_id"]), hide_index=True, width="stretch", on_select="rerun",
                          selection_mode="single-row", key=f"trials_{study_dir.name}", column_config=TRIAL_FORMATS)
    run_id = trials.iloc[picked.selection.rows[0]]["run_id"] if picked.selection.rows else None
    clicked = _charts(study_dir, study, trials)
    seeds = search_results.seeds_table(study)
    if not seeds.empty:
        st.subheader("Seeds: the preset against the best settings")
        st.caption("Both retrained over the same fresh seeds (not the seed the search used), then tested: the only "
                   "test-set figures of the search.")
        st.dataframe(search_results.seeds_summary(seeds), hide_index=True, width="stretch",
                     column_config={c: st.column_config.NumberColumn(format="%.4f")
                                    for c in ("test acc mean", "test acc std", "min", "max")})
        chosen = st.dataframe(seeds.drop(columns=["run_id"]), hide_index=True, width="stretch", on_select="rerun",
                              selection_mode="single-row", key=f"seeds_{study_dir.name}",
                              column_config={"test acc": st.column_config.NumberColumn(format="%.4f"),
                                             "best val acc": st.column_config.NumberColumn(format="%.4f")})
        run_id = seeds.iloc[chosen.selection.rows[0]]["run_id"] if chosen.selection.rows else run_id
        gain = search_results.gain_text(seeds)
        st.markdown(gain or "Whether the gain is real needs two finished seeds of each.")
    _open_buttons(run_id or clicked)
    st.download_button("Download report (HTML, charts embedded)", lambda: report.html_report(study_dir),
                       file_name=f"{study_dir.name}.html", mime="text/html", on_click="ignore", key="search_report")


def _charts(study_dir: Path, study: dict, trials) -> str | None:
    """Parallel coordinates across the page, then best so far beside the importance; the run of a clicked point."""
    done = trials[trials[search.VAL].notna()]
    if done.empty:
        return None
    frame = search_results.parallel_frame(study, trials)
    st.vega_lite_chart(charts.parallel_coordinates_chart(frame, search_results.axis_labels(study),
                                                         search_results.axis_order(study), width=720).to_dict())
    c1, c2 = st.columns(2)
    event = c1.vega_lite_chart(charts.best_so_far_chart(search_results.best_so_far(trials), width=330).to_dict(),
                               on_select="rerun", selection_mode=charts.POINT_SELECTION, key=f"best_{study_dir.name}")
    importance = importances(study_dir)
    if importance.empty:
        c2.caption("The importance of each setting appears once two trials have completed.")
    else:
        c2.vega_lite_chart(charts.importance_chart(importance, width=300).to_dict(), width="content")
        c2.caption("Optuna's fANOVA estimate from the completed trials: how much of their validation accuracy each "
                   "setting explains. With few trials it is rough.")
    points = event.selection.get(charts.POINT_SELECTION) if event and event.selection else None
    return points[0].get("run_id") if points else None


def _open_buttons(run_id: str | None) -> None:
    if not run_id:
        return
    c1, c2 = st.columns(2)
    if c1.button(f"Open {run_id} in Runs", key="search_open"):
        st.session_state[sidebar.RUN_KEY] = run_id
        navigation.go(navigation.RUNS)
    if c2.button("See its mistakes", key="search_mistakes"):
        st.session_state[sidebar.RUN_KEY] = run_id
        navigation.go(navigation.MISCLASSIFIED)


def is_search(study: dict) -> bool:
    return study.get("kind") == search.KIND and study.get("status") != rundir.DAMAGED
