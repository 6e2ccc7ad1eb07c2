"""The functional API: ``snip`` scores, selects and prunes; ``apply_masks`` installs given masks;
``sparsity`` / ``sparsity_report`` measure the result."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Optional

import numpy as np

from snip_tf import criteria, masking, saving, scoring, selection


class LayerCollapseWarning(UserWarning):
    """Every weight of a prunable variable was pruned: the layer is disconnected."""


ScoresError = scoring.ScoresError


class UnrankedWeightsWarning(UserWarning):
    """More than 1 % of the trainable parameters are weights no criterion ranked (they stay dense)."""


# Unranked weights (other than biases and normalization parameters) above this fraction of the
# trainable parameters are named in an UnrankedWeightsWarning.
UNRANKED_WARNING_FRACTION = 0.01


def _warn_unranked(model, entries) -> None:
    unranked = [v for v, by_design in masking.unranked_variables(model, entries) if not by_design]
    total = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    size = sum(int(np.prod(v.shape)) for v in unranked)
    if total and size > UNRANKED_WARNING_FRACTION * total:
        names = ", ".join(f"{v.path} ({int(np.prod(v.shape)):,})" for v in unranked[:6])
        more = f" and {len(unranked) - 6} more" if len(unranked) > 6 else ""
        warnings.warn(
            f"{size:,} of the {total:,} trainable parameters ({100 * size / total:.1f} %) are in "
            f"weights no criterion ranks, which stay dense: {names}{more}. Opt them in with "
            "weights=[...] (any trainable variables, with the prunable ones you want ranked); "
            "sparsity_report shows the sparsity over all trainable parameters.",
            UnrankedWeightsWarning, stacklevel=3)


def prune(model, data, sparsity, criterion="snip", loss=None, num_batches: int = 1, *,
          include_bias: bool = False, training: bool = False, seed: int = 0,
          weights=None, scope: str = "global", min_per_layer: int = 0,
          return_scores: bool = False):
    """Prune ``model`` in place at initialization by ``criterion`` (default SNIP).

    Scores every prunable weight, keeps the global top ``κ = round((1 - sparsity) * m)`` of all
    ``m`` prunable weights, sets the others to zero and installs constraint hooks that keep them
    zero through any later training. If anything is wrong (sparsity, data, loss, non-finite scores)
    a ValueError is raised and the model is unchanged.

    Args:
        model: a Keras model (Sequential, Functional or subclassed; plain or with Masked layers).
        data: an ``(x, y)`` tuple (one batch) or a ``tf.data.Dataset`` of ``(x, y)`` batches; may be
            None for data-free criteria (magnitude, random) on a built model.
        sparsity: fraction of prunable weights to remove, in [0, 1).
        criterion: a name from ``snip_tf.criteria.names()`` or a ``Criterion`` instance.
        loss: loss to score with; default the model's compiled loss.
        num_batches: number of dataset batches whose gradients are summed.
        include_bias: rank biases together with the weights (the authors' code did).
        training: ``training`` flag of the scoring pass (False: BatchNorm in inference mode).
        seed: seed of randomized criteria.
        weights: rank only these prunable weights (variables or their paths), e.g. the recurrent
            kernels of an RNN; sparsity then refers to them. Default: every prunable weight.
        scope: "global" (one ranking over all weights, the paper's), or layer-wise with the same
            density per weight ("uniform") or Erdős–Rényi-Kernel densities ("erk"), or "gate":
            the global ranking, with the count it keeps in each LSTM/GRU weight shared equally
            among its gate blocks (against "gate starvation": the global ranking may keep
            almost only the candidate block).
        min_per_layer: keep at least this many connections in every weight (a guard against
            layer collapse; 0, the default, keeps the paper's behaviour).

    Returns:
        ``{variable.path: boolean mask}`` (True = kept); with ``return_scores=True`` also
        ``{variable.path: scores}``.
    """
    sparsity = selection.validate_sparsity(sparsity)
    crit = criteria.get(criterion)
    build_state = scoring.BuildState(model)
    try:
        return _prune(model, data, sparsity, crit, loss, num_batches, include_bias, training,
                      seed, weights, scope, min_per_layer, return_scores)
    except BaseException:
        build_state.restore()      # a failed call leaves an unbuilt model unbuilt
        raise


def _prune(model, data, sparsity, crit, loss, num_batches, include_bias, training, seed, weights,
           scope, min_per_layer, return_scores):
    entries, batches, loss_fn = scoring.prepare(model, data, loss, num_batches,
                                                include_bias=include_bias,
                                                needs_data=crit.needs_data)
    if weights is not None:
        entries = _select(model, weights)
    else:
        _warn_unranked(model, entries)
    keep = selection.num_to_keep(sparsity, sum(e.size for e in entries))
    scores = crit.scores(model, entries, batches, loss_fn, keep=keep, training=training,
                         seed=seed)
    if not all(np.isfinite(s).all() for s in scores):
        raise ScoresError(f"The {crit.name} scores are not finite (NaN or Inf). The model was not "
                         "changed.")
    if not any(np.any(s) for s in scores):
        raise ScoresError(f"Every {crit.name} score is zero: the loss does not depend on the "
                         "prunable weights for this data. The model was not changed.")
    gates = [len(masking.gate_names(e.layer)) or 1 for e in entries]
    masks = selection.select(scores, keep, scope, min_per_layer, gates=gates)
    _warn_revived(entries, masks)
    _install(model, entries, masks)
    out = {e.path: m for e, m in zip(entries, masks)}
    if return_scores:
        return out, {e.path: s for e, s in zip(entries, scores)}
    return out


class RepruneWarning(UserWarning):
    """A pruned model was pruned again and the new mask keeps weights the old one had pruned."""


def _warn_revived(entries, masks) -> None:
    revived = 0
    for entry, mask in zip(entries, masks):
        old = masking.mask_of(entry.variable)
        if old is not None:
            revived += int(np.count_nonzero(mask & ~old))
    if revived:
        warnings.warn(
            f"The model was already pruned; the new mask keeps {revived:,} weights the old mask had "
            "pruned. They are zero now (their scores at c = 1 were zero) and start training from "
            "zero. To prune a pruned model afresh, start from its unpruned weights.",
            RepruneWarning, stacklevel=3)


def _select(model, weights) -> list:
    """Entries for ``weights=``: any trainable variables of the model (variables or paths), in the
    model's variable order, so ties break the same way whatever order they were named in."""
    if isinstance(weights, (str, bytes)) or not hasattr(weights, "__iter__"):
        raise ValueError(f"weights= must be a list of variables or variable paths; got "
                         f"{type(weights).__name__}.")
    weights = list(weights)
    if not weights:
        raise ValueError("weights= is empty; name at least one trainable variable.")
    chosen = masking.entries_for(model, weights)
    order = {id(v): i for i, v in enumerate(model.variables)}
    unique = {id(e.variable): e for e in chosen}
    return sorted(unique.values(), key=lambda e: order[id(e.variable)])


def snip(model, data, sparsity, loss=None, num_batches: int = 1, *, include_bias: bool = False,
         training: bool = False) -> dict:
    """Prune ``model`` in place at initialization by connection sensitivity (SNIP).

    Scores every prunable weight by ``|dL/dc|`` at ``c = 1`` on ``data`` and keeps the global top
    ``κ = round((1 - sparsity) * m)``; see :func:`prune` for the arguments and guarantees.

    >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
    ...                           keras.layers.Dense(2)])
    >>> model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    >>> masks = snip(model, (np.random.rand(32, 8), np.random.randint(0, 2, 32)), sparsity=0.9)
    >>> sum(int(m.sum()) for m in masks.values())    # round(0.1 * (8*16 + 16*2))
    16
    """
    return prune(model, data, sparsity, "snip", loss, num_batches, include_bias=include_bias,
                 training=training)


def apply_masks(model, masks, *, include_bias: Optional[bool] = None) -> None:
    """Prune ``model`` in place with given masks.

    ``masks`` is ``{variable.path: boolean array}`` (as :func:`prune` returns), or a list of
    boolean arrays in the order of ``prunable_weights(model, include_bias)``, which moves masks
    between two instances of one architecture whose layer names differ. A dict may also name any
    other trainable variable (as ``prune(weights=...)`` returns for opted-in variables). Masks are
    boolean or 0/1 arrays; every key must name a variable and every shape must match; otherwise a
    ValueError is raised and nothing changes. Weights not named keep their current state.
    """
    if masks is None or not isinstance(masks, (dict, list, tuple)):
        raise ValueError("apply_masks: masks must be a {variable path: boolean array} dict or a list "
                         f"of boolean arrays; got {type(masks).__name__}.")
    if isinstance(masks, (list, tuple)):
        ordered = masking.prunable_entries(model, bool(include_bias))
        if len(ordered) != len(masks):
            raise ValueError(f"apply_masks: got {len(masks)} masks for the {len(ordered)} prunable "
                             f"weights of {model.name!r} (include_bias={bool(include_bias)}).")
        masks = {e.path: m for e, m in zip(ordered, masks)}
        include_bias = bool(include_bias)
    if include_bias is None:
        include_bias = True
    entries = {e.path: e for e in masking.prunable_entries(model, include_bias)}
    trainable = {v.path for v in model.trainable_variables}
    unknown = sorted(p for p in masks if p not in entries and p not in trainable)
    if unknown:
        raise ValueError(f"apply_masks: no prunable weight named {unknown}; the model's prunable "
                         f"weights are {sorted(entries)} (any other trainable variable may be "
                         "named too).")
    extra = [p for p in masks if p not in entries]
    entries.update({e.path: e for e in masking.entries_for(model, extra)})
    chosen, arrays = [], []
    for path, mask in masks.items():
        mask = _as_boolean_mask(mask, path)
        if tuple(mask.shape) != tuple(entries[path].variable.shape):
            raise ValueError(f"apply_masks: mask for {path!r} has shape {mask.shape}; the weight has "
                             f"shape {tuple(entries[path].variable.shape)}.")
        chosen.append(entries[path])
        arrays.append(mask)
    _install(model, chosen, arrays)


def _as_boolean_mask(mask, path) -> np.ndarray:
    """A boolean array from a boolean or 0/1 array; anything else (0.5, NaN, 2, -1, strings) is an
    error, not "keep"."""
    try:
        array = np.asarray(mask)
    except Exception as error:  # noqa: BLE001 - whatever it is, it is not a mask
        raise ValueError(f"apply_masks: the mask for {path!r} is not an array ({error}).") from error
    if array.dtype == bool:
        return array
    if array.dtype.kind in "iuf" and array.size == np.count_nonzero((array == 0) | (array == 1)):
        return array.astype(bool)
    bad = array.ravel()[:1].tolist() if array.dtype.kind not in "iuf" else \
        array[(array != 0) & (array != 1)].ravel()[:3].tolist()
    raise ValueError(f"apply_masks: the mask for {path!r} must be boolean or 0/1; it has dtype "
                     f"{array.dtype} and values such as {bad}.")


def masks_from_zeros(model, *, include_bias: bool = False) -> dict:
    """``{path: weight != 0}`` for every prunable weight: the zero pattern of an already-pruned model
    (e.g. one restored from a checkpoint into freshly built layers)."""
    return {e.path: np.asarray(e.variable.numpy()) != 0
            for e in masking.prunable_entries(model, include_bias)}


def _install(model, entries, masks) -> None:
    for entry, mask in zip(entries, masks):
        masking.install_mask(entry, mask)
    masking.invalidate_traced_functions(model)
    saving.track(model)
    collapsed = [e.path for e, m in zip(entries, masks)
                 if not np.any(m) and e.variable.name != "bias"]
    if collapsed:
        warnings.warn(
            f"Layer collapse: every weight of {', '.join(collapsed)} was pruned, which disconnects "
            "the network there. Lower the sparsity or use a criterion/guard that keeps connections "
            "in every layer.", LayerCollapseWarning, stacklevel=3)


def is_pruned(model) -> bool:
    """True when pruning hooks are installed on the model's prunable weights."""
    masks = (masking.mask_of(e.variable)
             for e in masking.prunable_entries(model, include_bias=True))
    return any(mask is not None and not mask.all() for mask in masks)


@dataclasses.dataclass(frozen=True)
class LayerSparsity:
    layer: str
    weight: str
    shape: tuple
    kept: int
    total: int

    @property
    def sparsity(self) -> float:
        return 1.0 - self.kept / self.total if self.total else 0.0

    @property
    def collapsed(self) -> bool:
        """Every connection of a weight pruned (a pruned-away bias disconnects nothing)."""
        return self.kept == 0 and not self.weight.endswith("/bias")


@dataclasses.dataclass(frozen=True)
class SparsityReport:
    """Per-weight sparsity of the ranked weights, and what was not ranked; ``print(report)`` shows
    a table.

    ``sparsity`` is over the ranked weights (the paper's figure); ``overall_sparsity`` is over
    every trainable parameter, the ``unranked`` ones (biases, normalization parameters, and any
    other trainable variable no criterion ranked) included.
    """

    rows: tuple
    unranked: tuple = ()

    @property
    def unranked_total(self) -> int:
        return sum(r.total for r in self.unranked)

    @property
    def overall_sparsity(self) -> float:
        """Fraction of exact zeros over all trainable parameters, ranked or not."""
        total = self.total + self.unranked_total
        kept = self.kept + sum(r.kept for r in self.unranked)
        return 1.0 - kept / total if total else 0.0

    @property
    def kept(self) -> int:
        return sum(r.kept for r in self.rows)

    @property
    def total(self) -> int:
        return sum(r.total for r in self.rows)

    @property
    def sparsity(self) -> float:
        return 1.0 - self.kept / self.total if self.total else 0.0

    @property
    def collapsed(self) -> list:
        return [r.weight for r in self.rows if r.collapsed]

    def to_dict(self) -> dict:
        return {"sparsity": self.sparsity, "kept": self.kept, "total": self.total,
                "collapsed": self.collapsed,
                "overall_sparsity": self.overall_sparsity,
                "unranked_total": self.unranked_total,
                "unranked": [{"weight": r.weight, "shape": list(r.shape), "total": r.total}
                             for r in self.unranked],
                "layers": [{**dataclasses.asdict(r), "shape": list(r.shape),
                            "sparsity": r.sparsity, "collapsed": r.collapsed} for r in self.rows]}

    def __str__(self) -> str:
        header = ("weight", "shape", "kept", "total", "sparsity")
        lines = [(r.weight, "x".join(map(str, r.shape)), f"{r.kept:,}", f"{r.total:,}",
                  f"{100 * r.sparsity:.2f}%" + ("  COLLAPSED" if r.collapsed else ""))
                 for r in self.rows]
        lines.append(("total", "", f"{self.kept:,}", f"{self.total:,}",
                      f"{100 * self.sparsity:.2f}%"))
        widths = [max(len(row[i]) for row in [header] + lines) for i in range(len(header))]
        fmt = "  ".join(f"{{:<{w}}}" if i < 2 else f"{{:>{w}}}" for i, w in enumerate(widths))
        rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
        out = [fmt.format(*header), rule] + [fmt.format(*l) for l in lines[:-1]] + \
            [rule, fmt.format(*lines[-1])]
        if self.unranked:
            names = ", ".join(r.weight for r in self.unranked[:8])
            more = f" and {len(self.unranked) - 8} more" if len(self.unranked) > 8 else ""
            out += [f"not ranked: {self.unranked_total:,} trainable parameters in "
                    f"{len(self.unranked)} variables ({names}{more})",
                    f"sparsity over all {self.total + self.unranked_total:,} trainable "
                    f"parameters: {100 * self.overall_sparsity:.2f}%"]
        return "\n".join(out)


def sparsity_report(model, *, include_bias: bool = False) -> SparsityReport:
    """Per-weight table (layer, weight, shape, kept, total, sparsity, collapsed) of exact zeros,
    with the trainable parameters that were not ranked and the sparsity over all of them."""
    entries = masking.prunable_entries(model, include_bias)
    listed = {id(e.variable) for e in entries}
    # Variables opted in with weights=... are ranked too once they carry a hook.
    hooked = [v for _, v, _ in masking.hooked_variables(model) if id(v) not in listed]
    entries = entries + masking.entries_for(model, [v for v in hooked if v.trainable])
    rows = []
    for e in entries:
        values = e.variable.numpy()
        rows.append(LayerSparsity(e.layer.name if e.layer is not None else "", e.path,
                                  tuple(values.shape), int(np.count_nonzero(values)),
                                  int(values.size)))
    unranked = []
    for variable, _ in masking.unranked_variables(model, entries):
        values = variable.numpy()
        unranked.append(LayerSparsity("", variable.path, tuple(values.shape),
                                      int(np.count_nonzero(values)), int(values.size)))
    return SparsityReport(tuple(rows), tuple(unranked))


def sparsity(model, *, include_bias: bool = False) -> float:
    """Global fraction of exact zeros among the prunable weights."""
    return sparsity_report(model, include_bias=include_bias).sparsity


def remove_hooks(model) -> None:
    """Remove every pruning hook from ``model`` in place: the pruned weights stay zero but are free to
    move in later training (like ``torch.nn.utils.prune.remove``). ``Masked`` wrappers stay, with
    their masks reset to ones.

    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> snip_tf.apply_masks(model, [np.eye(4, 2, dtype=bool)])
    >>> snip_tf.remove_hooks(model)
    >>> snip_tf.is_pruned(model)
    False
    """
    saving.install_record(model, [])
    for layer in model._flatten_layers():
        if masking.is_mask_wrapper(layer):
            for mask in layer.mask_weights:
                mask.assign(np.ones(mask.shape, mask.dtype))
