"""Classifier export to ONNX (probabilities as the output, spec in the metadata) and onnxruntime inference."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from classifier.spec import ModelSpec

__all__ = ["export_onnx", "OnnxClassifier"]
SPEC_KEY = "hakuna_classifier_spec"


def export_onnx(pt_path: Path, out: Path, *, opset: int = 17) -> Path:
    """Export a Hakuna classifier checkpoint; the graph ends in softmax/sigmoid so outputs are probabilities."""
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
            z = self.model(x)
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
        from detector.model import onnx_metadata, onnx_session

        meta = onnx_metadata(path)
        if SPEC_KEY not in meta:
            raise ValueError(f"{path} has no Hakuna classifier spec in its metadata; export it with hakuna")
        self.spec = ModelSpec.from_json(meta[SPEC_KEY])
        self.session = onnx_session(path, device)

    def forward(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run(None, {"images": batch.astype(np.float32)})[0])
