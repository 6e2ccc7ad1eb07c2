"""LSTM-s (128 units) on sequential MNIST (28 rows of 28 pixels) at 95 % sparsity."""

from snip_tf.config import base_config


def get_config():
    c = base_config()
    c.name = "lstm_s_mnist"
    c.dataset = "mnist"
    c.model = "lstm-s"
    c.sequential = True
    c.sparsity = 0.95
    c.optimizer = "adam"
    c.learning_rate = 1e-3
    c.l2 = 0.0
    c.clipnorm = 5.0
    c.epochs = 20
    return c
