"""The SAM worker's refresh policy: skip frames without occlusion, reuse unchanged scenes, pairing input."""

import numpy as np

from kinect_occlusion import messages as m
from kinect_occlusion.config import SamConfig
from kinect_occlusion.fuser.pairing import pair
from kinect_occlusion.sam.partitioner import PartitionResult
from kinect_occlusion.sam.worker import FrameRing, Refresher, choose_input, partition_message


class CountingPartitioner:
    name = "fake"

    def __init__(self):
        self.calls = 0

    def __call__(self, rgb, prob=None, roi=None):
        self.calls += 1
        return PartitionResult(
            labels=np.ones(rgb.shape[:2], np.int32), name=self.name, decoder_calls=7, ms=1.0
        )


def frame(i, value=100):
    return m.ColorFrame(
        camera="bed1", frame_id=i, ts_us=i * 100_000, image=np.full((24, 32, 3), value, np.uint8)
    )


def coarse(i, occluded=True):
    prob = np.zeros((24, 32), np.uint8)
    if occluded:
        prob[5:10, 5:10] = 255
    return m.CoarseMask(camera="bed1", frame_id=i, ts_us=i * 100_000, prob=prob, roi=(0, 0, 32, 24))


def test_frames_without_occlusion_are_skipped():
    part = CountingPartitioner()
    r = Refresher(SamConfig(), part)
    assert r.refresh(frame(1), coarse(1, occluded=False)) == (None, None)
    result, source = r.refresh(frame(2), coarse(2))
    assert part.calls == 1 and result is not None and source is None and r.skipped == 1


def test_unchanged_scene_reuses_the_partition_with_an_honest_age():
    part = CountingPartitioner()
    r = Refresher(SamConfig(reuse_threshold=2.0), part)
    first, _ = r.refresh(frame(1), coarse(1))
    again, source = r.refresh(frame(9), coarse(9))  # same pixels eight frames later
    assert part.calls == 1 and again is first and source.frame_id == 1
    msg = partition_message(frame(9), again, source)
    assert msg.frame_id == 1 and msg.reused and msg.confirmed_ts_us == 900_000
    assert pair(coarse(9), msg, max_age_ms=100).partition is msg  # valid: confirmed for frame 9
    changed, source = r.refresh(frame(10, value=200), coarse(10))
    assert part.calls == 2 and source is None


def test_partition_uses_the_frame_the_coarse_mask_came_from():
    ring = FrameRing(size=4)
    for i in range(6):
        ring.add(frame(i))
    assert choose_input(ring, coarse(4), need_coarse=True)[0].frame_id == 4
    assert choose_input(ring, coarse(0), need_coarse=True) == (None, None)  # fell out of the ring
    assert choose_input(ring, None, need_coarse=False)[0].frame_id == 5
