"""The paper's CIFAR-10 models: AlexNet-s/b, VGG-C/D/like and WRN-16-8/16-10/22-8."""

from __future__ import annotations

import keras

from snip_tf.models.registry import Layers, register

L = keras.layers


def _conv_bn_relu(f: Layers, x, filters, size, strides=1):
    x = f.conv(filters, size, strides=strides, padding="same")(x)
    return L.ReLU()(L.BatchNormalization()(x))


def _dense_bn_relu(f: Layers, x, units):
    return L.ReLU()(L.BatchNormalization()(f.dense(units)(x)))


def _alexnet(k, name):
    def build(f: Layers, input_shape=(32, 32, 3), num_classes=10):
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
    def build(f: Layers, input_shape=(32, 32, 3), num_classes=10):
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
    def build(f: Layers, input_shape=(32, 32, 3), num_classes=10):
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
