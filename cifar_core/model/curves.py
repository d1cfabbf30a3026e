"""The budget family's measured time-to-accuracy curves (derived figures, not data), read by model/sizing.py.

Each point is one fast-recipe run of exactly that many epochs on the full CIFAR-10 training split (45,000
images; its one-cycle schedule fitted to those epochs, as a budgeted run fits it) and its final test accuracy
(10,000 images, test-time flips), seed 0, batch 128, mixed bfloat16. Accuracy against epochs does not depend on
the machine: a run's prediction multiplies it by this machine's speed of each network, measured at its launch.

Produced by `python benchmarks/family_curves.py --data ../shared/data/cifar10-jpeg` (the points of
fast-w0.75 and fast with `--points fast-w0.75:2,4 fast:2`) on an AMD EPYC, 2 cores, flags avx2 fma avx512f
avx512_bf16 (so mixed bfloat16), 2026-11-30, while other work shared the machine (its speeds then are not used).
The fast network's 4 and 11 epochs are the budgeted runs issue 28 reports (600 s and 1,800 s on a 2-core EPYC
with AVX2 only, float32; their schedules were fitted to the epochs as they ran).

IMAGES_PER_S: each network's training speed by the launch probe (engine/sizer.py), here only for their ratios:
a run that measured some of the family infers the others' speeds from the last one measured.
"""

SOURCE = "benchmarks/family_curves.py, 2026-11-30, AMD EPYC 2 cores (avx2 fma avx512f avx512_bf16), mixed_bfloat16"
TRAIN_IMAGES = 45_000  # an epoch of these curves
CURVES: dict[str, tuple[tuple[float, float], ...]] = {  # network: ((epochs, test accuracy), ...)
    "fast-w0.25": ((2, 0.6356), (4, 0.6865)),
    "fast-w0.5": ((1, 0.6306), (2, 0.695), (4, 0.7501), (8, 0.7915)),
    "fast-w0.75": ((2, 0.7304), (4, 0.7804)),
    "fast": ((2, 0.744), (4, 0.7921), (11, 0.8373)),  # 4 and 11: issue 28's budgeted runs (float32, AVX2 EPYC)
}
# engine/probe.py's model-only speeds (random images, no augmentation) on the idle machine above, 17:49
IMAGES_PER_S = {"fast-w0.25": 5735, "fast-w0.5": 3673, "fast-w0.75": 2253, "fast": 888}
