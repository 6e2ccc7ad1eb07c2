"""SynFlow (Tanaka et al., NeurIPS 2020): data-free iterative synaptic flow.

With every weight replaced by its magnitude and an all-ones input, ``R = sum(f(1))``; the score of
a connection is ``|w| * dR/d|w|`` (= dR/dc at c = the current mask). ``rounds`` rounds (100 by
default) on an exponential schedule, each keeping the schedule's count of the survivors. One traced
function serves every round. BatchNorm runs in inference mode.

Input dimensions the model leaves open (a sequence's time axis) get ``open_dim`` steps (16). With
one step, as an earlier version used, a recurrent kernel only ever meets the zero initial state,
gets no flow and is pruned whole.
"""

import numpy as np
import tensorflow as tf

from snip_tf import scoring
from snip_tf.criteria.base import Criterion, prune_in_rounds, register


def _ones_input(model, open_dim: int):
    shape = model.inputs[0].shape if getattr(model, "inputs", None) else None
    if shape is None or len(model.inputs) != 1:
        raise ValueError("SynFlow needs a built model with one input of known shape.")
    dtype = model.inputs[0].dtype
    return tf.ones((1,) + tuple(d if d is not None else open_dim for d in shape[1:]),
                   dtype=dtype)


@register
class SynFlow(Criterion):
    name = "synflow"
    needs_data = False

    def __init__(self, rounds: int = 100, open_dim: int = 16):
        self.rounds = rounds
        self.open_dim = open_dim

    def scores(self, model, entries, batches, loss_fn, *, keep, training=False, seed=0):
        ones = _ones_input(model, self.open_dim)
        gradient = scoring.MaskGradient(
            model, entries, lambda y, y_pred, sw: tf.reduce_sum(tf.cast(y_pred, tf.float32)),
            training=False, transform=tf.abs)
        batch = [(ones, tf.zeros((1,)), None)]
        return prune_in_rounds(lambda mask: np.abs(gradient.flat(batch, mask)),
                               [e.variable.shape for e in entries], keep, self.rounds)
