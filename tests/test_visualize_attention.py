"""scripts/visualize_attention.py end to end on the registry models (random weights, tiny images)."""
import numpy as np
import pytest
import torch
from PIL import Image

import network
from scripts import visualize_attention as V
from utils.attention_maps import AttentionProbe
from utils.attention_figure import PANEL


def _checkpoint(tmp_path, name, num_classes=19, **kw):
    torch.manual_seed(0)
    model = network.get_segmentation_model(name, num_classes=num_classes, **kw).eval()
    path = tmp_path / f"{name}.pth"
    torch.save(model.state_dict(), path)
    return model, str(path)


def _image(tmp_path, h=48, w=64):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(tmp_path / "img.png")
    return str(tmp_path / "img.png")


@pytest.mark.slow
@pytest.mark.parametrize("method,blocks", [("pyramid_oc_dsn", 4), ("asp_oc_dsn", 1)])
def test_ocnet_figure(tmp_path, method, blocks):
    model, ckpt = _checkpoint(tmp_path, f"resnet101_{method}")
    img = _image(tmp_path)
    (png,) = V.main([img, "--network", "resnet101", "--method", method, "--restore-from", ckpt,
                     "--points", "0,0", "63,47", "--output-path", str(tmp_path / "out")])
    fig = Image.open(png)
    # columns: the image + one panel per attention block, each PANEL wide plus 8 px gaps
    assert fig.width == (blocks + 1) * (PANEL + 8) + 8
    # the probed forward equals the plain forward (hooks change nothing)
    x = torch.randn(1, 3, 48, 64)
    with torch.no_grad():
        plain = network.main_output(model(x))
        with AttentionProbe(model) as probe:
            probed = network.main_output(model(x))
    torch.testing.assert_close(plain, probed, rtol=0, atol=0)
    assert len(probe.blocks) == blocks


@pytest.mark.slow
def test_ocr_figure_and_points_outside(tmp_path, capsys):
    _, ckpt = _checkpoint(tmp_path, "resnet50_ocr", num_classes=21)
    img = _image(tmp_path)
    args = [img, "--network", "resnet50", "--method", "ocr", "--num-classes", "21",
            "--restore-from", ckpt, "--dataset", "voc", "--base-scale", "64,48",
            "--output-path", str(tmp_path / "o")]
    (png,) = V.main(args + ["--grid", "2", "--top-k", "3"])
    assert Image.open(png).height > 3 * PANEL                  # region row + 4 query rows
    argv = args + ["--points", "10,10", "64,5"]
    assert V.run_main(lambda: V.main(argv)) == 2
    err = capsys.readouterr().err
    assert "64,5 outside the image of 64x48 pixels" in err


def test_grid_points():
    assert V.grid_points(2, 10, 20) == [(5, 2), (15, 2), (5, 7), (15, 7)]
