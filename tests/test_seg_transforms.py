"""OCRNet recipe transforms against hand-computed values and colorsys."""
import colorsys

import numpy as np
import pytest

from dataset import seg_transforms as S


class ScriptedRng:
    """RandomState stand-in that returns scripted values per method (FIFO) and logs the calls."""

    def __init__(self, **values):
        self.values = {k: list(v) for k, v in values.items()}
        self.calls = []

    def _next(self, name, *args):
        self.calls.append((name, args))
        return self.values[name].pop(0)

    def random_sample(self):
        return self._next("random_sample")

    def rand(self):
        return self._next("rand")

    def randint(self, *args):
        return self._next("randint", *args)

    def uniform(self, *args):
        return self._next("uniform", *args)


def test_rescale_size_keep_ratio():
    # VOC 375x500 into (2048, 512): f = min(2048/500, 512/375) = 1.36533 -> 512 x int(683.17)
    assert S.rescale_size(375, 500, (2048, 512)) == (512, 683)
    # Cityscapes 1024x2048 into (2048, 1024): f = 1
    assert S.rescale_size(1024, 2048, (2048, 1024)) == (1024, 2048)
    # a long thin image is limited by the long edge: f = min(2048/4000, 512/100) = 0.512
    assert S.rescale_size(100, 4000, (2048, 512)) == (51, 2048)


def test_random_resize_ratio():
    img, lab = np.zeros((100, 200, 3), np.uint8), np.zeros((100, 200), np.uint8)
    rng = ScriptedRng(random_sample=[0.5])         # r = 0.5 * 1.5 + 0.5 = 1.25 -> (2560, 640)
    out, out_lab = S.random_resize(img, lab, (2048, 512), (0.5, 2.0), rng)
    assert out.shape == (640, 1280, 3) and out_lab.shape == (640, 1280)


def test_random_crop_cat_max_ratio():
    lab = np.zeros((4, 8), np.uint8)
    lab[:, 6:] = 1                                  # only crops at x >= 3 see two classes
    img = np.arange(4 * 8 * 3).reshape(4, 8, 3)
    # candidates (y, x): (0,0) fails (one class), (0,4): counts 4 vs 4 -> 0.5 < 0.75 passes
    rng = ScriptedRng(randint=[0, 0, 0, 4])
    _, crop = S.random_crop(img, lab, (4, 4), 0.75, rng=rng)
    assert (crop == lab[:, 4:8]).all() and len(rng.calls) == 4
    assert rng.calls[0] == ("randint", (0, 1)) and rng.calls[1] == ("randint", (0, 5))
    # nothing passes: 10 checked candidates, then an 11th used unchecked
    rng = ScriptedRng(randint=[0, 0] * 10 + [0, 1])
    c_img, crop = S.random_crop(img, lab, (4, 4), 0.75, rng=rng)
    assert len(rng.calls) == 22 and (c_img == img[:, 1:5]).all()
    # ignore pixels do not count; smaller images are not padded here
    lab2 = np.full((3, 3), 255, np.uint8)
    lab2[0, 0], lab2[0, 1] = 1, 2
    _, crop = S.random_crop(img[:3, :3], lab2, (4, 4), 0.75, rng=ScriptedRng(randint=[0, 0]))
    assert crop.shape == (3, 3)


def test_random_flip():
    img, lab = np.arange(6).reshape(1, 3, 2), np.arange(3).reshape(1, 3)
    f_img, f_lab = S.random_flip(img, lab, rng=ScriptedRng(rand=[0.3]))
    assert f_lab.tolist() == [[2, 1, 0]] and f_img[0, 0].tolist() == [4, 5]
    assert S.random_flip(img, lab, rng=ScriptedRng(rand=[0.7]))[1].tolist() == [[0, 1, 2]]


def test_rgb_hsv_against_colorsys():
    assert S.rgb_to_hsv(np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [128, 128, 128],
                                   [255, 128, 0]]], np.uint8)).tolist() == [[
        [0, 255, 255], [60, 255, 255], [120, 255, 255], [0, 0, 128], [15, 255, 255]]]
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (16, 16, 3)).astype(np.uint8)
    hsv = S.rgb_to_hsv(img)
    for (r, g, b), (h, s, v) in zip(img.reshape(-1, 3), hsv.reshape(-1, 3)):
        ch, cs, cv = colorsys.rgb_to_hsv(r / 255, g / 255, b / 255)
        assert min(abs(int(h) - round(ch * 180) % 180), 180 - abs(int(h) - round(ch * 180) % 180)) <= 1
        assert abs(int(s) - cs * 255) <= 0.5 + 1e-9 and int(v) == round(cv * 255)
    back = S.hsv_to_rgb(hsv).astype(int)
    for (h, s, v), (r, g, b) in zip(hsv.reshape(-1, 3), back.reshape(-1, 3)):
        want = colorsys.hsv_to_rgb(int(h) * 2 / 360, int(s) / 255, int(v) / 255)
        assert np.abs(np.array([r, g, b]) - np.rint(np.array(want) * 255)).max() <= 1
    assert np.abs(back - img.astype(int)).max() <= 6   # H is stored in 2-degree steps


def test_photometric_distortion_steps():
    img = np.array([[[10, 200, 250], [0, 128, 255]]], np.uint8)
    # all coin flips 0 -> identity
    assert (S.photometric_distortion(img, rng=ScriptedRng(randint=[0] * 6)) == img).all()
    # brightness +10.7 only: float add, clip, truncate (mmseg convert)
    rng = ScriptedRng(randint=[1, 0, 0, 0, 0], uniform=[10.7])
    out = S.photometric_distortion(img, rng=rng)
    assert out.tolist() == [[[20, 210, 255], [10, 138, 255]]]
    assert rng.calls[1] == ("uniform", (-32, 32))
    # contrast last (mode 0), alpha 0.5
    out = S.photometric_distortion(img, rng=ScriptedRng(randint=[0, 0, 0, 0, 1], uniform=[0.5]))
    assert out.tolist() == [[[5, 100, 125], [0, 64, 127]]]
    # hue shift of a grey pixel changes nothing; saturation x0 makes a colour grey
    grey = np.full((1, 1, 3), 90, np.uint8)
    assert (S.photometric_distortion(grey, rng=ScriptedRng(randint=[0, 0, 0, 1, 7, 0])) == grey).all()
    out = S.photometric_distortion(img, rng=ScriptedRng(randint=[0, 0, 1, 0, 0], uniform=[0.0]))
    assert (out == out[..., :1]).all() and out[0, 0, 0] == 250   # S = 0 -> (V, V, V)


def test_normalize_and_pad():
    img = np.array([[[124, 116, 104], [255, 255, 255]]], np.uint8)
    out = S.normalize(img)
    np.testing.assert_allclose(out[0, 1], [(255 - 123.675) / 58.395, (255 - 116.28) / 57.12,
                                           (255 - 103.53) / 57.375], rtol=1e-6)
    np.testing.assert_allclose(out[0, 0], [0.325 / 58.395, -0.28 / 57.12, 0.47 / 57.375], atol=1e-6)
    image, label = S.pad_centred(np.ones((3, 3, 5), np.float32), np.zeros((3, 5), np.uint8), (6, 8))
    assert image.shape == (3, 6, 8)
    rows, cols = np.nonzero(image[0])
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (1, 3, 1, 5)   # top 1, left 1
    assert (label[1:4, 1:6] == 0).all() and (label == 255).sum() == 48 - 15
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        S.normalize(np.zeros((2, 2), np.uint8))


def test_train_pipeline_shapes():
    np.random.seed(0)
    img = np.random.randint(0, 255, (40, 60, 3)).astype(np.uint8)
    lab = np.random.randint(0, 3, (40, 60)).astype(np.uint8)
    for crop in ((32, 32), (128, 96)):
        for _ in range(3):
            out, out_lab = S.train_pipeline(img, lab, crop, base_scale=(64, 32))
            assert out.shape == (3,) + crop and out.dtype == np.float32 and out_lab.shape == crop
            assert set(np.unique(out_lab)) <= {0, 1, 2, 255}
    out, out_lab = S.train_pipeline(img, lab, (128, 96), (64, 32), scale=False, mirror=False,
                                     photometric=False)
    assert (out_lab == 255).sum() == 128 * 96 - 32 * 48   # keep-ratio to 32x48, centred padding
