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

    def scores(self, model, entries: Sequence, batches, loss_fn, *, training: bool = False,
               seed: int = 0) -> list:
        """One float array per entry of ``entries`` (``masking.PrunableWeight``), same shapes."""
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
