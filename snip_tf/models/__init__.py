"""The model zoo, by name: ``snip_tf.models.get("lenet-5-caffe")``.

>>> model = snip_tf.models.get("lenet-300-100")
>>> model.count_params()
266610
"""

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
}

_REGISTRY: dict = {}


def register(name: str) -> Callable:
    def decorator(builder):
        _REGISTRY[name] = builder
        return builder
    return decorator


def names() -> list:
    return sorted(_REGISTRY)


class _Layers:
    """Factory of the weight layers of one model: shared initializer (a fresh seeded instance per
    layer, so layers differ) and L2 penalty."""

    def __init__(self, initializer: str, l2: float, seed: Optional[int]):
        key = initializer.lower()
        if key not in INITIALIZERS:
            raise ValueError(f"Unknown initializer {initializer!r}; expected one of "
                             f"{sorted(INITIALIZERS)}.")
        self._make_init = INITIALIZERS[key]
        self._seed = seed
        self._count = 0
        self._l2 = keras.regularizers.L2(l2) if l2 else None

    def _kwargs(self, *names):
        self._count += 1
        seed = None if self._seed is None else self._seed * 1000 + self._count
        out = {}
        for name in names:
            out[f"{name}_initializer"] = self._make_init(seed)
            out[f"{name}_regularizer"] = self._l2
        return out

    def dense(self, units, **kwargs):
        return L.Dense(units, **self._kwargs("kernel"), **kwargs)

    def conv(self, filters, size, **kwargs):
        return L.Conv2D(filters, size, **self._kwargs("kernel"), **kwargs)

    def rnn(self, cls, units, **kwargs):
        return cls(units, **self._kwargs("kernel", "recurrent"), **kwargs)


@register("lenet-300-100")
def lenet_300_100(f: _Layers, input_shape=(28, 28, 1), num_classes=10):
    return keras.Sequential([
        keras.Input(input_shape), L.Flatten(),
        f.dense(300, activation="relu"), f.dense(100, activation="relu"), f.dense(num_classes),
    ], name="lenet_300_100")


@register("lenet-5-caffe")
def lenet_5_caffe(f: _Layers, input_shape=(28, 28, 1), num_classes=10):
    return keras.Sequential([
        keras.Input(input_shape),
        f.conv(20, 5, activation="relu"), L.MaxPooling2D(2),
        f.conv(50, 5, activation="relu"), L.MaxPooling2D(2), L.Flatten(),
        f.dense(500, activation="relu"), f.dense(num_classes),
    ], name="lenet_5_caffe")


def _recurrent(cls, units, name):
    def build(f: _Layers, input_shape=(28, 28), num_classes=10):
        # One Dense projection of each 28-pixel row to the hidden size, then one recurrent layer:
        # the parameter counts of the paper's Table 2 imply this projection.
        return keras.Sequential([
            keras.Input(input_shape), f.dense(units), f.rnn(cls, units), f.dense(num_classes),
        ], name=name.replace("-", "_"))
    return build


for _name, _cls, _units in [("lstm-s", L.LSTM, 128), ("lstm-b", L.LSTM, 256),
                            ("gru-s", L.GRU, 128), ("gru-b", L.GRU, 256)]:
    register(_name)(_recurrent(_cls, _units, _name))


@register("mlp")
def mlp(f: _Layers, input_shape=(8, 8, 1), num_classes=10, hidden=(300, 100)):
    """LeNet-300-100's shape for any input (the default job uses it on 8x8 digits)."""
    layers = [keras.Input(input_shape), L.Flatten()]
    layers += [f.dense(units, activation="relu") for units in hidden]
    return keras.Sequential(layers + [f.dense(num_classes)], name="mlp")


def get(name: str, *, input_shape=None, num_classes: int = 10, initializer: str = "vs-x",
        l2: float = 0.0, seed: Optional[int] = None, **kwargs) -> keras.Model:
    """A fresh, uncompiled model of the zoo.

    Args:
        name: one of :func:`names` (lower case with dashes, e.g. "lenet-300-100", "lstm-s").
        input_shape: defaults to the shape the paper used with that model.
        initializer: "vs-x" (Glorot, default), "vs-h" (He), "rn" or "tn" (normal / truncated normal,
            stddev 0.1).
        l2: L2 penalty on the weights (kernels and recurrent kernels).
        seed: seeds the initializers, for a reproducible draw.
    """
    key = name.lower()
    if key not in _REGISTRY:
        raise ValueError(f"Unknown model {name!r}; expected one of {names()}.")
    if input_shape is not None:
        kwargs["input_shape"] = tuple(input_shape)
    return _REGISTRY[key](_Layers(initializer, l2, seed), num_classes=num_classes, **kwargs)
