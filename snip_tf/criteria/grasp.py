"""GraSP (Wang et al., ICLR 2020): gradient signal preservation.

With g = dL/dw and the Hessian-gradient product Hg, GraSP removes the weights with the largest
``-w * Hg``; here the kept score is ``w * Hg`` (higher kept). The gradients are taken on a
class-balanced batch (as many examples of each class as the rarest class has, from the given
batches); ``temperature`` divides the model outputs (the authors used 200 on logits).
"""

import numpy as np
import tensorflow as tf

from snip_tf import scoring
from snip_tf.criteria.base import Criterion, register


def class_balanced(batches):
    """One batch with as many examples of each class as the rarest class has (sample weights, if
    given, follow their examples)."""
    xs = np.concatenate([np.asarray(x) for x, _, _ in batches])
    ys = np.concatenate([np.asarray(y) for _, y, _ in batches])
    weighted = [sw is not None for _, _, sw in batches]
    if any(weighted) and not all(weighted):
        raise ValueError("GraSP: some scoring batches have sample weights and others not.")
    sws = np.concatenate([np.asarray(sw) for _, _, sw in batches]) if all(weighted) else None
    if ys.ndim != 1:
        return [(xs, ys, sws)]
    classes, counts = np.unique(ys, return_counts=True)
    per_class = counts.min()
    chosen = np.concatenate([np.flatnonzero(ys == c)[:per_class] for c in classes])
    chosen.sort()
    return [(xs[chosen], ys[chosen], None if sws is None else sws[chosen])]


@register
class GraSP(Criterion):
    name = "grasp"
    needs_data = True

    def __init__(self, temperature: float = 200.0, balanced: bool = True):
        self.temperature = temperature
        self.balanced = balanced

    def scores(self, model, entries, batches, loss_fn, *, keep, training=False, seed=0):
        variables = [e.variable for e in entries]
        if self.balanced:
            batches = class_balanced(batches)
        t = self.temperature

        def loss_of(x, y, sw):
            logits = tf.cast(model(x, training=training), tf.float32)
            return tf.cast(loss_fn(y, logits / t, sw), tf.float32)

        with scoring.float32_compute(model):
            return self._scores(model, variables, batches, loss_of)

    @staticmethod
    def _scores(model, variables, batches, loss_of):
        g = [tf.zeros(v.shape) for v in variables]
        for x, y, sw in batches:
            with tf.GradientTape() as tape:
                tape.watch([v.value for v in variables])
                loss = loss_of(x, y, sw)
            grads = tape.gradient(loss, variables,
                                  unconnected_gradients=tf.UnconnectedGradients.ZERO)
            g = [a + tf.cast(b, tf.float32) for a, b in zip(g, grads)]
        hg = [tf.zeros(v.shape) for v in variables]
        for x, y, sw in batches:
            with tf.GradientTape() as outer:
                with tf.GradientTape() as inner:
                    loss = loss_of(x, y, sw)
                grads = inner.gradient(loss, variables,
                                       unconnected_gradients=tf.UnconnectedGradients.ZERO)
                z = tf.add_n([tf.reduce_sum(tf.stop_gradient(a) * tf.cast(b, tf.float32))
                              for a, b in zip(g, grads)])
            hv = outer.gradient(z, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
            hg = [a + tf.cast(b, tf.float32) for a, b in zip(hg, hv)]
        return [(v.numpy() * h.numpy()).astype(np.float32) for v, h in zip(variables, hg)]
