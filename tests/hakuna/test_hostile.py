"""Hakuna tried as a hostile but realistic user would: crafted model files, metadata that points outside the data
folder, decompression bombs, invalid labels, unreadable inputs and outputs.  Every case ends in a one-line error
(exit 2) or a per-file failure, and the malicious files never create their marker."""

import json
import math
import os
import shutil
import struct
import subprocess
import sys
import zlib

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from camtrap.labels import COLUMNS
from hakuna.cli import main
from tests.camtrap.test_safeload import Payload, plain_payload
from tests.conftest import make_random_classifier, make_random_detector


def _one_line_error(capsys, code: int, *fragments: str) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.count("\n") == 0 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    return err


def _photos(folder, n=3):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(np.full((60, 80, 3), 40 * i, np.uint8)).save(folder / f"p{i}.jpg")
    pd.DataFrame({"path": [f"p{i}.jpg" for i in range(n)], "label": "zebra"}).to_csv(folder / "photos.csv", index=False)
    return folder / "photos.csv"


def test_malicious_classifier_never_runs(tmp_path, capsys, random_detector):
    marker = tmp_path / "PWNED"
    evil = plain_payload(tmp_path / "evil.pt", marker)
    csv = _photos(tmp_path / "photos")
    code = main(["classify", "--model", str(evil), "--images-csv", str(csv), "--out", str(tmp_path / "o.csv")])
    _one_line_error(capsys, code, "evil.pt: refused", "posix.system", "--trust-model")
    code = main(["predict", "--data", str(tmp_path), "--detector", str(random_detector), "--classifier", str(evil),
                 "--fusion", str(tmp_path / "f.json"), "--out", str(tmp_path / "s.csv")])  # fmt: skip
    _one_line_error(capsys, code, "evil.pt: refused")
    assert not marker.exists()


@pytest.fixture()
def disguised_detector(tmp_path):
    """A real ultralytics checkpoint with a payload hidden beside the model, and the old check's magic words."""
    good = make_random_detector(tmp_path)
    ckpt = torch.load(good, weights_only=False)
    ckpt["train_args"] = {"model": "ultralytics.nn.tasks.DetectionModel", "note": Payload(tmp_path / "PWNED")}
    torch.save(ckpt, tmp_path / "disguised.pt")
    return tmp_path / "disguised.pt"


def test_disguised_detector_never_runs(tmp_path, capsys, disguised_detector):
    imgs = tmp_path / "imgs"
    _photos(imgs)
    code = main(["detect", "--model", str(disguised_detector), "--images", str(imgs), "--out", str(tmp_path / "r.json"),
                 "--device", "cpu", "--no-progress"])  # fmt: skip
    _one_line_error(capsys, code, "disguised.pt: refused", "posix.system")
    code = main(["detector", "export-onnx", str(disguised_detector)])
    _one_line_error(capsys, code, "refused")
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "r.json").exists()


def test_metadata_paths_stay_in_the_data_folder(tmp_path, random_detector):
    data = tmp_path / "data"
    _photos(data)
    (tmp_path / "secret.jpg").write_bytes((data / "p0.jpg").read_bytes())
    names = ["p0.jpg", "../secret.jpg", "../nothing.jpg", str(tmp_path / "secret.jpg"), str(tmp_path / "nothing.jpg")]
    pd.DataFrame({"seq_id": [f"s{i}" for i in range(5)], "file_name": names}).to_csv(tmp_path / "m.csv", index=False)
    out = tmp_path / "r.json"
    assert main(["detect", "--model", str(random_detector), "--metadata", str(tmp_path / "m.csv"), "--image-root",
                 str(data), "--out", str(out), "--device", "cpu", "--no-progress"]) == 0  # fmt: skip
    entries = {e["file"]: e for e in json.loads(out.read_text())["images"]}
    assert isinstance(entries["p0.jpg"]["detections"], list)
    failures = {entries[n]["failure"] for n in names[1:]}
    assert failures == {"outside the data folder"}  # the same answer whether or not the file exists


def _bomb_png(path, side=13000):
    """A 1-bit PNG of side x side pixels: about 20 KB on disk, 500 MB as RGB."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = zlib.compress(b"\x00" * ((side // 8 + 1) * side), 9)
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b""))
    return path


def test_decompression_bomb_is_refused_from_its_header(tmp_path, random_detector):
    imgs = tmp_path / "imgs"
    _photos(imgs, 1)
    bomb = _bomb_png(imgs / "bomb.png")
    assert bomb.stat().st_size < 40_000
    out = tmp_path / "r.json"
    assert main(["detect", "--model", str(random_detector), "--images", str(imgs), "--out", str(out), "--device",
                 "cpu", "--no-progress"]) == 0  # fmt: skip
    entries = {e["file"]: e for e in json.loads(out.read_text())["images"]}
    assert entries["bomb.png"]["failure"].startswith("image too large: 13000 x 13000 pixels")
    assert isinstance(entries["p0.jpg"]["detections"], list)


def _labels(tmp_path, column: str | None = None, value: str = ""):
    """Labels for four empty sequences (one cell of s1 set to ``value`` when ``column`` is given) and a submission."""
    ids = pd.Index([f"s{i}" for i in range(4)], name="seq_id")
    labels = pd.DataFrame("0", index=ids, columns=list(COLUMNS))
    labels["empty"] = "1"
    if column:
        labels.loc["s1", column] = value
    labels.to_csv(tmp_path / "labels.csv")
    pd.DataFrame(0.02, index=ids, columns=list(COLUMNS)).to_csv(tmp_path / "sub.csv")


@pytest.mark.parametrize(("column", "value", "message"), [("empty", "2", "labels.csv:3: empty='2' for 's1'"),
                                                          ("zebra", "", "labels.csv:3: blank zebra for 's1'")])
def test_score_refuses_invalid_labels(tmp_path, capsys, column, value, message):
    _labels(tmp_path, column, value)
    code = main(["score", str(tmp_path / "sub.csv"), str(tmp_path / "labels.csv")])
    _one_line_error(capsys, code, message, "labels must be 0 or 1")


def test_unreadable_inputs_and_outputs_are_one_line_errors(tmp_path, capsys, random_detector):
    imgs = tmp_path / "imgs"
    _photos(imgs)
    (tmp_path / "latin1.csv").write_bytes(b"seq_id,file_name\ns1,caf\xe9.jpg\n")
    code = main(["detect", "--model", str(random_detector), "--metadata", str(tmp_path / "latin1.csv"), "--image-root",
                 str(imgs), "--out", str(tmp_path / "r.json")])  # fmt: skip
    _one_line_error(capsys, code, "latin1.csv:2: not UTF-8 text")
    (tmp_path / "out_dir").mkdir()
    code = main(["detect", "--model", str(random_detector), "--images", str(imgs), "--out", str(tmp_path / "out_dir")])
    _one_line_error(capsys, code, "out_dir: the results file is a folder")
    onnx = tmp_path / "cut.onnx"
    onnx.write_bytes(b"\x08\x07\x12\x04junk" * 10)
    code = main(["detect", "--model", str(onnx), "--images", str(imgs), "--out", str(tmp_path / "r.json")])
    _one_line_error(capsys, code, "cut.onnx: not a readable ONNX model")
    (tmp_path / "random.pt").write_bytes(os.urandom(2000))
    code = main(["classify", "--model", str(tmp_path / "random.pt"), "--images-csv", str(imgs / "photos.csv"), "--out",
                 str(tmp_path / "o.csv")])  # fmt: skip
    _one_line_error(capsys, code, "random.pt: not a PyTorch checkpoint")
    (tmp_path / "fake.zip").write_bytes(b"this is not a zip")
    code = main(["run-submission", str(tmp_path / "fake.zip"), "--data", str(imgs), "--out", str(tmp_path / "s.csv"),
                 "--allow-network"])  # fmt: skip
    _one_line_error(capsys, code, "fake.zip: not a readable zip file")
    code = main(["weights", "fetch", "mdv1000-sorrel", "--cache", "/proc/hakuna-cache"])
    _one_line_error(capsys, code, "/proc/hakuna-cache")
    code = main(["weights", "fetch", "mdv1000-sorrel", "--cache", str(tmp_path / "cache"), "--url",
                 "http://127.0.0.1:9/nothing.pt"])  # fmt: skip
    _one_line_error(capsys, code, "download of http://127.0.0.1:9/nothing.pt stopped")


@pytest.mark.parametrize("command", [("classifier", "train", "--recipe", "fewshot"),
                                     ("classifier", "train", "--recipe", "full"), ("classifier", "cv")])
def test_photos_that_cannot_be_read_are_a_one_line_error(tmp_path, capsys, command):
    csv = tmp_path / "photos.csv"
    pd.DataFrame({"path": ["gone.jpg", "text.jpg"], "label": "zebra"}).to_csv(csv, index=False)
    (tmp_path / "text.jpg").write_text("not an image")
    out = ["--out", str(tmp_path / "m.pt"), "--no-progress"] if "train" in command else []
    code = main([*command, "--images-csv", str(csv), *out, "--cache-dir", str(tmp_path / "cache"), "--device",
                 "cpu"])  # fmt: skip
    _one_line_error(capsys, code, "2 of 2 training images could not be read: gone.jpg (missing file), text.jpg (not an "
                                  "image")


def test_outputs_follow_the_umask(tmp_path):
    from camtrap.fileio import atomic_write_text

    old = os.umask(0o027)
    try:
        path = atomic_write_text(tmp_path / "x.txt", "hi")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o640


def test_light_commands_do_not_import_torch(tmp_path):
    _labels(tmp_path)
    code = ("import sys; from hakuna.cli import main; rc = main(['score', sys.argv[1], sys.argv[2]]); "
            "print('torch' in sys.modules, 'ultralytics' in sys.modules); sys.exit(rc)")
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path / "sub.csv"), str(tmp_path / "labels.csv")],
                         capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "False False"


@pytest.mark.parametrize("stage", ["classifier", "detector"])
def test_models_with_nan_weights_are_refused(tmp_path, capsys, stage):
    """A damaged or hostile checkpoint with NaN weights once gave blank (NaN) probabilities, or a detector that found
    nothing in any photo; now it is a one-line refusal at load."""
    csv = _photos(tmp_path / "imgs")
    if stage == "classifier":
        ckpt = torch.load(make_random_classifier(tmp_path), weights_only=True)
        ckpt["model"] = {k: v.fill_(math.nan) if v.is_floating_point() else v for k, v in ckpt["model"].items()}
        torch.save(ckpt, tmp_path / "nan.pt")
        args = ["classify", "--images-csv", str(csv), "--out", str(tmp_path / "o.csv")]
    else:
        ckpt = torch.load(make_random_detector(tmp_path), weights_only=False)
        with torch.no_grad():
            next(ckpt["model"].parameters())[0, 0, 0, 0] = math.inf
        torch.save(ckpt, tmp_path / "nan.pt")
        args = ["detect", "--images", str(tmp_path / "imgs"), "--out", str(tmp_path / "o.json")]
    code = main([*args, "--model", str(tmp_path / "nan.pt"), "--device", "cpu", "--no-progress"])
    _one_line_error(capsys, code, "nan.pt: weight '", "holds NaN or infinite values")
    assert not (tmp_path / "o.csv").exists() and not (tmp_path / "o.json").exists()


def test_resume_refuses_another_detectors_results(tmp_path, capsys, random_detector):
    """A checkpoint (or finished file) left by another detector was resumed and its boxes mixed into this run's."""
    imgs = tmp_path / "imgs"
    _photos(imgs)
    from detector.model import DetectorSpec, write_spec

    other = tmp_path / "other" / "random.pt"  # the same file name and version, another input size
    other.parent.mkdir()
    shutil.copyfile(random_detector, other)
    write_spec(other, DetectorSpec(name="random-tiny", input_size=320, output_threshold=0.3))
    out = tmp_path / "r.json"
    args = ["detect", "--images", str(imgs), "--out", str(out), "--device", "cpu", "--no-progress", "--resume"]
    assert main([*args, "--model", str(random_detector)]) == 0
    before = out.read_bytes()
    code = main([*args, "--model", str(other)])
    _one_line_error(capsys, code, "r.json: written by detector 'random.pt'", "'image_size': 256", "'image_size': 320",
                    "without --resume")  # fmt: skip
    assert out.read_bytes() == before


def test_ultralytics_never_goes_online_or_installs(tmp_path, random_detector):
    """Loading a checkpoint imported ultralytics before it was told it is offline: it probed DNS and, on a machine
    with a network, a file PIL cannot identify in a photo folder would have made it `pip install pi-heif`."""
    (tmp_path / "text.jpg").write_text("not an image")
    code = ("import sys; import detector.model as m; m.load(sys.argv[1], device='cpu'); import ultralytics.utils as u; "
            "from camtrap.images import load_image; img = load_image(sys.argv[2]); "
            "print(u.ONLINE, u.AUTOINSTALL, img.failure.value, img.detail)")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("YOLO_")}
    run = subprocess.run([sys.executable, "-c", code, str(random_detector), str(tmp_path / "text.jpg")], env=env,
                         capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == f"False False not an image cannot identify image file " \
                                                  f"'{tmp_path / 'text.jpg'}'"  # fmt: skip


def test_a_nul_byte_in_a_listed_path_is_a_failure_not_a_crash(tmp_path, capsys):
    """A path with a NUL byte in an --images-csv raised ValueError from inside a decode thread: a traceback."""
    csv = _photos(tmp_path / "imgs", 2)
    csv.write_text("path,label\np0.jpg,zebra\nbad\x00.jpg,zebra\n/abs\x00/x.jpg,zebra\n")
    code = main(["classify", "--model", str(make_random_classifier(tmp_path)), "--images-csv", str(csv), "--out",
                 str(tmp_path / "o.csv"), "--device", "cpu", "--no-progress"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    out = pd.read_csv(tmp_path / "o.csv", keep_default_na=False)
    assert list(out["failure"]) == ["", "missing file", "missing file"]
    assert np.isfinite(out.iloc[0, 2:].astype(float)).all()


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_nan_tokens_in_json_are_refused_at_load(tmp_path, capsys, token):
    """Python's JSON parser takes NaN and Infinity; a field passed on unchecked (SpeciesNet's classifications) once
    carried them into a results file that other tools cannot parse."""
    pred = {"filepath": "a.jpg", "detections": [], "prediction": "x;a;b;c;d;e;lion", "prediction_score": 0.9,
            "classifications": {"classes": ["x;a;b;c;d;e;lion"], "scores": ["SCORE"]}}  # fmt: skip
    (tmp_path / "p.json").write_text(json.dumps({"predictions": [pred]}).replace('"SCORE"', token))
    code = main(["data", "speciesnet", "--predictions", str(tmp_path / "p.json"), "--out", str(tmp_path / "o.json")])
    _one_line_error(capsys, code, "p.json: not valid JSON: predictions[0].classifications.scores[0]: "
                                  f"{token} is not a JSON number")
    assert not (tmp_path / "o.json").exists()


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_max_pixels_is_the_guard_above_pils_own_limit(tmp_path, monkeypatch):
    """PIL refuses more than 179 MP by itself, so --max-pixels above that was a promise not kept: a 196 MP image was
    refused with PIL's message whatever the option said.  Only the header is read here."""
    from camtrap.images import load_image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # restored after the test
    bomb = _bomb_png(tmp_path / "bomb.png", side=14000)
    got = load_image(bomb, max_pixels=150_000_000)
    assert got.detail == "14000 x 14000 pixels is over the limit of 150,000,000", got.detail
    with Image.open(bomb) as img:  # PIL now lets through what the caller allowed
        assert img.size == (14000, 14000)


def test_onnx_models_with_nan_weights_are_refused(tmp_path, capsys):
    """The ONNX export of a model, with one NaN written into its first convolution: blank probabilities before."""
    import onnx
    from onnx import numpy_helper

    csv = _photos(tmp_path / "imgs")
    assert main(["classifier", "export-onnx", str(make_random_classifier(tmp_path))]) == 0
    model = onnx.load(str(tmp_path / "classifier.onnx"))
    init = next(i for i in model.graph.initializer if numpy_helper.to_array(i).size > 10)
    values = numpy_helper.to_array(init).copy()
    values.flat[0] = math.nan
    init.CopyFrom(numpy_helper.from_array(values, init.name))
    onnx.save(model, str(tmp_path / "nan.onnx"))
    capsys.readouterr()
    code = main(["classify", "--model", str(tmp_path / "nan.onnx"), "--images-csv", str(csv), "--out",
                 str(tmp_path / "o.csv"), "--device", "cpu", "--no-progress"])  # fmt: skip
    _one_line_error(capsys, code, f"nan.onnx: weight {init.name!r} holds NaN or infinite values")
    assert not (tmp_path / "o.csv").exists()


def test_class_names_and_paths_are_never_formulas_in_classify_csv(tmp_path):
    """Class names come from people's label files: `=1+1` and `@SUM(A1)` were formulas in classify's CSV header."""
    imgs = tmp_path / "imgs"
    _photos(imgs, 1)
    (imgs / "p0.jpg").rename(imgs / "=cmd.jpg")
    csv = tmp_path / "photos.csv"
    csv.write_text("path,label\n=cmd.jpg,zebra\n")
    model = make_random_classifier(tmp_path, classes=("=1+1", "@SUM(A1)", "failure", "path", "zebra"))
    assert main(["classify", "--model", str(model), "--images-csv", str(csv), "--root", str(imgs), "--out",
                 str(tmp_path / "o.csv"), "--device", "cpu", "--no-progress"]) == 0  # fmt: skip
    lines = (tmp_path / "o.csv").read_text().splitlines()
    assert lines[0] == "path,failure,p_=1+1,p_@SUM(A1),p_failure,p_path,p_zebra"  # p_: no formula, no collision
    assert lines[1].startswith("'=cmd.jpg,,"), lines[1]


def test_review_thumbnails_are_written_atomically(tmp_path, monkeypatch):
    """Existing thumbnails are reused, and one was written in place: a run killed while writing it left a broken
    JPEG that every rebuild kept.  A run stopped before the rename now leaves nothing under the final name."""
    import cv2

    from hakuna.review import _thumb

    rgb = np.full((60, 80, 3), 90, np.uint8)
    path = tmp_path / "thumbs" / "a.jpg"
    path.parent.mkdir(parents=True)

    def killed(*args):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(os, "replace", killed)
        with pytest.raises(KeyboardInterrupt):
            _thumb(path, rgb, 40)
    assert list(path.parent.iterdir()) == []
    _thumb(path, rgb, 40)
    assert cv2.imread(str(path)).shape == (30, 40, 3)
