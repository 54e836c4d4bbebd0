"""The engine's tensor path: batched JPEG decoding on the model's device (nvJPEG on a GPU), letterbox and crops
on the device, uint8 all the way to the model.  The same code runs with ``device="cpu"`` (libjpeg-turbo in
torchvision), which is how CI checks it against the PIL/numpy path.

Differences from the PIL path, by design: JPEGs are decoded at full size (nvJPEG has no DCT scaling; the
GPU resizes faster than it decodes), resizing is antialiased bilinear (``F.interpolate``) instead of
OpenCV's area filter, and crops are resampled with ``roi_align`` (adaptive sampling: an area average) from
the full-size frame.  Boxes and probabilities agree with the PIL path within the tolerances the tests state.

What nvJPEG refuses (CMYK and some progressive JPEGs, corrupt files) and what is not a JPEG is decoded by
PIL on the CPU, image by image, and moved to the device: a bad file is still only a failure record.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from torchvision.io import ImageReadMode

from camtrap.batching import batched
from camtrap.engine import DecodedFrame, DecodePlan, EngineConfig
from camtrap.frames import FrameRef, checked_path
from camtrap.geometry import PAD_VALUE, Letterbox, crop_box, letterbox_offsets, letterbox_size
from camtrap.images import Failure, allow_pixels, exif_datetime, file_too_large, load_image
from camtrap.stream import ordered_map

__all__ = ["decoded_batches", "letterbox_tensor", "stack_letterboxed", "cut_crops", "concat"]

_JPEG_MAGIC = b"\xff\xd8"


@dataclass
class _Read:
    """A frame's bytes and what its header says, read in a worker thread."""

    ref: FrameRef
    data: bytes | None = None
    failure: str | None = None
    is_jpeg: bool = False


def _read(ref: FrameRef, max_pixels: int | None, max_bytes: int | None) -> _Read:
    if ref.failure:
        return _Read(ref, failure=ref.failure)
    path = checked_path(ref)
    if path is None:
        return _Read(ref, failure=Failure.OUTSIDE_ROOT.value)
    try:
        with open(path, "rb") as f:
            if too_large := file_too_large(os.fstat(f.fileno()).st_size, max_bytes):
                return _Read(ref, failure=f"{Failure.TOO_LARGE.value}: {too_large}")
            data = f.read() if max_bytes is None else f.read(max_bytes + 1)  # bounded even if the file grows
    except FileNotFoundError:
        return _Read(ref, failure=Failure.MISSING.value)
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the name
        return _Read(ref, failure=f"{Failure.MISSING.value}: {exc}")
    if not data:
        return _Read(ref, failure=Failure.EMPTY.value)
    is_jpeg = data[:2] == _JPEG_MAGIC
    if is_jpeg and max_pixels is not None:
        allow_pixels(max_pixels)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                w, h = Image.open(io.BytesIO(data)).size  # the header only
        except Exception:  # noqa: BLE001 - a header PIL cannot read: let the full decoder say what is wrong
            is_jpeg = False
        else:
            if w * h > max_pixels:
                return _Read(ref, failure=f"{Failure.TOO_LARGE.value}: {w} x {h} pixels is over the limit of "
                                          f"{max_pixels:,}")  # fmt: skip
    return _Read(ref, data, None, is_jpeg)


def _pil_fallback(read: _Read, cfg: EngineConfig, device: str) -> DecodedFrame:
    """Decode one file on the CPU with PIL (what nvJPEG refuses, and non-JPEGs)."""
    path = checked_path(read.ref)
    img = load_image(path, read_datetime=cfg.read_datetime, max_pixels=cfg.max_pixels,  # type: ignore[arg-type]
                     max_bytes=cfg.max_file_bytes)
    if not img.ok:
        return DecodedFrame(read.ref, failure=f"{img.failure.value}: {img.detail}".rstrip(": "))
    pixels = torch.from_numpy(img.pixels).permute(2, 0, 1).contiguous().to(device)
    return DecodedFrame(read.ref, pixels, width=img.width, height=img.height, datetime=img.datetime)


def _decode_jpegs(reads: list[_Read], device: str) -> list[torch.Tensor | None]:
    """Batched decode; when the batch call fails, one by one, None where the device decoder refuses a file."""
    tensors = [torch.frombuffer(bytearray(r.data), dtype=torch.uint8) for r in reads]  # type: ignore[arg-type]
    try:
        out = torchvision.io.decode_jpeg(tensors, mode=ImageReadMode.RGB, device=device, apply_exif_orientation=True)
        return list(out)
    except RuntimeError:
        pass
    single: list[torch.Tensor | None] = []
    for t in tensors:
        try:
            single.append(torchvision.io.decode_jpeg(t, mode=ImageReadMode.RGB, device=device,
                                                     apply_exif_orientation=True))  # fmt: skip
        except RuntimeError:
            single.append(None)
    return single


def _exif_datetime(data: bytes) -> str | None:
    try:
        with Image.open(io.BytesIO(data)) as img:
            return exif_datetime(img)
    except Exception:  # noqa: BLE001 - the date is optional
        return None


def _decode_chunk(reads: list[_Read], plan: DecodePlan, cfg: EngineConfig, device: str) -> list[DecodedFrame]:
    frames: list[DecodedFrame | None] = [None] * len(reads)
    jpegs = [i for i, r in enumerate(reads) if r.failure is None and r.is_jpeg]
    decoded = _decode_jpegs([reads[i] for i in jpegs], device) if jpegs else []
    for i, pixels in zip(jpegs, decoded):
        if pixels is not None:
            stamp = _exif_datetime(reads[i].data) if cfg.read_datetime else None  # type: ignore[arg-type]
            frames[i] = DecodedFrame(reads[i].ref, pixels, width=int(pixels.shape[2]), height=int(pixels.shape[1]),
                                     datetime=stamp)  # fmt: skip
    for i, r in enumerate(reads):
        if frames[i] is None:
            frames[i] = DecodedFrame(r.ref, failure=r.failure) if r.failure else _pil_fallback(r, cfg, device)
    for f in frames:
        if f is not None and f.ok:
            f.decoded_wh = (int(f.pixels.shape[2]), int(f.pixels.shape[1]))
            if plan.letterbox:
                f.model_input, f.scale, f.pad = letterbox_tensor(f.pixels, plan.letterbox)
            if not plan.keep_pixels:
                f.pixels = None
    return frames  # type: ignore[return-value]


def decoded_batches(frames: Iterable[FrameRef], plan: DecodePlan, cfg: EngineConfig,
                    device: str) -> Iterator[list[DecodedFrame]]:
    """The engine's decode stage on the tensor path: bytes read in threads, JPEGs decoded in batches."""
    import time

    # torchvision 0.29 marks its decoders deprecated in favour of TorchCodec; they remain the batched nvJPEG path.
    warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision",
                            category=DeprecationWarning)  # fmt: skip
    reads = ordered_map(lambda r: _read(r, cfg.max_pixels, cfg.max_file_bytes), frames, workers=cfg.workers,
                        lookahead=cfg.prefetch)
    for chunk in batched(reads, cfg.detector_batch):
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = _decode_chunk(chunk, plan, cfg, device)
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)
        if out:
            out[0].decode_s = time.perf_counter() - t0
        yield out


def letterbox_tensor(img: torch.Tensor, box: Letterbox) -> tuple[torch.Tensor, float, tuple[int, int]]:
    """:func:`camtrap.geometry.letterbox` for a 3 x H x W uint8 tensor (bilinear resize, antialiased when
    shrinking unless the detector wants plain bilinear)."""
    _, h, w = img.shape
    nw, nh, pw, ph, r = letterbox_size(w, h, box.size, box.stride)
    resized = F.interpolate(img[None].float(), size=(nh, nw), mode="bilinear", antialias=r < 1 and not box.bilinear,
                            align_corners=False)[0]  # fmt: skip
    left, top = letterbox_offsets(nw, nh, pw, ph, box.centred)
    out = torch.full((3, ph, pw), PAD_VALUE, dtype=torch.uint8, device=img.device)
    out[:, top : top + nh, left : left + nw] = resized.round_().clamp_(0, 255).to(torch.uint8)
    return out, r, (left, top)


def stack_letterboxed(images: list[torch.Tensor]) -> torch.Tensor:
    """N x 3 x H x W uint8 from letterboxed images (others padded grey, right/bottom)."""
    h = max(int(t.shape[1]) for t in images)
    w = max(int(t.shape[2]) for t in images)
    if all(tuple(t.shape[1:]) == (h, w) for t in images):
        return torch.stack(images)
    batch = torch.full((len(images), 3, h, w), PAD_VALUE, dtype=torch.uint8, device=images[0].device)
    for i, t in enumerate(images):
        batch[i, :, : t.shape[1], : t.shape[2]] = t
    return batch


def cut_crops(pixels: torch.Tensor, boxes: list[tuple[float, float, float, float]], margin: float,
              out_hw: tuple[int, int]) -> torch.Tensor:
    """Square crops (:func:`camtrap.geometry.crop_box`) of a 3 x H x W uint8 frame, resampled to ``out_hw``
    with ``roi_align`` on the frame's device; outside the frame is grey.  Returns K x 3 x h x w uint8."""
    _, h, w = pixels.shape
    rois = []
    for bbox in boxes:
        x0, y0, side = crop_box(bbox, w, h, margin)
        rois.append([0.0, x0, y0, x0 + side, y0 + side])
    centred = pixels[None].float() - PAD_VALUE  # roi_align samples zeros outside the frame: grey after shifting
    out = torchvision.ops.roi_align(centred, torch.tensor(rois, dtype=torch.float32, device=pixels.device),
                                    output_size=out_hw, spatial_scale=1.0, sampling_ratio=0, aligned=True)  # fmt: skip
    return (out + PAD_VALUE).round_().clamp_(0, 255).to(torch.uint8)


def concat(pieces: list[torch.Tensor]) -> torch.Tensor:
    """One batch from per-frame crop tensors."""
    return torch.cat(pieces) if len(pieces) > 1 else pieces[0]


def to_numpy_nhwc(batch: torch.Tensor) -> np.ndarray:
    """N x 3 x H x W uint8 tensor -> N x H x W x 3 uint8 numpy (for backends that take numpy)."""
    return batch.permute(0, 2, 3, 1).contiguous().cpu().numpy()
