"""Architecture specs: what a CNN is made of, the presets of the seed study, JSON round-trip, validation.

Validation runs before any TensorFlow does, so a bad spec is reported as sentences, not a stack trace.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

POOLS = ("max", "avg", "none")
HEAD_POOLS = ("flatten", "global_avg")
INPUT_SIZE = 32
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,79}$")


class SpecError(ValueError):
    """A spec that cannot be built; `problems` lists every reason, each one actionable."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class ConvBlock:
    """`convs` conv layers (ReLU, optional batch norm before it), then pooling, then dropout."""

    filters: int
    kernel_size: int = 3
    convs: int = 1
    batch_norm: bool = False
    pool: str = "max"
    dropout: float = 0.0


@dataclass(frozen=True)
class Head:
    """What turns feature maps into class scores: flatten or global average pool, then dense layers."""

    pooling: str = "flatten"
    dense: tuple[int, ...] = (128,)
    dropout: float = 0.0


@dataclass(frozen=True)
class ArchitectureSpec:
    name: str
    blocks: tuple[ConvBlock, ...]
    head: Head = field(default_factory=Head)
    description: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def with_batch_norm(self, on: bool) -> ArchitectureSpec:
        return replace(self, blocks=tuple(replace(b, batch_norm=on) for b in self.blocks))

    def with_dropout(self, rate: float) -> ArchitectureSpec:
        """The same network with `rate` dropout after every block and in the head."""
        blocks = tuple(replace(b, dropout=rate) for b in self.blocks)
        return replace(self, blocks=blocks, head=replace(self.head, dropout=rate))


def _block(filters: int, kernel: int, bn: bool = False, dropout: float = 0.0) -> ConvBlock:
    return ConvBlock(filters=filters, kernel_size=kernel, batch_norm=bn, dropout=dropout)


BASELINE = ArchitectureSpec(
    "baseline",
    (_block(32, 5), _block(64, 3), _block(128, 3)),
    Head("flatten", (128,)),
    "Seed baseline: three conv blocks (32@5x5, 64@3x3, 128@3x3), each ReLU + max-pool; dense 128.",
)
DEEPER = ArchitectureSpec(
    "deeper",
    (_block(32, 7), _block(64, 5), _block(128, 3), _block(256, 3)),
    Head("global_avg", (128, 32)),
    "Seed deeper model: four conv blocks (32@7x7 .. 256@3x3), global average pooling, dense 128, 32.",
)
BATCHNORM = replace(BASELINE.with_batch_norm(True), name="batchnorm",
                    description="Seed baseline with batch normalization after every conv.")
BATCHNORM_DROPOUT = replace(BATCHNORM.with_dropout(0.25), name="batchnorm-dropout",
                            description="Batchnorm preset with 0.25 dropout after every block and in the head.")

PRESETS: dict[str, ArchitectureSpec] = {s.name: s for s in (BASELINE, DEEPER, BATCHNORM, BATCHNORM_DROPOUT)}


def depth_family(depth: int, batch_norm: bool = False) -> ArchitectureSpec:
    """The baseline family with `depth` conv blocks, channels doubling from 32 (for the depth study)."""
    blocks = tuple(_block(32 * 2**i, 5 if i == 0 else 3, batch_norm) for i in range(depth))
    name = f"depth{depth}{'-bn' if batch_norm else ''}"
    return ArchitectureSpec(name, blocks, Head("flatten", (128,)),
                            f"{depth} conv block(s) of the baseline family{' with batch norm' if batch_norm else ''}.")


def validate(spec: ArchitectureSpec) -> list[str]:
    """Every reason the spec cannot be built on 32x32x3 input; empty when it is fine."""
    problems = []
    if not NAME_PATTERN.match(spec.name or ""):
        problems.append(f"Name {spec.name!r} must be 1-80 lowercase letters, digits, '.', '_' or '-'.")
    if not spec.blocks:
        problems.append("Add at least one conv block: a CNN needs a convolution.")
    size = INPUT_SIZE
    for i, block in enumerate(spec.blocks, start=1):
        where = f"Block {i}"
        if block.filters < 1:
            problems.append(f"{where}: filters must be at least 1 (got {block.filters}).")
        if block.convs < 1:
            problems.append(f"{where}: convs must be at least 1 (got {block.convs}).")
        if block.kernel_size < 1:
            problems.append(f"{where}: kernel size must be at least 1 (got {block.kernel_size}).")
        if block.pool not in POOLS:
            problems.append(f"{where}: pool must be one of {', '.join(POOLS)} (got {block.pool!r}).")
        elif block.pool != "none":
            if size < 2:
                problems.append(f"{where}: cannot pool a 1x1 feature map; 32x32 input allows at most 5 "
                                "poolings. Set pool to 'none' or remove a block.")
            size = max(size // 2, 1)
        if not 0.0 <= block.dropout < 1.0:
            problems.append(f"{where}: dropout must be in [0, 1) (got {block.dropout}).")
    if spec.head.pooling not in HEAD_POOLS:
        problems.append(f"Head: pooling must be one of {', '.join(HEAD_POOLS)} (got {spec.head.pooling!r}).")
    for units in spec.head.dense:
        if units < 1:
            problems.append(f"Head: dense layers need at least 1 unit (got {units}).")
    if not 0.0 <= spec.head.dropout < 1.0:
        problems.append(f"Head: dropout must be in [0, 1) (got {spec.head.dropout}).")
    return problems


def check(spec: ArchitectureSpec) -> ArchitectureSpec:
    """The spec itself, or SpecError listing every problem."""
    problems = validate(spec)
    if problems:
        raise SpecError(problems)
    return spec


def from_dict(data: dict) -> ArchitectureSpec:
    """Build a spec from parsed JSON, naming any unknown or missing key instead of failing deep inside."""
    if not isinstance(data, dict):
        raise SpecError([f"A spec must be a JSON object, got {type(data).__name__}."])
    _check_keys(data, ArchitectureSpec, "spec", required={"name", "blocks"})
    if not isinstance(data["blocks"], list):
        raise SpecError(["'blocks' must be a list of conv blocks."])
    blocks = []
    for i, raw in enumerate(data["blocks"], start=1):
        if not isinstance(raw, dict):
            raise SpecError([f"Block {i} must be an object like {{\"filters\": 32, \"kernel_size\": 3}}."])
        _check_keys(raw, ConvBlock, f"block {i}", required={"filters"})
        blocks.append(ConvBlock(**_typed(raw, ConvBlock, f"block {i}")))
    head_raw = data.get("head", {})
    if not isinstance(head_raw, dict):
        raise SpecError(["'head' must be an object like {\"pooling\": \"flatten\", \"dense\": [128]}."])
    _check_keys(head_raw, Head, "head", required=set())
    head = Head(**_typed(head_raw, Head, "head"))
    return ArchitectureSpec(str(data["name"]), tuple(blocks), head, str(data.get("description", "")))


def _check_keys(raw: dict, cls, where: str, required: set[str]) -> None:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - known)
    missing = sorted(required - set(raw))
    problems = []
    if unknown:
        problems.append(f"Unknown key(s) in {where}: {', '.join(unknown)}; known: {', '.join(sorted(known))}.")
    if missing:
        problems.append(f"Missing key(s) in {where}: {', '.join(missing)}.")
    if problems:
        raise SpecError(problems)


_CASTS = {"int": int, "float": float, "bool": bool, "str": str}


def _typed(raw: dict, cls, where: str) -> dict:
    """Coerce JSON values to the dataclass field types, with an error naming the field."""
    out = {}
    for f in fields(cls):
        if f.name not in raw:
            continue
        value = raw[f.name]
        try:
            if f.type == "tuple[int, ...]":
                out[f.name] = tuple(int(v) for v in value)
            elif f.type == "bool":
                if not isinstance(value, bool):
                    raise TypeError
                out[f.name] = value
            elif f.type == "int" and (isinstance(value, bool) or float(value) != int(value)):
                raise TypeError
            else:
                out[f.name] = _CASTS[f.type](value)
        except (TypeError, ValueError):
            raise SpecError([f"In {where}, {f.name}={value!r} is not a valid {f.type}."]) from None
    return out


def from_json(text: str) -> ArchitectureSpec:
    try:
        return from_dict(json.loads(text))
    except json.JSONDecodeError as exc:
        raise SpecError([f"Not valid JSON: {exc}."]) from exc


def specs_dir(runs_dir: Path | None = None) -> Path:
    """Where saved custom specs live: beside the runs, in artifacts/specs."""
    return (runs_dir or Path("artifacts/runs")).parent / "specs"


def saved_specs(folder: Path) -> dict[str, ArchitectureSpec]:
    """Custom specs saved under `folder`, skipping unreadable files."""
    found = {}
    for file in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            found[file.stem] = from_json(file.read_text())
        except (SpecError, OSError):
            continue
    return found


def save_spec(spec: ArchitectureSpec, folder: Path) -> Path:
    """Save a valid custom spec as `<name>.json`; presets cannot be overwritten."""
    check(spec)
    if spec.name in PRESETS:
        raise SpecError([f"{spec.name!r} is a preset; save your edit under another name."])
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{spec.name}.json"
    target.write_text(spec.to_json())
    return target


def resolve(ref: str, folder: Path | None = None) -> ArchitectureSpec:
    """A preset name, a saved custom spec name, or a path to a JSON file -> a checked spec."""
    if ref in PRESETS:
        return PRESETS[ref]
    saved = saved_specs(folder) if folder else {}
    if ref in saved:
        return check(saved[ref])
    path = Path(ref)
    if path.suffix == ".json":
        if not path.exists():
            raise SpecError([f"Spec file {path} does not exist."])
        return check(from_json(path.read_text()))
    choices = ", ".join([*PRESETS, *saved])
    raise SpecError([f"Unknown architecture {ref!r}: use one of {choices}, or a path to a .json spec."])
