"""export-triton's config.pbtxt and the deeplab.runtime: triton config keys (no server needed)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kinect_occlusion.config import DeepLabConfig
from kinect_occlusion.deeplab.triton_repo import TritonModelSpec, config_pbtxt


def test_python_backend_config_batches_and_rejects_stale_requests():
    text = config_pbtxt(TritonModelSpec(input_size=96, backend="python", max_batch=4, queue_timeout_us=5000))
    assert 'backend: "python"' in text and "platform" not in text
    assert "max_batch_size: 4" in text and "preferred_batch_size: [ 4 ]" in text  # 8 > max: left out
    assert "dims: [ 3, 96, 96 ]" in text and "dims: [ 96, 96 ]" in text
    assert "timeout_action: REJECT" in text and "default_timeout_microseconds: 5000" in text


def test_onnx_backend_names_the_onnxruntime_platform():
    text = config_pbtxt(TritonModelSpec(backend="onnx", kind="KIND_GPU", instances=3))
    assert 'platform: "onnxruntime_onnx"' in text and "kind: KIND_GPU count: 3" in text


def test_triton_runtime_keys_are_validated():
    dl = DeepLabConfig(runtime="triton", triton_url="triton:8001", triton_model="deeplab_v2")
    assert dl.triton_timeout_ms == 1000
    with pytest.raises(ValidationError, match="triton_model"):
        DeepLabConfig(runtime="triton", triton_model="../etc")
    with pytest.raises(ValidationError, match="triton_timeout_ms"):
        DeepLabConfig(runtime="triton", triton_timeout_ms=0)
    with pytest.raises(ValidationError, match="triton_url"):
        DeepLabConfig(runtime="triton", triton_url="http://triton")  # gRPC host:port, no scheme
