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
