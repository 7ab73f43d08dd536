"""The supervisor's checks on heartbeats: which Status counts, and when a worker looks hung.

Pure functions on the supervisor's own clock; the last test runs the monitor on real sockets."""

from __future__ import annotations

import logging
import math
import os
import threading
import time

import pytest
from conftest import wait_for

from kinect_occlusion import messages as m
from kinect_occlusion.bus import Proxy, Publisher, Subscriber
from kinect_occlusion.config import RuntimeConfig
from kinect_occlusion.runtime.monitor import BusMonitor, Heartbeats, info_problem
from kinect_occlusion.runtime.supervisor import hang_reason

RT = RuntimeConfig(hang_timeout_s=3.0, startup_grace_s=10.0, compute_timeout_s=30.0)


def status(state: str = "running", pid: int = 42, worker: str = "sam", **info) -> m.Status:
    return m.Status(camera="bed1", frame_id=0, ts_us=0, worker=worker, pid=pid, state=state, info=info)


@pytest.mark.parametrize(
    "info",
    [
        {"loop_age_s": "x"},
        {"loop_age_s": math.nan},
        {"loop_age_s": math.inf},
        {"loop_age_s": -1.0},
        {"loop_age_s": True},
        {"loop_age_s": 1e9},
        {"rate_hz": "fast"},
        {"last_frame_id": None},
        {"errors": 2**64},
    ],
)
def test_a_field_the_supervisor_reads_must_be_a_sane_number(info):
    assert info_problem(info, uptime_s=1e8) is not None


def test_loop_age_cannot_exceed_the_time_since_the_supervisor_started_the_worker():
    assert info_problem({"loop_age_s": 50.0}, uptime_s=100.0) is None
    assert info_problem({"loop_age_s": 500.0}, uptime_s=100.0) is not None


def test_sane_info_and_unread_fields_pass():
    info = {"loop_age_s": 0.1, "rate_hz": 14.9, "frames_out": 10, "last_frame_id": -1, "note": "x" * 100}
    assert info_problem(info, uptime_s=5.0) is None


def test_a_lie_about_the_loop_age_cannot_make_a_healthy_worker_look_hung():
    hb = Heartbeats(pid=42, started_at=0.0)
    for t in range(1, 100):
        hb.beat(status(loop_age_s=0.1), float(t))
        hb.beat(status(loop_age_s=float(t) - 0.5), float(t) + 0.5)  # forged, in range
    assert hang_reason(hb, 100.0, RT) is None


def test_a_stalled_main_loop_is_hung_from_arrival_times():
    hb = Heartbeats(pid=42, started_at=0.0)
    for t in range(1, 11):
        hb.beat(status(loop_age_s=float(t)), float(t))  # the heartbeat thread beats, the loop never ticks
    assert hang_reason(hb, 10.0, RT) is not None and "main loop stalled" in hang_reason(hb, 10.0, RT)


def test_computing_longer_than_the_deadline_is_hung_counted_from_the_first_computing_beat():
    hb = Heartbeats(pid=42, started_at=0.0)
    hb.beat(status("running", loop_age_s=0.0), 1.0)
    for t in range(2, 40):
        hb.beat(status("computing", loop_age_s=float(t - 2)), float(t))
        if t <= 31:
            assert hang_reason(hb, float(t), RT) is None
    assert "computing for 37 s" in hang_reason(hb, 39.0, RT)


def test_a_beat_out_of_compute_resets_the_deadline():
    hb = Heartbeats(pid=42, started_at=0.0)
    for t in range(1, 100):
        hb.beat(status("computing" if t % 20 else "running"), float(t))
    assert hang_reason(hb, 99.0, RT) is None


def test_no_heartbeat_and_a_start_that_never_ends_are_hung():
    silent = Heartbeats(pid=42, started_at=0.0)
    assert hang_reason(silent, 5.0, RT) is None and hang_reason(silent, 11.0, RT) is not None
    starting = Heartbeats(pid=42, started_at=0.0)
    for t in range(1, 12):
        starting.beat(status("starting", loop_age_s=float(t)), float(t))
    assert "still starting" in hang_reason(starting, 11.0, RT)
    quiet = Heartbeats(pid=42, started_at=0.0)
    quiet.beat(status(), 1.0)
    assert "no heartbeat for 4 s" in hang_reason(quiet, 5.0, RT)


def test_monitor_counts_status_only_from_its_own_children(endpoints):
    frontend, backend = endpoints
    with (
        Proxy(frontend, backend, hwm=1000),
        Subscriber(backend, "bed1", BusMonitor.TOPICS, rcvhwm=1000) as sub,
        Publisher(frontend, 1000) as pub,
    ):
        mon = BusMonitor(sub, own_pid=os.getpid())
        mon.expect("sam", 4242, time.monotonic() - 60)
        mon.expect("sam", 4343, time.monotonic() - 60)  # restarted: 4242 is a past child
        good = status(pid=4343, loop_age_s=0.2)  # the child: counted

        def received(msg):
            pub.publish(msg)
            mon.poll(100)
            return mon.beats["sam"].status is not None and mon.beats["sam"].status.info == msg.info

        assert wait_for(lambda: received(good), 5.0)  # the subscription is up
        before = mon.rejected
        for msg in [
            status(pid=4343, loop_age_s=1e9),  # the child's pid, insane info: invalid
            status(pid=999, loop_age_s=0.2),  # not the child: invalid
            status(worker="ghost", pid=4343),  # no such child: invalid
            status(worker="supervisor", pid=os.getpid()),  # its own heartbeat: ignored
            status(pid=4242),  # a late beat of the replaced child: ignored
        ]:
            pub.publish(msg)
        assert wait_for(lambda: received(status(pid=4343, loop_age_s=0.3)), 5.0)
    assert mon.rejected - before == 3 and set(mon.status) == {"sam"}
    assert mon.invalid == mon.rejected + sub.stats.invalid


def test_each_given_up_worker_is_announced_once_and_all_of_them_in_every_reminder(caplog):
    from kinect_occlusion.config import Config
    from kinect_occlusion.runtime.supervisor import Supervisor

    # Two non-essential workers (only their names matter: nothing is spawned)
    sup = Supervisor(Config(), threading.Event(), workers=("sam", "sam_b"))

    def degraded() -> list[str]:
        lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("DEGRADED: ")]
        caplog.clear()
        return [line.split()[1] for line in lines]

    with caplog.at_level(logging.WARNING, logger="kinect_occlusion.runtime.supervisor"):
        sup._give_up(sup.handles["sam"])
        assert degraded() == ["sam"]
        sup._give_up(sup.handles["sam_b"])
        assert degraded() == ["sam_b"]  # not "sam" again
        sup._warn_degraded(h for h in sup.handles.values() if h.failed)  # the periodic reminder
        assert degraded() == ["sam", "sam_b"]
    assert sup.fatal is None and sup.exit_code == 4
