"""Data sets as arrays and as ``tf.data`` pipelines.

Real data is read from local files (``--data_dir`` / ``SNIP_TF_DATA_DIR``, laid out like
``mnist/*.gz``, ``fashion_mnist/*.gz``, ``cifar10/cifar10.npz``) or, with no local folder, through
``tensorflow-datasets`` (which downloads when online). ``digits`` is scikit-learn's bundled 8x8 digits
set, available on any machine without a download.
"""

from snip_tf.data.loaders import (ArraySplits, DataError, data_dir, load, load_cifar10,
                                  load_digits, load_idx, load_mnist, random_labels)
from snip_tf.data.pipeline import make_datasets

__all__ = ["ArraySplits", "DataError", "data_dir", "load", "load_cifar10", "load_digits",
           "load_idx", "load_mnist", "make_datasets", "random_labels"]
