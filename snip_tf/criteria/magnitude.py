"""Magnitude at initialization: s_j = |w_j| (the baseline of the paper's Table 1)."""

import numpy as np

from snip_tf.criteria.base import Criterion, register


@register
class Magnitude(Criterion):
    name = "magnitude"
    needs_data = False

    def scores(self, model, entries, batches, loss_fn, *, keep, training=False, seed=0):
        return [np.abs(e.variable.numpy()).astype(np.float32) for e in entries]
