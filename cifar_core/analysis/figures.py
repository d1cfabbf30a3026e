"""How figures and sentences read wherever a run is shown: a class name with its article, a time-budgeted run's
epochs as planned and trained rather than its config's ceiling."""

from __future__ import annotations

from cifar_core.store import rundir


def with_article(noun: str) -> str:
    """'a cat', 'an automobile', 'an airplane'."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def epochs_of_images(lines: list[dict], train_images: int) -> float:
    """How many epochs' worth of training images a run saw: an epoch cut short (a time budget's last, or STOP)
    counts the share of the images it trained on ("partial" lines carry their "images")."""
    return sum(m.get("images", train_images) / train_images if m.get(rundir.PARTIAL) else 1 for m in lines)


def budgeted_epochs(meta: dict) -> str | None:
    """A time-budgeted run's epochs as planned and trained, e.g. '4 trained of 4 planned for a 600 s budget';
    None for a run without a budget. Its config.epochs (1000) is only a ceiling the fitted plan never reaches."""
    config = meta.get("config") or {}
    budget = config.get("time_budget")
    if not budget:
        return None
    planned, trained = meta.get("planned_epochs"), meta.get("epochs_run")
    plan = f"{planned} planned" if planned else "fitted"
    done = f"{trained} trained of " if trained is not None else ""
    seen = meta.get("epochs_of_images")
    cut = f" ({seen:.2f} epochs of images: the last cut short)" if seen and trained and seen < trained - 0.005 else ""
    return f"{done}{plan} for a {budget:.0f} s budget{cut}"


def shown_config(meta: dict) -> dict:
    """run.json's training config as a reader should see it: a budgeted run's epochs are those it planned and
    trained (`budgeted_epochs`), not the ceiling in its config."""
    config = dict(meta.get("config") or {})
    epochs = budgeted_epochs(meta)
    return {**config, "epochs": epochs} if epochs else config
