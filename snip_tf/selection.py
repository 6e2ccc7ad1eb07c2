"""Global top-κ selection with exact counts and deterministic ties."""

from __future__ import annotations

import math
import numbers
from typing import Sequence

import numpy as np


def validate_sparsity(sparsity) -> float:
    """``sparsity`` as a float in [0, 1), or a ValueError saying what is allowed."""
    if isinstance(sparsity, bool) or not isinstance(sparsity, numbers.Real):
        raise ValueError(f"sparsity must be a number in [0, 1) (the fraction of weights to prune); "
                         f"got {sparsity!r} of type {type(sparsity).__name__}.")
    value = float(sparsity)
    if not math.isfinite(value) or not 0.0 <= value < 1.0:
        raise ValueError(f"sparsity must be in [0, 1) (the fraction of weights to prune, e.g. 0.99); "
                         f"got {sparsity!r}.")
    return value


def num_to_keep(sparsity: float, total: int) -> int:
    """κ = round((1 − sparsity)·m), halves rounded up; κ = 0 is an error, never an empty network."""
    sparsity = validate_sparsity(sparsity)
    keep = int(math.floor((1.0 - sparsity) * total + 0.5))
    keep = min(keep, total)
    if keep < 1:
        raise ValueError(f"sparsity={sparsity} keeps round((1 - sparsity) * {total}) = 0 of the "
                         f"{total} prunable weights; choose a lower sparsity.")
    return keep


def top_k_masks(scores: Sequence[np.ndarray], keep: int) -> list:
    """Boolean masks keeping the ``keep`` highest scores over all arrays together.

    Exactly ``keep`` entries are True. Among equal scores at the threshold the entry that comes first
    (array order, then row-major order) is kept, so the same scores always give the same masks. Runs
    in linear time (``np.partition``), without sorting all scores.
    """
    sizes = [int(np.size(s)) for s in scores]
    total = sum(sizes)
    if not 1 <= keep <= total:
        raise ValueError(f"keep must be in [1, {total}]; got {keep}.")
    flat = np.concatenate([np.ravel(s) for s in scores]).astype(np.float32, copy=False)
    if np.isnan(flat).any():
        raise ValueError("Scores contain NaN; cannot rank them.")
    threshold = np.partition(flat, total - keep)[total - keep]
    keep_flat = flat > threshold
    missing = keep - int(np.count_nonzero(keep_flat))
    if missing:
        tied = np.flatnonzero(flat == threshold)[:missing]
        keep_flat[tied] = True
    masks, start = [], 0
    for s, size in zip(scores, sizes):
        masks.append(keep_flat[start:start + size].reshape(np.shape(s)))
        start += size
    return masks
