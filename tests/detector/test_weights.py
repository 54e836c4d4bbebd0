"""Weights download against a local HTTP server on 127.0.0.1: good file, corrupt file, dropped connection + resume."""

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from camtrap.download import DownloadError, download
from detector import weights
from detector.weights import Release, fetch
from tests.conftest import send_range_headers

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


class _Handler(BaseHTTPRequestHandler):
    drop_after: int | None = None  # bytes sent before the connection is cut (first request only)
    requests: list = []

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        body = PAYLOAD if self.path != "/corrupt.pt" else PAYLOAD[:-1] + b"X"
        type(self).requests.append(self.headers.get("Range"))
        start = send_range_headers(self, body)
        chunk = body[start:]
        cut = type(self).drop_after
        if cut is not None:
            type(self).drop_after = None
            self.wfile.write(chunk[:cut])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(chunk)


@pytest.fixture()
def server():
    _Handler.requests = []
    _Handler.drop_after = None
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_good_download_verifies(server, tmp_path):
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    path = download(f"{server}/good.pt", tmp_path / "good.pt", sha256=sha, size=len(PAYLOAD))
    assert path.read_bytes() == PAYLOAD
    assert not (tmp_path / "good.pt.part").exists()


def test_corrupt_file_refused_and_removed(server, tmp_path):
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        download(f"{server}/corrupt.pt", tmp_path / "c.pt", sha256=sha)
    assert not (tmp_path / "c.pt").exists() and not (tmp_path / "c.pt.part").exists()


def test_dropped_connection_then_resume(server, tmp_path):
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    _Handler.drop_after = 300_000
    with pytest.raises(DownloadError, match="run the same command again to resume|run again to resume"):
        download(f"{server}/good.pt", tmp_path / "r.pt", sha256=sha, size=len(PAYLOAD), timeout=5)
    assert (tmp_path / "r.pt.part").stat().st_size == 300_000
    path = download(f"{server}/good.pt", tmp_path / "r.pt", sha256=sha, size=len(PAYLOAD))
    assert path.read_bytes() == PAYLOAD
    assert _Handler.requests[-1] == "bytes=300000-"


def test_fetch_uses_registry_and_cache(server, tmp_path, monkeypatch):
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    release = weights.REGISTRY["mdv1000-sorrel"]
    fake = Release(release.name, f"{server}/md_v1000.0.0-sorrel.pt", release.spec, release.fmt, sha, len(PAYLOAD))
    monkeypatch.setitem(weights.REGISTRY, "mdv1000-sorrel", fake)
    path = fetch("mdv1000-sorrel", cache=tmp_path)
    assert path == tmp_path / "md_v1000.0.0-sorrel.pt" and path.read_bytes() == PAYLOAD
    n = len(_Handler.requests)
    assert fetch("MDv1000-sorrel", cache=tmp_path) == path  # cached: no new request
    assert len(_Handler.requests) == n
    with pytest.raises(KeyError, match="unknown weights 'mdv9'"):
        fetch("mdv9", cache=tmp_path)


def test_registry_has_megadetector_releases():
    sorrel, larch = weights.REGISTRY["mdv1000-sorrel"], weights.REGISTRY["mdv1000-larch"]
    assert (sorrel.spec.input_size, larch.spec.input_size) == (960, 640)
    assert sorrel.spec.classes == ("animal", "person", "vehicle")
    assert weights.REGISTRY["md_v5a.0.0"].fmt == "yolov5"


def test_fetch_checks_the_published_md5_before_caching_and_on_every_use(server, tmp_path, monkeypatch):
    release = weights.REGISTRY["mdv5a"]  # only its md5 is published
    assert release.sha256 is None and release.md5
    with pytest.raises(DownloadError, match="md5 mismatch.*removed"):
        fetch("mdv5a", cache=tmp_path, url=f"{server}/random.pt")  # 1 MiB that is not the release
    assert list(tmp_path.iterdir()) == []
    good = Release(release.name, release.url, release.spec, release.fmt, md5=hashlib.md5(PAYLOAD).hexdigest())
    monkeypatch.setitem(weights.REGISTRY, "mdv5a", good)
    path = fetch("mdv5a", cache=tmp_path, url=f"{server}/good.pt")
    assert path.read_bytes() == PAYLOAD
    path.write_bytes(b"tampered")  # the cache is checked again on use: removed and fetched again
    assert fetch("mdv5a", cache=tmp_path, url=f"{server}/good.pt").read_bytes() == PAYLOAD
