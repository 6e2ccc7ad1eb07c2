"""Saving and loading pruned models of every kind, with their exact masks.

On a Sequential or Functional model the masks are part of the layer configs (``PruningMask``), so
``keras.models.load_model`` restores them. A subclassed model, a keras-hub backbone or task, or a
variable outside any layer config (a position embedding, a class token, a custom ``add_weight``)
has no config that carries a constraint. For those, every pruned model carries a **mask record**:
an object attached to the model that is saved with its weights on every route Keras and TensorFlow
have —

- ``model.save`` (``.keras``), ``save_weights`` (``.weights.h5``), ``BackupAndRestore`` and
  ``ModelCheckpoint``, as one small entry of the weights file;
- ``tf.train.Checkpoint`` (and SavedModel variables), as one string tensor.

On load the record installs exactly the masks that were saved (checked against the model's
variables before anything is decompressed). Use:

- :func:`load_model` for a ``.keras`` file of any model kind;
- :func:`load_weights` to load a weights file or checkpoint into a freshly built model;
- :func:`track` before ``tf.train.Checkpoint.restore`` (or any restore) into a fresh model;
  ``SNIPCallback`` tracks its model itself, so a ``BackupAndRestore`` resume restores the mask.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
import weakref
import zipfile

import keras
import numpy as np
import tensorflow as tf
from keras.src.saving import saving_lib
from keras.src.saving.keras_saveable import KerasSaveable
from tensorflow.python.trackable.base import Trackable

from snip_tf import masking, wrappers

RECORD_ATTR = "_snip_tf_mask_record"
_FORMAT = "snip_tf.masks"
_VERSION = 1
# A record is a few bytes per thousand weights; refuse to parse anything implausibly large.
_MAX_RECORD_BYTES = 1 << 30


class MaskRecordError(ValueError):
    """A saved mask record does not fit the model it is loaded into."""


def variable_keys(model) -> dict:
    """``{id(variable): key}``: each layer variable's place in the model's structure (the attribute
    path to its layer, as Keras's saving walks it, and its number there). Keys do not depend on
    layer names, so they identify the same variable in the same architecture built in another
    process. Optimizers and metrics are not walked (nothing of theirs is masked)."""
    keys, visited = {}, set()

    def visit(layer, path):
        if id(layer) in visited:
            return
        visited.add(id(layer))
        for i, variable in enumerate(layer._trainable_variables + layer._non_trainable_variables):
            keys.setdefault(id(variable), f"{path}/{i}")
        for attr, child in saving_lib._walk_saveable(layer):
            child_path = f"{path}/{attr}" if path else attr
            if isinstance(child, keras.layers.Layer):
                visit(child, child_path)
            elif isinstance(child, (list, tuple, dict)):
                items = child.values() if isinstance(child, dict) else child
                for j, item in enumerate(items):
                    if isinstance(item, keras.layers.Layer):
                        visit(item, f"{child_path}/{j}")

    visit(model, "")
    return keys


def record_payload(model, with_keys: bool = True) -> bytes:
    """The JSON record of every installed mask of ``model`` (``with_keys=False``: identified by
    path and position only, without walking the model as Keras's saving does)."""
    keys = variable_keys(model) if with_keys else {}
    entries = [{"key": keys.get(id(v)), "index": i, "path": v.path,
                "shape": [int(d) for d in v.shape], "bits": masking.encode_mask(mask)["bits"]}
               for i, v, mask in masking.hooked_variables(model)]
    return json.dumps({"format": _FORMAT, "version": _VERSION, "masks": entries}).encode()


def parse_payload(payload: bytes, model) -> list:
    """``[(variable, mask)]`` of a record for ``model``; every entry is checked against the model
    before its bits are decompressed. Raises MaskRecordError naming what does not fit."""
    if len(payload) > _MAX_RECORD_BYTES:
        raise MaskRecordError(f"The mask record is {len(payload)} bytes; more than any model needs.")
    try:
        record = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as error:
        raise MaskRecordError(f"The mask record is not valid JSON ({error}).") from error
    if not isinstance(record, dict) or record.get("format") != _FORMAT:
        raise MaskRecordError("The mask record is not a snip_tf mask record.")
    if record.get("version") != _VERSION:
        raise MaskRecordError(f"The mask record has version {record.get('version')!r}; this snip_tf "
                              f"reads version {_VERSION}.")
    variables = model.variables
    by_path = {v.path: v for v in variables}
    masks = record.get("masks")
    if not isinstance(masks, list):
        raise MaskRecordError("The mask record has no list of masks.")
    if masks and not variables:
        raise MaskRecordError(f"The model {model.name!r} is not built, so the saved masks have no "
                              "weights to go on. Build it (call it on a batch) before restoring.")
    # A variable is identified by its place in the model's structure (independent of layer names,
    # which Keras numbers differently in another process), else by its path, else by its position
    # in model.variables. Shapes are checked either way.
    if not all(isinstance(m, dict) and isinstance(m.get("shape"), list) for m in masks):
        raise MaskRecordError("A mask record entry has no shape.")
    keys = {}
    if all(m.get("key") for m in masks):
        found = variable_keys(model)
        keys = {found[id(v)]: v for v in variables if id(v) in found}
    use_keys = bool(keys) and all(m["key"] in keys for m in masks)
    use_paths = not use_keys and all(m.get("path") in by_path for m in masks)
    out = []
    for m in masks:
        if use_keys:
            variable = keys[m["key"]]
        elif use_paths:
            variable = by_path[m["path"]]
        else:
            index = m.get("index")
            if not isinstance(index, int) or not 0 <= index < len(variables):
                raise MaskRecordError(
                    f"The mask record names variable {m.get('path')!r} (number {index}), which "
                    f"{model.name!r} does not have: it has {len(variables)} variables. Load it into "
                    "the architecture it was saved from.")
            variable = variables[index]
        shape = tuple(int(d) for d in variable.shape)
        if tuple(m["shape"]) != shape:
            raise MaskRecordError(
                f"The mask record's mask for {m.get('path')!r} has shape {m['shape']}; the model's "
                f"variable {variable.path!r} has shape {list(shape)}.")
        out.append((variable, masking.decode_mask(m.get("bits"), shape, f"mask of {variable.path!r}")))
    return out


def install_record(model, pairs) -> None:
    """Make the model's hooks exactly ``pairs`` (``[(variable, mask)]``): install each mask and
    remove the hooks of variables the record does not list."""
    listed = {id(v) for v, _ in pairs}
    known = {id(e.variable): e for e in masking.prunable_entries(model, include_bias=True)}
    for variable, mask in pairs:
        masking.install_mask(masking.entry_of(model, variable, known), mask)
    for _, variable, _ in masking.hooked_variables(model):
        if id(variable) not in listed:
            masking.remove_mask(masking.entry_of(model, variable, known))
    masking.invalidate_traced_functions(model)


class MaskRecord(KerasSaveable, Trackable):
    """The masks of a model, saved with its weights (Keras's weights files and TF checkpoints).

    Its content is computed from the model's hooks when it is saved, so it is never out of date.
    Loading a file or checkpoint that holds a record installs exactly the masks it lists.
    """

    def __init__(self, model):
        self._model = weakref.ref(model)

    def _obj_type(self):
        return "Loss"       # any Keras saveable type with no children; see saving_lib

    def _payload(self, with_keys: bool = True) -> bytes:
        return record_payload(self._model(), with_keys)

    def _load(self, payload: bytes) -> None:
        model = self._model()
        install_record(model, parse_payload(payload, model))

    # Keras weights files (.keras, .weights.h5; BackupAndRestore, ModelCheckpoint).
    def save_own_variables(self, store):
        store["0"] = np.frombuffer(self._payload(), dtype=np.uint8)

    def load_own_variables(self, store):
        if "0" in store:
            self._load(_read_record_dataset(store["0"]))

    # TensorFlow checkpoints (tf.train.Checkpoint, tf.train.CheckpointManager).
    @tf.autograph.experimental.do_not_convert
    def _serialize_to_tensors(self):
        # Saving a SavedModel traces this inside a graph; the masks are read eagerly (init_scope)
        # and the record is the masks at the time of saving.
        eager = tf.executing_eagerly()
        with tf.init_scope():
            payload = self._payload(with_keys=eager)
        return {"masks": tf.constant(payload)}

    def _restore_from_tensors(self, restored_tensors):
        value = restored_tensors["masks"]
        if isinstance(value, tf.Tensor) and not tf.executing_eagerly():
            return tf.no_op()       # a graph-mode restore (a loaded SavedModel) serves, not trains
        self._load(value.numpy())
        return tf.no_op()


def _read_record_dataset(dataset) -> bytes:
    shape = getattr(dataset, "shape", None)
    if shape is not None and (len(shape) != 1 or int(shape[0]) > _MAX_RECORD_BYTES):
        raise MaskRecordError(f"The stored mask record has shape {tuple(shape)}; expected bytes.")
    return np.asarray(dataset, dtype=np.uint8).tobytes()


def track(model) -> keras.Model:
    """Attach a mask record to ``model`` (idempotent) and return the model.

    After this, saving the model's weights saves its masks, and loading weights or restoring a
    checkpoint that holds a record installs the saved masks. ``snip``/``prune``/``apply_masks`` and
    ``SNIPCallback`` track the model themselves; call it yourself before restoring into a fresh
    model by other means (``tf.train.Checkpoint(model=model).restore(path)``).
    """
    record = getattr(model, RECORD_ATTR, None)
    if not isinstance(record, MaskRecord) or record._model() is not model:
        setattr(model, RECORD_ATTR, MaskRecord(model))
    return model


def checked_zip_path(path, caller: str, what: str, hint: str = "") -> str:
    """``path`` as a string, once it is known to name an existing zip archive; else a clear error
    that names ``caller`` and the kind of file expected (``what``)."""
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"{caller}: expected the path of {what}; got {type(path).__name__}.")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{caller}: {path!r} does not exist.")
    if os.path.isdir(path) or not zipfile.is_zipfile(path):
        raise ValueError(f"{caller}: {path!r} is not {what}.{hint}")
    return path


def _check_keras_archive(path: str) -> None:
    path = checked_zip_path(path, "load_model", "a .keras archive (a zip written by "
                            "model.save('....keras'))", " A SavedModel or TFLite export is for "
                            "serving: load it with tf.saved_model.load or the TFLite interpreter.")
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
    if "config.json" not in names:
        raise ValueError(f"load_model: {path!r} has no config.json; it is not a .keras archive.")


def _record_in_archive(path: str):
    """The mask record bytes stored in a .keras archive's weights, or None."""
    import h5py

    with zipfile.ZipFile(path) as archive:
        if "model.weights.h5" not in archive.namelist():
            return None
        # Read in place, as Keras does: only the record's few bytes leave the archive.
        with archive.open("model.weights.h5") as member, h5py.File(member, "r") as weights:
            key = f"{RECORD_ATTR}/vars/0"
            if key not in weights:
                return None
            return _read_record_dataset(weights[key])


def restore_from_zeros(model, what: str) -> bool:
    """Last resort for a pruned model saved without a record: its zero pattern becomes the mask,
    with a warning. Variables that are entirely zero are left unhooked (pruning never zeroes a
    whole weight silently). Returns True if it installed anything."""
    entries = []
    for entry in masking.prunable_entries(model):
        values = entry.variable.numpy()
        if values.size and 0 < np.count_nonzero(values) < values.size:
            entries.append((entry, values != 0))
    if not entries:
        return False
    warnings.warn(
        f"{what} holds no snip_tf mask record and its layer configs carry no masks; the exact zeros "
        f"of {len(entries)} prunable weight(s) were taken as the mask. A kept weight that happens to "
        "be exactly zero is now pruned too. Save with snip_tf >= 0.2 to keep the exact mask.",
        UserWarning, stacklevel=3)
    for entry, mask in entries:
        masking.install_mask(entry, mask)
    masking.invalidate_traced_functions(model)
    track(model)
    return True


def load_model(path, *, custom_objects=None, compile: bool = True, safe_mode: bool = True,
               from_zeros: bool = True):
    """Load a ``.keras`` file of any pruned model, with its hooks and its exact mask.

    Works for Sequential, Functional and subclassed models and keras-hub backbones and tasks (their
    classes must be importable or given in ``custom_objects``, as for ``keras.models.load_model``).
    The masks come from the mask record saved with the weights; a file written without one (by an
    older snip_tf) falls back to the layer configs, then, with a warning, to the zero pattern of
    the prunable weights (``from_zeros=False`` turns that off).

    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dense(2)])
    >>> snip_tf.apply_masks(model, [np.arange(32).reshape(4, 8) % 2 == 0, np.ones((8, 2), bool)])
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "pruned.keras")
    >>> model.save(path)
    >>> loaded = snip_tf.load_model(path)
    >>> round(snip_tf.sparsity(loaded), 4)      # 16 of 48 prunable weights pruned
    0.3333
    """
    _check_keras_archive(path)
    payload = _record_in_archive(os.fspath(path))
    try:
        model = keras.models.load_model(path, custom_objects=custom_objects, compile=compile,
                                        safe_mode=safe_mode)
    except TypeError as error:
        model = _load_argumentless(os.fspath(path), custom_objects, compile, error)
    masking.check_hooks(model)
    if payload is not None:
        install_record(model, parse_payload(payload, model))
        track(model)
    elif masking.hooked_variables(model):
        track(model)
    elif from_zeros:
        restore_from_zeros(model, repr(os.fspath(path)))
    return model


def _load_argumentless(path, custom_objects, compile, error):
    """A subclassed model whose ``__init__`` takes no arguments, which Keras's ``from_config``
    cannot call: built with its constructor, then given the archive's weights."""
    import inspect
    import tempfile

    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("config.json")
        if info.file_size > _MAX_RECORD_BYTES:
            raise error
        config = json.loads(archive.read("config.json"))
        name = config.get("registered_name") or config.get("class_name")
        cls = (custom_objects or {}).get(name) or keras.saving.get_registered_object(name)
        if cls is None and "class_name" in config:
            cls = (custom_objects or {}).get(config["class_name"])
        if not (isinstance(cls, type) and issubclass(cls, keras.Model)) \
                or inspect.signature(cls).parameters:
            raise error
        model = cls()
        wrappers.build_like(model, config.get("build_config"))
        with tempfile.TemporaryDirectory() as folder:
            weights = os.path.join(folder, "model.weights.h5")
            with archive.open("model.weights.h5") as src, open(weights, "wb") as dst:
                shutil.copyfileobj(src, dst)
            model.load_weights(weights)
    if compile and config.get("compile_config"):
        model.compile_from_config(config["compile_config"])
    return model


def load_weights(model, path, *, from_zeros: bool = True, **kwargs):
    """``model.load_weights(path)``, then the saved masks on the model (from the record saved with
    the weights; without one, from the zero pattern, with a warning, unless ``from_zeros=False``).
    Returns the model."""
    track(model)
    model.load_weights(path, **kwargs)
    if not masking.hooked_variables(model) and from_zeros:
        restore_from_zeros(model, repr(os.fspath(path)))
    return model
