"""Detector models: ultralytics checkpoints (.pt) and their ONNX exports, with one pre/post-processing path.

Both backends take the same letterboxed batch and return the same raw head output, ``(N, 4 + classes, A)``
(box centre/size in input pixels, per-class confidences), so boxes agree whichever runs.  Every checkpoint
carries a :class:`DetectorSpec` (class map, input size, thresholds): written into the .pt by training,
into the ONNX metadata by export, and taken from the weights registry for MegaDetector releases.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pickletools
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

__all__ = [
    "DetectorSpec",
    "DetectorFormatError",
    "Detector",
    "load",
    "offline_ultralytics",
    "write_spec",
    "read_spec",
    "export_onnx",
    "checkpoint_format",
]

log = logging.getLogger(__name__)
SPEC_KEY = "hakuna_detector_spec"


@dataclass(frozen=True)
class DetectorSpec:
    """What a detector checkpoint needs besides its weights."""

    name: str
    input_size: int  # letterbox long side
    classes: tuple[str, ...] = ("animal", "person", "vehicle")  # model class index -> MegaDetector category name
    typical_threshold: float = 0.2
    conservative_threshold: float = 0.05
    output_threshold: float = 0.005  # boxes under this confidence are not reported
    nms_iou: float = 0.45
    max_detections: int = 100
    stride: int = 32

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> DetectorSpec:
        raw = json.loads(text)
        raw["classes"] = tuple(raw.get("classes", cls.classes))
        return cls(**{f.name: raw[f.name] for f in dataclasses.fields(cls) if f.name in raw})


class DetectorFormatError(ValueError):
    """A weights file this project cannot run, with what to use instead."""


class Detector(Protocol):
    """A loaded detector: ``forward`` maps a float32 NCHW batch in [0, 1] to the raw head output."""

    spec: DetectorSpec
    backend: str

    def forward(self, batch: np.ndarray) -> np.ndarray: ...


def offline_ultralytics():
    """Import ultralytics' ``YOLO`` with hub, update checks and downloads switched off."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics import YOLO
    from ultralytics.utils import SETTINGS

    SETTINGS.update({"sync": False})
    return YOLO


def checkpoint_format(path: Path) -> str:
    """Which code wrote a .pt file: ``ultralytics``, ``yolov5`` or ``unknown``, read from the pickle's imports
    without executing it."""
    try:
        with zipfile.ZipFile(path) as zf:
            name = next(n for n in zf.namelist() if n.endswith("data.pkl"))
            data = zf.read(name)
    except (zipfile.BadZipFile, StopIteration, OSError):
        return "unknown"
    modules = set()
    for op, arg, _ in pickletools.genops(data):
        if op.name in ("GLOBAL", "INST") and isinstance(arg, str):
            modules.add(arg.split(" ")[0].split(".")[0])
        elif op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE") and isinstance(arg, str) and "." in arg:
            modules.add(arg.split(".")[0])
    if "ultralytics" in modules:
        return "ultralytics"
    if "models" in modules or "yolov5" in modules:
        return "yolov5"
    return "unknown"


def write_spec(pt_path: Path, spec: DetectorSpec) -> None:
    """Store ``spec`` inside an ultralytics checkpoint (an extra key ultralytics ignores)."""
    import torch

    ckpt = torch.load(pt_path, map_location="cpu", weights_only=False)
    ckpt[SPEC_KEY] = spec.to_json()
    torch.save(ckpt, pt_path)


def read_spec(path: Path, fallback_name: str | None = None) -> DetectorSpec | None:
    """The spec stored in a .pt or .onnx file, or the registry's entry for a known release; None if neither."""
    from detector.weights import REGISTRY

    path = Path(path)
    if path.suffix == ".onnx":
        meta = onnx_metadata(path)
        if SPEC_KEY in meta:
            return DetectorSpec.from_json(meta[SPEC_KEY])
    elif path.suffix == ".pt":
        import torch

        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        if isinstance(ckpt, dict) and SPEC_KEY in ckpt:
            return DetectorSpec.from_json(ckpt[SPEC_KEY])
    known = REGISTRY.get((fallback_name or path.stem).lower())
    return known.spec if known else None


def onnx_session(path: Path, device: str | None = "cpu"):
    """An onnxruntime session: CUDA provider first unless ``device`` is "cpu" or there is no GPU, then CPU."""
    import onnxruntime as ort

    providers = ["CPUExecutionProvider"]
    if device != "cpu" and cuda_available_to_onnxruntime():
        providers.insert(0, "CUDAExecutionProvider")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=providers)


def onnx_metadata(path: Path) -> dict[str, str]:
    """Custom metadata of an ONNX file, read with onnxruntime (the offline runner has no ``onnx`` package)."""
    return dict(onnx_session(path, "cpu").get_modelmeta().custom_metadata_map)


class TorchDetector:
    """An ultralytics checkpoint run as a plain PyTorch module (FP16 and channels_last on CUDA)."""

    backend = "torch"

    def __init__(self, path: Path, spec: DetectorSpec, device: str) -> None:
        import torch

        YOLO = offline_ultralytics()
        self.spec = spec
        self.device = torch.device(device)
        module = YOLO(str(path)).model
        module = module.fuse() if hasattr(module, "fuse") else module
        self.half = self.device.type == "cuda"
        module = module.to(self.device).eval()
        if self.half:
            module = module.half().to(memory_format=torch.channels_last)
        self.module = module

    def forward(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device, non_blocking=True)
            x = x.half().contiguous(memory_format=torch.channels_last) if self.half else x
            out = self.module(x)
            out = out[0] if isinstance(out, (tuple, list)) else out
            return out.float().cpu().numpy()


class OnnxDetector:
    """An ONNX export run with onnxruntime (CUDA provider when present, CPU otherwise)."""

    backend = "onnx"

    def __init__(self, path: Path, spec: DetectorSpec, device: str) -> None:
        self.spec = spec
        self.session = onnx_session(path, device)
        self.input_name = self.session.get_inputs()[0].name
        self.fp16 = "float16" in self.session.get_inputs()[0].type

    def forward(self, batch: np.ndarray) -> np.ndarray:
        x = batch.astype(np.float16) if self.fp16 else batch
        return np.asarray(self.session.run(None, {self.input_name: x})[0], dtype=np.float32)


def cuda_available_to_onnxruntime() -> bool:
    """onnxruntime-gpu lists its CUDA provider even on machines without a GPU; ask for a driver too."""
    import shutil

    import onnxruntime as ort

    has_driver = os.path.exists("/dev/nvidiactl") or shutil.which("nvidia-smi") is not None
    return has_driver and "CUDAExecutionProvider" in ort.get_available_providers()


def default_device() -> str:
    """The device to run on: cuda when a GPU can be used (by torch, or by onnxruntime without torch), else cpu."""
    try:
        import torch
    except ImportError:  # the ONNX-only runner
        return "cuda" if cuda_available_to_onnxruntime() else "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def load(path: str | os.PathLike[str], *, device: str | None = None, spec: DetectorSpec | None = None) -> Detector:
    """Load a detector from a .pt (ultralytics) or .onnx file.

    Raises:
        FileNotFoundError: no such file.
        DetectorFormatError: a YOLOv5-format checkpoint (MDv5a/b, MDv1000-redwood/-spruce), an unknown format,
            or a file with no spec and no registry entry.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"detector weights not found: {path}")
    device = device or default_device()
    if path.suffix == ".pt":
        kind = checkpoint_format(path)
        if kind == "yolov5":
            raise DetectorFormatError(
                f"{path} is a YOLOv5-format checkpoint (like MDv5a/MDv5b, MDv1000-redwood, MDv1000-spruce), which "
                "ultralytics cannot load. Use an ultralytics-format MegaDetector (MDv1000-larch or MDv1000-sorrel: "
                "`hakuna weights fetch mdv1000-sorrel`), or run MegaDetector itself and pass its results JSON to "
                "the next stage."
            )
        if kind != "ultralytics":
            raise DetectorFormatError(f"{path} is not an ultralytics YOLO checkpoint")
    elif path.suffix != ".onnx":
        raise DetectorFormatError(f"{path}: unsupported weights format {path.suffix!r} (use .pt or .onnx)")
    spec = spec or read_spec(path)
    if spec is None:
        raise DetectorFormatError(f"{path} carries no detector spec and is not a known release; retrain or export it "
                                  "with hakuna, or name a registry entry")  # fmt: skip
    backend = OnnxDetector if path.suffix == ".onnx" else TorchDetector
    log.info("loading %s detector %s (%s, input %d px) on %s", backend.backend, spec.name, path.name,
             spec.input_size, device)  # fmt: skip
    return backend(path, spec, device)


def export_onnx(pt_path: Path, out: Path, *, half: bool = False) -> Path:
    """Export an ultralytics checkpoint to ONNX (dynamic batch and size), with its spec in the metadata."""
    import onnx

    spec = read_spec(pt_path)
    if spec is None:
        raise DetectorFormatError(f"{pt_path} carries no detector spec")
    YOLO = offline_ultralytics()
    exported = Path(YOLO(str(pt_path)).export(format="onnx", imgsz=spec.input_size, dynamic=True, simplify=False,
                                              half=half, device="cpu" if not half else 0, verbose=False))  # fmt: skip
    model = onnx.load(str(exported))
    entry = model.metadata_props.add()
    entry.key, entry.value = SPEC_KEY, spec.to_json()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.onnx")
    onnx.save(model, str(tmp))
    os.replace(tmp, out)
    if exported.resolve() != out.resolve():
        exported.unlink(missing_ok=True)
    return out
