"""Data fixtures shared by the dataset, script and end-to-end tests (imported by conftest.py)."""
import glob
import json
import os
import re

import numpy as np
import pytest
from PIL import Image

from dataset.synthetic import make_synthetic_cityscapes

OFFICIAL_CITIES = {"train": ("aachen", "bochum"), "val": ("frankfurt", "lindau"),
                   "test": ("berlin", "bielefeld")}


@pytest.fixture
def tiny_cityscapes(tmp_path):
    """A tiny synthetic Cityscapes (4 train, 2 val, 2 test images of 64x128) in the real layout.

    Returns the data root (str) holding leftImg8bit/, gtFine/ and train.lst / val.lst / test.lst.
    """
    return make_synthetic_cityscapes(str(tmp_path / "cityscapes"), n_train=4, n_val=2, n_test=2,
                                     size=(64, 128), seed=0)


def make_official_cityscapes(root, per_city=1, size=(64, 128)):
    """A tiny tree exactly as the official archives unpack: no list files, two cities per split,
    the other gtFine files beside ``*_labelIds.png`` (colour, instanceIds, polygons), void labelIds
    (0 unlabeled, 1 ego vehicle, 4 static, 5 dynamic) in every train/val label, and test labels that
    are all 0 as in gtFine_trainvaltest.zip. Returns root (str)."""
    n = 2 * per_city
    make_synthetic_cityscapes(root, n_train=n, n_val=n, n_test=n, size=size, seed=3,
                              cities=OFFICIAL_CITIES)
    for lst in glob.glob(os.path.join(root, "*.lst")):
        os.remove(lst)
    for split in ("train", "val"):
        for path in glob.glob(os.path.join(root, "gtFine", split, "*", "*_gtFine_labelIds.png")):
            label = np.asarray(Image.open(path)).copy()
            label[:2] = 0
            label[-3:, :6], label[-3:, 6:12], label[2:4, :8] = 4, 5, 1
            Image.fromarray(label, "L").save(path)
            stem = path[:-len("_labelIds.png")]
            Image.fromarray(np.zeros(label.shape + (3,), np.uint8)).save(stem + "_color.png")
            Image.fromarray(label.astype(np.uint16)).save(stem + "_instanceIds.png")
            with open(stem + "_polygons.json", "w") as handle:
                json.dump({"imgHeight": size[0], "imgWidth": size[1], "objects": []}, handle)
    for path in glob.glob(os.path.join(root, "leftImg8bit", "test", "*", "*_leftImg8bit.png")):
        city = os.path.basename(os.path.dirname(path))
        stem = os.path.basename(path)[:-len("_leftImg8bit.png")]
        folder = os.path.join(root, "gtFine", "test", city)
        os.makedirs(folder, exist_ok=True)
        Image.fromarray(np.zeros(size, np.uint8), "L").save(
            os.path.join(folder, f"{stem}_gtFine_labelIds.png"))
    return root


def write_imagenet_weights(model_name, path, classifier="fc"):
    """Random weights in an ImageNet classification layout: the backbone keys of ``model_name``
    without the model's backbone prefix, plus a 1000-class classifier (``fc`` for the CSAIL /
    torchvision ResNets, ``classifier`` for HRNet). Returns the number of backbone tensors."""
    import torch

    import network
    with torch.device("meta"):  # shapes only: no parameter initialisation
        state = network.get_segmentation_model(model_name, num_classes=19).state_dict()
    prefix = next(k[:-len("layer1.0.conv1.weight")] for k in state if k.endswith("layer1.0.conv1.weight"))
    gen = torch.Generator().manual_seed(0)
    weights = {}
    for key, value in state.items():
        first = key[len(prefix):].split(".")[0]
        if (not key.startswith(prefix) or key.endswith("num_batches_tracked")
                or (not prefix and not re.fullmatch(r"(conv|bn)\d|layer\d", first))):
            continue
        if key.endswith("running_var"):
            weights[key[len(prefix):]] = torch.rand(value.shape, generator=gen) + 0.5
        else:
            weights[key[len(prefix):]] = torch.randn(value.shape, generator=gen) * 0.05
    n_backbone = len(weights)
    weights[f"{classifier}.weight"] = torch.randn(1000, 2048, generator=gen) * 0.01
    weights[f"{classifier}.bias"] = torch.zeros(1000)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    torch.save(weights, path)
    return n_backbone
