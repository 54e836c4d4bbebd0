"""``--detector`` takes a file or the name of a release already fetched into the cache (nothing is downloaded)."""

import argparse
import dataclasses
import hashlib

import pytest

from detector import weights
from hakuna.commands.common import detector_file


def test_a_file_is_taken_as_it_is(tmp_path):
    assert detector_file(str(tmp_path / "md.pt")) == tmp_path / "md.pt"  # missing: the loader says so, naming it


def test_a_fetched_release_resolves_to_its_cached_file(tmp_path, monkeypatch):
    body = b"weights"
    release = dataclasses.replace(weights.REGISTRY["mdv5a"], md5=hashlib.md5(body).hexdigest(), sha256=None)
    monkeypatch.setitem(weights.REGISTRY, "mdv5a", release)
    monkeypatch.setenv("HAKUNA_CACHE", str(tmp_path))
    with pytest.raises(argparse.ArgumentTypeError, match="hakuna weights fetch mdv5a"):
        detector_file("mdv5a")  # not fetched yet
    cached = weights.cache_dir() / release.filename
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"tampered")
    with pytest.raises(argparse.ArgumentTypeError, match="does not match"):
        detector_file("MDv5a")
    cached.write_bytes(body)
    assert detector_file("mdv5a") == cached


def test_an_unknown_name_lists_the_releases():
    with pytest.raises(argparse.ArgumentTypeError, match="mdv1000-sorrel"):
        detector_file("megadetector")
