"""SNIP (Lee et al., ICLR 2019): s_j = |dL/dc_j| at c = 1, gradients of several batches summed
before the absolute value."""

import numpy as np

from snip_tf import scoring
from snip_tf.criteria.base import Criterion, register


@register
class SNIP(Criterion):
    name = "snip"
    needs_data = True

    def scores(self, model, entries, batches, loss_fn, *, keep, training=False, seed=0):
        grads = scoring.mask_gradients(model, entries, batches, loss_fn, training)
        return [np.abs(g) for g in grads]
