"""Which weights are prunable, and the constraint hooks that hold pruned weights at zero.

A pruned weight is held at zero by a Keras constraint on its variable: Keras 3 optimizers apply
``variable.constraint`` after every update (``fit``, ``train_on_batch`` and custom loops calling
``optimizer.apply_gradients`` alike), so momentum, Adam moments and decoupled weight decay can never
move a pruned weight off zero.

On a plain model the mask lives in a :class:`PruningMask` constraint that is also set on the layer's
``*_constraint`` attribute, so it is part of the layer config and survives ``model.save`` /
``keras.models.load_model``. Inside a :class:`snip_tf.Masked` wrapper the mask lives in the wrapper's
non-trainable mask variables instead (see ``wrappers.py``).
"""

from __future__ import annotations

import base64
import dataclasses
import zlib
from typing import Iterator, Optional

import keras
import numpy as np
import tensorflow as tf

from keras.src.layers.rnn.conv_lstm import ConvLSTMCell  # ConvLSTM1D/2D/3D's cell (not exported)

L = keras.layers

# Layer class -> {variable name: name of the layer attribute holding that variable's constraint}.
_KERNELS = (
    ((L.Dense, L.EinsumDense, L.Conv1D, L.Conv2D, L.Conv3D,
      L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose), {"kernel": "kernel_constraint"}),
    ((L.DepthwiseConv1D, L.DepthwiseConv2D), {"kernel": "depthwise_constraint"}),
    ((L.SeparableConv1D, L.SeparableConv2D), {"depthwise_kernel": "depthwise_constraint",
                                              "pointwise_kernel": "pointwise_constraint"}),
    ((L.Embedding,), {"embeddings": "embeddings_constraint"}),
    ((L.SimpleRNNCell, L.LSTMCell, L.GRUCell, ConvLSTMCell),
     {"kernel": "kernel_constraint", "recurrent_kernel": "recurrent_constraint"}),
)
# Trainable variables that are not ranked by design (the paper prunes weights, not these).
_NORMALIZATION = tuple(getattr(L, n) for n in (
    "BatchNormalization", "LayerNormalization", "GroupNormalization", "UnitNormalization",
    "RMSNormalization", "SpectralNormalization") if hasattr(L, n))
_BIAS = {"bias": "bias_constraint"}


# Gated cells lay each weight out in gate blocks along its last axis, in Keras's order.
_GATES = ((L.LSTMCell, ("i", "f", "c", "o")), (ConvLSTMCell, ("i", "f", "c", "o")),
          (L.GRUCell, ("z", "r", "h")))


def gate_names(layer) -> tuple:
    """The gates of a gated recurrent cell (LSTM: i, f, c, o; GRU: z, r, h), whose weights hold
    one block per gate along their last axis; ``()`` for any other layer."""
    for classes, names in _GATES:
        if isinstance(layer, classes):
            return names
    return ()


def prunable_variable_names(layer, include_bias: bool = False) -> dict:
    """``{variable name: constraint attribute}`` for the weights of ``layer`` that SNIP ranks."""
    for classes, names in _KERNELS:
        if isinstance(layer, classes):
            if include_bias and not isinstance(layer, L.Embedding):
                return {**names, **_BIAS}
            return dict(names)
    return {}


def is_supported(layer) -> bool:
    """True for layers that own prunable weights themselves or through sublayers (RNN, MHA, ...)."""
    return bool(prunable_variable_names(layer)) or isinstance(
        layer, (L.RNN, L.Bidirectional, L.MultiHeadAttention))


@dataclasses.dataclass(eq=False)
class PrunableWeight:
    """One ranked variable and where its mask is kept.

    ``layer`` owns ``variable``. ``constraint_owner``/``constraint_attr`` name the attribute that is
    serialized in the config (the layer itself, or the MultiHeadAttention that rebuilds its
    projections from one shared ``kernel_constraint``; then ``key`` tells the projections apart).
    ``wrapper`` is the enclosing :class:`snip_tf.Masked`, whose mask variable then holds the mask.
    """

    layer: keras.layers.Layer
    variable: keras.Variable
    constraint_owner: keras.layers.Layer
    constraint_attr: str
    key: str = ""
    wrapper: Optional[keras.layers.Layer] = None

    @property
    def path(self) -> str:
        return self.variable.path

    @property
    def size(self) -> int:
        return int(np.prod(self.variable.shape))


def is_mask_wrapper(layer) -> bool:
    """True for a :class:`snip_tf.Masked` wrapper (marked by its class; this module sits below
    ``wrappers`` and does not import it)."""
    return bool(getattr(type(layer), "snip_tf_mask_wrapper", False))


def _walk(layer, parent=None, wrapper=None) -> Iterator[tuple]:
    if is_mask_wrapper(layer):
        wrapper = layer
    yield layer, parent, wrapper
    for sub in layer._flatten_layers(include_self=False, recursive=False):
        yield from _walk(sub, layer, wrapper)


def prunable_entries(model, include_bias: bool = False) -> list[PrunableWeight]:
    """The prunable weights of ``model`` in a fixed order (the order used to break ties).

    If the model contains :class:`snip_tf.Masked` wrappers, only the wrapped layers are prunable (an
    explicit opt-in); otherwise every supported layer is. Layers with ``trainable=False`` are skipped.
    """
    walked = list(_walk(model))
    any_wrapped = any(w is not None for _, _, w in walked)
    entries, seen = [], set()
    for layer, parent, wrapper in walked:
        if any_wrapped and wrapper is None:
            continue
        names = prunable_variable_names(layer, include_bias)
        if not names or not layer.trainable:
            continue
        own = {v.name: v for v in layer._trainable_variables}
        for var_name, attr in names.items():
            var = own.get(var_name)
            if var is None or id(var) in seen:
                continue
            seen.add(id(var))
            if isinstance(parent, L.MultiHeadAttention):
                # MHA serializes one constraint for all four projections and rebuilds them from it.
                owner, owner_attr, key = parent, "_" + attr, f"{layer.name}/{var_name}"
            else:
                owner, owner_attr, key = layer, attr, ""
            entries.append(PrunableWeight(layer, var, owner, owner_attr, key, wrapper))
    return entries


def _owner_of(model, variable):
    """``(layer, parent layer, enclosing Masked or None)`` of the layer that owns ``variable``."""
    for layer, parent, wrapper in _walk(model):
        if any(v is variable for v in layer._trainable_variables + layer._non_trainable_variables):
            return layer, parent, wrapper
    return None, None, None


def entries_for(model, variables) -> list[PrunableWeight]:
    """Entries for the given variables of ``model`` (variables or their paths), in the order given.

    A variable that ``prunable_entries`` lists gets that entry (its mask is then persisted in the
    layer config where the layer has a constraint attribute); any other trainable variable of the
    model (a custom layer's ``add_weight``, a position embedding, a class token ...) gets an entry
    whose hook is set on the variable only (``constraint_owner`` None): the model's mask record
    (``snip_tf.saving``) persists it.
    """
    known = {id(e.variable): e for e in prunable_entries(model, include_bias=True)}
    by_path = {v.path: v for v in model.variables}
    out = []
    for item in variables:
        if isinstance(item, str):
            if item not in by_path:
                raise ValueError(f"weights= names {item!r}, which is not a variable of "
                                 f"{model.name!r}; its trainable variables are "
                                 f"{sorted(v.path for v in model.trainable_variables)}.")
            variable = by_path[item]
        else:
            variable = item
        if id(variable) not in known and \
                not any(v is variable for v in model.trainable_variables):
            raise ValueError(f"weights= names {getattr(variable, 'path', variable)!r}, which is "
                             f"not a trainable variable of {model.name!r}.")
        out.append(entry_of(model, variable, known))
    return out


def entry_of(model, variable, known=None) -> PrunableWeight:
    """The entry of any variable of ``model``: its ``prunable_entries`` entry where it has one;
    else, for a kernel of a supported layer that is frozen or outside the Masked wrappers, an entry
    with the layer's constraint attribute (so installing and removing a hook keep the config in
    step); else an entry that hooks the variable only."""
    if known is None:
        known = {id(e.variable): e for e in prunable_entries(model, include_bias=True)}
    if id(variable) in known:
        return known[id(variable)]
    layer, parent, wrapper = _owner_of(model, variable)
    attr = prunable_variable_names(layer, include_bias=True).get(variable.name) if layer else None
    # MultiHeadAttention keeps one constraint for its projections (see prunable_entries).
    if attr and not isinstance(parent, L.MultiHeadAttention):
        return PrunableWeight(layer, variable, layer, attr, "", wrapper)
    return PrunableWeight(layer, variable, None, "", "", wrapper)


def unranked_variables(model, ranked) -> list:
    """``[(variable, by_design)]``: the trainable variables of ``model`` outside ``ranked`` (a list of
    PrunableWeight). ``by_design`` marks biases of prunable layers and normalization parameters,
    which SNIP leaves dense as the paper does; the others (a custom layer's ``add_weight``, a
    position embedding, a class token, a LayerScale ...) are weights nothing ranks unless the user
    opts them in with ``weights=``."""
    ranked_ids = {id(e.variable) for e in ranked}
    design = set()
    for layer, _, _ in _walk(model):
        if isinstance(layer, _NORMALIZATION):
            design.update(id(v) for v in layer._trainable_variables)
        elif prunable_variable_names(layer):
            design.update(id(v) for v in layer._trainable_variables if v.name == "bias")
    out, seen = [], set()
    for variable in model.trainable_variables:
        if id(variable) in ranked_ids or id(variable) in seen:
            continue
        seen.add(id(variable))
        out.append((variable, id(variable) in design))
    return out


def check_hooks(model) -> None:
    """Every installed mask has its weight's shape (a corrupt or mismatched saved model fails here,
    at load, and not at the first training step)."""
    for variable in model.variables:
        constraint = getattr(variable, "constraint", None)
        if isinstance(constraint, PruningMask):
            _check_mask_shape(constraint.mask_for(variable), variable)


def _check_mask_shape(mask, weight) -> None:
    if tuple(mask.shape) != tuple(weight.shape):
        name = getattr(weight, "path", getattr(weight, "name", "a weight"))
        raise ValueError(f"The mask stored for {name!r} has shape {tuple(mask.shape)}; the weight "
                         f"has shape {tuple(weight.shape)}. The saved model's masks do not match "
                         "its weights.")


def hooked_variables(model) -> list:
    """``[(index in model.variables, variable, mask)]`` for every variable with a pruning hook."""
    out = []
    for i, variable in enumerate(model.variables):
        mask = mask_of(variable)
        if mask is not None:
            out.append((i, variable, mask))
    return out


def mask_of(variable) -> Optional[np.ndarray]:
    """The installed mask of a variable, or None where it has no pruning hook."""
    constraint = getattr(variable, "constraint", None)
    if isinstance(constraint, VariableMask):
        return constraint.mask_variable.numpy().astype(bool)
    if isinstance(constraint, PruningMask):
        return constraint.mask_for(variable)
    return None


def prunable_weights(model, include_bias: bool = False) -> list:
    """The variables SNIP ranks: kernels of Dense, EinsumDense, Conv*, DepthwiseConv*, SeparableConv*,
    Embedding, and kernel/recurrent_kernel of SimpleRNN/LSTM/GRU/ConvLSTM1D/2D/3D cells (also inside
    ``Bidirectional``, ``keras.layers.RNN`` and MultiHeadAttention). Biases only with
    ``include_bias=True``. Other trainable variables can be opted in with ``prune(weights=...)``.

    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="out")], name="net")
    >>> [v.path for v in prunable_weights(model)]
    ['net/out/kernel']
    """
    return [e.variable for e in prunable_entries(model, include_bias)]


def encode_mask(mask: np.ndarray) -> dict:
    """``{shape, bits}``: a boolean mask bit-packed, zlib-compressed and base64-encoded."""
    packed = np.packbits(np.asarray(mask, dtype=bool).ravel())
    return {"shape": list(mask.shape),
            "bits": base64.b64encode(zlib.compress(packed.tobytes(), 9)).decode("ascii")}


def _bounded_inflate(data: bytes, limit: int, what: str) -> bytes:
    """zlib-decompress at most ``limit`` bytes; a stream that inflates beyond it is refused."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, limit)
    except zlib.error as error:
        raise ValueError(f"{what}: the mask bits are not valid zlib data ({error}).") from error
    if inflater.unconsumed_tail or not inflater.eof:
        raise ValueError(f"{what}: the mask bits inflate to more than the {limit} bytes its "
                         "shape allows (or are truncated).")
    return out


def decode_mask(bits: str, shape: tuple, what: str) -> np.ndarray:
    """A mask of ``shape`` from base64 zlib-compressed packed bits, with every size checked first."""
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    expected = (count + 7) // 8
    if not isinstance(bits, str) or len(bits) > 4 * expected + 1024:
        raise ValueError(f"{what}: the mask bits are not a string of plausible size for "
                         f"shape {list(shape)}.")
    try:
        raw = base64.b64decode(bits, validate=True)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{what}: the mask bits are not valid base64.") from error
    packed = _bounded_inflate(raw, expected, what)
    if len(packed) != expected:
        raise ValueError(f"{what}: the mask holds {len(packed) * 8} bits; shape {list(shape)} "
                         f"needs {count}.")
    return np.unpackbits(np.frombuffer(packed, np.uint8), count=count).astype(bool).reshape(shape)


# A mask in a config is for one weight; no weight a Keras layer holds in memory is this large.
_MAX_MASK_ENTRIES = 1 << 34


def _decode_mask(encoded: dict) -> np.ndarray:
    """A mask from a config: the declared shape is checked, and the bits are inflated only up to
    the size that shape allows (a zlib bomb is refused, not expanded)."""
    if not isinstance(encoded, dict) or not isinstance(encoded.get("shape"), list) \
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                       for d in encoded["shape"]):
        raise ValueError("PruningMask config: a mask needs a 'shape' list of non-negative "
                         f"integers; got {encoded.get('shape') if isinstance(encoded, dict) else encoded!r}.")
    shape = tuple(encoded["shape"])
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if count > _MAX_MASK_ENTRIES:
        raise ValueError(f"PruningMask config: a mask of shape {list(shape)} is larger than any "
                         "weight; the config is corrupt.")
    return decode_mask(encoded.get("bits"), shape, "PruningMask config")


@keras.saving.register_keras_serializable(package="snip_tf")
class PruningMask(keras.constraints.Constraint):
    """Constraint that zeroes the pruned entries of a weight after the layer's own constraint.

    Args:
        mask: boolean array, True where the weight is kept.
        inner: the constraint the layer had before pruning (applied first), or None.
        masks: instead of ``mask``, ``{path suffix: mask}`` when one constraint object serves several
            variables (MultiHeadAttention's projections); the variable's path selects its mask.

    The masks are stored in the config bit-packed and zlib-compressed, so a saved model keeps them.

    >>> c = PruningMask(np.array([True, False]))
    >>> c(tf.constant([3.0, 4.0])).numpy().tolist()
    [3.0, 0.0]
    """

    def __init__(self, mask=None, inner=None, masks=None):
        if (mask is None) == (masks is None):
            raise ValueError("PruningMask needs exactly one of `mask` or `masks`.")
        enable_gradient_masking()
        self.inner = keras.constraints.get(inner)
        self.masks = {"": np.asarray(mask, dtype=bool)} if mask is not None else {
            k: np.asarray(v, dtype=bool) for k, v in masks.items()}
        self._tensors = {}

    def mask_for(self, variable) -> np.ndarray:
        if "" in self.masks:
            return self.masks[""]
        path = getattr(variable, "path", None)
        if path is None:
            raise ValueError("This PruningMask holds several masks and needs the variable itself "
                             f"(with a .path) to choose one; got {type(variable).__name__}.")
        for key, mask in self.masks.items():
            if path == key or path.endswith("/" + key):
                return mask
        raise ValueError(f"PruningMask has no mask for variable {path!r}; it holds "
                         f"{sorted(self.masks)}.")

    def _tensor(self, variable):
        mask = self.mask_for(variable)
        key = id(mask)
        if key not in self._tensors:
            # Created eagerly even when first called while tracing, so every graph captures it
            # instead of embedding a copy as a constant.
            with tf.init_scope():
                self._tensors[key] = tf.constant(mask)
        return self._tensors[key]

    def __call__(self, w):
        mask = self._tensor(w)
        _check_mask_shape(mask, w)
        if self.inner is not None:
            w = self.inner(w)
        return tf.where(mask, w, tf.zeros_like(w))

    def with_mask(self, key: str, mask) -> "PruningMask":
        """A copy that also holds ``mask`` under ``key`` (keyed form only)."""
        masks = {k: v for k, v in self.masks.items() if k != ""}
        masks[key] = mask
        return PruningMask(masks=masks, inner=self.inner)

    def get_config(self):
        config = {"inner": keras.constraints.serialize(self.inner) if self.inner else None}
        if "" in self.masks:
            config["mask"] = encode_mask(self.masks[""])
        else:
            config["masks"] = {k: encode_mask(v) for k, v in self.masks.items()}
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        inner = config.get("inner")
        inner = keras.constraints.deserialize(inner) if inner else None
        if config.get("mask") is not None:
            return cls(mask=_decode_mask(config["mask"]), inner=inner)
        return cls(masks={k: _decode_mask(v) for k, v in config["masks"].items()}, inner=inner)


class VariableMask(keras.constraints.Constraint):
    """Constraint reading the mask from a variable (used by :class:`snip_tf.Masked`; not serialized:
    the wrapper re-installs it when it is built, and the mask variable is saved with the weights)."""

    def __init__(self, mask_variable, inner=None):
        self.mask_variable = mask_variable
        self.inner = inner
        enable_gradient_masking()

    def __call__(self, w):
        if self.inner is not None:
            w = self.inner(w)
        return tf.where(tf.cast(self.mask_variable, tf.bool), w, tf.zeros_like(w))


def _inner_of(constraint):
    return constraint.inner if isinstance(constraint, (PruningMask, VariableMask)) else constraint


def install_mask(entry: PrunableWeight, mask: np.ndarray) -> None:
    """Zero the pruned entries of ``entry.variable`` and install the hook that keeps them zero."""
    mask = np.asarray(mask, dtype=bool)
    var = entry.variable
    inner = _inner_of(var.constraint)
    var.assign(tf.where(mask, var.value, tf.zeros_like(var.value)))
    if entry.wrapper is not None and entry.wrapper.has_mask_variable(var):
        mask_var = entry.wrapper.mask_variable(var)
        mask_var.assign(mask.astype(mask_var.dtype))
        var.constraint = VariableMask(mask_var, inner)
        return
    if entry.constraint_owner is None:     # no config attribute: the mask record persists it
        var.constraint = PruningMask(mask, inner)
        return
    owner_constraint = getattr(entry.constraint_owner, entry.constraint_attr, None)
    if entry.key:
        if isinstance(owner_constraint, PruningMask) and "" not in owner_constraint.masks:
            persisted = owner_constraint.with_mask(entry.key, mask)
        else:
            persisted = PruningMask(masks={entry.key: mask}, inner=_inner_of(owner_constraint))
        setattr(entry.constraint_owner, entry.constraint_attr, persisted)
        var.constraint = PruningMask(mask, inner)
    else:
        constraint = PruningMask(mask, inner)
        setattr(entry.constraint_owner, entry.constraint_attr, constraint)
        var.constraint = constraint


def remove_mask(entry: PrunableWeight) -> None:
    """Remove the pruning hook of one weight (the zeros stay), restoring the layer's own constraint."""
    var = entry.variable
    var.constraint = _inner_of(var.constraint)
    if entry.wrapper is None and entry.constraint_owner is not None:
        owner_constraint = getattr(entry.constraint_owner, entry.constraint_attr, None)
        setattr(entry.constraint_owner, entry.constraint_attr, _inner_of(owner_constraint))


def gradient_mask(variable):
    """The boolean mask tensor of a hooked variable (True where kept), or None if it has no hook."""
    constraint = getattr(variable, "constraint", None)
    if isinstance(constraint, PruningMask):
        return constraint._tensor(variable)
    if isinstance(constraint, VariableMask):
        return tf.cast(constraint.mask_variable, tf.bool)
    return None


def _masked_gradient(grad, mask):
    if grad is None or mask is None:
        return grad
    if isinstance(grad, tf.IndexedSlices):  # e.g. an Embedding's: rows of the table
        rows = tf.gather(mask, grad.indices)
        return tf.IndexedSlices(tf.where(rows, grad.values, tf.zeros_like(grad.values)),
                                grad.indices, grad.dense_shape)
    return tf.where(mask, grad, tf.zeros_like(grad))


def _masked_apply(base_apply):
    def apply(self, grads, trainable_variables=None):
        if trainable_variables is None:  # grads in the order the optimizer was built with
            variables = list(getattr(self, "_trainable_variables", None) or [])
        else:
            trainable_variables = variables = list(trainable_variables)
        masks = [gradient_mask(v) for v in variables]
        if len(masks) == len(grads) and any(m is not None for m in masks):
            grads = [_masked_gradient(g, m) for g, m in zip(grads, masks)]
        result = base_apply(self, grads, trainable_variables)
        _zero_pruned_averages(self, variables, masks)
        return result

    apply.snip_tf_masks_gradients = True
    apply.__wrapped__ = base_apply
    return apply


def _zero_pruned_averages(optimizer, variables, masks) -> None:
    """With ``use_ema``, the pruned entries of the moving averages ``fit`` writes into the model
    at its end are zero (state from before pruning, e.g. momentum, can still move a pruned weight
    for a moment before its hook puts it back, and the average would record that)."""
    if not getattr(optimizer, "use_ema", False):
        return
    averages = getattr(optimizer, "_model_variables_moving_average", None)
    if not averages:
        return
    for variable, mask in zip(variables, masks):
        if mask is not None:
            average = averages[optimizer._get_variable_index(variable)]
            average.assign(tf.where(mask, average, tf.zeros_like(average)))


def enable_gradient_masking() -> None:
    """Make every Keras optimizer zero the gradient of each pruned weight before it uses any
    gradient, and keep the pruned entries of its moving averages (``use_ema``) at zero.

    The hooks put a pruned weight back to zero after each update, but the optimizer would see its
    gradient first: ``clipnorm`` and ``global_clipnorm`` would clip by a norm that counts the
    pruned weights (shrinking the kept weights' steps), and ``use_ema`` would average their
    momentary values, which ``fit`` writes into the model at its end. With this, a pruned weight
    never moves and the network trains as the sparse network it is (the authors' code, which
    multiplies each weight by its mask, has zero gradients there too).

    It acts on a variable only while it carries a pruning hook (:class:`PruningMask` or a
    :class:`snip_tf.Masked` wrapper's), whatever trains it: ``fit``, a custom loop, a model
    loaded by ``keras.models.load_model`` or cloned, a pruned model inside a larger one. Every
    other variable's gradient passes unchanged. Creating a hook enables it (idempotent); a train
    step traced before that does not have it.

    >>> v = keras.Variable([0.0, 0.0])
    >>> v.constraint = PruningMask(np.array([True, False]))   # the second weight is pruned
    >>> keras.optimizers.SGD(1.0, global_clipnorm=1.0).apply([tf.constant([3.0, 4.0])], [v])
    >>> v.numpy().tolist()  # clipped by the kept gradient's norm (3), not by 5
    [-1.0, 0.0]
    """
    cls = keras.optimizers.Optimizer
    if not getattr(cls.apply, "snip_tf_masks_gradients", False):
        cls.apply = _masked_apply(cls.apply)


def invalidate_traced_functions(model) -> None:
    """Constraints are read when the train step is traced: a step traced before pruning must go.

    The train function is rebuilt in place rather than dropped: masks can be installed inside
    ``fit`` (a ``BackupAndRestore`` restoring a mask record in ``on_train_begin``), where ``fit``
    calls ``model.train_function`` without making it again. ``SNIPCallback``'s own wrapper, which
    rebuilds the function itself once it has pruned, is left in place."""
    train = getattr(model, "train_function", None)
    if train is not None and not getattr(train, "snip_tf_wrapper", False):
        model.make_train_function(force=True)
    for attr in ("test_function", "predict_function"):
        if getattr(model, attr, None) is not None:
            setattr(model, attr, None)
