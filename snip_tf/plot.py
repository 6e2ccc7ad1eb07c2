"""Plots of pruned networks: per-layer sparsity bars and mask images (matplotlib).

>>> fig = sparsity_bars(snip_tf.sparsity_report(model))          # doctest: +SKIP
>>> fig.savefig("sparsity.png")                                   # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np


def _pyplot():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def sparsity_bars(report, ax=None, title: str = ""):
    """Bar chart of the sparsity of every prunable weight of a ``SparsityReport`` (collapsed
    weights in red)."""
    plt = _pyplot()
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(max(4, 0.5 * len(report.rows)), 3))
    names = [r.weight.split("/", 1)[-1] for r in report.rows]
    values = [100 * r.sparsity for r in report.rows]
    colors = ["tab:red" if r.collapsed else "tab:blue" for r in report.rows]
    ax.bar(range(len(values)), values, color=colors)
    ax.set_xticks(range(len(values)), names, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("sparsity (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title or f"global sparsity {100 * report.sparsity:.2f}%", fontsize=9)
    if fig is not None:
        fig.tight_layout()
    return fig or ax.figure


def mask_image(mask: np.ndarray, image_shape=(28, 28)) -> np.ndarray:
    """A first-layer mask (inputs x units) averaged over the units and reshaped to the input
    image: the fraction of units each input pixel stays connected to."""
    mask = np.asarray(mask, dtype=np.float32)
    if mask.ndim != 2 or mask.shape[0] != int(np.prod(image_shape)):
        raise ValueError(f"mask_image expects a (prod(image_shape), units) mask; got {mask.shape} "
                         f"for image_shape {image_shape}.")
    return mask.mean(axis=1).reshape(image_shape)
