"""dataset/cityscapes.py + dataset/__init__.py: list parsing, outputs, pipeline order, bad input."""
import math
import os
import random

import numpy as np
import pytest
from PIL import Image

from dataset import DATASETS, get_segmentation_dataset
from dataset.cityscapes import CitySegmentationTest, CitySegmentationTrain
from dataset.sample import Sample, UnlabelledSample
from utils.errors import ConfigError, DatasetError, MissingFileError, UnknownNameError
from test_labels import ORIGINAL_ID_TO_TRAINID  # the original's hand-written table

MEAN = np.array([102.9801, 115.9465, 122.7717])


def _train(root, **kw):
    return CitySegmentationTrain(root, os.path.join(root, "train.lst"), **kw)


def _raw(root, index=0):
    with open(os.path.join(root, "train.lst")) as f:
        img, lab = f.readlines()[index].strip().split("\t")
    return (np.asarray(Image.open(os.path.join(root, img))).astype(np.float64),
            np.asarray(Image.open(os.path.join(root, lab))))


def test_registry():
    assert set(DATASETS) >= {"cityscapes_train", "cityscapes_test"}
    with pytest.raises(UnknownNameError, match="cityscape'.*valid names: ade20k_train, ade20k_val, "
                       "cityscapes_ocr_test, cityscapes_ocr_train, .*voc_val$"):
        get_segmentation_dataset("cityscape")


def test_unknown_constructor_argument_is_a_config_error(tiny_cityscapes):
    with pytest.raises(ConfigError, match="does not take max_iters.*evaluation set"):
        get_segmentation_dataset("cityscapes_ocr_val", root=tiny_cityscapes, max_iters=4)


def test_no_augmentation_is_exactly_normalise_and_map(tiny_cityscapes):
    # Oracle: the original's formula written out (RGB minus Caffe BGR means, dict lookup).
    ds = get_segmentation_dataset("cityscapes_train", root=tiny_cityscapes,
                                  list_path=os.path.join(tiny_cityscapes, "train.lst"),
                                  crop_size=(64, 128), scale=False, mirror=False)
    sample = ds[0]
    image, label, meta, name = sample
    assert isinstance(sample, Sample) and sample.name == name
    img, lab = _raw(tiny_cityscapes)
    assert image.dtype == np.float32 and image.shape == (3, 64, 128)
    assert label.dtype == np.float32 and label.shape == (64, 128)
    np.testing.assert_allclose(image, (img - MEAN).transpose(2, 0, 1), rtol=1e-6, atol=1e-4)
    expected = np.vectorize(lambda v: ORIGINAL_ID_TO_TRAINID.get(v, 255))(lab)
    np.testing.assert_array_equal(label, expected)
    for key in ("orig_size", "input_size", "label_size"):
        np.testing.assert_array_equal(meta[key], [64, 128])
    assert name == "aachen_000000_000019_gtFine_labelIds"


def test_padding_and_crop_size(tiny_cityscapes):
    image, label, meta, _ = _train(tiny_cityscapes, crop_size=(80, 140), scale=False, mirror=False)[1]
    assert image.shape == (3, 80, 140) and label.shape == (80, 140)
    # the image content sits top-left; the rest is padding
    assert meta["input_size"].tolist() == [64, 128] and meta["orig_size"].tolist() == [64, 128]
    _, _, meta, _ = _train(tiny_cityscapes, crop_size=(32, 48), scale=False, mirror=False)[1]
    assert meta["input_size"].tolist() == [32, 48] and meta["orig_size"].tolist() == [64, 128]
    assert (label[64:] == 255).all() and (label[:, 128:] == 255).all()
    assert (image[:, 64:] == 0).all() and (image[:, :, 128:] == 0).all()


def test_max_iters_repeats_the_list(tiny_cityscapes):
    assert len(_train(tiny_cityscapes)) == 4
    assert len(_train(tiny_cityscapes, max_iters=10)) == 4 * math.ceil(10 / 4)


def test_augmented_samples_are_reproducible_with_seeded_rngs(tiny_cityscapes):
    ds = _train(tiny_cityscapes, crop_size=(48, 48))
    outs = []
    for _ in range(2):
        random.seed(7)
        np.random.seed(7)
        outs.append([ds[i] for i in range(4)])
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    vals = np.unique(np.concatenate([o[1].ravel() for o in outs[0]]))
    assert set(vals.tolist()) <= set(range(19)) | {255}


def test_test_dataset(tiny_cityscapes):
    ds = get_segmentation_dataset("cityscapes_test", root=tiny_cityscapes,
                                  list_path=os.path.join(tiny_cityscapes, "test.lst"),
                                  crop_size=(64, 128))
    image, meta, name = ds[0]
    assert isinstance(ds[0], UnlabelledSample)
    assert image.shape == (3, 64, 128) and image.dtype == np.float32
    np.testing.assert_array_equal(meta["orig_size"], [64, 128])
    np.testing.assert_array_equal(meta["input_size"], [64, 128])
    assert name == "berlin_000000_000019_leftImg8bit"
    padded = CitySegmentationTest(tiny_cityscapes, os.path.join(tiny_cityscapes, "test.lst"),
                                  crop_size=(70, 130))[0][0]
    assert padded.shape == (3, 70, 130) and (padded[:, 64:] == 0).all()


def test_missing_data_dir_and_list(tmp_path, tiny_cityscapes):
    with pytest.raises(FileNotFoundError, match="--data-dir"):
        _train(str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="--data-list"):
        CitySegmentationTrain(tiny_cityscapes, str(tmp_path / "none.lst"))


def test_missing_list_entries_reported_at_construction(tmp_path, tiny_cityscapes):
    lst = tmp_path / "bad.lst"
    with open(os.path.join(tiny_cityscapes, "train.lst")) as f:
        lines = f.read().splitlines()
    lines += [f"leftImg8bit/train/x/x_{i}_leftImg8bit.png\tgtFine/train/x/x_{i}.png" for i in range(4)]
    lst.write_text("\n".join(lines) + "\n")
    # every missing file is counted; the first ones are shown with their list line
    with pytest.raises(MissingFileError, match=r"(?s)8 file\(s\).*bad.lst:5: \S*x_0_leftImg8bit.png"
                       r".*bad.lst:5: \S*x_0.png.*and 3 more"):
        CitySegmentationTrain(tiny_cityscapes, str(lst))
    lst.write_text(lines[0].split("\t")[0] + "\n")
    with pytest.raises(DatasetError, match=r"bad.lst:1"):
        CitySegmentationTrain(tiny_cityscapes, str(lst))


def _with_label(root, tmp_path, label):
    with open(os.path.join(root, "train.lst")) as f:
        img_rel = f.readline().split("\t")[0]
    Image.fromarray(label).save(tmp_path / "lab.png")
    lst = tmp_path / "one.lst"
    lst.write_text(f"{img_rel}\t{tmp_path / 'lab.png'}\n")
    return CitySegmentationTrain(root, str(lst), scale=False, mirror=False, crop_size=(64, 128))


def test_label_size_mismatch_and_bad_values(tmp_path, tiny_cityscapes):
    ds = _with_label(tiny_cityscapes, tmp_path, np.full((32, 128), 7, np.uint8))
    with pytest.raises(ValueError, match=r"lab.png is 32x128 but image .*is 64x128"):
        ds[0]
    ds = _with_label(tiny_cityscapes, tmp_path, np.full((64, 128), 40, np.uint8))
    with pytest.raises(ValueError, match=r"lab.png: values 40 are not Cityscapes labelIds"):
        ds[0]


def test_truncated_image(tmp_path, tiny_cityscapes):
    with open(os.path.join(tiny_cityscapes, "train.lst")) as f:
        img_rel = f.readline().split("\t")[0]
    path = os.path.join(tiny_cityscapes, img_rel)
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 3])
    with pytest.raises(OSError, match="aachen_000000_000019_leftImg8bit.png"):
        _train(tiny_cityscapes)[0]


def test_unknown_network_normalisation(tiny_cityscapes):
    with pytest.raises(ValueError, match="resnet101"):
        _train(tiny_cityscapes, network="mobilenetv2")
