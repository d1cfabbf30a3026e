"""The budget family's measured time-to-accuracy curves (derived figures, not data), read by model/sizing.py.

Each point is one fast-recipe run of exactly that many epochs on the full CIFAR-10 training split (45,000
images; its one-cycle schedule fitted to those epochs, as a budgeted run fits it) and its final test accuracy
(10,000 images, test-time flips), seed 0, batch 128, mixed bfloat16, each network with specs.FAST's whitening stem
set from the training images (engine/whitening.fit_to_data). Accuracy against epochs does not depend on the
machine: a run's prediction multiplies it by this machine's speed of each network, measured at its launch.

Produced by `python benchmarks/family_curves.py --data ../shared/data/cifar10-jpeg` on an AMD EPYC, 2 cores, flags
avx2 fma avx512f avx512_bf16 (so mixed bfloat16), 2026-12-01, with the peak learning rate of 0.8 per 256 images
(recipes.FAST_PEAK_LR_PER_256), while other work shared the machine (its speeds then are not used). fast 4 is the
learning-rate sweep's point at that rate (`--points fast:4 --lr-scale 4` before it became the recipe's). The curves
at the earlier rate of 0.2 (the same seed), each point lower:
fast-w0.25 2: 0.6573, 4: 0.6977; fast-w0.5 1: 0.6696, 2: 0.7186, 4: 0.7662, 8: 0.8016; fast-w0.75 2: 0.7482, 4:
0.7974; fast 2: 0.7809, 4: 0.8145, 14: 0.8572, 39: 0.8708 (budgeted runs); fast-w2 4: 0.8366, 8: 0.8636; fast-w3 4:
0.8454, 10.7: 0.8823 (a budgeted run), and 8: 0.8746 (a sized 1,800 s run: 0.8802 at the new rate in 7.6).

fast-64-256-256 (sizing.STAGE_WIDTHS), added 2026-12-01 at the same rate, all three points pooling first: 4 by
`--points fast:4 --widths 64,256,256`, 10.29 and 15.68 sized 1,800 s runs that chose it (`cifar-lab
train --recipe fast --time-budget 1800`: 10 epochs and 102 batches, trained in float32 before runtime.clear_session
kept the policy; 15 epochs and 238 batches, mixed bfloat16). Before pooling first: 4: 0.8486, 9.05: 0.8813 and
12.9: 0.8935 (budgeted runs). 24.05: a sized 1,800 s run on an Intel Xeon with AMX (avx512_bf16 amx_bf16, mixed
bfloat16, 2026-12-02: 24 epochs and 2,160 images of a 25th, 96.3% of its budget), whose prediction from the curve
then ending at 15.68 was 0.8976 (past the curve), and reached 0.9034; one seed, as every point here.

Pooling first (specs.FAST's first conv of each stage max-pooled before its BN and ReLU, since 2026-12-01 09:20):
every point of fast-w0.25, fast-w0.5, fast-w0.75 and fast's 2 and 4 was measured again with it (`family_curves.py
--points fast-w0.25:2,4 fast-w0.5:1,4,8 fast-w0.75:2,4 fast:2,4`, and fast-w0.5:2; `--pool-after` gives the
earlier order). The earlier order's: fast-w0.25 2: 0.6824, 4: 0.7171; fast-w0.5 1: 0.6803, 2: 0.7322, 4: 0.7790,
8: 0.8116; fast-w0.75 2: 0.7670, 4: 0.8077; fast 2: 0.7888, 4: 0.8244: about the same at equal epochs (-1.0 to +1.1
points, one seed). fast 8 and 16 were added pooling first (`--points fast:8,16`, 2026-12-01 12:00-12:33; seed 1 gave
0.8529 at 8), in place of the earlier order's 14: 0.8629. fast-w2 and fast-w3 pooling first: `--points fast-w2:4,8`
(2026-12-01 14:09-14:25) and `--points fast-w3:4,8` (14:58-15:41, beside other work); the earlier order's were
fast-w2 4: 0.8425, 8: 0.8735, and fast-w3 4: 0.8489, 7.6: 0.8802 (a sized 1,800 s run in float32: 7 epochs and
26,880 images, its schedule fitted to the steps as they ran). The 1-epoch points of fast-w0.25, fast-w0.75 and fast
(`--points fast-w0.25:1 fast-w0.75:1 fast:1`, 2026-12-01 16:15-16:21) replace, for a 60 s budget's one or two epochs,
the straight line from chance below each curve's first point that sizing.curve_accuracy draws: it put fast at 1.09
epochs at 0.47, where one epoch reaches 0.72.

IMAGES_PER_S: each network's training speed by the launch probe (engine/sizer.py, best of 3; `family_curves.py
--probe-only`, one run on the idle machine, 2026-12-01 09:18, pooling first), here only for their ratios: a run
that measured some of the family infers the others' speeds from the last one measured (with
these ratios where no earlier run on its machine measured both: sizing.machine_speeds). Before pooling first:
4587, 3513, 2204, 1636, 644, 391 (fast-w3's times the 1.164 benchmarks/recipe_speed.py measured; the probe saw
327 against 324), 336.
"""

SOURCE = ("benchmarks/family_curves.py, 2026-12-01, AMD EPYC 2 cores (avx2 fma avx512f avx512_bf16), "
          "mixed_bfloat16, whitening stem, peak learning rate 0.8 per 256")
TRAIN_IMAGES = 45_000  # an epoch of these curves
CURVES: dict[str, tuple[tuple[float, float], ...]] = {  # network: ((epochs, test accuracy), ...)
    "fast-w0.25": ((1, 0.6401), (2, 0.6727), (4, 0.7118)),
    "fast-w0.5": ((1, 0.6710), (2, 0.7414), (4, 0.7898), (8, 0.8140)),
    "fast-w0.75": ((1, 0.6981), (2, 0.7627), (4, 0.8161)),
    "fast": ((1, 0.7172), (2, 0.7812), (4, 0.8257), (8, 0.8515), (16, 0.8699)),
    "fast-w2": ((4, 0.8490), (8, 0.8750)),
    "fast-64-256-256": ((4, 0.8556), (10.29, 0.8905), (15.68, 0.8976), (24.05, 0.9034)),  # pool first; all but 4:
    # sized 1,800 s runs
    "fast-w3": ((4, 0.8542), (8, 0.8824)),
}
IMAGES_PER_S = {"fast-w0.25": 5605, "fast-w0.5": 4482, "fast-w0.75": 2808, "fast": 2263, "fast-w2": 687,
                "fast-64-256-256": 470, "fast-w3": 400}
