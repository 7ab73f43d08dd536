"""Fuser pairing, staleness and resolution reconciliation."""

import numpy as np

from kinect_occlusion import messages as m
from kinect_occlusion.config import FuserConfig
from kinect_occlusion.fuser.pairing import pair
from kinect_occlusion.fuser.worker import fuse
from kinect_occlusion.geometry import fit_labels


def coarse(ts_us=1_000_000, frame_id=10, shape=(20, 30)):
    prob = np.zeros(shape, np.uint8)
    prob[:, :12] = 230  # left part occluded with high confidence
    prob[:, 12:16] = 140  # a band just above 0.5
    return m.CoarseMask(
        camera="bed1", frame_id=frame_id, ts_us=ts_us, prob=prob, roi=(0, 0, shape[1], shape[0])
    )


def partition(ts_us, frame_id=5, shape=(20, 30)):
    labels = np.ones(shape, np.int32)
    labels[:, 10:] = 2  # segment 2 covers the 140-band and the background: majority background
    return m.Partition(
        camera="bed1", frame_id=frame_id, ts_us=ts_us, labels=labels, scores=np.zeros((2, 2), np.float32)
    )


def test_fresh_partition_is_used_and_votes_per_segment():
    out = fuse(coarse(), partition(900_000), FuserConfig(max_partition_age_ms=500))
    assert out.fused and out.partition_frame_id == 5 and abs(out.partition_age_ms - 100) < 1e-6
    assert out.mask[:, :10].all() and not out.mask[:, 10:].any()  # the band was voted away
    assert out.votes.shape == (3, 2) and out.frame_id == 10


def test_stale_partition_falls_back_to_coarse():
    out = fuse(coarse(), partition(100_000), FuserConfig(max_partition_age_ms=500))
    assert not out.fused and out.partition_frame_id == -1 and out.partition_age_ms > 500
    np.testing.assert_array_equal(out.mask[:, 12:16], 1)


def test_no_partition_and_other_camera():
    assert not fuse(coarse(), None, FuserConfig()).fused
    p = partition(1_000_000)
    p.camera = "bed9"
    assert pair(coarse(), p, 1000).partition is None


def test_reused_partition_age_counts_from_confirmation():
    p = partition(100_000)
    p.reused, p.confirmed_ts_us = True, 990_000
    assert pair(coarse(), p, 500).partition is p


def test_partition_at_another_resolution_is_mapped():
    small = partition(1_000_000, shape=(10, 15))  # segment 1: columns 0-9 → 0-19 at full size
    out = fuse(coarse(), small, FuserConfig())
    assert out.fused and out.mask.shape == (20, 30)
    assert fit_labels(small.labels, (20, 30)).tolist() == [[1] * 20 + [2] * 10] * 20
    # Segment 1 (mean probability 0.65) is occluded as a whole, segment 2 is not
    assert out.mask[:, :20].all() and not out.mask[:, 20:].any()


def test_holder_waits_for_the_matching_partition_but_never_drops_a_frame():
    from kinect_occlusion.fuser.worker import Holder

    h = Holder(wait_ms=80)
    assert h.push(coarse(frame_id=10), now=0.0) is None
    assert h.release(partition(900_000, frame_id=9), now=0.03) is None  # older partition: keep waiting
    assert h.release(partition(1_000_000, frame_id=10), now=0.04).frame_id == 10  # its own partition
    h.push(coarse(frame_id=11), now=1.0)
    assert h.release(None, now=1.05) is None
    assert h.release(None, now=1.09).frame_id == 11  # waited long enough
    h.push(coarse(frame_id=12), now=2.0)
    assert h.push(coarse(frame_id=13), now=2.01).frame_id == 12  # superseded: fuse it now
    assert Holder(wait_ms=0).release(None, 0.0) is None
    h0 = Holder(wait_ms=0)
    h0.push(coarse(frame_id=1), now=0.0)
    assert h0.release(None, now=0.0).frame_id == 1
