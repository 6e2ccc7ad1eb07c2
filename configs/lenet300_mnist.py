"""LeNet-300-100 on MNIST at 98 % sparsity, the paper's protocol (section 5.1): batch 100, SGD with
momentum 0.9, L2 5e-4, learning rate 0.1 divided by 10 at 25k and 50k iterations (30 epochs here;
the paper trains 250k iterations)."""

from snip_tf.config import base_config


def get_config():
    c = base_config()
    c.name = "lenet300_mnist"
    c.dataset = "mnist"
    c.model = "lenet-300-100"
    c.sparsity = 0.98
    c.epochs = 30
    c.lr_boundaries = (25000, 50000)
    return c
