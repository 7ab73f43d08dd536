"""DeepLabV3+ network: torchvision backbone (output stride 16) + ASPP + low-level decoder.

Nothing here downloads weights: every torchvision builder gets ``weights=None``. Checkpoints and
initialisation from torchvision files live in ``model.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import mobilenet_v3_large, resnet18, resnet50
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.segmentation.deeplabv3 import ASPP, ASPPPooling

from ..errors import CheckpointError

ASPP_RATES = (6, 12, 18)  # output stride 16 (the paper's setting)


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one backbone: its feature extractor and channel counts."""

    build: Callable[[], nn.Module]
    low_channels: int  # stride-4 features
    high_channels: int  # stride-16 features


# ---------------------------------------------------------------- backbones


def _dilate_last_stage(layer: nn.Module, dilation: int = 2) -> None:
    """Turn a stride-2 ResNet stage into a stride-1 stage with dilated 3×3 convs (any block type).

    Same result as torchvision's ``replace_stride_with_dilation``: the strided 3×3 conv of the first
    block only loses its stride; every later 3×3 conv is dilated; the shortcut loses its stride.
    """
    for mod in layer.modules():
        if not isinstance(mod, nn.Conv2d):
            continue
        if mod.stride == (2, 2):
            mod.stride = (1, 1)
        elif mod.kernel_size == (3, 3):
            mod.dilation, mod.padding = (dilation, dilation), (dilation, dilation)


def _resnet(builder: Callable[..., nn.Module]) -> nn.Module:
    """ResNet trunk at output stride 16: ``low`` = layer1 (stride 4), ``out`` = dilated layer4."""
    net = builder(weights=None)
    _dilate_last_stage(net.get_submodule("layer4"))
    return IntermediateLayerGetter(net, return_layers={"layer1": "low", "layer4": "out"})


def _mobilenet() -> nn.Module:
    """MobileNetV3-Large trunk (dilated last stage, stride 16), ``low`` = last stride-4 block."""
    features = mobilenet_v3_large(weights=None, dilated=True).features
    # Stage boundaries: blocks that reduce the resolution (as torchvision's DeepLabV3 finds them)
    stages = [0] + [i for i, b in enumerate(features) if getattr(b, "_is_cn", False)] + [len(features) - 1]
    low_pos = stages[-4] - 1  # the block just before the stride-8 block: stride 4
    return IntermediateLayerGetter(features, return_layers={str(low_pos): "low", str(stages[-1]): "out"})


BACKBONES: dict[str, BackboneSpec] = {
    "resnet50": BackboneSpec(lambda: _resnet(resnet50), low_channels=256, high_channels=2048),
    "resnet18": BackboneSpec(lambda: _resnet(resnet18), low_channels=64, high_channels=512),
    "mobilenet_v3_large": BackboneSpec(_mobilenet, low_channels=24, high_channels=960),
}


# ---------------------------------------------------------------- model


def _conv_bn_relu(cin: int, cout: int, k: int, dilation: int = 1, separable: bool = False) -> nn.Sequential:
    """k×k conv + BN + ReLU; ``separable``: depthwise k×k + BN + pointwise 1×1 (atrous separable conv)."""
    pad = dilation * (k // 2)
    if not separable or k == 1:
        return nn.Sequential(
            nn.Conv2d(cin, cout, k, padding=pad, dilation=dilation, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
        )
    depthwise = nn.Conv2d(cin, cin, k, padding=pad, dilation=dilation, groups=cin, bias=False)
    return nn.Sequential(
        depthwise, nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()
    )


class LiteASPP(nn.Module):
    """ASPP with atrous separable convolutions (DeepLabV3+ paper, §3.2): same branches, far fewer weights."""

    def __init__(self, in_channels: int, rates: tuple[int, ...], out_channels: int) -> None:
        super().__init__()
        branches = [_conv_bn_relu(in_channels, out_channels, 1)]
        branches += [_conv_bn_relu(in_channels, out_channels, 3, r, separable=True) for r in rates]
        self.convs = nn.ModuleList([*branches, ASPPPooling(in_channels, out_channels)])
        self.project = nn.Sequential(
            _conv_bn_relu(len(self.convs) * out_channels, out_channels, 1), nn.Dropout(0.1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([conv(x) for conv in self.convs], dim=1))


@dataclass(frozen=True)
class HeadSpec:
    """ASPP + decoder flavour: ``standard`` (paper/torchvision, 256 ch) or ``lite`` (separable, 128 ch)."""

    channels: int
    separable: bool


HEADS: dict[str, HeadSpec] = {"standard": HeadSpec(256, False), "lite": HeadSpec(128, True)}


class Decoder(nn.Module):
    """DeepLabV3+ decoder: 48-channel low-level projection, concat with upsampled ASPP, two 3×3 convs."""

    def __init__(
        self,
        low_channels: int,
        num_classes: int,
        aspp_channels: int = 256,
        channels: int = 256,
        separable: bool = False,
    ) -> None:
        super().__init__()
        self.low_proj = _conv_bn_relu(low_channels, 48, 1)
        self.fuse = nn.Sequential(
            _conv_bn_relu(aspp_channels + 48, channels, 3, separable=separable),
            _conv_bn_relu(channels, channels, 3, separable=separable),
        )
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, high: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        """Logits at the low-level (stride-4) resolution."""
        low = self.low_proj(low)
        high = F.interpolate(high, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.classifier(self.fuse(torch.cat([high, low], dim=1)))


class DeepLabV3Plus(nn.Module):
    """DeepLabV3+ with a torchvision backbone; ``forward`` returns (N, num_classes, H, W) logits."""

    def __init__(self, backbone: str, num_classes: int = 2, head: str = "standard") -> None:
        super().__init__()
        spec, hs = BACKBONES[backbone], HEADS[head]
        self.backbone_name, self.head_name, self.num_classes = backbone, head, num_classes
        self.backbone = spec.build()
        if hs.separable:
            self.aspp: nn.Module = LiteASPP(spec.high_channels, ASPP_RATES, hs.channels)
        else:
            self.aspp = ASPP(spec.high_channels, list(ASPP_RATES), out_channels=hs.channels)
        self.decoder = Decoder(spec.low_channels, num_classes, hs.channels, hs.channels, hs.separable)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits upsampled (bilinear) to the input size."""
        feats = self.backbone(x)
        logits = self.decoder(self.aspp(feats["out"]), feats["low"])
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


def build_model(backbone: str, num_classes: int = 2, head: str = "standard") -> DeepLabV3Plus:
    """A randomly initialised DeepLabV3+.

    Args:
        backbone: resnet50 | resnet18 | mobilenet_v3_large.
        num_classes: output classes (2: background, occlusion).
        head: ``standard`` (ASPP/decoder at 256 channels, as the paper and torchvision) or ``lite``
            (atrous separable convs at 128 channels: a few MB, for demo models).
    """
    if backbone not in BACKBONES:
        raise CheckpointError(f"unknown DeepLab backbone '{backbone}' (choose one of {', '.join(BACKBONES)})")
    if head not in HEADS:
        raise CheckpointError(f"unknown DeepLab head '{head}' (choose one of {', '.join(HEADS)})")
    return DeepLabV3Plus(backbone, num_classes, head)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())
