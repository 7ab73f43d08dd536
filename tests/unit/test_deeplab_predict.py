"""Coarse prediction geometry: ROI crop, letterbox, un-letterbox, paste (stub and random models)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from kinect_occlusion.deeplab.model import LoadedModel, build_deeplab
from kinect_occlusion.deeplab.predict import CoarsePredictor
from kinect_occlusion.geometry import letterbox, letterbox_transform, unletterbox

torch.set_num_threads(2)


class RedIsProbability(nn.Module):
    """Stub model: occlusion probability = the (un-normalised) red channel / 255 at each pixel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = x[:, :1].clamp(1e-6, 1 - 1e-6)  # mean 0, std 1: x is rgb / 255
        return torch.cat([torch.zeros_like(p), torch.log(p / (1 - p))], dim=1)


def stub_loaded(size: int) -> LoadedModel:
    stub: Any = RedIsProbability()  # stands in for a DeepLabV3Plus
    return LoadedModel(
        model=stub,
        backbone="stub",
        num_classes=2,
        input_size=size,
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        classes=["background", "occlusion"],
        meta={},
    )


def calibrate_batchnorm(model: nn.Module, size: int) -> None:
    """Random weights + default BN statistics give ~0.5 everywhere: estimate the BN statistics on
    random images so the probability map has contrast (a meaningful comparison)."""
    for mod in model.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.reset_running_stats()
            mod.momentum = None
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, size, size))
    model.eval()


def ramp_frame(h: int, w: int) -> np.ndarray:
    """Red: a smooth ramp over the frame (survives resizing), green/blue: noise the stub ignores."""
    ys, xs = np.mgrid[0:h, 0:w]
    rgb = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    rgb[..., 0] = (40 + 150 * (xs / w) + 60 * (ys / h)).astype(np.uint8)
    return rgb


@pytest.mark.parametrize("size", [32, 160])
@pytest.mark.parametrize("roi", [(10, 5, 70, 40), (30, 0, 20, 60), None])
def test_stub_geometry_follows_roi(size, roi):
    rgb = ramp_frame(60, 100)
    prob = CoarsePredictor(stub_loaded(size), device="cpu").predict(rgb, roi)
    assert prob.shape == (60, 100) and prob.dtype == np.float32
    x, y, w, h = roi or (0, 0, 100, 60)
    inside = np.zeros_like(prob, bool)
    inside[y : y + h, x : x + w] = True
    assert np.all(prob[~inside] == 0)
    # Inside the ROI the probability is the frame's own red channel, at the same place
    err = np.abs(prob - rgb[..., 0] / 255.0)[inside]
    assert np.median(err) < 0.01 and err.max() < 0.06


def test_stub_rectangle_lands_where_it_was():
    rgb = np.zeros((90, 120, 3), np.uint8)
    rgb[40:60, 50:90, 0] = 255  # a bright patch inside the ROI
    prob = CoarsePredictor(stub_loaded(64), device="cpu").predict(rgb, (20, 10, 90, 75))
    ys, xs = np.nonzero(prob > 0.5)
    assert abs(ys.min() - 40) <= 1 and abs(ys.max() - 59) <= 1
    assert abs(xs.min() - 50) <= 1 and abs(xs.max() - 89) <= 1


def test_roi_clipped_to_frame_and_outside_rejected():
    rgb = ramp_frame(60, 100)
    with pytest.raises(ValueError, match="nothing inside the 100×60 frame"):
        CoarsePredictor(stub_loaded(32), device="cpu").predict(rgb, (200, 0, 10, 10))
    prob = CoarsePredictor(stub_loaded(32), device="cpu").predict(rgb, (90, 50, 40, 40))
    assert np.all(prob[:50] == 0) and np.all(prob[:, :90] == 0) and prob[55, 95] > 0


def test_letterbox_round_trip_and_padding():
    rgb = ramp_frame(45, 100)
    canvas, t = letterbox(rgb, 64)
    assert canvas.shape == (64, 64, 3) and (t.new_h, t.new_w) == (29, 64)
    assert np.all(canvas[29:] == 0)  # content sits top-left, padding below
    back = unletterbox(canvas[..., 0].astype(np.float32), t)
    assert back.shape == (45, 100)
    assert np.abs(back - rgb[..., 0]).mean() < 2.0
    mask, tm = letterbox(np.ones((45, 100), np.uint8), 64)
    assert mask.shape == (64, 64) and mask.sum() == 29 * 64 and tm == t


def test_letterbox_transform_values():
    t = letterbox_transform(720, 1280, 512)
    assert (t.scale, t.new_h, t.new_w) == (0.4, 288, 512)
    t = letterbox_transform(7, 900, 512)
    assert (t.new_h, t.new_w) == (4, 512)
    assert letterbox_transform(1, 5000, 64).new_h == 1  # never an empty image


def test_rejects_non_rgb():
    pred = CoarsePredictor(stub_loaded(32), device="cpu")
    with pytest.raises(ValueError, match="uint8"):
        pred.predict(np.zeros((10, 10), np.uint8), None)
    with pytest.raises(ValueError, match="uint8"):
        pred.predict(np.zeros((10, 10, 3), np.float32), None)


@pytest.mark.parametrize("channels_last", [False, True])
def test_random_model_probabilities(channels_last):
    torch.manual_seed(0)
    loaded = build_deeplab(None, "mobilenet_v3_large", allow_untrained=True)
    loaded.input_size = 64
    rgb = ramp_frame(48, 80)
    prob = CoarsePredictor(loaded, device="cpu", channels_last=channels_last).predict(rgb, (8, 4, 50, 30))
    assert prob.shape == (48, 80)
    assert prob.min() >= 0 and prob.max() <= 1
    assert np.all(prob[:4] == 0) and np.all(prob[:, 58:] == 0)
    assert prob[4:34, 8:58].std() > 0  # a real forward pass, not a constant


@pytest.mark.parametrize(("backbone", "via_file"), [("mobilenet_v3_large", True), ("resnet18", False)])
def test_onnx_agrees_with_torch(tmp_path, backbone, via_file):
    pytest.importorskip("onnxruntime")
    from kinect_occlusion.deeplab.onnx_export import OnnxCoarsePredictor, export_onnx

    torch.manual_seed(1)
    loaded = build_deeplab(None, backbone, allow_untrained=True)
    loaded.input_size = 96
    calibrate_batchnorm(loaded.model, 96)
    rgb = np.random.default_rng(1).integers(0, 256, (80, 120, 3), dtype=np.uint8)
    roi = (10, 10, 90, 60)
    expected = CoarsePredictor(loaded, device="cpu").predict(rgb, roi)
    if via_file:
        pred = OnnxCoarsePredictor(loaded, onnx_path=export_onnx(loaded, tmp_path / "m.onnx"), threads=2)
    else:
        pred = OnnxCoarsePredictor(loaded)
    got = pred.predict(rgb, roi)
    assert got.shape == expected.shape and np.all(got[:10] == 0)
    assert np.abs(got - expected).max() < 1e-3
    assert expected[10:70, 10:100].std() > 0.02  # the comparison is over a non-trivial map
