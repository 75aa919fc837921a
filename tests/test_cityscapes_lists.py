"""dataset/cityscapes_lists.py: list files made from the official layout, and wrong-layout errors."""
import os
import shutil
import subprocess
import sys

import pytest

from dataset.cityscapes import CitySegmentationTrain
from dataset.cityscapes_lists import layout_hint, main, make_lists
from fixtures_data import make_official_cityscapes
from utils.errors import DatasetError, MissingFileError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def tree(tmp_path):
    return make_official_cityscapes(str(tmp_path / "cs"))


def _quiet(*args, **kw):
    with pytest.warns(UserWarning, match="the official split has"):
        return make_lists(*args, log=lambda msg: None, **kw)


def test_lines_in_the_original_format_sorted(tmp_path, tree):
    paths = _quiet(tree, str(tmp_path / "lists"))
    # written out by hand from the tree: two cities per split, one image each
    assert open(paths["train"]).read() == (
        "leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png\t"
        "gtFine/train/aachen/aachen_000000_000019_gtFine_labelIds.png\n"
        "leftImg8bit/train/bochum/bochum_000001_000019_leftImg8bit.png\t"
        "gtFine/train/bochum/bochum_000001_000019_gtFine_labelIds.png\n")
    assert open(paths["val"]).read().count("\n") == 2
    assert open(paths["test"]).read() == ("leftImg8bit/test/berlin/berlin_000000_000019_leftImg8bit.png\n"
                                          "leftImg8bit/test/bielefeld/bielefeld_000001_000019_leftImg8bit.png\n")
    ds = CitySegmentationTrain(tree, paths["val"], crop_size=(64, 128), scale=False, mirror=False)
    assert len(ds) == 2 and ds[0].name == "frankfurt_000000_000019_gtFine_labelIds"


def test_existing_lists_are_kept_unless_forced(tmp_path, tree):
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "train.lst").write_text("mine\n")
    _quiet(tree, str(lists), splits=("train", "val"))
    assert (lists / "train.lst").read_text() == "mine\n" and (lists / "val.lst").is_file()
    assert not (lists / "test.lst").exists()
    _quiet(tree, str(lists), splits=("train",), force=True)
    assert (lists / "train.lst").read_text().startswith("leftImg8bit/train/aachen/")


def test_data_dir_one_level_too_high_or_a_split_folder(tmp_path, tree):
    parent = os.path.dirname(tree)
    for wrong in (parent, os.path.join(tree, "leftImg8bit")):
        with pytest.raises(MissingFileError, match=f"pass (--data-dir |its parent )'{tree}'"):
            make_lists(wrong, str(tmp_path / "l"))
    assert layout_hint(tree) is None
    (tmp_path / "empty").mkdir()
    assert "has no leftImg8bit/" in layout_hint(str(tmp_path / "empty"))


def test_missing_labels_trainids_only_and_unlabelled_images(tmp_path, tree):
    gt_val = os.path.join(tree, "gtFine", "val")
    for city in os.listdir(gt_val):
        for name in os.listdir(os.path.join(gt_val, city)):
            path = os.path.join(gt_val, city, name)
            if name.endswith("_labelIds.png"):
                os.rename(path, path.replace("_labelIds.png", "_labelTrainIds.png"))
    with pytest.raises(DatasetError, match=r"_gtFine_labelTrainIds.png but no \*_gtFine_labelIds.png"):
        make_lists(tree, str(tmp_path / "l"), splits=("val",))
    shutil.rmtree(gt_val)
    with pytest.raises(MissingFileError, match="expected the 'val' split of gtFine_trainvaltest.zip"):
        make_lists(tree, str(tmp_path / "l"), splits=("val",))
    os.remove(os.path.join(tree, "gtFine", "train", "aachen", "aachen_000000_000019_gtFine_labelIds.png"))
    with pytest.raises(DatasetError, match="1 train image.* have no _gtFine_labelIds.png.*aachen_000000"):
        make_lists(tree, str(tmp_path / "l"), splits=("train",))
    shutil.rmtree(os.path.join(tree, "leftImg8bit", "test"))
    with pytest.raises(MissingFileError, match="no \\*_leftImg8bit.png files in .*test"):
        make_lists(tree, str(tmp_path / "l"), splits=("test",))


def test_dataset_on_a_wrong_root_names_the_expected_folder(tmp_path, tree):
    lists = _quiet(tree, str(tmp_path / "lists"), splits=("val",))
    with pytest.raises(MissingFileError, match=f"(?s)val.lst:1: .*pass --data-dir '{tree}'"):
        CitySegmentationTrain(os.path.dirname(tree), lists["val"])


def test_command_line(tmp_path, tree, capsys):
    assert main(["make-lists", "--data-dir", tree, "--list-dir", str(tmp_path / "l")]) == 0
    err = capsys.readouterr().err
    assert "WARNING: Cityscapes train: 2 images" in err and "2975" in err
    assert main(["make-lists", "--data-dir", os.path.dirname(tree), "--list-dir", str(tmp_path / "m")]) == 2
    assert "ERROR: --data-dir" in capsys.readouterr().err
    # the documented module entry point
    res = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m", "dataset.cityscapes",
                          "make-lists", "--data-dir", tree, "--list-dir", str(tmp_path / "n"),
                          "--splits", "val"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "n" / "val.lst").is_file() and not (tmp_path / "n" / "train.lst").exists()
