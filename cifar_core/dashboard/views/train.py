"""Train: start a run as its own process, watch it live, stop it keeping its best weights."""

from dataclasses import replace
from pathlib import Path

import streamlit as st

from cifar_core import backends, data, hardware
from cifar_core.analysis import caveats, charts
from cifar_core.dashboard import cache, navigation, sidebar
from cifar_core.model import preflight, recipes, sizing, specs
from cifar_core.model.config import (
    MAX_BATCH,
    MAX_EPOCHS,
    PRECISIONS,
    RECIPES,
    VALIDATION_LABELS,
    ConfigError,
    TrainConfig,
)
from cifar_core.store import rundir, runs
from cifar_core.studies import estimates, plans

st.title("Train")
POLL_S = 5.0  # the progress line's refresh (two small files); the curves are redrawn only when an epoch ends
SIZED = "sized to the budget (fast, width picked at launch)"
SIZED_HELP = ("Sized to the budget: the run measures the fast network's widths here in a few seconds and trains the "
              "one predicted to reach the highest test accuracy in its budget.")
PROBED = "train_probed_speeds"  # the family's speeds from the page's probe: ({name: (images/s, True)}, launch s)
LAST = "train_last"  # the recipe last started, and per recipe its architecture and settings (the form's defaults)


def live_view(run_dir) -> None:
    """A training run: its header and curves, drawn once per finished epoch, and below them a progress line
    that refreshes itself. Watching must not slow the run down, so nothing heavy is redrawn between epochs."""
    info = runs.load_run(run_dir)
    metrics = cache.metrics(run_dir)
    synthetic = " · **synthetic data**" if info.is_synthetic else ""
    st.markdown(f"**{info.name}** · `{(info.meta.get('spec') or {}).get('name')}`{synthetic}")
    if not metrics.empty:
        st.vega_lite_chart(cache.chart(charts.curves_panel, charts.curves_frame({info.name: metrics})))
        best = metrics.loc[metrics["val_accuracy"].idxmax()]
        done = f"{len(metrics)} epoch{'' if len(metrics) == 1 else 's'} done"
        st.caption(f"{done} · best so far: epoch {int(best['epoch'])}, val accuracy {best['val_accuracy']:.4f}")
    progress_line(run_dir, len(metrics))


@st.fragment(run_every=POLL_S)
def progress_line(run_dir, epochs_shown: int) -> None:
    """Every couple of seconds: run.json's status and progress.json, two small files. A new epoch line (or the
    run's end) reruns the whole page once, which redraws the curves."""
    info = runs.load_run(run_dir)
    if info.status not in rundir.ACTIVE or len(cache.metrics(run_dir)) != epochs_shown:
        st.rerun()
    progress = rundir.read_progress(run_dir)
    if progress:
        st.progress(runs.progress_fraction(progress), text=f"status **{info.status}** · "
                    + runs.progress_text(progress))
    else:
        st.progress(0.0, text=f"status **{info.status}** · " + runs.starting_text(info.meta))
    steps = rundir.read_step_lines(run_dir)
    if steps:
        st.altair_chart(charts.step_loss_chart(charts.steps_frame(steps)))
    if (run_dir / rundir.STOP).exists():
        st.info(runs.stopping_text(info.meta))
    elif not cache.read_only() and st.button("Stop (keep best weights)", key="stop_run"):
        runs.stop(info)
        st.rerun(scope="fragment")


def finished_summary(run_dir) -> None:
    info = runs.load_run(run_dir)
    m = info.meta
    if info.has_results:
        epochs = m.get("epochs_run")
        st.success(f"{info.name} {info.status}: test accuracy {m['test_accuracy']:.4f}, best epoch "
                   f"{m.get('best_epoch')}, {epochs} epoch{'s' * (epochs != 1)} in {m.get('wall_time') or 0:.0f} s "
                   "of training and testing.")
        c1, c2 = st.columns(2)
        if c1.button("Browse its mistakes"):
            st.session_state[sidebar.RUN_KEY] = info.run_id
            navigation.go(navigation.MISCLASSIFIED)
        if c2.button("Compare runs"):
            navigation.go(navigation.COMPARE)
    elif info.status in ("failed", "interrupted", rundir.DAMAGED):
        st.error(f"{info.name} {info.status}: {info.damaged or m.get('error') or 'the process ended early'}. "
                 "Resume it from the Runs page; the log is there too.")


def start_form() -> None:
    """The settings of a new run, which come back as they were after it; only the button starts it (Enter in a
    field does not: a half-typed number would start a run)."""
    choices = sizing.architectures(specs.saved_specs(cache.specs_folder()))
    edited = st.session_state.get("train_spec")
    if edited:
        choices = {"(edited on Architectures)": specs.from_json(edited), **choices}
    source = sidebar.current_source()
    problem = sidebar.data_problem(source)
    if problem:
        st.warning("No data to train on yet: see the sidebar.")
    last = st.session_state.get(LAST, {})
    recipe = st.radio("Recipe", RECIPES, index=RECIPES.index(last.get("recipe", RECIPES[0])), horizontal=True,
                      key="recipe", format_func=str.capitalize)
    st.caption(recipes.DESCRIPTIONS[recipe])
    last_arch, d = last.get(recipe, (None, TrainConfig()))
    validations = list(VALIDATION_LABELS)
    validation = st.radio("Validation", validations, index=validations.index(d.validation), horizontal=True,
                          key="validation", format_func=lambda v: (f"{d.validation_size:,} " if v == "split" else "")
                          + VALIDATION_LABELS[v])
    if validation == "test":
        st.warning(caveats.SEED_PROTOCOL + " Use it only to reproduce the seed study.")
    budget_s = budget_field(d, source, problem) if recipe == "fast" else None
    with st.form("start", enter_to_submit=False):
        names = [SIZED, *choices] if recipe == "fast" else list(choices)
        default = last_arch if last_arch in names else names[0]
        arch = st.selectbox("Architecture", names, index=names.index(default), key=f"train_arch_{recipe}",
                            help=SIZED_HELP if recipe == "fast" else None)
        cfg = recipes.fast_config(d, on_gpu=bool(hardware.nvidia_gpus()), time_budget=budget_s,
                                  size_network=arch == SIZED) if recipe == "fast" else seed_fields(d)
        c6, c7, c8, c9 = st.columns(4)
        subset = c6.number_input("Training subset (0 = all)", 0, 50000, d.subset or 0, step=500, key="train_subset")
        seed = c7.number_input("Seed", 0, 2**31 - 1, d.seed, key="train_seed")
        precision = c8.selectbox("Precision", PRECISIONS, index=PRECISIONS.index(d.precision), key="train_precision",
                                 help="auto: mixed float16 on a GPU, mixed bfloat16 on a CPU with native bf16, "
                                      "float32 otherwise")
        backend = backend_field(c9, d)
        submitted = st.form_submit_button("Start training", type="primary", disabled=bool(problem))
    if submitted:
        cfg = replace(cfg, validation=validation, subset=int(subset) or None, seed=int(seed), precision=precision,
                      backend=backend)
        st.session_state[LAST] = {**last, "recipe": recipe, recipe: (arch, cfg)}
        start(specs.FAST if arch == SIZED else choices[arch], cfg, source)


def backend_field(column, d: TrainConfig) -> str:
    """Keras's backend: auto, or one installed here (its choice named in the help)."""
    options = ["auto", *backends.installed()]
    auto = backends.for_run("auto")
    return column.selectbox("Backend", options, index=options.index(d.backend) if d.backend in options else 0,
                            key="train_backend", format_func=lambda b: f"auto ({auto.name})" if b == "auto" else b,
                            help=f"Keras 3 runs the same model on TensorFlow, JAX or PyTorch. {auto.reason}.")


def seed_fields(d: TrainConfig) -> TrainConfig:
    c1, c2, c3, c4 = st.columns(4)
    epochs = c1.number_input("Epochs (max)", 1, MAX_EPOCHS, d.epochs, key="train_epochs")
    batch = c2.number_input("Batch size", 1, MAX_BATCH, d.batch_size, key="train_batch")
    lr = c3.number_input("Learning rate", 1e-6, 1.0, d.learning_rate, format="%.5f", key="train_lr")
    patience = c4.number_input("Early-stopping patience", 0, 100, d.patience, help="0 turns it off",
                               key="train_patience")
    augment = st.checkbox(f"Augment (random flips and {d.translate}-pixel shifts)", d.augment, key="train_augment")
    return TrainConfig(epochs=int(epochs), batch_size=int(batch), learning_rate=float(lr), patience=int(patience),
                       augment=augment)


def budget_field(d: TrainConfig, source: str, problem: str | None) -> float:
    """The time budget (outside the form, so the prediction below it follows each change) and what the sized
    network is predicted to reach in it, from the speeds measured here."""
    minutes = st.number_input("Time budget (minutes, whole run)", 1.0, 24 * 60.0,
                              (d.time_budget or recipes.FAST_DEFAULT_BUDGET_S) / 60, step=1.0, key="train_minutes",
                              help="The number of epochs is fitted so the run ends within it.")
    budget_s = float(minutes) * 60
    metas = [i.meta for i in runs.list_runs(cache.runs_dir())]
    measured = st.session_state.get(PROBED) or sizing.latest_speeds(metas, budget_s)
    if problem:
        return budget_s
    if measured:
        info = cache.data_summary(source)
        sizes = TrainConfig().sizes(info["train_images"], info["test_images"])
        choice = sizing.choose(measured[0], budget_s, measured[1], sizes, True,
                               sizing.latest_share(metas, sizes)).to_dict()
        where = "a speed probe" if st.session_state.get(PROBED) else "the last sized run's launch"
        st.info(f"Sized to the budget, {sizing.prediction_text(choice)}.")
        st.caption(f"For the whole data set ({sizes['train']:,} training images; a subset set below trains more "
                   f"epochs), from the speeds {where} measured here. The run measures them again at its launch, and "
                   "may pick another width.")
    else:
        st.caption("No run here has measured this machine's speed of the fast network's widths yet: a run sized to "
                   "the budget measures it at launch (a few seconds) and picks then.")
    if not cache.read_only() and st.button("Measure this machine's speed (about 30 s)", key="train_probe"):
        with st.spinner("Measuring the fast network's widths ..."):
            planned = [plans.PlannedRun(name, spec, recipes.fast_config(TrainConfig(), False, budget_s))
                       for name, spec in sizing.FAMILY.items()]
            try:
                found = estimates.probe_speeds(planned, list(sizing.FAMILY))
            except runs.RunError as exc:
                st.error(str(exc))
                return budget_s
        st.session_state[PROBED] = ({n: (s, True) for n, s in found.items()}, sizing.DEFAULT_LAUNCH_S)
        st.rerun()
    return budget_s


def start(spec: specs.ArchitectureSpec, cfg: TrainConfig, source: str) -> None:
    """Check everything, then start the run; any problem is shown and nothing is written."""
    try:
        info = cache.data_summary(source)
        preflight.check(spec, cfg, info)
        run_dir = runs.start(cache.runs_dir(), spec, cfg, info)
    except (ConfigError, runs.RunError, data.DataError) as exc:
        st.error(str(exc))
        return
    st.session_state["watch_run"] = str(run_dir)
    st.rerun()


active = runs.active_runs(cache.runs_dir())
if active:
    st.caption("A run is training. It runs in its own process: leave, reload or restart the dashboard, "
               "it carries on and this page picks it up again.")
    live_view(active[0].path)
elif cache.read_only():
    st.info("No run is training right now. Runs are started on the machine that serves this dashboard.")
else:
    watched = st.session_state.get("watch_run")
    if watched and (Path(watched) / rundir.RUN_JSON).exists():
        finished_summary(Path(watched))
    start_form()
