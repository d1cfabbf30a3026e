"""A network sized to the time budget: the fast preset at several widths (and at airbench's), each with a
time-to-accuracy curve measured once and kept in model/curves.py (test accuracy against epochs, which does not
depend on the machine), and the choice of the one predicted to reach the highest test accuracy in the budget from
this machine's speed of each, measured at launch (engine/probe.py). Pure arithmetic: the engine measures, this
decides."""

from __future__ import annotations

import bisect
import contextlib
import math
from dataclasses import asdict, dataclass, replace

from cifar_core.model import budgetplan, curves, specs

WIDTHS = (0.25, 0.5, 0.75, 1.0, 2.0, 3.0)  # the budget family: filters of specs.FAST times each (fast-w0.25 .. fast-w3)
STAGE_WIDTHS = (64, 256, 256)  # and airbench's widths of its three stages: fast-w3's accuracy at 4 epochs (0.8486
# against 0.8489) at 1.16x its images/s (benchmarks/recipe_speed.py --network fast-w3 --variants base
# widths-64,256,256: rounds 1.12-1.21x)


def staged(spec: specs.ArchitectureSpec, widths: tuple[int, ...]) -> specs.ArchitectureSpec:
    """`spec` (two blocks a stage, as specs.FAST) with stage i's filters widths[i], named for them."""
    blocks = tuple(replace(b, filters=widths[i // 2]) for i, b in enumerate(spec.blocks))
    return replace(spec, name=f"{spec.name}-{'-'.join(map(str, widths))}", blocks=blocks,
                   description=f"{spec.description} Here stages of {', '.join(map(str, widths))} filters.")


FAMILY: dict[str, specs.ArchitectureSpec] = {  # fastest first: the probe measures them in this order
    s.name: s for s in sorted((*(specs.FAST.with_width(w) for w in WIDTHS), staged(specs.FAST, STAGE_WIDTHS)),
                              key=lambda s: -curves.IMAGES_PER_S[s.name])}
CHANCE = 0.1  # test accuracy before any training (ten classes)
DEFAULT_LAUNCH_S = 15.0  # launch to choice (process, TensorFlow, data, probe) before any sized run measured it
TRACE_S = 3.0  # the first epoch's graph tracing, on top of its steps (measured: 2-3 s for the family on 2 cores)
# The probe times a few batches in a burst; whole epochs also carry validation, the callbacks' work and whatever else
# the machine does meanwhile: the prediction scales the probe by the share the latest sized run here sustained,
# within these bounds (outside them: a fault, not a speed). Sized runs before 2026-12-01 sustained 60-80% because
# they trained in float32 after the probe (runtime.clear_session says why), not, as it then seemed, because this
# machine has slow phases.
SHARE_BOUNDS = (0.3, 1.0)
PROBE_SHARE = 0.04  # the probe measures the family in order until it has taken this share of the budget; the networks
# not measured then get the speed of the last one measured, scaled by the ratio of the curves' machine's speeds


@dataclass(frozen=True)
class Candidate:
    """One network's prediction: its speed here, the epochs (of the curves' training set) its budget buys, the
    test accuracy its curve gives at those epochs, and whether those epochs lie past the curve's last point (then
    the prediction is that point's accuracy: at least, never extrapolated)."""

    network: str
    images_per_s: float
    measured: bool  # False: inferred from a measured one (inferred_speed)
    epochs: float
    predicted: float
    past_curve: bool
    probe_s: float = 0.0  # seconds measuring its speed here (0: inferred)


@dataclass(frozen=True)
class Choice:
    """The network picked for a budget, and every candidate measured (in the order measured)."""

    network: str
    predicted_accuracy: float
    epochs: float
    budget_s: float
    elapsed_s: float  # seconds from launch to the choice: process, TensorFlow, data and the probe
    candidates: tuple[Candidate, ...]
    comparable: bool  # the run's data is what the curves were measured on (the full CIFAR-10 training split)
    sustained_share: float = 1.0  # the share of the probed speeds the prediction counts on (latest_share)

    def to_dict(self) -> dict:
        return {**asdict(self), "curves": curves.SOURCE}


def spec(name: str) -> specs.ArchitectureSpec:
    """The family network called `name`."""
    return FAMILY[name]


def architectures(saved: dict[str, specs.ArchitectureSpec]) -> dict[str, specs.ArchitectureSpec]:
    """Every architecture a person can start from: the presets, the budget family's other widths (a sized run
    trains one of them), then `saved` custom specs."""
    return {**specs.PRESETS, **{n: s for n, s in FAMILY.items() if n not in specs.PRESETS}, **saved}


def curve_accuracy(points: tuple[tuple[float, float], ...], epochs: float) -> tuple[float, bool]:
    """Test accuracy after `epochs` by a measured curve ((epochs, accuracy) points of one-cycle runs of that
    length): linear in log(epochs) between points, linear from chance at 0 below the first, the last point's
    accuracy past it (and True: past the curve)."""
    xs = [e for e, _ in points]
    if epochs <= 0:
        return CHANCE, False
    if epochs >= xs[-1]:
        return points[-1][1], epochs > xs[-1]
    if epochs <= xs[0]:
        return CHANCE + (points[0][1] - CHANCE) * epochs / xs[0], False
    i = bisect.bisect_right(xs, epochs)
    (e0, a0), (e1, a1) = points[i - 1], points[i]
    return a0 + (a1 - a0) * math.log(epochs / e0) / math.log(e1 / e0), False


def train_seconds(budget_s: float, elapsed_s: float, images_per_s: float, sizes: dict[str, int], tta: bool) -> float:
    """Seconds left for the epochs of a run launched `elapsed_s` ago: its budget's planned share, less the tracing,
    the final evaluation of the test and validation images (twice with test-time flips) and finishing."""
    test_s = (sizes["test"] + sizes["validation"]) * (2 if tta else 1) * budgetplan.INFERENCE_SHARE / images_per_s
    return budget_s * (1 - budgetplan.MARGIN) - elapsed_s - TRACE_S - test_s - budgetplan.FINISH_S


def candidate(network: str, images_per_s: float, measured: bool, budget_s: float, elapsed_s: float,
              sizes: dict[str, int], tta: bool, share: float = 1.0) -> Candidate:
    """What `network`, probed at `images_per_s` here and sustaining `share` of that, is predicted to reach in the
    rest of the budget: the images it can see (an epoch being the training images and a validation pass) counted in
    epochs of the curves' data."""
    speed = images_per_s * share
    seconds = max(train_seconds(budget_s, elapsed_s, speed, sizes, tta), 0.0)
    epoch_work = sizes["train"] + sizes["validation"] * budgetplan.INFERENCE_SHARE
    seen = seconds * speed / epoch_work * sizes["train"]
    epochs = seen / curves.TRAIN_IMAGES
    accuracy, past = curve_accuracy(curves.CURVES[network], epochs)
    return Candidate(network, images_per_s, measured, epochs, accuracy, past)


def choose(speeds: dict[str, tuple[float, bool]], budget_s: float, elapsed_s: float, sizes: dict[str, int],
           tta: bool, share: float = 1.0, probe_s: dict[str, float] | None = None) -> Choice:
    """Of the networks with a probed speed here ((images/s, measured?) by name), the one predicted to reach the
    highest test accuracy in what is left of the budget `elapsed_s` after launch (the faster one on a tie), each
    sustaining `share` of its probed speed; `probe_s`: the seconds each measurement took, kept with it."""
    found = [replace(candidate(name, speed, measured, budget_s, elapsed_s, sizes, tta, share),
                     probe_s=round((probe_s or {}).get(name, 0.0), 2)) for name, (speed, measured) in speeds.items()]
    best = max(found, key=lambda c: (round(c.predicted, 3), c.images_per_s))
    return Choice(best.network, best.predicted, best.epochs, budget_s, elapsed_s, tuple(found),
                  sizes["train"] == curves.TRAIN_IMAGES, share)


def sustained_share(choice: dict | None, lines: list[dict]) -> float | None:
    """The share of its probed speed a sized run sustained: the median images/s of its epochs after the first
    (which carries the tracing) over the speed its prediction counted on for its network (probed, or inferred from
    the probed ones); None for a run not sized, or with one epoch."""
    if not choice:
        return None
    probed = [c.get("images_per_s") for c in choice.get("candidates", ()) if c.get("network") == choice.get("network")]
    steady = budgetplan.steady_speed(lines)
    if not probed or not probed[0] or steady is None:
        return None
    return round(steady / probed[0], 4)


def latest_share(metas: list[dict], sizes: dict[str, int]) -> float:
    """The share of its probed speed the latest finished sized run here on data of these `sizes` sustained
    (run.json's `sustained_share`; a tiny run's epochs weigh their fixed costs differently), within SHARE_BOUNDS; 1
    before any has finished."""
    done = [m for m in metas if isinstance(m.get("sustained_share"), int | float) and m.get("launched")
            and m.get("sizes") == sizes]
    if not done:
        return 1.0
    share = float(max(done, key=lambda m: m["launched"])["sustained_share"])
    return min(max(share, SHARE_BOUNDS[0]), SHARE_BOUNDS[1])


def latest_speeds(metas: list[dict], budget_s: float) -> tuple[dict[str, tuple[float, bool]], float] | None:
    """The speeds the latest sized run here measured at its launch (run.json's `budget_choice`), those it did not
    measure inferred again with the ratios its machine measured (machine_speeds); and the seconds a launch to the
    choice would take with `budget_s` (launch_seconds). None when no run here has chosen its network yet."""
    chosen = [m for m in metas if isinstance(m.get("budget_choice"), dict) and m.get("launched")]
    if not chosen:
        return None
    latest = max(chosen, key=lambda m: m["launched"])
    record, reference = latest["budget_choice"], machine_speeds(metas, (latest.get("engine") or {}).get("machine"))
    try:
        speeds: dict[str, tuple[float, bool]] = {}
        for c in record["candidates"]:
            if c["network"] in FAMILY:
                measured = bool(c["measured"])
                speeds[c["network"]] = ((float(c["images_per_s"]), True) if measured or not speeds else
                                        (inferred_speed(c["network"], speeds, reference), False))
        return (speeds, launch_seconds(record, budget_s)) if speeds else None
    except (KeyError, TypeError, ValueError):
        return None


def machine_speeds(metas: list[dict], machine: str | None) -> dict[str, float]:
    """Each family network's latest speed measured at a sized run's launch on `machine` (run.json's
    `engine.machine`): the ratios to infer an unmeasured network's speed from. A short run measures the small
    networks only, and curves.IMAGES_PER_S's ratios were another CPU's: on the AMX Xeon they put fast-64-256-256 at
    13.7 epochs in 30 min, where a run trained 24."""
    found: dict[str, float] = {}
    for meta in sorted(metas, key=lambda m: m.get("launched") or 0, reverse=True):
        choice = meta.get("budget_choice")
        if not isinstance(choice, dict) or (meta.get("engine") or {}).get("machine") != machine:
            continue
        for c in choice.get("candidates") or ():
            name = c.get("network") if isinstance(c, dict) else None  # a damaged record's is passed by
            if name in FAMILY and name not in found and c.get("measured"):
                with contextlib.suppress(TypeError, ValueError):
                    found[name] = float(c["images_per_s"])
    return found


def launch_seconds(record: dict, budget_s: float) -> float:
    """Launch to choice for a run of `budget_s`, from a sized run's `budget_choice`: its seconds without its probe,
    plus the probes a run of this budget would make (in order, until they took PROBE_SHARE of it). A 1,800 s run
    probes the whole family (28 s from launch), a 60 s run one or two networks (7 s)."""
    probes = [float(c.get("probe_s", 0.0)) for c in record["candidates"]]
    probing = 0.0
    for seconds in probes:
        if probe_time_up(probing, budget_s):
            break
        probing += seconds
    return float(record["elapsed_s"]) - sum(probes) + probing


def probe_time_up(probed_s: float, budget_s: float) -> bool:
    """Whether probing that has taken `probed_s` so far stops before the next network (PROBE_SHARE of the budget)."""
    return probed_s > PROBE_SHARE * budget_s


def inferred_speed(network: str, speeds: dict[str, tuple[float, bool]],
                   reference: dict[str, float] | None = None) -> float:
    """The speed of a network not measured now: that of the last one measured, times the ratio of the two speeds
    in `reference` (this machine's earlier measurements, machine_speeds) where it has both, else on the curves'
    machine (curves.IMAGES_PER_S)."""
    last = [name for name, (_, measured) in speeds.items() if measured][-1]
    ratios = reference if reference and network in reference and last in reference else curves.IMAGES_PER_S
    return speeds[last][0] * ratios[network] / ratios[last]


def worth_measuring_next(found: list[Candidate]) -> bool:
    """Whether to measure the next (larger, slower) network: not once one predicted less than the best so far
    (the family's curves rise with width less than its speed falls, so the larger ones would predict less still),
    unless that prediction was its curve's last point, a lower bound (a wider network may still do better)."""
    return len(found) < 2 or found[-1].past_curve or found[-1].predicted >= max(c.predicted for c in found[:-1])


def prediction_text(choice: dict) -> str:
    """'predicted: about 0.78 in 2 min with fast-w0.5', with what the prediction holds for."""
    minutes = choice["budget_s"] / 60
    budget = f"{minutes:.0f} min" if minutes >= 1 and minutes == round(minutes) else f"{choice['budget_s']:.0f} s"
    past = any(c["network"] == choice["network"] and c["past_curve"] for c in choice["candidates"])
    share = choice.get("sustained_share", 1.0)
    pace = f" at {share:.0%} of the probed speed, as the last sized run here sustained" if share < 1 else ""
    text = (f"predicted: {'at least' if past else 'about'} {choice['predicted_accuracy']:.2f} in {budget} with "
            f"{choice['network']} ({choice['epochs']:.1f} epochs{pace})")
    if not choice.get("comparable", True):
        text += "; the curves are of the full CIFAR-10, so on this data the figure is only indicative"
    return text
