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


SCOPES = ("global", "uniform", "erk", "gate")


def _apportion(quotas: np.ndarray, sizes: np.ndarray, keep: int) -> np.ndarray:
    """Integer counts near ``quotas`` (capped by ``sizes``) that sum to exactly ``keep``
    (largest remainder; ties to the earlier layer)."""
    counts = np.minimum(np.floor(quotas).astype(np.int64), sizes)
    remainder = quotas - counts
    while counts.sum() < keep:
        room = counts < sizes
        order = np.lexsort((np.arange(len(counts)), -np.where(room, remainder, -np.inf)))
        for i in order[: keep - counts.sum()]:
            if counts[i] < sizes[i]:
                counts[i] += 1
        remainder = np.zeros_like(remainder)
    return counts


def erk_densities(shapes, keep: int) -> np.ndarray:
    """Erdős–Rényi-Kernel densities (Evci et al. 2020): density of a weight of shape
    (k_1, ..., k_d, n_in, n_out) proportional to sum(shape) / prod(shape), scaled so that
    ``keep`` weights are kept in all, and capped at 1 (the excess goes to the others)."""
    sizes = np.array([int(np.prod(s)) for s in shapes], dtype=np.float64)
    raw = np.array([sum(s) / np.prod(s) for s in shapes], dtype=np.float64)
    dense = np.zeros(len(shapes), dtype=bool)
    while True:
        budget = keep - sizes[dense].sum()
        eps = budget / (raw[~dense] * sizes[~dense]).sum()
        density = np.where(dense, 1.0, eps * raw)
        if not (density > 1.0).any():
            return density
        dense |= density > 1.0


def layer_keep_counts(shapes, keep: int, scope: str) -> np.ndarray:
    """How many weights each variable keeps under a layer-wise ``scope`` ("uniform": the same
    density everywhere; "erk": Erdős–Rényi-Kernel densities); exactly ``keep`` in all."""
    sizes = np.array([int(np.prod(s)) for s in shapes], dtype=np.int64)
    if scope == "uniform":
        density = np.full(len(shapes), keep / sizes.sum())
    elif scope == "erk":
        density = erk_densities(shapes, keep)
    else:
        raise ValueError(f"scope must be one of {SCOPES}; got {scope!r}.")
    return _apportion(density * sizes, sizes, keep)


def gate_balanced(scores: Sequence[np.ndarray], masks: Sequence[np.ndarray], gates) -> list:
    """``masks`` with each gated variable's kept count (``gates[i] > 1`` gate blocks along its
    last axis) shared equally among its gate blocks, each keeping its own top scores; other
    variables unchanged. The count per variable, and so the total, stays the same."""
    out = []
    for s, m, g in zip(scores, masks, gates):
        s, g = np.asarray(s), int(g)
        if g <= 1:
            out.append(m)
            continue
        if s.shape[-1] % g:
            raise ValueError(f"a weight of shape {s.shape} does not split into {g} gate blocks "
                             f"along its last axis.")
        blocks = np.split(s, g, axis=-1)
        sizes = np.array([b.size for b in blocks], dtype=np.int64)
        kept = int(np.count_nonzero(m))
        counts = _apportion(np.full(g, kept / g), sizes, kept)
        out.append(np.concatenate([top_k_masks([b], int(c))[0] if c else
                                   np.zeros(b.shape, bool) for b, c in zip(blocks, counts)],
                                  axis=-1))
    return out


def select(scores: Sequence[np.ndarray], keep: int, scope: str = "global",
           min_per_layer: int = 0, gates=None) -> list:
    """Masks keeping exactly ``keep`` weights: the global top-k ("global", the paper's), or the
    top-k of each variable with per-variable counts from :func:`layer_keep_counts`; or "gate":
    the global top-k's count for each variable, shared equally among the gate blocks of gated
    recurrent weights (``gates``: the number of gate blocks of each variable, 1 for others; see
    :func:`gate_balanced`), so that no gate is starved by the ranking of another.

    ``min_per_layer`` is a guard against layer collapse: every variable keeps at least
    ``min(min_per_layer, size)`` of its best-scoring weights, taken from the lowest-scoring kept
    weights of the variables that have more (the count stays exact). Off (0) by default.
    """
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}; got {scope!r}.")
    if scope in ("global", "gate"):
        masks = top_k_masks(scores, keep)
        if scope == "gate":
            if gates is None or len(gates) != len(scores):
                raise ValueError("scope='gate' needs the number of gate blocks of each weight.")
            masks = gate_balanced(scores, masks, gates)
    else:
        counts = layer_keep_counts([np.shape(s) for s in scores], keep, scope)
        masks = [top_k_masks([s], int(c))[0] if c else np.zeros(np.shape(s), bool)
                 for s, c in zip(scores, counts)]
    if min_per_layer:
        masks = _guard(scores, masks, int(min_per_layer))
    return masks


def _guard(scores, masks, minimum: int) -> list:
    masks = [m.copy() for m in masks]
    floors = [min(minimum, m.size) for m in masks]
    if sum(floors) > sum(int(m.sum()) for m in masks):
        raise ValueError(f"min_per_layer={minimum} needs {sum(floors)} weights, more than the "
                         f"{sum(int(m.sum()) for m in masks)} kept.")
    added = 0
    for s, m, floor in zip(scores, masks, floors):
        short = floor - int(m.sum())
        if short > 0:
            flat_s, flat_m = np.ravel(s), m.reshape(-1)
            candidates = np.flatnonzero(~flat_m)
            best = candidates[np.argsort(-flat_s[candidates], kind="stable")[:short]]
            flat_m[best] = True
            added += short
    if added:
        # Give back the lowest-scoring kept weights of the variables above their floor.
        pool = []
        for i, (s, m, floor) in enumerate(zip(scores, masks, floors)):
            kept = np.flatnonzero(m.reshape(-1))
            spare = len(kept) - floor
            if spare > 0:
                worst = kept[np.argsort(np.ravel(s)[kept], kind="stable")[:spare]]
                pool += [(float(np.ravel(s)[j]), i, int(j)) for j in worst]
        pool.sort(key=lambda t: (t[0], -t[1], -t[2]))
        for _, i, j in pool[:added]:
            masks[i].reshape(-1)[j] = False
    return masks
