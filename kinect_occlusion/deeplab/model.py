"""DeepLabV3+ coarse model: building, checkpoints (our format) and torchvision initialisation.

Trained weights come from our own checkpoint format (``save_checkpoint`` / ``load_checkpoint``);
a torchvision DeepLabV3 COCO state dict that the user already has on disk can seed backbone + ASPP
(``init_from_torchvision``). The network itself is in ``network.py`` (re-exported here).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, one_line
from ..geometry import IMAGENET_MEAN, IMAGENET_STD
from .network import (
    ASPP_RATES,
    BACKBONES,
    HEADS,
    BackboneSpec,
    Decoder,
    DeepLabV3Plus,
    HeadSpec,
    LiteASPP,
    build_model,
    count_parameters,
)
from .settings import DEFAULT_INPUT_SIZE
from .settings import checked_settings as _settings

__all__ = [
    "ASPP_RATES",
    "BACKBONES",
    "CLASSES",
    "DEFAULT_INPUT_SIZE",
    "FORMAT",
    "HEADS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "VERSION",
    "BackboneSpec",
    "Decoder",
    "DeepLabV3Plus",
    "HeadSpec",
    "InitReport",
    "LiteASPP",
    "LoadedModel",
    "build_deeplab",
    "build_model",
    "count_parameters",
    "init_from_torchvision",
    "load_checkpoint",
    "save_checkpoint",
    "untrained",
]

log = logging.getLogger(__name__)

FORMAT = "kinect-occlusion/deeplabv3plus"
VERSION = 1
CLASSES = ["background", "occlusion"]


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
        return "aspp." + key[len("classifier.0.") :]
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
        raise CheckpointError(
            f"{p}: only {covered}/{len(ours_backbone)} backbone tensors fit a DeepLabV3+ "
            f"{model.backbone_name} (wrong backbone?)"
        )
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
    head: str = "standard"


def save_checkpoint(
    path: str | Path,
    model: DeepLabV3Plus,
    *,
    input_size: int = DEFAULT_INPUT_SIZE,
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write our checkpoint format (tensors and plain types only, loadable with ``weights_only``).

    The file is written next to its destination and renamed, so a crash never leaves half a file.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "backbone": model.backbone_name,
        "head": model.head_name,
        "num_classes": model.num_classes,
        "input_size": int(input_size),
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
        "classes": list(CLASSES),
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
        raise CheckpointError(
            f"{key}: {p} does not exist — train one with 'kinect-occlusion train' "
            f"or point {key} at an existing checkpoint"
        )
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"{key}: {p} is not a readable torch checkpoint ({type(exc).__name__}) "
            f"— set {key} to a file made by 'kinect-occlusion train'"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{key}: {p} is not a kinect-occlusion DeepLabV3+ checkpoint "
            f"(a raw torchvision state dict? use it as --init for training)"
        )
    if payload.get("version") != VERSION:
        raise CheckpointError(
            f"{key}: {p} has checkpoint version {payload.get('version')}, "
            f"this program reads version {VERSION}"
        )
    return payload


def _check_payload(payload: dict[str, Any], p: Path, key: str, expected_backbone: str | None) -> None:
    """Backbone and classes must match what the pipeline expects."""
    backbone = payload.get("backbone")
    if backbone not in BACKBONES:
        raise CheckpointError(f"{key}: {p} has unknown backbone '{backbone}'")
    if payload.get("head", "standard") not in HEADS:
        raise CheckpointError(f"{key}: {p} has unknown head '{payload.get('head')}' (newer program?)")
    if expected_backbone is not None and backbone != expected_backbone:
        raise CheckpointError(
            f"{key}: {p} holds a {backbone} model but deeplab.backbone is "
            f"{expected_backbone} — set deeplab.backbone: {backbone} (or null)"
        )
    if payload.get("num_classes") != len(CLASSES) or list(payload.get("classes", [])) != CLASSES:
        raise CheckpointError(f"{key}: {p} has classes {payload.get('classes')}, expected {CLASSES}")


def load_checkpoint(
    path: str | Path, *, expected_backbone: str | None = None, config_key: str = "deeplab.checkpoint"
) -> LoadedModel:
    """Load our checkpoint into a model in eval mode; every problem is one-line CheckpointError."""
    p = Path(path)
    payload = _read_payload(p, config_key)
    _check_payload(payload, p, config_key, expected_backbone)
    settings = _settings(payload, f"{config_key}: {p}")
    model = build_model(payload["backbone"], payload["num_classes"], payload.get("head", "standard"))
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError, TypeError) as exc:
        first = one_line(exc) or type(exc).__name__
        raise CheckpointError(f"{config_key}: {p} weights do not fit the model ({first})") from exc
    if bad := non_finite_weight(model):
        raise CheckpointError(
            f"{config_key}: {p} weights hold NaN or infinity ({bad}): a diverged training run?"
        )
    model.eval()
    return LoadedModel(
        model=model,
        backbone=payload["backbone"],
        num_classes=int(payload["num_classes"]),
        head=model.head_name,
        classes=list(payload["classes"]),
        **settings,
    )


def non_finite_weight(model: torch.nn.Module) -> str | None:
    """The first parameter or buffer holding NaN or infinity, by name; None when all are finite."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return name
    return None


def untrained(
    backbone: str,
    *,
    head: str = "standard",
    init: str | Path | None = None,
    input_size: int = DEFAULT_INPUT_SIZE,
) -> LoadedModel:
    """A random-init (optionally torchvision-initialised backbone) model in eval mode."""
    model = build_model(backbone, head=head)
    if init is not None:
        init_from_torchvision(model, init)
    model.eval()
    return LoadedModel(
        model=model,
        backbone=backbone,
        num_classes=model.num_classes,
        input_size=input_size,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        classes=list(CLASSES),
        meta={"trained": False, "init": str(init) if init else None},
        head=head,
    )


def build_deeplab(
    checkpoint: str | Path | None,
    backbone: str | None,
    *,
    init: str | Path | None = None,
    allow_untrained: bool = False,
    config_key: str = "deeplab.checkpoint",
) -> LoadedModel:
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
        raise CheckpointError(
            f"{config_key} is not set — train a model with 'kinect-occlusion train' "
            "and set it, or set deeplab.allow_untrained: true"
        )
    name = backbone or "mobilenet_v3_large"
    log.warning(
        "DeepLab %s is UNTRAINED (%s): the coarse masks are meaningless",
        name,
        f"{config_key}: {checkpoint} missing" if checkpoint else f"{config_key} not set",
    )
    return untrained(name, init=init)
