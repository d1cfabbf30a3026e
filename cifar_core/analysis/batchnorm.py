"""Have a model's batch-norm statistics settled? At test time batch norm normalizes with moving averages of the
training batches' statistics; after few steps those averages still hold much of their starting values (mean 0,
variance 1) or lag weights that still change fast, and the model then scores far below what it learned (a
2,000-image study put every batch-norm model at chance). `check` compares each layer's moving statistics with those
of what the layer really receives; `settling_momentum` picks a momentum for short epochs."""

from __future__ import annotations

import numpy as np

CHECK_IMAGES = 512  # training images whose statistics the moving ones are compared with
# The worst layer's gap above which the statistics have not settled. Measured on the batchnorm preset
# (benchmarks/bn_settling.py): every run with a gap of 0.46 or more lost 4.5-28 points of validation accuracy to its
# moving statistics, every run at 0.39 or less lost 1-4.
GAP_LIMIT = 0.4
EPSILON = 1e-3  # Keras's BatchNormalization epsilon
# The moving averages span about 1 / (1 - momentum) batches. Keras's 0.99 spans 100, 1/14 of a full-data epoch
# (1,407 batches of 32): a shorter epoch gets a momentum whose span is the same share of it.
EPOCH_SHARE = 1 / 14
MIN_MOMENTUM = 0.5


def layer_gap(moving_mean: np.ndarray, moving_var: np.ndarray, mean: np.ndarray, var: np.ndarray) -> float:
    """How far a layer's moving statistics lie from the statistics of its input, averaged over channels: the
    moving mean's offset in standard deviations of the input plus the moving standard deviation's relative
    error (0: the layer normalizes its input exactly as in training)."""
    std = np.sqrt(var + EPSILON)
    offset = np.abs(moving_mean - mean) / std
    scale = np.abs(np.sqrt(moving_var + EPSILON) / std - 1)
    return float(np.mean(offset + scale))


def summary(gaps: dict[str, float], images: int) -> dict | None:
    """The run.json record of a check: each layer's gap, the worst layer, and whether every layer settled;
    None for a model without batch norm."""
    if not gaps:
        return None
    worst = max(gaps, key=gaps.get)
    return {"settled": gaps[worst] <= GAP_LIMIT, "worst_layer": worst, "worst_gap": round(gaps[worst], 4),
            "gaps": {name: round(gap, 4) for name, gap in gaps.items()}, "images": images,
            "limit": GAP_LIMIT}


def unsettled(meta: dict) -> bool:
    """Whether a run's record says its batch-norm statistics had not settled (False when never checked)."""
    return (meta.get("bn_check") or {}).get("settled") is False


def settling_momentum(steps_per_epoch: int, default: float) -> float:
    """The batch-norm momentum for an epoch of `steps_per_epoch` batches: one whose averages span EPOCH_SHARE of
    the epoch, so each epoch's weights are judged with statistics of that epoch's end; never above `default`
    (the full data set keeps Keras's 0.99) nor below MIN_MOMENTUM. 2,000 images give 0.75 (57 batches)."""
    span = steps_per_epoch * EPOCH_SHARE
    return round(min(default, max(MIN_MOMENTUM, 1 - 1 / max(span, 1))), 2)
