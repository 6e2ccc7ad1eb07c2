"""Pruning-at-initialization criteria behind one interface, selectable by name.

Each criterion maps the prunable weights of a model (and, if it uses data, a batch) to one score per
weight; the global top-κ of the scores is kept. ``snip_tf.prune(..., criterion=NAME)`` uses them.
"""

from snip_tf.criteria.base import Criterion, get, names, register
from snip_tf.criteria import (grasp, iterative_snip, magnitude, random, snip,  # noqa: F401
                              synflow)  # (they register themselves)

__all__ = ["Criterion", "get", "names", "register"]
