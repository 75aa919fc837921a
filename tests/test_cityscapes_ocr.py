"""dataset/cityscapes_ocr.py: Cityscapes with the OCRNet recipe (val and test items, defaults)."""
import os

import numpy as np
import pytest
from PIL import Image

from dataset import dataset_defaults, get_segmentation_dataset
from dataset.cityscapes_ocr import CityscapesOCRVal
from dataset.sample import UnlabelledSample
from test_labels import ORIGINAL_ID_TO_TRAINID

# ImageNet statistics, RGB (the recipe's normalisation), written out as an independent oracle
MEAN, STD = np.array([123.675, 116.28, 103.53]), np.array([58.395, 57.12, 57.375])


def _rgb(root, rel):
    return np.asarray(Image.open(os.path.join(root, rel)).convert("RGB")).astype(np.float64)


def test_val_item_at_scale_one(tiny_cityscapes):
    # crop (32, 64) scales the base (2048, 1024) to (128, 64): the 64x128 image fits as it is
    ds = get_segmentation_dataset("cityscapes_ocr_val", root=tiny_cityscapes,
                                  list_path=os.path.join(tiny_cityscapes, "val.lst"), crop_size=(32, 64))
    image, label, meta, name = ds[0]
    img_rel, lab_rel = open(os.path.join(tiny_cityscapes, "val.lst")).readline().strip().split("\t")
    np.testing.assert_allclose(image, ((_rgb(tiny_cityscapes, img_rel) - MEAN) / STD).transpose(2, 0, 1),
                               atol=1e-5)
    raw = np.asarray(Image.open(os.path.join(tiny_cityscapes, lab_rel)))
    np.testing.assert_array_equal(label, np.vectorize(lambda v: ORIGINAL_ID_TO_TRAINID.get(v, 255))(raw))
    assert meta["input_size"].tolist() == meta["label_size"].tolist() == [64, 128]


def test_test_item_resized_into_the_base_scale(tiny_cityscapes):
    ds = get_segmentation_dataset("cityscapes_ocr_test", root=tiny_cityscapes,
                                  list_path=os.path.join(tiny_cityscapes, "test.lst"), crop_size=(64, 128))
    item = ds[0]
    assert isinstance(item, UnlabelledSample) and item.name.endswith("_leftImg8bit")
    # base (256, 128): the 64x128 image is doubled; the prediction goes back to 64x128
    assert item.image.shape == (3, 128, 256) and item.meta["orig_size"].tolist() == [64, 128]
    assert item.meta["input_size"].tolist() == [128, 256]


def test_defaults_and_signatures():
    assert dataset_defaults("cityscapes_ocr_test", "submit") == {
        "data_list": "./dataset/list/cityscapes/test.lst", "input_size": (512, 1024), "num_classes": 19,
        "ignore_label": 255}
    assert dataset_defaults("cityscapes_ocr_val", "eval")["data_list"].endswith("val.lst")
    with pytest.raises(TypeError):                     # val sets take no augmentation arguments
        CityscapesOCRVal("x", scale=True)
