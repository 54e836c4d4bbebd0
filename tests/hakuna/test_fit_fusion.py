"""``hakuna fit-fusion`` on the per-season training layout: every validation frame is read once, and every animal
detection at or above the crop threshold gets its crop.  (The first release resolved paths a second time, wrongly
for this layout, and fitted fusion without any crop.)  No training: an oracle detector stage returns the
generator's boxes, and the classifier has random weights."""

from collections import Counter

import camtrap.engine as engine
import hakuna.pipeline as pipeline
from camtrap.dataset import read_train, season_split
from camtrap.lila import read_lila_boxes
from camtrap.results import Detection
from camtrap.synth import SynthConfig, generate
from classifier.predict import MAX_CROPS_PER_FRAME
from hakuna.cli import main
from tests.conftest import make_random_classifier

CONF = 0.9  # every oracle box's confidence: above any crop threshold


def _oracle(boxes: dict[str, list[tuple[float, float, float, float]]]):
    class Oracle:
        """Stands in for ``detector.predict.FrameDetector``: the true boxes of each frame, by its file name."""

        def __init__(self, detector, threshold=None) -> None:
            self.letterbox, self.device = detector.spec.letterbox, "cpu"

        def __call__(self, batch, frames):
            return [tuple(Detection("animal", CONF, b) for b in boxes.get(f.ref.file, ())) for f in frames]

    return Oracle


def test_fit_fusion_reads_each_frame_once_and_crops_every_animal(tmp_path, monkeypatch, random_detector, capsys):
    synth = generate(SynthConfig(sequences=150, seed=5, size=(320, 240)), tmp_path / "synth", workers=1)
    table = read_lila_boxes(synth.boxes_json)
    boxes: dict[str, list] = {}
    for row in table.itertuples():
        boxes.setdefault(row.file_name, []).append((row.x_min_norm, row.y_min_norm, row.width_norm, row.height_norm))
    train = read_train(synth.train_metadata, synth.train_labels, synth.train_image_root)
    _, val = season_split(train)
    val_files = list(val.frames["file_name"])
    assert all("/" in f for f in val_files) and (synth.train_image_root / "SnapshotSerengeti_S04_v2_0").is_dir()

    opened: Counter[str] = Counter()
    real = engine.load_frame

    def counting(ref, **kwargs):
        opened[ref.file] += 1
        return real(ref, **kwargs)

    monkeypatch.setattr(engine, "load_frame", counting)
    monkeypatch.setattr(pipeline, "FrameDetector", _oracle(boxes))
    clf = make_random_classifier(tmp_path)
    assert main(["fit-fusion", "--data", str(synth.root), "--detector", str(random_detector), "--classifier",
                 str(clf), "--out", str(tmp_path / "f.json"), "--device", "cpu", "--no-progress"]) == 0  # fmt: skip

    assert set(opened) == set(val_files) and max(opened.values()) == 1  # every frame read, none twice
    expected = sum(min(len(boxes.get(f, ())), MAX_CROPS_PER_FRAME) for f in val_files)
    assert expected >= 10
    out = capsys.readouterr().out
    assert f"fitted on {len(set(val.frames['seq_id']))} sequences (" in out and f", {expected} crops)" in out
