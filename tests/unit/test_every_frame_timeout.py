"""runtime.every_frame: one frame_timeout_s per frame, counted from capture (pure, injected clocks)."""

from __future__ import annotations

import numpy as np
import pytest

from kinect_occlusion import messages as m
from kinect_occlusion.capture.credit import Credits
from kinect_occlusion.fuser.pairing import OwnPartitions, fallback_after_s, frame_age_s


def coarse(frame_id: int, origin_us: int = 0) -> m.CoarseMask:
    return m.CoarseMask(
        camera="bed1",
        epoch=7,
        frame_id=frame_id,
        ts_us=frame_id * 1000,
        origin_us=origin_us,
        prob=np.zeros((4, 4), np.uint8),
        roi=(0, 0, 4, 4),
    )


@pytest.mark.parametrize("timeout_s", [0.1, 1.0, 4.0, 60.0, 3600.0])
def test_the_fuser_falls_back_before_capture_gives_up_and_no_earlier_than_it_must(timeout_s):
    after = fallback_after_s(timeout_s)
    assert 0.75 * timeout_s <= after < timeout_s
    assert timeout_s - after <= 1.0  # the lead is 1 s at most: a long timeout keeps its wait


def test_frame_age_counts_from_capture_and_ignores_unknown_or_future_origins():
    assert frame_age_s(1_000_000, 3_500_000) == 2.5
    assert frame_age_s(0, 3_500_000) == 0.0  # unknown origin
    assert frame_age_s(9_000_000, 3_500_000) == 0.0  # from the future (another clock, a forgery)


def test_a_coarse_mask_that_arrives_late_waits_only_what_is_left_of_its_frames_wait():
    pairs = OwnPartitions(wait_s=1.0)
    pairs.add(coarse(1), 100.0, age_s=0.6)  # deeplab took 0.6 s of the frame's second
    assert pairs.ready(100.39) == []
    assert [(c.frame_id, p) for c, p in pairs.ready(100.4)] == [(1, None)]


@pytest.mark.parametrize("age_s", [1e12, float("inf"), -5.0])
def test_an_implausible_age_neither_waits_longer_than_wait_s_nor_breaks_the_order(age_s):
    pairs = OwnPartitions(wait_s=1.0)
    pairs.add(coarse(1), 100.0, age_s=age_s)
    released = pairs.ready(101.0)
    assert [c.frame_id for c, _ in released] == [1]  # at the latest wait_s after arrival


def test_a_frame_is_finished_or_given_up_within_one_frame_timeout():
    timeout = 4.0
    credits, pairs = Credits(limit=2, timeout_s=timeout), OwnPartitions(fallback_after_s(timeout))
    credits.take((7, 1), 0.0)  # captured at t = 0; its partition never comes (a partition worker died)
    credits.take((7, 2), 0.0)  # captured at t = 0; its coarse mask never comes (deeplab died with it)
    pairs.add(coarse(1), 2.0, age_s=2.0)  # the coarse mask of frame 1 arrives at t = 2
    released = [c.identity for c, _ in pairs.ready(fallback_after_s(timeout))]
    assert released == [(7, 1)]  # written coarse-only before capture would give it up ...
    assert credits.give_back((7, 1)) and credits.expire(timeout - 1e-6) == []
    assert credits.expire(timeout) == [(7, 2)]  # ... and the lost frame freed after one timeout, not two
    assert credits.available() and credits.lost == [(7, 2)]
