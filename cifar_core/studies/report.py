"""Study reports: the charts of each kind of study, the seed study against its published figures,
and export as Markdown (with PNG charts beside it) or self-contained HTML (charts embedded)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import altair as alt
import pandas as pd

from cifar_core.analysis import caveats, charts, scores, stats
from cifar_core.store import rundir, runs
from cifar_core.studies import plans, records

# The seed notebook's figures (DESIGN.md and the studies issue).
PUBLISHED = pd.DataFrame([
    {"arch": "baseline", "test_accuracy": 0.7243, "best_epoch": 7, "cat_dog": 215, "dog_cat": 144},
    {"arch": "deeper", "test_accuracy": 0.7016, "best_epoch": 11, "cat_dog": 175, "dog_cat": 166},
    {"arch": "batchnorm", "test_accuracy": 0.7687, "best_epoch": 16, "cat_dog": 173, "dog_cat": 117},
]).set_index("arch")


def study_charts(kind: str, results: pd.DataFrame) -> dict[str, alt.Chart]:
    """The charts that answer the study's question, keyed by a short name."""
    if results.empty or kind == "search":  # a search's charts are its own (search_sections)
        return {}
    chart = charts.study_chart
    if kind == "depth":
        return {
            "accuracy": chart(results, "depth", "test_accuracy", "batch_norm", "Test accuracy against depth",
                              "conv blocks", "test accuracy"),
            "params": chart(results, "depth", "params", "batch_norm", "Parameters against depth",
                            "conv blocks", "parameters"),
            "gap": chart(results, "depth", "gap", "batch_norm", "Overfitting: train minus validation accuracy "
                         "(last epoch)", "conv blocks", "accuracy gap"),
            "speed": chart(results, "depth", "seconds_per_epoch", "batch_norm", "Seconds per epoch",
                           "conv blocks", "seconds"),
        }
    if kind == "dropout":
        return {
            "accuracy": chart(results, "dropout", "test_accuracy", None, "Test accuracy against dropout",
                              "dropout rate", "test accuracy"),
            "gap": chart(results, "dropout", "gap", None, "Overfitting gap against dropout", "dropout rate",
                         "accuracy gap"),
        }
    group = "family" if kind == "batchnorm" else "arch"
    offset = "batch_norm" if kind == "batchnorm" else None
    bars = charts.group_bars(results, group, "test_accuracy", offset, "Test accuracy", "test accuracy")
    gap = charts.group_bars(results, group, "gap", offset, "Overfitting gap (last epoch)", "accuracy gap")
    return {"accuracy": bars, "gap": gap}


def layer_charts(kind: str, profile: pd.DataFrame) -> dict[str, alt.Chart]:
    """The mechanism beside the outcome: gradient norm by layer at the end of training, with and without batch
    norm (batchnorm study) or for each depth (depth study), averaged over seeds."""
    if profile.empty or kind not in ("batchnorm", "depth"):
        return {}
    chart = charts.layer_profile_chart
    if kind == "batchnorm":
        return {"gradients": chart(profile, "grad_norm", "Gradient norm by layer, with and without batch norm", True,
                                   color="batch_norm", dash="family")}
    return {"gradients": chart(profile, "grad_norm", "Gradient norm by layer, by depth", True, color="depth",
                               dash="batch_norm")}


DISTANCE_IN_STD = "published − ours (std)"
SEED_FIGURES = (("test_accuracy", "test acc"), ("best_epoch", "best epoch"), ("cat_dog", "cat→dog"),
                ("dog_cat", "dog→cat"))


def seed_comparison(study_dir: Path) -> pd.DataFrame:
    """Ours against the published seed figures: test accuracy, best epoch, cat->dog and dog->cat cells. With
    several seeds, ours is their mean, with the standard deviation of test accuracy and whether the published
    figure lies within our mean ± 2 std."""
    study = records.read(study_dir)
    found: dict[str, dict[str, list]] = {}
    for entry in study["runs"]:
        arch = entry["labels"]["arch"]
        figures = found.setdefault(arch, {key: [] for key, _ in SEED_FIGURES})
        run_dir = records.run_dir_of(study, entry)
        ours = runs.load_run(run_dir) if run_dir and run_dir.exists() else None
        if not (ours and ours.has_results):
            continue
        report = rundir.read_report(run_dir)
        values = {"test_accuracy": ours.meta.get("test_accuracy"), "best_epoch": ours.meta.get("best_epoch"),
                  "cat_dog": scores.cell(report, "cat", "dog"), "dog_cat": scores.cell(report, "dog", "cat")}
        for key, value in values.items():
            figures[key].append(value)
    seeded = bool(study.get("seeds"))
    rows = []
    for arch, figures in found.items():
        pub, row = PUBLISHED.loc[arch], {"model": arch}
        for key, label in SEED_FIGURES:
            values = pd.Series(figures[key], dtype=float)
            mean = values.mean() if len(values) else None
            value = None if mean is None else (mean if seeded else figures[key][0])
            row[f"{label} (seed)"] = pub[key]
            row[f"{label} (ours)"] = value
            row[f"{label} (diff)"] = None if value is None else value - pub[key]
        if seeded:
            acc = pd.Series(figures["test_accuracy"], dtype=float)
            std = acc.std(ddof=1) if len(acc) > 1 else None
            row["seeds"] = len(acc)
            row["test acc std"] = std
            row["published within ±2 std"] = ("-" if std is None else
                                              "yes" if abs(acc.mean() - pub["test_accuracy"]) <= 2 * std else "no")
            # how far, so a figure at the edge (2.00 std) reads as such, not as a plain yes or no
            row[DISTANCE_IN_STD] = None if not std else (pub["test_accuracy"] - acc.mean()) / std
        rows.append(row)
    return pd.DataFrame(rows)


def _png(chart: alt.Chart) -> bytes:
    import vl_convert

    return vl_convert.vegalite_to_png(chart.to_json(), scale=2)


def _cell(column: str, value) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if column == DISTANCE_IN_STD:
        return f"{value:+.2f}"
    sign = "+" if "diff" in column else ""
    if float(value) == int(value):
        return f"{int(value):{sign}d}"
    return f"{value:{sign}.4f}" if "acc" in column or abs(value) < 1 else f"{value:{sign}.1f}"


def markdown_table(df: pd.DataFrame) -> str:
    header = "| " + " | ".join(df.columns) + " |\n|" + "---|" * len(df.columns) + "\n"
    body = "".join("| " + " | ".join(_cell(c, v) for c, v in zip(df.columns, row, strict=True)) + " |\n"
                   for row in df.itertuples(index=False))
    return header + body


def search_sections(study_dir: Path) -> tuple[list[tuple[str, pd.DataFrame]], dict[str, alt.Chart]]:
    """A search's tables (its trials by validation accuracy, then the seeds: preset against best on the test set)
    and charts (best so far, parallel coordinates, importance)."""
    from cifar_core.studies import search_results

    study = records.read(study_dir)
    trials = search_results.trials_table(study)
    seeds = search_results.seeds_table(study)
    importance = search_results.importances(study_dir)
    shown = trials.drop(columns=["run_id"]).assign(**{k: trials[k].map(_sampled) for k in space_keys(study)})
    tables = [("Trials (validation accuracy; the search never reads the test set)", shown)]
    if not seeds.empty:
        tables += [("Seeds: the preset against the best settings (test accuracy)", search_results.seeds_summary(seeds)),
                   ("Seeds: each run", seeds.drop(columns=["run_id"]))]
    if not importance.empty:
        tables.append(("Importance of each setting (Optuna's fANOVA)", importance))
    chart_map = {}
    if trials["val acc"].notna().any():
        chart_map["best_so_far"] = charts.best_so_far_chart(search_results.best_so_far(trials))
        frame = search_results.parallel_frame(study, trials)
        chart_map["parallel"] = charts.parallel_coordinates_chart(frame, search_results.axis_labels(study),
                                                                  search_results.axis_order(study))
    if not importance.empty:
        chart_map["importance"] = charts.importance_chart(importance)
    return tables, chart_map


def _sampled(value) -> str:
    """A sampled value as a reader compares them: three significant digits (a learning rate of 0.000194 is not
    0.0002)."""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def space_keys(study: dict) -> list[str]:
    from cifar_core.model import space

    return space.parse(study["search"]["space"]).keys


def _sections(study_dir: Path) -> tuple[dict, list[tuple[str, pd.DataFrame]], dict[str, alt.Chart]]:
    study = records.read(study_dir)
    if study["kind"] == "search":
        return study, *search_sections(study_dir)
    results = records.results(study_dir)
    tables = [("Results", results.drop(columns=["run_id"], errors="ignore"))]
    if study.get("seeds") and not results.empty:
        groups = stats.group_summary(results, plans.group_labels(study))
        tables.insert(0, (f"Groups: mean over {len(study['seeds'])} seeds ({', '.join(map(str, study['seeds']))})",
                          groups))
    if study["kind"] == "seed":
        tables.insert(0, ("Seed study: ours against the published figures", seed_comparison(study_dir)))
    return study, tables, {**study_charts(study["kind"], results),
                           **layer_charts(study["kind"], records.layer_profiles(study_dir))}


def _caveats(study: dict) -> list[str]:
    notes = caveats.for_study(study, records.finished_metas(study))
    if study["kind"] == "search":
        from cifar_core.studies import search_results

        notes += search_results.summary_lines(study)
    return notes


def write_markdown(study_dir: Path, out_dir: Path) -> Path:
    """report.md plus one PNG per chart in `out_dir`."""
    study, tables, chart_map = _sections(study_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [f"# Study {study['id']} ({study['kind']})", "", f"Data: `{study['data']['source']}`", ""]
    lines += [line for note in _caveats(study) for line in (f"> {note}", "")]
    for title, table in tables:
        lines += [f"## {title}", "", markdown_table(table), ""]
    lines += [caveats.ACCURACY_GAP, ""]
    for name, chart in chart_map.items():
        (out_dir / f"{name}.png").write_bytes(_png(chart))
        lines += [f"![{name}]({name}.png)", ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    return path


def html_report(study_dir: Path) -> str:
    """One self-contained HTML page (charts as embedded PNG, so it opens offline)."""
    study, tables, chart_map = _sections(study_dir)
    parts = [f"<h1>Study {html.escape(study['id'])} ({study['kind']})</h1>",
             f"<p>Data: <code>{html.escape(study['data']['source'])}</code></p>"]
    parts += [f"<blockquote>{html.escape(note)}</blockquote>" for note in _caveats(study)]
    for title, table in tables:
        body = table.to_html(index=False, na_rep="-", float_format="{:.4f}".format)
        parts += [f"<h2>{html.escape(title)}</h2>", body]
    parts.append(f"<p>{html.escape(caveats.ACCURACY_GAP)}</p>")
    for name, chart in chart_map.items():
        data = base64.b64encode(_png(chart)).decode()
        parts.append(f'<figure><img alt="{name}" src="data:image/png;base64,{data}" style="max-width:720px"></figure>')
    style = "body{font-family:sans-serif;max-width:960px;margin:2em auto}table{border-collapse:collapse}" \
            "td,th{border:1px solid #ccc;padding:4px 8px}"
    return f"<!doctype html><meta charset='utf-8'><style>{style}</style>" + "\n".join(parts)
