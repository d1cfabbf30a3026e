"""Training settings that travel from the CLI or dashboard into run.json and the trainer."""

from __future__ import annotations

from dataclasses import dataclass

from cifar_core.backends import CHOICES as BACKENDS
from cifar_core.errors import LabError
from cifar_core.model.jsonfields import typed_fields

VALIDATIONS = ("split", "test")
VALIDATION_LABELS = {"split": "held-out training images", "test": "the test set (seed protocol, leaks the test set)"}
OPTIMIZERS = ("adam", "sgd", "rmsprop", "nesterov")
PRECISIONS = ("auto", "float32", "bfloat16", "float16")
SCHEDULES = ("constant", "onecycle")
RECIPES = ("seed", "fast")
MIN_SUBSET = 20
MIN_TIME_BUDGET_S = 30  # starting TensorFlow, loading the data and measuring the networks take 10-30 s
MAX_EPOCHS = 10_000
MAX_BATCH = 8192
MAX_SEED = 2**32 - 1
MAX_GPUS = 64


class ConfigError(LabError):
    """Training settings that cannot work; the message lists each one and what to change."""


@dataclass(frozen=True)
class TrainConfig:
    """Defaults follow the seed study: Adam, batch 32, up to 30 epochs, early stopping with patience 5.

    validation='split' holds out `validation_size` stratified training images; 'test' is the seed
    notebook's protocol (validate on the test set), which leaks the test set into model selection.
    """

    epochs: int = 30
    batch_size: int = 32
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    patience: int = 5
    seed: int = 0
    validation: str = "split"
    validation_size: int = 5000
    subset: int | None = None
    test_subset: int | None = None
    augment: bool = False
    # The engine: how the hardware is used. It never changes what is trained, only how fast.
    precision: str = "auto"  # auto: mixed float16 on a GPU, mixed bfloat16 on CPUs with native bf16, else float32
    steps_per_execution: int = 0  # batches per call into the backend; 0 picks it from the batches per epoch
    backend: str = "auto"  # Keras 3's: tensorflow, jax or torch; auto picks the fastest installed (backends.py)
    # The training plan beyond the seed's: the fast recipe (recipes.py) sets these.
    recipe: str = "seed"
    time_budget: float | None = None  # seconds for the whole run; the number of epochs is fitted to it
    size_network: bool = False  # with a time budget: the network is picked at launch from model/sizing.py's family
    schedule: str = "constant"  # or "onecycle": linear warm-up, then linear decay to zero
    weight_decay: float = 0.0  # decoupled, scaled by the learning rate (not applied to biases or batch norm)
    label_smoothing: float = 0.0
    bn_momentum: float = 0.99  # Keras's default; short runs need fresher batch-norm statistics
    translate: int = 4  # pixels of random shift when augmenting (with random horizontal flips)
    tta: bool = False  # test predictions averaged with those of the horizontally flipped images
    layer_records: bool = True  # what each layer does while it learns (layers.jsonl); benchmarks turn it off
    gpus: int = 0  # 2 or more: this one run on that many GPUs (tf.distribute.MirroredStrategy, batch split among them)

    def problems(self) -> list[str]:
        """Every setting that cannot work, phrased as what to change."""
        out = []
        for name, high in (("epochs", MAX_EPOCHS), ("batch_size", MAX_BATCH), ("validation_size", None)):
            value = getattr(self, name)
            if value < 1 or (high and value > high):
                limit = f"1 to {high:,}" if high else "at least 1"
                out.append(f"{name.replace('_', '-')} must be {limit} (got {value:,}).")
        if self.patience < 0:
            out.append(f"patience must be 0 (no early stopping) or more (got {self.patience}).")
        if not 0 < self.learning_rate < 10:
            out.append(f"learning rate must be in (0, 10) (got {self.learning_rate}).")
        if not 0 <= self.seed <= MAX_SEED:
            out.append(f"seed must be 0 to {MAX_SEED:,} (got {self.seed:,}).")
        if self.validation not in VALIDATIONS:
            out.append(f"validation must be 'split' or 'test' (got {self.validation!r}).")
        if self.optimizer not in OPTIMIZERS:
            out.append(f"optimizer must be {', '.join(OPTIMIZERS)} (got {self.optimizer!r}).")
        for name in ("subset", "test_subset"):
            value = getattr(self, name)
            if value is not None and value < MIN_SUBSET:
                out.append(f"{name.replace('_', '-')} must be at least {MIN_SUBSET} images (got {value:,}).")
        for name, allowed in (("precision", PRECISIONS), ("schedule", SCHEDULES), ("recipe", RECIPES),
                              ("backend", BACKENDS)):
            if getattr(self, name) not in allowed:
                out.append(f"{name} must be one of {', '.join(allowed)} (got {getattr(self, name)!r}).")
        if not 0 <= self.steps_per_execution <= 1000:
            out.append(f"steps-per-execution must be 0 (automatic) to 1,000 (got {self.steps_per_execution}).")
        if self.time_budget is not None and not MIN_TIME_BUDGET_S <= self.time_budget <= 7 * 24 * 3600:
            out.append(f"time budget must be {MIN_TIME_BUDGET_S} seconds to a week (got {self.time_budget:g} s): "
                       "starting TensorFlow, loading the data and measuring the networks take 10-30 s before the "
                       "first batch.")
        if not 0 <= self.weight_decay < 1:
            out.append(f"weight decay must be in [0, 1) (got {self.weight_decay}).")
        if not 0 <= self.bn_momentum < 1:
            out.append(f"batch-norm momentum must be in [0, 1) (got {self.bn_momentum}).")
        if not 0 <= self.label_smoothing < 1:
            out.append(f"label smoothing must be in [0, 1) (got {self.label_smoothing}).")
        if not 0 <= self.translate <= 8:
            out.append(f"translate must be 0 to 8 pixels (got {self.translate}).")
        if self.size_network and not self.time_budget:
            out.append("a network sized to the budget needs a time budget (--time-budget), or name the network.")
        if not 0 <= self.gpus <= MAX_GPUS:
            out.append(f"gpus must be 0 to {MAX_GPUS} (got {self.gpus}).")
        return out

    def sizes(self, train_images: int, test_images: int) -> dict[str, int]:
        """How many images the run trains, validates and tests on, from a data set of these sizes (as the trainer
        splits it: subset first, then a validation split of at most a tenth, or the test set under 'test')."""
        train = min(self.subset or train_images, train_images)
        test = min(self.test_subset or test_images, test_images)
        if self.validation == "test":
            return {"train": train, "validation": test, "test": test}
        validation = min(self.validation_size, train // 10)
        return {"train": train - validation, "validation": validation, "test": test}

    def check(self) -> TrainConfig:
        """The config itself, or ConfigError listing every problem."""
        problems = self.problems()
        if problems:
            raise ConfigError(" ".join(problems))
        return self

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """Settings read back from JSON, each checked against its type; keys of newer versions are ignored."""
        if not isinstance(data, dict):
            raise ConfigError(f"config must be an object, got {type(data).__name__}")
        return cls(**typed_fields(data, cls, "config"))
