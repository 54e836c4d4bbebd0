"""Training-time augmentation suited to camera traps, on cached uint8 images.

Horizontal flips (animals walk both ways), scale and aspect jitter (distance to the camera, loose boxes),
brightness/contrast/saturation jitter (sun, shade, dusk) and random grayscale (infrared night frames).
No vertical flips or large rotations: the camera is level.
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision.transforms import v2

from classifier.config import AugmentConfig
from classifier.spec import ModelSpec

__all__ = ["AugmentConfig", "CachedImages"]


def _pipeline(spec: ModelSpec, cfg: AugmentConfig) -> v2.Compose:
    h, w = spec.input_hw
    steps: list = []
    if cfg.min_scale < 1:
        steps.append(v2.RandomResizedCrop((h, w), scale=(cfg.min_scale, 1.0), ratio=(0.8 * w / h, 1.25 * w / h),
                                          antialias=True))  # fmt: skip
    if cfg.hflip:
        steps.append(v2.RandomHorizontalFlip(cfg.hflip))
    if cfg.colour:
        steps.append(v2.ColorJitter(brightness=cfg.colour, contrast=cfg.colour, saturation=cfg.colour))
    if cfg.grayscale:
        steps.append(v2.RandomGrayscale(cfg.grayscale))
    return v2.Compose(steps)


class CachedImages(torch.utils.data.Dataset):
    """Cached uint8 images (N x H x W x 3) + targets -> normalised tensors, augmented when training."""

    def __init__(self, pixels: np.ndarray, index: np.ndarray, targets: np.ndarray, spec: ModelSpec,
                 augment: AugmentConfig | None) -> None:  # fmt: skip
        self.pixels, self.index, self.targets = pixels, index, targets
        self.transform = _pipeline(spec, augment) if augment else None
        self.mean = torch.tensor(spec.mean).view(3, 1, 1)
        self.std = torch.tensor(spec.std).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        j = int(self.index[i])
        x = torch.from_numpy(np.array(self.pixels[j])).permute(2, 0, 1)  # uint8 CHW
        if self.transform is not None:
            x = self.transform(x)
        x = (x.float() / 255.0 - self.mean) / self.std
        return x, torch.from_numpy(self.targets[j])
