"""End to end on synthetic data: two-stage vs baselines, the offline package, bad images in data/."""

import shutil

import numpy as np
import pandas as pd
import pytest

from camtrap.dataset import read_labels, read_test, read_train
from camtrap.metric import per_class_log_loss, read_submission, validate_submission
from classifier.predict import load as load_classifier
from fusion import FusionModel
from fusion.fit import class_priors
from hakuna.baselines import one_stage_submission, prior_submission
from hakuna.cli import main
from submission.harness import run_submission
from submission.package import build_package

pytestmark = pytest.mark.slow


def _copy_subset(src, dest, n_sequences):
    """A test folder with the first ``n_sequences`` sequences of ``src`` (metadata, format and images)."""
    frames, fmt = read_test(src)
    keep = list(fmt.index[:n_sequences])
    dest.mkdir(parents=True)
    meta = pd.read_csv(src / "test_metadata.csv", dtype=str)
    meta = meta[meta["seq_id"].isin(keep)]
    meta.to_csv(dest / "test_metadata.csv", index=False)
    fmt.loc[keep].to_csv(dest / "submission_format.csv")
    for f in meta["file_name"]:
        (dest / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / f, dest / f)
    return dest


@pytest.fixture(scope="module")
def two_stage(pipeline_synth, trained_detector, trained_classifier, fitted_fusion, tmp_path_factory):
    out = tmp_path_factory.mktemp("predict") / "submission.csv"
    assert main(["predict", "--data", str(pipeline_synth.test_data), "--detector", str(trained_detector),
                 "--classifier", str(trained_classifier), "--fusion", str(fitted_fusion), "--out", str(out),
                 "--device", "cpu", "--workers", "0", "--no-progress"]) == 0  # fmt: skip
    return read_submission(out)


def test_two_stage_beats_prior_and_one_stage(pipeline_synth, two_stage, one_stage_classifier):
    labels = read_labels(pipeline_synth.test_labels)
    train_set = read_train(pipeline_synth.train_metadata, pipeline_synth.train_labels, pipeline_synth.train_image_root)
    two = per_class_log_loss(two_stage, labels)
    prior = per_class_log_loss(prior_submission(train_set.labels, labels.index), labels)
    test_set, _ = read_test(pipeline_synth.test_data)
    one = per_class_log_loss(one_stage_submission(test_set, load_classifier(one_stage_classifier, device="cpu"),
                                                  class_priors(train_set.labels)), labels)  # fmt: skip
    print(f"two-stage {two.mean():.5f} (empty {two['empty']:.4f}), one-stage {one.mean():.5f} "
          f"(empty {one['empty']:.4f}), prior {prior.mean():.5f} (empty {prior['empty']:.4f})")
    assert two.mean() <= prior.mean() / 2
    assert two["empty"] < one["empty"]


def test_package_runs_offline_like_predict(pipeline_synth, trained_detector, trained_classifier, fitted_fusion,
                                           tmp_path):
    zip_path = build_package(trained_detector, trained_classifier, fitted_fusion, tmp_path / "submission.zip")
    import zipfile

    names = zipfile.ZipFile(zip_path).namelist()
    assert "main.py" in names and "assets/detector.onnx" in names and "assets/classifier.onnx" in names
    assert not any(n.startswith("code/camtrap/synth/") or n.startswith("tests/") for n in names)
    data = _copy_subset(pipeline_synth.test_data, tmp_path / "data", 30)
    before = sorted((p.relative_to(data), p.stat().st_mtime_ns) for p in data.rglob("*"))
    out = run_submission(zip_path, data, tmp_path / "run" / "submission.csv")
    log = out.with_suffix(".log").read_text()
    assert log.count("Hakuna 0.1.0: data") == 1 and "done in" in log  # spawned workers must not rerun main.py
    assert sorted((p.relative_to(data), p.stat().st_mtime_ns) for p in data.rglob("*")) == before  # data untouched
    packaged = read_submission(out)
    _, fmt = read_test(data)
    validate_submission(packaged, fmt.index)
    assert list(packaged.index) == list(fmt.index)
    with zipfile.ZipFile(zip_path) as zf:
        zf.extract("assets/detector.onnx", tmp_path)
        zf.extract("assets/classifier.onnx", tmp_path)
    direct = tmp_path / "direct.csv"
    assert main(["predict", "--data", str(data), "--detector", str(tmp_path / "assets/detector.onnx"),
                 "--classifier", str(tmp_path / "assets/classifier.onnx"), "--fusion", str(fitted_fusion),
                 "--out", str(direct), "--device", "cpu", "--workers", "0", "--no-progress"]) == 0  # fmt: skip
    assert np.abs(read_submission(direct).to_numpy() - packaged.to_numpy()).max() < 1e-6


def test_missing_and_corrupt_images_still_give_every_row(pipeline_synth, trained_detector, trained_classifier,
                                                         fitted_fusion, tmp_path):
    data = _copy_subset(pipeline_synth.test_data, tmp_path / "data", 20)
    test_set, fmt = read_test(data)
    files = test_set.frames["file_name"].tolist()
    (data / files[0]).unlink()  # missing
    (data / files[1]).write_bytes(b"")  # zero bytes
    (data / files[2]).write_bytes((data / files[2]).read_bytes()[:500])  # truncated
    whole = test_set.frames[test_set.frames["seq_id"] == test_set.frames["seq_id"].iat[-1]]["file_name"]
    for f in whole:  # one sequence with no readable frame at all
        (data / f).unlink()
    out = tmp_path / "submission.csv"
    assert main(["predict", "--data", str(data), "--detector", str(trained_detector), "--classifier",
                 str(trained_classifier), "--fusion", str(fitted_fusion), "--out", str(out), "--device", "cpu",
                 "--workers", "0", "--no-progress"]) == 0  # fmt: skip
    sub = read_submission(out)
    validate_submission(sub, fmt.index)
    priors = FusionModel.load(fitted_fusion).priors
    assert sub.loc[test_set.frames["seq_id"].iat[-1]].to_numpy() == pytest.approx(np.clip(priors, 1e-5, 1 - 1e-5))


def test_time_budget_gives_priors_for_the_rest(pipeline_synth, trained_detector, trained_classifier, fitted_fusion,
                                               tmp_path):
    out = tmp_path / "submission.csv"
    assert main(["predict", "--data", str(pipeline_synth.test_data), "--detector", str(trained_detector),
                 "--classifier", str(trained_classifier), "--fusion", str(fitted_fusion), "--out", str(out),
                 "--device", "cpu", "--workers", "0", "--no-progress", "--time-budget", "0"]) == 0  # fmt: skip
    sub = read_submission(out)
    priors = np.array(FusionModel.load(fitted_fusion).priors)
    assert np.allclose(sub.to_numpy(), priors[None, :], atol=1e-9)
    assert isinstance(sub, pd.DataFrame)


def test_outcomes_from_elsewhere_are_counted_like_the_engines(small_synth, random_detector, tmp_path):
    """A source other than the local engine (a Ray cluster) fills the same frame, failure and crop counts."""
    from camtrap.engine import FrameOutcome
    from camtrap.results import CropPrediction, Detection, FrameDetections
    from detector.model import load as load_detector
    from hakuna.pipeline import PipelineConfig, StageTimes, stream_evidence
    from tests.conftest import make_random_classifier

    part, _ = read_test(small_synth.test_data)
    classifier = load_classifier(make_random_classifier(tmp_path))
    detector = load_detector(random_detector)
    n_classes = len(classifier.spec.classes)

    def source(refs):
        for i, ref in enumerate(refs):
            if i % 5 == 0:
                yield FrameOutcome(FrameDetections(ref.file, None, failure="truncated"), ref.seq_id)
                continue
            box = Detection("animal", 0.9, (0.1, 0.1, 0.2, 0.2))
            crop = CropPrediction(ref.file, 0, box, tuple([1 / n_classes] * n_classes))
            yield FrameOutcome(FrameDetections(ref.file, (box,)), ref.seq_id, (crop,))

    times = StageTimes()
    evidence = list(stream_evidence(part, detector, classifier, PipelineConfig(), times, source=source))
    n = len(part.frames)
    assert len(evidence) == part.frames["seq_id"].nunique()
    assert (times.frames, times.failed, times.crops) == (n, len(range(0, n, 5)), n - len(range(0, n, 5)))
    assert len(times.failures) == times.failed and times.failures[0][1] == "truncated"
