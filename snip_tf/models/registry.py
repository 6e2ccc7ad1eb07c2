"""The zoo's registry and layer factory: ``register`` adds a builder under a name, ``get`` builds a
fresh model by name with a shared initializer, L2 penalty and seed (``Layers``)."""

from __future__ import annotations

import math
from typing import Callable, Optional

import keras
import numpy as np

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

# How a variance-scaling initializer takes the fans of a recurrent layer's two kernels (see
# CellVarianceScaling): "split", Keras's, each kernel by its own shape; "cell", TensorFlow 1's
# cells', one kernel over [input, state].
RECURRENT_FANS = ("split", "cell")


@keras.saving.register_keras_serializable(package="snip_tf")
class CellVarianceScaling(keras.initializers.Initializer):
    """Variance scaling with the fans of TensorFlow 1's recurrent cells, for Keras's split kernels.

    TF 1's ``LSTMCell`` holds one kernel over the concatenated [input, state], of shape
    (input_dim + units, 4 * units); its ``GRUCell`` holds two, (input_dim + units, 2 * units) for
    the gates and (input_dim + units, units) for the candidate. A variance-scaling initializer
    took its fans from those shapes. Keras's LSTM and GRU split each kernel by rows into a kernel
    (input_dim, G * units) and a recurrent kernel (units, G * units), so the fans Keras computes
    are smaller: He's variance 2 / fan_in is (input_dim + units) / input_dim times TF 1's. (The
    shapes: TensorFlow's ``tensorflow/python/keras/layers/legacy_rnn/rnn_cell_impl.py``.)

    This draws either Keras kernel with TF 1's variance. ``fused_rows`` is input_dim + units;
    ``blocks`` are the column widths of TF 1's kernels, in Keras's column order (LSTM:
    ``(4 * units,)``, GRU: ``(2 * units, units)``); their sum is the kernel's width. One draw of
    the whole kernel is scaled block by block, so each block has ``scale / n`` as its variance,
    with ``n`` the fan of its TF 1 kernel.

    >>> init = CellVarianceScaling(2.0, "fan_in", fused_rows=256, blocks=(512,), seed=0)
    >>> std = float(keras.ops.std(init((128, 512))))  # sqrt(2 / 256); Keras's: sqrt(2 / 128)
    >>> abs(std - (2 / 256) ** 0.5) < 0.002
    True
    """

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", *,
                 fused_rows: int, blocks, seed=None):
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"mode must be fan_in, fan_out or fan_avg; got {mode!r}.")
        if int(fused_rows) < 1 or not blocks or any(int(b) < 1 for b in blocks):
            raise ValueError(f"fused_rows and blocks must be positive; got {fused_rows!r} and "
                             f"{blocks!r}.")
        self.scale, self.mode, self.distribution = float(scale), mode, distribution
        self.fused_rows, self.blocks = int(fused_rows), tuple(int(b) for b in blocks)
        self.seed = seed

    def __call__(self, shape, dtype=None):
        if len(shape) != 2 or shape[1] != sum(self.blocks):
            raise ValueError(f"CellVarianceScaling draws a 2-D kernel {sum(self.blocks)} columns "
                             f"wide (blocks {self.blocks}); got the shape {tuple(shape)}.")
        rows = shape[0]
        # Variance 1 / rows, then each block's columns scaled to scale / n.
        unit = keras.initializers.VarianceScaling(1.0, "fan_in", self.distribution,
                                                  seed=self.seed)(shape, dtype=dtype)
        factors = []
        for width in self.blocks:
            n = {"fan_in": self.fused_rows, "fan_out": width,
                 "fan_avg": (self.fused_rows + width) / 2}[self.mode]
            factors.append(np.full(width, math.sqrt(self.scale * rows / n)))
        return unit * keras.ops.cast(np.concatenate(factors), unit.dtype)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                "fused_rows": self.fused_rows, "blocks": list(self.blocks), "seed": self.seed}


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
    layer, so layers differ) and L2 penalty. ``recurrent_fan``: one of :data:`RECURRENT_FANS`."""

    def __init__(self, initializer: str, l2: float, seed: Optional[int], l2_bias: bool = False,
                 recurrent_fan: str = "split"):
        key = initializer.lower()
        if key not in INITIALIZERS:
            raise ValueError(f"Unknown initializer {initializer!r}; expected one of "
                             f"{sorted(INITIALIZERS)}.")
        if recurrent_fan not in RECURRENT_FANS:
            raise ValueError(f"Unknown recurrent_fan {recurrent_fan!r}; expected one of "
                             f"{list(RECURRENT_FANS)}.")
        if recurrent_fan == "cell" and key == "torch":
            raise ValueError("recurrent_fan='cell' gives TensorFlow 1's fans; the 'torch' "
                             "initializer draws PyTorch's cells, whose bound is 1/sqrt(units): "
                             "use recurrent_fan='split' with it.")
        self.recurrent_fan = recurrent_fan
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

    def rnn(self, cls, units, input_dim: Optional[int] = None, **kwargs):
        """``input_dim``, the width of the layer's input, is needed for ``recurrent_fan="cell"``."""
        made = self._kwargs("kernel", "recurrent")
        if self.recurrent_fan == "cell":
            blocks = {L.LSTM: (4 * units,), L.GRU: (2 * units, units),
                      L.SimpleRNN: (units,)}.get(cls)
            if blocks is None or not input_dim:
                raise ValueError(f"recurrent_fan='cell' needs an LSTM, GRU or SimpleRNN and its "
                                 f"input width; got {cls.__name__} with input_dim={input_dim!r}.")
            for i, name in enumerate(("kernel_initializer", "recurrent_initializer")):
                init = made[name]
                if isinstance(init, keras.initializers.VarianceScaling):
                    made[name] = CellVarianceScaling(
                        init.scale, init.mode, init.distribution, fused_rows=input_dim + units,
                        blocks=blocks, seed=self.weight_seed(i))
        if self.initializer == "torch":
            # PyTorch's cells: every weight and bias uniform(±1/sqrt(units)), no forget bias.
            made["bias_initializer"] = self._torch_bias(units, 2)
            if cls is L.LSTM:
                made["unit_forget_bias"] = False
        return cls(units, name=f"{cls.__name__.lower()}{self._count}", **{**made, **kwargs})


def get(name: str, *, input_shape=None, num_classes: Optional[int] = None,
        initializer: str = "vs-x",
        l2: float = 0.0, l2_bias: bool = False, seed: Optional[int] = None,
        recurrent_fan: str = "split", **kwargs) -> keras.Model:
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
        recurrent_fan: how a variance-scaling initializer takes the fans of a recurrent layer's
            kernels: "split" (Keras's: the input and the recurrent kernel each by its own shape)
            or "cell" (TensorFlow 1's cells: one kernel over [input, state], see
            :class:`CellVarianceScaling`). The fixed-stddev initializers ("rn", "tn") ignore it;
            "torch" (PyTorch's cells) takes only "split".
    """
    key = name.lower()
    if key not in _REGISTRY:
        raise ValueError(f"Unknown model {name!r}; expected one of {names()}.")
    if input_shape is not None:
        kwargs["input_shape"] = tuple(input_shape)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    return _REGISTRY[key](Layers(initializer, l2, seed, l2_bias, recurrent_fan), **kwargs)
