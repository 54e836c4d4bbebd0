"""Where models run: the device choice and the onnxruntime session factory every stage uses.

Nothing here imports torch or onnxruntime at import time: the offline runner has onnxruntime but no torch,
and light commands (``hakuna score``) should not pay for either.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

__all__ = ["DEVICES", "DECODERS", "default_device", "resolve_device", "cuda_available_to_onnxruntime", "onnx_session",
           "onnx_metadata"]  # fmt: skip

DEVICES = ("auto", "cpu", "cuda")
"""What ``--device`` accepts on the command line."""
DECODERS = ("auto", "pil", "torch")
"""The engine's frame decoders (see :mod:`camtrap.engine`)."""


def cuda_available_to_onnxruntime() -> bool:
    """onnxruntime-gpu lists its CUDA provider even on machines without a GPU; ask for a driver too."""
    import onnxruntime as ort

    has_driver = os.path.exists("/dev/nvidiactl") or shutil.which("nvidia-smi") is not None
    return has_driver and "CUDAExecutionProvider" in ort.get_available_providers()


def default_device() -> str:
    """cuda when a GPU can be used (by torch, or by onnxruntime where there is no torch), else cpu."""
    try:
        import torch
    except ImportError:  # the ONNX-only runner
        return "cuda" if cuda_available_to_onnxruntime() else "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_device(name: str | None) -> str:
    """``None`` or ``"auto"`` -> :func:`default_device`; anything else unchanged."""
    return default_device() if name in (None, "auto") else str(name)


_CHECKED: set[tuple[str, int, int]] = set()  # ONNX files whose weights were found finite


def onnx_session(path: str | os.PathLike[str], device: str | None = "cpu"):
    """An onnxruntime session: CUDA provider first unless ``device`` is "cpu" or there is no GPU, then CPU; weights
    with NaN or infinities are refused (:func:`camtrap.safeload.check_onnx_weights`, once per file version)."""
    import onnxruntime as ort

    from camtrap.safeload import check_onnx_weights

    st = os.stat(path)
    key = (os.path.realpath(path), st.st_size, st.st_mtime_ns)
    if key not in _CHECKED:
        check_onnx_weights(path)
        _CHECKED.add(key)

    providers = ["CPUExecutionProvider"]
    if device != "cpu" and cuda_available_to_onnxruntime():
        providers.insert(0, "CUDAExecutionProvider")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(Path(path)), sess_options=opts, providers=providers)


def onnx_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """Custom metadata of an ONNX file, read with onnxruntime (the offline runner has no ``onnx`` package)."""
    return dict(onnx_session(path, "cpu").get_modelmeta().custom_metadata_map)
