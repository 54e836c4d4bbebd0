"""Shared fixtures: small synthetic datasets (made once per session) and the optional ../shared data."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from camtrap.synth import SynthConfig, generate

SHARED = Path(os.environ.get("HAKUNA_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or skip the test (with the reason) when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not present (set HAKUNA_SHARED to the shared/ folder to run this test)")
    return path


def hakuna_command(*args: str) -> list[str]:
    """The command line that runs ``hakuna ARGS`` in a child process with this interpreter (for kill tests)."""
    return [sys.executable, "-c", "import sys; from hakuna.cli import main; sys.exit(main())", *args]


def send_range_headers(handler, body: bytes) -> int:
    """Answer a test HTTP server's GET for ``body``: 206 with Content-Range when it asked for ``Range: bytes=N-``,
    else 200; sends the headers and returns the first byte to send."""
    start = 0
    if rng := handler.headers.get("Range"):
        start = int(rng.split("=")[1].split("-")[0])
        handler.send_response(206)
        handler.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
    else:
        handler.send_response(200)
    handler.send_header("Content-Length", str(len(body) - start))
    handler.end_headers()
    return start


def make_random_detector(folder: Path, input_size: int = 256) -> Path:
    """An untrained yolo11-tiny checkpoint carrying a spec: deterministic boxes, no training time."""
    import torch

    from detector.model import DetectorSpec, offline_ultralytics, write_spec
    from detector.train import architecture

    torch.manual_seed(0)
    YOLO = offline_ultralytics()
    model = YOLO(architecture("yolo11-tiny", folder))
    path = folder / "random.pt"
    model.save(path)
    write_spec(path, DetectorSpec(name="random-tiny", input_size=input_size, output_threshold=0.3))
    return path


def make_random_classifier(folder: Path, classes: tuple[str, ...] | None = None) -> Path:
    """An untrained Lite0 crop classifier (64 px) over ``classes`` (default: the 53 species): no training time."""
    import torch

    from camtrap.labels import SPECIES
    from classifier.backbones import BACKBONES, create
    from classifier.spec import CHECKPOINT_FORMAT, ModelSpec, ResizePolicy

    classes = tuple(classes or SPECIES)
    info = BACKBONES["efficientnet_lite0"]
    spec = ModelSpec("efficientnet_lite0", (64, 64), info.mean, info.std, ResizePolicy.PAD_SQUARE, classes, False)
    torch.manual_seed(0)
    model = create("efficientnet_lite0", len(classes), pretrained=False)
    path = folder / "classifier.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "spec": spec.to_json(), "model": model.state_dict(), "history": []}, path)
    return path


@pytest.fixture(scope="session")
def random_detector(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_random_detector(tmp_path_factory.mktemp("random-detector"))


@pytest.fixture(scope="session")
def small_synth(tmp_path_factory: pytest.TempPathFactory):
    """200 sequences at 512x384, seed 0 (the issue's acceptance dataset)."""
    out = tmp_path_factory.mktemp("synth-small")
    return generate(SynthConfig(sequences=200, seed=0, size=(512, 384)), out, workers=2)


@pytest.fixture(scope="session")
def detector_synth(tmp_path_factory: pytest.TempPathFactory):
    """The detector's training data: 400 sequences at 512x384, seed 1 (its test season is held out)."""
    out = tmp_path_factory.mktemp("synth-detector")
    return generate(SynthConfig(sequences=400, seed=1, size=(512, 384)), out, workers=2)


@pytest.fixture(scope="session")
def pipeline_synth(tmp_path_factory: pytest.TempPathFactory):
    """The classifier's and the pipeline's data: 600 sequences at 768x576, seed 11 (an unseen set for the detector)."""
    out = tmp_path_factory.mktemp("synth-pipeline")
    return generate(SynthConfig(sequences=600, seed=11, size=(768, 576)), out, workers=2)


@pytest.fixture(scope="session")
def trained_detector(detector_synth, tmp_path_factory: pytest.TempPathFactory):
    """A yolo11-tiny trained by `hakuna detector train` on ``detector_synth`` (a few CPU minutes, once)."""
    from hakuna.cli import main

    folder = tmp_path_factory.mktemp("detector")
    model = folder / "detector.pt"
    assert main(["detector", "train", "--data", str(detector_synth.root), "--out", str(model),
                 "--epochs", "40", "--imgsz", "256", "--device", "cpu"]) == 0  # fmt: skip
    return model


@pytest.fixture(scope="session")
def truth_results(pipeline_synth):
    """The generator's boxes for every frame of ``pipeline_synth`` as detector results (an oracle detector)."""
    from camtrap.dataset import read_test, read_train
    from camtrap.lila import read_lila_boxes
    from camtrap.mdjson import results_from_boxes

    boxes = read_lila_boxes(pipeline_synth.boxes_json)
    train = read_train(pipeline_synth.train_metadata, pipeline_synth.train_labels, pipeline_synth.train_image_root)
    test, _ = read_test(pipeline_synth.test_data)
    return (results_from_boxes(list(train.frames["file_name"]), boxes),
            results_from_boxes(list(test.frames["file_name"]), boxes))


@pytest.fixture(scope="session")
def trained_classifier(pipeline_synth, truth_results, tmp_path_factory: pytest.TempPathFactory):
    """EfficientNet-Lite0 (ImageNet-pretrained) fine-tuned by `hakuna classifier train` on the training seasons'
    crops (generator boxes), 128 px, 6 epochs (about three CPU minutes, once)."""
    from camtrap.mdjson import write_results
    from hakuna.cli import main

    folder = tmp_path_factory.mktemp("classifier")
    write_results(folder / "train_boxes.json", truth_results[0])
    model = folder / "classifier.pt"
    assert main(["classifier", "train", "--data", str(pipeline_synth.root), "--detections",
                 str(folder / "train_boxes.json"), "--det-threshold", "0.5", "--out", str(model), "--recipe", "full",
                 "--input-size", "128", "--epochs", "6",
                 "--lr", "0.002", "--device", "cpu", "--no-progress"]) == 0  # fmt: skip
    return model


@pytest.fixture(scope="session")
def fitted_fusion(pipeline_synth, trained_detector, trained_classifier, tmp_path_factory: pytest.TempPathFactory):
    """Fusion fitted by `hakuna fit-fusion` on the pipeline data's validation season."""
    from hakuna.cli import main

    path = tmp_path_factory.mktemp("fusion") / "fusion.json"
    assert main(["fit-fusion", "--data", str(pipeline_synth.root), "--detector", str(trained_detector),
                 "--classifier", str(trained_classifier), "--out", str(path), "--device", "cpu",
                 "--workers", "0", "--no-progress"]) == 0  # fmt: skip
    return path


@pytest.fixture(scope="session")
def one_stage_classifier(pipeline_synth, tmp_path_factory: pytest.TempPathFactory):
    """A whole-frame (one-stage) multi-label classifier on the pipeline data's training seasons."""
    from camtrap.dataset import read_train
    from classifier.data import frame_samples
    from classifier.train import ClassifierTrainConfig, train

    folder = tmp_path_factory.mktemp("one-stage")
    data = read_train(pipeline_synth.train_metadata, pipeline_synth.train_labels, pipeline_synth.train_image_root)
    cfg = ClassifierTrainConfig(input_size=128, epochs=3, lr=0.002, device="cpu")
    return train(frame_samples(data), folder / "one_stage.pt", cfg, cache_dir=folder / "cache").model_path
