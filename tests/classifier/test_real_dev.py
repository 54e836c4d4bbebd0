"""On the real labelled photos in ../shared: fine-tuning the pretrained default beats training from scratch."""

import pytest

from classifier.data import csv_samples, holdout_group_per_class
from classifier.train import compare_initialisations
from tests.conftest import shared_path

pytestmark = pytest.mark.slow


def test_pretrained_beats_scratch_on_real_photos(tmp_path):
    manifest = shared_path("data", "real-dev", "manifest.csv")
    samples = csv_samples(manifest, root=manifest.parent / "images", skip_unknown=True)
    res = compare_initialisations(samples, holdout_group_per_class(samples), tmp_path, epochs=12, size=128)
    print(f"real-dev top-1: pretrained {res['pretrained']:.3f}, scratch {res['scratch']:.3f} "
          f"({int(res['train_images'])} train / {int(res['val_images'])} val photos)")
    assert res["val_images"] >= 40
    assert res["pretrained"] >= res["scratch"] + 0.15
