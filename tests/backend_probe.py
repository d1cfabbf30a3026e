"""Run under KERAS_BACKEND=<backend> by tests/test_backends.py: Grad-CAM and one layer record of a run's saved model
on fixed images, written to an .npz, so the test can set them beside TensorFlow's for the same weights (the probe
reads the run's files only).

    python tests/backend_probe.py RUN_DIR OUT.npz
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def probe(run_dir: Path) -> dict[str, np.ndarray]:
    """Grad-CAM maps (for each image's class 0..9 in turn) and the layer record's gradient norms, in float32."""
    from cifar_core import data
    from cifar_core.engine import explain, layerrecords, runtime, trainer

    model = trainer.load_model(run_dir)
    test = data.load_dataset("synthetic")  # what the runs of test_backends.py train on: no saturated softmax
    x, y = test.x_test[:16], test.y_test[:16]  # (TensorFlow's loss reads the logits, the others clip at 1e-7)
    cam = explain.GradCam(model, explain.default_layer(model))(x, np.arange(16) % 10)
    record, _ = layerrecords.take(model, x, y, None, 0.0, 0)
    norms = np.array([e["grad_norm"] or 0.0 for e in record["layers"]], np.float64)
    return {"backend": np.array(runtime.backend()), "cam": cam, "grad_norms": norms,
            "probe_loss": np.array(record["probe_loss"])}


def refit_gap(steps: int = 10, epoch_steps: int = 20) -> float:
    """The largest weight difference between a model whose one-cycle schedule was first planned for 1,000 steps
    and refitted to `steps` by FitToBudget after the first step of an epoch of `epoch_steps` (as a time budget
    refits it), and the same model planned for `steps` from the start: 0 when the train step reads the new
    length at once."""
    import keras

    from cifar_core.engine import callbacks, models
    from cifar_core.model import specs
    from cifar_core.model.config import TrainConfig

    cfg = TrainConfig(optimizer="sgd", schedule="onecycle", learning_rate=0.05, batch_size=8, steps_per_execution=1)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (8 * epoch_steps, 32, 32, 3), dtype=np.uint8)
    y = np.eye(10)[rng.integers(0, 10, 8 * epoch_steps)]

    def train(planned: int) -> list[np.ndarray]:
        keras.utils.set_random_seed(0)
        lr = models.OneCycle(cfg.learning_rate, planned)
        model = models.compile_model(models.build_model(specs.PRESETS["baseline"]), cfg, epoch_steps, lr)
        budget = callbacks.FitToBudget(callbacks.Plan(1, epoch_steps), 3600, 0.0, 8, {"validation": 0, "test": 0},
                                       1, lr)

        class Refit(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                if budget.planned_steps is None and planned != steps:
                    budget.set_model(self.model)
                    budget._apply(steps)

        model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[Refit()])
        return model.get_weights()

    refitted, planned = train(1000), train(steps)
    return max(float(np.abs(a - b).max()) for a, b in zip(refitted, planned, strict=True))


if __name__ == "__main__":
    np.savez(sys.argv[2], **probe(Path(sys.argv[1])), refit_gap=refit_gap())
