"""DeepLabV3+ model, checkpoint format and torchvision initialisation (random weights, small inputs)."""

from __future__ import annotations

import logging

import pytest
import torch
import torchvision

from kinect_occlusion.deeplab.model import (
    BACKBONES,
    FORMAT,
    build_deeplab,
    build_model,
    init_from_torchvision,
    load_checkpoint,
    save_checkpoint,
)
from kinect_occlusion.errors import CheckpointError

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    return build_model("resnet18").eval()


@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_output_shape_and_strides(backbone):
    model = build_model(backbone).eval()
    assert model.decoder.low_proj[0].in_channels == BACKBONES[backbone].low_channels
    x = torch.randn(1, 3, 64, 80)
    with torch.inference_mode():
        feats = model.backbone(x)
        out = model(x)
    assert out.shape == (1, 2, 64, 80)
    # Low-level features at stride 4, ASPP input at output stride 16
    assert feats["low"].shape[-2:] == (16, 20)
    assert feats["out"].shape[-2:] == (4, 5)
    assert feats["low"].shape[1] == BACKBONES[backbone].low_channels
    assert feats["out"].shape[1] == BACKBONES[backbone].high_channels


def test_decoder_uses_low_level_features(small_model):
    model = build_model("mobilenet_v3_large").train()
    x = torch.randn(2, 3, 64, 64)
    model(x).sum().backward()
    grad = model.decoder.low_proj[0].weight.grad
    assert model.decoder.low_proj[0].out_channels == 48
    assert grad is not None and grad.abs().sum() > 0
    # Changing the low-level features changes the output (the skip connection is wired in)
    model.eval()
    with torch.inference_mode():
        feats = model.backbone(x)
        a = model.decoder(model.aspp(feats["out"]), feats["low"])
        b = model.decoder(model.aspp(feats["out"]), torch.zeros_like(feats["low"]))
    assert a.shape[-2:] == (16, 16)
    assert not torch.allclose(a, b)


def test_save_load_round_trip(tmp_path, small_model):
    path = save_checkpoint(
        tmp_path / "m.pt",
        small_model,
        input_size=96,
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
        meta={"epoch": 3, "trained": True},
    )
    loaded = load_checkpoint(path, expected_backbone="resnet18")
    assert (loaded.backbone, loaded.num_classes, loaded.input_size) == ("resnet18", 2, 96)
    assert loaded.mean == (0.5, 0.5, 0.5) and loaded.std == (0.25, 0.25, 0.25)
    assert loaded.classes == ["background", "occlusion"] and loaded.meta["epoch"] == 3
    assert not loaded.model.training
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        assert torch.equal(small_model(x), loaded.model(x))
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == FORMAT and raw["version"] == 1


def test_lite_head_round_trip_and_fp16_weights(tmp_path):
    torch.manual_seed(0)
    model = build_model("mobilenet_v3_large", head="lite").eval()
    assert model.decoder.fuse[0][0].groups > 1  # separable: depthwise conv first
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        expected = model(x)
    assert expected.shape == (1, 2, 64, 64)
    path = save_checkpoint(tmp_path / "lite.pt", model)
    loaded = load_checkpoint(path)
    assert loaded.head == "lite"
    with torch.inference_mode():
        assert torch.equal(loaded.model(x), expected)
    # Weights stored as fp16 (demo models) come back as fp32 and give nearly the same output
    save_checkpoint(tmp_path / "half.pt", model.half())
    half = load_checkpoint(tmp_path / "half.pt")
    assert next(half.model.parameters()).dtype == torch.float32
    assert (tmp_path / "half.pt").stat().st_size < 10e6
    with torch.inference_mode():
        assert torch.allclose(half.model(x), expected, atol=0.05)


def test_init_from_torchvision_resnet50(tmp_path):
    tv = torchvision.models.segmentation.deeplabv3_resnet50(
        weights=None, weights_backbone=None, num_classes=21, aux_loss=True
    )
    state = tv.state_dict()
    torch.save(state, tmp_path / "tv.pth")
    model = build_model("resnet50")
    report = init_from_torchvision(model, tmp_path / "tv.pth")
    ours = model.state_dict()
    backbone = [k for k in state if k.startswith("backbone.")]
    aspp = [k for k in state if k.startswith("classifier.0.")]
    assert report.mapped == len(backbone) + len(aspp)
    assert report.skipped == len(state) - report.mapped
    for k in backbone:
        assert torch.equal(ours[k], state[k]), k
    for k in aspp:
        assert torch.equal(ours["aspp." + k[len("classifier.0.") :]], state[k]), k
    assert all(k.startswith(("classifier.", "aux_classifier.")) for k in report.skipped_keys)


def test_init_from_torchvision_wrong_backbone(tmp_path):
    tv = torchvision.models.segmentation.deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None)
    torch.save(tv.state_dict(), tmp_path / "tv.pth")
    with pytest.raises(CheckpointError, match="wrong backbone"):
        init_from_torchvision(build_model("resnet18"), tmp_path / "tv.pth")


def test_missing_checkpoint_names_path_and_key(tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(CheckpointError) as err:
        build_deeplab(str(missing), None)
    msg = str(err.value)
    assert str(missing) in msg and "deeplab.checkpoint" in msg and "\n" not in msg


def test_not_a_checkpoint(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="deeplab.checkpoint.*junk.pt.*not a readable"):
        load_checkpoint(junk)
    torch.save({"a": torch.zeros(1)}, tmp_path / "raw.pt")
    with pytest.raises(CheckpointError, match="not a kinect-occlusion DeepLabV3\\+ checkpoint"):
        load_checkpoint(tmp_path / "raw.pt", config_key="train.resume")


def test_backbone_and_class_mismatch(tmp_path, small_model):
    path = save_checkpoint(tmp_path / "m.pt", small_model)
    with pytest.raises(CheckpointError) as err:
        build_deeplab(path, "resnet50")
    assert "resnet18" in str(err.value) and str(path) in str(err.value) and "deeplab" in str(err.value)
    payload = torch.load(path, weights_only=True)
    payload["classes"] = ["background", "tube", "cable"]
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="classes"):
        load_checkpoint(tmp_path / "bad.pt")


def test_corrupt_state_dict(tmp_path, small_model):
    payload = torch.load(save_checkpoint(tmp_path / "m.pt", small_model), weights_only=True)
    del payload["state_dict"]["decoder.classifier.weight"]
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(tmp_path / "bad.pt")


def test_untrained_needs_permission_and_warns(tmp_path, caplog):
    with pytest.raises(CheckpointError, match="deeplab.checkpoint is not set"):
        build_deeplab(None, "resnet18")
    with caplog.at_level(logging.WARNING):
        loaded = build_deeplab(str(tmp_path / "missing.pt"), "resnet18", allow_untrained=True)
    assert loaded.backbone == "resnet18" and loaded.meta["trained"] is False
    assert "meaningless" in caplog.text


def test_unknown_backbone():
    with pytest.raises(CheckpointError, match="unknown DeepLab backbone"):
        build_model("vgg16")
    with pytest.raises(CheckpointError, match="unknown DeepLab head"):
        build_model("resnet18", head="huge")


def test_dilation_matches_torchvision():
    from torch import nn

    from kinect_occlusion.deeplab.network import _dilate_last_stage

    def convs(layer):
        return [
            (n, m.stride, m.dilation, m.padding) for n, m in layer.named_modules() if isinstance(m, nn.Conv2d)
        ]

    ref = torchvision.models.resnet50(weights=None, replace_stride_with_dilation=[False, False, True]).layer4
    ours = torchvision.models.resnet50(weights=None).layer4
    _dilate_last_stage(ours)
    assert convs(ours) == convs(ref)
    # BasicBlock (resnet18), which torchvision cannot dilate: every 3×3 but the strided one is dilated
    r18 = torchvision.models.resnet18(weights=None).layer4
    _dilate_last_stage(r18)
    dil = {
        n: m.dilation for n, m in r18.named_modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)
    }
    assert dil == {"0.conv1": (1, 1), "0.conv2": (2, 2), "1.conv1": (2, 2), "1.conv2": (2, 2)}
