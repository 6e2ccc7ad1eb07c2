"""Export a pruned model for serving."""

from __future__ import annotations

import os

from snip_tf.wrappers import strip


def export(model, path: str, *, overwrite: bool = False) -> str:
    """Write a TF SavedModel of ``strip(model)`` to ``path`` and return the path.

    The SavedModel has a ``serve`` endpoint: ``tf.saved_model.load(path).serve(x)`` returns the
    model's outputs. The pruned weights are stored as exact zeros; no snip_tf code is needed to load
    it. The input model is not modified (Sequential/Functional models are stripped on a copy).

    >>> snip_tf.export(model, "/tmp/pruned_model")   # doctest: +SKIP
    """
    path = os.fspath(path)
    if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)) and not overwrite:
        raise FileExistsError(f"export: {path!r} already exists and is not empty; pass "
                              "overwrite=True or choose another path.")
    if not model.built:
        raise ValueError("export: the model is not built; call it on data (or fit it) first.")
    strip(model).export(path, format="tf_saved_model", verbose=False)
    return path
