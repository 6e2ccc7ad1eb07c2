"""Explicit per-layer masking: the :class:`Masked` wrapper, ``wrap`` to add it and ``strip`` to remove
every trace of pruning from a model."""

from __future__ import annotations

import inspect
import re
from typing import Callable, Iterable, Optional, Union

import keras

from snip_tf import masking

_MASK_REGISTERED_NAME = "snip_tf>PruningMask"


@keras.saving.register_keras_serializable(package="snip_tf")
class Masked(keras.layers.Wrapper):
    """Wraps a layer and owns one non-trainable mask variable (the paper's c) per prunable weight.

    Once a model contains ``Masked`` layers, only the wrapped layers are pruned by ``snip_tf.snip`` and
    ``SNIPCallback``: wrapping is how a user picks the layers to prune. The masks are ordinary layer
    weights, so they are saved by ``model.save``, ``save_weights`` and checkpoints. Before pruning every
    mask is 1 and the layer computes exactly what the wrapped layer computes.

    Supports single-input layers: Dense, EinsumDense, Conv*, DepthwiseConv*, SeparableConv*, Embedding,
    SimpleRNN/LSTM/GRU, ``keras.layers.RNN`` and Bidirectional. (MultiHeadAttention is pruned on plain
    models without a wrapper.)

    Example:
    >>> model = keras.Sequential([keras.Input((8,)),
    ...                           Masked(keras.layers.Dense(4, name="hidden"), name="masked"),
    ...                           keras.layers.Dense(2)], name="net")
    >>> [v.path for v in snip_tf.prunable_weights(model)]   # only the wrapped layer
    ['net/masked/hidden/kernel']
    """

    snip_tf_mask_wrapper = True     # how snip_tf.masking recognizes it without importing it

    def __init__(self, layer, include_bias: bool = False, **kwargs):
        if not isinstance(layer, keras.layers.Layer):
            raise ValueError(f"Masked expects a keras.layers.Layer, got {type(layer).__name__}.")
        if isinstance(layer, keras.layers.MultiHeadAttention) or not masking.is_supported(layer):
            raise ValueError(
                f"Masked cannot wrap {type(layer).__name__} (layer {layer.name!r}): it owns no weight "
                "that snip_tf prunes through a wrapper. Supported: Dense, EinsumDense, Conv*, "
                "DepthwiseConv*, SeparableConv*, Embedding, SimpleRNN, LSTM, GRU, RNN, Bidirectional.")
        super().__init__(layer, **kwargs)
        self.include_bias = include_bias
        self.mask_weights = []
        self._masked_ids = []

    def build(self, input_shape=None):
        if not self.layer.built:
            self.layer.build(input_shape)
        for entry in masking.prunable_entries(self, self.include_bias):
            if id(entry.variable) in self._masked_ids:
                continue
            relative = entry.path[len(self.layer.path) + 1:] if self.layer.path else entry.path
            name = re.sub(r"[^A-Za-z0-9_]", "_", relative) + "_mask"
            mask = self.add_weight(
                name=name,
                shape=entry.variable.shape, dtype=entry.variable.dtype,
                initializer="ones", trainable=False)
            self.mask_weights.append(mask)
            # An attribute per mask: what tf.train.Checkpoint tracks (it does not see the list).
            setattr(self, name, mask)
            self._masked_ids.append(id(entry.variable))
            entry.variable.constraint = masking.VariableMask(mask, entry.variable.constraint)
        self.built = True

    def has_mask_variable(self, variable) -> bool:
        return id(variable) in self._masked_ids

    def mask_variable(self, variable):
        """The mask variable of one of the wrapped layer's weights."""
        return self.mask_weights[self._masked_ids.index(id(variable))]

    def call(self, inputs, training=None, mask=None, **kwargs):
        if self.layer._call_has_training_arg:
            kwargs["training"] = training
        if mask is not None and self.layer._call_has_mask_arg:
            kwargs["mask"] = mask
        return self.layer(inputs, **kwargs)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def compute_mask(self, inputs, mask=None):
        return self.layer.compute_mask(inputs, mask)

    def get_config(self):
        return {**super().get_config(), "include_bias": self.include_bias}


def strip_config(config):
    """The config with every PruningMask replaced by the constraint it wrapped."""
    if isinstance(config, dict):
        if config.get("registered_name") == _MASK_REGISTERED_NAME:
            return strip_config(config["config"].get("inner"))
        return {k: strip_config(v) for k, v in config.items()}
    if isinstance(config, list):
        return [strip_config(v) for v in config]
    return config


def _plain_clone(layer):
    return layer.__class__.from_config(strip_config(layer.get_config()))


def _non_input_layers(model):
    return [l for l in model.layers if not isinstance(l, keras.layers.InputLayer)]


def _is_graph_model(model) -> bool:
    """Sequential, Functional, or a subclass of Functional (keras-hub backbones and tasks)."""
    from keras.src.models.functional import Functional

    return isinstance(model, (keras.Sequential, Functional))


def _copy_weights(src, dst) -> None:
    """Copy weights between a layer and its clone, looking through Masked on either side."""
    src = src.layer if isinstance(src, Masked) else src
    dst = dst.layer if isinstance(dst, Masked) else dst
    if _is_graph_model(src) and _is_graph_model(dst):
        for s, d in zip(_non_input_layers(src), _non_input_layers(dst)):
            _copy_weights(s, d)
    else:
        dst.set_weights(src.get_weights())


def _clone(model, clone_function) -> keras.Model:
    if not _is_graph_model(model):
        raise ValueError(
            f"Expected a Sequential or Functional model; got the subclassed model "
            f"{type(model).__name__!r}, which Keras cannot clone layer by layer. Prune it as it is "
            "(snip_tf.snip / SNIPCallback work on subclassed models) or wrap its layers with Masked "
            "in its own code.")
    clone = keras.models.clone_model(model, clone_function=clone_function, recursive=True)
    _copy_weights(model, clone)
    return clone


def _contains_masked(model) -> bool:
    return any(isinstance(l, Masked) for l in model._flatten_layers())


def _copy_from_config(model) -> keras.Model:
    """A new instance of ``model``'s class from its config (pruning constraints removed), built
    like it and holding its weights. The input model is not touched."""
    config = strip_config(keras.saving.serialize_keras_object(model))
    # The model's own classes, registered or not: this process has them.
    classes = {type(layer).__name__: type(layer) for layer in model._flatten_layers()}
    try:
        copy = keras.saving.deserialize_keras_object(config, custom_objects=classes)
    except TypeError:
        # A subclassed model whose __init__ takes no arguments (not even name=/dtype=), which
        # Keras's from_config cannot call: build one with its constructor as the user did.
        if _is_graph_model(model) or inspect.signature(type(model)).parameters:
            raise
        copy = type(model)()
    if not _is_graph_model(copy):
        build_like(copy, model.get_build_config())   # called once, as export needs
    source, target = model.weights, copy.weights
    if [tuple(w.shape) for w in source] != [tuple(w.shape) for w in target]:
        raise ValueError(f"the copy built from its config has {len(target)} weights of other shapes "
                         f"than the model's {len(source)}")
    copy.set_weights([w.numpy() for w in source])
    return copy


def wrap(model, layers: Optional[Union[Iterable[str], Callable]] = None,
         include_bias: bool = False) -> keras.Model:
    """A copy of a Sequential/Functional ``model`` (same weights) with supported layers in ``Masked``.

    Args:
        layers: names of the layers to wrap, or a predicate ``layer -> bool``; default every supported
            layer (MultiHeadAttention stays unwrapped).
        include_bias: rank the wrapped layers' biases too.

    >>> wrapped = snip_tf.wrap(keras.Sequential([keras.Input((8,)), keras.layers.Dense(2)]))
    >>> type(wrapped.layers[0]).__name__
    'Masked'
    """
    if not isinstance(model, keras.Model):
        raise ValueError(f"wrap expects a Sequential or Functional keras.Model; got "
                         f"{type(model).__name__}.")
    if layers is None:
        def chosen(layer):
            return not isinstance(layer, keras.layers.MultiHeadAttention)
    elif callable(layers):
        chosen = layers
    else:
        names = set(layers)
        all_names = {l.name for l in model._flatten_layers(include_self=False)}
        unknown = names - all_names
        if unknown:
            raise ValueError(f"wrap(layers=...) names layers the model does not have: "
                             f"{sorted(unknown)}. Its layers are {sorted(all_names)}.")

        def chosen(layer):
            return layer.name in names

    def clone_function(layer):
        clone = layer.__class__.from_config(layer.get_config())
        if isinstance(layer, Masked) or not masking.is_supported(layer) or not chosen(layer):
            return clone
        return Masked(clone, include_bias=include_bias)

    return _clone(model, clone_function)


def strip(model) -> keras.Model:
    """A plain Keras model with the same weights (pruned ones exactly zero) and outputs, without
    ``Masked`` wrappers, mask variables or pruning constraints. The input model is never modified.

    Sequential and Functional models (keras-hub backbones and tasks included) are cloned layer by
    layer; where a layer cannot be cloned, and for subclassed models, the model is rebuilt from its
    config. A model that cannot be copied either way raises a ValueError that says why
    (``snip_tf.export`` still exports such a model).

    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> snip_tf.apply_masks(model, [np.eye(4, 2, dtype=bool)])
    >>> plain = snip_tf.strip(model)
    >>> snip_tf.is_pruned(plain), snip_tf.is_pruned(model)
    (False, True)
    """
    if not isinstance(model, keras.Model):
        raise ValueError(f"strip expects a keras.Model; got {type(model).__name__}.")
    if not model.built:
        raise ValueError(f"strip: the model {model.name!r} is not built; call it on data first.")
    errors = []
    if _is_graph_model(model):
        def clone_function(layer):
            if isinstance(layer, Masked):
                return _plain_clone(layer.layer)
            return _plain_clone(layer)

        try:
            return _clone(model, clone_function)
        except Exception as error:  # noqa: BLE001 - try the next route; reported below
            errors.append(f"cloning layer by layer: {type(error).__name__}: {error}")
    if _contains_masked(model):
        errors.append("rebuilding from the config would keep its Masked wrappers")
    else:
        try:
            return _copy_from_config(model)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(f"rebuilding from its config: {type(error).__name__}: {error}")
    raise ValueError(
        f"strip cannot copy the model {model.name!r} ({type(model).__name__}); the model was not "
        "changed. " + "; ".join(str(e)[:400] for e in errors) + ". Give its classes get_config / "
        "register them (keras.saving.register_keras_serializable) so Keras can rebuild it; "
        "snip_tf.export(model, ...) exports it as it is, and snip_tf.remove_hooks(model) removes "
        "the hooks in place.")


def build_like(model, build_config) -> None:
    """Build a subclassed model from a build config ``{"input_shape": ...}`` by calling it on zeros
    (``build_from_config`` creates the weights of such a model but may leave it unbuilt)."""
    import numpy as np

    shape = (build_config or {}).get("input_shape")
    if shape is None:
        return
    if all(isinstance(d, (int, type(None))) for d in shape):
        model(np.zeros([1 if d is None else int(d) for d in shape], model.dtype or "float32"))
    else:
        model.build_from_config(build_config)
