"""The paper's recurrent models for sequential MNIST: LSTM-s/b and GRU-s/b."""

from __future__ import annotations

import keras

from snip_tf.models.registry import Layers, register

L = keras.layers


def _recurrent(cls, units, name):
    def build(f: Layers, input_shape=(28, 28), num_classes=10):
        # One Dense projection of each 28-pixel row to the hidden size, then one recurrent layer:
        # the parameter counts of the paper's Table 2 imply this projection.
        return keras.Sequential([
            keras.Input(input_shape), f.dense(units), f.rnn(cls, units, input_dim=units),
            f.dense(num_classes),
        ], name=name.replace("-", "_"))
    return build


for _name, _cls, _units in [("lstm-s", L.LSTM, 128), ("lstm-b", L.LSTM, 256),
                            ("gru-s", L.GRU, 128), ("gru-b", L.GRU, 256)]:
    register(_name)(_recurrent(_cls, _units, _name))
