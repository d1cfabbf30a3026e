"""Build a Keras model from an ArchitectureSpec (`shapes` describes the same model without building it)."""

from __future__ import annotations

from cifar_core.engine import runtime, whitening
from cifar_core.model.config import TrainConfig
from cifar_core.model.shapes import INPUT_SIZE, NUM_CLASSES
from cifar_core.model.specs import ArchitectureSpec, check

runtime.keras()
import keras  # noqa: E402  (after runtime has imported it quietly, on this process's backend)
from keras import layers  # noqa: E402


def build_model(spec: ArchitectureSpec, num_classes: int = NUM_CLASSES, bn_momentum: float = 0.99):
    """A keras.Sequential for 32x32x3 uint8-range input; rescaling to [0, 1] is the first layer, then the spec's
    stem (a whitening layer that whitening.fit_to_data sets from the training images), then its blocks."""
    check(spec)
    model = keras.Sequential(name=spec.name.replace(".", "_"))
    model.add(keras.Input((INPUT_SIZE, INPUT_SIZE, 3), name="image"))
    model.add(layers.Rescaling(1 / 255, name="rescale"))
    if spec.stem == "whiten":  # a frozen 2x2 patch-whitening conv (engine/whitening.py), set by fit_to_data
        stem = layers.Conv2D(whitening.filters(), whitening.PATCH, name=whitening.WHITEN, trainable=False)
        model.add(stem)
        stem.set_weights(list(whitening.patch_identity()))
        model.add(layers.ReLU(name=f"{whitening.WHITEN}_relu"))
    for b, block in enumerate(spec.blocks, start=1):
        pool = {"max": layers.MaxPooling2D, "avg": layers.AveragePooling2D}.get(block.pool)
        for c in range(1, block.convs + 1):
            tag = f"block{b}_{c}" if block.convs > 1 else f"block{b}"
            model.add(layers.Conv2D(block.filters, block.kernel_size, padding="same",
                                    use_bias=True, name=f"{tag}_conv"))
            if pool and block.pool_first and c == block.convs:
                model.add(pool(2, name=f"block{b}_{block.pool}pool"))
            bn = layers.BatchNormalization(momentum=bn_momentum, name=f"{tag}_bn") if block.batch_norm else None
            relu = layers.ReLU(name=f"{tag}_relu")
            for layer in filter(None, (relu, bn) if block.bn_after_relu else (bn, relu)):
                model.add(layer)
        if pool and not block.pool_first:
            model.add(pool(2, name=f"block{b}_{block.pool}pool"))
        if block.dropout:
            model.add(layers.Dropout(block.dropout, name=f"block{b}_dropout"))
    head = spec.head
    model.add(layers.Flatten(name="flatten") if head.pooling == "flatten"
              else layers.GlobalAveragePooling2D(name="global_avg_pool"))
    for d, units in enumerate(head.dense, start=1):
        model.add(layers.Dense(units, activation="relu", name=f"dense{d}"))
        if head.dropout:
            model.add(layers.Dropout(head.dropout, name=f"dense{d}_dropout"))
    # float32 even under a mixed precision policy: the softmax and the loss stay exact.
    model.add(layers.Dense(num_classes, activation="softmax", name="predictions", dtype="float32"))
    return model


@keras.saving.register_keras_serializable(package="cifar_lab")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from a tenth of the peak over the first `warmup` share of the steps, then linear decay to
    zero. `total_steps` is a variable, so a run with a time budget can fit it once it has measured its speed."""

    def __init__(self, peak: float, total_steps: int, warmup: float = 0.2):
        self.peak, self.warmup = float(peak), float(warmup)
        self.total_steps = keras.Variable(float(max(total_steps, 1)), trainable=False, name="total_steps")

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        total = keras.ops.maximum(self.total_steps, 1.0)
        rise = keras.ops.maximum(self.warmup * total, 1.0)
        up = self.peak * (0.1 + 0.9 * step / rise)
        down = self.peak * keras.ops.maximum(total - step, 0.0) / keras.ops.maximum(total - rise, 1.0)
        return keras.ops.where(step < rise, up, down)

    def attach(self, optimizer) -> None:
        """Make `total_steps` one of the optimizer's variables: a JAX train step then takes it as state and reads
        what FitToBudget assigns (a variable of its own would be baked into the compiled step as a constant)."""
        value = float(keras.ops.convert_to_numpy(self.total_steps))
        self.total_steps = optimizer.add_variable((), keras.initializers.Constant(value), "float32",
                                                  name="total_steps")

    def get_config(self) -> dict:
        return {"peak": self.peak, "total_steps": int(keras.ops.convert_to_numpy(self.total_steps)),
                "warmup": self.warmup}


def learning_rate(cfg: TrainConfig, steps_per_epoch: int):
    """The learning rate or schedule the config asks for."""
    if cfg.schedule == "onecycle":
        return OneCycle(cfg.learning_rate, cfg.epochs * steps_per_epoch)
    return cfg.learning_rate


def make_optimizer(cfg: TrainConfig, lr):
    """The config's optimizer at learning rate (or schedule) `lr`."""
    wd = cfg.weight_decay or None
    optimizer = {
        "adam": lambda: keras.optimizers.Adam(lr, weight_decay=wd),
        "sgd": lambda: keras.optimizers.SGD(lr, weight_decay=wd),
        "nesterov": lambda: keras.optimizers.SGD(lr, momentum=0.9, nesterov=True, weight_decay=wd),
        "rmsprop": lambda: keras.optimizers.RMSprop(lr, weight_decay=wd),
    }[cfg.optimizer]()
    if wd:
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer


def steps_per_execution(cfg: TrainConfig, steps_per_epoch: int) -> int:
    """Batches per call into the backend: enough to hide Python's per-call overhead, few enough that progress,
    the ETA and STOP still react within a couple of seconds (about ten calls per epoch, at most 64 batches; twenty
    with a time budget, whose run can end only at a call's end: at ten, a 60 s run's possible ends lay 1.7 s, 3% of
    it, apart). Keras's PyTorch trainer runs one batch per call."""
    if keras.backend.backend() == "torch":
        return 1
    return cfg.steps_per_execution or max(1, min(64, steps_per_epoch // (20 if cfg.time_budget else 10)))


def jit_compile(on_gpu: bool) -> bool | str:
    """XLA for TensorFlow where it helps (a GPU); JAX always compiles with XLA; PyTorch's compile is left to Keras
    ("auto": off)."""
    return on_gpu if keras.backend.backend() == "tensorflow" else "auto"


def compile_model(model, cfg: TrainConfig, steps_per_epoch: int, lr=None, on_gpu: bool = False):
    """The seed's loss (categorical cross-entropy on one-hot labels, optionally smoothed) with the config's
    optimizer and learning rate or schedule (`lr`, default from the config); several batches per execution;
    XLA where it helps."""
    lr = learning_rate(cfg, steps_per_epoch) if lr is None else lr
    optimizer = make_optimizer(cfg, lr)
    if isinstance(lr, OneCycle):
        lr.attach(optimizer)
    model.compile(optimizer=optimizer,
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
                  metrics=["accuracy"], steps_per_execution=steps_per_execution(cfg, steps_per_epoch),
                  jit_compile=jit_compile(on_gpu))
    return model
