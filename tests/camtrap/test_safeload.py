"""Model files from strangers: a pickle that calls os.system must never run, however it is dressed up."""

import io
import os
import pickle
import zipfile

import pytest
import torch

from camtrap.safeload import ModelFileError, UntrustedFileError, load_torch_file, pickle_globals


class Payload:
    """Unpickling this runs a shell command that creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def plain_payload(path, marker):
    torch.save({"spec": "{}", "model": {"w": torch.zeros(2)}, "evil": Payload(marker)}, path)
    return path


def stack_global_payload(path, marker):
    """A hand-made torch zip whose pickle (protocol 4) names os.system through STACK_GLOBAL and the memo."""
    data = pickle.dumps(Payload(marker), protocol=4)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", data)
        zf.writestr("archive/byteorder", "little")
        zf.writestr("archive/version", "3\n")
    return path


@pytest.mark.parametrize("make", [plain_payload, stack_global_payload])
def test_payload_is_refused_and_never_runs(tmp_path, make):
    marker = tmp_path / "PWNED"
    path = make(tmp_path / "evil.pt", marker)
    with pytest.raises(UntrustedFileError, match="evil.pt: refused"):
        load_torch_file(path, advice="Use ONNX.")
    with pytest.raises(UntrustedFileError):
        load_torch_file(path, allow=lambda name: name.startswith("torch.nn."))
    assert not marker.exists()


def test_plain_data_loads_and_the_scan_lists_globals(tmp_path):
    torch.save({"spec": "{}", "model": {"w": torch.ones(3)}, "history": [{"epoch": 1, "loss": 0.5, "x": None}]},
               tmp_path / "ok.pt")  # fmt: skip
    ckpt = load_torch_file(tmp_path / "ok.pt")
    assert ckpt["model"]["w"].tolist() == [1, 1, 1] and ckpt["history"][0]["loss"] == 0.5
    torch.save({"layer": torch.nn.Linear(2, 2)}, tmp_path / "module.pt")
    assert pickle_globals(tmp_path / "module.pt") == ["torch.nn.modules.linear.Linear"]
    module = load_torch_file(tmp_path / "module.pt", allow=lambda n: n == "torch.nn.modules.linear.Linear")["layer"]
    assert isinstance(module, torch.nn.Linear)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04 truncated zip"])
def test_garbage_is_a_one_line_error(tmp_path, content):
    (tmp_path / "bad.pt").write_bytes(content)
    with pytest.raises(ModelFileError, match="bad.pt: ") as info:
        load_torch_file(tmp_path / "bad.pt")
    assert "\n" not in str(info.value)


def test_truncated_checkpoint(tmp_path):
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(1000)}, buf)
    (tmp_path / "cut.pt").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ModelFileError, match="cut.pt"):
        load_torch_file(tmp_path / "cut.pt")
