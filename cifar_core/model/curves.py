"""The budget family's measured time-to-accuracy curves (derived figures, not data), read by model/sizing.py.

Each point is one fast-recipe run of exactly that many epochs on the full CIFAR-10 training split (45,000
images; its one-cycle schedule fitted to those epochs, as a budgeted run fits it) and its final test accuracy
(10,000 images, test-time flips), seed 0, batch 128, mixed bfloat16, each network with specs.FAST's whitening stem
set from the training images (engine/whitening.fit_to_data). Accuracy against epochs does not depend on the
machine: a run's prediction multiplies it by this machine's speed of each network, measured at its launch.

Produced by `python benchmarks/family_curves.py --data ../shared/data/cifar10-jpeg` on an AMD EPYC, 2 cores, flags
avx2 fma avx512f avx512_bf16 (so mixed bfloat16), 2026-11-30 and 12-01, while other work shared the machine (its
speeds then are not used). The longest points are budgeted runs instead (`cifar-lab train --recipe fast
--time-budget B [--arch NET]`, the schedule fitted to the epochs as they ran, the last epoch cut where the time ran
out): fast 14 and 39 epochs (600 s and 1,800 s, sized), fast-w3 10.7 (1,800 s; 10 epochs and 31,360 images). The
same short runs without the stem (the curves before it, seed 0): fast-w0.25 2: 0.6356, 4: 0.6865; fast-w0.5 1:
0.6306, 2: 0.695, 4: 0.7501 (0.7501 again in the stem's session), 8: 0.7915; fast-w0.75 2: 0.7304, 4: 0.7804; fast 2:
0.744, 4: 0.7921 (a budgeted 600 s run, float32).

IMAGES_PER_S: each network's training speed by the launch probe (engine/sizer.py, best of 3; `family_curves.py
--probe-only`, one run on the idle machine, 2026-11-30 23:45), here only for their ratios: a run that measured some
of the family infers the others' speeds from the last one measured.
"""

SOURCE = ("benchmarks/family_curves.py, 2026-11-30/12-01, AMD EPYC 2 cores (avx2 fma avx512f avx512_bf16), "
          "mixed_bfloat16, whitening stem")
TRAIN_IMAGES = 45_000  # an epoch of these curves
CURVES: dict[str, tuple[tuple[float, float], ...]] = {  # network: ((epochs, test accuracy), ...)
    "fast-w0.25": ((2, 0.6573), (4, 0.6977)),
    "fast-w0.5": ((1, 0.6696), (2, 0.7186), (4, 0.7662), (8, 0.8016)),
    "fast-w0.75": ((2, 0.7482), (4, 0.7974)),
    "fast": ((2, 0.7809), (4, 0.8145), (14, 0.8572), (39, 0.8708)),  # 14, 39: budgeted runs (600 s, 1,800 s)
    "fast-w2": ((4, 0.8366), (8, 0.8636)),
    "fast-w3": ((4, 0.8454), (10.7, 0.8823)),  # 10.7: a budgeted run (1,800 s)
}
IMAGES_PER_S = {"fast-w0.25": 4587, "fast-w0.5": 3513, "fast-w0.75": 2204, "fast": 1636, "fast-w2": 644, "fast-w3": 336}
