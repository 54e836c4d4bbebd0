"""Classifier export to ONNX (probabilities as the output, spec in the metadata) and onnxruntime inference."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from camtrap.devices import onnx_metadata, onnx_session, resolve_device
from camtrap.safeload import ModelFileError
from classifier.spec import ModelSpec

__all__ = ["export_onnx", "OnnxClassifier"]
SPEC_KEY = "hakuna_classifier_spec"


def export_onnx(pt_path: Path, out: Path, *, opset: int = 17) -> Path:
    """Export a Hakuna classifier checkpoint; the graph ends in softmax/sigmoid (after the spec's temperature) so
    outputs are probabilities."""
    import onnx
    import torch

    from classifier.predict import TorchClassifier

    clf = TorchClassifier(Path(pt_path), device="cpu")
    spec = clf.spec

    class WithProbs(torch.nn.Module):
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            z = self.model(x) / spec.temperature
            return torch.sigmoid(z) if spec.multilabel else torch.softmax(z, dim=1)

    model = WithProbs(clf.model).eval()
    h, w = spec.input_hw
    tmp = out.with_name(f".{out.name}.tmp")
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(model, (torch.zeros(1, 3, h, w),), str(tmp), input_names=["images"], output_names=["probs"],
                      dynamic_axes={"images": {0: "batch"}, "probs": {0: "batch"}}, opset_version=opset,
                      dynamo=False)  # fmt: skip
    graph = onnx.load(str(tmp))
    entry = graph.metadata_props.add()
    entry.key, entry.value = SPEC_KEY, spec.to_json()
    onnx.save(graph, str(tmp))
    os.replace(tmp, out)
    return out


class OnnxClassifier:
    """An exported classifier run with onnxruntime (CUDA provider when present and wanted, CPU otherwise)."""

    backend = "onnx"

    def __init__(self, path: Path, device: str | None = None) -> None:
        try:
            meta = onnx_metadata(path)
        except ModelFileError:
            raise
        except Exception as exc:  # noqa: BLE001 - onnxruntime's errors for truncated or foreign files
            raise ModelFileError(f"{path}: not a readable ONNX model ({str(exc).splitlines()[0]})") from exc
        if SPEC_KEY not in meta:
            raise ModelFileError(f"{path} has no Hakuna classifier spec in its metadata; export it with hakuna")
        self.spec = ModelSpec.from_json(meta[SPEC_KEY], f"{path} (spec)")
        self.device = resolve_device(device)
        self.session = onnx_session(path, self.device)
        width = self.session.get_outputs()[0].shape[-1]
        if isinstance(width, int) and width != len(self.spec.classes):
            raise ModelFileError(f"{path}: the model outputs {width} classes, its spec lists {len(self.spec.classes)}")

    def forward(self, batch: Any) -> np.ndarray:
        """Probabilities for a uint8 batch (numpy N x H x W x 3, or a N x 3 x H x W tensor)."""
        if not isinstance(batch, np.ndarray):
            batch = batch.permute(0, 2, 3, 1).contiguous().cpu().numpy()
        return np.asarray(self.session.run(None, {"images": self.spec.normalize(batch)})[0])
