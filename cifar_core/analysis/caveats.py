"""The warnings that travel with a result wherever it is shown: each sentence is written once, here."""

from __future__ import annotations

import math
from collections.abc import Sequence

from cifar_core.analysis import batchnorm, layers
from cifar_core.model.recipes import FAST_PLAN
from cifar_core.store import rundir

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

BN_UNSETTLED = ("Its batch-norm statistics had not settled when training ended (the averages it normalizes with at "
                "test time still lag the data), so its test and validation figures understate the model: train longer "
                "or on more images.")
BN_SETTLED = ("Batch-norm statistics settled: whether the averages a batch-norm model normalizes with at test time "
              "had caught up with its training data when training ended (empty for a model without batch norm).")
ACCURACY_GAP = ("Accuracy gap: training accuracy minus validation accuracy at the last epoch; the larger it is, the "
                "more the model has memorised its training images rather than learned what carries over.")

LABEL_ISSUES_TRUST = ("Likely label errors are judged by the models themselves (confident learning): an image is "
                      "flagged when its given label disagrees with what the models are sure of. A model that is "
                      "often confidently wrong flags its own mistakes too; published audits of CIFAR-10's test set "
                      "put its real label errors near half a percent. Look at the images before you believe a flag.")
SET_ASIDE = ("Accuracy with the flagged images set aside is optimistic by construction: the same models chose which "
             "images to set aside. Read it as an upper bound, never as the model's accuracy.")


MODELS_NOT_SETTINGS = ("McNemar's test compares these two trained models, not their settings: another seed of either "
                       "would land elsewhere. Whether one setting beats another takes a few seeds of each (`cifar-lab "
                       "train --seeds 3`, or a study on the Experiments page) and the spread of their accuracies.")
SEED_ONLY = ("These two runs differ only in their seed: whatever separates them is two draws of the same settings, "
             "not the effect of a setting.")


def for_pair(meta_a: dict, meta_b: dict, only_seed_differs: bool) -> list[str]:
    """What a reader of one run tested against another must know: each run's caveats, and what the test compares."""
    return [*for_runs([meta_a, meta_b]), *([SEED_ONLY] if only_seed_differs else []), MODELS_NOT_SETTINGS]


def label_issues_weak(accuracy: float, flagged_share: float) -> str | None:
    """Why a flagged share above twice the half percent of real errors says more about the models than the labels
    (a 0.896 run flagged 2.0%, 19 of the 24 cat images it took for dogs on one page)."""
    if flagged_share <= 0.01:
        return None
    return (f"{flagged_share:.1%} of the images are flagged by models of {accuracy:.1%} accuracy: more than twice "
            "the half percent of real label errors audits found, so most flags here are the models' confident "
            "mistakes. Averaging several stronger runs (a seed group, or runs picked on Compare) flags fewer and "
            "better.")


GRAD_CAM_SCALE = ("Colours run from dark (no evidence) to light yellow (the strongest evidence in that map); each map "
                  "is scaled to its own strongest point, so compare colours within a map, not between images.")


def smoothed_loss_floor(amount: float, classes: int = 10) -> float:
    """The least cross-entropy against label-smoothed targets: their own entropy (0.87 at 0.2 over 10 classes)."""
    top, rest = 1 - amount + amount / classes, amount / classes
    return -(top * math.log(top) + (classes - 1) * rest * math.log(rest))


def for_curves(metas: Sequence[dict], classes: int = 10) -> list[str]:
    """What a reader of loss curves must know: a run trained with label smoothing reports that objective as its
    loss (training and validation alike), which cannot fall below the smoothed targets' entropy."""
    amounts = [(m.get("config") or {}).get("label_smoothing") or 0 for m in metas]
    smoothed = sorted({a for a in amounts if a})
    if not smoothed:
        return []
    floors = ", ".join(f"{smoothed_loss_floor(a, classes):.2f} at {a:g}" for a in smoothed)
    note = (f"Loss is each run's training objective: with label smoothing it cannot fall below the smoothed targets' "
            f"entropy ({floors}). The test loss in the tables is plain cross-entropy.")
    if len(set(amounts)) > 1:
        note += " These runs differ in label smoothing: compare their accuracy curves, not their losses."
    return [note]


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


def bn_momentum_lowered(chosen: float, default: float, steps_per_epoch: int) -> str:
    """Why a short study's batch-norm runs train with a lower momentum than the seed study's."""
    return (f"Batch-norm momentum {chosen:g} instead of {default:g}: an epoch here is only {steps_per_epoch:,} "
            f"batches, and at {default:g} the moving statistics would still lag the training when each epoch ends "
            "(measured: at chance on 2,000 images), understating every batch-norm model.")


def _subset(n: int, held: str = "") -> str:
    return f"Trained on a stratified subset of {n:,} training images{held}."


def _small_run(meta: dict) -> str | None:
    """A run trained on a subset: how few images its figures rest on (validation included, which picks the epoch
    a seed-recipe run keeps)."""
    subset = (meta.get("config") or {}).get("subset")
    if not subset:
        return None
    sizes = meta.get("sizes") or {}
    if not {"validation", "test"} <= set(sizes):
        return _subset(subset)
    on_test = (meta.get("config") or {}).get("validation") == "test"
    held = f" ({sizes['test']:,} tested)" if on_test else (f" ({sizes['validation']:,} held out for validation, "
                                                          f"{sizes['test']:,} tested)")
    return _subset(subset, held)


def _test_subset(meta: dict) -> str | None:
    """A run tested on part of the test set: its test figures rest on that many images."""
    n = (meta.get("config") or {}).get("test_subset")
    return f"Tested on a stratified subset of {n:,} test images: its test figures are that much less certain." if n \
        else None


def over_budget(used_s: float, budget_s: float) -> str:
    """A budgeted run that ran past its budget: its figures do not say what fits in that time here."""
    return (f"Took {used_s:,.0f} s of its {budget_s:,.0f} s time budget ({used_s / budget_s:.0%}): it overran, so "
            "its figures do not show what fits in that budget on this machine.")


def resumed_budget(epoch: int) -> str:
    """A budgeted run resumed mid-plan: from `epoch` on it trained to the plan without the budget's clock."""
    return (f"Resumed after an interruption: its time budget fitted the plan at its first launch; from epoch {epoch} "
            "on it trained to that plan without a clock, so its time is not the budget's.")


def _time_budget(meta: dict) -> str | None:
    """What a budgeted run's time says: nothing, unless it was resumed mid-plan or ran past its budget."""
    budget = (meta.get("config") or {}).get("time_budget")
    if budget and meta.get(rundir.UNCLOCKED_FROM):
        return resumed_budget(meta[rundir.UNCLOCKED_FROM])
    if not budget or not meta.get("finished") or not meta.get("launched"):
        return None
    used = meta["finished"] - meta["launched"]
    return over_budget(used, budget) if used > budget else None


def pruned(epoch: int, study: str) -> str:
    """What a pruned trial's figures are: those of a run its search stopped early."""
    return (f"Pruned by search {study} after epoch {epoch}: a weak trial (its validation accuracy below the earlier "
            "trials' at that epoch), stopped early; its figures are those of a shortened run.")


def for_run(meta: dict) -> list[str]:
    """What a reader of one run's figures must know: test-set validation, synthetic data, trained elsewhere,
    batch-norm statistics that had not settled, a training subset, a time budget overrun or resumed."""
    synthetic = (meta.get("data") or {}).get("kind") == "synthetic"
    if meta.get("imported"):
        return [TRAINED_ELSEWHERE] + ([EVALUATED_ON_SYNTHETIC] if synthetic else [])
    notes = []
    if (meta.get("config") or {}).get("validation") == "test":
        notes.append(SEED_PROTOCOL)
    if synthetic:
        notes.append(SYNTHETIC)
    if batchnorm.unsettled(meta):
        notes.append(BN_UNSETTLED)
    notes += [note for note in (_small_run(meta), _test_subset(meta), _time_budget(meta)) if note]
    if meta.get("status") == rundir.PRUNED and meta.get(rundir.PRUNED_AT):
        notes.append(pruned(meta[rundir.PRUNED_AT], meta.get("study", "?")))
    return notes


def for_runs(metas: list[dict]) -> list[str]:
    """The caveats of several runs shown together, each said once and for which runs it holds."""
    notes = []
    for note in dict.fromkeys(n for m in metas for n in for_run(m)):
        held = sum(note in for_run(m) for m in metas)
        notes.append(note if held == len(metas) else f"{held} of these {len(metas)} runs: {note}")
    return notes


def unsettled_runs(unsettled: int, runs: int) -> str:
    """A study's note on its runs whose batch-norm statistics had not settled, as one sentence."""
    return f"{unsettled} of its {runs} runs: {BN_UNSETTLED[0].lower()}{BN_UNSETTLED[1:]}"


def for_study(study: dict, metas: Sequence[dict] = ()) -> list[str]:
    """A study's caveats: its protocol, its data, a training subset, and its runs (`metas`, their run.json) whose
    batch-norm statistics had not settled."""
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
    unsettled = sum(map(batchnorm.unsettled, metas))
    if unsettled:
        notes.append(unsettled_runs(unsettled, len(metas)))
    return notes


NO_LAYER_RECORDS = ("This run kept no layer records: it was trained before the lab recorded what each layer does, or "
                    "with recording turned off. Train it again to see inside the network.")
IMPORTED_LAYER_RECORD = ("An imported run: one record, taken at import on 256 test images. It was trained elsewhere, "
                         "so there is no history of how its layers changed.")
LAYER_TABLE_GAPS = (f"{layers.NOT_APPLICABLE}: does not apply there: no activations on a batch norm's own row (they "
                    "are its conv's, after the ReLU), no gradient for a frozen layer (the whitening stem), no drift "
                    "without a batch norm, no update before training.")
LAYER_MEASURES = ("Taken on one fixed batch of 256 validation images with the model in inference mode. Gradient norm: "
                  "how strongly the loss pulls on the layer's weights (tiny in early layers = vanishing gradients). "
                  "Activation std: the spread of the layer's outputs after its ReLU. Dead channels: the share that "
                  "is zero for every image. Relative update: how far the weights moved since the record before.")
