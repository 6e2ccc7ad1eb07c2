"""The model zoo, by name: ``snip_tf.models.get("lenet-5-caffe")``.

One module per family (``lenet``, ``recurrent``, ``cifar``, ``reber``) registers its builders in
``registry``; importing this package registers them all.

>>> model = snip_tf.models.get("lenet-300-100")
>>> model.count_params()
266610
"""

from snip_tf.models import cifar, lenet, reber, recurrent  # noqa: F401 - they register the zoo
from snip_tf.models.reber import REBER_EMBEDDINGS, REBER_PADDINGS
from snip_tf.models.registry import (INITIALIZERS, RECURRENT_FANS, CellVarianceScaling, Layers, get,
                                     names, register)

__all__ = ["INITIALIZERS", "RECURRENT_FANS", "CellVarianceScaling", "Layers", "REBER_EMBEDDINGS",
           "REBER_PADDINGS", "get", "names", "register"]
