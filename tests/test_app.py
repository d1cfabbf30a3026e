"""The dashboard the Streamlit way: every page through AppTest, against real tiny runs on synthetic data."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest
from conftest import APP, ROOT, SEED_STUDY_GROUP, SYNTHETIC
from streamlit.testing.v1 import AppTest

from cifar_core import data
from cifar_core.analysis import calibration, caveats, charts
from cifar_core.model.config import TrainConfig
from cifar_core.model.specs import PRESETS
from cifar_core.store import rundir, runs
from cifar_core.studies import records


@pytest.fixture
def app(app_runs, monkeypatch):
    monkeypatch.setenv("CIFAR_LAB_RUNS", str(app_runs))
    monkeypatch.setenv("CIFAR_LAB_DATA", "synthetic")
    monkeypatch.chdir(ROOT)

    def _open(page: str | None = None) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=120).run()
        if page:
            at.switch_page(f"views/{page}.py").run()
        assert not at.exception, [e.message for e in at.exception]
        return at

    return _open


def texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "success", "info", "warning", "error", "title", "subheader")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def test_sidebar_shows_the_synthetic_data_set(app):
    at = app()
    sidebar = "\n".join(str(e.value) for e in at.sidebar.caption) + "\n".join(e.value for e in at.sidebar.warning)
    assert "2,000 train" in sidebar and "Synthetic demo data" in sidebar


def test_missing_data_offers_the_fix_and_synthetic_demo(app, monkeypatch):
    monkeypatch.setenv("CIFAR_LAB_DATA", "/no/such/cifar")
    at = app()
    assert "does not exist" in at.sidebar.error[0].value and "CIFAR_LAB_DATA" in at.sidebar.error[0].value
    at.sidebar.button(key="use_synthetic").click().run()
    # AppTest drops the sidebar subtree after a rerun under st.navigation; the browser test sees it.
    assert at.session_state["data_source"] == "synthetic" == at.session_state["source_input"]
    assert not at.exception and not at.error


def test_architectures_page_updates_and_validates(app):
    at = app()
    assert at.metric[0].value == "358,346"
    at.selectbox(key="arch_choice").select("deeper").run()
    assert at.metric[0].value == "462,378"
    at.text_input(key="dense_deeper").input("128, 0").run()
    assert any("need 1 to 16,384 units (got 0)" in e.value for e in at.error) and not at.metric
    at.text_input(key="dense_deeper").input("64").run()
    assert at.metric[0].value != "462,378" and not at.error
    at.selectbox(key="arch_choice").select("batchnorm-after-relu").run()
    assert list(at.dataframe[-1].value["layer"])[1:4] == ["block1_conv", "block1_relu", "block1_bn"]


def test_architectures_save_custom_spec(app, app_runs):
    at = app()
    at.number_input(key="hdrop_baseline").set_value(0.3).run()
    at.text_input(key="save_name").input("my-net").run()
    at.button[0].click().run()
    saved = rundir.read_json(app_runs.parent / "specs" / "my-net.json")
    assert saved["head"]["dropout"] == pytest.approx(0.3)
    assert "my-net (saved)" in app().selectbox(key="arch_choice").options


def test_runs_page_lists_runs_and_damaged_dir(app):
    at = app("runs")
    assert "broken-run" in at.warning[0].value and "run.json is unreadable" in at.warning[0].value
    table = at.dataframe[0].value
    assert {"tiny-baseline", "tiny-bn"} <= set(table["name"]) and "damaged" in set(table["status"])
    assert any(m.label == "Test accuracy" for m in at.metric)
    assert "540 train · 60 validation · 500 test images" in texts(at), "the opened run says what it trained on"
    assert at.radio(key="run_view").options == ["Test set", "Epoch by epoch", "Calibration", "Inside the network"]
    at.radio(key="run_view").set_value("Calibration").run()
    ece = next(m for m in at.metric if m.label == "Expected calibration error (ECE)")
    preds = rundir.read_predictions(runs.find_run(runs.default_runs_dir(), at.session_state["run_id"]).path)
    assert ece.value == f"{calibration.run_ece(preds):.4f}" and len(at.dataframe[1].value) == 10, "per class"


def test_runs_page_redraws_the_confusion_matrix_at_any_epoch(app, app_runs):
    at = app("runs")
    at.radio(key="run_view").set_value("Epoch by epoch").run()
    run_id = at.session_state["run_id"]
    slider = at.select_slider(key=f"epoch_{run_id}")
    epochs = rundir.epoch_prediction_epochs(app_runs / run_id)
    assert slider.options == [str(e) for e in epochs] and len(epochs) >= 2
    slider.set_value(epochs[0]).run()
    y_val, y_pred = rundir.read_epoch_predictions(app_runs / run_id, epochs[0])
    assert f"Validation images at epoch {epochs[0]}: accuracy {(y_val == y_pred).mean():.4f}" in texts(at)


def test_runs_page_opens_a_damaged_run_without_crashing(app):
    at = app("runs")
    at.selectbox[0].select("broken-run").run()
    assert not at.exception and any("Damaged: run.json is unreadable" in e.value for e in at.error)


def test_compare_page(app):
    at = app("compare")
    table = at.dataframe[0].value
    assert len(table) == 2 and {"baseline", "batchnorm"} == set(table["arch"])
    diff = at.table[0].value
    assert "What changed between two models" in texts(at)
    assert "block 1 · batch norm" in set(diff.index), "settings named as a reader says them"
    assert len(at.get("vega_lite_chart")) == 7, ("curves, confusion matrices side by side, per-class bars, "
                                                 "reliability diagrams, layers by depth, difference, disagreements")
    assert "ECE" in at.dataframe[2].value.columns
    at.toggle[0].set_value(True).run()
    at.toggle(key="compare_at_epoch").set_value(True).run()
    assert not at.exception and at.select_slider(key="compare_epoch").value == 2, "the last epoch both reached"
    assert "Where they disagree" in texts(at)
    only_a = next(m for m in at.metric if m.label.startswith("Only ")).value  # McNemar's count for run A
    assert f"{only_a} images; the " in texts(at), "the gallery shows the images only A gets right"
    at.radio[-1].set_value("b").run()
    only_b = [m for m in at.metric if m.label.startswith("Only ")][1].value
    assert f"{only_b} images; the " in texts(at)
    assert "Is the difference real?" in texts(at) and "McNemar's exact test, p = " in texts(at)
    assert any(m.label == "p-value" for m in at.metric)
    assert table["test acc 95% CI"].str.fullmatch(r"0\.\d{3}–[01]\.\d{3}").all()


def test_misclassified_page_opens_on_a_mistake_the_run_makes_and_follows_top_confusions(app):
    at = app("misclassified")
    first = (at.selectbox(key="mis_true").value, at.selectbox(key="mis_pred").value)
    assert f"predicted as **{first[1]}**" in texts(at), "cat as dog, or where the run never makes it, its top mistake"
    top = next(b for b in at.button if b.key and b.key.startswith("top_"))
    true, predicted = top.key.split("_")[1:]
    top.click().run()
    assert at.selectbox(key="mis_true").value == true and at.selectbox(key="mis_pred").value == predicted
    assert f"predicted as **{predicted}**" in texts(at) or f"No {true} image" in texts(at)


def test_misclassified_page_explains_with_grad_cam_and_feature_maps(app):
    at = app("misclassified")
    top = next(b for b in at.button if b.key and b.key.startswith("top_"))
    top.click().run()
    shown = len(at.get("image"))
    at.toggle(key="mis_cam").set_value(True).run()
    assert not at.exception and not at.error
    assert at.selectbox(key=f"mis_layer_{at.session_state['mis_run']}").value == "block3_relu"
    assert "What each layer responds to" in texts(at)
    assert len(at.get("image")) >= shown + 1, "the gallery with Grad-CAM, the chosen image and its layers"
    scales = [c for c in at.get("vega_lite_chart")
              if json.loads(c.proto.spec).get("encoding", {}).get("color", {}).get("field") == "colour"]
    assert len(scales) == 1 and caveats.GRAD_CAM_SCALE in texts(at), "the heat maps' colours are explained"


def test_train_page_form_and_test_protocol_warning(app):
    at = app("train")
    assert at.button or at.get("form")
    at.radio(key="validation").set_value("test").run()
    assert any("optimistic" in w.value for w in at.warning)


def test_train_page_fast_recipe_asks_for_a_time_budget(app):
    at = app("train")
    at.radio(key="recipe").set_value("fast").run()
    assert not at.exception
    assert any("Time budget" in n.label for n in at.number_input)
    assert at.selectbox[0].value.startswith("sized to the budget") and "fast" in at.selectbox[0].options


def test_train_page_predicts_the_sized_network_before_starting(app, tmp_path, monkeypatch):
    """From the speeds the last sized run measured at its launch: the network, the accuracy, the budget."""
    from cifar_core.model import recipes

    monkeypatch.setenv("CIFAR_LAB_RUNS", str(tmp_path))
    run_dir = runs.create_run(tmp_path, PRESETS["fast"], recipes.fast_config(TrainConfig(), False, 120, True),
                              SYNTHETIC)
    measured = [{"network": n, "images_per_s": v, "measured": True} for n, v in (("fast-w0.25", 4000.0),
                                                                                 ("fast-w0.5", 2500.0))]
    sizes = TrainConfig().sizes(*data.SYNTHETIC_SIZES)
    runs.update_run(run_dir, launched=time.time(), budget_choice={"candidates": measured, "elapsed_s": 12.0},
                    sustained_share=0.5, sizes=sizes)
    at = app("train")
    at.radio(key="recipe").set_value("fast").run()
    at.number_input(key="train_minutes").set_value(2.0).run()
    said = next(i.value for i in at.info if "predicted" in i.value)
    assert re.search(r"predicted: (about|at least) 0\.\d\d in 2 min with fast-w0\.(25|5) ", said), said
    assert "only indicative" in said, "synthetic data: not what the curves were measured on"
    assert "at 50% of the probed speed, as the last sized run here sustained" in said


def test_train_page_reattaches_to_a_live_run_and_picks_up_new_metrics(app, tmp_path, monkeypatch):
    """In a runs folder of its own: a live run in the shared one would turn every other Train page test's form
    into this run's progress."""
    monkeypatch.setenv("CIFAR_LAB_RUNS", str(tmp_path))
    run_dir = runs.create_run(tmp_path, PRESETS["baseline"], TrainConfig(epochs=300, patience=0), SYNTHETIC,
                              name="live-run")
    pid = runs.launch(run_dir)
    try:
        deadline = time.monotonic() + 120
        while len(rundir.read_metric_lines(run_dir)) < 1:
            assert time.monotonic() < deadline, (run_dir / "log.txt").read_text()
            time.sleep(0.1)
        at = app("train")
        assert "live-run" in texts(at) and at.get("progress")
        shown = int(re.search(r"(\d+) epochs? done", texts(at)).group(1))
        while len(rundir.read_metric_lines(run_dir)) <= shown:
            time.sleep(0.1)
        before = len(rundir.read_metric_lines(run_dir))
        at.run()
        now = int(re.search(r"(\d+) epochs? done", texts(at)).group(1))
        assert shown < before <= now <= len(rundir.read_metric_lines(run_dir))
        shown_charts = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
        assert sum("hconcat" in c for c in shown_charts) == 1, "loss and accuracy in one chart"
        assert any("within epochs" in json.dumps(c.get("title")) for c in shown_charts), "the loss within epochs"
        at.button(key="stop_run").click().run()
        assert runs.wait(run_dir, timeout=120) == "stopped"
    finally:
        if runs.process_alive(pid):
            os.kill(pid, 9)


def test_experiments_page_without_studies_offers_to_start_one(app):
    at = app("experiments")
    assert at.title[0].value == "Experiments" and "No studies yet" in texts(at)
    at.radio(key="study_kind").set_value("dropout").run()
    assert any("study: dropout (4 runs)" in b.label for b in at.button)
    next(n for n in at.number_input if n.label == "Seeds per run").set_value(2).run()
    assert any("study: dropout (8 runs)" in b.label for b in at.button)
    assert "About " in texts(at) and "for the 8 runs" in texts(at), "no dropout run here: inferred, still counted"
    at.radio(key="study_kind").set_value("seeds").run()
    assert at.selectbox(key="study_arch").value == "baseline" and not at.exception
    assert "About " in texts(at), "tiny-baseline's speed gives an estimate"


def test_experiments_page_offers_a_ray_cluster_and_checks_its_address_first(app):
    at = app("experiments")
    at.radio(key="study_kind").set_value("dropout").run()
    at.radio(key="study_executor").set_value("On a Ray cluster").run()
    at.text_input(key="ray_address").set_value("127.0.0.1:1").run()
    at.button(key="start_study").click().run()
    assert "Nothing answers at 127.0.0.1:1" in at.error[0].value and "ray start --head" in at.error[0].value
    assert "No studies yet" in texts(at), "a study that cannot reach its cluster is not created"


def test_experiments_page_measures_an_unknown_speed_with_a_short_probe(app):
    at = app("experiments")
    at.radio(key="study_kind").set_value("seed").run()
    assert "No earlier run of deeper" in texts(at), "baseline and batchnorm trained here; deeper never did"
    at.button(key="probe_speeds").click().run()
    assert not at.exception and not at.error
    assert set(at.session_state["probed_speeds"]) == {"deeper"} and at.session_state["probed_speeds"]["deeper"] > 0
    assert "from a short probe and earlier runs here" in texts(at) and "No earlier run" not in texts(at)


@SEED_STUDY_GROUP
def test_experiments_page_shows_a_real_study(app, seed_study, monkeypatch):
    study_dir, _ = seed_study
    monkeypatch.setenv("CIFAR_LAB_RUNS", records.read(study_dir)["runs_dir"])
    at = app("experiments")
    queue = at.dataframe[0].value
    assert list(queue["status"]) == ["completed"] * 3 and list(queue["arch"]) == ["baseline", "deeper", "batchnorm"]
    published = at.dataframe[1].value
    assert list(published["test acc (seed)"]) == [0.7243, 0.7016, 0.7687]
    assert len(at.get("vega_lite_chart")) == 2 and len(at.dataframe[2].value) == 3
    assert caveats.SEED_PROTOCOL in texts(at) and caveats.SYNTHETIC in texts(at)


def test_no_page_imports_tensorflow(app_runs):
    """No page builds a model to open: each opens (app and sidebar included) in one fresh interpreter, which must
    end with neither TensorFlow nor Keras imported."""
    code = ("import sys; from streamlit.testing.v1 import AppTest\n"
            "for page in ('architectures', 'train', 'runs', 'compare', 'misclassified', 'experiments'):\n"
            f"    at = AppTest.from_file({str(APP)!r}, default_timeout=60).run()\n"
            "    at.switch_page(f'views/{page}.py').run()\n"
            "    assert not at.exception, (page, [e.message for e in at.exception])\n"
            "    heavy = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]\n"
            "    assert not heavy, (page, heavy[:5])\n")
    env = {**os.environ, "CIFAR_LAB_RUNS": str(app_runs), "CIFAR_LAB_DATA": "synthetic", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def chart_spec(at: AppTest, key: str) -> dict:
    return json.loads(next(c for c in at.get("vega_lite_chart") if c.proto.id.endswith(f"-{key}")).proto.spec)


def click_cell(at: AppTest, key: str, cell: dict) -> AppTest:
    """What the browser sends when a confusion cell of the chart with `key` is clicked: AppTest has no chart clicks,
    so the chart's selection goes in with the other widgets' states."""
    chart = next(c for c in at.get("vega_lite_chart") if c.proto.id.endswith(f"-{key}"))
    states = at._tree.get_widget_states()
    state = states.widgets.add()
    state.id = chart.proto.id
    state.string_value = json.dumps({"selection": {charts.CELL_SELECTION: [cell]}})
    return at._run(widget_state=states)


def outlined(spec: dict) -> tuple[str, str]:
    """The (true, predicted) cell a confusion matrix outlines."""
    frame = next(layer for layer in spec["layer"] if layer["mark"].get("stroke"))
    equal = {t["filter"]["field"]: t["filter"]["equal"] for t in frame["transform"]}
    return equal["true"], equal["predicted"]


def test_misclassified_outlines_the_cell_it_shows_and_a_click_moves_it(app):
    at = app("misclassified")
    run_id = at.session_state["mis_run"]
    assert outlined(chart_spec(at, f"cm_{run_id}_cat_dog")) == ("cat", "dog")
    click_cell(at, f"cm_{run_id}_cat_dog", {"true": "dog", "predicted": "cat"})
    assert not at.exception
    assert (at.selectbox(key="mis_true").value, at.selectbox(key="mis_pred").value) == ("dog", "cat")
    assert outlined(chart_spec(at, f"cm_{run_id}_dog_cat")) == ("dog", "cat"), "outlined in the same rerun"
    at.selectbox(key="mis_true").select("cat").run()
    click_cell(at, f"cm_{run_id}_cat_cat", {"true": "dog", "predicted": "cat"})
    assert at.selectbox(key="mis_true").value == "dog", "clicking the cell clicked before still opens it"


def test_compare_confusion_cell_opens_misclassified_on_that_run_and_pair(app):
    at = app("compare")
    picked = at.multiselect(key="compare_runs").value
    name = runs.load_run(runs.default_runs_dir() / picked[1]).name
    click_cell(at, f"compare_cm_{'_'.join(picked)}", {"run": name, "true": "cat", "predicted": "dog"})
    assert not at.exception
    assert at.title[0].value == "Misclassified images"
    assert at.selectbox(key="mis_run").value == picked[1]
    assert (at.selectbox(key="mis_true").value, at.selectbox(key="mis_pred").value) == ("cat", "dog")
    assert outlined(chart_spec(at, f"cm_{picked[1]}_cat_dog")) == ("cat", "dog")


def test_runs_confusion_cell_opens_misclassified(app):
    at = app("runs")
    run_id = at.session_state["run_id"]
    click_cell(at, f"run_cm_{run_id}", {"true": "bird", "predicted": "frog"})
    assert not at.exception and at.title[0].value == "Misclassified images"
    assert at.selectbox(key="mis_run").value == run_id
    assert (at.selectbox(key="mis_true").value, at.selectbox(key="mis_pred").value) == ("bird", "frog")


def test_runs_page_figures_read_right(app):
    at = app("runs")
    per_class = at.dataframe[1].value
    assert per_class["support"].dtype.kind == "i", "support is a count of images"
    at.radio(key="run_view").set_value("Calibration").run()
    assert caveats.CLASSWISE_ECE in texts(at)


def test_compare_says_there_are_no_other_differences(app):
    at = app("compare")
    assert "No other differences" in texts(at)
    assert "(none)" not in at.table[0].value.to_string()
    p_value = next(m for m in at.metric if m.label == "p-value").value
    assert p_value != "0" and (p_value.startswith("< ") or float(p_value) > 0)


def test_train_form_never_submits_on_enter_and_comes_back_with_the_last_settings(app, tmp_path, monkeypatch):
    """In a runs folder of its own (a live run would turn the other Train tests' form into its progress)."""
    monkeypatch.setenv("CIFAR_LAB_RUNS", str(tmp_path))
    at = app("train")
    assert at.get("form")[0].proto.form.enter_to_submit is False
    at.number_input(key="train_epochs").set_value(1)
    at.number_input(key="train_subset").set_value(500)
    at.number_input(key="train_patience").set_value(0)
    assert at.selectbox(key="train_backend").options[:2] == ["auto (tensorflow)", "tensorflow"]
    at.selectbox(key="train_backend").set_value("tensorflow")
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception and not at.error
    [run] = runs.list_runs(tmp_path)
    assert run.meta["config"]["backend"] == "tensorflow"
    assert runs.wait(run.path, timeout=300) == "completed", (run.path / "log.txt").read_text()
    at.run()
    assert "completed: test accuracy" in texts(at), "the finished run's summary, above the form again"
    assert at.number_input(key="train_epochs").value == 1
    assert at.number_input(key="train_subset").value == 500
    assert at.number_input(key="train_patience").value == 0
    assert at.selectbox(key="train_backend").value == "tensorflow"
