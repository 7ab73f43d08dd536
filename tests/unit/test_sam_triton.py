"""sam.encoder: triton without a server: config keys, the encoder's config.pbtxt, the worker's back-off."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from pydantic import ValidationError

from kinect_occlusion import messages as m
from kinect_occlusion.config import Config, SamConfig
from kinect_occlusion.deeplab.triton_repo import TritonModelSpec, config_pbtxt
from kinect_occlusion.runtime.worker import MAX_CONSECUTIVE_ERRORS, PersistentFailure, WorkerRuntime
from kinect_occlusion.sam.triton_encoder import TritonEncoderError
from kinect_occlusion.sam.worker import Bed, refresh_one


def test_triton_encoder_keys_are_validated():
    sam = SamConfig(partitioner="sam", checkpoint="sam.pth", encoder="triton", triton_url="triton:8001")
    assert sam.triton_model == "sam_encoder" and sam.triton_timeout_ms == 5000
    with pytest.raises(ValidationError, match="sam.encoder: triton needs sam.checkpoint"):
        SamConfig(encoder="triton")  # superpixels: no encoder to send anywhere
    with pytest.raises(ValidationError, match="triton_url"):
        SamConfig(checkpoint="sam.pth", encoder="triton", triton_url="grpc://triton")
    with pytest.raises(ValidationError, match="triton_model"):
        SamConfig(checkpoint="sam.pth", encoder="triton", triton_model="a/b")
    with pytest.raises(ValidationError, match="triton_timeout_ms"):
        SamConfig(checkpoint="sam.pth", encoder="triton", triton_timeout_ms=0)


def test_encoder_config_names_its_tensors_and_dims():
    spec = TritonModelSpec(
        name="sam_encoder",
        input_size=1024,
        backend="python",
        input_name="sam_image",
        output_name="sam_embedding",
        input_dims=(3, 1024, 1024),
        output_dims=(256, 64, 64),
    )
    text = config_pbtxt(spec)
    assert 'name: "sam_image" data_type: TYPE_FP32 dims: [ 3, 1024, 1024 ]' in text
    assert 'name: "sam_embedding" data_type: TYPE_FP32 dims: [ 256, 64, 64 ]' in text
    assert "timeout_action: REJECT" in text
    # The coarse model's config is what it was
    assert 'name: "image" data_type: TYPE_FP32 dims: [ 3, 96, 96 ]' in config_pbtxt(
        TritonModelSpec(input_size=96)
    )


class FailingPartitioner:
    name = "sam/tiny/triton"

    def __init__(self, exc: Exception) -> None:
        self.exc, self.calls = exc, 0

    def __call__(self, rgb, prob=None, roi=None):
        self.calls += 1
        raise self.exc


def frame(i: int) -> m.ColorFrame:
    return m.ColorFrame(camera="bed1", frame_id=i, ts_us=i * 1000, image=np.zeros((24, 32, 3), np.uint8))


def test_a_triton_failure_backs_off_the_bed_and_never_restarts_the_worker():
    rt = WorkerRuntime("sam", Config(), threading.Event(), parent_pid=1)
    bed = Bed(
        SamConfig(), FailingPartitioner(TritonEncoderError("Triton x: unavailable (retry in 4 s)", 4.0))
    )
    for i in range(MAX_CONSECUTIVE_ERRORS + 5):  # more than would restart the worker for other errors
        refresh_one(rt, None, bed, frame(i), None)
    assert rt.counters.errors == MAX_CONSECUTIVE_ERRORS + 5 and rt.counters.consecutive_errors == 0
    assert "TritonEncoderError: Triton x: unavailable" in rt.counters.last_error
    assert not bed.refresher.due() and bed.refresher.next_due > time.monotonic() + 3.5


def test_other_frame_errors_still_count_towards_a_restart():
    rt = WorkerRuntime("sam", Config(), threading.Event(), parent_pid=1)
    bed = Bed(SamConfig(), FailingPartitioner(RuntimeError("broken")))
    for i in range(MAX_CONSECUTIVE_ERRORS - 1):
        refresh_one(rt, None, bed, frame(i), None)
    assert bed.refresher.due()  # no back-off for a local error
    with pytest.raises(PersistentFailure):
        refresh_one(rt, None, bed, frame(99), None)


def test_no_server_yet_leaves_the_loaded_sam_intact_for_the_next_try(tmp_path):
    """The worker loads SAM once and retries the Triton hook-up with it: a failed try must not
    have swapped the local encoder out (else the retry would run without one)."""
    import torch
    from conftest import free_port

    from kinect_occlusion.runtime.remote import ServerUnreachable
    from kinect_occlusion.sam.partition import build_tiny_sam
    from kinect_occlusion.sam.partitioner import build_sam_partitioner, load_sam

    ckpt = tmp_path / "tiny.pth"
    torch.save(build_tiny_sam(0).state_dict(), ckpt)
    url = f"127.0.0.1:{free_port()}"  # nothing listens there
    cfg = SamConfig(
        partitioner="sam", checkpoint=str(ckpt), model_type="tiny", encoder="triton", triton_url=url
    )
    sam = load_sam(cfg)
    local = sam.image_encoder
    for _ in range(2):
        with pytest.raises(ServerUnreachable):
            build_sam_partitioner(cfg, sam)
        assert sam.image_encoder is local
