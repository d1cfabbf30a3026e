"""The warnings that travel with a result wherever it is shown: each sentence is written once, here."""

from __future__ import annotations

SEED_PROTOCOL = ("Validated and early-stopped on the test set (the seed notebook's protocol): "
                 "its test accuracy is optimistic.")
SYNTHETIC = "Trained on synthetic demo data (generated images), not CIFAR-10."
TRAINED_ELSEWHERE = ("Trained elsewhere and imported: no training curves, settings or validation figures; its "
                     "test figures come from evaluating it on this data's test set when it was imported.")
EVALUATED_ON_SYNTHETIC = "Evaluated on synthetic demo data (generated images), not CIFAR-10."
LOSSY_COPY = ("These images are a JPEG copy of CIFAR-10, not its original pixels, which the published figures "
              "come from: accuracies on a lossy copy can run lower.")
SYNTHETIC_DATA = "Synthetic demo data: generated images, not CIFAR-10. Results are labelled synthetic."


def _subset(n: int) -> str:
    return f"Trained on a stratified subset of {n:,} training images."


def for_run(meta: dict) -> list[str]:
    """What a reader of one run's figures must know: test-set validation, synthetic data, trained elsewhere."""
    synthetic = (meta.get("data") or {}).get("kind") == "synthetic"
    if meta.get("imported"):
        return [TRAINED_ELSEWHERE] + ([EVALUATED_ON_SYNTHETIC] if synthetic else [])
    notes = []
    if (meta.get("config") or {}).get("validation") == "test":
        notes.append(SEED_PROTOCOL)
    if synthetic:
        notes.append(SYNTHETIC)
    return notes


def for_runs(metas: list[dict]) -> list[str]:
    """The caveats of several runs shown together, each said once and for which runs it holds."""
    notes = []
    for note in dict.fromkeys(n for m in metas for n in for_run(m)):
        held = sum(note in for_run(m) for m in metas)
        notes.append(note if held == len(metas) else f"{held} of these {len(metas)} runs: {note}")
    return notes


def for_study(study: dict) -> list[str]:
    """A study's caveats: its protocol, its data, and a training subset."""
    notes = []
    if study.get("kind") == "seed" or (study.get("config") or {}).get("validation") == "test":
        notes.append(SEED_PROTOCOL)
    data = study.get("data") or {}
    if data.get("kind") == "synthetic" or data.get("source") == "synthetic":
        notes.append(SYNTHETIC)
    if study.get("kind") == "seed" and data.get("lossy"):
        notes.append(LOSSY_COPY)
    if (study.get("config") or {}).get("subset"):
        notes.append(_subset(study["config"]["subset"]))
    return notes
