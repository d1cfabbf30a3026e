"""A search space: what a search may vary, parsed from one line such as
'lr=1e-4..1e-1:log, dropout=0..0.5, batch_size=32|64|128, width=0.5..2', and how a sampled point becomes a run's
spec and training config (pure Python: the sampler lives in studies/search.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from cifar_core.errors import LabError
from cifar_core.model import shapes
from cifar_core.model.config import MAX_BATCH, OPTIMIZERS, TrainConfig
from cifar_core.model.specs import ArchitectureSpec


class SpaceError(LabError):
    """A search space that cannot be searched; the message names the part and the fix."""


@dataclass(frozen=True)
class Key:
    """One thing a search may vary: where it goes, what values it takes, and whether they are whole numbers."""

    name: str
    help: str
    low: float | None = None  # the smallest allowed value (None: no numbers, only choices)
    high: float | None = None
    low_open: bool = False  # low itself not allowed
    high_open: bool = False
    integer: bool = False
    choices: tuple[str, ...] = ()  # a key that takes only these words


KEYS = {k.name: k for k in (
    Key("lr", "learning rate", 0.0, 10.0, low_open=True, high_open=True),
    Key("dropout", "dropout after every block and in the head", 0.0, 1.0, high_open=True),
    Key("width", "every block's filters times this", 0.0, 16.0, low_open=True),
    Key("batch_size", "batch size", 1, MAX_BATCH, integer=True),
    Key("weight_decay", "decoupled weight decay", 0.0, 1.0, high_open=True),
    Key("label_smoothing", "label smoothing", 0.0, 1.0, high_open=True),
    Key("optimizer", "optimizer", choices=OPTIMIZERS),
    Key("augment", "random flips and shifts", choices=("true", "false")),
)}
CONFIG_FIELDS = {"lr": "learning_rate", "batch_size": "batch_size", "weight_decay": "weight_decay",
                 "label_smoothing": "label_smoothing", "optimizer": "optimizer", "augment": "augment"}
SPEC_KEYS = ("width", "dropout")  # spec transforms; every other key is a training-config field
EXAMPLE = "lr=1e-4..1e-1:log, dropout=0..0.5, batch_size=32|64|128, width=0.5..2"


@dataclass(frozen=True)
class Param:
    """One dimension of a space: a range low..high (on a log scale with `log`), or a list of choices."""

    key: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple = ()

    @property
    def integer(self) -> bool:
        return KEYS[self.key].integer

    @property
    def axis(self) -> str:
        """Its name on a chart's axis: the key, and '(log)' for a log scale."""
        return f"{self.key} (log)" if self.log else self.key

    def text(self) -> str:
        """The dimension as it is written in a space."""
        if self.choices:
            return f"{self.key}={'|'.join(word(c) for c in self.choices)}"
        return f"{self.key}={_num(self.low)}..{_num(self.high)}{':log' if self.log else ''}"

    def position(self, value) -> float:
        """Where `value` lies on this dimension, 0 (low, or the first choice) to 1 (high, or the last choice)."""
        if self.choices:
            index = [word(c) for c in self.choices].index(word(value))
            return index / max(len(self.choices) - 1, 1)
        if self.log:
            return (math.log(value) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (float(value) - self.low) / (self.high - self.low)


@dataclass(frozen=True)
class Space:
    params: tuple[Param, ...]

    @property
    def keys(self) -> list[str]:
        return [p.key for p in self.params]

    def text(self) -> str:
        return ", ".join(p.text() for p in self.params)

    def param(self, key: str) -> Param:
        return next(p for p in self.params if p.key == key)


def _num(value: float) -> str:
    return f"{value:g}"


def word(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return _num(value) if isinstance(value, int | float) else str(value)


def parse(text: str) -> Space:
    """The space `text` describes, or SpaceError naming the first part that cannot be searched."""
    parts = [p.strip() for p in (text or "").split(",") if p.strip()]
    if not parts:
        raise SpaceError(f"--space is empty: give what to vary, e.g. '{EXAMPLE}'.")
    params = []
    for part in parts:
        param = _parse_part(part)
        if param.key in [p.key for p in params]:
            raise SpaceError(f"--space names {param.key!r} twice: give each key once.")
        params.append(param)
    return Space(tuple(params))


def _parse_part(part: str) -> Param:
    key, eq, value = (s.strip() for s in part.partition("="))
    if not eq or not value:
        raise SpaceError(f"--space part {part!r}: write key=low..high, key=low..high:log or key=a|b|c.")
    if key not in KEYS:
        raise SpaceError(f"--space: unknown key {key!r}; known keys: {', '.join(KEYS)}.")
    spec = KEYS[key]
    if "|" in value:
        return _choices(part, spec, [v.strip() for v in value.split("|")])
    if spec.choices:
        raise SpaceError(f"--space {part!r}: {key} takes choices, e.g. {key}={'|'.join(spec.choices[:2])}.")
    body, colon, scale = value.partition(":")
    if colon and scale.strip() != "log":
        raise SpaceError(f"--space {part!r}: the only scale is ':log' (got ':{scale.strip()}').")
    low_text, dots, high_text = body.partition("..")
    if not dots:
        raise SpaceError(f"--space {part!r}: give a range low..high or choices a|b|c (one value searches nothing).")
    low, high = _number(part, spec, low_text), _number(part, spec, high_text)
    if not low < high:
        raise SpaceError(f"--space {part!r} is an empty range: give low..high with low below high.")
    if colon and low <= 0:
        raise SpaceError(f"--space {part!r}: a log scale needs a low above 0 (got {_num(low)}).")
    _check_bounds(part, spec, [low, high])
    return Param(key, low, high, bool(colon))


def _choices(part: str, spec: Key, words: list[str]) -> Param:
    if any(not w for w in words) or len(set(words)) != len(words):
        raise SpaceError(f"--space {part!r}: choices must be different and none empty.")
    if len(words) < 2:
        raise SpaceError(f"--space {part!r}: give at least two choices.")
    if spec.choices:
        bad = [w for w in words if w not in spec.choices]
        if bad:
            raise SpaceError(f"--space {part!r}: {bad[0]!r} is not a {spec.name}; choose from "
                             f"{', '.join(spec.choices)}.")
        return Param(spec.name, choices=tuple(words))
    values = [_number(part, spec, w) for w in words]
    _check_bounds(part, spec, values)
    return Param(spec.name, choices=tuple(values))


def _number(part: str, spec: Key, text: str) -> float:
    try:
        value = int(text) if spec.integer else float(text)
    except ValueError:
        kind = "whole numbers" if spec.integer else "numbers"
        raise SpaceError(f"--space {part!r}: {text.strip()!r} is not a number; {spec.name} takes {kind}.") from None
    if not math.isfinite(value):
        raise SpaceError(f"--space {part!r}: {text.strip()!r} is not a finite number.")
    return value


def _check_bounds(part: str, spec: Key, values: list[float]) -> None:
    for v in values:
        below = v < spec.low or (spec.low_open and v == spec.low)
        above = v > spec.high or (spec.high_open and v == spec.high)
        if below or above:
            low = f"{'(' if spec.low_open else '['}{_num(spec.low)}"
            high = f"{_num(spec.high)}{')' if spec.high_open else ']'}"
            raise SpaceError(f"--space {part!r}: {spec.name} ({spec.help}) must lie in {low}, {high} "
                             f"(got {_num(v)}).")


def apply(spec: ArchitectureSpec, config: TrainConfig, values: dict) -> tuple[ArchitectureSpec, TrainConfig]:
    """The spec and config of one sampled point: width and dropout transform the spec, the rest set config fields."""
    if "dropout" in values:
        spec = spec.with_dropout(float(values["dropout"]))
    if "width" in values:
        spec = spec.with_width(float(values["width"]))
    changes = {CONFIG_FIELDS[k]: _config_value(k, v) for k, v in values.items() if k in CONFIG_FIELDS}
    return spec, replace(config, **changes)


def _config_value(key: str, value):
    if key == "augment":
        return value in (True, "true")
    if KEYS[key].integer:
        return int(value)
    return value if KEYS[key].choices else float(value)


def corners(space: Space) -> list[dict]:
    """The points that stretch a run most (widest network with the largest batch, and the narrowest with the
    smallest), for the checks a run passes before a search starts."""
    out = []
    for pick in (max, min):
        point = {}
        for p in space.params:
            if p.key in ("width", "batch_size"):
                point[p.key] = pick(p.choices) if p.choices else pick(p.low, p.high)
        out.append(point)
    return out


def width_preview(spec: ArchitectureSpec, space: Space) -> list[dict]:
    """Each width the space reaches at its ends (and 1), with the network's parameter count there."""
    if "width" not in space.keys:
        return []
    p = space.param("width")
    widths = sorted({*(p.choices or (p.low, p.high)), 1.0})
    return [{"width": w, "params": shapes.param_count(spec.with_width(w))} for w in widths]


def preview_text(spec: ArchitectureSpec, space: Space) -> str:
    """One line: the parameter counts the width key spans."""
    rows = width_preview(spec, space)
    if not rows:
        return ""
    return f"{spec.name} by width: " + ", ".join(f"x{r['width']:g} {r['params']:,} parameters" for r in rows)
