"""The criterion interface and registry."""

from __future__ import annotations

from typing import Sequence

import numpy as np

_REGISTRY: dict = {}


class Criterion:
    """Scores every prunable weight; higher scores are kept.

    Subclasses set ``name`` and ``needs_data`` and implement :meth:`scores`.
    """

    name = ""
    needs_data = True

    def scores(self, model, entries: Sequence, batches, loss_fn, *, keep: int,
               training: bool = False, seed: int = 0) -> list:
        """One float array per entry of ``entries`` (``masking.PrunableWeight``), same shapes.

        ``keep`` is the number of weights that will be kept (iterative criteria prune towards it
        in rounds; one-shot criteria ignore it).
        """
        raise NotImplementedError


def register(cls):
    _REGISTRY[cls.name] = cls
    return cls


def names() -> list:
    return sorted(_REGISTRY)


def get(name) -> Criterion:
    """A criterion instance by name (or the instance itself)."""
    if isinstance(name, Criterion):
        return name
    if name not in _REGISTRY:
        raise ValueError(f"Unknown pruning criterion {name!r}; expected one of {names()}.")
    return _REGISTRY[name]()


def as_float_arrays(arrays) -> list:
    return [np.asarray(a, dtype=np.float32) for a in arrays]


def exponential_schedule(total: int, keep: int, rounds: int) -> list:
    """Weights kept after each of ``rounds`` rounds: ``total * (keep / total) ** (t / rounds)``,
    the last exactly ``keep`` (the schedule of SynFlow and FORCE)."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1; got {rounds}.")
    counts = [int(round(total * (keep / total) ** (t / rounds))) for t in range(1, rounds + 1)]
    counts[-1] = keep
    return [max(keep, c) for c in counts]


def prune_in_rounds(score_round, shapes, keep: int, rounds: int) -> list:
    """The loop of the iterative criteria: each round scores the network at the current mask
    (``score_round(flat_mask) -> flat scores``, both flat over all arrays in order), then keeps
    the schedule's count of the survivors. Returns per-array scores whose top ``keep`` are the
    last round's survivors.

    Flat vectors keep each round to one transfer each way and one pass of selection, which is
    what lets SynFlow's 100 rounds cost about 100 forward-backward passes and little more."""
    from snip_tf import selection  # selection does not depend on criteria; avoid import cycles

    sizes = [int(np.prod(shape)) for shape in shapes]
    mask = np.ones(sum(sizes), bool)
    scores = None
    for t, count in enumerate(exponential_schedule(mask.size, keep, rounds)):
        raw = score_round(mask)
        if t == 0 and not np.any(raw):
            # Ranking by tie order would prune arbitrary connections and collapse layers.
            raise ValueError(
                "Every score of the first round is zero: the loss does not depend on the prunable "
                "weights for this data (all-zero sample weights, dead units, a constant output). "
                "The model was not changed.")
        scores = np.where(mask, raw, np.float32(-1.0)).astype(np.float32)
        mask = selection.top_k_masks([scores], count)[0]
    scores = np.where(mask, scores, np.float32(-1.0))
    return [part.reshape(shape) for part, shape in
            zip(np.split(scores, np.cumsum(sizes)[:-1]), shapes)]
