"""LeNet-5-Caffe on MNIST at 99 % sparsity (paper Table 1 protocol, 30 epochs)."""

from snip_tf.config import base_config


def get_config():
    c = base_config()
    c.name = "lenet5_mnist"
    c.dataset = "mnist"
    c.model = "lenet-5-caffe"
    c.sparsity = 0.99
    c.epochs = 30
    c.lr_boundaries = (25000, 50000)
    return c
