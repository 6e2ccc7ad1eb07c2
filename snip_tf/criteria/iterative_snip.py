"""Iterative SNIP (FORCE-style; de Jorge et al., ICLR 2021): prune in ``rounds`` rounds on an
exponential schedule; each round rescores the surviving connections by |dL/dc| at c = the current
mask (the gradient of the already-pruned network) and keeps the schedule's count of them.

Pruned connections are not revived (the "Iter SNIP" variant of the paper; FORCE proper may revive).
"""

import numpy as np

from snip_tf import scoring
from snip_tf.criteria.base import Criterion, prune_in_rounds, register


@register
class IterativeSNIP(Criterion):
    name = "iterative_snip"
    needs_data = True

    def __init__(self, rounds: int = 10):
        self.rounds = rounds

    def scores(self, model, entries, batches, loss_fn, *, keep, training=False, seed=0):
        gradient = scoring.MaskGradient(model, entries, loss_fn, training)
        return prune_in_rounds(lambda mask: np.abs(gradient.flat(batches, mask)),
                               [e.variable.shape for e in entries], keep, self.rounds)
