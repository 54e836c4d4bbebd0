"""``hakuna data lila`` against a local HTTP server serving a small fake LILA container laid out as LILA publishes
it (metadata and images under two sibling prefixes), with a file name holding a space, a dropped connection, a
404, a build where everything fails, a dry run, malformed metadata, and a run killed half-way then resumed.

Where each fact of the fake layout comes from (public sources, not our code):

* the container roots of LILA's three copies, and that file names are the same relative to each of them:
  MegaDetector's ``megadetector/data_management/lila/lila_common.py`` (``lila_base_urls``: azure
  ``https://lilawildlife.blob.core.windows.net/lila-wildlife/``, gcp ``https://storage.googleapis.com/
  public-datasets-lila/``, aws ``.../agentmorris/lila-wildlife/``);
* the metadata under ``snapshotserengeti-v-2-0/``: the all-seasons ``SnapshotSerengeti_S1-11_v2_1.json.zip`` and
  the boxes ``SnapshotSerengetiBboxes_20190903.json.zip`` (IDSAI-Exeter/darwin ``download.sh``; the all-seasons
  URL ``.../lila-wildlife/snapshotserengeti-v-2-0/SnapshotSerengeti_S1-11_v2_1.json.zip`` in public LILA dataset
  catalogues); per-season files ``SnapshotSerengetiS01.json`` .. (LILA's Snapshot Serengeti page, and public
  scripts that read ``SnapshotSerengetiS01.json``); each archive holds one JSON file;
* the images under the sibling prefix ``.../lila-wildlife/snapshotserengeti-unzipped/<file_name>``, ``file_name``
  as in the metadata (``S1/B04/B04_R1/S1_B04_R1_PICT0001.JPG``): public download scripts build
  ``IMAGE_BASE_URL = ".../lila-wildlife/snapshotserengeti-unzipped/"`` + ``file_name``;
* a name with a space must be percent-encoded in the request (RFC 3986 section 2.1; Python's http.client refuses a
  raw space in a URL).
"""

import json
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.parse
import zipfile
from collections import Counter
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

from camtrap.dataset import read_train
from camtrap.labels import COLUMNS
from camtrap.lila_fetch import ALL_SEASONS_ARCHIVE, IMAGES_PREFIX, METADATA_PREFIX, season_archive
from camtrap.synth import SynthConfig, generate
from hakuna.cli import main
from tests.conftest import hakuna_command, send_range_headers

SPACED = " copy.JPG"  # the first season-1 image is renamed "..._PICTnnnn copy.JPG" (a name with a space)


def _zip_json(path: Path, member: str, data) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, json.dumps(data))


def _fake_lila(tmp: Path) -> tuple[Path, dict]:
    """A LILA container made from a synthetic dataset (see the module docstring for the layout's sources);
    returns the served folder (holding ``lila-wildlife/``) and the images' bytes by file name."""
    out = generate(SynthConfig(sequences=40, seed=9, size=(96, 72)), tmp / "synth", workers=1)
    tree = tmp / "tree"
    meta, images = tree / "lila-wildlife" / METADATA_PREFIX, tree / "lila-wildlife" / IMAGES_PREFIX
    meta.mkdir(parents=True)
    data = json.loads(out.lila_json.read_text())
    boxes = json.loads(out.boxes_json.read_text())
    first = next(im for im in data["images"] if im["seq_id"].startswith("SER_S1#"))
    source = {im["file_name"]: im["file_name"] for im in data["images"]}
    spaced = first["file_name"].removesuffix(".JPG") + SPACED
    source[spaced] = source.pop(first["file_name"])
    for im in data["images"] + boxes["images"]:
        if im["file_name"] == first["file_name"]:
            im["file_name"] = spaced
    for season in (1, 2, 3, 4, 5):
        keep = {im["id"] for im in data["images"] if im["seq_id"].startswith(f"SER_S{season}#")}
        part = {**data, "images": [im for im in data["images"] if im["id"] in keep],
                "annotations": [a for a in data["annotations"] if a["image_id"] in keep]}  # fmt: skip
        _zip_json(meta / season_archive(season), f"SnapshotSerengetiS{season:02d}.json", part)
    _zip_json(meta / ALL_SEASONS_ARCHIVE, "SnapshotSerengeti_S1-11_v2_1.json", data)
    _zip_json(meta / "SnapshotSerengetiBboxes_20190903.json.zip", "SnapshotSerengetiBboxes_20190903.json", boxes)
    originals = {}
    for name, orig in source.items():
        season = int(name.split("/")[0][1:])
        src = (out.train_image_root / f"SnapshotSerengeti_S{season:02d}_v2_0" / orig) if season < 5 \
            else out.test_data / orig  # fmt: skip
        dest = images / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        originals[name] = dest.read_bytes()
    return tree, originals


def _served(rel: str) -> str:
    """The path a request asks for, as the server sees it after percent-decoding."""
    return "lila-wildlife/" + IMAGES_PREFIX + rel


class _Handler(SimpleHTTPRequestHandler):
    """Serves the tree with Range support; cuts named files once; can be slowed down."""

    gets: Counter = Counter()
    ranges: list = []
    cut_once: set = set()
    delay_s = 0.0

    def log_message(self, *args):
        pass

    def do_GET(self):
        rel = urllib.parse.unquote(self.path.lstrip("/"))
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
    yield f"http://127.0.0.1:{httpd.server_address[1]}/lila-wildlife/", tree, originals
    httpd.shutdown()


def _args(url, out, *extra):
    return ["data", "lila", "--out", str(out), "--seasons", "1", "2", "--empty", "1.0", "--boxes", "--base-url", url,
            "--workers", "4", "--retries", "2", "--no-progress", *extra]  # fmt: skip


def test_builds_the_competition_layout_with_failures_recorded(lila_server, tmp_path, capsys):
    url, tree, originals = lila_server
    images = sorted(f for f in originals if f.startswith(("S1/", "S2/")))
    spaced = next(f for f in images if f.endswith(SPACED))
    gone, cut = [f for f in images if f != spaced][:2]
    (tree / "lila-wildlife" / IMAGES_PREFIX / gone).unlink()  # a 404
    _Handler.cut_once = {_served(cut)}  # a dropped connection, resumed by the retry
    out = tmp_path / "out"
    assert main(_args(url, out)) == 0
    meta = pd.read_csv(out / "train" / "train_metadata.csv")
    assert list(meta.columns) == ["file_name", "seq_id", "datetime"]
    assert gone not in set(meta["file_name"]) and set(meta["file_name"]) == set(images) - {gone}
    for f in meta["file_name"]:
        season = int(f.split("/")[0][1:])
        assert (out / "train" / f"SnapshotSerengeti_S{season:02d}_v2_0" / f).read_bytes() == originals[f]
    assert spaced in set(meta["file_name"]) and _Handler.gets[_served(spaced)] == 1
    assert (_served(cut), f"bytes={len(originals[cut]) // 2}-") in _Handler.ranges
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
    assert again == {_served(gone): 1}  # only the 404, asked once more (a 404 is not retried)


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
    assert not refetched & {_served(f) for f in finished}
    meta = pd.read_csv(train / "train_metadata.csv")
    assert set(meta["file_name"]) == {f for f in originals if f.startswith(("S1/", "S2/"))}


def test_all_seasons_file_gives_the_same_layout(lila_server, tmp_path):
    url, _, originals = lila_server
    out = tmp_path / "out"
    assert main(_args(url, out, "--all-seasons-file")) == 0
    assert _Handler.gets["lila-wildlife/" + METADATA_PREFIX + ALL_SEASONS_ARCHIVE] == 1
    assert not any(k.endswith(season_archive(1)) for k in _Handler.gets)
    meta = pd.read_csv(out / "train" / "train_metadata.csv")
    assert set(meta["file_name"]) == {f for f in originals if f.startswith(("S1/", "S2/"))}


def test_dry_run_prints_counts_and_fetches_no_image(lila_server, tmp_path, capsys):
    url, _, originals = lila_server
    n = sum(f.startswith(("S1/", "S2/")) for f in originals)
    assert main(_args(url, tmp_path / "out", "--dry-run")) == 0
    line = capsys.readouterr().out
    assert f"would fetch {n} of {n} images" in line and "GB" in line
    assert not any(IMAGES_PREFIX in k for k in _Handler.gets)


def test_a_build_where_every_download_fails_exits_non_zero(lila_server, tmp_path, capsys):
    url, tree, _ = lila_server
    shutil.rmtree(tree / "lila-wildlife" / IMAGES_PREFIX)  # every image is a 404
    assert main(_args(url, tmp_path / "out")) == 1
    assert "nothing was fetched" in capsys.readouterr().err
    # a base address that is not a container root (the old default pointed inside snapshotserengeti-v-2-0/)
    assert main(_args(url + METADATA_PREFIX, tmp_path / "out2")) == 2


@pytest.mark.parametrize("bad", ["season", "boxes"])
def test_malformed_metadata_is_a_one_line_error(lila_server, tmp_path, capsys, bad):
    url, tree, _ = lila_server
    meta = tree / "lila-wildlife" / METADATA_PREFIX
    if bad == "season":  # a season file whose JSON is []
        _zip_json(meta / season_archive(1), "SnapshotSerengetiS01.json", [])
    else:  # a boxes image without "id"
        with zipfile.ZipFile(meta / "SnapshotSerengetiBboxes_20190903.json.zip") as zf:
            boxes = json.loads(zf.read("SnapshotSerengetiBboxes_20190903.json"))
        for im in boxes["images"]:
            im.pop("id")
        _zip_json(meta / "SnapshotSerengetiBboxes_20190903.json.zip", "SnapshotSerengetiBboxes_20190903.json", boxes)
    assert main(_args(url, tmp_path / "out")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and ("not an object" if bad == "season" else "has no 'id'") in err
