"""Training recipes: a network and its training plan, each hyperparameter in one commented place.

`seed` is the original study's plan (Adam 1e-3, batch 32, early stopping) and leaves the spec as it is.
`fast` gets the best model out of the time there is, after the public CIFAR-10 speed records
(KellerJordan/cifar10-airbench): a VGG-style network with batch norm, flip + translate augmentation, label
smoothing, SGD with Nesterov momentum and decoupled weight decay, a one-cycle schedule whose length is fitted
to the time budget, a batch as large as the device likes, and test-time flip averaging.
"""

from __future__ import annotations

from dataclasses import replace

from cifar_core.model.config import TrainConfig

# --- the fast recipe --------------------------------------------------------------------------------------
# The network is specs.FAST (a preset, editable like the others).
FAST_PLAN = dict(
    optimizer="nesterov",  # SGD, momentum 0.9, Nesterov
    schedule="onecycle",  # 20% linear warm-up from a tenth of the peak, then linear decay to zero; a moving
    # average of the weights on top (momentum 0.99, family_curves.py --ema 0.99, same trial as FAST_BATCH's) lost
    # 0.9-1.9 points (0.6621/0.6713): the schedule's decay to zero already averages, and batch norm's statistics
    # belong to the raw weights
    weight_decay=5e-4,  # decoupled (scaled by the learning rate); biases and batch norm are exempt
    label_smoothing=0.2,
    bn_momentum=0.9,  # batch-norm statistics that keep up with a short run
    augment=True,  # random horizontal flip ...
    translate=2,  # ... and a random shift of up to 2 pixels (reflect padding)
    tta=True,  # test predictions averaged with the flipped image's
    patience=0,  # no early stopping: the schedule decides the end
)
FAST_BATCH = {"cpu": 128, "gpu": 1024}  # CPUs are fastest at small batches (cache); GPUs want big ones
# Tried on 2 CPU cores (benchmarks/family_curves.py --subset 20000 --points fast-w0.5:4 [--batch 256], seeds 0, 1):
# batch 256 with the learning rate scaled reached 1.0-1.9 points less test accuracy at equal epochs (0.6625/0.6708
# against 0.6813/0.6807) and no measurable gain in images/s (the launch probe: 2,050/1,808 against 2,035/1,904
# for fast-w0.5, a busy machine), so 128 stays.
FAST_PEAK_LR_PER_256 = 0.2  # peak learning rate, scaled linearly with the batch size
FAST_EPOCHS = 10  # when no time budget is given
FAST_DEFAULT_BUDGET_S = 600


def fast_config(base: TrainConfig, on_gpu: bool, time_budget: float | None = None,
                size_network: bool = False) -> TrainConfig:
    """`base` (seed, validation, subsets, precision) with the fast recipe's training plan; `size_network`: its
    network picked at launch from model/sizing.py's family (needs a time budget)."""
    batch = FAST_BATCH["gpu" if on_gpu else "cpu"]
    return replace(base, recipe="fast", batch_size=batch, learning_rate=FAST_PEAK_LR_PER_256 * batch / 256,
                   epochs=FAST_EPOCHS if time_budget is None else 1000, time_budget=time_budget,
                   size_network=size_network and time_budget is not None, **FAST_PLAN)


DESCRIPTIONS = {
    "seed": "The seed study's plan: Adam 1e-3, batch 32, up to 30 epochs, early stopping with patience 5.",
    "fast": "The fast recipe: SGD with Nesterov momentum, a one-cycle schedule fitted to the time budget, label "
            "smoothing, weight decay, flip + translate augmentation, a large batch and test-time flips.",
}
