"""Altair chart builders: pure functions of DataFrames, shared by the dashboard and the reports."""

from __future__ import annotations

import altair as alt
import pandas as pd

CELL_SELECTION = "cell"
POINT_SELECTION = "point"
BAR_SELECTION = "bar"
# A fixed-size chart's width and height are its plot's, with axis labels around it; Streamlit's default fits
# labels and all into that size, which squeezes a confusion matrix under its rotated class names.
PAD = alt.AutoSizeParams(type="pad")
# Run names share long prefixes ("batchnorm-20261130-13..."): a legend shows them whole.
RUN_LEGEND = alt.Legend(labelLimit=0)


def run_color(frame: pd.DataFrame, field: str = "run", legend: alt.Legend | None = RUN_LEGEND, **kwargs) -> alt.Color:
    """One hue per run (not shades of one blue), given in the order the runs first appear in `frame` (the order they
    were picked), not sorted by name: a run keeps its colour when another is added, and across a page's charts."""
    domain = list(dict.fromkeys(frame[field])) if field in frame else []
    scale = alt.Scale(scheme="tableau10", domain=domain) if domain else alt.Scale(scheme="tableau10")
    return alt.Color(f"{field}:N", legend=legend, scale=scale, **kwargs)


def pick_run() -> alt.Parameter:
    """Click selection of one run (by run_id) on a study chart."""
    return alt.selection_point(name=POINT_SELECTION, fields=["run_id"], on="click")


def curves_frame(metrics: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per-run metrics -> long form (run, epoch, elapsed, metric, split, value) for overlaid curves."""
    parts = []
    for run, df in metrics.items():
        if df.empty:
            continue
        for metric in ("loss", "accuracy"):
            for split, col in (("train", metric), ("validation", f"val_{metric}")):
                if col in df:
                    parts.append(pd.DataFrame({"run": run, "epoch": df["epoch"], "elapsed": df["elapsed"],
                                               "metric": metric, "split": split, "value": df[col]}))
    columns = ["run", "epoch", "elapsed", "metric", "split", "value"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def curves_chart(long: pd.DataFrame, metric: str, x: str = "epoch", height: int = 260) -> alt.LayerChart:
    """Train (dashed) and validation (solid) curves of one metric, one colour per run. The points are a layer of
    their own so that the split's legend draws line samples, which show the dash that tells the two apart."""
    title = {"epoch": "epoch", "elapsed": "wall-clock seconds"}[x]
    base = alt.Chart(long[long["metric"] == metric]).encode(
        x=alt.X(f"{x}:Q", title=title, axis=alt.Axis(tickMinStep=1, format="d")),
        y=alt.Y("value:Q", title=metric, scale=alt.Scale(zero=False)),
        color=run_color(long, title="run"),
    )
    dash = alt.StrokeDash("split:N", title="split", sort=["validation", "train"],
                          legend=alt.Legend(symbolType="stroke", symbolSize=400, symbolStrokeWidth=2))
    lines = base.mark_line().encode(strokeDash=dash)
    points = base.mark_point(filled=True, size=30).encode(
        detail="split:N",
        tooltip=["run", "split", "epoch", alt.Tooltip("elapsed:Q", format=".0f"), alt.Tooltip("value:Q", format=".4f")],
    )
    return (lines + points).properties(height=height, title=metric)


def steps_frame(steps: list[dict]) -> pd.DataFrame:
    """steps.jsonl's points with their place in training in epochs (2.5: halfway through the third epoch)."""
    frame = pd.DataFrame(steps, columns=["epoch", "batch", "batches", "loss", "accuracy"])
    return frame.assign(position=frame["epoch"] - 1 + frame["batch"] / frame["batches"].clip(lower=1))


def step_loss_chart(frame: pd.DataFrame, width: int = 690, height: int = 180) -> alt.Chart:
    """The training loss within epochs, each point the mean over the few seconds of batches since the last."""
    return alt.Chart(frame).mark_line(point=alt.OverlayMarkDef(size=15)).encode(
        x=alt.X("position:Q", title="epochs of training", scale=alt.Scale(zero=True)),
        y=alt.Y("loss:Q", title="training loss", scale=alt.Scale(zero=False)),
        tooltip=["epoch", "batch", alt.Tooltip("loss:Q", format=".4f"), alt.Tooltip("accuracy:Q", format=".3f")],
    ).properties(width=width, height=height, title="training loss within epochs (a point every few seconds)",
                 autosize=PAD)


def curves_panel(long: pd.DataFrame, x: str = "epoch", width: int = 330, height: int = 240) -> alt.HConcatChart:
    """Loss and accuracy side by side as one chart: the browser builds one view instead of two."""
    return alt.hconcat(curves_chart(long, "loss", x, height).properties(width=width),
                       curves_chart(long, "accuracy", x, height).properties(width=width))


def confusion_heatmap(frame: pd.DataFrame, normalize: bool = False, title: str = "", size: int = 330,
                      selectable: bool = False, alone: bool = True,
                      highlight: tuple[str, str] | None = None) -> alt.Chart:
    """Annotated confusion matrix (rows true, columns predicted) from evaluate.confusion_frame; `alone=False`
    for one of several side by side; `highlight` outlines one (true, predicted) cell, the one being shown."""
    order = list(dict.fromkeys(frame["true"]))
    fmt = ".2f" if normalize else "d"
    base = alt.Chart().encode(
        x=alt.X("predicted:N", sort=order, title="predicted", axis=alt.Axis(labelOverlap=False)),
        y=alt.Y("true:N", sort=order, title="true", axis=alt.Axis(labelOverlap=False)),
    )
    rect = base.mark_rect().encode(
        color=alt.Color("value:Q", scale=alt.Scale(scheme="blues"), legend=None),
        tooltip=["true", "predicted", "count", alt.Tooltip("rate:Q", format=".1%")],
    )
    if selectable:
        rect = rect.add_params(pick_cell(frame))
    text = base.mark_text(fontSize=10).encode(
        text=alt.Text("value:Q", format=fmt),
        color=alt.condition(f"datum.value > {frame['value'].max() / 2 or 1}", alt.value("white"), alt.value("black")),
    )
    layers = [rect, text] + ([outline(base, *highlight)] if highlight else [])
    chart = alt.layer(*layers, data=frame).properties(width=size, height=size, title=title)
    return chart.properties(autosize=PAD) if alone else chart


def pick_cell(frame: pd.DataFrame) -> alt.Parameter:
    """Click selection of one confusion cell: its true and predicted class, and its run where several are shown."""
    fields = [c for c in ("run", "true", "predicted") if c in frame]
    return alt.selection_point(name=CELL_SELECTION, fields=fields, on="click")


def outline(base: alt.Chart, true: str, predicted: str) -> alt.Chart:
    """A thick frame around one cell of a matrix drawn from `base`."""
    return base.transform_filter(alt.FieldEqualPredicate(field="true", equal=true)).transform_filter(
        alt.FieldEqualPredicate(field="predicted", equal=predicted)).mark_rect(
        fillOpacity=0, stroke="#ff7f0e", strokeWidth=3)


def confusion_row(frames: dict[str, pd.DataFrame], normalize: bool = False, size: int = 300,
                  selectable: bool = False) -> alt.FacetChart:
    """Several runs' confusion matrices side by side in one chart, titled by run (names whole); `selectable`
    lets a click pick a cell, named by its run, true and predicted class."""
    long = pd.concat([frame.assign(run=title) for title, frame in frames.items()], ignore_index=True)
    matrix = confusion_heatmap(long, normalize, size=size, selectable=selectable, alone=False)
    header = alt.Header(title=None, labelLimit=0, labelFontSize=12, labelFontWeight="bold")
    return matrix.facet(column=alt.Column("run:N", sort=list(frames), header=header))


def difference_heatmap(diff: pd.DataFrame, title: str = "", size: int = 360) -> alt.Chart:
    """B - A confusion counts (the numbers), coloured by what the change means for B: blue where B does better
    (more images right on the diagonal, fewer mistakes off it), red where it does worse."""
    order = list(dict.fromkeys(diff["true"]))
    better = diff.assign(better=diff["change"].where(diff["true"] == diff["predicted"], -diff["change"]))
    limit = max(1, int(better["better"].abs().max()))
    legend = alt.Legend(title=["B against A", "(images)"], values=[-limit, 0, limit],
                        labelExpr="datum.value > 0 ? 'better (' + datum.value + ')' : "
                                  "datum.value < 0 ? 'worse (' + -datum.value + ')' : 'same'")
    base = alt.Chart(better).encode(x=alt.X("predicted:N", sort=order), y=alt.Y("true:N", sort=order))
    rect = base.mark_rect().encode(
        color=alt.Color("better:Q", scale=alt.Scale(scheme="redblue", domain=[-limit, limit]), legend=legend),
        tooltip=["true", "predicted", alt.Tooltip("a:Q", title="A"), alt.Tooltip("b:Q", title="B"),
                 alt.Tooltip("change:Q", title="B - A", format="+d")],
    )
    text = base.mark_text(fontSize=10).encode(
        text=alt.Text("change:Q", format="+d"),
        color=alt.condition(f"abs(datum.better) > {limit / 2}", alt.value("white"), alt.value("black")))
    return (rect + text).properties(width=size, height=size, title=title, autosize=PAD)


def per_class_chart(per_class: pd.DataFrame, metric: str = "f1-score", height: int = 260) -> alt.Chart:
    """Grouped bars of one per-class metric; `per_class` has columns run, class and the metric."""
    order = list(dict.fromkeys(per_class["class"]))
    return alt.Chart(per_class).mark_bar().encode(
        x=alt.X("class:N", sort=order, title=None),
        xOffset="run:N",
        y=alt.Y(f"{metric}:Q", scale=alt.Scale(domain=[0, 1]), title=metric),
        color=run_color(per_class),
        tooltip=["run", "class", alt.Tooltip(f"{metric}:Q", format=".3f")],
    ).properties(height=height, title=f"per-class {metric}")


def study_chart(results: pd.DataFrame, x: str, y: str, color: str | None = None, title: str = "",
                x_title: str | None = None, y_title: str | None = None, height: int = 260) -> alt.Chart:
    """A study result against a setting (depth, dropout, ...): the mean over seeds as a line, its standard
    deviation as error bars, and each run as a faint point (click one to open it)."""
    x_enc = alt.X(f"{x}:O", title=x_title or x)
    y_scale = alt.Scale(zero=False)
    colors = {"color": alt.Color(f"{color}:N")} if color else {}
    base = alt.Chart(results)
    lines = base.mark_line().encode(x=x_enc, y=alt.Y(f"mean({y}):Q", title=y_title or y, scale=y_scale), **colors)
    y_raw = alt.Y(f"{y}:Q", title=y_title or y, scale=y_scale)  # one title for the layers' shared axis
    bars = base.mark_errorbar(extent="stdev").encode(x=x_enc, y=y_raw, **colors)
    points = base.mark_point(size=70, filled=True, opacity=0.45).encode(
        x=x_enc, y=y_raw, **colors,
        tooltip=[c for c in ("run", "seed", x, y, color) if c and c in results]).add_params(pick_run())
    return (lines + bars + points).properties(width=420, height=height, title=title)


def group_bars(results: pd.DataFrame, group: str, y: str, offset: str | None = None, title: str = "",
               y_title: str | None = None, height: int = 260) -> alt.Chart:
    """One bar per group (and `offset` within it) at the mean over seeds, with standard-deviation error bars
    and each run as a faint point (click one to open it)."""
    by = {"x": alt.X(f"{group}:N", title=None)}
    if offset:
        by |= {"xOffset": f"{offset}:N", "color": f"{offset}:N"}
    base = alt.Chart(results)
    scale = alt.Scale(zero=True)  # a bar's length is its value: an axis from 0.09 made chance-level bars look empty
    title = y_title or y
    bars = base.mark_bar(opacity=0.8).encode(**by, y=alt.Y(f"mean({y}):Q", title=title, scale=scale))
    spread = base.mark_errorbar(extent="stdev", color="black").encode(**by, y=alt.Y(f"{y}:Q", title=title,
                                                                                   scale=scale))
    points = base.mark_point(filled=True, color="black", opacity=0.35, size=40).encode(
        **{k: v for k, v in by.items() if k != "color"}, y=alt.Y(f"{y}:Q", title=title, scale=scale),
        tooltip=[c for c in ("run", "seed", y, "params", "best_epoch") if c in results]).add_params(pick_run())
    return (bars + spread + points).properties(width=420, height=height, title=title)


def reliability_chart(curves: dict[str, pd.DataFrame], size: int = 330) -> alt.LayerChart:
    """Reliability diagrams (accuracy against mean confidence per bin), one line per run, over the diagonal
    of perfect calibration; a point's size is how many images its bin holds."""
    long = pd.concat([c.assign(run=run) for run, c in curves.items()], ignore_index=True)
    unit = alt.Scale(domain=[0, 1])
    diagonal = alt.Chart(pd.DataFrame({"x": [0.0, 1.0]})).mark_line(color="gray", strokeDash=[4, 4]).encode(
        x=alt.X("x:Q", scale=unit, title="confidence"), y=alt.Y("x:Q", scale=unit, title="accuracy"))
    legend = alt.Legend(orient="bottom", direction="vertical", labelLimit=0)
    lines = alt.Chart(long).mark_line(point=False).encode(
        x=alt.X("confidence:Q", scale=unit), y=alt.Y("accuracy:Q", scale=unit),
        color=run_color(long, legend=legend))
    points = alt.Chart(long).mark_circle().encode(
        x="confidence:Q", y="accuracy:Q", color=run_color(long, legend=legend), size=alt.Size("count:Q", legend=None),
        tooltip=["run", alt.Tooltip("confidence:Q", format=".3f"), alt.Tooltip("accuracy:Q", format=".3f"),
                 "count"])
    return (diagonal + lines + points).properties(width=size, height=size, title="reliability diagram", autosize=PAD)


def confidence_histogram_chart(histogram: pd.DataFrame, height: int = 200) -> alt.Chart:
    """Right and wrong predictions stacked by confidence: a well-calibrated model is rarely wrong and sure."""
    return alt.Chart(histogram).mark_bar().encode(
        x=alt.X("from:Q", bin="binned", title="confidence"), x2="to:Q",
        y=alt.Y("count:Q", title="test images", stack=True),
        color=alt.Color("outcome:N", scale=alt.Scale(domain=["right", "wrong"], range=["#4c78a8", "#e45756"])),
        tooltip=["outcome", alt.Tooltip("from:Q", format=".2f"), alt.Tooltip("to:Q", format=".2f"), "count"],
    ).properties(height=height, width=330, title="confidence of right and wrong predictions")


def disagreement_chart(counts: pd.DataFrame, height: int = 240) -> alt.Chart:
    """Per true class, the test images only one run of two gets right (compare.disagreement_counts); click a
    bar to see those images."""
    order = list(dict.fromkeys(counts["class"]))
    pick = alt.selection_point(name=BAR_SELECTION, fields=["class", "who"], on="click")
    return alt.Chart(counts).mark_bar().encode(
        x=alt.X("class:N", sort=order, title=None), xOffset="who:N",
        y=alt.Y("images:Q", title="test images"),
        color=run_color(counts, "who", title=None),
        opacity=alt.condition(pick, alt.value(1.0), alt.value(0.45)),
        tooltip=["class", "who", "images"],
    ).add_params(pick).properties(height=height, title="test images only one of the two gets right")


def heat_scale_chart(colors: list[str], width: int = 260) -> alt.Chart:
    """The colour bar of the Grad-CAM overlays (`colors` from explain.colour_bar): dark where a map found no
    evidence, light yellow at its strongest; each map is scaled to its own peak, so colours compare within one
    map, not across images. No title: Streamlit drew a titled chart this short as its title alone."""
    last = len(colors) - 1
    bar = pd.DataFrame({"step": range(len(colors)), "colour": colors, "row": "Grad-CAM"})
    axis = alt.Axis(values=[0, last], title=None, ticks=False, domain=False, labelAngle=0, labelLimit=width,
                    labelAlign=alt.ExprRef("datum.value == 0 ? 'left' : 'right'"),
                    labelExpr=f"datum.value == 0 ? 'no evidence' : datum.value == {last} ? 'strongest in this map' "
                              ": ''")
    return alt.Chart(bar).mark_rect(strokeWidth=0).encode(
        x=alt.X("step:O", axis=axis), y=alt.Y("row:N", title=None, axis=alt.Axis(ticks=False, domain=False)),
        color=alt.Color("colour:N", scale=None),
    ).properties(width=width, height=14, autosize=PAD)


def layer_heatmap(frame: pd.DataFrame, measure: str, title: str, log: bool, width: int = 560) -> alt.Chart:
    """One measure of every layer at every record (analysis.layers.frame): layers top to bottom in depth order,
    records left to right, with a colour bar (log scale for norms, which span decades)."""
    data = frame.dropna(subset=[measure])
    if log:
        data = data[data[measure] > 0]
    order = list(dict.fromkeys(data.sort_values("order")["layer"]))
    share = measure == "dead"  # a share of channels: 0 to 100%
    scale = alt.Scale(type="log" if log else "linear", scheme="viridis", **({"domain": [0, 1]} if share else {}))
    return alt.Chart(data).mark_rect().encode(
        x=alt.X("epoch:O", title="epochs of training (0: before)",
                axis=alt.Axis(labelExpr="format(datum.value, '.2~f')", labelAngle=0)),
        y=alt.Y("layer:N", sort=order, title=None),
        color=alt.Color(f"{measure}:Q", scale=scale, title=title,
                        legend=alt.Legend(gradientLength=180, format=".0%" if share else ".2~g")),
        tooltip=["layer", "epoch", alt.Tooltip(f"{measure}:Q", title=title, format=".3~g")],
    ).properties(width=width, height=max(120, 22 * len(order)), title=f"{title}, layer by layer", autosize=PAD)


def activation_boxes(dist: pd.DataFrame, title: str, width: int = 420) -> alt.LayerChart:
    """Each layer's activations at one record (analysis.layers.distribution_frame): box from the 25th to the 75th
    percentile, whiskers from the 1st to the 99th, a tick at the median, a point at the mean."""
    order = list(dict.fromkeys(dist.sort_values("order")["layer"]))
    base = alt.Chart(dist).encode(y=alt.Y("layer:N", sort=order, title=None))
    tip = ["layer", *[alt.Tooltip(f"{c}:Q", format=".3~g") for c in ("p01", "p25", "median", "p75", "p99", "mean")]]
    whiskers = base.mark_rule().encode(x=alt.X("p01:Q", title="activation (after the layer's ReLU)"), x2="p99:Q")
    boxes = base.mark_bar(size=12, opacity=0.7).encode(x="p25:Q", x2="p75:Q", tooltip=tip)
    median = base.mark_tick(color="black", thickness=2, size=12).encode(x="median:Q")
    mean = base.mark_point(color="firebrick", filled=True, size=25).encode(x="mean:Q")
    return (whiskers + boxes + median + mean).properties(width=width, height=max(120, 24 * len(order)), title=title,
                                                         autosize=PAD)


def layer_profile_chart(profile: pd.DataFrame, measure: str, title: str, log: bool, color: str = "run",
                        dash: str | None = None, width: int = 420, height: int = 240) -> alt.Chart:
    """One measure against depth (the layer's place among the conv and dense layers, so that runs with and without
    batch norm line up), a line per run or group, mean over the runs in a group (seeds): how gradients flow, or
    activations spread, from the first layer to the last."""
    share = measure == "dead"  # a share of channels: 0 to 100% (all zero drew a single tick, '0.000000')
    scale = alt.Scale(type="log" if log else "linear", **({"domain": [0, 1]} if share else {}))
    encoding = {"x": alt.X("depth:O", title="conv / dense layer (1: input side)"),
                "y": alt.Y(f"mean({measure}):Q", title=title, scale=scale, axis=alt.Axis(format=".0%") if share
                           else alt.Axis()),
                "color": run_color(profile, color),
                "tooltip": [color, "depth", alt.Tooltip(f"mean({measure}):Q", title=title, format=".3~g")]}
    if dash:
        encoding["strokeDash"] = alt.StrokeDash(f"{dash}:N", legend=alt.Legend(symbolType="stroke", symbolSize=400,
                                                                              symbolStrokeWidth=2))
    data = profile.dropna(subset=[measure, "depth"])
    data = data[data[measure] > 0] if log else data
    return alt.Chart(data).mark_line(point=True).encode(**encoding).properties(
        width=width, height=height, title=title, autosize=PAD)


TRIAL_STATUS = alt.Scale(domain=["completed", "pruned", "stopped"], range=["#4c78a8", "#e45756", "#9d9d9d"])


def best_so_far_chart(frame: pd.DataFrame, width: int = 420, height: int = 260) -> alt.LayerChart:
    """A search's trials in order, each at its best validation accuracy (pruned ones red), and the best of the
    completed trials so far as a step line: how fast the search found what it found."""
    x = alt.X("trial:Q", title="trial", axis=alt.Axis(tickMinStep=1, format="d"))
    y_title = "validation accuracy"
    base = alt.Chart(frame)
    line = base.mark_line(interpolate="step-after", color="black").encode(
        x=x, y=alt.Y("best so far:Q", title=y_title, scale=alt.Scale(zero=False)))
    points = base.mark_point(filled=True, size=70).encode(
        x=x, y=alt.Y("val acc:Q", title=y_title),
        color=alt.Color("status:N", scale=TRIAL_STATUS, title="trial"),
        tooltip=["trial", "status", alt.Tooltip("val acc:Q", format=".4f"), "run_id"]).add_params(pick_run())
    return (line + points).properties(width=width, height=height, title="Best validation accuracy so far")


def parallel_coordinates_chart(long: pd.DataFrame, ends: pd.DataFrame, order: list[str], width: int = 560,
                               height: int = 360) -> alt.LayerChart:
    """Each trial as a line across one axis per searched setting (its place between the space's ends, log axes in
    log), coloured by its validation accuracy; each axis is labelled with its ends as written in the space."""
    x = alt.X("param:N", sort=order, title=None, axis=alt.Axis(labelAngle=0, orient="top", labelFontWeight="bold"))
    y = alt.Y("position:Q", axis=None, scale=alt.Scale(domain=[-0.05, 1.05]))
    rules = alt.Chart(ends).mark_rule(color="#bbbbbb").encode(x=x, y=alt.Y("min(position):Q", axis=None),
                                                              y2="max(position):Q")
    color = alt.Color("val acc:Q", title="validation accuracy", scale=alt.Scale(scheme="viridis"),
                      legend=alt.Legend(type="gradient", gradientLength=120))
    lines = alt.Chart(long).mark_line(opacity=0.8).encode(
        x=x, y=y, detail="trial:N", color=color,
        strokeDash=alt.StrokeDash("status:N", title="trial", sort=["completed", "pruned", "stopped"]))
    points = alt.Chart(long).mark_point(filled=True, size=30, color="#444444", opacity=0.7).encode(
        x=x, y=y, tooltip=["trial", "param", "value", "status", alt.Tooltip("val acc:Q", format=".4f")])
    labels = alt.Chart(ends).mark_text(align="left", dx=7, dy=-8, color="#555555").encode(x=x, y=y, text="label:N")
    return (rules + lines + points + labels).properties(width=width, height=height,
                                                       title="Sampled settings, coloured by validation accuracy")


def importance_chart(frame: pd.DataFrame, width: int = 360) -> alt.Chart:
    """How much of the completed trials' validation accuracy each setting explains (Optuna's fANOVA estimate)."""
    return alt.Chart(frame).mark_bar().encode(
        x=alt.X("importance:Q", title="share of the variance explained", scale=alt.Scale(domain=[0, 1]),
                axis=alt.Axis(format=".0%", tickCount=5)),
        y=alt.Y("param:N", sort="-x", title=None, axis=alt.Axis(labelLimit=0)),
        tooltip=["param", alt.Tooltip("importance:Q", format=".3f")],
    ).properties(width=width, height=alt.Step(28), title="Importance of each setting", autosize=PAD)


MAP_BRUSH = "region"  # the interval selection of the embedding map: the page reads its x and y ranges


def embedding_map(points: pd.DataFrame, pair: tuple[str, str], title: str = "", size: int = 560,
                  selectable: bool = True) -> alt.LayerChart:
    """Every test image a point placed by what the network sees, coloured by its true class, mistakes as crosses,
    the (true, predicted) pair ringed in black; drag a region to select images."""
    shape = alt.Shape("mistake:N", scale=alt.Scale(domain=["right", "wrong"], range=["circle", "cross"]),
                      legend=alt.Legend(title=None))
    tooltip = [alt.Tooltip("position:Q", title="test #"), "true:N", "predicted:N",
               alt.Tooltip("confidence:Q", format=".0%")]
    data = points.assign(mistake=points["wrong"].map({True: "wrong", False: "right"}))
    columns = ["x", "y", "position", "true", "predicted", "confidence", "mistake", "in_pair"]
    values = alt.Data(values=data[columns].to_dict("records"))  # inline values: 10,000 points pass Altair's row cap
    base = alt.Chart(values).encode(
        x=alt.X("x:Q", axis=None), y=alt.Y("y:Q", axis=None), tooltip=tooltip)
    dots = base.mark_point(size=14, filled=True, opacity=0.55).encode(
        color=alt.Color("true:N", scale=alt.Scale(scheme="tableau10"), legend=alt.Legend(title="true class")),
        shape=shape)
    if selectable:
        dots = dots.add_params(alt.selection_interval(name=MAP_BRUSH, encodings=["x", "y"]))
    ring = base.transform_filter("datum.in_pair").mark_point(size=60, color="black", strokeWidth=1.2)
    return alt.layer(dots, ring).properties(width=size, height=size, title=title or alt.Undefined)
