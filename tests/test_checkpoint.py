"""utils/checkpoint.py: ImageNet loading rules, strict loading with a summary error, atomic saves.

Stand-in models mimic the key layouts (a deep 3x3 stem like the CSAIL ResNet, a 7x7 stem like
torchvision); the oracle for every load is the tensor we put in the file.
"""
import errno
import os
import pickle

import pytest
import torch
from torch import nn

from utils import checkpoint
from utils.checkpoint import (CheckpointMismatchError, atomic_save, load_checkpoint, load_pretrained,
                              save_snapshot, snapshot_path)


class Net(nn.Module):
    """Backbone-like top-level keys (conv1, bn1, layer1) plus a head, like OCNet's state_dict."""

    def __init__(self, stem=3, classes=4):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, stem, bias=False)
        self.bn1 = nn.BatchNorm2d(8, track_running_stats=True)
        self.layer1 = nn.Sequential(nn.Conv2d(8, 8, 1, bias=False))
        self.head = nn.Conv2d(8, classes, 1)

    def state_dict(self, *a, **kw):  # like InPlace-ABN: no num_batches_tracked buffer
        sd = super().state_dict(*a, **kw)
        return type(sd)((k, v) for k, v in sd.items() if not k.endswith("num_batches_tracked"))

    def load_state_dict(self, sd, strict=True):
        sd = dict(sd)
        sd.setdefault("bn1.num_batches_tracked", torch.tensor(0))
        return super().load_state_dict(sd, strict=strict)


def imagenet_file(tmp_path, stem=3, extra=None):
    """A classification checkpoint: backbone keys + fc.* + num_batches_tracked (torchvision style)."""
    sd = {k: torch.randn_like(v.float()) for k, v in Net(stem).state_dict().items() if not k.startswith("head")}
    sd["bn1.num_batches_tracked"] = torch.tensor(5)
    sd["fc.weight"], sd["fc.bias"] = torch.randn(1000, 8), torch.randn(1000)
    sd.update(extra or {})
    path = tmp_path / "imagenet.pth"
    torch.save(sd, path)
    return path, sd


def test_load_pretrained_copies_backbone_and_keeps_head(tmp_path):
    path, sd = imagenet_file(tmp_path)
    model = Net()
    head_before = model.head.weight.clone()
    loaded = load_pretrained(model, str(path))
    assert set(loaded) == {"conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
                           "layer1.0.weight"}
    assert torch.equal(model.conv1.weight, sd["conv1.weight"])
    assert torch.equal(model.bn1.running_var, sd["bn1.running_var"])
    assert torch.equal(model.head.weight, head_before)


def test_load_pretrained_skips_classifier_prefixes_only(tmp_path):
    path, _ = imagenet_file(tmp_path, extra={"last_linear.weight": torch.zeros(2), "classifier.x": torch.zeros(1),
                                             "aux.weight": torch.zeros(3)})
    with pytest.raises(CheckpointMismatchError, match="1 unexpected keys.*aux.weight"):
        load_pretrained(Net(), str(path))


def test_torchvision_file_into_deep_stem_is_refused_with_a_fix(tmp_path):
    path, _ = imagenet_file(tmp_path, stem=7)
    with pytest.raises(CheckpointMismatchError, match="--stem standard") as err:
        load_pretrained(Net(stem=3), str(path))
    assert "resnet101-imagenet.pth" in str(err.value)


def test_torchvision_file_loads_into_standard_stem(tmp_path):
    path, sd = imagenet_file(tmp_path, stem=7)
    model = Net(stem=7)
    load_pretrained(model, str(path))
    assert torch.equal(model.conv1.weight, sd["conv1.weight"])


def test_load_pretrained_finds_a_backbone_prefix(tmp_path):
    path, sd = imagenet_file(tmp_path)
    wrapper = nn.Module()
    wrapper.backbone = Net()
    wrapper.state_dict = lambda: {"backbone." + k: v for k, v in wrapper.backbone.state_dict().items()}
    wrapper.load_state_dict = lambda d, strict=True: wrapper.backbone.load_state_dict(
        {k[len("backbone."):]: v for k, v in d.items()}, strict)
    load_pretrained(wrapper, str(path))
    assert torch.equal(wrapper.backbone.layer1[0].weight, sd["layer1.0.weight"])


def test_load_checkpoint_strips_module_prefix(tmp_path):
    src = Net()
    path = tmp_path / "m.pth"
    torch.save({"module." + k: v for k, v in src.state_dict().items()}, path)
    dst = Net()
    load_checkpoint(nn.DataParallel(dst), str(path))
    for key, value in src.state_dict().items():
        assert torch.equal(dst.state_dict()[key], value)


def test_other_model_gives_one_summary_error(tmp_path):
    path = tmp_path / "other.pth"
    sd = {f"block{i}.weight": torch.zeros(1) for i in range(40)}
    sd["head.weight"] = torch.zeros(19, 8, 1, 1)  # shape mismatch with Net(classes=4)
    torch.save(sd, path)
    with pytest.raises(CheckpointMismatchError) as err:
        load_checkpoint(Net(), str(path))
    msg = str(err.value)
    assert "40 unexpected keys" in msg and "(+35 more)" in msg
    assert "7 missing keys" in msg  # all 8 model keys except head.weight
    assert "1 shape mismatches: head.weight file (19, 8, 1, 1) vs model (4, 8, 1, 1)" in msg
    assert msg.count("block") <= 6  # a few examples, not the whole list


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_checkpoint(Net(), str(tmp_path / "nope.pth"))


def test_pickled_objects_are_refused_without_trust(tmp_path):
    path = tmp_path / "obj.pth"
    torch.save({"model": Net()}, path)  # a whole pickled module, not a state_dict
    with pytest.raises(pickle.UnpicklingError, match="--trust-checkpoint"):
        checkpoint.read_file(str(path))
    assert isinstance(checkpoint.read_file(str(path), trust=True)["model"], Net)


def test_truncated_file_is_named(tmp_path):
    path = tmp_path / "cut.pth"
    torch.save(Net().state_dict(), path)
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(RuntimeError, match="cut.pth"):
        load_checkpoint(Net(), str(path))


def test_snapshot_is_plain_state_dict_with_original_name(tmp_path):
    model = Net()
    path = save_snapshot(nn.DataParallel(model), str(tmp_path), 5000)
    assert path == snapshot_path(str(tmp_path), 5000) and path.endswith("CS_scenes_5000.pth")
    loaded = torch.load(path, weights_only=True)
    assert set(loaded) == set(model.state_dict())  # no module. prefix


def test_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = str(tmp_path / "CS_scenes_0.pth")
    atomic_save({"w": torch.ones(3)}, path)
    real_save = torch.save

    def full_disk(obj, handle, *a, **kw):
        handle.write(b"partial bytes")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match="previous file kept"):
        atomic_save({"w": torch.zeros(3)}, path)
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.ones(3))
    assert os.listdir(tmp_path) == ["CS_scenes_0.pth"]  # no temp file left behind


def test_real_models_csail_and_torchvision_layouts(tmp_path):
    """The real OCNet backbone: a CSAIL-layout file (deep stem + fc) loads; a torchvision ResNet-101
    file is refused by the deep stem and loads into --stem standard."""
    import torchvision

    import network
    donor = network.get_segmentation_model("resnet101_baseline", num_classes=19)
    csail = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in donor.state_dict().items()
             if k.split(".")[0] in ("conv1", "bn1", "conv2", "bn2", "conv3", "bn3", "layer1", "layer2", "layer3",
                                   "layer4")}
    assert len(csail) == 530  # the original's backbone has 530 state_dict entries
    csail["fc.weight"], csail["fc.bias"] = torch.zeros(1000, 2048), torch.zeros(1000)
    torch.save(csail, tmp_path / "resnet101-imagenet.pth")
    model = network.get_segmentation_model("resnet101_asp_oc_dsn", num_classes=19)
    assert len(load_pretrained(model, str(tmp_path / "resnet101-imagenet.pth"))) == 530
    assert torch.equal(model.state_dict()["layer3.22.bn2.running_var"], csail["layer3.22.bn2.running_var"])

    tv = torchvision.models.resnet101(weights=None).state_dict()
    torch.save(tv, tmp_path / "tv.pth")
    with pytest.raises(CheckpointMismatchError, match="7x7"):
        load_pretrained(model, str(tmp_path / "tv.pth"))
    standard = network.get_segmentation_model("resnet101_asp_oc_dsn", num_classes=19, stem="standard")
    loaded = load_pretrained(standard, str(tmp_path / "tv.pth"))
    assert "fc.weight" not in loaded and not any(k.endswith("num_batches_tracked") for k in loaded)
    assert torch.equal(standard.state_dict()["conv1.weight"], tv["conv1.weight"])


def test_hrnet_imagenet_file_drops_classification_neck(tmp_path):
    # HRNet-Image-Classification files carry incre_modules / downsamp_modules / final_layer /
    # classifier next to the backbone; only the backbone keys (no `backbone_net.` prefix) load.
    from network import get_segmentation_model
    model = get_segmentation_model("hrnetv2_w18s_ocr", num_classes=3)
    backbone = {k[len("backbone_net."):]: torch.randn_like(v, dtype=torch.float32)
                if v.is_floating_point() else v
                for k, v in model.state_dict().items() if k.startswith("backbone_net.")}
    extra = {"incre_modules.0.0.conv1.weight": torch.zeros(32, 18, 1, 1),
             "downsamp_modules.0.0.weight": torch.zeros(64, 32, 3, 3),
             "final_layer.0.weight": torch.zeros(2048, 1024, 1, 1),
             "classifier.weight": torch.zeros(1000, 2048)}
    path = tmp_path / "hrnetv2_w18_small.pth"
    torch.save({**backbone, **extra}, path)
    loaded = load_pretrained(model, str(path))
    assert len(loaded) == len([k for k in backbone if not k.endswith("num_batches_tracked")])
    sd = model.state_dict()
    for key, value in backbone.items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(sd["backbone_net." + key], value), key
