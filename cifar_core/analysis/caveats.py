"""The warnings that travel with a result wherever it is shown: each sentence is written once, here."""

from __future__ import annotations

from cifar_core.model.recipes import FAST_PLAN

SEED_PROTOCOL = ("Validated and early-stopped on the test set (the seed notebook's protocol): "
                 "its test accuracy is optimistic.")
SYNTHETIC = "Trained on synthetic demo data (generated images), not CIFAR-10."
TRAINED_ELSEWHERE = ("Trained elsewhere and imported: no training curves, settings or validation figures; its "
                     "test figures come from evaluating it on this data's test set when it was imported.")
EVALUATED_ON_SYNTHETIC = "Evaluated on synthetic demo data (generated images), not CIFAR-10."
LOSSY_COPY = ("These images are a JPEG copy of CIFAR-10, not its original pixels, which the published figures "
              "come from: accuracies on a lossy copy can run lower.")
SYNTHETIC_DATA = "Synthetic demo data: generated images, not CIFAR-10. Results are labelled synthetic."
CLASSWISE_ECE = ("Overall and classwise ECE are different quantities: the overall ECE checks the top-label confidence "
                 "(the probability of the predicted class), while each classwise ECE checks that class's own "
                 "probability column across all test images, mostly near-zero probabilities for images of other "
                 "classes, which are easy to get right. Classwise values far below the overall one are expected.")

GRAD_CAM_SCALE = ("Colours run from dark (no evidence) to light yellow (the strongest evidence in that map); each map "
                  "is scaled to its own strongest point, so compare colours within a map, not between images.")


def label_smoothing(amount: float, classes: int = 10) -> str:
    """Why a model trained with label smoothing reads as under-confident: it was trained to be."""
    top = 1 - amount + amount / classes
    return (f"Trained with label smoothing {amount:g} (the fast recipe uses {FAST_PLAN['label_smoothing']:g}): "
            f"its training targets put only {top:.0%} on the right class, so the model is under-confident by design "
            "(points above the diagonal) and its ECE counts that as a calibration gap.")


def for_calibration(meta: dict) -> list[str]:
    """What a reader of one run's calibration figures must know: label smoothing lowers confidence on purpose."""
    amount = (meta.get("config") or {}).get("label_smoothing") or 0
    return [label_smoothing(amount)] if amount else []


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


NO_LAYER_RECORDS = ("This run kept no layer records: it was trained before the lab recorded what each layer does, or "
                    "with recording turned off. Train it again to see inside the network.")
IMPORTED_LAYER_RECORD = ("An imported run: one record, taken at import on 256 test images. It was trained elsewhere, "
                         "so there is no history of how its layers changed.")
LAYER_MEASURES = ("Taken on one fixed batch of 256 validation images with the model in inference mode. Gradient norm: "
                  "how strongly the loss pulls on the layer's weights (tiny in early layers = vanishing gradients). "
                  "Activation std: the spread of the layer's outputs after its ReLU. Dead channels: the share that "
                  "is zero for every image. Relative update: how far the weights moved since the record before.")
