"""LeNet-300-100 on MNIST at 98 % sparsity with the paper's protocol: batch 100, SGD with momentum
0.9, L2 5e-4, learning rate 0.1 divided by 10 twice (the paper: at 25k and 50k iterations; here at
half and three quarters of a 30-epoch run)."""

from snip_tf.config import base_config


def get_config():
    c = base_config()
    c.name = "lenet300_mnist"
    c.dataset = "mnist"
    c.model = "lenet-300-100"
    c.sparsity = 0.98
    c.epochs = 30
    c.lr_decay_fractions = (0.5, 0.75)
    return c
