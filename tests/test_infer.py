"""infer.py + utils/predict_images.py: inputs, pre-processing, outputs, failures, checkpoint errors."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import infer
import network
from utils import predict_images as P
from utils.errors import ConfigError, MissingFileError

CAFFE_BGR_MEANS = np.array([102.9801, 115.9465, 122.7717])  # subtracted from R, G, B (the quirk)


@pytest.fixture(scope="module")
def ocnet(tmp_path_factory):
    torch.manual_seed(0)
    model = network.get_segmentation_model("resnet101_base_oc_dsn", num_classes=19).eval()
    for m in model.modules():  # non-trivial context and BN statistics
        if isinstance(m, torch.nn.Conv2d) and m.weight.abs().sum() == 0:
            torch.nn.init.normal_(m.weight, std=0.02)
        if hasattr(m, "running_mean") and m.running_mean is not None:
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    path = tmp_path_factory.mktemp("ckpt") / "CS_scenes_1.pth"
    torch.save(model.state_dict(), path)
    return model, str(path)


def _images(folder):
    rng = np.random.default_rng(0)
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 256, (40, 70, 3), dtype=np.uint8)).save(folder / "rgb.png")
    Image.fromarray(rng.integers(0, 256, (33, 50), dtype=np.uint8)).save(folder / "sub" / "grey.png")
    Image.fromarray(rng.integers(0, 256, (50, 41, 4), dtype=np.uint8), mode="RGBA").save(folder / "rgba.png")
    (folder / "broken.jpg").write_bytes(b"not an image")


def _oracle(model, rgb):
    """Independent pipeline: RGB - Caffe BGR means, model, bilinear (align_corners) up, argmax."""
    x = torch.from_numpy((rgb.astype(np.float64) - CAFFE_BGR_MEANS).astype(np.float32))
    with torch.no_grad():
        out = model(x.permute(2, 0, 1)[None])[-1]
        out = F.interpolate(out, size=rgb.shape[:2], mode="bilinear", align_corners=True)
    return out[0]


@pytest.mark.slow
def test_folder_with_broken_file(ocnet, tmp_path, capsys):
    model, ckpt = ocnet
    _images(tmp_path / "in")
    out = tmp_path / "out"
    argv = [str(tmp_path / "in"), "--network", "resnet101", "--method", "base_oc_dsn",
            "--restore-from", ckpt, "--output-path", str(out), "--save-logits", "float32"]
    assert infer.run_main(lambda: infer.main(argv)) == 2          # one file failed -> non-zero
    err = capsys.readouterr().err
    assert "1 of 4 image(s) failed" in err and "broken.jpg" in err
    for name in ("rgb", "sub/grey", "rgba"):
        src = Image.open(tmp_path / "in" / f"{name}.png").convert("RGB")
        rgb = np.asarray(src)
        logits = _oracle(model, rgb)
        pred = np.asarray(Image.open(out / f"{name}_labelTrainIds.png"))
        assert pred.shape == rgb.shape[:2]
        np.testing.assert_array_equal(pred, logits.argmax(0).numpy())
        saved = np.load(out / f"{name}_logits.npy")
        assert saved.dtype == np.float32 and saved.shape == (19,) + rgb.shape[:2]
        np.testing.assert_allclose(saved, logits.numpy(), rtol=1e-4, atol=1e-4)
        colour = Image.open(out / f"{name}_color.png")
        assert colour.mode == "P"
        np.testing.assert_array_equal(np.asarray(colour), pred)


def test_label_ids_and_overlay(ocnet, tmp_path):
    model, ckpt = ocnet
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "x.png")
    out = tmp_path / "out"
    infer.main([str(tmp_path / "*.png"), "--network", "resnet101", "--method", "base_oc_dsn",
                "--restore-from", ckpt, "--output-path", str(out), "--label-ids", "--alpha", "0.25"])
    train_ids = _oracle(model, rgb).argmax(0).numpy()
    from dataset.labels import CLASS_COLORS, TRAINID_TO_ID
    ids = np.asarray(Image.open(out / "x_labelIds.png"))
    np.testing.assert_array_equal(ids, np.array([TRAINID_TO_ID[t] for t in range(19)])[train_ids])
    colours = np.asarray(CLASS_COLORS, dtype=np.float64)[train_ids]
    expected = np.rint(0.25 * colours + 0.75 * rgb).astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(Image.open(out / "x_overlay.png")), expected)


def test_checkpoint_of_another_class_count(ocnet, tmp_path, capsys):
    _, ckpt = ocnet
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "x.png")
    argv = [str(tmp_path / "x.png"), "--network", "resnet101", "--method", "base_oc_dsn",
            "--num-classes", "7", "--restore-from", ckpt, "--output-path", str(tmp_path / "o")]
    assert infer.run_main(lambda: infer.main(argv)) == 2
    err = capsys.readouterr().err
    assert "does not match the model" in err and "--num-classes" in err


def test_collect_images_errors(tmp_path):
    with pytest.raises(MissingFileError, match="nothing_here"):
        P.collect_images([str(tmp_path / "nothing_here")])
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for d in "ab":
        Image.new("RGB", (4, 4)).save(tmp_path / d / "same.png")
    with pytest.raises(ConfigError, match="same"):
        P.collect_images([str(tmp_path / "a" / "same.png"), str(tmp_path / "b" / "same.png")])
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "notes.txt").write_text("x")
    with pytest.raises(ConfigError, match="no images"):
        P.collect_images([str(tmp_path / "c")])


def test_read_rgb_modes(tmp_path):
    grey16 = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000)
    Image.fromarray(grey16).save(tmp_path / "g16.png")
    out = P.read_rgb(str(tmp_path / "g16.png"))
    assert out.shape == (3, 4, 3) and out.dtype == np.uint8
    stretched = np.clip(grey16 * 255.0 / grey16.max(), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(out[..., 0], stretched)
    pal = Image.fromarray(np.array([[0, 1]], np.uint8), mode="P")
    pal.putpalette([10, 20, 30, 200, 100, 50])
    pal.save(tmp_path / "p.png")
    np.testing.assert_array_equal(P.read_rgb(str(tmp_path / "p.png")), [[[10, 20, 30], [200, 100, 50]]])


def test_recipe_preprocess_imagenet_and_resize():
    fam = P.families()["ade20k"]                   # base scale (2048, 512): short side -> 512
    rgb = np.full((100, 300, 3), (123, 116, 103), np.uint8)
    x = P.preprocess(rgb, fam)
    assert tuple(x.shape) == (1, 3, 512, 1536)
    mean, std = np.array([123.675, 116.28, 103.53]), np.array([58.395, 57.12, 57.375])
    np.testing.assert_allclose(x[0, :, 0, 0].numpy(), (np.array([123, 116, 103]) - mean) / std, rtol=1e-5)
    assert P.default_family(network.get_segmentation_model("resnet50_ocr", num_classes=150), 150) == "ade20k"


@pytest.mark.slow
def test_same_labels_as_eval_store_output(ocnet, tmp_path):
    """eval.py --store-output (the dataset loader + the batch path) is the oracle for infer.py."""
    import os

    import eval as eval_script
    from dataset.synthetic import make_synthetic_cityscapes
    _, ckpt = ocnet
    root = make_synthetic_cityscapes(str(tmp_path / "data"), n_train=1, n_val=2, n_test=1, size=(40, 72))
    common = ["--network", "resnet101", "--method", "base_oc_dsn", "--restore-from", ckpt]
    eval_script.main(common + ["--data-dir", root, "--data-list", os.path.join(root, "val.lst"),
                               "--input-size", "40,72", "--batch-size", "1", "--num-workers", "0",
                               "--store-output", "True", "--output-path", str(tmp_path / "eval")])
    pairs = [line.split("\t") for line in open(os.path.join(root, "val.lst")).read().split("\n") if line]
    infer.main([os.path.join(root, img) for img, _ in pairs] + common
               + ["--output-path", str(tmp_path / "infer")])
    for img, label in pairs:
        stem, label_stem = os.path.basename(img)[:-4], os.path.basename(label.strip())[:-4]
        ours = np.asarray(Image.open(tmp_path / "infer" / f"{stem}_labelTrainIds.png"))
        theirs = np.asarray(Image.open(tmp_path / "eval" / f"{label_stem}.png"))
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.slow
def test_load_weights_mmseg_and_mismatch(tmp_path):
    from utils.convert import export_state_dict
    from utils.errors import CheckpointError
    torch.manual_seed(0)
    src = network.get_segmentation_model("hrnetv2_w18s_ocr", num_classes=5, preset="mmseg")
    path = tmp_path / "mmseg.pth"
    torch.save({"meta": {}, "state_dict": export_state_dict(src, "mmseg")}, path)
    dst = network.get_segmentation_model("hrnetv2_w18s_ocr", num_classes=5, preset="mmseg")
    assert P.load_weights(dst, str(path)) == "mmseg"
    for key, value in src.state_dict().items():
        torch.testing.assert_close(dst.state_dict()[key], value, rtol=0, atol=0)
    other = network.get_segmentation_model("hrnetv2_w18s_ocr", num_classes=7, preset="mmseg")
    with pytest.raises(CheckpointError, match="--num-classes"):
        P.load_weights(other, str(path))


@pytest.mark.slow
def test_ocr_checkpoint_of_another_class_count_is_evals_error(tmp_path):
    torch.manual_seed(0)
    model = network.get_segmentation_model("hrnetv2_w18s_ocr", num_classes=5)
    path = tmp_path / "CS_scenes_9.pth"
    torch.save(model.state_dict(), path)
    other = network.get_segmentation_model("hrnetv2_w18s_ocr", num_classes=6)
    with pytest.raises(ValueError, match="does not match the model.*\\n.*shape mismatches"):
        P.load_weights(other, str(path))
    assert P.load_weights(model, str(path)) == "ssseg"          # our OCR names are sssegmentation's
