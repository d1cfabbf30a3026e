"""What a study trains: its kinds, the runs each plans, and seeds (pure Python: no run exists yet)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from cifar_core.analysis import batchnorm, caveats
from cifar_core.model import specs
from cifar_core.model.config import TrainConfig
from cifar_core.model.specs import ArchitectureSpec
from cifar_core.store import runs

DESCRIPTIONS = {
    "depth": "1 to 5 conv blocks of the baseline family (channels doubling from 32), with and without batch norm.",
    "batchnorm": "Each preset with and without batch normalization.",
    "dropout": "The batchnorm preset with dropout 0, 0.1, 0.25 and 0.4 after every block and in the head.",
    "architectures": "Every preset and every saved custom architecture.",
    "seed": "baseline, deeper and batchnorm under the seed notebook's protocol (Adam, batch 32, up to 30 epochs, "
            "early stopping with patience 5, validation on the test set), compared with its published figures.",
    "seeds": "One architecture and training config, trained once per seed: its spread.",
    "search": "The best settings of one architecture (learning rate, dropout, batch size, width, ...): Optuna samples "
              "trials and prunes weak ones by validation accuracy; the best settings and the preset are then "
              "retrained over fresh seeds and compared on the test set.",
}


KINDS = tuple(DESCRIPTIONS)
LABELS = {"depth": "depth", "batchnorm": "batch norm", "dropout": "dropout", "architectures": "architectures",
          "seed": "the seed study", "seeds": "one setup over seeds", "search": "search"}  # for people; KINDS for code


DROPOUT_RATES = (0.0, 0.1, 0.25, 0.4)


SEED_STUDY_ARCHS = ("baseline", "deeper", "batchnorm")


MAX_SEEDS = 20


REPRODUCE_SEEDS = 3  # `reproduce` averages this many seeds unless told otherwise


@dataclass
class PlannedRun:
    """One run of a study: its spec and config, and the setting it varies (labels)."""

    name: str
    spec: ArchitectureSpec
    config: TrainConfig
    labels: dict = field(default_factory=dict)


def parse_seeds(text: str | int | None, base: int = 0) -> list[int] | None:
    """`--seeds`: a count N (seeds base .. base+N-1) or a comma-separated list; None means one run each."""
    if text is None or str(text).strip() in ("", "1"):
        return None
    try:
        seeds = ([base + i for i in range(int(text))] if "," not in str(text)
                 else [int(s) for s in str(text).split(",") if s.strip()])
    except ValueError:
        raise runs.RunError(f"--seeds {text!r}: give a count (3) or a list of seeds (0,1,2).") from None
    if not 1 <= len(seeds) <= MAX_SEEDS or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise runs.RunError(f"--seeds {text!r}: 1 to {MAX_SEEDS} different seeds, none negative.")
    return seeds


def with_seeds(planned: list[PlannedRun], seeds: list[int] | None) -> list[PlannedRun]:
    """Each planned run once per seed (labelled with it), so runs that differ only in seed form a group."""
    if not seeds:
        return planned
    return [PlannedRun(f"{p.name}-seed{seed}", p.spec, replace(p.config, seed=seed), {**p.labels, "seed": seed})
            for p in planned for seed in seeds]


def group_labels(study: dict) -> list[str]:
    """The labels that tell a study's groups apart: those that vary, but the seed (the first label when
    none varies)."""
    entries = [e["labels"] for e in study["runs"]]
    keys = [k for k in dict.fromkeys(k for labels in entries for k in labels) if k != "seed"]
    varying = [k for k in keys if len({repr(labels.get(k)) for labels in entries}) > 1]
    return varying or keys[:1]


def plan(kind: str, config: TrainConfig, custom: dict[str, ArchitectureSpec] | None = None,
         spec: ArchitectureSpec | None = None) -> list[PlannedRun]:
    """The runs a study of `kind` trains, in order (`spec`: the architecture of a `seeds` study)."""
    if kind == "seeds":
        if spec is None:
            raise runs.RunError("A seeds study needs the architecture to repeat.")
        return [PlannedRun(spec.name, spec, config, {"arch": spec.name})]
    if kind == "depth":
        return [PlannedRun(f"depth{d}{'-bn' if bn else ''}", specs.depth_family(d, bn), config,
                           {"depth": d, "batch_norm": bn}) for bn in (False, True) for d in range(1, 6)]
    if kind == "batchnorm":
        families = {}
        for preset in specs.SEED_PRESETS:
            plain = preset.with_batch_norm(False)
            families.setdefault((plain.blocks, plain.head), preset.name.replace("batchnorm", "baseline"))
        out = []
        for (blocks, head), family in families.items():
            for bn in (False, True):
                spec = ArchitectureSpec(f"{family}{'-bn' if bn else ''}", blocks, head).with_batch_norm(bn)
                out.append(PlannedRun(spec.name, spec, config, {"family": family, "batch_norm": bn}))
        return out
    if kind == "dropout":
        base = specs.PRESETS["batchnorm"]
        return [PlannedRun(f"dropout{rate:g}", replace(base.with_dropout(rate), name=f"batchnorm-dropout{rate:g}"),
                           config, {"dropout": rate}) for rate in DROPOUT_RATES]
    if kind == "architectures":
        every = {**specs.PRESETS, **(custom or {})}
        return [PlannedRun(name, spec, config, {"arch": name}) for name, spec in every.items()]
    if kind == "seed":
        seed_cfg = replace(config, epochs=30, batch_size=32, optimizer="adam", learning_rate=1e-3, patience=5,
                           validation="test")
        return [PlannedRun(f"seed-{n}", specs.PRESETS[n], seed_cfg, {"arch": n, "seed_protocol": True})
                for n in SEED_STUDY_ARCHS]
    if kind == "search":
        raise runs.RunError("A search plans its trials one by one as it learns: start it with `cifar-lab study search "
                            "--space ...` (cifar_core.studies.search).")
    raise runs.RunError(f"Unknown study {kind!r}: choose one of {', '.join(KINDS)}.")


def bn_momentum_choice(planned: PlannedRun, data: dict) -> dict | None:
    """For a planned run with batch norm: its momentum, lowered for short epochs so that the moving statistics
    settle (batchnorm.settling_momentum), with what it was and the epoch's batches; None without batch norm."""
    if not any(block.batch_norm for block in planned.spec.blocks):
        return None
    cfg = planned.config
    steps = -(-cfg.sizes(data["train_images"], data["test_images"])["train"] // cfg.batch_size)
    return {"chosen": batchnorm.settling_momentum(steps, cfg.bn_momentum), "default": cfg.bn_momentum,
            "steps_per_epoch": steps}


def lowered_momentum_note(planned: list[PlannedRun], data: dict) -> str | None:
    """Why the plan's batch-norm runs train with a lower momentum than asked for, when they do."""
    for p in planned:
        choice = bn_momentum_choice(p, data)
        if choice and choice["chosen"] < choice["default"]:
            return caveats.bn_momentum_lowered(choice["chosen"], choice["default"], choice["steps_per_epoch"])
    return None
