"""The default job of `python train.py`: LeNet-300-100's shape on scikit-learn's bundled 8x8 digits
(no download needed), pruned once at initialization to 90 % sparsity.

Every field and its default: snip_tf/config.py."""

from snip_tf.config import base_config


def get_config():
    return base_config()
