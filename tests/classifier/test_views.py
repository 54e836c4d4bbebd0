"""Multi-crop views with known geometry, the mosaic a probe model pools over, the on-disk feature cache (a second
run extracts nothing), boxes turning photos into crops, and self-training that keeps groups apart."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from camtrap.frames import frame_ref
from classifier import features
from classifier.boxes import read_box_file, with_boxes
from classifier.data import Sample, SampleSet
from classifier.fewshot import Setting, _spec
from classifier.probe import Embeddings, ProbeClassifier
from classifier.selftrain import pseudo_label_donors, self_train_logits
from classifier.views import mosaic, tiles_of, view_box, view_tile


def test_view_boxes_of_a_wide_and_a_tall_photo():
    # 400 x 1000 (h x w): squares of side 400 at the left, the middle and the right; zoom 240 in the centre
    assert view_box("first", 400, 1000) == (0, 0, 400, 400)
    assert view_box("center", 400, 1000) == (300, 0, 700, 400)
    assert view_box("last", 400, 1000) == (600, 0, 1000, 400)
    assert view_box("zoom", 400, 1000) == (380, 80, 620, 320)
    assert view_box("stretch", 400, 1000) == (0, 0, 1000, 400)
    # tall: the squares run top to bottom
    assert view_box("first", 1000, 400) == (0, 0, 400, 400) and view_box("last", 1000, 400) == (0, 600, 400, 1000)
    with pytest.raises(ValueError, match="unknown view"):
        view_box("left", 10, 10)


def test_tiles_and_framing_by_shape():
    wide = np.zeros((100, 300, 3), np.uint8)
    wide[:, :100] = 50  # left third dark grey, the rest black
    wide[:, 200:] = 200  # right third light
    assert (view_tile(wide, "first", 20) == 50).all() and (view_tile(wide, "last", 20) == 200).all()
    assert (view_tile(wide, "center", 20) == 0).all()
    padded = view_tile(wide, "shape", 30)  # aspect 3 > 1.6: padded (grey bands above and below), not stretched
    assert padded.shape == (30, 30, 3) and (padded[0] == 114).all() and (padded[15, :5] == 50).all()
    frame = np.full((75, 100, 3), 7, np.uint8)  # 4:3 camera frame: stretched
    assert (view_tile(frame, "shape", 16) == view_tile(frame, "stretch", 16)).all()
    m = mosaic(wide, ("first", "center", "last"), 20)
    assert m.shape == (60, 20, 3)
    tiles = tiles_of(m[None], 3)[0]
    assert [int(t.mean()) for t in tiles] == [50, 0, 200]


def test_probe_model_pools_the_mosaic_views():
    torch.manual_seed(0)
    model = ProbeClassifier(("efficientnet_lite0",), ("zebra", "impala"), input_size=32, views=2, scale=32 / 224).eval()
    x = torch.randn(1, 3, 2 * 32, 32)
    with torch.inference_mode():
        feats, prior = model.embed(x)
        per_tile = [model.parts(x[:, :, 32 * k : 32 * (k + 1)])[0] for k in range(2)]
    assert torch.allclose(feats, torch.stack([f for f, _ in per_tile]).mean(0), atol=1e-5)
    assert torch.allclose(prior, torch.stack([model.prior(z) for _, z in per_tile]).mean(0), atol=1e-5)


def _photos(folder, n=3):
    folder.mkdir(parents=True, exist_ok=True)
    samples = []
    for i in range(n):
        Image.fromarray(np.full((30, 40, 3), 40 * i, np.uint8)).save(folder / f"p{i}.png")
        samples.append(Sample(frame_ref(folder, f"p{i}.png"), None, (1.0, 0.0), f"g{i}", f"p{i}.png"))
    return SampleSet(tuple(samples), ("zebra", "impala"), False, "test")


def test_feature_cache_second_run_extracts_nothing(tmp_path, monkeypatch):
    calls = []

    def fake_forward(model, tiles, mean, std):  # the backbone is not what is tested here: the cache is
        calls.append(len(tiles))
        f = tiles.reshape(len(tiles), -1).mean(axis=1, keepdims=True).astype(np.float32)
        return np.stack([f, f]), np.zeros((2, len(tiles), 1000), np.float32)

    monkeypatch.setattr(features, "_forward", fake_forward)
    monkeypatch.setattr("classifier.probe.ProbeClassifier", lambda *a, **k: type("M", (), {"bodies": [None]})())
    monkeypatch.setattr("classifier.backbones.for_inference", lambda m, n: torch.nn.Identity())
    samples = _photos(tmp_path / "photos")
    spec = _spec(samples, Setting(("efficientnet_lite0",), ("stretch", "center"), 0.1, 1.0, 32))
    seen = []
    first = features.view_features(samples, "efficientnet_lite0", spec, tmp_path / "cache", seen.append)
    assert len(calls) == 3 and sum(seen) == 3 and first.ok.all() and first.features.shape == (2, 3, 2, 1)
    again = features.view_features(samples, "efficientnet_lite0", spec, tmp_path / "cache", seen.append)
    assert len(calls) == 3 and sum(seen) == 6  # all from the cache: nothing extracted, progress still counted
    assert np.array_equal(first.features, again.features)
    Image.fromarray(np.full((30, 40, 3), 250, np.uint8)).save(tmp_path / "photos" / "p1.png")  # a changed file
    changed = features.view_features(samples, "efficientnet_lite0", spec, tmp_path / "cache")
    assert len(calls) == 4 and changed.features[0, 1, 0, 0] == pytest.approx(250)


def test_boxes_from_a_coco_file_make_crops(tmp_path):
    samples = _photos(tmp_path / "photos")
    # COCO Camera Traps, as microsoft/CameraTraps data_management/README.md defines it: images with id, width,
    # height, file_name; annotations with image_id, category_id and "bbox": [x,y,width,height] "in absolute,
    # floating-point coordinates, with the origin at the upper-left"
    coco = {"images": [{"id": "a", "file_name": "elsewhere/p1.png", "width": 40, "height": 30}],
            "categories": [{"id": 1, "name": "zebra"}],
            "annotations": [{"id": "x", "image_id": "a", "category_id": 1, "bbox": [4, 3, 20, 15]}]}  # fmt: skip
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps(coco))
    cropped, boxed = with_boxes(samples, read_box_file(path))
    assert boxed.tolist() == [False, True, False]
    assert cropped.samples[1].bbox_xywh_norm == pytest.approx((0.1, 0.1, 0.5, 0.5))
    assert cropped.samples[0] == samples.samples[0]


def test_self_training_keeps_groups_apart():
    pool = np.arange(10, 22)
    groups = [f"g{i // 2}" for i in range(22)]  # two photos per group
    pairs = pseudo_label_donors(pool, groups, np.ones(len(pool), bool), seed=3)
    assert sorted(np.concatenate([p for p, _ in pairs]).tolist()) == pool.tolist()
    for predicted, donors in pairs:
        assert len(donors) and not {groups[i] for i in predicted} & {groups[i] for i in donors}
    # a pool photo's own confident pseudo-label never trains the head that predicts it: with one group in the
    # pool there are no donors, and self-training changes nothing
    rng = np.random.default_rng(0)
    emb = Embeddings(rng.normal(size=(2, 12, 5)), np.zeros((2, 12, 2)))
    targets = np.zeros((12, 2), np.float32)
    targets[np.arange(10), np.arange(10) % 2] = 1
    one_group = ["a"] * 10 + ["z", "z"]
    kwargs = {"l2": 0.1, "use_prior": False}
    base = self_train_logits(emb, targets, np.arange(10), np.array([10, 11]), one_group, threshold=np.inf, **kwargs)
    same = self_train_logits(emb, targets, np.arange(10), np.array([10, 11]), one_group, threshold=0.0, **kwargs)
    assert np.allclose(base, same)


def test_decoded_mosaics_are_cached_per_view_set(tmp_path):
    from classifier.data import decode_cached

    folder = tmp_path / "photos"
    folder.mkdir()
    wide = np.zeros((20, 60, 3), np.uint8)
    wide[:, 40:] = 255  # the right third white: the centre square is black, the stretched photo is not
    Image.fromarray(wide).save(folder / "w.png")
    samples = SampleSet((Sample(frame_ref(folder, "w.png"), None, (1.0,), "g", "w.png"),), ("zebra",), False, "t")
    stretch = _spec(samples, Setting(("efficientnet_lite0",), ("stretch",), 0.1, 1.0, 16))
    center = _spec(samples, Setting(("efficientnet_lite0",), ("center",), 0.1, 1.0, 16))
    a, _ = decode_cached(samples, stretch, tmp_path / "cache")
    b, _ = decode_cached(samples, center, tmp_path / "cache")
    assert a.shape == b.shape == (1, 16, 16, 3) and a.max() == 255 and b.max() == 0
