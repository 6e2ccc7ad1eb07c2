"""snip_tf: SNIP (single-shot network pruning at initialization) for Keras 3 on TensorFlow.

>>> import snip_tf
>>> model.fit(x, y, callbacks=[snip_tf.SNIPCallback(0.99)])   # doctest: +SKIP
"""

from snip_tf import criteria, selection
from snip_tf.callbacks import BackupAndRestore, MemorizationCallback, PruningSummaries, SNIPCallback
from snip_tf import sparse
from snip_tf.export import export, load_compact
from snip_tf.masking import PruningMask, prunable_weights
from snip_tf.pruning import (LayerCollapseWarning, RepruneWarning, ScoresError, SparsityReport,
                             UnrankedWeightsWarning,
                             apply_masks, is_pruned, remove_hooks,
                             masks_from_zeros, prune, snip, sparsity, sparsity_report)
from snip_tf.saving import load_model, load_weights, track
from snip_tf.scoring import connection_sensitivity
from snip_tf.wrappers import Masked, strip, wrap

__version__ = "0.1.0"

__all__ = [
    "BackupAndRestore", "SNIPCallback", "MemorizationCallback", "PruningSummaries", "Masked", "PruningMask", "LayerCollapseWarning", "SparsityReport",
    "RepruneWarning", "ScoresError", "UnrankedWeightsWarning",
    "apply_masks", "connection_sensitivity", "export", "load_compact", "load_model", "load_weights", "sparse",
    "is_pruned", "masks_from_zeros", "prunable_weights", "prune", "snip", "sparsity", "sparsity_report", "strip",
    "remove_hooks", "track", "wrap",
]
