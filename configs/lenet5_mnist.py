"""LeNet-5-Caffe on MNIST at 99 % sparsity (the paper's protocol, 30 epochs, the learning rate divided
by 10 at half and three quarters of the run)."""

from snip_tf.config import base_config


def get_config():
    c = base_config()
    c.name = "lenet5_mnist"
    c.dataset = "mnist"
    c.model = "lenet-5-caffe"
    c.sparsity = 0.99
    c.epochs = 30
    c.l2 = 2.5e-4  # the paper's weight decay 0.0005 as a gradient coefficient
    c.lr_decay_fractions = (0.5, 0.75)
    return c
