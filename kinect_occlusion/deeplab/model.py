"""DeepLabV3+ (coarse branch): torchvision backbone + ASPP + low-level decoder, and its checkpoints.

Nothing here downloads weights: every torchvision builder gets ``weights=None``. Trained weights
come from our own checkpoint format (``save_checkpoint`` / ``load_checkpoint``); a torchvision
DeepLabV3 COCO state dict that the user already has on disk can seed backbone + ASPP
(``init_from_torchvision``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import mobilenet_v3_large, resnet18, resnet50
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.segmentation.deeplabv3 import ASPP

from ..errors import CheckpointError

log = logging.getLogger(__name__)

FORMAT = "kinect-occlusion/deeplabv3plus"
VERSION = 1
CLASSES = ["background", "occlusion"]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ASPP_RATES = (6, 12, 18)  # output stride 16 (the paper's setting)
DEFAULT_INPUT_SIZE = 512


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one backbone: its feature extractor and channel counts."""

    build: Callable[[], nn.Module]
    low_channels: int  # stride-4 features
    high_channels: int  # stride-16 features


# ---------------------------------------------------------------- backbones


def _dilate_last_stage(layer: nn.Module, dilation: int = 2) -> None:
    """Turn a stride-2 ResNet stage into a stride-1 stage with dilated 3×3 convs (any block type)."""
    for i, block in enumerate(layer.children()):
        for name, mod in block.named_modules():
            if not isinstance(mod, nn.Conv2d):
                continue
            # The stride-2 conv and the downsample shortcut keep their weights, lose the stride
            if mod.stride == (2, 2):
                mod.stride = (1, 1)
            # 3×3 convs: the first one of the first block sees the undilated input (as torchvision does)
            if mod.kernel_size == (3, 3) and not (i == 0 and name == "conv1"):
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


def _conv_bn_relu(cin: int, cout: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class Decoder(nn.Module):
    """DeepLabV3+ decoder: 48-channel low-level projection, concat with upsampled ASPP, two 3×3 convs."""

    def __init__(self, low_channels: int, num_classes: int, aspp_channels: int = 256) -> None:
        super().__init__()
        self.low_proj = _conv_bn_relu(low_channels, 48, 1)
        self.fuse = nn.Sequential(_conv_bn_relu(aspp_channels + 48, 256, 3), _conv_bn_relu(256, 256, 3))
        self.classifier = nn.Conv2d(256, num_classes, 1)

    def forward(self, high: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        """Logits at the low-level (stride-4) resolution."""
        low = self.low_proj(low)
        high = F.interpolate(high, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.classifier(self.fuse(torch.cat([high, low], dim=1)))


class DeepLabV3Plus(nn.Module):
    """DeepLabV3+ with a torchvision backbone; ``forward`` returns (N, num_classes, H, W) logits."""

    def __init__(self, backbone: str, num_classes: int = 2) -> None:
        super().__init__()
        spec = BACKBONES[backbone]
        self.backbone_name = backbone
        self.num_classes = num_classes
        self.backbone = spec.build()
        self.aspp = ASPP(spec.high_channels, list(ASPP_RATES), out_channels=256)
        self.decoder = Decoder(spec.low_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits upsampled (bilinear) to the input size."""
        feats = self.backbone(x)
        logits = self.decoder(self.aspp(feats["out"]), feats["low"])
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


def build_model(backbone: str, num_classes: int = 2) -> DeepLabV3Plus:
    """A randomly initialised DeepLabV3+ (``backbone``: resnet50 | resnet18 | mobilenet_v3_large)."""
    if backbone not in BACKBONES:
        raise CheckpointError(f"unknown DeepLab backbone '{backbone}' (choose one of {', '.join(BACKBONES)})")
    return DeepLabV3Plus(backbone, num_classes)


# ---------------------------------------------------------------- torchvision initialisation


@dataclass
class InitReport:
    """What ``init_from_torchvision`` copied: tensor counts and the names it left out."""

    mapped: int
    skipped: int
    skipped_keys: list[str] = field(default_factory=list)


def _torchvision_target(key: str) -> str | None:
    """Our parameter name for a torchvision DeepLabV3 key (None: not transferable)."""
    if key.startswith("backbone."):
        return key
    if key.startswith("classifier.0."):
        return "aspp." + key[len("classifier.0."):]
    return None  # classifier head (21 COCO/VOC classes) and aux_classifier


def init_from_torchvision(model: DeepLabV3Plus, path: str | Path) -> InitReport:
    """Copy backbone + ASPP weights from a torchvision ``deeplabv3_*`` state dict file into ``model``.

    The decoder and classifier stay randomly initialised. Tensors whose name or shape does not
    match (e.g. a resnet50 file into a mobilenet model) are skipped and counted.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: torchvision DeepLabV3 state dict not found")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{p}: not a torch state dict ({type(exc).__name__}: {exc})") from exc
    state = state.get("model", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise CheckpointError(f"{p}: expected a state dict of tensors, got {type(state).__name__}")
    ours = model.state_dict()
    update, skipped = {}, []
    for key, tensor in state.items():
        target = _torchvision_target(key)
        if target is not None and target in ours and ours[target].shape == tensor.shape:
            update[target] = tensor
        else:
            skipped.append(key)
    # A file for another backbone may still share a few ASPP shapes: judge by the backbone coverage
    ours_backbone = [k for k in ours if k.startswith("backbone.")]
    covered = sum(k in update for k in ours_backbone)
    if covered < 0.9 * len(ours_backbone):
        raise CheckpointError(f"{p}: only {covered}/{len(ours_backbone)} backbone tensors fit a DeepLabV3+ "
                              f"{model.backbone_name} (wrong backbone?)")
    model.load_state_dict(update, strict=False)
    log.info("initialised %d tensors from %s (%d skipped)", len(update), p, len(skipped))
    return InitReport(mapped=len(update), skipped=len(skipped), skipped_keys=skipped)


# ---------------------------------------------------------------- checkpoints


@dataclass
class LoadedModel:
    """A model ready for inference plus what the predictor needs to feed it."""

    model: DeepLabV3Plus
    backbone: str
    num_classes: int
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    classes: list[str]
    meta: dict[str, Any]


def save_checkpoint(path: str | Path, model: DeepLabV3Plus, *, input_size: int = DEFAULT_INPUT_SIZE,
                    mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD,
                    meta: dict[str, Any] | None = None) -> Path:
    """Write our checkpoint format (tensors and plain types only, loadable with ``weights_only``).

    The file is written next to its destination and renamed, so a crash never leaves half a file.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT, "version": VERSION, "backbone": model.backbone_name,
        "num_classes": model.num_classes, "input_size": int(input_size),
        "mean": [float(v) for v in mean], "std": [float(v) for v in std], "classes": list(CLASSES),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": dict(meta or {}),
    }
    tmp = p.with_name(p.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(p)
    return p


def _read_payload(p: Path, key: str) -> dict[str, Any]:
    """The checkpoint dict at ``p``, or CheckpointError naming the path and the config key."""
    if not p.is_file():
        raise CheckpointError(f"{key}: {p} does not exist — train one with 'kinect-occlusion train' "
                              f"or set {key}")
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{key}: {p} is not a readable torch checkpoint ({type(exc).__name__}) "
                              f"— set {key} to a file made by 'kinect-occlusion train'") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{key}: {p} is not a kinect-occlusion DeepLabV3+ checkpoint "
                              f"(a raw torchvision state dict? use it as --init for training)")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{key}: {p} has checkpoint version {payload.get('version')}, "
                              f"this program reads version {VERSION}")
    return payload


def _check_payload(payload: dict[str, Any], p: Path, key: str, expected_backbone: str | None) -> None:
    """Backbone and classes must match what the pipeline expects."""
    backbone = payload.get("backbone")
    if backbone not in BACKBONES:
        raise CheckpointError(f"{key}: {p} has unknown backbone '{backbone}'")
    if expected_backbone is not None and backbone != expected_backbone:
        raise CheckpointError(f"{key}: {p} holds a {backbone} model but deeplab.backbone is "
                              f"{expected_backbone} — set deeplab.backbone: {backbone} (or null)")
    if payload.get("num_classes") != len(CLASSES) or list(payload.get("classes", [])) != CLASSES:
        raise CheckpointError(f"{key}: {p} has classes {payload.get('classes')}, expected {CLASSES}")


def load_checkpoint(path: str | Path, *, expected_backbone: str | None = None,
                    config_key: str = "deeplab.checkpoint") -> LoadedModel:
    """Load our checkpoint into a model in eval mode; every problem is one-line CheckpointError."""
    p = Path(path)
    payload = _read_payload(p, config_key)
    _check_payload(payload, p, config_key, expected_backbone)
    model = build_model(payload["backbone"], payload["num_classes"])
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{config_key}: {p} weights do not fit the model ({first})") from exc
    model.eval()
    return LoadedModel(
        model=model, backbone=payload["backbone"], num_classes=int(payload["num_classes"]),
        input_size=int(payload.get("input_size", DEFAULT_INPUT_SIZE)),
        mean=_triple(payload.get("mean", IMAGENET_MEAN)), std=_triple(payload.get("std", IMAGENET_STD)),
        classes=list(payload["classes"]), meta=dict(payload.get("meta", {})),
    )


def _triple(values: Any) -> tuple[float, float, float]:
    v = [float(x) for x in values]
    if len(v) != 3:
        raise CheckpointError(f"checkpoint mean/std must have 3 values, got {len(v)}")
    return v[0], v[1], v[2]


def untrained(backbone: str, *, init: str | Path | None = None,
              input_size: int = DEFAULT_INPUT_SIZE) -> LoadedModel:
    """A random-init (optionally torchvision-initialised backbone) model in eval mode."""
    model = build_model(backbone)
    if init is not None:
        init_from_torchvision(model, init)
    model.eval()
    return LoadedModel(model=model, backbone=backbone, num_classes=model.num_classes, input_size=input_size,
                       mean=IMAGENET_MEAN, std=IMAGENET_STD, classes=list(CLASSES),
                       meta={"trained": False, "init": str(init) if init else None})


def build_deeplab(checkpoint: str | Path | None, backbone: str | None, *, init: str | Path | None = None,
                  allow_untrained: bool = False, config_key: str = "deeplab.checkpoint") -> LoadedModel:
    """The coarse model the pipeline runs, loaded once at start-up.

    Args:
        checkpoint: our checkpoint file; None (or missing with ``allow_untrained``) → random weights.
        backbone: expected backbone (None: whatever the checkpoint holds; the untrained default
            is mobilenet_v3_large).
        init: torchvision DeepLabV3 state dict seeding backbone + ASPP of an untrained model.
        allow_untrained: accept running without trained weights (a WARNING says masks are meaningless).
        config_key: the config field named in error messages.
    """
    if checkpoint is not None and (Path(checkpoint).is_file() or not allow_untrained):
        return load_checkpoint(checkpoint, expected_backbone=backbone, config_key=config_key)
    if not allow_untrained and init is None:
        raise CheckpointError(f"{config_key} is not set — train a model with 'kinect-occlusion train' "
                              "and set it, or set deeplab.allow_untrained: true")
    name = backbone or "mobilenet_v3_large"
    log.warning("DeepLab %s is UNTRAINED (%s): the coarse masks are meaningless",
                name, f"{config_key}: {checkpoint} missing" if checkpoint else f"{config_key} not set")
    return untrained(name, init=init)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())
