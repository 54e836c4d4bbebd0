"""``hakuna data lila`` against a local HTTP server serving a small fake LILA tree (per-season archives, boxes,
images), with a dropped connection, a 404, and a run killed half-way then resumed."""

import json
import os
import shutil
import signal
import subprocess
import threading
import time
import zipfile
from collections import Counter
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

from camtrap.dataset import read_train
from camtrap.labels import COLUMNS
from camtrap.lila_fetch import IMAGES_PREFIX, season_archive
from camtrap.synth import SynthConfig, generate
from hakuna.cli import main
from tests.conftest import hakuna_command, send_range_headers


def _fake_lila(tmp: Path) -> tuple[Path, dict]:
    """A LILA-like tree made from a synthetic dataset: per-season archives, a boxes archive, unzipped images."""
    out = generate(SynthConfig(sequences=40, seed=9, size=(96, 72)), tmp / "synth", workers=1)
    tree = tmp / "tree"
    data = json.loads(out.lila_json.read_text())
    for season in (1, 2, 3, 4, 5):
        keep = {im["id"] for im in data["images"] if im["seq_id"].startswith(f"SER_S{season}#")}
        part = {**data, "images": [im for im in data["images"] if im["id"] in keep],
                "annotations": [a for a in data["annotations"] if a["image_id"] in keep]}  # fmt: skip
        tree.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(tree / season_archive(season), "w") as zf:
            zf.writestr(f"SnapshotSerengetiS{season:02d}.json", json.dumps(part))
    with zipfile.ZipFile(tree / "SnapshotSerengetiBboxes_20190903.json.zip", "w") as zf:
        zf.write(out.boxes_json, "SnapshotSerengetiBboxes_20190903.json")
    originals = {}
    for im in data["images"]:
        season = int(im["seq_id"][5:].split("#")[0])
        src = (out.train_image_root / f"SnapshotSerengeti_S{season:02d}_v2_0" / im["file_name"]) if season < 5 \
            else out.test_data / im["file_name"]  # fmt: skip
        dest = tree / IMAGES_PREFIX / im["file_name"]
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        originals[im["file_name"]] = dest.read_bytes()
    return tree, originals


class _Handler(SimpleHTTPRequestHandler):
    """Serves the tree with Range support; cuts named files once; can be slowed down."""

    gets: Counter = Counter()
    ranges: list = []
    cut_once: set = set()
    delay_s = 0.0

    def log_message(self, *args):
        pass

    def do_GET(self):
        rel = self.path.lstrip("/")
        type(self).gets[rel] += 1
        path = Path(self.directory) / rel
        if not path.is_file():
            self.send_error(404)
            return
        time.sleep(type(self).delay_s)
        body = path.read_bytes()
        if rng := self.headers.get("Range"):
            type(self).ranges.append((rel, rng))
        start = send_range_headers(self, body)
        if rel in type(self).cut_once:
            type(self).cut_once.discard(rel)
            self.wfile.write(body[start : start + len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(body[start:])


@pytest.fixture()
def lila_server(tmp_path):
    tree, originals = _fake_lila(tmp_path)
    _Handler.gets, _Handler.ranges, _Handler.cut_once, _Handler.delay_s = Counter(), [], set(), 0.0
    handler = lambda *a, **k: _Handler(*a, directory=str(tree), **k)  # noqa: E731
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", tree, originals
    httpd.shutdown()


def _args(url, out, *extra):
    return ["data", "lila", "--out", str(out), "--seasons", "1", "2", "--empty", "1.0", "--boxes", "--base-url", url,
            "--workers", "4", "--retries", "2", "--no-progress", *extra]  # fmt: skip


def test_builds_the_competition_layout_with_failures_recorded(lila_server, tmp_path, capsys):
    url, tree, originals = lila_server
    images = sorted(f for f in originals if f.startswith(("S1/", "S2/")))
    gone, cut = images[0], images[1]
    (tree / IMAGES_PREFIX / gone).unlink()  # a 404
    _Handler.cut_once = {IMAGES_PREFIX + cut}  # a dropped connection, resumed by the retry
    out = tmp_path / "out"
    assert main(_args(url, out)) == 0
    meta = pd.read_csv(out / "train" / "train_metadata.csv")
    assert list(meta.columns) == ["file_name", "seq_id", "datetime"]
    assert gone not in set(meta["file_name"]) and set(meta["file_name"]) == set(images) - {gone}
    for f in meta["file_name"]:
        season = int(f.split("/")[0][1:])
        assert (out / "train" / f"SnapshotSerengeti_S{season:02d}_v2_0" / f).read_bytes() == originals[f]
    assert (IMAGES_PREFIX + cut, f"bytes={len(originals[cut]) // 2}-") in _Handler.ranges
    failures = pd.read_csv(out / "train" / "download_failures.csv")
    assert failures["file_name"].tolist() == [gone] and "HTTP 404" in failures["reason"].iat[0]
    labels = pd.read_csv(out / "train" / "train_labels.csv")
    assert list(labels.columns) == ["seq_id", *COLUMNS] and set(labels["seq_id"]) == set(meta["seq_id"])
    boxes = json.loads((out / "lila" / "SnapshotSerengetiBboxes_selected.json").read_text())
    assert {im["file_name"] for im in boxes["images"]} <= set(meta["file_name"]) and boxes["annotations"]
    data = read_train(out / "train" / "train_metadata.csv", out / "train" / "train_labels.csv", out / "train")
    assert len(data.frames) == len(meta)
    capsys.readouterr()
    assert main(["summary", "--data", str(out)]) == 0 and "sequences" in capsys.readouterr().out
    model = tmp_path / "m.pt"
    assert main(["classifier", "train", "--data", str(out), "--source", "frames", "--recipe", "full", "--epochs", "1",
                 "--input-size", "32", "--no-pretrained", "--out", str(model), "--device", "cpu",
                 "--no-progress"]) == 0  # fmt: skip
    before = Counter(_Handler.gets)
    assert main(_args(url, out)) == 0  # a rerun fetches only what is still missing
    again = {k: v - before[k] for k, v in _Handler.gets.items() if v - before[k]}
    assert again == {IMAGES_PREFIX + gone: 1}  # only the 404, asked once more (a 404 is not retried)


def test_killed_run_resumes_without_refetching(lila_server, tmp_path):
    url, _, originals = lila_server
    _Handler.delay_s = 0.05
    out = tmp_path / "out"
    proc = subprocess.Popen(hakuna_command(*_args(url, out, "--workers", "2")), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    train = out / "train"
    deadline = time.time() + 60
    while time.time() < deadline and len(list(train.rglob("*.JPG"))) < 8:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p.relative_to(p.parents[3]).as_posix() for p in train.rglob("*.JPG")}
    assert len(finished) >= 8 and not (train / "train_metadata.csv").exists()
    before = Counter(_Handler.gets)
    _Handler.delay_s = 0.0
    assert main(_args(url, out)) == 0
    refetched = {k for k, v in _Handler.gets.items() if v > before[k]}
    assert not refetched & {IMAGES_PREFIX + f for f in finished}
    meta = pd.read_csv(train / "train_metadata.csv")
    assert set(meta["file_name"]) == {f for f in originals if f.startswith(("S1/", "S2/"))}
