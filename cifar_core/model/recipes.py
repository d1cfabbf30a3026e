"""Training recipes: a network and its training plan, each hyperparameter in one commented place.

`seed` is the original study's plan (Adam 1e-3, batch 32, early stopping) and leaves the spec as it is.
`fast` gets the best model out of the time there is, after the public CIFAR-10 speed records
(KellerJordan/cifar10-airbench): a VGG-style network with batch norm behind a patch-whitening first layer set from
the training images (specs.FAST's stem, engine/whitening.py), flip + translate augmentation, label
smoothing, SGD with Nesterov momentum and decoupled weight decay, a one-cycle schedule whose length is fitted
to the time budget, a batch as large as the device likes, and test-time flip averaging.
"""

from __future__ import annotations

from dataclasses import replace

from cifar_core.model.config import TrainConfig

# --- the fast recipe --------------------------------------------------------------------------------------
# The network is specs.FAST (a preset, editable like the others). The trials noted below ran at the earlier peak
# learning rate of 0.2 per 256 images (FAST_PEAK_LR_PER_256 says why it is 0.8 now).
FAST_PLAN = dict(
    optimizer="nesterov",  # SGD, momentum 0.9, Nesterov
    schedule="onecycle",  # 20% linear warm-up from a tenth of the peak, then linear decay to zero; a moving
    # average of the weights on top (momentum 0.99, family_curves.py --ema 0.99, same trial as FAST_BATCH's) lost
    # 0.9-1.9 points (0.6621/0.6713): the schedule's decay to zero already averages, and batch norm's statistics
    # belong to the raw weights
    weight_decay=5e-4,  # decoupled (scaled by the learning rate); biases and batch norm are exempt. 5x that
    # (airbench decays about 5.6x harder per epoch) gave 0.8447 against 0.8454 (family_curves.py --points fast-w3:4
    # --weight-decay 2.5e-3, full data, seed 0): no gain at 4 epochs; at 12 (fast-64-256-256, `--points fast:12
    # --widths 64,256,256`, before pooling first) 0.8933, against 0.8935 for 5e-4 at 12.9 epochs (a budgeted run; its
    # curve puts 0.891 at 12): within a seed's spread, so 5e-4 stays
    label_smoothing=0.2,
    bn_momentum=0.9,  # batch-norm statistics that keep up with a short run
    augment=True,  # random horizontal flip ...
    translate=2,  # ... and a random shift of up to 2 pixels (reflect padding)
    tta=True,  # test predictions averaged with the flipped image's. airbench's second level (both flips of the
    # image shifted 1 pixel diagonally each way too: 6 views) added 0.09-0.17 points for 3x the test passes
    # (benchmarks/tta_views.py, fast-w3 after a 1,800 s budget: 0.8756 as is, 0.8823 with flips, 0.8832 with the
    # shifts weighted as airbench weighs them, 0.8840 all 6 views equal; 2-pixel shifts 0.8840/0.8830): flips only
    patience=0,  # no early stopping: the schedule decides the end
)
FAST_BATCH = {"cpu": 128, "gpu": 1024}  # CPUs are fastest at small batches (cache); GPUs want big ones
# Tried on 2 CPU cores (benchmarks/family_curves.py --subset 20000 --points fast-w0.5:4 [--batch 256], seeds 0, 1):
# batch 256 with the learning rate scaled reached 1.0-1.9 points less test accuracy at equal epochs (0.6625/0.6708
# against 0.6813/0.6807) and no measurable gain in images/s (the launch probe: 2,050/1,808 against 2,035/1,904
# for fast-w0.5, a busy machine), so 128 stays.
# Tried from the speed records on 2 CPU cores and not kept (besides FAST_PLAN's and FAST_BATCH's notes), each at
# equal epochs against the recipe in the same session: benchmarks/family_curves.py --subset 20000 --points
# fast-w0.5:4 --seed S [trial flag], seeds 0-3, recipe 0.6813/0.6807/0.6901/0.6718 (mean 0.681), with the whitening
# stem (specs.FAST) 0.6944/0.7146/0.6951/0.7136 (mean 0.704); speeds by benchmarks/recipe_speed.py (A and B
# alternated in one process, median of the per-round ratios), a machine shared with other work:
# - lookahead (airbench's: every call into the backend the slow weights move toward the fast ones by
#   1 - 0.95**k * (step/total)**3, the fast ones are reset to them, the model ends on the slow ones; --lookahead
#   0.95): 0.6757/0.6820/0.6833/0.6755 (mean 0.679, -0.2 points);
# - identity ("dirac") init of each conv's first in-channels filters (--dirac): 0.6942/0.6812/0.6882/0.6856 (mean
#   0.687, +0.6, within the seeds' spread), and with the stem 0.7069/0.7009/0.7049/0.7029 (mean 0.704, +0.0);
# - batch norm without its scale, as airbench's (--no-bn-scale): 0.6782/0.6811/0.6850/0.6755 (mean 0.680, -0.1);
# - progressive resizing: 24x24 images train 1.48x (fast-w0.5; rounds 1.26-1.74x) and 1.67x (fast; 1.25-1.88x) as
#   many images/s; 5 epochs with the first 3 at 24x24 (bilinear; about the work of 4 at 32x32), stem on
#   (--whiten frozen --resize 24:3): 0.7065/0.7108/0.7022/0.7183 (mean 0.709, +0.5 against the stem's 4 epochs),
#   within the seeds' spread and the speed ratio's uncertainty, where keeping it would need a variable input size,
#   a pipeline that changes per epoch and a planner whose epochs change length;
# - airbench's alternating flip (each image mirrored in every other epoch, a random half in the first, in place of a
#   fresh coin each epoch; family_curves.py --points fast:4 --alternate-flip, full data, seed 0): 0.8225 against
#   0.8244 (at the peak learning rate of 0.8), no gain;
# - GELU in place of every ReLU (airbench's activation; recipe_speed.py --network fast-64-256-256 --variants base
#   activation-gelu): 0.76x the images/s (rounds 0.74-0.80x) with TensorFlow on this CPU, more than any accuracy
#   gain at equal epochs could win back, so not trained;
# - channel order: the network in NCHW (channels_first, images transposed by its first layer) trains 0.36x the
#   images/s of NHWC (rounds 0.33-0.39x) with TensorFlow's oneDNN on this CPU: NHWC stays;
# - XLA (jit_compile, as on a GPU; recipe_speed.py --network fast-64-256-256 --variants base xla, 2026-12-01):
#   0.42x the images/s (rounds 0.41-0.43x; 155-172 against 360-417), as XLA's CPU convolutions are not oneDNN's:
#   models.jit_compile stays off on a CPU.
# At 8 epochs of fast, full data (benchmarks/family_curves.py --points fast:8 --seed S [trial flag]; the recipe
# 0.8515/0.8529 for seeds 0/1), 2026-12-01:
# - airbench's head, each channel's maximum in place of its mean (--head-pool max): 0.8459; with the logits scaled
#   by 1/9 as well (--logit-scale 0.1111): 0.8537/0.8468 (mean -0.2 points);
# - batch norm's biases learning 32x faster (--bn-bias-lr 32; airbench's 64x at its learning rate is about 30x
#   ours): 0.8489; with airbench's momentum 0.85 as well (--momentum 0.85): 0.8517;
# - a hold-out of 1,000 images in place of 5,000 (--validation-size 1000; 49,000 trained): 0.8557, +0.4 points for
#   8.9% more steps, which the curve (0.8257 at 4 epochs, 0.8515 at 8) prices at +0.3: about +0.1 from the data,
#   inside a seed's spread, and the validation curve 2.2x noisier (the best weights are picked on it).
# At 16 epochs of fast (where training accuracy pulls away from the test's; the recipe 0.8699, seed 0):
# - shifts of up to 4 pixels in place of 2 (--translate 4; airbench's for its longer runs): 0.8665;
# - half the peak learning rate (--lr-scale 0.5; the rate was swept at 4 epochs): 0.8642.
FAST_PEAK_LR_PER_256 = 0.8  # peak learning rate, scaled linearly with the batch size. Swept on the fast net, 4 epochs,
# full data, seed 0 (benchmarks/family_curves.py --points fast:4 --lr-scale X): 0.1 0.8014, 0.2 0.8145, 0.4 0.8198,
# 0.8 0.8244, 1.6 0.8203; the decoupled weight decay (times the learning rate) grows with it
FAST_EPOCHS = 10  # when no time budget is given
FAST_DEFAULT_BUDGET_S = 600


def fast_config(base: TrainConfig, on_gpu: bool, time_budget: float | None = None,
                size_network: bool = False, batch_size: int | None = None) -> TrainConfig:
    """`base` (seed, validation, subsets, precision) with the fast recipe's training plan; `size_network`: its
    network picked at launch from model/sizing.py's family (needs a time budget); `batch_size`: another batch than
    the device's, its peak learning rate scaled with it."""
    batch = batch_size or FAST_BATCH["gpu" if on_gpu else "cpu"]
    return replace(base, recipe="fast", batch_size=batch, learning_rate=FAST_PEAK_LR_PER_256 * batch / 256,
                   epochs=FAST_EPOCHS if time_budget is None else 1000, time_budget=time_budget,
                   size_network=size_network and time_budget is not None, **FAST_PLAN)


DESCRIPTIONS = {
    "seed": "The seed study's plan: Adam 1e-3, batch 32, up to 30 epochs, early stopping with patience 5.",
    "fast": "The fast recipe: a network whose first layer whitens the image's patches (set from the training "
            "images), SGD with Nesterov momentum, a one-cycle schedule fitted to the time budget, label smoothing, "
            "weight decay, flip + translate augmentation, a large batch and test-time flips.",
}
