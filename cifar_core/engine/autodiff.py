"""Gradients through the backend's own autodiff (TensorFlow's GradientTape, jax.vjp / jax.value_and_grad,
torch.autograd), for what looks inside a model: Grad-CAM and the layer records."""

from __future__ import annotations

from collections.abc import Callable

from cifar_core.engine import runtime

keras = runtime.keras()


def input_gradient(fn: Callable, x):
    """fn(x), and the gradient of the sum of fn(x) with respect to `x` (a batch: each row's output depends on its
    own input only, so this is every row's own gradient)."""
    name = runtime.backend()
    if name == "tensorflow":
        tf = runtime.tensorflow()
        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = fn(x)
            total = tf.reduce_sum(value)
        return value, tape.gradient(total, x)
    if name == "jax":
        import jax
        import jax.numpy as jnp

        value, pullback = jax.vjp(fn, jnp.asarray(x))
        return value, pullback(jnp.ones_like(value))[0]
    import torch

    x = keras.ops.convert_to_tensor(x).detach().requires_grad_(True)
    value = fn(x)
    (grad,) = torch.autograd.grad(value.sum(), x)
    return value, grad


def weight_gradients(fn: Callable, variables: list) -> tuple:
    """(loss, aux, gradients): fn() returns (loss, aux) computed with the model's current weights; the gradients
    of the loss with respect to each of `variables` (keras.Variable), in their order."""
    name = runtime.backend()
    if name == "tensorflow":
        tf = runtime.tensorflow()
        with tf.GradientTape() as tape:
            loss, aux = fn()
        return loss, aux, tape.gradient(loss, variables)
    if name == "jax":
        import jax

        def pure(values):
            with keras.StatelessScope(state_mapping=list(zip(variables, values, strict=True))):
                return fn()

        (loss, aux), grads = jax.value_and_grad(pure, has_aux=True)([v.value for v in variables])
        return loss, aux, grads
    import torch

    loss, aux = fn()
    return loss, aux, torch.autograd.grad(loss, [v.value for v in variables], allow_unused=True)


def compiled(fn: Callable) -> Callable:
    """`fn` as one TensorFlow graph where TensorFlow is the backend (eager, a layer record took several times
    longer); as it is elsewhere (a jax.jit would freeze the weights it does not differentiate as constants)."""
    return runtime.tensorflow().function(fn) if runtime.backend() == "tensorflow" else fn
