import numpy as np

from camtrap.results import Detection, DetectionCategory, FrameDetections
from detector.crops import crop_box, cut_crop, is_empty_frame


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


def test_empty_screening():
    animal = Detection(DetectionCategory.ANIMAL, 0.3, (0, 0, 0.1, 0.1))
    person = Detection(DetectionCategory.PERSON, 0.9, (0, 0, 0.1, 0.1))
    assert not is_empty_frame(FrameDetections("a", (animal,)), 0.2)
    assert is_empty_frame(FrameDetections("a", (animal,)), 0.5)
    assert is_empty_frame(FrameDetections("a", (person,)), 0.2)  # people do not make a frame hold an animal
    assert not is_empty_frame(FrameDetections("a", None, "missing file"), 0.2)  # unknown, not empty
