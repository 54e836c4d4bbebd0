"""Run in a subprocess by test_yolov5.py with the ``yolov5`` package on PYTHONPATH (``make test`` installs it in
``.yolov5/``): builds a YOLOv5-format checkpoint from the package's own model definition, runs ``hakuna detect``
on it (PyTorch and its ONNX export) and the package's own inference on the same images, and prints both as JSON.

Usage: python yolov5_parity.py WORK_DIR
"""

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import torch


def build_checkpoint(work: Path) -> Path:
    import yolov5.models as models
    from yolov5.models.yolo import Model

    from detector.model import DetectorSpec, write_spec

    torch.manual_seed(0)
    model = Model(str(Path(models.__file__).parent / "yolov5n.yaml"), nc=3)
    head = model.model[-1]
    with torch.no_grad():  # an untrained network's features vanish: set batch-norm statistics, then a lively head
        for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.momentum = None  # a plain average over the calibration batches
            bn.reset_running_stats()
        model.train()
        for _ in range(3):
            model(torch.rand(2, 3, 320, 320))
        model.eval()
        for conv in head.m:
            conv.weight.normal_(0.0, 0.05)
            conv.bias.zero_()
    path = work / "yolov5n-md.pt"
    torch.save({"model": model.half(), "epoch": -1, "date": None}, path)  # as YOLOv5 saves
    write_spec(path, DetectorSpec(name="yolov5n-test", input_size=640, stride=32, head="yolov5", centred=True,
                                  bilinear=True, output_threshold=0.05, typical_threshold=0.2))  # fmt: skip
    return path


def images(work: Path) -> list[Path]:
    rng = np.random.default_rng(3)
    out = []
    for i in range(3):
        noise = rng.integers(0, 255, (500, 800, 3)).astype(np.uint8)
        img = cv2.GaussianBlur(noise, (0, 0), 4)  # texture, so an untrained network's outputs vary over the image
        img = cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX)
        path = work / "imgs" / f"p{i}.png"
        path.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(path), img)
        out.append(path)
    return out


def package_inference(pt: Path, paths: list[Path]) -> dict:
    """The yolov5 package's own pipeline: its loader, its letterbox (auto, centred), its NMS and box scaling."""
    from yolov5.utils.augmentations import letterbox
    from yolov5.utils.general import non_max_suppression, scale_boxes

    ckpt = torch.load(pt, map_location="cpu", weights_only=False)  # our own file (attempt_load asks the hub first)
    model = ckpt["model"].float().fuse().eval()
    out = {}
    for p in paths:
        bgr = cv2.imread(str(p))
        img = letterbox(bgr, 640, stride=32, auto=True)[0][:, :, ::-1].transpose(2, 0, 1)
        x = torch.from_numpy(np.ascontiguousarray(img)).float()[None] / 255
        with torch.no_grad():
            pred = non_max_suppression(model(x)[0], conf_thres=0.05, iou_thres=0.45, max_det=100)[0]
        pred[:, :4] = scale_boxes(x.shape[2:], pred[:, :4], bgr.shape).round(decimals=4)
        h, w = bgr.shape[:2]
        out[p.name] = [[float(b[0]) / w, float(b[1]) / h, float(b[2] - b[0]) / w, float(b[3] - b[1]) / h,
                        float(b[4]), int(b[5])] for b in pred]  # fmt: skip
    return out


def hakuna(pt: Path, work: Path, suffix: str) -> dict:
    from hakuna.cli import main

    out = work / f"results-{suffix}.json"
    assert main(["detect", "--model", str(pt), "--images", str(work / "imgs"), "--out", str(out), "--device", "cpu",
                 "--no-progress", "--workers", "0"]) == 0  # fmt: skip
    data = json.loads(out.read_text())
    names = data["detection_categories"]
    cls = {"animal": 0, "person": 1, "vehicle": 2}
    return {im["file"]: [[*d["bbox"], d["conf"], cls[names[d["category"]]]] for d in im["detections"]]
            for im in data["images"]}  # fmt: skip


def main() -> None:
    work = Path(sys.argv[1])
    pt = build_checkpoint(work)
    paths = images(work)
    from detector.model import export_onnx, load

    detector = load(pt, device="cpu")
    onnx = export_onnx(pt, work / "yolov5n-md.onnx")
    print(json.dumps({"spec": json.loads(detector.spec.to_json()), "package": package_inference(pt, paths),
                      "torch": hakuna(pt, work, "torch"), "onnx": hakuna(onnx, work, "onnx")}))


if __name__ == "__main__":
    main()
