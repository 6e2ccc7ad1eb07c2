"""Random pruning: i.i.d. uniform scores from ``seed`` (the paper's random baseline)."""

import numpy as np

from snip_tf.criteria.base import Criterion, register


@register
class Random(Criterion):
    name = "random"
    needs_data = False

    def scores(self, model, entries, batches, loss_fn, *, keep, training=False, seed=0):
        rng = np.random.default_rng(seed)
        return [rng.random(tuple(e.variable.shape), dtype=np.float32) for e in entries]
