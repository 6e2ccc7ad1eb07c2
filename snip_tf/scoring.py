"""Connection sensitivity: g = dL/dc at c = 1 for mask variables c on the prunable weights.

The forward pass runs the model with every prunable weight w replaced by ``c * w`` through
``keras.StatelessScope`` (Keras's own mechanism for running a model on substituted variable values),
and ``tf.GradientTape`` differentiates the loss with respect to the c tensors. Nothing is assigned to
the model: scoring leaves every weight, optimizer slot and BatchNorm statistic as it was.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from snip_tf import masking

# A model whose variables themselves are float16 (policy "float16") cannot be scored in float32:
# its float16 gradients of a loss near 1 underflow for small weights. Scores are normalized, so the
# loss may be scaled by any constant: we start high and lower it on overflow, like a dynamic loss
# scale.
_FLOAT16_LOSS_SCALES = tuple(2.0 ** k for k in range(15, -1, -3))


class ScoresError(ValueError):
    """A criterion's scores, once computed, cannot rank the model: some are not finite, or all
    are zero. The model is left unchanged. (A property of the criterion on this model, e.g.
    SynFlow's products overflowing in a deep network; not a usage error. Connection sensitivity
    that is not finite on the scoring batch, e.g. from NaN data, is a plain ValueError.)"""


def _mixed_policy(policy) -> bool:
    from keras.src.dtype_policies.dtype_policy_map import DTypePolicyMap

    return (isinstance(policy, keras.DTypePolicy) and not isinstance(policy, DTypePolicyMap)
            and policy.quantization_mode is None and policy.variable_dtype == "float32"
            and policy.compute_dtype in ("float16", "bfloat16"))


@contextlib.contextmanager
def float32_compute(model):
    """Run every mixed-precision layer of ``model`` (float16/bfloat16 compute, float32 variables)
    in float32 inside the block, and restore each layer's own policy after it.

    Scoring at initialization is one forward-backward pass: in float16, its gradients underflow
    (through inference-mode BatchNorm, for one), and "every score is zero" where the float32 model
    has a clear ranking. Scoring in float32 gives a mixed-precision model the float32 model's masks.
    Any function traced inside the block keeps float32 compute when called again.
    """
    swapped = []
    for layer in model._flatten_layers(include_self=True):
        policy = getattr(layer, "_dtype_policy", None)
        if _mixed_policy(policy):
            swapped.append((layer, policy))
            layer._dtype_policy = keras.DTypePolicy("float32")
    try:
        yield bool(swapped)
    finally:
        for layer, policy in swapped:
            layer._dtype_policy = policy


def _to_global(value, strategy=None):
    """A tf.distribute per-replica value as the global batch: gathered from every replica of every
    worker (``strategy.gather``), so each worker scores exactly what one device would on the same
    global batch."""
    if isinstance(value, tf.distribute.DistributedValues):
        if strategy is not None and strategy.num_replicas_in_sync > 1:
            return strategy.gather(value, axis=0)
        return tf.concat(list(value.values), axis=0)
    return value


def _as_batch(element, strategy=None):
    if not isinstance(element, (tuple, list)) or len(element) not in (2, 3):
        raise ValueError(
            "Each batch must be an (x, y) or (x, y, sample_weight) tuple; got "
            f"{type(element).__name__}" + (f" of length {len(element)}"
                                           if isinstance(element, (tuple, list)) else "") + ".")
    x, y, *rest = element
    sample_weight = rest[0] if rest else None
    batch = tuple(tf.nest.map_structure(lambda t: _to_global(t, strategy), v)
                  if v is not None else None for v in (x, y, sample_weight))
    _check_batch(*batch)
    return batch


def _leading_sizes(value, what: str) -> list:
    sizes = []
    for t in tf.nest.flatten(value):
        shape = getattr(t, "shape", None)
        if shape is None:
            t = np.asarray(t)
            shape = t.shape
        dtype = getattr(t, "dtype", None)
        kind = getattr(dtype, "kind", None) if isinstance(dtype, np.dtype) else None
        if dtype is not None and (dtype == tf.string or kind in ("O", "S", "U")):
            raise ValueError(f"The scoring batch's {what} holds strings ({dtype}); the model "
                             "needs numbers. Preprocess (tokenize, encode) the data first.")
        if len(shape) == 0:
            raise ValueError(f"The scoring batch's {what} is a scalar; expected a batch of examples "
                             "(the first axis is the batch).")
        sizes.append(shape[0])
    return sizes


def _check_batch(x, y, sample_weight) -> None:
    """Every part of a scoring batch holds numbers and the same number of examples (> 0)."""
    sizes = {}
    for what, value in (("x", x), ("y", y), ("sample_weight", sample_weight)):
        if value is not None:
            sizes[what] = _leading_sizes(value, what)
    known = {int(n) for part in sizes.values() for n in part if n is not None}
    if len(known) > 1:
        detail = ", ".join(f"{k}: {[None if n is None else int(n) for n in v]}"
                           for k, v in sizes.items())
        raise ValueError(f"The scoring batch's parts have different batch sizes ({detail}); x, y "
                         "and sample_weight must hold the same examples.")
    if known == {0}:
        raise ValueError("The scoring batch is empty (0 examples); score on at least one example.")


def batches_of(data, num_batches: int = 1, strategy=None) -> list:
    """The ``num_batches`` batches to score on, as ``(x, y, sample_weight)`` tuples.

    ``data`` is one batch as an ``(x, y)`` / ``(x, y, sample_weight)`` tuple of arrays or tensors, or a
    ``tf.data.Dataset`` (or any iterable) of such batches.
    """
    if not isinstance(num_batches, (int, np.integer)) or isinstance(num_batches, bool) \
            or num_batches < 1:
        raise ValueError(f"num_batches must be a positive integer; got {num_batches!r}.")
    if isinstance(data, tuple):
        if num_batches != 1:
            raise ValueError(
                f"An (x, y) tuple is one batch, but num_batches={num_batches}; pass a "
                "tf.data.Dataset of batches to score on several.")
        return [_as_batch(data, strategy)]
    if data is None or isinstance(data, (str, bytes, dict, np.ndarray, tf.Tensor, list)):
        raise ValueError(
            "data must be an (x, y) tuple of arrays/tensors or a tf.data.Dataset of (x, y) batches; "
            f"got {type(data).__name__}.")
    batches = []
    source = data.take(num_batches) if isinstance(data, tf.data.Dataset) else data
    for element in source:
        batches.append(_as_batch(element, strategy))
        if len(batches) == num_batches:
            break
    if len(batches) < num_batches:
        raise ValueError(f"The data gave {len(batches)} batch(es), fewer than num_batches="
                         f"{num_batches}.")
    return batches


def resolve_loss(model, loss=None) -> Callable:
    """``loss_fn(y, y_pred, sample_weight) -> scalar``: the given loss or the model's compiled loss
    (without regularization terms: SNIP scores the data loss)."""
    if loss is None:
        compiled = getattr(model, "_compile_loss", None)
        if compiled is None:
            raise ValueError(
                "No loss to score with: the model is not compiled with a loss and no `loss=` was "
                "given. Call model.compile(loss=...) first or pass loss='sparse_categorical_crossentropy'"
                " (or any Keras loss / callable).")
        return lambda y, y_pred, sw: compiled(y, y_pred, sw)
    loss_obj = keras.losses.get(loss) if isinstance(loss, (str, dict)) else loss
    if not callable(loss_obj):
        raise ValueError(f"loss must be a Keras loss, its name, or a callable; got {loss!r}.")

    def loss_fn(y, y_pred, sw):
        if isinstance(loss_obj, keras.losses.Loss):
            return loss_obj(y, y_pred, sample_weight=sw)
        values = loss_obj(y, y_pred)
        if sw is not None:
            values = values * tf.cast(sw, values.dtype)
        return tf.reduce_mean(values)

    return loss_fn


class BuildState:
    """What building a model changes, captured before it is built, so that a failed call can leave
    an unbuilt model unbuilt (a model built for the wrong data would refuse the right data).

    >>> model = keras.Sequential([keras.layers.Dense(2)])
    >>> state = BuildState(model)
    >>> _ = model(np.ones((1, 3)))
    >>> state.restore()
    >>> model.built, len(model.weights)
    (False, 0)
    """

    def __init__(self, model):
        self.model = model
        self.layers = []
        if model.built:
            return
        for layer in model._flatten_layers(include_self=True):
            if not layer.built:
                # _layers: sublayers a build() creates (MultiHeadAttention's projections, ...);
                # for Sequential also the InputLayer its build() puts in front.
                self.layers.append((layer, layer.input_spec, len(layer._trainable_variables),
                                    len(layer._non_trainable_variables),
                                    getattr(layer, "_build_shapes_dict", None),
                                    getattr(layer, "_functional", None), list(layer._layers)))

    def restore(self) -> None:
        for layer, spec, trainable, non_trainable, shapes, functional, sublayers in self.layers:
            if not layer.built:
                continue
            del layer._trainable_variables[trainable:]
            del layer._non_trainable_variables[non_trainable:]
            layer._layers[:] = sublayers
            layer._build_shapes_dict = shapes
            if hasattr(layer, "_functional"):
                layer._functional = functional
            try:
                layer.input_spec = spec
            except Exception:  # noqa: BLE001 - a layer whose input_spec is read-only keeps its own
                pass
            layer.built = False
            tracker = getattr(layer, "_tracker", None)
            if tracker is not None and hasattr(tracker, "unlock"):
                tracker.unlock()         # build() locked it; the next build adds state again
        masking.invalidate_traced_functions(self.model)


def _ensure_built(model, x) -> None:
    if not model.built:
        try:
            model(x, training=False)
        except Exception as error:  # noqa: BLE001 - re-raised with the cause
            raise ValueError(f"The data does not fit the model: {error}") from error


class MaskGradient:
    """``dL/dc`` for mask tensors c on the prunable weights, as one traced function that is reused
    for every call (iterative criteria call it once per round without retracing).

    Args:
        transform: optional function applied to each weight value before masking (SynFlow scores
            ``|w|``).
    """

    def __init__(self, model, entries: Sequence[masking.PrunableWeight], loss_fn,
                 training: bool = False, transform=None):
        self.variables = [e.variable for e in entries]
        self.model = model
        self.mixed = any(_mixed_policy(getattr(l, "_dtype_policy", None))
                         for l in model._flatten_layers(include_self=True))
        # Only where float32 compute is impossible (float16 variables) is the loss scaled.
        use_float16 = any(v.dtype == "float16" for v in self.variables)
        self.scales = _FLOAT16_LOSS_SCALES if use_float16 else (1.0,)
        variables = self.variables

        @tf.function(reduce_retracing=True, autograph=False)
        def step(x, y, sw, masks, scale):
            with tf.GradientTape() as tape:
                tape.watch(masks)
                mapping = []
                for v, c in zip(variables, masks):
                    value = tf.cast(v.value, c.dtype)
                    if transform is not None:
                        value = transform(value)
                    mapping.append((v, value * c))
                with keras.StatelessScope(state_mapping=mapping):
                    y_pred = model(x, training=training)
                    loss = tf.cast(loss_fn(y, y_pred, sw), tf.float32)
                scaled = loss * scale
            grads = tape.gradient(scaled, masks,
                                  unconnected_gradients=tf.UnconnectedGradients.ZERO)
            grads = [g / scale for g in grads]
            # One in-graph check instead of an eager op per tensor: iterative criteria call this
            # once per round.
            finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(loss))] +
                                   [tf.reduce_all(tf.math.is_finite(g)) for g in grads])
            return loss, grads, finite

        self._step = step
        shapes = [tuple(v.shape) for v in variables]
        sizes = [int(np.prod(shape)) for shape in shapes]

        @tf.function(reduce_retracing=True, autograph=False)
        def flat_step(x, y, sw, flat_mask, scale):
            masks = [tf.reshape(m, shape) for m, shape in zip(tf.split(flat_mask, sizes), shapes)]
            loss, grads, finite = step(x, y, sw, masks, scale)
            return loss, tf.concat([tf.reshape(g, [-1]) for g in grads], 0), finite

        self._flat_step = flat_step

    def __call__(self, batches, mask_values: Optional[Sequence] = None) -> list:
        """Sum over ``batches`` of dL/dc at c = ``mask_values`` (default all ones)."""
        if mask_values is None:
            masks = [tf.ones(v.shape, tf.float32) for v in self.variables]
        else:
            masks = [tf.convert_to_tensor(np.asarray(m, np.float32)) for m in mask_values]
        return [g.numpy() for g in self._sum(self._step, batches, masks)]

    def flat(self, batches, flat_mask) -> np.ndarray:
        """Like calling it, with the masks and the result as one flat vector over all prunable
        weights in order: one transfer each way per call, for the iterative criteria's rounds."""
        mask = tf.convert_to_tensor(np.asarray(flat_mask, np.float32))
        return self._sum(self._flat_step, batches, mask).numpy()

    def _sum(self, step, batches, masks):
        # The policies are read when ``step`` is traced; swapping them once per call (and only
        # for a mixed-precision model) keeps the swap off the iterative criteria's rounds.
        with float32_compute(self.model) if self.mixed else contextlib.nullcontext():
            return self._sum_batches(step, batches, masks)

    def _sum_batches(self, step, batches, masks):
        total = None
        for x, y, sw in batches:
            for scale in self.scales:
                try:
                    loss, grads, finite = step(x, y, sw, masks, tf.constant(scale, tf.float32))
                except (ValueError, TypeError, tf.errors.InvalidArgumentError) as error:
                    raise ValueError(f"The data does not fit the model: {error}") from error
                finite = bool(finite)
                if finite:
                    break
            if not finite:
                raise ValueError(
                    "Connection sensitivity is not finite (NaN or Inf): the loss on the scoring "
                    f"batch is {float(loss.numpy())}. Check the batch for NaN/Inf values and the "
                    "loss function. The model was not changed.")
            total = grads if total is None else tf.nest.map_structure(tf.add, total, grads)
        return total


def mask_gradients(model, entries: Sequence[masking.PrunableWeight], batches, loss_fn,
                   training: bool = False, mask_values: Optional[Sequence] = None) -> list:
    """Sum over ``batches`` of dL/dc at c = ``mask_values`` (default all ones), one array per entry."""
    return MaskGradient(model, entries, loss_fn, training)(batches, mask_values)


def prepare(model, data, loss=None, num_batches=1, *, include_bias=False, needs_data=True):
    """Validate the inputs of a scoring call: ``(entries, batches, loss_fn)``.

    Builds an unbuilt model from the first batch. Data-free criteria (``needs_data=False``) accept
    ``data=None`` on a built model and get ``batches = []`` and ``loss_fn = None`` then.
    """
    if data is None and not needs_data:
        if not model.built:
            raise ValueError(f"The model {model.name!r} is not built; build it (call it on data) "
                             "or pass data.")
        batches, loss_fn = [], None
    else:
        batches = batches_of(data, num_batches, getattr(model, "distribute_strategy", None))
        loss_fn = resolve_loss(model, loss) if needs_data else None
        _ensure_built(model, batches[0][0])
    entries = masking.prunable_entries(model, include_bias)
    if not entries:
        raise ValueError(
            f"The model {model.name!r} has no prunable weights (kernels of Dense, Conv, Embedding, "
            "RNN/LSTM/GRU, MultiHeadAttention ... layers that are trainable).")
    return entries, batches, loss_fn


def connection_sensitivity(model, data, loss=None, num_batches: int = 1, *,
                           include_bias: bool = False, training: bool = False) -> dict:
    """Normalized connection sensitivity of every prunable weight (Lee et al. 2019, eq. 6).

    ``s_j = |g_j| / sum_k |g_k|`` with ``g = dL/dc`` at ``c = 1``; gradients of several batches are
    summed before the absolute value.

    Args:
        model: a Keras model (built, or buildable from ``data``).
        data: an ``(x, y)`` tuple (one batch) or a ``tf.data.Dataset`` of ``(x, y)`` batches.
        loss: a Keras loss, its name or a callable ``(y_true, y_pred)``; default the compiled loss.
        num_batches: how many batches of a dataset to sum the gradients over.
        include_bias: rank biases too (as the authors' code did).
        training: the ``training`` flag of the scoring forward pass; the default False runs
            BatchNorm on its moving statistics (as the authors' code did) and dropout off.

    Returns:
        ``{variable.path: float32 array of the variable's shape}``, summing to 1 over all entries.

    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> model.compile(loss="mse")
    >>> s = connection_sensitivity(model, (np.ones((3, 4)), np.zeros((3, 2))))
    >>> round(float(sum(v.sum() for v in s.values())), 5)
    1.0
    """
    entries, batches, loss_fn = prepare(model, data, loss, num_batches, include_bias=include_bias)
    scores = [np.abs(g) for g in mask_gradients(model, entries, batches, loss_fn, training)]
    total = float(sum(np.sum(s, dtype=np.float64) for s in scores))
    if total == 0.0:
        raise ValueError("Every connection sensitivity is zero: the loss does not depend on the "
                         "prunable weights for this data. The model was not changed.")
    return {e.path: (s / total).astype(np.float32) for e, s in zip(entries, scores)}
