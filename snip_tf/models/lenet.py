"""LeNet-300-100 and LeNet-5-Caffe (the paper's MNIST models), and the default job's MLP."""

from __future__ import annotations

import keras

from snip_tf.models.registry import Layers, register

L = keras.layers


@register("lenet-300-100")
def lenet_300_100(f: Layers, input_shape=(28, 28, 1), num_classes=10):
    return keras.Sequential([
        keras.Input(input_shape), L.Flatten(),
        f.dense(300, activation="relu"), f.dense(100, activation="relu"), f.dense(num_classes),
    ], name="lenet_300_100")


@register("lenet-5-caffe")
def lenet_5_caffe(f: Layers, input_shape=(28, 28, 1), num_classes=10):
    # As Caffe's LeNet and the authors' LeNet5 (snip/network.py): no activation after the
    # convolutions, only after fc1.
    return keras.Sequential([
        keras.Input(input_shape),
        f.conv(20, 5), L.MaxPooling2D(2),
        f.conv(50, 5), L.MaxPooling2D(2), L.Flatten(),
        f.dense(500, activation="relu"), f.dense(num_classes),
    ], name="lenet_5_caffe")


@register("mlp")
def mlp(f: Layers, input_shape=(8, 8, 1), num_classes=10, hidden=(300, 100)):
    """LeNet-300-100's shape for any input (the default job uses it on 8x8 digits)."""
    layers = [keras.Input(input_shape), L.Flatten()]
    layers += [f.dense(units, activation="relu") for units in hidden]
    return keras.Sequential(layers + [f.dense(num_classes)], name="mlp")
