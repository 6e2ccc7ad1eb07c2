"""Iterative SNIP (FORCE-style; de Jorge et al., ICLR 2021): prune in ``rounds`` rounds on an
exponential schedule; each round rescores the surviving connections by |dL/dc| at c = the current
mask (the gradient of the already-pruned network) and keeps the schedule's count of them.

Pruned connections are not revived (the "Iter SNIP" variant of the paper; FORCE proper may revive).
"""

import numpy as np

from snip_tf import scoring, selection
from snip_tf.criteria.base import Criterion, exponential_schedule, register, survivors_only


@register
class IterativeSNIP(Criterion):
    name = "iterative_snip"
    needs_data = True

    def __init__(self, rounds: int = 10):
        self.rounds = rounds

    def scores(self, model, entries, batches, loss_fn, *, keep, training=False, seed=0):
        gradient = scoring.MaskGradient(model, entries, loss_fn, training)
        masks = [np.ones(e.variable.shape, bool) for e in entries]
        total = sum(m.size for m in masks)
        scores = None
        for count in exponential_schedule(total, keep, self.rounds):
            raw = [np.abs(g) for g in gradient(batches, masks)]
            scores = survivors_only(raw, masks)
            masks = selection.top_k_masks(scores, count)
        return survivors_only(scores, masks)
