"""ADE20K loader on small trees in the official ADEChallengeData2016 layout."""
import os
import warnings

import numpy as np
import pytest
from PIL import Image

from dataset import get_segmentation_dataset
from dataset.ade20k import reduce_zero_label
from dataset.synthetic_ocr import make_synthetic_ade20k
from dataset.transforms import ImageReadError


def _write(root, split, name, label, image=None):
    folder = {"train": "training", "val": "validation"}[split]
    os.makedirs(root / "images" / folder, exist_ok=True)
    os.makedirs(root / "annotations" / folder, exist_ok=True)
    h, w = label.shape
    image = np.full((h, w, 3), 100, np.uint8) if image is None else image
    Image.fromarray(image).save(root / "images" / folder / f"{name}.jpg")
    Image.fromarray(label.astype(np.uint8), mode="L").save(root / "annotations" / folder / f"{name}.png")


def _ds(name, root, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")           # tiny trees: the split-size warning is expected
        return get_segmentation_dataset(name, root=str(root), **kw)


def test_reduce_zero_label_hand_values():
    raw = np.array([[0, 1, 2], [150, 0, 255]])
    assert reduce_zero_label(raw).tolist() == [[255, 0, 1], [149, 255, 255]]


def test_val_item_keeps_original_label_and_resizes_image(tmp_path):
    label = np.zeros((20, 30), np.uint8)
    label[5:10, 5:10], label[12:, 20:] = 1, 150
    _write(tmp_path, "val", "ADE_val_00000001", label)
    ds = _ds("ade20k_val", tmp_path, crop_size=(512, 512))
    image, lab, size, name = ds[0]
    assert name == "ADE_val_00000001" and lab.dtype == np.float32
    assert lab.tolist() == reduce_zero_label(label).astype(np.float32).tolist()
    # keep-ratio into (2048, 512): f = min(2048/30, 512/20) = 25.6 -> 512 x 768
    assert image.shape == (3, 512, 768) and size["input_size"].tolist() == [512, 768]
    assert size["label_size"].tolist() == [20, 30] and size["orig_size"].tolist() == [20, 30]
    # the recipe scales with the crop: (64, 64) -> base (256, 64) -> 64 x 96
    assert _ds("ade20k_val", tmp_path, crop_size=(64, 64))[0][0].shape == (3, 64, 96)


def test_train_items_from_synthetic_tree(tmp_path):
    root = make_synthetic_ade20k(str(tmp_path / "ADEChallengeData2016"), n_train=3, n_val=1)
    ds = _ds("ade20k_train", root, max_iters=7, crop_size=(48, 64), scale=True, mirror=True)
    assert len(ds) == 9                                # the list repeated to >= max_iters
    np.random.seed(0)
    for i in range(3):
        image, label, size, name = ds[i]
        assert image.shape == (3, 48, 64) and label.shape == (48, 64) and size["input_size"].tolist() == [48, 64]
        assert set(np.unique(label)) <= set(range(6)) | {255}
        assert name.startswith("ADE_train_")


def test_list_files_ids_and_pairs(tmp_path):
    for i in range(2):
        _write(tmp_path, "train", f"ADE_train_{i:08d}", np.ones((8, 8), np.uint8))
    (tmp_path / "ids.txt").write_text("ADE_train_00000001\n")
    assert len(_ds("ade20k_train", tmp_path, list_path=str(tmp_path / "ids.txt"))) == 1
    (tmp_path / "pairs.lst").write_text("images/training/ADE_train_00000000.jpg\t"
                                        "annotations/training/ADE_train_00000000.png\n")
    assert len(_ds("ade20k_train", tmp_path, list_path=str(tmp_path / "pairs.lst"))) == 1
    with pytest.warns(UserWarning, match="20210"):
        get_segmentation_dataset("ade20k_train", root=str(tmp_path))


def test_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="data dir"):
        _ds("ade20k_train", tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="ADEChallengeData2016"):
        _ds("ade20k_train", tmp_path)
    _write(tmp_path, "train", "a", np.ones((8, 8), np.uint8))
    os.remove(tmp_path / "annotations" / "training" / "a.png")
    with pytest.raises(FileNotFoundError, match="1 file"):
        _ds("ade20k_train", tmp_path)
    with pytest.raises(FileNotFoundError, match="list file"):
        _ds("ade20k_train", tmp_path, list_path=str(tmp_path / "missing.txt"))
    # unreadable image, size mismatch, out-of-range label: raised when the item is read
    _write(tmp_path, "val", "bad_jpg", np.ones((8, 8), np.uint8))
    (tmp_path / "images" / "validation" / "bad_jpg.jpg").write_bytes(b"not a jpeg")
    _write(tmp_path, "val", "mismatch", np.ones((8, 8), np.uint8), image=np.zeros((9, 8, 3), np.uint8))
    _write(tmp_path, "val", "range", np.full((8, 8), 151, np.uint8))
    ds = _ds("ade20k_val", tmp_path)
    items = dict(zip((os.path.basename(f[0])[:-4] for f in ds.files), range(len(ds))))
    with pytest.raises(ImageReadError, match="bad_jpg"):
        ds[items["bad_jpg"]]
    with pytest.raises(ValueError, match="8x8 but image .* is 9x8"):
        ds[items["mismatch"]]
    with pytest.raises(ValueError, match=r"range.png: values \[151\]"):
        ds[items["range"]]
