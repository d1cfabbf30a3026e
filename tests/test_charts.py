"""Charts a newcomer reads right: each checked in the Vega-Lite spec the dashboard sends (chart.to_dict())."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cifar_core.analysis import charts, scores
from cifar_core.engine import explain

NAMES = ["airplane", "automobile", "cat", "dog"]
LONG_NAMES = ["batchnorm-20261130-130501-first", "batchnorm-20261130-130999-second"]


def report(mistakes: int) -> dict:
    y = np.repeat(np.arange(4), 10)
    pred = y.copy()
    pred[20:20 + mistakes] = 3  # cats taken for dogs
    return scores.build_report(y, pred, NAMES)


def metrics() -> pd.DataFrame:
    return pd.DataFrame({"epoch": [1, 2], "elapsed": [1.0, 2.0], "loss": [2.0, 1.5], "val_loss": [2.1, 1.8],
                         "accuracy": [0.3, 0.5], "val_accuracy": [0.3, 0.4]})


def encodings(spec: dict) -> list[dict]:
    """Every layer's encoding in a (nested) Vega-Lite spec."""
    found = [spec["encoding"]] if "encoding" in spec else []
    for key in ("layer", "hconcat", "vconcat"):
        for part in spec.get(key, []):
            found += encodings(part)
    return found + (encodings(spec["spec"]) if "spec" in spec else [])


def test_curves_legend_draws_the_dash_of_train_and_validation_and_whole_run_names():
    spec = charts.curves_panel(charts.curves_frame({n: metrics() for n in LONG_NAMES})).to_dict()
    dashes = [e["strokeDash"] for e in encodings(spec) if "strokeDash" in e]
    assert dashes and all(d["legend"]["symbolType"] == "stroke" for d in dashes)
    marks = {layer["mark"]["type"] for part in spec["hconcat"] for layer in part["layer"] if "strokeDash" in
             layer.get("encoding", {})}
    assert marks == {"line"}, "no point marks beside the dash: the legend would draw dots, not dashes"
    assert all(e["color"]["legend"]["labelLimit"] == 0 for e in encodings(spec) if "legend" in e.get("color", {}))


def test_run_legends_show_whole_names():
    per_class = pd.concat([scores.per_class_frame(report(2)).assign(run=n) for n in LONG_NAMES])
    assert charts.per_class_chart(per_class).to_dict()["encoding"]["color"]["legend"]["labelLimit"] == 0
    curves = {n: pd.DataFrame({"confidence": [0.5], "accuracy": [0.5], "count": [1]}) for n in LONG_NAMES}
    reliability = charts.reliability_chart(curves).to_dict()
    assert {e["color"]["legend"]["labelLimit"] for e in encodings(reliability) if "legend" in e.get("color", {})} == {0}
    header = charts.confusion_row({n: scores.confusion_frame(report(2)) for n in LONG_NAMES}).to_dict()
    assert header["facet"]["column"]["header"]["labelLimit"] == 0


def test_a_run_keeps_its_colour_in_the_order_runs_were_picked_not_by_name():
    """Sorted by name, adding 'a-run' before 'b-run' would turn b-run from blue to orange on every chart."""
    picked = ["zeta", "alpha", "mid"]
    per_class = pd.concat([scores.per_class_frame(report(2)).assign(run=n) for n in picked])
    curves = charts.curves_panel(charts.curves_frame({n: metrics() for n in picked})).to_dict()
    for spec in (charts.per_class_chart(per_class).to_dict(), curves):
        scales = [e["color"]["scale"] for e in encodings(spec) if "color" in e]
        assert scales and all(s["domain"] == picked and s["scheme"] == "tableau10" for s in scales)


def test_difference_colour_means_better_or_worse_for_b_on_and_off_the_diagonal():
    """B gets 3 more cats right and so makes 3 fewer cat->dog mistakes: both cells are better for B."""
    change = scores.confusion_difference(report(5), report(2))
    chart = charts.difference_heatmap(change)
    data = chart.data.set_index(["true", "predicted"])
    assert data.loc[("cat", "cat"), "change"] == 3 and data.loc[("cat", "dog"), "change"] == -3
    assert data.loc[("cat", "cat"), "better"] == data.loc[("cat", "dog"), "better"] == 3
    color = chart.to_dict()["layer"][0]["encoding"]["color"]
    assert color["field"] == "better" and color["scale"] == {"scheme": "redblue", "domain": [-3, 3]}
    assert "better" in color["legend"]["labelExpr"] and "worse" in color["legend"]["labelExpr"]


def test_compare_confusion_matrices_can_be_clicked_a_cell_naming_its_run():
    spec = charts.confusion_row({n: scores.confusion_frame(report(2)) for n in LONG_NAMES},
                                selectable=True).to_dict()
    assert spec["params"][0]["name"] == charts.CELL_SELECTION
    assert spec["params"][0]["select"]["fields"] == ["run", "true", "predicted"]
    assert "params" not in charts.confusion_row({n: scores.confusion_frame(report(2)) for n in LONG_NAMES}).to_dict()


def test_the_shown_cell_is_outlined():
    spec = charts.confusion_heatmap(scores.confusion_frame(report(2)), highlight=("cat", "dog")).to_dict()
    frame = next(layer for layer in spec["layer"] if layer["mark"].get("stroke"))
    filters = [t["filter"] for t in frame["transform"]]
    assert {"field": "true", "equal": "cat"} in filters and {"field": "predicted", "equal": "dog"} in filters
    plain = charts.confusion_heatmap(scores.confusion_frame(report(2))).to_dict()
    assert not any(layer["mark"].get("stroke") for layer in plain["layer"])


def test_grad_cam_colour_bar_uses_the_overlay_colours():
    colors = explain.colour_bar(8)
    assert colors[0] == "#000004" and colors[-1] == "#fcffa4" and len(colors) == 8
    spec = charts.heat_scale_chart(colors).to_dict()
    assert spec["encoding"]["color"] == {"field": "colour", "scale": None, "type": "nominal"}
    assert "no evidence" in spec["encoding"]["x"]["axis"]["labelExpr"]
    assert "title" not in spec, "Streamlit drew a titled chart this short as its title alone"


def test_study_bars_start_at_zero():
    """A chance-level bar (0.1) on an axis from 0.09 looked empty."""
    results = pd.DataFrame({"family": ["baseline"] * 2, "batch_norm": [False, True], "test_accuracy": [0.45, 0.1],
                            "run_id": ["a", "b"]})
    scales = [e["y"].get("scale") for e in encodings(charts.group_bars(results, "family", "test_accuracy",
                                                                       "batch_norm").to_dict())]
    assert scales and all(scale == {"zero": True} for scale in scales)
