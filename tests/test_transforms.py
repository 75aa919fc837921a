"""dataset/transforms.py: resize semantics (hand-computed), normalisation quirk, scale/pad/crop/mirror."""
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from dataset import transforms as T


class FixedRandom:
    """Stub rng: records randint/choice calls and returns the queued values."""

    def __init__(self, *values):
        self.values, self.calls = list(values), []

    def randint(self, a, b):
        self.calls.append((a, b))
        return self.values.pop(0)

    def choice(self, n):
        self.calls.append(n)
        return self.values.pop(0)


def test_resize_linear_upsample_hand_values():
    # 2 -> 4 columns: scale = 0.5, f = (d + 0.5) * 0.5 - 0.5 = -0.25, 0.25, 0.75, 1.25.
    # d=0: s=-1 < 0 -> pixel 0; d=1: 0.75*a + 0.25*b; d=2: 0.25*a + 0.75*b; d=3: s=1=n-1 -> pixel 1.
    x = np.array([[0.0, 100.0]], np.float32)
    np.testing.assert_allclose(T.resize_linear(x, (1, 4)), [[0, 25, 75, 100]])
    # uint8 fixed point: weights rint(0.75*2048)=1536, 512; [1, 2]: v = (2048, 2560, 3584, 4096),
    # one row (weights 2048, 0): ((v >> 4) * 2048 >> 16) = 4, 5, 7, 8, then (+ 2) >> 2 = 1, 1, 2, 2.
    u = T.resize_linear(np.array([[1, 2]], np.uint8), (1, 4))
    assert u.dtype == np.uint8
    np.testing.assert_array_equal(u, [[1, 1, 2, 2]])


def test_resize_linear_uint8_2d_hand_values():
    # [[0, 100], [200, 50]] -> 4x4. Column weights (x 2048) as above; horizontal sums >> 4:
    #   h0 = [0, 3200, 9600, 12800], h1 = [25600, 20800, 11200, 6400].
    # Rows: f = -0.25, 0.25, 0.75, 1.25 -> (rows, weights) = (0, 0; 512, 1536), (0, 1; 1536, 512),
    # (0, 1; 512, 1536), (1, 1; 1536, 512): row weights are not clamped, only the indices.
    # value = ((ha * wa >> 16) + (hb * wb >> 16) + 2) >> 2, e.g.
    #   (1, 1): (3200*1536 >> 16) + (20800*512 >> 16) = 75 + 162 = 237 -> 239 >> 2 = 59
    #   (2, 2): (9600*512 >> 16) + (11200*1536 >> 16) = 75 + 262 = 337 -> 339 >> 2 = 84
    #   (3, 1): (20800*1536 >> 16) + (20800*512 >> 16) = 487 + 162 = 649 -> 651 >> 2 = 162
    #   (3, 2): (11200*1536 >> 16) + (11200*512 >> 16) = 262 + 87 = 349 -> 351 >> 2 = 87
    # (the exact values 162.5 and 87.5 would round up: the truncations are OpenCV's).
    out = T.resize_linear(np.array([[0, 100], [200, 50]], np.uint8), (4, 4))
    np.testing.assert_array_equal(out, [[0, 25, 75, 100], [50, 59, 78, 88],
                                        [150, 128, 84, 63], [200, 162, 87, 50]])
    # [[182, 39], [59, 4]], (1, 2): h0 = (182*512 + 39*1536) >> 4 = 9568, h1 = (59*512 + 4*1536) >> 4
    # = 2272; (9568*1536 >> 16) + (2272*512 >> 16) = 224 + 17 = 241 -> 243 >> 2 = 60 (exact 61.0).
    a = np.array([[182, 39], [59, 4]], np.uint8)
    assert T.resize_linear(a, (4, 4))[1, 2] == 60
    assert (T.resize_linear(np.repeat(a[..., None], 3, axis=2), (4, 4))[1, 2] == 60).all()


@pytest.mark.parametrize("size", [(26, 34), (7, 9), (13, 17), (20, 11)])
def test_resize_linear_float_equals_half_pixel_bilinear(size):
    # Independent oracle: torch bilinear, align_corners=False, no antialias (same clamp rules).
    x = np.random.default_rng(0).random((13, 17, 3)).astype(np.float32)
    ref = F.interpolate(torch.from_numpy(x).permute(2, 0, 1)[None], size=size, mode="bilinear",
                        align_corners=False)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(T.resize_linear(x, size), ref, atol=2e-6)


def test_resize_by_factor_uses_inverse_factor_like_cv2():
    # cv2.resize(img, None, fx=0.7): width round(5*0.7)=round(3.5)=4 (half to even), scale 1/0.7:
    # f = 0.2143, 1.6429, 3.0714, 4.5 (-> clamp to pixel 4) on [0, 10, 20, 30, 40].
    x = np.array([[0, 10, 20, 30, 40]], np.float32)
    out = T.resize_linear(x, scale=0.7)
    np.testing.assert_allclose(out, [[2.142857, 16.428571, 30.714285, 40.0]], rtol=1e-5)
    # The size-based mapping (scale 5/4) would give [1.25, 13.75, 26.25, 38.75] instead.
    np.testing.assert_allclose(T.resize_linear(x, (1, 4)), [[1.25, 13.75, 26.25, 38.75]])


def test_resize_nearest_hand_values():
    row = np.arange(5, dtype=np.uint8)[None]
    np.testing.assert_array_equal(T.resize_nearest(row, (1, 2)), [[0, 2]])            # floor(d*2.5)
    np.testing.assert_array_equal(T.resize_nearest(row, scale=0.7), [[0, 1, 2, 4]])   # floor(d/0.7)
    np.testing.assert_array_equal(T.resize_nearest(np.array([[3, 9]]), (1, 5)), [[3, 3, 3, 9, 9]])
    assert T.resize_nearest(row, (1, 2)).dtype == np.uint8


def test_caffe_normalize_pinned_values(tmp_path):
    # faithful quirk: RGB channels minus the BGR Caffe means in R, G, B order, no std.
    path = str(tmp_path / "px.png")
    Image.fromarray(np.array([[[10, 20, 30], [255, 0, 0]]], np.uint8)).save(path)
    out = T.caffe_normalize(T.read_image(path))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0], [10 - 102.9801, 20 - 115.9465, 30 - 122.7717], rtol=1e-6)
    np.testing.assert_allclose(out[0, 1], [255 - 102.9801, -115.9465, -122.7717], rtol=1e-6)


def test_scale_choices_are_the_original_set():
    expected = [0.5 + k / 10.0 for k in range(17)]
    got = [T.random_scale_factor(FixedRandom(k)) for k in range(17)]
    assert got == expected and list(T.SCALE_CHOICES) == expected
    rng = FixedRandom(3)
    T.random_scale_factor(rng)
    assert rng.calls == [(0, 16)]
    random.seed(5)
    assert {T.random_scale_factor() for _ in range(400)} == set(expected)


def test_random_scale_resizes_image_and_label_by_the_same_factor():
    img = np.zeros((10, 20, 3), np.uint8)
    lab = np.zeros((10, 20), np.uint8)
    i2, l2 = T.random_scale(img, lab, FixedRandom(10))   # f = 1.5
    assert i2.shape == (15, 30, 3) and l2.shape == (15, 30)


def test_pad_bottom_right_with_zero_and_ignore():
    img, lab = np.ones((2, 3, 3), np.float32), np.zeros((2, 3), np.uint8)
    pi, pl = T.pad_to_crop(img, lab, (4, 5), ignore_label=255)
    assert pi.shape == (4, 5, 3) and pl.shape == (4, 5)
    assert (pi[:2, :3] == 1).all() and (pi[2:] == 0).all() and (pi[:, 3:] == 0).all()
    assert (pl[:2, :3] == 0).all() and (pl[2:] == 255).all() and (pl[:, 3:] == 255).all()
    same = T.pad_to_crop(img, lab, (2, 2))
    assert same[0] is img and same[1] is lab


def test_random_crop_offsets_are_inclusive_randint():
    img = np.arange(5 * 6).reshape(5, 6, 1)
    lab = np.arange(5 * 6).reshape(5, 6)
    rng = FixedRandom(2, 3)
    ci, cl = T.random_crop(img, lab, (3, 3), rng)
    assert rng.calls == [(0, 2), (0, 3)]
    np.testing.assert_array_equal(cl, lab[2:5, 3:6])
    np.testing.assert_array_equal(ci[..., 0], lab[2:5, 3:6])


def test_random_mirror_flips_image_and_label_together():
    img = np.arange(12).reshape(1, 3, 4)
    lab = np.arange(12).reshape(3, 4)
    fi, fl = T.random_mirror(img, lab, FixedRandom(0))    # 0 * 2 - 1 = -1: flip
    np.testing.assert_array_equal(fi[0], lab[:, ::-1])
    np.testing.assert_array_equal(fl, lab[:, ::-1])
    ki, kl = T.random_mirror(img, lab, FixedRandom(1))    # +1: keep
    np.testing.assert_array_equal(ki, img)
    np.testing.assert_array_equal(kl, lab)


def test_read_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.png"):
        T.read_image(str(tmp_path / "nope.png"))
    good = tmp_path / "good.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(good)
    bad = tmp_path / "truncated.png"
    bad.write_bytes(good.read_bytes()[:300])
    with pytest.raises(T.ImageReadError, match="truncated.png"):
        T.read_image(str(bad))
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    with pytest.raises(T.ImageReadError, match="junk.png"):
        T.read_image(str(junk))
    with pytest.raises(ValueError, match="good.png.*single-channel"):
        T.read_label(str(good))

