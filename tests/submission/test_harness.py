"""The local competition harness fails closed: no network, read-only data, nothing written outside the run's
folder, and a loud failure when a run fell back to class priors."""

import json
import shutil
import socket
import threading
import zipfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from camtrap.labels import COLUMNS
from fusion import FusionModel
from submission.harness import HarnessError, SandboxUnavailable, run_submission, sandbox_command, snapshot
from submission.package import MAIN, write_code


def _data(folder):
    folder.mkdir(parents=True)
    ids = ["SER_S9#A#1#1", "SER_S9#A#1#2"]
    for i in range(len(ids)):
        Image.fromarray(np.full((48, 64, 3), 90, np.uint8)).save(folder / f"img{i}.jpg")
    pd.DataFrame({"seq_id": ids, "file_name": ["img0.jpg", "img1.jpg"], "datetime": ""}).to_csv(
        folder / "test_metadata.csv", index=False)  # fmt: skip
    fmt = pd.DataFrame(0.0, index=pd.Index(ids, name="seq_id"), columns=list(COLUMNS))
    fmt.to_csv(folder / "submission_format.csv")
    return folder


EVIL_MAIN = """
import shutil, socket, sys
from pathlib import Path

results = {}
for name, act in [("data", lambda: Path("data/evil.txt").write_text("x")),
                  ("outside", lambda: Path(sys.argv[0]).resolve().parent.joinpath(OUTSIDE).write_text("x")),
                  ("socket", lambda: socket.create_connection(("127.0.0.1", PORT), timeout=2).close())]:
    try:
        act()
        results[name] = "done"
    except OSError as exc:
        results[name] = type(exc).__name__
print(results)
shutil.copyfile("data/submission_format.csv", "submission.csv")
"""


def _zip(path, main: str, assets: dict | None = None, code: bool = False):
    with zipfile.ZipFile(path, "w") as zf:
        if code:  # the real main.py and runtime code
            assert main == MAIN
            write_code(zf)
        else:
            zf.writestr("main.py", main)
        for name, data in (assets or {}).items():
            zf.writestr(f"assets/{name}", data)
    return path


@pytest.fixture()
def listener():
    """A TCP server on the host's loopback that records connections."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    seen, stop = [], threading.Event()

    def accept():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                seen.append(1)
                conn.close()
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], seen
    stop.set()
    thread.join()
    server.close()


def _need_sandbox():
    try:
        sandbox_command(["true"])
    except SandboxUnavailable as exc:
        pytest.skip(f"no network/mount namespaces on this machine: {exc}")


def test_malicious_main_cannot_write_data_or_elsewhere_or_reach_the_network(tmp_path, listener):
    _need_sandbox()
    port, seen = listener
    data = _data(tmp_path / "data")
    outside = tmp_path / "outside-marker"
    main = EVIL_MAIN.replace("OUTSIDE", repr(str(outside))).replace("PORT", str(port))
    before = snapshot(data)
    out = run_submission(_zip(tmp_path / "evil.zip", main), data, tmp_path / "run" / "submission.csv")
    log = out.with_suffix(".log").read_text()
    assert "'data': 'OSError'" in log and "'outside': 'OSError'" in log and "'socket': 'OSError'" in log, log
    assert not outside.exists() and not (data / "evil.txt").exists() and snapshot(data) == before and not seen


def test_refuses_to_run_unconfined_unless_asked(tmp_path, monkeypatch):
    data = _data(tmp_path / "data")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no unshare to be found
    main = "from pathlib import Path; Path('data/evil.txt').write_text('x'); import shutil; " \
           "shutil.copyfile('data/submission_format.csv', 'submission.csv')"  # fmt: skip
    zip_path = _zip(tmp_path / "writer.zip", main)
    with pytest.raises(SandboxUnavailable, match="unshare.*not on PATH.*--allow-network"):
        run_submission(zip_path, data, tmp_path / "s.csv")
    assert not (data / "evil.txt").exists()  # nothing ran
    with pytest.raises(HarnessError, match="changed the data folder"):  # unconfined, but still checked afterwards
        run_submission(zip_path, data, tmp_path / "s.csv", allow_network=True)


def test_fallback_to_priors_is_a_failure(tmp_path):
    data = _data(tmp_path / "data")
    fusion = tmp_path / "fusion.json"
    FusionModel(animal_threshold=0.2).save(fusion)
    assets = {"detector.onnx": b"not onnx", "classifier.onnx": b"not onnx", "fusion.json": fusion.read_bytes(),
              "manifest.json": json.dumps({"version": "test", "pipeline": {}})}  # fmt: skip
    zip_path = _zip(tmp_path / "broken.zip", MAIN, assets, code=True)
    out = tmp_path / "run" / "submission.csv"
    with pytest.raises(HarnessError, match="the pipeline failed inside the run .*all 2 rows are class priors"):
        run_submission(zip_path, data, out, allow_network=shutil.which("unshare") is None)
    assert out.exists()  # the priors are still there to look at
