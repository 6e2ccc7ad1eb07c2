"""LeNet-300-100 on MNIST at 98 % sparsity with the paper's protocol: batch 100, SGD with momentum
0.9, weight decay 0.0005 (an L2 penalty of 0.00025 * sum(w^2), as the authors' code), learning
rate 0.1 divided by 10 at half and three quarters of a 30-epoch run (the paper: every 25k
iterations; snip_tf.experiments.table1 runs its 100k-iteration schedule)."""

from snip_tf.config import base_config


def get_config():
    c = base_config()
    c.name = "lenet300_mnist"
    c.dataset = "mnist"
    c.model = "lenet-300-100"
    c.sparsity = 0.98
    c.epochs = 30
    c.l2 = 2.5e-4  # the paper's weight decay 0.0005 as a gradient coefficient
    c.lr_decay_fractions = (0.5, 0.75)
    return c
