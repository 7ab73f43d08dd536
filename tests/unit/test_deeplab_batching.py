"""Cross-bed batching: batch assembly with a deadline (pure) and batched prediction (torch, ONNX)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_deeplab_predict import calibrate_batchnorm, ramp_frame, stub_loaded

from kinect_occlusion.deeplab.batching import BatchAssembler
from kinect_occlusion.deeplab.model import build_deeplab
from kinect_occlusion.deeplab.predict import CoarsePredictor


def test_batch_waits_for_every_active_camera_then_runs():
    a = BatchAssembler[str](max_batch=8, deadline_s=0.05)
    for cam in ("bed1", "bed2", "bed3"):
        a.add(cam, f"{cam}-f0", now=0.0)
    assert [c for c, _ in a.take()] == ["bed1", "bed2", "bed3"]
    a.add("bed2", "bed2-f1", now=0.20)
    assert not a.due(0.21)  # bed1 and bed3 are still active: wait for them, but not past the deadline
    a.add("bed1", "bed1-f1", now=0.22)
    assert not a.due(0.23)
    assert a.due(0.26)  # 60 ms after bed2's frame: bed3 is slow, the batch goes without it
    assert a.take() == [("bed2", "bed2-f1"), ("bed1", "bed1-f1")]
    assert not a.due(0.27) and a.pending == {}


def test_batch_keeps_only_the_newest_frame_per_camera():
    a = BatchAssembler[int](max_batch=4, deadline_s=1.0)
    for i in range(3):
        a.add("bed1", i, now=i * 0.01)
    assert a.superseded == 2 and a.dropped == {"bed1": 2}
    assert a.due(0.03)  # bed1 is the only active camera and it waits
    assert a.take() == [("bed1", 2)]


def test_batch_capped_at_max_batch_oldest_first():
    a = BatchAssembler[int](max_batch=2, deadline_s=1.0)
    for i, cam in enumerate(("bed3", "bed1", "bed2")):
        a.add(cam, i, now=i * 0.01)
    assert a.due(0.02)
    assert a.take() == [("bed3", 0), ("bed1", 1)]
    assert a.pending == {"bed2": 2}


def test_silent_camera_forgotten_and_no_longer_waited_for():
    a = BatchAssembler[int](max_batch=8, deadline_s=10.0, forget_s=1.0)
    a.add("bed1", 0, now=0.0)
    a.add("bed2", 0, now=0.0)
    a.take()
    a.add("bed1", 1, now=5.0)  # bed2 went silent 5 s ago (its bedside died)
    assert a.due(5.0)
    assert a.active(5.0) == ["bed1"]


def test_cameras_past_the_bound_are_refused_and_counted():
    a = BatchAssembler[int](max_batch=8, deadline_s=1.0, max_cameras=2)
    assert a.add("bed1", 0, now=0.0) and a.add("bed2", 0, now=0.0)
    assert not a.add("bed3", 0, now=0.0)
    assert a.refused == 1 and set(a.pending) == {"bed1", "bed2"}


def test_wait_s_counts_down_to_the_deadline():
    a = BatchAssembler[int](max_batch=8, deadline_s=0.1)
    assert a.wait_s(0.0) == 0.0
    a.add("bed1", 0, now=1.0)
    assert a.wait_s(1.04) == pytest.approx(0.06)
    assert a.wait_s(2.0) == 0.0


def test_stub_batch_matches_single_predictions_on_different_frame_sizes():
    pred = CoarsePredictor(stub_loaded(64), device="cpu")
    items = [(ramp_frame(48, 80), (8, 4, 50, 30)), (ramp_frame(120, 90), None), (ramp_frame(30, 40), None)]
    got = pred.predict_batch(items)
    assert [g.shape for g in got] == [(48, 80), (120, 90), (30, 40)]
    for g, (rgb, roi) in zip(got, items, strict=True):
        assert np.abs(g - pred.predict(rgb, roi)).max() < 1e-5
    assert pred.predict_batch([]) == []


def test_onnx_batch_agrees_with_torch_batch():
    pytest.importorskip("onnxruntime")
    from kinect_occlusion.deeplab.onnx_export import OnnxCoarsePredictor

    torch.manual_seed(2)
    loaded = build_deeplab(None, "mobilenet_v3_large", allow_untrained=True)
    loaded.input_size = 64
    calibrate_batchnorm(loaded.model, 64)
    rng = np.random.default_rng(3)
    items = [(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8), None) for _ in range(3)]
    expected = CoarsePredictor(loaded, device="cpu").predict_batch(items)
    got = OnnxCoarsePredictor(loaded, threads=2).predict_batch(items)
    for g, e in zip(got, expected, strict=True):
        assert np.abs(g - e).max() < 1e-3
    assert np.abs(expected[0] - expected[1]).max() > 1e-3  # per-frame outputs, not one map repeated
