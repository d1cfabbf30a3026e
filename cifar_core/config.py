"""Training settings that travel from the CLI or dashboard into run.json and the trainer."""

from __future__ import annotations

from dataclasses import dataclass, fields

VALIDATIONS = ("split", "test")


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

    def problems(self) -> list[str]:
        """Every setting that cannot work, phrased as what to change."""
        out = []
        for name in ("epochs", "batch_size", "validation_size"):
            if getattr(self, name) < 1:
                out.append(f"{name.replace('_', '-')} must be at least 1 (got {getattr(self, name)}).")
        if self.patience < 0:
            out.append(f"patience must be 0 (no early stopping) or more (got {self.patience}).")
        if not 0 < self.learning_rate < 10:
            out.append(f"learning rate must be in (0, 10) (got {self.learning_rate}).")
        if self.validation not in VALIDATIONS:
            out.append(f"validation must be 'split' or 'test' (got {self.validation!r}).")
        if self.optimizer not in ("adam", "sgd", "rmsprop"):
            out.append(f"optimizer must be adam, sgd or rmsprop (got {self.optimizer!r}).")
        for name in ("subset", "test_subset"):
            value = getattr(self, name)
            if value is not None and value < 20:
                out.append(f"{name.replace('_', '-')} must be at least 20 images (got {value}).")
        return out

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
