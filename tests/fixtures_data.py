"""Data fixtures shared by the dataset, script and end-to-end tests (imported by conftest.py)."""
import pytest

from dataset.synthetic import make_synthetic_cityscapes


@pytest.fixture
def tiny_cityscapes(tmp_path):
    """A tiny synthetic Cityscapes (4 train, 2 val, 2 test images of 64x128) in the real layout.

    Returns the data root (str) holding leftImg8bit/, gtFine/ and train.lst / val.lst / test.lst.
    """
    return make_synthetic_cityscapes(str(tmp_path / "cityscapes"), n_train=4, n_val=2, n_test=2,
                                     size=(64, 128), seed=0)
