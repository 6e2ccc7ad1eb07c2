"""Export a pruned model: a TF SavedModel, a TFLite flatbuffer with sparse weights, or a compact
archive of bit-packed masks and non-zeros that restores the exact model."""

from __future__ import annotations

import io
import json
import os
import zipfile

import keras
import numpy as np

from snip_tf.wrappers import strip

FORMATS = ("saved_model", "tflite", "compact")


def _check_path(path: str, overwrite: bool, is_dir: bool):
    if os.path.exists(path) and not overwrite and (not is_dir or not os.path.isdir(path)
                                                   or os.listdir(path)):
        raise FileExistsError(f"export: {path!r} already exists; pass overwrite=True or choose "
                              "another path.")


def export(model, path: str, *, format: str = "saved_model", overwrite: bool = False) -> str:
    """Write ``strip(model)`` to ``path`` and return the path. The input model is not modified.

    Formats:
        ``"saved_model"`` (default): a TF SavedModel with a ``serve`` endpoint:
            ``tf.saved_model.load(path).serve(x)`` returns the model's outputs.
        ``"tflite"``: a TFLite flatbuffer converted with the sparsity optimization
            (``tf.lite.Optimize.EXPERIMENTAL_SPARSITY``), which stores sparse weights compactly.
        ``"compact"``: a zip of the model config, bit-packed masks and the non-zero values of the
            prunable weights (other weights as they are); :func:`load_compact` restores the exact
            model, with its pruning hooks.

    >>> snip_tf.export(model, "/tmp/pruned_model")   # doctest: +SKIP
    """
    path = os.fspath(path)
    if format not in FORMATS:
        raise ValueError(f"export: format must be one of {FORMATS}; got {format!r}.")
    if not model.built:
        raise ValueError("export: the model is not built; call it on data (or fit it) first.")
    _check_path(path, overwrite, is_dir=format == "saved_model")
    if format == "compact":
        return _export_compact(model, path)
    plain = strip(model)
    if format == "saved_model":
        plain.export(path, format="tf_saved_model", verbose=False)
        return path
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(plain)
    converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    try:
        flatbuffer = converter.convert()
    except Exception as error:  # noqa: BLE001 - the converter raises ConverterError variously
        raise ValueError(
            "export(format='tflite'): the TFLite converter cannot convert this model with TFLite's "
            "builtin ops (recurrent layers with a dynamic batch lower to TensorList ops it lacks, "
            "and this interpreter has no Flex delegate). Use format='saved_model' or 'compact'. "
            f"Converter said: {str(error).splitlines()[0][:300]}") from error
    with open(path, "wb") as f:
        f.write(flatbuffer)
    return path


def _export_compact(model, path: str) -> str:
    from snip_tf import masking

    plain = strip(model)
    prunable = {e.path for e in masking.prunable_entries(plain, include_bias=True)}
    arrays, index = {}, []
    for i, variable in enumerate(plain.weights):
        value = variable.numpy()
        if variable.path in prunable:
            mask = value != 0
            arrays[f"w{i}_bits"] = np.packbits(mask.ravel())
            arrays[f"w{i}_values"] = value[mask]
            index.append({"path": variable.path, "shape": list(value.shape),
                          "dtype": str(value.dtype), "sparse": True})
        else:
            arrays[f"w{i}"] = value
            index.append({"path": variable.path, "shape": list(value.shape),
                          "dtype": str(value.dtype), "sparse": False})
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", json.dumps(keras.saving.serialize_keras_object(plain)))
        archive.writestr("weights.json", json.dumps(index))
        archive.writestr("arrays.npz", buffer.getvalue())
    return path


def load_compact(path: str, *, install_masks: bool = True):
    """The model written by ``export(..., format="compact")``: same config, the exact weights, and
    (``install_masks``) the pruning hooks on the weights that were pruned."""
    from snip_tf import pruning

    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
        index = json.loads(archive.read("weights.json"))
        arrays = np.load(io.BytesIO(archive.read("arrays.npz")))
        model = keras.saving.deserialize_keras_object(config)
        if not model.built:
            raise ValueError(f"{path!r}: the stored model cannot be rebuilt from its config.")
        values, masks = [], {}
        for i, entry in enumerate(index):
            shape = tuple(entry["shape"])
            if entry["sparse"]:
                mask = np.unpackbits(arrays[f"w{i}_bits"], count=int(np.prod(shape)))
                mask = mask.astype(bool).reshape(shape)
                value = np.zeros(shape, dtype=entry["dtype"])
                value[mask] = arrays[f"w{i}_values"]
                if not mask.all():
                    masks[i] = mask
            else:
                value = arrays[f"w{i}"]
            values.append(value)
    if len(values) != len(model.weights):
        raise ValueError(f"{path!r} holds {len(values)} weights; its model has "
                         f"{len(model.weights)}.")
    model.set_weights(values)
    if install_masks and masks:
        pruning.apply_masks(model, {model.weights[i].path: m for i, m in masks.items()})
    return model
