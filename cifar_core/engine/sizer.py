"""At a budgeted run's launch, when its network is to be sized to the budget: this machine's training speed of
the budget family's networks, measured in a few seconds through the run's own input pipeline, smallest first, and
the network predicted to reach the highest test accuracy in what is left of the budget (model/sizing.py)."""

from __future__ import annotations

import time
from pathlib import Path

from cifar_core import hardware
from cifar_core.engine import probe, runtime
from cifar_core.model import sizing
from cifar_core.model.config import TrainConfig
from cifar_core.model.specs import ArchitectureSpec
from cifar_core.store import runs

runtime.keras()
import keras  # noqa: E402  (after runtime has imported it quietly, on this process's backend)

# The probe of each network: one call of 2 batches to trace, 2 timed (about a second each on 2 cores, most of it
# building and tracing the model), until sizing.PROBE_SHARE of the budget is spent.
PROBE = dict(warmup=1, timed=2, per_call=2)


def speed(spec: ArchitectureSpec, cfg: TrainConfig, arrays: dict) -> float:
    """Training images per second of `spec` here, with the run's batch size, optimizer, precision and
    augmentation, on its training images."""
    return probe.measure(spec, cfg, (arrays["x_train"], arrays["y_train"]), **PROBE)


def choose(cfg: TrainConfig, arrays: dict, sizes: dict[str, int], launched: float, share: float = 1.0,
           reference: dict[str, float] | None = None) -> sizing.Choice:
    """Measure the family smallest first, while the probe has time and a larger network may still predict
    better than a smaller one (sizing.worth_measuring_next), infer the others' speeds (with the ratios of
    `reference`, this machine's earlier measurements, where it has them), then pick the one predicted best in the
    budget left now, each sustaining `share` of its probed speed (sizing.latest_share)."""
    speeds: dict[str, tuple[float, bool]] = {}
    probe_s: dict[str, float] = {}
    found: list[sizing.Candidate] = []
    for name, spec in sizing.FAMILY.items():
        if found and (sizing.probe_time_up(sum(probe_s.values()), cfg.time_budget)
                      or not sizing.worth_measuring_next(found)):
            speeds[name] = (sizing.inferred_speed(name, speeds, reference), False)
        else:
            start = time.time()
            speeds[name] = (speed(spec, cfg, arrays), True)
            probe_s[name] = time.time() - start
        found.append(sizing.candidate(name, *speeds[name], cfg.time_budget, time.time() - launched, sizes, cfg.tta,
                                      share))
    elapsed = time.time() - launched
    runtime.clear_session()
    keras.utils.set_random_seed(cfg.seed)  # the run's weights as they would be without the probe
    return sizing.choose(speeds, cfg.time_budget, elapsed, sizes, cfg.tta, share, probe_s)


def size_run(run_dir: Path, cfg: TrainConfig, arrays: dict, sizes: dict[str, int], launched: float) -> ArchitectureSpec:
    """Choose the run's network, record it and the prediction in run.json (`spec`, `budget_choice`), say it."""
    metas = [info.meta for info in runs.list_runs(run_dir.parent)]
    choice = choose(cfg, arrays, sizes, launched, sizing.latest_share(metas, sizes),
                    sizing.machine_speeds(metas, hardware.describe_machine()))
    record = choice.to_dict()
    network = sizing.spec(choice.network)
    runs.update_run(run_dir, spec=network.to_dict(), budget_choice=record)
    speeds = ", ".join(f"{c.network} {c.images_per_s:,.0f}{'' if c.measured else ' (inferred)'}"
                       for c in choice.candidates)
    print(f"[cifar-lab] {sizing.prediction_text(record)} (images/s here: {speeds}; "
          f"{time.time() - launched:.1f} s since launch)", flush=True)
    return network
