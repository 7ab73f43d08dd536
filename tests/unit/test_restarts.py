"""A worker restart seen on the bus frees the frames in flight to it (runtime/restarts.py; pure)."""

from __future__ import annotations

import numpy as np

from kinect_occlusion import messages as m
from kinect_occlusion.capture.credit import Credits
from kinect_occlusion.fuser.pairing import OwnPartitions
from kinect_occlusion.runtime.restarts import RestartWatch, started_us


def status(worker: str, pid: int, ts_us: int = 10_000_000, uptime_s=2.0, state: str = "running") -> m.Status:
    info = {} if uptime_s is None else {"uptime_s": uptime_s}
    return m.Status(camera="bed1", frame_id=0, ts_us=ts_us, worker=worker, pid=pid, state=state, info=info)


def test_a_new_pid_is_a_start_and_holds_until_the_successor_is_ready():
    watch = RestartWatch(("deeplab",))
    assert watch.seen(status("deeplab", 10)) == 8_000_000 and watch.ready()  # the first process
    assert watch.seen(status("deeplab", 10)) is None  # its next heartbeat
    assert watch.seen(status("sam", 11)) is None  # not watched
    assert watch.seen(status("deeplab", 12, 20_000_000, 0.5, "starting")) == 19_500_000
    assert not watch.ready()  # restarted, not subscribed yet
    assert watch.seen(status("deeplab", 10)) is None and not watch.ready()  # a late beat of the old pid
    assert watch.seen(status("deeplab", 12, state="ready")) is None and watch.ready()


def test_a_restarted_worker_that_never_gets_ready_is_waited_for_hold_s_at_most():
    watch = RestartWatch(("sam",), hold_s=60.0)  # e.g. given up by the supervisor after its restarts
    watch.seen(status("sam", 1), now=0.0)
    watch.seen(status("sam", 2, state="starting"), now=5.0)
    assert not watch.ready(now=64.9) and watch.ready(now=65.0)


def test_an_untrusted_uptime_falls_back_to_the_heartbeat_time():
    for bad in (None, True, "1", -0.0 - 1):
        assert started_us(status("fuser", 3, 5_000_000, bad)) == 5_000_000


def test_frames_sent_before_a_restart_are_given_up_those_after_stay():
    credits = Credits(limit=3, timeout_s=60.0)
    credits.take((1, 0), 0.0, sent_us=100)
    credits.take((1, 1), 0.0, sent_us=200)
    credits.take((1, 2), 0.0)  # no send time: left to its timeout
    assert credits.give_up_sent_before(150) == [(1, 0)]
    assert list(credits.in_flight) == [(1, 1), (1, 2)] and credits.lost == [(1, 0)]
    assert not credits.give_back((1, 0))  # its mask after all: ignored, not counted twice
    assert credits.give_back((1, 1)) and credits.sent_us == {}


def coarse(frame_id: int, origin_us: int) -> m.CoarseMask:
    return m.CoarseMask(
        camera="bed1",
        epoch=1,
        frame_id=frame_id,
        ts_us=frame_id,
        origin_us=origin_us,
        prob=np.zeros((4, 4), np.uint8),
        roi=(0, 0, 4, 4),
    )


def partition(frame_id: int, origin_us: int) -> m.Partition:
    labels = np.ones((4, 4), np.int32)
    scores = np.ones((1, 2), np.float32)
    return m.Partition(
        camera="bed1",
        epoch=1,
        frame_id=frame_id,
        ts_us=frame_id,
        origin_us=origin_us,
        labels=labels,
        scores=scores,
    )


def test_a_coarse_mask_whose_partition_died_with_the_partition_worker_goes_alone_at_once():
    pairs = OwnPartitions(wait_s=55.0)
    pairs.add(coarse(0, origin_us=1_000), now=0.0)
    pairs.add(coarse(1, origin_us=3_000), now=0.0)
    assert pairs.ready(now=1.0) == []  # waiting for their partitions
    pairs.partitions_from(2_000)  # the partition worker restarted: its process started at 2 ms
    assert [(c.frame_id, p) for c, p in pairs.ready(now=1.0)] == [(0, None)]
    pairs.add(coarse(2, origin_us=1_500), now=1.0)  # a late coarse mask of an earlier frame
    assert [c.frame_id for c, _ in pairs.ready(now=1.0)] == [2]
    assert pairs.waiting()  # frame 1 was sent after the restart: it waits for its partition
