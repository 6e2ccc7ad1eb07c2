"""The thesis's Reber-grammar classifiers (RNN-Tanh, RNN-ReLU, LSTM, GRU)."""

from __future__ import annotations

import keras

from snip_tf.models.registry import Layers, register

L = keras.layers

_REBER_CELLS = {"rnn-tanh": (L.SimpleRNN, {"activation": "tanh"}),
                "rnn-relu": (L.SimpleRNN, {"activation": "relu"}),
                "lstm": (L.LSTM, {}), "gru": (L.GRU, {})}


REBER_PADDINGS = ("masked", "unmasked")
REBER_EMBEDDINGS = ("uniform", "normal")


def _reber(variant):
    def build(f: Layers, input_shape=(None,), num_classes=2, vocab_size=32, units=50, layers=3,
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
            x = f.rnn(cls, units, input_dim=units, return_sequences=i < layers - 1, **kwargs)(x)
        return keras.Model(inputs, f.dense(num_classes, fan_in=units)(x),
                           name=f"reber_{variant}".replace("-", "_"))
    return build


for _variant in _REBER_CELLS:
    register(f"reber-{_variant}")(_reber(_variant))
