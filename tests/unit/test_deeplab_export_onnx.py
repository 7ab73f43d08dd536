"""``kinect-occlusion export-onnx``: a checkpoint becomes an .onnx file that onnxruntime can run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kinect_occlusion.cli import main
from kinect_occlusion.deeplab.model import build_model, load_checkpoint, save_checkpoint


def test_export_onnx_command(tmp_path):
    pytest.importorskip("onnxruntime")
    from kinect_occlusion.deeplab.onnx_export import OnnxCoarsePredictor

    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "m.pt", build_model("resnet18"), input_size=64)
    out = tmp_path / "onnx" / "m.onnx"
    assert main(["export-onnx", str(ckpt), "--out", str(out)]) == 0
    pred = OnnxCoarsePredictor(load_checkpoint(ckpt), onnx_path=out)
    prob = pred.predict(np.zeros((30, 40, 3), np.uint8), None)
    assert prob.shape == (30, 40) and 0 <= prob.min() <= prob.max() <= 1


def test_export_onnx_missing_checkpoint(tmp_path, capsys):
    code = main(["export-onnx", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "m.onnx")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert "nope.pt does not exist" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "m.onnx").exists()
