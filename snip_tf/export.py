"""Export a pruned model: a TF SavedModel, a TFLite flatbuffer with sparse weights, or a compact
archive of bit-packed masks and non-zeros that restores the exact model.

Every export leaves the caller's model exactly as it was, and every file is written atomically: a
failed or killed export never replaces a good earlier one.
"""

from __future__ import annotations

import io
import json
import os
import zipfile

import keras
import numpy as np
from absl import logging

from snip_tf import atomic, masking
from snip_tf import wrappers
from snip_tf.wrappers import Masked, strip

FORMATS = ("saved_model", "tflite", "compact")
_COMPACT_FORMAT = "snip_tf.compact"
_COMPACT_VERSION = 2
# config.json and weights.json are small; anything beyond this is not an archive we wrote.
_MAX_JSON_BYTES = 256 << 20


def _check_path(path: str, overwrite: bool, is_dir: bool):
    if os.path.exists(path) and not overwrite and (not is_dir or not os.path.isdir(path)
                                                   or os.listdir(path)):
        raise FileExistsError(f"export: {path!r} already exists; pass overwrite=True or choose "
                              "another path.")


def _servable(model):
    """``strip(model)`` where the model can be copied; else the model itself (its hooks change
    nothing in a forward pass, and exporting does not modify it)."""
    try:
        return strip(model)
    except ValueError as error:
        logging.info("export: %s Exporting the model as it is.", error)
        return model


def export(model, path: str, *, format: str = "saved_model", overwrite: bool = False) -> str:
    """Write ``strip(model)`` to ``path`` and return the path. The input model is not modified.

    Formats:
        ``"saved_model"`` (default): a TF SavedModel with a ``serve`` endpoint:
            ``tf.saved_model.load(path).serve(x)`` returns the model's outputs.
        ``"tflite"``: a TFLite flatbuffer converted with the sparsity optimization
            (``tf.lite.Optimize.EXPERIMENTAL_SPARSITY``), which stores sparse weights compactly.
        ``"compact"``: a zip of the model config, bit-packed masks and the non-zero values of the
            pruned weights (other weights as they are); :func:`load_compact` restores the exact
            model, with its pruning hooks.

    Models whose layers Keras cannot clone (some keras-hub layers, subclassed models without a
    config) are exported as they are for ``saved_model`` and ``tflite``; ``compact`` needs a model
    Keras can rebuild from its config and says so otherwise. The file or folder is written to a
    temporary name and renamed into place, so an earlier export at ``path`` survives a failure.

    >>> snip_tf.export(model, "/tmp/pruned_model")   # doctest: +SKIP
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"export: path must be a file path; got {type(path).__name__}.")
    path = os.fspath(path)
    if format not in FORMATS:
        raise ValueError(f"export: format must be one of {FORMATS}; got {format!r}.")
    if not isinstance(model, keras.Model):
        raise ValueError(f"export expects a keras.Model; got {type(model).__name__}.")
    if not model.built:
        raise ValueError("export: the model is not built; call it on data (or fit it) first.")
    _check_path(path, overwrite, is_dir=format == "saved_model")
    if format == "compact":
        return atomic.write_bytes(path, _compact_bytes(model))
    plain = _servable(model)
    if format == "saved_model":
        with atomic.directory(path, overwrite=True) as tmp:
            plain.export(tmp, format="tf_saved_model", verbose=False)
        return path
    return atomic.write_bytes(path, _tflite_bytes(plain))


def _tflite_bytes(model) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    try:
        return converter.convert()
    except Exception as error:  # noqa: BLE001 - the converter raises ConverterError variously
        recurrent = [l.name for l in model._flatten_layers()
                     if isinstance(l, (keras.layers.RNN, keras.layers.Bidirectional))]
        hint = (f"Its recurrent layers ({', '.join(recurrent[:5])}) with a dynamic batch lower to "
                "TensorList ops that TFLite's builtin ops lack (this interpreter has no Flex "
                "delegate). " if recurrent else "")
        raise ValueError(
            "export(format='tflite'): the TFLite converter cannot convert this model with TFLite's "
            f"builtin ops. {hint}Use format='saved_model' or 'compact'. Converter said: "
            f"{str(error).splitlines()[0][:300] if str(error) else type(error).__name__}"
        ) from error


def _compact_config(model) -> dict:
    try:
        config = wrappers.strip_config(keras.saving.serialize_keras_object(model))
        json.dumps(config)
    except Exception as error:  # noqa: BLE001 - reported with the cause
        raise ValueError(
            f"export(format='compact') needs a model Keras can rebuild from its config; "
            f"{type(model).__name__} {model.name!r} cannot be serialized ({error}). Use "
            "format='saved_model', or model.save(...) with snip_tf.load_model.") from error
    return config


def _compact_bytes(model) -> bytes:
    config = _compact_config(model)
    mask_variables = {id(v) for l in model._flatten_layers() if isinstance(l, Masked)
                      for v in l.mask_weights}
    arrays, index = {}, []
    for i, variable in enumerate(model.weights):
        value = variable.numpy()
        mask = masking.mask_of(variable)
        entry = {"path": variable.path, "shape": list(value.shape), "dtype": str(value.dtype)}
        if mask is not None:
            value = np.where(mask, value, np.zeros_like(value))
            arrays[f"w{i}_bits"] = np.packbits(mask.ravel())
            arrays[f"w{i}_values"] = value[mask]
            entry["kind"] = "sparse"
        elif id(variable) in mask_variables:
            arrays[f"w{i}_bits"] = np.packbits(value.ravel() != 0)
            entry["kind"] = "bits"
        else:
            arrays[f"w{i}"] = value
            entry["kind"] = "dense"
        index.append(entry)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("weights.json", json.dumps(
            {"format": _COMPACT_FORMAT, "version": _COMPACT_VERSION, "weights": index}))
        archive.writestr("arrays.npz", buffer.getvalue())
    return out.getvalue()


def _read_json(archive, name: str, path: str):
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise ValueError(f"load_compact: {path!r} has no {name}; it is not a compact export.") from None
    if info.file_size > _MAX_JSON_BYTES:
        raise ValueError(f"load_compact: {path!r}'s {name} declares {info.file_size} bytes; a "
                         "compact export's is far smaller.")
    try:
        return json.loads(archive.read(name))
    except ValueError as error:
        raise ValueError(f"load_compact: {path!r}'s {name} is not valid JSON ({error}).") from error


class _CheckedArrays:
    """The arrays of an .npz, each read only after its declared shape and dtype are checked (and
    read as a stream: the .npz is never inflated whole)."""

    def __init__(self, member, path: str):
        self.path = path
        try:
            self.zip = zipfile.ZipFile(member)
        except zipfile.BadZipFile as error:
            raise ValueError(f"load_compact: {path!r}'s arrays.npz is not an npz archive.") from error
        self.names = set(self.zip.namelist())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.zip.close()

    def get(self, name: str, shape: tuple, dtype) -> np.ndarray:
        member = name + ".npy"
        if member not in self.names:
            raise ValueError(f"load_compact: {self.path!r} has no array {name!r}.")
        with self.zip.open(member) as f:
            try:
                version = np.lib.format.read_magic(f)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                header = read_header(f)  # (shape, fortran order, dtype)
            except ValueError as error:
                raise ValueError(f"load_compact: {self.path!r}'s array {name!r} is not a valid "
                                 f"array ({error}).") from error
            declared, fortran, declared_dtype = header
            if tuple(declared) != tuple(shape) or np.dtype(declared_dtype) != np.dtype(dtype):
                raise ValueError(
                    f"load_compact: {self.path!r}'s array {name!r} declares shape "
                    f"{list(declared)} and dtype {declared_dtype}; the model needs shape "
                    f"{list(shape)} and dtype {np.dtype(dtype)}.")
            if declared_dtype.hasobject:
                raise ValueError(f"load_compact: {self.path!r}'s array {name!r} holds objects.")
            count = int(np.prod(shape, dtype=np.int64))
            raw = f.read(count * np.dtype(dtype).itemsize)
        if len(raw) != count * np.dtype(dtype).itemsize:
            raise ValueError(f"load_compact: {self.path!r}'s array {name!r} is truncated.")
        return np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran else "C").copy()


def _weight_index(raw, path):
    """The weights.json index as a list of entries with a ``kind`` (archives of version 1 were a
    plain list with a ``sparse`` flag)."""
    if isinstance(raw, list):
        return [dict(e, kind="sparse" if e.get("sparse") else "dense", v1=True)
                for e in raw if isinstance(e, dict)], 1
    if isinstance(raw, dict) and raw.get("format") == _COMPACT_FORMAT \
            and raw.get("version") == _COMPACT_VERSION and isinstance(raw.get("weights"), list):
        return raw["weights"], _COMPACT_VERSION
    raise ValueError(f"load_compact: {path!r}'s weights.json is not a snip_tf compact index "
                     f"(version {_COMPACT_VERSION} or 1).")


def load_compact(path: str, *, install_masks: bool = True):
    """The model written by ``export(..., format="compact")``: same config, the exact weights, and
    (``install_masks``) the pruning hooks on the weights that were pruned.

    Every declared shape is checked against the model the config builds before any array is read,
    and an array is read only up to its declared size.
    """
    from snip_tf import saving

    path = saving.checked_zip_path(path, "load_compact", "a compact export (a zip written by "
                                   "snip_tf.export(..., format='compact'))")
    with zipfile.ZipFile(path) as archive:
        config = _read_json(archive, "config.json", path)
        index, version = _weight_index(_read_json(archive, "weights.json", path), path)
        try:
            model = keras.saving.deserialize_keras_object(config)
        except Exception as error:  # noqa: BLE001 - reported with the cause
            raise ValueError(f"load_compact: {path!r}: the stored model cannot be rebuilt from its "
                             f"config ({error}).") from error
        if not isinstance(model, keras.Model) or not model.built:
            raise ValueError(f"load_compact: {path!r}: the stored model cannot be rebuilt from its "
                             "config.")
        weights = model.weights
        if len(index) != len(weights):
            raise ValueError(f"load_compact: {path!r} holds {len(index)} weights; its model has "
                             f"{len(weights)}.")
        for entry, weight in zip(index, weights):
            declared = entry.get("shape") if isinstance(entry, dict) else entry
            if not isinstance(entry, dict) or list(entry.get("shape", [])) != list(weight.shape):
                raise ValueError(f"load_compact: {path!r} declares shape {declared} for "
                                 f"{weight.path!r}; the model built from its config has "
                                 f"{list(weight.shape)}.")
            if np.dtype(entry.get("dtype", weight.dtype)) != np.dtype(weight.dtype):
                raise ValueError(f"load_compact: {path!r} declares dtype {entry.get('dtype')!r} "
                                 f"for {weight.path!r}; the model's weight is {weight.dtype}.")
            if entry.get("kind") not in ("sparse", "bits", "dense"):
                raise ValueError(f"load_compact: {path!r} has weight kind {entry.get('kind')!r}; "
                                 "expected 'sparse', 'bits' or 'dense'.")
        if "arrays.npz" not in archive.namelist():
            raise ValueError(f"load_compact: {path!r} has no arrays.npz.")
        values, masks = [], {}
        with archive.open("arrays.npz") as member, _CheckedArrays(member, path) as arrays:
            for i, (entry, weight) in enumerate(zip(index, weights)):
                values.append(_read_weight(arrays, i, entry, weight, masks))
    model.set_weights(values)
    if install_masks and masks:
        saving.install_record(model, [(weights[i], m) for i, m in masks.items()])
        saving.track(model)
    return model


def _read_weight(arrays, i, entry, weight, masks):
    """One weight's values from a compact archive (its mask into ``masks`` where it was pruned)."""
    shape, dtype = tuple(weight.shape), np.dtype(weight.dtype)
    count = int(np.prod(shape, dtype=np.int64))
    if entry["kind"] in ("sparse", "bits"):
        bits = arrays.get(f"w{i}_bits", ((count + 7) // 8,), np.uint8)
        mask = np.unpackbits(bits, count=count).astype(bool).reshape(shape)
        if entry["kind"] == "bits":
            return mask.astype(dtype)
        value = np.zeros(shape, dtype=dtype)
        value[mask] = arrays.get(f"w{i}_values", (int(mask.sum()),), dtype)
        if not (entry.get("v1") and mask.all()):
            masks[i] = mask
        return value
    return arrays.get(f"w{i}", shape, dtype)
