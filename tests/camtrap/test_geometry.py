import numpy as np
import pytest

from camtrap.geometry import Letterbox, crop_box, cut_crop, letterbox, letterbox_size


def test_crop_is_square_with_margin_and_padding():
    img = np.zeros((100, 200, 3), np.uint8)
    img[40:60, 50:90] = 255  # a 40x20 white box
    crop = cut_crop(img, (50 / 200, 40 / 100, 40 / 200, 20 / 100), margin=0.25, pad_value=7)
    assert crop.shape == (60, 60, 3)  # long side 40 + 2 * 0.25 * 40
    assert (crop[20:40, 10:50] == 255).all()  # the box sits in the middle, not stretched
    assert (crop[:20] == 0).all()  # image content above it (not padding: still inside the frame)
    edge = cut_crop(img, (0.0, 0.0, 0.1, 0.2), margin=0.1, pad_value=7)
    assert edge.shape[0] == edge.shape[1] and (edge[0, 0] == 7).all()  # padded where it leaves the image


def test_crop_box_pixels():
    assert crop_box((0.25, 0.4, 0.2, 0.2), 200, 100, 0.0) == (50, 30, 40)


def test_letterbox_keeps_aspect_and_stride():
    img = np.zeros((1536, 2048, 3), np.uint8)
    out, r, pad = letterbox(img, Letterbox(640, 32))
    assert out.shape == (480, 640, 3) and r == pytest.approx(640 / 2048) and pad == (0, 0)
    out, _, pad = letterbox(np.zeros((100, 150, 3), np.uint8), Letterbox(256, 32))
    assert out.shape == (192, 256, 3) and pad == (0, 0)  # 171 rows padded up to a multiple of 32
    assert (out[171:] == 114).all()
    assert letterbox_size(150, 100, 256, 32) == (256, 171, 256, 192, 256 / 150)


def test_centred_letterbox_as_yolov5():
    out, r, (left, top) = letterbox(np.zeros((100, 150, 3), np.uint8), Letterbox(256, 64, centred=True, bilinear=True))
    assert out.shape == (192, 256, 3) and (left, top) == (0, 10)  # 21 rows of padding: 10 above, 11 below
    assert (out[:10] == 114).all() and (out[10:181] == 0).all() and (out[181:] == 114).all()
