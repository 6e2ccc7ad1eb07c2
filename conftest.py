"""Names available to the docstring examples of snip_tf (run by pytest --doctest-modules)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

import snip_tf  # noqa: E402


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace):
    keras.utils.set_random_seed(0)
    doctest_namespace.update({"keras": keras, "np": np, "tf": tf, "snip_tf": snip_tf})
