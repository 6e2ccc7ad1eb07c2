import glob

import numpy as np
import pytest
import tensorflow as tf

import snip_tf
from conftest import classification_data, mlp
from snip_tf import plot


def _tags(log_dir):
    tags = set()
    for path in glob.glob(f"{log_dir}/pruning/events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                tags.add(value.tag)
    return tags


def test_pruning_summaries_write_sparsity_scores_and_mask_image(tmp_path):
    x, y = classification_data(n=64)
    model = mlp()
    snip = snip_tf.SNIPCallback(0.9)
    summaries = snip_tf.PruningSummaries(str(tmp_path), scores_from=snip, image_shape=(6, 5))
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[snip, summaries])
    tags = _tags(tmp_path)
    kernel = snip_tf.prunable_weights(model)[0].path
    assert {"sparsity/global", f"sparsity/{kernel}", f"weights/{kernel}", f"scores/{kernel}",
            f"mask/{kernel}"} <= tags
    assert set(snip.scores) == set(snip.masks)


def test_plot_helpers(tmp_path):
    x, y = classification_data()
    model = mlp()
    masks = snip_tf.snip(model, (x, y), 0.9)
    fig = plot.sparsity_bars(snip_tf.sparsity_report(model))
    fig.savefig(tmp_path / "bars.png")
    assert (tmp_path / "bars.png").stat().st_size > 0
    image = plot.mask_image(next(iter(masks.values())), (6, 5))
    assert image.shape == (6, 5) and 0 <= image.min() <= image.max() <= 1
    with pytest.raises(ValueError, match="mask_image expects"):
        plot.mask_image(np.ones((7, 3)), (6, 5))
