"""The zoo's registry and layer factory: ``register`` adds a builder under a name, ``get`` builds a
fresh model by name with a shared initializer, L2 penalty and seed (``Layers``)."""

from __future__ import annotations

from typing import Callable, Optional

import keras

L = keras.layers

INITIALIZERS = {
    # The paper's Table 3 names.
    "rn": lambda seed: keras.initializers.RandomNormal(stddev=0.1, seed=seed),
    "tn": lambda seed: keras.initializers.TruncatedNormal(stddev=0.1, seed=seed),
    "vs-x": lambda seed: keras.initializers.GlorotNormal(seed=seed),
    "vs-h": lambda seed: keras.initializers.HeNormal(seed=seed),
    # tf.variance_scaling_initializer() of TF 1, the authors' code's "vs": scale 1, fan_in,
    # truncated normal.
    "lecun": lambda seed: keras.initializers.VarianceScaling(1.0, "fan_in", "truncated_normal",
                                                             seed=seed),
    # PyTorch's default for nn.Linear and nn.Conv weights, uniform(±1/sqrt(fan_in)) (kaiming
    # uniform with a = sqrt(5)); for its RNN cells' weights where the input is as wide as the
    # state, as in the Reber classifiers (PyTorch's bound is 1/sqrt(units) for both kernels).
    "torch": lambda seed: keras.initializers.VarianceScaling(1 / 3, "fan_in", "uniform",
                                                             seed=seed),
}

_REGISTRY: dict = {}


def register(name: str) -> Callable:
    def decorator(builder):
        _REGISTRY[name] = builder
        return builder
    return decorator


def names() -> list:
    return sorted(_REGISTRY)


class Layers:
    """Factory of the weight layers of one model: shared initializer (a fresh seeded instance per
    layer, so layers differ) and L2 penalty."""

    def __init__(self, initializer: str, l2: float, seed: Optional[int], l2_bias: bool = False):
        key = initializer.lower()
        if key not in INITIALIZERS:
            raise ValueError(f"Unknown initializer {initializer!r}; expected one of "
                             f"{sorted(INITIALIZERS)}.")
        self._make_init = INITIALIZERS[key]
        self.initializer = key
        self._seed = seed
        self._count = 0
        self._l2 = keras.regularizers.L2(l2) if l2 else None
        self._l2_bias = l2_bias

    def weight_seed(self, i: int = 0) -> Optional[int]:
        """Seed of the current layer's ``i``-th weight (None when the model is unseeded)."""
        # One seed per weight, not per layer: a seeded initializer draws the same values for the
        # same shape, so a shared seed made each recurrent kernel a copy of its layer's input
        # kernel. The first weight keeps the per-layer seed it always had.
        return None if self._seed is None else self._seed * 1000 + self._count + 100_000 * i

    def _kwargs(self, *names):
        self._count += 1
        out = {}
        for i, name in enumerate(names):
            out[f"{name}_initializer"] = self._make_init(self.weight_seed(i))
            out[f"{name}_regularizer"] = self._l2
        if self._l2_bias:
            out["bias_regularizer"] = self._l2
        return out

    def _torch_bias(self, fan_in, i):
        # PyTorch draws biases uniform(±1/sqrt(fan_in)) too; the others start at zero.
        bound = fan_in ** -0.5
        return keras.initializers.RandomUniform(-bound, bound, seed=self.weight_seed(i))

    # Weight layers are named by position (fc1, conv2, ...), so two instances of one model have
    # the same variable paths and masks can move between them by path.
    def dense(self, units, fan_in: Optional[int] = None, **kwargs):
        """``fan_in`` (the input width), if given, lets ``initializer="torch"`` draw the bias as
        PyTorch's ``nn.Linear``; without it the bias starts at zero."""
        made = self._kwargs("kernel")
        if self.initializer == "torch" and fan_in:
            made["bias_initializer"] = self._torch_bias(fan_in, 1)
        return L.Dense(units, name=f"fc{self._count}", **made, **kwargs)

    def conv(self, filters, size, **kwargs):
        made = self._kwargs("kernel")
        return L.Conv2D(filters, size, name=f"conv{self._count}", **made, **kwargs)

    def rnn(self, cls, units, **kwargs):
        made = self._kwargs("kernel", "recurrent")
        if self.initializer == "torch":
            # PyTorch's cells: every weight and bias uniform(±1/sqrt(units)), no forget bias.
            made["bias_initializer"] = self._torch_bias(units, 2)
            if cls is L.LSTM:
                made["unit_forget_bias"] = False
        return cls(units, name=f"{cls.__name__.lower()}{self._count}", **{**made, **kwargs})


def get(name: str, *, input_shape=None, num_classes: Optional[int] = None,
        initializer: str = "vs-x",
        l2: float = 0.0, l2_bias: bool = False, seed: Optional[int] = None,
        **kwargs) -> keras.Model:
    """A fresh, uncompiled model of the zoo.

    Args:
        name: one of :func:`names` (lower case with dashes, e.g. "lenet-300-100", "lstm-s").
        input_shape: defaults to the shape the paper used with that model.
        num_classes: outputs of the classifier; defaults to the model's own (10 for the image and
            sequence-MNIST models, 2 for the Reber grammar classifiers).
        initializer: "vs-x" (Glorot, default), "vs-h" (He), "rn" or "tn" (normal / truncated normal,
            stddev 0.1), "lecun" (the authors' code: variance scaling, fan_in, truncated normal),
            "torch" (PyTorch's default, uniform(±1/sqrt(fan_in)); recurrent cells also take
            PyTorch's biases, and the Reber classifiers its head bias and standard normal
            embedding, see their builder).
        l2: L2 penalty ``l2 * sum(w^2)`` on the weights (kernels and recurrent kernels).
        l2_bias: apply the penalty to biases too (the authors' code penalized all masked
            parameters with 0.00025 * sum(w^2), i.e. l2=2.5e-4, l2_bias=True).
        seed: seeds the initializers, for a reproducible draw.
    """
    key = name.lower()
    if key not in _REGISTRY:
        raise ValueError(f"Unknown model {name!r}; expected one of {names()}.")
    if input_shape is not None:
        kwargs["input_shape"] = tuple(input_shape)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    return _REGISTRY[key](Layers(initializer, l2, seed, l2_bias), **kwargs)
