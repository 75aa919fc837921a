"""utils/visualize.py: palettes, paletted PNG output, trainId <-> labelId round trip."""
import numpy as np
import pytest
from PIL import Image

from utils.visualize import (
    get_palette,
    get_voc_palette,
    labelid_to_trainid,
    save_palette_png,
    trainid_to_labelid,
)


def test_cityscapes_palette():
    p = get_palette()
    assert len(p) == 768
    assert p[0:3] == [128, 64, 128] and p[54:57] == [119, 11, 32]       # road, bicycle
    assert p[57:60] == [105, 105, 105] and p[60:] == [0] * (768 - 60)   # index 19, then black
    assert len(get_palette(20)) == 60


def test_voc_palette_bit_interleaving():
    # index 1 -> (128, 0, 0); 2 -> (0, 128, 0); 3 -> (128, 128, 0); 8 -> (64, 0, 0);
    # 255 = 0b11111111 -> every channel gets bits 7, 6 (and red/green bit 5): (224, 224, 192).
    p = get_voc_palette(256)
    assert p[3:6] == [128, 0, 0] and p[6:9] == [0, 128, 0] and p[9:12] == [128, 128, 0]
    assert p[24:27] == [64, 0, 0] and p[765:768] == [224, 224, 192]


def test_palette_png_keeps_values(tmp_path):
    arr = np.array([[0, 7, 33], [26, 255, 1]], np.uint8)
    path = save_palette_png(arr, str(tmp_path / "sub" / "x.png"), get_voc_palette())
    img = Image.open(path)
    assert img.mode == "P"
    np.testing.assert_array_equal(np.asarray(img), arr)
    assert img.getpalette()[3:6] == [128, 0, 0]
    with pytest.raises(ValueError, match="x.png"):
        save_palette_png(np.zeros((2, 2, 3)), str(tmp_path / "x.png"))


def test_trainid_labelid_round_trip():
    train = np.arange(19, dtype=np.uint8).reshape(1, 19)
    label = trainid_to_labelid(train)
    np.testing.assert_array_equal(label[0], [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26,
                                             27, 28, 31, 32, 33])
    np.testing.assert_array_equal(labelid_to_trainid(label), train)


# ---- training image logs (log_training_images / training_image_grid) ----

class _FakeWriter:
    def __init__(self):
        self.calls = []

    def add_image(self, tag, image, step, dataformats="CHW"):
        self.calls.append((tag, image, step, dataformats))


def _batch(dataset):
    import torch
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (3, 8, 12, 3)).astype(np.float64)          # (N, H, W, 3)
    if dataset in ("cityscapes_train", "cityscapes_test"):   # RGB minus the Caffe BGR means, no std
        net = rgb - np.array([102.9801, 115.9465, 122.7717])
    else:                               # ImageNet mean / std
        net = (rgb - np.array([123.675, 116.28, 103.53])) / np.array([58.395, 57.12, 57.375])
    images = torch.from_numpy(net.transpose(0, 3, 1, 2)).float()
    labels = torch.from_numpy(rng.integers(0, 19, (3, 8, 12))).float()
    labels[0, 0, :4] = 255
    logits = torch.randn(3, 19, 4, 6)                                     # 1/2 of the label size
    return rgb.astype(np.uint8), images, labels, logits


@pytest.mark.parametrize("dataset", ["cityscapes_train", "voc_train", "cityscapes_ocr_train",
                                     "ade20k_train"])
def test_training_image_grid(dataset):
    import torch
    import torch.nn.functional as F
    from utils.visualize import training_image_grid
    rgb, images, labels, logits = _batch(dataset)
    grid = training_image_grid(images, labels, logits, dataset, num_images=2)
    assert grid.shape == (16, 36, 3) and grid.dtype == np.uint8          # 2 rows x (input, gt, pred)
    flat = get_palette() if dataset.startswith("cityscapes") else get_voc_palette()
    palette = np.asarray(flat, np.uint8).reshape(-1, 3)
    preds = F.interpolate(logits, size=(8, 12), mode="bilinear", align_corners=True).argmax(1)
    for i in range(2):
        row = grid[8 * i:8 * (i + 1)]
        np.testing.assert_array_equal(row[:, :12], rgb[i])
        np.testing.assert_array_equal(row[:, 12:24], palette[labels[i].long().numpy()])
        np.testing.assert_array_equal(row[:, 24:], palette[preds[i].numpy()])
    assert torch.is_tensor(logits)


def test_every_dataset_says_how_it_normalises_and_colours():
    """The original OCNet pipeline (the two cityscapes_* entries) uses the Caffe means, every OCRNet
    recipe dataset ImageNet mean/std; the Cityscapes datasets use the Cityscapes palette, VOC and
    ADE20K VOC's."""
    from dataset import DATASETS, dataset_class
    for name in DATASETS:
        cls = dataset_class(name)
        assert cls.NORMALISATION == ("caffe" if name in ("cityscapes_train", "cityscapes_test")
                                     else "imagenet"), name
        assert cls.PALETTE == ("cityscapes" if name.startswith("cityscapes") else "voc"), name


def test_log_training_images_every_n_steps():
    from utils.visualize import log_training_images
    _, images, labels, logits = _batch("cityscapes_train")
    writer = _FakeWriter()
    logged = [s for s in range(7) if log_training_images(writer, s, 3, images, labels, [logits * 0, logits],
                                                          "cityscapes_train", 1)]
    assert logged == [0, 3, 6] and [c[2] for c in writer.calls] == [0, 3, 6]
    assert writer.calls[0][0] == "train/input_gt_pred" and writer.calls[0][1].shape == (8, 36, 3)
    assert writer.calls[0][3] == "HWC"
    assert not log_training_images(writer, 0, 3, images, labels, logits, "cityscapes_train", 0)
    assert not log_training_images(None, 0, 3, images, labels, logits, "cityscapes_train", 2)


def test_image_log_flags():
    from utils.options import parse_args
    args = parse_args("train", ["--save-num-images", "3", "--image-every", "50"])
    assert (args.save_num_images, args.image_every) == (3, 50)
    assert parse_args("train", []).image_every is None
    assert parse_args("eval", ["--save-num-images", "1"]).save_num_images == "1"  # still accepted
    with pytest.raises(SystemExit):
        parse_args("train", ["--save-num-images", "-1"])


def test_train_writes_image_grids(tmp_path, monkeypatch):
    import os

    import torch
    from torch import nn

    import network
    import train
    from dataset.synthetic import make_synthetic_cityscapes
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    class Tiny(nn.Module):
        has_aux, align_corners = False, True

        def __init__(self, num_classes=19, **_):
            super().__init__()
            self.conv = nn.Conv2d(3, num_classes, 3, stride=2, padding=1)

        def forward(self, x):
            return self.conv(x / 100.0)

    monkeypatch.setitem(network.NETWORKS, "tiny_img", Tiny)
    torch.manual_seed(0)
    root = make_synthetic_cityscapes(str(tmp_path / "data"), n_train=4, n_val=1, n_test=1, size=(32, 48))
    snap = tmp_path / "snap"
    train.main(["--network", "tiny", "--method", "img", "--data-dir", root, "--data-list",
                os.path.join(root, "train.lst"), "--input-size", "24,24", "--batch-size", "2",
                "--num-steps", "5", "--save-pred-every", "100", "--num-workers", "0",
                "--allow-random-init", "--restore-from", str(tmp_path / "none.pth"),
                "--snapshot-dir", str(snap), "--image-every", "2", "--save-num-images", "2"])
    events = EventAccumulator(str(snap), size_guidance={"images": 0})
    events.Reload()
    images = events.Images("train/input_gt_pred")
    assert [e.step for e in images] == [0, 2, 4]
    assert (images[0].height, images[0].width) == (48, 72)     # 2 samples x (input, gt, pred) of 24x24
