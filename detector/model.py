"""Detector models: ultralytics checkpoints (.pt) and their ONNX exports, with one pre/post-processing path.

Both backends take the same letterboxed uint8 batch and return the same raw head output, ``(N, 4 + classes,
A)`` (box centre/size in input pixels, per-class confidences), so boxes agree whichever runs.  Every
checkpoint carries a :class:`DetectorSpec` (class map, input size, thresholds): written into the .pt by
training, into the ONNX metadata by export, and taken from the weights registry for MegaDetector releases.

Loading a .pt never runs code from the file unless the user trusts it (:mod:`camtrap.safeload`): its sha256
is a registry release's, or every class its pickle references is a known model class (ultralytics and
torch.nn modules), or ``trust_model`` is set.  ONNX files hold no code and are the safe way to exchange models.
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
from typing import Any, Protocol

import numpy as np

from camtrap import checks
from camtrap.devices import onnx_metadata, onnx_session, resolve_device
from camtrap.fileio import DataError
from camtrap.geometry import Letterbox
from camtrap.safeload import (
    ModelFileError,
    UntrustedFileError,
    check_finite_weights,
    load_torch_file,
    module_class_allowlist,
)

__all__ = ["DetectorSpec", "DetectorFormatError", "UntrustedFileError", "Detector", "load", "offline_ultralytics",
           "write_spec", "read_spec", "export_onnx", "checkpoint_format", "load_checkpoint", "is_model_class"]

log = logging.getLogger(__name__)
SPEC_KEY = "hakuna_detector_spec"
TRUST_ADVICE = ("Use the model's ONNX export, or pass --trust-model if you trust where the file came from.")
_MODEL_TREES = ("ultralytics.nn.modules.", "ultralytics.nn.tasks.", "torch.nn.modules.")
# The allowlist for detector pickles: torch.nn and ultralytics module classes, and plain containers.
is_model_class = module_class_allowlist(_MODEL_TREES, min_dots=3)


@dataclass(frozen=True)
class DetectorSpec:
    """What a detector checkpoint needs besides its weights."""

    name: str
    input_size: int  # letterbox long side
    classes: tuple[str, ...] = ("animal", "person", "vehicle")  # model class index -> MegaDetector category name
    typical_threshold: float = 0.2  # the animal threshold: empty screening, crops for training, counting frames
    conservative_threshold: float = 0.05  # detections at or above this are classified (fusion weighs them)
    output_threshold: float = 0.005  # boxes under this confidence are not reported
    nms_iou: float = 0.45
    max_detections: int = 100
    stride: int = 32
    head: str = "ultralytics"  # "yolov5": rows of (box, objectness, class probabilities), converted on the way out
    centred: bool = False  # letterbox padding on both sides (YOLOv5 / MegaDetector v5) rather than right/bottom
    bilinear: bool = False  # bilinear resize (YOLOv5's) rather than area averaging

    @property
    def letterbox(self) -> Letterbox:
        """The preprocessing this detector was trained with."""
        return Letterbox(self.input_size, self.stride, self.centred, self.bilinear)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str, source: str | os.PathLike[str] = "detector spec") -> DetectorSpec:
        """Parse and check a spec: every field's type and range (sizes, thresholds in [0, 1], the head).

        Raises:
            DataError: naming ``source`` and the field at fault.
        """
        raw = checks.parse_json(text, source, "the detector spec")
        d = cls.__dataclass_fields__
        return cls(name=checks.text(raw, "name", source),
                   input_size=checks.integer(raw, "input_size", source, lo=32, hi=MAX_INPUT_SIZE),
                   classes=checks.texts(raw, "classes", source, min_length=1, max_length=1000, default=cls.classes),
                   **{k: checks.number(raw, k, source, lo=0, hi=1, default=d[k].default) for k in _UNIT_FIELDS},
                   max_detections=checks.integer(raw, "max_detections", source, lo=1, hi=10_000, default=100),
                   stride=checks.integer(raw, "stride", source, lo=8, hi=128, default=32),
                   head=checks.text(raw, "head", source, choices=("ultralytics", "yolov5"), default="ultralytics"),
                   centred=checks.boolean(raw, "centred", source, default=False),
                   bilinear=checks.boolean(raw, "bilinear", source, default=False))  # fmt: skip


_UNIT_FIELDS = ("typical_threshold", "conservative_threshold", "output_threshold", "nms_iou")  # within [0, 1]
MAX_INPUT_SIZE = 4096


class DetectorFormatError(ModelFileError):
    """A weights file this project cannot run, with what to use instead."""


class Detector(Protocol):
    """A loaded detector: ``forward`` maps a uint8 batch (N x H x W x 3 numpy, or N x 3 x H x W tensor on
    ``device``) to the raw head output."""

    spec: DetectorSpec
    backend: str
    device: str
    file: str  # the weights file's name

    def forward(self, batch: Any) -> Any: ...


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
        modules = {arg.split(" ")[0].split(".")[0] for op, arg, _ in pickletools.genops(data)
                   if op.name in ("GLOBAL", "INST") and isinstance(arg, str)}  # fmt: skip
    except Exception:  # noqa: BLE001 - anything unreadable is simply not a known format
        return "unknown"
    if "ultralytics" in modules:
        return "ultralytics"
    if "models" in modules or "yolov5" in modules:
        return "yolov5"
    return "unknown"


def _registry_trusts(path: Path) -> bool:
    """Whether the file is a registry release, by its published digest (looked up by its file name)."""
    from detector.weights import REGISTRY

    release = REGISTRY.get(path.stem.lower())
    if release is None or not (release.sha256 or release.md5):
        return False
    from camtrap.download import digests_of

    sha, md5 = digests_of(path)  # MegaDetector publishes md5s; a second preimage is out of reach
    return sha == release.sha256 or md5 == release.md5


def load_checkpoint(path: str | os.PathLike[str], *, trust: bool = False) -> dict:
    """An ultralytics or YOLOv5 checkpoint's contents, loaded without running code from it (module docstring)."""
    path = Path(path)
    trust = trust or _registry_trusts(path)
    if checkpoint_format(path) == "yolov5":
        from detector import yolov5

        return yolov5.load_checkpoint(path, trust=trust, advice=TRUST_ADVICE)
    ckpt = load_torch_file(path, allow=is_model_class, trust=trust, advice=TRUST_ADVICE)
    if not isinstance(ckpt, dict) or not any(k in ckpt for k in ("model", "ema")):
        raise DetectorFormatError(f"{path} is not an ultralytics YOLO checkpoint (no model inside)")
    return ckpt


def write_spec(pt_path: Path, spec: DetectorSpec) -> None:
    """Store ``spec`` inside an ultralytics checkpoint that Hakuna just wrote (an extra key ultralytics ignores)."""
    import torch

    ckpt = load_checkpoint(pt_path)
    ckpt[SPEC_KEY] = spec.to_json()
    torch.save(ckpt, pt_path)


def _registry_spec(path: Path, name: str | None = None) -> DetectorSpec | None:
    from detector.weights import REGISTRY

    known = REGISTRY.get((name or path.stem).lower())
    return known.spec if known else None


def read_spec(path: Path, fallback_name: str | None = None, *, trust: bool = False) -> DetectorSpec | None:
    """The spec stored in a .pt or .onnx file, or the registry's entry for a known release; None if neither."""
    path = Path(path)
    if path.suffix == ".onnx":
        meta = onnx_metadata(path)
        if SPEC_KEY in meta:
            return DetectorSpec.from_json(meta[SPEC_KEY], f"{path} (spec)")
    elif path.suffix == ".pt":
        ckpt = load_checkpoint(path, trust=trust)
        if SPEC_KEY in ckpt:
            return DetectorSpec.from_json(ckpt[SPEC_KEY], f"{path} (spec)")
    return _registry_spec(path, fallback_name)


def _module_from_checkpoint(ckpt: dict):
    """The inference module of an ultralytics checkpoint, prepared as ultralytics' own loader does."""
    import torch

    module = (ckpt.get("ema") or ckpt["model"]).float()
    if not hasattr(module, "stride"):
        module.stride = torch.tensor([32.0])
    module = module.fuse() if hasattr(module, "fuse") else module
    for m in module.modules():
        if hasattr(m, "inplace"):
            m.inplace = True
        elif isinstance(m, torch.nn.Upsample) and not hasattr(m, "recompute_scale_factor"):
            m.recompute_scale_factor = None
    return module.eval()


def _first(out: Any) -> Any:
    """ultralytics models return (predictions, feature maps) in eval mode."""
    return out[0] if isinstance(out, (tuple, list)) else out


class TorchDetector:
    """An ultralytics checkpoint run as a plain PyTorch module (channels_last everywhere: 1.3x on a CPU too;
    FP16 on CUDA).

    uint8 goes to the device (pinned memory, non-blocking) and is normalised there.
    """

    backend = "torch"

    def __init__(self, module, spec: DetectorSpec, device: str) -> None:
        import torch

        from detector.yolov5 import to_common_layout

        self._convert = to_common_layout if spec.head == "yolov5" else _first
        self.spec = spec
        self.device = device
        self._device = torch.device(device)
        self.half = self._device.type == "cuda"
        module = module.to(self._device)
        if self.half:
            module = module.half()
        self.module = module.to(memory_format=torch.channels_last)

    def forward(self, batch: Any) -> Any:
        """Raw head output for a uint8 batch; a tensor stays on the device, numpy in gives numpy out."""
        import torch

        as_numpy = isinstance(batch, np.ndarray)
        with torch.inference_mode():
            if as_numpy:
                x = torch.from_numpy(batch)
                if self.half:
                    x = x.pin_memory()
                x = x.to(self._device, non_blocking=True).permute(0, 3, 1, 2)
            else:
                x = batch.to(self._device, non_blocking=True)
            x = (x.half() if self.half else x.float()).div_(255.0).contiguous(memory_format=torch.channels_last)
            out = self._convert(self.module(x)).float()
            return out.cpu().numpy() if as_numpy else out


class OnnxDetector:
    """An ONNX export run with onnxruntime (CUDA provider when present, CPU otherwise)."""

    backend = "onnx"

    def __init__(self, path: Path, spec: DetectorSpec, device: str) -> None:
        self.spec = spec
        self.device = device
        self.session = onnx_session(path, device)
        self.input_name = self.session.get_inputs()[0].name
        self.fp16 = "float16" in self.session.get_inputs()[0].type

    def forward(self, batch: Any) -> np.ndarray:
        if not isinstance(batch, np.ndarray):  # a tensor from the torch decoder
            batch = batch.permute(0, 2, 3, 1).contiguous().cpu().numpy()
        x = batch.transpose(0, 3, 1, 2).astype(np.float16 if self.fp16 else np.float32) / 255.0
        return np.asarray(self.session.run(None, {self.input_name: np.ascontiguousarray(x)})[0], dtype=np.float32)


def _check_format(path: Path) -> str:
    kind = checkpoint_format(path)
    if kind == "yolov5":
        from detector import yolov5

        if not yolov5.available():
            raise DetectorFormatError(
                f"{path} is a YOLOv5-format checkpoint (like MDv5a/MDv5b, MDv1000-redwood, MDv1000-spruce). "
                f"{yolov5.INSTALL_HINT}; or use an ultralytics-format MegaDetector (`hakuna weights fetch "
                "mdv1000-sorrel`), or run MegaDetector itself and pass its results JSON to the next stage."
            )
    elif kind != "ultralytics":
        raise DetectorFormatError(f"{path} is not an ultralytics or YOLOv5 checkpoint")
    return kind


def load(path: str | os.PathLike[str], *, device: str | None = None, spec: DetectorSpec | None = None,
         trust_model: bool = False) -> Detector:
    """Load a detector from a .pt (ultralytics) or .onnx file.

    Raises:
        FileNotFoundError: no such file.
        DetectorFormatError: a YOLOv5-format checkpoint, an unknown format, or no spec and no registry entry.
        UntrustedFileError: a .pt whose pickle would call something other than model classes.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"detector weights not found: {path}")
    device = resolve_device(device)
    if path.suffix not in (".pt", ".onnx"):
        raise DetectorFormatError(f"{path}: unsupported weights format {path.suffix!r} (use .pt or .onnx)")
    ckpt, kind = None, "onnx"
    if path.suffix == ".pt":
        kind = _check_format(path)
        ckpt = load_checkpoint(path, trust=trust_model)
        spec = spec or (DetectorSpec.from_json(ckpt[SPEC_KEY], f"{path} (spec)") if SPEC_KEY in ckpt
                        else _registry_spec(path))
    else:
        spec = spec or _onnx_spec(path)
    if spec is None:
        raise DetectorFormatError(f"{path} carries no detector spec and is not a known release; retrain or export it "
                                  "with hakuna, or name a registry entry")  # fmt: skip
    log.info("loading %s detector %s (%s, input %d px) on %s", "onnx" if ckpt is None else "torch", spec.name,
             path.name, spec.input_size, device)  # fmt: skip
    if ckpt is None:
        detector: Detector = OnnxDetector(path, spec, device)
    elif kind == "yolov5":
        from detector.yolov5 import module_of

        detector = TorchDetector(_finite(path, module_of(ckpt)), spec, device)
    else:
        offline_ultralytics()  # ultralytics settings before its modules run
        detector = TorchDetector(_finite(path, _module_from_checkpoint(ckpt)), spec, device)
    detector.file = path.name  # type: ignore[attr-defined]  # what results files call the detector
    return detector


def _finite(path: Path, module):
    """``module``, once its weights are checked finite."""
    check_finite_weights(path, module.state_dict())
    return module


def _onnx_spec(path: Path) -> DetectorSpec | None:
    try:
        return read_spec(path)
    except (DataError, ModelFileError):
        raise
    except Exception as exc:  # noqa: BLE001 - onnxruntime's errors for truncated or foreign files
        raise DetectorFormatError(f"{path}: not a readable ONNX model ({str(exc).splitlines()[0]})") from exc


def export_onnx(pt_path: Path, out: Path, *, half: bool = False, trust_model: bool = False) -> Path:
    """Export an ultralytics checkpoint to ONNX (dynamic batch and size), with its spec in the metadata."""
    import onnx

    ckpt = load_checkpoint(pt_path, trust=trust_model)  # refuse untrusted files before ultralytics unpickles them
    spec = DetectorSpec.from_json(ckpt[SPEC_KEY], pt_path) if SPEC_KEY in ckpt else _registry_spec(Path(pt_path))
    if spec is None:
        raise DetectorFormatError(f"{pt_path} carries no detector spec")
    if checkpoint_format(Path(pt_path)) == "yolov5":
        from detector import yolov5

        return yolov5.export_onnx(yolov5.module_of(ckpt), out, spec.input_size, {SPEC_KEY: spec.to_json()})
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
