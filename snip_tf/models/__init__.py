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


class _Layers:
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


def _conv_bn_relu(f: _Layers, x, filters, size, strides=1):
    x = f.conv(filters, size, strides=strides, padding="same")(x)
    return L.ReLU()(L.BatchNormalization()(x))


def _dense_bn_relu(f: _Layers, x, units):
    return L.ReLU()(L.BatchNormalization()(f.dense(units)(x)))


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


def _alexnet(k, name):
    def build(f: _Layers, input_shape=(32, 32, 3), num_classes=10):
        # The authors' CIFAR AlexNet: the original conv kernels and filters, strides of 2 instead of
        # max-pooling, BatchNorm, and fc layers of 1024*k units (k=1: AlexNet-s, k=2: AlexNet-b).
        inputs = keras.Input(input_shape)
        x = inputs
        for filters, size in [(96, 11), (256, 5), (384, 3), (384, 3), (256, 3)]:
            x = _conv_bn_relu(f, x, filters, size, strides=2)
        x = L.Flatten()(x)
        for _ in range(2):
            x = _dense_bn_relu(f, x, 1024 * k)
        return keras.Model(inputs, f.dense(num_classes)(x), name=name)
    return build


register("alexnet-s")(_alexnet(1, "alexnet_s"))
register("alexnet-b")(_alexnet(2, "alexnet_b"))

_VGG_BLOCKS = {
    # (filters, kernel size) per conv layer; a max-pool after each block.
    "c": [[(64, 3)] * 2, [(128, 3)] * 2, [(256, 3), (256, 3), (256, 1)],
          [(512, 3), (512, 3), (512, 1)], [(512, 3), (512, 3), (512, 1)]],
    "d": [[(64, 3)] * 2, [(128, 3)] * 2, [(256, 3)] * 3, [(512, 3)] * 3, [(512, 3)] * 3],
}


def _vgg(version, fc_layers, name):
    def build(f: _Layers, input_shape=(32, 32, 3), num_classes=10):
        # VGG with BatchNorm and no dropout; fc layers of 512 on the 1x1 map CIFAR leaves.
        inputs = keras.Input(input_shape)
        x = inputs
        for block in _VGG_BLOCKS[version]:
            for filters, size in block:
                x = _conv_bn_relu(f, x, filters, size)
            x = L.MaxPooling2D(2, padding="same")(x)
        x = L.Flatten()(x)
        for _ in range(fc_layers):
            x = _dense_bn_relu(f, x, 512)
        return keras.Model(inputs, f.dense(num_classes)(x), name=name)
    return build


register("vgg-c")(_vgg("c", 2, "vgg_c"))
register("vgg-d")(_vgg("d", 2, "vgg_d"))
register("vgg-like")(_vgg("d", 1, "vgg_like"))


def _wide_resnet(depth, width, name):
    def build(f: _Layers, input_shape=(32, 32, 3), num_classes=10):
        # Zagoruyko & Komodakis (2016): pre-activation basic blocks, (depth - 4) / 6 per group,
        # 1x1 projection shortcuts where the shape changes.
        blocks = (depth - 4) // 6
        inputs = keras.Input(input_shape)
        x = f.conv(16, 3, padding="same", use_bias=False)(inputs)
        for group, filters in enumerate([16 * width, 32 * width, 64 * width]):
            for i in range(blocks):
                strides = 2 if group > 0 and i == 0 else 1
                pre = L.ReLU()(L.BatchNormalization()(x))
                shortcut = x
                if strides != 1 or x.shape[-1] != filters:
                    shortcut = f.conv(filters, 1, strides=strides, use_bias=False)(pre)
                y = f.conv(filters, 3, strides=strides, padding="same", use_bias=False)(pre)
                y = L.ReLU()(L.BatchNormalization()(y))
                y = f.conv(filters, 3, padding="same", use_bias=False)(y)
                x = L.Add()([shortcut, y])
        x = L.ReLU()(L.BatchNormalization()(x))
        x = L.GlobalAveragePooling2D()(x)
        return keras.Model(inputs, f.dense(num_classes)(x), name=name)
    return build


for _depth, _width in [(16, 8), (16, 10), (22, 8)]:
    register(f"wrn-{_depth}-{_width}")(_wide_resnet(_depth, _width, f"wrn_{_depth}_{_width}"))


_REBER_CELLS = {"rnn-tanh": (L.SimpleRNN, {"activation": "tanh"}),
                "rnn-relu": (L.SimpleRNN, {"activation": "relu"}),
                "lstm": (L.LSTM, {}), "gru": (L.GRU, {})}


REBER_PADDINGS = ("masked", "unmasked")
REBER_EMBEDDINGS = ("uniform", "normal")


def _reber(variant):
    def build(f: _Layers, input_shape=(None,), num_classes=2, vocab_size=32, units=50, layers=3,
              padding="masked", embedding=None, unit_forget_bias=None):
        """The thesis's classifier: Embedding -> 3 stacked recurrent layers of 50 units ->
        Dense(2).

        padding: "masked" (default): the last layer returns its state at each string's last
            symbol; "unmasked", the thesis's: every string runs through the trailing padding
            (index 0) and the state after the last padding step is read.
        embedding: "uniform", Keras's uniform(±0.05), or "normal", PyTorch's standard normal;
            defaults to "normal" with ``initializer="torch"``, "uniform" otherwise.
        unit_forget_bias: LSTM only: start the forget gate's bias at 1 (Keras's
            ``unit_forget_bias``) instead of the initializer's bias, or not; None (default)
            keeps the initializer's own choice, on for Keras's initializers, off for "torch".

        With ``initializer="torch"`` the model is initialized as the thesis's PyTorch code's:
        every weight and bias of a cell uniform(±1/sqrt(units)) (no LSTM forget bias of 1), the
        classifier as ``nn.Linear`` and a standard normal embedding. PyTorch's cells have two
        biases, Keras's LSTM and SimpleRNN one, drawn once.
        """
        if padding not in REBER_PADDINGS:
            raise ValueError(f"padding must be one of {REBER_PADDINGS}; got {padding!r}.")
        embedding = embedding or ("normal" if f.initializer == "torch" else "uniform")
        if embedding not in REBER_EMBEDDINGS:
            raise ValueError(f"embedding must be one of {REBER_EMBEDDINGS}; got {embedding!r}.")

        cls, kwargs = _REBER_CELLS[variant]
        if unit_forget_bias is not None:
            if cls is not L.LSTM:
                raise ValueError(f"unit_forget_bias applies to the LSTM only; got it for "
                                 f"{variant!r}.")
            kwargs = {**kwargs, "unit_forget_bias": bool(unit_forget_bias)}
        inputs = keras.Input(input_shape, dtype="int32")
        # The embedding has no seed of its own in the factory's count; 3 is a weight index no
        # layer uses, so this draw differs from every other one.
        embeddings_init = (keras.initializers.RandomNormal(0.0, 1.0, seed=f.weight_seed(3))
                           if embedding == "normal" else "uniform")
        x = L.Embedding(vocab_size, units, mask_zero=padding == "masked", name="embedding",
                        embeddings_initializer=embeddings_init)(inputs)
        for i in range(layers):
            x = f.rnn(cls, units, return_sequences=i < layers - 1, **kwargs)(x)
        return keras.Model(inputs, f.dense(num_classes, fan_in=units)(x),
                           name=f"reber_{variant}".replace("-", "_"))
    return build


for _variant in _REBER_CELLS:
    register(f"reber-{_variant}")(_reber(_variant))


@register("mlp")
def mlp(f: _Layers, input_shape=(8, 8, 1), num_classes=10, hidden=(300, 100)):
    """LeNet-300-100's shape for any input (the default job uses it on 8x8 digits)."""
    layers = [keras.Input(input_shape), L.Flatten()]
    layers += [f.dense(units, activation="relu") for units in hidden]
    return keras.Sequential(layers + [f.dense(num_classes)], name="mlp")


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
    return _REGISTRY[key](_Layers(initializer, l2, seed, l2_bias), **kwargs)
