"""What a search found, as tables and sentences: its trials (validation accuracy only), the best so far, the
parallel-coordinates frame, Optuna's importance of each setting, and the seeds table that alone reads the test set."""

from __future__ import annotations

from pathlib import Path

from cifar_core.analysis import stats
from cifar_core.model import space
from cifar_core.store import rundir
from cifar_core.studies import search
from cifar_core.studies.search import BEST, PRESET, PRUNED_AT, ROLE, TRIAL, VAL


def trials_table(study: dict):
    """One row per trial: its sampled values, status, best validation accuracy so far, epochs trained and after
    which epoch it was pruned. The test set is not in it: a search never reads it."""
    import pandas as pd

    keys = space.parse(study["search"]["space"]).keys
    rows = []
    for entry in search.entries(study, TRIAL):
        info = search.run_info(study, entry)
        lines = []
        if info and not info.damaged:
            try:
                lines = rundir.read_metric_lines(info.path)
            except rundir.DamagedRun:
                lines = []
        vals = [m["val_accuracy"] for m in lines if "val_accuracy" in m]
        meta = info.meta if info else {}
        rows.append({"trial": entry["labels"][TRIAL], "status": info.status if info else "waiting",
                     **{k: entry["labels"].get(k) for k in keys}, VAL: max(vals) if vals else None,
                     "epochs": len([m for m in lines if not m.get(rundir.PARTIAL)]),
                     "pruned after epoch": meta.get(PRUNED_AT) if info and info.status == rundir.PRUNED else None,
                     "params": meta.get("params"),
                     "run_id": entry.get("run_id")})
    columns = ["trial", "status", *keys, VAL, "epochs", "pruned after epoch", "params", "run_id"]
    table = pd.DataFrame(rows, columns=columns)
    return table.astype({"trial": "Int64", VAL: "Float64", "epochs": "Int64", "pruned after epoch": "Int64",
                         "params": "Int64"})


def best_so_far(trials):
    """Each finished trial's validation accuracy in trial order, with the best of the completed ones so far (what
    the search would pick had it stopped there; pruned trials trained less and are never picked)."""
    done = trials[trials["status"].isin(rundir.HAS_RESULTS) & trials[VAL].notna()].sort_values("trial")
    completed = done[VAL].where(done["status"] == "completed")
    best = completed.astype(float).cummax().ffill()  # a pruned trial keeps the best before it
    return done.assign(**{"best so far": best})[["trial", "status", VAL, "best so far", "run_id"]]


def parallel_frame(study: dict, trials):
    """The trials in long form for a parallel-coordinates chart: each sampled value's place on its axis (0 to 1,
    log axes in log), the value as written, and the trial's validation accuracy."""
    import pandas as pd

    found = space.parse(study["search"]["space"])
    rows = []
    for row in trials[trials[VAL].notna()].to_dict("records"):
        for p in found.params:
            value = row.get(p.key)
            if value is None or value != value:
                continue
            rows.append({"trial": int(row["trial"]), "status": row["status"], "param": p.axis,
                         "position": p.position(value),
                         "value": space.word(value) if p.choices else f"{float(value):.3g}", VAL: float(row[VAL])})
    return pd.DataFrame(rows, columns=["trial", "status", "param", "position", "value", VAL])


def axis_order(study: dict) -> list[str]:
    """The chart's axes, in the space's order."""
    return [p.axis for p in space.parse(study["search"]["space"]).params]


def axis_labels(study: dict):
    """Each axis's marks as written in the space: a range's low and high, or every choice, for the chart."""
    import pandas as pd

    rows = []
    for p in space.parse(study["search"]["space"]).params:
        marks = p.choices or (p.low, p.high)
        rows += [{"param": p.axis, "position": p.position(v), "label": space.word(v)} for v in marks]
    return pd.DataFrame(rows)


def importances(study_dir: Path):
    """Optuna's estimate (fANOVA) of how much each dimension explains of the completed trials' validation
    accuracy; empty until two trials have completed with different values."""
    import optuna
    import pandas as pd

    opt = search.optuna_study(study_dir)
    done = opt.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(done) < 2:
        return pd.DataFrame(columns=["param", "importance"])
    try:
        found = optuna.importance.get_param_importances(opt)
    except (RuntimeError, ValueError):
        return pd.DataFrame(columns=["param", "importance"])
    return pd.DataFrame([{"param": k, "importance": float(v)} for k, v in found.items()])


def seeds_table(study: dict):
    """The retraining: each seed's run of the preset and of the best settings, with its test accuracy (read only
    now) and best validation accuracy."""
    import pandas as pd

    rows = []
    for entry in study["runs"]:
        role = entry["labels"].get(ROLE)
        if role not in (BEST, PRESET):
            continue
        info = search.run_info(study, entry)
        meta = info.meta if info and info.has_results else {}
        rows.append({"settings": role, "seed": entry["labels"]["seed"], "status": info.status if info else "waiting",
                     "test acc": meta.get("test_accuracy"), "best val acc": meta.get("best_val_accuracy"),
                     "best epoch": meta.get("best_epoch"), "run_id": entry.get("run_id")})
    columns = ["settings", "seed", "status", "test acc", "best val acc", "best epoch", "run_id"]
    return pd.DataFrame(rows, columns=columns).astype({"test acc": "Float64", "best val acc": "Float64"})


def seeds_summary(seeds):
    """Preset and best side by side over the same seeds: runs, test accuracy mean ± std, min and max (only runs
    that trained their whole course count)."""
    import pandas as pd

    rows = []
    for role in (PRESET, BEST):
        acc = seeds[(seeds["settings"] == role) & (seeds["status"] == "completed")]["test acc"].astype(float)
        rows.append({"settings": role, "seeds": len(acc), "test acc mean": acc.mean() if len(acc) else None,
                     "test acc std": acc.std(ddof=1) if len(acc) > 1 else None,
                     "mean ± std": f"{acc.mean():.4f} ± {acc.std(ddof=1):.4f}" if len(acc) > 1 else "-",
                     "min": acc.min() if len(acc) else None, "max": acc.max() if len(acc) else None})
    return pd.DataFrame(rows)


def gain_text(seeds) -> str | None:
    """Whether the best settings really beat the preset over the seeds: the difference of their mean test
    accuracies with Welch's interval, in one sentence (None until each has two seeds)."""
    done = seeds[seeds["status"] == "completed"]
    preset = done[done["settings"] == PRESET]["test acc"].astype(float).tolist()
    best = done[done["settings"] == BEST]["test acc"].astype(float).tolist()
    if len(preset) < 2 or len(best) < 2:
        return None
    return stats.difference_text("the preset", "The best settings", stats.mean_difference(preset, best))


def best_text(study: dict) -> str | None:
    """The settings the search picked, in one line."""
    best = study["search"].get("best")
    if not best:
        return None
    values = ", ".join(f"{k}={space.word(v) if isinstance(v, str) else f'{v:.4g}'}" for k, v in best["params"].items())
    return (f"Best settings (trial {best['trial']}, validation accuracy {best['val_accuracy']:.4f}): {values}; "
            f"retrained over {study['search']['seeds_for_best']} fresh seeds beside the preset.")


def summary_lines(study: dict) -> list[str]:
    """What a search found, in sentences: the best settings, and whether they really beat the preset."""
    seeds = seeds_table(study)
    lines = [best_text(study) or "No trial has completed yet: no best settings."]
    if not seeds.empty:
        lines.append(gain_text(seeds) or "Whether the gain is real needs two finished seeds of each.")
    return lines


def progress_text(study: dict) -> str:
    """How far a search is, in a few words: trials finished of those asked for, how many pruned, the best so far."""
    trials = trials_table(study)
    done = trials[trials["status"].isin(rundir.HAS_RESULTS)]
    completed = done[done["status"] == "completed"][VAL].dropna()
    best = f"; best validation accuracy {completed.max():.4f}" if len(completed) else ""
    pruned = int((done["status"] == rundir.PRUNED).sum())
    return f"{len(done)} of {study['search']['trials']} trials finished, {pruned} pruned{best}"
