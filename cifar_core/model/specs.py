"""Architecture specs: what a CNN is made of, the presets of the seed study, JSON round-trip, validation.

Validation runs before any TensorFlow does, so a bad spec is reported as sentences, not a stack trace.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from cifar_core.errors import LabError
from cifar_core.model import shapes
from cifar_core.model.jsonfields import FieldError, typed_fields

POOLS = ("max", "avg", "none")
STEMS = ("", "whiten")  # before the first block: nothing, or a frozen 2x2 patch-whitening conv + ReLU
HEAD_POOLS = ("flatten", "global_avg")
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,79}")
MIB = 2**20


@dataclass(frozen=True)
class Limits:
    """The most a spec may ask for: roomy for studying CNNs on 32x32 images, far below what would
    exhaust a machine or hang the server that checks it (a spec is checked before anything is built)."""

    blocks: int = 16
    convs_per_block: int = 8
    filters: int = 2048
    kernel_size: int = 15
    dense_layers: int = 8
    dense_units: int = 16384
    params: int = 50_000_000
    activation_mib_per_image: int = 64


LIMITS = Limits()


class SpecError(LabError):
    """A spec that cannot be built; `problems` lists every reason, each one actionable."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class ConvBlock:
    """`convs` conv layers, each followed by ReLU and optional batch norm (before the ReLU, or after it as Keras
    code that writes `Conv2D(activation="relu")` then `BatchNormalization()` has it), then pooling, then dropout.
    `pool_first` pools right after the last conv instead, before its batch norm and ReLU: airbench's order, the same
    function where batch norm's scale is positive (max pooling commutes with both), at a quarter of their work."""

    filters: int
    kernel_size: int = 3
    convs: int = 1
    batch_norm: bool = False
    pool: str = "max"
    dropout: float = 0.0
    bn_after_relu: bool = False
    pool_first: bool = False


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
    # "whiten": a frozen 2x2 convolution + ReLU before the first block that whitens the image's patches, set from
    # the training images before training (engine/whitening.py; after cifar10-airbench); 24 channels at 31x31.
    stem: str = ""

    def to_dict(self) -> dict:
        """As JSON-ready dict; without `stem` when there is none (so specs from before it read the same)."""
        out = asdict(self)
        if not self.stem:
            del out["stem"]
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def with_batch_norm(self, on: bool) -> ArchitectureSpec:
        return replace(self, blocks=tuple(replace(b, batch_norm=on, bn_after_relu=b.bn_after_relu and on)
                                          for b in self.blocks))

    def with_dropout(self, rate: float) -> ArchitectureSpec:
        """The same network with `rate` dropout after every block and in the head."""
        blocks = tuple(replace(b, dropout=rate) for b in self.blocks)
        return replace(self, blocks=blocks, head=replace(self.head, dropout=rate))

    def with_width(self, multiplier: float) -> ArchitectureSpec:
        """The same network with every block's filters times `multiplier` (rounded, at least 1); the head is kept.
        Named `<name>-w<multiplier>` so runs of different widths tell apart."""
        if not 0 < multiplier <= 16:
            raise SpecError([f"width multiplier must be above 0 and at most 16 (got {multiplier:g})."])
        if multiplier == 1:
            return self
        blocks = tuple(replace(b, filters=max(1, round(b.filters * multiplier))) for b in self.blocks)
        return replace(self, name=f"{self.name}-w{multiplier:g}"[:80], blocks=blocks,
                       description=f"{self.description} Filters x{multiplier:g}.".strip())


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
BATCHNORM_AFTER_RELU = replace(
    BATCHNORM, name="batchnorm-after-relu", blocks=tuple(replace(b, bn_after_relu=True) for b in BATCHNORM.blocks),
    description="Batchnorm preset with each batch norm after its ReLU, as Keras code that writes "
                "Conv2D(activation='relu') then BatchNormalization() has it (the seed notebook may have).")
BATCHNORM_DROPOUT = replace(BATCHNORM.with_dropout(0.25), name="batchnorm-dropout",
                            description="Batchnorm preset with 0.25 dropout after every block and in the head.")

# The fast recipe's network (recipes.py): a whitening stem (a frozen 2x2 conv set from the training images'
# patches, engine/whitening.py), then three stages of two 3x3 conv + batch norm + ReLU layers, each stage
# pooling after its first conv (as airbench does) so its second conv runs at half the resolution. Widths
# 32/64/128 keep an epoch of 45,000 images near a minute and a half on two CPU cores.
# The stem, tried on 2 CPU cores as recipes.py's other trials (family_curves.py --subset 20000 --points fast-w0.5:4,
# seeds 0-3, against 0.6813/0.6807/0.6901/0.6718 without it, mean 0.681): frozen (--whiten frozen, kept)
# 0.6944/0.7146/0.6951/0.7136, mean 0.704, +2.3 points; on the full training split, seed 0, fast-w0.5 reached
# 0.7662 in 4 epochs against 0.7501 without it (+1.6; 1 epoch +3.9, 2 +2.4, 8 +1.0; fast 2 epochs +3.7: curves.py);
# its images/s 1.14x without it for fast-w0.5 (5 alternated rounds 0.80-1.47x) and 1.04x for fast (0.76-1.19x),
# no measurable cost (benchmarks/recipe_speed.py, a shared machine). Trainable from the same start (--whiten
# trainable): mean 0.710 but 0.96x/0.92x the speed; 12 outputs without negatives or ReLU (--whiten linear): mean
# 0.702 at 1.26x. The first try (a custom layer whose bias trained) reached a mean of 0.711; a plain frozen Conv2D
# opens in safe mode where a custom layer would not (engine/modelfiles.py).
# Pooling first (conv, max-pool, BN, ReLU, as airbench orders them) in place of after the ReLU: 1.29x the images/s
# for fast-64-256-256 (rounds 1.13-1.30x; measured as a pool-first trial on the earlier preset, now
# `benchmarks/recipe_speed.py --network fast-64-256-256 --variants pool-after base`) at about the same accuracy at
# equal epochs (full data, seed 0, benchmarks/family_curves.py; model/curves.py has both): -1.0 to +1.1 points over
# the eleven points re-measured, 0.8556 against 0.8486 for fast-64-256-256 at 4.
FAST = ArchitectureSpec(
    "fast",
    tuple(ConvBlock(width, 3, 1, True, pool, pool_first=pool == "max") for width in (32, 64, 128)
          for pool in ("max", "none")),
    Head("global_avg", (), 0.0),
    "Fast recipe network: a patch-whitening stem set from the training images, 3 stages of 2 conv-BN-ReLU "
    "layers (32, 64, 128 channels), the first conv of each stage max-pooled before its BN and ReLU, global average "
    "pooling, one linear layer.",
    stem="whiten",
)
SEED_PRESETS = (BASELINE, DEEPER, BATCHNORM, BATCHNORM_DROPOUT)
PRESETS: dict[str, ArchitectureSpec] = {s.name: s for s in (*SEED_PRESETS, BATCHNORM_AFTER_RELU, FAST)}


def depth_family(depth: int, batch_norm: bool = False) -> ArchitectureSpec:
    """The baseline family with `depth` conv blocks, channels doubling from 32 (for the depth study)."""
    blocks = tuple(_block(32 * 2**i, 5 if i == 0 else 3, batch_norm) for i in range(depth))
    name = f"depth{depth}{'-bn' if batch_norm else ''}"
    return ArchitectureSpec(name, blocks, Head("flatten", (128,)),
                            f"{depth} conv block(s) of the baseline family{' with batch norm' if batch_norm else ''}.")


def validate(spec: ArchitectureSpec) -> list[str]:
    """Every reason the spec cannot be built on 32x32x3 input, or is too big to train; empty when it is fine."""
    problems = []
    if not NAME_PATTERN.fullmatch(spec.name or ""):
        problems.append(f"Name {spec.name!r} must be 1-80 lowercase letters, digits, '.', '_' or '-'.")
    if not spec.blocks:
        problems.append("Add at least one conv block: a CNN needs a convolution.")
    if len(spec.blocks) > LIMITS.blocks:
        problems.append(f"{len(spec.blocks)} blocks is more than the limit of {LIMITS.blocks}.")
    if spec.stem not in STEMS:
        problems.append(f"Stem must be one of {', '.join(repr(s) for s in STEMS)} (got {spec.stem!r}).")
    size = shapes.stem_size(spec)
    for i, block in enumerate(spec.blocks, start=1):
        problems += _block_problems(f"Block {i}", block, size)
        if block.pool in POOLS and block.pool != "none":
            size = max(size // 2, 1)
    head = spec.head
    if head.pooling not in HEAD_POOLS:
        problems.append(f"Head: pooling must be one of {', '.join(HEAD_POOLS)} (got {head.pooling!r}).")
    if len(head.dense) > LIMITS.dense_layers:
        problems.append(f"Head: {len(head.dense)} dense layers is more than the limit of {LIMITS.dense_layers}.")
    for units in head.dense:
        if not 1 <= units <= LIMITS.dense_units:
            problems.append(f"Head: dense layers need 1 to {LIMITS.dense_units:,} units (got {units:,}).")
    if not 0.0 <= head.dropout < 1.0:
        problems.append(f"Head: dropout must be in [0, 1) (got {head.dropout}).")
    return problems or _size_problems(spec)


def _block_problems(where: str, block: ConvBlock, size: int) -> list[str]:
    problems = []
    if not 1 <= block.filters <= LIMITS.filters:
        problems.append(f"{where}: filters must be 1 to {LIMITS.filters:,} (got {block.filters:,}).")
    if not 1 <= block.convs <= LIMITS.convs_per_block:
        problems.append(f"{where}: convs must be 1 to {LIMITS.convs_per_block} (got {block.convs:,}).")
    if not 1 <= block.kernel_size <= LIMITS.kernel_size:
        problems.append(f"{where}: kernel size must be 1 to {LIMITS.kernel_size} (got {block.kernel_size:,}).")
    if block.pool not in POOLS:
        problems.append(f"{where}: pool must be one of {', '.join(POOLS)} (got {block.pool!r}).")
    elif block.pool != "none" and size < 2:
        problems.append(f"{where}: cannot pool a 1x1 feature map; 32x32 input allows at most 5 "
                        "poolings. Set pool to 'none' or remove a block.")
    if not 0.0 <= block.dropout < 1.0:
        problems.append(f"{where}: dropout must be in [0, 1) (got {block.dropout}).")
    if block.pool_first and block.pool == "none":
        problems.append(f"{where}: pooling first ('pool first', pool_first) needs a pool ('max' or 'avg'): set one, "
                        "or untick it.")
    if block.bn_after_relu and not block.batch_norm:
        problems.append(f"{where}: batch norm after the ReLU ('after ReLU', bn_after_relu) needs batch norm "
                        "('BN', batch_norm): turn it on, or turn 'after ReLU' off.")
    return problems


def _size_problems(spec: ArchitectureSpec) -> list[str]:
    """Limits on the whole network, computed from its shapes (only once each part is known to be sane)."""
    problems = []
    params = shapes.param_count(spec)
    if params > LIMITS.params:
        problems.append(f"The network has {params:,} parameters, more than the limit of {LIMITS.params:,}: "
                        "use fewer filters or dense units, or pool before flattening.")
    activations = shapes.activation_bytes(spec) / MIB
    if activations > LIMITS.activation_mib_per_image:
        problems.append(f"Its layer outputs take {activations:,.0f} MiB per image, more than the limit of "
                        f"{LIMITS.activation_mib_per_image} MiB: use fewer filters before the first poolings.")
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
    name, description, stem = data["name"], data.get("description", ""), data.get("stem", "")
    if not all(isinstance(v, str) for v in (name, description, stem)):
        raise SpecError(["'name', 'description' and 'stem' must be strings."])
    return ArchitectureSpec(name, tuple(blocks), head, description, stem)


def _typed(raw: dict, cls, where: str) -> dict:
    try:
        return typed_fields(raw, cls, where)
    except FieldError as exc:
        raise SpecError([str(exc)]) from None


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


def from_editor(base: ArchitectureSpec, block_rows: list[dict], pooling: str, dense_text: str,
                head_dropout: float) -> tuple[ArchitectureSpec | None, list[str]]:
    """The spec a block table and head fields describe (the Architectures page's editor), with every
    problem that keeps it from being built; (None, problems) when it cannot even be read."""
    try:
        dense = tuple(int(u) for u in dense_text.replace(" ", "").split(",") if u)
    except ValueError:
        return None, [f"Dense units {dense_text!r} must be whole numbers separated by commas, e.g. 128, 32."]
    rows = [r for r in block_rows if not all(_blank(v) for v in r.values())]
    if any(_blank(r.get(k)) for r in rows for k in ("filters", "kernel_size", "convs", "pool")):
        return None, ["Fill in filters, kernel, convs and pool for every block (or delete the empty row)."]
    try:
        blocks = tuple(ConvBlock(int(r["filters"]), int(r["kernel_size"]), int(r["convs"]), bool(r.get("batch_norm")),
                                 str(r["pool"]), 0.0 if _blank(r.get("dropout")) else float(r["dropout"]),
                                 _ticked(r.get("bn_after_relu")), _ticked(r.get("pool_first")))
                       for r in rows)
    except (ValueError, OverflowError) as exc:
        return None, [f"Every block needs whole numbers for filters, kernel and convs ({exc})."]
    spec = replace(base, blocks=blocks, head=Head(pooling, dense, float(head_dropout)))
    return spec, validate(spec)


def _blank(value) -> bool:
    """An empty editor cell: None or NaN."""
    return value is None or value != value


def _ticked(value) -> bool:
    """An editor checkbox cell that is ticked (a new row's is blank)."""
    return bool(value) and not _blank(value)


def from_json(text: str) -> ArchitectureSpec:
    try:
        return from_dict(json.loads(text))
    except (json.JSONDecodeError, RecursionError) as exc:
        raise SpecError([f"Not valid JSON: {exc}."]) from exc


def specs_dir(runs_dir: Path | None = None) -> Path:
    """Where saved custom specs live: beside the runs, in artifacts/specs."""
    return (runs_dir or Path("artifacts/runs")).parent / "specs"


def saved_specs(folder: Path) -> dict[str, ArchitectureSpec]:
    """Custom specs saved under `folder`, skipping unreadable files."""
    found = {}
    for file in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            found[file.stem] = check(from_json(file.read_text()))
        except (SpecError, OSError, UnicodeDecodeError):
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
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise SpecError([f"Spec file {path} does not exist."]) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SpecError([f"Cannot read spec file {path}: {exc}."]) from None
        return check(from_json(text))
    from cifar_core.model import sizing  # it builds its family from this module's FAST

    if ref in sizing.FAMILY:
        return sizing.FAMILY[ref]
    choices = ", ".join(dict.fromkeys([*PRESETS, *sizing.FAMILY, *saved]))
    raise SpecError([f"Unknown architecture {ref!r}: use one of {choices}, or a path to a .json spec."])
