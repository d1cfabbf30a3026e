"""The budget family's time-to-accuracy curves, per unit of work: for each network of `sizing.FAMILY` and each
number of epochs E, one fast-recipe run of exactly E epochs (its one-cycle schedule fitted to E, as a budgeted run
fits it) on the full training split, and its final test accuracy with test-time flips. Accuracy against epochs does
not depend on the machine; its speed is measured at each launch. Prints each point as it lands (and appends it to
--out as a JSON line): the points cifar_core/model/curves.py holds.

    python benchmarks/family_curves.py [--data ../shared/data/cifar10-jpeg] [--points fast-w0.5:1,2,4 ...]
                                       [--batch N] [--probe-only]

--batch N (with --subset N and --seed S) trains with another batch, the peak learning rate scaled with it as
the recipe scales it; --lr-scale X with the peak learning rate times X; --weight-decay W with another decoupled
weight decay; --ema M with a moving average of the weights; --whiten, --dirac, --no-bn-scale, --lookahead B,
--resize SIZE:EPOCHS, --alternate-flip, --widths A,B,C, --head-pool max, --logit-scale X, --momentum M and
--bn-bias-lr X with benchmarks/recipe_trials.py's changes; --translate N and --validation-size N with another shift or
hold-out: recipe trials.
--probe-only prints the launch probe's speed of each network (engine/sizer.py, best of --repeats), for
curves.IMAGES_PER_S, and trains nothing.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import recipe_trials  # benchmarks/recipe_trials.py, beside this script

from cifar_core import data, hardware
from cifar_core.engine import runtime
from cifar_core.model import recipes, sizing
from cifar_core.model.config import TrainConfig

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg"
DEFAULT_POINTS = ("fast-w0.25:2,4", "fast-w0.5:1,2,4,8", "fast-w0.75:2,4,8", "fast:2,4")


def run_point(arrays: dict, name: str, epochs: int, cfg: TrainConfig, ema: float = 0.0,
              trial: recipe_trials.Trial | None = None) -> dict:
    """One run of `epochs` epochs of family network `name`: final test accuracy and steady training images/s."""
    import keras

    from cifar_core.engine import pipeline
    from cifar_core.engine.models import compile_model, learning_rate
    from cifar_core.engine.whitening import fit_to_data

    cfg = replace(cfg, epochs=epochs, time_budget=None)
    trial = trial or recipe_trials.Trial()
    keras.utils.set_random_seed(cfg.seed)
    steps = -(-len(arrays["y_train"]) // cfg.batch_size)
    lr = learning_rate(cfg, steps)
    model = recipe_trials.build(sizing.spec(name), cfg.bn_momentum, trial)
    fit_to_data(model, arrays["x_train"], cfg.seed)
    model = compile_model(model, cfg, steps, lr)
    recipe_trials.tune_optimizer(model, trial)
    if ema:  # a moving average of the weights, copied into the model when fit ends (Keras's optimizer EMA)
        model.optimizer.use_ema, model.optimizer.ema_momentum = True, ema
        model.optimizer.ema_overwrite_frequency = None
    times: list[float] = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t0)

    callbacks = [Clock()]
    if trial.lookahead:
        callbacks.append(recipe_trials.lookahead_callback(trial.lookahead, epochs * steps))
    train = pipeline.make_dataset(arrays["x_train"], arrays["y_train"], cfg.batch_size, cfg.seed, cfg.augment,
                                  cfg.translate)
    if trial.alternate_flip:
        train = recipe_trials.alternating_flip_dataset(arrays["x_train"], arrays["y_train"], cfg.batch_size,
                                                       cfg.seed, cfg.translate)
    size, small_epochs = trial.resize
    if small_epochs:  # the first epochs at a lower resolution: the same schedule (its step count carries on)
        model.fit(recipe_trials.resized(train, size), epochs=min(small_epochs, epochs), verbose=0, shuffle=False,
                  callbacks=callbacks)
    if epochs > small_epochs:
        model.fit(train, epochs=epochs, initial_epoch=small_epochs, verbose=0, shuffle=False, callbacks=callbacks)
    acc = float((pipeline.predict(model, arrays["x_test"], cfg.tta).argmax(1) == arrays["y_test"]).mean())
    steady = sorted(times[1:] or times)[len(times[1:] or times) // 2]
    return {"network": name, "epochs": epochs, "test_accuracy": round(acc, 4), **trial.changed(),
            "train_images": len(arrays["y_train"]),
            "images_per_s": round(len(arrays["y_train"]) / steady), "epoch_seconds": [round(t, 1) for t in times]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA) if DEFAULT_DATA.exists() else "synthetic")
    parser.add_argument("--points", nargs="*", default=list(DEFAULT_POINTS), metavar="NET:E,E,...")
    parser.add_argument("--out", type=Path, default=Path("family_curves.jsonl"))
    parser.add_argument("--batch", type=int, default=None, help="another batch size (a recipe trial)")
    parser.add_argument("--weight-decay", type=float, default=None, help="another weight decay (a recipe trial)")
    parser.add_argument("--lr-scale", type=float, default=1.0,
                        help="the peak learning rate times this (a recipe trial)")
    parser.add_argument("--probe-only", action="store_true", help="print the launch probe's speeds, train nothing")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--subset", type=int, default=None, help="train on N stratified images (a recipe trial)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--translate", type=int, default=None,
                        help="random shifts of up to this many pixels in place of the recipe's (a recipe trial)")
    parser.add_argument("--validation-size", type=int, default=None,
                        help="hold out this many training images in place of the recipe's (a recipe trial)")
    parser.add_argument("--ema", type=float, default=0.0, help="train with a moving average of the weights of this "
                        "momentum, taken as the final weights (a recipe trial)")
    parser.add_argument("--whiten", choices=("frozen", "trainable", "linear"), default="",
                        help="a 2x2 patch-whitening first layer set from the training images (a recipe trial)")
    parser.add_argument("--dirac", action="store_true", help="convs start as the identity (a recipe trial)")
    parser.add_argument("--no-bn-scale", action="store_true", help="batch norm without a scale (a recipe trial)")
    parser.add_argument("--lookahead", type=float, default=0.0, metavar="BASE",
                        help="airbench's lookahead with this decay base, e.g. 0.95 (a recipe trial)")
    parser.add_argument("--resize", default="", metavar="SIZE:EPOCHS",
                        help="the first EPOCHS epochs at SIZE x SIZE (a recipe trial)")
    parser.add_argument("--widths", default="", metavar="A,B,C",
                        help="each stage's filters instead of the network's (a recipe trial)")
    parser.add_argument("--pool-after", action="store_true", help="each block's pooling after its batch norm and "
                        "ReLU, the fast preset's order before it pooled first (a recipe trial)")
    parser.add_argument("--activation", default="relu", help="another activation than ReLU, e.g. gelu (a recipe "
                        "trial)")
    parser.add_argument("--alternate-flip", action="store_true",
                        help="each image flipped in every other epoch, as airbench flips (a recipe trial)")
    parser.add_argument("--head-pool", choices=("avg", "max"), default="avg",
                        help="the head's global pooling: max as airbench pools (a recipe trial)")
    parser.add_argument("--logit-scale", type=float, default=1.0,
                        help="the logits times this before the softmax, airbench's 1/9 (a recipe trial)")
    parser.add_argument("--momentum", type=float, default=0.0, help="another SGD momentum, e.g. airbench's 0.85 "
                        "(a recipe trial)")
    parser.add_argument("--bn-bias-lr", type=float, default=1.0, help="batch norm's biases learn this many times "
                        "faster, e.g. airbench's 64 (a recipe trial)")
    args = parser.parse_args()
    trial = recipe_trials.Trial(whiten=args.whiten, dirac=args.dirac, bn_scale=not args.no_bn_scale,
                                lookahead=args.lookahead, alternate_flip=args.alternate_flip,
                                activation=args.activation, pool_after=args.pool_after,
                                head_pool=args.head_pool, logit_scale=args.logit_scale,
                                momentum=args.momentum, bn_bias_lr=args.bn_bias_lr,
                                widths=tuple(int(w) for w in args.widths.split(",") if w),
                                resize=tuple(int(v) for v in args.resize.split(":")) if args.resize else (0, 0))
    runtime.tensorflow()
    precision = runtime.configure(0, "auto")
    print(hardware.describe_machine(), f"precision {precision.policy}", flush=True)
    from cifar_core.engine.pipeline import prepare_data

    base = recipes.fast_config(TrainConfig(layer_records=False, subset=args.subset, seed=args.seed), on_gpu=False)
    if args.batch:
        base = replace(base, batch_size=args.batch, learning_rate=recipes.FAST_PEAK_LR_PER_256 * args.batch / 256)
    if args.weight_decay is not None:
        base = replace(base, weight_decay=args.weight_decay)
    base = replace(base, learning_rate=base.learning_rate * args.lr_scale)
    if args.translate is not None:
        base = replace(base, translate=args.translate)
    if args.validation_size is not None:
        base = replace(base, validation_size=args.validation_size)
    arrays = prepare_data(data.load_dataset(args.data), base)
    if args.probe_only:
        from cifar_core.engine import sizer

        for name, spec in sizing.FAMILY.items():
            best = max(sizer.speed(spec, base, arrays) for _ in range(args.repeats))
            print(json.dumps({"network": name, "probe_images_per_s": round(best), "batch": base.batch_size}),
                  flush=True)
        return
    for item in args.points:
        name, epochs = item.split(":")
        for e in (int(x) for x in epochs.split(",")):
            point = run_point(arrays, name, e, base, args.ema, trial)
            print(json.dumps(point), flush=True)
            with args.out.open("a") as fh:
                fh.write(json.dumps({**point, "precision": precision.policy, "batch": base.batch_size,
                                     "subset": args.subset, "translate": base.translate, "seed": args.seed,
                                     "ema": args.ema,
                                     "weight_decay": base.weight_decay,
                                     "learning_rate": base.learning_rate}) + "\n")


if __name__ == "__main__":
    main()
