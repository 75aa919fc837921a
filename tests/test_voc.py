"""PASCAL VOC loader: palette PNGs read as indices, 255 ignore, trainaug list tools."""
import os
import warnings

import numpy as np
import pytest
from PIL import Image

from dataset import get_segmentation_dataset
from dataset.synthetic_ocr import make_synthetic_voc, voc_palette
from dataset.voc import main as voc_main
from dataset.voc import make_trainaug


def _tree(root, ids, labels, list_name="val"):
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        os.makedirs(root / sub, exist_ok=True)
    for i, lab in zip(ids, labels):
        Image.fromarray(np.full(lab.shape + (3,), 90, np.uint8)).save(root / "JPEGImages" / f"{i}.jpg")
        png = Image.fromarray(lab.astype(np.uint8), mode="P")
        png.putpalette(voc_palette())
        png.save(root / "SegmentationClass" / f"{i}.png")
    (root / "ImageSets" / "Segmentation" / f"{list_name}.txt").write_text("\n".join(ids) + "\n")


def _ds(name, root, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return get_segmentation_dataset(name, root=str(root), **kw)


def test_palette_png_read_as_indices(tmp_path):
    lab = np.zeros((6, 7), np.uint8)
    lab[1:3, 1:3], lab[4:, 4:], lab[0, :] = 15, 20, 255
    _tree(tmp_path, ["2007_000001"], [lab])
    # the stored PNG shows colours (person = (192, 128, 128)) but holds indices
    rgb = np.asarray(Image.open(tmp_path / "SegmentationClass" / "2007_000001.png").convert("RGB"))
    assert rgb[1, 1].tolist() == [192, 128, 128]
    image, label, size, name = _ds("voc_val", tmp_path)[0]
    assert label.tolist() == lab.astype(np.float32).tolist()        # indices, 255 kept as ignore
    assert name == "2007_000001" and size["label_size"].tolist() == [6, 7]


def test_out_of_range_index_and_size_warning(tmp_path):
    _tree(tmp_path, ["a"], [np.full((4, 4), 21, np.uint8)])
    ds = _ds("voc_val", tmp_path)
    with pytest.raises(ValueError, match=r"a.png: values \[21\]"):
        ds[0]
    with pytest.warns(UserWarning, match="1449"):
        get_segmentation_dataset("voc_val", root=str(tmp_path))


def test_missing_trainaug_list_explains_how_to_make_it(tmp_path):
    _tree(tmp_path, ["a"], [np.zeros((4, 4), np.uint8)], list_name="val")
    with pytest.raises(FileNotFoundError, match="make-trainaug"):
        _ds("voc_train", tmp_path)
    with pytest.raises(FileNotFoundError, match="data dir"):
        _ds("voc_train", tmp_path / "nope")


def test_train_items_from_synthetic_tree(tmp_path):
    root = make_synthetic_voc(str(tmp_path / "VOC2012"), n_train=3, n_val=2)
    ds = _ds("voc_train", root, max_iters=4, crop_size=(64, 64))
    np.random.seed(1)
    image, label, size, name = ds[0]
    assert image.shape == (3, 64, 64) and label.shape == (64, 64)
    assert set(np.unique(label)) <= set(range(6)) | {255} and 255 in _ds("voc_val", root)[0][1]


def test_segmentation_class_aug_is_preferred(tmp_path):
    _tree(tmp_path, ["a"], [np.zeros((4, 4), np.uint8)])
    os.makedirs(tmp_path / "SegmentationClassAug")
    Image.fromarray(np.full((4, 4), 3, np.uint8), mode="L").save(tmp_path / "SegmentationClassAug" / "a.png")
    assert (_ds("voc_val", tmp_path)[0][1] == 3).all()


def test_make_trainaug_from_sbd(tmp_path):
    from scipy.io import savemat
    voc, sbd = tmp_path / "VOC2012", tmp_path / "sbd"
    _tree(voc, ["v1", "v2", "v3"], [np.full((4, 4), k, np.uint8) for k in (1, 2, 3)], list_name="val")
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text("v3\n")
    (voc / "ImageSets" / "Segmentation" / "train.txt").write_text("v1\nv2\n")
    os.makedirs(sbd / "cls")
    (sbd / "train.txt").write_text("s1\nv2\n")
    (sbd / "val.txt").write_text("v3\n")                       # in VOC val: excluded
    mask = np.full((4, 4), 7, np.uint8)
    savemat(sbd / "cls" / "s1.mat", {"GTcls": {"Segmentation": mask}})
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(voc / "JPEGImages" / "s1.jpg")
    assert voc_main(["make-trainaug", "--voc-root", str(voc), "--sbd-root", str(sbd)]) == 1
    assert (voc / "ImageSets" / "Segmentation" / "trainaug.txt").read_text().split() == ["s1", "v1", "v2"]
    assert make_trainaug(str(voc), str(sbd)) == ["s1", "v1", "v2"]
    ds = _ds("voc_train", voc)                                     # uses SegmentationClassAug
    labels = {os.path.basename(f[1]): np.asarray(Image.open(f[1])) for f in ds.files}
    assert (labels["s1.png"] == 7).all() and (labels["v2.png"] == 2).all()
