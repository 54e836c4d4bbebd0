"""The review site, checked in a real headless browser (Debian's chromium driven by Playwright)."""

import json
import shutil

import numpy as np
import pytest

from camtrap.dataset import read_labels, read_test
from camtrap.labels import SPECIES
from camtrap.lila import read_lila_boxes
from camtrap.mdjson import results_from_boxes
from camtrap.results import CropPrediction
from camtrap.synth import SynthConfig, generate
from classifier.predict import with_classifications
from hakuna.review import build_review


def _species_by_file(boxes_json):
    """The generator's species for each box, in file order (the order results_from_boxes keeps)."""
    raw = json.loads(boxes_json.read_text())
    files = {im["id"]: im["file_name"] for im in raw["images"]}
    out = {}
    for ann in raw["annotations"]:
        if "bbox" in ann:
            out.setdefault(files[ann["image_id"]], []).append(ann["species"])
    return out


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("review")
    out = generate(SynthConfig(sequences=60, seed=5, size=(320, 240)), root / "data")
    test, _ = read_test(out.test_data)
    results = results_from_boxes(list(test.frames["file_name"]), read_lila_boxes(out.boxes_json))
    species = _species_by_file(out.boxes_json)
    rng = np.random.default_rng(0)
    preds = []
    for frame in results.frames:
        for i, det in enumerate(frame.detections):
            probs = np.full(len(SPECIES), 0.002)
            probs[SPECIES.index(species[frame.file][i])] = rng.uniform(0.05, 0.99)
            preds.append(CropPrediction(frame.file, i, det, tuple(probs / probs.sum())))
    results = with_classifications(results, preds, SPECIES)
    broken = test.frames["file_name"].iat[0]
    (out.test_data / broken).write_bytes(b"")
    fused = read_labels(out.test_labels).astype(float).clip(0.01, 0.97)
    seq_of = dict(zip(test.frames["file_name"], test.frames["seq_id"]))
    index = build_review(results, out.test_data, root / "site", seq_of=seq_of, predictions=fused)
    return index, preds, broken, out.test_data


def test_site_files_and_thumbnails(site):
    index, preds, _, _ = site
    data = json.loads(index.with_name("data.js").read_text().split("=", 1)[1].rstrip(";\n"))
    assert len(data["crops"]) == len(preds)
    assert all((index.parent / c["thumb"]).is_file() for c in data["crops"])
    probs = [c["prob"] for c in data["crops"]]
    assert probs == sorted(probs, reverse=True)


@pytest.fixture(scope="module")
def page(site):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is installed by `make test`")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (`make test` installs it where it can)")
    index, preds, broken, _ = site
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"])  # fmt: skip
        pg = browser.new_page()
        errors = []
        pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(index.as_uri())
        pg.wait_for_selector(".crop")
        yield pg, errors, preds, broken
        browser.close()


def test_loads_without_console_errors(page):
    pg, errors, preds, broken = page
    assert errors == []
    assert pg.locator(".crop").count() == len(preds)
    assert broken in pg.locator("#failure-rows").inner_text()


def test_filters_change_what_is_shown(page):
    pg, errors, preds, _ = page
    top = {}
    for p in preds:
        sp = SPECIES[int(np.argmax(p.probs))]
        top[sp] = top.get(sp, 0) + 1
    species = min(top, key=top.get)
    pg.select_option("#species", species)
    assert pg.locator(".crop").count() == top[species]
    pg.select_option("#species", "")
    pg.fill("#min-conf", "0.7")
    pg.dispatch_event("#min-conf", "input")
    confident = sum(1 for p in preds if max(p.probs) >= 0.7)
    assert pg.locator(".crop").count() == confident < len(preds)
    pg.fill("#min-conf", "0")
    pg.dispatch_event("#min-conf", "input")
    assert errors == []


def test_click_opens_sequence_view(page):
    pg, errors, _, _ = page
    first = pg.locator(".crop").first
    seq = first.get_attribute("data-seq")
    first.click()
    assert pg.locator("#sequence").is_visible()
    assert pg.locator("#seq-title").inner_text() == seq
    assert pg.locator("#frames .frame").count() >= 1 and pg.locator("#frames .box").count() >= 1
    assert "Sequence probabilities" in pg.locator("#fused").inner_text()
    pg.click("#close")
    assert not pg.locator("#sequence").is_visible()
    assert errors == []


def _relabel(pg, tile, label):
    tile.focus()
    pg.keyboard.press("r")
    pg.select_option("#relabel-select", label)
    pg.keyboard.press("Enter")


@pytest.mark.slow
def test_relabel_download_and_retrain(page, site, tmp_path):
    """Relabel two crops in the browser, download corrections.csv, retrain from it: both crops come out with their
    new label."""
    import pandas as pd

    from camtrap.frames import folder_frames
    from camtrap.mdjson import DetectionResults
    from camtrap.results import Detection, FrameDetections
    from classifier.predict import classify_detections, load
    from hakuna.cli import main

    pg, errors, _, _ = page
    index = site[0]
    tiles = pg.locator(".crop")
    first, second = tiles.nth(0), tiles.nth(3)
    ids = [first.get_attribute("data-id"), second.get_attribute("data-id")]
    _relabel(pg, first, "aardvark")
    _relabel(pg, second, "aardvark")
    tiles.nth(1).focus()
    pg.keyboard.press("c")
    tiles.nth(2).focus()
    pg.keyboard.press("x")
    assert first.get_attribute("data-status") == "relabelled" and first.get_attribute("data-label") == "aardvark"
    assert pg.locator("#reviewed").inner_text() == "4 reviewed"
    with pg.expect_download() as info:
        pg.click("#download")
    csv = tmp_path / "corrections.csv"
    info.value.save_as(csv)
    table = pd.read_csv(csv, dtype=str, keep_default_na=False).set_index("crop_id")
    assert table.loc[ids, "status"].tolist() == ["relabelled"] * 2
    assert table.loc[ids, "label"].tolist() == ["aardvark"] * 2
    assert (table["status"] == "rejected").sum() == 1 and (table["status"] == "confirmed").sum() == 1
    images = json.loads(index.with_name("data.js").read_text().split("=", 1)[1].rstrip(";\n"))
    image_root = site[3]
    model = tmp_path / "retrained.pt"
    assert main(["classifier", "train", "--corrections", str(csv), "--images", str(image_root), "--out", str(model),
                 "--include-unreviewed", "--recipe", "fewshot", "--fewshot-backbones", "efficientnet_lite0",
                 "--device", "cpu", "--no-progress"]) == 0  # fmt: skip
    rows = table.loc[ids]
    boxes = {}
    for r in rows.itertuples():  # the two relabelled crops, as detections of their frames
        boxes.setdefault(r.file, []).append(Detection("animal", 1.0, tuple(float(v) for v in r.bbox.split())))
    frames = tuple(FrameDetections(f, tuple(b)) for f, b in boxes.items())
    refs = {f.file: f for f in folder_frames(image_root, list(boxes))}
    clf = load(model, device="cpu")
    preds = classify_detections(clf, DetectionResults(frames), refs, threshold=0.5)
    assert [clf.spec.classes[int(np.argmax(p.probs))] for p in preds] == ["aardvark", "aardvark"]
    assert errors == [] and len(images["crops"]) == len(table)


@pytest.fixture(scope="module")
def folder_site(tmp_path_factory, random_detector):
    """A folder-mode run's review site (random models: every sequence is called empty), with a file whose name a
    spreadsheet would run as a formula."""
    from hakuna.cli import main
    from tests.conftest import make_random_classifier
    from tests.hakuna.test_folder import _jpeg, make_card

    root = tmp_path_factory.mktemp("folder-review")
    expected = make_card(root / "card")
    import datetime as dt

    _jpeg(root / "card" / "=HYPERLINK(1).JPG", dt.datetime(2024, 5, 1, 12), 99)
    clf = make_random_classifier(root)
    assert main(["predict", "--images", str(root / "card"), "--recursive", "--detector", str(random_detector),
                 "--classifier", str(clf), "--out", str(root / "out"), "--device", "cpu", "--no-progress"]) == 0
    return root / "out" / "review" / "index.html", len(expected) + 1, root / "card"


def test_folder_review_every_sequence_and_sequence_corrections(page, folder_site, tmp_path):
    import pandas as pd

    from hakuna.evaluate import corrections_as_sequences

    index, n_seqs, card = folder_site
    pg = page[0].context.browser.new_page(viewport={"width": 1200, "height": 800})
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(index.as_uri())
    pg.wait_for_selector("#seq-list li.seq")
    assert pg.locator("#seq-list li.seq").count() == n_seqs  # every sequence, empty ones included
    pg.select_option("#seq-filter", "empty")
    rows = pg.locator("#seq-list li.seq")
    best = [float(rows.nth(i).get_attribute("data-best")) for i in range(rows.count())]
    assert best == sorted(best, reverse=True) and len(best) == n_seqs  # called empty, most confident first
    rows.filter(has_text="cam01").first.click()
    assert pg.locator("#sequence").is_visible() and pg.locator("#frames .frame").count() >= 1
    assert "detector best" in pg.locator("#seq-called").inner_text()
    pg.select_option("#seq-label", "zebra")
    pg.click("#seq-relabel")
    first = pg.locator("#seq-title").inner_text()
    pg.screenshot(path=str(tmp_path / "sequence.png"))
    pg.click("#close")
    pg.locator("#seq-list li.seq", has_text="seq#00001").click()
    pg.click("#seq-confirm")
    pg.click("#close")
    pg.screenshot(path=str(tmp_path / "list.png"))
    with pg.expect_download() as info:
        pg.click("#download")
    info.value.save_as(tmp_path / "corrections.csv")
    pg.close()
    assert errors == []
    text = (tmp_path / "corrections.csv").read_text()
    assert "'=HYPERLINK(1).JPG" in text and ",=" not in text  # formula cells kept as text
    raw = pd.read_csv(tmp_path / "corrections.csv", dtype=str, keep_default_na=False).set_index("crop_id")
    assert raw.loc[f"seq:{first}", "status"] == "relabelled" and raw.loc[f"seq:{first}", "label"] == "zebra"
    part = corrections_as_sequences(tmp_path / "corrections.csv", card)
    assert part.labels.loc[first, "zebra"] == 1 and part.labels.loc["seq#00001", "empty"] == 1
    assert "=HYPERLINK(1).JPG" in set(part.frames["file_name"])  # read back as it is


def test_unreadable_sequence_is_shown_unreadable(page, tmp_path, random_detector):
    """A folder-mode sequence whose only frame is a zero-byte file is listed and opened as unreadable, never as a
    species or as called empty; its date is its mtime, said so."""
    import datetime as dt
    import os

    from hakuna.cli import main
    from tests.conftest import make_random_classifier
    from tests.hakuna.test_folder import _jpeg

    _jpeg(tmp_path / "card" / "cam1" / "a.jpg", dt.datetime(2024, 5, 1, 12), 1)
    (tmp_path / "card" / "cam2").mkdir()
    (tmp_path / "card" / "cam2" / "zero.jpg").write_bytes(b"")
    when = dt.datetime(2024, 5, 2, 8, 30).timestamp()
    os.utime(tmp_path / "card" / "cam2" / "zero.jpg", (when, when))
    clf = make_random_classifier(tmp_path)
    assert main(["predict", "--images", str(tmp_path / "card"), "--recursive", "--detector", str(random_detector),
                 "--classifier", str(clf), "--out", str(tmp_path / "out"), "--device", "cpu", "--no-progress"]) == 0
    pg = page[0].context.browser.new_page(viewport={"width": 1200, "height": 800})
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto((tmp_path / "out" / "review" / "index.html").as_uri())
    pg.wait_for_selector("#seq-list li.seq")
    pg.select_option("#seq-filter", "unreadable")
    rows = pg.locator("#seq-list li.seq")
    assert rows.count() == 1
    text = rows.first.inner_text()
    assert "cam2" in text and "unreadable" in text and "2024-05-02 08:30:00 (mtime)" in text
    assert "called empty" not in text and "detector best" not in text
    rows.first.click()
    assert pg.locator("#seq-called").inner_text().startswith("unreadable: none of its 1 frame(s) could be read")
    pg.click("#close")
    pg.select_option("#seq-filter", "empty")
    assert pg.locator("#seq-list li.seq", has_text="cam2").count() == 0  # not called empty either
    pg.close()
    assert errors == []
