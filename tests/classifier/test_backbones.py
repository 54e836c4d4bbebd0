import numpy as np
import pytest

from classifier.backbones import BACKBONES, create, imagenet_categories
from classifier.spec import ModelSpec, ResizePolicy


def test_pretrained_lite0_recognises_espresso():
    """The shipped ImageNet weights are really loaded: scikit-image's coffee photo is an espresso."""
    skimage_data = pytest.importorskip("skimage.data")
    import torch

    info = BACKBONES["efficientnet_lite0"]
    spec = ModelSpec(info.name, (224, 224), info.mean, info.std, ResizePolicy.STRETCH, tuple(imagenet_categories()),
                     multilabel=False)  # fmt: skip
    model = create("efficientnet_lite0", num_classes=None, pretrained=True).eval()
    with torch.no_grad():
        probs = model(torch.from_numpy(spec.preprocess([skimage_data.coffee()]))).softmax(1)[0]
    assert spec.classes[int(probs.argmax())] == "espresso"
    assert float(probs.max()) > 0.5
    scratch = create("efficientnet_lite0", num_classes=None, pretrained=False).eval()
    with torch.no_grad():
        assert float(scratch(torch.from_numpy(spec.preprocess([skimage_data.coffee()]))).softmax(1).max()) < 0.2


@pytest.mark.parametrize("name", ["efficientnet_b0", "mobilenet_v3_large", "resnet50", "convnext_tiny",
                                  "efficientnet_v2_s", "efficientnet_lite1"])  # fmt: skip
def test_backbones_build_with_new_head(name):
    import torch

    model = create(name, num_classes=53, pretrained=False).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 53)


def test_spec_round_trip_and_derived_transforms():
    spec = ModelSpec("efficientnet_lite0", (32, 32), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), ResizePolicy.PAD_SQUARE,
                     ("a", "b"), False, {"source": "crops"})  # fmt: skip
    assert ModelSpec.from_json(spec.to_json()) == spec
    img = np.full((20, 40, 3), 255, np.uint8)  # wide crop: padded to square, not stretched
    x = spec.preprocess([img])
    assert x.shape == (1, 3, 32, 32) and x.dtype == np.float32
    assert x[0, 0, 16, 16] == pytest.approx(2.0)  # (1 - 0.5) / 0.25 inside the image
    assert x[0, 0, 1, 16] == pytest.approx((114 / 255 - 0.5) / 0.25)  # grey padding above it
