"""Training settings, importable without torch (the command line builds them before any model loads)."""

from __future__ import annotations

from dataclasses import dataclass

from camtrap.geometry import DEFAULT_CROP_MARGIN
from classifier.backbones import BACKBONES, DEFAULT_BACKBONE

__all__ = ["AugmentConfig", "ClassifierTrainConfig", "FewShotConfig", "BALANCE_CHOICES", "RECIPES", "LITE",
           "FEWSHOT_MAX_PER_CLASS", "DEFAULT_FINETUNE_EPOCHS", "MULTI_CROP"]  # fmt: skip

BALANCE_CHOICES = ("sqrt", "inverse", "none")
RECIPES = ("auto", "fewshot", "full")
LITE = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
DEFAULT_FINETUNE_EPOCHS = 3  # LP-FT's most epochs when it is asked for without a count (classifier cv)
MULTI_CROP = ("shape", "first", "center", "last")  # the whole photo framed by its shape + three overlapping squares
FEWSHOT_MAX_PER_CLASS = 50  # auto: the few-shot recipe while the median class has at most this many samples


@dataclass(frozen=True)
class FewShotConfig:
    """What the few-shot recipe chooses by group cross-validation, and how (see :mod:`classifier.fewshot`)."""

    backbones: tuple[str, ...] = LITE  # those whose weights are installed are tried
    l2_grid: tuple[float, ...] = (0.03, 0.1, 0.3)
    # views pooled (classifier.views), one set per candidate: whole photos, and crops (photos with boxes)
    view_sets: tuple[tuple[str, ...], ...] = (("stretch",), ("center",), ("shape",), MULTI_CROP)
    crop_view_sets: tuple[tuple[str, ...], ...] = (("stretch",), ("stretch", "zoom"))
    scales: tuple[float, ...] = (1.0,)  # backbones run at their native input size times each
    self_train: tuple[float, ...] = ()  # transductive self-training thresholds tried (classifier.selftrain); () off
    # classes without a training photo: weights 0, bias = the mean bias of the others + one of these (chosen by
    # inner CV together with leaving the fitted head as it is); () leaves the head as fitted
    absent_bias: tuple[float, ...] = (0.0, 1.0, 2.0, 3.0, 4.0)
    folds: int = 5
    use_prior: bool = True  # the ImageNet zero-shot prior (classifier.imagenet_prior)
    seed: int = 0
    # LP-FT (classifier.finetune): up to this many epochs of gentle fine-tuning after the probe, the count (0 keeps
    # the probe) chosen by group CV on ``finetune_folds`` folds.  0 turns the step off (it costs minutes on a CPU).
    finetune_epochs: int = 0
    finetune_lr: float = 3e-5  # the last layer's; each earlier layer learns at finetune_layer_decay x the next
    finetune_layer_decay: float = 0.85
    finetune_batch_size: int = 16
    finetune_folds: int = 3

    def __post_init__(self) -> None:
        if self.finetune_epochs < 0 or self.finetune_folds < 2:
            raise ValueError("finetune_epochs must be >= 0 and finetune_folds >= 2")
        if not self.view_sets or not self.crop_view_sets or not self.scales or min(self.scales) <= 0:
            raise ValueError("view_sets and crop_view_sets need one set each, scales positive numbers")


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation strengths (0 turns one off)."""

    hflip: float = 0.5
    min_scale: float = 0.6  # random resized crop keeps at least this fraction of the area
    colour: float = 0.3  # brightness / contrast / saturation jitter
    grayscale: float = 0.2  # probability of an infrared-like grayscale image


@dataclass(frozen=True)
class ClassifierTrainConfig:
    """Training settings; the resulting :class:`ModelSpec` records them."""

    backbone: str = DEFAULT_BACKBONE
    input_size: int | None = None  # default: the backbone's native size (frames use a 4:3 input of this width)
    pretrained: bool | str = True  # True, False, "download" or a weights file
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3  # backbone learning rate
    head_lr_mult: float = 1.0  # the new head's learning rate = lr * this (higher keeps pretrained features intact)
    weight_decay: float = 1e-4
    balance: str = "sqrt"
    label_smoothing: float = 0.05
    val_groups: tuple[str, ...] = ()  # default: the latest season, or 20% of groups for non-season groups
    val_fraction: float = 0.2
    margin: float = DEFAULT_CROP_MARGIN  # crop margin, recorded in the spec (inference reads it from there)
    device: str | None = None  # None: cuda if available
    workers: int = 0
    seed: int = 0
    augment: AugmentConfig = AugmentConfig()
    recipe: str = "full"  # "fewshot": frozen backbone + head chosen by CV; "auto": by the data's size
    fewshot: FewShotConfig = FewShotConfig()

    def __post_init__(self) -> None:
        if self.balance not in BALANCE_CHOICES:
            raise ValueError(f"balance must be one of {BALANCE_CHOICES}")
        if self.recipe not in RECIPES:
            raise ValueError(f"recipe must be one of {RECIPES}")
        if self.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {self.backbone!r}")
