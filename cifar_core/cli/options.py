"""Options that several commands share (training settings, executors, folders) and what they become."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from cifar_core import backends, data, hardware
from cifar_core.model import recipes, space
from cifar_core.model.config import OPTIMIZERS, PRECISIONS, RECIPES, VALIDATIONS, ConfigError, TrainConfig
from cifar_core.store import runs
from cifar_core.studies import executors, records, search


def add_executor_options(p: argparse.ArgumentParser) -> None:
    """Where a study's runs train: here, one after another, or as tasks on a Ray cluster."""
    d = executors.Executor()
    g = p.add_argument_group("executor", "where a study's runs train")
    g.add_argument("--executor", choices=executors.EXECUTORS, default=d.kind,
                   help="local: one run after another on this machine; ray: every run a Ray task, as many at once "
                        "as the cluster allows (needs pip install 'cifar-lab[cluster]')")
    g.add_argument("--address", default=None, help="with --executor ray: HOST:PORT of the head, 'auto' or "
                   "ray://HOST:10001 (default: $RAY_ADDRESS, else a Ray started on this machine)")
    g.add_argument("--cpus-per-run", type=float, default=d.cpus_per_run, metavar="N",
                   help="with --executor ray: CPUs each run takes (and TensorFlow's threads)")
    g.add_argument("--gpus-per-run", type=float, default=d.gpus_per_run, metavar="N",
                   help="with --executor ray: GPUs each run takes (1: one run per GPU)")


def add_search_options(p: argparse.ArgumentParser) -> None:
    """What `study search` varies and how long it searches (the other options give the preset's own settings)."""
    g = p.add_argument_group("search", "with `study search` (--arch: the architecture searched; --time-budget: the "
                             "trials' total seconds, a trial starting only while the trials so far say it fits)")
    g.add_argument("--space", default=None, help=f"what to vary, e.g. '{space.EXAMPLE}'; keys: {', '.join(space.KEYS)}")
    g.add_argument("--trials", type=int, default=search.Settings("").trials, help="trials to sample")
    g.add_argument("--seeds-for-best", type=int, default=search.DEFAULT_SEEDS, metavar="K",
                   help="retrain the best settings and the preset with K fresh seeds, then test them")
    g.add_argument("--pruner", choices=search.PRUNERS, default="median",
                   help="stop weak trials by validation accuracy: below the median of earlier trials at the same "
                        "epoch, by successive halving, or never")


def executor_from_args(args: argparse.Namespace) -> executors.Executor:
    ex = executors.Executor(args.executor, args.address, args.cpus_per_run, args.gpus_per_run)
    if ex.kind == "local" and (args.address or ex != executors.Executor()):
        raise runs.RunError("--address, --cpus-per-run and --gpus-per-run need --executor ray.")
    return ex.check()


def add_train_options(p: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    p.add_argument("--data", default=None, help="data source (default: $CIFAR_LAB_DATA or the Keras cache)")
    p.add_argument("--epochs", type=int, default=None, help=f"default: {d.epochs}, or the fast recipe's")
    p.add_argument("--batch-size", type=int, default=None, help=f"default: {d.batch_size}, or the fast recipe's")
    p.add_argument("--lr", type=float, default=None, help=f"peak learning rate; default: {d.learning_rate}, or the "
                   "fast recipe's (scaled with the batch size)")
    p.add_argument("--optimizer", default=None, choices=OPTIMIZERS, help=f"default: {d.optimizer}, or the fast "
                   "recipe's")
    p.add_argument("--patience", type=int, default=None, help=f"early-stopping patience; 0 turns it off; default: "
                   f"{d.patience}, or the fast recipe's")
    p.add_argument("--subset", type=int, default=None, help="train on N stratified training images")
    p.add_argument("--test-subset", type=int, default=None, help="evaluate on N stratified test images")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--validation", choices=VALIDATIONS, default=d.validation,
                   help=f"'split': hold out {d.validation_size:,} training images; "
                        "'test': the seed notebook's protocol")
    p.add_argument("--augment", action="store_true", help=f"random flips and {d.translate}-pixel shifts")
    p.add_argument("--seeds", default=None, metavar="N|LIST", help="train once per seed: a count (3: seeds "
                   "--seed .. --seed+2) or a list (0,1,2); runs that differ only in seed form a group")
    p.add_argument("--precision", choices=PRECISIONS, default=d.precision,
                   help="auto: mixed float16 on a GPU, mixed bfloat16 on a CPU with native bf16, else float32")
    p.add_argument("--gpus", type=int, default=d.gpus, metavar="N",
                   help="train one run on N GPUs of this machine (tf.distribute.MirroredStrategy; N >= 2)")
    p.add_argument("--backend", choices=backends.CHOICES, default=backends.default(),
                   help="Keras 3's backend (also $KERAS_BACKEND); auto: the one measured fastest on this machine "
                        "(benchmarks/backends.py --save), else TensorFlow on a CPU and JAX first on a GPU")
    p.add_argument("--recipe", choices=RECIPES, default=d.recipe,
                   help="seed: the settings above; fast: the fast recipe's network and training plan")
    p.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                   help="with --recipe fast: fit the number of epochs so the whole run ends within this time; "
                        "without --arch, the network too (the fast preset's width that is predicted best in it)")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The run's settings: the recipe's, with every training-plan option given on the command line kept."""
    given = {field: value for field, value in (("epochs", args.epochs), ("batch_size", args.batch_size),
                                               ("learning_rate", args.lr), ("optimizer", args.optimizer),
                                               ("patience", args.patience)) if value is not None}
    cfg = replace(TrainConfig(seed=args.seed, validation=args.validation, subset=args.subset,
                              test_subset=args.test_subset, augment=args.augment, precision=args.precision,
                              gpus=args.gpus, backend=args.backend), **given)
    if args.recipe == "fast":
        if args.time_budget and "epochs" in given:
            raise ConfigError("--epochs and --time-budget both set how long the run trains: give one (the budget "
                              "fits the epochs to the time).")
        cfg = replace(recipes.fast_config(cfg, on_gpu=bool(hardware.nvidia_gpus()), time_budget=args.time_budget,
                                          batch_size=given.get("batch_size")), **given)
    elif args.time_budget:
        raise ConfigError("--time-budget needs --recipe fast (the seed recipe's length is its epochs and patience).")
    cfg.check()
    backends.for_run(cfg.backend, cfg.gpus)  # one that is not installed here is refused before any run exists
    return cfg


def runs_dir(args: argparse.Namespace) -> Path:
    return args.runs_dir or runs.default_runs_dir()


def studies_dir(args) -> Path:
    return records.default_studies_dir(runs_dir(args))


def load_data(source: str | None) -> data.Dataset:
    """The data set a run will use, decoded now (with a progress bar the first time), so that bad data is
    reported before any run directory exists."""
    from cifar_core.cli import progress

    source = source or data.default_source()
    data.detect_kind(source)
    with progress.counting(f"decoding {source}") as update:
        return data.load_dataset(source, progress=update)
