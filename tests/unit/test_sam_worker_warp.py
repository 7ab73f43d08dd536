"""The SAM worker carries its last partition to new frames by optical flow (sam.warp)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from kinect_occlusion import messages as m
from kinect_occlusion.config import SamConfig
from kinect_occlusion.fuser.pairing import pair
from kinect_occlusion.sam.partitioner import PartitionResult
from kinect_occlusion.sam.worker import Refresher

H, W = 120, 160


class Blocks:
    """A fake partitioner: 20-px blocks of the frame it sees."""

    name = "superpixel/fake"

    def __call__(self, rgb, prob=None, roi=None):
        ys, xs = np.mgrid[0:H, 0:W]
        return PartitionResult(
            labels=((ys // 20) * 8 + xs // 20 + 1).astype(np.int32), name=self.name, ms=1.0
        )


def frame(i: int, dx: int = 0, epoch: int = 0) -> m.ColorFrame:
    """Frame ``i`` of a smooth random texture moved ``dx`` px to the right."""
    rng = np.random.default_rng(0)
    tex = cv2.GaussianBlur(rng.random((H, W + 40, 3)).astype(np.float32), (0, 0), 3)
    tex = ((tex - tex.min()) / (tex.max() - tex.min()) * 255).astype(np.uint8)
    image = np.ascontiguousarray(tex[:, 20 - dx : 20 - dx + W])
    return m.ColorFrame(camera="bed1", epoch=epoch, frame_id=i, ts_us=i * 100_000, image=image)


def test_partition_follows_the_frame_between_refreshes():
    r = Refresher(SamConfig(warp=True), Blocks())
    first, _ = r.refresh(frame(1), None)
    msg = r.carry(frame(2, dx=8))
    assert msg is not None and msg.frame_id == 2 and msg.ts_us == 200_000 and msg.warped_from == 1
    assert not msg.reused and msg.decoder_calls == 0 and msg.partitioner == "superpixel/fake"
    # The labels moved with the content: at x the block that was at x - 8
    covered = msg.labels[:, 30:150] > 0
    assert covered.mean() > 0.8
    assert (msg.labels[:, 30:150][covered] == first.labels[:, 22:142][covered]).mean() > 0.9
    # Valid on the wire, and fresh for the fuser at frame 2
    out = m.decode([bytes(f) for f in m.encode(msg)])
    assert isinstance(out, m.Partition) and out.warped_from == 1
    coarse = m.CoarseMask(
        camera="bed1", frame_id=2, ts_us=200_000, prob=np.zeros((H, W), np.uint8), roi=(0, 0, W, H)
    )
    assert pair(coarse, out, max_age_ms=50).partition is out


def test_carry_only_when_on_once_per_frame_and_within_one_run():
    assert Refresher(SamConfig(), Blocks()).carry(frame(2)) is None  # nothing partitioned yet
    off = Refresher(SamConfig(), Blocks())
    off.refresh(frame(1), None)
    assert off.carry(frame(2, dx=4)) is None  # sam.warp is off by default
    r = Refresher(SamConfig(warp=True), Blocks())
    r.refresh(frame(1), None)
    assert r.carry(frame(1)) is None  # its own frame
    assert r.carry(frame(2, dx=4)) is not None and r.carry(frame(2, dx=4)) is None
    assert r.carry(frame(3, dx=4, epoch=1)) is None  # another capture run


def test_bad_warped_from_is_rejected():
    msg = Refresher(SamConfig(warp=True), Blocks())
    msg.refresh(frame(1), None)
    carried = msg.carry(frame(2, dx=4))
    carried.warped_from = -7
    with pytest.raises(m.MessageError, match="warped_from"):
        m.decode([bytes(f) for f in m.encode(carried)])
