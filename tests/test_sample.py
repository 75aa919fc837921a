"""dataset/sample.py: named items, their collation, and the clear error for mixed sizes."""
import numpy as np
import pytest
import torch

from dataset.sample import Sample, UnlabelledSample, collate, make_meta, meta_sizes
from utils.errors import ConfigError


def _item(h, w, name, label_hw=None):
    label_hw = label_hw or (h, w)
    return Sample(np.zeros((3, h, w), np.float32), np.zeros(label_hw, np.float32),
                  make_meta((2 * h, 2 * w), (h, w), label_size=label_hw), name)


def test_collate_keeps_names_and_stacks_meta():
    batch = collate([_item(4, 6, "a"), _item(4, 6, "b")])
    assert isinstance(batch, Sample) and list(batch.name) == ["a", "b"]
    assert batch.image.shape == (2, 3, 4, 6)
    assert meta_sizes(batch.meta, "orig_size") == [(8, 12), (8, 12)]
    assert meta_sizes(batch.meta, "input_size") == [(4, 6), (4, 6)]
    assert batch.meta["label_size"].dtype == torch.int64
    images, labels, meta, names = batch            # still positional
    assert labels.shape == (2, 4, 6)


def test_unlabelled_items_and_default_label_size():
    meta = make_meta((10, 20), (5, 7))
    assert meta["label_size"].tolist() == [5, 7]
    batch = collate([UnlabelledSample(np.zeros((3, 5, 7), np.float32), meta, "t")])
    assert isinstance(batch, UnlabelledSample) and list(batch.name) == ["t"]


def test_mixed_sizes_ask_for_batch_size_one():
    with pytest.raises(ConfigError, match=r"--batch-size 2: .*differ in size.*--batch-size 1"):
        collate([_item(4, 6, "a"), _item(6, 4, "b")])
    with pytest.raises(ConfigError, match="--batch-size 1"):      # same image, other label size
        collate([_item(4, 6, "a", (8, 8)), _item(4, 6, "b", (9, 9))])
