"""Side-by-side facts about runs: the metrics table and what changed between two models."""

from __future__ import annotations

import contextlib
import re
from dataclasses import asdict

import numpy as np
import pandas as pd

from cifar_core.analysis import figures, scores, stats
from cifar_core.model import specs
from cifar_core.model.config import TrainConfig
from cifar_core.store import runs
from cifar_core.store.runs import RunInfo


def metrics_table(infos: list[RunInfo], reports: dict[str, dict | None]) -> pd.DataFrame:
    """One row per run: architecture, parameters, best epoch, accuracies, macro F1, cat->dog, time per epoch."""
    rows = []
    for info in infos:
        m, report = info.meta, reports.get(info.run_id)
        names = report["class_names"] if report else []
        cat_dog = dog_cat = None
        if report and {"cat", "dog"} <= set(names):
            cm = report["confusion_matrix"]
            cat_dog, dog_cat = cm[names.index("cat")][names.index("dog")], cm[names.index("dog")][names.index("cat")]
        rows.append({
            "run": info.name, "arch": m.get("spec", {}).get("name"), "params": m.get("params"),
            "best epoch": m.get("best_epoch"), "val acc": m.get("best_val_accuracy"),
            "test acc": m.get("test_accuracy"), "test acc 95% CI": accuracy_interval_text(report),
            "macro F1": report["macro avg"]["f1-score"] if report else None,
            "cat→dog": cat_dog, "dog→cat": dog_cat,
            "s/epoch": runs.seconds_per_epoch(runs.read_metrics(info.path)),
            "validation": m.get("config", {}).get("validation"), "data": m.get("data", {}).get("kind"),
        })
    return pd.DataFrame(rows)


def accuracy_interval_text(report: dict | None) -> str | None:
    """The exact 95% interval of a run's test accuracy on its test set size, as 'low-high'."""
    if not report:
        return None
    cm = report["confusion_matrix"]
    n, correct = sum(map(sum, cm)), sum(cm[i][i] for i in range(len(cm)))
    low, high = stats.accuracy_interval(correct, n) if n else (0.0, 1.0)
    return f"{low:.3f}–{high:.3f}"


def significance(pair: dict[str, np.ndarray]) -> stats.McNemar:
    """McNemar's exact test of two runs on the test images they share (`paired_predictions`)."""
    return stats.mcnemar(pair["y_pred_a"] == pair["y_true"], pair["y_pred_b"] == pair["y_true"])


def paired_predictions(a: RunInfo, b: RunInfo, preds_a: dict, preds_b: dict) -> dict[str, np.ndarray]:
    """Both runs' predictions on their shared test images (see `stats.paired`); ValueError says why not."""
    problem = stats.same_test_set(a.meta, b.meta)
    if problem:
        raise ValueError(problem)
    return stats.paired(preds_a, preds_b)


def disagreement_counts(pair: dict[str, np.ndarray], class_names: list[str], a: str, b: str) -> pd.DataFrame:
    """Per true class, how many test images only A gets right and how many only B (long form, for bars)."""
    right_a, right_b = pair["y_pred_a"] == pair["y_true"], pair["y_pred_b"] == pair["y_true"]
    rows = []
    for k, name in enumerate(class_names):
        of_class = pair["y_true"] == k
        rows += [{"class": name, "who": f"only {a} right", "images": int((of_class & right_a & ~right_b).sum())},
                 {"class": name, "who": f"only {b} right", "images": int((of_class & ~right_a & right_b).sum())}]
    return pd.DataFrame(rows)


def disagreements(pair: dict[str, np.ndarray], right: str, true_class: int | None = None) -> np.ndarray:
    """Positions in `pair` of the images only run `right` ('a' or 'b') gets right, of one true class or all,
    those where the other run was surest of its mistake first."""
    other = "b" if right == "a" else "a"
    mask = (pair[f"y_pred_{right}"] == pair["y_true"]) & (pair[f"y_pred_{other}"] != pair["y_true"])
    if true_class is not None:
        mask &= pair["y_true"] == true_class
    rows = np.flatnonzero(mask)
    wrong_confidence = pair[f"probs_{other}"][rows].astype(np.float32).max(axis=1)
    return rows[np.argsort(-wrong_confidence, kind="stable")]


def per_class(infos: list[RunInfo], reports: dict[str, dict | None]) -> pd.DataFrame:
    """Per-class precision, recall, F1 and support of each run, long form (one row per run and class)."""
    parts = [scores.per_class_frame(reports[i.run_id]).assign(run=i.name) for i in infos if reports.get(i.run_id)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["class", "run"])


def per_class_wide(long: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One metric as a class x run table, classes in their label order."""
    return long.pivot_table(index="class", columns="run", values=metric, sort=False)


def change_summary(change: pd.DataFrame, b: str) -> str:
    """What the B - A confusion difference (scores.confusion_difference) says in words: how many more test images
    B gets right, in which class it gains and loses most, and which of its mistakes fell and rose most."""
    right = change[change["true"] == change["predicted"]].sort_values("change")
    off = change[change["true"] != change["predicted"]].sort_values("change")
    total = int(right["change"].sum())
    said = [f"{b} gets {abs(total):,} test images {'more' if total >= 0 else 'fewer'} right"]
    gain, loss = right.iloc[-1], right.iloc[0]
    if gain["change"] > 0:
        said.append(f"most gained in {gain['true']} ({int(gain['change']):+d})")
    if loss["change"] < 0:
        said.append(f"most lost in {loss['true']} ({int(loss['change']):+d})")
    fell, rose = off.iloc[0], off.iloc[-1]
    mistakes = []
    if fell["change"] < 0:
        mistakes.append(f"{fell['true']} taken for {fell['predicted']} fell most ({int(fell['change']):+d})")
    if rose["change"] > 0:
        mistakes.append(f"{rose['true']} taken for {rose['predicted']} rose most ({int(rose['change']):+d})")
    return ", ".join(said) + "." + (f" Of its mistakes, {' and '.join(mistakes)}." if mistakes else "")


NONE = "(none)"  # a bare '-' would render as a Markdown bullet in tables
_MISSING = object()


def settings_diff(meta_a: dict, meta_b: dict) -> pd.DataFrame:
    """Every architecture, training and data setting that differs between two runs, and only those. A part only
    one run has (a fourth block; the layers of an architecture beside an external model's) is one row, '(none)'
    on the other side, not one row per field."""
    brief = bool(meta_a.get("imported") or meta_b.get("imported"))
    rows = _differences(_settings(meta_a, brief), _settings(meta_b, brief))
    return pd.DataFrame(rows, columns=["setting", "A", "B"]).astype(str)


def setting_label(key: str) -> str:
    """A settings_diff key as a reader says it: 'spec.blocks[1].batch_norm' -> 'block 1 · batch norm',
    'config.learning_rate' -> 'learning rate', 'spec.name' -> 'architecture'."""
    if key == "spec.name":
        return "architecture"
    key = re.sub(r"^(spec|config)\.", "", key).replace("data.", "data ", 1)
    key = re.sub(r"blocks\[(\d+)\]", r"block \1", key)
    return key.replace(".", " · ").replace("_", " ")


def only_seed_differs(meta_a: dict, meta_b: dict) -> bool:
    """Whether two runs share every setting but their seed (two runs of one time budget may also differ in the
    epochs it fitted: that is the seed's doing too)."""
    differing = set(settings_diff(meta_a, meta_b)["setting"])
    budgets = {(m.get("config") or {}).get("time_budget") for m in (meta_a, meta_b)}
    if len(budgets) == 1 and None not in budgets:
        differing.discard("config.epochs")
    return differing == {"config.seed"}


def _differences(a, b, name: str = "") -> list[dict[str, str]]:
    """Rows (setting, A, B) where nested settings differ: dicts key by key, lists of dicts item by item."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = [k for k in dict.fromkeys([*a, *b]) if not str(k).endswith("description")]
        return [row for k in keys
                for row in _differences(a.get(k, _MISSING), b.get(k, _MISSING), f"{name}.{k}" if name else str(k))]
    if _records(a) and _records(b):
        return [row for i in range(max(len(a), len(b)))
                for row in _differences(_item(a, i), _item(b, i), f"{name}[{i + 1}]")]
    if a == b:
        return []
    return [{"setting": name, "A": _brief(a), "B": _brief(b)}]


def _records(value) -> bool:
    return isinstance(value, list | tuple) and bool(value) and all(isinstance(v, dict) for v in value)


def _item(values: list, i: int):
    return values[i] if i < len(values) else _MISSING


def _brief(value) -> str:
    """A setting, or a whole part (block, head) one run lacks, in one cell."""
    if value is _MISSING:
        return NONE
    if isinstance(value, dict):
        return ", ".join(f"{k}={_brief(v)}" for k, v in value.items() if not str(k).endswith("description"))
    if _records(value):
        return "; ".join(f"[{_brief(v)}]" for v in value)
    return str(value)


def _settings(meta: dict, brief: bool = False) -> dict[str, object]:
    """What defines a run. Beside an imported run, whose training settings are unknown, the training config
    shrinks to where and how each was trained. Spec and config are read with their defaults filled in, so a
    setting added after a run was made reads as its default there, not as missing; a time-budgeted run's epochs
    are those it planned and trained."""
    spec, config = _with_defaults(meta)
    budgeted = figures.budgeted_epochs(meta)
    if brief:
        epochs = budgeted or f"up to {config.get('epochs')} epochs"
        config = {"trained": f"elsewhere ({meta['imported'].get('file')})" if meta.get("imported") else
                  f"here: {config.get('recipe', 'seed')} recipe, {epochs}"}
    elif budgeted:
        config = {**config, "epochs": budgeted}
    return {"spec": spec, "config": config, "data": {"source": meta.get("data", {}).get("source")}}


def _with_defaults(meta: dict) -> tuple[dict, dict]:
    """The run's spec and config as this version reads them (defaults filled in); as written where unreadable."""
    spec, config = meta.get("spec"), meta.get("config") or {}
    with contextlib.suppress(ValueError, TypeError):  # SpecError, ConfigError and FieldError are ValueErrors
        spec = specs.from_dict(spec).to_dict()
    with contextlib.suppress(ValueError, TypeError):
        config = asdict(TrainConfig.from_dict(config))
    return spec, config
